//! The seed's sequence end to end, `serve`'s refusals, and the database
//! commands, on SQLite and on PostgreSQL.

use crate::{Kumo, Server};

fn seed_sequence_then_ready(k: &Kumo) {
    k.set_up_project();
    let again = k.run(&["setup", "--project", "app"]).ok();
    assert!(again.stdout.contains("up to date"), "{}", again.stdout);
    let server = Server::start({
        let mut c = k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]);
        c.env("KUMO_LOG", "warn");
        c
    })
    .expect("serve starts");
    assert_eq!(server.get("/health"), (200, "{\"status\":\"ok\"}".into()));
    let (status, body) = server.get("/ready");
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/nope");
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
}

#[test]
fn seed_sequence_on_sqlite() {
    seed_sequence_then_ready(&Kumo::new());
}

#[test]
fn seed_sequence_on_postgres() {
    seed_sequence_then_ready(&Kumo::postgres());
}

fn serve_refuses(k: &Kumo) -> String {
    Server::start(k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]))
        .err()
        .expect("serve must refuse")
}

#[test]
fn serve_refuses_with_the_fixing_command() {
    let k = Kumo::new();
    k.set_up_project();
    // A resource change with no migration.
    k.write(
        "app/resources/badge.toml",
        "[resource]\nname = \"badge\"\n\n[attributes]\nlabel = { type = \"string\" }\n",
    );
    let err = serve_refuses(&k);
    assert!(err.contains("+ table badges"), "{err}");
    assert!(err.contains("Run: kumo codegen add_badges"), "{err}");
    // A migration that is not applied.
    k.run(&["codegen", "badges", "--project", "app"]).ok();
    let err = serve_refuses(&k);
    assert!(err.contains("Run: kumo migrate"), "{err}");
    k.run(&["migrate", "--project", "app"]).ok();
    // Rolled back: not applied again.
    k.run(&["rollback", "--project", "app"]).ok();
    let err = serve_refuses(&k);
    assert!(err.contains("Run: kumo migrate"), "{err}");
}

#[test]
fn serve_refuses_a_short_secret() {
    let k = Kumo::new();
    k.set_up_project();
    let mut cmd = k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]);
    cmd.env("KUMO_SECRET", "too-short");
    let err = Server::start(cmd).err().expect("serve must refuse");
    assert!(
        err.contains("KUMO_SECRET is 9 bytes long; it must be at least 32"),
        "{err}"
    );
    assert!(
        !err.contains("too-short"),
        "the secret is never printed: {err}"
    );
    let mut cmd = k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]);
    cmd.env("KUMO_SECRET", "x".repeat(32));
    let server = Server::start(cmd).expect("32 bytes are enough");
    assert_eq!(server.get("/ready").0, 200);
}

#[test]
fn serve_without_a_database_says_to_set_up() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    k.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    k.run(&["codegen", "initial", "--project", "app"]).ok();
    let err = serve_refuses(&k);
    assert!(err.contains("kumo db create"), "{err}");
}

