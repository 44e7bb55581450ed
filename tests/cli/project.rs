//! `kumo new`, `kumo auth add-strategy`, `--help`, and resource-file errors.

use crate::{Kumo, files_under};

#[test]
fn new_writes_a_complete_project() {
    let k = Kumo::new();
    let run = k.run(&["new", "mygame"]).ok();
    assert!(
        run.stdout.contains("kumo auth add-strategy magic_link"),
        "{}",
        run.stdout
    );
    let files = files_under(&k.path("mygame"));
    for expected in [
        ".env",
        ".env.example",
        ".gitignore",
        "README.md",
        "kumo.toml",
        "migrations/.gitkeep",
        "resources/avatar.toml",
        "resources/avatar_tag.toml",
        "resources/comment.toml",
        "resources/tag.toml",
        "seeds/seeds.toml",
    ] {
        assert!(
            files.contains(&expected.to_string()),
            "{expected} missing from {files:?}"
        );
    }
    let config = k.read("mygame/kumo.toml");
    assert!(config.contains("name = \"mygame\""));
    assert!(config.contains("url = \"sqlite://data/kumo.db\""));
    // A secret of its own from the start, in the file git ignores, so
    // sign-ins and cursors outlive a restart.
    let secret = |dir: &str| {
        let env = k.read(&format!("{dir}/.env"));
        let line = env
            .lines()
            .find_map(|l| l.strip_prefix("KUMO_SECRET="))
            .unwrap_or_else(|| panic!("no KUMO_SECRET in {env}"))
            .to_owned();
        assert_eq!(line.len(), 64, "{line}");
        assert!(line.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
        line
    };
    assert!(k.read("mygame/.gitignore").lines().any(|l| l == ".env"));
    k.run(&["new", "other"]).ok();
    assert_ne!(secret("mygame"), secret("other"));
}

#[test]
fn new_with_postgres_points_the_project_at_postgres() {
    let k = Kumo::new();
    k.run(&["new", "pg_game", "--database", "postgres"]).ok();
    assert!(
        k.read("pg_game/kumo.toml")
            .contains("url = \"postgres://postgres@127.0.0.1:5432/pg_game\"")
    );
}

#[test]
fn new_refuses_a_non_empty_directory_and_touches_nothing() {
    let k = Kumo::new();
    k.write("taken/notes.txt", "mine");
    let run = k.run(&["new", "taken"]).fails();
    assert!(run.stderr.contains("is not empty"), "{}", run.stderr);
    assert_eq!(files_under(&k.path("taken")), vec!["notes.txt"]);
}

#[test]
fn the_example_resource_loads_once_auth_is_enabled() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    // Without auth, `user` does not exist yet: the error says how to fix it.
    let run = k.run(&["codegen", "initial", "--project", "app"]).fails();
    assert!(
        run.stderr.contains("resources/avatar.toml:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("kumo auth add-strategy magic_link"),
        "{}",
        run.stderr
    );
    k.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    k.run(&["codegen", "initial", "--project", "app"]).ok();
}

#[test]
fn add_strategy_keeps_comments_and_refuses_unknown_names() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    let before = k.read("app/kumo.toml");
    let run = k
        .run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    assert!(
        run.stdout.contains("built-in account resources"),
        "{}",
        run.stdout
    );
    let after = k.read("app/kumo.toml");
    assert_eq!(
        after,
        before.replace("strategies = []", "strategies = [\"magic_link\"]")
    );
    let again = k
        .run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    assert!(again.stdout.contains("already enabled"));
    let bad = k
        .run(&["auth", "add-strategy", "magic", "--project", "app"])
        .fails();
    assert!(
        bad.stderr.contains(
            "unknown auth strategy `magic`; valid strategies: magic_link, password, api_key"
        ),
        "{}",
        bad.stderr
    );
    assert_eq!(k.read("app/kumo.toml"), after);
}

