//! Create, read, update, destroy, named actions, policies and errors.

use axum::http::StatusCode;
use kumo_db::sql::Dialect;
use serde_json::json;

use crate::both;
use crate::harness::{ADMIN, AVATAR, COMMENT, TestApi};

both!(create_read_update_destroy, |dialect: Dialect| async move {
    let api = TestApi::avatars(dialect).await;
    let alice = api.user("alice", "user").await;
    let alice_id = api.user_id(&alice);
    let created = api
        .send(
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(json!({
                "name": "Robot", "uploader_id": alice_id, "tags": ["metal"],
                "released_at": "2026-03-01T12:00:00.123456+02:00",
                "metadata": {"rig": "humanoid"}, "secret_note": "hidden", "polycount": 10
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let record = created.data();
    assert_eq!(record["name"], "Robot");
    assert_eq!(record["is_public"], false, "default applied");
    assert_eq!(record["kind"], "humanoid");
    assert_eq!(
        record["released_at"], "2026-03-01T10:00:00.123Z",
        "UTC, milliseconds"
    );
    assert!(record.get("secret_note").is_none(), "sensitive never sent");
    let id = created.id();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);

    let got = api
        .send("GET", &format!("/api/avatars/{id}"), Some(&alice), None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.data(), record);

    let patched = api
        .send(
            "PATCH",
            &format!("/api/avatars/{id}"),
            Some(&alice),
            Some(json!({"name": "Robo"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.data()["name"], "Robo");
    assert_eq!(patched.data()["polycount"], 10, "untouched fields stay");

    let published = api
        .send(
            "POST",
            &format!("/api/avatars/{id}/publish"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.body);
    assert_eq!(published.data()["is_public"], true, "`set` applied");

    let bob = api.user("bob", "user").await;
    let bumped = api
        .send("POST", &format!("/api/avatars/{id}/bump"), Some(&bob), None)
        .await;
    assert_eq!(bumped.status, StatusCode::OK, "{}", bumped.body);
    assert_eq!(bumped.data()["polycount"], 11, "`increment` applied");

    let not_accepted = api
        .send(
            "POST",
            &format!("/api/avatars/{id}/rate"),
            Some(&bob),
            Some(json!({"name": "x", "rating": 2.5})),
        )
        .await;
    assert_eq!(not_accepted.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        not_accepted.body["error"]["fields"]["name"][0],
        "is not accepted by this action"
    );
    let rated = api
        .send(
            "POST",
            &format!("/api/avatars/{id}/rate"),
            Some(&bob),
            Some(json!({"rating": 2.5})),
        )
        .await;
    assert_eq!(rated.status, StatusCode::OK, "{}", rated.body);
    assert_eq!(rated.data()["rating"], 2.5);

    let deleted = api
        .send("DELETE", &format!("/api/avatars/{id}"), Some(&alice), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.data()["name"], "Robo");
    let gone = api
        .send("GET", &format!("/api/avatars/{id}"), Some(&alice), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["error"]["code"], "not_found");
    api.cleanup().await;
});

both!(
    read_policies_hide_rows_everywhere,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let bob = api.user("bob", "user").await;
        let alice_id = api.user_id(&alice);
        let private = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "Secret", "uploader_id": alice_id, "polycount": 7})),
            )
            .await
            .id();
        let public = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "Shown", "uploader_id": alice_id, "is_public": true})),
            )
            .await
            .id();

        let names = |r: &crate::harness::Reply| -> Vec<String> {
            r.data()
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let anon = api.send("GET", "/api/avatars", None, None).await;
        assert_eq!(names(&anon), ["Shown"]);
        let own = api
            .send("GET", "/api/avatars?sort=name", Some(&alice), None)
            .await;
        assert_eq!(names(&own), ["Secret", "Shown"]);
        let admin = api
            .send("GET", "/api/avatars?page[count]=true", Some(ADMIN), None)
            .await;
        // The read policy names no role: an admin reads what it allows, too.
        assert_eq!(admin.body["page"]["total"], 1);

        // Invisible means 404, for every operation.
        for (method, path) in [
            ("GET", format!("/api/avatars/{private}")),
            ("PATCH", format!("/api/avatars/{private}")),
            ("DELETE", format!("/api/avatars/{private}")),
            ("POST", format!("/api/avatars/{private}/bump")),
        ] {
            let body = (method == "PATCH").then(|| json!({"name": "x"}));
            let r = api.send(method, &path, Some(&bob), body).await;
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "{method} {path}: {}",
                r.body
            );
        }
        // Visible but not Bob's: 403; anonymous: 401.
        let r = api
            .send(
                "PATCH",
                &format!("/api/avatars/{public}"),
                Some(&bob),
                Some(json!({"name": "x"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = api
            .send(
                "PATCH",
                &format!("/api/avatars/{public}"),
                None,
                Some(json!({"name": "x"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);

        // No sniffing the hidden avatar's values through filters: Bob filtering
        // on its exact values gets nothing, same as a wrong guess.
        for query in [
            "filter[polycount]=7",
            "filter[name]=Secret",
            "filter[name][starts_with]=Se",
        ] {
            let r = api
                .send("GET", &format!("/api/avatars?{query}"), Some(&bob), None)
                .await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(names(&r).is_empty(), "{query}");
        }
        // Users are readable only by themselves and staff: filtering avatars by
        // their uploader's email does not reveal whose email it is.
        let r = api
            .send(
                "GET",
                "/api/avatars?filter[uploader.email]=alice@example.com",
                Some(&bob),
                None,
            )
            .await;
        assert!(names(&r).is_empty(), "{}", r.body);
        let r = api
            .send(
                "GET",
                "/api/avatars?filter[uploader.email]=alice@example.com",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(names(&r), ["Secret", "Shown"]);
        // Includes show a related record only when it is readable.
        let r = api
            .send(
                "GET",
                &format!("/api/avatars/{public}?include=uploader"),
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(r.data()["uploader"], serde_json::Value::Null);
        let r = api
            .send(
                "GET",
                &format!("/api/avatars/{public}?include=uploader"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.data()["uploader"]["username"], "alice");
        api.cleanup().await;
    }
);

both!(
    errors_have_one_shape_and_change_nothing,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let a = Some(alice.as_str());
        let code = |r: &crate::harness::Reply| {
            r.body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };

        for (query, field) in [
            ("bogus=1", "bogus"),
            ("filter[nope]=1", "filter[nope]"),
            ("filter[name][like]=x", "filter[name][like]"),
            ("filter[polycount]=many", "filter[polycount]"),
            ("filter[metadata]=1", "filter[metadata]"),
            ("sort=secret_note", "sort"),
            ("page[size]=251", "page[size]"),
            ("page[after]=forged.cursor", "page[after]"),
            ("include=friends", "include"),
            ("fields=secret_note", "fields"),
        ] {
            let r = api
                .send("GET", &format!("/api/avatars?{query}"), a, None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
            assert!(
                r.body["error"]["fields"][field].is_array(),
                "{query}: {}",
                r.body
            );
        }

        let r = api.send("GET", "/api/avatars", Some("forged"), None).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::UNAUTHORIZED, "unauthenticated".into())
        );
        let r = api.send("GET", "/api/nothing", a, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        // The caller is checked before the route's resource is looked up.
        let r = api.send("GET", "/api/nothing", Some("forged"), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = api.send("GET", "/api/avatars/not-a-uuid", a, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        let request = |body: &str, content_type: &str| {
            axum::http::Request::builder()
                .method("POST")
                .uri("/api/avatars")
                .header("authorization", "Bearer alice")
                .header("content-type", content_type)
                .body(axum::body::Body::from(body.to_owned()))
                .unwrap()
        };
        let r = api.raw(request("{\"name\": ", "application/json")).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::BAD_REQUEST, "malformed_json".into())
        );
        let r = api.raw(request("{}", "text/plain")).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
        let r = api.raw(request(&big, "application/json")).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        // The wrong kind of body is refused as such, whatever its size.
        let r = api.raw(request(&big, "text/plain")).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);
        let mut gzipped = request("{}", "application/json");
        gzipped.headers_mut().insert(
            "content-encoding",
            axum::http::HeaderValue::from_static("gzip"),
        );
        let r = api.raw(gzipped).await;
        assert_eq!(
            (r.status, code(&r)),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type".into()
            ),
            "{}",
            r.body
        );

        let r = api
            .send(
                "POST",
                "/api/avatars",
                a,
                Some(json!({
                    "name": "", "uploader_id": alice_id, "polycount": -1, "kind": "robot",
                    "colour": "red", "id": "x", "uploader": alice_id
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        let fields = &r.body["error"]["fields"];
        for f in ["name", "polycount", "kind", "colour", "id", "uploader"] {
            assert!(fields[f].is_array(), "{f} in {}", r.body);
        }
        let r = api
            .send(
                "POST",
                "/api/avatars",
                a,
                Some(json!({"uploader_id": alice_id})),
            )
            .await;
        assert_eq!(r.body["error"]["fields"]["name"][0], "is required");
        let r = api
            .send(
                "POST",
                "/api/avatars",
                a,
                Some(json!({"name": "A", "uploader_id": "0190f0f0-0000-7000-8000-000000000000"})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "dangling key: {}",
            r.body
        );
        assert!(r.body["error"]["fields"]["uploader_id"].is_array());

        let ok = api
            .send(
                "POST",
                "/api/avatars",
                a,
                Some(json!({"name": "A", "uploader_id": alice_id})),
            )
            .await;
        assert_eq!(ok.status, StatusCode::CREATED);
        let r = api
            .send(
                "POST",
                "/api/avatars",
                a,
                Some(json!({"name": "A", "uploader_id": alice_id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body["error"]["fields"]["name"].is_array());
        assert!(r.body["error"]["fields"]["uploader_id"].is_array());

        // A batch is all or nothing, with errors per item.
        let r = api
            .send(
                "POST",
                "/api/avatars",
                a,
                Some(json!([
                    {"name": "B", "uploader_id": alice_id},
                    {"name": "", "uploader_id": alice_id},
                ])),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            r.body["error"]["fields"]["[1].name"].is_array(),
            "{}",
            r.body
        );
        let r = api
            .send(
                "POST",
                "/api/avatars",
                a,
                Some(json!([
                    {"name": "C", "uploader_id": alice_id},
                    {"name": "A", "uploader_id": alice_id},
                ])),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(
            r.body["error"]["fields"]["[1].name"].is_array(),
            "{}",
            r.body
        );
        let r = api
            .send("GET", "/api/avatars?page[count]=true", a, None)
            .await;
        assert_eq!(
            r.body["page"]["total"], 1,
            "nothing of the failed batches stayed"
        );
        let r = api
            .send(
                "POST",
                "/api/avatars",
                a,
                Some(json!([
                    {"name": "C", "uploader_id": alice_id},
                    {"name": "D", "uploader_id": alice_id},
                ])),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.data().as_array().map(Vec::len), Some(2));

        // Creating for someone else breaks the create policy: 403, nothing
        // kept. Cora is a coordinator, so she can read Alice's user record
        // and it is the policy, not the `belongs_to` check, that refuses.
        let cora = api.user("cora", "coordinator").await;
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(&cora),
                Some(json!({"name": "E", "uploader_id": alice_id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "forbidden");
        // Bob, a plain user, cannot read Alice's user record, so for him the
        // key names no record: 422 on `uploader_id`, before any policy.
        let bob = api.user("bob", "user").await;
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(&bob),
                Some(json!({"name": "E", "uploader_id": alice_id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body["error"]["fields"]["uploader_id"].is_array(),
            "{}",
            r.body
        );
        let r = api
            .send("GET", "/api/avatars?page[count]=true", a, None)
            .await;
        assert_eq!(r.body["page"]["total"], 3);
        api.cleanup().await;
    }
);

both!(events_follow_commits_only, |dialect: Dialect| async move {
    let api = TestApi::avatars(dialect).await;
    let alice = api.user("alice", "user").await;
    let alice_id = api.user_id(&alice);
    let mut events = api.state.engine().unwrap().subscribe();
    let created = api
        .send(
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(json!({"name": "A", "uploader_id": alice_id})),
        )
        .await;
    let event = events.try_recv().expect("an event after the create");
    assert_eq!(
        (event.resource.as_str(), event.action.as_str()),
        ("avatar", "create")
    );
    assert_eq!(event.id, created.id());
    assert_eq!(event.record["name"], "A");
    // A rolled-back batch announces nothing.
    let r = api
        .send(
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(json!([
                {"name": "B", "uploader_id": alice_id}, {"name": "A", "uploader_id": alice_id}
            ])),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        events.try_recv().is_err(),
        "no event for a rolled-back write"
    );
    let id = created.id();
    api.send(
        "POST",
        &format!("/api/avatars/{id}/publish"),
        Some(&alice),
        None,
    )
    .await;
    let event = events.try_recv().expect("publish event");
    assert_eq!(event.action, "publish");
    assert_eq!(event.record["is_public"], true);
    api.send("DELETE", &format!("/api/avatars/{id}"), Some(&alice), None)
        .await;
    assert_eq!(events.try_recv().expect("destroy event").action, "destroy");
    api.cleanup().await;
});

both!(
    writes_refused_after_they_ran_announce_nothing,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        // A coordinator reads every user, so she can name bob as the
        // uploader (no 422 for a user she cannot see).
        let alice = api.user("alice", "coordinator").await;
        let bob = api.user("bob", "user").await;
        let alice_id = api.user_id(&alice);
        let bob_id = api.user_id(&bob);
        let created = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "A", "uploader_id": alice_id, "polycount": i64::MAX})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.id();
        let mut events = api.state.engine().unwrap().subscribe();

        // The UPDATE runs, then the result check refuses it (the avatar
        // would no longer be hers): rolled back, nothing announced.
        let r = api
            .send(
                "PATCH",
                &format!("/api/avatars/{id}"),
                Some(&alice),
                Some(json!({"uploader_id": bob_id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        // A single create that the database refuses as a duplicate.
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "A", "uploader_id": alice_id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        // An increment past the integer range.
        let r = api
            .send(
                "POST",
                &format!("/api/avatars/{id}/bump"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            events.try_recv().is_err(),
            "no event for a write that was rolled back"
        );
        let stored = api
            .send("GET", &format!("/api/avatars/{id}"), Some(&alice), None)
            .await;
        assert_eq!(stored.data()["uploader_id"], json!(alice_id));
        assert_eq!(stored.data()["polycount"], json!(i64::MAX));
        api.cleanup().await;
    }
);

both!(
    a_repeated_json_key_is_a_400_not_the_last_value,
    |dialect: Dialect| async move {
        // serde_json keeps the last of two equal keys, so `{"name": "a",
        // "name": "b"}` was read as `{"name": "b"}`: a body that says two
        // things about one field now says neither.
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let post = |uri: &str, body: String| {
            axum::http::Request::builder()
                .method("POST")
                .uri(uri)
                .header("authorization", "Bearer alice")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        // The position is the end of the repeated key's second occurrence.
        for (body, key) in [
            (
                format!(r#"{{"name": "a", "uploader_id": "{alice_id}", "name": "b"}}"#),
                "name",
            ),
            (
                format!(
                    "{{\"name\": \"a\", \"uploader_id\": \"{alice_id}\",\n \"metadata\": {{\"rig\": {{\"x\": 1, \"x\": 2}}}}}}"
                ),
                "x",
            ),
            (
                format!(
                    r#"[{{"name": "a", "uploader_id": "{alice_id}"}}, {{"name": "b", "polycount": 1, "polycount": 2}}]"#
                ),
                "polycount",
            ),
        ] {
            let end = body.rfind(&format!("\"{key}\"")).unwrap() + key.len() + 2;
            let line = body[..end].matches('\n').count() + 1;
            let column = end - body[..end].rfind('\n').map_or(0, |n| n + 1);
            let r = api.raw(post("/api/avatars", body.clone())).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
            assert_eq!(r.body["error"]["code"], "bad_request", "{body}");
            let message = r.body["error"]["message"].as_str().unwrap_or_default();
            assert_eq!(
                message,
                format!(
                    "the body is ambiguous: the key `{key}` appears twice in one object \
                     at line {line} column {column}"
                ),
                "{body}"
            );
        }
        let none = api.send("GET", "/api/avatars", Some(&alice), None).await;
        assert_eq!(none.data(), &json!([]), "nothing was created");

        // Action bodies too, and equal values are still two keys.
        let id = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "A", "uploader_id": alice_id, "is_public": true})),
            )
            .await
            .id();
        let r = api
            .raw(post(
                &format!("/api/avatars/{id}/rate"),
                r#"{"rating": 1, "rating": 1}"#.to_owned(),
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "bad_request");
        // Equal keys in different objects are not repeats.
        let r = api
            .raw(post(
                "/api/avatars",
                format!(
                    r#"{{"name": "B", "uploader_id": "{alice_id}", "metadata": {{"name": {{"name": 1}}}}}}"#
                ),
            ))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    an_api_key_acts_as_its_owner,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let bob = api.user("bob", "user").await;
        let key = format!("key:{alice}");
        let alice_id = api.user_id(&alice);
        let created = api
            .send(
                "POST",
                "/api/avatars",
                Some(&key),
                Some(json!({"name": "Keyed", "uploader_id": alice_id})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.data()["id"].as_str().expect("an id").to_owned();
        let path = format!("/api/avatars/{id}");
        for (who, status) in [
            (&key, StatusCode::OK),
            (&alice, StatusCode::OK),
            (&bob, StatusCode::NOT_FOUND),
        ] {
            let r = api.send("GET", &path, Some(who), None).await;
            assert_eq!(r.status, status, "GET as {who}: {}", r.body);
        }
        let r = api
            .send("POST", &format!("{path}/publish"), Some(&key), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // A key refused is a known caller refused: 403, not 401.
        let r = api
            .send("DELETE", &path, Some(&format!("key:{bob}")), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = api.send("DELETE", &path, Some(&key), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        api.cleanup().await;
    }
);

/// Anyone may read notes; only admins may write them (no write policy).
const NOTE: &str = r#"
[resource]
name = "note"

[attributes]
body = { type = "text", required = true }

[policies]
read = "true"
"#;

// An anonymous PATCH or DELETE of a public avatar took the row's lock
// (`SELECT … FOR UPDATE` on PostgreSQL, the write lock of `BEGIN
// IMMEDIATE` on SQLite) before its policy refused it, so while another
// transaction held that lock the refusal waited for it (and, taken first,
// made a legitimate write wait). A policy that refuses the actor whatever
// the record (here `actor.id == …` for an anonymous actor, or no policy
// for a non-admin) now refuses without a lock, and still answers 404 for
// a record the caller may not read.
both!(
    a_refused_write_waited_for_the_row_lock,
    |dialect: Dialect| async move {
        let api = TestApi::new(
            dialect,
            &[("avatar", AVATAR), ("comment", COMMENT), ("note", NOTE)],
        )
        .await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let public = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({ "name": "Public", "uploader_id": alice_id, "is_public": true })),
            )
            .await;
        assert_eq!(public.status, StatusCode::CREATED, "{}", public.body);
        let public = public.data()["id"].as_str().expect("id").to_owned();
        let private = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({ "name": "Private", "uploader_id": alice_id })),
            )
            .await;
        let private = private.data()["id"].as_str().expect("id").to_owned();
        let note = api
            .send(
                "POST",
                "/api/notes",
                Some(ADMIN),
                Some(json!({ "body": "admins write here" })),
            )
            .await;
        assert_eq!(note.status, StatusCode::CREATED, "{}", note.body);
        let note = note.data()["id"].as_str().expect("id").to_owned();

        // Another transaction holds the lock a write would take.
        let holder = match &api.db {
            kumo_db::db::Database::Postgres(pool) => {
                let mut tx = pool.begin().await.expect("a transaction");
                for lock in [
                    "SELECT 1 FROM avatars FOR UPDATE",
                    "SELECT 1 FROM notes FOR UPDATE",
                ] {
                    sqlx::query(lock)
                        .execute(&mut *tx)
                        .await
                        .expect("row locks");
                }
                Box::new(tx) as Box<dyn std::any::Any + Send>
            }
            kumo_db::db::Database::Sqlite(pool) => Box::new(
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .expect("the write lock"),
            ),
        };
        let missing = "0190a000-0000-7000-8000-000000000000";
        let patch = json!({ "name": "Taken" });
        for (method, uri, token, body, status) in [
            (
                "PATCH",
                format!("/api/avatars/{public}"),
                None,
                Some(patch.clone()),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "DELETE",
                format!("/api/avatars/{public}"),
                None,
                None,
                StatusCode::UNAUTHORIZED,
            ),
            (
                "POST",
                format!("/api/avatars/{public}/publish"),
                None,
                Some(json!({})),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "PATCH",
                format!("/api/avatars/{private}"),
                None,
                Some(patch.clone()),
                StatusCode::NOT_FOUND,
            ),
            (
                "DELETE",
                format!("/api/avatars/{missing}"),
                None,
                None,
                StatusCode::NOT_FOUND,
            ),
            (
                "PATCH",
                format!("/api/notes/{note}"),
                Some(alice.as_str()),
                Some(json!({ "body": "mine" })),
                StatusCode::FORBIDDEN,
            ),
            (
                "DELETE",
                format!("/api/notes/{note}"),
                Some(alice.as_str()),
                None,
                StatusCode::FORBIDDEN,
            ),
        ] {
            let r = tokio::time::timeout(
                std::time::Duration::from_secs(3),
                api.send(method, &uri, token, body),
            )
            .await
            .unwrap_or_else(|_| panic!("{method} {uri} waited for the lock"));
            assert_eq!(r.status, status, "{method} {uri}: {}", r.body);
        }
        drop(holder);
        let r = api
            .send("GET", &format!("/api/avatars/{public}"), None, None)
            .await;
        assert_eq!(r.data()["name"], "Public", "{}", r.body);
        api.cleanup().await;
    }
);
