//! Rendering schema changes as SQL for PostgreSQL and SQLite.
//!
//! The generated SQL is the product users read and commit, so it is written
//! here by hand, statement by statement, rather than through a query builder:
//! we need exact control over its text and over SQLite's table-rebuild
//! procedure. Identifiers come only from the validated schema and are always
//! double-quoted.
//!
//! Invariants:
//! - PostgreSQL creates tables without foreign keys and adds them last, so
//!   tables may reference each other in any order (cycles included).
//! - SQLite tables are `STRICT`; any change `ALTER TABLE` cannot express is a
//!   rebuild (create the new table, copy, drop, rename). The runner turns
//!   foreign keys off around each migration and runs `foreign_key_check`
//!   before committing, as SQLite's documentation prescribes.
//! - A rebuild is preceded by a `-- kumo:rebuild` line ([`Rebuild`]) naming
//!   the columns and indexes the migration knew. After a git merge another
//!   branch's migration may have changed the same table first; the runner
//!   compares the live table with that line and carries over what the
//!   rebuild's statements do not know, so a rebuild never drops a column it
//!   was not generated to drop.
//! - A non-unique index orders each key exactly as the API's list queries
//!   do ([`SortKeySql`] renders both), so the database can read a sorted
//!   page from the index instead of sorting the table.

use std::collections::BTreeMap;

use kumo_core::resource::{IndexKey, OnDelete, Value};
use kumo_core::table::{
    BaseType, Column, ColumnDefault, ColumnType, Index, Table, UniqueIndex, constraint_name, fnv1a,
};
use serde::{Deserialize, Serialize};

use crate::diff::{Change, TableAlter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }

    pub const ALL: [Dialect; 2] = [Dialect::Postgres, Dialect::Sqlite];
}

/// A double-quoted identifier. Names come from the validated schema, so the
/// escaping is a second line of defence, not the first.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The column's type as the database declares it.
pub fn sql_type(ty: &ColumnType, dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => match ty.base() {
            BaseType::Uuid => "UUID",
            BaseType::Text | BaseType::Enum => "TEXT",
            BaseType::Integer => "BIGINT",
            BaseType::Float => "DOUBLE PRECISION",
            BaseType::Boolean => "BOOLEAN",
            BaseType::Date => "DATE",
            // Milliseconds, as the API reads and writes them: PostgreSQL
            // rounds finer values (`CURRENT_TIMESTAMP`, plain SQL) when it
            // stores them, so an answered value finds its row and a page
            // cursor holds exactly what is stored.
            BaseType::Datetime => "TIMESTAMPTZ(3)",
            BaseType::Json | BaseType::Array => "JSONB",
        },
        Dialect::Sqlite => match ty.base() {
            BaseType::Integer | BaseType::Boolean => "INTEGER",
            BaseType::Float => "REAL",
            _ => "TEXT",
        },
    }
}

/// The CHECK expression a column type needs, if any.
pub fn check_expr(column: &Column, dialect: Dialect) -> Option<String> {
    let c = ident(&column.name);
    let length = match dialect {
        Dialect::Postgres => "char_length",
        Dialect::Sqlite => "length",
    };
    let mut parts = Vec::new();
    match &column.ty {
        ColumnType::Text {
            min_length,
            max_length,
        } => {
            if let Some(min) = min_length {
                parts.push(format!("{length}({c}) >= {min}"));
            }
            if let Some(max) = max_length {
                parts.push(format!("{length}({c}) <= {max}"));
            }
        }
        ColumnType::Integer { min, max } => {
            if let Some(min) = min {
                parts.push(format!("{c} >= {min}"));
            }
            if let Some(max) = max {
                parts.push(format!("{c} <= {max}"));
            }
        }
        ColumnType::Float { min, max } => {
            if let Some(min) = min {
                parts.push(format!("{c} >= {}", float_literal(*min)));
            }
            if let Some(max) = max {
                parts.push(format!("{c} <= {}", float_literal(*max)));
            }
        }
        ColumnType::Enum { values } => {
            let list: Vec<String> = values.iter().map(|v| string_literal(v)).collect();
            parts.push(format!("{c} IN ({})", list.join(", ")));
        }
        ColumnType::Boolean if dialect == Dialect::Sqlite => parts.push(format!("{c} IN (0, 1)")),
        // `IS NULL OR`: older SQLite (3.40, for one) says json_valid(NULL)
        // is 0 rather than NULL, and a CHECK that is 0 rejects the row, so
        // without it a nullable JSON column could not hold NULL there.
        ColumnType::Json if dialect == Dialect::Sqlite => {
            parts.push(format!("{c} IS NULL OR json_valid({c})"));
        }
        ColumnType::Array { .. } => match dialect {
            Dialect::Postgres => parts.push(format!("jsonb_typeof({c}) = 'array'")),
            Dialect::Sqlite => parts.push(format!(
                "{c} IS NULL OR (json_valid({c}) AND json_type({c}) = 'array')"
            )),
        },
        _ => {}
    }
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

fn float_literal(f: f64) -> String {
    let s = f.to_string();
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// A literal default as SQL.
pub fn default_sql(default: &ColumnDefault, ty: &ColumnType, dialect: Dialect) -> String {
    match default {
        ColumnDefault::Now => match dialect {
            Dialect::Postgres => "CURRENT_TIMESTAMP".into(),
            Dialect::Sqlite => "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))".into(),
        },
        ColumnDefault::Value(v) => value_sql(v, ty, dialect),
    }
}

/// A value as an SQL literal of the column's type.
pub fn value_sql(v: &Value, ty: &ColumnType, dialect: Dialect) -> String {
    match (ty.base(), v) {
        (_, Value::Null) => "NULL".into(),
        (BaseType::Json | BaseType::Array, v) => match dialect {
            Dialect::Postgres => format!("{}::jsonb", string_literal(&v.to_string())),
            Dialect::Sqlite => string_literal(&v.to_string()),
        },
        (BaseType::Boolean, Value::Bool(b)) => match dialect {
            Dialect::Postgres => if *b { "true" } else { "false" }.into(),
            Dialect::Sqlite => if *b { "1" } else { "0" }.into(),
        },
        (BaseType::Float, Value::Number(n)) => float_literal(n.as_f64().unwrap_or_default()),
        (_, Value::Number(n)) => n.to_string(),
        (_, Value::String(s)) => string_literal(s),
        (_, other) => string_literal(&other.to_string()),
    }
}

fn column_definition(table: &str, column: &Column, dialect: Dialect, with_fk: bool) -> String {
    let mut sql = format!("{} {}", ident(&column.name), sql_type(&column.ty, dialect));
    if column.primary_key {
        sql.push_str(" PRIMARY KEY");
    } else if !column.nullable {
        sql.push_str(" NOT NULL");
    }
    if let Some(default) = &column.default {
        sql.push_str(" DEFAULT ");
        sql.push_str(&default_sql(default, &column.ty, dialect));
    }
    if let Some(check) = check_expr(column, dialect) {
        sql.push_str(&format!(
            " CONSTRAINT {} CHECK ({check})",
            ident(&constraint_name(table, &column.name, "check"))
        ));
    }
    if with_fk && let Some(fk) = &column.references {
        sql.push_str(&format!(
            " CONSTRAINT {} REFERENCES {} ({}) ON DELETE {}",
            ident(&constraint_name(table, &column.name, "fkey")),
            ident(&fk.table),
            ident(&fk.column),
            on_delete_sql(fk.on_delete)
        ));
    }
    sql
}

pub fn on_delete_sql(on_delete: OnDelete) -> &'static str {
    match on_delete {
        OnDelete::Restrict => "RESTRICT",
        OnDelete::Cascade => "CASCADE",
        OnDelete::Nullify => "SET NULL",
    }
}

/// `CREATE TABLE name (…)`; constraint names always follow `table.name`, so a
/// rebuild's temporary table already carries the final names.
fn create_table_sql(table: &Table, dialect: Dialect, name: &str) -> String {
    let with_fk = dialect == Dialect::Sqlite;
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("  {}", column_definition(&table.name, c, dialect, with_fk)))
        .collect();
    let strict = if dialect == Dialect::Sqlite {
        " STRICT"
    } else {
        ""
    };
    format!(
        "CREATE TABLE {} (\n{}\n){strict};",
        ident(name),
        columns.join(",\n")
    )
}

