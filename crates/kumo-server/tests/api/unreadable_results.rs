//! A write whose result the caller may not read is made, but answered with
//! the record's id alone: its other values (defaults, an action's `set`,
//! the stored record's other fields) are not the caller's to see. Before
//! this, create, update and actions answered the whole record.

use axum::http::StatusCode;
use kumo_db::sql::Dialect;
use serde_json::json;

use crate::both;
use crate::harness::{ADMIN, TestApi};

/// Anyone may write a post; only public ones (or an admin) may be read.
/// `note` has a default the caller never sends.
const POST: &str = r#"
[resource]
name = "post"

[attributes]
title     = { type = "string", required = true }
is_public = { type = "boolean", default = false }
note      = { type = "string", default = "a default" }

[policies]
read    = "record.is_public || actor.role == 'admin'"
create  = "true"
update  = "true"
destroy = "true"

[actions.hide]
type = "update"
set = { is_public = false }
policy = "true"

[actions.draft]
type = "create"
accept = ["title"]
policy = "true"

[actions.remove]
type = "destroy"
policy = "true"
"#;

both!(
    a_create_the_caller_may_not_read_answers_only_the_id,
    |dialect: Dialect| async move {
        let api = TestApi::new(dialect, &[("post", POST)]).await;
        let mut events = api.state.engine().unwrap().subscribe();
        let hidden = api
            .send("POST", "/api/posts", None, Some(json!({"title": "secret"})))
            .await;
        assert_eq!(hidden.status, StatusCode::CREATED, "{}", hidden.body);
        let id = hidden.id();
        assert_eq!(hidden.body, json!({"data": {"id": id}}));
        // The write was made: the admin reads it whole.
        let got = api
            .send("GET", &format!("/api/posts/{id}"), Some(ADMIN), None)
            .await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.data()["note"], "a default");
        let got = api
            .send("GET", &format!("/api/posts/{id}"), None, None)
            .await;
        assert_eq!(got.status, StatusCode::NOT_FOUND);
        // The event carries the whole record: the realtime layer filters
        // per subscriber.
        let event = events.try_recv().expect("an event after the create");
        assert_eq!(event.id, id);
        assert_eq!(event.record["title"], "secret");
        assert_eq!(event.record["note"], "a default");

        let shown = api
            .send(
                "POST",
                "/api/posts?fields=note",
                None,
                Some(json!({"title": "open", "is_public": true})),
            )
            .await;
        assert_eq!(shown.status, StatusCode::CREATED, "{}", shown.body);
        assert_eq!(
            shown.body,
            json!({"data": {"id": shown.id(), "note": "a default"}}),
            "a readable result is answered, shaped by `fields`"
        );

        let draft = api
            .send(
                "POST",
                "/api/posts/draft",
                None,
                Some(json!({"title": "d"})),
            )
            .await;
        assert_eq!(draft.status, StatusCode::CREATED, "{}", draft.body);
        assert_eq!(draft.body, json!({"data": {"id": draft.id()}}));
        api.cleanup().await;
    }
);

both!(
    a_batch_answers_each_unreadable_item_by_id,
    |dialect: Dialect| async move {
        let api = TestApi::new(dialect, &[("post", POST)]).await;
        let mut events = api.state.engine().unwrap().subscribe();
        let r = api
            .send(
                "POST",
                "/api/posts",
                None,
                Some(json!([
                    {"title": "a"},
                    {"title": "b", "is_public": true},
                    {"title": "c"}
                ])),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let items = r.data().as_array().expect("an array");
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], json!({"id": items[0]["id"]}));
        assert_eq!(items[1]["title"], "b");
        assert_eq!(items[1]["note"], "a default");
        assert_eq!(items[2], json!({"id": items[2]["id"]}));
        for item in items {
            let event = events.try_recv().expect("an event per item");
            assert_eq!(event.record["id"], item["id"]);
            assert!(event.record.contains_key("title"), "{event:?}");
        }
        let all = api.send("GET", "/api/posts", Some(ADMIN), None).await;
        assert_eq!(all.data().as_array().map(Vec::len), Some(3), "all written");
        api.cleanup().await;
    }
);