fn database_commands(k: &Kumo) {
    k.set_up_project();
    let status = k.run(&["db", "status", "--project", "app"]).ok();
    assert!(
        status.stdout.contains("_initial  applied"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("Live schema: matches"),
        "{}",
        status.stdout
    );
    let rolled = k
        .run(&["rollback", "--steps", "5", "--project", "app"])
        .ok();
    assert!(rolled.stdout.contains("Rolled back"), "{}", rolled.stdout);
    let status = k.run(&["db", "status", "--project", "app"]).fails();
    assert!(
        status.stdout.contains("_initial  pending"),
        "{}",
        status.stdout
    );
    let reset = k.run(&["db", "reset", "--project", "app"]).ok();
    assert!(reset.stdout.contains("Applied"), "{}", reset.stdout);
    k.run(&["db", "status", "--project", "app"]).ok();
    k.run(&["db", "drop", "--project", "app"]).ok();
    let status = k.run(&["db", "status", "--project", "app"]).fails();
    assert!(
        status.stdout.contains("does not exist"),
        "{}",
        status.stdout
    );
    let created = k.run(&["db", "create", "--project", "app"]).ok();
    assert!(created.stdout.contains("Created"), "{}", created.stdout);
    let again = k.run(&["db", "create", "--project", "app"]).ok();
    assert!(again.stdout.contains("already exists"), "{}", again.stdout);
}

#[test]
fn database_commands_on_sqlite() {
    database_commands(&Kumo::new());
}

#[test]
fn database_commands_on_postgres() {
    database_commands(&Kumo::postgres());
}

#[test]
fn demo_creates_sets_up_and_serves_then_reuses() {
    let k = Kumo::new();
    let start = || {
        Server::start(k.command(&["demo", "--dir", "demo", "--addr", "127.0.0.1:0"]))
            .expect("demo serves")
    };
    let server = start();
    assert!(
        server.banner.contains("Created a demo project"),
        "{}",
        server.banner
    );
    // The demo migrates by itself; it must not tell the user to.
    assert!(!server.banner.contains("Next:"), "{}", server.banner);
    // Two users, two worlds, two avatars and two comments.
    assert!(
        server
            .banner
            .contains("Seeds: 8 row(s) inserted, 0 already present."),
        "{}",
        server.banner
    );
    assert_eq!(server.get("/ready").0, 200);
    let served = |server: &Server| {
        let (status, worlds) = server.get("/api/worlds");
        assert_eq!(status, 200, "{worlds}");
        assert!(
            worlds.contains("\"name\":\"Plaza\"") && worlds.contains("\"name\":\"Arena\""),
            "{worlds}"
        );
        // Anonymous callers read public avatars only.
        let (status, avatars) = server.get("/api/avatars");
        assert_eq!(status, 200, "{avatars}");
        assert!(avatars.contains("\"name\":\"Robot\""), "{avatars}");
        assert!(!avatars.contains("Dragon"), "{avatars}");
        // A comment is as visible as its avatar: the private dragon's is
        // neither listed nor found through a filter on its avatar.
        let (status, comments) = server.get("/api/comments");
        assert_eq!(status, 200, "{comments}");
        assert!(comments.contains("Love the shine!"), "{comments}");
        assert!(!comments.contains("wings"), "{comments}");
        let (status, found) = server.get("/api/comments?filter%5Bavatar.slug%5D=dragon");
        assert_eq!(status, 200, "{found}");
        assert!(found.starts_with("{\"data\":[]"), "{found}");
    };
    served(&server);
    drop(server);
    let server = start();
    assert!(
        server.banner.contains("Reusing the demo project"),
        "{}",
        server.banner
    );
    assert!(
        server
            .banner
            .contains("Seeds: 0 row(s) inserted, 8 already present."),
        "{}",
        server.banner
    );
    assert_eq!(server.get("/ready").0, 200);
    served(&server);
}

/// `DATABASE_URL` usually points at the user's own project; the demo must
/// not create its tables there (or anywhere but its own SQLite file).
#[test]
fn demo_uses_its_own_sqlite_database_even_with_database_url_set() {
    let k = Kumo::new();
    let elsewhere = k.path("elsewhere.db");
    let mut command = k.command(&["demo", "--dir", "demo", "--addr", "127.0.0.1:0"]);
    command.env("DATABASE_URL", format!("sqlite://{}", elsewhere.display()));
    let server = Server::start(command).expect("demo serves");
    assert_eq!(server.get("/ready").0, 200);
    assert!(
        server.banner.contains("demo/data/kumo.db"),
        "{}",
        server.banner
    );
    assert!(k.path("demo/data/kumo.db").exists());
    assert!(!elsewhere.exists(), "the demo used DATABASE_URL");
}

/// `kumo db status | head -1`: when the reader goes away, kumo stops
/// quietly instead of panicking on the broken pipe.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let k = Kumo::new();
    k.set_up_project();
    let mut command = k.command(&["db", "status", "--project", "app"]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("run kumo");
    // Close the reading end before kumo writes its first line.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for kumo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[test]
fn pool_size_is_read_from_kumo_toml() {
    let k = Kumo::new();
    k.set_up_project();
    let config = k.read("app/kumo.toml");
    k.write(
        "app/kumo.toml",
        &config.replace("[database]\n", "[database]\npool_size = 0\n"),
    );
    let refused = serve_refuses(&k);
    assert!(
        refused.contains("[database] pool_size must be at least 1"),
        "{refused}"
    );
    k.write(
        "app/kumo.toml",
        &config.replace("[database]\n", "[database]\npool_size = 1\n"),
    );
    // One connection serves requests one after another.
    let server = Server::start(k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]))
        .expect("serve starts");
    for _ in 0..3 {
        assert_eq!(server.get("/ready").0, 200);
    }
}

/// `/ready` answers 503 `schema_not_current` once a migration is rolled
/// back under a running server, and 503 `database_unavailable` once the
/// database is gone (`remove` takes it away).
fn ready_is_503_when_the_schema_or_the_database_goes(k: &Kumo, remove: impl FnOnce(&Kumo)) {
    k.set_up_project();
    let server = Server::start(k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]))
        .expect("serve starts");
    assert_eq!(server.get("/ready").0, 200);
    k.run(&["rollback", "--project", "app"]).ok();
    let (status, body) = server.get("/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"code\":\"schema_not_current\""), "{body}");
    assert!(body.contains("run `kumo migrate`"), "{body}");
    k.run(&["migrate", "--project", "app"]).ok();
    assert_eq!(server.get("/ready").0, 200);
    remove(k);
    let (status, body) = server.get("/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"code\":\"database_unavailable\""), "{body}");
    // Health is about the process, not the database.
    assert_eq!(server.get("/health").0, 200);
}

