//! The table model: what a [`Schema`] means for the database, independent of
//! SQL dialect, and its recorded form (`migrations/schema/<table>/`).
//!
//! Codegen compares two sets of [`Table`]s — the recorded one and the one
//! lowered from the resource files — so this model holds exactly what a
//! migration can change and nothing else (no policies, no descriptions).
//! It is recorded one folder per table and one file per column and per
//! index, so that two branches adding different resources, columns,
//! identities or indexes add different files and merge without conflict.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resource::{
    AttrType, IndexKey, OnDelete, RelationshipKind, Resource, ScalarType, Schema, Value,
};

/// PostgreSQL truncates identifiers longer than this, so generated index and
/// constraint names are shortened (with a hash) to fit.
pub const MAX_IDENTIFIER_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    /// The resource the table stores; `[resource] renamed_from` may name it.
    pub resource: String,
    pub columns: Vec<Column>,
    pub unique_indexes: Vec<UniqueIndex>,
    /// The other indexes, sorted by name.
    pub indexes: Vec<Index>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    pub default: Option<ColumnDefault>,
    pub primary_key: bool,
    pub references: Option<ForeignKey>,
}

/// Column types with the constraints the database itself enforces (as
/// CHECK constraints). `string` and `text` are one database type.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    Uuid,
    Text {
        min_length: Option<u32>,
        max_length: Option<u32>,
    },
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    Boolean,
    Date,
    Datetime,
    Json,
    Enum {
        values: Vec<String>,
    },
    Array {
        of: ScalarType,
    },
}

/// The type without its constraints, for deciding how a value converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseType {
    Uuid,
    Text,
    Integer,
    Float,
    Boolean,
    Date,
    Datetime,
    Json,
    Enum,
    Array,
}

impl ColumnType {
    pub fn base(&self) -> BaseType {
        match self {
            ColumnType::Uuid => BaseType::Uuid,
            ColumnType::Text { .. } => BaseType::Text,
            ColumnType::Integer { .. } => BaseType::Integer,
            ColumnType::Float { .. } => BaseType::Float,
            ColumnType::Boolean => BaseType::Boolean,
            ColumnType::Date => BaseType::Date,
            ColumnType::Datetime => BaseType::Datetime,
            ColumnType::Json => BaseType::Json,
            ColumnType::Enum { .. } => BaseType::Enum,
            ColumnType::Array { .. } => BaseType::Array,
        }
    }

    /// The name used in snapshots and messages.
    pub fn name(&self) -> String {
        match self {
            ColumnType::Array { of } => format!("array of {}", of.as_str()),
            other => other.base().as_str().to_string(),
        }
    }
}

