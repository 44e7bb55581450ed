//! Comparing two sets of tables: what a migration must do to turn the
//! recorded schema into the declared one.
//!
//! Codegen never guesses renames: a table or column is renamed only where a
//! resource file says `renamed_from`, and only when the old name exists in
//! the recorded schema and the new one does not. Everything else is an add
//! or a drop. The down migration is the same diff run in the other
//! direction with the renames inverted, so up and down cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};

use kumo_core::resource::IndexKey;
use kumo_core::resource::{RelationshipKind, Schema};
use kumo_core::table::{BaseType, Column, ColumnDefault, ColumnType, Index, Table, UniqueIndex};

/// `renamed_from` hints, read from the resource files.
#[derive(Debug, Default, Clone)]
pub struct RenameHints {
    /// new table name → old resource or table name.
    pub tables: BTreeMap<String, String>,
    /// (new table name, new column) → old column.
    pub columns: BTreeMap<(String, String), String>,
}

impl RenameHints {
    pub fn from_schema(schema: &Schema) -> Self {
        let mut hints = RenameHints::default();
        for r in &schema.resources {
            if let Some(old) = &r.renamed_from {
                hints.tables.insert(r.plural.clone(), old.clone());
            }
            for a in &r.attributes {
                if let Some(old) = &a.renamed_from {
                    hints
                        .columns
                        .insert((r.plural.clone(), a.name.clone()), old.clone());
                }
            }
            for rel in &r.relationships {
                if let (Some(old), RelationshipKind::BelongsTo { .. }) =
                    (&rel.renamed_from, &rel.kind)
                {
                    hints.columns.insert(
                        (r.plural.clone(), format!("{}_id", rel.name)),
                        format!("{old}_id"),
                    );
                }
            }
        }
        hints
    }
}

/// Renames that actually apply between two schemas.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Renames {
    /// (old table, new table)
    pub tables: Vec<(String, String)>,
    /// (new table, old column, new column)
    pub columns: Vec<(String, String, String)>,
}

impl Renames {
    pub fn resolve(old: &[Table], new: &[Table], hints: &RenameHints) -> Self {
        let old_names: BTreeSet<&str> = old.iter().map(|t| t.name.as_str()).collect();
        let new_names: BTreeSet<&str> = new.iter().map(|t| t.name.as_str()).collect();
        let mut renames = Renames::default();
        for table in new {
            if old_names.contains(table.name.as_str()) {
                continue;
            }
            let Some(hint) = hints.tables.get(&table.name) else {
                continue;
            };
            let source = old
                .iter()
                .find(|t| &t.name == hint || &t.resource == hint)
                .filter(|t| !new_names.contains(t.name.as_str()));
            if let Some(source) = source {
                renames
                    .tables
                    .push((source.name.clone(), table.name.clone()));
            }
        }
        for table in new {
            let old_name = renames.old_table_name(&table.name);
            let Some(old_table) = old.iter().find(|t| t.name == old_name) else {
                continue;
            };
            for column in &table.columns {
                if old_table.column(&column.name).is_some() {
                    continue;
                }
                let Some(hint) = hints
                    .columns
                    .get(&(table.name.clone(), column.name.clone()))
                else {
                    continue;
                };
                if old_table.column(hint).is_some() && table.column(hint).is_none() {
                    renames
                        .columns
                        .push((table.name.clone(), hint.clone(), column.name.clone()));
                }
            }
        }
        renames
    }

    /// The same renames seen from the other side, for the down migration.
    pub fn inverted(&self) -> Self {
        Renames {
            tables: self
                .tables
                .iter()
                .map(|(o, n)| (n.clone(), o.clone()))
                .collect(),
            columns: self
                .columns
                .iter()
                .map(|(table, o, n)| (self.old_table_name(table), n.clone(), o.clone()))
                .collect(),
        }
    }

    fn old_table_name(&self, new: &str) -> String {
        self.tables
            .iter()
            .find(|(_, n)| n == new)
            .map_or_else(|| new.to_string(), |(o, _)| o.clone())
    }

