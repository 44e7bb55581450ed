//! What the realtime layer hears. A destroy announces, after its commit,
//! every row the database deleted (`on_delete = "cascade"`, down a chain)
//! or changed (`"nullify"`) because of it; before, only the destroyed
//! record was announced. A destroy that `restrict` refuses announces
//! nothing. An event comes only after its write commits, and a write whose
//! client went away is still made and announced.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use kumo_db::db::Database;
use kumo_db::query::Event;
use kumo_db::sql::Dialect;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::broadcast;

use crate::both;
use crate::harness::{ADMIN, TestApi};

/// Folders nest (a self-reference that cascades), hold items (cascade)
/// that carry labels (cascade), and notes are only filed in them
/// (nullify). No policies: the admin does everything.
const FOLDER: &str = r#"
[resource]
name = "folder"

[attributes]
name   = { type = "string", required = true }
secret = { type = "string", sensitive = true }

[relationships]
parent = { belongs_to = "folder", on_delete = "cascade" }

[actions.scrap]
type = "destroy"
"#;

const ITEM: &str = r#"
[resource]
name = "item"

[attributes]
name   = { type = "string", required = true }
secret = { type = "string", sensitive = true }

[relationships]
folder = { belongs_to = "folder", required = true, on_delete = "cascade" }
"#;

const LABEL: &str = r#"
[resource]
name = "label"

[attributes]
text = { type = "string", required = true }

[relationships]
item = { belongs_to = "item", required = true, on_delete = "cascade" }
"#;

const NOTE: &str = r#"
[resource]
name = "note"

[attributes]
title  = { type = "string", required = true }
secret = { type = "string", sensitive = true }

[relationships]
folder = { belongs_to = "folder", on_delete = "nullify" }
origin = { belongs_to = "folder", on_delete = "nullify" }
"#;

/// Every event announced so far.
pub(crate) fn drain(events: &mut broadcast::Receiver<Arc<Event>>) -> Vec<Arc<Event>> {
    let mut all = Vec::new();
    while let Ok(event) = events.try_recv() {
        all.push(event);
    }
    all
}

/// Events keyed by record id: (resource, action, record).
fn by_id(events: &[Arc<Event>]) -> BTreeMap<String, (String, String, Value)> {
    let mut map = BTreeMap::new();
    for e in events {
        let previous = map.insert(
            e.id.clone(),
            (
                e.resource.clone(),
                e.action.clone(),
                Value::Object(e.record.clone()),
            ),
        );
        assert!(previous.is_none(), "one event per record: {events:?}");
    }
    map
}

