//! Two git branches change the same table, then merge.
//!
//! Each branch runs codegen on its own copy of the project; the merge takes
//! both branches' migrations and both changes to the recorded schema (they
//! touch different files, so git merges them without a conflict). On SQLite
//! one of the migrations is a table rebuild generated without knowing the
//! other branch's column. Applying both must lose nothing, leave the live
//! schema equal to the recorded one (so `kumo codegen --check` stays
//! truthful), and roll back cleanly; when both branches changed the same
//! column, the rebuild must refuse with a clear error and change nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kumo_core::resource::{AttrType, Schema};
use kumo_db::files::{self, Plan};
use kumo_db::introspect;
use kumo_db::runner;
use kumo_db::sql::Dialect;
use serde_json::json;
use tempfile::TempDir;

use crate::harness::*;

/// The schema both branches start from: `avatars` with a name and a rating.
fn base_schema() -> Schema {
    let mut avatar = resource("avatar");
    avatar.attributes = vec![
        attr("name", string(None, Some(64))).required(),
        attr("rating", integer(None, None)),
    ];
    Schema {
        resources: vec![avatar],
    }
}

/// A project's migrations folder on one branch.
struct Branch {
    dir: PathBuf,
}

impl Branch {
    /// What `kumo codegen <name>` does: plan against the recorded schema,
    /// write the migration and the new recorded schema.
    fn codegen(&self, schema: &Schema, id: &str) {
        let recorded = files::read_recorded(&self.dir).expect("recorded schema");
        let plan = Plan::new(recorded, schema);
        assert!(!plan.is_empty(), "{id}: codegen found nothing to do");
        files::write(&self.dir, &plan.migration(id.to_string()), &plan.new_tables)
            .expect("writing the migration");
    }

    /// Whether `kumo codegen --check` would find changes still to generate.
    fn codegen_check_is_clean(&self, schema: &Schema) -> bool {
        Plan::new(files::read_recorded(&self.dir).unwrap(), schema).is_empty()
    }

    fn migrations(&self) -> Vec<files::Migration> {
        files::read_migrations(&self.dir).expect("migrations")
    }

    fn sqlite_up(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.join(id).join("sqlite.up.sql")).unwrap()
    }
}

/// Every file under `dir`, by path relative to it, with its content.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn write_tree(dir: &Path, files: &BTreeMap<PathBuf, String>) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A base commit and two branches made from it, all on disk.
struct Repo {
    _root: TempDir,
    base: Branch,
    a: Branch,
    b: Branch,
    merged: Branch,
}

impl Repo {
    /// The base commit: the initial migration of [`base_schema`].
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let branch = |name: &str| Branch {
            dir: root.path().join(name).join("migrations"),
        };
        let (base, a, b, merged) = (branch("base"), branch("a"), branch("b"), branch("merged"));
        base.codegen(&base_schema(), "20260101000000_initial");
        let files = tree(&base.dir);
        write_tree(&a.dir, &files);
        write_tree(&b.dir, &files);
        Repo {
            _root: root,
            base,
            a,
            b,
            merged,
        }
    }

    /// What `git merge` makes of the two branches: the base with both
    /// branches' changes. Panics where both changed one file differently
    /// (a merge conflict), unless `resolve` says which side's text to keep.
    fn merge(&self, resolve: &dyn Fn(&Path) -> Option<char>) {
        let base = tree(&self.base.dir);
        let (a, b) = (tree(&self.a.dir), tree(&self.b.dir));
        let mut merged = base.clone();
        let paths: std::collections::BTreeSet<&PathBuf> =
            base.keys().chain(a.keys()).chain(b.keys()).collect();
        for path in paths {
            let (o, x, y) = (base.get(path), a.get(path), b.get(path));
            let result = if x == y || y == o {
                x
            } else if x == o {
                y
            } else {
                match resolve(path) {
                    Some('a') => x,
                    Some('b') => y,
                    _ => panic!("merge conflict in {}", path.display()),
                }
            };
            match result {
                Some(text) => merged.insert(path.clone(), text.clone()),
                None => merged.remove(path),
            };
        }
        write_tree(&self.merged.dir, &merged);
    }
}

