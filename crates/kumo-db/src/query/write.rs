//! Writing records: create (one or a batch), update, destroy and named
//! actions. Each runs in one transaction:
//!
//! 1. the body is checked field by field before the database is touched
//!    (422 naming every bad field);
//! 2. the stored record is read with the read policy (404 when invisible)
//!    and, for update and destroy, checked against the write policy (403);
//! 3. related records named by `belongs_to` keys must exist and be readable
//!    (422; a batch's keys are checked with one query per target resource),
//!    then the statement runs (a batch's inserts in the order of their
//!    unique values, [`insertion_order`]); constraint errors from the
//!    database become 409 or 422;
//! 4. the written record is checked against the write policy (create, and
//!    update's result), and the transaction commits only if it holds;
//! 5. the written record is checked against the read policy in the same
//!    query: one the actor may not read is answered with its id alone.
//!
//! Events are announced only after the commit, with the whole record; a
//! destroy also announces each row its `on_delete` rules deleted or changed
//! ([`super::cascade`]). A transaction PostgreSQL aborts for a deadlock
//! runs again ([`retrying`]).
//!
//! A write made through [`Engine::writes`] with an [`AuditNote`] also adds
//! an `audit_event` row per record it wrote, in its own transaction just
//! before the commit, holding the record before (as read under the write's
//! lock) and after: the change and its audit row commit together or not at
//! all, and a refused write leaves none.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kumo_core::actor::Actor;
use kumo_core::load::normalize_value;
use kumo_core::resource::{Action, ActionKind, AttrType, Policy};
use kumo_core::table::constraint_name;
use serde_json::Value;
use sqlx::error::ErrorKind;
use sqlx::{Postgres, Sqlite, Transaction};

use super::cascade::{KEYS_PER_QUERY, push_keys};
use super::catalog::{Entry, Field, Kind, Origin};
use super::error::{FieldErrors, QueryError, one};
use super::exec::{Exec, Sql, canonical_datetime};
use super::params::View;
use super::policy::{Cond, Operand, Renderer, compile};
use super::read::{canonical_id, id_column, public, select_list, shape};
use super::{Engine, Event, Record};
use crate::sql::ident;

const ROW: &str = "r";

/// The write a request asks for.
#[derive(Debug, Clone, Copy)]
enum Write<'a> {
    Create,
    Update,
    Destroy,
    Action(&'a Action),
}

impl<'a> Write<'a> {
    fn kind(self) -> ActionKind {
        match self {
            Write::Create => ActionKind::Create,
            Write::Update => ActionKind::Update,
            Write::Destroy => ActionKind::Destroy,
            Write::Action(a) => a.kind,
        }
    }

    fn name(self) -> String {
        match self {
            Write::Action(a) => a.name.clone(),
            other => other.kind().as_str().to_owned(),
        }
    }

    /// The policy that decides this write; `None` means admins only. A named
    /// action has only its own `policy`: it never borrows the resource's
    /// policy for its type, since an action may `set` fields the generic
    /// write cannot (`writable = false` ones), so handing it to everyone who
    /// may update would widen what they can do.
    fn policy<'e>(self, entry: &'e Entry) -> Option<&'e Policy>
    where
        'a: 'e,
    {
        let policies = &entry.resource.policies;
        match self {
            Write::Create => policies.create.as_ref(),
            Write::Update => policies.update.as_ref(),
            Write::Destroy => policies.destroy.as_ref(),
            Write::Action(a) => a.policy.as_ref(),
        }
    }
}

/// When a write looks its record up.
#[derive(Debug, Clone, Copy)]
enum Lookup<'c> {
    /// Before the write, under the actor's read condition: a record they
    /// may not read is not found. Locked on PostgreSQL (`FOR UPDATE`).
    Before(&'c Cond),
    /// Before a write whose policy refuses the actor whatever the record
    /// holds (it folded to false): under the read condition too, so the
    /// refusal is still 404 for a record they may not read and 401/403 for
    /// one they may, but unlocked and outside any transaction, since the
    /// write will not happen. A refused caller takes no row lock (nor, on
    /// SQLite, the database's write lock) and so never waits on, or makes
    /// wait, a write that may go ahead.
    Refused(&'c Cond),
    /// After the write, whatever the read condition, which is reported:
    /// the write may have left a record the actor can no longer read.
    After(&'c Cond),
}

/// A record looked up inside a write and what the actor's policies say of
/// it.
struct Checked {
    record: Record,
    /// The write's policy holds for it.
    allowed: bool,
    /// The actor may read it (always, for a lookup before the write).
    readable: bool,
}

/// What a write answers for a record: the record, shaped by the view, when
/// the actor may read it; otherwise only its id. The write is made either
/// way, but a record the actor may not read does not exist for them, so
/// nothing they did not send is told (defaults, `set` values, the stored
/// record's other fields).
fn answer(record: Record, readable: bool, view: &View) -> Record {
    if readable {
        return shape(record, view);
    }
    record.into_iter().filter(|(k, _)| k == "id").collect()
}

/// The audit row a write adds for each record it writes, in the write's
/// own transaction just before its COMMIT (the admin's changes are
/// audited so): a change is never committed without its row, and a row
/// that cannot be written rolls the change back. The row is the
/// `audit_event` resource's: `outcome` is `success`, and the write adds
/// `record_id`, `before` and `after` (public fields only; `null` for the
/// side that has no record) to [`AuditNote::detail`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuditNote {
    /// The row's `kind` (`admin_change`).
    pub kind: String,
    /// Who made the change: the row's `user_id`, except for a change to a
    /// `user` record that still exists afterwards, whose row names that
    /// user, so it is in their trail (`detail` should then say who).
    pub user_id: Option<String>,
    /// Where from: already truncated and bounded as the audit log keeps
    /// them (the auth layer's `truncate_ip`).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The row's `inserted_at`, canonical (the auth layer's clock decides
    /// every audit row's time).
    pub at: String,
    /// What the row's `detail` starts from (`resource`, `change`, `by`).
    pub detail: serde_json::Map<String, Value>,
}

/// The resource API's writes, each adding its [`AuditNote`]'s row to its
/// transaction when it has one; [`Engine::create`] and the others are
/// these without a note.
#[derive(Clone, Copy)]
pub struct Writes<'e> {
    engine: &'e Engine,
    audit: Option<&'e AuditNote>,
}

