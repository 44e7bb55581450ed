//! The account store (`kumo_db::query::accounts`) on both databases: rows
//! in and out in one form, taken unique values named, one winner when many
//! transactions race to consume one token, and nothing kept from a
//! transaction that was not committed.

use std::path::PathBuf;
use std::sync::Arc;

use kumo_core::load::load_schema;
use kumo_db::files::Plan;
use kumo_db::query::accounts::{Order, Set, Test};
use kumo_db::query::{CursorKey, Engine, QueryError};
use kumo_db::runner;
use kumo_db::sql::Dialect;
use serde_json::{Value, json};

use crate::harness::TestDb;

const NOW: &str = "2026-11-21T12:00:00.000Z";
const LATER: &str = "2026-11-21T12:15:00.000Z";

/// A database with only Kumo's built-in resources, and an engine over it.
async fn store(dialect: Dialect) -> (TestDb, Arc<Engine>) {
    let schema =
        load_schema(Vec::<(PathBuf, String)>::new(), true).unwrap_or_else(|e| panic!("{e}"));
    let migration = Plan::new(Vec::new(), &schema).migration("00000000000001_initial".into());
    let t = TestDb::new(dialect).await;
    runner::migrate(&t.db, std::slice::from_ref(&migration))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", t.name()));
    let engine = Arc::new(Engine::new(
        t.db.clone(),
        schema,
        CursorKey::new(b"accounts"),
    ));
    (t, engine)
}

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

on_both!(rows_go_in_and_come_out_in_one_form);
async fn rows_go_in_and_come_out_in_one_form(dialect: Dialect) {
    let (t, engine) = store(dialect).await;
    let accounts = engine
        .accounts()
        .expect("the schema has the account resources");
    let mut tx = accounts.begin().await.unwrap();
    let user = tx
        .insert(
            "user",
            &[
                ("email", json!("alice@example.com")),
                ("password_hash", json!("$argon2id$…")),
            ],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(user["role"], "user", "the default");
    assert_eq!(user["inserted_at"], NOW);
    assert_eq!(
        user["password_hash"], "$argon2id$…",
        "sensitive fields are read too"
    );
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);

    let found = tx
        .find_one("user", &[("email", Test::Eq(json!("alice@example.com")))])
        .await
        .unwrap();
    assert_eq!(found.as_ref(), Some(&user));
    let by_id = tx
        .find_one("user", &[("id", Test::Eq(json!(id)))])
        .await
        .unwrap();
    assert_eq!(by_id.as_ref(), Some(&user));

    let locked = tx
        .update(
            "user",
            &[
                ("locked_at", Set::To(json!(LATER))),
                ("role", Set::To(json!("admin"))),
            ],
            &[("id", Test::Eq(json!(id))), ("locked_at", Test::IsNull)],
            LATER,
        )
        .await
        .unwrap();
    assert_eq!(locked.len(), 1);
    assert_eq!(
        (
            &locked[0]["locked_at"],
            &locked[0]["role"],
            &locked[0]["updated_at"]
        ),
        (&json!(LATER), &json!("admin"), &json!(LATER))
    );
    let again = tx
        .update(
            "user",
            &[("locked_at", Set::To(json!(LATER)))],
            &[("id", Test::Eq(json!(id))), ("locked_at", Test::IsNull)],
            LATER,
        )
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "the test on the old value no longer holds"
    );

    for n in 0..3 {
        tx.insert(
            "session",
            &[
                ("user_id", json!(id)),
                ("refresh_token_hash", json!(format!("hash-{n}"))),
                (
                    "expires_at",
                    json!(format!("2026-12-0{}T00:00:00.000Z", n + 1)),
                ),
            ],
            NOW,
        )
        .await
        .unwrap();
    }
    let sessions = tx
        .find(
            "session",
            &[
                ("user_id", Test::Eq(json!(id))),
                ("expires_at", Test::Above(json!("2026-12-01T00:00:00.000Z"))),
            ],
            Some(("expires_at", Order::Descending)),
            None,
        )
        .await
        .unwrap();
    let hashes: Vec<&Value> = sessions.iter().map(|s| &s["refresh_token_hash"]).collect();
    assert_eq!(hashes, [&json!("hash-2"), &json!("hash-1")]);
    let bumped = tx
        .update(
            "session",
            &[("generation", Set::Add(1))],
            &[("refresh_token_hash", Test::Eq(json!("hash-0")))],
            LATER,
        )
        .await
        .unwrap();
    assert_eq!(bumped[0]["generation"], 1);
    assert_eq!(
        tx.delete("session", &[("generation", Test::Below(json!(1)))])
            .await
            .unwrap(),
        2
    );
    tx.commit().await.unwrap();
    t.cleanup().await;
}

