//! The SQL generated for typical changes to the rich schema, as reviewed
//! snapshots, and the same migrations applied to and rolled back from real
//! databases holding a row.

use kumo_core::resource::{AttrType, RelationshipKind, ScalarType, Schema};
use kumo_db::files::{Migration, Plan};
use kumo_db::introspect;
use kumo_db::runner;
use kumo_db::sql::Dialect;
use serde_json::json;

use crate::harness::{
    AttributeExt, TestDb, array, assert_live_schema, attr, float, identity, index, integer,
    resource, resource_mut, rich_schema, string, uuid,
};

/// A change to the rich schema and what it should do to the row the apply
/// test keeps in `users`.
struct Scenario {
    name: &'static str,
    schema: Schema,
    /// Queries on `users` and their expected single values after migrating up.
    checks: Vec<Check>,
}

struct Check {
    postgres: &'static str,
    sqlite: &'static str,
    want: &'static str,
}

/// A check whose query is the same on both databases.
fn check(query: &'static str, want: &'static str) -> Check {
    Check {
        postgres: query,
        sqlite: query,
        want,
    }
}

fn add_attribute() -> Scenario {
    let mut schema = rich_schema();
    let users = resource_mut(&mut schema, "user");
    users
        .attributes
        .push(attr("nickname", string(None, Some(30))).unique());
    users.attributes.push(
        attr("xp", integer(Some(0), None))
            .required()
            .default(json!(0)),
    );
    Scenario {
        name: "add_attribute",
        schema,
        checks: vec![check("SELECT CAST(\"xp\" AS TEXT) FROM \"users\"", "0")],
    }
}

fn rename_attribute() -> Scenario {
    let mut schema = rich_schema();
    let users = resource_mut(&mut schema, "user");
    for a in &mut users.attributes {
        match a.name.as_str() {
            // Unique, with a CHECK: the index and the constraint follow.
            "email" => *a = a.clone().renamed_from("email"),
            "bio" => *a = a.clone().renamed_from("bio"),
            _ => {}
        }
        if let Some(old) = a.renamed_from.clone() {
            a.name = if old == "email" {
                "email_address".into()
            } else {
                "about".into()
            };
        }
    }
    // Indexes name the attribute by its new name, as a resource file must:
    // `users_bio_idx` (from `index = true`) becomes `users_about_idx`, and
    // `by_bio` keeps its name over the renamed column.
    for i in &mut users.indexes {
        for k in &mut i.keys {
            if k.column == "bio" {
                k.column = "about".into();
            }
        }
    }
    Scenario {
        name: "rename_attribute",
        schema,
        checks: vec![check(
            "SELECT \"email_address\" FROM \"users\"",
            "one@example.com",
        )],
    }
}

fn change_type_widening() -> Scenario {
    let mut schema = rich_schema();
    let users = resource_mut(&mut schema, "user");
    for a in &mut users.attributes {
        match a.name.as_str() {
            "level" => {
                a.ty = float(Some(1.0), Some(100.0));
                a.default = Some(json!(1.0));
            }
            "birthday" => {
                a.ty = AttrType::Datetime;
                a.default = Some(json!("2000-02-29T00:00:00Z"));
            }
            _ => {}
        }
    }
    Scenario {
        name: "change_type_widening",
        schema,
        checks: vec![check(
            "SELECT CAST(CAST(\"level\" * 2 AS INTEGER) AS TEXT) FROM \"users\"",
            "10",
        )],
    }
}

