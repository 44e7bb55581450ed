//! Good files load into the expected model.

use std::path::Path;

use kumo_core::load::{check_value, load_schema, load_schema_dir, normalize_value};
use kumo_core::policy::{BinOp, Expr, Root};
use kumo_core::resource::{ActionKind, AttrType, OnDelete, RelationshipKind, ScalarType, Schema};
use serde_json::json;

use crate::support::*;

fn names(schema: &Schema) -> Vec<&str> {
    schema.resources.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn the_full_example_loads_with_system_resources_first() {
    let schema = example_schema();
    assert_eq!(
        names(&schema),
        [
            "user",
            "session",
            "auth_token",
            "api_key",
            "external_identity",
            "audit_event",
            // Project files sorted by path.
            "avatar",
            "avatar_tag",
            "comment",
            "tag",
        ]
    );
    assert!(schema.resources[..6].iter().all(|r| r.system));
    assert!(schema.resources[6..].iter().all(|r| !r.system));
}

#[test]
fn avatar_resource_and_attributes() {
    let schema = example_schema();
    let avatar = schema.resource("avatar").expect("avatar");
    assert_eq!(avatar.plural, "avatars");
    assert_eq!(
        avatar.description.as_deref(),
        Some("A 3D avatar a player uploaded")
    );
    assert_eq!(avatar.renamed_from.as_deref(), Some("old_avatar"));
    // Six system files come first, then avatar.toml.
    assert_eq!(avatar.file, 6);
    assert_eq!(&AVATAR[avatar.span.clone()], "\"avatar\"");

    let attr_names: Vec<&str> = avatar.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        attr_names,
        [
            "name",
            "description",
            "is_public",
            "polycount",
            "rating",
            "kind",
            "tags",
            "metadata",
            "released_at",
            "secret_note",
            "title"
        ]
    );
    let name = avatar.attribute("name").expect("name");
    assert!(name.required);
    assert_eq!(
        name.ty,
        AttrType::String {
            min_length: Some(1),
            max_length: Some(64),
            pattern: None
        }
    );
    assert_eq!(&AVATAR[name.span.clone()], "name");

    assert_eq!(
        avatar.attribute("description").map(|a| &a.ty),
        Some(&AttrType::Text)
    );
    let is_public = avatar.attribute("is_public").expect("is_public");
    assert_eq!(is_public.ty, AttrType::Boolean);
    assert_eq!(is_public.default, Some(json!(false)));
    assert!(!is_public.required);
    assert_eq!(
        avatar.attribute("polycount").map(|a| &a.ty),
        Some(&AttrType::Integer {
            min: Some(0),
            max: None
        })
    );
    assert_eq!(
        avatar.attribute("rating").map(|a| &a.ty),
        Some(&AttrType::Float {
            min: None,
            max: None
        })
    );
    let kind = avatar.attribute("kind").expect("kind");
    assert_eq!(
        kind.ty,
        AttrType::Enum {
            values: vec!["humanoid".into(), "creature".into()]
        }
    );
    assert_eq!(kind.default, Some(json!("humanoid")));
    assert_eq!(
        avatar.attribute("tags").map(|a| &a.ty),
        Some(&AttrType::Array {
            of: ScalarType::String
        })
    );
    assert_eq!(
        avatar.attribute("metadata").map(|a| &a.ty),
        Some(&AttrType::Json)
    );
    assert_eq!(
        avatar.attribute("released_at").map(|a| &a.ty),
        Some(&AttrType::Datetime)
    );
    assert!(avatar.attribute("secret_note").is_some_and(|a| a.sensitive));
    assert!(!name.sensitive && !name.unique);
    assert_eq!(
        avatar
            .attribute("title")
            .and_then(|a| a.renamed_from.as_deref()),
        Some("caption")
    );
}

