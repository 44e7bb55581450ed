//! Indexes: `index = true` on an attribute, the `[indexes]` table, the
//! indexes Kumo adds for `belongs_to` columns, their recorded form, and the
//! errors a bad declaration gets.

use insta::assert_snapshot;
use kumo_core::load::load_schema;
use kumo_core::resource::{IndexKey, Schema};
use kumo_core::table::{self, Index, Table};

use crate::support::*;

const PLAYER: &str = r#"[resource]
name = "player"

[attributes]
nickname = { type = "string", required = true }
"#;

const SCORE: &str = r#"[resource]
name = "score"

[attributes]
points  = { type = "integer", required = true, index = true }
mode    = { type = "enum", values = ["solo", "duo"], required = true }
label   = { type = "string" }

[relationships]
player = { belongs_to = "player", required = true, on_delete = "cascade" }
season = { belongs_to = "season" }
rival  = { belongs_to = "player", on_delete = "nullify" }

[identities]
one_per_season = ["season", "player"]

[indexes]
leaderboard = ["mode", "-points"]
recent_per_player = ["player", "-inserted_at"]
by_label_desc_id = ["label", "-id"]
"#;

const SEASON: &str = r#"[resource]
name = "season"

[attributes]
title = { type = "string" }

[relationships]
scores = { has_many = "score", via = "season" }
"#;

fn schema() -> Schema {
    match load_schema(
        files(&[("player", PLAYER), ("score", SCORE), ("season", SEASON)]),
        false,
    ) {
        Ok(schema) => schema,
        Err(e) => panic!("{e}"),
    }
}

fn keys(spelled: &[&str]) -> Vec<IndexKey> {
    spelled.iter().map(|k| IndexKey::parse(k)).collect()
}

fn scores_table(schema: &Schema) -> Table {
    table::lower(schema)
        .into_iter()
        .find(|t| t.name == "scores")
        .expect("scores")
}

#[test]
fn indexes_load_with_relationships_as_their_columns() {
    let schema = schema();
    let score = schema.resource("score").expect("score");
    assert!(score.attribute("points").expect("points").index);
    assert!(!score.attribute("mode").expect("mode").index);
    let declared: Vec<(&str, Vec<IndexKey>)> = score
        .indexes
        .iter()
        .map(|i| (i.name.as_str(), i.keys.clone()))
        .collect();
    assert_eq!(
        declared,
        [
            ("leaderboard", keys(&["mode", "-points"])),
            ("recent_per_player", keys(&["player_id", "-inserted_at"])),
            ("by_label_desc_id", keys(&["label", "-id"])),
        ]
    );
    assert_eq!(
        &SCORE[score.indexes[1].span.clone()],
        "recent_per_player",
        "the span is the index's key"
    );
}

/// Every index ends with `id`, the API's tie-breaker; `belongs_to` columns
/// get an index unless an index or unique index already starts with them.
#[test]
fn lowering_appends_id_and_indexes_uncovered_foreign_keys() {
    let scores = scores_table(&schema());
    let lowered: Vec<(&str, Vec<String>)> = scores
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.keys.iter().map(IndexKey::spelled).collect(),
            )
        })
        .collect();
    assert_eq!(
        lowered,
        [
            // `-id` is kept as written, not appended again.
            ("scores_by_label_desc_id_idx", vec!["label", "-id"]),
            ("scores_leaderboard_idx", vec!["mode", "-points", "id"]),
            ("scores_points_idx", vec!["points", "id"]),
            (
                "scores_recent_per_player_idx",
                vec!["player_id", "-inserted_at", "id"]
            ),
            // Neither `season_id` (the identity starts with it) nor
            // `player_id` (`recent_per_player` does) gets one of its own.
            ("scores_rival_id_idx", vec!["rival_id", "id"]),
        ]
        .map(|(n, k)| (n, k.into_iter().map(String::from).collect()))
    );
    assert_eq!(
        scores.unique_indexes[0].columns,
        ["season_id", "player_id"],
        "the identity is unchanged"
    );
}