async fn create(api: &TestApi, plural: &str, body: Value) -> Value {
    let r = api
        .send("POST", &format!("/api/{plural}"), Some(ADMIN), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{plural}: {}", r.body);
    r.data().clone()
}

/// A tree of three folders, items in the middle and the deepest one with
/// labels, notes filed in (and from) them, and things outside the tree.
struct Tree {
    root: Value,
    child: Value,
    grandchild: Value,
    item: Value,
    deep_item: Value,
    labels: Vec<Value>,
    /// Filed in the grandchild, from the child: both keys nullified.
    note: Value,
    /// Filed in a folder outside the tree: unchanged.
    other_note: Value,
    other_folder: Value,
}

async fn tree(api: &TestApi) -> Tree {
    let root = create(api, "folders", json!({"name": "root", "secret": "s"})).await;
    let child = create(
        api,
        "folders",
        json!({"name": "child", "parent_id": root["id"], "secret": "s"}),
    )
    .await;
    let grandchild = create(
        api,
        "folders",
        json!({"name": "grandchild", "parent_id": child["id"]}),
    )
    .await;
    let other_folder = create(api, "folders", json!({"name": "elsewhere"})).await;
    let item = create(
        api,
        "items",
        json!({"name": "in child", "folder_id": child["id"], "secret": "s"}),
    )
    .await;
    let deep_item = create(
        api,
        "items",
        json!({"name": "in grandchild", "folder_id": grandchild["id"]}),
    )
    .await;
    let mut labels = Vec::new();
    for text in ["red", "blue"] {
        labels.push(
            create(
                api,
                "labels",
                json!({"text": text, "item_id": deep_item["id"]}),
            )
            .await,
        );
    }
    let note = create(
        api,
        "notes",
        json!({"title": "filed", "folder_id": grandchild["id"], "origin_id": child["id"], "secret": "s"}),
    )
    .await;
    let other_note = create(
        api,
        "notes",
        json!({"title": "kept", "folder_id": other_folder["id"], "origin_id": root["id"]}),
    )
    .await;
    Tree {
        root,
        child,
        grandchild,
        item,
        deep_item,
        labels,
        note,
        other_note,
        other_folder,
    }
}

async fn folders(dialect: Dialect) -> TestApi {
    TestApi::new(
        dialect,
        &[
            ("folder", FOLDER),
            ("item", ITEM),
            ("label", LABEL),
            ("note", NOTE),
        ],
    )
    .await
}

/// Checks the events of destroying `t.root` (announced as `action`): each
/// row the cascades deleted, as it was, and the notes they nullified, as
/// they are now; sensitive fields left out of every one.
async fn check_tree_events(api: &TestApi, t: &Tree, events: &[Arc<Event>], action: &str) {
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_owned();
    // The destroyed record comes first, then what followed from it.
    assert_eq!(events[0].id, id(&t.root), "{events:?}");
    let got = by_id(events);
    let mut want: BTreeMap<String, (String, String, Value)> = BTreeMap::new();
    want.insert(
        id(&t.root),
        ("folder".into(), action.into(), t.root.clone()),
    );
    for (resource, record) in [
        ("folder", &t.child),
        ("folder", &t.grandchild),
        ("item", &t.item),
        ("item", &t.deep_item),
        ("label", &t.labels[0]),
        ("label", &t.labels[1]),
    ] {
        want.insert(
            id(record),
            (resource.into(), "destroy".into(), record.clone()),
        );
    }
    let mut nullified = t.note.clone();
    nullified["folder_id"] = Value::Null;
    nullified["origin_id"] = Value::Null;
    want.insert(id(&t.note), ("note".into(), "update".into(), nullified));
    assert_eq!(got, want);
    for e in events {
        assert!(!e.record.contains_key("secret"), "{e:?}");
    }
    // The nullified note is stored as announced; the one outside the tree
    // kept its folder, and lost only the key to the root.
    let note = api
        .send(
            "GET",
            &format!("/api/notes/{}", id(&t.note)),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(note.data(), &got[&id(&t.note)].2);
    let other = api
        .send(
            "GET",
            &format!("/api/notes/{}", id(&t.other_note)),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(other.data()["folder_id"], t.other_folder["id"]);
    assert_eq!(other.data()["origin_id"], Value::Null);
    let left = api.send("GET", "/api/folders", Some(ADMIN), None).await;
    assert_eq!(
        left.data().as_array().map(Vec::len),
        Some(1),
        "{}",
        left.body
    );
    let items = api.send("GET", "/api/items", Some(ADMIN), None).await;
    assert_eq!(items.data(), &json!([]));
}

both!(
    a_destroy_announces_the_rows_its_cascades_deleted_and_nullified,
    |dialect: Dialect| async move {
        let api = folders(dialect).await;
        let t = tree(&api).await;
        let mut events = api.state.engine().expect("an API").subscribe();
        let root = t.root["id"].as_str().unwrap_or_default().to_owned();
        let r = api
            .send("DELETE", &format!("/api/folders/{root}"), Some(ADMIN), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let all = drain(&mut events);
        // Root, two folders, two items, two labels, one note. The other
        // note lost its `origin` too.
        assert_eq!(all.len(), 9, "{all:?}");
        let (kept, tree_events): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|e| e.record["id"] == t.other_note["id"]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].action, "update");
        assert_eq!(kept[0].record["origin_id"], Value::Null);
        assert_eq!(kept[0].record["folder_id"], t.other_folder["id"]);
        check_tree_events(&api, &t, &tree_events, "destroy").await;
        api.cleanup().await;
    }
);

both!(
    a_destroy_action_announces_its_cascades_as_plain_destroys,
    |dialect: Dialect| async move {
        let api = folders(dialect).await;
        let t = tree(&api).await;
        let mut events = api.state.engine().expect("an API").subscribe();
        let root = t.root["id"].as_str().unwrap_or_default().to_owned();
        let r = api
            .send(
                "POST",
                &format!("/api/folders/{root}/scrap"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let tree_events: Vec<_> = drain(&mut events)
            .into_iter()
            .filter(|e| e.record["id"] != t.other_note["id"])
            .collect();
        check_tree_events(&api, &t, &tree_events, "scrap").await;
        api.cleanup().await;
    }
);

both!(
    a_cycle_of_cascades_announces_each_row_once,
    |dialect: Dialect| async move {
        let api = folders(dialect).await;
        // Two folders each the other's parent, and one its own.
        let a = create(&api, "folders", json!({"name": "a"})).await;
        let b = create(&api, "folders", json!({"name": "b", "parent_id": a["id"]})).await;
        let own = create(&api, "folders", json!({"name": "own"})).await;
        for (folder, parent) in [(&a, &b), (&own, &own)] {
            let r = api
                .send(
                    "PATCH",
                    &format!("/api/folders/{}", folder["id"].as_str().unwrap_or_default()),
                    Some(ADMIN),
                    Some(json!({"parent_id": parent["id"]})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
        let mut events = api.state.engine().expect("an API").subscribe();
        for (folder, deleted) in [(&a, vec![&a, &b]), (&own, vec![&own])] {
            let id = folder["id"].as_str().unwrap_or_default();
            let r = api
                .send("DELETE", &format!("/api/folders/{id}"), Some(ADMIN), None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let announced: Vec<(String, Value)> = drain(&mut events)
                .iter()
                .map(|e| (e.action.clone(), Value::from(e.id.clone())))
                .collect();
            let want: Vec<(String, Value)> = deleted
                .iter()
                .map(|f| ("destroy".to_owned(), f["id"].clone()))
                .collect();
            assert_eq!(announced, want);
        }
        api.cleanup().await;
    }
);

both!(
    destroying_a_user_announces_their_avatars_and_the_comments_on_them,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let bob = api.user("bob", "user").await;
        let alice_id = api.user_id(&alice);
        let bob_id = api.user_id(&bob);
        let avatar = api
            .send(
                "POST",
                "/api/avatars",
                Some(&bob),
                Some(json!({"name": "B", "uploader_id": bob_id, "is_public": true, "secret_note": "x"})),
            )
            .await;
        assert_eq!(avatar.status, StatusCode::CREATED, "{}", avatar.body);
        let comment = api
            .send(
                "POST",
                "/api/comments",
                Some(&alice),
                Some(json!({"body": "nice", "avatar_id": avatar.id(), "author_id": alice_id})),
            )
            .await;
        assert_eq!(comment.status, StatusCode::CREATED, "{}", comment.body);
        let mut events = api.state.engine().expect("an API").subscribe();
        let r = api
            .send("DELETE", &format!("/api/users/{bob_id}"), Some(ADMIN), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let all = drain(&mut events);
        let seen: Vec<(&str, &str, &str)> = all
            .iter()
            .map(|e| (e.resource.as_str(), e.action.as_str(), e.id.as_str()))
            .collect();
        let (avatar_id, comment_id) = (avatar.id(), comment.id());
        assert_eq!(
            seen,
            [
                ("user", "destroy", bob_id.as_str()),
                ("avatar", "destroy", avatar_id.as_str()),
                ("comment", "destroy", comment_id.as_str()),
            ]
        );
        assert_eq!(all[1].record["name"], "B");
        assert!(!all[1].record.contains_key("secret_note"), "{:?}", all[1]);
        assert_eq!(all[2].record["body"], "nice");
        api.cleanup().await;
    }
);

both!(
    a_destroy_refused_by_restrict_announces_nothing,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let bob = api.user("bob", "user").await;
        let alice_id = api.user_id(&alice);
        let bob_id = api.user_id(&bob);
        // Bob's own avatar would go with him (cascade), but his comment on
        // Alice's avatar keeps him (`author` is restrict).
        let own = api
            .send(
                "POST",
                "/api/avatars",
                Some(&bob),
                Some(json!({"name": "B", "uploader_id": bob_id})),
            )
            .await;
        assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
        let hers = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "A", "uploader_id": alice_id, "is_public": true})),
            )
            .await;
        let comment = api
            .send(
                "POST",
                "/api/comments",
                Some(&bob),
                Some(json!({"body": "hi", "avatar_id": hers.id(), "author_id": bob_id})),
            )
            .await;
        assert_eq!(comment.status, StatusCode::CREATED, "{}", comment.body);
        let mut events = api.state.engine().expect("an API").subscribe();
        let r = api
            .send("DELETE", &format!("/api/users/{bob_id}"), Some(ADMIN), None)
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "conflict");
        assert_eq!(drain(&mut events), Vec::<Arc<Event>>::new());
        // Nothing was deleted: not bob, not his avatar.
        let still = api
            .send(
                "GET",
                &format!("/api/avatars/{}", own.id()),
                Some(&bob),
                None,
            )
            .await;
        assert_eq!(still.status, StatusCode::OK, "{}", still.body);
        // Without the comment, the same destroy goes through and is
        // announced with what it took along.
        let r = api
            .send(
                "DELETE",
                &format!("/api/comments/{}", comment.id()),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        drain(&mut events);
        let r = api
            .send("DELETE", &format!("/api/users/{bob_id}"), Some(ADMIN), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let ids: Vec<String> = drain(&mut events).iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids, [bob_id, own.id()]);
        api.cleanup().await;
    }
);

/// The advisory lock the COMMITs of [`hold_commits`] wait for.
const COMMIT_GATE: i64 = 731_001;

/// Makes every transaction that writes an avatar wait, at its COMMIT, for
/// the advisory lock [`COMMIT_GATE`]: a deferred constraint trigger runs
/// when the transaction commits, after every statement of the write.
async fn hold_commits(pool: &PgPool) {
    for statement in [
        "CREATE FUNCTION kumo_test_wait_for_gate() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_advisory_xact_lock(731001); RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER kumo_test_commit_gate \
         AFTER INSERT OR UPDATE OR DELETE ON avatars \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kumo_test_wait_for_gate()",
    ] {
        sqlx::query(statement)
            .execute(pool)
            .await
            .expect("the commit gate");
    }
}

/// Waits until a transaction of this database waits for [`COMMIT_GATE`],
/// that is, until a write has run every statement and is committing.
async fn until_a_commit_waits(pool: &PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE d.datname = current_database() AND l.locktype = 'advisory' \
             AND NOT l.granted AND l.objid = $1",
        )
        .bind(COMMIT_GATE)
        .fetch_one(pool)
        .await
        .expect("pg_locks");
        if waiting > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no write reached its COMMIT"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next event, however long its write takes to commit.
async fn next_event(events: &mut broadcast::Receiver<Arc<Event>>) -> Arc<Event> {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("the write was never announced")
        .expect("an event")
}

/// Each write is held at its COMMIT while the test looks: nothing is
/// announced yet, and no other connection sees the change. The caller then
/// goes away (its request's future is dropped, as axum drops a handler's
/// when the connection closes); once the COMMIT may go on, the write is
/// made and announced all the same. Before writes ran in a task of their
/// own, the dropped handler took the announcement with it: the change was
/// committed by PostgreSQL, and never announced.
///
/// PostgreSQL only: a deferred constraint trigger can make its COMMIT wait
/// on a lock the test holds, and SQLite has nothing that holds a COMMIT in
/// WAL mode (readers never block it, and the writer already holds the
/// write lock). The order it checks, commit then announce, is in code both
/// databases share (`write.rs`, `detached` in `api.rs`); on SQLite the
/// tests check that a refused or rolled-back write announces nothing.
#[tokio::test]
async fn a_write_whose_caller_went_away_is_still_committed_and_announced() {
    let api = TestApi::avatars(Dialect::Postgres).await;
    let alice = api.user("alice", "user").await;
    let alice_id = api.user_id(&alice);
    let Database::Postgres(pool) = &api.db else {
        unreachable!("a PostgreSQL test");
    };
    let existing = api
        .send(
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(json!({"name": "existing", "uploader_id": alice_id})),
        )
        .await;
    assert_eq!(existing.status, StatusCode::CREATED, "{}", existing.body);
    let existing = existing.id();
    hold_commits(pool).await;
    let mut events = api.state.engine().expect("an API").subscribe();
    let count_named = async |name: &str| -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM avatars WHERE name = $1")
            .bind(name)
            .fetch_one(pool)
            .await
            .expect("count")
    };
    let writes: [(&str, String, Option<Value>, &str); 5] = [
        (
            "POST",
            "/api/avatars".into(),
            Some(json!({"name": "single", "uploader_id": alice_id})),
            "create",
        ),
        (
            "POST",
            "/api/avatars".into(),
            Some(json!([{"name": "batch", "uploader_id": alice_id}])),
            "create",
        ),
        (
            "PATCH",
            format!("/api/avatars/{existing}"),
            Some(json!({"polycount": 7})),
            "update",
        ),
        (
            "POST",
            format!("/api/avatars/{existing}/publish"),
            None,
            "publish",
        ),
        (
            "DELETE",
            format!("/api/avatars/{existing}"),
            None,
            "destroy",
        ),
    ];
    for (round, (method, uri, body, action)) in writes.into_iter().enumerate() {
        let mut gate = pool.acquire().await.expect("a connection");
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(COMMIT_GATE)
            .execute(&mut *gate)
            .await
            .expect("take the gate");
        let caller = api.spawn_send(method, &uri, Some(&alice), body);
        until_a_commit_waits(pool).await;
        // Every statement ran; the COMMIT has not: no event, and nothing
        // another connection can see.
        assert!(
            matches!(
                events.try_recv(),
                Err(broadcast::error::TryRecvError::Empty)
            ),
            "{action}: announced before its commit"
        );
        match action {
            "create" => {
                let name = if round == 0 { "single" } else { "batch" };
                assert_eq!(count_named(name).await, 0, "{action}: visible");
            }
            "update" | "publish" => {
                let (polycount, is_public): (Option<i64>, bool) =
                    sqlx::query_as("SELECT polycount, is_public FROM avatars WHERE id = $1::uuid")
                        .bind(&existing)
                        .fetch_one(pool)
                        .await
                        .expect("the stored avatar");
                assert_eq!(
                    (polycount, is_public),
                    if action == "update" {
                        (None, false)
                    } else {
                        (Some(7), false)
                    }
                );
            }
            _ => assert_eq!(count_named("existing").await, 1, "{action}: visible"),
        }
        // The first caller waits for its answer; the others go away.
        let waiting = if round == 0 {
            Some(caller)
        } else {
            caller.abort();
            assert!(caller.await.expect_err("aborted").is_cancelled());
            None
        };
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(COMMIT_GATE)
            .execute(&mut *gate)
            .await
            .expect("open the gate");
        let event = next_event(&mut events).await;
        assert_eq!(event.action, action);
        match action {
            "create" => {
                let name = if round == 0 { "single" } else { "batch" };
                assert_eq!(event.record["name"], name);
                assert_eq!(count_named(name).await, 1);
            }
            _ => assert_eq!(event.id, existing),
        }
        if let Some(caller) = waiting {
            assert_eq!(caller.await.expect("answered"), StatusCode::CREATED);
        }
    }
    assert_eq!(count_named("existing").await, 0, "destroyed");
    api.cleanup().await;
}

// A destroy that cascades over more rows than a subscriber's buffer holds
// (`EVENT_BACKLOG`): the subscriber that did not keep up is told how many
// events it missed, then reads the rest in order, ending with the last.
both!(
    a_subscriber_that_falls_behind_is_told_how_many_events_it_missed,
    |dialect: Dialect| async move {
        use kumo_db::query::EVENT_BACKLOG;
        use tokio::sync::broadcast::error::TryRecvError;

        let api = folders(dialect).await;
        let folder = api
            .send(
                "POST",
                "/api/folders",
                Some(ADMIN),
                Some(json!({"name": "big"})),
            )
            .await;
        let folder_id = folder.id();
        let items = EVENT_BACKLOG + 100;
        for chunk in (0..items).collect::<Vec<_>>().chunks(500) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|n| json!({"name": format!("item {n}"), "folder_id": folder_id}))
                .collect();
            let r = api
                .send("POST", "/api/items", Some(ADMIN), Some(Value::Array(batch)))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let mut events = api.state.engine().expect("an API").subscribe();
        let r = api
            .send(
                "DELETE",
                &format!("/api/folders/{folder_id}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let announced = items + 1;
        let missed = match events.try_recv() {
            Err(TryRecvError::Lagged(n)) => n as usize,
            other => panic!("expected to hear it fell behind, got {other:?}"),
        };
        let rest = drain(&mut events);
        assert_eq!(missed, announced - EVENT_BACKLOG);
        assert_eq!(missed + rest.len(), announced, "nothing lost silently");
        assert!(
            rest.iter()
                .all(|e| e.action == "destroy" && e.resource == "item")
        );
        api.cleanup().await;
    }
);
