//! Reading records: list (filters, sort, keyset and offset pages, count),
//! get, and includes. The actor's read policy is part of every `WHERE`,
//! including those of included records and relationship filters, so a row
//! the actor may not read is never returned, counted or matched.

use kumo_core::actor::Actor;
use kumo_core::policy::BinOp;
use kumo_core::resource::{Policy, RelationshipKind};
use serde_json::Value;
use sqlx::Row as _;

use super::catalog::{Entry, Field, Kind};
use super::error::QueryError;
use super::exec::{Exec, Sql, pg_query, push_select_expr, sqlite_query};
use super::params::{Filter, FilterOp, FilterValue, ListRequest, Position, SortKey, View};
use super::policy::{Cond, FieldRef, Operand, Renderer, Start, compile};
use super::{Engine, Record};
use crate::db::Database;
use crate::sql::{SortKeySql, ident};

/// Most records an include of a `has_many` or `many_to_many` returns per
/// parent, so one request cannot pull a whole table.
pub const INCLUDE_LIMIT: usize = 25;

/// Most ids one include query looks up. A batch create can include for as
/// many records as a 1 MiB body holds; each id is a bound parameter, and a
/// statement takes at most 32,766 of them on SQLite, so longer lists are
/// read in parts.
const IDS_PER_QUERY: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub data: Vec<Record>,
    pub next: Option<String>,
    pub prev: Option<String>,
    pub total: Option<i64>,
}

/// A list's statement, from [`Engine::list_query`].
struct ListQuery {
    sql: Sql,
    /// The read policy and the filters, without the cursor's position: what
    /// `page[count]` counts.
    filter: Cond,
    /// Reading towards the start (`page[before]`): the order is reversed.
    backwards: bool,
    /// What the page's cursors are bound to.
    scope: String,
}

/// The row alias in every generated query.
const ROW: &str = "r";

/// The order of the records an include of a `has_many` or `many_to_many`
/// returns per parent, and so which [`INCLUDE_LIMIT`] of them it keeps:
/// oldest first, ties by id. Ids need not follow time (seeded ids are v5,
/// imported ones anything), so by id alone the 25 would be an arbitrary
/// 25. Both databases store `inserted_at` so that its order is time order
/// (`TIMESTAMPTZ`; SQLite's canonical text).
fn oldest_first() -> String {
    format!("{ROW}.\"inserted_at\", {ROW}.\"id\"")
}

/// The row's `id`.
pub(crate) fn id_column() -> Operand {
    Operand::Field(FieldRef {
        start: Start::Column("id".to_owned()),
        hops: Vec::new(),
        kind: Kind::Uuid,
    })
}

fn column_of(entry: &Entry, name: &str) -> Operand {
    Operand::Field(FieldRef {
        start: Start::Column(name.to_owned()),
        hops: Vec::new(),
        kind: entry.field(name).map_or(Kind::Text, |f| f.kind),
    })
}

/// `SELECT <public fields> FROM <table> r` (one column per public field,
/// in order, each in its canonical form).
pub(crate) fn select_list(sql: &mut Sql, entry: &Entry, alias: &str) {
    for (i, field) in entry.public_fields().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        push_select_expr(sql, alias, field);
    }
}

pub(crate) fn public(entry: &Entry) -> Vec<&Field> {
    entry.public_fields().collect()
}

impl Engine {
    /// The read condition of `entry` for this actor.
    /// Whether `policy` (`None`: admins only, as for an action without
    /// one) can ever let `actor` through: `false` when it folds to false
    /// from the actor alone (a player facing `actor.role == 'admin'`), so
    /// a page need not offer what would only be refused.
    pub fn may_ever(&self, actor: &Actor, entry: &Entry, policy: Option<&Policy>) -> bool {
        compile(&self.catalog, entry, policy, &actor.value()) != Cond::Const(false)
    }

    pub(crate) fn read_cond(&self, entry: &Entry, actor: &Value) -> Cond {
        compile(
            &self.catalog,
            entry,
            entry.resource.policies.read.as_ref(),
            actor,
        )
    }

