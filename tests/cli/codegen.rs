//! `kumo codegen`: no questions, named destructive steps, `--check` for CI,
//! and a recorded schema that merges cleanly across branches.

use std::path::Path;
use std::process::Command;

use crate::{Kumo, Server, files_under};

const RATING: &str = "[resource]\nname = \"rating\"\n\n[attributes]\nstars = { type = \"integer\", required = true, default = 3, min = 1, max = 5 }\n";
const BADGE: &str = "[resource]\nname = \"badge\"\n\n[attributes]\nlabel = { type = \"string\", max_length = 32 }\n";

fn migration_dirs(k: &Kumo) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(k.path("app/migrations"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn codegen_writes_up_and_down_for_both_databases_and_then_finds_nothing() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    k.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    let run = k.run(&["codegen", "initial", "--project", "app"]).ok();
    assert!(run.stdout.contains("+ table avatars"), "{}", run.stdout);
    assert!(run.stdout.contains("+ table users"), "{}", run.stdout);
    let dirs = migration_dirs(&k);
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0].ends_with("_initial"));
    let files = files_under(&k.path(&format!("app/migrations/{}", dirs[0])));
    assert_eq!(
        files,
        vec![
            "postgres.down.sql",
            "postgres.up.sql",
            "sqlite.down.sql",
            "sqlite.up.sql"
        ]
    );
    for recorded in [
        "table.toml",
        "columns/id.toml",
        "columns/uploader_id.toml",
        "indexes/avatars_unique_name_per_uploader_key.toml",
    ] {
        let path = format!("app/migrations/schema/avatars/{recorded}");
        assert!(k.path(&path).exists(), "{path} missing");
    }
    let before = files_under(&k.path("app/migrations"));
    let again = k.run(&["codegen", "second", "--project", "app"]).ok();
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    assert_eq!(files_under(&k.path("app/migrations")), before);
    k.run(&["codegen", "--check", "--project", "app"]).ok();
}

#[test]
fn check_and_dry_run_write_nothing() {
    let k = Kumo::new();
    k.set_up_project();
    k.write("app/resources/rating.toml", RATING);
    let before = files_under(&k.path("app/migrations"));
    let check = k.run(&["codegen", "--check", "--project", "app"]).fails();
    assert_eq!(check.code, 1);
    assert!(check.stdout.contains("+ table ratings"), "{}", check.stdout);
    assert!(
        check.stdout.contains("Run: kumo codegen add_ratings"),
        "{}",
        check.stdout
    );
    let dry = k
        .run(&["codegen", "ratings", "--dry-run", "--project", "app"])
        .ok();
    assert!(
        dry.stdout.contains("CREATE TABLE \"ratings\""),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("STRICT"), "both dialects printed");
    assert_eq!(files_under(&k.path("app/migrations")), before);
}

#[test]
fn destructive_steps_are_named_and_refused_without_the_flag() {
    let k = Kumo::new();
    k.set_up_project();
    // Drop `comment` entirely and narrow avatar.name.
    std::fs::remove_file(k.path("app/resources/comment.toml")).unwrap();
    let avatar = k
        .read("app/resources/avatar.toml")
        .replace("comments = { has_many = \"comment\" }\n", "")
        .replace("max_length = 64", "max_length = 32");
    k.write("app/resources/avatar.toml", &avatar);
    let before = files_under(&k.path("app/migrations"));
    let run = k.run(&["codegen", "slim", "--project", "app"]).fails();
    assert!(
        run.stderr.contains("drops table `comments`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("narrows `avatars.name` (max_length 64 → 32)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--allow-destructive"), "{}", run.stderr);
    assert_eq!(
        files_under(&k.path("app/migrations")),
        before,
        "nothing written"
    );
    k.run(&["codegen", "slim", "--allow-destructive", "--project", "app"])
        .ok();
    k.run(&["migrate", "--project", "app"]).ok();
    k.run(&["codegen", "--check", "--project", "app"]).ok();
}

#[test]
fn a_rename_keeps_the_data_only_when_the_file_says_so() {
    let k = Kumo::new();
    k.set_up_project();
    k.write(
        "app/seeds/seeds.toml",
        &format!(
            "{}\n[[comment]]\nkey = \"hello\"\nbody = \"Hello, robot\"\navatar = \"robot\"\n",
            crate::serve::SEEDS
        ),
    );
    k.run(&["setup", "--project", "app"]).ok();
    let comment = k.read("app/resources/comment.toml").replace(
        "body = { type = \"text\", required = true }",
        "text = { type = \"text\", required = true, renamed_from = \"body\" }",
    );
    k.write("app/resources/comment.toml", &comment);
    let run = k.run(&["codegen", "rename_body", "--project", "app"]).ok();
    assert!(
        run.stdout.contains("~ column comments.body → text"),
        "{}",
        run.stdout
    );
    k.run(&["migrate", "--project", "app"]).ok();
    let server = Server::start(k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]))
        .expect("serve starts");
    let (status, comments) = server.get("/api/comments");
    assert_eq!(status, 200, "{comments}");
    assert!(
        comments.contains("\"text\":\"Hello, robot\"") && !comments.contains("\"body\""),
        "the row did not survive the rename: {comments}"
    );
}