#[test]
fn relationships_identities_policies_actions() {
    let schema = example_schema();
    let avatar = schema.resource("avatar").expect("avatar");

    let uploader = avatar.relationship("uploader").expect("uploader");
    assert_eq!(
        uploader.kind,
        RelationshipKind::BelongsTo {
            target: "user".into(),
            required: true,
            on_delete: OnDelete::Cascade,
            writable: true
        }
    );
    assert_eq!(uploader.column_name().as_deref(), Some("uploader_id"));
    assert_eq!(
        avatar.relationship("comments").map(|r| &r.kind),
        Some(&RelationshipKind::HasMany {
            target: "comment".into(),
            via: "avatar".into()
        })
    );
    assert_eq!(
        avatar.relationship("labels").map(|r| &r.kind),
        Some(&RelationshipKind::ManyToMany {
            target: "tag".into(),
            through: "avatar_tag".into()
        })
    );
    let comment = schema.resource("comment").expect("comment");
    assert_eq!(
        comment.relationship("author").map(|r| &r.kind),
        Some(&RelationshipKind::BelongsTo {
            target: "user".into(),
            required: false,
            on_delete: OnDelete::Nullify,
            writable: true
        })
    );

    assert_eq!(avatar.identities.len(), 1);
    assert_eq!(avatar.identities[0].name, "unique_name_per_uploader");
    assert_eq!(avatar.identities[0].columns, ["uploader_id", "name"]);
    let pair = &schema
        .resource("avatar_tag")
        .expect("avatar_tag")
        .identities[0];
    assert_eq!(pair.columns, ["avatar_id", "tag_id"]);

    let read = avatar.policies.read.as_ref().expect("read policy");
    assert_eq!(
        read.source,
        "record.is_public || actor.id == record.uploader_id"
    );
    assert_eq!(
        &AVATAR[read.span.clone()],
        "\"record.is_public || actor.id == record.uploader_id\""
    );
    let Expr::Binary {
        op: BinOp::Or,
        lhs,
        rhs,
    } = &read.expr
    else {
        panic!("expected ||, got {:?}", read.expr);
    };
    assert!(matches!(&**lhs, Expr::Path(p) if p.root == Root::Record && p.fields == ["is_public"]));
    assert!(matches!(&**rhs, Expr::Binary { op: BinOp::Eq, .. }));
    assert_eq!(
        avatar.policies.create.as_ref().map(|p| p.expr.to_string()),
        Some("actor != null".to_owned())
    );
    assert!(avatar.policies.update.is_some() && avatar.policies.destroy.is_some());
    // A policy may follow a belongs_to to the target's fields.
    assert!(comment.policies.read.is_some());

    assert_eq!(avatar.actions.len(), 1);
    let publish = &avatar.actions[0];
    assert_eq!(publish.name, "publish");
    assert_eq!(publish.kind, ActionKind::Update);
    assert_eq!(
        publish.description.as_deref(),
        Some("Make the avatar visible to everyone")
    );
    assert!(publish.accept.is_empty());
    assert_eq!(publish.set, [("is_public".to_owned(), json!(true))]);
    assert_eq!(publish.increment, [("polycount".to_owned(), json!(1))]);
    assert_eq!(
        publish.policy.as_ref().map(|p| p.source.as_str()),
        Some("actor.id == record.uploader_id")
    );
}

#[test]
fn system_resources_are_as_specified() {
    let schema = example_schema();
    let user = schema.resource("user").expect("user");
    assert_eq!(user.plural, "users");
    let email = user.attribute("email").expect("email");
    assert!(email.required && email.unique);
    assert_eq!(
        email.ty,
        AttrType::String {
            min_length: None,
            max_length: Some(254),
            pattern: None
        }
    );
    assert_eq!(
        user.attribute("username").map(|a| &a.ty),
        Some(&AttrType::String {
            min_length: Some(3),
            max_length: Some(16),
            pattern: Some("^[a-z0-9_]+$".into())
        })
    );
    let role = user.attribute("role").expect("role");
    assert!(role.required);
    assert_eq!(role.default, Some(json!("user")));
    assert!(user.attribute("password_hash").is_some_and(|a| a.sensitive));
    assert!(user.policies.read.is_some() && user.policies.update.is_some());
    assert!(user.policies.create.is_none() && user.policies.destroy.is_none());

    let session = schema.resource("session").expect("session");
    assert_eq!(
        session.relationship("user").map(|r| &r.kind),
        Some(&RelationshipKind::BelongsTo {
            target: "user".into(),
            required: true,
            on_delete: OnDelete::Cascade,
            writable: false
        })
    );
    assert_eq!(
        session
            .attribute("generation")
            .and_then(|a| a.default.clone()),
        Some(json!(0))
    );
    assert!(
        session
            .attribute("refresh_token_hash")
            .is_some_and(|a| a.sensitive && a.unique && a.required)
    );

    let token = schema.resource("auth_token").expect("auth_token");
    assert_eq!(
        token.relationship("session").map(|r| &r.kind),
        Some(&RelationshipKind::BelongsTo {
            target: "session".into(),
            required: false,
            on_delete: OnDelete::Nullify,
            writable: false
        })
    );
    assert_eq!(
        token.attribute("purpose").map(|a| &a.ty),
        Some(&AttrType::Enum {
            values: vec![
                "magic_link".into(),
                "password_reset".into(),
                "email_confirmation".into()
            ]
        })
    );
    assert!(
        token
            .attribute("poll_id")
            .is_some_and(|a| a.unique && a.ty == AttrType::Uuid)
    );

    let keys = schema.resource("api_key").expect("api_key");
    assert!(
        keys.attribute("key_hash")
            .is_some_and(|a| a.sensitive && a.unique)
    );
    let ext = schema
        .resource("external_identity")
        .expect("external_identity");
    assert_eq!(ext.plural, "external_identities");
    assert_eq!(ext.identities[0].columns, ["issuer", "subject"]);
    let audit = schema.resource("audit_event").expect("audit_event");
    assert_eq!(
        audit.relationship("user").map(|r| &r.kind),
        Some(&RelationshipKind::BelongsTo {
            target: "user".into(),
            required: false,
            on_delete: OnDelete::Nullify,
            writable: false
        })
    );
    assert_eq!(
        audit.attribute("detail").map(|a| &a.ty),
        Some(&AttrType::Json)
    );
}

