//! An API key reaches the engine as an [`Actor`] of its own kind and
//! decides every policy as the user who owns it: it lists and gets what
//! its owner does, writes and runs actions on its owner's records, and is
//! refused with 403 (a known caller), never the 401 of an anonymous one,
//! on both databases.

use kumo_core::actor::Actor;
use kumo_core::load::load_schema;
use kumo_db::files::Plan;
use kumo_db::query::{CursorKey, Engine, Entry, QueryError, View, parse_list};
use kumo_db::runner;
use kumo_db::sql::Dialect;
use serde_json::{Map, Value, json};

use crate::harness::TestDb;

const NOTE: &str = r#"[resource]
name = "note"

[attributes]
text = { type = "string" }
shared = { type = "boolean", required = true, default = false }
pinned = { type = "boolean", required = true, default = false, writable = false }

[relationships]
owner = { belongs_to = "user", required = true }

[policies]
read = "record.shared || actor.id == record.owner_id"
create = "actor.id == record.owner_id"
update = "actor.id == record.owner_id"
destroy = "actor.id == record.owner_id"

[actions.pin]
type = "update"
accept = []
set = { pinned = true }
policy = "actor.id == record.owner_id"
"#;

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// An answer reduced to what a caller can compare: the record, or the
/// error's code.
fn answer<T: serde::Serialize>(result: Result<T, QueryError>) -> Value {
    match result {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        Err(e) => json!({ "error": e.code() }),
    }
}

fn code<T>(result: Result<T, QueryError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// What `actor` reads: the list, and a get of each note.
async fn reads(engine: &Engine, entry: &Entry, actor: &Actor, notes: &[String]) -> Vec<Value> {
    let req = parse_list(&engine.catalog, entry, "sort=text").expect("list request");
    let mut out = vec![answer(
        engine.list(actor, entry, &req).await.map(|p| p.data),
    )];
    for id in notes {
        out.push(answer(engine.get(actor, entry, id, &View::default()).await));
    }
    out
}

async fn an_api_key_decides_as_its_owner(dialect: Dialect) {
    let db = TestDb::new(dialect).await;
    let files = vec![("resources/note.toml".into(), NOTE.to_owned())];
    let schema = load_schema(files, true).unwrap_or_else(|d| panic!("{d}"));
    let migration = Plan::new(Vec::new(), &schema).migration("20260101000000_initial".into());
    runner::migrate(&db.db, std::slice::from_ref(&migration))
        .await
        .unwrap_or_else(|e| panic!("{}: migrating: {e}", db.name()));
    let engine = Engine::new(db.db.clone(), schema, CursorKey::new(b"api keys"));
    let users = engine.catalog.get("user").expect("user");
    let notes = engine.catalog.get("note").expect("note");
    let view = View::default();
    let name = db.name();

    // The auth layer would read these records; here an admin makes them.
    let admin = Actor::user(object(
        json!({"id": "00000000-0000-7000-8000-0000000000ad", "role": "admin"}),
    ));
    let mut records = Vec::new();
    for who in ["alice", "bob"] {
        let body = json!({"email": format!("{who}@example.com"), "username": who});
        let record = engine
            .create(&admin, users, &body, &view)
            .await
            .unwrap_or_else(|e| panic!("{name}: creating {who}: {e}"));
        records.push(object(record));
    }
    let (alice_record, bob_record) = (records[0].clone(), records[1].clone());
    let alice = Actor::user(alice_record.clone());
    let key = Actor::api_key(uuid::Uuid::from_u128(7), alice_record.clone());
    let bob = Actor::user(bob_record.clone());
    let anonymous = Actor::anonymous();

    let note = |owner: &Actor, text: &str, shared: bool| json!({"text": text, "shared": shared, "owner_id": owner.id().map(|id| id.to_string())});
    let mut ids = Vec::new();
    for (owner, text, shared) in [
        (&alice, "a private", false),
        (&alice, "b shared", true),
        (&bob, "c private", false),
        (&bob, "d shared", true),
    ] {
        let made = engine
            .create(owner, notes, &note(owner, text, shared), &view)
            .await
            .unwrap_or_else(|e| panic!("{name}: creating {text}: {e}"));
        ids.push(made["id"].as_str().expect("an id").to_owned());
    }

    // Reads: the key sees exactly what its owner sees, and that is not
    // what another user or nobody sees.
    let by_key = reads(&engine, notes, &key, &ids).await;
    assert_eq!(by_key, reads(&engine, notes, &alice, &ids).await, "{name}");
    assert_ne!(by_key, reads(&engine, notes, &bob, &ids).await, "{name}");
    assert_ne!(
        by_key,
        reads(&engine, notes, &anonymous, &ids).await,
        "{name}"
    );

    // Refused writes change nothing, so each caller can try the same ones:
    // the key is refused exactly where its owner is, with 403, not 401.
    let (bobs_private, bobs_shared) = (&ids[2], &ids[3]);
    let bobs_note = note(&bob, "e", false);
    let refused = async |actor: &Actor| -> Vec<&'static str> {
        vec![
            code(
                engine
                    .update(actor, notes, bobs_shared, &json!({"text": "x"}), &view)
                    .await,
            ),
            code(engine.destroy(actor, notes, bobs_shared, &view).await),
            code(engine.destroy(actor, notes, bobs_private, &view).await),
            code(engine.create(actor, notes, &bobs_note, &view).await),
        ]
    };
    let by_key = refused(&key).await;
    assert_eq!(
        by_key,
        ["forbidden", "forbidden", "not_found", "invalid"],
        "{name}"
    );
    assert_eq!(by_key, refused(&alice).await, "{name}");
    assert_eq!(
        refused(&anonymous).await,
        [
            "unauthenticated",
            "unauthenticated",
            "not_found",
            "unauthenticated"
        ],
        "{name}"
    );

    // Its owner's records it may change, as its owner may.
    let made = engine
        .create(&key, notes, &note(&alice, "e by key", false), &view)
        .await
        .unwrap_or_else(|e| panic!("{name}: create as the key: {e}"));
    assert_eq!(made["owner_id"], alice_record["id"], "{name}");
    let made_id = made["id"].as_str().expect("an id").to_owned();
    let updated = engine
        .update(&key, notes, &ids[0], &json!({"text": "a edited"}), &view)
        .await
        .unwrap_or_else(|e| panic!("{name}: update as the key: {e}"));
    assert_eq!(updated["text"], "a edited", "{name}");
    let pin = notes
        .resource
        .actions
        .iter()
        .find(|a| a.name == "pin")
        .expect("pin");
    let pinned = engine
        .action(&key, notes, pin, Some(&ids[0]), &json!({}), &view)
        .await
        .unwrap_or_else(|e| panic!("{name}: pin as the key: {e}"));
    assert_eq!(pinned["pinned"], true, "{name}");
    assert_eq!(
        code(
            engine
                .action(&key, notes, pin, Some(bobs_shared), &json!({}), &view)
                .await
        ),
        "forbidden",
        "{name}"
    );
    engine
        .destroy(&key, notes, &made_id, &view)
        .await
        .unwrap_or_else(|e| panic!("{name}: destroy as the key: {e}"));
    db.cleanup().await;
}

#[tokio::test]
async fn an_api_key_decides_as_its_owner_on_postgres() {
    an_api_key_decides_as_its_owner(Dialect::Postgres).await;
}

#[tokio::test]
async fn an_api_key_decides_as_its_owner_on_sqlite() {
    an_api_key_decides_as_its_owner(Dialect::Sqlite).await;
}