/// Branch A adds a column `x` (with a unique index, from an identity, and
/// a sort index over it and `rating`).
fn schema_a() -> Schema {
    let mut schema = base_schema();
    let avatar = resource_mut(&mut schema, "avatar");
    avatar.attributes.push(attr("x", AttrType::Text));
    avatar.identities.push(identity("unique_x", &["x"]));
    avatar.indexes.push(index("by_x", &["-x", "rating"]));
    schema
}

/// Branch B lets `name` be longer: on SQLite, a table rebuild.
fn schema_b() -> Schema {
    let mut schema = base_schema();
    let avatar = resource_mut(&mut schema, "avatar");
    avatar.attributes[0] = attr("name", string(None, Some(200))).required();
    schema
}

/// Both changes, as the resource files read after the merge.
fn schema_merged() -> Schema {
    let mut schema = schema_a();
    resource_mut(&mut schema, "avatar").attributes[0] =
        attr("name", string(None, Some(200))).required();
    schema
}

const A_ID: &str = "20260102000000_add_x";
const B_ID: &str = "20260103000000_longer_name";

/// The scenario the bug report describes: a database on branch A holds
/// data in `x`; after the merge, `kumo migrate` applies B's rebuild, which
/// was generated knowing nothing of `x`.
async fn a_rebuild_after_a_merge_keeps_the_other_branchs_column(dialect: Dialect) {
    let repo = Repo::new();
    repo.a.codegen(&schema_a(), A_ID);
    repo.b.codegen(&schema_b(), B_ID);
    if dialect == Dialect::Sqlite {
        // B really is a rebuild that copies only the columns B knew.
        let up = repo.b.sqlite_up(B_ID);
        assert!(up.contains("DROP TABLE \"avatars\";"), "{up}");
        assert!(!up.contains("\"x\""), "{up}");
    }
    repo.merge(&|_| None);

    let t = TestDb::new(dialect).await;
    let applied = runner::migrate(&t.db, &repo.a.migrations()).await.unwrap();
    assert_eq!(applied.len(), 2, "{}", t.name());
    for (n, x) in [(1, Some("first")), (2, None), (3, Some("third"))] {
        let x = x.map_or("NULL".to_string(), lit);
        t.exec(&format!(
            "INSERT INTO \"avatars\" (\"id\", \"name\", \"rating\", \"x\") VALUES ('{}', 'avatar {n}', {n}, {x})",
            uuid(n)
        ))
        .await;
    }

    let applied = runner::migrate(&t.db, &repo.merged.migrations())
        .await
        .unwrap_or_else(|e| panic!("{}: migrating after the merge: {e}", t.name()));
    assert_eq!(applied, [B_ID], "{}", t.name());

    let rows = t
        .strings(
            "SELECT \"name\" || '|' || \"rating\" || '|' || COALESCE(\"x\", '-') FROM \"avatars\" ORDER BY \"rating\"",
        )
        .await;
    assert_eq!(
        rows,
        [
            Some("avatar 1|1|first".to_string()),
            Some("avatar 2|2|-".to_string()),
            Some("avatar 3|3|third".to_string()),
        ],
        "{}: rows after the merged migration",
        t.name()
    );
    // The live schema is exactly the recorded one, indexes on `x` included,
    // and the recorded one is what the resources declare: codegen --check
    // has nothing to report and nothing is hidden from it.
    let recorded = files::read_recorded(&repo.merged.dir).unwrap();
    let live = introspect::read(&t.db).await.unwrap();
    let diff = schema_diff(&live, &introspect::expected(&recorded, dialect));
    assert!(diff.is_empty(), "{}: live vs recorded:\n{diff}", t.name());
    assert!(repo.merged.codegen_check_is_clean(&schema_merged()));
    // The rebuilt table still enforces what `x` brought: its unique index.
    let duplicate = t
        .try_exec(&format!(
            "INSERT INTO \"avatars\" (\"id\", \"name\", \"x\") VALUES ('{}', 'copy', 'first')",
            uuid(9)
        ))
        .await;
    assert!(duplicate.is_err(), "{}: unique x not enforced", t.name());

    // Rolling B back (on SQLite, the reverse rebuild) keeps `x` too.
    let undone = runner::rollback(&t.db, &repo.merged.migrations(), 1)
        .await
        .unwrap();
    assert_eq!(undone, [B_ID]);
    let rows = t
        .strings("SELECT COALESCE(\"x\", '-') FROM \"avatars\" ORDER BY \"rating\"")
        .await;
    assert_eq!(
        rows,
        [
            Some("first".to_string()),
            Some("-".to_string()),
            Some("third".to_string())
        ],
        "{}: rows after rolling back the rebuild",
        t.name()
    );
    let live = introspect::read(&t.db).await.unwrap();
    let on_a = files::read_recorded(&repo.a.dir).unwrap();
    let diff = schema_diff(&live, &introspect::expected(&on_a, dialect));
    assert!(diff.is_empty(), "{}: after rollback:\n{diff}", t.name());
    t.cleanup().await;
}

