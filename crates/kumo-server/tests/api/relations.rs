//! Relationships through the API: `include` of belongs_to, has_many (capped)
//! and many_to_many under each target's read policy, sparse `fields`,
//! filtering by a parent's id, and `restrict` foreign keys on destroy.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use kumo_db::query::read::INCLUDE_LIMIT;
use kumo_db::sql::Dialect;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, TestApi};

const BOARD: &str = r#"
[resource]
name = "board"

[attributes]
title     = { type = "string", required = true }
is_public = { type = "boolean", default = true }

[relationships]
owner  = { belongs_to = "user", required = true, on_delete = "restrict" }
posts  = { has_many = "post" }
labels = { many_to_many = "label", through = "board_label" }

[policies]
read    = "record.is_public || actor.id == record.owner_id"
create  = "actor.id == record.owner_id"
destroy = "actor.id == record.owner_id"
"#;

const POST: &str = r#"
[resource]
name = "post"

[attributes]
body   = { type = "text", required = true }
hidden = { type = "boolean", default = false }

[relationships]
board = { belongs_to = "board", required = true, on_delete = "cascade" }

[policies]
read   = "!record.hidden"
create = "true"
"#;

const LABEL: &str = r#"
[resource]
name = "label"

[attributes]
name = { type = "string", required = true, unique = true }

[relationships]
boards = { many_to_many = "board", through = "board_label" }

[policies]
read   = "record.name != 'secret' || actor.role == 'admin'"
create = "true"
"#;

const BOARD_LABEL: &str = r#"
[resource]
name = "board_label"

[relationships]
board = { belongs_to = "board", required = true, on_delete = "cascade" }
label = { belongs_to = "label", required = true, on_delete = "cascade" }

[identities]
unique_pair = ["board", "label"]

[policies]
read   = "true"
create = "true"
"#;

async fn boards_api(dialect: Dialect) -> TestApi {
    TestApi::new(
        dialect,
        &[
            ("board", BOARD),
            ("post", POST),
            ("label", LABEL),
            ("board_label", BOARD_LABEL),
        ],
    )
    .await
}

async fn create(api: &TestApi, token: &str, plural: &str, body: Value) -> Value {
    let r = api
        .send("POST", &format!("/api/{plural}"), Some(token), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{plural}: {}", r.body);
    r.body["data"].clone()
}

fn strings(items: &Value, field: &str) -> BTreeSet<String> {
    items
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| i[field].as_str().expect("a string").to_owned())
        .collect()
}

