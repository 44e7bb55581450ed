//! Kumo's built-in account resources (`user`, `session`, `auth_token`,
//! `api_key`, `audit_event`) as the auth layer reads and writes them.
//!
//! The auth layer is the authority over these rows, so nothing here applies
//! a policy, and sensitive fields (password and token hashes) are read like
//! any other. Statements are built with the resource API's SQL builder and
//! decoded by the same code, so values have one form on both databases:
//! ids and datetimes are canonical strings. Every operation runs in an
//! [`AccountsTx`], so a sign-in that consumes a token, creates an account
//! and opens a session commits all of it or none.
//!
//! Column names come from the auth layer's own code, never from a request;
//! a name the schema does not have is a bug and panics in the tests.

use serde_json::Value;
use sqlx::{Postgres, Sqlite, Transaction};

use super::catalog::{Entry, Field};
use super::error::QueryError;
use super::exec::{Exec, Sql};
use super::{Engine, Record};
use crate::db::Database;
use crate::sql::ident;

/// The built-in resources the auth layer needs (sign-in through another
/// provider will write `external_identity`).
pub const RESOURCES: [&str; 6] = [
    "user",
    "session",
    "auth_token",
    "api_key",
    "external_identity",
    "audit_event",
];

/// How a condition tests a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Eq(Value),
    /// Not equal (a NULL column is neither equal nor unequal: it fails).
    Ne(Value),
    IsNull,
    NotNull,
    /// Strictly less than.
    Below(Value),
    /// Strictly greater than.
    Above(Value),
}

/// What an update sets a column to.
#[derive(Debug, Clone, PartialEq)]
pub enum Set {
    To(Value),
    /// Adds to an integer column.
    Add(i64),
}

/// Whether the first sort column runs up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

impl Engine {
    /// The account resources, when an auth strategy has added them to the
    /// schema.
    pub fn accounts(&self) -> Option<Accounts<'_>> {
        RESOURCES
            .iter()
            .all(|name| self.catalog.get(name).is_some())
            .then_some(Accounts { engine: self })
    }
}

#[derive(Clone, Copy)]
pub struct Accounts<'e> {
    engine: &'e Engine,
}

impl<'e> Accounts<'e> {
    /// Opens a transaction (on SQLite, with the write lock taken up front,
    /// so reading before writing never fails to upgrade it).
    pub async fn begin(&self) -> Result<AccountsTx<'e>, QueryError> {
        let tx = match &self.engine.db {
            Database::Postgres(pool) => Txn::Pg(pool.begin().await?),
            Database::Sqlite(pool) => Txn::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        };
        Ok(AccountsTx {
            engine: self.engine,
            tx,
        })
    }

    /// Like [`AccountsTx::find`], outside a transaction: for reads on
    /// every request (the signed-in user, an API key), which must not take
    /// SQLite's write lock as [`Accounts::begin`] does.
    pub async fn read(
        &self,
        resource: &str,
        tests: &[(&str, Test)],
        order: Option<(&str, Order)>,
        limit: Option<u32>,
    ) -> Result<Vec<Record>, QueryError> {
        let entry = account_entry(self.engine, resource);
        let sql = select(self.engine, entry, tests, order, limit);
        let fields: Vec<&Field> = entry.fields.iter().collect();
        Ok(self.engine.reader().fetch_records(&sql, &fields).await?)
    }

    /// `value` in the canonical form `resource.field` stores, checked
    /// against the field's declared type and rules (length, pattern, enum
    /// values), or what is wrong with it: the same check the resource API
    /// makes, for values the auth layer takes from a request.
    pub fn check(&self, resource: &str, field: &str, value: &Value) -> Result<Value, String> {
        super::write::check_field(
            self::field(account_entry(self.engine, resource), field),
            value,
        )
    }

    /// How many rows of `resource` pass `tests` (for the admin's
    /// dashboard: live sessions and the like).
    pub async fn count(&self, resource: &str, tests: &[(&str, Test)]) -> Result<i64, QueryError> {
        let entry = account_entry(self.engine, resource);
        let mut sql = Sql::new(self.engine.db.dialect());
        sql.push("SELECT COUNT(*) FROM ").push(&ident(&entry.table));
        push_where(&mut sql, entry, tests);
        let counts = self.engine.reader().fetch_integers(&sql).await?;
        Ok(counts.first().copied().unwrap_or(0))
    }

    /// How many rows of `resource` were made on each UTC day from `since`
    /// on (`YYYY-MM-DD`, oldest first; days with none are left out): the
    /// admin's sign-ups per day.
    pub async fn made_per_day(
        &self,
        resource: &str,
        since: &str,
    ) -> Result<Vec<(String, i64)>, QueryError> {
        let entry = account_entry(self.engine, resource);
        let inserted = field(entry, "inserted_at");
        let dialect = self.engine.db.dialect();
        let day = match dialect {
            crate::sql::Dialect::Postgres => {
                "to_char(\"inserted_at\" AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            }
            // Stored as canonical text, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
            crate::sql::Dialect::Sqlite => "substr(\"inserted_at\", 1, 10)",
        };
        let mut sql = Sql::new(dialect);
        sql.push("SELECT ")
            .push(day)
            .push(" AS \"day\", COUNT(*) AS \"made\" FROM ")
            .push(&ident(&entry.table))
            .push(" WHERE \"inserted_at\" >= ");
        sql.bind_value(inserted.kind, &Value::String(since.to_owned()));
        sql.push(" GROUP BY 1 ORDER BY 1");
        let day_field = Field::computed("day", super::catalog::Kind::Text);
        let made_field = Field::computed("made", super::catalog::Kind::Integer);
        let rows = self
            .engine
            .reader()
            .fetch_records(&sql, &[&day_field, &made_field])
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                (
                    row["day"].as_str().unwrap_or_default().to_owned(),
                    row["made"].as_i64().unwrap_or(0),
                )
            })
            .collect())
    }

    /// The first row [`Accounts::read`] would give.
    pub async fn read_one(
        &self,
        resource: &str,
        tests: &[(&str, Test)],
    ) -> Result<Option<Record>, QueryError> {
        Ok(self.read(resource, tests, None, Some(1)).await?.pop())
    }
}