impl<'e> Writes<'e> {
    /// See [`Engine::create`].
    pub async fn create(
        self,
        actor: &Actor,
        entry: &Entry,
        body: &Value,
        view: &View,
    ) -> Result<Value, QueryError> {
        let actor = &actor.value();
        self.engine
            .create_with(actor, entry, body, view, Write::Create, self.audit)
            .await
    }

    /// See [`Engine::update`].
    pub async fn update(
        self,
        actor: &Actor,
        entry: &Entry,
        id: &str,
        body: &Value,
        view: &View,
    ) -> Result<Record, QueryError> {
        let actor = &actor.value();
        self.engine
            .update_with(actor, entry, id, body, view, Write::Update, self.audit)
            .await
    }

    /// See [`Engine::destroy`].
    pub async fn destroy(
        self,
        actor: &Actor,
        entry: &Entry,
        id: &str,
        view: &View,
    ) -> Result<Record, QueryError> {
        let actor = &actor.value();
        self.engine
            .destroy_with(actor, entry, id, view, Write::Destroy, self.audit)
            .await
    }

    /// See [`Engine::action`].
    pub async fn action(
        self,
        actor: &Actor,
        entry: &Entry,
        action: &Action,
        id: Option<&str>,
        body: &Value,
        view: &View,
    ) -> Result<Value, QueryError> {
        let (engine, audit) = (self.engine, self.audit);
        let actor = &actor.value();
        let write = Write::Action(action);
        match (action.kind, id) {
            (ActionKind::Create, None) => {
                if body.is_array() {
                    return Err(QueryError::invalid(one(
                        "body",
                        "a named action takes one object",
                    )));
                }
                engine
                    .create_with(actor, entry, body, view, write, audit)
                    .await
            }
            (ActionKind::Update, Some(id)) => engine
                .update_with(actor, entry, id, body, view, write, audit)
                .await
                .map(Value::Object),
            (ActionKind::Destroy, Some(id)) => {
                if !is_empty_body(body) {
                    return Err(QueryError::invalid(one(
                        "body",
                        "this action accepts no fields",
                    )));
                }
                engine
                    .destroy_with(actor, entry, id, view, write, audit)
                    .await
                    .map(Value::Object)
            }
            _ => Err(QueryError::NotFound),
        }
    }
}

/// How many of the rows a destroy's `on_delete` rules deleted or changed
/// its audit row names (it counts them all): a user with a million
/// records makes no million-entry row.
pub const AUDITED_CASCADES: usize = 100;

