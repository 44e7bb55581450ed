//! Snapshots of the rendered errors for bad resource files: one test per
//! rule family, plus files with several errors at once.

use insta::assert_snapshot;

use crate::support::*;

/// A minimal valid `user`-free project file to combine with a bad one.
const PLAYER: &str = r#"[resource]
name = "player"

[attributes]
nickname = { type = "string", required = true }
"#;

#[test]
fn unknown_keys_at_every_level() {
    assert_snapshot!(errors_of(
        &[
            (
                "avatar",
                r#"[resource]
name = "avatar"
plurl = "avatars"

[atributes]
x = { type = "string" }

[attributes]
name = { type = "string", max_lenght = 64 }

[relationships]
owner = { belongs_to = "player", on_delte = "cascade" }

[policies]
delete = "true"
raed = "true"
list = "true"

[actions.publish]
type = "update"
acept = ["name"]
"#
            ),
            ("player", PLAYER)
        ],
        false
    ));
}

#[test]
fn wrong_value_types() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            r#"[resource]
name = "avatar"
description = 3

[attributes]
name = { type = "string", required = "yes", unique = 1 }
size = { type = "integer", min = "0", max = 1.5 }
weight = { type = "float", min = "light" }
kind = { type = "enum", values = "a" }
label = { type = "string", min_length = -1 }

[identities]
by_name = "name"

[policies]
read = true

[actions.rename]
type = "update"
accept = "name"
set = []
"#
        )],
        false
    ));
}

#[test]
fn bare_string_attribute_and_non_table_sections() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            r#"relationships = "none"

[resource]
name = "avatar"

[attributes]
name = "string"
count = 3
"#
        )],
        false
    ));
}

#[test]
fn identifiers() {
    assert_snapshot!(errors_of(
        &[
            (
                "a",
                r#"[resource]
name = "AvatarTag"

[attributes]
isPublic = { type = "boolean" }
this_attribute_name_is_far_too_long_to_be_a_column_name = { type = "text" }
"2d" = { type = "text" }

[relationships]
Owner = { belongs_to = "player" }

[identities]
"by-name" = ["isPublic"]

[actions.Publish]
type = "update"
"#
            ),
            (
                "b",
                r#"[resource]
name = "thing"
plural = "Things"
"#
            ),
            ("player", PLAYER),
        ],
        false
    ));
}

#[test]
fn reserved_names() {
    assert_snapshot!(errors_of(
        &[
            (
                "a",
                r#"[resource]
name = "kumo_avatar"

[attributes]
id = { type = "uuid" }
inserted_at = { type = "datetime" }
"#
            ),
            (
                "b",
                r#"[resource]
name = "panel"
plural = "admin"

[actions.create]
type = "create"

[actions.list]
type = "update"
"#
            ),
            (
                "c",
                r#"[resource]
name = "thing"
plural = "kumo_things"
"#
            ),
            (
                "d",
                r#"[resource]
name = "session"
"#
            ),
            (
                "e",
                r#"[resource]
name = "login"
plural = "sessions"
"#
            ),
        ],
        true
    ));
}

#[test]
fn duplicates() {
    assert_snapshot!(errors_of(
        &[
            (
                "avatar",
                r#"[resource]
name = "avatar"

[attributes]
uploader = { type = "string" }
uploader_id = { type = "string" }

[relationships]
uploader = { belongs_to = "player" }
"#
            ),
            (
                "avatar2",
                r#"[resource]
name = "avatar"
"#
            ),
            (
                "picture",
                r#"[resource]
name = "picture"
plural = "avatars"
"#
            ),
            ("player", PLAYER),
        ],
        false
    ));
}

#[test]
fn type_specific_options() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            r#"[resource]
name = "avatar"

[attributes]
a = { type = "integer", min_length = 1, pattern = "x" }
b = { type = "string", min = 0, values = ["x"] }
c = { type = "enum", values = ["x"], of = "string" }
d = { type = "text", max_length = 10 }
e = { type = "integer", min = 10, max = 1 }
f = { type = "string", min_length = 5, max_length = 2 }
g = { type = "float", min = 1.5, max = 0 }
"#
        )],
        false
    ));
}