    fn old_column_name(&self, table: &str, new: &str) -> String {
        self.columns
            .iter()
            .find(|(t, _, n)| t == table && n == new)
            .map_or_else(|| new.to_string(), |(_, o, _)| o.clone())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateTable(Table),
    DropTable(Table),
    RenameTable {
        from: String,
        to: String,
    },
    /// Boxed: it is much larger than the other variants.
    AlterTable(Box<TableAlter>),
}

/// Everything that changes inside one table that exists on both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct TableAlter {
    /// The table as recorded (its old name, if renamed).
    pub old: Table,
    pub new: Table,
    /// (old, new)
    pub renamed_columns: Vec<(String, String)>,
    pub added: Vec<Column>,
    pub dropped: Vec<Column>,
    /// (old, new) for columns present on both sides whose definition differs.
    pub altered: Vec<(Column, Column)>,
    pub added_unique: Vec<UniqueIndex>,
    pub dropped_unique: Vec<UniqueIndex>,
    /// (old name, new name) of indexes over the same columns.
    pub renamed_unique: Vec<(String, String)>,
    /// Non-unique indexes, likewise. An index over a column whose type
    /// changes is dropped and added again: how a key is ordered depends on
    /// its type (text is ordered byte-wise, `COLLATE "C"`, on PostgreSQL).
    pub added_indexes: Vec<Index>,
    pub dropped_indexes: Vec<Index>,
    pub renamed_indexes: Vec<(String, String)>,
}

impl TableAlter {
    /// The old column each new column takes its data from, if any.
    pub fn source_of(&self, new_column: &str) -> Option<&Column> {
        let old_name = self
            .renamed_columns
            .iter()
            .find(|(_, n)| n == new_column)
            .map_or(new_column, |(o, _)| o.as_str());
        self.old.column(old_name)
    }

    fn is_empty(&self) -> bool {
        self.old.name == self.new.name
            && self.renamed_columns.is_empty()
            && self.added.is_empty()
            && self.dropped.is_empty()
            && self.altered.is_empty()
            && self.added_unique.is_empty()
            && self.dropped_unique.is_empty()
            && self.renamed_unique.is_empty()
            && self.added_indexes.is_empty()
            && self.dropped_indexes.is_empty()
            && self.renamed_indexes.is_empty()
    }
}

/// The changes that turn `old` into `new`, in a stable order.
pub fn diff(old: &[Table], new: &[Table], renames: &Renames) -> Vec<Change> {
    let mut changes = Vec::new();
    for (from, to) in &renames.tables {
        changes.push(Change::RenameTable {
            from: from.clone(),
            to: to.clone(),
        });
    }
    let matched_old: BTreeSet<String> = new
        .iter()
        .map(|t| renames.old_table_name(&t.name))
        .collect();
    for table in new {
        let old_name = renames.old_table_name(&table.name);
        match old.iter().find(|t| t.name == old_name) {
            None => changes.push(Change::CreateTable(table.clone())),
            Some(old_table) => {
                let alter = alter_table(old_table, table, renames);
                if !alter.is_empty() {
                    changes.push(Change::AlterTable(Box::new(alter)));
                }
            }
        }
    }
    for table in old {
        if !matched_old.contains(&table.name) {
            changes.push(Change::DropTable(table.clone()));
        }
    }
    changes
}