#[test]
fn the_recorded_form_reads_back_and_keeps_old_unique_files() {
    let scores = scores_table(&schema());
    let recorded = table::to_snapshot(&scores);
    assert_eq!(
        recorded.indexes["scores_leaderboard_idx"],
        "# Recorded by `kumo codegen`; do not edit by hand.\n\nunique = false\ncolumns = [\n    \"mode\",\n    \"-points\",\n    \"id\",\n]\n"
    );
    // Unique indexes are written as before: no `unique` key.
    assert_eq!(
        recorded.indexes["scores_one_per_season_key"],
        "# Recorded by `kumo codegen`; do not edit by hand.\n\ncolumns = [\n    \"season_id\",\n    \"player_id\",\n]\n"
    );
    let back = table::from_snapshot(&recorded).expect("reads back");
    assert_eq!(back.indexes, scores.indexes);
    assert_eq!(back.unique_indexes, scores.unique_indexes);

    let mut broken = recorded;
    broken.indexes.insert(
        "scores_x_idx".into(),
        "unique = false\ncolumns = [\"-pionts\", \"id\"]\n".into(),
    );
    let error = table::from_snapshot(&broken).expect_err("unknown column");
    assert_eq!(
        error.to_string(),
        "indexes/scores_x_idx.toml: no column `pionts`"
    );
}

/// A project that predates indexes: its recorded `belongs_to` columns have
/// none, and lowering its unchanged resources adds them.
#[test]
fn projects_from_before_indexes_get_their_foreign_keys_indexed() {
    let schema = schema();
    let mut old: Table = scores_table(&schema);
    old.indexes.clear();
    let new = scores_table(&schema);
    assert!(
        new.indexes
            .iter()
            .any(|i: &Index| i.name == "scores_rival_id_idx")
    );
    assert_ne!(old, new);
}

#[test]
fn the_user_resource_takes_indexes_from_its_extension() {
    let user = r#"[resource]
name = "user"

[attributes]
level = { type = "integer", default = 1, index = true }

[indexes]
by_level_and_name = ["-level", "username"]
"#;
    let schema = load_schema(files(&[("user", user)]), true).unwrap_or_else(|e| panic!("{e}"));
    let users = table::lower(&schema)
        .into_iter()
        .find(|t| t.name == "users")
        .expect("users");
    let names: Vec<&str> = users.indexes.iter().map(|i| i.name.as_str()).collect();
    // The project's two beside the built-in one (sign-ups, newest first).
    assert_eq!(
        names,
        [
            "users_by_level_and_name_idx",
            "users_level_idx",
            "users_signed_up_idx"
        ]
    );
    // The built-in sessions table gets its `user_id` indexed.
    let sessions = table::lower(&schema)
        .into_iter()
        .find(|t| t.name == "sessions")
        .expect("sessions");
    assert_eq!(sessions.indexes[0].name, "sessions_user_id_idx");
}

#[test]
fn index_errors() {
    assert_snapshot!(errors_of(
        &[
            (
                "avatar",
                r#"[resource]
name = "avatar"

[attributes]
name = { type = "string", index = true }
meta = { type = "json" }
blob = { type = "json", index = true }
rank = { type = "integer" }
level = { type = "integer", index = "yes" }
size = { type = "integer", indx = true }

[relationships]
owner = { belongs_to = "player" }
comments = { has_many = "comment" }

[indexes]
empty = []
not_a_list = "name"
twice = ["name", "-name"]
unknown = ["nmae", "-ownr"]
by_column = ["owner_id"]
by_json = ["meta"]
by_many = ["comments"]
only_id = ["id"]
id_first = ["id", "name"]
plus = ["+rank", "-"]
name = ["-rank"]
owner_id = ["rank", "-name"]
same_as_name = ["name", "id"]
by_rank = ["rank"]
by_rank_again = ["rank", "id"]
BadName = ["rank"]
"#
            ),
            ("player", PLAYER),
            (
                "comment",
                r#"[resource]
name = "comment"

[relationships]
avatar = { belongs_to = "avatar" }

[indices]
by_avatar = ["avatar"]
"#
            ),
        ],
        false
    ));
}