#[test]
fn only_the_auth_layer_writes_secrets_and_bookkeeping() {
    let schema = example_schema();
    let read_only = |resource: &str| -> Vec<&str> {
        let r = schema.resource(resource).expect(resource);
        r.attributes
            .iter()
            .filter(|a| !a.writable)
            .map(|a| a.name.as_str())
            .collect()
    };
    assert_eq!(
        read_only("user"),
        ["password_hash", "email_confirmed_at", "locked_at"]
    );
    assert_eq!(read_only("api_key"), ["prefix", "key_hash", "last_used_at"]);
    assert_eq!(
        read_only("session"),
        [
            "refresh_token_hash",
            "generation",
            "ip",
            "user_agent",
            "last_used_at",
            "expires_at"
        ]
    );
    let token = schema.resource("auth_token").expect("auth_token");
    assert!(token.attributes.iter().all(|a| !a.writable));
    assert_eq!(
        read_only("external_identity"),
        ["issuer", "subject", "email"]
    );
    let audit = schema.resource("audit_event").expect("audit_event");
    assert!(audit.attributes.iter().all(|a| !a.writable));
    // Project attributes are writable unless they say otherwise.
    let avatar = schema.resource("avatar").expect("avatar");
    assert!(avatar.attributes.iter().all(|a| a.writable));
}

#[test]
fn users_edit_their_own_profile_through_an_action() {
    let schema = example_schema();
    let user = schema.resource("user").expect("user");
    assert_eq!(
        user.policies.update.as_ref().map(|p| p.source.as_str()),
        Some("actor.role == 'admin'")
    );
    let action = user
        .actions
        .iter()
        .find(|a| a.name == "update_profile")
        .expect("update_profile");
    assert_eq!(action.kind, ActionKind::Update);
    assert_eq!(action.accept, ["username", "display_name"]);
    assert!(action.set.is_empty() && action.increment.is_empty());
    assert_eq!(
        action.policy.as_ref().map(|p| p.source.as_str()),
        Some("actor.id == record.id")
    );
}

#[test]
fn writable_false_is_read_and_allows_set_and_seeds() {
    let text = r#"[resource]
name = "badge"

[attributes]
label = { type = "string" }
awarded = { type = "boolean", default = false, writable = false }
points = { type = "integer", default = 0, writable = false }

[actions.award]
type = "update"
accept = ["label"]
set = { awarded = true }
increment = { points = 10 }
"#;
    let schema = load_schema(super::support::files(&[("badge", text)]), false)
        .unwrap_or_else(|e| panic!("{e}"));
    let badge = &schema.resources[0];
    assert!(badge.attribute("label").is_some_and(|a| a.writable));
    assert!(badge.attribute("awarded").is_some_and(|a| !a.writable));
    let rows = kumo_core::load::load_seeds(
        &schema,
        vec![(
            "seeds/badges.toml".into(),
            "[[badge]]\nkey = \"gold\"\nawarded = true\npoints = 3\n".into(),
        )],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rows[0].values,
        [
            ("awarded".to_owned(), json!(true)),
            ("points".to_owned(), json!(3))
        ]
    );
}