fn create_unique_sql(table: &str, index: &UniqueIndex) -> String {
    let cols: Vec<String> = index.columns.iter().map(|c| ident(c)).collect();
    format!(
        "CREATE UNIQUE INDEX {} ON {} ({});",
        ident(&index.name),
        ident(table),
        cols.join(", ")
    )
}

/// One key of a sort order, as the list queries write it in `ORDER BY` and
/// as an index must declare it to serve that `ORDER BY`. One definition for
/// both, because an index helps only if it matches the query exactly:
///
/// - `NULL` sorts before every value (ascending `NULLS FIRST`, descending
///   `NULLS LAST`), the order keyset cursors assume. PostgreSQL's default
///   is the opposite, so it is spelled out there; it is SQLite's default,
///   and SQLite refuses `NULLS` in an index.
/// - Text is ordered byte-wise on PostgreSQL (`COLLATE "C"`), as SQLite
///   orders it, so both databases return the same page.
/// - The primary key is never `NULL` and is written without `NULLS`, so
///   its own index (`ASC NULLS LAST` on PostgreSQL) serves a list sorted by
///   `id` alone, the default.
#[derive(Debug, Clone, Copy)]
pub struct SortKeySql<'a> {
    /// The column, quoted, with its table alias if any.
    pub column: &'a str,
    /// A `TEXT` column on PostgreSQL (strings, text and enums).
    pub text: bool,
    pub primary_key: bool,
    pub descending: bool,
}

impl SortKeySql<'_> {
    /// The key in an `ORDER BY`.
    pub fn order_by(&self, dialect: Dialect) -> String {
        self.render(dialect, false)
    }

    /// The key in a `CREATE INDEX`.
    pub fn index_key(&self, dialect: Dialect) -> String {
        self.render(dialect, true)
    }

    fn render(&self, dialect: Dialect, in_index: bool) -> String {
        let collate = if self.text && dialect == Dialect::Postgres {
            " COLLATE \"C\""
        } else {
            ""
        };
        let direction = match (self.primary_key, self.descending) {
            (true, false) => " ASC",
            (true, true) => " DESC",
            (false, false) if in_index && dialect == Dialect::Sqlite => " ASC",
            (false, true) if in_index && dialect == Dialect::Sqlite => " DESC",
            (false, false) => " ASC NULLS FIRST",
            (false, true) => " DESC NULLS LAST",
        };
        format!("{}{collate}{direction}", self.column)
    }
}

/// Whether PostgreSQL stores `ty` as `TEXT`, which the API orders with
/// `COLLATE "C"`.
pub fn is_text(ty: &ColumnType) -> bool {
    matches!(ty.base(), BaseType::Text | BaseType::Enum)
}

