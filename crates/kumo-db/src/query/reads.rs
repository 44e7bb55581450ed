//! The connections the resource API reads through on PostgreSQL.
//!
//! sqlx's pool pings every connection as it comes back (a `Sync` and its
//! `ReadyForQuery`), from a task it spawns: a second round trip and a task
//! for every request that reads, which cost get-by-id a fifth of its
//! throughput. Reads go through this pool of their own instead (`deadpool`,
//! which returns a connection in its drop, synchronously), and a connection
//! is pinged only when it sat idle for [`PING_IF_IDLE_FOR`] (the database
//! may have dropped it). A connection whose request went away
//! mid-statement, or that failed, is closed rather than reused.
//! Writes keep sqlx's pool and its transactions.

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgRow, PgSeverity};
use sqlx::{ConnectOptions, Connection};

use crate::db::PING_IF_IDLE_FOR;

/// How long a read waits for a free connection before the API answers 503,
/// as sqlx's pool does for writes.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) struct ReadConnection {
    conn: PgConnection,
    /// False while a statement is in flight: a lease dropped in that state
    /// (its request went away) is closed, not reused.
    settled: bool,
}

pub(crate) struct Connector {
    options: PgConnectOptions,
}

impl managed::Manager for Connector {
    type Type = ReadConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<ReadConnection, sqlx::Error> {
        Ok(ReadConnection {
            conn: self.options.connect().await?,
            settled: true,
        })
    }

    async fn recycle(
        &self,
        read: &mut ReadConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        // Deadpool closes a connection this refuses, and tries another.
        if !read.settled {
            // Its statement may still be running, and the next request
            // would wait for it: a fresh connection is quicker.
            return Err(RecycleError::Message(
                "its request went away mid-statement".into(),
            ));
        }
        if metrics.last_used() >= PING_IF_IDLE_FOR {
            read.conn.ping().await?;
        }
        Ok(())
    }
}

pub(crate) struct Reads {
    pool: managed::Pool<Connector>,
}

impl Reads {
    /// At most `size` connections, opened as they are needed, with the
    /// options (and so the statement timeout) of the API's pool.
    pub(crate) fn new(options: PgConnectOptions, size: u32) -> Reads {
        let pool = managed::Pool::builder(Connector { options })
            .max_size(size.max(1) as usize)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .expect("a runtime and timeouts are set");
        Reads { pool }
    }

    async fn lease(&self) -> Result<Object<Connector>, sqlx::Error> {
        self.pool.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => e,
            managed::PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
            _ => sqlx::Error::PoolClosed,
        })
    }

    pub(crate) async fn fetch_all(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let mut lease = self.lease().await?;
        lease.settled = false;
        let rows = query.fetch_all(&mut lease.conn).await;
        settle(lease, &rows);
        rows
    }

    pub(crate) async fn execute(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<u64, sqlx::Error> {
        let mut lease = self.lease().await?;
        lease.settled = false;
        let done = query
            .execute(&mut lease.conn)
            .await
            .map(|d| d.rows_affected());
        settle(lease, &done);
        done
    }

    /// A connection, held until the returned lease drops.
    pub(crate) async fn hold(&self) -> Result<Object<Connector>, sqlx::Error> {
        self.lease().await
    }

    /// Closes every idle connection; those in use close as they come back.
    pub(crate) fn close(&self) {
        self.pool.close();
    }
}

/// Puts a connection back after its statement finished: as it is when the
/// statement succeeded or the database refused it (the connection is fine),
/// closed when the connection itself failed or the database ended it.
fn settle<T>(mut lease: Object<Connector>, result: &Result<T, sqlx::Error>) {
    let connection_ok = match result {
        Ok(_) => true,
        // A FATAL error (the server is shutting down, the backend was
        // terminated) ends the session; any other leaves it usable.
        Err(sqlx::Error::Database(e)) => e
            .try_downcast_ref::<PgDatabaseError>()
            .is_none_or(|e| !matches!(e.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        Err(_) => false,
    };
    if connection_ok {
        lease.settled = true;
    } else {
        drop(Object::take(lease));
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use super::*;

    fn options() -> PgConnectOptions {
        let url = std::env::var("KUMO_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        PgConnectOptions::from_str(&url).expect("a postgres URL")
    }

    async fn backend(reads: &Reads) -> i32 {
        let rows = reads
            .fetch_all(sqlx::query("SELECT pg_backend_pid()"))
            .await
            .expect("a read");
        sqlx::Row::get(&rows[0], 0)
    }

    #[tokio::test]
    async fn a_connection_is_reused_without_a_ping_and_its_errors_keep_it() {
        let reads = Reads::new(options(), 1);
        let first = backend(&reads).await;
        assert_eq!(backend(&reads).await, first);
        // The database refusing a statement leaves the connection good.
        let refused = reads.fetch_all(sqlx::query("SELECT 1/0")).await;
        assert!(
            matches!(refused, Err(sqlx::Error::Database(_))),
            "{refused:?}"
        );
        assert_eq!(backend(&reads).await, first);
    }

    #[tokio::test]
    async fn a_connection_left_mid_statement_is_not_reused() {
        let reads = std::sync::Arc::new(Reads::new(options(), 1));
        let first = backend(&reads).await;
        let slow = {
            let reads = reads.clone();
            tokio::spawn(async move {
                reads
                    .fetch_all(sqlx::query("SELECT pg_sleep(30)"))
                    .await
                    .map(|_| ())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        slow.abort();
        let _ = slow.await;
        // Not the abandoned one, which would make this wait 30 s.
        let next = tokio::time::timeout(Duration::from_secs(10), backend(&reads))
            .await
            .expect("a fresh connection, not the busy one");
        assert_ne!(next, first);
    }

    #[tokio::test]
    async fn a_connection_the_database_dropped_is_replaced() {
        let reads = Reads::new(options(), 1);
        let first = backend(&reads).await;
        let mut admin = options().connect().await.expect("connect");
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(first)
            .execute(&mut admin)
            .await
            .expect("terminate");
        // Used again within the idle time: the read that finds it dead
        // fails, and the connection is closed, not put back.
        let _ = reads.fetch_all(sqlx::query("SELECT 1")).await;
        let next = backend(&reads).await;
        assert_ne!(next, first);
        admin.close().await.expect("close");
    }

    #[tokio::test]
    async fn an_idle_connection_is_pinged_and_a_dead_one_replaced_unseen() {
        let reads = Reads::new(options(), 1);
        let first = backend(&reads).await;
        let mut admin = options().connect().await.expect("connect");
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(first)
            .execute(&mut admin)
            .await
            .expect("terminate");
        tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(100)).await;
        // The ping finds it dead: the read gets a new one and succeeds.
        let next = backend(&reads).await;
        assert_ne!(next, first);
        admin.close().await.expect("close");
    }
}