enum Txn {
    Pg(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// One transaction over the account resources. Dropped without
/// [`AccountsTx::commit`], it rolls back.
pub struct AccountsTx<'e> {
    engine: &'e Engine,
    tx: Txn,
}

impl<'e> AccountsTx<'e> {
    pub async fn commit(self) -> Result<(), QueryError> {
        match self.tx {
            Txn::Pg(tx) => tx.commit().await?,
            Txn::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    fn exec(&mut self) -> Exec<'_> {
        match &mut self.tx {
            Txn::Pg(tx) => Exec::Pg(&mut *tx),
            Txn::Sqlite(tx) => Exec::Sqlite(&mut *tx),
        }
    }

    /// Borrowed from the engine, not the transaction, so it can be held
    /// while a statement runs.
    fn entry(&self, resource: &str) -> &'e Entry {
        account_entry(self.engine, resource)
    }

    /// The rows of `resource` that pass every test, all fields included,
    /// ordered by `order` (then by id), at most `limit`.
    pub async fn find(
        &mut self,
        resource: &str,
        tests: &[(&str, Test)],
        order: Option<(&str, Order)>,
        limit: Option<u32>,
    ) -> Result<Vec<Record>, QueryError> {
        let entry = self.entry(resource);
        let sql = select(self.engine, entry, tests, order, limit);
        let fields: Vec<&Field> = entry.fields.iter().collect();
        Ok(self.exec().fetch_records(&sql, &fields).await?)
    }

    /// The first row [`AccountsTx::find`] would give.
    pub async fn find_one(
        &mut self,
        resource: &str,
        tests: &[(&str, Test)],
    ) -> Result<Option<Record>, QueryError> {
        Ok(self.find(resource, tests, None, Some(1)).await?.pop())
    }

    /// A new row with `now` as its `inserted_at` and `updated_at`, and a
    /// fresh id (UUID v7) unless `values` name one (a session's id is part
    /// of its refresh token, so it is chosen first); columns left out take
    /// their defaults. A taken unique value is a [`QueryError::Conflict`]
    /// naming the field.
    pub async fn insert(
        &mut self,
        resource: &str,
        values: &[(&str, Value)],
        now: &str,
    ) -> Result<Record, QueryError> {
        let entry = self.entry(resource);
        let engine = self.engine;
        insert_row(engine, &mut self.exec(), entry, values, now)
            .await
            .map_err(|e| super::write::constraint_error(entry, e, false))
    }

    /// Changes every row that passes the tests, and returns them as they
    /// are after the change. `updated_at` becomes `now`. One statement, so
    /// two transactions racing on one row cannot both see it unchanged:
    /// a test on the old value (`used_at IS NULL`) lets exactly one win.
    pub async fn update(
        &mut self,
        resource: &str,
        sets: &[(&str, Set)],
        tests: &[(&str, Test)],
        now: &str,
    ) -> Result<Vec<Record>, QueryError> {
        let entry = self.entry(resource);
        let mut sql = Sql::new(self.engine.db.dialect());
        sql.push("UPDATE ").push(&ident(&entry.table)).push(" SET ");
        let updated_at = field(entry, "updated_at");
        sql.push(&ident(&updated_at.name)).push(" = ");
        sql.bind_value(updated_at.kind, &Value::String(now.to_owned()));
        for (name, set) in sets {
            let f = field(entry, name);
            let column = ident(&f.name);
            sql.push(", ").push(&column).push(" = ");
            match set {
                Set::To(value) => {
                    sql.bind_value(f.kind, value);
                }
                Set::Add(n) => {
                    sql.push(&column).push(" + ");
                    sql.bind_value(f.kind, &Value::from(*n));
                }
            }
        }
        push_where(&mut sql, entry, tests);
        sql.push(" RETURNING ");
        select_all(&mut sql, entry);
        let fields: Vec<&Field> = entry.fields.iter().collect();
        self.exec()
            .fetch_records(&sql, &fields)
            .await
            .map_err(|e| super::write::constraint_error(entry, e, false))
    }

