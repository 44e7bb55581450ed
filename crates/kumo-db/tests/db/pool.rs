//! The pool hands out working connections: one the database dropped while
//! it sat idle is noticed and replaced, not handed to a request. A database
//! too busy to answer (a statement past `[database] statement_timeout`,
//! SQLite locked past its busy timeout) is the 503 kind of error.

use std::time::Duration;

use kumo_db::db::{Database, PING_IF_IDLE_FOR};
use kumo_db::query::{Busy, QueryError};
use sqlx::{ConnectOptions as _, Row as _};

use crate::harness::TestDb;

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_connection_the_database_dropped_while_idle_is_replaced() {
    let test = TestDb::postgres().await;
    let Database::Postgres(pool) = &test.db else {
        unreachable!("a PostgreSQL test database")
    };
    let mut killer = pool.acquire().await.unwrap();
    let mut victim = pool.acquire().await.unwrap();
    let victim_pid = backend_pid(&mut victim).await;
    drop(victim);
    // Back in the pool, idle. Then the database ends its session, as a
    // restart, an idle timeout or a proxy would.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let terminated: bool = sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(victim_pid)
        .fetch_one(&mut *killer)
        .await
        .unwrap()
        .get(0);
    assert!(terminated);
    killer
        .close()
        .await
        .expect("closing the connection that ended the other");
    tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(300)).await;

    let mut conn = pool
        .acquire()
        .await
        .expect("the pool replaces the dropped connection");
    let pid = backend_pid(&mut conn).await;
    assert_ne!(pid, victim_pid);
    drop(conn);
    test.cleanup().await;
}

/// No statement timeout used to let one expensive query hold a pooled
/// connection for ever. The server's pool cancels a statement past
/// `[database] statement_timeout` (57014), which answers 503; a pool opened
/// without it, as migrations open theirs, is not cut off.
#[tokio::test]
async fn a_statement_past_the_statement_timeout_is_cancelled_and_unavailable() {
    let test = TestDb::postgres().await;
    let limited = test
        .target()
        .clone()
        .with_statement_timeout(100)
        .connect_pool(1)
        .await
        .expect("a pool with a statement timeout");
    let Database::Postgres(pool) = &limited else {
        unreachable!("a PostgreSQL test database")
    };
    let started = std::time::Instant::now();
    let e = sqlx::query("SELECT pg_sleep(5)")
        .execute(pool)
        .await
        .expect_err("cut off");
    assert!(started.elapsed() < Duration::from_secs(3));
    let e = QueryError::from(e);
    assert!(matches!(e, QueryError::Unavailable(Busy::Timeout)), "{e:?}");
    assert_eq!(e.code(), "unavailable");
    // The connection is still good for the next request.
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .expect("reusable");
    limited.close().await;

    let Database::Postgres(plain) = &test.db else {
        unreachable!("a PostgreSQL test database")
    };
    sqlx::query("SELECT pg_sleep(0.3)")
        .execute(plain)
        .await
        .expect("no timeout without the setting");
    test.cleanup().await;
}

/// SQLite locked by another writer past its busy timeout (SQLITE_BUSY)
/// used to be a 500 "the database failed".
#[tokio::test]
async fn sqlite_locked_past_the_busy_timeout_is_unavailable() {
    let test = TestDb::sqlite().await;
    let Database::Sqlite(pool) = &test.db else {
        unreachable!("a SQLite test database")
    };
    let mut other = (*pool.connect_options())
        .clone()
        .connect()
        .await
        .expect("a second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("the write lock");
    let e = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .expect_err("locked out");
    let e = QueryError::from(e);
    assert!(matches!(e, QueryError::Unavailable(Busy::Locked)), "{e:?}");
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("release");
    drop(other);
    test.cleanup().await;
}
