//! Writes made with an [`AuditNote`] (the admin's changes) on both
//! databases: each record written gets one `audit_event` row in the
//! write's own transaction, holding the record before and after (public
//! fields only); a refused write leaves no row; a change to a user is
//! filed under that user; and an audit row that cannot be written rolls
//! the write back.

use std::path::PathBuf;

use kumo_core::actor::Actor;
use kumo_core::load::load_schema;
use kumo_db::files::Plan;
use kumo_db::query::accounts::Test;
use kumo_db::query::{AuditNote, CursorKey, Engine, QueryError, Record, View};
use kumo_db::runner;
use kumo_db::sql::Dialect;
use serde_json::{Map, Value, json};

use crate::harness::TestDb;

const TICKET: &str = r#"[resource]
name = "ticket"

[attributes]
title = { type = "string", required = true, min_length = 1 }
state = { type = "enum", values = ["open", "closed"], default = "open" }
secret = { type = "string", sensitive = true }

[relationships]
owner = { belongs_to = "user", required = true }

[policies]
read = "actor.role == 'admin'"
create = "actor.role == 'admin'"
update = "actor.role == 'admin' && record.title != 'frozen'"
destroy = "actor.role == 'admin'"

[actions.close]
type = "update"
accept = []
set = { state = "closed" }
policy = "actor.role == 'admin'"

[actions.discard]
type = "destroy"
policy = "actor.role == 'admin'"
"#;

/// Deleted with its owner: a destroy's audit row names what it took.
const MEMO: &str = r#"[resource]
name = "memo"

[attributes]
text = { type = "string", required = true }

[relationships]
owner = { belongs_to = "user", required = true, on_delete = "cascade" }

[policies]
read = "actor.role == 'admin'"
create = "actor.role == 'admin'"
"#;

const AT: &str = "2026-11-22T08:00:00.000Z";

macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn postgres() {
                super::$name(Dialect::Postgres).await;
            }

            #[tokio::test]
            async fn sqlite() {
                super::$name(Dialect::Sqlite).await;
            }
        }
    };
}

