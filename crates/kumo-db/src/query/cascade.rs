//! What a destroy changes besides its own record. The schema's `on_delete`
//! rules make the database delete the rows that refer to a deleted row
//! (`cascade`, and so on down a chain of them) and set to null the keys
//! that pointed at it (`nullify`). Those are committed changes like any
//! other, so the realtime layer must hear of them: they are found inside
//! the destroy's transaction and announced with it after the commit.
//!
//! Before the DELETE, [`Engine::fallout`] walks the `belongs_to`
//! relationships that point at each deleted resource, level by level,
//! reading the rows a cascade will delete (as they are, the event's record)
//! and the ids of those a nullify will change. After the DELETE,
//! [`Engine::settle`] reads the nullified rows back as the database left
//! them. Each row is read once, whatever the number of paths to it (a cycle
//! of cascades ends), and each query takes at most [`KEYS_PER_QUERY`] keys,
//! so a destroy costs a query per relationship and level (and per
//! [`KEYS_PER_QUERY`] rows), not one per row.
//!
//! On PostgreSQL the rows are read `FOR UPDATE`, in `id` order: a row
//! locked so can't gain a new referrer (inserting one takes a share lock on
//! it) or change before the DELETE, so the rows found are exactly those the
//! DELETE reaches. SQLite's `BEGIN IMMEDIATE` already keeps other writers
//! out.

use std::collections::{HashSet, VecDeque};

use kumo_core::resource::{ActionKind, OnDelete, RelationshipKind};
use serde_json::Value;

use super::catalog::{Entry, Field, Kind};
use super::error::QueryError;
use super::exec::{Exec, Sql, push_select_expr};
use super::read::public;
use super::{Engine, Record};
use crate::sql::ident;

/// At most this many keys are bound in one statement: SQLite takes at most
/// 32,766 parameters, and a long `IN` list costs PostgreSQL planning time.
pub(crate) const KEYS_PER_QUERY: usize = 500;

const ROW: &str = "r";

/// The rows a destroy will delete or change through `on_delete`, found
/// before its DELETE.
#[derive(Default)]
pub(crate) struct Fallout<'e> {
    /// Rows the database deletes by cascade, as they were, level by level
    /// from the destroyed record.
    deleted: Vec<(&'e Entry, Record)>,
    /// Ids of rows whose key the database sets to null, by resource, to be
    /// read back after the DELETE.
    nullified: Vec<(&'e Entry, Vec<Value>)>,
}

/// A change the database made because of a destroy: what to announce.
pub(crate) struct Consequence<'e> {
    pub(crate) entry: &'e Entry,
    /// `Destroy` for a cascade, `Update` for a nullify.
    pub(crate) action: ActionKind,
    /// As it was (deleted) or as it is now (nullified), sensitive fields
    /// left out.
    pub(crate) record: Record,
}

/// Which rows a query over a referring table reads, and whether it locks
/// them (PostgreSQL).
enum Rows<'k> {
    /// Those whose `key` column holds one of the ids.
    Referring(&'k str),
    /// Those whose `id` is one of the ids.
    ById,
}

impl Engine {
    /// The `belongs_to` relationships that point at `target`: the
    /// resource that declares each, its key column and its `on_delete`.
    fn referrers(&self, target: &Entry) -> Vec<(&Entry, String, OnDelete)> {
        let mut found = Vec::new();
        for entry in self.catalog.entries() {
            for r in &entry.resource.relationships {
                if let RelationshipKind::BelongsTo {
                    target: t,
                    on_delete,
                    ..
                } = &r.kind
                    && *t == target.resource.name
                {
                    found.push((entry, format!("{}_id", r.name), *on_delete));
                }
            }
        }
        found
    }