on_both!(a_taken_email_is_a_conflict_naming_it);
async fn a_taken_email_is_a_conflict_naming_it(dialect: Dialect) {
    let (t, engine) = store(dialect).await;
    let accounts = engine.accounts().unwrap();
    let mut tx = accounts.begin().await.unwrap();
    tx.insert("user", &[("email", json!("bob@example.com"))], NOW)
        .await
        .unwrap();
    let err = tx
        .insert("user", &[("email", json!("bob@example.com"))], NOW)
        .await
        .unwrap_err();
    match err {
        QueryError::Conflict { fields, .. } => {
            assert!(fields.contains_key("email"), "{fields:?}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The pool closes only once every connection is back.
    drop(tx);
    t.cleanup().await;
}

on_both!(a_transaction_not_committed_leaves_nothing);
async fn a_transaction_not_committed_leaves_nothing(dialect: Dialect) {
    let (t, engine) = store(dialect).await;
    let accounts = engine.accounts().unwrap();
    let mut tx = accounts.begin().await.unwrap();
    tx.insert("user", &[("email", json!("carol@example.com"))], NOW)
        .await
        .unwrap();
    drop(tx);
    let mut tx = accounts.begin().await.unwrap();
    let found = tx
        .find_one("user", &[("email", Test::Eq(json!("carol@example.com")))])
        .await
        .unwrap();
    assert_eq!(found, None);
    drop(tx);
    t.cleanup().await;
}

on_both!(fifty_racing_consumers_of_one_token_have_one_winner);
async fn fifty_racing_consumers_of_one_token_have_one_winner(dialect: Dialect) {
    let (t, engine) = store(dialect).await;
    {
        let mut tx = engine.accounts().unwrap().begin().await.unwrap();
        tx.insert(
            "auth_token",
            &[
                ("purpose", json!("magic_link")),
                ("token_hash", json!("the-token")),
                ("email", json!("dave@example.com")),
                ("expires_at", json!(LATER)),
            ],
            NOW,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let mut racers = Vec::new();
    for _ in 0..50 {
        let engine = engine.clone();
        racers.push(tokio::spawn(async move {
            let mut tx = engine.accounts().unwrap().begin().await.unwrap();
            let won = tx
                .update(
                    "auth_token",
                    &[("used_at", Set::To(json!(NOW)))],
                    &[
                        ("token_hash", Test::Eq(json!("the-token"))),
                        ("used_at", Test::IsNull),
                        ("expires_at", Test::Above(json!(NOW))),
                    ],
                    NOW,
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();
            won.len()
        }));
    }
    let mut winners = 0;
    for racer in racers {
        winners += racer.await.unwrap();
    }
    assert_eq!(winners, 1);
    t.cleanup().await;
}

on_both!(without_an_auth_strategy_there_is_no_account_store);
async fn without_an_auth_strategy_there_is_no_account_store(dialect: Dialect) {
    let schema = load_schema(Vec::<(PathBuf, String)>::new(), false).unwrap();
    let t = TestDb::new(dialect).await;
    let engine = Engine::new(t.db.clone(), schema, CursorKey::new(b"accounts"));
    assert!(engine.accounts().is_none());
    t.cleanup().await;
}
