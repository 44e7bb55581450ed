//! The reference evaluator: a direct interpreter of `docs/policies.md`
//! ("Values" and "Evaluation") over JSON records.
//!
//! It is the oracle the SQL compiler (`kumo_db::query`) is tested against,
//! so it is written to be checked by eye: each function is one rule of the
//! spec, with no shortcuts and no knowledge of SQL.
//!
//! It expects a policy as the loader returns it: well typed, with string
//! literals already in canonical form. On an expression the loader would
//! reject it still answers (a value that is not a condition is false, a
//! condition used as a value is `null`), but no loaded policy gets there.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::{BinOp, Expr, Path, Root};
use crate::resource::{RelationshipKind, Resource, Schema};

/// What a policy is evaluated against.
pub struct EvalContext<'a> {
    pub schema: &'a Schema,
    /// The resource `record` is a row of.
    pub resource: &'a Resource,
    /// `null` when signed out, otherwise the user's record
    /// ([`crate::actor::Actor::value`]).
    pub actor: &'a Value,
    /// The record, an object keyed by column name (`id`, attributes,
    /// `<belongs_to>_id`, `inserted_at`, `updated_at`) holding canonical
    /// values. A missing key reads as `null`.
    pub record: &'a Value,
    /// `related(resource, id)`: the record of `resource` with that id, or
    /// `null` if there is none. Used to follow a `belongs_to`.
    pub related: &'a dyn Fn(&str, &str) -> Value,
}

/// Whether the policy `expr` holds.
pub fn eval(expr: &Expr, ctx: &EvalContext<'_>) -> bool {
    condition(expr, ctx)
}

/// Evaluation has two values, true and false; there is no "unknown".
fn condition(e: &Expr, ctx: &EvalContext<'_>) -> bool {
    match e {
        Expr::Bool(b) => *b,
        // A boolean path is true only when its value is `true`.
        Expr::Path(p) => path(p, ctx).as_ref() == &Value::Bool(true),
        Expr::Not(inner) => !condition(inner, ctx),
        Expr::Binary { op, lhs, rhs } => match op {
            BinOp::And => condition(lhs, ctx) && condition(rhs, ctx),
            BinOp::Or => condition(lhs, ctx) || condition(rhs, ctx),
            BinOp::In => member(lhs, rhs, ctx),
            BinOp::Eq => equal_operands(lhs, rhs, ctx),
            BinOp::Ne => !equal_operands(lhs, rhs, ctx),
            _ => compare(*op, &value(lhs, ctx), &value(rhs, ctx)),
        },
        // Not conditions; the loader rejects them.
        Expr::Null | Expr::Int(_) | Expr::Float(_) | Expr::Str(_) | Expr::List(_) => false,
    }
}

/// The value of an operand.
fn value<'a>(e: &Expr, ctx: &EvalContext<'a>) -> Cow<'a, Value> {
    Cow::Owned(match e {
        Expr::Path(p) => return path(p, ctx),
        Expr::Null => Value::Null,
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Int(i) => Value::from(*i),
        // The parser only makes finite floats, which JSON can hold.
        Expr::Float(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
        Expr::Str(s) => Value::String(s.clone()),
        Expr::List(items) => Value::Array(
            items
                .iter()
                .map(|item| value(item, ctx).into_owned())
                .collect(),
        ),
        // A condition is not a value; the loader rejects it as an operand.
        Expr::Not(_) | Expr::Binary { .. } => Value::Null,
    })
}

