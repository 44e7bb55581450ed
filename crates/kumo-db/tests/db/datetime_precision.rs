//! Datetimes are stored to the millisecond on PostgreSQL (`TIMESTAMPTZ(3)`),
//! whatever writes them, and a database migrated before Kumo declared that
//! (plain `TIMESTAMPTZ`, microseconds) is brought there by
//! [`sql::datetime_milliseconds_sql`] and back by its down migration.

use kumo_db::files::{Migration, Plan};
use kumo_db::introspect;
use kumo_db::runner;
use kumo_db::sql::{self, Dialect};

use crate::harness::{TestDb, assert_live_schema, check_live_schema, rich_schema, uuid};

const MICROS: &str = "'2026-01-02T03:04:05.123456Z'";

/// `last_seen` and `inserted_at` of user 1, as PostgreSQL stores them.
async fn stored(t: &TestDb) -> Vec<Option<String>> {
    t.strings(&format!(
        "SELECT to_char(x AT TIME ZONE 'UTC', 'HH24:MI:SS.US') FROM (
             SELECT last_seen AS x, 1 AS n FROM users WHERE id = '{id}'
             UNION ALL SELECT inserted_at, 2 FROM users WHERE id = '{id}') s ORDER BY n",
        id = uuid(1)
    ))
    .await
}

#[tokio::test]
async fn postgres_rounds_datetimes_written_with_plain_sql_to_milliseconds() {
    let schema = rich_schema();
    let plan = Plan::new(Vec::new(), &schema);
    let migration = plan.migration("20260101000000_initial".into());
    assert!(
        migration
            .postgres_up
            .contains("\"inserted_at\" TIMESTAMPTZ(3) NOT NULL")
    );
    let t = TestDb::postgres().await;
    runner::migrate(&t.db, std::slice::from_ref(&migration))
        .await
        .unwrap();
    // The declared precision is what introspection reads back: no drift.
    let expected = introspect::expected(&plan.new_tables, Dialect::Postgres);
    assert_live_schema(&t, &expected, "after migrating").await;
    t.exec(&format!(
        "INSERT INTO users (id, email, last_seen) VALUES ('{}', 'a@example.com', {MICROS})",
        uuid(1)
    ))
    .await;
    let values = stored(&t).await;
    assert_eq!(values[0].as_deref(), Some("03:04:05.123000"));
    let inserted = values[1].clone().unwrap();
    assert!(inserted.ends_with("000"), "inserted_at {inserted}");
    t.cleanup().await;
}

#[tokio::test]
async fn postgres_database_with_microsecond_datetimes_is_migrated_to_milliseconds_and_back() {
    let schema = rich_schema();
    let plan = Plan::new(Vec::new(), &schema);
    // The initial migration as Kumo wrote it before: plain TIMESTAMPTZ.
    let mut initial = plan.migration("20260101000000_initial".into());
    initial.postgres_up = initial.postgres_up.replace("TIMESTAMPTZ(3)", "TIMESTAMPTZ");
    initial.postgres_down = initial
        .postgres_down
        .replace("TIMESTAMPTZ(3)", "TIMESTAMPTZ");
    let t = TestDb::postgres().await;
    runner::migrate(&t.db, std::slice::from_ref(&initial))
        .await
        .unwrap();
    t.exec(&format!(
        "INSERT INTO users (id, email, last_seen) VALUES ('{}', 'a@example.com', {MICROS})",
        uuid(1)
    ))
    .await;
    assert_eq!(stored(&t).await[0].as_deref(), Some("03:04:05.123456"));
    // Introspection tells the old columns from the declared ones.
    let expected = introspect::expected(&plan.new_tables, Dialect::Postgres);
    let drift = check_live_schema(&t, &expected).await.unwrap_err();
    assert!(drift.contains("timestamptz"), "{drift}");

    let (up, down) = sql::datetime_milliseconds_sql(&plan.new_tables);
    insta::assert_snapshot!("datetime_milliseconds_up", up);
    insta::assert_snapshot!("datetime_milliseconds_down", down);
    let upgrade = Migration {
        id: "20260102000000_datetime_milliseconds".into(),
        postgres_up: up,
        postgres_down: down,
        sqlite_up: String::new(),
        sqlite_down: String::new(),
    };
    let migrations = [initial, upgrade];
    runner::migrate(&t.db, &migrations).await.unwrap();
    assert_live_schema(&t, &expected, "after the upgrade").await;
    let values = stored(&t).await;
    assert_eq!(values[0].as_deref(), Some("03:04:05.123000"));
    assert!(values[1].as_deref().unwrap().ends_with("000"), "{values:?}");

    // Down: PostgreSQL's default precision again; the values stay rounded.
    runner::rollback(&t.db, &migrations, 1).await.unwrap();
    assert!(check_live_schema(&t, &expected).await.is_err());
    t.exec(&format!(
        "UPDATE users SET last_seen = {MICROS} WHERE id = '{}'",
        uuid(1)
    ))
    .await;
    assert_eq!(stored(&t).await[0].as_deref(), Some("03:04:05.123456"));
    t.cleanup().await;
}
