//! Behaviours docs/api.md lists as known, held to what it says: they are
//! deliberate or the databases' own, and a change to one should be seen.

use axum::http::StatusCode;
use kumo_db::sql::Dialect;
use serde_json::json;

use crate::both;
use crate::harness::TestApi;

both!(
    an_offset_past_the_end_is_an_empty_page_without_prev,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let uploader = api.user_id(&alice);
        for name in ["a", "b", "c"] {
            let r = api
                .send(
                    "POST",
                    "/api/avatars",
                    Some(&alice),
                    Some(json!({"name": name, "uploader_id": uploader, "is_public": true})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let r = api
            .send(
                "GET",
                "/api/avatars?page%5Boffset%5D=10&page%5Bcount%5D=true",
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data(), &json!([]));
        // No row to start a `prev` cursor from: go back with a smaller offset.
        assert_eq!(
            r.body["page"],
            json!({"next": null, "prev": null, "total": 3})
        );
        api.cleanup().await;
    }
);

both!(
    negative_zero_is_kept_by_postgres_only,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let uploader = api.user_id(&alice);
        let created = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "z", "uploader_id": uploader, "rating": -0.0})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.id();
        let read = api
            .send("GET", &format!("/api/avatars/{id}"), Some(&alice), None)
            .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        let rating = read.data()["rating"].as_f64().expect("a number");
        assert_eq!(rating, 0.0);
        // SQLite stores a REAL with no fraction as an integer, which has no
        // sign for zero; the two compare equal in filters and policies.
        let negative = rating.is_sign_negative();
        assert_eq!(negative, dialect == Dialect::Postgres, "{}", read.body);
        let filtered = api
            .send(
                "GET",
                "/api/avatars?filter%5Brating%5D=0",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(
            filtered.data().as_array().map(Vec::len),
            Some(1),
            "{}",
            filtered.body
        );
        api.cleanup().await;
    }
);

both!(
    json_numbers_are_exact_in_64_bits_and_floats_beyond,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let uploader = api.user_id(&alice);
        // Written by hand: `json!` would turn the big integer into a float
        // before the server saw it.
        let body = format!(
            r#"{{"name":"n","uploader_id":"{uploader}","metadata":{{"big":123456789012345678901234567890,"u64":18446744073709551615,"i64":-9223372036854775808,"nz":-0.0}}}}"#
        );
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/api/avatars")
            .header("authorization", format!("Bearer {alice}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .expect("request");
        let created = api.raw(request).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.id();
        let read = api
            .send("GET", &format!("/api/avatars/{id}"), Some(&alice), None)
            .await;
        let metadata = &read.data()["metadata"];
        assert_eq!(metadata["u64"], json!(u64::MAX), "{metadata}");
        assert_eq!(metadata["i64"], json!(i64::MIN), "{metadata}");
        assert_eq!(
            metadata["big"].as_f64(),
            Some(1.234_567_890_123_456_8e29),
            "{metadata}"
        );
        let nz = metadata["nz"].as_f64().expect("a number");
        assert_eq!(nz, 0.0);
        assert_eq!(
            nz.is_sign_negative(),
            dialect == Dialect::Sqlite,
            "{metadata}"
        );
        api.cleanup().await;
    }
);

/// A unique value is global (docs/policies.md), but a caller whom the
/// create policy refuses whatever the record holds gets 403 before
/// anything is written, so not even a taken value shows through a 409.
const BADGE: &str = r#"
[resource]
name = "badge"

[attributes]
name = { type = "string", required = true, unique = true }

[policies]
read   = "true"
create = "actor != null && actor.role == 'admin'"
"#;

both!(
    a_caller_the_create_policy_always_refuses_gets_403_not_409,
    |dialect: Dialect| async move {
        let api = TestApi::new(dialect, &[("badge", BADGE)]).await;
        let made = api
            .send(
                "POST",
                "/api/badges",
                Some(crate::harness::ADMIN),
                Some(json!({"name": "taken"})),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        let alice = api.user("alice", "user").await;
        for caller in [None, Some(alice.as_str())] {
            for name in ["taken", "free"] {
                let r = api
                    .send("POST", "/api/badges", caller, Some(json!({"name": name})))
                    .await;
                let expected = if caller.is_none() {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(r.status, expected, "{caller:?} {name}: {}", r.body);
            }
        }
        api.cleanup().await;
    }
);
