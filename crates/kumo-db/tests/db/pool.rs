//! The pool hands out working connections: one the database dropped while
//! it sat idle is noticed and replaced, not handed to a request.

use std::time::Duration;

use kumo_db::db::{Database, PING_IF_IDLE_FOR};
use sqlx::Row as _;

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
