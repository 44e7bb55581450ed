//! Shared helpers: throwaway databases, schema builders, the rich schema and
//! a readable comparison of live schemas.

use std::fmt::Write as _;

use kumo_core::resource::{
    AttrType, Attribute, Identity, Index, IndexKey, OnDelete, Policies, Relationship,
    RelationshipKind, Resource, ScalarType, Schema, Value,
};
use kumo_db::db::{Database, Target};
use kumo_db::introspect::LiveSchema;
use kumo_db::sql::Dialect;
use serde_json::json;
use sqlx::AssertSqlSafe;
use tempfile::TempDir;

// ---------------------------------------------------------------------------
// Databases

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// A database that exists for one test. Call [`TestDb::cleanup`] at the end;
/// if the test panics first, `Drop` still drops the PostgreSQL database (and
/// the SQLite file goes with its temporary directory).
pub(crate) struct TestDb {
    pub(crate) db: Database,
    /// `None` once cleaned up.
    target: Option<Target>,
    _dir: Option<TempDir>,
}

impl TestDb {
    pub(crate) async fn new(dialect: Dialect) -> Self {
        match dialect {
            Dialect::Postgres => Self::postgres().await,
            Dialect::Sqlite => Self::sqlite().await,
        }
    }

    pub(crate) async fn postgres() -> Self {
        let base = std::env::var("KUMO_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
        let name = format!("kumo_test_{}", uuid::Uuid::new_v4().simple());
        let Target::Postgres(options) =
            Target::parse(&base).unwrap_or_else(|e| panic!("KUMO_TEST_POSTGRES_URL: {e}"))
        else {
            panic!("KUMO_TEST_POSTGRES_URL must be a postgres:// URL, got {base}");
        };
        let target = Target::Postgres(options.database(&name));
        Self::open(target, None).await
    }

    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let target = Target::parse(&url).expect("sqlite URL");
        Self::open(target, Some(dir)).await
    }

    async fn open(target: Target, dir: Option<TempDir>) -> Self {
        assert!(
            target
                .create()
                .await
                .unwrap_or_else(|e| panic!("creating {}: {e}", target.describe())),
            "{} already existed",
            target.describe()
        );
        let db = target
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", target.describe()));
        TestDb {
            db,
            target: Some(target),
            _dir: dir,
        }
    }

    /// Where the database lives, to open more pools on it.
    pub(crate) fn target(&self) -> &Target {
        self.target.as_ref().expect("a database not cleaned up yet")
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    pub(crate) fn name(&self) -> &'static str {
        self.dialect().name()
    }

    /// Closes the pool and drops the database.
    pub(crate) async fn cleanup(mut self) {
        self.db.close().await;
        if let Some(target) = self.target.take() {
            target
                .drop_database()
                .await
                .unwrap_or_else(|e| panic!("dropping {}: {e}", target.describe()));
        }
    }

    /// Runs SQL (one or more statements) that must succeed.
    pub(crate) async fn exec(&self, sql: &str) {
        if let Err(e) = self.try_exec(sql).await {
            panic!("{}: {sql}\nfailed: {e}", self.name());
        }
    }

    pub(crate) async fn try_exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        let query = sqlx::raw_sql(AssertSqlSafe(sql.to_string()));
        match &self.db {
            Database::Postgres(p) => query.execute(p).await.map(|_| ()),
            Database::Sqlite(p) => query.execute(p).await.map(|_| ()),
        }
    }

    /// The first column of every row, which must be text (or NULL).
    pub(crate) async fn strings(&self, sql: &str) -> Vec<Option<String>> {
        let query = sqlx::query_scalar(AssertSqlSafe(sql.to_string()));
        let result = match &self.db {
            Database::Postgres(p) => query.fetch_all(p).await,
            Database::Sqlite(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
                    .fetch_all(p)
                    .await
            }
        };
        result.unwrap_or_else(|e| panic!("{}: {sql}\nfailed: {e}", self.name()))
    }

    /// A single integer, e.g. `SELECT COUNT(*) …`.
    pub(crate) async fn count(&self, sql: &str) -> i64 {
        let result = match &self.db {
            Database::Postgres(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
                    .fetch_one(p)
                    .await
            }
            Database::Sqlite(p) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
                    .fetch_one(p)
                    .await
            }
        };
        result.unwrap_or_else(|e| panic!("{}: {sql}\nfailed: {e}", self.name()))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Only reached with a target when the test panicked before cleanup.
        // The test's runtime may be unwinding, so drop from a fresh thread.
        if let Some(target @ Target::Postgres(_)) = self.target.take() {
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                if let Err(e) = runtime.block_on(target.drop_database()) {
                    eprintln!("could not drop {}: {e}", target.describe());
                }
            })
            .join();
        }
    }
}