    pub async fn list(
        &self,
        actor: &Actor,
        entry: &Entry,
        req: &ListRequest,
    ) -> Result<ListPage, QueryError> {
        let actor = &actor.value();
        let ListQuery {
            sql,
            filter,
            backwards,
            scope,
        } = self.list_query(actor, entry, req)?;
        let fields = public(entry);
        // The page's rows and its total are independent reads: run side
        // by side, a page with a total costs the slower of the two, not
        // their sum.
        let mut reader = self.reader();
        let (rows, total) = tokio::join!(
            reader.fetch_records(&sql, &fields),
            self.total(entry, &filter, req),
        );
        let mut rows = rows?;
        let total = total?;
        let more = rows.len() > req.size;
        rows.truncate(req.size);
        if backwards {
            rows.reverse();
        }
        let cursor = |row: &Record| {
            let values: Vec<Value> = req
                .sort
                .iter()
                .map(|k| row.get(&k.field).cloned().unwrap_or(Value::Null))
                .collect();
            self.cursors.encode(&scope, &values)
        };
        let (has_next, has_prev) = match &req.position {
            Position::First => (more, false),
            Position::After(_) => (more, true),
            Position::Before(_) => (true, more),
            Position::Offset(n) => (more, *n > 0),
        };
        let next = rows.last().filter(|_| has_next).map(cursor);
        let prev = rows.first().filter(|_| has_prev).map(cursor);

        self.include(&mut self.reader(), actor, entry, &mut rows, &req.view)
            .await?;
        let data = rows.into_iter().map(|r| shape(r, &req.view)).collect();
        Ok(ListPage {
            data,
            next,
            prev,
            total,
        })
    }