#[test]
fn ready_is_503_after_a_rollback_and_without_the_sqlite_file() {
    ready_is_503_when_the_schema_or_the_database_goes(&Kumo::new(), |k| {
        std::fs::remove_file(k.path("app/data/kumo.db")).unwrap();
    });
}

#[test]
fn ready_is_503_after_a_rollback_and_without_the_postgres_database() {
    ready_is_503_when_the_schema_or_the_database_goes(&Kumo::postgres(), |k| {
        k.run(&["db", "drop", "--project", "app"]).ok();
    });
}

pub(crate) const SEEDS: &str = "[[user]]\nkey = \"alice\"\nemail = \"alice@example.com\"\n\n[[avatar]]\nkey = \"robot\"\nname = \"Robot\"\nis_public = true\nuploader = \"alice\"\n";

/// `kumo db reset` used to drop the database first and only then find a
/// resource change with no migration (or a broken file), losing every row.
/// It now refuses before it touches anything.
fn reset_checks_everything_before_dropping(k: &Kumo) {
    k.set_up_project();
    k.write("app/seeds/seeds.toml", SEEDS);
    let seeded = k.run(&["setup", "--project", "app"]).ok();
    assert!(
        seeded.stdout.contains("Seeds: 2 row(s) inserted"),
        "{}",
        seeded.stdout
    );
    let refused = |k: &Kumo, expected: &str| {
        let run = k.run(&["db", "reset", "--project", "app"]).fails();
        assert!(run.stderr.contains(expected), "{}", run.stderr);
        assert!(
            run.stderr
                .contains("Nothing was dropped: fix this, then run `kumo db reset` again."),
            "{}",
            run.stderr
        );
        assert!(!run.stdout.contains("Dropped"), "{}", run.stdout);
    };
    // A resource change with no migration.
    k.write(
        "app/resources/badge.toml",
        "[resource]\nname = \"badge\"\n\n[attributes]\nlabel = { type = \"string\" }\n",
    );
    refused(k, "Run: kumo codegen add_badges");
    std::fs::remove_file(k.path("app/resources/badge.toml")).unwrap();
    // A broken resource file.
    k.write("app/resources/broken.toml", "[resource\n");
    refused(k, "resources/broken.toml");
    std::fs::remove_file(k.path("app/resources/broken.toml")).unwrap();
    // A broken seed file.
    k.write(
        "app/seeds/broken.toml",
        "[[avatar]]\nkey = \"x\"\nnmae = \"X\"\n",
    );
    refused(k, "seeds/broken.toml");
    std::fs::remove_file(k.path("app/seeds/broken.toml")).unwrap();
    // A migration missing one of its files.
    let migrations = std::fs::read_dir(k.path("app/migrations"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("_initial"))
        .unwrap()
        .path();
    let up = migrations.join("sqlite.up.sql");
    let sql = std::fs::read_to_string(&up).unwrap();
    std::fs::remove_file(&up).unwrap();
    refused(k, "sqlite.up.sql");
    std::fs::write(&up, sql).unwrap();
    // Every row is still there.
    let again = k.run(&["setup", "--project", "app"]).ok();
    assert!(
        again
            .stdout
            .contains("Seeds: 0 row(s) inserted, 2 already present."),
        "{}",
        again.stdout
    );
    let reset = k.run(&["db", "reset", "--project", "app"]).ok();
    assert!(reset.stdout.contains("Dropped"), "{}", reset.stdout);
    assert!(
        reset.stdout.contains("Seeds: 2 row(s) inserted"),
        "{}",
        reset.stdout
    );
}

#[test]
fn reset_checks_everything_before_dropping_on_sqlite() {
    reset_checks_everything_before_dropping(&Kumo::new());
}

#[test]
fn reset_checks_everything_before_dropping_on_postgres() {
    reset_checks_everything_before_dropping(&Kumo::postgres());
}

/// `setup` read migrations/ only after creating the database, so a broken
/// migration folder left a new, empty database behind.
#[test]
fn setup_with_a_broken_migration_creates_no_database() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    k.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    k.run(&["codegen", "initial", "--project", "app"]).ok();
    let dir = std::fs::read_dir(k.path("app/migrations"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("_initial"))
        .unwrap()
        .path();
    std::fs::remove_file(dir.join("sqlite.up.sql")).unwrap();
    let run = k.run(&["setup", "--project", "app"]).fails();
    assert!(run.stderr.contains("sqlite.up.sql"), "{}", run.stderr);
    assert!(!k.path("app/data/kumo.db").exists(), "{}", run.stdout);
}

fn migration_dir(k: &Kumo, suffix: &str) -> String {
    std::fs::read_dir(k.path("app/migrations"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with(suffix))
        .unwrap_or_else(|| panic!("no migration *{suffix}"))
}

/// Errors repeated their cause two or three times (`Connection refused (os
/// error 111)` three times, with no word about the server not running).
#[test]
fn errors_say_each_cause_once() {
    let k = Kumo::new();
    k.set_up_project();
    let mut command = k.command(&["migrate", "--project", "app"]);
    command.env(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:1/kumo_nowhere",
    );
    let output = command.output().expect("run kumo");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: cannot connect to PostgreSQL at 127.0.0.1:1: Connection refused (os error 111)\n\
         Is PostgreSQL running at 127.0.0.1:1, and is DATABASE_URL (or [database] url in kumo.toml) right? \
         (In a Kumo checkout, scripts/services.sh installs and starts it.)\n"
    );

    let initial = migration_dir(&k, "_initial");
    let up = k.path(&format!("app/migrations/{initial}/sqlite.up.sql"));
    let sql = std::fs::read_to_string(&up).unwrap();
    std::fs::remove_file(&up).unwrap();
    let run = k.run(&["migrate", "--project", "app"]).fails();
    assert_eq!(
        run.stderr,
        format!(
            "error: could not read or write app/migrations/{initial}/sqlite.up.sql: No such file or directory (os error 2)\n"
        )
    );
    std::fs::write(&up, sql).unwrap();

    // A required column with no default, added to a table with rows.
    k.write("app/seeds/seeds.toml", SEEDS);
    k.run(&["setup", "--project", "app"]).ok();
    let avatar = k.read("app/resources/avatar.toml").replacen(
        "[attributes]\n",
        "[attributes]\nlevel = { type = \"integer\", required = true }\n",
        1,
    );
    k.write("app/resources/avatar.toml", &avatar);
    k.run(&[
        "codegen",
        "add_level",
        "--allow-destructive",
        "--project",
        "app",
    ])
    .ok();
    let add_level = migration_dir(&k, "_add_level");
    let run = k.run(&["migrate", "--project", "app"]).fails();
    assert_eq!(
        run.stderr,
        format!(
            "error: migration {add_level} failed and was rolled back, nothing changed: NOT NULL constraint failed: avatars.level\n"
        )
    );
}

/// `rollback --steps N` was only run with more steps than migrations.
#[test]
fn rollback_steps_undoes_exactly_that_many_and_refuses_zero() {
    let k = Kumo::new();
    k.set_up_project();
    for (name, resource) in [("add_badges", "badge"), ("add_medals", "medal")] {
        k.write(
            &format!("app/resources/{resource}.toml"),
            &format!("[resource]\nname = \"{resource}\"\n\n[attributes]\nlabel = {{ type = \"string\" }}\n"),
        );
        k.run(&["codegen", name, "--project", "app"]).ok();
    }
    k.run(&["migrate", "--project", "app"]).ok();
    let (initial, badges, medals) = (
        migration_dir(&k, "_initial"),
        migration_dir(&k, "_add_badges"),
        migration_dir(&k, "_add_medals"),
    );
    let refused = k
        .run(&["rollback", "--steps", "0", "--project", "app"])
        .fails();
    assert!(
        refused.stderr.contains("0 would undo nothing"),
        "{}",
        refused.stderr
    );
    k.run(&["db", "status", "--project", "app"]).ok();
    let rolled = k
        .run(&["rollback", "--steps", "2", "--project", "app"])
        .ok();
    assert_eq!(
        rolled.stdout,
        format!("Rolled back {medals}\nRolled back {badges}\n")
    );
    let status = k.run(&["db", "status", "--project", "app"]).fails();
    for line in [
        format!("{initial}  applied"),
        format!("{badges}  pending"),
        format!("{medals}  pending"),
    ] {
        assert!(status.stdout.contains(&line), "{line}\n{}", status.stdout);
    }
}

/// `kumo db status` said "table tags differs" without saying how.
#[test]
fn status_names_what_differs_in_a_table_changed_by_hand() {
    let k = Kumo::new();
    k.set_up_project();
    let output = std::process::Command::new("sqlite3")
        .arg(k.path("app/data/kumo.db"))
        .arg("ALTER TABLE tags ADD COLUMN note TEXT; CREATE INDEX tags_note_idx ON tags (note);")
        .output()
        .expect("sqlite3 (scripts/services.sh installs it)");
    assert!(output.status.success(), "{output:?}");
    let status = k.run(&["db", "status", "--project", "app"]).fails();
    assert!(
        status.stdout.contains(
            "Live schema: DIFFERS from the recorded schema (was the database changed by hand?):\n  table tags differs:\n    extra column note\n    extra index tags_note_idx ("
        ),
        "{}",
        status.stdout
    );
}