/// Regression: items merged from `resources/user.toml` into the built-in
/// `user` kept no file of their own, so a consumer pairing the resource's
/// file (the built-in one) with their spans pointed into the wrong file.
#[test]
fn items_merged_into_user_name_the_file_they_come_from() {
    let user_ext = r#"[resource]
name = "user"

[attributes]
level = { type = "integer", default = 1 }

[relationships]
guild = { belongs_to = "guild", on_delete = "nullify" }

[identities]
unique_display_name = ["display_name"]

[policies]
read = "true"

[actions.level_up]
type = "update"
increment = { level = 1 }
policy = "actor.role == 'admin'"
"#;
    let guild = "[resource]\nname = \"guild\"\n";
    let files = super::support::files(&[("user", user_ext), ("guild", guild)]);
    let schema = load_schema(files, true).unwrap_or_else(|e| panic!("{e}"));
    let user = schema.resource("user").expect("user");
    // Six built-in files, then guild.toml (6) and user.toml (7), by path.
    let (system_file, project_file) = (0, 7);
    assert_eq!(user.file, system_file);

    let level = user.attribute("level").expect("level");
    assert_eq!(level.file, project_file);
    assert_eq!(&user_ext[level.span.clone()], "level");
    let email = user.attribute("email").expect("email");
    assert_eq!(email.file, system_file);

    let rel = user.relationship("guild").expect("guild");
    assert_eq!(rel.file, project_file);
    assert_eq!(&user_ext[rel.span.clone()], "guild");

    assert_eq!(user.identities[0].file, project_file);
    assert_eq!(
        &user_ext[user.identities[0].span.clone()],
        "unique_display_name"
    );

    let read = user.policies.read.as_ref().expect("read");
    assert_eq!(read.file, project_file);
    assert_eq!(&user_ext[read.span.clone()], "\"true\"");
    let update = user.policies.update.as_ref().expect("update");
    assert_eq!(update.file, system_file);

    let action = user.actions.iter().find(|a| a.name == "level_up");
    let action = action.expect("level_up");
    assert_eq!(action.file, project_file);
    assert_eq!(&user_ext[action.span.clone()], "level_up");
    assert_eq!(action.policy.as_ref().map(|p| p.file), Some(project_file));
    let builtin = user.actions.iter().find(|a| a.name == "update_profile");
    assert_eq!(builtin.map(|a| a.file), Some(system_file));
}

#[test]
fn a_project_extends_the_built_in_user() {
    let user_ext = r#"[resource]
name = "user"
description = "A player"

[attributes]
level = { type = "integer", default = 1, min = 1 }

[relationships]
avatars = { has_many = "avatar", via = "uploader" }

[identities]
unique_display_name = ["display_name"]

[policies]
read = "true"

[actions.level_up]
type = "update"
increment = { level = 1 }
policy = "actor.role == 'admin' || actor.level > 10"
"#;
    let mut files = example_files();
    files.extend(super::support::files(&[("user", user_ext)]));
    let schema = load_schema(files, true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(schema.resources[0].name, "user");
    assert_eq!(
        schema.resources.iter().filter(|r| r.name == "user").count(),
        1
    );
    let user = &schema.resources[0];
    assert!(user.system);
    assert_eq!(user.description.as_deref(), Some("A player"));
    assert!(user.attribute("email").is_some());
    assert_eq!(
        user.attribute("level").and_then(|a| a.default.clone()),
        Some(json!(1))
    );
    assert_eq!(
        user.relationship("avatars").map(|r| &r.kind),
        Some(&RelationshipKind::HasMany {
            target: "avatar".into(),
            via: "uploader".into()
        })
    );
    assert_eq!(user.identities[0].columns, ["display_name"]);
    // The project's read policy replaces the built-in one; update stays.
    assert_eq!(
        user.policies.read.as_ref().map(|p| p.source.as_str()),
        Some("true")
    );
    assert!(
        user.policies
            .update
            .as_ref()
            .is_some_and(|p| p.source == "actor.role == 'admin'")
    );
    let level_up = user.actions.iter().find(|a| a.name == "level_up");
    assert_eq!(
        level_up.map(|a| a.increment.clone()),
        Some(vec![("level".to_owned(), json!(1))])
    );
}

#[test]
fn without_system_resources_actor_has_the_standard_fields() {
    let files = super::support::files(&[(
        "note",
        r#"[resource]
name = "note"

[attributes]
owner_id = { type = "uuid" }
is_public = { type = "boolean", default = true }

[policies]
read = "record.is_public || record.owner_id == actor.id || actor.role in ['admin', 'coordinator']"
update = "actor.email == 'a@b.c' || actor.username != null || actor.display_name == 'x'"
"#,
    )]);
    let schema = load_schema(files, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&schema), ["note"]);
    assert_eq!(schema.resources[0].file, 0);
}