/// `CREATE INDEX "name" ON "table" (…);`, each key ordered as the list
/// queries order it. A search index on PostgreSQL is a trigram index
/// instead (after the extension that provides it, which PostgreSQL 13 and
/// later let a database's owner create).
fn create_index_sql(table: &Table, index: &Index, dialect: Dialect) -> String {
    if index.search && dialect == Dialect::Postgres {
        let columns: Vec<String> = index
            .keys
            .iter()
            .map(|k| format!("{} gin_trgm_ops", ident(&k.column)))
            .collect();
        return format!(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm;\nCREATE INDEX {} ON {} USING gin ({});",
            ident(&index.name),
            ident(&table.name),
            columns.join(", ")
        );
    }
    let keys: Vec<String> = index
        .keys
        .iter()
        .map(|k| index_key_sql(table, k, dialect))
        .collect();
    format!(
        "CREATE INDEX {} ON {} ({});",
        ident(&index.name),
        ident(&table.name),
        keys.join(", ")
    )
}

fn index_key_sql(table: &Table, key: &IndexKey, dialect: Dialect) -> String {
    let column = table.column(&key.column);
    SortKeySql {
        column: &ident(&key.column),
        text: column.is_some_and(|c| is_text(&c.ty)),
        primary_key: column.is_some_and(|c| c.primary_key),
        descending: key.descending,
    }
    .index_key(dialect)
}

fn add_fk_sql(table: &str, column: &Column) -> Option<String> {
    let fk = column.references.as_ref()?;
    Some(format!(
        "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {};",
        ident(table),
        ident(&constraint_name(table, &column.name, "fkey")),
        ident(&column.name),
        ident(&fk.table),
        ident(&fk.column),
        on_delete_sql(fk.on_delete)
    ))
}

/// The SQL for a list of changes, one statement per line group.
pub fn render(changes: &[Change], dialect: Dialect) -> String {
    let statements = match dialect {
        Dialect::Postgres => render_postgres(changes),
        Dialect::Sqlite => render_sqlite(changes),
    };
    if statements.is_empty() {
        return String::new();
    }
    let mut sql = statements.join("\n\n");
    sql.push('\n');
    sql
}

/// The PostgreSQL migration (up, down) that gives the datetime columns of
/// `tables` millisecond precision, for a database whose migrations were
/// generated before Kumo declared `TIMESTAMPTZ(3)`: there they are plain
/// `TIMESTAMPTZ` (microseconds), while the recorded schema, which names
/// only the `datetime` type, is the same. Up rounds every stored value to
/// the millisecond, as PostgreSQL rounds whatever it stores in such a
/// column; down gives the columns PostgreSQL's default precision back (the
/// rounded values stay rounded). One `ALTER TABLE` per table, so each
/// table is rewritten once; its indexes are rebuilt with it. SQLite stores
/// datetimes as text in one form and needs no such step: both are empty
/// when no table has a datetime column.
pub fn datetime_milliseconds_sql(tables: &[Table]) -> (String, String) {
    let statements = |ty: &str| -> String {
        let mut sql = String::new();
        for table in tables {
            let columns: Vec<String> = table
                .columns
                .iter()
                .filter(|c| c.ty.base() == BaseType::Datetime)
                .map(|c| format!("  ALTER COLUMN {} TYPE {ty}", ident(&c.name)))
                .collect();
            if !columns.is_empty() {
                if !sql.is_empty() {
                    sql.push('\n');
                }
                sql.push_str(&format!(
                    "ALTER TABLE {}\n{};\n",
                    ident(&table.name),
                    columns.join(",\n")
                ));
            }
        }
        sql
    };
    (statements("TIMESTAMPTZ(3)"), statements("TIMESTAMPTZ"))
}

fn render_postgres(changes: &[Change]) -> Vec<String> {
    let d = Dialect::Postgres;
    let mut out = Vec::new();
    let mut add_fks = Vec::new();
    // Foreign keys that change (target, name after a rename, column type)
    // are dropped first, so type changes and drops below never trip over
    // them, and added back at the end.
    for change in changes {
        if let Change::AlterTable(a) = change {
            for new in &a.new.columns {
                let Some(old) = a.source_of(&new.name) else {
                    continue;
                };
                let old_fk = constraint_name(&a.old.name, &old.name, "fkey");
                let new_fk = constraint_name(&a.new.name, &new.name, "fkey");
                let retyped = sql_type(&old.ty, d) != sql_type(&new.ty, d);
                if old.references == new.references && old_fk == new_fk && !retyped {
                    continue;
                }
                if old.references.is_some() {
                    out.push(format!(
                        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {};",
                        ident(&a.old.name),
                        ident(&old_fk)
                    ));
                }
                add_fks.extend(add_fk_sql(&a.new.name, new));
            }
        }
    }
    for change in changes {
        if let Change::RenameTable { from, to } = change {
            out.push(format!(
                "ALTER TABLE {} RENAME TO {};",
                ident(from),
                ident(to)
            ));
        }
    }
    for change in changes {
        if let Change::CreateTable(t) = change {
            out.push(create_table_sql(t, d, &t.name));
            for u in &t.unique_indexes {
                out.push(create_unique_sql(&t.name, u));
            }
            for i in &t.indexes {
                out.push(create_index_sql(t, i, d));
            }
            add_fks.extend(t.columns.iter().filter_map(|c| add_fk_sql(&t.name, c)));
        }
    }
    for change in changes {
        if let Change::AlterTable(a) = change {
            alter_postgres(a, &mut out, &mut add_fks);
        }
    }
    let dropped: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::DropTable(t) => Some(ident(&t.name)),
            _ => None,
        })
        .collect();
    if !dropped.is_empty() {
        // One statement, so dropped tables may reference each other.
        out.push(format!("DROP TABLE {};", dropped.join(", ")));
    }
    out.extend(add_fks);
    out
}