#[test]
fn bad_migration_names_are_refused() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    let run = k
        .run(&["codegen", "Add Ratings", "--project", "app"])
        .fails();
    assert!(run.stderr.contains("must be snake_case"), "{}", run.stderr);
}

/// The seed stack's snapshot files conflict when two branches touch one
/// resource. Here branch `a` adds an attribute to `avatar` and a resource,
/// branch `b` another (unique) attribute to `avatar`, named so that in one
/// file per table both would land on neighbouring lines; git merges them
/// with no conflict and the merged recorded schema matches the resources.
#[test]
fn two_branches_changing_one_resource_merge_cleanly_in_git() {
    require_git();
    let k = Kumo::new();
    k.set_up_project();
    let app = k.path("app");
    git(&app, &["init", "--quiet", "--initial-branch=main"]);
    git(&app, &["add", "."]);
    git(&app, &["commit", "--quiet", "-m", "base"]);

    git(&app, &["checkout", "--quiet", "-b", "a"]);
    let avatar = k.read("app/resources/avatar.toml");
    k.write(
        "app/resources/avatar.toml",
        &avatar.replacen(
            "[attributes]\n",
            "[attributes]\nnickname = { type = \"string\" }\n",
            1,
        ),
    );
    k.write("app/resources/badge.toml", BADGE);
    k.run(&["codegen", "add_nickname_and_badges", "--project", "app"])
        .ok();
    git(&app, &["add", "."]);
    git(&app, &["commit", "--quiet", "-m", "a"]);

    git(&app, &["checkout", "--quiet", "-b", "b", "main"]);
    let avatar = k.read("app/resources/avatar.toml");
    let (attributes, rest) = avatar.split_once("\n[relationships]").unwrap();
    k.write(
        "app/resources/avatar.toml",
        &format!(
            "{}\nnick_color = {{ type = \"string\", unique = true }}\n\n[relationships]{rest}",
            attributes.trim_end()
        ),
    );
    k.run(&["codegen", "add_nick_color", "--project", "app"])
        .ok();
    git(&app, &["add", "."]);
    git(&app, &["commit", "--quiet", "-m", "b"]);

    git(&app, &["checkout", "--quiet", "a"]);
    git(&app, &["merge", "--quiet", "--no-edit", "b"]);
    for recorded in [
        "columns/nickname.toml",
        "columns/nick_color.toml",
        "indexes/avatars_nick_color_key.toml",
    ] {
        let path = format!("app/migrations/schema/avatars/{recorded}");
        assert!(k.path(&path).exists(), "{path} missing after the merge");
    }
    k.run(&["codegen", "--check", "--project", "app"]).ok();
    let migrated = k.run(&["migrate", "--project", "app"]).ok();
    assert!(
        migrated.stdout.contains("_add_nickname_and_badges")
            && migrated.stdout.contains("_add_nick_color"),
        "{}",
        migrated.stdout
    );
    let status = k.run(&["db", "status", "--project", "app"]).ok();
    assert!(
        status.stdout.contains("Live schema: matches"),
        "{}",
        status.stdout
    );
}