/// A record as its audit row keeps it: its own fields, public ones only
/// (a write's records never hold sensitive fields, and included
/// relationships are the caller's view, not the change).
fn audited(entry: &Entry, record: Option<&Record>) -> Value {
    match record {
        None => Value::Null,
        Some(record) => Value::Object(
            record
                .iter()
                .filter(|(k, _)| entry.field(k).is_some_and(Field::is_public))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
    }
}

enum Tx {
    Pg(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

impl Tx {
    fn exec(&mut self) -> Exec<'_> {
        match self {
            Tx::Pg(tx) => Exec::Pg(tx),
            Tx::Sqlite(tx) => Exec::Sqlite(tx),
        }
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }
}

/// The most records one array body creates. Each row of a batch holds
/// locks until the commit, and PostgreSQL's lock table is shared by every
/// client: 15,000 rows ran it out of memory.
pub const MAX_BATCH: usize = 1000;

/// How many times a write runs when PostgreSQL keeps aborting it for a
/// deadlock or a serialization failure. A retry can deadlock again when the
/// other write is still inserting what the retry inserts first (a batch
/// that reaches a value the retry already took), so there is room for more
/// than one.
pub const WRITE_ATTEMPTS: u32 = 4;

/// Runs a whole write transaction again when PostgreSQL aborted it to break
/// a deadlock (40P01) or a serialization failure (40001). Batches insert
/// in the order of their unique values ([`insertion_order`]), so two that
/// take the same values wait for each other rather than deadlock; writes
/// can still deadlock over several unique keys, or over rows a destroy's
/// cascades lock, and the one aborted, run again after the other
/// committed, meets its conflicts and answers 409 as it would have alone.
/// Each attempt announces its events only after its own commit, so a
/// failed attempt announces nothing. After [`WRITE_ATTEMPTS`] the error
/// stands: 503, nothing changed.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, QueryError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueryError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if e.is_retryable() && tries < WRITE_ATTEMPTS => {
                tokio::time::sleep(backoff(tries)).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// 20–60 ms after the first failure, 40–120 after the second, and so on:
/// long enough for the write that won to commit, and random, so the writers
/// that collided do not collide again in step.
fn backoff(tries: u32) -> std::time::Duration {
    // The random bits of a v4 uuid, from the generator Kumo already uses.
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    let base = 20 * u64::from(tries);
    std::time::Duration::from_millis(base + random % (2 * base + 1))
}

/// Now, as Kumo stores datetimes: UTC, milliseconds.
fn now() -> String {
    canonical_datetime(time::OffsetDateTime::now_utc())
}

fn forbidden(actor: &Value, what: &str) -> QueryError {
    if actor.is_null() {
        QueryError::Unauthenticated
    } else {
        QueryError::Forbidden(format!("you may not {what}"))
    }
}

impl Engine {
    async fn begin(&self) -> Result<Tx, QueryError> {
        Ok(match &self.db {
            crate::db::Database::Postgres(pool) => Tx::Pg(pool.begin().await?),
            // IMMEDIATE takes the write lock up front, so a transaction that
            // reads before it writes never fails to upgrade its lock.
            crate::db::Database::Sqlite(pool) => {
                Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?)
            }
        })
    }

    /// The writes, each adding `audit`'s row to its transaction when given
    /// ([`AuditNote`]).
    pub fn writes<'e>(&'e self, audit: Option<&'e AuditNote>) -> Writes<'e> {
        Writes {
            engine: self,
            audit,
        }
    }

    /// `POST /api/<plural>`: an object creates one record, an array creates
    /// each in one transaction (all or nothing).
    pub async fn create(
        &self,
        actor: &Actor,
        entry: &Entry,
        body: &Value,
        view: &View,
    ) -> Result<Value, QueryError> {
        self.writes(None).create(actor, entry, body, view).await
    }

    async fn create_with(
        &self,
        actor: &Value,
        entry: &Entry,
        body: &Value,
        view: &View,
        write: Write<'_>,
        audit: Option<&AuditNote>,
    ) -> Result<Value, QueryError> {
        retrying(|| self.create_once(actor, entry, body, view, write, audit)).await
    }

    async fn create_once(
        &self,
        actor: &Value,
        entry: &Entry,
        body: &Value,
        view: &View,
        write: Write<'_>,
        audit: Option<&AuditNote>,
    ) -> Result<Value, QueryError> {
        let cond = compile(&self.catalog, entry, write.policy(entry), actor);
        if cond == Cond::Const(false) {
            return Err(forbidden(actor, &format!("create {}", entry.table)));
        }
        let (items, batch) = match body {
            Value::Array(items) if items.len() > MAX_BATCH => {
                return Err(QueryError::invalid(one(
                    "body",
                    format!(
                        "a batch creates at most {MAX_BATCH} records; this one has {}",
                        items.len()
                    ),
                )));
            }
            Value::Array(items) => (items.iter().collect::<Vec<_>>(), true),
            other => (vec![other], false),
        };
        let mut inputs = Vec::new();
        let mut errors = FieldErrors::new();
        for (i, item) in items.iter().enumerate() {
            match self.check_body(entry, item, write) {
                Ok(values) => inputs.push(values),
                Err(fields) => errors.extend(prefix(fields, batch.then_some(i))),
            }
        }
        if !errors.is_empty() {
            return Err(QueryError::invalid(errors));
        }
        let read = self.read_cond(entry, actor);
        let mut tx = self.begin().await?;
        let mut dangling = self.check_references(&mut tx, actor, &inputs).await?;
        let order = insertion_order(entry, &inputs);
        let mut inputs: Vec<Option<_>> = inputs.into_iter().map(Some).collect();
        // By item, in the caller's order, whatever the order of the inserts.
        let mut slots: Vec<Option<Checked>> = inputs.iter().map(|_| None).collect();
        // In a batch, each item runs under its own savepoint: an item the
        // database refuses (a taken unique value, a dangling reference) is
        // noted and the others still tried, so the answer names every
        // failing item. Any failure rolls the whole write back, so a single
        // record needs no savepoint.
        let mut failures = Vec::new();
        for i in order {
            let in_item = |e: QueryError| if batch { e.in_item(i) } else { e };
            let dangling = std::mem::take(&mut dangling[i]);
            if !dangling.is_empty() {
                failures.push((i, in_item(QueryError::invalid(dangling))));
                continue;
            }
            let values = inputs[i].take().unwrap_or_default();
            self.savepoint(&mut tx, batch, "SAVEPOINT kumo_item")
                .await?;
            match self
                .insert(&mut tx, actor, entry, values, &cond, &read)
                .await
            {
                Ok(checked) => {
                    self.savepoint(&mut tx, batch, "RELEASE SAVEPOINT kumo_item")
                        .await?;
                    slots[i] = Some(checked);
                }
                Err(e @ (QueryError::Conflict { .. } | QueryError::Invalid { .. })) => {
                    self.savepoint(&mut tx, batch, "ROLLBACK TO SAVEPOINT kumo_item")
                        .await?;
                    failures.push((i, in_item(e)));
                }
                Err(e) => return Err(in_item(e)),
            }
        }
        if !failures.is_empty() {
            failures.sort_by_key(|(i, _)| *i);
            return Err(QueryError::merge(
                failures.into_iter().map(|(_, e)| e).collect(),
            ));
        }
        let mut written: Vec<Checked> = slots.into_iter().flatten().collect();
        // Includes only for the records the actor may read: the others are
        // answered with their id alone.
        let mut readable: Vec<Record> = written
            .iter_mut()
            .filter(|c| c.readable)
            .map(|c| std::mem::take(&mut c.record))
            .collect();
        self.include(&mut tx.exec(), actor, entry, &mut readable, view)
            .await?;
        let mut readable = readable.into_iter();
        for c in written.iter_mut().filter(|c| c.readable) {
            c.record = readable.next().unwrap_or_default();
        }
        for c in &written {
            self.audit(&mut tx, audit, entry, None, Some(&c.record), &[])
                .await?;
        }
        tx.commit().await?;
        // Events carry the whole record, readable by this actor or not: the
        // realtime layer decides per subscriber.
        for c in &written {
            self.announce_change(entry, write, &c.record);
        }
        let mut answers: Vec<Value> = written
            .into_iter()
            .map(|c| Value::Object(answer(c.record, c.readable, view)))
            .collect();
        Ok(if batch {
            Value::Array(answers)
        } else {
            answers.pop().unwrap_or(Value::Null)
        })
    }

    /// A savepoint statement, run only when `batch` (see `create_with`).
    async fn savepoint(&self, tx: &mut Tx, batch: bool, statement: &str) -> Result<(), QueryError> {
        if batch {
            self.run(tx, statement).await?;
        }
        Ok(())
    }

    /// A statement without parameters or rows, such as a savepoint.
    async fn run(&self, tx: &mut Tx, statement: &str) -> Result<(), QueryError> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push(statement);
        tx.exec().execute(&sql).await?;
        Ok(())
    }

    async fn insert(
        &self,
        tx: &mut Tx,
        actor: &Value,
        entry: &Entry,
        values: Vec<(&Field, Value)>,
        cond: &Cond,
        read: &Cond,
    ) -> Result<Checked, QueryError> {
        let id = uuid::Uuid::now_v7().to_string();
        let stamp = Value::String(now());
        let mut sql = Sql::new(self.db.dialect());
        let mut columns = vec![ident("id"), ident("inserted_at"), ident("updated_at")];
        columns.extend(values.iter().map(|(f, _)| ident(&f.name)));
        sql.push(&format!(
            "INSERT INTO {} ({}) VALUES (",
            ident(&entry.table),
            columns.join(", ")
        ));
        sql.bind_value(Kind::Uuid, &Value::String(id.clone()));
        sql.push(", ");
        sql.bind_value(Kind::Datetime, &stamp);
        sql.push(", ");
        sql.bind_value(Kind::Datetime, &stamp);
        for (field, value) in &values {
            sql.push(", ");
            sql.bind_value(field.kind, value);
        }
        sql.push(")");
        tx.exec()
            .execute(&sql)
            .await
            .map_err(|e| constraint_error(entry, e, false))?;
        let checked = self
            .fetch_checked(&mut tx.exec(), entry, &id, cond, Lookup::After(read))
            .await?
            .ok_or(QueryError::NotFound)?;
        if !checked.allowed {
            return Err(forbidden(
                actor,
                &format!("create this {}", entry.resource.name),
            ));
        }
        Ok(checked)
    }

    /// `PATCH /api/<plural>/<id>`.
    pub async fn update(
        &self,
        actor: &Actor,
        entry: &Entry,
        id: &str,
        body: &Value,
        view: &View,
    ) -> Result<Record, QueryError> {
        self.writes(None).update(actor, entry, id, body, view).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_with(
        &self,
        actor: &Value,
        entry: &Entry,
        id: &str,
        body: &Value,
        view: &View,
        write: Write<'_>,
        audit: Option<&AuditNote>,
    ) -> Result<Record, QueryError> {
        retrying(|| self.update_once(actor, entry, id, body, view, write, audit)).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_once(
        &self,
        actor: &Value,
        entry: &Entry,
        id: &str,
        body: &Value,
        view: &View,
        write: Write<'_>,
        audit: Option<&AuditNote>,
    ) -> Result<Record, QueryError> {
        let values = self
            .check_body(entry, body, write)
            .map_err(QueryError::invalid)?;
        let id = canonical_id(id).ok_or(QueryError::NotFound)?;
        let cond = compile(&self.catalog, entry, write.policy(entry), actor);
        let what = format!("{} this {}", write.name(), entry.resource.name);
        let read = self.read_cond(entry, actor);
        if cond == Cond::Const(false) {
            return Err(self.refusal(entry, &id, &read, actor, &what).await);
        }
        let mut tx = self.begin().await?;
        let stored = self
            .fetch_checked(&mut tx.exec(), entry, &id, &cond, Lookup::Before(&read))
            .await?
            .ok_or(QueryError::NotFound)?;
        if !stored.allowed {
            return Err(forbidden(actor, &what));
        }
        let dangling = self
            .check_references(&mut tx, actor, std::slice::from_ref(&values))
            .await?;
        if let Some(errors) = dangling.into_iter().find(|e| !e.is_empty()) {
            return Err(QueryError::invalid(errors));
        }
        let mut sql = Sql::new(self.db.dialect());
        sql.push(&format!(
            "UPDATE {} SET {} = ",
            ident(&entry.table),
            ident("updated_at")
        ));
        sql.bind_value(Kind::Datetime, &Value::String(now()));
        for (field, value) in &values {
            sql.push(&format!(", {} = ", ident(&field.name)));
            sql.bind_value(field.kind, value);
        }
        let increments = match write {
            Write::Action(action) => increments(entry, action),
            _ => Vec::new(),
        };
        // The database adds, so concurrent increments never lose one.
        for inc in &increments {
            let c = ident(inc.field);
            sql.push(&format!(", {c} = COALESCE({c}, 0) + "));
            sql.bind_value(inc.kind, &inc.amount);
        }
        sql.push(&format!(" WHERE {} = ", ident("id")));
        sql.bind_value(Kind::Uuid, &Value::String(id.clone()));
        for inc in &increments {
            sql.push(" AND ");
            inc.push_fits(&mut sql);
        }
        let changed = tx
            .exec()
            .execute(&sql)
            .await
            .map_err(|e| constraint_error(entry, e, false))?;
        // The row was found and is locked (`FOR UPDATE` on PostgreSQL, the
        // write lock of `BEGIN IMMEDIATE` on SQLite), so only an increment
        // that would overflow leaves it unchanged.
        if changed == 0 && !increments.is_empty() {
            return Err(self.overflowing(&mut tx, entry, &id, &increments).await);
        }
        let Checked {
            record,
            allowed,
            readable,
        } = self
            .fetch_checked(&mut tx.exec(), entry, &id, &cond, Lookup::After(&read))
            .await?
            .ok_or(QueryError::NotFound)?;
        if !allowed {
            return Err(QueryError::Forbidden(format!(
                "the {} would no longer be one you may {}",
                entry.resource.name,
                write.name()
            )));
        }
        let mut rows = vec![record];
        if readable {
            self.include(&mut tx.exec(), actor, entry, &mut rows, view)
                .await?;
        }
        // `stored` was read under the row's lock (`FOR UPDATE`; SQLite's
        // write lock), so it is the record this write changed.
        self.audit(
            &mut tx,
            audit,
            entry,
            Some(&stored.record),
            rows.first(),
            &[],
        )
        .await?;
        tx.commit().await?;
        let record = rows.pop().unwrap_or_default();
        // The whole record, even when this actor may no longer read it.
        self.announce_change(entry, write, &record);
        Ok(answer(record, readable, view))
    }

    /// The error for an update whose increments left the row unchanged:
    /// each that would overflow, by field.
    async fn overflowing(
        &self,
        tx: &mut Tx,
        entry: &Entry,
        id: &str,
        increments: &[Increment<'_>],
    ) -> QueryError {
        let mut errors = FieldErrors::new();
        for inc in increments {
            let mut sql = Sql::new(self.db.dialect());
            sql.push(&format!(
                "SELECT COUNT(*) FROM {} WHERE {} = ",
                ident(&entry.table),
                ident("id")
            ));
            sql.bind_value(Kind::Uuid, &Value::String(id.to_owned()));
            sql.push(" AND NOT ");
            inc.push_fits(&mut sql);
            match tx.exec().fetch_integers(&sql).await {
                Ok(n) if n.first().copied().unwrap_or(0) > 0 => {
                    errors.insert(inc.field.to_owned(), vec![inc.overflow_message()]);
                }
                Ok(_) => {}
                Err(e) => return QueryError::from(e),
            }
        }
        if errors.is_empty() {
            QueryError::NotFound
        } else {
            QueryError::invalid(errors)
        }
    }

    /// `DELETE /api/<plural>/<id>`: answers the record as it was.
    pub async fn destroy(
        &self,
        actor: &Actor,
        entry: &Entry,
        id: &str,
        view: &View,
    ) -> Result<Record, QueryError> {
        self.writes(None).destroy(actor, entry, id, view).await
    }

    async fn destroy_with(
        &self,
        actor: &Value,
        entry: &Entry,
        id: &str,
        view: &View,
        write: Write<'_>,
        audit: Option<&AuditNote>,
    ) -> Result<Record, QueryError> {
        retrying(|| self.destroy_once(actor, entry, id, view, write, audit)).await
    }

    async fn destroy_once(
        &self,
        actor: &Value,
        entry: &Entry,
        id: &str,
        view: &View,
        write: Write<'_>,
        audit: Option<&AuditNote>,
    ) -> Result<Record, QueryError> {
        let id = canonical_id(id).ok_or(QueryError::NotFound)?;
        let cond = compile(&self.catalog, entry, write.policy(entry), actor);
        let what = format!("{} this {}", write.name(), entry.resource.name);
        let read = self.read_cond(entry, actor);
        if cond == Cond::Const(false) {
            return Err(self.refusal(entry, &id, &read, actor, &what).await);
        }
        let mut tx = self.begin().await?;
        // Found under the read condition, so the answer, the record as it
        // was, is one the actor could read.
        let Checked {
            record, allowed, ..
        } = self
            .fetch_checked(&mut tx.exec(), entry, &id, &cond, Lookup::Before(&read))
            .await?
            .ok_or(QueryError::NotFound)?;
        if !allowed {
            return Err(forbidden(actor, &what));
        }
        let mut rows = vec![record];
        self.include(&mut tx.exec(), actor, entry, &mut rows, view)
            .await?;
        let fallout = self.fallout(&mut tx.exec(), entry, &id).await?;
        let mut sql = Sql::new(self.db.dialect());
        sql.push(&format!(
            "DELETE FROM {} WHERE {} = ",
            ident(&entry.table),
            ident("id")
        ));
        sql.bind_value(Kind::Uuid, &Value::String(id));
        tx.exec()
            .execute(&sql)
            .await
            .map_err(|e| constraint_error(entry, e, true))?;
        let consequences = self.settle(&mut tx.exec(), fallout).await?;
        self.audit(&mut tx, audit, entry, rows.first(), None, &consequences)
            .await?;
        tx.commit().await?;
        let record = rows.pop().unwrap_or_default();
        self.announce_change(entry, write, &record);
        // What the database deleted or changed by itself is announced as
        // plain destroys and updates: the named action was this record's.
        for c in consequences {
            self.announce_record(c.entry, c.action.as_str(), c.record);
        }
        Ok(shape(record, view))
    }

    /// `POST /api/<plural>/<name>` (create actions) or
    /// `POST /api/<plural>/<id>/<name>` (update and destroy actions).
    pub async fn action(
        &self,
        actor: &Actor,
        entry: &Entry,
        action: &Action,
        id: Option<&str>,
        body: &Value,
        view: &View,
    ) -> Result<Value, QueryError> {
        self.writes(None)
            .action(actor, entry, action, id, body, view)
            .await
    }

    /// Adds `note`'s audit row for one record a write changed, in the
    /// write's transaction (see [`AuditNote`]); nothing without a note. A
    /// failure is the write's: it rolls back, and one the database may
    /// clear (a deadlock) runs the whole write again, row included. A
    /// destroy's row also names what its `on_delete` rules deleted or
    /// changed (`cascaded`: resource, id and change, the first
    /// [`AUDITED_CASCADES`], and `cascaded_count`, all of them).
    async fn audit(
        &self,
        tx: &mut Tx,
        note: Option<&AuditNote>,
        entry: &Entry,
        before: Option<&Record>,
        after: Option<&Record>,
        cascaded: &[super::cascade::Consequence<'_>],
    ) -> Result<(), QueryError> {
        let Some(note) = note else {
            return Ok(());
        };
        // A caller's bug, not the client's: a 500, and nothing written.
        let log = self.catalog.get("audit_event").ok_or_else(|| {
            QueryError::Database(sqlx::Error::Configuration(
                "an audited write needs the audit log, which comes with an auth strategy".into(),
            ))
        })?;
        let record_id = after
            .or(before)
            .and_then(|r| r.get("id"))
            .cloned()
            .unwrap_or(Value::Null);
        let is_user = entry.resource.system && entry.resource.name == "user";
        let user_id = match (is_user, after) {
            (true, Some(_)) => record_id.clone(),
            _ => note.user_id.clone().map_or(Value::Null, Value::String),
        };
        let mut detail = note.detail.clone();
        detail.insert("record_id".into(), record_id);
        detail.insert("before".into(), audited(entry, before));
        detail.insert("after".into(), audited(entry, after));
        if !cascaded.is_empty() {
            let named: Vec<Value> = cascaded
                .iter()
                .take(AUDITED_CASCADES)
                .map(|c| {
                    serde_json::json!({
                        "resource": c.entry.resource.name,
                        "record_id": c.record.get("id"),
                        "change": c.action.as_str(),
                    })
                })
                .collect();
            detail.insert("cascaded".into(), Value::Array(named));
            detail.insert("cascaded_count".into(), Value::from(cascaded.len()));
        }
        let values = [
            ("kind", Value::String(note.kind.clone())),
            ("outcome", Value::String("success".into())),
            ("ip", note.ip.clone().map_or(Value::Null, Value::String)),
            (
                "user_agent",
                note.user_agent.clone().map_or(Value::Null, Value::String),
            ),
            ("detail", Value::Object(detail)),
            ("user_id", user_id),
        ];
        super::accounts::insert_row(self, &mut tx.exec(), log, &values, &note.at).await?;
        Ok(())
    }

    fn announce_change(&self, entry: &Entry, write: Write<'_>, record: &Record) {
        self.announce_record(entry, &write.name(), record.clone());
    }

    fn announce_record(&self, entry: &Entry, action: &str, mut record: Record) {
        // Included relationships are the caller's view, not the change.
        record.retain(|k, _| entry.field(k).is_some());
        self.announce(Event {
            resource: entry.resource.name.clone(),
            action: action.to_owned(),
            id: record
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            record,
        });
    }

    /// The answer to an update or destroy of `id` whose policy refuses the
    /// actor whatever the record (see [`Lookup::Refused`]): not found when
    /// they may not read it, else refused; or the lookup's own error.
    async fn refusal(
        &self,
        entry: &Entry,
        id: &str,
        read: &Cond,
        actor: &Value,
        what: &str,
    ) -> QueryError {
        let refused = Cond::Const(false);
        match self
            .fetch_checked(
                &mut self.reader(),
                entry,
                id,
                &refused,
                Lookup::Refused(read),
            )
            .await
        {
            Ok(Some(_)) => forbidden(actor, what),
            Ok(None) => QueryError::NotFound,
            Err(e) => e,
        }
    }

    /// The record (all public fields), whether `cond` holds for it and
    /// whether the actor may read it; `None` when there is no such record
    /// (or, looked up before the write, none the actor may read).
    async fn fetch_checked(
        &self,
        exec: &mut Exec<'_>,
        entry: &Entry,
        id: &str,
        cond: &Cond,
        lookup: Lookup<'_>,
    ) -> Result<Option<Checked>, QueryError> {
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT ");
        select_list(&mut sql, entry, ROW);
        let mut renderer = Renderer::new(ROW);
        push_flag(&mut sql, &mut renderer, cond, "kumo_allowed");
        if let Lookup::After(read) = lookup {
            push_flag(&mut sql, &mut renderer, read, "kumo_readable");
        }
        sql.push(&format!(" FROM {} {ROW} WHERE ", ident(&entry.table)));
        let mut filter = vec![Cond::eq(
            id_column(),
            Operand::Value(Value::String(id.to_owned())),
        )];
        if let Lookup::Before(read) | Lookup::Refused(read) = lookup {
            filter.push(read.clone());
        }
        renderer.render(&Cond::and(filter), &mut sql);
        if matches!(exec, Exec::Pg(_)) && matches!(lookup, Lookup::Before(_)) {
            sql.push(" FOR UPDATE");
        }
        let allowed = Field::computed("kumo_allowed", Kind::Integer);
        let readable = Field::computed("kumo_readable", Kind::Integer);
        let mut fields = public(entry);
        fields.push(&allowed);
        if matches!(lookup, Lookup::After(_)) {
            fields.push(&readable);
        }
        let mut rows = exec.fetch_records(&sql, &fields).await?;
        Ok(rows.pop().map(|mut record| {
            let allowed = record.remove("kumo_allowed") == Some(Value::from(1));
            let readable = match lookup {
                Lookup::Before(_) | Lookup::Refused(_) => true,
                Lookup::After(_) => record.remove("kumo_readable") == Some(Value::from(1)),
            };
            Checked {
                record,
                allowed,
                readable,
            }
        }))
    }

    /// For the exhaustive policy test (crates/kumo-db/tests/db/policy_exhaustive.rs):
    /// every row of `entry`, in id order, with whether `actor` may read it
    /// and whether the policy of the `kind` write allows it, each decided by
    /// the flag SQL a write runs on the record it checks.
    #[doc(hidden)]
    pub async fn write_decisions(
        &self,
        actor: &kumo_core::actor::Actor,
        entry: &Entry,
        kind: ActionKind,
    ) -> Result<Vec<(String, bool, bool)>, QueryError> {
        let actor = actor.value();
        let write = match kind {
            ActionKind::Create => Write::Create,
            ActionKind::Update => Write::Update,
            ActionKind::Destroy => Write::Destroy,
        };
        let allowed = compile(&self.catalog, entry, write.policy(entry), &actor);
        let readable = self.read_cond(entry, &actor);
        let mut sql = Sql::new(self.db.dialect());
        sql.push(&format!("SELECT {ROW}.\"id\""));
        let mut renderer = Renderer::new(ROW);
        push_flag(&mut sql, &mut renderer, &readable, "kumo_readable");
        push_flag(&mut sql, &mut renderer, &allowed, "kumo_allowed");
        sql.push(&format!(
            " FROM {} {ROW} ORDER BY {ROW}.\"id\"",
            ident(&entry.table)
        ));
        let id = Field::computed("id", Kind::Uuid);
        let readable = Field::computed("kumo_readable", Kind::Integer);
        let allowed = Field::computed("kumo_allowed", Kind::Integer);
        let rows = self
            .reader()
            .fetch_records(&sql, &[&id, &readable, &allowed])
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                (
                    row["id"].as_str().unwrap_or_default().to_owned(),
                    row["kumo_readable"] == 1,
                    row["kumo_allowed"] == 1,
                )
            })
            .collect())
    }

    /// Every `belongs_to` key given must name a record the actor may read.
    /// The keys of all `items` (a batch's) are checked together, one query
    /// per target resource (and per [`KEYS_PER_QUERY`] keys) under its read
    /// policy: a query per key made a batch of 1,000 pay 1,000 round trips.
    /// Answers each item's errors, in order, empty where every key names a
    /// readable record.
    async fn check_references(
        &self,
        tx: &mut Tx,
        actor: &Value,
        items: &[Vec<(&Field, Value)>],
    ) -> Result<Vec<FieldErrors>, QueryError> {
        let mut wanted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (_, target, id) in items.iter().flat_map(|item| references(item)) {
            wanted.entry(target).or_default().insert(id);
        }
        let mut found: HashSet<(&str, String)> = HashSet::new();
        for (target, ids) in wanted {
            let entry = self.catalog.entry(target);
            let read = self.read_cond(entry, actor);
            let id_field: Vec<&Field> = entry.field("id").into_iter().collect();
            let ids: Vec<Value> = ids
                .into_iter()
                .map(|id| Value::String(id.to_owned()))
                .collect();
            for part in ids.chunks(KEYS_PER_QUERY) {
                let mut sql = Sql::new(self.db.dialect());
                sql.push(&format!(
                    "SELECT {ROW}.{id} AS {id} FROM {} {ROW} WHERE {ROW}.{id} IN (",
                    ident(&entry.table),
                    id = ident("id"),
                ));
                push_keys(&mut sql, part);
                sql.push(") AND ");
                Renderer::new(ROW).render(&read, &mut sql);
                for mut row in tx.exec().fetch_records(&sql, &id_field).await? {
                    if let Some(Value::String(id)) = row.remove("id") {
                        found.insert((target, id));
                    }
                }
            }
        }
        Ok(items
            .iter()
            .map(|item| {
                references(item)
                    .filter(|(_, target, id)| !found.contains(&(*target, (*id).to_owned())))
                    .map(|(field, target, id)| {
                        let target = &self.catalog.entry(target).resource.name;
                        (
                            field.name.clone(),
                            vec![format!("no {target} with id {id}")],
                        )
                    })
                    .collect()
            })
            .collect())
    }

    /// Checks a request body for a write and returns the values to store,
    /// canonical, with an action's `set` values added. Every problem is
    /// reported, keyed by field.
    fn check_body<'e>(
        &self,
        entry: &'e Entry,
        body: &Value,
        write: Write<'_>,
    ) -> Result<Vec<(&'e Field, Value)>, FieldErrors> {
        let empty = serde_json::Map::new();
        let object = match body {
            Value::Object(o) => o,
            Value::Null if matches!(write, Write::Action(_)) => &empty,
            _ => return Err(one("body", "must be a JSON object")),
        };
        let accept = match write {
            Write::Action(a) => Some(&a.accept),
            _ => None,
        };
        let mut errors = FieldErrors::new();
        let mut values = Vec::new();
        for (key, value) in object {
            let Some(field) = entry.field(key) else {
                let hint = match entry.resource.relationship(key) {
                    Some(r) if r.column_name().is_some() => {
                        format!("unknown field; to set the relationship, send `{key}_id`")
                    }
                    _ => "unknown field".to_owned(),
                };
                errors.entry(key.clone()).or_default().push(hint);
                continue;
            };
            let problem = match &field.origin {
                Origin::Managed => Some("is set by Kumo".to_owned()),
                _ if !field.writable => Some("is not writable".to_owned()),
                Origin::ForeignKey { relationship, .. } => accept
                    .filter(|a| !a.contains(relationship) && !a.contains(key))
                    .map(|_| "is not accepted by this action".to_owned()),
                Origin::Attribute(_) => accept
                    .filter(|a| !a.contains(key))
                    .map(|_| "is not accepted by this action".to_owned()),
            };
            if let Some(p) = problem {
                errors.entry(key.clone()).or_default().push(p);
                continue;
            }
            match check_field(field, value) {
                Ok(v) => values.push((field, v)),
                Err(m) => errors.entry(key.clone()).or_default().push(m),
            }
        }
        if let Write::Action(a) = write {
            for (name, value) in &a.set {
                if let Some(field) = entry.field(name) {
                    values.retain(|(f, _)| f.name != *name);
                    values.push((field, value.clone()));
                }
            }
        }
        if write.kind() == ActionKind::Create {
            for field in &entry.fields {
                // A value that was given but is wrong has its own error.
                let given = values.iter().any(|(f, _)| f.name == field.name)
                    || errors.contains_key(&field.name);
                let managed = field.origin == Origin::Managed;
                if field.required && !field.has_default && !given && !managed {
                    errors
                        .entry(field.name.clone())
                        .or_default()
                        .push("is required".to_owned());
                }
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }
}

/// The order in which a batch's items are inserted: by the values of the
/// resource's unique attributes and identities (in declaration order, each
/// value as its canonical JSON text), then by position. Two batches that
/// take the same unique values thus take them in the same order, and the
/// second waits for the first instead of deadlocking with it (each holding
/// a value the other is about to insert); the tie-break by position keeps
/// the first of two equal items the one inserted, so the later one is
/// refused, as in the caller's order. This holds for one unique key; with
/// several, batches ordered by the first can still take the others in
/// opposite orders, and a deadlock between them is retried ([`retrying`]).
fn insertion_order(entry: &Entry, items: &[Vec<(&Field, Value)>]) -> Vec<usize> {
    let resource = &entry.resource;
    let unique_columns: Vec<&str> = resource
        .attributes
        .iter()
        .filter(|a| a.unique)
        .map(|a| a.name.as_str())
        .chain(
            resource
                .identities
                .iter()
                .flat_map(|i| i.columns.iter().map(String::as_str)),
        )
        .collect();
    let mut order: Vec<usize> = (0..items.len()).collect();
    if unique_columns.is_empty() || items.len() < 2 {
        return order;
    }
    // A value left out (the database fills in its default) sorts first.
    let keys: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            unique_columns
                .iter()
                .map(|column| {
                    item.iter()
                        .find(|(f, _)| f.name == *column)
                        .map_or_else(String::new, |(_, v)| v.to_string())
                })
                .collect()
        })
        .collect();
    // Stable: equal keys keep the caller's order.
    order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    order
}

