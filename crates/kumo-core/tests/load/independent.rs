//! Independent mistakes are all reported in one run, and one mistake is
//! reported once: an error in one part of a declaration must not hide an
//! error elsewhere that has nothing to do with it, and must not cause
//! follow-on errors about things that are only wrong because of it.
//!
//! Each test asserts the exact list of diagnostics, as (file, line, column,
//! message), so a hidden error and a cascading one both fail it.

use kumo_core::load::load_schema;

use crate::support::files;

type Located = (String, usize, usize, String);

/// Every diagnostic of a load that must fail, in the order they are shown.
fn located(list: &[(&str, &str)], include_system: bool) -> Vec<Located> {
    let Err(e) = load_schema(files(list), include_system) else {
        panic!("expected errors, the files loaded");
    };
    e.items
        .iter()
        .map(|d| {
            let (line, column) = d.line_column(&e.sources).expect("a location");
            let path = e.sources.get(d.file).path.display().to_string();
            (path, line, column, d.message.clone())
        })
        .collect()
}

fn at(file: &str, line: usize, column: usize, message: &str) -> Located {
    (
        format!("resources/{file}.toml"),
        line,
        column,
        message.to_owned(),
    )
}

const PLAYER: &str = r#"[resource]
name = "player"

[attributes]
nickname = { type = "string", required = true }
"#;

/// Regression: a misspelt `on_delete` made the whole relationship unusable,
/// so its misspelt target (`usr` for `user`) was never looked up.
#[test]
fn a_bad_on_delete_does_not_hide_an_unknown_target() {
    let avatar = r#"[resource]
name = "avatar"

[relationships]
owner = { belongs_to = "usr", on_delete = "cascde" }
"#;
    assert_eq!(
        located(&[("avatar", avatar)], true),
        [
            at("avatar", 5, 24, "unknown resource `usr`"),
            at("avatar", 5, 43, "unknown `on_delete` value `cascde`"),
        ]
    );
}

/// The same for the other relationship kinds: a problem with `via`, a
/// missing `through` or a bad `description` leaves the target (and the join
/// resource) to be checked.
#[test]
fn relationship_errors_do_not_hide_unknown_targets_or_join_resources() {
    let avatar = r#"[resource]
name = "avatar"

[relationships]
comments = { has_many = "coment", via = 3 }
labels = { many_to_many = "tg" }
badges = { many_to_many = "player", through = "avatar_badg", description = 1 }
Owner = { belongs_to = "playr" }
"#;
    assert_eq!(
        located(&[("avatar", avatar), ("player", PLAYER)], false),
        [
            at("avatar", 5, 25, "unknown resource `coment`"),
            at("avatar", 5, 41, "`via` must be a string, found an integer"),
            at("avatar", 6, 1, "many_to_many `labels` has no `through`"),
            at("avatar", 6, 27, "unknown resource `tg`"),
            at("avatar", 7, 47, "unknown resource `avatar_badg`"),
            at(
                "avatar",
                7,
                76,
                "`description` must be a string, found an integer"
            ),
            at(
                "avatar",
                8,
                1,
                "relationship name `Owner` is not snake_case"
            ),
            at("avatar", 8, 24, "unknown resource `playr`"),
        ]
    );
}

/// Regression: an attribute with an error of its own was left out of the
/// name checks, so it clashing with a relationship (by name, or with a
/// belongs_to's `<name>_id` column) went unreported.
#[test]
fn an_attribute_error_does_not_hide_a_name_clash() {
    let avatar = r#"[resource]
name = "avatar"

[attributes]
owner = { type = "strng" }
owner_id = { type = "integer", min = "0" }

[relationships]
owner = { belongs_to = "player" }
"#;
    assert_eq!(
        located(&[("avatar", avatar), ("player", PLAYER)], false),
        [
            at("avatar", 5, 18, "unknown type `strng`"),
            at(
                "avatar",
                6,
                1,
                "attribute `owner_id` clashes with the column of belongs_to `owner`"
            ),
            at(
                "avatar",
                6,
                38,
                "`min` of an integer attribute must be an integer, found a string"
            ),
            at(
                "avatar",
                9,
                1,
                "`owner` is declared both as an attribute and as a relationship"
            ),
        ]
    );
}

/// A relationship with an error of its own still clashes with an attribute,
/// and one whose kind is missing still clashes by name.
#[test]
fn a_relationship_error_does_not_hide_a_name_clash() {
    let avatar = r#"[resource]
name = "avatar"

[attributes]
owner = { type = "string" }
rank = { type = "integer" }

[relationships]
owner = { belongs_to = "player", on_delete = "nope" }
rank = { belong_to = "player" }
"#;
    assert_eq!(
        located(&[("avatar", avatar), ("player", PLAYER)], false),
        [
            at(
                "avatar",
                9,
                1,
                "`owner` is declared both as an attribute and as a relationship"
            ),
            at("avatar", 9, 46, "unknown `on_delete` value `nope`"),
            at("avatar", 10, 1, "relationship `rank` has no kind"),
            at(
                "avatar",
                10,
                1,
                "`rank` is declared both as an attribute and as a relationship"
            ),
            at(
                "avatar",
                10,
                10,
                "unknown key `belong_to` in relationship `rank`"
            ),
        ]
    );
}

