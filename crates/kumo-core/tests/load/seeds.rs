//! Seed files: good rows load in dependency order; bad ones are reported.

use std::path::PathBuf;

use insta::assert_snapshot;
use kumo_core::load::{KUMO_SEED_NAMESPACE, SeedRow, load_schema, load_seeds};
use kumo_core::resource::Schema;
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

/// The example plus a self-referencing `category`.
fn schema() -> Schema {
    let mut files = example_files();
    files.extend(files_of(&[(
        "category",
        r#"[resource]
name = "category"
plural = "categories"

[attributes]
title = { type = "string", required = true }
position = { type = "integer", default = 0 }

[relationships]
parent = { belongs_to = "category", on_delete = "cascade" }
"#,
    )]));
    load_schema(files, true).unwrap_or_else(|e| panic!("{e}"))
}

fn files_of(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    files(list)
}

fn seeds(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    list.iter()
        .map(|(name, text)| {
            (
                PathBuf::from(format!("seeds/{name}.toml")),
                (*text).to_owned(),
            )
        })
        .collect()
}

fn id(resource: &str, key: &str) -> Uuid {
    Uuid::new_v5(&KUMO_SEED_NAMESPACE, format!("{resource}/{key}").as_bytes())
}

fn order(rows: &[SeedRow]) -> Vec<String> {
    rows.iter()
        .map(|r| format!("{}/{}", r.resource, r.key))
        .collect()
}

#[test]
fn rows_come_after_the_rows_they_refer_to() {
    let schema = schema();
    // Avatars and comments come first in the files, users last.
    let rows = load_seeds(
        &schema,
        seeds(&[
            (
                "a_content",
                r#"[[comment]]
key = "hello"
body = "Nice robot"
avatar = "robot"
author = "bob"

[[avatar]]
key = "robot"
name = "Robot"
uploader = "alice"
released_at = 2026-01-02T05:04:05+02:00
tags = ["metal", "shiny"]

[[avatar]]
key = "blob"
name = "Blob"
uploader = "bob"
kind = "creature"

[[category]]
key = "root"
title = "All"

[[category]]
key = "robots"
title = "Robots"
parent = "root"
"#,
            ),
            (
                "b_users",
                r#"[[user]]
key = "alice"
email = "Alice@Example.com"
role = "admin"

[[user]]
key = "bob"
email = "bob@example.com"
"#,
            ),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        order(&rows),
        [
            "user/alice",
            "user/bob",
            "avatar/robot",
            "avatar/blob",
            // Resources with no dependency between them keep schema order.
            "category/root",
            "category/robots",
            "comment/hello",
        ]
    );
    let alice = &rows[0];
    assert_eq!(alice.id, id("user", "alice"));
    assert_eq!(
        alice.values,
        [
            ("email".to_owned(), json!("alice@example.com")),
            ("role".to_owned(), json!("admin")),
        ]
    );
    let robot = &rows[2];
    assert_eq!(robot.id, id("avatar", "robot"));
    assert_eq!(
        robot.values,
        [
            ("name".to_owned(), json!("Robot")),
            (
                "uploader_id".to_owned(),
                json!(id("user", "alice").to_string())
            ),
            ("released_at".to_owned(), json!("2026-01-02T03:04:05.000Z")),
            ("tags".to_owned(), json!(["metal", "shiny"])),
        ]
    );
    let hello = &rows[6];
    assert_eq!(
        hello.values,
        [
            ("body".to_owned(), json!("Nice robot")),
            (
                "avatar_id".to_owned(),
                json!(id("avatar", "robot").to_string())
            ),
            ("author_id".to_owned(), json!(id("user", "bob").to_string())),
        ]
    );
    assert_eq!(
        rows[5].values[1],
        (
            "parent_id".to_owned(),
            json!(id("category", "root").to_string())
        )
    );
}

#[test]
fn ids_are_stable_v5_uuids() {
    let a = id("user", "alice");
    assert_eq!(a.get_version_num(), 5);
    assert_eq!(a, Uuid::new_v5(&KUMO_SEED_NAMESPACE, b"user/alice"));
    assert_ne!(a, id("avatar", "alice"));
}

#[test]
fn no_seed_files_means_no_rows() {
    let rows = load_seeds(&schema(), Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    assert!(rows.is_empty());
    let dir = std::env::temp_dir().join("kumo-no-such-seeds-dir");
    let rows = kumo_core::load::load_seeds_dir(&schema(), &dir, std::path::Path::new("seeds"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rows.is_empty());
}

#[test]
fn bad_seeds_are_all_reported() {
    let schema = schema();
    let err = load_seeds(
        &schema,
        seeds(&[
            (
                "a",
                r#"[[user]]
key = "alice"
email = "alice@example.com"
rol = "admin"

[[user]]
key = "alice"
email = "again@example.com"

[[user]]
email = "nokey@example.com"

[[user]]
key = "carol"
email = "carol at example.com"

[[avatar]]
key = "robot"
uploader = "alcie"
kind = "robot"

[[avatar]]
key = "blob"
name = "Blob"
uploader_id = "alice"
id = "0190f3a2-1c8b-7d4e-9a6b-3c2d1e0f9a8b"
comments = ["x"]
polycount = "many"

[[category]]
key = "child"
title = "Child"
parent = "root"

[[category]]
key = "root"
title = "Root"

[[category]]
key = "me"
title = "Me"
parent = "me"

[[avatars]]
key = "x"

[comment]
key = "y"

[[tga]]
key = "z"
"#,
            ),
            (
                "b",
                r#"[[user]]
key = "alice"
email = "dup@example.com"
"#,
            ),
        ]),
    )
    .expect_err("bad seeds");
    assert_snapshot!(err.to_string());
}

#[test]
fn a_reference_cycle_between_resources_is_reported() {
    let schema = load_schema(
        files(&[
            (
                "a",
                r#"[resource]
name = "team"

[relationships]
captain = { belongs_to = "player" }
"#,
            ),
            (
                "b",
                r#"[resource]
name = "player"

[relationships]
team = { belongs_to = "team" }
"#,
            ),
        ]),
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = load_seeds(
        &schema,
        seeds(&[(
            "all",
            r#"[[team]]
key = "red"
captain = "ann"

[[player]]
key = "ann"
team = "red"
"#,
        )]),
    )
    .expect_err("cycle");
    assert_snapshot!(err.to_string());
}