/// The `belongs_to` keys among an item's values: the field, the target
/// resource and the id it names.
fn references<'v>(
    values: &'v [(&'v Field, Value)],
) -> impl Iterator<Item = (&'v Field, &'v str, &'v str)> {
    values
        .iter()
        .filter_map(|(field, value)| match (&field.origin, value) {
            (Origin::ForeignKey { target, .. }, Value::String(id)) => {
                Some((*field, target.as_str(), id.as_str()))
            }
            _ => None,
        })
}

fn is_empty_body(body: &Value) -> bool {
    match body {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn prefix(fields: FieldErrors, index: Option<usize>) -> FieldErrors {
    match index {
        None => fields,
        Some(i) => fields
            .into_iter()
            .map(|(k, v)| (format!("[{i}].{k}"), v))
            .collect(),
    }
}

/// A value for `field` in canonical form, or what is wrong with it.
pub(super) fn check_field(field: &Field, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return if field.required {
            Err("is required".to_owned())
        } else {
            Ok(Value::Null)
        };
    }
    match &field.origin {
        Origin::Attribute(ty) => normalize_value(ty, value),
        _ => normalize_value(&AttrType::Uuid, value),
    }
}

/// An action's `increment` of one number field.
struct Increment<'a> {
    field: &'a str,
    kind: Kind,
    amount: Value,
    /// The stored values the amount can be added to and still fit the
    /// field's type (a 64-bit integer or a finite 64-bit float): those at
    /// most this bound for a positive amount, at least it for a negative
    /// one. `None` for zero.
    bound: Option<Value>,
    up: bool,
}