#[test]
fn enums_arrays_patterns_unique() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            r#"[resource]
name = "avatar"

[attributes]
kind = { type = "enum" }
size = { type = "enum", values = [] }
mood = { type = "enum", values = ["happy", "sad", "happy", ""] }
tags = { type = "array" }
blobs = { type = "array", of = "json" }
nums = { type = "array", of = "integr" }
code = { type = "string", pattern = "[a-z" }
meta = { type = "json", unique = true }
list = { type = "array", of = "string", unique = true }
"#
        )],
        false
    ));
}

#[test]
fn misspelt_type_and_missing_type() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            r#"[resource]
name = "avatar"

[attributes]
name = { type = "strng" }
count = { type = "int" }
when = { type = "timestamp" }
note = { required = true }
"#
        )],
        false
    ));
}

#[test]
fn defaults_are_checked_against_their_attribute() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            r#"[resource]
name = "avatar"

[attributes]
kind = { type = "enum", values = ["humanoid", "creature"], default = "robot" }
name = { type = "string", max_length = 3, default = "too long" }
short = { type = "string", min_length = 3, default = "ab" }
code = { type = "string", pattern = "^[A-Z]+$", default = "abc" }
count = { type = "integer", min = 0, default = -1 }
top = { type = "integer", max = 10, default = 11 }
ratio = { type = "float", default = "half" }
whole = { type = "integer", default = 1.5 }
ref = { type = "uuid", default = "not-a-uuid" }
day = { type = "date", default = "2026-02-30" }
day2 = { type = "date", default = 2026-01-02T03:04:05Z }
at = { type = "datetime", default = 2026-01-02T03:04:05 }
at2 = { type = "datetime", default = "yesterday" }
at3 = { type = "datetime", default = 2026-01-02 }
flag = { type = "boolean", default = "true" }
tags = { type = "array", of = "integer", default = [1, "two"] }
"#
        )],
        false
    ));
}

#[test]
fn relationships() {
    assert_snapshot!(errors_of(
        &[
            (
                "avatar",
                r#"[resource]
name = "avatar"

[relationships]
uploader = { belongs_to = "playr" }
owner = { belongs_to = "player", required = true, on_delete = "nullify" }
keeper = { belongs_to = "player", on_delete = "cascde" }
comments = { has_many = "comment" }
likes = { has_many = "like" }
likes_via = { has_many = "like", via = "avatr" }
notes = { has_many = "note", via = "player" }
tags = { many_to_many = "tag" }
labels = { many_to_many = "tag", through = "avatar_tags" }
badges = { many_to_many = "tag", through = "badge" }
kind = { belongs_to = "player", has_many = "player" }
weird = { has_many = "like", required = true, through = "x" }
nothing = { description = "no kind" }
"#
            ),
            ("player", PLAYER),
            (
                "comment",
                r#"[resource]
name = "comment"
"#
            ),
            (
                "like",
                r#"[resource]
name = "like"

[relationships]
avatar = { belongs_to = "avatar" }
original_avatar = { belongs_to = "avatar" }
"#
            ),
            (
                "note",
                r#"[resource]
name = "note"

[relationships]
player = { belongs_to = "player" }
"#
            ),
            (
                "tag",
                r#"[resource]
name = "tag"
"#
            ),
            (
                "badge",
                r#"[resource]
name = "badge"

[relationships]
avatar = { belongs_to = "avatar" }
"#
            ),
        ],
        false
    ));
}

#[test]
fn user_target_without_system_resources() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            r#"[resource]
name = "avatar"

[relationships]
uploader = { belongs_to = "user", required = true, on_delete = "cascade" }
login = { belongs_to = "session" }
"#
        )],
        false
    ));
}