/// Regression: `renamed_from` naming an attribute that still exists went
/// unreported when that attribute had an error of its own.
#[test]
fn a_broken_attribute_does_not_hide_a_rename_clash() {
    let avatar = r#"[resource]
name = "avatar"

[attributes]
title = { type = "string", renamed_from = "caption" }
caption = { type = "strin" }
"#;
    assert_eq!(
        located(&[("avatar", avatar)], false),
        [
            at(
                "avatar",
                5,
                1,
                "`title` is renamed from `caption`, but attribute `caption` still exists"
            ),
            at("avatar", 6, 20, "unknown type `strin`"),
        ]
    );
}

/// Regression: an identity with a bad name (or a field listed twice) was
/// dropped, so its unknown fields were never looked up.
#[test]
fn an_identity_error_does_not_hide_unknown_fields() {
    let avatar = r#"[resource]
name = "avatar"

[attributes]
name = { type = "string" }

[identities]
"by-name" = ["nmae"]
by_owner = ["name", "name", "ownr"]
"#;
    assert_eq!(
        located(&[("avatar", avatar)], false),
        [
            at("avatar", 8, 1, "identity name `by-name` is not snake_case"),
            at(
                "avatar",
                8,
                14,
                "unknown field `nmae` in identity `by-name`"
            ),
            at("avatar", 9, 21, "identity `by_owner` lists `name` twice"),
            at(
                "avatar",
                9,
                29,
                "unknown field `ownr` in identity `by_owner`"
            ),
        ]
    );
}

/// An index with an error of its own still has its other fields looked up,
/// and a field whose declaration is broken is not reported again by the
/// index that lists it.
#[test]
fn an_index_error_does_not_hide_unknown_fields() {
    let avatar = r#"[resource]
name = "avatar"

[attributes]
name = { type = "string" }
size = { type = "integr" }

[indexes]
"by-name" = ["nmae"]
by_size = ["+name", "size", "-ownr"]
"#;
    assert_eq!(
        located(&[("avatar", avatar)], false),
        [
            at("avatar", 6, 17, "unknown type `integr`"),
            at("avatar", 9, 1, "index name `by-name` is not snake_case"),
            at("avatar", 9, 14, "unknown field `nmae` in index `by-name`"),
            at("avatar", 10, 12, "`+name` is not a field name"),
            at("avatar", 10, 29, "unknown field `ownr` in index `by_size`"),
        ]
    );
}

/// Regression: an action with any error (a reserved name, an unknown type,
/// a policy that does not parse) was dropped whole, so the fields it names
/// and the policies it has were never checked.
#[test]
fn action_errors_do_not_hide_unknown_fields() {
    let avatar = r#"[resource]
name = "avatar"

[attributes]
title = { type = "string" }
is_public = { type = "boolean" }

[actions.create]
type = "update"
set = { is_publc = true }

[actions.publish]
type = "updte"
accept = ["titel"]
policy = "record.is_publik"

[actions.hide]
type = "update"
set = { is_public = "no" }
policy = "record.title =="
"#;
    assert_eq!(
        located(&[("avatar", avatar)], false),
        [
            at("avatar", 8, 10, "action name `create` is reserved"),
            at(
                "avatar",
                10,
                9,
                "unknown attribute `is_publc` in `set` of action `create`"
            ),
            at("avatar", 13, 8, "unknown action type `updte`"),
            at(
                "avatar",
                14,
                11,
                "unknown field `titel` in `accept` of action `publish`"
            ),
            at(
                "avatar",
                15,
                18,
                "unknown field `is_publik` on `record` (resource `avatar`)"
            ),
            at(
                "avatar",
                19,
                21,
                "invalid value for `is_public`: expected a boolean, found the string `no`"
            ),
            at(
                "avatar",
                20,
                26,
                "invalid policy: unexpected end of the expression (expected a value)"
            ),
        ]
    );
}

/// Regression: any broken attribute on a join resource (or on the target of
/// a has_many) silenced the check that it has the belongs_to the
/// relationship needs, though an attribute can't be that belongs_to.
#[test]
fn a_broken_attribute_does_not_hide_a_missing_belongs_to() {
    let avatar = r#"[resource]
name = "avatar"

[attributes]
size = { type = "integr" }

[relationships]
tags = { many_to_many = "tag", through = "avatar_tag" }
"#;
    let avatar_tag = r#"[resource]
name = "avatar_tag"

[attributes]
weight = { type = "float", min = "heavy" }

[relationships]
avatar = { belongs_to = "avatar" }
"#;
    let tag = r#"[resource]
name = "tag"

[relationships]
avatars = { has_many = "avatar" }
"#;
    assert_eq!(
        located(
            &[("avatar", avatar), ("avatar_tag", avatar_tag), ("tag", tag)],
            false
        ),
        [
            at("avatar", 5, 17, "unknown type `integr`"),
            at(
                "avatar",
                8,
                42,
                "`avatar_tag` must belong_to both `avatar` and `tag`, but has no belongs_to pointing to `tag`"
            ),
            at(
                "avatar_tag",
                5,
                34,
                "`min` must be a number, found a string"
            ),
            at(
                "tag",
                5,
                24,
                "has_many `avatars` needs a belongs_to on `avatar` pointing back to `tag`"
            ),
        ]
    );
}