/// The increments of `action` on `entry`'s fields.
fn increments<'a>(entry: &Entry, action: &'a Action) -> Vec<Increment<'a>> {
    action
        .increment
        .iter()
        .map(|(name, amount)| {
            let kind = entry.field(name).map_or(Kind::Integer, |f| f.kind);
            let (bound, up) = match (kind, amount.as_i64(), amount.as_f64()) {
                (Kind::Integer, Some(a), _) if a > 0 => (Some(Value::from(i64::MAX - a)), true),
                (Kind::Integer, Some(a), _) if a < 0 => (Some(Value::from(i64::MIN - a)), false),
                (Kind::Float, _, Some(a)) if a > 0.0 => {
                    (Some(Value::from(largest_addend(a))), true)
                }
                (Kind::Float, _, Some(a)) if a < 0.0 => {
                    (Some(Value::from(-largest_addend(-a))), false)
                }
                _ => (None, true),
            };
            Increment {
                field: name,
                kind,
                amount: amount.clone(),
                bound,
                up,
            }
        })
        .collect()
}

impl Increment<'_> {
    /// A condition that holds when the stored value plus the amount fits
    /// the field's type. It compares the stored value with a bound rather
    /// than computing the sum, which PostgreSQL refuses when it overflows.
    fn push_fits(&self, sql: &mut Sql) {
        let Some(bound) = &self.bound else {
            sql.push("TRUE");
            return;
        };
        let c = ident(self.field);
        sql.push(&format!(
            "(COALESCE({c}, 0) {} ",
            if self.up { "<=" } else { ">=" }
        ));
        sql.bind_value(self.kind, bound);
        sql.push(")");
    }

    fn overflow_message(&self) -> String {
        format!(
            "would overflow: adding {} to the stored value goes {} the {} a 64-bit {} holds",
            self.amount,
            if self.up { "above" } else { "below" },
            if self.up { "largest" } else { "smallest" },
            if self.kind == Kind::Float {
                "float"
            } else {
                "integer"
            }
        )
    }
}

