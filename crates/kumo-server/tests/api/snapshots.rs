//! The JSON the API answers, reviewed as insta snapshots: one transcript of
//! typical requests and every error, identical on both databases.
//!
//! Ids, timestamps and cursors change on every run, so they are replaced by
//! stable names (`<id 1>` is the first id seen, wherever it appears again),
//! which keeps the links between records visible in the snapshot.

use std::collections::HashMap;

use std::num::NonZeroU32;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kumo_db::db::Database;
use kumo_db::sql::Dialect;
use kumo_server::ratelimit::RateLimit;
use kumo_server::{AppState, app};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::both;
use crate::harness::{AVATAR, COMMENT, Reply, TestApi};

#[derive(Default)]
struct Redactor {
    names: HashMap<String, String>,
}

impl Redactor {
    fn redact(&mut self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if matches!(key.as_str(), "next" | "prev") && v.is_string() {
                        *v = json!("<cursor>");
                    } else if matches!(key.as_str(), "inserted_at" | "updated_at") {
                        *v = json!("<now>");
                    } else {
                        self.redact(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            Value::String(s) => {
                if let Some(name) = self.name_ids(s) {
                    *s = name;
                }
            }
            _ => {}
        }
    }

    /// Replaces every UUID in `text` by its stable name.
    fn name_ids(&mut self, text: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        let mut changed = false;
        while let Some(at) = rest.char_indices().find_map(|(i, _)| {
            rest.get(i..i + 36)
                .filter(|c| uuid::Uuid::parse_str(c).is_ok() && c.contains('-'))
                .map(|_| i)
        }) {
            let id = &rest[at..at + 36];
            let next = self.names.len() + 1;
            let name = self
                .names
                .entry(id.to_owned())
                .or_insert_with(|| format!("<id {next}>"))
                .clone();
            out.push_str(&rest[..at]);
            out.push_str(&name);
            rest = &rest[at + 36..];
            changed = true;
        }
        out.push_str(rest);
        changed.then_some(out)
    }
}

struct Transcript {
    redactor: Redactor,
    entries: Vec<Value>,
}

impl Transcript {
    async fn send(
        &mut self,
        api: &TestApi,
        method: &str,
        uri: &str,
        who: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let reply = api.send(method, uri, who, body.clone()).await;
        self.record(method, uri, who, body, &reply)
    }

    /// Records an exchange; `Retry-After`, the one header a client must
    /// act on besides the body, is recorded when the reply has it.
    fn record(
        &mut self,
        method: &str,
        uri: &str,
        who: Option<&str>,
        body: Option<Value>,
        reply: &Reply,
    ) -> Value {
        let (status, response) = (reply.status.as_u16(), reply.body.clone());
        let original = response.clone();
        let mut request = json!({ "request": format!("{method} {uri}") });
        if let Some(w) = who {
            request["as"] = json!(w);
        }
        if let Some(b) = body {
            request["body"] = b;
        }
        let mut entry = json!({ "request": request, "status": status, "response": response });
        if let Some(after) = reply.headers.get(header::RETRY_AFTER) {
            entry["retry_after"] = json!(after.to_str().expect("digits"));
        }
        self.redactor.redact(&mut entry);
        self.entries.push(entry);
        original
    }
}

both!(
    responses_match_the_snapshot,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let bob = api.user("bob", "user").await;
        let mut t = Transcript {
            redactor: Redactor::default(),
            entries: Vec::new(),
        };
        // Name the users first so their placeholders do not depend on order.
        t.redactor.name_ids(&alice_id);
        t.redactor.name_ids(&api.user_id(&bob));

        let robot = t
            .send(
                &api,
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({
                    "name": "Robot", "uploader_id": alice_id, "polycount": 1200, "rating": 4.5,
                    "tags": ["metal", "shiny"], "metadata": {"rig": "humanoid", "bones": 54},
                    "released_at": "2026-03-01T12:00:00+02:00", "secret_note": "never shown"
                })),
            )
            .await;
        let robot_id = robot["data"]["id"].as_str().unwrap().to_owned();
        t.send(
            &api,
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(json!([
                {"name": "Cat", "uploader_id": alice_id, "kind": "creature", "is_public": true},
                {"name": "Dog", "uploader_id": alice_id, "kind": "creature", "is_public": true}
            ])),
        )
        .await;
        t.send(
            &api,
            "GET",
            &format!("/api/avatars/{robot_id}?include=uploader"),
            Some(&alice),
            None,
        )
        .await;
        t.send(
            &api,
            "GET",
            "/api/avatars?sort=name&page[size]=2&page[count]=true&fields=name,kind",
            Some(&bob),
            None,
        )
        .await;
        t.send(
            &api,
            "PATCH",
            &format!("/api/avatars/{robot_id}"),
            Some(&alice),
            Some(json!({"rating": 5.0})),
        )
        .await;
        t.send(
            &api,
            "POST",
            &format!("/api/avatars/{robot_id}/publish"),
            Some(&alice),
            None,
        )
        .await;
        t.send(
            &api,
            "POST",
            &format!("/api/avatars/{robot_id}/bump"),
            Some(&bob),
            None,
        )
        .await;
        t.send(
            &api,
            "POST",
            "/api/comments",
            Some(&bob),
            Some(json!({"avatar_id": robot_id, "author_id": api.user_id(&bob), "body": "Nice!"})),
        )
        .await;
        t.send(
            &api,
            "GET",
            &format!("/api/avatars/{robot_id}?include=comments"),
            Some(&bob),
            None,
        )
        .await;