fn alter_postgres(a: &TableAlter, out: &mut Vec<String>, add_fks: &mut Vec<String>) {
    let d = Dialect::Postgres;
    let t = ident(&a.new.name);
    for (old, new) in &a.renamed_columns {
        out.push(format!(
            "ALTER TABLE {t} RENAME COLUMN {} TO {};",
            ident(old),
            ident(new)
        ));
    }
    // CHECK constraints are named after table and column; after a rename
    // they carry the old name, so rename them to keep the schema canonical.
    for new in &a.new.columns {
        let Some(old) = a.source_of(&new.name) else {
            continue;
        };
        let old_check = constraint_name(&a.old.name, &old.name, "check");
        let new_check = constraint_name(&a.new.name, &new.name, "check");
        let altered = a.altered.iter().any(|(_, n)| n.name == new.name);
        if old_check != new_check && check_expr(old, d).is_some() && !altered {
            out.push(format!(
                "ALTER TABLE {t} RENAME CONSTRAINT {} TO {};",
                ident(&old_check),
                ident(&new_check)
            ));
        }
    }
    let dropped = a.dropped_unique.iter().map(|u| &u.name);
    for name in dropped.chain(a.dropped_indexes.iter().map(|i| &i.name)) {
        out.push(format!("DROP INDEX {};", ident(name)));
    }
    for (old, new) in a.renamed_unique.iter().chain(&a.renamed_indexes) {
        out.push(format!(
            "ALTER INDEX {} RENAME TO {};",
            ident(old),
            ident(new)
        ));
    }
    for c in &a.dropped {
        out.push(format!("ALTER TABLE {t} DROP COLUMN {};", ident(&c.name)));
    }
    for (old, new) in &a.altered {
        let col = ident(&new.name);
        let old_check = constraint_name(&a.old.name, &old.name, "check");
        let new_check = constraint_name(&a.new.name, &new.name, "check");
        // JSON and arrays are both JSONB, but JSON that is not an array must
        // still be converted (wrapped, as on SQLite) before the array CHECK
        // is added, so that change goes through `ALTER … TYPE … USING` too.
        let retyped = sql_type(&old.ty, d) != sql_type(&new.ty, d)
            || (old.ty.base() == BaseType::Json && new.ty.base() == BaseType::Array);
        let check_changed = retyped
            || check_expr(old, d).map(|e| e.replace(&ident(&old.name), &col)) != check_expr(new, d)
            || old_check != new_check;
        if check_changed && check_expr(old, d).is_some() {
            out.push(format!(
                "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {};",
                ident(&old_check)
            ));
        }
        if (retyped || old.default != new.default) && old.default.is_some() {
            out.push(format!("ALTER TABLE {t} ALTER COLUMN {col} DROP DEFAULT;"));
        }
        if retyped {
            out.push(format!(
                "ALTER TABLE {t} ALTER COLUMN {col} TYPE {} USING {};",
                sql_type(&new.ty, d),
                convert_postgres(&col, old.ty.base(), &new.ty)
            ));
        }
        if (retyped || old.default != new.default)
            && let Some(default) = &new.default
        {
            out.push(format!(
                "ALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {};",
                default_sql(default, &new.ty, d)
            ));
        }
        if old.nullable && !new.nullable {
            if let Some(ColumnDefault::Value(v)) = &new.default {
                out.push(format!(
                    "UPDATE {t} SET {col} = {} WHERE {col} IS NULL;",
                    value_sql(v, &new.ty, d)
                ));
            }
            out.push(format!("ALTER TABLE {t} ALTER COLUMN {col} SET NOT NULL;"));
        } else if !old.nullable && new.nullable {
            out.push(format!("ALTER TABLE {t} ALTER COLUMN {col} DROP NOT NULL;"));
        }
        if check_changed && let Some(check) = check_expr(new, d) {
            out.push(format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({check});",
                ident(&new_check)
            ));
        }
    }
    for c in &a.added {
        out.push(format!(
            "ALTER TABLE {t} ADD COLUMN {};",
            column_definition(&a.new.name, c, d, false)
        ));
        add_fks.extend(add_fk_sql(&a.new.name, c));
    }
    for u in &a.added_unique {
        out.push(create_unique_sql(&a.new.name, u));
    }
    for i in &a.added_indexes {
        out.push(create_index_sql(&a.new, i, d));
    }
}

/// How PostgreSQL converts a column's values to a new type (`USING …`).
fn convert_postgres(col: &str, from: BaseType, to: &ColumnType) -> String {
    use BaseType as B;
    let json_scalar = format!("({col} #>> '{{}}')");
    match (from, to.base()) {
        (B::Json | B::Array, B::Text | B::Enum) => json_scalar,
        // JSON that is not an array becomes a one-element array, as SQLite's
        // conversion does (before, PostgreSQL kept it and the array CHECK
        // failed where SQLite succeeded). NULL stays NULL.
        (B::Json, B::Array) => format!(
            "CASE WHEN {col} IS NULL OR jsonb_typeof({col}) = 'array' THEN {col} ELSE jsonb_build_array({col}) END"
        ),
        (B::Json | B::Array, B::Json | B::Array) => col.to_string(),
        (B::Json, _) => format!("{json_scalar}::{}", sql_type(to, Dialect::Postgres)),
        // jsonb_build_array(NULL) is `[null]`: keep NULL as NULL.
        (_, B::Array) => {
            format!("CASE WHEN {col} IS NULL THEN NULL ELSE jsonb_build_array({col}) END")
        }
        (_, B::Json) => format!("to_jsonb({col})"),
        (B::Boolean, B::Integer | B::Float) => {
            format!("{col}::int::{}", sql_type(to, Dialect::Postgres))
        }
        (B::Integer | B::Float, B::Boolean) => format!("({col} <> 0)"),
        // SQLite's round(): halves away from zero, as sign(x) * trunc(|x| +
        // 0.5) in doubles. PostgreSQL's round(double precision) rounds
        // halves to even (2.5 to 2), so each database kept different values.
        (B::Float, B::Integer) => format!("(sign({col}) * trunc(abs({col}) + 0.5))::bigint"),
        (_, B::Text | B::Enum) => format!("{col}::text"),
        (B::Text | B::Enum, _) => format!("{col}::{}", sql_type(to, Dialect::Postgres)),
        _ => format!("{col}::text::{}", sql_type(to, Dialect::Postgres)),
    }
}