/// The largest float `b` for which `b + amount` (a positive amount) is
/// still finite. Adding rounds, so the bound is not simply the largest
/// float minus the amount; addition is monotone, and positive floats are
/// ordered as their bits, so it is found by bisecting the bits.
fn largest_addend(amount: f64) -> f64 {
    if (f64::MAX + amount).is_finite() {
        return f64::MAX;
    }
    // `lo + amount` is finite, `hi + amount` is not.
    let (mut lo, mut hi) = (0f64.to_bits(), f64::MAX.to_bits());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if (f64::from_bits(mid) + amount).is_finite() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    f64::from_bits(lo)
}

/// Turns a constraint the database enforced into the field it concerns.
/// A policy decided in the SELECT list, as 1 or 0 (BIGINT on both
/// databases, so each flag decodes as an i64): `CASE WHEN` takes a NULL
/// condition as not met, as `WHERE` does.
fn push_flag(sql: &mut Sql, renderer: &mut Renderer, cond: &Cond, name: &str) {
    sql.push(", CAST(CASE WHEN ");
    renderer.render(cond, sql);
    sql.push(&format!(" THEN 1 ELSE 0 END AS BIGINT) AS {name}"));
}

pub(super) fn constraint_error(entry: &Entry, e: sqlx::Error, deleting: bool) -> QueryError {
    let Some(db) = e.as_database_error() else {
        return QueryError::from(e);
    };
    let message = db.message().to_owned();
    let constraint = db.constraint().map(str::to_owned);
    let kind = match db.kind() {
        // SQLite reports an `ON DELETE RESTRICT` refusal as a trigger
        // constraint (SQLITE_CONSTRAINT_TRIGGER), which sqlx does not
        // classify; its message is the foreign-key one.
        ErrorKind::Other if message == "FOREIGN KEY constraint failed" => {
            ErrorKind::ForeignKeyViolation
        }
        kind => kind,
    };
    // SQLite names the columns in its message ("UNIQUE constraint failed:
    // avatars.uploader_id, avatars.name"); PostgreSQL names the constraint.
    let columns_in_message = || -> Vec<String> {
        message
            .split_once(": ")
            .map(|(_, cols)| {
                cols.split(", ")
                    .filter_map(|c| c.rsplit_once('.').map(|(_, col)| col.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let field_of = |suffix: &str| -> Option<String> {
        let name = constraint
            .clone()
            .or_else(|| message.split_once(": ").map(|(_, n)| n.to_owned()))?;
        entry
            .fields
            .iter()
            .find(|f| constraint_name(&entry.table, &f.name, suffix) == name)
            .map(|f| f.name.clone())
    };
    match kind {
        ErrorKind::UniqueViolation => {
            let mut columns = match &constraint {
                Some(name) => unique_columns(entry, name),
                None => columns_in_message(),
            };
            if columns.is_empty() {
                columns.push("id".into());
            }
            let together = columns.join(", ");
            let message = format!(
                "another {} has this {}",
                entry.resource.name,
                columns.join(" and ")
            );
            let fields = columns
                .iter()
                .map(|c| {
                    let m = if columns.len() == 1 {
                        "is already taken".to_owned()
                    } else {
                        format!("is already taken (together with {together})")
                    };
                    (c.clone(), vec![m])
                })
                .collect();
            QueryError::Conflict { message, fields }
        }
        ErrorKind::ForeignKeyViolation if deleting => QueryError::Conflict {
            message: format!(
                "other records still refer to this {}; delete or change them first",
                entry.resource.name
            ),
            fields: FieldErrors::new(),
        },
        ErrorKind::ForeignKeyViolation => {
            let field = field_of("fkey").unwrap_or_else(|| "body".to_owned());
            QueryError::invalid(one(&field, "refers to a record that does not exist"))
        }
        ErrorKind::CheckViolation => {
            let field = field_of("check").unwrap_or_else(|| "body".to_owned());
            QueryError::invalid(one(&field, "breaks the resource's constraints"))
        }
        ErrorKind::NotNullViolation => {
            let field = columns_in_message()
                .pop()
                .unwrap_or_else(|| "body".to_owned());
            QueryError::invalid(one(&field, "is required"))
        }
        _ => QueryError::from(e),
    }
}

/// The columns of a unique index or identity, by constraint name.
fn unique_columns(entry: &Entry, constraint: &str) -> Vec<String> {
    for field in &entry.fields {
        if constraint_name(&entry.table, &field.name, "key") == constraint {
            return vec![field.name.clone()];
        }
    }
    for identity in &entry.resource.identities {
        if constraint_name(&entry.table, &identity.name, "key") == constraint {
            return identity.columns.clone();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::largest_addend;

    #[test]
    fn the_largest_addend_is_exactly_the_last_float_that_stays_finite() {
        for amount in [1e308, 1.7e308, f64::MAX, 1e300, 2f64.powi(970), 3e292] {
            let b = largest_addend(amount);
            assert!((b + amount).is_finite(), "{amount}: {b}");
            assert!((b.next_up() + amount).is_infinite(), "{amount}: {b}");
        }
        // Too small to move the largest float: every float takes it.
        assert_eq!(largest_addend(1.0), f64::MAX);
    }
}