/// A quoted SQL string literal.
pub(crate) fn lit(s: &str) -> String {
    kumo_db::sql::string_literal(s)
}

/// A double-quoted identifier.
pub(crate) fn id(s: &str) -> String {
    kumo_db::sql::ident(s)
}

/// A fixed, readable UUID: `00000000-0000-4000-8000-00000000000n`.
pub(crate) fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

// ---------------------------------------------------------------------------
// Schema builders. Spans, files and policies do not matter to the data layer.

pub(crate) fn resource(name: &str) -> Resource {
    Resource {
        name: name.to_string(),
        plural: format!("{name}s"),
        description: None,
        renamed_from: None,
        system: false,
        attributes: Vec::new(),
        relationships: Vec::new(),
        identities: Vec::new(),
        indexes: Vec::new(),
        policies: Policies::default(),
        actions: Vec::new(),
        file: 0,
        span: 0..0,
    }
}

pub(crate) fn attr(name: &str, ty: AttrType) -> Attribute {
    Attribute {
        name: name.to_string(),
        ty,
        required: false,
        default: None,
        unique: false,
        sensitive: false,
        description: None,
        renamed_from: None,
        writable: true,
        index: false,
        search: false,
        file: 0,
        span: 0..0,
    }
}

pub(crate) trait AttributeExt {
    fn required(self) -> Self;
    fn default(self, value: Value) -> Self;
    fn unique(self) -> Self;
    fn indexed(self) -> Self;
    fn searched(self) -> Self;
    fn renamed_from(self, old: &str) -> Self;
}

impl AttributeExt for Attribute {
    fn required(mut self) -> Self {
        self.required = true;
        self
    }

    fn default(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }

    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    fn indexed(mut self) -> Self {
        self.index = true;
        self
    }

    fn searched(mut self) -> Self {
        self.search = true;
        self
    }

    fn renamed_from(mut self, old: &str) -> Self {
        self.renamed_from = Some(old.to_string());
        self
    }
}

pub(crate) fn belongs_to(
    name: &str,
    target: &str,
    required: bool,
    on_delete: OnDelete,
) -> Relationship {
    Relationship {
        name: name.to_string(),
        kind: RelationshipKind::BelongsTo {
            target: target.to_string(),
            required,
            on_delete,
            writable: true,
        },
        description: None,
        renamed_from: None,
        file: 0,
        span: 0..0,
    }
}