        // Every error.
        t.send(&api, "GET", "/api/avatars?filter[nope]=1", None, None)
            .await;
        t.send(
            &api,
            "GET",
            "/api/avatars?filter[polycount][contains]=1",
            None,
            None,
        )
        .await;
        t.send(&api, "GET", "/api/avatars?bogus=1", None, None)
            .await;
        t.send(&api, "GET", "/api/avatars?page[after]=forged", None, None)
            .await;
        t.send(&api, "GET", "/api/avatars", Some("nobody"), None)
            .await;
        t.send(
            &api,
            "PATCH",
            &format!("/api/avatars/{robot_id}"),
            Some(&bob),
            Some(json!({"name": "Mine"})),
        )
        .await;
        t.send(
            &api,
            "GET",
            "/api/avatars/0190b6a4-0000-7000-8000-000000000000",
            None,
            None,
        )
        .await;
        t.send(&api, "GET", "/api/avatars/not-a-uuid", None, None)
            .await;
        t.send(&api, "GET", "/api/nothing", None, None).await;
        t.send(
            &api,
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(json!({"name": "Robot", "uploader_id": alice_id})),
        )
        .await;
        t.send(
        &api,
        "POST",
        "/api/avatars",
        Some(&alice),
        Some(json!({"name": "", "uploader_id": alice_id, "polycount": -1, "kind": "tree", "colour": "red"})),
    )
    .await;
        t.send(
            &api,
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(json!([
                {"name": "Ok", "uploader_id": alice_id},
                {"name": "Bad", "uploader_id": "0190b6a4-0000-7000-8000-000000000001"}
            ])),
        )
        .await;
        t.send(
            &api,
            "POST",
            &format!("/api/avatars/{robot_id}/rate"),
            Some(&bob),
            Some(json!({"name": "x"})),
        )
        .await;
        t.send(&api, "DELETE", "/api/avatars", Some(&alice), None)
            .await;

        let raw = |content_type: &str, body: &str| {
            Request::builder()
                .method("POST")
                .uri("/api/avatars")
                .header(header::AUTHORIZATION, format!("Bearer {alice}"))
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body.to_owned()))
                .expect("request")
        };
        for (content_type, body) in [
            ("application/json", "{\"name\": "),
            ("text/plain", "{}"),
            (
                "application/json",
                &format!("\"{}\"", "x".repeat(kumo_server::api::BODY_LIMIT)),
            ),
        ] {
            let reply = api.raw(raw(content_type, body)).await;
            let shown = if body.len() > 40 {
                "<over the limit>"
            } else {
                body
            };
            t.record(
                "POST",
                &format!("/api/avatars ({content_type})"),
                Some(&alice),
                Some(json!(shown)),
                &reply,
            );
        }

        // 429: a client over its rate limit (one request a second, no
        // burst), on a server configured with one. Requests are sent until
        // one is refused, so a slow machine refilling the bucket between
        // two requests does not change the answer.
        let limited = app(
            AppState::new(api.db.clone(), Vec::new()).with_rate_limit(Some(&RateLimit {
                per_second: NonZeroU32::MIN,
                burst: NonZeroU32::MIN,
                client_ip_header: None,
            })),
        );
        let refused = loop {
            let response = limited
                .clone()
                .oneshot(
                    Request::builder()
                        .uri("/health")
                        .body(Body::empty())
                        .expect("request"),
                )
                .await
                .expect("infallible");
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                break Reply::from_response(response).await;
            }
        };
        t.record("GET", "/health (over the rate limit)", None, None, &refused);

        // 503: the database busy (here its only connection held, as by a
        // long transaction, past the pool's acquire timeout; see busy.rs).
        let busy =
            TestApi::with_pool(dialect, &[("avatar", AVATAR), ("comment", COMMENT)], 1).await;
        let carol = busy.user("carol", "user").await;
        let unavailable = match &busy.db {
            Database::Postgres(pool) => {
                // Reads have connections of their own: hold that one too.
                let _reading = busy
                    .state
                    .engine()
                    .unwrap()
                    .hold_a_read_connection()
                    .await
                    .expect("the only read connection");
                let _held = pool.begin().await.expect("the only connection");
                busy.send("GET", "/api/avatars", Some(&carol), None).await
            }
            Database::Sqlite(pool) => {
                let _held = pool.begin().await.expect("the only connection");
                busy.send("GET", "/api/avatars", Some(&carol), None).await
            }
        };
        t.record(
            "GET",
            "/api/avatars (the database busy)",
            Some(&carol),
            None,
            &unavailable,
        );
        busy.cleanup().await;

        // Both databases answer the same, so they share one snapshot.
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_json_snapshot!("api_transcript", Value::Array(t.entries));
        });
        api.cleanup().await;
    }
);