/// The contract's case: two branches each add a different resource. git
/// merges them with no conflict, `codegen --check` finds nothing pending,
/// and `migrate` applies both branches' migrations.
fn two_branches_adding_different_resources_merge_cleanly_in_git(k: &Kumo) {
    require_git();
    k.set_up_project();
    let app = k.path("app");
    git(&app, &["init", "--quiet", "--initial-branch=main"]);
    git(&app, &["add", "."]);
    git(&app, &["commit", "--quiet", "-m", "base"]);

    git(&app, &["checkout", "--quiet", "-b", "a"]);
    k.write("app/resources/badge.toml", BADGE);
    k.run(&["codegen", "add_badges", "--project", "app"]).ok();
    git(&app, &["add", "."]);
    git(&app, &["commit", "--quiet", "-m", "a"]);

    git(&app, &["checkout", "--quiet", "-b", "b", "main"]);
    k.write("app/resources/rating.toml", RATING);
    k.run(&["codegen", "add_ratings", "--project", "app"]).ok();
    git(&app, &["add", "."]);
    git(&app, &["commit", "--quiet", "-m", "b"]);

    git(&app, &["checkout", "--quiet", "a"]);
    git(&app, &["merge", "--quiet", "--no-edit", "b"]);
    assert!(k.path("app/migrations/schema/badges/table.toml").exists());
    assert!(k.path("app/migrations/schema/ratings/table.toml").exists());
    let check = k.run(&["codegen", "--check", "--project", "app"]).ok();
    assert!(check.stdout.contains("No changes"), "{}", check.stdout);
    let migrated = k.run(&["migrate", "--project", "app"]).ok();
    assert!(
        migrated.stdout.contains("_add_badges") && migrated.stdout.contains("_add_ratings"),
        "{}",
        migrated.stdout
    );
    let status = k.run(&["db", "status", "--project", "app"]).ok();
    assert!(
        status.stdout.contains("Live schema: matches"),
        "{}",
        status.stdout
    );
}

#[test]
fn two_branches_adding_different_resources_merge_cleanly_in_git_on_sqlite() {
    two_branches_adding_different_resources_merge_cleanly_in_git(&Kumo::new());
}

#[test]
fn two_branches_adding_different_resources_merge_cleanly_in_git_on_postgres() {
    two_branches_adding_different_resources_merge_cleanly_in_git(&Kumo::postgres());
}

/// A conflict git left in the recorded schema gave a raw TOML error about
/// `<<<<<<<`; it now says what happened and where to read how to resolve it.
#[test]
fn conflict_markers_in_the_recorded_schema_point_to_the_docs() {
    let k = Kumo::new();
    k.set_up_project();
    let path = "app/migrations/schema/tags/columns/label.toml";
    let recorded = k.read(path);
    k.write(
        path,
        &format!(
            "<<<<<<< HEAD\n{recorded}=======\n{}>>>>>>> other\n",
            recorded.replace("32", "64")
        ),
    );
    let run = k.run(&["codegen", "--check", "--project", "app"]).fails();
    assert_eq!(
        run.stderr,
        "error: app/migrations/schema/tags/columns/label.toml:1: git conflict markers: two merged branches changed this recorded file. Resolve the conflict as the \"Merging branches\" section of docs/migrations.md says, then run `kumo codegen --check`.\n"
    );
}

/// The merge tests need git: a machine without it fails them rather than
/// passing them unrun.
#[track_caller]
fn require_git() {
    if Command::new("git").arg("--version").output().is_err() {
        panic!("git is not installed: scripts/services.sh (run by scripts/test) installs it");
    }
}