/// How SQLite converts a value when a rebuild copies it into a new type.
///
/// SQLite's `CAST` never fails (`CAST('anon' AS INTEGER)` is 0), so values
/// headed for INTEGER, REAL or boolean columns are copied unconverted where
/// the conversion could fail: the STRICT table then converts them only when
/// that is lossless and otherwise fails the migration, as PostgreSQL does,
/// instead of silently storing 0. NULL stays NULL in every conversion.
fn convert_sqlite(col: &str, from: BaseType, to: &ColumnType) -> String {
    use BaseType as B;
    let json_scalar = format!(
        "CASE WHEN json_type({col}) IN ('object', 'array') THEN {col} ELSE json_extract({col}, '$') END"
    );
    // Text PostgreSQL accepts as a boolean; anything else is left as text,
    // which the STRICT INTEGER column (or its CHECK) rejects.
    let text_to_boolean = |value: &str| {
        format!(
            "CASE WHEN {value} IS NULL THEN NULL WHEN lower(trim({value})) IN ('true', 't', 'yes', 'y', 'on', '1') THEN 1 WHEN lower(trim({value})) IN ('false', 'f', 'no', 'n', 'off', '0') THEN 0 ELSE {value} END"
        )
    };
    match (from, to.base()) {
        (a, b) if a == b => col.to_string(),
        (B::Text | B::Enum | B::Uuid, B::Text | B::Enum | B::Uuid) => col.to_string(),
        (B::Json | B::Array, B::Json | B::Array) if to.base() == B::Array => {
            format!(
                "CASE WHEN {col} IS NULL OR json_type({col}) = 'array' THEN {col} ELSE json_array(json({col})) END"
            )
        }
        (B::Json | B::Array, B::Json | B::Array) => col.to_string(),
        (B::Json, B::Text | B::Enum | B::Uuid | B::Date | B::Datetime) => {
            format!("CAST({json_scalar} AS TEXT)")
        }
        (B::Json, B::Integer | B::Float) => json_scalar,
        (B::Json, B::Boolean) => text_to_boolean(&format!("({json_scalar})")),
        (B::Boolean, B::Text | B::Enum) => {
            format!("CASE {col} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END")
        }
        (B::Boolean, B::Json) => format!("CASE {col} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END"),
        (B::Boolean, B::Array) => {
            format!("CASE {col} WHEN 1 THEN '[true]' WHEN 0 THEN '[false]' END")
        }
        // json_array(NULL) is '[null]' and json_quote(NULL) is 'null'.
        (_, B::Array) => format!("CASE WHEN {col} IS NULL THEN NULL ELSE json_array({col}) END"),
        (_, B::Json) => format!("CASE WHEN {col} IS NULL THEN NULL ELSE json_quote({col}) END"),
        // Halves away from zero; PostgreSQL's conversion spells out the same.
        (B::Float, B::Integer) => format!("CAST(round({col}) AS INTEGER)"),
        (B::Integer | B::Float, B::Boolean) => format!("({col} <> 0)"),
        (_, B::Boolean) => text_to_boolean(col),
        (_, B::Integer | B::Float) => col.to_string(),
        (B::Datetime, B::Date) => format!("substr({col}, 1, 10)"),
        (B::Date, B::Datetime) => format!("({col} || 'T00:00:00Z')"),
        _ => format!("CAST({col} AS TEXT)"),
    }
}

fn render_sqlite(changes: &[Change]) -> Vec<String> {
    let d = Dialect::Sqlite;
    let mut out = Vec::new();
    let renamed_tables: Vec<(&str, &str)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::RenameTable { from, to } => Some((from.as_str(), to.as_str())),
            _ => None,
        })
        .collect();
    for change in changes {
        if let Change::RenameTable { from, to } = change {
            out.push(format!(
                "ALTER TABLE {} RENAME TO {};",
                ident(from),
                ident(to)
            ));
        }
    }
    for change in changes {
        if let Change::CreateTable(t) = change {
            out.push(create_table_sql(t, d, &t.name));
            for u in &t.unique_indexes {
                out.push(create_unique_sql(&t.name, u));
            }
            for i in &t.indexes {
                out.push(create_index_sql(t, i, d));
            }
        }
    }
    for change in changes {
        if let Change::AlterTable(a) = change {
            if needs_rebuild(a) {
                rebuild_sqlite(a, &renamed_tables, &mut out);
            } else {
                alter_sqlite(a, &mut out);
            }
        }
    }
    for change in changes {
        if let Change::DropTable(t) = change {
            out.push(format!("DROP TABLE {};", ident(&t.name)));
        }
    }
    out
}

/// SQLite's `ALTER TABLE` can rename, and add a column that is nullable or
/// has a constant default; anything else needs the rebuild procedure.
fn needs_rebuild(a: &TableAlter) -> bool {
    !a.dropped.is_empty()
        || !a.altered.is_empty()
        || a.added.iter().any(|c| {
            (!c.nullable && !matches!(c.default, Some(ColumnDefault::Value(_))))
                || matches!(c.default, Some(ColumnDefault::Now))
        })
}