    /// Deletes every row that passes the tests; how many there were.
    pub async fn delete(
        &mut self,
        resource: &str,
        tests: &[(&str, Test)],
    ) -> Result<u64, QueryError> {
        let entry = self.entry(resource);
        let mut sql = Sql::new(self.engine.db.dialect());
        sql.push("DELETE FROM ").push(&ident(&entry.table));
        push_where(&mut sql, entry, tests);
        self.exec()
            .execute(&sql)
            .await
            .map_err(|e| super::write::constraint_error(entry, e, true))
    }
}

/// Inserts a row of `entry` with `now` as its `inserted_at` and
/// `updated_at` and a fresh id unless `values` name one, and returns it
/// whole: [`AccountsTx::insert`], and the audit row a write adds in its own
/// transaction ([`super::write::AuditNote`]).
pub(super) async fn insert_row(
    engine: &Engine,
    exec: &mut Exec<'_>,
    entry: &Entry,
    values: &[(&str, Value)],
    now: &str,
) -> Result<Record, sqlx::Error> {
    let mut columns: Vec<(&Field, Value)> = vec![
        (field(entry, "inserted_at"), Value::String(now.to_owned())),
        (field(entry, "updated_at"), Value::String(now.to_owned())),
    ];
    if !values.iter().any(|(name, _)| *name == "id") {
        let id = uuid::Uuid::now_v7().to_string();
        columns.push((field(entry, "id"), Value::String(id)));
    }
    for (name, value) in values {
        columns.push((field(entry, name), value.clone()));
    }
    let mut sql = Sql::new(engine.db.dialect());
    sql.push("INSERT INTO ")
        .push(&ident(&entry.table))
        .push(" (");
    for (i, (f, _)) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push(&ident(&f.name));
    }
    sql.push(") VALUES (");
    for (i, (f, v)) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_value(f.kind, v);
    }
    sql.push(") RETURNING ");
    select_all(&mut sql, entry);
    let fields: Vec<&Field> = entry.fields.iter().collect();
    let mut rows = exec.fetch_records(&sql, &fields).await?;
    Ok(rows.pop().unwrap_or_default())
}

fn account_entry<'e>(engine: &'e Engine, resource: &str) -> &'e Entry {
    assert!(
        RESOURCES.contains(&resource),
        "`{resource}` is not an account resource"
    );
    engine.catalog.entry(resource)
}

/// `SELECT` every column of the rows that pass the tests, in `order` and
/// then by id, at most `limit`.
fn select(
    engine: &Engine,
    entry: &Entry,
    tests: &[(&str, Test)],
    order: Option<(&str, Order)>,
    limit: Option<u32>,
) -> Sql {
    let mut sql = Sql::new(engine.db.dialect());
    sql.push("SELECT ");
    select_all(&mut sql, entry);
    sql.push(" FROM ").push(&ident(&entry.table));
    push_where(&mut sql, entry, tests);
    sql.push(" ORDER BY ");
    if let Some((column, direction)) = order {
        sql.push(&ident(&field(entry, column).name))
            .push(match direction {
                Order::Ascending => " ASC, ",
                Order::Descending => " DESC, ",
            });
    }
    sql.push("\"id\"");
    if let Some(limit) = limit {
        sql.push(&format!(" LIMIT {limit}"));
    }
    sql
}

fn field<'a>(entry: &'a Entry, name: &str) -> &'a Field {
    entry.field(name).unwrap_or_else(|| {
        panic!(
            "the auth layer named `{name}`, which `{}` does not have",
            entry.resource.name
        )
    })
}

fn select_all(sql: &mut Sql, entry: &Entry) {
    for (i, f) in entry.fields.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push(&ident(&f.name));
    }
}

fn push_where(sql: &mut Sql, entry: &Entry, tests: &[(&str, Test)]) {
    for (i, (name, test)) in tests.iter().enumerate() {
        let f = field(entry, name);
        sql.push(if i == 0 { " WHERE " } else { " AND " });
        sql.push(&ident(&f.name));
        match test {
            Test::Eq(v) => {
                sql.push(" = ");
                sql.bind_value(f.kind, v);
            }
            Test::Ne(v) => {
                sql.push(" <> ");
                sql.bind_value(f.kind, v);
            }
            Test::IsNull => {
                sql.push(" IS NULL");
            }
            Test::NotNull => {
                sql.push(" IS NOT NULL");
            }
            Test::Below(v) => {
                sql.push(" < ");
                sql.bind_value(f.kind, v);
            }
            Test::Above(v) => {
                sql.push(" > ");
                sql.bind_value(f.kind, v);
            }
        }
    }
}
