//! The rich schema, migrated on a real database, is exactly what
//! introspection expects, behaves as declared, and rolls back to nothing.

use kumo_db::files::Plan;
use kumo_db::introspect::{self, LiveSchema};
use kumo_db::runner;
use kumo_db::sql::Dialect;

use crate::harness::{TestDb, assert_live_schema, lit, rich_schema, uuid};

#[tokio::test]
async fn postgres_live_schema_matches_and_behaves() {
    live_schema_matches_and_behaves(Dialect::Postgres).await;
}

#[tokio::test]
async fn sqlite_live_schema_matches_and_behaves() {
    live_schema_matches_and_behaves(Dialect::Sqlite).await;
}

async fn live_schema_matches_and_behaves(dialect: Dialect) {
    let schema = rich_schema();
    let plan = Plan::new(Vec::new(), &schema);
    assert!(
        plan.destructive_steps().is_empty(),
        "{:?}",
        plan.destructive_steps()
    );
    let migrations = vec![plan.migration("20260101000000_initial".into())];

    let t = TestDb::new(dialect).await;
    let applied = runner::migrate(&t.db, &migrations)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", t.name(), migrations[0].up(dialect)));
    assert_eq!(applied, ["20260101000000_initial"]);

    let expected = introspect::expected(&plan.new_tables, dialect);
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["memberships", "teams", "users"]
    );
    assert_live_schema(&t, &expected, "after migrating").await;

    // Nothing left to do: no new plan, nothing pending, migrating again is a no-op.
    assert!(Plan::new(plan.new_tables.clone(), &schema).is_empty());
    assert!(
        runner::status(&t.db, &migrations)
            .await
            .unwrap()
            .is_current()
    );
    assert!(
        runner::migrate(&t.db, &migrations)
            .await
            .unwrap()
            .is_empty()
    );

    behaves_as_declared(&t).await;

    let undone = runner::rollback(&t.db, &migrations, 1).await.unwrap();
    assert_eq!(undone, ["20260101000000_initial"]);
    assert_live_schema(&t, &LiveSchema::new(), "after rolling back").await;
    assert_eq!(
        runner::status(&t.db, &migrations)
            .await
            .unwrap()
            .pending
            .len(),
        1
    );

    t.cleanup().await;
}

/// Must fail, mentioning `constraint` if given (SQLite names CHECK
/// constraints in its messages but not unique indexes).
async fn rejects(t: &TestDb, sql: &str, constraint: Option<&str>) {
    match t.try_exec(sql).await {
        Ok(()) => panic!("{}: expected an error from\n{sql}", t.name()),
        Err(e) => {
            if let Some(name) = constraint {
                assert!(
                    e.to_string().contains(name),
                    "{}: error for\n{sql}\nshould name {name}: {e}",
                    t.name()
                );
            }
        }
    }
}