#[test]
fn commands_outside_a_project_say_how_to_start_one() {
    let k = Kumo::new();
    let run = k.run(&["migrate"]).fails();
    assert!(run.stderr.contains("no kumo.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("kumo new"), "{}", run.stderr);
}

#[test]
fn every_command_has_help_with_an_example() {
    let k = Kumo::new();
    for args in [
        vec!["--help"],
        vec!["new", "--help"],
        vec!["auth", "--help"],
        vec!["auth", "add-strategy", "--help"],
        vec!["user", "--help"],
        vec!["user", "create", "--help"],
        vec!["user", "set-role", "--help"],
        vec!["user", "lock", "--help"],
        vec!["user", "unlock", "--help"],
        vec!["codegen", "--help"],
        vec!["db", "--help"],
        vec!["db", "create", "--help"],
        vec!["db", "drop", "--help"],
        vec!["db", "status", "--help"],
        vec!["db", "reset", "--help"],
        vec!["migrate", "--help"],
        vec!["rollback", "--help"],
        vec!["setup", "--help"],
        vec!["serve", "--help"],
        vec!["demo", "--help"],
    ] {
        let run = k.run(&args).ok();
        assert!(
            run.stdout.contains("Example"),
            "`kumo {}` has no example:\n{}",
            args.join(" "),
            run.stdout
        );
    }
}

#[test]
fn a_bad_resource_file_reports_every_error_with_line_and_column() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    k.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    k.write(
        "app/resources/world.toml",
        "[resource]\nname = \"world\"\n\n[attributes]\ntitle = { type = \"strng\" }\nsize = { type = \"integer\", max_lenght = 3 }\n",
    );
    let run = k.run(&["codegen", "initial", "--project", "app"]).fails();
    assert!(
        run.stderr.contains("resources/world.toml:5:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("resources/world.toml:6:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `string`?"),
        "{}",
        run.stderr
    );
    // The diagnostics carry their own `error:`; nothing adds a second one.
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(!run.stderr.contains("error: error:"), "{}", run.stderr);
    assert!(!k.path("app/migrations/schema").exists(), "nothing written");
}

/// `.env.example` says `.env` is read: `DATABASE_URL` there picks the
/// database, and the real environment still wins over the file.
#[test]
fn database_url_in_dot_env_is_honoured_and_the_environment_wins() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    k.write(
        "app/.env",
        "# local settings\nDATABASE_URL=sqlite://data/from_dot_env.db\n",
    );
    let created = k.run(&["db", "create", "--project", "app"]).ok();
    assert!(
        created.stdout.contains("from_dot_env.db"),
        "{}",
        created.stdout
    );
    assert!(k.path("app/data/from_dot_env.db").exists());
    assert!(!k.path("app/data/kumo.db").exists());

    let from_shell = k.path("from_shell.db");
    let mut command = k.command(&["db", "create", "--project", "app"]);
    command.env("DATABASE_URL", format!("sqlite://{}", from_shell.display()));
    let output = command.output().expect("run kumo");
    assert!(output.status.success(), "{output:?}");
    assert!(from_shell.exists(), "the environment must win over .env");
}

/// The new project's resources are its users' first reference: every type,
/// option, relationship kind and action key appears in them (the CLI tests
/// above then codegen, migrate and serve them on both databases).
#[test]
fn the_example_resources_show_every_feature_of_the_format() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    let all: String = ["avatar", "comment", "tag", "avatar_tag"]
        .iter()
        .map(|name| k.read(&format!("app/resources/{name}.toml")))
        .collect();
    for ty in [
        "string", "text", "integer", "float", "boolean", "uuid", "date", "datetime", "json",
        "enum", "array",
    ] {
        assert!(
            all.contains(&format!("type = \"{ty}\"")),
            "no {ty} attribute"
        );
    }
    for feature in [
        "plural = ",
        "description = ",
        "\n# renamed_from = ",
        "required = true",
        "default = ",
        "unique = true",
        "sensitive = true",
        "writable = false",
        "min_length = ",
        "max_length = ",
        "pattern = ",
        "min = ",
        "max = ",
        "values = [",
        "of = ",
        "renamed_from = \"caption\"",
        "belongs_to = ",
        "on_delete = \"restrict\"",
        "on_delete = \"cascade\"",
        "on_delete = \"nullify\"",
        "has_many = ",
        "via = ",
        "many_to_many = ",
        "through = ",
        "[identities]",
        "index = true",
        "[indexes]",
        "[\"-",
        "[policies]",
        "[actions.",
        "accept = ",
        "set = ",
        "increment = ",
        "policy = ",
    ] {
        assert!(all.contains(feature), "the example lacks `{feature}`");
    }
}

