//! Loading seed rows. Each row's id is derived from its seed key, and rows
//! are inserted with `ON CONFLICT (id) DO NOTHING`, so running `kumo setup`
//! twice changes nothing, and a row edited by hand is never overwritten.

use kumo_core::load::SeedRow;
use kumo_core::resource::{Schema, Value};
use kumo_core::table::{self, BaseType, ColumnType, Table};
use sqlx::AssertSqlSafe;

use crate::Error;
use crate::db::Database;
use crate::sql::{Dialect, ident, sql_type};

/// Inserts the rows that are not there yet; returns how many were inserted.
pub async fn load(db: &Database, schema: &Schema, rows: &[SeedRow]) -> Result<u64, Error> {
    let tables = table::lower(schema);
    let mut inserted = 0;
    match db {
        Database::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            for row in rows {
                let (sql, values) = insert_sql(&tables, schema, row, Dialect::Postgres)?;
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (ty, v) in values {
                    query = query.bind(text_of(&ty, &v));
                }
                inserted += query
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| seed_error(row, e))?
                    .rows_affected();
            }
            tx.commit().await?;
        }
        Database::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            for row in rows {
                let (sql, values) = insert_sql(&tables, schema, row, Dialect::Sqlite)?;
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (ty, v) in values {
                    query = match (ty.base(), &v) {
                        (_, Value::Null) => query.bind(None::<String>),
                        (BaseType::Integer, Value::Number(n)) => query.bind(n.as_i64()),
                        (BaseType::Float, Value::Number(n)) => query.bind(n.as_f64()),
                        (BaseType::Boolean, Value::Bool(b)) => query.bind(i64::from(*b)),
                        _ => query.bind(text_of(&ty, &v)),
                    };
                }
                inserted += query
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| seed_error(row, e))?
                    .rows_affected();
            }
            tx.commit().await?;
        }
    }
    Ok(inserted)
}

fn seed_error(row: &SeedRow, e: sqlx::Error) -> Error {
    Error::Invalid(format!(
        "seed `{}` of `{}` could not be inserted: {e}; nothing was loaded",
        row.key, row.resource
    ))
}

/// The value as text, as PostgreSQL's casts and SQLite's TEXT columns want it.
fn text_of(ty: &ColumnType, v: &Value) -> Option<String> {
    match (ty.base(), v) {
        (_, Value::Null) => None,
        (BaseType::Json | BaseType::Array, v) => Some(v.to_string()),
        (_, Value::String(s)) => Some(s.clone()),
        (_, other) => Some(other.to_string()),
    }
}

fn insert_sql(
    tables: &[Table],
    schema: &Schema,
    row: &SeedRow,
    dialect: Dialect,
) -> Result<(String, Vec<(ColumnType, Value)>), Error> {
    let plural = schema
        .resource(&row.resource)
        .map(|r| r.plural.clone())
        .ok_or_else(|| Error::Invalid(format!("seed for unknown resource `{}`", row.resource)))?;
    let table = tables
        .iter()
        .find(|t| t.name == plural)
        .ok_or_else(|| Error::Invalid(format!("no table for resource `{}`", row.resource)))?;
    let mut columns = vec![ident("id")];
    let mut values = vec![(ColumnType::Uuid, Value::String(row.id.to_string()))];
    for (name, value) in &row.values {
        let column = table.column(name).ok_or_else(|| {
            Error::Invalid(format!(
                "seed field `{name}` is not a column of `{}`",
                table.name
            ))
        })?;
        columns.push(ident(name));
        values.push((column.ty.clone(), value.clone()));
    }
    let placeholders: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, (ty, _))| match dialect {
            Dialect::Postgres => format!("CAST(${} AS {})", i + 1, sql_type(ty, dialect)),
            Dialect::Sqlite => format!("?{}", i + 1),
        })
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (\"id\") DO NOTHING",
        ident(&table.name),
        columns.join(", "),
        placeholders.join(", ")
    );
    Ok((sql, values))
}