#[test]
fn well_typed_policies_load_with_their_literals_normalised() {
    let text = r#"[resource]
name = "gallery"

[attributes]
name = { type = "string" }
about = { type = "text" }
polycount = { type = "integer" }
rating = { type = "float" }
is_public = { type = "boolean" }
kind = { type = "enum", values = ["humanoid", "creature"] }
tags = { type = "array", of = "string" }
friend_ids = { type = "array", of = "uuid" }
days = { type = "array", of = "date" }
metadata = { type = "json" }
released_at = { type = "datetime" }
opened_on = { type = "date" }

[relationships]
owner = { belongs_to = "user" }

[policies]
read = "record.owner_id == '0190F3A2-1C8B-7D4E-9A6B-3C2D1E0F9A8B' && record.released_at > '2026-01-02T05:04:05.123456+02:00' && record.opened_on <= '2026-01-02'"
create = "record.kind in ['humanoid', null] && 'x' in record.tags && record.polycount == 1.5 && record.rating > 2 && record.is_public == true"
update = "record.metadata == null && actor != null && record.name < record.about && !record.is_public && record.kind == actor.role && null == null"
destroy = "'0190F3A2-1C8B-7D4E-9A6B-3C2D1E0F9A8B' in record.friend_ids || actor.id in ['0190F3A2-1C8B-7D4E-9A6B-3C2D1E0F9A8B'] || '2026-01-02' in record.days || record.owner.role == 'admin' || true"

[actions.touch]
type = "update"
policy = "record.inserted_at < '2026-01-02T03:04:05Z' && record.updated_at >= record.inserted_at && record.tags != null && actor == null || 1 < 2"
"#;
    let schema = load_schema(super::support::files(&[("gallery", text)]), true)
        .unwrap_or_else(|e| panic!("{e}"));
    let gallery = schema.resource("gallery").expect("gallery");
    let printed = |p: &Option<kumo_core::resource::Policy>| {
        p.as_ref().map(|p| p.expr.to_string()).unwrap_or_default()
    };
    let read = gallery.policies.read.as_ref().expect("read");
    // The source stays as written; the expression holds canonical values.
    assert!(
        read.source
            .contains("'0190F3A2-1C8B-7D4E-9A6B-3C2D1E0F9A8B'")
    );
    assert_eq!(
        printed(&gallery.policies.read),
        "record.owner_id == '0190f3a2-1c8b-7d4e-9a6b-3c2d1e0f9a8b' && record.released_at > '2026-01-02T03:04:05.123Z' && record.opened_on <= '2026-01-02'"
    );
    assert_eq!(
        printed(&gallery.policies.destroy),
        "'0190f3a2-1c8b-7d4e-9a6b-3c2d1e0f9a8b' in record.friend_ids || actor.id in ['0190f3a2-1c8b-7d4e-9a6b-3c2d1e0f9a8b'] || '2026-01-02' in record.days || record.owner.role == 'admin' || true"
    );
    assert_eq!(
        printed(&gallery.actions[0].policy),
        "record.inserted_at < '2026-01-02T03:04:05.000Z' && record.updated_at >= record.inserted_at && record.tags != null && actor == null || 1 < 2"
    );
    assert!(gallery.policies.create.is_some() && gallery.policies.update.is_some());
}

#[test]
fn the_templates_and_the_built_in_resources_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    for template in ["new", "demo"] {
        let dir = root.join(template).join("resources");
        let schema = load_schema_dir(&dir, Path::new("resources"), true)
            .unwrap_or_else(|e| panic!("templates/{template}:\n{e}"));
        assert!(
            schema.resources.len() > 6,
            "templates/{template} has no resources"
        );
    }
    // The built-in resources alone, with all their policies and actions.
    let schema = load_schema(Vec::new(), true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(schema.resources.len(), 6);
}

