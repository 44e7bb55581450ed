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

/// Items that belong to items, with numbers to filter on and actions that
/// increment them by a lot.
const ITEM: &str = r#"
[resource]
name = "item"

[attributes]
name  = { type = "string" }
level = { type = "integer" }
score = { type = "float" }

[relationships]
parent   = { belongs_to = "item" }
children = { has_many = "item", via = "parent" }

[policies]
read   = "true"
create = "actor != null"
update = "actor != null"

[actions.level_up]
type = "update"
increment = { level = 1 }
policy = "actor != null"

[actions.level_down]
type = "update"
increment = { level = -1 }
policy = "actor != null"

[actions.boost]
type = "update"
increment = { score = 1e308, level = 1 }
policy = "actor != null"

[actions.sink]
type = "update"
increment = { score = -1e308 }
policy = "actor != null"
"#;

async fn items(dialect: Dialect) -> TestApi {
    TestApi::new(dialect, &[("item", ITEM)]).await
}

/// `filter[level][in]=a,b,…` for `values`.
fn in_list(values: std::ops::Range<i64>) -> String {
    let list: Vec<String> = values.map(|v| v.to_string()).collect();
    format!("filter[level][in]={}", list.join(","))
}

both!(
    a_long_in_list_or_many_filters_was_a_500_on_sqlite,
    |dialect: Dialect| async move {
        let api = items(dialect).await;
        for level in [0, 998, 4999, 5000] {
            let r = api
                .send(
                    "POST",
                    "/api/items",
                    Some(ADMIN),
                    Some(json!({"name": format!("l{level}"), "level": level})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let names = |r: &crate::harness::Reply| -> Vec<String> {
            r.data()
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned())
                .collect()
        };
        // SQLite refused 999 values: "Expression tree is too large".
        let r = api
            .send(
                "GET",
                &format!("/api/items?{}", in_list(0..999)),
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(names(&r), ["l0", "l998"]);
        // The most a list takes (PostgreSQL answered 5,000 before).
        let r = api
            .send(
                "GET",
                &format!("/api/items?{}", in_list(0..5000)),
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(names(&r), ["l0", "l998", "l4999"]);
        // One more, alone or spread over two filters, is a 400 naming it.
        for query in [
            in_list(0..5001),
            format!("{}&{}", in_list(0..2500), in_list(2500..5001)),
        ] {
            let r = api
                .send("GET", &format!("/api/items?{query}"), None, None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
            let why = &r.body["error"]["fields"]["filter[level][in]"][0];
            assert!(why.as_str().unwrap().contains("at most 5000"), "{why}");
        }
        // 100 filters joined by AND work; 1,100 (a 500 on SQLite) are a 400.
        let filters = |n: i64| -> String {
            (1..=n)
                .map(|i| format!("filter[level][ne]={i}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        let r = api
            .send("GET", &format!("/api/items?{}", filters(100)), None, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(names(&r).len(), 4);
        for n in [101, 1100] {
            let r = api
                .send("GET", &format!("/api/items?{}", filters(n)), None, None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{n}: {}", r.body);
            let why = &r.body["error"]["fields"]["filter[level][ne]"][0];
            assert!(
                why.as_str().unwrap().contains("at most 100 filters"),
                "{why}"
            );
        }
        api.cleanup().await;
    }
);

both!(
    a_deep_filter_path_was_a_500,
    |dialect: Dialect| async move {
        let api = items(dialect).await;
        let mut parent = serde_json::Value::Null;
        for name in ["root", "child", "grandchild", "great-grandchild"] {
            let r = api
                .send(
                    "POST",
                    "/api/items",
                    Some(ADMIN),
                    Some(json!({"name": name, "parent_id": parent})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            parent = json!(r.id());
        }
        // Two hops, as deep as the OpenAPI document lists, work.
        let r = api
            .send(
                "GET",
                "/api/items?filter[parent.parent.name]=root",
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()[0]["name"], "grandchild");
        assert_eq!(r.data().as_array().unwrap().len(), 1);
        // SQLite failed at 24 hops, PostgreSQL at 800.
        for hops in [3, 24, 800] {
            let key = format!("filter[{}name]", "parent.".repeat(hops));
            let r = api
                .send("GET", &format!("/api/items?{key}=root"), None, None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{hops}: {}", r.body);
            let why = r.body["error"]["fields"][&key][0].as_str().unwrap();
            assert!(why.contains("at most 2 relationships"), "{hops}: {why}");
        }
        api.cleanup().await;
    }
);

both!(
    a_full_batch_with_includes_was_a_500_on_sqlite,
    |dialect: Dialect| async move {
        use kumo_db::query::write::MAX_BATCH;
        let api = items(dialect).await;
        let r = api
            .send(
                "POST",
                "/api/items",
                Some(ADMIN),
                Some(json!({"name": "root"})),
            )
            .await;
        let root = r.id();
        let batch = |n: usize| -> Vec<serde_json::Value> {
            (0..n)
                .map(|i| json!({"name": format!("n{i}"), "parent_id": root}))
                .collect()
        };
        // One more than a batch may hold: refused before anything is written.
        let r = api
            .send(
                "POST",
                "/api/items",
                Some(ADMIN),
                Some(json!(batch(MAX_BATCH + 1))),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            r.body["error"]["fields"]["body"][0],
            format!(
                "a batch creates at most {MAX_BATCH} records; this one has {}",
                MAX_BATCH + 1
            )
        );
        // A full batch, with includes looked up in several queries.
        let r = api
            .send(
                "POST",
                "/api/items?include=children,parent&fields=name",
                Some(ADMIN),
                Some(json!(batch(MAX_BATCH))),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let created = r.data().as_array().unwrap();
        assert_eq!(created.len(), MAX_BATCH);
        let last = &created[MAX_BATCH - 1];
        assert_eq!(last["name"], format!("n{}", MAX_BATCH - 1));
        assert_eq!(last["children"], json!([]));
        assert_eq!(last["parent"]["name"], "root");
        // Including the root's children gives the first 25.
        let r = api
            .send(
                "GET",
                &format!("/api/items/{root}?include=children"),
                None,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["children"].as_array().unwrap().len(), 25);
        assert_eq!(r.data()["children"][0]["name"], "n0");
        api.cleanup().await;
    }
);

both!(
    an_increment_that_overflows_was_a_500,
    |dialect: Dialect| async move {
        let api = items(dialect).await;
        let create = |body: serde_json::Value| {
            let api = &api;
            async move {
                let r = api
                    .send("POST", "/api/items", Some(ADMIN), Some(body))
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
                r.id()
            }
        };
        let act = |id: String, action: &'static str| {
            let api = &api;
            async move {
                api.send(
                    "POST",
                    &format!("/api/items/{id}/{action}"),
                    Some(ADMIN),
                    None,
                )
                .await
            }
        };
        let get = |id: String| {
            let api = &api;
            async move {
                api.send("GET", &format!("/api/items/{id}"), None, None)
                    .await
            }
        };
        let overflows = |r: &crate::harness::Reply, field: &str| {
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
            let why = r.body["error"]["fields"][field][0].as_str().unwrap();
            assert!(why.starts_with("would overflow"), "{why}");
        };

        let top = create(json!({"level": i64::MAX})).await;
        overflows(&act(top.clone(), "level_up").await, "level");
        assert_eq!(get(top.clone()).await.data()["level"], json!(i64::MAX));
        let r = act(top.clone(), "level_down").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["level"], json!(i64::MAX - 1));

        let bottom = create(json!({"level": i64::MIN})).await;
        overflows(&act(bottom.clone(), "level_down").await, "level");
        assert_eq!(get(bottom).await.data()["level"], json!(i64::MIN));

        // PostgreSQL failed; SQLite stored Infinity, read back as null.
        let big = create(json!({"score": 1.7e308, "level": 1})).await;
        let r = act(big.clone(), "boost").await;
        overflows(&r, "score");
        assert!(
            r.body["error"]["fields"]["level"].is_null(),
            "level fits: {}",
            r.body
        );
        let stored = get(big.clone()).await;
        assert_eq!(
            stored.data()["score"],
            json!(1.7e308),
            "nothing was written"
        );
        assert_eq!(stored.data()["level"], json!(1), "nothing was written");
        let small = create(json!({"score": -1.7e308})).await;
        overflows(&act(small.clone(), "sink").await, "score");
        let r = act(small, "boost").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["score"], json!(-1.7e308 + 1e308));
        // A null counts as 0.
        let empty = create(json!({})).await;
        let r = act(empty, "boost").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["score"], json!(1e308));
        assert_eq!(r.data()["level"], json!(1));

        // Sorting by the score pages through every item, none lost to a
        // stored Infinity.
        let r = api
            .send("GET", "/api/items?sort=score&page[size]=1", None, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let mut seen = 1;
        let mut next = r.body["page"]["next"].clone();
        while let Some(cursor) = next.as_str() {
            let r = api
                .send(
                    "GET",
                    &format!("/api/items?sort=score&page[size]=1&page[after]={cursor}"),
                    None,
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            seen += r.data().as_array().unwrap().len();
            next = r.body["page"]["next"].clone();
        }
        assert_eq!(seen, 5);
        api.cleanup().await;
    }
);

both!(
    concurrent_increments_all_count,
    |dialect: Dialect| async move {
        let api = std::sync::Arc::new(items(dialect).await);
        let r = api
            .send("POST", "/api/items", Some(ADMIN), Some(json!({"level": 0})))
            .await;
        let id = r.id();
        let mut bumps = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let (api, id) = (api.clone(), id.clone());
            bumps.spawn(async move {
                api.send(
                    "POST",
                    &format!("/api/items/{id}/level_up"),
                    Some(ADMIN),
                    None,
                )
                .await
                .status
            });
        }
        while let Some(status) = bumps.join_next().await {
            assert_eq!(status.unwrap(), StatusCode::OK);
        }
        let r = api
            .send("GET", &format!("/api/items/{id}"), None, None)
            .await;
        assert_eq!(r.data()["level"], 100);
        let Ok(api) = std::sync::Arc::try_unwrap(api) else {
            panic!("every bump has finished");
        };
        api.cleanup().await;
    }
);

both!(
    a_sort_naming_a_field_twice_was_a_400_though_the_document_allowed_it,
    |dialect: Dialect| async move {
        let api = items(dialect).await;
        for (name, level) in [("b", 2), ("a", 1), ("c", 1), ("a", 3)] {
            let r = api
                .send(
                    "POST",
                    "/api/items",
                    Some(ADMIN),
                    Some(json!({"name": name, "level": level})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let order = |query: &str| {
            let (api, query) = (&api, query.to_owned());
            async move {
                let r = api
                    .send("GET", &format!("/api/items?{query}"), None, None)
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
                let ids: Vec<String> = r
                    .data()
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_owned())
                    .collect();
                (ids, r.body["page"]["next"].clone())
            }
        };
        // A later occurrence can never reorder records the first one left
        // equal, so it is dropped: the order (and the cursor's scope) is
        // that of the first occurrence alone.
        for (repeated, once) in [
            ("sort=name,-name", "sort=name"),
            ("sort=-name,name,-name", "sort=-name"),
            ("sort=level,name,-level", "sort=level,name"),
            ("sort=name,name", "sort=name"),
        ] {
            assert_eq!(
                order(repeated).await.0,
                order(once).await.0,
                "{repeated} vs {once}"
            );
        }
        let (first, next) = order("sort=name,-name&page[size]=2").await;
        let cursor = next.as_str().expect("a next page");
        let (rest, _) = order(&format!("sort=name&page[after]={cursor}")).await;
        assert_eq!([first, rest].concat(), order("sort=name").await.0);
        api.cleanup().await;
    }
);

both!(
    an_empty_name_in_fields_or_include_was_taken_though_the_document_refused_it,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "Robot", "uploader_id": alice_id})),
            )
            .await;
        let id = r.id();
        // `fields=` read as no fields (`id` alone); the document lists the
        // names each takes, at least one.
        for (path, key) in [
            ("/api/avatars?fields=".to_owned(), "fields"),
            ("/api/avatars?fields=name,".to_owned(), "fields"),
            ("/api/avatars?include=".to_owned(), "include"),
            ("/api/avatars?include=,uploader".to_owned(), "include"),
            (format!("/api/avatars/{id}?fields="), "fields"),
            (format!("/api/avatars/{id}?include=comments,"), "include"),
        ] {
            let r = api.send("GET", &path, Some(&alice), None).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
            assert!(
                r.body["error"]["fields"][key][0]
                    .as_str()
                    .unwrap()
                    .contains("empty name"),
                "{path}: {}",
                r.body
            );
        }
        let r = api
            .send(
                "GET",
                &format!("/api/avatars/{id}?fields=name&include=comments"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = api.send("GET", "/openapi.json", None, None).await;
        for parameter in ["avatar.fields", "avatar.include"] {
            let schema = &r.body["components"]["parameters"][parameter]["schema"];
            assert_eq!(schema["minItems"], 1, "{parameter}: {schema}");
        }
        api.cleanup().await;
    }
);

both!(
    a_create_action_that_needs_a_field_was_documented_with_an_optional_body,
    |dialect: Dialect| async move {
        let api = TestApi::new(
            dialect,
            &[
                ("avatar", crate::harness::AVATAR),
                ("comment", crate::harness::COMMENT),
                ("review", crate::fuzz::REVIEW),
            ],
        )
        .await;
        let doc = api.send("GET", "/openapi.json", None, None).await.body;
        // `quick` accepts the required `avatar` and sets only `stars`.
        let body = &doc["paths"]["/api/reviews/quick"]["post"]["requestBody"];
        assert_eq!(body["required"], true, "{body}");
        let schema = &doc["components"]["schemas"]["review.actions.quick"];
        assert_eq!(schema["type"], "object", "{schema}");
        assert_eq!(schema["required"], json!(["avatar_id"]), "{schema}");
        // `publish` needs nothing: its body stays optional (or `null`).
        let body = &doc["paths"]["/api/avatars/{id}/publish"]["post"]["requestBody"];
        assert_eq!(body["required"], false, "{body}");
        let alice = api.user("alice", "user").await;
        for sent in [None, Some(json!(null)), Some(json!({}))] {
            let r = api
                .send("POST", "/api/reviews/quick", Some(&alice), sent.clone())
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{sent:?}: {}",
                r.body
            );
            assert_eq!(r.body["error"]["fields"]["avatar_id"][0], "is required");
        }
        api.cleanup().await;
    }
);