fn alter_table(old: &Table, new: &Table, renames: &Renames) -> TableAlter {
    let renamed_columns: Vec<(String, String)> = renames
        .columns
        .iter()
        .filter(|(t, _, _)| *t == new.name)
        .map(|(_, o, n)| (o.clone(), n.clone()))
        .collect();
    let mut alter = TableAlter {
        old: old.clone(),
        new: new.clone(),
        renamed_columns,
        added: Vec::new(),
        dropped: Vec::new(),
        altered: Vec::new(),
        added_unique: Vec::new(),
        dropped_unique: Vec::new(),
        renamed_unique: Vec::new(),
        added_indexes: Vec::new(),
        dropped_indexes: Vec::new(),
        renamed_indexes: Vec::new(),
    };
    let mut kept_old = BTreeSet::new();
    for column in &new.columns {
        let old_name = renames.old_column_name(&new.name, &column.name);
        match old.column(&old_name) {
            None => alter.added.push(column.clone()),
            Some(old_column) => {
                kept_old.insert(old_name.clone());
                let mut comparable = old_column.clone();
                comparable.name = column.name.clone();
                if &comparable != column {
                    alter.altered.push((old_column.clone(), column.clone()));
                }
            }
        }
    }
    for column in &old.columns {
        if !kept_old.contains(&column.name) {
            alter.dropped.push(column.clone());
        }
    }
    // Indexes match by the columns they cover (seen through renames), so a
    // renamed table or column renames its index instead of rebuilding it.
    let mapped = |cols: &[String]| -> Vec<String> {
        cols.iter()
            .map(|c| {
                alter
                    .renamed_columns
                    .iter()
                    .find(|(o, _)| o == c)
                    .map_or_else(|| c.clone(), |(_, n)| n.clone())
            })
            .collect()
    };
    let mut unmatched_old: Vec<&UniqueIndex> = old.unique_indexes.iter().collect();
    for index in &new.unique_indexes {
        let position = unmatched_old
            .iter()
            .position(|o| mapped(&o.columns) == index.columns);
        match position {
            Some(i) => {
                let old_index = unmatched_old.remove(i);
                if old_index.name != index.name {
                    alter
                        .renamed_unique
                        .push((old_index.name.clone(), index.name.clone()));
                }
            }
            None => alter.added_unique.push(index.clone()),
        }
    }
    alter.dropped_unique = unmatched_old.into_iter().cloned().collect();

    let retyped: BTreeSet<&str> = alter
        .altered
        .iter()
        .filter(|(o, n)| o.ty.base() != n.ty.base())
        .map(|(_, n)| n.name.as_str())
        .collect();
    let mut unmatched_old: Vec<&Index> = old.indexes.iter().collect();
    for index in &new.indexes {
        let columns: Vec<String> = index.keys.iter().map(|k| k.column.clone()).collect();
        let position = unmatched_old.iter().position(|o| {
            let old_columns: Vec<String> = o.keys.iter().map(|k| k.column.clone()).collect();
            let directions =
                |keys: &[IndexKey]| keys.iter().map(|k| k.descending).collect::<Vec<_>>();
            o.search == index.search
                && mapped(&old_columns) == columns
                && directions(&o.keys) == directions(&index.keys)
        });
        let rebuilt = columns.iter().any(|c| retyped.contains(c.as_str()));
        match position {
            Some(i) if !rebuilt => {
                let old_index = unmatched_old.remove(i);
                if old_index.name != index.name {
                    alter
                        .renamed_indexes
                        .push((old_index.name.clone(), index.name.clone()));
                }
            }
            _ => alter.added_indexes.push(index.clone()),
        }
    }
    alter.dropped_indexes = unmatched_old.into_iter().cloned().collect();
    alter
}

/// A step that can lose or reject existing data, named for the user.
pub fn destructive_steps(changes: &[Change]) -> Vec<String> {
    let mut steps = Vec::new();
    for change in changes {
        match change {
            Change::DropTable(t) => steps.push(format!(
                "drops table `{}` and all its rows (resource `{}` is gone; if it was renamed, add `renamed_from = \"{}\"` to its [resource])",
                t.name, t.resource, t.resource
            )),
            Change::AlterTable(alter) => {
                for c in &alter.dropped {
                    steps.push(format!(
                        "drops column `{}.{}` and its data ({})",
                        alter.new.name,
                        c.name,
                        rename_hint(c)
                    ));
                }
                for (old, new) in &alter.altered {
                    if let Some(why) = narrowing(&alter.new.name, old, new) {
                        steps.push(why);
                    }
                }
            }
            Change::CreateTable(_) | Change::RenameTable { .. } => {}
        }
    }
    steps
}

/// How to keep a dropped column's data if it was really renamed: a
/// `belongs_to` key (`<relationship>_id`) is renamed on the relationship,
/// anything else on the attribute.
fn rename_hint(dropped: &Column) -> String {
    match dropped.name.strip_suffix("_id") {
        Some(relationship) if dropped.references.is_some() => format!(
            "if the relationship `{relationship}` was renamed, add `renamed_from = \"{relationship}\"` to the new relationship"
        ),
        _ => format!(
            "if it was renamed, add `renamed_from = \"{}\"` to the new attribute",
            dropped.name
        ),
    }
}