/// Follows a path from `actor` (a `user` record) or `record`. A field of
/// `null` is `null`: an anonymous actor's fields, and anything past a
/// `belongs_to` whose key is `null` or names no record.
fn path<'a>(p: &Path, ctx: &EvalContext<'a>) -> Cow<'a, Value> {
    let (mut current, mut resource): (Cow<'a, Value>, Option<&Resource>) = match p.root {
        Root::Actor => (Cow::Borrowed(ctx.actor), ctx.schema.resource("user")),
        Root::Record => (Cow::Borrowed(ctx.record), Some(ctx.resource)),
    };
    for (i, name) in p.fields.iter().enumerate() {
        if current.is_null() {
            return current;
        }
        let is_last = i + 1 == p.fields.len();
        match belongs_to_target(resource, name) {
            // `record.uploader.…`: the record `uploader_id` points to.
            Some(target) if !is_last => {
                let key = field(current, &format!("{name}_id"));
                current = match key.as_ref() {
                    Value::String(id) => Cow::Owned((ctx.related)(target, id)),
                    _ => Cow::Owned(Value::Null),
                };
                resource = ctx.schema.resource(target);
            }
            // A column: an attribute, `id`, a timestamp or a `<name>_id`.
            _ => current = field(current, name),
        }
    }
    current
}

/// The target of `resource`'s belongs_to called `name`, if it has one.
fn belongs_to_target<'s>(resource: Option<&'s Resource>, name: &str) -> Option<&'s str> {
    match &resource?.relationship(name)?.kind {
        RelationshipKind::BelongsTo { target, .. } => Some(target),
        RelationshipKind::HasMany { .. } | RelationshipKind::ManyToMany { .. } => None,
    }
}

/// `object[name]`, or `null` when the key is missing or `object` is not an
/// object.
fn field<'a>(object: Cow<'a, Value>, name: &str) -> Cow<'a, Value> {
    match object {
        Cow::Borrowed(v) => v.get(name).map_or(Cow::Owned(Value::Null), Cow::Borrowed),
        Cow::Owned(v) => Cow::Owned(v.get(name).cloned().unwrap_or(Value::Null)),
    }
}

/// A comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`) of two known values, as
/// the spec defines it. The SQL compiler folds known operands with this, so
/// there is one definition of what a comparison means.
pub fn compare(op: BinOp, a: &Value, b: &Value) -> bool {
    match op {
        BinOp::Eq => equal(a, b),
        BinOp::Ne => !equal(a, b),
        BinOp::Lt => order(a, b) == Some(Ordering::Less),
        BinOp::Le => matches!(order(a, b), Some(Ordering::Less | Ordering::Equal)),
        BinOp::Gt => order(a, b) == Some(Ordering::Greater),
        BinOp::Ge => matches!(order(a, b), Some(Ordering::Greater | Ordering::Equal)),
        BinOp::In | BinOp::And | BinOp::Or => false,
    }
}

/// `a == b`: true when both are `null`, false when exactly one is, and
/// otherwise true when the values are equal, numbers by value (`1 == 1.0`).
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        _ => a == b,
    }
}

/// The order `<`, `<=`, `>`, `>=` test: none when either side is `null`;
/// numbers by value; strings byte by byte, which orders uuids, dates and
/// datetimes too since they are strings in canonical form. Nothing else is
/// ordered.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

/// Two integers compare exactly; otherwise both sides compare as 64-bit
/// floats (which is also what PostgreSQL does with a bigint and a double).
fn compare_numbers(x: &Number, y: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return Some(a.cmp(&b));
    }
    x.as_f64()?.partial_cmp(&y.as_f64()?)
}

/// `a == b` as written in a policy. Next to the literal `null` it tests
/// for null (`record.owner_id == null`); otherwise a `null` on either side
/// equals nothing, so `actor.id == record.owner_id` is false for an
/// anonymous actor even where the record has no owner.
fn equal_operands(lhs: &Expr, rhs: &Expr, ctx: &EvalContext<'_>) -> bool {
    let (a, b) = (value(lhs, ctx), value(rhs, ctx));
    if matches!(lhs, Expr::Null) || matches!(rhs, Expr::Null) {
        return a.is_null() && b.is_null();
    }
    !a.is_null() && !b.is_null() && equal(&a, &b)
}