/// The complete example at the top of docs/resources.md loads, and makes
/// the indexes its `[indexes]` section says it does.
#[test]
fn the_docs_example_makes_the_indexes_the_docs_describe() {
    let docs = include_str!("../../../../docs/resources.md");
    let section = docs
        .split("\n## A complete example")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the complete example");
    let blocks: Vec<(String, String)> = section
        .split("```toml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(|block| {
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("# resources/"))
                .and_then(|l| l.split(".toml").next())
                .unwrap_or("avatar");
            (name.to_owned(), block.to_owned())
        })
        .collect();
    assert_eq!(blocks.len(), 4, "{blocks:?}");
    let list: Vec<(&str, &str)> = blocks
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let schema = load_schema(files(&list), true).unwrap_or_else(|e| panic!("{e}"));
    let avatars = table::lower(&schema)
        .into_iter()
        .find(|t| t.name == "avatars")
        .expect("avatars");
    let names: Vec<&str> = avatars.indexes.iter().map(|i| i.name.as_str()).collect();
    // No `avatars_uploader_id_idx`: the identity and `recent_by_uploader`
    // start with `uploader_id`.
    assert_eq!(
        names,
        [
            "avatars_polycount_idx",
            "avatars_recent_by_uploader_idx",
            "avatars_top_rated_idx",
        ]
    );
}

const NOTE: &str = r#"[resource]
name = "note"

[attributes]
title = { type = "string", required = true, search = true }
body  = { type = "text", search = true, index = true }

[relationships]
author = { belongs_to = "player" }
"#;

/// `search = true` lowers to a search index of one key (no `id`: it
/// serves no sort), next to the attribute's ordinary index when it has
/// `index = true` too; it never stands in for a `belongs_to` index; its
/// recorded form says `search = true` and reads back.
#[test]
fn search_indexes_lower_and_record() {
    let schema = match load_schema(files(&[("player", PLAYER), ("note", NOTE)]), false) {
        Ok(schema) => schema,
        Err(e) => panic!("{e}"),
    };
    let note = schema.resource("note").expect("note");
    assert!(note.attribute("title").expect("title").search);
    let notes = table::lower(&schema)
        .into_iter()
        .find(|t| t.name == "notes")
        .expect("notes");
    let lowered: Vec<(&str, Vec<String>, bool)> = notes
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.keys.iter().map(IndexKey::spelled).collect(),
                i.search,
            )
        })
        .collect();
    let expected: Vec<(&str, Vec<String>, bool)> = vec![
        (
            "notes_author_id_idx",
            vec!["author_id".into(), "id".into()],
            false,
        ),
        ("notes_body_idx", vec!["body".into(), "id".into()], false),
        ("notes_body_search", vec!["body".into()], true),
        ("notes_title_search", vec!["title".into()], true),
    ];
    assert_eq!(lowered, expected);
    let recorded = table::to_snapshot(&notes);
    assert_eq!(
        recorded.indexes["notes_title_search"],
        "# Recorded by `kumo codegen`; do not edit by hand.\n\nunique = false\nsearch = true\ncolumns = [\"title\"]\n"
    );
    let back = table::from_snapshot(&recorded).expect("reads back");
    assert_eq!(back.indexes, notes.indexes);
}

#[test]
fn search_errors() {
    assert_snapshot!(errors_of(
        &[(
            "thing",
            r#"[resource]
name = "thing"

[attributes]
count  = { type = "integer", search = true }
meta   = { type = "json", search = true }
secret = { type = "string", sensitive = true, search = true }
word   = { type = "string", search = "yes" }
kind   = { type = "enum", values = ["a", "b"], search = true }
fine   = { type = "text", search = false }
"#
        )],
        false
    ));
}