fn alter_sqlite(a: &TableAlter, out: &mut Vec<String>) {
    let d = Dialect::Sqlite;
    let t = ident(&a.new.name);
    for (old, new) in &a.renamed_columns {
        out.push(format!(
            "ALTER TABLE {t} RENAME COLUMN {} TO {};",
            ident(old),
            ident(new)
        ));
    }
    let dropped = a.dropped_unique.iter().map(|u| &u.name);
    for name in dropped.chain(a.dropped_indexes.iter().map(|i| &i.name)) {
        out.push(format!("DROP INDEX {};", ident(name)));
    }
    // SQLite has no ALTER INDEX: a renamed index is dropped and recreated.
    for (old, new) in &a.renamed_unique {
        out.push(format!("DROP INDEX {};", ident(old)));
        if let Some(index) = a.new.unique_indexes.iter().find(|u| &u.name == new) {
            out.push(create_unique_sql(&a.new.name, index));
        }
    }
    for (old, new) in &a.renamed_indexes {
        out.push(format!("DROP INDEX {};", ident(old)));
        if let Some(index) = a.new.indexes.iter().find(|i| &i.name == new) {
            out.push(create_index_sql(&a.new, index, d));
        }
    }
    for c in &a.added {
        out.push(format!(
            "ALTER TABLE {t} ADD COLUMN {};",
            column_definition(&a.new.name, c, d, true)
        ));
    }
    for u in &a.added_unique {
        out.push(create_unique_sql(&a.new.name, u));
    }
    for i in &a.added_indexes {
        out.push(create_index_sql(&a.new, i, d));
    }
}

/// SQLite's twelve-step procedure, minus the steps the runner does (foreign
/// keys off, transaction, `foreign_key_check`), after the [`Rebuild`] line.
/// `renamed_tables` are the tables this migration renames before it.
fn rebuild_sqlite(a: &TableAlter, renamed_tables: &[(&str, &str)], out: &mut Vec<String>) {
    let d = Dialect::Sqlite;
    let temp = rebuild_temp_name(&a.new.name);
    let rebuild = Rebuild {
        table: a.new.name.clone(),
        columns: a
            .old
            .columns
            .iter()
            .map(|c| {
                // The definition as the live table holds it when the rebuild
                // runs: SQLite rewrote references to the tables renamed
                // earlier in this migration.
                let mut c = c.clone();
                if let Some(fk) = &mut c.references
                    && let Some((_, to)) = renamed_tables.iter().find(|(from, _)| *from == fk.table)
                {
                    fk.table = (*to).to_string();
                }
                let definition = column_definition(&a.old.name, &c, d, true);
                let shape = ColumnShape {
                    sql_type: sql_type(&c.ty, d).to_string(),
                    not_null: !c.nullable || c.primary_key,
                    default: c.default.as_ref().map(|v| default_sql(v, &c.ty, d)),
                    primary_key: c.primary_key,
                    references: c.references.as_ref().map(|fk| {
                        (
                            fk.table.clone(),
                            fk.column.clone(),
                            on_delete_sql(fk.on_delete).to_string(),
                        )
                    }),
                };
                let prints = [definition_fingerprint(&definition), shape.fingerprint()];
                (c.name, prints)
            })
            .collect(),
        indexes: a
            .old
            .unique_indexes
            .iter()
            .map(|u| u.name.clone())
            .chain(a.old.indexes.iter().map(|i| i.name.clone()))
            .collect(),
    };
    out.push(format!(
        "-- {t} is rebuilt (SQLite can't change a column in place); `kumo migrate` carries over the columns and indexes of {t} the next line does not list.\n{}\n{}",
        rebuild.line(),
        create_table_sql(&a.new, d, &temp),
        t = ident(&a.new.name),
    ));
    let mut targets = Vec::new();
    let mut sources = Vec::new();
    for column in &a.new.columns {
        let Some(old) = a.source_of(&column.name) else {
            continue;
        };
        let mut expr = convert_sqlite(&ident(&old.name), old.ty.base(), &column.ty);
        if let (false, Some(ColumnDefault::Value(v))) = (column.nullable, &column.default) {
            expr = format!("COALESCE({expr}, {})", value_sql(v, &column.ty, d));
        }
        targets.push(ident(&column.name));
        sources.push(expr);
    }
    out.push(format!(
        "INSERT INTO {} ({})\n  SELECT {} FROM {};",
        ident(&temp),
        targets.join(", "),
        sources.join(", "),
        ident(&a.new.name)
    ));
    out.push(format!("DROP TABLE {};", ident(&a.new.name)));
    out.push(format!(
        "ALTER TABLE {} RENAME TO {};",
        ident(&temp),
        ident(&a.new.name)
    ));
    for u in &a.new.unique_indexes {
        out.push(create_unique_sql(&a.new.name, u));
    }
    for i in &a.new.indexes {
        out.push(create_index_sql(&a.new, i, d));
    }
}

/// The name of a rebuild's new table until it replaces the old one.
fn rebuild_temp_name(table: &str) -> String {
    format!("{REBUILD_TEMP_PREFIX}{table}")
}

/// How a rebuild's new table's name starts; errors from a rebuild say the
/// table's own name instead (see `Error::MigrationFailed`).
pub(crate) const REBUILD_TEMP_PREFIX: &str = "_kumo_new_";

/// What a SQLite rebuild was generated against, written into the migration
/// as the line `-- kumo:rebuild {json}` right before its statements.
///
/// The statements copy the columns the migration knew about when it was
/// generated. After a git merge, a migration from another branch may have
/// been applied first and added a column (or an index) to the same table, or
/// changed one of its columns. The runner reads this line, compares the live
/// table with it and adjusts the statements: unknown columns and indexes are
/// carried over as they are, a column the rebuild keeps unchanged keeps its
/// live definition, and a column the rebuild itself changes must still be
/// what it expects, or the migration stops. Without the line (migrations
/// from before it existed) the statements run as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebuild {
    pub table: String,
    /// The table's columns before the rebuild, each with two fingerprints
    /// of the column as the live table should hold it: of its definition
    /// ([`definition_fingerprint`]), and of its [`ColumnShape`].
    pub columns: BTreeMap<String, [String; 2]>,
    /// The table's indexes before the rebuild (unique or not; migrations
    /// written before Kumo made other indexes list only unique ones).
    pub indexes: Vec<String>,
}