/// A password in a database URL's query string was printed verbatim in
/// errors (only `user:password@` was masked), and a `.env` line that does
/// not parse was echoed whole, secret and all.
#[test]
fn secrets_in_urls_and_dot_env_lines_are_never_printed() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    for url in [
        "postgres://u@127.0.0.1:5432/x?sslmode=bogus&password=hunter2",
        "postgres://u:hunter2@127.0.0.1:5432/x?sslmode=bogus",
        "postgres://u@127.0.0.1:notaport/x?sslpassword=hunter2",
        "sqlite://data/kumo.db?mode=bogus&password=hunter2",
        "mysql://u@h/x?token=hunter2",
    ] {
        let mut command = k.command(&["db", "status", "--project", "app"]);
        command.env("DATABASE_URL", url);
        let output = command.output().expect("run kumo");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{url}: {printed}");
        assert!(printed.contains("bad database URL"), "{url}: {printed}");
        assert!(!printed.contains("hunter2"), "{url}: {printed}");
    }
    k.write(
        "app/.env",
        "# local settings\nDATABASE_URL=sqlite://data/kumo.db\nKUMO SECRET=hunter2\n",
    );
    let run = k.run(&["db", "status", "--project", "app"]).fails();
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    assert_eq!(
        run.stderr,
        "error: app/.env:3: cannot parse this line; write it as NAME=value, quoting a value with spaces or #. Its text is not shown, as it may hold a secret.\n"
    );
}

/// Every other test passes `--project app`; a user runs the commands inside
/// the project.
#[test]
fn project_commands_work_in_the_current_directory() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    let in_app = |args: &[&str]| {
        let mut command = k.command(args);
        command.current_dir(k.path("app"));
        crate::Run::from(command.output().expect("run kumo")).ok()
    };
    in_app(&["auth", "add-strategy", "magic_link"]);
    let codegen = in_app(&["codegen", "initial"]);
    assert!(
        codegen.stdout.contains("Wrote migrations/"),
        "{}",
        codegen.stdout
    );
    in_app(&["db", "create"]);
    let migrated = in_app(&["migrate"]);
    assert!(migrated.stdout.contains("_initial"), "{}", migrated.stdout);
    let status = in_app(&["db", "status"]);
    assert!(
        status
            .stdout
            .contains("Database: SQLite database ./data/kumo.db")
            && status.stdout.contains("Live schema: matches"),
        "{}",
        status.stdout
    );
    assert!(k.path("app/data/kumo.db").exists());
    in_app(&["codegen", "--check"]);
}

/// `--project` is global in the help, but was only taken after the
/// command: `kumo --project DIR db status` failed.
#[test]
fn project_may_come_before_the_command() {
    let k = Kumo::new();
    k.set_up_project();
    let status = k.run(&["--project", "app", "db", "status"]).ok();
    assert!(
        status.stdout.contains("Live schema: matches"),
        "{}",
        status.stdout
    );
    let status = k.run(&["db", "--project", "app", "status"]).ok();
    assert!(
        status.stdout.contains("Live schema: matches"),
        "{}",
        status.stdout
    );
    k.run(&["--project", "app", "codegen", "--check"]).ok();
    let refused = k.run(&["--project", "app", "new", "other"]).fails();
    assert!(
        refused.stderr.contains("take no --project"),
        "{}",
        refused.stderr
    );
    assert!(!k.path("other").exists());
}

/// `kumo new .` printed "in .." and "cd ."; `kumo new "My Game!"` printed
/// an unquoted `cd My Game!` and named the PostgreSQL database `my_game_`.
#[test]
fn new_prints_pasteable_next_steps_and_a_tidy_name() {
    let k = Kumo::new();
    let run = k.run(&["new", "My Game!", "--database", "postgres"]).ok();
    assert_eq!(
        run.stdout,
        "Created the Kumo project `my_game` in 'My Game!'.\n\nNext:\n  cd 'My Game!'\n  kumo auth add-strategy magic_link\n  kumo codegen initial\n  kumo db create\n  kumo setup\n  kumo serve\n"
    );
    assert!(
        k.read("My Game!/kumo.toml")
            .contains("url = \"postgres://postgres@127.0.0.1:5432/my_game\"\n"),
        "{}",
        k.read("My Game!/kumo.toml")
    );

    std::fs::create_dir(k.path("here")).unwrap();
    let mut command = k.command(&["new", "."]);
    command.current_dir(k.path("here"));
    let run = crate::Run::from(command.output().expect("run kumo")).ok();
    assert_eq!(
        run.stdout,
        "Created the Kumo project `here` in the current directory.\n\nNext:\n  kumo auth add-strategy magic_link\n  kumo codegen initial\n  kumo db create\n  kumo setup\n  kumo serve\n"
    );
    assert!(k.path("here/kumo.toml").exists());
}