#[test]
fn declaring_user_without_system_resources() {
    assert_snapshot!(errors_of(
        &[(
            "user",
            r#"[resource]
name = "user"

[attributes]
level = { type = "integer", default = 1 }
"#
        )],
        false
    ));
}

#[test]
fn identities() {
    assert_snapshot!(errors_of(
        &[
            (
                "avatar",
                r#"[resource]
name = "avatar"

[attributes]
name = { type = "string" }
meta = { type = "json" }

[relationships]
owner = { belongs_to = "player" }
comments = { has_many = "comment" }

[identities]
empty = []
twice = ["name", "name"]
unknown = ["nmae", "ownr"]
by_json = ["meta"]
by_many = ["comments"]
by_id = ["id", "owner"]
"#
            ),
            ("player", PLAYER),
            (
                "comment",
                r#"[resource]
name = "comment"

[relationships]
avatar = { belongs_to = "avatar" }
"#
            ),
        ],
        false
    ));
}

#[test]
fn policy_syntax_errors_point_inside_the_string() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            r#"[resource]
name = "avatar"

[attributes]
is_public = { type = "boolean" }

[policies]
read = "record.is_public = true"
create = "actor != null and actor.role == 'admin'"
update = 'actor.id == record.id ||'
destroy = "actor.role in ['admin', \"coordinator\"] && (record.is_public"
"#
        )],
        false
    ));
}

#[test]
fn policy_paths() {
    assert_snapshot!(errors_of(
        &[
            (
                "avatar",
                r#"[resource]
name = "avatar"

[attributes]
is_public = { type = "boolean" }
name = { type = "string" }

[relationships]
owner = { belongs_to = "player" }
comments = { has_many = "comment" }

[policies]
read = "record.is_pubic || actor.id == record.owner_id"
create = "actor.rol == 'admin' || actor.email.domain == 'x'"
update = "record == actor || record.owner == actor.id"
destroy = "record.owner.nickame == 'x' || record.name.first == 'y' || record.comments.body == 'z'"
"#
            ),
            ("player", PLAYER),
            (
                "comment",
                r#"[resource]
name = "comment"

[attributes]
body = { type = "text" }

[relationships]
avatar = { belongs_to = "avatar" }
"#
            ),
        ],
        false
    ));
}

#[test]
fn actor_fields_come_from_the_user_resource_when_present() {
    assert_snapshot!(errors_of(
        &[
            (
                "avatar",
                r#"[resource]
name = "avatar"

[relationships]
uploader = { belongs_to = "user" }

[policies]
read = "actor.level > 3 || actor.password_hsh == 'x' || record.uploader.usrname == 'bob'"
"#
            ),
            (
                "user",
                r#"[resource]
name = "user"

[attributes]
level = { type = "integer", default = 1 }
"#
            ),
        ],
        true
    ));
}

/// A resource with a field of every type, for the policy typing tests.
const GALLERY: &str = r#"[resource]
name = "gallery"

[attributes]
name = { type = "string" }
about = { type = "text" }
polycount = { type = "integer" }
rating = { type = "float" }
is_public = { type = "boolean" }
kind = { type = "enum", values = ["humanoid", "creature"] }
tags = { type = "array", of = "string" }
scores = { type = "array", of = "integer" }
metadata = { type = "json" }
released_at = { type = "datetime" }
opened_on = { type = "date" }

[relationships]
owner = { belongs_to = "user" }
"#;