    /// The list's total when `req` asks for one: every row `filter`
    /// selects, or only up to `count_limit` and within `count_time_limit`.
    async fn total(
        &self,
        entry: &Entry,
        filter: &Cond,
        req: &ListRequest,
    ) -> Result<Option<i64>, QueryError> {
        if !req.count {
            return Ok(None);
        }
        let mut sql = Sql::new(self.db.dialect());
        match req.count_limit {
            // Counting stops one past the limit: a big table's total
            // costs no more than reading that many rows.
            Some(_) => sql.push(&format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {} {ROW} WHERE ",
                ident(&entry.table)
            )),
            None => sql.push(&format!(
                "SELECT COUNT(*) FROM {} {ROW} WHERE ",
                ident(&entry.table)
            )),
        };
        Renderer::new(ROW).render(filter, &mut sql);
        if let Some(limit) = req.count_limit {
            sql.push(&format!(
                " LIMIT {}) AS kumo_counted",
                limit.saturating_add(1)
            ));
        }
        match req.count_time_limit {
            Some(limit) => self.count_within(&sql, limit).await,
            None => Ok(self.reader().fetch_integers(&sql).await?.first().copied()),
        }
    }

    /// A count that gives up after `limit`: `None` then. PostgreSQL
    /// cancels the statement itself (`SET LOCAL statement_timeout`, in a
    /// transaction of its own), so a count given up on does not go on
    /// using the database; SQLite is interrupted by a progress handler
    /// that checks the clock every thousand steps of its VM.
    async fn count_within(
        &self,
        sql: &Sql,
        limit: std::time::Duration,
    ) -> Result<Option<i64>, QueryError> {
        let counted = match &self.db {
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let millis = limit.as_millis().max(1);
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET LOCAL statement_timeout = {millis}"
                )))
                .execute(&mut *tx)
                .await?;
                let counted = Exec::Pg(&mut tx).fetch_integers(sql).await;
                if counted.is_ok() {
                    tx.commit().await?;
                }
                counted
            }
            Database::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let deadline = std::time::Instant::now() + limit;
                conn.lock_handle()
                    .await?
                    .set_progress_handler(1000, move || std::time::Instant::now() < deadline);
                let counted = Exec::Sqlite(&mut conn).fetch_integers(sql).await;
                conn.lock_handle().await?.remove_progress_handler();
                counted
            }
        };
        match counted {
            Ok(rows) => Ok(rows.first().copied()),
            Err(e) if gave_up(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The statement that reads a list's page, and what reading the page
    /// needs to know about it.
    fn list_query(
        &self,
        actor: &Value,
        entry: &Entry,
        req: &ListRequest,
    ) -> Result<ListQuery, QueryError> {
        let filters: Vec<&Filter> = req.filters.iter().collect();
        let mut conds = vec![
            self.read_cond(entry, actor),
            self.filters_cond(actor, entry, &filters, 0),
        ];
        if let Some(term) = req.search.as_deref().filter(|t| !t.is_empty()) {
            // PostgreSQL cannot hold the NUL character in text, nor take
            // it in a parameter; no stored text has one.
            if term.contains('\0') {
                return Err(QueryError::bad_request(
                    "the search text contains the NUL character (U+0000), which no text holds",
                ));
            }
            conds.push(search_cond(entry, term));
        }
        let scope = scope(entry, &req.sort);
        let (keys, backwards) = match &req.position {
            Position::After(c) | Position::Before(c) => {
                let values = self
                    .cursors
                    .decode(&scope, c)
                    .filter(|v| v.len() == req.sort.len())
                    .ok_or_else(|| {
                        QueryError::bad_field(
                            if matches!(req.position, Position::After(_)) {
                                "page[after]"
                            } else {
                                "page[before]"
                            },
                            "not a cursor from this list (cursors are bound to the resource and sort)",
                        )
                    })?;
                (Some(values), matches!(req.position, Position::Before(_)))
            }
            _ => (None, false),
        };
        let filter = Cond::and(conds);
        let mut where_ = filter.clone();
        if let Some(values) = &keys {
            where_ = Cond::and(vec![where_, keyset(entry, &req.sort, values, backwards)]);
        }

        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT ");
        select_list(&mut sql, entry, ROW);
        sql.push(" FROM ").push(&ident(&entry.table)).push(" ");
        sql.push(ROW).push(" WHERE ");
        Renderer::new(ROW).render(&where_, &mut sql);
        sql.push(" ORDER BY ");
        order_by(&mut sql, entry, &req.sort, backwards);
        sql.push(&format!(" LIMIT {}", req.size + 1));
        if let Position::Offset(n) = req.position {
            sql.push(&format!(" OFFSET {n}"));
        }
        Ok(ListQuery {
            sql,
            filter,
            backwards,
            scope,
        })
    }

    /// How the database would read the page [`Engine::list`] reads for
    /// `req`: the lines of PostgreSQL's `EXPLAIN`, or SQLite's `EXPLAIN
    /// QUERY PLAN` as `id parent detail`. For checking that a sorted or
    /// filtered list reads an index rather than sorting the table.
    pub async fn explain_list(
        &self,
        actor: &Actor,
        entry: &Entry,
        req: &ListRequest,
    ) -> Result<Vec<String>, QueryError> {
        let mut sql = self.list_query(&actor.value(), entry, req)?.sql;
        Ok(match &self.db {
            Database::Postgres(pool) => {
                sql.text = format!("EXPLAIN {}", sql.text);
                pg_query(&sql)
                    .persistent(false)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<String, _>(0))
                    .collect::<Result<_, _>>()?
            }
            Database::Sqlite(pool) => {
                sql.text = format!("EXPLAIN QUERY PLAN {}", sql.text);
                let mut conn = pool.acquire().await?;
                // Planning reads no table, so a connection that last read
                // the database before an index was created or dropped would
                // plan with its old schema; reading the schema reloads it.
                sqlx::raw_sql("SELECT count(*) FROM sqlite_schema")
                    .execute(&mut *conn)
                    .await?;
                // Not cached either: a cached plan is not planned again.
                sqlite_query(&sql)
                    .persistent(false)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| {
                        let (id, parent, detail): (i64, i64, String) =
                            (r.try_get(0)?, r.try_get(1)?, r.try_get(3)?);
                        Ok(format!("{id} {parent} {detail}"))
                    })
                    .collect::<Result<_, sqlx::Error>>()?
            }
        })
    }

    /// One record the actor may read, or `NotFound`.
    pub async fn get(
        &self,
        actor: &Actor,
        entry: &Entry,
        id: &str,
        view: &View,
    ) -> Result<Record, QueryError> {
        let actor = &actor.value();
        let mut record = self
            .fetch_readable(&mut self.reader(), actor, entry, id)
            .await?
            .ok_or(QueryError::NotFound)?;
        let mut rows = vec![std::mem::take(&mut record)];
        self.include(&mut self.reader(), actor, entry, &mut rows, view)
            .await?;
        Ok(shape(rows.pop().unwrap_or_default(), view))
    }

    /// The record with this id if it exists and the actor may read it.
    pub(crate) async fn fetch_readable(
        &self,
        exec: &mut Exec<'_>,
        actor: &Value,
        entry: &Entry,
        id: &str,
    ) -> Result<Option<Record>, QueryError> {
        let Some(id) = canonical_id(id) else {
            return Ok(None);
        };
        let cond = Cond::and(vec![
            Cond::eq(column_of(entry, "id"), Operand::Value(Value::String(id))),
            self.read_cond(entry, actor),
        ]);
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT ");
        select_list(&mut sql, entry, ROW);
        sql.push(&format!(" FROM {} {ROW} WHERE ", ident(&entry.table)));
        Renderer::new(ROW).render(&cond, &mut sql);
        Ok(exec.fetch_records(&sql, &public(entry)).await?.pop())
    }

    /// The filters as one condition on the row. Those through a
    /// relationship are an `EXISTS` over related rows the actor may read, so
    /// hidden records never match; all the filters through one relationship
    /// share its `EXISTS`, nested as their paths are (`avatar.name` and
    /// `avatar.uploader.username` share `avatar`'s, and the second has
    /// `uploader`'s inside it).
    ///
    /// Sharing changes no answer: a `belongs_to` key picks at most one row
    /// (`"id"` is the primary key), and for at most one row, "some row has
    /// P and A, and some row has P and B" is "some row has P, A and B". It
    /// is what keeps a query cheap: on PostgreSQL each `EXISTS` is a join
    /// the planner orders, and 100 filters through one relationship, one
    /// `EXISTS` each, took minutes to plan and run on a small table.
    /// `depth` is how many relationships of each filter's path `entry` is
    /// already at.
    fn filters_cond(
        &self,
        actor: &Value,
        entry: &Entry,
        filters: &[&Filter],
        depth: usize,
    ) -> Cond {
        let mut conds = Vec::new();
        // By the next relationship, in the order the filters name them.
        let mut groups: Vec<(&str, Vec<&Filter>)> = Vec::new();
        for f in filters {
            match f.through.get(depth) {
                None => conds.push(field_cond(entry, f)),
                Some(rel) => match groups.iter_mut().find(|(name, _)| name == rel) {
                    Some((_, group)) => group.push(f),
                    None => groups.push((rel, vec![f])),
                },
            }
        }
        for (rel, group) in groups {
            let related = match entry.resource.relationship(rel).map(|r| &r.kind) {
                Some(RelationshipKind::BelongsTo { target, .. }) => self.catalog.entry(target),
                _ => unreachable!("filters are checked when parsed"),
            };
            conds.push(Cond::Related {
                column: format!("{rel}_id"),
                table: related.table.clone(),
                cond: Box::new(Cond::and(vec![
                    self.read_cond(related, actor),
                    self.filters_cond(actor, related, &group, depth + 1),
                ])),
            });
        }
        Cond::and(conds)
    }

    /// Attaches included relationships to each row.
    pub(crate) async fn include(
        &self,
        exec: &mut Exec<'_>,
        actor: &Value,
        entry: &Entry,
        rows: &mut [Record],
        view: &View,
    ) -> Result<(), QueryError> {
        if rows.is_empty() {
            return Ok(());
        }
        for name in &view.include {
            let Some(rel) = entry.resource.relationship(name) else {
                continue;
            };
            match &rel.kind {
                RelationshipKind::BelongsTo { target, .. } => {
                    let target = self.catalog.entry(target);
                    let key = format!("{name}_id");
                    let ids = distinct(rows.iter().filter_map(|r| r.get(&key)));
                    let found = self
                        .fetch_related(exec, actor, target, "id", &ids, false)
                        .await?;
                    for row in rows.iter_mut() {
                        let hit = row
                            .get(&key)
                            .and_then(|id| found.iter().find(|f| f.get("id") == Some(id)))
                            .map_or(Value::Null, |r| Value::Object(r.clone()));
                        row.insert(name.clone(), hit);
                    }
                }
                RelationshipKind::HasMany { target, via } => {
                    let target = self.catalog.entry(target);
                    let key = format!("{via}_id");
                    let ids = distinct(rows.iter().filter_map(|r| r.get("id")));
                    let found = self
                        .fetch_related(exec, actor, target, &key, &ids, true)
                        .await?;
                    for row in rows.iter_mut() {
                        let mine: Vec<Value> = found
                            .iter()
                            .filter(|f| f.get(&key) == row.get("id"))
                            .map(|r| Value::Object(r.clone()))
                            .collect();
                        row.insert(name.clone(), Value::Array(mine));
                    }
                }
                RelationshipKind::ManyToMany { target, through } => {
                    let target = self.catalog.entry(target);
                    let through = self.catalog.entry(through);
                    let ids = distinct(rows.iter().filter_map(|r| r.get("id")));
                    let found = self
                        .fetch_through(exec, actor, entry, target, through, &ids)
                        .await?;
                    for row in rows.iter_mut() {
                        let mine: Vec<Value> = found
                            .iter()
                            .filter(|(parent, _)| Some(parent) == row.get("id"))
                            .map(|(_, r)| Value::Object(r.clone()))
                            .collect();
                        row.insert(name.clone(), Value::Array(mine));
                    }
                }
            }
        }
        Ok(())
    }

    /// Readable rows of `target` whose `key` is one of `ids`; with `capped`,
    /// at most [`INCLUDE_LIMIT`] per key, oldest first.
    async fn fetch_related(
        &self,
        exec: &mut Exec<'_>,
        actor: &Value,
        target: &Entry,
        key: &str,
        ids: &[Value],
        capped: bool,
    ) -> Result<Vec<Record>, QueryError> {
        let mut found = Vec::new();
        // Every row of one key comes from the same part, so the cap and
        // the order per key are those of one query.
        for part in ids.chunks(IDS_PER_QUERY) {
            found.extend(
                self.fetch_related_part(exec, actor, target, key, part, capped)
                    .await?,
            );
        }
        Ok(found)
    }

    /// [`Engine::fetch_related`] for at most [`IDS_PER_QUERY`] ids.
    async fn fetch_related_part(
        &self,
        exec: &mut Exec<'_>,
        actor: &Value,
        target: &Entry,
        key: &str,
        ids: &[Value],
        capped: bool,
    ) -> Result<Vec<Record>, QueryError> {
        let cond = Cond::and(vec![
            self.read_cond(target, actor),
            Cond::or(
                ids.iter()
                    .map(|id| Cond::eq(column_of(target, key), Operand::Value(id.clone())))
                    .collect(),
            ),
        ]);
        let mut sql = Sql::new(self.db.dialect());
        if capped {
            sql.push("SELECT * FROM (SELECT ");
            select_list(&mut sql, target, ROW);
            sql.push(&format!(
                ", ROW_NUMBER() OVER (PARTITION BY {ROW}.{} ORDER BY {}) AS kumo_n",
                ident(key),
                oldest_first()
            ));
        } else {
            sql.push("SELECT ");
            select_list(&mut sql, target, ROW);
        }
        sql.push(&format!(" FROM {} {ROW} WHERE ", ident(&target.table)));
        Renderer::new(ROW).render(&cond, &mut sql);
        if capped {
            sql.push(&format!(
                ") AS kumo_page WHERE kumo_n <= {INCLUDE_LIMIT} ORDER BY kumo_n"
            ));
        }
        Ok(exec.fetch_records(&sql, &public(target)).await?)
    }

    /// Readable rows of `target` linked to `ids` through readable rows of
    /// the join resource, with the parent id of each.
    async fn fetch_through(
        &self,
        exec: &mut Exec<'_>,
        actor: &Value,
        entry: &Entry,
        target: &Entry,
        through: &Entry,
        ids: &[Value],
    ) -> Result<Vec<(Value, Record)>, QueryError> {
        let key_to = |resource: &str| {
            through
                .resource
                .relationships
                .iter()
                .find_map(|r| match &r.kind {
                    RelationshipKind::BelongsTo { target, .. } if target == resource => {
                        Some(format!("{}_id", r.name))
                    }
                    _ => None,
                })
        };
        let (Some(left), Some(right)) =
            (key_to(&entry.resource.name), key_to(&target.resource.name))
        else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for part in ids.chunks(IDS_PER_QUERY) {
            found.extend(
                self.fetch_through_part(exec, actor, target, through, (&left, &right), part)
                    .await?,
            );
        }
        Ok(found)
    }

    /// [`Engine::fetch_through`] for at most [`IDS_PER_QUERY`] ids, with
    /// the join resource's keys to the parent (`left`) and the target.
    async fn fetch_through_part(
        &self,
        exec: &mut Exec<'_>,
        actor: &Value,
        target: &Entry,
        through: &Entry,
        (left, right): (&str, &str),
        ids: &[Value],
    ) -> Result<Vec<(Value, Record)>, QueryError> {
        const JOIN: &str = "j";
        let mut sql = Sql::new(self.db.dialect());
        sql.push("SELECT * FROM (SELECT ");
        select_list(&mut sql, target, ROW);
        sql.push(&format!(
            ", {JOIN}.{left} AS kumo_parent, ROW_NUMBER() OVER (PARTITION BY {JOIN}.{left} ORDER BY {oldest}) AS kumo_n FROM {} {ROW} JOIN {} {JOIN} ON {JOIN}.{right} = {ROW}.\"id\" WHERE ",
            ident(&target.table),
            ident(&through.table),
            left = ident(left),
            right = ident(right),
            oldest = oldest_first(),
        ));
        Renderer::new(ROW).render(&self.read_cond(target, actor), &mut sql);
        sql.push(" AND ");
        let join_cond = Cond::and(vec![
            self.read_cond(through, actor),
            Cond::or(
                ids.iter()
                    .map(|id| Cond::eq(column_of(through, left), Operand::Value(id.clone())))
                    .collect(),
            ),
        ]);
        Renderer::new(JOIN).render(&join_cond, &mut sql);
        sql.push(&format!(
            ") AS kumo_page WHERE kumo_n <= {INCLUDE_LIMIT} ORDER BY kumo_n"
        ));
        let mut fields = public(target);
        let parent = Field::computed("kumo_parent", Kind::Uuid);
        fields.push(&parent);
        let rows = exec.fetch_records(&sql, &fields).await?;
        Ok(rows
            .into_iter()
            .map(|mut r| (r.remove("kumo_parent").unwrap_or(Value::Null), r))
            .collect())
    }
}