/// The start of a [`Rebuild`] line.
pub const REBUILD_MARK: &str = "-- kumo:rebuild ";

impl Rebuild {
    fn line(&self) -> String {
        // Serialising strings and vectors of strings can't fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{REBUILD_MARK}{json}")
    }

    /// The rebuild announced in the comments leading `statement`, if any.
    pub fn find(statement: &str) -> Option<Result<Rebuild, String>> {
        statement
            .lines()
            .map(str::trim_start)
            .take_while(|l| l.is_empty() || l.starts_with("--"))
            .find_map(|l| l.strip_prefix(REBUILD_MARK))
            .map(|json| serde_json::from_str(json).map_err(|e| e.to_string()))
    }

    /// The name of the table the rebuild's statements fill first.
    pub fn temp_name(&self) -> String {
        rebuild_temp_name(&self.table)
    }
}

/// What SQLite's `pragma_table_xinfo` and `pragma_foreign_key_list` say
/// about a column: its type, nullability, default, key and reference, but
/// not its CHECK. Two columns of one shape hold the same values in the same
/// form, even where Kumo has since changed how it words a CHECK (as it did
/// for JSON columns), so a rebuild tells another migration's change to a
/// column it converts from a mere rewording by this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnShape {
    pub sql_type: String,
    /// A primary key counts as not null, as SQLite reports it in STRICT
    /// tables.
    pub not_null: bool,
    /// The default as SQL; one pair of outer parentheses does not count
    /// (SQLite reports `(strftime(…))` as `strftime(…)`).
    pub default: Option<String>,
    pub primary_key: bool,
    /// Table, column, `ON DELETE` action.
    pub references: Option<(String, String, String)>,
}

impl ColumnShape {
    pub fn fingerprint(&self) -> String {
        let default = self.default.as_deref().map(|d| {
            let d = d.trim();
            d.strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .filter(|inner| {
                    parenthesized(d).is_some_and(|(i, rest)| i == *inner && rest.is_empty())
                })
                .unwrap_or(d)
        });
        let text = format!(
            "{}|{}|{}|{}|{}",
            self.sql_type.to_ascii_uppercase(),
            self.not_null,
            default.unwrap_or("-"),
            self.primary_key,
            self.references
                .as_ref()
                .map_or("-".to_string(), |(t, c, d)| format!(
                    "{t}.{c} {}",
                    d.to_ascii_uppercase()
                ))
        );
        let hash = fnv1a(text.as_bytes());
        format!("{:08x}", (hash >> 32) ^ (hash & 0xffff_ffff))
    }
}

/// A fingerprint of a column definition that ignores constraint names and
/// spacing: SQLite keeps a constraint's name when it renames a table or
/// column, so a live definition may carry an older name than Kumo would
/// write today for the same column.
/// Eight hex digits: a false match needs a changed definition to collide by
/// chance, one time in four billion.
pub fn definition_fingerprint(definition: &str) -> String {
    let hash = fnv1a(normalize_definition(definition).as_bytes());
    format!("{:08x}", (hash >> 32) ^ (hash & 0xffff_ffff))
}

/// A column definition with `CONSTRAINT <name>` removed and every run of
/// whitespace outside quotes made one space.
fn normalize_definition(definition: &str) -> String {
    let mut out = String::new();
    let mut chars = definition.chars().peekable();
    let mut skip_name = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let mut token = String::from(c);
                while let Some(d) = chars.next() {
                    token.push(d);
                    if d == close {
                        // A doubled quote is an escaped one, not the end.
                        if close != ']' && chars.peek() == Some(&close) {
                            token.push(close);
                            chars.next();
                            continue;
                        }
                        break;
                    }
                }
                if skip_name {
                    skip_name = false;
                } else {
                    out.push_str(&token);
                }
            }
            c if c.is_whitespace() => {
                while chars.peek().is_some_and(|d| d.is_whitespace()) {
                    chars.next();
                }
                if !out.is_empty() && !out.ends_with(' ') && !skip_name {
                    out.push(' ');
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::from(c);
                while let Some(&d) = chars.peek() {
                    if !(d.is_ascii_alphanumeric() || d == '_') {
                        break;
                    }
                    word.push(d);
                    chars.next();
                }
                if skip_name {
                    skip_name = false;
                } else if word.eq_ignore_ascii_case("constraint") {
                    skip_name = true;
                } else {
                    out.push_str(&word);
                }
            }
            c => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// Splits SQL text into statements at top-level semicolons, each with the
/// comments before it and its `;`. Quotes and comments are respected; a
/// statement with a body (`CREATE TRIGGER … BEGIN … END`) is not, and Kumo
/// does not write one.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '-' if chars.peek().is_some_and(|(_, d)| *d == '-') => {
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek().is_some_and(|(_, d)| *d == '*') => {
                chars.next();
                let mut last = ' ';
                for (_, d) in chars.by_ref() {
                    if last == '*' && d == '/' {
                        break;
                    }
                    last = d;
                }
            }
            '\'' | '"' | '`' | '[' => {
                has_code = true;
                let close = if c == '[' { ']' } else { c };
                // A doubled quote closes and reopens: the same either way.
                for (_, d) in chars.by_ref() {
                    if d == close {
                        break;
                    }
                }
            }
            ';' => {
                out.push(sql[start..=i].trim());
                start = i + 1;
                has_code = false;
            }
            c if !c.is_whitespace() => has_code = true,
            _ => {}
        }
    }
    if has_code {
        out.push(sql[start..].trim());
    }
    out
}

