//! Reading the live schema back from the database, in a normalised form that
//! can be compared with what the resources declare.
//!
//! This is a handful of catalog queries (`information_schema`/`pg_catalog`
//! on PostgreSQL, `pragma_*` table functions on SQLite). A general
//! introspection crate would still need mapping onto this exact shape.

use std::collections::{BTreeMap, BTreeSet};

use kumo_core::resource::OnDelete;
use kumo_core::table::Table;
use sqlx::Row;

use crate::db::Database;
use crate::sql::{check_expr, default_sql, sql_type, Dialect};
use crate::Error;

/// A table as the database reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTable {
    pub columns: BTreeMap<String, LiveColumn>,
    /// Index name → columns in order.
    pub unique_indexes: BTreeMap<String, Vec<String>>,
    /// (column, referenced table, referenced column, on delete)
    pub foreign_keys: BTreeSet<(String, String, String, String)>,
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    pub sql_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    /// Whether some CHECK constraint mentions the column.
    pub checked: bool,
}

pub type LiveSchema = BTreeMap<String, LiveTable>;

/// What the database should report for `tables`, in the same form.
pub fn expected(tables: &[Table], dialect: Dialect) -> LiveSchema {
    tables
        .iter()
        .map(|t| {
            let columns = t
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        LiveColumn {
                            sql_type: normalise_type(sql_type(&c.ty, dialect)),
                            nullable: c.nullable && !c.primary_key,
                            default: c
                                .default
                                .as_ref()
                                .map(|d| normalise_default(&default_sql(d, &c.ty, dialect))),
                            checked: check_expr(c, dialect).is_some(),
                        },
                    )
                })
                .collect();
            let foreign_keys = t
                .columns
                .iter()
                .filter_map(|c| {
                    c.references.as_ref().map(|fk| {
                        (
                            c.name.clone(),
                            fk.table.clone(),
                            fk.column.clone(),
                            on_delete_name(fk.on_delete).to_string(),
                        )
                    })
                })
                .collect();
            (
                t.name.clone(),
                LiveTable {
                    columns,
                    unique_indexes: t
                        .unique_indexes
                        .iter()
                        .map(|u| (u.name.clone(), u.columns.clone()))
                        .collect(),
                    foreign_keys,
                    primary_key: t
                        .columns
                        .iter()
                        .filter(|c| c.primary_key)
                        .map(|c| c.name.clone())
                        .collect(),
                },
            )
        })
        .collect()
}

fn on_delete_name(on_delete: OnDelete) -> &'static str {
    match on_delete {
        OnDelete::Restrict => "RESTRICT",
        OnDelete::Cascade => "CASCADE",
        OnDelete::Nullify => "SET NULL",
    }
}

fn normalise_type(t: &str) -> String {
    match t.to_ascii_lowercase().as_str() {
        "timestamp with time zone" | "timestamptz" => "timestamptz".into(),
        "double precision" => "double precision".into(),
        other => other.to_string(),
    }
}

/// Removes the casts and quoting PostgreSQL adds when it stores a default,
/// so `'humanoid'::text` and `'humanoid'` compare equal.
fn normalise_default(d: &str) -> String {
    let mut s = d.trim().to_string();
    loop {
        let trimmed = s.trim();
        if let Some(inner) = trimmed.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            if !inner.contains('(') || inner.starts_with("strftime") {
                s = inner.to_string();
                continue;
            }
        }
        match trimmed.rfind("::") {
            Some(i) if trimmed[i + 2..].chars().all(|c| c.is_ascii_alphabetic() || c == ' ') => {
                s = trimmed[..i].to_string();
            }
            _ => break,
        }
    }
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        if inner.parse::<f64>().is_ok() {
            return inner.to_string();
        }
    }
    if s.eq_ignore_ascii_case("now()") {
        return "CURRENT_TIMESTAMP".into();
    }
    s.to_string()
}

