//! Regressions for what fuzzing the API from its OpenAPI document found
//! (fuzz.rs), each named after the bug: client input that reached the
//! database and made it fail, so the server answered 500 instead of naming
//! the mistake, or an answer outside the one error shape.

use axum::http::StatusCode;
use kumo_db::sql::Dialect;
use serde_json::json;

use crate::both;
use crate::harness::{ADMIN, TestApi};

both!(
    an_offset_beyond_i64_was_a_500,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let r = api
            .send(
                "GET",
                "/api/avatars?page[offset]=9223372036854775808",
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(r.body["error"]["fields"]["page[offset]"].is_array());
        let r = api
            .send(
                "GET",
                "/api/avatars?page[offset]=9223372036854775807",
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "the largest offset: {}", r.body);
        api.cleanup().await;
    }
);

both!(
    a_nul_character_in_text_was_a_500_on_postgres,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        for query in [
            "filter[name]=a%00b",
            "filter[name][contains]=%00",
            "filter[name][starts_with]=%00",
            "filter[name][in]=x,%00",
            "filter[uploader.username][lt]=%00",
        ] {
            let r = api
                .send("GET", &format!("/api/avatars?{query}"), Some(&alice), None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        }
        for (field, value) in [
            ("name", json!("a\u{0}b")),
            ("tags", json!(["ok", "\u{0}"])),
            ("metadata", json!({"nested": ["\u{0}"]})),
            ("metadata", json!({"key\u{0}": 1})),
        ] {
            let mut body = json!({"name": "Robot", "uploader_id": alice_id});
            body[field] = value;
            let r = api
                .send("POST", "/api/avatars", Some(&alice), Some(body))
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{field}: {}",
                r.body
            );
            assert!(
                r.body["error"]["fields"][field][0]
                    .as_str()
                    .unwrap()
                    .contains("NUL"),
                "{}",
                r.body
            );
        }
        let r = api
            .send("GET", "/api/avatars?page[count]=true", Some(&alice), None)
            .await;
        assert_eq!(r.body["page"]["total"], 0, "nothing was written");
        api.cleanup().await;
    }
);

both!(
    a_date_in_the_year_0000_was_a_500_on_postgres,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        // The second is in the year 0001 where it was written, but 0000 in UTC.
        for released_at in ["0000-06-01T00:00:00Z", "0001-01-01T00:30:00+01:00"] {
            let r = api
                .send(
                    "POST",
                    "/api/avatars",
                    Some(&alice),
                    Some(
                        json!({"name": "Old", "uploader_id": alice_id, "released_at": released_at}),
                    ),
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{released_at}: {}",
                r.body
            );
            let r = api
                .send(
                    "GET",
                    &format!(
                        "/api/avatars?filter[released_at][gt]={}",
                        released_at.replace('+', "%2B")
                    ),
                    Some(&alice),
                    None,
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{released_at}: {}",
                r.body
            );
        }
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "Oldest", "uploader_id": alice_id, "released_at": "0001-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "the first storable instant: {}",
            r.body
        );
        assert_eq!(r.data()["released_at"], "0001-01-01T00:00:00.000Z");
        api.cleanup().await;
    }
);

both!(
    a_path_that_is_not_utf8_was_a_plain_text_400,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        for uri in [
            "/api/avatars/%FF",
            "/api/avatars/%FF/publish",
            "/api/%FF",
            "/api/%FF/x",
        ] {
            let r = api.send("GET", uri, Some(ADMIN), None).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}: {}", r.body);
            assert_eq!(r.body["error"]["code"], "not_found", "{uri}");
        }
        api.cleanup().await;
    }
);