#[test]
fn policy_comparisons_need_matching_types_and_valid_literals() {
    let policies = r#"
[policies]
read = "record.polycount == 'abc' || record.is_public == 1 || record.name != 2.5 || record.rating == true"
create = "record.kind == 'robot' || record.kind == 'humanod' || actor.role == 'owner' || record.kind == record.name"
update = "record.owner_id == 'not-a-uuid' || record.id == actor.email || record.owner_id == record.released_at"
destroy = "record.released_at == '2026-01-02T03:04:05' || record.released_at > '2026-01-02' || record.opened_on < '2026-02-30' || record.inserted_at == 'soon'"

[actions.compare_whole_values]
type = "update"
policy = "record.metadata == record.metadata || actor == record.owner_id || record.tags == ['x'] || record.scores != record.scores || actor.team.name == 3"
"#;
    let user = r#"[resource]
name = "user"

[relationships]
team = { belongs_to = "team" }

[actions.promote]
type = "update"
policy = "actor.role == 'admn' || record.team.name == 1"
"#;
    let team = "[resource]\nname = \"team\"\n\n[attributes]\nname = { type = \"string\" }\n";
    assert_snapshot!(errors_of(
        &[
            ("gallery", &format!("{GALLERY}{policies}")),
            ("team", team),
            ("user", user),
        ],
        true
    ));
}

#[test]
fn policy_conditions_orderings_and_membership() {
    let policies = r#"
[policies]
read = "actor"
create = "record.name || null || 42 || 'record.is_public' || ['admin'] || !record.polycount"
update = "record.is_public < true || null >= record.polycount || record.tags > 'a' || actor <= actor || record.metadata > 1"
destroy = "(record.polycount == 1) == true || [1, 2] == record.tags || record.kind in [['humanoid']]"

[actions.membership]
type = "update"
policy = "actor.role in ['admin', 'superuser', 1, null] && record.polycount in record.tags && 'x' in record.name && null in record.tags && record.name in record.scores && actor in [record.owner_id]"
"#;
    assert_snapshot!(errors_of(
        &[("gallery", &format!("{GALLERY}{policies}"))],
        true
    ));
}

#[test]
fn policy_types_of_the_standard_actor_fields_without_the_user_resource() {
    assert_snapshot!(errors_of(
        &[(
            "note",
            r#"[resource]
name = "note"

[attributes]
owner_id = { type = "uuid" }
level = { type = "integer" }

[policies]
read = "actor.role == 'owner' || actor.id == 3 || actor.email == record.level || actor.username < 5"
create = "actor.display_name"
"#
        )],
        false
    ));
}

#[test]
fn actions() {
    assert_snapshot!(errors_of(
        &[
            (
                "avatar",
                r#"[resource]
name = "avatar"

[attributes]
name = { type = "string", required = true }
is_public = { type = "boolean", default = false }
views = { type = "integer" }
score = { type = "float" }
kind = { type = "enum", values = ["a", "b"] }

[relationships]
owner = { belongs_to = "player", required = true }
comments = { has_many = "comment" }

[actions.untyped]
accept = ["name"]

[actions.badtype]
type = "updat"

[actions.make]
type = "create"
accept = ["nme", "id", "comments"]
increment = { views = 1 }

[actions.tweak]
type = "update"
accept = ["name"]
set = { name = "x", is_pubic = true, owner = "x", kind = "c", inserted_at = 2026-01-01T00:00:00Z, score = 2 }
increment = { views = 1.5, score = 1, kind = 1, name = 2 }
policy = "actor.id == record.ownr_id"

[actions.wipe]
type = "destroy"
set = { is_public = false }
"#
            ),
            ("player", PLAYER),
            (
                "comment",
                r#"[resource]
name = "comment"

[relationships]
avatar = { belongs_to = "avatar" }
"#
            )
        ],
        false
    ));
}

#[test]
fn extending_user() {
    assert_snapshot!(errors_of(
        &[
            (
                "user",
                r#"[resource]
name = "user"
plural = "players"
renamed_from = "account"

[attributes]
email = { type = "string" }
level = { type = "integer", required = true }
xp = { type = "integer", required = true, default = 0 }

[relationships]
role = { belongs_to = "team" }
team = { belongs_to = "team", required = true }

[identities]
by_name = ["display_name"]

[policies]
read = "true"
"#
            ),
            (
                "team",
                r#"[resource]
name = "team"
"#
            )
        ],
        true
    ));
}