fn change_type_narrowing() -> Scenario {
    let mut schema = rich_schema();
    let users = resource_mut(&mut schema, "user");
    for a in &mut users.attributes {
        match a.name.as_str() {
            "name" => {
                a.ty = integer(None, None);
                a.default = Some(json!(0));
            }
            "ratio" => {
                a.ty = integer(None, None);
                a.default = Some(json!(-2));
            }
            // The row's object becomes a one-element array on both databases.
            "settings" => {
                a.ty = array(ScalarType::String);
                a.default = Some(json!(["dark"]));
            }
            _ => {}
        }
    }
    Scenario {
        name: "change_type_narrowing",
        schema,
        checks: vec![
            check("SELECT CAST(\"name\" + 1 AS TEXT) FROM \"users\"", "43"),
            Check {
                postgres: "SELECT jsonb_typeof(\"settings\") || ' of ' || jsonb_typeof(\"settings\" -> 0) FROM \"users\"",
                sqlite: "SELECT json_type(\"settings\") || ' of ' || json_type(\"settings\", '$[0]') FROM \"users\"",
                want: "array of object",
            },
        ],
    }
}

fn rename_resource() -> Scenario {
    let mut schema = rich_schema();
    let team = resource_mut(&mut schema, "team");
    team.name = "squad".into();
    team.plural = "squads".into();
    team.renamed_from = Some("team".into());
    for r in &mut schema.resources {
        for rel in &mut r.relationships {
            if let RelationshipKind::BelongsTo { target, .. } = &mut rel.kind
                && target == "team"
            {
                *target = "squad".into();
            }
        }
    }
    Scenario {
        name: "rename_resource",
        schema,
        checks: vec![],
    }
}

fn drop_resource() -> Scenario {
    let mut schema = rich_schema();
    schema.resources.retain(|r| r.name != "team");
    for r in &mut schema.resources {
        r.relationships.retain(|rel| rel.target() != "team");
        r.indexes
            .retain(|i| i.keys.iter().all(|k| k.column != "team_id"));
    }
    Scenario {
        name: "drop_resource",
        schema,
        checks: vec![],
    }
}

fn add_identity() -> Scenario {
    let mut schema = rich_schema();
    resource_mut(&mut schema, "user")
        .identities
        .push(identity("name_level", &["name", "level"]));
    Scenario {
        name: "add_identity",
        schema,
        checks: vec![],
    }
}

/// Indexes come and go without touching data: a declared one, an
/// `index = true` and a search index (`search = true`) are added, one of
/// the first two kinds dropped, and dropping the index that covered
/// `memberships.team_id` brings back the one Kumo adds for it.
fn change_indexes() -> Scenario {
    let mut schema = rich_schema();
    let users = resource_mut(&mut schema, "user");
    users.indexes.retain(|i| i.name != "by_bio");
    users.indexes.push(index("recent", &["-inserted_at"]));
    for a in &mut users.attributes {
        match a.name.as_str() {
            "bio" => a.index = false,
            "score" => a.index = true,
            "name" => a.search = true,
            _ => {}
        }
    }
    resource_mut(&mut schema, "membership").indexes.clear();
    Scenario {
        name: "change_indexes",
        schema,
        checks: vec![],
    }
}

fn scenarios() -> Vec<Scenario> {
    vec![
        add_attribute(),
        rename_attribute(),
        change_type_widening(),
        change_type_narrowing(),
        rename_resource(),
        drop_resource(),
        add_identity(),
        change_indexes(),
    ]
}

/// What a reviewer reads: the plan's summary, then up and down.
fn rendered(plan: &Plan, dialect: Dialect) -> String {
    let mut out = String::new();
    for line in plan.describe() {
        out.push_str(&format!("-- {line}\n"));
    }
    out.push_str(&format!(
        "\n-- up\n{}\n-- down\n{}",
        plan.up_sql(dialect),
        plan.down_sql(dialect)
    ));
    out
}

fn snapshot(name: &str, plan: &Plan) {
    assert!(!plan.is_empty(), "{name}: the plan is empty");
    for dialect in Dialect::ALL {
        insta::assert_snapshot!(
            format!("{name}_{}", dialect.name()),
            rendered(plan, dialect)
        );
    }
}

#[test]
fn initial_create() {
    snapshot("initial_create", &Plan::new(Vec::new(), &rich_schema()));
}

fn snapshot_scenario(scenario: Scenario) {
    let recorded = Plan::new(Vec::new(), &rich_schema()).new_tables;
    snapshot(scenario.name, &Plan::new(recorded, &scenario.schema));
}