#[test]
fn literals_are_normalized() {
    let text = r#"[resource]
name = "event"

[attributes]
starts_at = { type = "datetime", default = 2026-01-02T05:04:05+02:00 }
ends_at = { type = "datetime", default = "2026-01-02T03:04:05.250Z" }
late = { type = "datetime", default = 2025-12-31T23:30:00-01:00 }
day = { type = "date", default = 2026-03-04 }
day_text = { type = "date", default = "2024-02-29" }
ratio = { type = "float", default = 2 }
ref = { type = "uuid", default = "0190F3A2-1C8B-7D4E-9A6B-3C2D1E0F9A8B" }
meta = { type = "json", default = { a = 1, at = 2026-01-02T03:04:05Z, list = [true, "x"] } }
days = { type = "array", of = "date", default = [2026-01-01, "2026-01-02"] }
"#;
    let schema = load_schema(super::support::files(&[("event", text)]), false)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = &schema.resources[0];
    let d = |n: &str| r.attribute(n).and_then(|a| a.default.clone());
    assert_eq!(d("starts_at"), Some(json!("2026-01-02T03:04:05.000Z")));
    assert_eq!(d("ends_at"), Some(json!("2026-01-02T03:04:05.250Z")));
    assert_eq!(d("late"), Some(json!("2026-01-01T00:30:00.000Z")));
    assert_eq!(d("day"), Some(json!("2026-03-04")));
    assert_eq!(d("day_text"), Some(json!("2024-02-29")));
    assert_eq!(d("ratio"), Some(json!(2.0)));
    assert_eq!(
        d("ref"),
        Some(json!("0190f3a2-1c8b-7d4e-9a6b-3c2d1e0f9a8b"))
    );
    assert_eq!(
        d("meta"),
        Some(json!({"a": 1, "at": "2026-01-02T03:04:05Z", "list": [true, "x"]}))
    );
    assert_eq!(d("days"), Some(json!(["2026-01-01", "2026-01-02"])));
}

#[test]
fn check_value_on_json_input() {
    let s = AttrType::String {
        min_length: Some(2),
        max_length: Some(4),
        pattern: Some("[a-z]+".into()),
    };
    assert!(check_value(&s, &json!("abc")).is_ok());
    assert!(check_value(&s, &json!("a")).is_err());
    assert!(check_value(&s, &json!("abcde")).is_err());
    // The pattern must match the whole value.
    assert!(check_value(&s, &json!("ab1")).is_err());
    assert!(check_value(&s, &json!(12)).is_err());

    let int = AttrType::Integer {
        min: Some(0),
        max: Some(10),
    };
    assert!(check_value(&int, &json!(10)).is_ok());
    assert_eq!(
        check_value(&int, &json!(11)),
        Err("11 is greater than the maximum 10".into())
    );
    assert_eq!(
        check_value(&int, &json!(1.5)),
        Err("expected an integer, found `1.5`".into())
    );

    let float = AttrType::Float {
        min: None,
        max: Some(1.0),
    };
    assert_eq!(normalize_value(&float, &json!(1)), Ok(json!(1.0)));
    assert!(check_value(&float, &json!(1.5)).is_err());

    let e = AttrType::Enum {
        values: vec!["a".into(), "b".into()],
    };
    assert_eq!(
        check_value(&e, &json!("c")),
        Err("`c` is not one of `a` or `b`".into())
    );

    assert!(check_value(&AttrType::Date, &json!("2023-02-29")).is_err());
    assert!(check_value(&AttrType::Date, &json!("2024-02-29")).is_ok());
    assert!(check_value(&AttrType::Datetime, &json!("2026-01-02T03:04:05")).is_err());
    assert!(check_value(&AttrType::Datetime, &json!("2026-01-02T24:00:00Z")).is_err());
    assert_eq!(
        normalize_value(
            &AttrType::Datetime,
            &json!("2026-01-01t01:00:00.123456789123+01:30")
        ),
        Ok(json!("2025-12-31T23:30:00.123Z"))
    );
    assert_eq!(
        normalize_value(&AttrType::Datetime, &json!("2026-01-02 03:04:05.000z")),
        Ok(json!("2026-01-02T03:04:05.000Z"))
    );
    // Finer precision is truncated, never rounded into the next second.
    assert_eq!(
        normalize_value(&AttrType::Datetime, &json!("2026-01-02T23:59:59.9999Z")),
        Ok(json!("2026-01-02T23:59:59.999Z"))
    );
    assert_eq!(
        normalize_value(&AttrType::Datetime, &json!("2026-01-02T03:04:05.5-01:00")),
        Ok(json!("2026-01-02T04:04:05.500Z"))
    );
    assert!(check_value(&AttrType::Datetime, &json!("2026-01-02T03:04:05.Z")).is_err());
    assert!(check_value(&AttrType::Datetime, &json!("0000-01-01T00:00:00+01:00")).is_err());
    assert!(check_value(&AttrType::Uuid, &json!("nope")).is_err());
    assert!(check_value(&AttrType::Json, &json!({"x": [1, null]})).is_ok());
    assert!(check_value(&AttrType::Boolean, &json!(null)).is_err());
    let arr = AttrType::Array {
        of: ScalarType::Integer,
    };
    assert!(check_value(&arr, &json!([1, 2])).is_ok());
    assert_eq!(
        check_value(&arr, &json!([1, "2"])),
        Err("element 2: expected an integer, found the string `2`".into())
    );
}