/// Whether `e` is a statement cancelled for running out of time:
/// PostgreSQL's `query_canceled` (57014), SQLite's `SQLITE_INTERRUPT` (9).
fn gave_up(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57014") | Some("9")),
        _ => false,
    }
}

/// Rows with `term` in any letter case in one of [`searched_fields`].
fn search_cond(entry: &Entry, term: &str) -> Cond {
    Cond::or(
        searched_fields(entry)
            .into_iter()
            .map(|f| Cond::Text {
                field: column_of(entry, &f.name),
                value: Value::String(term.to_owned()),
                prefix: false,
                any_case: true,
            })
            .collect(),
    )
}

/// The fields a search looks in: the attributes marked `search = true`,
/// which an index serves, or, when none is, every public string field
/// (which reads the whole table).
pub fn searched_fields(entry: &Entry) -> Vec<&Field> {
    let marked = |f: &&Field| entry.resource.attribute(&f.name).is_some_and(|a| a.search);
    let strings = entry
        .fields
        .iter()
        .filter(|f| f.is_public() && f.kind == Kind::Text);
    let marked_ones: Vec<&Field> = strings.clone().filter(marked).collect();
    if marked_ones.is_empty() {
        strings.collect()
    } else {
        marked_ones
    }
}

/// A filter on a field of the row it is rendered over.
fn field_cond(entry: &Entry, f: &Filter) -> Cond {
    let field = column_of(entry, &f.field);
    let one = |v: &FilterValue| match v {
        FilterValue::One(v) => v.clone(),
        _ => Value::Null,
    };
    match f.op {
        FilterOp::Eq => Cond::eq(field, Operand::Value(one(&f.value))),
        FilterOp::Ne => Cond::not(Cond::eq(field, Operand::Value(one(&f.value)))),
        FilterOp::Lt => Cond::order(BinOp::Lt, field, Operand::Value(one(&f.value))),
        FilterOp::Lte => Cond::order(BinOp::Le, field, Operand::Value(one(&f.value))),
        FilterOp::Gt => Cond::order(BinOp::Gt, field, Operand::Value(one(&f.value))),
        FilterOp::Gte => Cond::order(BinOp::Ge, field, Operand::Value(one(&f.value))),
        FilterOp::In => match &f.value {
            FilterValue::Many(values) => Cond::or(
                values
                    .iter()
                    .map(|v| Cond::eq(field.clone(), Operand::Value(v.clone())))
                    .collect(),
            ),
            _ => Cond::Const(false),
        },
        FilterOp::IsNil => {
            let is_nil = Cond::eq(field, Operand::Value(Value::Null));
            match f.value {
                FilterValue::Flag(false) => Cond::not(is_nil),
                _ => is_nil,
            }
        }
        FilterOp::Contains if f.kind == Kind::Text => Cond::Text {
            field,
            value: one(&f.value),
            prefix: false,
            any_case: false,
        },
        FilterOp::Contains => Cond::Contains {
            array: field,
            elem: Operand::Value(one(&f.value)),
        },
        FilterOp::StartsWith => Cond::Text {
            field,
            value: one(&f.value),
            prefix: true,
            any_case: false,
        },
    }
}