#[test]
fn actions_cannot_accept_fields_that_are_not_writable() {
    assert_snapshot!(errors_of(
        &[
            (
                "badge",
                r#"[resource]
name = "badge"

[attributes]
label = { type = "string", writable = "no" }
points = { type = "integer", default = 0, writable = false }
awarded_at = { type = "datetime", writeable = false }

[relationships]
owner = { belongs_to = "user", writable = false }

[actions.claim]
type = "update"
accept = ["label", "points", "owner"]
"#
            ),
            (
                "user",
                r#"[resource]
name = "user"

[relationships]
badges = { has_many = "badge", via = "owner", writable = false }

[actions.set_password]
type = "update"
accept = ["password_hash", "locked_at"]
policy = "actor.id == record.id"
"#
            ),
        ],
        true
    ));
}

/// Regression: items merged from `resources/user.toml` into the built-in
/// `user` must keep their own file, so every error about them names
/// `resources/user.toml` and the line they are on, never the built-in file.
#[test]
fn errors_on_items_merged_into_user_name_the_project_file() {
    let user = r#"[resource]
name = "user"

[attributes]
guild_id = { type = "uuid" }
level = { type = "integer", default = 1, renamed_from = "xp" }
xp = { type = "integer", default = 0 }

[relationships]
guild = { belongs_to = "gild" }
friends = { has_many = "user", via = "buddy" }

[identities]
by_level = ["levl"]

[policies]
read = "actor.level == 'high'"

[actions.reset]
type = "update"
accept = ["password_hash"]
policy = "record.role == 'owner'"
"#;
    let Err(e) = kumo_core::load::load_schema(files(&[("user", user)]), true) else {
        panic!("expected errors");
    };
    let located: Vec<(String, usize, &str)> = e
        .items
        .iter()
        .map(|d| {
            let (line, _) = d.line_column(&e.sources).expect("a location");
            let path = e.sources.get(d.file).path.display().to_string();
            (path, line, d.message.as_str())
        })
        .collect();
    let lines: Vec<usize> = located.iter().map(|(_, line, _)| *line).collect();
    assert!(
        located
            .iter()
            .all(|(path, ..)| path == "resources/user.toml"),
        "{located:#?}"
    );
    // The attribute clashing with `guild`'s column, the rename, the unknown
    // target, the has_many `via`, the identity field, the read policy, the
    // accepted field and the action's policy.
    assert_eq!(lines, [5, 6, 10, 11, 14, 17, 21, 22], "{located:#?}");
}

#[test]
fn syntax_error_is_reported_and_the_rest_still_checked() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            r#"[resource]
name = "avatar"

[attributes]
name = { type = "string", max_length = = 64 }
kind = { type = "enm" }
"#
        )],
        false
    ));
}

#[test]
fn missing_resource_table_and_name() {
    assert_snapshot!(errors_of(
        &[
            (
                "a",
                r#"[attributes]
name = { type = "string" }
"#
            ),
            (
                "b",
                r#"[resource]
plural = "things"
"#
            ),
            ("c", ""),
        ],
        false
    ));
}

/// Many mistakes in one file: every one is reported, in file order.
#[test]
fn several_errors_in_one_file() {
    let out = errors_of(
        &[(
            "avatar",
            r#"[resource]
name = "avatar"

[attributes]
name        = { type = "string", required = true, max_lenght = 64 }
kind        = { type = "enum", values = ["humanoid", "creature"], default = "robot" }
polycount   = { type = "integr", min = 0 }
is_public   = { type = "boolean", default = "no" }

[relationships]
uploader = { belongs_to = "usr", required = true, on_delete = "nullify" }

[identities]
unique_name = ["name", "uploder"]

[policies]
read = "record.is_publc || actor.id == record.uploader_id"
update = "actor.id == = record.uploader_id"
"#,
        )],
        true,
    );
    assert!(
        out.ends_with("error: could not load resources: 9 errors"),
        "{out}"
    );
    assert_snapshot!(out);
}