#[tokio::test]
async fn a_sqlite_rebuild_after_a_merge_keeps_the_other_branchs_column() {
    a_rebuild_after_a_merge_keeps_the_other_branchs_column(Dialect::Sqlite).await;
}

#[tokio::test]
async fn a_postgres_migration_after_a_merge_keeps_the_other_branchs_column() {
    a_rebuild_after_a_merge_keeps_the_other_branchs_column(Dialect::Postgres).await;
}

/// A fresh database after the merge applies A's and B's migrations in id
/// order: the same result, and the rows written in between survive.
#[tokio::test]
async fn a_fresh_sqlite_database_applies_both_branches() {
    let repo = Repo::new();
    repo.a.codegen(&schema_a(), A_ID);
    repo.b.codegen(&schema_b(), B_ID);
    repo.merge(&|_| None);
    let t = TestDb::sqlite().await;
    let all = repo.merged.migrations();
    runner::migrate(&t.db, &all[..2]).await.unwrap();
    t.exec(&format!(
        "INSERT INTO \"avatars\" (\"id\", \"name\", \"x\") VALUES ('{}', 'kept', 'kept x')",
        uuid(1)
    ))
    .await;
    runner::migrate(&t.db, &all).await.unwrap();
    assert_eq!(
        t.strings("SELECT \"name\" || '|' || \"x\" FROM \"avatars\"")
            .await,
        [Some("kept|kept x".to_string())]
    );
    let recorded = files::read_recorded(&repo.merged.dir).unwrap();
    let live = introspect::read(&t.db).await.unwrap();
    let diff = schema_diff(&live, &introspect::expected(&recorded, Dialect::Sqlite));
    assert!(diff.is_empty(), "live vs recorded:\n{diff}");
    t.cleanup().await;
}

/// Both branches rebuild the table for different columns (A makes `rating`
/// a float, B lengthens `name`). B's rebuild was generated with `rating` an
/// integer; it must keep A's float column and its values, not turn it back.
#[tokio::test]
async fn a_sqlite_rebuild_after_a_merge_keeps_the_other_branchs_column_change() {
    let repo = Repo::new();
    let mut a = base_schema();
    resource_mut(&mut a, "avatar").attributes[1] = attr("rating", float(None, None));
    repo.a.codegen(&a, A_ID);
    repo.b.codegen(&schema_b(), B_ID);
    repo.merge(&|_| None);
    let mut merged = a.clone();
    resource_mut(&mut merged, "avatar").attributes[0] =
        attr("name", string(None, Some(200))).required();

    let t = TestDb::sqlite().await;
    runner::migrate(&t.db, &repo.a.migrations()).await.unwrap();
    t.exec(&format!(
        "INSERT INTO \"avatars\" (\"id\", \"name\", \"rating\") VALUES ('{}', 'half', 2.5)",
        uuid(1)
    ))
    .await;
    let applied = runner::migrate(&t.db, &repo.merged.migrations())
        .await
        .unwrap();
    assert_eq!(applied, [B_ID]);
    assert_eq!(
        t.strings("SELECT CAST(\"rating\" AS TEXT) || ' ' || typeof(\"rating\") FROM \"avatars\"")
            .await,
        [Some("2.5 real".to_string())]
    );
    let recorded = files::read_recorded(&repo.merged.dir).unwrap();
    let live = introspect::read(&t.db).await.unwrap();
    let diff = schema_diff(&live, &introspect::expected(&recorded, Dialect::Sqlite));
    assert!(diff.is_empty(), "live vs recorded:\n{diff}");
    assert!(repo.merged.codegen_check_is_clean(&merged));
    t.cleanup().await;
}