/// Steps that cannot lose data but fail on some existing data.
pub fn warnings(changes: &[Change]) -> Vec<String> {
    let mut warnings = Vec::new();
    for change in changes {
        if let Change::AlterTable(alter) = change {
            for c in &alter.added {
                if !c.nullable && c.default.is_none() {
                    warnings.push(format!(
                        "adds required column `{}.{}` without a default: the migration fails if the table has rows (give it a `default`)",
                        alter.new.name, c.name
                    ));
                }
            }
            for u in &alter.added_unique {
                warnings.push(format!(
                    "adds unique index `{}` on `{}` ({}): the migration fails if existing rows repeat a value",
                    u.name,
                    alter.new.name,
                    u.columns.join(", ")
                ));
            }
        }
    }
    warnings
}

/// Why changing `old` into `new` (in `table`) may reject or alter existing
/// values, if it may.
fn narrowing(table: &str, old: &Column, new: &Column) -> Option<String> {
    let at = format!("`{table}.{}`", new.name);
    let type_changed = old.ty.base() != new.ty.base() || !same_base_constraints(&old.ty, &new.ty);
    if type_changed && !is_widening(&old.ty, &new.ty) {
        return Some(format!(
            "changes {at} from {} to {}, which can lose or reject existing values",
            old.ty.name(),
            new.ty.name()
        ));
    }
    if let Some(what) = tightened(&old.ty, &new.ty) {
        return Some(format!(
            "narrows {at} ({what}), which can reject existing values"
        ));
    }
    if old.nullable && !new.nullable && new.default.is_none() {
        return Some(format!(
            "makes {at} required, which fails if any row has no value (give it a `default` to fill them)"
        ));
    }
    None
}

fn same_base_constraints(old: &ColumnType, new: &ColumnType) -> bool {
    !matches!((old, new), (ColumnType::Array { of: a }, ColumnType::Array { of: b }) if a != b)
}

/// Conversions that keep every existing value.
pub fn is_widening(old: &ColumnType, new: &ColumnType) -> bool {
    use BaseType as B;
    match (old.base(), new.base()) {
        (a, b) if a == b => same_base_constraints(old, new),
        (_, B::Text) => true,
        (B::Integer, B::Float) => true,
        (B::Date, B::Datetime) => true,
        (B::Array, B::Json) => true,
        (a, B::Json) => a != B::Array,
        _ => false,
    }
}

/// A description of how `new` accepts fewer values than `old`, if it does.
fn tightened(old: &ColumnType, new: &ColumnType) -> Option<String> {
    fn lower_bound_up<T: PartialOrd + std::fmt::Display + Copy>(
        name: &str,
        old: Option<T>,
        new: Option<T>,
    ) -> Option<String> {
        match (old, new) {
            (None, Some(n)) => Some(format!("adds {name} {n}")),
            (Some(o), Some(n)) if n > o => Some(format!("{name} {o} → {n}")),
            _ => None,
        }
    }
    fn upper_bound_down<T: PartialOrd + std::fmt::Display + Copy>(
        name: &str,
        old: Option<T>,
        new: Option<T>,
    ) -> Option<String> {
        match (old, new) {
            (None, Some(n)) => Some(format!("adds {name} {n}")),
            (Some(o), Some(n)) if n < o => Some(format!("{name} {o} → {n}")),
            _ => None,
        }
    }
    let found: Vec<String> = match (old, new) {
        (
            ColumnType::Text {
                min_length: a,
                max_length: b,
            },
            ColumnType::Text {
                min_length: c,
                max_length: d,
            },
        ) => [
            lower_bound_up("min_length", *a, *c),
            upper_bound_down("max_length", *b, *d),
        ]
        .into_iter()
        .flatten()
        .collect(),
        (ColumnType::Integer { min: a, max: b }, ColumnType::Integer { min: c, max: d }) => [
            lower_bound_up("min", *a, *c),
            upper_bound_down("max", *b, *d),
        ]
        .into_iter()
        .flatten()
        .collect(),
        (ColumnType::Float { min: a, max: b }, ColumnType::Float { min: c, max: d }) => [
            lower_bound_up("min", *a, *c),
            upper_bound_down("max", *b, *d),
        ]
        .into_iter()
        .flatten()
        .collect(),
        (ColumnType::Enum { values: a }, ColumnType::Enum { values: b }) => {
            let removed: Vec<&String> = a.iter().filter(|v| !b.contains(v)).collect();
            if removed.is_empty() {
                vec![]
            } else {
                vec![format!(
                    "removes enum values {}",
                    removed
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )]
            }
        }
        _ => vec![],
    };
    (!found.is_empty()).then(|| found.join(", "))
}

