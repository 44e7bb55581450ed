//! The API fuzzed from its own OpenAPI document by schemathesis (installed
//! into `.venv/` by scripts/python-tools.sh): the real server on a TCP
//! socket, the harness' resources with seeded records, and every operation
//! sent generated valid and invalid requests. It fails on any 5xx, and on
//! any status code, content type or body the document does not describe.

use std::time::Instant;

use axum::http::StatusCode;
use kumo_db::sql::Dialect;
use serde_json::json;
use tokio::net::TcpListener;

use crate::both;
use crate::harness::{ADMIN, TestApi};
use crate::openapi::python_tool;

/// Test cases per operation and phase; with a fixed seed the run is the same
/// every time and takes about a minute per database.
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "20261121";

/// Records for the fuzzer to find: users, public and private avatars with
/// every kind of value, comments on them.
async fn seed(api: &TestApi) {
    let alice = api.user("alice", "user").await;
    let bob = api.user("bob", "coordinator").await;
    for (owner, n) in [(&alice, 0), (&bob, 1), (&alice, 2)] {
        let owner_id = api.user_id(owner);
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(owner),
                Some(json!({
                    "name": format!("avatar {n}"),
                    "uploader_id": owner_id,
                    "is_public": n != 1,
                    "polycount": 1000 * n,
                    "rating": 2.5,
                    "tags": ["metal", format!("tag{n}")],
                    "metadata": {"rig": {"bones": n}},
                    "released_at": "2026-03-01T12:00:00Z",
                    "secret_note": "hidden",
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let avatar = r.id();
        let r = api
            .send(
                "POST",
                "/api/comments",
                Some(&bob),
                Some(json!({"body": "nice", "avatar_id": avatar, "author_id": api.user_id(&bob)})),
            )
            .await;
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            r.body
        );
    }
}

both!(schemathesis_finds_no_error, |dialect: Dialect| async move {
    let api = TestApi::avatars(dialect).await;
    seed(&api).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/openapi.json", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kumo_server::serve(listener, api.state.clone(), async {
        let _ = stopped.await;
    }));

    // Hypothesis keeps a database of examples in the working directory.
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = tokio::process::Command::new(python_tool("schemathesis"))
        .current_dir(dir.path())
        .args([
            "run",
            &url,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance",
            "--seed",
            SEED,
            "--max-examples",
            MAX_EXAMPLES,
            "--generation-database",
            "none",
            "--header",
            &format!("Authorization: Bearer {ADMIN}"),
            "--no-color",
        ])
        .args(
            std::env::var("KUMO_FUZZ_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis ({dialect:?}, {:.0?}):\n{stdout}{stderr}",
        started.elapsed()
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    api.cleanup().await;
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}{stderr}"
    );
});