pub(crate) fn identity(name: &str, columns: &[&str]) -> Identity {
    Identity {
        name: name.to_string(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        file: 0,
        span: 0..0,
    }
}

/// An `[indexes]` entry; keys name columns, `-` for descending.
pub(crate) fn index(name: &str, keys: &[&str]) -> Index {
    Index {
        name: name.to_string(),
        keys: keys.iter().map(|k| IndexKey::parse(k)).collect(),
        file: 0,
        span: 0..0,
    }
}

pub(crate) fn string(min_length: Option<u32>, max_length: Option<u32>) -> AttrType {
    AttrType::String {
        min_length,
        max_length,
        pattern: None,
    }
}

pub(crate) fn integer(min: Option<i64>, max: Option<i64>) -> AttrType {
    AttrType::Integer { min, max }
}

pub(crate) fn float(min: Option<f64>, max: Option<f64>) -> AttrType {
    AttrType::Float { min, max }
}

pub(crate) fn enumeration(values: &[&str]) -> AttrType {
    AttrType::Enum {
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

pub(crate) fn array(of: ScalarType) -> AttrType {
    AttrType::Array { of }
}

pub(crate) const EXTERNAL_ID: &str = "6f1c5a2e-8f7d-4c1e-9a3b-2d4e6f8a0b1c";

/// A schema using every attribute type, constraint and default kind, a
/// unique attribute, an identity over a `belongs_to` and an attribute, every
/// `on_delete`, a self-reference, two tables referencing each other
/// (`users.team_id` → `teams`, `teams.captain_id` → `users`), and indexes
/// of every kind: `index = true` on text, declared ones over text, numbers,
/// a `belongs_to` and a timestamp in both directions, and those Kumo adds
/// for `belongs_to` columns no other index starts with.
pub(crate) fn rich_schema() -> Schema {
    let mut user = resource("user");
    user.attributes = vec![
        attr("email", string(Some(3), Some(254)))
            .required()
            .unique(),
        attr("name", string(None, Some(40)))
            .default(json!("anon"))
            .indexed(),
        attr("bio", AttrType::Text).indexed(),
        attr("level", integer(Some(1), Some(100)))
            .required()
            .default(json!(1)),
        attr("karma", integer(None, None)).default(json!(-5)),
        attr("score", float(Some(0.0), Some(1.5))).default(json!(0.5)),
        attr("ratio", float(None, None)).default(json!(-2.0)),
        attr("active", AttrType::Boolean)
            .required()
            .default(json!(true)),
        attr("external_id", AttrType::Uuid).default(json!(EXTERNAL_ID)),
        attr("birthday", AttrType::Date).default(json!("2000-02-29")),
        attr("last_seen", AttrType::Datetime).default(json!("2024-01-02T03:04:05.250Z")),
        attr("settings", AttrType::Json).default(json!({"volume": [1, 2], "theme": "dark"})),
        attr("role", enumeration(&["player", "admin", "game's master"]))
            .required()
            .default(json!("player")),
        attr("tags", array(ScalarType::String)).default(json!(["new", "beta"])),
        attr("lucky_numbers", array(ScalarType::Integer)),
    ];
    user.relationships = vec![
        belongs_to("mentor", "user", false, OnDelete::Nullify),
        belongs_to("team", "team", false, OnDelete::Nullify),
    ];
    user.indexes = vec![
        index("leaderboard", &["role", "-karma"]),
        index("by_bio", &["-bio", "level", "-inserted_at"]),
    ];

    let mut team = resource("team");
    team.attributes = vec![
        attr("title", string(Some(1), None))
            .required()
            .default(json!("team")),
    ];
    team.relationships = vec![belongs_to("captain", "user", false, OnDelete::Restrict)];

    let mut membership = resource("membership");
    membership.attributes = vec![
        attr("slot", integer(Some(0), None))
            .required()
            .default(json!(0)),
    ];
    membership.relationships = vec![
        belongs_to("user", "user", true, OnDelete::Cascade),
        belongs_to("team", "team", true, OnDelete::Cascade),
    ];
    membership.identities = vec![identity("user_slot", &["user_id", "slot"])];
    membership.indexes = vec![index("by_team", &["team_id", "-slot"])];

    Schema {
        resources: vec![user, team, membership],
    }
}

pub(crate) fn resource_mut<'a>(schema: &'a mut Schema, name: &str) -> &'a mut Resource {
    schema
        .resources
        .iter_mut()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no resource {name}"))
}

// ---------------------------------------------------------------------------
// Comparing live schemas

/// Where `live` differs from `expected`, one line per difference; empty when
/// they are equal.
pub(crate) fn schema_diff(live: &LiveSchema, expected: &LiveSchema) -> String {
    let mut out = String::new();
    for (name, want) in expected {
        let Some(got) = live.get(name) else {
            let _ = writeln!(out, "table {name}: missing");
            continue;
        };
        for (column, want_c) in &want.columns {
            match got.columns.get(column) {
                None => {
                    let _ = writeln!(out, "{name}.{column}: missing (want {want_c:?})");
                }
                Some(got_c) if got_c != want_c => {
                    let _ = writeln!(out, "{name}.{column}: got {got_c:?}, want {want_c:?}");
                }
                Some(_) => {}
            }
        }
        for column in got.columns.keys() {
            if !want.columns.contains_key(column) {
                let _ = writeln!(out, "{name}.{column}: unexpected column");
            }
        }
        if got.unique_indexes != want.unique_indexes {
            let _ = writeln!(
                out,
                "{name} unique indexes: got {:?}, want {:?}",
                got.unique_indexes, want.unique_indexes
            );
        }
        if got.indexes != want.indexes {
            let _ = writeln!(
                out,
                "{name} indexes: got {:?}, want {:?}",
                got.indexes, want.indexes
            );
        }
        if got.foreign_keys != want.foreign_keys {
            let _ = writeln!(
                out,
                "{name} foreign keys: got {:?}, want {:?}",
                got.foreign_keys, want.foreign_keys
            );
        }
        if got.primary_key != want.primary_key {
            let _ = writeln!(
                out,
                "{name} primary key: got {:?}, want {:?}",
                got.primary_key, want.primary_key
            );
        }
    }
    for name in live.keys() {
        if !expected.contains_key(name) {
            let _ = writeln!(out, "table {name}: unexpected");
        }
    }
    out
}

/// `Err` with a readable diff unless the live schema is `expected`.
pub(crate) async fn check_live_schema(db: &TestDb, expected: &LiveSchema) -> Result<(), String> {
    let live = kumo_db::introspect::read(&db.db)
        .await
        .map_err(|e| format!("reading the live schema: {e}"))?;
    let diff = schema_diff(&live, expected);
    if diff.is_empty() && &live == expected {
        Ok(())
    } else {
        Err(format!(
            "live schema differs from the expected one:\n{diff}"
        ))
    }
}

/// Panics with a readable diff unless the live schema is `expected`.
pub(crate) async fn assert_live_schema(db: &TestDb, expected: &LiveSchema, context: &str) {
    if let Err(e) = check_live_schema(db, expected).await {
        panic!("{} ({context}): {e}", db.name());
    }
}
