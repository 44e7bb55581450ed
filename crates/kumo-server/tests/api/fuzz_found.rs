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
        for (method, uri) in [
            ("GET", "/api/avatars/%FF"),
            ("POST", "/api/avatars/%FF/publish"),
            ("POST", "/api/avatars/%FF"),
            ("GET", "/api/%FF"),
            ("DELETE", "/api/%FF/x"),
        ] {
            let r = api.send(method, uri, Some(ADMIN), None).await;
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "{method} {uri}: {}",
                r.body
            );
            assert_eq!(r.body["error"]["code"], "not_found", "{method} {uri}");
        }
        api.cleanup().await;
    }
);

both!(
    an_integral_float_for_an_integer_was_a_422,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let create = |polycount: serde_json::Value| json!({"name": format!("p{polycount}"), "uploader_id": alice_id, "polycount": polycount});
        // JSON Schema (and Godot's JSON parser) count 5.0 as the integer 5.
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(create(json!(5.0))),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.data()["polycount"], json!(5));
        for wrong in [json!(5.5), json!(1e19), json!(-1.0)] {
            let r = api
                .send(
                    "POST",
                    "/api/avatars",
                    Some(&alice),
                    Some(create(wrong.clone())),
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{wrong}: {}",
                r.body
            );
        }
        api.cleanup().await;
    }
);
