//! Shared fixtures: the full example project from the docs.

use std::path::PathBuf;

use kumo_core::load::{Diagnostics, load_schema};
use kumo_core::resource::Schema;

pub(crate) const AVATAR: &str = r#"[resource]
name = "avatar"              # snake_case, singular; table and routes use `plural`
plural = "avatars"
description = "A 3D avatar a player uploaded"
renamed_from = "old_avatar"

[attributes]
name        = { type = "string", required = true, min_length = 1, max_length = 64 }
description = { type = "text" }
is_public   = { type = "boolean", default = false }
polycount   = { type = "integer", min = 0 }
rating      = { type = "float" }
kind        = { type = "enum", values = ["humanoid", "creature"], default = "humanoid" }
tags        = { type = "array", of = "string" }
metadata    = { type = "json" }
released_at = { type = "datetime" }
secret_note = { type = "string", sensitive = true }
title       = { type = "string", renamed_from = "caption" }

[relationships]
uploader = { belongs_to = "user", required = true, on_delete = "cascade" }
comments = { has_many = "comment" }
labels = { many_to_many = "tag", through = "avatar_tag" }

[identities]
unique_name_per_uploader = ["uploader", "name"]

[policies]
read    = "record.is_public || actor.id == record.uploader_id"
create  = "actor != null"
update  = "actor.id == record.uploader_id"
destroy = "actor.id == record.uploader_id || actor.role == 'admin'"

[actions.publish]
type = "update"
description = "Make the avatar visible to everyone"
accept = []
set = { is_public = true }
increment = { polycount = 1 }
policy = "actor.id == record.uploader_id"
"#;

pub(crate) const COMMENT: &str = r#"[resource]
name = "comment"

[attributes]
body = { type = "text", required = true }

[relationships]
avatar = { belongs_to = "avatar", required = true, on_delete = "cascade" }
author = { belongs_to = "user", on_delete = "nullify" }

[policies]
read = "record.avatar.is_public || actor.id == record.avatar.uploader_id"
create = "actor != null"
"#;

pub(crate) const TAG: &str = r#"[resource]
name = "tag"

[attributes]
label = { type = "string", required = true, unique = true, max_length = 32 }

[relationships]
avatars = { many_to_many = "avatar", through = "avatar_tag" }
"#;

pub(crate) const AVATAR_TAG: &str = r#"[resource]
name = "avatar_tag"

[relationships]
avatar = { belongs_to = "avatar", required = true, on_delete = "cascade" }
tag = { belongs_to = "tag", required = true, on_delete = "cascade" }

[identities]
unique_pair = ["avatar", "tag"]
"#;

pub(crate) fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    list.iter()
        .map(|(name, text)| {
            (
                PathBuf::from(format!("resources/{name}.toml")),
                (*text).to_owned(),
            )
        })
        .collect()
}

pub(crate) fn example_files() -> Vec<(PathBuf, String)> {
    files(&[
        ("avatar", AVATAR),
        ("comment", COMMENT),
        ("tag", TAG),
        ("avatar_tag", AVATAR_TAG),
    ])
}

pub(crate) fn example_schema() -> Schema {
    match load_schema(example_files(), true) {
        Ok(schema) => schema,
        Err(e) => panic!("example failed to load:\n{e}"),
    }
}

/// Loads files that must fail and returns the rendered errors.
pub(crate) fn errors_of(list: &[(&str, &str)], include_system: bool) -> String {
    match load_schema(files(list), include_system) {
        Ok(_) => panic!("expected errors, the files loaded"),
        Err(e) => render(&e),
    }
}

pub(crate) fn render(e: &Diagnostics) -> String {
    e.to_string()
}