/// Regression: a project's `user.toml` redeclaring a built-in attribute was
/// not told so when its declaration also had an error.
#[test]
fn a_broken_attribute_added_to_user_is_still_reported_as_built_in() {
    let user = r#"[resource]
name = "user"

[attributes]
email = { type = "strin" }
"#;
    assert_eq!(
        located(&[("user", user)], true),
        [
            at(
                "user",
                5,
                1,
                "`email` is already defined by Kumo's built-in `user` resource"
            ),
            at("user", 5, 18, "unknown type `strin`"),
        ]
    );
}

/// No cascade: a belongs_to whose target is misspelt is reported once, not
/// again by the has_many on the resource it was meant to point to.
#[test]
fn an_unknown_belongs_to_target_is_not_reported_again_by_its_has_many() {
    let player = r#"[resource]
name = "player"

[relationships]
comments = { has_many = "comment" }
"#;
    let comment = r#"[resource]
name = "comment"

[relationships]
author = { belongs_to = "playr" }
"#;
    assert_eq!(
        located(&[("comment", comment), ("player", player)], false),
        [at("comment", 5, 25, "unknown resource `playr`")]
    );
}

/// No cascade: a belongs_to with an error of its own still answers the
/// has_many that points back through it, and a create action whose
/// `accept` is malformed is not also told it never sets required fields.
#[test]
fn a_damaged_declaration_causes_no_follow_on_errors() {
    let player = r#"[resource]
name = "player"

[attributes]
nickname = { type = "string", required = true }

[relationships]
comments = { has_many = "comment" }

[actions.join]
type = "create"
accept = "nickname"
"#;
    let comment = r#"[resource]
name = "comment"

[relationships]
author = { belongs_to = "player", on_delete = "nulify" }
"#;
    assert_eq!(
        located(&[("comment", comment), ("player", player)], false),
        [
            at("comment", 5, 47, "unknown `on_delete` value `nulify`"),
            at(
                "player",
                12,
                10,
                "`accept` must be an array, found a string"
            ),
        ]
    );
}

/// Regression: a file whose resource name is taken (or reserved) was set
/// aside unread, so the mistakes in what it declares went unreported.
#[test]
fn a_file_with_a_taken_or_reserved_name_is_still_checked() {
    let first = r#"[resource]
name = "avatar"
"#;
    let second = r#"[resource]
name = "avatar"
plural = "avatars_too"

[relationships]
owner = { belongs_to = "playr" }
"#;
    let session = r#"[resource]
name = "session"

[attributes]
token = { type = "string" }

[identities]
by_token = ["tokn"]
"#;
    assert_eq!(
        located(
            &[
                ("a", first),
                ("b", second),
                ("player", PLAYER),
                ("session", session)
            ],
            false
        ),
        [
            at(
                "b",
                2,
                8,
                "resource `avatar` is already defined in resources/a.toml"
            ),
            at("b", 6, 24, "unknown resource `playr`"),
            at(
                "session",
                2,
                8,
                "`session` is reserved for Kumo's built-in resource"
            ),
            at(
                "session",
                8,
                13,
                "unknown field `tokn` in identity `by_token`"
            ),
        ]
    );
}

/// Regression: a file whose `[resource]` has no name was dropped, so the
/// mistakes in what it declares went unreported. No cascade either: a
/// reference to it by its file name (its own, or another file's) is not
/// reported as an unknown resource, since the missing name is the mistake.
#[test]
fn a_file_without_a_resource_name_is_still_checked() {
    let category = r#"[resource]
plural = "categories"

[attributes]
title = { type = "string" }

[relationships]
parent = { belongs_to = "category" }
owner = { belongs_to = "playr" }
products = { has_many = "product" }

[identities]
by_title = ["titel"]
"#;
    let product = r#"[resource]
name = "product"

[relationships]
category = { belongs_to = "category" }
"#;
    assert_eq!(
        located(
            &[
                ("category", category),
                ("player", PLAYER),
                ("product", product)
            ],
            false
        ),
        [
            at("category", 1, 1, "`[resource]` has no `name`"),
            at("category", 9, 24, "unknown resource `playr`"),
            at(
                "category",
                13,
                13,
                "unknown field `titel` in identity `by_title`"
            ),
        ]
    );
}