both!(
    includes_follow_read_policies,
    |dialect: Dialect| async move {
        let api = boards_api(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let board = create(
            &api,
            &alice,
            "boards",
            json!({"title": "Plaza", "owner_id": alice_id}),
        )
        .await;
        let board_id = board["id"].as_str().unwrap().to_owned();
        let private = create(
            &api,
            &alice,
            "boards",
            json!({"title": "Diary", "owner_id": alice_id, "is_public": false}),
        )
        .await;
        let posts: Vec<Value> = (0..INCLUDE_LIMIT + 5)
            .map(|i| json!({"board_id": board_id, "body": format!("post {i:02}")}))
            .chain([json!({"board_id": board_id, "body": "hidden", "hidden": true})])
            .collect();
        create(&api, ADMIN, "posts", Value::Array(posts)).await;
        let labels = create(
            &api,
            ADMIN,
            "labels",
            json!([{"name": "music"}, {"name": "games"}, {"name": "secret"}, {"name": "unused"}]),
        )
        .await;
        let links: Vec<Value> = labels.as_array().unwrap()[..3]
            .iter()
            .map(|l| json!({"board_id": board_id, "label_id": l["id"]}))
            .collect();
        create(&api, ADMIN, "board_labels", Value::Array(links)).await;

        let bob = api.user("bob", "user").await;
        let got = api
            .send(
                "GET",
                &format!("/api/boards/{board_id}?include=owner,posts,labels"),
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        let data = got.data();
        assert_eq!(
            data["owner"],
            Value::Null,
            "another user's account is not readable, so not included"
        );
        assert_eq!(data["owner_id"], alice_id.as_str());
        let included_posts = data["posts"].as_array().expect("posts");
        assert_eq!(included_posts.len(), INCLUDE_LIMIT, "has_many capped");
        assert!(
            included_posts.iter().all(|p| p["body"] != "hidden"),
            "an unreadable post is never included"
        );
        assert_eq!(included_posts[0]["body"], "post 00", "oldest first");
        assert_eq!(
            strings(&data["labels"], "name"),
            BTreeSet::from(["games".to_owned(), "music".to_owned()]),
            "many_to_many, without the label the reader may not see"
        );

        // The rest of a capped has_many: filter the child by its parent's id.
        let rest = api
            .send(
                "GET",
                &format!("/api/posts?filter[board_id]={board_id}&page[offset]=25"),
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(rest.status, StatusCode::OK, "{}", rest.body);
        assert_eq!(
            strings(rest.data(), "body"),
            (25..30).map(|i| format!("post {i:02}")).collect(),
            "the posts past the cap"
        );

        // The private board: invisible to bob through an include, too.
        let private_post = create(
            &api,
            &alice,
            "posts",
            json!({"board_id": private["id"], "body": "dear diary"}),
        )
        .await;
        let as_bob = api
            .send(
                "GET",
                &format!(
                    "/api/posts/{}?include=board",
                    private_post["id"].as_str().unwrap()
                ),
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(as_bob.status, StatusCode::OK, "{}", as_bob.body);
        assert_eq!(as_bob.data()["board"], Value::Null, "unreadable parent");
        assert_eq!(
            as_bob.data()["board_id"],
            private["id"],
            "the id is the post's own field"
        );
        let as_alice = api
            .send(
                "GET",
                &format!(
                    "/api/posts/{}?include=board",
                    private_post["id"].as_str().unwrap()
                ),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(as_alice.data()["board"]["title"], "Diary");
        let own = api
            .send(
                "GET",
                &format!("/api/boards/{board_id}?include=owner"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(
            own.data()["owner"]["username"],
            "alice",
            "belongs_to included"
        );

        // Sparse fields: only those asked for, plus the id; includes still work.
        let sparse = api
            .send(
                "GET",
                "/api/boards?fields=title&include=owner&sort=title",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(sparse.status, StatusCode::OK, "{}", sparse.body);
        let first = sparse.data()[0].as_object().expect("a record");
        let keys: BTreeSet<&str> = first.keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["id", "title", "owner"]), "{first:?}");
        assert_eq!(first["title"], "Diary");
        api.cleanup().await;
    }
);

both!(
    restrict_refuses_destroy_with_409,
    |dialect: Dialect| async move {
        let api = boards_api(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let board = create(
            &api,
            &alice,
            "boards",
            json!({"title": "Plaza", "owner_id": alice_id}),
        )
        .await;
        // alice owns a board, whose owner is `restrict`: she cannot be deleted.
        let refused = api
            .send(
                "DELETE",
                &format!("/api/users/{alice_id}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
        assert_eq!(refused.body["error"]["code"], "conflict");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("other records still refer to this user"),
            "{}",
            refused.body
        );
        let still = api
            .send("GET", &format!("/api/users/{alice_id}"), Some(ADMIN), None)
            .await;
        assert_eq!(still.status, StatusCode::OK, "nothing was deleted");
        // Once the board is gone (its posts cascade), she can be.
        let board_id = board["id"].as_str().unwrap();
        create(
            &api,
            ADMIN,
            "posts",
            json!({"board_id": board_id, "body": "hello"}),
        )
        .await;
        let gone = api
            .send(
                "DELETE",
                &format!("/api/boards/{board_id}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
        let posts = api.send("GET", "/api/posts", Some(ADMIN), None).await;
        assert_eq!(posts.data(), &json!([]), "cascade");
        let deleted = api
            .send(
                "DELETE",
                &format!("/api/users/{alice_id}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
        api.cleanup().await;
    }
);

both!(
    a_batch_names_every_item_the_database_refuses,
    |dialect: Dialect| async move {
        let api = boards_api(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let board = create(
            &api,
            &alice,
            "boards",
            json!({"title": "Plaza", "owner_id": alice_id}),
        )
        .await;
        let labels = create(
            &api,
            ADMIN,
            "labels",
            json!([{"name": "music"}, {"name": "games"}]),
        )
        .await;
        let music = labels[0]["id"].clone();

        // Two taken names: a 409 naming both items, and nothing kept.
        let taken = api
            .send(
                "POST",
                "/api/labels",
                Some(ADMIN),
                Some(json!([{"name": "music"}, {"name": "new"}, {"name": "games"}])),
            )
            .await;
        assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
        let fields = taken.body["error"]["fields"].as_object().expect("fields");
        let keys: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["[0].name", "[2].name"]),
            "{}",
            taken.body
        );
        assert_eq!(
            taken.body["error"]["message"],
            "2 items were refused; see `fields`"
        );
        let all = api
            .send("GET", "/api/labels?page[count]=true", Some(ADMIN), None)
            .await;
        assert_eq!(
            all.body["page"]["total"], 2,
            "the batch left nothing behind"
        );

        // A conflict and a dangling reference: 422 naming both.
        let missing = "0190b6a4-0000-7000-8000-0000000000ff";
        let mixed = api
            .send(
                "POST",
                "/api/board_labels",
                Some(ADMIN),
                Some(json!([
                    {"board_id": board["id"], "label_id": music},
                    {"board_id": board["id"], "label_id": music},
                    {"board_id": board["id"], "label_id": missing}
                ])),
            )
            .await;
        assert_eq!(
            mixed.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            mixed.body
        );
        let fields = mixed.body["error"]["fields"].as_object().expect("fields");
        assert!(fields.contains_key("[1].board_id"), "{}", mixed.body);
        assert!(fields.contains_key("[1].label_id"), "{}", mixed.body);
        assert_eq!(
            fields["[2].label_id"][0],
            format!("no label with id {missing}"),
            "{}",
            mixed.body
        );
        assert!(!fields.contains_key("[0].board_id"), "item 0 was fine");
        let links = api
            .send("GET", "/api/board_labels", Some(ADMIN), None)
            .await;
        assert_eq!(links.data(), &json!([]), "nothing kept");
        api.cleanup().await;
    }
);