impl BaseType {
    pub fn as_str(self) -> &'static str {
        match self {
            BaseType::Uuid => "uuid",
            BaseType::Text => "text",
            BaseType::Integer => "integer",
            BaseType::Float => "float",
            BaseType::Boolean => "boolean",
            BaseType::Date => "date",
            BaseType::Datetime => "datetime",
            BaseType::Json => "json",
            BaseType::Enum => "enum",
            BaseType::Array => "array",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnDefault {
    /// A literal from the resource file.
    Value(Value),
    /// The current time, for `inserted_at` / `updated_at`.
    Now,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub table: String,
    pub column: String,
    pub on_delete: OnDelete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueIndex {
    pub name: String,
    pub columns: Vec<String>,
}

/// An index that is not unique, for filtering and sorting: its keys are in
/// the order the API sorts lists (see [`Index`]'s rendering in
/// `kumo-db`'s `sql.rs`), ending with `id`, so a list sorted by a prefix of
/// them, or filtered by equality on a prefix and sorted by the rest, reads
/// the index in order instead of sorting the table.
///
/// A search index (`search = true` on an attribute) is the exception: one
/// key, no `id`, and on PostgreSQL a trigram index (GIN, `gin_trgm_ops`)
/// that serves `LIKE '%…%'` and `ILIKE`, not a sort. SQLite has no
/// trigram index and gets an ordinary one over the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub keys: Vec<IndexKey>,
    pub search: bool,
}

/// A name for an index or constraint on `table` that fits PostgreSQL's limit
/// and stays stable: long names keep a readable prefix and gain a hash.
pub fn constraint_name(table: &str, parts: &str, suffix: &str) -> String {
    let full = format!("{table}_{parts}_{suffix}");
    if full.len() <= MAX_IDENTIFIER_LEN {
        return full;
    }
    let hash = fnv1a(full.as_bytes());
    let keep = MAX_IDENTIFIER_LEN - 9 - suffix.len() - 1;
    format!("{}_{:08x}_{suffix}", &full[..keep], hash as u32)
}

/// FNV-1a, 64 bit: a stable fingerprint (unlike `DefaultHasher`, it is the
/// same across Rust versions and platforms). A change detector, not a MAC.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Lowers every resource to its table. Relationships become `<name>_id`
/// foreign-key columns; every table gets `id`, `inserted_at`, `updated_at`.
pub fn lower(schema: &Schema) -> Vec<Table> {
    schema
        .resources
        .iter()
        .map(|r| lower_resource(schema, r))
        .collect()
}

fn lower_resource(schema: &Schema, resource: &Resource) -> Table {
    let table = resource.plural.clone();
    let mut columns = vec![Column {
        name: "id".into(),
        ty: ColumnType::Uuid,
        nullable: false,
        default: None,
        primary_key: true,
        references: None,
    }];
    let mut unique_indexes = Vec::new();
    for attribute in &resource.attributes {
        let ty = match &attribute.ty {
            AttrType::String {
                min_length,
                max_length,
                ..
            } => ColumnType::Text {
                min_length: *min_length,
                max_length: *max_length,
            },
            AttrType::Text => ColumnType::Text {
                min_length: None,
                max_length: None,
            },
            AttrType::Integer { min, max } => ColumnType::Integer {
                min: *min,
                max: *max,
            },
            AttrType::Float { min, max } => ColumnType::Float {
                min: *min,
                max: *max,
            },
            AttrType::Boolean => ColumnType::Boolean,
            AttrType::Uuid => ColumnType::Uuid,
            AttrType::Date => ColumnType::Date,
            AttrType::Datetime => ColumnType::Datetime,
            AttrType::Json => ColumnType::Json,
            AttrType::Enum { values } => ColumnType::Enum {
                values: values.clone(),
            },
            AttrType::Array { of } => ColumnType::Array { of: *of },
        };
        columns.push(Column {
            name: attribute.name.clone(),
            ty,
            nullable: !attribute.required,
            default: attribute.default.clone().map(ColumnDefault::Value),
            primary_key: false,
            references: None,
        });
        if attribute.unique {
            unique_indexes.push(UniqueIndex {
                name: constraint_name(&table, &attribute.name, "key"),
                columns: vec![attribute.name.clone()],
            });
        }
    }
    for relationship in &resource.relationships {
        if let RelationshipKind::BelongsTo {
            target,
            required,
            on_delete,
            ..
        } = &relationship.kind
        {
            let target_table = schema
                .resource(target)
                .map_or_else(|| format!("{target}s"), |t| t.plural.clone());
            columns.push(Column {
                name: format!("{}_id", relationship.name),
                ty: ColumnType::Uuid,
                nullable: !required,
                default: None,
                primary_key: false,
                references: Some(ForeignKey {
                    table: target_table,
                    column: "id".into(),
                    on_delete: *on_delete,
                }),
            });
        }
    }
    for name in ["inserted_at", "updated_at"] {
        columns.push(Column {
            name: name.into(),
            ty: ColumnType::Datetime,
            nullable: false,
            default: Some(ColumnDefault::Now),
            primary_key: false,
            references: None,
        });
    }
    for identity in &resource.identities {
        unique_indexes.push(UniqueIndex {
            name: constraint_name(&table, &identity.name, "key"),
            columns: identity.columns.clone(),
        });
    }
    unique_indexes.sort_by(|a, b| a.name.cmp(&b.name));
    let indexes = lower_indexes(resource, &table, &columns, &unique_indexes);
    Table {
        name: table,
        resource: resource.name.clone(),
        columns,
        unique_indexes,
        indexes,
    }
}

/// The non-unique indexes of a resource's table: those `[indexes]` declares,
/// one per attribute with `index = true`, and one per `belongs_to` column
/// that no other index starts with. Every one ends with `id`.
///
/// The `belongs_to` ones exist because PostgreSQL does not index a foreign
/// key by itself: without one, filtering by the key, including a parent's
/// `has_many`, and every `ON DELETE` check on the parent read the whole
/// table. An index or unique index that starts with the column serves all
/// of those already.
fn lower_indexes(
    resource: &Resource,
    table: &str,
    columns: &[Column],
    unique_indexes: &[UniqueIndex],
) -> Vec<Index> {
    let mut indexes: Vec<Index> = resource
        .indexes
        .iter()
        .map(|i| Index {
            name: constraint_name(table, &i.name, "idx"),
            keys: IndexKey::with_id(&i.keys),
            search: false,
        })
        .collect();
    for attribute in resource.attributes.iter().filter(|a| a.index) {
        indexes.push(Index {
            name: constraint_name(table, &attribute.name, "idx"),
            keys: IndexKey::with_id(&[IndexKey::ascending(&attribute.name)]),
            search: false,
        });
    }
    for attribute in resource.attributes.iter().filter(|a| a.search) {
        indexes.push(Index {
            name: constraint_name(table, &attribute.name, "search"),
            keys: vec![IndexKey::ascending(&attribute.name)],
            search: true,
        });
    }
    for column in columns.iter().filter(|c| c.references.is_some()) {
        let leads = |first: Option<&String>| first == Some(&column.name);
        let covered = unique_indexes.iter().any(|u| leads(u.columns.first()))
            || indexes
                .iter()
                .any(|i| !i.search && leads(i.keys.first().map(|k| &k.column)));
        if !covered {
            indexes.push(Index {
                name: constraint_name(table, &column.name, "idx"),
                keys: IndexKey::with_id(&[IndexKey::ascending(&column.name)]),
                search: false,
            });
        }
    }
    indexes.sort_by(|a, b| a.name.cmp(&b.name));
    indexes
}

// ---------------------------------------------------------------------------
// The recorded form: one folder per table holding `table.toml` (facts about
// the table as a whole), `columns/<name>.toml` and `indexes/<name>.toml`.
// Two branches that add different columns or identities to one resource
// therefore add different files, and git merges them without a conflict.
// For the same reason nothing lists the columns: their order is derived
// (see [`sort_columns_as_recorded`]). Plain serde structs so every file
// reads well; `default` is JSON text because TOML has no null.

/// The files that record one table, each as text, keyed by where it lives in
/// the table's folder (`migrations/schema/<table>/`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedTable {
    /// `table.toml`.
    pub table: String,
    /// `columns/<name>.toml`, by column name.
    pub columns: BTreeMap<String, String>,
    /// `indexes/<name>.toml`, by index name.
    pub indexes: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFacts {
    table: String,
    resource: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default, skip_serializing_if = "is_false")]
    nullable: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    primary_key: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    references: Option<ReferenceFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceFile {
    table: String,
    column: String,
    on_delete: String,
}

/// `indexes/<name>.toml`. A unique index lists its columns; any other
/// index says `unique = false` and lists its keys as resource files write
/// them (`-score` for descending). Files from before non-unique indexes
/// existed have no `unique` and are unique.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unique: Option<bool>,
    /// A search index (see [`Index`]); absent for the others.
    #[serde(default, skip_serializing_if = "is_false")]
    search: bool,
    columns: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

const TABLE_HEADER: &str = "# Recorded by `kumo codegen`: the schema the migrations in this folder produce.\n# Kumo compares resources/ with these files; do not edit them by hand.\n\n";
const PART_HEADER: &str = "# Recorded by `kumo codegen`; do not edit by hand.\n\n";

/// Puts columns in the order a recorded table lists them: the primary key,
/// then the declared columns by name, then `inserted_at` and `updated_at`.
///
/// The order is derived rather than stored so that no file lists every
/// column (a list two branches would both edit). It only shapes the SQL of
/// migrations that recreate a recorded table (down migrations, SQLite
/// rebuilds going back); tables are created from the resource files in
/// declaration order, and diffs match columns by name.
pub fn sort_columns_as_recorded(columns: &mut [Column]) {
    columns.sort_by(|a, b| {
        let rank = |c: &Column| match c.name.as_str() {
            _ if c.primary_key => 0,
            "inserted_at" => 2,
            "updated_at" => 3,
            _ => 1,
        };
        (rank(a), &a.name).cmp(&(rank(b), &b.name))
    });
}

fn toml_text(header: &str, value: &impl Serialize) -> String {
    let body = toml::to_string_pretty(value).expect("recorded-schema structs always serialise");
    format!("{header}{body}")
}

/// The recorded form of one table.
pub fn to_snapshot(table: &Table) -> RecordedTable {
    RecordedTable {
        table: toml_text(
            TABLE_HEADER,
            &TableFacts {
                table: table.name.clone(),
                resource: table.resource.clone(),
            },
        ),
        columns: table
            .columns
            .iter()
            .map(|c| (c.name.clone(), toml_text(PART_HEADER, &column_file(c))))
            .collect(),
        indexes: table
            .unique_indexes
            .iter()
            .map(|u| {
                let file = IndexFile {
                    unique: None,
                    search: false,
                    columns: u.columns.clone(),
                };
                (u.name.clone(), toml_text(PART_HEADER, &file))
            })
            .chain(table.indexes.iter().map(|i| {
                let file = IndexFile {
                    unique: Some(false),
                    search: i.search,
                    columns: i.keys.iter().map(IndexKey::spelled).collect(),
                };
                (i.name.clone(), toml_text(PART_HEADER, &file))
            }))
            .collect(),
    }
}

fn column_file(c: &Column) -> ColumnFile {
    let mut file = ColumnFile {
        ty: c.ty.base().as_str().to_string(),
        nullable: c.nullable,
        primary_key: c.primary_key,
        default: c.default.as_ref().map(|d| match d {
            ColumnDefault::Now => "now()".to_string(),
            ColumnDefault::Value(v) => v.to_string(),
        }),
        min: None,
        max: None,
        min_length: None,
        max_length: None,
        values: None,
        of: None,
        references: c.references.as_ref().map(|r| ReferenceFile {
            table: r.table.clone(),
            column: r.column.clone(),
            on_delete: r.on_delete.as_str().to_string(),
        }),
    };
    match &c.ty {
        ColumnType::Text {
            min_length,
            max_length,
        } => {
            file.min_length = *min_length;
            file.max_length = *max_length;
        }
        ColumnType::Integer { min, max } => {
            file.min = min.map(toml::Value::Integer);
            file.max = max.map(toml::Value::Integer);
        }
        ColumnType::Float { min, max } => {
            file.min = min.map(toml::Value::Float);
            file.max = max.map(toml::Value::Float);
        }
        ColumnType::Enum { values } => file.values = Some(values.clone()),
        ColumnType::Array { of } => file.of = Some(of.as_str().to_string()),
        _ => {}
    }
    file
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SnapshotError(String);

/// Reads a recorded table back from its files.
pub fn from_snapshot(recorded: &RecordedTable) -> Result<Table, SnapshotError> {
    let facts: TableFacts =
        toml::from_str(&recorded.table).map_err(|e| SnapshotError(format!("table.toml: {e}")))?;
    let mut columns = Vec::new();
    for (name, text) in &recorded.columns {
        let file: ColumnFile =
            toml::from_str(text).map_err(|e| SnapshotError(format!("columns/{name}.toml: {e}")))?;
        columns.push(column_from_file(name, &file)?);
    }
    if !columns.iter().any(|c| c.primary_key) {
        return Err(SnapshotError(
            "no column is the primary key (is columns/id.toml missing?)".into(),
        ));
    }
    sort_columns_as_recorded(&mut columns);
    let mut unique_indexes = Vec::new();
    let mut indexes = Vec::new();
    for (name, text) in &recorded.indexes {
        let bad = |e: &dyn std::fmt::Display| SnapshotError(format!("indexes/{name}.toml: {e}"));
        let file: IndexFile = toml::from_str(text).map_err(|e| bad(&e))?;
        let known = |column: &str| columns.iter().any(|c| c.name == column);
        if file.unique == Some(false) {
            let keys: Vec<IndexKey> = file.columns.iter().map(|k| IndexKey::parse(k)).collect();
            if let Some(k) = keys.iter().find(|k| !known(&k.column)) {
                return Err(bad(&format!("no column `{}`", k.column)));
            }
            indexes.push(Index {
                name: name.clone(),
                keys,
                search: file.search,
            });
        } else {
            if let Some(c) = file.columns.iter().find(|c| !known(c)) {
                return Err(bad(&format!("no column `{c}`")));
            }
            unique_indexes.push(UniqueIndex {
                name: name.clone(),
                columns: file.columns,
            });
        }
    }
    Ok(Table {
        name: facts.table,
        resource: facts.resource,
        columns,
        unique_indexes,
        indexes,
    })
}

fn column_from_file(name: &str, c: &ColumnFile) -> Result<Column, SnapshotError> {
    let bad = |what: &str| SnapshotError(format!("column `{name}`: {what}"));
    let int = |v: &Option<toml::Value>| -> Result<Option<i64>, SnapshotError> {
        v.as_ref()
            .map(|v| {
                v.as_integer()
                    .ok_or_else(|| bad("min/max must be integers"))
            })
            .transpose()
    };
    let float = |v: &Option<toml::Value>| -> Option<f64> {
        v.as_ref()
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
    };
    let ty = match c.ty.as_str() {
        "uuid" => ColumnType::Uuid,
        "text" => ColumnType::Text {
            min_length: c.min_length,
            max_length: c.max_length,
        },
        "integer" => ColumnType::Integer {
            min: int(&c.min)?,
            max: int(&c.max)?,
        },
        "float" => ColumnType::Float {
            min: float(&c.min),
            max: float(&c.max),
        },
        "boolean" => ColumnType::Boolean,
        "date" => ColumnType::Date,
        "datetime" => ColumnType::Datetime,
        "json" => ColumnType::Json,
        "enum" => ColumnType::Enum {
            values: c
                .values
                .clone()
                .ok_or_else(|| bad("enum without `values`"))?,
        },
        "array" => ColumnType::Array {
            of: c
                .of
                .as_deref()
                .and_then(ScalarType::parse)
                .ok_or_else(|| bad("array without a valid `of`"))?,
        },
        other => return Err(bad(&format!("unknown type `{other}`"))),
    };
    let default = match c.default.as_deref() {
        None => None,
        Some("now()") => Some(ColumnDefault::Now),
        Some(json) => Some(ColumnDefault::Value(
            serde_json::from_str(json).map_err(|e| bad(&format!("bad default: {e}")))?,
        )),
    };
    let references = match &c.references {
        None => None,
        Some(r) => Some(ForeignKey {
            table: r.table.clone(),
            column: r.column.clone(),
            on_delete: OnDelete::parse(&r.on_delete).ok_or_else(|| bad("unknown on_delete"))?,
        }),
    };
    Ok(Column {
        name: name.to_string(),
        ty,
        nullable: c.nullable,
        default,
        primary_key: c.primary_key,
        references,
    })
}

/// The layout before one folder per table (`migrations/schema/<table>.toml`
/// with every column and an `order` list), still read so that existing
/// projects keep working; the next `kumo codegen` rewrites it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyTableFile {
    table: String,
    resource: String,
    #[serde(default)]
    columns: BTreeMap<String, ColumnFile>,
    order: Vec<String>,
    #[serde(default)]
    unique: BTreeMap<String, IndexFile>,
}

/// Reads a table recorded in the single-file layout.
pub fn from_legacy_snapshot(text: &str) -> Result<Table, SnapshotError> {
    let file: LegacyTableFile = toml::from_str(text).map_err(|e| SnapshotError(e.to_string()))?;
    let mut columns = Vec::new();
    for name in &file.order {
        let c = file.columns.get(name).ok_or_else(|| {
            SnapshotError(format!(
                "`order` names `{name}`, which has no entry in `columns`"
            ))
        })?;
        columns.push(column_from_file(name, c)?);
    }
    if columns.len() != file.columns.len() {
        return Err(SnapshotError(
            "every entry in `columns` must also be listed in `order`".into(),
        ));
    }
    sort_columns_as_recorded(&mut columns);
    Ok(Table {
        name: file.table,
        resource: file.resource,
        columns,
        unique_indexes: file
            .unique
            .into_iter()
            .map(|(name, u)| UniqueIndex {
                name,
                columns: u.columns,
            })
            .collect(),
        indexes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_constraint_names_fit_postgres_and_stay_distinct() {
        let a = constraint_name(&"t".repeat(48), &"a".repeat(48), "key");
        let b = constraint_name(&"t".repeat(48), &format!("{}b", "a".repeat(47)), "key");
        assert!(a.len() <= MAX_IDENTIFIER_LEN, "{a}");
        assert_ne!(a, b);
        assert_eq!(constraint_name("users", "email", "key"), "users_email_key");
    }
}