#[test]
fn add_attribute_sql() {
    snapshot_scenario(add_attribute());
}

#[test]
fn rename_attribute_sql() {
    snapshot_scenario(rename_attribute());
}

#[test]
fn change_type_widening_sql() {
    snapshot_scenario(change_type_widening());
}

#[test]
fn change_type_narrowing_sql() {
    snapshot_scenario(change_type_narrowing());
}

#[test]
fn rename_resource_sql() {
    snapshot_scenario(rename_resource());
}

#[test]
fn drop_resource_sql() {
    snapshot_scenario(drop_resource());
}

#[test]
fn add_identity_sql() {
    snapshot_scenario(add_identity());
}

#[test]
fn change_indexes_sql() {
    let scenario = change_indexes();
    let recorded = Plan::new(Vec::new(), &rich_schema()).new_tables;
    let plan = Plan::new(recorded, &scenario.schema);
    // Dropping an index loses no data: no --allow-destructive needed.
    assert_eq!(plan.destructive_steps(), Vec::<String>::new());
    snapshot_scenario(scenario);
}

#[tokio::test]
async fn postgres_scenarios_apply_and_roll_back() {
    scenarios_apply_and_roll_back(Dialect::Postgres).await;
}

#[tokio::test]
async fn sqlite_scenarios_apply_and_roll_back() {
    scenarios_apply_and_roll_back(Dialect::Sqlite).await;
}

/// Each scenario on top of the initial migration, one at a time: migrate,
/// compare, roll back, compare again, with a user row that must survive.
async fn scenarios_apply_and_roll_back(dialect: Dialect) {
    let t = TestDb::new(dialect).await;
    let base = rich_schema();
    let initial = Plan::new(Vec::new(), &base);
    let first = initial.migration("00000000000001_initial".into());
    runner::migrate(&t.db, std::slice::from_ref(&first))
        .await
        .unwrap_or_else(|e| panic!("{}: initial: {e}", t.name()));
    let base_expected = introspect::expected(&initial.new_tables, dialect);
    // `name` holds a number so that narrowing it to an integer keeps it.
    t.exec(&format!(
        "INSERT INTO \"users\" (\"id\", \"email\", \"name\", \"level\") VALUES ('{}', 'one@example.com', '42', 5)",
        uuid(1)
    ))
    .await;
    let row_is_intact = |context: String| {
        let t = &t;
        async move {
            let row = t
                .strings("SELECT \"email\" FROM \"users\" UNION ALL SELECT \"name\" FROM \"users\" UNION ALL SELECT CAST(\"level\" AS TEXT) FROM \"users\"")
                .await;
            assert_eq!(
                row,
                [
                    Some("one@example.com".into()),
                    Some("42".into()),
                    Some("5".into())
                ],
                "{} ({context})",
                t.name()
            );
        }
    };

    for (i, scenario) in scenarios().into_iter().enumerate() {
        let name = scenario.name;
        let plan = Plan::new(initial.new_tables.clone(), &scenario.schema);
        let migration = plan.migration(format!("{:014}_{name}", i + 2));
        let migrations: Vec<Migration> = vec![first.clone(), migration];
        let applied = runner::migrate(&t.db, &migrations)
            .await
            .unwrap_or_else(|e| panic!("{} {name}: {e}\n{}", t.name(), migrations[1].up(dialect)));
        assert_eq!(applied.len(), 1, "{name}");
        assert_live_schema(
            &t,
            &introspect::expected(&plan.new_tables, dialect),
            &format!("{name}, up"),
        )
        .await;
        assert!(
            Plan::new(plan.new_tables.clone(), &scenario.schema).is_empty(),
            "{name}: a second plan is not empty"
        );
        assert_eq!(
            t.strings("SELECT CAST(\"id\" AS TEXT) FROM \"users\"")
                .await,
            [Some(uuid(1))],
            "{} {name}: the row is gone",
            t.name()
        );
        for check in &scenario.checks {
            let query = match dialect {
                Dialect::Postgres => check.postgres,
                Dialect::Sqlite => check.sqlite,
            };
            assert_eq!(
                t.strings(query).await,
                [Some(check.want.to_string())],
                "{} {name}: {query}",
                t.name()
            );
        }
        runner::rollback(&t.db, &migrations, 1)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{} {name} down: {e}\n{}",
                    t.name(),
                    migrations[1].down(dialect)
                )
            });
        assert_live_schema(&t, &base_expected, &format!("{name}, down")).await;
        row_is_intact(format!("after rolling back {name}")).await;
    }
    t.cleanup().await;
}

