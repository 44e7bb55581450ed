//! The resource API's engine, without HTTP: parse a list request, read with
//! the actor's read policy inside the SQL, write in one transaction with the
//! write policies checked inside it, and announce committed changes.
//!
//! - [`catalog`]: per-resource facts computed once (fields, kinds).
//! - [`params`]: query strings (`filter`, `sort`, `page`, `include`, `fields`).
//! - [`policy`]: policy expressions compiled to SQL (docs/policies.md).
//! - [`read`] / [`write`]: the operations; [`cascade`] finds what a
//!   destroy's `on_delete` rules change, so it is announced too.
//! - [`exec`]: binding and decoding for both databases.
//! - [`cursor`]: signed page cursors.
//! - [`accounts`]: the built-in account resources, for the auth layer.

pub mod accounts;
mod cascade;
pub mod catalog;
pub mod cursor;
pub mod error;
mod exec;
pub mod params;
mod policy;
pub mod read;
mod reads;
pub mod write;

use std::sync::Arc;

use kumo_core::resource::Schema;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

pub use catalog::{Catalog, Entry, Field, Kind};
pub use cursor::CursorKey;
pub use error::{Busy, FieldErrors, QueryError};
pub use exec::canonical_datetime;
pub use params::{ListRequest, View, parse_list, parse_record_query};
pub use read::ListPage;
pub use write::{AuditNote, Writes};

use crate::db::Database;

/// A record as clients see it: field name → canonical JSON value.
pub type Record = Map<String, Value>;

/// A committed change, for the realtime layer. A destroy is followed by an
/// event for each row the database deleted or changed because of it
/// (`on_delete = "cascade"`: `destroy`; `"nullify"`: `update`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The resource name (`avatar`).
    pub resource: String,
    /// `create`, `update`, `destroy`, or a named action.
    pub action: String,
    pub id: String,
    /// The record after the change (before it, for a destroy), sensitive
    /// fields left out.
    pub record: Record,
}

/// How many events a slow subscriber may fall behind before it misses some.
pub const EVENT_BACKLOG: usize = 1024;

pub struct Engine {
    pub db: Database,
    pub catalog: Catalog,
    pub cursors: CursorKey,
    events: broadcast::Sender<Arc<Event>>,
    /// On PostgreSQL, the connections reads go through ([`reads`]).
    reads: Option<reads::Reads>,
}

impl Engine {
    pub fn new(db: Database, schema: Schema, cursors: CursorKey) -> Engine {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let reads = match &db {
            Database::Postgres(pool) => Some(reads::Reads::new(
                (*pool.connect_options()).clone(),
                pool.options().get_max_connections(),
            )),
            Database::Sqlite(_) => None,
        };
        Engine {
            db,
            catalog: Catalog::new(schema),
            cursors,
            events,
            reads,
        }
    }

    /// Where a read outside a transaction runs.
    pub(crate) fn reader(&self) -> exec::Exec<'_> {
        match &self.reads {
            Some(reads) => exec::Exec::Reads(reads),
            None => exec::Exec::Pool(&self.db),
        }
    }

    /// Takes one of the read connections until the returned guard drops
    /// (`None` on SQLite, whose reads share the pool): for tests of a
    /// server whose connections are all busy.
    #[doc(hidden)]
    pub async fn hold_a_read_connection(&self) -> Result<Option<impl Send + use<>>, sqlx::Error> {
        match &self.reads {
            Some(reads) => Ok(Some(reads.hold().await?)),
            None => Ok(None),
        }
    }

    /// Closes the read connections (the pool of writes is the caller's to
    /// close).
    pub fn close_reads(&self) {
        if let Some(reads) = &self.reads {
            reads.close();
        }
    }

    /// Every change committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    fn announce(&self, event: Event) {
        // No subscribers is not an error: nobody is listening yet.
        let _ = self.events.send(Arc::new(event));
    }
}