async fn behaves_as_declared(t: &TestDb) {
    let (u1, u2, u3) = (lit(&uuid(1)), lit(&uuid(2)), lit(&uuid(3)));
    let (t1, m1) = (lit(&uuid(11)), lit(&uuid(21)));

    // Defaults fill everything that is not given.
    t.exec(&format!(
        "INSERT INTO \"users\" (\"id\", \"email\") VALUES ({u1}, 'one@example.com')"
    ))
    .await;
    let row = t
        .strings(&format!(
            "SELECT CAST(\"role\" AS TEXT) FROM \"users\" WHERE \"id\" = {u1}
             UNION ALL SELECT CAST(\"name\" AS TEXT) FROM \"users\" WHERE \"id\" = {u1}
             UNION ALL SELECT CAST(\"level\" AS TEXT) FROM \"users\" WHERE \"id\" = {u1}"
        ))
        .await;
    assert_eq!(
        row,
        [Some("player".into()), Some("anon".into()), Some("1".into())],
        "{}",
        t.name()
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM \"users\" WHERE \"inserted_at\" IS NOT NULL AND \"updated_at\" IS NOT NULL AND \"last_seen\" IS NOT NULL")
            .await,
        1
    );

    // CHECK constraints: enum values, integer bounds, string length, arrays.
    rejects(
        t,
        &format!("INSERT INTO \"users\" (\"id\", \"email\", \"role\") VALUES ({u3}, 'x@example.com', 'wizard')"),
        Some("users_role_check"),
    )
    .await;
    rejects(
        t,
        &format!(
            "INSERT INTO \"users\" (\"id\", \"email\", \"level\") VALUES ({u3}, 'x@example.com', 0)"
        ),
        Some("users_level_check"),
    )
    .await;
    rejects(
        t,
        &format!("INSERT INTO \"users\" (\"id\", \"email\") VALUES ({u3}, 'xy')"),
        Some("users_email_check"),
    )
    .await;
    rejects(
        t,
        &format!("UPDATE \"users\" SET \"tags\" = '{{\"a\": 1}}' WHERE \"id\" = {u1}"),
        Some("users_tags_check"),
    )
    .await;
    // An apostrophe in an enum value survives quoting.
    t.exec(&format!(
        "UPDATE \"users\" SET \"role\" = 'game''s master' WHERE \"id\" = {u1}"
    ))
    .await;

    // The unique attribute rejects a duplicate (NULLs aside).
    rejects(
        t,
        &format!("INSERT INTO \"users\" (\"id\", \"email\") VALUES ({u3}, 'one@example.com')"),
        None,
    )
    .await;

    // u2 has mentor u1 (self-reference, nullify) and team t1 (nullify);
    // t1 has captain u1 (restrict); membership m1 = (u2, t1) (cascade).
    t.exec(&format!(
        "INSERT INTO \"users\" (\"id\", \"email\", \"mentor_id\") VALUES ({u2}, 'two@example.com', {u1})"
    ))
    .await;
    t.exec(&format!(
        "INSERT INTO \"teams\" (\"id\", \"captain_id\") VALUES ({t1}, {u1})"
    ))
    .await;
    t.exec(&format!(
        "UPDATE \"users\" SET \"team_id\" = {t1} WHERE \"id\" = {u2}"
    ))
    .await;
    t.exec(&format!(
        "INSERT INTO \"memberships\" (\"id\", \"user_id\", \"team_id\", \"slot\") VALUES ({m1}, {u2}, {t1}, 1)"
    ))
    .await;
    // A foreign key to nowhere is rejected.
    rejects(
        t,
        &format!("UPDATE \"users\" SET \"team_id\" = {u3} WHERE \"id\" = {u2}"),
        None,
    )
    .await;

    // The identity over (user_id, slot) rejects a second membership in slot 1.
    rejects(
        t,
        &format!(
            "INSERT INTO \"memberships\" (\"id\", \"user_id\", \"team_id\", \"slot\") VALUES ({}, {u2}, {t1}, 1)",
            lit(&uuid(22))
        ),
        None,
    )
    .await;

    // Restrict: u1 captains t1.
    rejects(
        t,
        &format!("DELETE FROM \"users\" WHERE \"id\" = {u1}"),
        None,
    )
    .await;
    t.exec(&format!(
        "UPDATE \"teams\" SET \"captain_id\" = NULL WHERE \"id\" = {t1}"
    ))
    .await;
    t.exec(&format!("DELETE FROM \"users\" WHERE \"id\" = {u1}"))
        .await;
    // Nullify, through the self-reference.
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM \"users\" WHERE \"id\" = {u2} AND \"mentor_id\" IS NULL"
        ))
        .await,
        1,
        "{}: mentor_id should be nulled",
        t.name()
    );

    // Deleting t1 nulls users.team_id and cascades to memberships.
    t.exec(&format!("DELETE FROM \"teams\" WHERE \"id\" = {t1}"))
        .await;
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) FROM \"users\" WHERE \"id\" = {u2} AND \"team_id\" IS NULL"
        ))
        .await,
        1,
        "{}: team_id should be nulled",
        t.name()
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM \"memberships\"").await,
        0,
        "{}: memberships should cascade",
        t.name()
    );

    // Cascade through users too.
    let t2 = lit(&uuid(12));
    t.exec(&format!("INSERT INTO \"teams\" (\"id\") VALUES ({t2})"))
        .await;
    t.exec(&format!(
        "INSERT INTO \"memberships\" (\"id\", \"user_id\", \"team_id\") VALUES ({m1}, {u2}, {t2})"
    ))
    .await;
    t.exec(&format!("DELETE FROM \"users\" WHERE \"id\" = {u2}"))
        .await;
    assert_eq!(t.count("SELECT COUNT(*) FROM \"memberships\"").await, 0);
}