both!(
    an_update_or_action_leaving_a_record_unreadable_answers_only_the_id,
    |dialect: Dialect| async move {
        let api = TestApi::new(dialect, &[("post", POST)]).await;
        let mut ids = Vec::new();
        for title in ["one", "two"] {
            let r = api
                .send(
                    "POST",
                    "/api/posts",
                    None,
                    Some(json!({"title": title, "is_public": true})),
                )
                .await;
            ids.push(r.id());
        }
        let (id, other) = (&ids[0], &ids[1]);
        let mut events = api.state.engine().unwrap().subscribe();

        let still = api
            .send(
                "PATCH",
                &format!("/api/posts/{id}"),
                None,
                Some(json!({"title": "uno"})),
            )
            .await;
        assert_eq!(still.status, StatusCode::OK, "{}", still.body);
        assert_eq!(still.data()["note"], "a default", "still readable: whole");

        let hidden = api
            .send(
                "PATCH",
                &format!("/api/posts/{id}"),
                None,
                Some(json!({"is_public": false})),
            )
            .await;
        assert_eq!(hidden.status, StatusCode::OK, "{}", hidden.body);
        assert_eq!(hidden.body, json!({"data": {"id": id}}));
        let got = api
            .send("GET", &format!("/api/posts/{id}"), Some(ADMIN), None)
            .await;
        assert_eq!(got.data()["is_public"], false, "the update was made");
        events.try_recv().expect("the first update's event");
        let event = events.try_recv().expect("an event for the hiding update");
        assert_eq!(event.record["title"], "uno");
        assert_eq!(event.record["is_public"], false);

        let hidden = api
            .send("POST", &format!("/api/posts/{other}/hide"), None, None)
            .await;
        assert_eq!(hidden.status, StatusCode::OK, "{}", hidden.body);
        assert_eq!(hidden.body, json!({"data": {"id": other}}));
        let event = events.try_recv().expect("an event for the action");
        assert_eq!(
            (event.action.as_str(), &event.record["is_public"]),
            ("hide", &json!(false))
        );
        api.cleanup().await;
    }
);

both!(
    a_destroy_answers_the_record_the_caller_could_read,
    |dialect: Dialect| async move {
        let api = TestApi::new(dialect, &[("post", POST)]).await;
        let mut ids = Vec::new();
        for title in ["one", "two"] {
            let r = api
                .send(
                    "POST",
                    "/api/posts",
                    None,
                    Some(json!({"title": title, "is_public": true})),
                )
                .await;
            ids.push(r.id());
        }
        let deleted = api
            .send("DELETE", &format!("/api/posts/{}", ids[0]), None, None)
            .await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
        assert_eq!(deleted.data()["title"], "one");
        assert_eq!(deleted.data()["note"], "a default");
        let removed = api
            .send("POST", &format!("/api/posts/{}/remove", ids[1]), None, None)
            .await;
        assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
        assert_eq!(removed.data()["title"], "two");
        api.cleanup().await;
    }
);

/// A gift is read only by its recipient, but anyone signed in may give
/// one; it sits in a room everyone may read.
const GIFT: &str = r#"
[resource]
name = "gift"

[attributes]
label     = { type = "string", required = true }
recipient = { type = "uuid", required = true }

[relationships]
room = { belongs_to = "room", required = true, on_delete = "cascade" }

[policies]
read   = "actor.id == record.recipient"
create = "actor != null"
"#;

const ROOM: &str = r#"
[resource]
name = "room"

[attributes]
name = { type = "string", required = true }

[policies]
read   = "true"
create = "true"
"#;

both!(
    a_gift_to_another_user_answers_only_its_id_and_includes_nothing,
    |dialect: Dialect| async move {
        let api = TestApi::new(dialect, &[("room", ROOM), ("gift", GIFT)]).await;
        let alice = api.user("alice", "user").await;
        let bob = api.user("bob", "user").await;
        let (alice_id, bob_id) = (api.user_id(&alice), api.user_id(&bob));
        let room = api
            .send("POST", "/api/rooms", None, Some(json!({"name": "top"})))
            .await;
        assert_eq!(room.status, StatusCode::CREATED, "{}", room.body);
        let room_id = room.id();
        let r = api
            .send(
                "POST",
                "/api/gifts?include=room",
                Some(&alice),
                Some(json!([
                    {"label": "for bob", "recipient": bob_id, "room_id": room_id},
                    {"label": "for me", "recipient": alice_id, "room_id": room_id}
                ])),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let items = r.data().as_array().expect("an array");
        assert_eq!(items[0], json!({"id": items[0]["id"]}));
        assert_eq!(items[1]["label"], "for me");
        assert_eq!(
            items[1]["room"]["name"], "top",
            "readable items are included"
        );
        let id = items[0]["id"].as_str().unwrap_or_default();
        let got = api
            .send("GET", &format!("/api/gifts/{id}"), Some(&bob), None)
            .await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.data()["label"], "for bob");
        api.cleanup().await;
    }
);