/// A migrated database with tickets and the account resources, an engine
/// over it, and an admin whose user row exists (an audit row names them).
async fn setup(dialect: Dialect) -> (TestDb, Engine, Actor) {
    let files = vec![
        (PathBuf::from("resources/ticket.toml"), TICKET.to_owned()),
        (PathBuf::from("resources/memo.toml"), MEMO.to_owned()),
    ];
    let schema = load_schema(files, true).unwrap_or_else(|d| panic!("{d}"));
    let migration = Plan::new(Vec::new(), &schema).migration("20260101000000_initial".into());
    let t = TestDb::new(dialect).await;
    runner::migrate(&t.db, std::slice::from_ref(&migration))
        .await
        .unwrap_or_else(|e| panic!("{}: migrating: {e}", t.name()));
    let engine = Engine::new(t.db.clone(), schema, CursorKey::new(b"audited writes"));
    let accounts = engine.accounts().expect("account resources");
    let mut tx = accounts.begin().await.unwrap();
    let boss = tx
        .insert(
            "user",
            &[
                ("email", json!("boss@example.com")),
                ("role", json!("admin")),
            ],
            AT,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (t, engine, Actor::user(boss))
}

/// The admin's note for a change, as the admin's forms make it.
fn note(by: &Actor, change: &str) -> AuditNote {
    let by = by.id().map(|id| id.to_string());
    AuditNote {
        kind: "admin_change".into(),
        user_id: by.clone(),
        ip: Some("203.0.113.0".into()),
        user_agent: Some("test browser".into()),
        at: AT.into(),
        detail: Map::from_iter([
            ("change".to_owned(), json!(change)),
            ("by".to_owned(), json!(by)),
        ]),
    }
}

async fn changes(engine: &Engine) -> Vec<Record> {
    engine
        .accounts()
        .unwrap()
        .read(
            "audit_event",
            &[("kind", Test::Eq(json!("admin_change")))],
            None,
            None,
        )
        .await
        .unwrap()
}

/// The one row for `change` of the record `id`.
async fn row_for(engine: &Engine, id: &str, change: &str) -> Record {
    let rows: Vec<Record> = changes(engine)
        .await
        .into_iter()
        .filter(|r| r["detail"]["record_id"] == id && r["detail"]["change"] == change)
        .collect();
    assert_eq!(rows.len(), 1, "one {change} row for {id}: {rows:?}");
    rows.into_iter().next().unwrap()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

on_both!(each_audited_write_commits_its_row_with_the_record_before_and_after);
async fn each_audited_write_commits_its_row_with_the_record_before_and_after(dialect: Dialect) {
    let (t, engine, boss) = setup(dialect).await;
    let tickets = engine.catalog.get("ticket").unwrap();
    let view = View::default();
    let boss_id = boss.id().unwrap().to_string();
    let body = json!({ "title": "Leak", "secret": "hunter2", "owner_id": boss_id });

    let note_create = note(&boss, "create");
    let created = engine
        .writes(Some(&note_create))
        .create(&boss, tickets, &body, &view)
        .await
        .unwrap();
    let id = id_of(&created);
    let row = row_for(&engine, &id, "create").await;
    assert_eq!(row["user_id"], json!(boss_id), "who");
    assert_eq!(row["outcome"], "success");
    assert_eq!(row["inserted_at"], AT);
    assert_eq!(
        (&row["ip"], &row["user_agent"]),
        (&json!("203.0.113.0"), &json!("test browser"))
    );
    assert_eq!(row["detail"]["by"], json!(boss_id));
    assert_eq!(row["detail"]["before"], Value::Null);
    assert_eq!(row["detail"]["after"]["title"], "Leak");
    assert_eq!(
        row["detail"]["after"]["state"], "open",
        "the default, as stored"
    );
    assert!(
        row["detail"]["after"].get("secret").is_none(),
        "sensitive fields stay out of the log: {row:?}"
    );

    let note_update = note(&boss, "update");
    engine
        .writes(Some(&note_update))
        .update(
            &boss,
            tickets,
            &id,
            &json!({ "title": "Leak fixed" }),
            &view,
        )
        .await
        .unwrap();
    let row = row_for(&engine, &id, "update").await;
    assert_eq!(row["detail"]["before"]["title"], "Leak");
    assert_eq!(row["detail"]["after"]["title"], "Leak fixed");
    assert!(row["detail"]["before"].get("secret").is_none(), "{row:?}");

    let close = tickets
        .resource
        .actions
        .iter()
        .find(|a| a.name == "close")
        .unwrap();
    let note_close = note(&boss, "action:close");
    engine
        .writes(Some(&note_close))
        .action(&boss, tickets, close, Some(&id), &Value::Null, &view)
        .await
        .unwrap();
    let row = row_for(&engine, &id, "action:close").await;
    assert_eq!(row["detail"]["before"]["state"], "open");
    assert_eq!(row["detail"]["after"]["state"], "closed");

    let note_destroy = note(&boss, "destroy");
    engine
        .writes(Some(&note_destroy))
        .destroy(&boss, tickets, &id, &view)
        .await
        .unwrap();
    let row = row_for(&engine, &id, "destroy").await;
    assert_eq!(row["detail"]["before"]["title"], "Leak fixed");
    assert_eq!(row["detail"]["before"]["state"], "closed");
    assert_eq!(row["detail"]["after"], Value::Null);

    // A named destroy action, on a second ticket.
    let other = id_of(&engine.create(&boss, tickets, &body, &view).await.unwrap());
    let discard = tickets
        .resource
        .actions
        .iter()
        .find(|a| a.name == "discard")
        .unwrap();
    let note_discard = note(&boss, "action:discard");
    engine
        .writes(Some(&note_discard))
        .action(&boss, tickets, discard, Some(&other), &Value::Null, &view)
        .await
        .unwrap();
    let row = row_for(&engine, &other, "action:discard").await;
    assert_eq!(row["detail"]["before"]["title"], "Leak");
    assert_eq!(row["detail"]["after"], Value::Null);

    // The writes without a note (the API's) leave none: five rows in all.
    assert_eq!(changes(&engine).await.len(), 5);
    t.cleanup().await;
}

on_both!(a_refused_write_leaves_no_audit_row);
async fn a_refused_write_leaves_no_audit_row(dialect: Dialect) {
    let (t, engine, boss) = setup(dialect).await;
    let tickets = engine.catalog.get("ticket").unwrap();
    let view = View::default();
    let boss_id = boss.id().unwrap().to_string();
    let frozen = json!({ "title": "frozen", "owner_id": boss_id });
    let frozen = id_of(&engine.create(&boss, tickets, &frozen, &view).await.unwrap());
    let note = note(&boss, "refused");
    let writes = engine.writes(Some(&note));

    // The policy (403), a validation (422), a missing record (404), a
    // missing owner (422), and a caller the policy refuses outright.
    let refused = writes
        .update(
            &boss,
            tickets,
            &frozen,
            &json!({ "title": "thawed" }),
            &view,
        )
        .await;
    assert!(
        matches!(refused, Err(QueryError::Forbidden(_))),
        "{refused:?}"
    );
    let invalid = writes
        .update(&boss, tickets, &frozen, &json!({ "state": "lost" }), &view)
        .await;
    assert!(
        matches!(invalid, Err(QueryError::Invalid { .. })),
        "{invalid:?}"
    );
    let missing = writes
        .destroy(
            &boss,
            tickets,
            "0193a5a0-0000-7000-8000-000000000000",
            &view,
        )
        .await;
    assert!(matches!(missing, Err(QueryError::NotFound)), "{missing:?}");
    let dangling = json!({ "title": "x", "owner_id": "0193a5a0-0000-7000-8000-000000000000" });
    let dangling = writes.create(&boss, tickets, &dangling, &view).await;
    assert!(
        matches!(dangling, Err(QueryError::Invalid { .. })),
        "{dangling:?}"
    );
    let anonymous = writes
        .destroy(&Actor::anonymous(), tickets, &frozen, &view)
        .await;
    assert!(anonymous.is_err());

    assert_eq!(changes(&engine).await, Vec::<Record>::new());
    t.cleanup().await;
}

on_both!(a_change_to_a_user_is_filed_under_that_user);
async fn a_change_to_a_user_is_filed_under_that_user(dialect: Dialect) {
    let (t, engine, boss) = setup(dialect).await;
    let users = engine.catalog.get("user").unwrap();
    let view = View::default();
    let boss_id = boss.id().unwrap().to_string();
    let player = engine
        .create(
            &boss,
            users,
            &json!({ "email": "player@example.com" }),
            &view,
        )
        .await
        .unwrap();
    let player_id = id_of(&player);

    let note_update = note(&boss, "update");
    engine
        .writes(Some(&note_update))
        .update(
            &boss,
            users,
            &player_id,
            &json!({ "role": "coordinator" }),
            &view,
        )
        .await
        .unwrap();
    let row = row_for(&engine, &player_id, "update").await;
    assert_eq!(row["user_id"], json!(player_id), "in the player's trail");
    assert_eq!(row["detail"]["by"], json!(boss_id), "naming who");
    assert_eq!(row["detail"]["before"]["role"], "user");
    assert_eq!(row["detail"]["after"]["role"], "coordinator");
    assert!(
        row["detail"]["after"].get("password_hash").is_none(),
        "{row:?}"
    );

    // Gone, the user can hold no row: it is filed under who deleted them,
    // naming what went with them.
    let memos = engine.catalog.get("memo").unwrap();
    let made = engine
        .create(
            &boss,
            memos,
            &json!([
                { "text": "one", "owner_id": player_id },
                { "text": "two", "owner_id": player_id },
            ]),
            &view,
        )
        .await
        .unwrap();
    let memo_ids: std::collections::BTreeSet<String> =
        made.as_array().unwrap().iter().map(id_of).collect();
    let note_destroy = note(&boss, "destroy");
    engine
        .writes(Some(&note_destroy))
        .destroy(&boss, users, &player_id, &view)
        .await
        .unwrap();
    let row = row_for(&engine, &player_id, "destroy").await;
    assert_eq!(row["user_id"], json!(boss_id));
    assert_eq!(row["detail"]["before"]["email"], "player@example.com");
    // The two memos deleted, and the player's own earlier audit row,
    // whose user the database set to null.
    assert_eq!(row["detail"]["cascaded_count"], 3, "{row:?}");
    let cascaded = row["detail"]["cascaded"].as_array().expect("cascaded");
    let named = |resource: &str, change: &str| -> std::collections::BTreeSet<String> {
        cascaded
            .iter()
            .filter(|c| c["resource"] == resource && c["change"] == change)
            .map(|c| c["record_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(named("memo", "destroy"), memo_ids);
    let update_row = row_for(&engine, &player_id, "update").await;
    assert_eq!(
        named("audit_event", "update"),
        std::collections::BTreeSet::from([id_of(&Value::Object(update_row))])
    );
    t.cleanup().await;
}

on_both!(an_audit_row_that_cannot_be_written_rolls_its_write_back);
async fn an_audit_row_that_cannot_be_written_rolls_its_write_back(dialect: Dialect) {
    let (t, engine, boss) = setup(dialect).await;
    let tickets = engine.catalog.get("ticket").unwrap();
    let view = View::default();
    let boss_id = boss.id().unwrap().to_string();
    let body = json!({ "title": "Kept", "owner_id": boss_id });
    let id = id_of(&engine.create(&boss, tickets, &body, &view).await.unwrap());
    // An audit row naming a user who does not exist breaks its foreign
    // key: the database itself refuses the row, inside the write.
    let mut broken = note(&boss, "broken");
    broken.user_id = Some("0193a5a0-0000-7000-8000-0000000000ff".into());
    let writes = engine.writes(Some(&broken));

    let created = writes.create(&boss, tickets, &body, &view).await;
    assert!(
        matches!(created, Err(QueryError::Database(_))),
        "{created:?}"
    );
    let updated = writes
        .update(&boss, tickets, &id, &json!({ "title": "Changed" }), &view)
        .await;
    assert!(
        matches!(updated, Err(QueryError::Database(_))),
        "{updated:?}"
    );
    let destroyed = writes.destroy(&boss, tickets, &id, &view).await;
    assert!(
        matches!(destroyed, Err(QueryError::Database(_))),
        "{destroyed:?}"
    );

    // Nothing of the three writes was kept.
    let list = kumo_db::query::parse_list(&engine.catalog, tickets, "").unwrap();
    let page = engine.list(&boss, tickets, &list).await.unwrap();
    assert_eq!(page.data.len(), 1, "{:?}", page.data);
    assert_eq!(page.data[0]["title"], "Kept");
    assert_eq!(changes(&engine).await, Vec::<Record>::new());
    t.cleanup().await;
}