#[tokio::test]
async fn postgres_unconvertible_values_fail_the_migration_cleanly() {
    unconvertible_values_fail_the_migration_cleanly(Dialect::Postgres).await;
}

#[tokio::test]
async fn sqlite_unconvertible_values_fail_the_migration_cleanly() {
    unconvertible_values_fail_the_migration_cleanly(Dialect::Sqlite).await;
}

/// Narrowing `name` to an integer while a row holds `anon` must fail on both
/// databases (SQLite's CAST would quietly store 0) and change nothing.
async fn unconvertible_values_fail_the_migration_cleanly(dialect: Dialect) {
    let t = TestDb::new(dialect).await;
    let initial = Plan::new(Vec::new(), &rich_schema());
    let narrowing = change_type_narrowing();
    let plan = Plan::new(initial.new_tables.clone(), &narrowing.schema);
    assert!(!plan.destructive_steps().is_empty());
    let migrations = vec![
        initial.migration("00000000000001_initial".into()),
        plan.migration("00000000000002_narrowing".into()),
    ];
    runner::migrate(&t.db, &migrations[..1]).await.unwrap();
    t.exec(&format!(
        "INSERT INTO \"users\" (\"id\", \"email\") VALUES ('{}', 'one@example.com')",
        uuid(1)
    ))
    .await;
    let error = runner::migrate(&t.db, &migrations)
        .await
        .expect_err("narrowing 'anon' to an integer must fail");
    assert!(
        matches!(error, kumo_db::Error::MigrationFailed { ref id, .. } if id == "00000000000002_narrowing"),
        "{}: {error}",
        t.name()
    );
    assert_live_schema(
        &t,
        &introspect::expected(&initial.new_tables, dialect),
        "after the failed migration",
    )
    .await;
    assert_eq!(
        t.strings("SELECT \"name\" FROM \"users\"").await,
        [Some("anon".to_string())]
    );
    let status = runner::status(&t.db, &migrations).await.unwrap();
    assert_eq!(status.pending, ["00000000000002_narrowing"]);
    t.cleanup().await;
}

