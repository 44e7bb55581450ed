//! Datetimes are stored and answered to the millisecond, whatever wrote
//! them. Regression tests for PostgreSQL keeping microseconds written by
//! plain SQL (or seeds, or the `CURRENT_TIMESTAMP` default) in `timestamptz`
//! columns while the API answers and compares milliseconds: an answered
//! value did not find its own row, and a keyset page sorted by the datetime
//! repeated the row its cursor came from.

use axum::http::StatusCode;
use kumo_core::load::load_schema;
use kumo_db::files::{Migration, Plan};
use kumo_db::runner;
use kumo_db::sql::Dialect;
use serde_json::json;

use crate::both;
use crate::harness::{AVATAR, COMMENT, TestApi};

/// Runs `statements` as plain SQL on the test database (as a migration,
/// the harness's way in), as a seed, a script or another program would
/// write rows.
async fn run_sql(api: &TestApi, statements: &[String]) {
    let schema = load_schema(
        vec![
            ("resources/avatar.toml".into(), AVATAR.to_owned()),
            ("resources/comment.toml".into(), COMMENT.to_owned()),
        ],
        true,
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let initial = Plan::new(Vec::new(), &schema).migration("20260101000000_initial".into());
    let sql = statements.join("\n");
    let raw = Migration {
        id: "20260101000001_plain_sql".into(),
        postgres_up: sql.clone(),
        postgres_down: String::new(),
        sqlite_up: sql,
        sqlite_down: String::new(),
    };
    runner::migrate(&api.db, &[initial, raw])
        .await
        .expect("plain SQL");
}

/// Sets a datetime column of one avatar. PostgreSQL is given microseconds;
/// SQLite stores text as written (it can't round), so it is given the
/// canonical form.
fn set_datetime(dialect: Dialect, id: &str, column: &str, micros: &str, canonical: &str) -> String {
    let value = match dialect {
        Dialect::Postgres => micros,
        Dialect::Sqlite => canonical,
    };
    format!("UPDATE \"avatars\" SET \"{column}\" = '{value}' WHERE \"id\" = '{id}';")
}

async fn create(api: &TestApi, token: &str, uploader: &str, name: &str) -> String {
    let r = api
        .send(
            "POST",
            "/api/avatars",
            Some(token),
            Some(json!({"name": name, "uploader_id": uploader})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.id()
}

both!(
    a_datetime_written_with_microseconds_is_found_by_its_answered_value,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let id = create(&api, &alice, &alice_id, "micro").await;
        let statements: Vec<String> = ["inserted_at", "released_at"]
            .iter()
            .map(|column| {
                set_datetime(
                    dialect,
                    &id,
                    column,
                    "2026-01-02T03:04:05.123456Z",
                    "2026-01-02T03:04:05.123Z",
                )
            })
            .collect();
        run_sql(&api, &statements).await;
        let r = api
            .send("GET", &format!("/api/avatars/{id}"), Some(&alice), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for column in ["inserted_at", "released_at"] {
            let answered = r.data()[column].as_str().unwrap().to_owned();
            assert_eq!(answered, "2026-01-02T03:04:05.123Z", "{column}");
            for (op, expected) in [("eq", 1), ("lte", 1), ("gt", 0), ("gte", 1), ("lt", 0)] {
                let url = format!("/api/avatars?filter[{column}][{op}]={answered}");
                let found = api.send("GET", &url, Some(&alice), None).await;
                assert_eq!(found.status, StatusCode::OK, "{url}: {}", found.body);
                assert_eq!(
                    found.data().as_array().unwrap().len(),
                    expected,
                    "{url}: {}",
                    found.body
                );
            }
        }
    }
);

both!(
    keyset_pages_by_a_datetime_written_with_microseconds_neither_skip_nor_repeat,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        // Two rows in the same millisecond (ties broken by id) and one
        // after; PostgreSQL is given the microseconds.
        let times = [
            ("2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:05.123Z"),
            ("2026-01-02T03:04:05.123111Z", "2026-01-02T03:04:05.123Z"),
            ("2026-01-02T03:04:05.500250Z", "2026-01-02T03:04:05.500Z"),
        ];
        let mut ids = Vec::new();
        let mut statements = Vec::new();
        for (i, (micros, canonical)) in times.iter().enumerate() {
            let id = create(&api, &alice, &alice_id, &format!("a{i}")).await;
            for column in ["inserted_at", "released_at"] {
                statements.push(set_datetime(dialect, &id, column, micros, canonical));
            }
            ids.push(id);
        }
        run_sql(&api, &statements).await;
        for sort in ["inserted_at", "-inserted_at", "released_at", "-released_at"] {
            let mut seen: Vec<String> = Vec::new();
            let mut url = format!("/api/avatars?sort={sort}&page[size]=1");
            loop {
                let r = api.send("GET", &url, Some(&alice), None).await;
                assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
                seen.extend(
                    r.data()
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a["id"].as_str().unwrap().to_owned()),
                );
                assert!(seen.len() <= 10, "{sort}: paging does not end: {seen:?}");
                match r.body["page"]["next"].as_str() {
                    Some(c) => {
                        url = format!("/api/avatars?sort={sort}&page[size]=1&page[after]={c}");
                    }
                    None => break,
                }
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                (seen.len(), unique.len()),
                (3, 3),
                "{sort}: every row once: {seen:?}"
            );
            assert!(ids.iter().all(|id| seen.contains(id)), "{sort}: {seen:?}");
        }
    }
);