#[test]
fn loading_a_directory() {
    let dir = std::env::temp_dir().join(format!("kumo-load-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("nested.toml")).expect("mkdir");
    std::fs::write(dir.join("tag.toml"), "[resource]\nname = \"tag\"\n").expect("write");
    std::fs::write(dir.join("notes.txt"), "not a resource").expect("write");
    std::fs::write(dir.join("broken.toml"), "[resource]\nname = \"Broken\"\n").expect("write");

    let err = load_schema_dir(&dir, Path::new("resources"), false).expect_err("broken.toml");
    assert!(
        err.to_string().contains("--> resources/broken.toml:2:8"),
        "{err}"
    );

    std::fs::remove_file(dir.join("broken.toml")).expect("rm");
    std::fs::write(
        dir.join("avatar_tag.toml"),
        "[resource]\nname = \"label\"\n",
    )
    .expect("write");
    let schema =
        load_schema_dir(&dir, Path::new("resources"), false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&schema), ["label", "tag"]);

    let missing = load_schema_dir(&dir.join("absent"), Path::new("resources"), true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(missing.resources.len(), 6);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file that is not UTF-8 stopped the load before any file was checked,
/// hiding every other file's errors; now it is one error among the others.
#[test]
fn a_file_that_is_not_utf8_does_not_hide_the_other_files_errors() {
    let dir = std::env::temp_dir().join(format!("kumo-load-utf8-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("avatar.toml"),
        b"[resource]\nname = \"avatar\xff\"\n",
    )
    .expect("write");
    std::fs::write(dir.join("broken.toml"), "[resource]\nname = \"Broken\"\n").expect("write");
    // A reference to the unreadable file's resource is not reported too.
    std::fs::write(
        dir.join("tag.toml"),
        "[resource]\nname = \"tag\"\n\n[relationships]\navatar = { belongs_to = \"avatar\" }\n",
    )
    .expect("write");
    let err = load_schema_dir(&dir, Path::new("resources"), false).expect_err("two bad files");
    let out = err.to_string();
    assert!(
        out.contains("error: resources/avatar.toml is not UTF-8 text: save it as UTF-8"),
        "{out}"
    );
    assert!(out.contains("--> resources/broken.toml:2:8"), "{out}");
    assert!(out.ends_with("could not load resources: 2 errors"), "{out}");

    // Seeds too: an unreadable seed file alongside a good one is reported,
    // and alone it is still an error.
    std::fs::remove_file(dir.join("broken.toml")).expect("rm");
    std::fs::remove_file(dir.join("avatar.toml")).expect("rm");
    std::fs::write(dir.join("tag.toml"), "[resource]\nname = \"tag\"\n").expect("write");
    let schema =
        load_schema_dir(&dir, Path::new("resources"), false).unwrap_or_else(|e| panic!("{e}"));
    let seeds = dir.join("seeds");
    std::fs::create_dir_all(&seeds).expect("mkdir");
    std::fs::write(seeds.join("a.toml"), b"[[tag]]\nkey = \"\xff\"\n").expect("write");
    std::fs::write(seeds.join("b.toml"), "[[tag]]\nkey = \"t\"\nnmae = 1\n").expect("write");
    let out = kumo_core::load::load_seeds_dir(&schema, &seeds, Path::new("seeds"))
        .expect_err("two bad files")
        .to_string();
    assert!(out.contains("seeds/a.toml is not UTF-8 text"), "{out}");
    assert!(out.contains("--> seeds/b.toml:3:1"), "{out}");
    std::fs::remove_file(seeds.join("b.toml")).expect("rm");
    let out = kumo_core::load::load_seeds_dir(&schema, &seeds, Path::new("seeds"))
        .expect_err("one bad file")
        .to_string();
    assert!(out.contains("seeds/a.toml is not UTF-8 text"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_are_sorted_whatever_order_they_come_in() {
    let mut files = example_files();
    files.reverse();
    let a = load_schema(files, true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, example_schema());
}

mod robustness {
    use kumo_core::load::{load_schema, load_seeds, normalize_value};
    use kumo_core::resource::AttrType;
    use proptest::prelude::*;
    use serde_json::json;

    /// Fragments of resource files, so random text often gets past the TOML
    /// parser and exercises the checks.
    const FRAGMENT: &str = r#"(\[resource\]|\[attributes\]|\[relationships\]|\[identities\]|\[policies\]|\[actions\.[a-z]{1,3}\]|name = "[a-z]{1,4}"|[a-z_]{1,6} = \{ type = "(string|integer|enum|array|datetime|float)"(, (min|max|min_length|default|values|of|unique|pattern) = ("[a-z\[\]]{0,3}"|-?[0-9]|\[\]|true|2026-01-02T03:04:05Z))?\}|[a-z]{1,5} = \{ (belongs_to|has_many|many_to_many) = "[a-z]{1,5}"(, (via|through|on_delete) = "[a-z]{1,7}")? \}|(read|update) = "(actor|record)(\.[a-z_]{1,6}){0,2} (==|in|&&) [a-z'\[\]\.]{0,8}"|type = "(update|create)"|(accept|set) = (\["[a-z]{1,4}"\]|\{ [a-z]{1,4} = 1 \})|[ =\[\]\{\}",\n]){0,40}"#;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn loading_never_panics(a in FRAGMENT, b in FRAGMENT) {
            let files = vec![
                ("resources/a.toml".into(), a.replace("\\n", "\n")),
                ("resources/b.toml".into(), b.replace("\\n", "\n")),
            ];
            if let Err(e) = load_schema(files, true) {
                // Rendering must not panic either.
                let _ = e.to_string();
            }
        }

        #[test]
        fn seeds_never_panic(text in r#"(\[\[(user|session|avatar)\]\]|key = "[a-z]{1,3}"|(email|role|user|x) = ("[a-z@]{0,5}"|1|\[\])|\n){0,20}"#) {
            let schema = load_schema(Vec::new(), true).unwrap_or_else(|e| panic!("{e}"));
            if let Err(e) = load_seeds(&schema, vec![("seeds/a.toml".into(), text)]) {
                let _ = e.to_string();
            }
        }

        #[test]
        fn datetime_parsing_never_panics(s in ".{0,40}") {
            let _ = normalize_value(&AttrType::Datetime, &json!(s));
            let _ = normalize_value(&AttrType::Date, &json!(s));
        }

        #[test]
        fn offsets_convert_to_utc(
            y in 1u32..9999, mo in 1u32..=12, d in 1u32..=28,
            h in 0u32..24, mi in 0u32..60, sec in 0u32..60,
            off in -(23 * 60 + 59)..=(23 * 60 + 59i32),
        ) {
            let sign = if off < 0 { '-' } else { '+' };
            let a = off.unsigned_abs();
            let s = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}{sign}{:02}:{:02}", a / 60, a % 60);
            if let Ok(v) = normalize_value(&AttrType::Datetime, &json!(s)) {
                let utc = v.as_str().unwrap_or_default().to_owned();
                prop_assert!(utc.ends_with('Z'));
                // Shifting back by the offset gives the original wall time.
                let back = normalize_value(&AttrType::Datetime, &json!(utc.replace('Z', "+00:00")));
                prop_assert_eq!(back, Ok(json!(utc.as_str())));
                let minutes = |t: &str| -> i64 {
                    let h: i64 = t[11..13].parse().unwrap_or(0);
                    let m: i64 = t[14..16].parse().unwrap_or(0);
                    h * 60 + m
                };
                let diff = (minutes(&s) - minutes(&utc) - i64::from(off)).rem_euclid(24 * 60);
                prop_assert_eq!(diff, 0);
            }
        }
    }
}