/// The rich schema's SQLite migration, then a user whose nullable JSON and
/// array columns are NULL, through the `sqlite3` program: `Err` with its
/// output if SQLite refused.
fn insert_null_json_with_sqlite3(create_sql: &str, dir: &std::path::Path) -> Result<(), String> {
    let mut child = std::process::Command::new("sqlite3")
        .arg(dir.join("null_json.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sqlite3: {e}"))?;
    let script = format!(
        ".bail on\n{create_sql}\nINSERT INTO \"users\" (\"id\", \"email\", \"settings\", \"tags\", \"lucky_numbers\") VALUES ('{}', 'null@example.com', NULL, NULL, NULL);\n",
        uuid(1)
    );
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// SQLite 3.40 (Debian 12's) says json_valid(NULL) is 0, so a CHECK of
/// plain `json_valid(c)` refused NULL in a nullable JSON or array column;
/// the SQLite sqlx bundles is newer and hid it. Runs on the `sqlite3`
/// program installed on the machine, whatever its version.
#[test]
fn nullable_json_and_arrays_take_null_on_the_installed_sqlite3() {
    // A machine without the program fails this test rather than passing it
    // unrun.
    if let Err(e) = std::process::Command::new("sqlite3")
        .arg("--version")
        .output()
    {
        panic!("cannot run sqlite3 ({e}): scripts/services.sh (run by scripts/test) installs it");
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let sql = Plan::new(Vec::new(), &rich_schema()).up_sql(Dialect::Sqlite);
    if let Err(e) = insert_null_json_with_sqlite3(&sql, dir.path()) {
        panic!("sqlite3 refused NULL JSON:\n{e}");
    }
}

/// Databases migrated before the CHECKs gained `IS NULL OR` still match:
/// introspection compares which columns are checked, not the CHECK text,
/// so `kumo db status` reports no drift and no migration is needed.
#[tokio::test]
async fn the_older_json_checks_are_not_drift() {
    let t = TestDb::sqlite().await;
    let plan = Plan::new(Vec::new(), &rich_schema());
    let mut older = plan.up_sql(Dialect::Sqlite);
    for column in ["settings", "tags", "lucky_numbers"] {
        let c = format!("\"{column}\"");
        older = older
            .replace(&format!("{c} IS NULL OR ("), "(")
            .replace(&format!("{c} IS NULL OR "), "");
    }
    assert!(!older.contains("IS NULL OR"), "{older}");
    t.exec(&older).await;
    let expected = introspect::expected(&plan.new_tables, Dialect::Sqlite);
    assert_live_schema(&t, &expected, "CHECKs without IS NULL").await;
    t.cleanup().await;
}

/// A float column made an integer rounded 2.5 to 2 on PostgreSQL (its
/// round() takes halves to even) but to 3 on SQLite (away from zero), in up
/// migrations and in the down migration of integer → float alike. Both now
/// round halves away from zero.
async fn floats_become_integers_rounding_halves_away_from_zero(dialect: Dialect) {
    let t = TestDb::new(dialect).await;
    let with = |ty: AttrType| {
        let mut item = resource("item");
        item.attributes = vec![attr("qty", ty)];
        Schema {
            resources: vec![item],
        }
    };
    let as_float = Plan::new(Vec::new(), &with(float(None, None)));
    let to_integer = Plan::new(as_float.new_tables.clone(), &with(integer(None, None)));
    let migrations = vec![
        as_float.migration("00000000000001_float".into()),
        to_integer.migration("00000000000002_integer".into()),
    ];
    let values = [2.5, -2.5, 0.5, -0.5, 1.5, 3.49, -3.51, 7.0];
    let rounded = ["3", "-3", "1", "-1", "2", "3", "-4", "7"].map(|v| Some(v.to_string()));
    let insert = || {
        let rows: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("('{}', {v:?})", uuid(i as u64 + 1)))
            .collect();
        format!(
            "INSERT INTO \"items\" (\"id\", \"qty\") VALUES {}",
            rows.join(", ")
        )
    };
    let read = "SELECT CAST(\"qty\" AS TEXT) FROM \"items\" ORDER BY \"id\"";
    runner::migrate(&t.db, &migrations[..1]).await.unwrap();
    t.exec(&insert()).await;
    runner::migrate(&t.db, &migrations).await.unwrap();
    assert_eq!(t.strings(read).await, rounded, "{}: up", t.name());

    // The down migration of integer → float is float → integer.
    let to_float = Plan::new(to_integer.new_tables.clone(), &with(float(None, None)));
    let migrations = [
        migrations,
        vec![to_float.migration("00000000000003_float_again".into())],
    ]
    .concat();
    runner::migrate(&t.db, &migrations).await.unwrap();
    t.exec("DELETE FROM \"items\"").await;
    t.exec(&insert()).await;
    runner::rollback(&t.db, &migrations, 1).await.unwrap();
    assert_eq!(t.strings(read).await, rounded, "{}: down", t.name());
    t.cleanup().await;
}

#[tokio::test]
async fn floats_become_integers_rounding_halves_away_from_zero_on_postgres() {
    floats_become_integers_rounding_halves_away_from_zero(Dialect::Postgres).await;
}

#[tokio::test]
async fn floats_become_integers_rounding_halves_away_from_zero_on_sqlite() {
    floats_become_integers_rounding_halves_away_from_zero(Dialect::Sqlite).await;
}