/// Rows strictly after (or, going backwards, before) the cursor's row in
/// the sort order, where `null` sorts before every value.
///
/// The alternatives (`a > x OR (a = x AND id > y)`) are no range a database
/// can start an index scan at, so where the rows beyond the cursor all lie
/// on one side of the first key's value, that bound is added too
/// (`a >= x AND (…)`): a later page then starts reading the index at the
/// cursor instead of at the start of the list. It can't be added when the
/// rows beyond hold both smaller values and `null`s (a descending sort of
/// a column that may be null), and then that page reads the index from the
/// start, or sorts what the filters leave.
fn keyset(entry: &Entry, sort: &[SortKey], values: &[Value], backwards: bool) -> Cond {
    let not_null = |name: &str| entry.field(name).is_some_and(|f| f.required);
    let mut alternatives = Vec::new();
    for (i, key) in sort.iter().enumerate() {
        let mut parts: Vec<Cond> = sort[..i]
            .iter()
            .zip(values)
            .map(|(k, v)| Cond::eq(column_of(entry, &k.field), Operand::Value(v.clone())))
            .collect();
        let field = column_of(entry, &key.field);
        let value = &values[i];
        let ascending = key.descending == backwards;
        let smaller = Cond::order(BinOp::Lt, field.clone(), Operand::Value(value.clone()));
        let beyond = match (ascending, value.is_null()) {
            (true, true) => Cond::not(Cond::eq(field, Operand::Value(Value::Null))),
            (true, false) => Cond::order(BinOp::Gt, field, Operand::Value(value.clone())),
            (false, true) => Cond::Const(false),
            (false, false) if not_null(&key.field) => smaller,
            (false, false) => Cond::or(vec![smaller, Cond::eq(field, Operand::Value(Value::Null))]),
        };
        parts.push(beyond);
        alternatives.push(Cond::and(parts));
    }
    let (Some(first), Some(value)) = (sort.first(), values.first()) else {
        return Cond::or(alternatives);
    };
    let field = column_of(entry, &first.field);
    let bound = match (first.descending == backwards, value.is_null()) {
        (true, false) => Some(Cond::order(BinOp::Ge, field, Operand::Value(value.clone()))),
        (false, false) if not_null(&first.field) => {
            Some(Cond::order(BinOp::Le, field, Operand::Value(value.clone())))
        }
        (false, true) => Some(Cond::eq(field, Operand::Value(Value::Null))),
        _ => None,
    };
    match bound {
        Some(bound) if sort.len() > 1 => Cond::and(vec![bound, Cond::or(alternatives)]),
        _ => Cond::or(alternatives),
    }
}