    /// Everything deleting the row `id` of `entry` will make the database
    /// delete or change. A `restrict` relationship is not followed: a row
    /// it protects makes the DELETE fail, and then nothing is announced.
    pub(crate) async fn fallout(
        &self,
        exec: &mut Exec<'_>,
        entry: &Entry,
        id: &str,
    ) -> Result<Fallout<'_>, QueryError> {
        let mut fallout = Fallout::default();
        let root = self.catalog.entry(&entry.resource.name);
        // Every row found to be deleted, the destroyed one first, so a
        // cycle of cascades (a tree of records pointing at their parent)
        // reads each row once and ends.
        let mut deleted: HashSet<(&str, String)> =
            HashSet::from([(root.resource.name.as_str(), id.to_owned())]);
        let mut nullified: HashSet<(&str, String)> = HashSet::new();
        let mut levels = VecDeque::from([(root, vec![Value::String(id.to_owned())])]);
        while let Some((parent, ids)) = levels.pop_front() {
            for (child, key, on_delete) in self.referrers(parent) {
                let name = child.resource.name.as_str();
                match on_delete {
                    OnDelete::Restrict => {}
                    OnDelete::Cascade => {
                        let fields = public(child);
                        let rows = self
                            .read_rows(exec, child, Rows::Referring(&key), &ids, &fields)
                            .await?;
                        let mut next = Vec::new();
                        for row in rows {
                            let row_id = row.get("id").cloned().unwrap_or(Value::Null);
                            let text = row_id.as_str().unwrap_or_default().to_owned();
                            if deleted.insert((name, text)) {
                                next.push(row_id);
                                fallout.deleted.push((child, row));
                            }
                        }
                        if !next.is_empty() {
                            levels.push_back((child, next));
                        }
                    }
                    OnDelete::Nullify => {
                        let id_field = child.field("id").into_iter().collect::<Vec<_>>();
                        let rows = self
                            .read_rows(exec, child, Rows::Referring(&key), &ids, &id_field)
                            .await?;
                        let new: Vec<Value> = rows
                            .into_iter()
                            .filter_map(|mut row| row.remove("id"))
                            .filter(|v| {
                                let text = v.as_str().unwrap_or_default().to_owned();
                                nullified.insert((name, text))
                            })
                            .collect();
                        if new.is_empty() {
                            continue;
                        }
                        match fallout
                            .nullified
                            .iter_mut()
                            .find(|(e, _)| e.resource.name == name)
                        {
                            Some((_, ids)) => ids.extend(new),
                            None => fallout.nullified.push((child, new)),
                        }
                    }
                }
            }
        }
        Ok(fallout)
    }

    /// After the DELETE: the changes to announce, the deleted rows first.
    /// A nullified row that a cascade deleted too is announced once, as
    /// deleted.
    pub(crate) async fn settle<'e>(
        &self,
        exec: &mut Exec<'_>,
        fallout: Fallout<'e>,
    ) -> Result<Vec<Consequence<'e>>, QueryError> {
        let mut changes: Vec<Consequence<'e>> = fallout
            .deleted
            .into_iter()
            .map(|(entry, record)| Consequence {
                entry,
                action: ActionKind::Destroy,
                record,
            })
            .collect();
        for (entry, ids) in fallout.nullified {
            let fields = public(entry);
            // Deleted rows are not found any more.
            for record in self
                .read_rows(exec, entry, Rows::ById, &ids, &fields)
                .await?
            {
                changes.push(Consequence {
                    entry,
                    action: ActionKind::Update,
                    record,
                });
            }
        }
        Ok(changes)
    }

    /// Rows of `entry` chosen by `rows` among `ids`, with `fields`, in `id`
    /// order; locked on PostgreSQL when they are read before the DELETE.
    async fn read_rows(
        &self,
        exec: &mut Exec<'_>,
        entry: &Entry,
        rows: Rows<'_>,
        ids: &[Value],
        fields: &[&Field],
    ) -> Result<Vec<Record>, QueryError> {
        let (column, lock) = match rows {
            Rows::Referring(key) => (key, matches!(exec, Exec::Pg(_))),
            Rows::ById => ("id", false),
        };
        let mut found = Vec::new();
        for part in ids.chunks(KEYS_PER_QUERY) {
            let mut sql = Sql::new(self.db.dialect());
            sql.push("SELECT ");
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                push_select_expr(&mut sql, ROW, field);
            }
            sql.push(&format!(
                " FROM {} {ROW} WHERE {ROW}.{} IN (",
                ident(&entry.table),
                ident(column)
            ));
            push_keys(&mut sql, part);
            sql.push(&format!(") ORDER BY {ROW}.{}", ident("id")));
            if lock {
                sql.push(" FOR UPDATE");
            }
            found.extend(exec.fetch_records(&sql, fields).await?);
        }
        Ok(found)
    }
}

/// `$1, $2, …`: each key bound as a uuid.
pub(crate) fn push_keys(sql: &mut Sql, keys: &[Value]) {
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind_value(Kind::Uuid, key);
    }
}
