//! `kumo codegen`: no questions, named destructive steps, `--check` for CI,
//! and a recorded schema that merges cleanly across branches.

use crate::{Kumo, files_under};

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
    assert!(k.path("app/migrations/schema/avatars.toml").exists());
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

#[test]
fn two_branches_adding_different_resources_merge_cleanly() {
    let main = Kumo::new();
    main.set_up_project();
    // Branch A adds `rating`, branch B adds `badge`, from the same base.
    let base = main.path("app");
    let branch_b = Kumo::new();
    copy_dir(&base, &branch_b.path("app"));
    main.write("app/resources/rating.toml", RATING);
    main.run(&["codegen", "add_ratings", "--project", "app"])
        .ok();
    branch_b.write("app/resources/badge.toml", BADGE);
    branch_b
        .run(&["codegen", "add_badges", "--project", "app"])
        .ok();
    // Every file branch B added or changed is one main does not have: a merge
    // has no conflicts. Bring them over, as git would.
    let main_files = files_under(&main.path("app"));
    let base_files = files_under(&branch_b.path("app"));
    for file in base_files {
        // The SQLite database is local state, not part of the merge.
        if file.starts_with("data/") {
            continue;
        }
        let theirs = branch_b.read(&format!("app/{file}"));
        if main_files.contains(&file) {
            let ours = main.read(&format!("app/{file}"));
            assert_eq!(ours, theirs, "{file} changed on both branches");
        } else {
            main.write(&format!("app/{file}"), &theirs);
        }
    }
    main.run(&["codegen", "--check", "--project", "app"]).ok();
    let migrated = main.run(&["migrate", "--project", "app"]).ok();
    assert!(
        migrated.stdout.contains("_add_badges"),
        "{}",
        migrated.stdout
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