/// The statement without the comment lines before it.
pub fn statement_body(statement: &str) -> &str {
    let mut rest = statement.trim_start();
    while rest.starts_with("--") {
        rest = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
    }
    rest
}

/// The text inside the first top-level parentheses of `sql` and what follows
/// them, or `None` if there are none.
pub fn parenthesized(sql: &str) -> Option<(&str, &str)> {
    let mut depth = 0_u32;
    let mut open = None;
    let mut quote: Option<char> = None;
    for (i, c) in sql.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '[' => quote = Some(']'),
            '(' => {
                if depth == 0 {
                    open = Some(i + 1);
                }
                depth += 1;
            }
            ')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some((&sql[open?..i], &sql[i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// `list` split at top-level commas, each item trimmed.
pub fn split_list(list: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0_u32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '[' => quote = Some(']'),
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = list[start..].trim();
    if !last.is_empty() || !items.is_empty() {
        items.push(last);
    }
    items
}

/// The identifier an item of a column list starts with (a column's name),
/// unquoted, and whether it was quoted. A bare `CONSTRAINT`, `PRIMARY`,
/// `UNIQUE`, `CHECK` or `FOREIGN` starts a table constraint instead.
pub fn leading_ident(item: &str) -> Option<(String, bool)> {
    let mut chars = item.chars();
    let first = chars.next()?;
    let close = match first {
        '"' | '`' => first,
        '[' => ']',
        c if c.is_ascii_alphanumeric() || c == '_' => {
            let word: String = item
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Some((word, false));
        }
        _ => return None,
    };
    let mut name = String::new();
    let mut chars = chars.peekable();
    while let Some(c) = chars.next() {
        if c == close {
            if close != ']' && chars.peek() == Some(&close) {
                chars.next();
                name.push(c);
                continue;
            }
            return Some((name, true));
        }
        name.push(c);
    }
    None
}

/// The double-quoted identifiers in an expression, outside string literals:
/// the columns a rebuild's copy expression reads.
pub fn quoted_idents(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => {
                while let Some((_, d)) = chars.next() {
                    if d == '\'' && chars.peek().is_some_and(|(_, e)| *e == '\'') {
                        chars.next();
                    } else if d == '\'' {
                        break;
                    }
                }
            }
            '"' => {
                if let Some((name, _)) = leading_ident(&expr[i..]) {
                    // The quoted token's length in bytes: both quotes, and
                    // each quote inside doubled.
                    let end = i + name.len() + name.matches('"').count() + 2;
                    while chars.peek().is_some_and(|(j, _)| *j < end) {
                        chars.next();
                    }
                    out.push(name);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        let sql = "-- a; comment\nCREATE TABLE \"a;b\" (\"x\" TEXT DEFAULT 'it''s; here');\n\n/* ; */ DROP TABLE \"c\";\n-- trailing comment\n";
        assert_eq!(
            split_statements(sql),
            [
                "-- a; comment\nCREATE TABLE \"a;b\" (\"x\" TEXT DEFAULT 'it''s; here');",
                "/* ; */ DROP TABLE \"c\";",
            ]
        );
        assert_eq!(
            statement_body("-- one\n  -- two\nDROP TABLE \"c\";"),
            "DROP TABLE \"c\";"
        );
    }

    #[test]
    fn fingerprints_ignore_constraint_names_and_spacing_only() {
        let written =
            "\"title\" TEXT CONSTRAINT \"avatars_title_check\" CHECK (length(\"title\") <= 64)";
        // After `RENAME COLUMN caption TO title` and `RENAME TO figures`,
        // SQLite keeps the constraint's old name.
        let live = "\"title\"   TEXT CONSTRAINT \"avatars_caption_check\"\n CHECK (length(\"title\") <= 64)";
        assert_eq!(
            definition_fingerprint(written),
            definition_fingerprint(live)
        );
        let longer =
            "\"title\" TEXT CONSTRAINT \"avatars_title_check\" CHECK (length(\"title\") <= 65)";
        assert_ne!(
            definition_fingerprint(written),
            definition_fingerprint(longer)
        );
        // A literal that spells CONSTRAINT is data, not a constraint name.
        assert_ne!(
            definition_fingerprint("\"k\" TEXT CHECK (\"k\" IN ('CONSTRAINT a', 'b'))"),
            definition_fingerprint("\"k\" TEXT CHECK (\"k\" IN ('CONSTRAINT c', 'b'))")
        );
    }

    #[test]
    fn lists_and_copy_expressions_are_read_with_their_quotes() {
        assert_eq!(
            split_list("\"a\", COALESCE(\"b\", 'x, y'), \"c\"\"d\""),
            ["\"a\"", "COALESCE(\"b\", 'x, y')", "\"c\"\"d\""]
        );
        assert_eq!(
            quoted_idents("CASE WHEN \"a\" IS NULL THEN '\"no\"' ELSE json_array(\"c\"\"d\") END"),
            ["a", "c\"d"]
        );
        assert_eq!(
            leading_ident("\"c\"\"d\" TEXT"),
            Some(("c\"d".to_string(), true))
        );
        assert_eq!(
            leading_ident("UNIQUE (\"a\")"),
            Some(("UNIQUE".to_string(), false))
        );
    }

    #[test]
    fn the_rebuild_line_reads_back() {
        let rebuild = Rebuild {
            table: "avatars".into(),
            columns: [(
                "id".to_string(),
                ["0123abcd".to_string(), "4567ef01".to_string()],
            )]
            .into(),
            indexes: vec!["avatars_name_key".into()],
        };
        let statement = format!("-- a note\n{}\nCREATE TABLE …;", rebuild.line());
        assert_eq!(Rebuild::find(&statement), Some(Ok(rebuild)));
        assert_eq!(Rebuild::find("CREATE TABLE \"t\" (\"a\" TEXT);"), None);
    }
}