/// Reads every table except Kumo's own bookkeeping tables.
pub async fn read(db: &Database) -> Result<LiveSchema, Error> {
    match db {
        Database::Postgres(pool) => {
            let mut schema = LiveSchema::new();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                   AND table_name NOT LIKE 'kumo\\_%'",
            )
            .fetch_all(pool)
            .await?;
            for name in tables {
                let mut table = LiveTable {
                    columns: BTreeMap::new(),
                    unique_indexes: BTreeMap::new(),
                    foreign_keys: BTreeSet::new(),
                    primary_key: Vec::new(),
                };
                let rows = sqlx::query(
                    "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text
                     FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                let checks: Vec<String> = sqlx::query_scalar(
                    "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
                     JOIN pg_class t ON t.oid = c.conrelid
                     WHERE c.contype = 'c' AND t.relname = $1
                       AND t.relnamespace = current_schema()::regnamespace",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for r in rows {
                    let column: String = r.get(0);
                    let checked = checks.iter().any(|c| mentions(c, &column));
                    table.columns.insert(
                        column,
                        LiveColumn {
                            sql_type: normalise_type(&r.get::<String, _>(1)),
                            nullable: r.get::<String, _>(2) == "YES",
                            default: r.get::<Option<String>, _>(3).map(|d| normalise_default(&d)),
                            checked,
                        },
                    );
                }
                let indexes = sqlx::query(
                    "SELECT i.relname::text, x.indisprimary,
                            array_agg(a.attname::text ORDER BY k.n)
                     FROM pg_index x
                     JOIN pg_class i ON i.oid = x.indexrelid
                     JOIN pg_class t ON t.oid = x.indrelid
                     CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
                     WHERE t.relname = $1 AND x.indisunique
                       AND t.relnamespace = current_schema()::regnamespace
                     GROUP BY i.relname, x.indisprimary",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for r in indexes {
                    let columns: Vec<String> = r.get(2);
                    if r.get::<bool, _>(1) {
                        table.primary_key = columns;
                    } else {
                        table.unique_indexes.insert(r.get(0), columns);
                    }
                }
                let fks = sqlx::query(
                    "SELECT a.attname::text, rt.relname::text, ra.attname::text, c.confdeltype::text
                     FROM pg_constraint c
                     JOIN pg_class t ON t.oid = c.conrelid
                     JOIN pg_class rt ON rt.oid = c.confrelid
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1]
                     JOIN pg_attribute ra ON ra.attrelid = rt.oid AND ra.attnum = c.confkey[1]
                     WHERE c.contype = 'f' AND t.relname = $1
                       AND t.relnamespace = current_schema()::regnamespace",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for r in fks {
                    let rule = match r.get::<String, _>(3).as_str() {
                        "c" => "CASCADE",
                        "n" => "SET NULL",
                        "r" => "RESTRICT",
                        "d" => "SET DEFAULT",
                        _ => "NO ACTION",
                    };
                    table
                        .foreign_keys
                        .insert((r.get(0), r.get(1), r.get(2), rule.to_string()));
                }
                schema.insert(name, table);
            }
            Ok(schema)
        }
        Database::Sqlite(pool) => {
            let mut schema = LiveSchema::new();
            let tables = sqlx::query(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'table'
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'kumo\\_%' ESCAPE '\\'",
            )
            .fetch_all(pool)
            .await?;
            for t in tables {
                let name: String = t.get(0);
                let create_sql: String = t.get(1);
                let mut table = LiveTable {
                    columns: BTreeMap::new(),
                    unique_indexes: BTreeMap::new(),
                    foreign_keys: BTreeSet::new(),
                    primary_key: Vec::new(),
                };
                let columns =
                    sqlx::query("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)")
                        .bind(&name)
                        .fetch_all(pool)
                        .await?;
                for c in columns {
                    let column: String = c.get(0);
                    if c.get::<i64, _>(4) > 0 {
                        table.primary_key.push(column.clone());
                    }
                    let checked = column_has_check(&create_sql, &column);
                    table.columns.insert(
                        column,
                        LiveColumn {
                            sql_type: normalise_type(&c.get::<String, _>(1)),
                            nullable: c.get::<i64, _>(2) == 0 && c.get::<i64, _>(4) == 0,
                            default: c.get::<Option<String>, _>(3).map(|d| normalise_default(&d)),
                            checked,
                        },
                    );
                }
                let indexes = sqlx::query(
                    "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND origin = 'c'",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for i in indexes {
                    let index: String = i.get(0);
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                            .bind(&index)
                            .fetch_all(pool)
                            .await?;
                    table.unique_indexes.insert(index, columns);
                }
                let fks = sqlx::query(
                    "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?1)",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for f in fks {
                    table
                        .foreign_keys
                        .insert((f.get(0), f.get(1), f.get(2), f.get(3)));
                }
                schema.insert(name, table);
            }
            Ok(schema)
        }
    }
}

fn mentions(check: &str, column: &str) -> bool {
    check.contains(&format!("\"{column}\"")) || {
        // PostgreSQL prints unquoted names where it can.
        check
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| word == column)
    }
}

/// SQLite keeps the CREATE TABLE text; Kumo writes each column's CHECK on the
/// column's own line, `"name" TYPE … CHECK (…)`.
fn column_has_check(create_sql: &str, column: &str) -> bool {
    let quoted = format!("\"{column}\" ");
    create_sql
        .lines()
        .map(str::trim)
        .any(|line| line.starts_with(&quoted) && line.contains(" CHECK ("))
}

#[cfg(test)]
mod tests {
    use super::normalise_default;

    #[test]
    fn postgres_defaults_normalise_to_the_literal_kumo_wrote() {
        assert_eq!(normalise_default("'humanoid'::text"), "'humanoid'");
        assert_eq!(normalise_default("'-1'::bigint"), "-1");
        assert_eq!(normalise_default("'[]'::jsonb"), "'[]'");
        assert_eq!(normalise_default("now()"), "CURRENT_TIMESTAMP");
        assert_eq!(normalise_default("false"), "false");
    }
}