#[test]
fn a_single_error_says_1_error() {
    let out = errors_of(
        &[(
            "avatar",
            "[resource]\nname = \"avatar\"\n\n[attributes]\nname = { type = \"strin\" }\n",
        )],
        false,
    );
    assert!(
        out.ends_with("error: could not load resources: 1 error"),
        "{out}"
    );
}

#[test]
fn wide_line_numbers_widen_the_gutter() {
    let mut text = String::from("[resource]\nname = \"avatar\"\n\n[attributes]\n");
    for i in 0..120 {
        text.push_str(&format!("a{i} = {{ type = \"text\" }}\n"));
    }
    text.push_str("bad = { type = \"txt\" }\n");
    assert_snapshot!(errors_of(&[("avatar", &text)], false));
}

#[test]
fn io_errors_render_without_a_snippet() {
    let dir = std::env::temp_dir().join(format!("kumo-load-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let not_a_dir = dir.join("resources");
    std::fs::write(&not_a_dir, "").expect("write");
    let err =
        kumo_core::load::load_schema_dir(&not_a_dir, std::path::Path::new("resources"), false)
            .expect_err("a file is not a directory");
    let out = err.to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.starts_with("error: could not read directory resources: "),
        "{out}"
    );
    assert!(out.contains("\n  --> resources\n"), "{out}");
    assert!(!out.contains('|'), "{out}");
}

#[test]
fn columns_count_characters_and_policies_in_other_string_forms() {
    assert_snapshot!(errors_of(
        &[(
            "avatar",
            "[resource]\nname = \"avatar\"\ndescription = \"Ünïcödé ✓\"\n\n[attributes]\nnote = { description = \"héllo wörld\", typ = \"text\" }\nis_public = { type = \"boolean\" }\n\n[policies]\nread = '''\nrecord.is_publik'''\nupdate = \"\"\"actor.id == \\\"x\\\" && record.nope\"\"\"\ncreate = \"actor.id == '\\u00e9' && record.nope\"\n",
        )],
        false
    ));
}

#[test]
fn crlf_files_render_cleanly() {
    let out = errors_of(
        &[(
            "avatar",
            "[resource]\r\nname = \"avatar\"\r\n\r\n[attributes]\r\nname = { type = \"strin\" }\r\n",
        )],
        false,
    );
    assert!(!out.contains('\r'), "{out:?}");
    assert!(out.contains("--> resources/avatar.toml:5:17"), "{out}");
}

#[test]
fn renames_and_toml_duplicate_keys() {
    assert_snapshot!(errors_of(
        &[
            (
                "a",
                r#"[resource]
name = "avatar"
renamed_from = "picture"

[attributes]
title = { type = "string", renamed_from = "caption" }
caption = { type = "string" }
name = { type = "string", renamed_from = "name" }
name = { type = "text" }
"#
            ),
            (
                "b",
                r#"[resource]
name = "picture"
renamed_from = "picture"
"#
            ),
        ],
        false
    ));
}

#[test]
fn self_referencing_many_to_many_needs_two_belongs_to() {
    assert_snapshot!(errors_of(
        &[
            (
                "player",
                r#"[resource]
name = "player"

[relationships]
friends = { many_to_many = "player", through = "friendship" }
rivals = { has_many = "rivalry" }
"#
            ),
            (
                "friendship",
                r#"[resource]
name = "friendship"

[relationships]
player = { belongs_to = "player", required = true, on_delete = "cascade" }
"#
            ),
        ],
        false
    ));
}

/// The example shown in docs/resources.md under "Errors".
#[test]
fn docs_example() {
    assert_snapshot!(errors_of(
        &[
            (
                "avatar",
                r#"[resource]
name = "avatar"

[attributes]
name = { type = "string", max_lenght = 64 }
is_public = { type = "boolean", default = false }

[policies]
read = "record.is_publc || actor.id == record.id"
"#
            ),
            (
                "comment",
                r#"[resource]
name = "comment"

[relationships]
author = { belongs_to = "user" }
"#
            ),
        ],
        false
    ));
}