/// The sort as `ORDER BY` keys, each written as the indexes Kumo creates
/// declare it ([`SortKeySql`]), so an index over the sort serves the query.
fn order_by(sql: &mut Sql, entry: &Entry, sort: &[SortKey], backwards: bool) {
    let dialect = sql.dialect;
    let keys: Vec<String> = sort
        .iter()
        .map(|k| {
            SortKeySql {
                column: &format!("{ROW}.{}", ident(&k.field)),
                text: entry.field(&k.field).is_some_and(|f| f.kind == Kind::Text),
                primary_key: k.field == "id",
                descending: k.descending != backwards,
            }
            .order_by(dialect)
        })
        .collect();
    sql.push(&keys.join(", "));
}

/// Binds a cursor to its resource and sort.
fn scope(entry: &Entry, sort: &[SortKey]) -> String {
    let keys: Vec<String> = sort
        .iter()
        .map(|k| format!("{}{}", if k.descending { "-" } else { "" }, k.field))
        .collect();
    format!("{}:{}", entry.table, keys.join(","))
}

fn distinct<'a>(values: impl Iterator<Item = &'a Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in values {
        if !v.is_null() && !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

/// Keeps only the requested fields (and includes).
pub(crate) fn shape(mut record: Record, view: &View) -> Record {
    if let Some(fields) = &view.fields {
        record.retain(|k, _| fields.contains(k) || view.include.contains(k));
    }
    record
}

/// The id in canonical form, or `None` when it is not a UUID (such a record
/// cannot exist).
pub(crate) fn canonical_id(id: &str) -> Option<String> {
    uuid::Uuid::parse_str(id).ok().map(|u| u.to_string())
}
