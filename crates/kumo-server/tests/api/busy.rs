//! A database too busy to answer is the server's problem, never a client's:
//! writes PostgreSQL aborts for a deadlock run again, and a pool that stays
//! exhausted answers `503 unavailable` with `Retry-After`, nothing changed.
//! (SQLite locks and statement timeouts: crates/kumo-db/tests/db/pool.rs.)

use axum::http::{StatusCode, header};
use kumo_db::db::Database;
use kumo_db::sql::Dialect;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{AVATAR, COMMENT, Reply, TestApi};

fn assert_unavailable(r: &Reply) {
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "unavailable", "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(
        r.headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
}

/// Two batches that create the same names in opposite orders each waited
/// for the other's uncommitted row: PostgreSQL aborted one with `deadlock
/// detected` (40P01), which answered 500 to it (in each of 5 rounds). Now
/// a batch inserts its rows in the order of their unique values, so the
/// second waits for the first instead of deadlocking (and a deadlock that
/// still happens, between resources with several unique keys, runs again).
/// Either way the second meets the names the first committed and answers
/// 409, and only the committed batch's records are announced.
#[tokio::test]
async fn reversed_overlapping_batches_deadlocked_into_a_500() {
    let api = TestApi::avatars(Dialect::Postgres).await;
    let alice = api.user("alice", "user").await;
    let uploader = api.user_id(&alice);
    let mut events = api.state.engine().expect("an API").subscribe();
    for round in 0..5 {
        let batch: Vec<Value> = (0..20)
            .map(|i| json!({ "name": format!("r{round}-{i}"), "uploader_id": uploader }))
            .collect();
        let reversed: Vec<Value> = batch.iter().rev().cloned().collect();
        let (a, b) = tokio::join!(
            api.send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(Value::Array(batch))
            ),
            api.send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(Value::Array(reversed))
            ),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "round {round}: {} / {}",
            a.body,
            b.body
        );
        let mut announced = 0;
        while let Ok(event) = events.try_recv() {
            assert_eq!(event.action, "create");
            announced += 1;
        }
        assert_eq!(announced, 20, "round {round}: one batch's records");
    }
    let r = api
        .send("GET", "/api/avatars?page[size]=200", Some(&alice), None)
        .await;
    assert_eq!(r.data().as_array().map(Vec::len), Some(100), "{}", r.body);
    api.cleanup().await;
}

both!(
    a_request_that_finds_the_pool_exhausted_answers_503,
    |dialect| async move {
        let api = TestApi::with_pool(dialect, &[("avatar", AVATAR), ("comment", COMMENT)], 1).await;
        let alice = api.user("alice", "user").await;
        let uploader = api.user_id(&alice);
        let create = json!({ "name": "Held", "uploader_id": uploader });
        // The only connection is held, as by a long transaction, for
        // longer than the pool's acquire timeout.
        let (list, created) = match &api.db {
            Database::Postgres(pool) => {
                // Reads have connections of their own: hold that one too.
                let _reading = api
                    .state
                    .engine()
                    .unwrap()
                    .hold_a_read_connection()
                    .await
                    .expect("the only read connection");
                let _held = pool.begin().await.expect("the only connection");
                (
                    api.send("GET", "/api/avatars", Some(&alice), None).await,
                    api.send("POST", "/api/avatars", Some(&alice), Some(create))
                        .await,
                )
            }
            Database::Sqlite(pool) => {
                let _held = pool.begin().await.expect("the only connection");
                (
                    api.send("GET", "/api/avatars", Some(&alice), None).await,
                    api.send("POST", "/api/avatars", Some(&alice), Some(create))
                        .await,
                )
            }
        };
        assert_unavailable(&list);
        assert_unavailable(&created);
        // Released: the server answers again, and the refused create made
        // nothing.
        let r = api.send("GET", "/api/avatars", Some(&alice), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data(), &json!([]));
        api.cleanup().await;
    }
);