/// One line per change, for codegen's report.
pub fn describe(changes: &[Change]) -> Vec<String> {
    let mut lines = Vec::new();
    for change in changes {
        match change {
            Change::CreateTable(t) => {
                lines.push(format!("+ table {} ({} columns)", t.name, t.columns.len()))
            }
            Change::DropTable(t) => lines.push(format!("- table {}", t.name)),
            Change::RenameTable { from, to } => lines.push(format!("~ table {from} → {to}")),
            Change::AlterTable(a) => {
                let t = &a.new.name;
                for (o, n) in &a.renamed_columns {
                    lines.push(format!("~ column {t}.{o} → {n}"));
                }
                for c in &a.added {
                    lines.push(format!("+ column {t}.{} ({})", c.name, c.ty.name()));
                }
                for c in &a.dropped {
                    lines.push(format!("- column {t}.{}", c.name));
                }
                for (o, n) in &a.altered {
                    lines.push(format!("~ column {t}.{}: {}", n.name, describe_alter(o, n)));
                }
                for u in &a.added_unique {
                    lines.push(format!("+ unique {} ({})", u.name, u.columns.join(", ")));
                }
                for u in &a.dropped_unique {
                    lines.push(format!("- unique {}", u.name));
                }
                for (o, n) in &a.renamed_unique {
                    lines.push(format!("~ unique {o} → {n}"));
                }
                let rebuilt = |name: &str| a.dropped_indexes.iter().any(|d| d.name == name);
                for i in &a.added_indexes {
                    let keys: Vec<String> = i.keys.iter().map(IndexKey::spelled).collect();
                    let kind = if i.search { "search index" } else { "index" };
                    if rebuilt(&i.name) {
                        lines.push(format!(
                            "~ {kind} {} ({}): rebuilt for the new column type",
                            i.name,
                            keys.join(", ")
                        ));
                    } else {
                        lines.push(format!("+ {kind} {} ({})", i.name, keys.join(", ")));
                    }
                }
                for i in &a.dropped_indexes {
                    if !a.added_indexes.iter().any(|n| n.name == i.name) {
                        lines.push(format!("- index {}", i.name));
                    }
                }
                for (o, n) in &a.renamed_indexes {
                    lines.push(format!("~ index {o} → {n}"));
                }
            }
        }
    }
    lines
}

fn describe_alter(old: &Column, new: &Column) -> String {
    let mut parts = Vec::new();
    if old.ty != new.ty {
        parts.push(format!(
            "type {} → {}",
            describe_type(&old.ty),
            describe_type(&new.ty)
        ));
    }
    if old.nullable != new.nullable {
        parts.push(
            if new.nullable {
                "now optional"
            } else {
                "now required"
            }
            .to_string(),
        );
    }
    if old.default != new.default {
        parts.push(format!(
            "default {} → {}",
            describe_default(&old.default),
            describe_default(&new.default)
        ));
    }
    if old.references != new.references {
        parts.push("foreign key changed".into());
    }
    parts.join(", ")
}

fn describe_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Text {
            min_length,
            max_length,
        } => format!(
            "text{}{}",
            min_length
                .map(|v| format!(" min_length {v}"))
                .unwrap_or_default(),
            max_length
                .map(|v| format!(" max_length {v}"))
                .unwrap_or_default()
        ),
        ColumnType::Integer { min, max } => format!(
            "integer{}{}",
            min.map(|v| format!(" min {v}")).unwrap_or_default(),
            max.map(|v| format!(" max {v}")).unwrap_or_default()
        ),
        ColumnType::Float { min, max } => format!(
            "float{}{}",
            min.map(|v| format!(" min {v}")).unwrap_or_default(),
            max.map(|v| format!(" max {v}")).unwrap_or_default()
        ),
        ColumnType::Enum { values } => format!("enum [{}]", values.join(", ")),
        other => other.name(),
    }
}

fn describe_default(d: &Option<ColumnDefault>) -> String {
    match d {
        None => "none".into(),
        Some(ColumnDefault::Now) => "now".into(),
        Some(ColumnDefault::Value(v)) => v.to_string(),
    }
}