/// Both branches change the same column (`name`): git reports a conflict on
/// its recorded file, and whichever side is kept, one migration's rebuild
/// would undo the other's change. The rebuild refuses, says which table
/// and column, and leaves the database as it was.
#[tokio::test]
async fn a_sqlite_rebuild_refuses_when_both_branches_changed_its_column() {
    let repo = Repo::new();
    let mut a = base_schema();
    resource_mut(&mut a, "avatar").attributes[0] = attr("name", AttrType::Text)
        .required()
        .default(json!("anonymous"));
    repo.a.codegen(&a, A_ID);
    repo.b.codegen(&schema_b(), B_ID);
    repo.merge(&|path| {
        assert!(
            path.ends_with("schema/avatars/columns/name.toml"),
            "unexpected conflict in {}",
            path.display()
        );
        Some('b')
    });

    let t = TestDb::sqlite().await;
    runner::migrate(&t.db, &repo.a.migrations()).await.unwrap();
    t.exec(&format!(
        "INSERT INTO \"avatars\" (\"id\", \"name\") VALUES ('{}', 'kept')",
        uuid(1)
    ))
    .await;
    let before = introspect::read(&t.db).await.unwrap();
    let err = runner::migrate(&t.db, &repo.merged.migrations())
        .await
        .expect_err("B's rebuild must refuse")
        .to_string();
    assert_eq!(
        err,
        format!(
            "migration {B_ID} rebuilds table `avatars` and changes `name` (changed), which another migration changed after {B_ID} was generated (probably one merged from another branch); nothing was changed. Both change the same column, so one of them must be generated again: see \"Merging branches\" in Kumo's docs/migrations.md"
        )
    );
    assert_eq!(introspect::read(&t.db).await.unwrap(), before);
    assert_eq!(
        t.strings("SELECT \"name\" FROM \"avatars\"").await,
        [Some("kept".to_string())]
    );
    let status = runner::status(&t.db, &repo.merged.migrations())
        .await
        .unwrap();
    assert_eq!(status.pending, [B_ID]);
    t.cleanup().await;
}

/// Not every difference is another branch's: tables an older Kumo created
/// word some CHECKs differently (JSON columns gained `IS NULL OR`). A
/// rebuild that changes such a column converts it as written, and one it
/// keeps keeps its live definition; neither is refused, and no row is lost.
#[tokio::test]
async fn a_sqlite_rebuild_of_a_table_an_older_kumo_wrote_is_not_taken_for_a_merge() {
    let schema = rich_schema();
    let initial = Plan::new(Vec::new(), &schema);
    let mut first = initial.migration("20250101000000_initial".to_string());
    for column in ["settings", "tags", "lucky_numbers"] {
        let c = format!("\"{column}\"");
        first.sqlite_up = first
            .sqlite_up
            .replace(&format!("{c} IS NULL OR ("), "(")
            .replace(&format!("{c} IS NULL OR "), "");
    }
    assert!(!first.sqlite_up.contains("IS NULL OR"));
    let mut changed = schema.clone();
    let user = resource_mut(&mut changed, "user");
    let settings = user
        .attributes
        .iter_mut()
        .find(|a| a.name == "settings")
        .unwrap();
    settings.default = Some(json!({"volume": [3]}));
    let plan = Plan::new(initial.new_tables.clone(), &changed);
    let second = plan.migration("20250102000000_louder".to_string());
    assert!(
        second.sqlite_up.contains("kumo:rebuild"),
        "{}",
        second.sqlite_up
    );

    let t = TestDb::sqlite().await;
    runner::migrate(&t.db, std::slice::from_ref(&first))
        .await
        .unwrap();
    t.exec(&format!(
        "INSERT INTO \"users\" (\"id\", \"email\", \"settings\", \"tags\") VALUES ('{}', 'old@example.com', '{{\"volume\": [1]}}', '[\"old\"]')",
        uuid(1)
    ))
    .await;
    runner::migrate(&t.db, &[first, second])
        .await
        .unwrap_or_else(|e| panic!("the rebuild was refused: {e}"));
    assert_eq!(
        t.strings("SELECT \"email\" || ' ' || \"settings\" || ' ' || \"tags\" FROM \"users\"")
            .await,
        [Some(
            "old@example.com {\"volume\": [1]} [\"old\"]".to_string()
        )]
    );
    let live = introspect::read(&t.db).await.unwrap();
    let diff = schema_diff(
        &live,
        &introspect::expected(&plan.new_tables, Dialect::Sqlite),
    );
    assert!(diff.is_empty(), "live vs planned:\n{diff}");
    t.cleanup().await;
}