/// Runs git in `dir` with a fixed identity and no user configuration, so
/// the test does not depend on the machine's git setup.
#[track_caller]
fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args(["-c", "user.name=Kumo Test"])
        .args(["-c", "user.email=test@example.com"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A table recorded by an earlier Kumo, in the single-file layout.
const LEGACY_BADGES: &str = r#"table = "badges"
resource = "badge"
order = ["id", "label", "inserted_at", "updated_at"]

[columns.id]
type = "uuid"
primary_key = true

[columns.label]
type = "text"
nullable = true
max_length = 32

[columns.inserted_at]
type = "datetime"
default = "now()"

[columns.updated_at]
type = "datetime"
default = "now()"
"#;

#[test]
fn the_single_file_layout_is_read_and_rewritten_by_the_next_codegen() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    std::fs::remove_dir_all(k.path("app/resources")).unwrap();
    k.write("app/resources/badge.toml", BADGE);
    k.write("app/migrations/schema/badges.toml", LEGACY_BADGES);
    k.run(&["codegen", "--check", "--project", "app"]).ok();
    let run = k.run(&["codegen", "upgrade", "--project", "app"]).ok();
    assert!(
        run.stdout.contains("Rewrote migrations/schema/"),
        "{}",
        run.stdout
    );
    assert_eq!(
        files_under(&k.path("app/migrations")),
        vec![
            ".gitkeep",
            "schema/badges/columns/id.toml",
            "schema/badges/columns/inserted_at.toml",
            "schema/badges/columns/label.toml",
            "schema/badges/columns/updated_at.toml",
            "schema/badges/table.toml",
        ],
        "converted, and no migration written"
    );
    k.run(&["codegen", "--check", "--project", "app"]).ok();
    let again = k.run(&["codegen", "upgrade", "--project", "app"]).ok();
    assert!(!again.stdout.contains("Rewrote"), "{}", again.stdout);
}

/// A renamed `belongs_to` drops its `<name>_id` column; the hint must point
/// at the relationship's `renamed_from` (with the relationship's old name),
/// not at an attribute called `author_id`.
#[test]
fn a_dropped_relationship_key_suggests_renamed_from_on_the_relationship() {
    let k = Kumo::new();
    k.set_up_project();
    let comment = k.read("app/resources/comment.toml");
    let renamed = comment
        .replace(
            "author = { belongs_to = \"user\", on_delete = \"nullify\" }",
            "writer = { belongs_to = \"user\", on_delete = \"nullify\" }",
        )
        // The policies name the relationship's column too.
        .replace("record.author_id", "record.writer_id");
    assert_ne!(renamed, comment);
    k.write("app/resources/comment.toml", &renamed);
    let run = k
        .run(&["codegen", "rename_author", "--project", "app"])
        .fails();
    assert!(
        run.stderr.contains(
            "drops column `comments.author_id` and its data (if the relationship `author` was renamed, add `renamed_from = \"author\"` to the new relationship)"
        ),
        "{}",
        run.stderr
    );
    k.write(
        "app/resources/comment.toml",
        &renamed.replace(
            "on_delete = \"nullify\" }",
            "on_delete = \"nullify\", renamed_from = \"author\" }",
        ),
    );
    let run = k
        .run(&["codegen", "rename_author", "--project", "app"])
        .ok();
    assert!(
        run.stdout
            .contains("~ column comments.author_id → writer_id"),
        "{}",
        run.stdout
    );
}

/// A project made before Kumo created indexes other than unique ones: its
/// migrations, recorded schema and database have none. The next codegen
/// adds them (those of its `belongs_to` columns, the example's declared
/// ones) as an ordinary step, with no `--allow-destructive`, and the
/// database then matches the recorded schema.
#[test]
fn the_next_codegen_indexes_a_project_made_before_indexes() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    k.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    k.run(&["codegen", "initial", "--project", "app"]).ok();
    // What an older Kumo wrote: the same, less every `CREATE INDEX` and
    // every recorded index that is not unique.
    let initial = format!("app/migrations/{}", migration_dirs(&k)[0]);
    for file in [
        "postgres.up.sql",
        "postgres.down.sql",
        "sqlite.up.sql",
        "sqlite.down.sql",
    ] {
        let path = format!("{initial}/{file}");
        let sql = k.read(&path);
        let older: Vec<&str> = sql
            .split("\n\n")
            .filter(|statement| !statement.starts_with("CREATE INDEX "))
            .collect();
        k.write(&path, &older.join("\n\n"));
    }
    let mut removed = 0;
    for file in files_under(&k.path("app/migrations/schema")) {
        let path = k.path(&format!("app/migrations/schema/{file}"));
        if file.contains("/indexes/")
            && std::fs::read_to_string(&path)
                .unwrap()
                .contains("unique = false")
        {
            std::fs::remove_file(path).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 5, "only {removed} indexes were recorded");
    k.run(&["db", "create", "--project", "app"]).ok();
    k.run(&["migrate", "--project", "app"]).ok();
    // The older database is what its migrations say; the resources are not.
    let status = k.run(&["db", "status", "--project", "app"]).fails();
    assert!(
        status.stdout.contains("Live schema: matches")
            && status.stdout.contains("changes with no migration"),
        "{}",
        status.stdout
    );

    let check = k.run(&["codegen", "--check", "--project", "app"]).fails();
    assert!(
        check
            .stdout
            .contains("+ index sessions_user_id_idx (user_id, id)"),
        "{}",
        check.stdout
    );
    let run = k.run(&["codegen", "add_indexes", "--project", "app"]).ok();
    for line in [
        // belongs_to columns no index starts with (`avatars.uploader_id`
        // leads the identity `unique_name_per_uploader`)
        "+ index avatars_remixed_from_id_idx (remixed_from_id, id)",
        "+ index comments_avatar_id_idx (avatar_id, id)",
        "+ index comments_author_id_idx (author_id, id)",
        // declared in the example
        "+ index avatars_most_viewed_idx (-views, id)",
        "+ index avatars_recent_by_uploader_idx (uploader_id, -released_at, id)",
        "+ index avatars_polycount_idx (polycount, id)",
    ] {
        assert!(run.stdout.contains(line), "no `{line}` in\n{}", run.stdout);
    }
    assert!(
        !run.stdout.contains("avatars_uploader_id_idx"),
        "{}",
        run.stdout
    );
    k.run(&["migrate", "--project", "app"]).ok();
    let status = k.run(&["db", "status", "--project", "app"]).ok();
    assert!(
        status.stdout.contains("Live schema: matches"),
        "{}",
        status.stdout
    );
    k.run(&["codegen", "--check", "--project", "app"]).ok();
}

/// A PostgreSQL project whose migrations were made before Kumo declared
/// `TIMESTAMPTZ(3)`: its datetime columns keep microseconds and
/// `db status` shows the drift. The next codegen writes the upgrade first,
/// under its own name, then the resources' changes; `serve` and `setup`
/// refuse until it exists.
#[test]
fn the_next_codegen_upgrades_datetimes_of_a_project_made_before_milliseconds() {
    let k = Kumo::postgres();
    k.run(&["new", "app"]).ok();
    k.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    k.run(&["codegen", "initial", "--project", "app"]).ok();
    // What an older Kumo wrote: plain TIMESTAMPTZ.
    let initial = format!("app/migrations/{}", migration_dirs(&k)[0]);
    for file in ["postgres.up.sql", "postgres.down.sql"] {
        let path = format!("{initial}/{file}");
        k.write(
            &path,
            &k.read(&path).replace("TIMESTAMPTZ(3)", "TIMESTAMPTZ"),
        );
    }
    k.run(&["db", "create", "--project", "app"]).ok();
    k.run(&["migrate", "--project", "app"]).ok();
    let status = k.run(&["db", "status", "--project", "app"]).fails();
    assert!(
        status.stdout.contains("migrated by an older Kumo"),
        "{}",
        status.stdout
    );
    let check = k.run(&["codegen", "--check", "--project", "app"]).fails();
    assert!(
        check
            .stdout
            .contains("store PostgreSQL datetimes to the millisecond")
            && check
                .stdout
                .contains("Run: kumo codegen datetime_milliseconds"),
        "{}",
        check.stdout
    );
    let setup = k.run(&["setup", "--project", "app"]).fails();
    assert!(
        setup
            .stderr
            .contains("Run: kumo codegen datetime_milliseconds"),
        "{}",
        setup.stderr
    );

    k.write("app/resources/rating.toml", RATING);
    let run = k.run(&["codegen", "add_ratings", "--project", "app"]).ok();
    assert!(run.stdout.contains("+ table ratings"), "{}", run.stdout);
    let dirs = migration_dirs(&k);
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    assert!(dirs[1].ends_with("_datetime_milliseconds"), "{dirs:?}");
    assert!(dirs[2].ends_with("_add_ratings"), "{dirs:?}");
    let upgrade = k.read(&format!("app/migrations/{}/postgres.up.sql", dirs[1]));
    assert!(
        upgrade.contains("ALTER COLUMN \"inserted_at\" TYPE TIMESTAMPTZ(3)")
            && !upgrade.contains("ratings"),
        "{upgrade}"
    );
    k.run(&["migrate", "--project", "app"]).ok();
    let status = k.run(&["db", "status", "--project", "app"]).ok();
    assert!(
        status.stdout.contains("Live schema: matches"),
        "{}",
        status.stdout
    );
    let again = k.run(&["codegen", "--check", "--project", "app"]).ok();
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
}