/// `a in [x, y, …]` is `a == x || a == y || …`. `a in <array>` is true when
/// an element equals `a`, and false for a `null` array or a `null` `a`.
fn member(lhs: &Expr, rhs: &Expr, ctx: &EvalContext<'_>) -> bool {
    let needle = value(lhs, ctx);
    if let Expr::List(items) = rhs {
        return items.iter().any(|item| equal_operands(lhs, item, ctx));
    }
    match value(rhs, ctx).as_ref() {
        Value::Array(elements) if !needle.is_null() => elements.iter().any(|e| equal(&needle, e)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use crate::load::load_schema;
    use crate::policy::parse;

    const USER_EXT: &str = r#"[resource]
name = "user"

[relationships]
team = { belongs_to = "team", on_delete = "nullify" }
"#;

    const TEAM: &str = r#"[resource]
name = "team"

[attributes]
name = { type = "string" }
"#;

    const AVATAR: &str = r#"[resource]
name = "avatar"

[attributes]
name = { type = "string" }
polycount = { type = "integer" }
rating = { type = "float" }
is_public = { type = "boolean" }
kind = { type = "enum", values = ["humanoid", "creature"] }
tags = { type = "array", of = "string" }
scores = { type = "array", of = "float" }
metadata = { type = "json" }
released_at = { type = "datetime" }
opened_on = { type = "date" }

[relationships]
uploader = { belongs_to = "user", on_delete = "cascade" }
comments = { has_many = "comment" }
"#;

    const COMMENT: &str = r#"[resource]
name = "comment"

[relationships]
avatar = { belongs_to = "avatar", on_delete = "cascade" }
"#;

    const ALICE: &str = "00000000-0000-4000-8000-00000000000a";
    const BOB: &str = "00000000-0000-4000-8000-00000000000b";
    const REDS: &str = "00000000-0000-4000-8000-0000000000f1";
    const NOBODY: &str = "00000000-0000-4000-8000-000000000000";

    fn load(files: &[(&str, &str)], include_system: bool) -> Schema {
        let files = files
            .iter()
            .map(|(n, t)| {
                (
                    PathBuf::from(format!("resources/{n}.toml")),
                    (*t).to_owned(),
                )
            })
            .collect();
        load_schema(files, include_system).unwrap_or_else(|e| panic!("{e}"))
    }

    fn schema() -> Schema {
        let files = [
            ("avatar", AVATAR),
            ("comment", COMMENT),
            ("team", TEAM),
            ("user", USER_EXT),
        ];
        load(&files, true)
    }

    fn alice() -> Value {
        json!({"id": ALICE, "role": "admin", "username": "alice", "team_id": REDS})
    }

    fn bob() -> Value {
        json!({"id": BOB, "role": "user", "username": "bob", "team_id": null})
    }

    /// The records `related` knows: two users and a team.
    fn related(resource: &str, id: &str) -> Value {
        match (resource, id) {
            ("user", ALICE) => alice(),
            ("user", BOB) => bob(),
            ("team", REDS) => json!({"id": REDS, "name": "Reds"}),
            _ => Value::Null,
        }
    }

    /// Evaluates `policy` on a `record` of `resource` for `actor`.
    fn run(schema: &Schema, resource: &str, policy: &str, actor: &Value, record: &Value) -> bool {
        let expr = parse(policy).unwrap_or_else(|e| panic!("{policy}: {e}"));
        let ctx = EvalContext {
            schema,
            resource: schema.resource(resource).expect(resource),
            actor,
            record,
            related: &related,
        };
        eval(&expr, &ctx)
    }

    /// Asserts each `(policy, expected)` for one actor and record.
    fn expect(actor: &Value, record: &Value, cases: &[(&str, bool)]) {
        let schema = schema();
        for (policy, expected) in cases {
            assert_eq!(
                run(&schema, "avatar", policy, actor, record),
                *expected,
                "{policy}\nactor: {actor}\nrecord: {record}"
            );
        }
    }

    fn avatar() -> Value {
        json!({
            "id": "00000000-0000-4000-8000-000000000100",
            "name": "Robot",
            "polycount": 1,
            "rating": 2.0,
            "is_public": true,
            "kind": "humanoid",
            "tags": ["x", "y"],
            "scores": [1.0, 2.5],
            "metadata": {"a": 1},
            "released_at": "2026-01-02T03:04:05.500Z",
            "opened_on": "2026-01-02",
            "uploader_id": ALICE,
            "inserted_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
        })
    }

    /// An avatar whose optional fields are all null (or absent).
    fn empty_avatar() -> Value {
        json!({
            "id": "00000000-0000-4000-8000-000000000101",
            "name": null,
            "is_public": null,
            "tags": null,
            "uploader_id": null,
        })
    }

    #[test]
    fn literals_and_boolean_operators() {
        expect(
            &Value::Null,
            &avatar(),
            &[
                ("true", true),
                ("false", false),
                ("!true", false),
                ("!!true", true),
                ("true && true", true),
                ("true && false", false),
                ("false && true", false),
                ("false || false", false),
                ("false || true", true),
                ("true || false", true),
                ("!(false || false) && true", true),
            ],
        );
    }

    #[test]
    fn a_boolean_path_is_true_only_when_it_is_true() {
        let public = avatar();
        let mut private = avatar();
        private["is_public"] = json!(false);
        expect(&Value::Null, &public, &[("record.is_public", true)]);
        expect(
            &Value::Null,
            &private,
            &[("record.is_public", false), ("!record.is_public", true)],
        );
        // Null and missing are false, and `!` of them true: two values only.
        let missing = json!({"id": "00000000-0000-4000-8000-000000000102"});
        for record in [empty_avatar(), missing] {
            expect(
                &Value::Null,
                &record,
                &[("record.is_public", false), ("!record.is_public", true)],
            );
        }
    }

    #[test]
    fn equality_with_null() {
        expect(
            &Value::Null,
            &empty_avatar(),
            &[
                ("null == null", true),
                ("null != null", false),
                ("record.name == null", true),
                ("null == record.name", true),
                ("record.name != null", false),
                // A missing key is null too.
                ("record.polycount == null", true),
                ("record.name == 'Robot'", false),
                ("record.name != 'Robot'", true),
                ("'Robot' == record.name", false),
                ("record.tags == null", true),
                ("record.metadata == null", true),
            ],
        );
        expect(
            &alice(),
            &avatar(),
            &[
                ("record.name == null", false),
                ("record.name != null", true),
                ("null == record.name", false),
                ("record.metadata == null", false),
                ("record.metadata != null", true),
                ("record.tags != null", true),
                ("actor == null", false),
                ("actor != null", true),
            ],
        );
    }

    #[test]
    fn a_missing_value_equals_nothing_but_the_null_literal() {
        // The spec's example: an anonymous actor does not own a record that
        // has no owner.
        expect(
            &Value::Null,
            &empty_avatar(),
            &[
                ("actor.id == record.uploader_id", false),
                ("actor.id != record.uploader_id", true),
                ("record.uploader_id == actor.id", false),
                ("record.name == record.uploader.username", false),
                ("actor.id in [record.uploader_id]", false),
                // The literal `null` tests for a missing value.
                ("record.uploader_id == null", true),
                ("null == actor.id", true),
                ("actor == null", true),
                ("record.uploader_id != null", false),
                ("null == null", true),
                ("record.name in [null, 'x']", true),
            ],
        );
    }

    #[test]
    fn numbers_compare_by_value() {
        expect(
            &Value::Null,
            &avatar(),
            &[
                ("1 == 1.0", true),
                ("1.0 == 1", true),
                ("1 != 1.0", false),
                ("record.polycount == 1", true),
                ("record.polycount == 1.0", true),
                ("record.rating == 2", true),
                ("record.rating == 2.0", true),
                ("record.rating != 2", false),
                ("record.polycount < record.rating", true),
                ("record.rating > 1.5", true),
                ("record.rating >= 2", true),
                ("record.rating <= 2", true),
                ("record.rating < 2", false),
                ("-1 < 0", true),
                ("1e3 == 1000", true),
                ("1.5 > 1", true),
                ("9223372036854775807 > 9223372036854775806", true),
                ("-9223372036854775808 < -9223372036854775807", true),
            ],
        );
    }

    #[test]
    fn strings_compare_byte_by_byte() {
        expect(
            &Value::Null,
            &avatar(),
            &[
                ("'B' < 'a'", true),
                ("'a' < 'B'", false),
                ("'a' > 'B'", true),
                ("'Z' < 'a'", true),
                ("'' < 'a'", true),
                ("'ab' < 'b'", true),
                ("'a' < 'ab'", true),
                ("'a' <= 'a'", true),
                ("'a' >= 'a'", true),
                // UTF-8: é is 0xC3 0xA9, after every ASCII letter.
                ("'é' > 'z'", true),
                ("'a' == 'A'", false),
                ("record.name == 'Robot'", true),
                ("record.name == 'robot'", false),
                ("record.name < 'a'", true),
                ("record.kind == 'humanoid'", true),
            ],
        );
    }

    #[test]
    fn datetimes_dates_and_uuids_compare_as_canonical_text() {
        expect(
            &Value::Null,
            &avatar(),
            &[
                ("record.released_at == '2026-01-02T03:04:05.500Z'", true),
                ("record.released_at > '2026-01-02T03:04:05.000Z'", true),
                ("record.released_at < '2026-01-02T03:04:05.501Z'", true),
                ("record.released_at > record.inserted_at", true),
                ("record.updated_at <= record.inserted_at", true),
                ("record.opened_on == '2026-01-02'", true),
                ("record.opened_on < '2026-01-10'", true),
                ("record.opened_on > '2025-12-31'", true),
                ("record.uploader_id == actor.id", false),
                (
                    "record.uploader_id == '00000000-0000-4000-8000-00000000000a'",
                    true,
                ),
                (
                    "record.uploader_id < '00000000-0000-4000-8000-00000000000b'",
                    true,
                ),
            ],
        );
    }

    #[test]
    fn ordering_with_null_is_always_false() {
        expect(
            &Value::Null,
            &empty_avatar(),
            &[
                ("record.polycount < 5", false),
                ("record.polycount <= 5", false),
                ("record.polycount > 5", false),
                ("record.polycount >= 5", false),
                ("!(record.polycount < 5)", true),
                ("record.name < 'z'", false),
                ("record.name >= ''", false),
                ("actor.username < 'z'", false),
            ],
        );
    }

    #[test]
    fn membership_in_a_list_is_a_chain_of_equalities() {
        expect(
            &Value::Null,
            &avatar(),
            &[
                ("record.kind in ['humanoid', 'creature']", true),
                ("record.kind in ['creature']", false),
                ("record.kind in []", false),
                ("record.polycount in [2, 1.0]", true),
                ("record.rating in [2]", true),
                ("record.kind in [null]", false),
                ("record.uploader_id in [actor.id, null]", false),
            ],
        );
        expect(
            &Value::Null,
            &empty_avatar(),
            &[
                // `a in [x]` is `a == x`; the literal null tests for null.
                ("record.name in [null]", true),
                ("record.name in ['Robot', null]", true),
                ("record.name in ['Robot']", false),
                // A missing value is not the actor's missing id.
                ("record.uploader_id in [actor.id]", false),
                ("null in [null]", true),
                ("null in []", false),
            ],
        );
    }

    #[test]
    fn membership_in_an_array() {
        expect(
            &Value::Null,
            &avatar(),
            &[
                ("'x' in record.tags", true),
                ("'y' in record.tags", true),
                ("'X' in record.tags", false),
                ("record.name in record.tags", false),
                ("2.5 in record.scores", true),
                // Numbers by value: 1 is the stored 1.0.
                ("1 in record.scores", true),
                ("3 in record.scores", false),
            ],
        );
        let mut empty_tags = avatar();
        empty_tags["tags"] = json!([]);
        expect(&Value::Null, &empty_tags, &[("'x' in record.tags", false)]);
        expect(
            &Value::Null,
            &empty_avatar(),
            &[
                // A null array, and a null element sought: both false.
                ("'x' in record.tags", false),
                ("record.name in record.tags", false),
                ("!('x' in record.tags)", true),
            ],
        );
        let mut tagged = avatar();
        tagged["name"] = Value::Null;
        expect(
            &Value::Null,
            &tagged,
            &[("record.name in record.tags", false)],
        );
    }

    #[test]
    fn paths_follow_belongs_to() {
        expect(
            &bob(),
            &avatar(),
            &[
                ("record.uploader.username == 'alice'", true),
                ("record.uploader.id == record.uploader_id", true),
                ("record.uploader.role == 'admin'", true),
                ("record.uploader.team.name == 'Reds'", true),
                ("record.uploader.team_id == record.uploader.team.id", true),
                ("actor.team.name == null", true),
                ("actor.team_id == null", true),
            ],
        );
        expect(
            &alice(),
            &avatar(),
            &[
                ("actor.team.name == 'Reds'", true),
                ("actor.team.name < 'S'", true),
                ("actor.id == record.uploader_id", true),
            ],
        );
    }

    #[test]
    fn a_null_or_dangling_belongs_to_gives_null() {
        expect(
            &bob(),
            &empty_avatar(),
            &[
                ("record.uploader.username == null", true),
                ("record.uploader.team.name == null", true),
                ("record.uploader.username == 'alice'", false),
                ("record.uploader.username != 'alice'", true),
                ("record.uploader.role in ['admin']", false),
            ],
        );
        let mut dangling = avatar();
        dangling["uploader_id"] = json!(NOBODY);
        expect(
            &bob(),
            &dangling,
            &[
                ("record.uploader.username == null", true),
                ("record.uploader.id == null", true),
                ("record.uploader_id == null", false),
            ],
        );
    }

    #[test]
    fn an_anonymous_actor_is_null_and_so_are_its_fields() {
        expect(
            &Value::Null,
            &avatar(),
            &[
                ("actor == null", true),
                ("actor != null", false),
                ("actor.id == null", true),
                ("actor.role == 'admin'", false),
                ("actor.role != 'admin'", true),
                ("actor.role in ['admin', 'coordinator']", false),
                ("actor.team.name == null", true),
                ("actor.id == record.uploader_id", false),
                ("record.is_public || actor.id == record.uploader_id", true),
            ],
        );
    }

    #[test]
    fn a_signed_in_actor_is_their_record() {
        expect(
            &alice(),
            &avatar(),
            &[
                ("actor.role == 'admin'", true),
                ("actor.role in ['admin', 'coordinator']", true),
                ("actor.username == 'alice'", true),
                ("actor.id == record.uploader_id", true),
                ("actor.id != record.uploader_id", false),
                // A field the record lacks is null.
                ("actor.display_name == null", true),
            ],
        );
        expect(
            &bob(),
            &avatar(),
            &[
                ("actor.role == 'admin'", false),
                ("actor.id == record.uploader_id", false),
                (
                    "actor.id == record.uploader_id || actor.role == 'admin'",
                    false,
                ),
            ],
        );
    }

    #[test]
    fn without_the_user_resource_actor_fields_are_read_directly() {
        let note = "[resource]\nname = \"note\"\n\n[attributes]\nbody = { type = \"text\" }\n";
        let schema = load(&[("note", note)], false);
        let record = json!({"id": "00000000-0000-4000-8000-000000000100"});
        let actor = json!({"id": ALICE, "role": "coordinator"});
        let run = |policy, actor| run(&schema, "note", policy, actor, &record);
        assert!(run("actor.role == 'coordinator'", &actor));
        assert!(run("actor.email == null", &actor));
        assert!(!run("actor.role == 'coordinator'", &Value::Null));
    }

    #[test]
    fn things_the_loader_rejects_still_get_an_answer() {
        // Not conditions: false. A condition as an operand: null. A list
        // outside `in`: an array. None of these reach a loaded policy.
        expect(
            &alice(),
            &avatar(),
            &[
                ("null", false),
                ("1", false),
                ("'true'", false),
                ("[true]", false),
                ("record.name", false),
                ("actor", false),
                ("(1 == 1) == null", true),
                ("true < false", false),
                ("record.tags == ['x', 'y']", true),
                ("'x' in record.name", false),
            ],
        );
    }
}
