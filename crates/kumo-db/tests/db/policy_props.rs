//! Policy semantics on real databases (docs/policies.md): the SQL the query
//! engine compiles policies into decides exactly what the reference
//! evaluator (`kumo_core::policy::eval`) decides, and a record an actor may
//! not read leaks nothing through filters, sorts or includes.
//!
//! **The property** (`compiled_policies_match_the_evaluator_on_*`, one test
//! per database, so they run side by side). One database is migrated once
//! (policies don't change tables); each case loads the resource files with
//! generated `item` policies, replaces every row with generated ones, and
//! then, for every actor (anonymous, each generated user with their role,
//! an API key acting for a user):
//!
//! - a list returns exactly the items the evaluator says the actor may
//!   read, and gets of two sampled items agree (200 or 404);
//! - a list with one to four filters, each through a random `belongs_to`
//!   chain, with `include=owner,parent,children` and `page[count]`,
//!   returns, includes and counts exactly what the evaluator allows (each
//!   related record must itself be readable, by its own resource's policy).
//!   The evaluator takes the filters one by one, while the query shares one
//!   subquery among the filters through one relationship, so this checks
//!   that sharing is the same as the filters taken apart;
//! - one write (a create, an update or a destroy) is accepted or refused
//!   (404 for an unreadable record, 403, or 422 for a reference to an
//!   unreadable record) as the evaluator says; the items are restored after
//!   an accepted write.
//!
//! Each case also checks lists for up to three more read policies on the
//! same rows: a list tests a policy on every row with one query.
//!
//! Policies are generated as source text and go through the loader, so its
//! typing and its canonicalisation of literals are exercised too: uuid and
//! datetime literals facing a field are written in other spellings (upper
//! case, braces, offsets, extra fraction digits), and each loaded
//! expression must print as the generated one with canonical literals.
//! Every policy is well typed over a schema with every value type (string,
//! text, enum, integer, float, boolean, uuid, date, datetime, json, arrays
//! of each scalar), with paths through one and two `belongs_to` hops from
//! `record` and from `actor`, bare `actor`, `null`, lists, and all the
//! operators. Values include NULLs and edge cases: empty and unicode
//! strings, strings that differ only by case or sort differently by bytes
//! and by a locale, extreme and negative numbers, integers next to 2^53 and
//! 2^63 with float neighbours, -0.0, the first and last dates.
//!
//! Write policies don't name the fields a write sets without the client
//! choosing the value (a new record's `id` and timestamps, any item's
//! `updated_at`), since the evaluator cannot know them before the write.
//!
//! `PROPTEST_CASES`, `PROPTEST_MAX_SHRINK_ITERS`, `PROPTEST_MAX_SHRINK_TIME`
//! (milliseconds) and `PROPTEST_RNG_SEED` are honoured; each test prints how
//! often lists returned none, some or all items and how writes ended, so a
//! change that makes the generator trivial shows.
//!
//! **Regressions** (`an_integer_and_a_float_compare_as_64_bit_floats_*`):
//! what the property found, pinned.
//!
//! **The attacker** (`a_hidden_record_leaks_nothing_*`): an actor probes an
//! item they may not read with filters on its fields and through
//! relationships to it, sorts walked with cursors, offsets, counts,
//! includes, gets and writes. Every answer is the same whatever the hidden
//! item holds, and the same as when it does not exist (apart from the key a
//! readable record holds to it, which that record shows anyway); the same
//! probes made by the item's owner do tell the cases apart, so the probes
//! are not blind.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::PathBuf;

use kumo_core::actor::Actor;
use kumo_core::load::load_schema;
use kumo_core::policy::{self, BinOp, EvalContext, Expr, Path, Root, eval};
use kumo_core::resource::{Policy, Schema};
use kumo_core::table::{self, Table};
use kumo_db::files::Plan;
use kumo_db::query::params::parse_scalar;
use kumo_db::query::{CursorKey, Engine, Entry, QueryError, View, parse_list, parse_record_query};
use kumo_db::runner;
use kumo_db::sql::{Dialect, ident, value_sql};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

use crate::harness::TestDb;

// ---------------------------------------------------------------------------
// The resources

const TEAM: &str = r#"[resource]
name = "team"

[attributes]
name = { type = "string" }
rank = { type = "integer" }

[policies]
read = "record.rank != null && record.rank > 0 || actor.role == 'admin'"
"#;

/// Extends the built-in `user` (whose read policy lets users see only
/// themselves, and staff everyone).
const USER: &str = r#"[resource]
name = "user"

[attributes]
level = { type = "integer" }
vip = { type = "boolean" }
birthday = { type = "date" }

[relationships]
team = { belongs_to = "team", on_delete = "nullify" }
"#;

/// `item`, with `{read}`, `{create}`, `{update}` and `{destroy}` to fill in.
const ITEM: &str = r#"[resource]
name = "item"

[attributes]
label = { type = "string" }
body = { type = "text" }
kind = { type = "enum", values = ["alpha", "beta", "Beta", "zeta"], default = "alpha" }
qty = { type = "integer" }
score = { type = "float" }
flag = { type = "boolean", default = false }
code = { type = "uuid" }
happened_at = { type = "datetime" }
day = { type = "date" }
meta = { type = "json" }
tags = { type = "array", of = "string" }
nums = { type = "array", of = "integer" }
ratios = { type = "array", of = "float" }
watchers = { type = "array", of = "uuid" }
times = { type = "array", of = "datetime" }
days = { type = "array", of = "date" }
bits = { type = "array", of = "boolean" }
# Never sent to clients; the attacker test looks for it.
secret = { type = "string", sensitive = true }

[relationships]
owner = { belongs_to = "user", on_delete = "nullify" }
parent = { belongs_to = "item", on_delete = "nullify" }
children = { has_many = "item", via = "parent" }

[policies]
read = {read}
create = {create}
update = {update}
destroy = {destroy}
"#;

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The policies of `item`, as source text.
#[derive(Clone, Debug)]
struct Policies {
    read: String,
    create: String,
    update: String,
    destroy: String,
}

/// Loads the resources with these `item` policies; `Err` is the loader's
/// diagnostics.
fn load(p: &Policies) -> Result<Schema, String> {
    let item = ITEM
        .replace("{read}", &toml_string(&p.read))
        .replace("{create}", &toml_string(&p.create))
        .replace("{update}", &toml_string(&p.update))
        .replace("{destroy}", &toml_string(&p.destroy));
    let files = [("team", TEAM), ("user", USER), ("item", item.as_str())]
        .iter()
        .map(|(name, text)| {
            (
                PathBuf::from(format!("resources/{name}.toml")),
                (*text).to_owned(),
            )
        })
        .collect();
    load_schema(files, true).map_err(|d| d.to_string())
}

// ---------------------------------------------------------------------------
// Values

/// Strings that are equal only to themselves: empty, differing by case,
/// ordered differently by bytes and by a locale (`B` < `a`, `f` < `é`),
/// composed and decomposed accents, quotes and escapes, the enum values.
const STRINGS: &[&str] = &[
    "",
    "a",
    "A",
    "ab",
    "a b",
    "b",
    "B",
    "Z",
    "f",
    "é",
    "e\u{301}",
    "ä",
    "日本",
    "🦀",
    "it's",
    "say \"hi\"",
    "back\\slash",
    "tab\tnew\nline",
    "alpha",
    "Beta",
    "beta",
    "admin",
    "user",
];

const KINDS: &[&str] = &["alpha", "beta", "Beta", "zeta"];
const ROLES: &[&str] = &["user", "coordinator", "admin"];
const USERNAMES: &[&str] = &["alice", "bob", "carol_9", "dave"];

/// Integers a float cannot hold exactly (2^53 + 1, 2^63 - 1, their
/// negatives), small ones, and 0. Half the pool has a float neighbour in
/// [`FLOATS`] that equals it as a 64-bit float but not exactly.
const INTS: &[i64] = &[
    i64::MIN,
    -9_007_199_254_740_993,
    -1,
    0,
    1,
    2,
    9_007_199_254_740_993,
    i64::MAX,
];

/// The float neighbours of [`INTS`] (2^53, ±2^63), -0.0, whole floats equal
/// to integers, fractions, and a float beyond every integer.
const FLOATS: &[f64] = &[
    -9.223_372_036_854_776e18,
    -9_007_199_254_740_992.0,
    -1.0,
    -0.0,
    0.5,
    1.0,
    2.5,
    9_007_199_254_740_992.0,
    9.223_372_036_854_776e18,
    1e300,
];

const DATES: &[&str] = &[
    "0001-01-01",
    "1999-12-31",
    "2000-01-01",
    "2000-02-29",
    "2026-01-02",
    "9999-12-31",
];

const DATETIMES: &[&str] = &[
    "0001-01-01T00:00:00.000Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00.000Z",
    "2000-01-01T00:00:00.000Z",
    "2026-01-02T03:04:05.500Z",
    "2026-01-02T03:04:05.501Z",
    "9999-12-31T23:59:59.999Z",
];

/// Read policies per case besides the main one.
const MORE_READS: usize = 3;

const MAX_TEAMS: usize = 2;
const MAX_USERS: usize = 4;
const MAX_ITEMS: usize = 12;

/// Ids start with different bytes so that ordering by id is not insertion
/// order.
const PREFIXES: [u8; 12] = [
    0x0a, 0xf0, 0x3f, 0xc1, 0x7c, 0x55, 0x99, 0x21, 0xe4, 0x48, 0xb2, 0x6d,
];

fn id_of(table: u8, i: usize) -> String {
    format!(
        "{:02x}0000{table:02x}-0000-4000-8000-{i:012}",
        PREFIXES[i % PREFIXES.len()]
    )
}

fn team_id(i: usize) -> String {
    id_of(1, i)
}

fn user_id(i: usize) -> String {
    id_of(2, i)
}

fn item_id(i: usize) -> String {
    id_of(3, i)
}

/// Every row's id, and uuids before, between and after them.
fn uuids() -> Vec<String> {
    let mut out = vec![
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "7fffffff-ffff-4fff-bfff-ffffffffffff".to_owned(),
        "ffffffff-ffff-ffff-ffff-ffffffffffff".to_owned(),
    ];
    out.extend((0..MAX_TEAMS).map(team_id));
    out.extend((0..MAX_USERS).map(user_id));
    out.extend((0..MAX_ITEMS).map(item_id));
    out
}

/// One of some number of things, taken modulo that number: a small range,
/// so that it shrinks in a few steps (`proptest::sample::Index` spans all of
/// `usize` and takes dozens).
#[derive(Clone, Copy, Debug)]
struct Pick(usize);

impl Pick {
    fn of(self, len: usize) -> usize {
        self.0 % len
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    (0..256_usize).prop_map(Pick)
}

fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

// ---------------------------------------------------------------------------
// Types and paths

/// The type of a path, as far as generating well-typed policies goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Str,
    /// `item.kind`.
    Kind,
    /// `user.role`.
    Role,
    Int,
    Float,
    Bool,
    Uuid,
    Date,
    Datetime,
    Json,
    Arr(Elem),
    /// Bare `actor`.
    Actor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    Str,
    Int,
    Float,
    Bool,
    Uuid,
    Date,
    Datetime,
}

struct PathDef {
    text: &'static str,
    ty: Ty,
    /// Known before a write: not a new record's `id` or timestamps, nor an
    /// item's `updated_at`, which the write sets itself.
    stable: bool,
}

impl fmt::Debug for PathDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

const fn p(text: &'static str, ty: Ty) -> PathDef {
    PathDef {
        text,
        ty,
        stable: true,
    }
}

const fn unstable(text: &'static str, ty: Ty) -> PathDef {
    PathDef {
        text,
        ty,
        stable: false,
    }
}

const PATHS: &[PathDef] = &[
    unstable("record.id", Ty::Uuid),
    p("record.label", Ty::Str),
    p("record.body", Ty::Str),
    p("record.kind", Ty::Kind),
    p("record.qty", Ty::Int),
    p("record.score", Ty::Float),
    p("record.flag", Ty::Bool),
    p("record.code", Ty::Uuid),
    p("record.happened_at", Ty::Datetime),
    unstable("record.inserted_at", Ty::Datetime),
    unstable("record.updated_at", Ty::Datetime),
    p("record.day", Ty::Date),
    p("record.meta", Ty::Json),
    p("record.tags", Ty::Arr(Elem::Str)),
    p("record.nums", Ty::Arr(Elem::Int)),
    p("record.ratios", Ty::Arr(Elem::Float)),
    p("record.watchers", Ty::Arr(Elem::Uuid)),
    p("record.times", Ty::Arr(Elem::Datetime)),
    p("record.days", Ty::Arr(Elem::Date)),
    p("record.bits", Ty::Arr(Elem::Bool)),
    p("record.owner_id", Ty::Uuid),
    p("record.parent_id", Ty::Uuid),
    p("record.owner.id", Ty::Uuid),
    p("record.owner.role", Ty::Role),
    p("record.owner.username", Ty::Str),
    p("record.owner.display_name", Ty::Str),
    p("record.owner.level", Ty::Int),
    p("record.owner.vip", Ty::Bool),
    p("record.owner.birthday", Ty::Date),
    p("record.owner.email_confirmed_at", Ty::Datetime),
    p("record.owner.team_id", Ty::Uuid),
    p("record.owner.team.name", Ty::Str),
    p("record.owner.team.rank", Ty::Int),
    p("record.parent.id", Ty::Uuid),
    p("record.parent.label", Ty::Str),
    p("record.parent.kind", Ty::Kind),
    p("record.parent.qty", Ty::Int),
    p("record.parent.score", Ty::Float),
    p("record.parent.flag", Ty::Bool),
    p("record.parent.owner_id", Ty::Uuid),
    p("record.parent.happened_at", Ty::Datetime),
    p("record.parent.inserted_at", Ty::Datetime),
    unstable("record.parent.updated_at", Ty::Datetime),
    p("record.parent.meta", Ty::Json),
    p("record.parent.tags", Ty::Arr(Elem::Str)),
    p("record.parent.watchers", Ty::Arr(Elem::Uuid)),
    p("record.parent.parent.label", Ty::Str),
    p("record.parent.parent.flag", Ty::Bool),
    p("record.parent.owner.role", Ty::Role),
    p("actor", Ty::Actor),
    p("actor.id", Ty::Uuid),
    p("actor.role", Ty::Role),
    p("actor.email", Ty::Str),
    p("actor.username", Ty::Str),
    p("actor.display_name", Ty::Str),
    p("actor.level", Ty::Int),
    p("actor.vip", Ty::Bool),
    p("actor.birthday", Ty::Date),
    p("actor.email_confirmed_at", Ty::Datetime),
    p("actor.team_id", Ty::Uuid),
    p("actor.team.id", Ty::Uuid),
    p("actor.team.name", Ty::Str),
    p("actor.team.rank", Ty::Int),
];

/// Which operands may meet in one comparison. Text families differ in the
/// string literals they use: an enum only compares with its own values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Text,
    KindText,
    RoleText,
    /// Any string path, any string literal: only sought in a string array.
    AnyText,
    Number,
    Bool,
    Uuid,
    Date,
    Datetime,
}

const EQ_FAMILIES: &[Family] = &[
    Family::Text,
    Family::KindText,
    Family::RoleText,
    Family::Number,
    Family::Bool,
    Family::Uuid,
    Family::Date,
    Family::Datetime,
];

const ORDERED_FAMILIES: &[Family] = &[
    Family::Text,
    Family::KindText,
    Family::RoleText,
    Family::Number,
    Family::Uuid,
    Family::Date,
    Family::Datetime,
];

impl Family {
    fn admits(self, ty: Ty) -> bool {
        match self {
            Family::Text => ty == Ty::Str,
            Family::KindText => matches!(ty, Ty::Str | Ty::Kind),
            Family::RoleText => matches!(ty, Ty::Str | Ty::Role),
            Family::AnyText => matches!(ty, Ty::Str | Ty::Kind | Ty::Role),
            Family::Number => matches!(ty, Ty::Int | Ty::Float),
            Family::Bool => ty == Ty::Bool,
            Family::Uuid => ty == Ty::Uuid,
            Family::Date => ty == Ty::Date,
            Family::Datetime => ty == Ty::Datetime,
        }
    }

    fn of_elem(e: Elem) -> Family {
        match e {
            Elem::Str => Family::AnyText,
            Elem::Int | Elem::Float => Family::Number,
            Elem::Bool => Family::Bool,
            Elem::Uuid => Family::Uuid,
            Elem::Date => Family::Date,
            Elem::Datetime => Family::Datetime,
        }
    }

    fn literal(self) -> BoxedStrategy<Operand> {
        let text = |pool: Vec<String>, spelling: Spelling| {
            (select(pool), any::<u8>())
                .prop_map(move |(value, n)| Operand::Text { value, spelling, n })
                .boxed()
        };
        let owned = |pool: &[&str]| pool.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        match self {
            Family::Text | Family::AnyText => text(owned(STRINGS), Spelling::Plain),
            Family::KindText => text(owned(KINDS), Spelling::Plain),
            Family::RoleText => text(owned(ROLES), Spelling::Plain),
            Family::Number => prop_oneof![
                select(INTS).prop_map(Operand::Int),
                select(FLOATS).prop_map(Operand::Float),
            ]
            .boxed(),
            Family::Bool => any::<bool>().prop_map(Operand::Bool).boxed(),
            Family::Uuid => text(uuids(), Spelling::Uuid),
            Family::Date => text(owned(DATES), Spelling::Plain),
            Family::Datetime => text(owned(DATETIMES), Spelling::Datetime),
        }
    }
}

fn paths(keep: impl Fn(&PathDef) -> bool) -> Vec<&'static PathDef> {
    PATHS.iter().filter(|p| keep(p)).collect()
}

// ---------------------------------------------------------------------------
// Policies

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// How a string literal may be spelled other than canonically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spelling {
    Plain,
    Uuid,
    Datetime,
}

#[derive(Clone, Debug)]
enum Operand {
    Path(&'static PathDef),
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// `value` is canonical; `n` picks the quotes and, where the loader
    /// normalises the literal, one of its spellings.
    Text {
        value: String,
        spelling: Spelling,
        n: u8,
    },
}

/// A generated policy expression.
#[derive(Clone, Debug)]
enum Cond {
    Const(bool),
    /// A boolean path as a condition.
    Flag(&'static PathDef),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Cmp(Op, Operand, Operand),
    InList(Operand, Vec<Operand>),
    InArray(Operand, &'static PathDef),
}

/// `value` in the spellings the loader accepts for it; the first is the
/// canonical one.
fn spellings(spelling: Spelling, value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    match spelling {
        Spelling::Plain => {}
        Spelling::Uuid => {
            out.push(value.to_uppercase());
            out.push(value.replace('-', ""));
            out.push(format!("{{{value}}}"));
            out.push(format!("urn:uuid:{value}"));
        }
        Spelling::Datetime => {
            // YYYY-MM-DDTHH:MM:SS.mmmZ
            let (date, time) = (&value[..10], &value[11..23]);
            out.push(value.replace('T', "t").replace('Z', "z"));
            out.push(format!("{date} {time}Z"));
            out.push(format!("{date}T{time}+00:00"));
            out.push(format!("{date}T{time}999Z"));
            if time.ends_with(".000") {
                out.push(format!("{date}T{}Z", &time[..8]));
            }
            // The same instant at another offset, within the same day.
            let hour: u32 = value[11..13].parse().unwrap_or(0);
            let rest = &value[13..23];
            if hour < 23 {
                out.push(format!("{date}T{:02}{rest}+01:00", hour + 1));
            } else {
                out.push(format!("{date}T{:02}{rest}-01:00", hour - 1));
            }
        }
    }
    out
}

fn quote(s: &str, double: bool) -> String {
    let q = if double { '"' } else { '\'' };
    let mut out = String::from(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

impl Operand {
    fn is_path(&self) -> bool {
        matches!(self, Operand::Path(_))
    }

    /// `faces_field`: the loader normalises this literal against a field,
    /// so it may be spelled another way.
    fn write(&self, canonical: bool, faces_field: bool, out: &mut String) {
        match self {
            Operand::Path(p) => out.push_str(p.text),
            Operand::Null => out.push_str("null"),
            Operand::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Operand::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Operand::Float(x) => {
                let _ = write!(out, "{x:?}");
            }
            Operand::Text { value, spelling, n } => {
                if canonical {
                    out.push_str(&quote(value, false));
                    return;
                }
                let text = if faces_field {
                    let all = spellings(*spelling, value);
                    all[usize::from(*n / 2) % all.len()].clone()
                } else {
                    value.clone()
                };
                out.push_str(&quote(&text, n % 2 == 1));
            }
        }
    }
}

impl Cond {
    /// Binding strength in the grammar: `||` 1, `&&` 2, `!` 3, others 4.
    fn level(&self) -> u8 {
        match self {
            Cond::Or(..) => 1,
            Cond::And(..) => 2,
            Cond::Not(_) => 3,
            _ => 4,
        }
    }

    /// The policy as source text (`canonical`: with canonical literals),
    /// with only the parentheses the grammar needs.
    fn source(&self, canonical: bool) -> String {
        let mut out = String::new();
        self.write(canonical, 0, &mut out);
        out
    }

    fn write(&self, canonical: bool, min: u8, out: &mut String) {
        if self.level() < min {
            out.push('(');
            self.write(canonical, 0, out);
            out.push(')');
            return;
        }
        match self {
            Cond::Const(b) => {
                let _ = write!(out, "{b}");
            }
            Cond::Flag(p) => out.push_str(p.text),
            Cond::Not(inner) => {
                out.push('!');
                inner.write(canonical, 3, out);
            }
            Cond::And(a, b) | Cond::Or(a, b) => {
                let (level, op) = if matches!(self, Cond::And(..)) {
                    (2, " && ")
                } else {
                    (1, " || ")
                };
                a.write(canonical, level, out);
                out.push_str(op);
                b.write(canonical, level + 1, out);
            }
            Cond::Cmp(op, a, b) => {
                a.write(canonical, b.is_path(), out);
                let _ = write!(out, " {} ", op.as_str());
                b.write(canonical, a.is_path(), out);
            }
            Cond::InList(a, items) => {
                a.write(canonical, items.iter().any(Operand::is_path), out);
                out.push_str(" in [");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(canonical, a.is_path(), out);
                }
                out.push(']');
            }
            Cond::InArray(a, array) => {
                a.write(canonical, true, out);
                let _ = write!(out, " in {}", array.text);
            }
        }
    }
}

/// An operand of `family`: a path (only a stable one with `stable`), a
/// literal, or (with `null`) `null`.
/// Paths from `record` come more often than paths from `actor`, so that a
/// policy usually tells rows apart.
fn operand(family: Family, stable: bool, null: bool) -> BoxedStrategy<Operand> {
    let fits = |p: &PathDef| family.admits(p.ty) && (p.stable || !stable);
    let record = paths(|p| fits(p) && p.text.starts_with("record."));
    let actor = paths(|p| fits(p) && p.text.starts_with("actor"));
    let mut choices: Vec<(u32, BoxedStrategy<Operand>)> = vec![
        (5, select(record).prop_map(Operand::Path).boxed()),
        (3, family.literal()),
    ];
    if !actor.is_empty() {
        choices.push((2, select(actor).prop_map(Operand::Path).boxed()));
    }
    if null {
        choices.push((1, Just(Operand::Null).boxed()));
    }
    Union::new_weighted(choices).boxed()
}

/// A well-typed comparison (docs/policies.md, "Types").
fn comparison(stable: bool) -> BoxedStrategy<Cond> {
    // One alternative per family rather than a `prop_flat_map` from the
    // family: shrinking a flat map re-runs the test up to `cases` times.
    let per = |families: &[Family], make: &dyn Fn(Family) -> BoxedStrategy<Cond>| {
        Union::new(families.iter().map(|f| make(*f))).boxed()
    };
    let equality = per(EQ_FAMILIES, &|f| {
        (
            select(&[Op::Eq, Op::Ne][..]),
            operand(f, stable, true),
            operand(f, stable, true),
        )
            .prop_map(|(op, a, b)| Cond::Cmp(op, a, b))
            .boxed()
    });
    let order = per(ORDERED_FAMILIES, &|f| {
        (
            select(&[Op::Lt, Op::Le, Op::Gt, Op::Ge][..]),
            operand(f, stable, false),
            operand(f, stable, false),
        )
            .prop_map(|(op, a, b)| Cond::Cmp(op, a, b))
            .boxed()
    });
    let list = per(EQ_FAMILIES, &|f| {
        (
            operand(f, stable, true),
            proptest::collection::vec(operand(f, stable, true), 0..4),
        )
            .prop_map(|(a, items)| Cond::InList(a, items))
            .boxed()
    });
    let arrays = paths(|p| matches!(p.ty, Ty::Arr(_)) && (p.stable || !stable));
    // Numbers in arrays are where integers meet floats most often.
    let array = Union::new_weighted(
        arrays
            .into_iter()
            .map(|array| {
                let Ty::Arr(elem) = array.ty else {
                    unreachable!("only arrays were selected")
                };
                let weight = if matches!(elem, Elem::Int | Elem::Float) {
                    3
                } else {
                    1
                };
                let strategy = operand(Family::of_elem(elem), stable, false)
                    .prop_map(move |a| Cond::InArray(a, array))
                    .boxed();
                (weight, strategy)
            })
            .collect(),
    );
    // json, arrays and `actor` compare only with null.
    let null_only =
        paths(|p| matches!(p.ty, Ty::Json | Ty::Arr(_) | Ty::Actor) && (p.stable || !stable));
    let with_null = (
        select(null_only),
        select(&[Op::Eq, Op::Ne][..]),
        any::<bool>(),
    )
        .prop_map(|(p, op, flip)| {
            if flip {
                Cond::Cmp(op, Operand::Null, Operand::Path(p))
            } else {
                Cond::Cmp(op, Operand::Path(p), Operand::Null)
            }
        });
    prop_oneof![
        6 => equality,
        4 => order,
        3 => list,
        3 => array,
        1 => with_null,
    ]
    .boxed()
}

/// A policy: conditions joined with `!`, `&&`, `||`.
fn cond(stable: bool) -> BoxedStrategy<Cond> {
    let flags = paths(|p| p.ty == Ty::Bool && (p.stable || !stable));
    let leaf = prop_oneof![
        1 => any::<bool>().prop_map(Cond::Const),
        2 => select(flags).prop_map(Cond::Flag),
        10 => comparison(stable),
    ];
    leaf.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            1 => inner.clone().prop_map(|c| Cond::Not(Box::new(c))),
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::And(Box::new(a), Box::new(b))),
            2 => (inner.clone(), inner).prop_map(|(a, b)| Cond::Or(Box::new(a), Box::new(b))),
        ]
    })
    .boxed()
}

// ---------------------------------------------------------------------------
// Rows

type Record = Map<String, Value>;

const TEAM_COLUMNS: &[(&str, Ty)] = &[("name", Ty::Str), ("rank", Ty::Int)];

const USER_COLUMNS: &[(&str, Ty)] = &[
    ("display_name", Ty::Str),
    ("level", Ty::Int),
    ("vip", Ty::Bool),
    ("birthday", Ty::Date),
    ("email_confirmed_at", Ty::Datetime),
];

const ITEM_COLUMNS: &[(&str, Ty)] = &[
    ("label", Ty::Str),
    ("body", Ty::Str),
    ("kind", Ty::Kind),
    ("qty", Ty::Int),
    ("score", Ty::Float),
    ("flag", Ty::Bool),
    ("code", Ty::Uuid),
    ("happened_at", Ty::Datetime),
    ("day", Ty::Date),
    ("meta", Ty::Json),
    ("tags", Ty::Arr(Elem::Str)),
    ("nums", Ty::Arr(Elem::Int)),
    ("ratios", Ty::Arr(Elem::Float)),
    ("watchers", Ty::Arr(Elem::Uuid)),
    ("times", Ty::Arr(Elem::Datetime)),
    ("days", Ty::Arr(Elem::Date)),
    ("bits", Ty::Arr(Elem::Bool)),
];

fn elem_ty(e: Elem) -> Ty {
    match e {
        Elem::Str => Ty::Str,
        Elem::Int => Ty::Int,
        Elem::Float => Ty::Float,
        Elem::Bool => Ty::Bool,
        Elem::Uuid => Ty::Uuid,
        Elem::Date => Ty::Date,
        Elem::Datetime => Ty::Datetime,
    }
}

/// A canonical value of `ty`, never null.
fn value(ty: Ty) -> BoxedStrategy<Value> {
    let strings = |pool: &'static [&'static str]| {
        select(pool)
            .prop_map(|s| Value::String(s.to_owned()))
            .boxed()
    };
    match ty {
        Ty::Str => strings(STRINGS),
        Ty::Kind => strings(KINDS),
        Ty::Role => strings(ROLES),
        Ty::Int => select(INTS).prop_map(Value::from).boxed(),
        Ty::Float => select(FLOATS).prop_map(float).boxed(),
        Ty::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Ty::Uuid => select(uuids()).prop_map(Value::String).boxed(),
        Ty::Date => strings(DATES),
        Ty::Datetime => strings(DATETIMES),
        Ty::Json => select(vec![
            json!({}),
            json!([]),
            json!("x"),
            json!(1),
            json!(true),
            json!({"a": [1, "b"]}),
        ])
        .boxed(),
        Ty::Arr(e) => proptest::collection::vec(value(elem_ty(e)), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        Ty::Actor => Just(Value::Null).boxed(),
    }
}

fn nullable(ty: Ty) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 3 => value(ty)].boxed()
}

fn columns(list: &'static [(&'static str, Ty)]) -> Vec<BoxedStrategy<Value>> {
    list.iter().map(|(_, ty)| nullable(*ty)).collect()
}

/// Every row of every table the policies can reach.
#[derive(Clone, Debug)]
struct Data {
    teams: Vec<Record>,
    users: Vec<Record>,
    items: Vec<Record>,
}

impl Data {
    fn rows(&self, resource: &str) -> &[Record] {
        match resource {
            "team" => &self.teams,
            "user" => &self.users,
            _ => &self.items,
        }
    }

    /// The record of `resource` with this id, or null.
    fn get(&self, resource: &str, id: &str) -> Value {
        self.rows(resource)
            .iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
            .map_or(Value::Null, |r| Value::Object(r.clone()))
    }
}

/// A row's generated columns, keyed by name.
fn named(list: &[(&str, Ty)], values: Vec<Value>) -> Record {
    list.iter()
        .zip(values)
        .map(|((name, _), v)| ((*name).to_owned(), v))
        .collect()
}

fn key(target: Option<Pick>, len: usize, id: fn(usize) -> String) -> Value {
    match target {
        Some(i) if len > 0 => Value::String(id(i.of(len))),
        _ => Value::Null,
    }
}

type Stamps = (Value, Value);

fn stamps() -> (BoxedStrategy<Value>, BoxedStrategy<Value>) {
    (value(Ty::Datetime), value(Ty::Datetime))
}

fn stamped(mut row: Record, id: String, (inserted, updated): Stamps) -> Record {
    row.insert("id".into(), Value::String(id));
    row.insert("inserted_at".into(), inserted);
    row.insert("updated_at".into(), updated);
    row
}

fn data() -> impl Strategy<Value = Data> {
    let team = (columns(TEAM_COLUMNS), stamps());
    let user = (
        columns(USER_COLUMNS),
        select(ROLES),
        any::<bool>(),
        proptest::option::of(pick()),
        stamps(),
    );
    let item = (
        columns(ITEM_COLUMNS),
        proptest::option::of(pick()),
        proptest::option::of(pick()),
        stamps(),
    );
    (
        proptest::collection::vec(team, 0..=MAX_TEAMS),
        proptest::collection::vec(user, 1..=MAX_USERS),
        proptest::collection::vec(item, 1..=MAX_ITEMS),
    )
        .prop_map(|(teams, users, items)| {
            let (n_teams, n_users, n_items) = (teams.len(), users.len(), items.len());
            let teams = teams
                .into_iter()
                .enumerate()
                .map(|(i, (values, s))| stamped(named(TEAM_COLUMNS, values), team_id(i), s))
                .collect();
            let users = users
                .into_iter()
                .enumerate()
                .map(|(i, (values, role, has_username, team, s))| {
                    let mut row = named(USER_COLUMNS, values);
                    let name = USERNAMES[i];
                    row.insert("email".into(), json!(format!("{name}@kumo.test")));
                    row.insert(
                        "username".into(),
                        if has_username {
                            json!(name)
                        } else {
                            Value::Null
                        },
                    );
                    row.insert("role".into(), json!(role));
                    row.insert("password_hash".into(), Value::Null);
                    row.insert("locked_at".into(), Value::Null);
                    row.insert("team_id".into(), key(team, n_teams, team_id));
                    stamped(row, user_id(i), s)
                })
                .collect();
            let items = items
                .into_iter()
                .enumerate()
                .map(|(i, (values, owner, parent, s))| {
                    let mut row = named(ITEM_COLUMNS, values);
                    row.insert("secret".into(), Value::Null);
                    row.insert("owner_id".into(), key(owner, n_users, user_id));
                    row.insert("parent_id".into(), key(parent, n_items, item_id));
                    stamped(row, item_id(i), s)
                })
                .collect();
            Data {
                teams,
                users,
                items,
            }
        })
}

// ---------------------------------------------------------------------------
// Writes and filters to try

/// The attributes a generated write body sets.
const BODY_COLUMNS: &[(&str, Ty)] = &[
    ("label", Ty::Str),
    ("qty", Ty::Int),
    ("score", Ty::Float),
    ("flag", Ty::Bool),
    ("kind", Ty::Kind),
    ("code", Ty::Uuid),
    ("happened_at", Ty::Datetime),
    ("tags", Ty::Arr(Elem::Str)),
    ("watchers", Ty::Arr(Elem::Uuid)),
];

#[derive(Clone, Debug)]
enum BodyEntry {
    Attr(&'static str, Value),
    Owner(Option<Pick>),
    Parent(Option<Pick>),
}

fn body() -> impl Strategy<Value = Vec<BodyEntry>> {
    let attr = Union::new(
        BODY_COLUMNS
            .iter()
            .map(|&(name, ty)| nullable(ty).prop_map(move |v| BodyEntry::Attr(name, v))),
    );
    let entry = prop_oneof![
        4 => attr,
        1 => proptest::option::of(pick()).prop_map(BodyEntry::Owner),
        1 => proptest::option::of(pick()).prop_map(BodyEntry::Parent),
    ];
    proptest::collection::vec(entry, 0..4)
}

fn resolve_body(entries: Vec<BodyEntry>, data: &Data) -> Record {
    entries
        .into_iter()
        .map(|e| match e {
            BodyEntry::Attr(name, v) => (name.to_owned(), v),
            BodyEntry::Owner(i) => ("owner_id".to_owned(), key(i, data.users.len(), user_id)),
            BodyEntry::Parent(i) => ("parent_id".to_owned(), key(i, data.items.len(), item_id)),
        })
        .collect()
}

/// What one actor tries besides listing: gets of two items, and a write.
#[derive(Clone, Debug)]
struct Tries {
    gets: [usize; 2],
    write: Write,
}

#[derive(Clone, Debug)]
enum Write {
    Create(Record),
    /// An item (by index) and the body.
    Update(usize, Record),
    Destroy(usize),
}

/// `filter[<path>][<op>]=<values>` on items, through belongs_to.
#[derive(Clone, Debug)]
struct FilterProbe {
    path: &'static str,
    ty: Ty,
    op: &'static str,
    /// As written in the query string (one, or several for `in`).
    values: Vec<String>,
}

const FILTERS: &[(&str, Ty)] = &[
    ("parent.label", Ty::Str),
    ("parent.kind", Ty::Kind),
    ("parent.qty", Ty::Int),
    ("parent.score", Ty::Float),
    ("parent.flag", Ty::Bool),
    ("parent.code", Ty::Uuid),
    ("parent.owner_id", Ty::Uuid),
    ("parent.happened_at", Ty::Datetime),
    ("parent.day", Ty::Date),
    ("parent.tags", Ty::Arr(Elem::Str)),
    ("parent.nums", Ty::Arr(Elem::Int)),
    ("parent.parent.label", Ty::Str),
    ("parent.owner.role", Ty::Role),
    ("owner.username", Ty::Str),
    ("owner.role", Ty::Role),
    ("owner.level", Ty::Int),
    ("owner.vip", Ty::Bool),
    ("owner.birthday", Ty::Date),
    ("owner.team_id", Ty::Uuid),
    ("owner.team.name", Ty::Str),
    ("owner.team.rank", Ty::Int),
];

fn filter_ops(ty: Ty) -> &'static [&'static str] {
    match ty {
        Ty::Str | Ty::Kind | Ty::Role => &[
            "eq",
            "ne",
            "in",
            "lt",
            "lte",
            "gt",
            "gte",
            "contains",
            "starts_with",
            "is_nil",
        ],
        Ty::Int | Ty::Float | Ty::Uuid | Ty::Date | Ty::Datetime => {
            &["eq", "ne", "in", "lt", "lte", "gt", "gte", "is_nil"]
        }
        Ty::Bool => &["eq", "ne", "in", "is_nil"],
        _ => &["contains", "is_nil"],
    }
}

/// Query-string values for a filter on a field of `ty`.
fn filter_values(ty: Ty) -> Vec<String> {
    let owned = |pool: &[&str]| pool.iter().map(|s| (*s).to_owned()).collect();
    match ty {
        Ty::Str | Ty::Arr(Elem::Str) => owned(STRINGS),
        Ty::Kind => owned(KINDS),
        Ty::Role => owned(ROLES),
        Ty::Int | Ty::Arr(Elem::Int) => INTS.iter().map(i64::to_string).collect(),
        Ty::Float => FLOATS.iter().map(|x| format!("{x:?}")).collect(),
        Ty::Bool => owned(&["true", "false"]),
        Ty::Uuid => uuids(),
        Ty::Date => owned(DATES),
        _ => owned(DATETIMES),
    }
}

fn filter_probe() -> impl Strategy<Value = FilterProbe> {
    (
        select(FILTERS),
        pick(),
        proptest::collection::vec(pick(), 1..4),
        any::<bool>(),
    )
        .prop_map(|((path, ty), op, values, nil)| {
            let ops = filter_ops(ty);
            let op = ops[op.of(ops.len())];
            let pool = filter_values(ty);
            let values = match op {
                "is_nil" => vec![nil.to_string()],
                "in" => values
                    .iter()
                    .map(|i| pool[i.of(pool.len())].clone())
                    .collect(),
                _ => vec![pool[values[0].of(pool.len())].clone()],
            };
            FilterProbe {
                path,
                ty,
                op,
                values,
            }
        })
}

impl FilterProbe {
    fn query(&self) -> String {
        let encoded: Vec<String> = self
            .values
            .iter()
            .map(|v| form_urlencoded::byte_serialize(v.as_bytes()).collect())
            .collect();
        format!("filter[{}][{}]={}", self.path, self.op, encoded.join(","))
    }
}

// ---------------------------------------------------------------------------
// A case

struct Case {
    read: Cond,
    /// More read policies, each checked with lists only: lists are cheap
    /// and test a policy on every row at once.
    more_reads: Vec<Cond>,
    create: Cond,
    update: Cond,
    destroy: Cond,
    data: Data,
    /// One per actor (anonymous, each user, an API key), if any.
    tries: Vec<Option<Tries>>,
    /// Filters of one list: all must hold.
    filters: Vec<FilterProbe>,
}

impl Case {
    /// The policies of `item`, with `read` as the read policy.
    fn policies(&self, read: &Cond, canonical: bool) -> Policies {
        Policies {
            read: read.source(canonical),
            create: self.create.source(canonical),
            update: self.update.source(canonical),
            destroy: self.destroy.source(canonical),
        }
    }

    /// Loads the resources with these policies and checks that each
    /// loaded expression is the generated one with canonical literals.
    fn load(&self, read: &Cond) -> Result<Schema, String> {
        let schema = load(&self.policies(read, false))
            .map_err(|e| format!("the loader rejected a generated policy:\n{e}"))?;
        let item = schema.resource("item").ok_or("no item resource")?;
        for (action, cond, loaded) in [
            ("read", read, &item.policies.read),
            ("create", &self.create, &item.policies.create),
            ("update", &self.update, &item.policies.update),
            ("destroy", &self.destroy, &item.policies.destroy),
        ] {
            let loaded = loaded
                .as_ref()
                .ok_or("a policy went missing")?
                .expr
                .to_string();
            let canonical = cond.source(true);
            let want = policy::parse(&canonical)
                .map_err(|e| format!("{canonical}: {e}"))?
                .to_string();
            if loaded != want {
                return Err(format!(
                    "{action}: loaded as `{loaded}`, canonical form `{want}`"
                ));
            }
        }
        Ok(schema)
    }
}

/// Shows a case as policies and rows, so a shrunk failure reads as a
/// fixture.
impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.policies(&self.read, false);
        writeln!(f, "read    = {}", p.read)?;
        writeln!(f, "create  = {}", p.create)?;
        writeln!(f, "update  = {}", p.update)?;
        writeln!(f, "destroy = {}", p.destroy)?;
        for (i, read) in self.more_reads.iter().enumerate() {
            writeln!(f, "read {} = {}", i + 2, read.source(false))?;
        }
        for (name, rows) in [
            ("team", &self.data.teams),
            ("user", &self.data.users),
            ("item", &self.data.items),
        ] {
            for row in rows {
                let shown: Record = row
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                writeln!(f, "{name} {}", Value::Object(shown))?;
            }
        }
        for (i, t) in self.tries.iter().enumerate() {
            let Some(t) = t else { continue };
            let write = match &t.write {
                Write::Create(body) => format!("create {}", Value::Object(body.clone())),
                Write::Update(item, body) => {
                    format!("update item {item} with {}", Value::Object(body.clone()))
                }
                Write::Destroy(item) => format!("destroy item {item}"),
            };
            writeln!(f, "actor {i}: get items {:?}, {write}", t.gets)?;
        }
        match self.filters.is_empty() {
            false => write!(f, "list ?{}", filter_query(&self.filters)),
            true => Ok(()),
        }
    }
}

/// A case. Shrinking works through the parts in order: first it drops the
/// ones a failure often does not need (they are options), then it
/// simplifies the policies, and last the rows (the slowest to shrink).
fn case() -> impl Strategy<Value = Case> {
    let write = prop_oneof![
        body().prop_map(|b| (None, Some(b))),
        (pick(), body()).prop_map(|(i, b)| (Some(i), Some(b))),
        pick().prop_map(|i| (Some(i), None)),
    ];
    let tries = proptest::option::weighted(0.9, ([pick(), pick()], write));
    (
        proptest::collection::vec(proptest::option::weighted(0.9, cond(false)), MORE_READS),
        proptest::option::weighted(0.9, proptest::collection::vec(filter_probe(), 1..5)),
        proptest::collection::vec(tries, MAX_USERS + 2),
        (cond(false), cond(true), cond(true), cond(true)),
        data(),
    )
        .prop_map(
            |(more_reads, filter, tries, (read, create, update, destroy), data)| {
                let n = data.items.len();
                let tries = tries
                    .into_iter()
                    .map(|t| {
                        t.map(|(gets, write)| Tries {
                            gets: gets.map(|i| i.of(n)),
                            write: match write {
                                (None, body) => {
                                    Write::Create(resolve_body(body.unwrap_or_default(), &data))
                                }
                                (Some(item), Some(body)) => {
                                    Write::Update(item.of(n), resolve_body(body, &data))
                                }
                                (Some(item), None) => Write::Destroy(item.of(n)),
                            },
                        })
                    })
                    .collect();
                Case {
                    read,
                    more_reads: more_reads.into_iter().flatten().collect(),
                    create,
                    update,
                    destroy,
                    data,
                    tries,
                    filters: filter.unwrap_or_default(),
                }
            },
        )
}

// ---------------------------------------------------------------------------
// The oracle

/// What the reference evaluator says about the rows of `data`.
struct Oracle<'a> {
    schema: &'a Schema,
    data: &'a Data,
}

impl Oracle<'_> {
    /// Whether `expr` holds for `record` of `resource`.
    fn holds(&self, expr: &Expr, resource: &str, actor: &Value, record: &Value) -> bool {
        let related = |resource: &str, id: &str| self.data.get(resource, id);
        let ctx = EvalContext {
            schema: self.schema,
            resource: self
                .schema
                .resource(resource)
                .unwrap_or_else(|| panic!("no resource {resource}")),
            actor,
            record,
            related: &related,
        };
        eval(expr, &ctx)
    }

    /// Whether `policy` allows it; a missing policy means admins only.
    fn allows(
        &self,
        policy: Option<&Policy>,
        resource: &str,
        actor: &Value,
        record: &Value,
    ) -> bool {
        match policy {
            Some(p) => self.holds(&p.expr, resource, actor, record),
            None => actor.get("role").and_then(Value::as_str) == Some("admin"),
        }
    }

    fn readable(&self, resource: &str, actor: &Value, record: &Value) -> bool {
        let policies = &self
            .schema
            .resource(resource)
            .unwrap_or_else(|| panic!("no resource {resource}"))
            .policies;
        self.allows(policies.read.as_ref(), resource, actor, record)
    }

    fn item_policy(&self, action: &str) -> Option<&Policy> {
        let p = &self.schema.resource("item")?.policies;
        match action {
            "create" => p.create.as_ref(),
            "update" => p.update.as_ref(),
            _ => p.destroy.as_ref(),
        }
    }

    /// Every `belongs_to` key the body sets names a record the actor may
    /// read (the engine answers 422 otherwise).
    fn references_readable(&self, actor: &Value, body: &Record) -> bool {
        [("owner_id", "user"), ("parent_id", "item")]
            .iter()
            .all(|(column, target)| match body.get(*column) {
                Some(Value::String(id)) => {
                    let record = self.data.get(target, id);
                    !record.is_null() && self.readable(target, actor, &record)
                }
                _ => true,
            })
    }

    /// Whether an item passes the filter: every record on the way is
    /// readable, and the last one's field satisfies the operator.
    fn passes(&self, f: &FilterProbe, actor: &Value, item: &Record) -> bool {
        let mut hops: Vec<&str> = f.path.split('.').collect();
        let field = hops.pop().unwrap_or_default();
        let mut resource = "item";
        let mut current = Value::Object(item.clone());
        for hop in hops {
            let target = match (resource, hop) {
                ("item", "parent") => "item",
                ("item", "owner") => "user",
                _ => "team",
            };
            let Some(id) = current.get(format!("{hop}_id")).and_then(Value::as_str) else {
                return false;
            };
            let next = self.data.get(target, id);
            if next.is_null() || !self.readable(target, actor, &next) {
                return false;
            }
            current = next;
            resource = target;
        }
        let path = Expr::Path(Path {
            root: Root::Record,
            fields: vec![field.to_owned()],
            span: 0..0,
        });
        let kind = filter_kind(f.ty);
        let parsed = |text: &str| {
            parse_scalar(kind, text)
                .map(|v| literal(&v))
                .unwrap_or_else(|e| panic!("filter value {text:?}: {e}"))
        };
        let compare = |op: BinOp, lhs: Expr, rhs: Expr| Expr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        };
        let first = &f.values[0];
        let expr = match f.op {
            "eq" => compare(BinOp::Eq, path, parsed(first)),
            "ne" => compare(BinOp::Ne, path, parsed(first)),
            "lt" => compare(BinOp::Lt, path, parsed(first)),
            "lte" => compare(BinOp::Le, path, parsed(first)),
            "gt" => compare(BinOp::Gt, path, parsed(first)),
            "gte" => compare(BinOp::Ge, path, parsed(first)),
            "in" => compare(
                BinOp::In,
                path,
                Expr::List(f.values.iter().map(|v| parsed(v)).collect()),
            ),
            "is_nil" if first == "true" => compare(BinOp::Eq, path, Expr::Null),
            "is_nil" => compare(BinOp::Ne, path, Expr::Null),
            "contains" if matches!(f.ty, Ty::Arr(_)) => compare(BinOp::In, parsed(first), path),
            // Substrings are not in the policy language: plain Rust.
            "contains" => {
                return current[field]
                    .as_str()
                    .is_some_and(|s| s.contains(first.as_str()));
            }
            _ => {
                return current[field]
                    .as_str()
                    .is_some_and(|s| s.starts_with(first.as_str()));
            }
        };
        self.holds(&expr, resource, actor, &current)
    }
}

/// The kind a filter value is parsed as (an array's element kind for
/// `contains`).
fn filter_kind(ty: Ty) -> kumo_db::query::Kind {
    use kumo_db::query::Kind;
    match ty {
        Ty::Int | Ty::Arr(Elem::Int) => Kind::Integer,
        Ty::Float => Kind::Float,
        Ty::Bool => Kind::Boolean,
        Ty::Uuid => Kind::Uuid,
        Ty::Date => Kind::Date,
        Ty::Datetime => Kind::Datetime,
        _ => Kind::Text,
    }
}

/// A canonical JSON value as a policy literal.
fn literal(v: &Value) -> Expr {
    match v {
        Value::Bool(b) => Expr::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Expr::Float(n.as_f64().unwrap_or_default()), Expr::Int),
        Value::String(s) => Expr::Str(s.clone()),
        _ => Expr::Null,
    }
}

/// An item as a create stores it, before the id and timestamps are known:
/// the body over the defaults.
fn created(body: &Record) -> Record {
    let mut row: Record = ITEM_COLUMNS
        .iter()
        .map(|(name, _)| ((*name).to_owned(), Value::Null))
        .collect();
    row.insert("kind".into(), json!("alpha"));
    row.insert("flag".into(), json!(false));
    for column in ["secret", "owner_id", "parent_id"] {
        row.insert(column.into(), Value::Null);
    }
    row.extend(body.clone());
    row
}

/// The actors of a case, named: anonymous, each user, an API key acting
/// for the first user. The evaluator sees each as [`Actor::value`].
fn actors(data: &Data) -> Vec<(String, Actor)> {
    let mut out = vec![("anonymous".to_owned(), Actor::anonymous())];
    for (i, user) in data.users.iter().enumerate() {
        let role = user["role"].as_str().unwrap_or_default();
        out.push((format!("user {i} ({role})"), Actor::user(user.clone())));
    }
    let key = Actor::api_key(uuid::Uuid::from_u128(1), data.users[0].clone());
    out.push(("API key of user 0".to_owned(), key));
    out
}

// ---------------------------------------------------------------------------
// The engine side

/// A database migrated for the resources, which any policies fit: policies
/// don't change the tables.
struct Env {
    db: TestDb,
    tables: Vec<Table>,
    stats: RefCell<Stats>,
}

/// How often the checks saw each kind of answer, printed at the end so a
/// change that makes the generator trivial (every list empty, every write
/// refused) shows.
#[derive(Default)]
struct Stats {
    /// Cases checked, shrinking included.
    cases: usize,
    /// Lists that returned none, some, or all of the items.
    none: usize,
    some: usize,
    all: usize,
    /// Filtered lists that matched at least one item.
    filter_hits: usize,
    filters: usize,
    /// Write outcomes by operation.
    writes: BTreeMap<(&'static str, String), usize>,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cases checked; lists returning no/some/all items: {}/{}/{}; filtered lists matching: {} of {}; writes:",
            self.cases, self.none, self.some, self.all, self.filter_hits, self.filters
        )?;
        for ((op, outcome), n) in &self.writes {
            write!(f, " {op} {outcome} {n},")?;
        }
        Ok(())
    }
}

impl Env {
    async fn new(dialect: Dialect) -> Env {
        let db = TestDb::new(dialect).await;
        let always = Policies {
            read: "true".into(),
            create: "true".into(),
            update: "true".into(),
            destroy: "true".into(),
        };
        let schema = load(&always).unwrap_or_else(|e| panic!("{e}"));
        let migration = Plan::new(Vec::new(), &schema).migration("20260101000000_initial".into());
        runner::migrate(&db.db, std::slice::from_ref(&migration))
            .await
            .unwrap_or_else(|e| panic!("{}: migrating: {e}", db.name()));
        Env {
            db,
            tables: table::lower(&schema),
            stats: RefCell::default(),
        }
    }

    /// `INSERT` statements for the rows, in one string.
    fn insert(&self, table: &str, rows: &[Record]) -> String {
        if rows.is_empty() {
            return String::new();
        }
        let t = self
            .tables
            .iter()
            .find(|t| t.name == table)
            .unwrap_or_else(|| panic!("no table {table}"));
        let names: Vec<String> = t.columns.iter().map(|c| ident(&c.name)).collect();
        let values: Vec<String> = rows
            .iter()
            .map(|row| {
                let cells: Vec<String> = t
                    .columns
                    .iter()
                    .map(|c| {
                        let v = row.get(&c.name).unwrap_or(&Value::Null);
                        value_sql(v, &c.ty, self.db.dialect())
                    })
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {};\n",
            ident(table),
            names.join(", "),
            values.join(", ")
        )
    }

    /// Replaces every row with `data`'s.
    async fn reset(&self, data: &Data) -> Result<(), String> {
        let mut sql = String::from("DELETE FROM items; DELETE FROM users; DELETE FROM teams;\n");
        sql.push_str(&self.insert("teams", &data.teams));
        sql.push_str(&self.insert("users", &data.users));
        sql.push_str(&self.insert("items", &data.items));
        self.db
            .try_exec(&sql)
            .await
            .map_err(|e| format!("writing the rows: {e}\n{sql}"))
    }

    fn count(&self, op: &'static str, outcome: Outcome) {
        *self
            .stats
            .borrow_mut()
            .writes
            .entry((op, format!("{outcome:?}")))
            .or_default() += 1;
    }

    /// Puts the items back after a write changed them.
    async fn reset_items(&self, data: &Data) -> Result<(), String> {
        let sql = format!("DELETE FROM items;\n{}", self.insert("items", &data.items));
        self.db
            .try_exec(&sql)
            .await
            .map_err(|e| format!("restoring the items: {e}"))
    }
}

/// How the engine answered a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    NotFound,
    /// 403, or 401 for an anonymous actor.
    Denied,
    /// 422: here, a reference to a record the actor may not read.
    Invalid,
}

fn outcome<T>(result: Result<T, QueryError>) -> Result<Outcome, String> {
    match result {
        Ok(_) => Ok(Outcome::Ok),
        Err(QueryError::NotFound) => Ok(Outcome::NotFound),
        Err(QueryError::Forbidden(_) | QueryError::Unauthenticated) => Ok(Outcome::Denied),
        Err(QueryError::Invalid { .. }) => Ok(Outcome::Invalid),
        Err(e) => Err(format!("unexpected error ({}): {e}", e.code())),
    }
}

fn ids<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<String> {
    let mut out: Vec<String> = records
        .into_iter()
        .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// The id of an included belongs_to record, or `None` for `null`.
fn included_id(row: &Record, name: &str) -> Result<Option<String>, String> {
    match row.get(name) {
        Some(Value::Null) => Ok(None),
        Some(Value::Object(r)) => Ok(r.get("id").and_then(Value::as_str).map(str::to_owned)),
        other => Err(format!("include {name}: {other:?}")),
    }
}

async fn check_case(env: &Env, case: &Case) -> Result<(), String> {
    let schema = case.load(&case.read)?;
    env.stats.borrow_mut().cases += 1;
    env.reset(&case.data).await?;
    let engine = Engine::new(
        env.db.db.clone(),
        schema.clone(),
        CursorKey::new(b"policy properties"),
    );
    let entry = engine.catalog.get("item").ok_or("no item entry")?;
    let oracle = Oracle {
        schema: &schema,
        data: &case.data,
    };
    let actors = actors(&case.data);
    for (i, (who, actor)) in actors.iter().enumerate() {
        let check = async {
            let tries = case.tries.get(i).and_then(Option::as_ref);
            let gets = tries.map_or(&[][..], |t| &t.gets[..]);
            check_reads(env, &engine, entry, &oracle, actor, gets).await?;
            if !case.filters.is_empty() {
                check_filter(env, &engine, entry, &oracle, actor, &case.filters).await?;
            }
            match tries {
                Some(t) => check_write(env, &engine, entry, &oracle, actor, &t.write).await,
                None => Ok(()),
            }
        };
        check.await.map_err(|e| format!("as {who}: {e}"))?;
    }
    for (n, read) in case.more_reads.iter().enumerate() {
        let schema = case.load(read)?;
        let engine = Engine::new(env.db.db.clone(), schema.clone(), CursorKey::new(b"k"));
        let entry = engine.catalog.get("item").ok_or("no item entry")?;
        let oracle = Oracle {
            schema: &schema,
            data: &case.data,
        };
        for (who, actor) in &actors {
            check_reads(env, &engine, entry, &oracle, actor, &[])
                .await
                .map_err(|e| format!("read {} as {who}: {e}", n + 2))?;
        }
    }
    Ok(())
}

/// A list returns exactly the readable items, and a get of each sampled
/// item finds it exactly when it is readable.
async fn check_reads(
    env: &Env,
    engine: &Engine,
    entry: &Entry,
    oracle: &Oracle<'_>,
    caller: &Actor,
    gets: &[usize],
) -> Result<(), String> {
    let actor = &caller.value();
    let items = &oracle.data.items;
    let readable: Vec<&Record> = items
        .iter()
        .filter(|r| oracle.readable("item", actor, &Value::Object((*r).clone())))
        .collect();
    let want = ids(readable.iter().copied());
    let req = parse_list(&engine.catalog, entry, "page[size]=250").map_err(|e| e.to_string())?;
    let page = engine
        .list(caller, entry, &req)
        .await
        .map_err(|e| format!("list: {e}"))?;
    let got = ids(&page.data);
    if got != want {
        let disputed: Vec<String> = items
            .iter()
            .filter(|r| {
                let id = r["id"].as_str().unwrap_or_default();
                got.iter().any(|g| g == id) != want.iter().any(|w| w == id)
            })
            .map(|r| Value::Object(r.clone()).to_string())
            .collect();
        return Err(format!(
            "list: got {got:?}, the evaluator says {want:?}; disputed:\n{}",
            disputed.join("\n")
        ));
    }
    {
        let mut stats = env.stats.borrow_mut();
        match want.len() {
            0 => stats.none += 1,
            n if n == items.len() => stats.all += 1,
            _ => stats.some += 1,
        }
    }
    for &i in gets {
        let id = items[i]["id"].as_str().unwrap_or_default();
        let expected = if want.iter().any(|w| w == id) {
            Outcome::Ok
        } else {
            Outcome::NotFound
        };
        let got = outcome(engine.get(caller, entry, id, &View::default()).await)?;
        if got != expected {
            return Err(format!(
                "get item {i}: got {got:?}, the evaluator says {expected:?}"
            ));
        }
    }
    Ok(())
}

/// The query string of several filters.
fn filter_query(filters: &[FilterProbe]) -> String {
    filters
        .iter()
        .map(FilterProbe::query)
        .collect::<Vec<_>>()
        .join("&")
}

/// A filtered list with includes and a count.
async fn check_filter(
    env: &Env,
    engine: &Engine,
    entry: &Entry,
    oracle: &Oracle<'_>,
    caller: &Actor,
    filters: &[FilterProbe],
) -> Result<(), String> {
    let actor = &caller.value();
    let query = format!(
        "page[size]=250&page[count]=true&include=owner,parent,children&{}",
        filter_query(filters)
    );
    let req = parse_list(&engine.catalog, entry, &query).map_err(|e| format!("{query}: {e}"))?;
    let page = engine
        .list(caller, entry, &req)
        .await
        .map_err(|e| format!("list ?{query}: {e}"))?;
    let readable = |resource: &str, id: Option<&str>| -> Option<String> {
        let id = id?;
        let record = oracle.data.get(resource, id);
        (!record.is_null() && oracle.readable(resource, actor, &record)).then(|| id.to_owned())
    };
    let want: Vec<&Record> = oracle
        .data
        .items
        .iter()
        .filter(|r| {
            readable("item", r["id"].as_str()).is_some()
                && filters.iter().all(|f| oracle.passes(f, actor, r))
        })
        .collect();
    let (got_ids, want_ids) = (ids(&page.data), ids(want.iter().copied()));
    if got_ids != want_ids {
        return Err(format!(
            "list ?{query}: got {got_ids:?}, the evaluator says {want_ids:?}"
        ));
    }
    {
        let mut stats = env.stats.borrow_mut();
        stats.filters += 1;
        stats.filter_hits += usize::from(!want_ids.is_empty());
    }
    if page.total != Some(want_ids.len() as i64) {
        return Err(format!(
            "list ?{query}: total {:?}, the evaluator says {}",
            page.total,
            want_ids.len()
        ));
    }
    for row in &page.data {
        let id = row["id"].as_str().unwrap_or_default();
        let stored = oracle.data.get("item", id);
        let owner = readable("user", stored["owner_id"].as_str());
        let parent = readable("item", stored["parent_id"].as_str());
        let children = ids(oracle.data.items.iter().filter(|c| {
            c["parent_id"].as_str() == Some(id) && readable("item", c["id"].as_str()).is_some()
        }));
        let got_children = match row.get("children") {
            Some(Value::Array(list)) => ids(list.iter().filter_map(Value::as_object)),
            other => return Err(format!("include children: {other:?}")),
        };
        let got = (
            included_id(row, "owner")?,
            included_id(row, "parent")?,
            got_children,
        );
        if got != (owner.clone(), parent.clone(), children.clone()) {
            return Err(format!(
                "list ?{query}: item {id} includes (owner, parent, children) {got:?}, the evaluator says {:?}",
                (owner, parent, children)
            ));
        }
    }
    Ok(())
}

/// A write is accepted or refused as the evaluator says; an accepted one is
/// undone.
async fn check_write(
    env: &Env,
    engine: &Engine,
    entry: &Entry,
    oracle: &Oracle<'_>,
    caller: &Actor,
    write: &Write,
) -> Result<(), String> {
    let actor = &caller.value();
    let view = View::default();
    let data = oracle.data;
    let (op, got) = match write {
        // The policy on the new record; its references readable.
        Write::Create(body) => {
            let new = Value::Object(created(body));
            let allowed = oracle.allows(oracle.item_policy("create"), "item", actor, &new);
            let references = oracle.references_readable(actor, body);
            let body = Value::Object(body.clone());
            let got = outcome(engine.create(caller, entry, &body, &view).await)?;
            let fine = match (allowed, references) {
                (true, true) => got == Outcome::Ok,
                (true, false) => got == Outcome::Invalid,
                (false, true) => got == Outcome::Denied,
                // Either refusal: which is checked first is not specified.
                (false, false) => matches!(got, Outcome::Denied | Outcome::Invalid),
            };
            if !fine {
                return Err(format!(
                    "create {body}: got {got:?}; the evaluator says the policy {}, references readable: {references}",
                    if allowed { "allows it" } else { "refuses it" }
                ));
            }
            ("create", got)
        }
        // Readable, then the policy on the stored record, references
        // readable, then the policy on the updated record.
        Write::Update(i, body) => {
            let stored = &data.items[*i];
            let before = Value::Object(stored.clone());
            let mut updated = stored.clone();
            updated.extend(body.clone());
            let mut after_data = data.clone();
            after_data.items[*i] = updated.clone();
            let after = Oracle {
                schema: oracle.schema,
                data: &after_data,
            };
            let expected = if !oracle.readable("item", actor, &before) {
                Outcome::NotFound
            } else if !oracle.allows(oracle.item_policy("update"), "item", actor, &before) {
                Outcome::Denied
            } else if !oracle.references_readable(actor, body) {
                Outcome::Invalid
            } else if !after.allows(
                after.item_policy("update"),
                "item",
                actor,
                &Value::Object(updated),
            ) {
                Outcome::Denied
            } else {
                Outcome::Ok
            };
            let id = stored["id"].as_str().unwrap_or_default();
            let body = Value::Object(body.clone());
            let got = outcome(engine.update(caller, entry, id, &body, &view).await)?;
            if got != expected {
                return Err(format!(
                    "update item {i} with {body}: got {got:?}, the evaluator says {expected:?}"
                ));
            }
            ("update", got)
        }
        // Readable, then the policy.
        Write::Destroy(i) => {
            let stored = &data.items[*i];
            let record = Value::Object(stored.clone());
            let expected = if !oracle.readable("item", actor, &record) {
                Outcome::NotFound
            } else if !oracle.allows(oracle.item_policy("destroy"), "item", actor, &record) {
                Outcome::Denied
            } else {
                Outcome::Ok
            };
            let id = stored["id"].as_str().unwrap_or_default();
            let got = outcome(engine.destroy(caller, entry, id, &view).await)?;
            if got != expected {
                return Err(format!(
                    "destroy item {i}: got {got:?}, the evaluator says {expected:?}"
                ));
            }
            ("destroy", got)
        }
    };
    env.count(op, got);
    if got == Outcome::Ok {
        env.reset_items(data).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running

fn config() -> Config {
    let env = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Config {
        cases: env("PROPTEST_CASES", 256),
        // Shrinking is bounded by time rather than steps: steps take from
        // milliseconds to a tenth of a second.
        max_shrink_iters: env("PROPTEST_MAX_SHRINK_ITERS", 100_000),
        max_shrink_time: env("PROPTEST_MAX_SHRINK_TIME", 60_000),
        // Regression seeds go to tests/proptest-regressions/policy_props.txt.
        source_file: Some(file!()),
        ..Config::default()
    }
}

fn compiled_policies_match_the_evaluator(dialect: Dialect) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let env = runtime.block_on(Env::new(dialect));
    let mut runner = TestRunner::new(config());
    let started = std::time::Instant::now();
    let result = runner.run(&case(), |case| {
        runtime
            .block_on(check_case(&env, &case))
            .map_err(TestCaseError::fail)
    });
    eprintln!(
        "{}: {} cases in {:.1?}; {}",
        dialect.name(),
        config().cases,
        started.elapsed(),
        env.stats.borrow()
    );
    runtime.block_on(env.db.cleanup());
    if let Err(e) = result {
        panic!("{}: {e}", dialect.name());
    }
}

#[test]
fn compiled_policies_match_the_evaluator_on_postgres() {
    compiled_policies_match_the_evaluator(Dialect::Postgres);
}

#[test]
fn compiled_policies_match_the_evaluator_on_sqlite() {
    compiled_policies_match_the_evaluator(Dialect::Sqlite);
}

// ---------------------------------------------------------------------------
// Regressions

/// Found by the property test: SQLite compared an integer with a float
/// exactly, and both databases did so inside arrays (jsonb containment,
/// `json_each`), where docs/policies.md compares them as 64-bit floats:
/// 2^53 + 1 equals 2^53, and 2^63 - 1 equals 2^63. Two integers still
/// compare exactly.
async fn an_integer_and_a_float_compare_as_64_bit_floats(dialect: Dialect) {
    let env = Env::new(dialect).await;
    let row = |i: usize, qty: i64, score: f64, nums: Value, ratios: Value| {
        let mut row = object(json!({"qty": qty, "nums": nums, "ratios": ratios}));
        row.insert("score".into(), float(score));
        let at = json!("2026-01-01T00:00:00.000Z");
        stamped(row, item_id(i), (at.clone(), at))
    };
    let data = Data {
        teams: Vec::new(),
        users: Vec::new(),
        items: vec![
            row(
                0,
                9_007_199_254_740_993,
                9_007_199_254_740_992.0,
                json!([9_007_199_254_740_993_i64]),
                json!([9_007_199_254_740_992.0]),
            ),
            row(
                1,
                i64::MAX,
                9.223_372_036_854_776e18,
                json!([i64::MAX]),
                json!([9.223_372_036_854_776e18]),
            ),
            row(2, 1, 2.5, json!([2]), json!([0.5])),
        ],
    };
    env.reset(&data).await.unwrap_or_else(|e| panic!("{e}"));
    let cases: &[(&str, &[usize])] = &[
        ("record.qty == record.score", &[0, 1]),
        ("record.qty != record.score", &[2]),
        ("record.qty < record.score", &[2]),
        ("record.qty >= record.score", &[0, 1]),
        ("record.qty == 9007199254740992.0", &[0]),
        ("record.score == 9007199254740993", &[0]),
        ("record.qty > 9.223372036854776e18", &[]),
        ("record.qty >= 9.223372036854776e18", &[1]),
        ("record.qty in [9007199254740992.0, 2.0]", &[0]),
        ("record.score in record.nums", &[0, 1]),
        ("record.qty in record.ratios", &[0, 1]),
        ("9007199254740992.0 in record.nums", &[0]),
        ("9223372036854775807 in record.ratios", &[1]),
        // Two integers: exactly.
        ("record.qty == 9007199254740992", &[]),
        ("record.qty in record.nums", &[0, 1]),
        ("9007199254740992 in record.nums", &[]),
    ];
    let caller = Actor::anonymous();
    let actor = caller.value();
    for (read, want) in cases {
        let schema = load(&Policies {
            read: (*read).into(),
            create: "true".into(),
            update: "true".into(),
            destroy: "true".into(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let oracle = Oracle {
            schema: &schema,
            data: &data,
        };
        let want = ids(want.iter().map(|&i| &data.items[i]));
        let evaluated = ids(data
            .items
            .iter()
            .filter(|r| oracle.readable("item", &actor, &Value::Object((*r).clone()))));
        assert_eq!(evaluated, want, "the evaluator on `{read}`");
        let engine = Engine::new(env.db.db.clone(), schema.clone(), CursorKey::new(b"k"));
        let entry = engine.catalog.get("item").expect("item");
        if let Err(e) = check_reads(&env, &engine, entry, &oracle, &caller, &[0, 1, 2]).await {
            panic!("{}: `{read}`: {e}", dialect.name());
        }
    }
    env.db.cleanup().await;
}

#[tokio::test]
async fn an_integer_and_a_float_compare_as_64_bit_floats_on_postgres() {
    an_integer_and_a_float_compare_as_64_bit_floats(Dialect::Postgres).await;
}

#[tokio::test]
async fn an_integer_and_a_float_compare_as_64_bit_floats_on_sqlite() {
    an_integer_and_a_float_compare_as_64_bit_floats(Dialect::Sqlite).await;
}

// ---------------------------------------------------------------------------
// The attacker

/// Items are public when flagged, otherwise only their owner's; users see
/// only themselves (the built-in policy); teams need a rank.
const OWNED: &str = "actor.id == record.owner_id";

const ALICE: usize = 0;
const MALLORY: usize = 1;

/// Alice's public `V` (whose parent is `H`), her hidden `H` (whose parent is
/// `V`), Mallory's own `M` (whose parent is `H`, set while `H` was public),
/// and two more public items of Alice's, `P` (no parent) and `Q` (parent
/// `V`). Alice is in a team Mallory may not read.
const V: usize = 0;
const H: usize = 1;
const M: usize = 2;
const P: usize = 3;
const Q: usize = 4;

fn attack_data() -> Data {
    let stamp = |at: &str| (json!(at), json!(at));
    let team = |i: usize, name: &str, rank: Value| {
        let row = json!({"name": name, "rank": rank});
        stamped(object(row), team_id(i), stamp("2026-01-01T00:00:00.000Z"))
    };
    let user = |i: usize, name: &str, team: usize| {
        let row = json!({
            "email": format!("{name}@kumo.test"), "username": name, "role": "user",
            "display_name": name, "team_id": team_id(team), "level": 3,
        });
        stamped(object(row), user_id(i), stamp("2026-01-01T00:00:00.000Z"))
    };
    let item =
        |i: usize, owner: usize, flag: bool, label: &str, qty: i64, parent: Option<usize>| {
            let row = json!({
                "owner_id": user_id(owner), "flag": flag, "label": label, "qty": qty,
                "kind": "beta", "parent_id": parent.map(item_id),
            });
            let at = format!("2026-01-0{}T00:00:00.000Z", i + 1);
            stamped(object(row), item_id(i), stamp(&at))
        };
    let mut hidden = item(H, ALICE, false, "s3cret", 42, Some(V));
    hidden.extend(object(json!({
        "body": "the secret", "score": 2.5, "kind": "zeta", "code": uuids()[1],
        "happened_at": "2026-01-02T03:04:05.500Z", "day": "2026-01-02",
        "tags": ["needle"], "nums": [42], "meta": {"k": "v"}, "secret": "sensitive",
        "watchers": [user_id(MALLORY)],
    })));
    Data {
        teams: vec![team(0, "Hidden", Value::Null), team(1, "Visible", json!(5))],
        users: vec![user(ALICE, "alice", 0), user(MALLORY, "mallory", 1)],
        items: vec![
            item(V, ALICE, true, "visible", 1, Some(H)),
            hidden,
            item(M, MALLORY, false, "mine", 3, Some(H)),
            item(P, ALICE, true, "a", 7, None),
            item(Q, ALICE, true, "z", -7, Some(V)),
        ],
    }
}

fn object(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        _ => Record::new(),
    }
}

/// The same, but `H` holds other values in every field but its owner, flag
/// and parent.
fn decoy_data() -> Data {
    let mut data = attack_data();
    data.items[H].extend(object(json!({
        "label": "decoy", "body": null, "qty": -1, "score": null, "kind": "alpha",
        "code": uuids()[0], "happened_at": "1970-01-01T00:00:00.000Z", "day": null,
        "tags": ["other"], "nums": [], "meta": null, "secret": "other", "watchers": [],
    })));
    data
}

/// The same without `H`: the keys to it are null, as its deletion leaves
/// them (`on_delete = "nullify"`).
fn absent_data() -> Data {
    let mut data = attack_data();
    let hidden = item_id(H);
    data.items.remove(H);
    for row in &mut data.items {
        if row["parent_id"] == json!(hidden) {
            row.insert("parent_id".into(), Value::Null);
        }
    }
    data
}

/// List queries an attacker might try on items.
fn list_probes() -> Vec<String> {
    let h = item_id(H);
    let mallory = user_id(MALLORY);
    let code = &uuids()[1];
    let mut probes: Vec<String> = [
        "",
        // The hidden item's own fields.
        "filter[label]=s3cret",
        "filter[label][ne]=visible",
        "filter[label][starts_with]=s3",
        "filter[label][contains]=cre",
        "filter[label][gte]=s",
        "filter[label][lt]=t",
        "filter[label][in]=s3cret,decoy",
        "filter[qty]=42",
        "filter[qty][gt]=41",
        "filter[qty][lte]=-1",
        "filter[score][lt]=3",
        "filter[kind]=zeta",
        "filter[happened_at][gte]=2026-01-02T00:00:00Z",
        "filter[day]=2026-01-02",
        "filter[tags][contains]=needle",
        "filter[nums][contains]=42",
        "filter[body][is_nil]=false",
        "filter[score][is_nil]=true",
        // Through relationships to it.
        "filter[parent.label]=s3cret",
        "filter[parent.label][ne]=nothing",
        "filter[parent.label][starts_with]=s",
        "filter[parent.label][is_nil]=true",
        "filter[parent.label][is_nil]=false",
        "filter[parent.qty][gte]=0",
        "filter[parent.qty][lt]=0",
        "filter[parent.kind]=zeta",
        "filter[parent.tags][contains]=needle",
        "filter[parent.id][is_nil]=false",
        "filter[parent.parent.label]=visible",
        "filter[parent.owner_id][is_nil]=false",
        "filter[parent.owner.username]=alice",
        // Through relationships to hidden users and teams.
        "filter[owner.username]=alice",
        "filter[owner.email][starts_with]=alice",
        "filter[owner.display_name][ne]=x",
        "filter[owner.team.name]=Hidden",
        "filter[owner.team.rank][is_nil]=true",
        // Sensitive fields are not fields at all (400).
        "filter[secret]=sensitive",
        "filter[parent.secret]=sensitive",
        "filter[owner.password_hash][is_nil]=false",
        "sort=secret",
        // Sorts, walked one row at a time with cursors, and offsets.
        "sort=label&page[size]=1",
        "sort=-qty,label&page[size]=1",
        "sort=happened_at&page[size]=1",
        "sort=-kind,label&page[size]=2",
        "sort=score&page[size]=1",
        "sort=-day&page[size]=1",
        "sort=-inserted_at&page[size]=1",
        "page[count]=true",
        "page[offset]=1&page[size]=1&page[count]=true",
        "page[offset]=2&page[size]=2&sort=-label",
        // Includes.
        "include=parent,owner,children",
        "include=children&sort=-label",
        "filter[parent.label]=s3cret&include=parent&page[count]=true",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    probes.push(format!("filter[code]={code}"));
    probes.push(format!("filter[id]={h}"));
    probes.push(format!("filter[watchers][contains]={mallory}"));
    probes
}

/// An answer as the attacker sees it.
fn answer<T: serde::Serialize>(result: Result<T, QueryError>) -> Value {
    match result {
        Ok(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        Err(e) => json!({"error": e.code(), "message": e.to_string(), "fields": e.fields()}),
    }
}

/// A list and every page after it (and the one before the last), cursors
/// included.
async fn walk(engine: &Engine, entry: &Entry, caller: &Actor, query: &str) -> Value {
    let page_json = |p: &kumo_db::query::ListPage| json!({"data": p.data, "next": p.next, "prev": p.prev, "total": p.total});
    let mut pages = Vec::new();
    let mut query = query.to_owned();
    for _ in 0..10 {
        let req = match parse_list(&engine.catalog, entry, &query) {
            Ok(req) => req,
            Err(e) => return answer::<()>(Err(e)),
        };
        let page = match engine.list(caller, entry, &req).await {
            Ok(page) => page,
            Err(e) => return answer::<()>(Err(e)),
        };
        pages.push(page_json(&page));
        let base: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with("page[after]") && !p.starts_with("page[before]"))
            .collect();
        let base = base.join("&");
        match (&page.next, &page.prev) {
            (Some(next), _) => query = format!("{base}&page[after]={next}"),
            (None, Some(prev)) => {
                let back = format!("{base}&page[before]={prev}");
                if let Ok(req) = parse_list(&engine.catalog, entry, &back) {
                    pages.push(answer(
                        engine
                            .list(caller, entry, &req)
                            .await
                            .map(|p| page_json(&p)),
                    ));
                }
                break;
            }
            (None, None) => break,
        }
    }
    Value::Array(pages)
}

/// Everything `actor` can find out with the probes, by probe; with
/// `writes`, also by writes that must fail (so not for the owner).
async fn observe(engine: &Engine, caller: &Actor, writes: bool) -> Vec<(String, Value)> {
    let entry = engine.catalog.get("item").expect("item");
    let mut out = Vec::new();
    for query in list_probes() {
        out.push((
            format!("list ?{query}"),
            walk(engine, entry, caller, &query).await,
        ));
    }
    let view = parse_record_query(&engine.catalog, entry, "include=parent,owner,children")
        .expect("include");
    for i in [V, H, M, Q] {
        let got = engine.get(caller, entry, &item_id(i), &view).await;
        out.push((format!("get item {i}"), answer(got)));
    }
    if !writes {
        return out;
    }
    // Writes that must fail without changing anything: on the hidden item,
    // and pointing at it.
    let h = item_id(H);
    let got = engine
        .update(caller, entry, &h, &json!({"label": "x"}), &view)
        .await;
    out.push(("update H".into(), answer(got)));
    let got = engine.destroy(caller, entry, &h, &view).await;
    out.push(("destroy H".into(), answer(got)));
    let body = json!({"label": "probe", "owner_id": user_id(MALLORY), "parent_id": h});
    out.push((
        "create under H".into(),
        answer(engine.create(caller, entry, &body, &view).await),
    ));
    let body = json!({"parent_id": h});
    let got = engine
        .update(caller, entry, &item_id(M), &body, &view)
        .await;
    out.push(("move M under H".into(), answer(got)));
    out
}

/// `H`'s id read as null wherever it appears as a value.
fn forget_hidden_key(v: Value) -> Value {
    match v {
        Value::String(s) if s == item_id(H) => Value::Null,
        Value::Array(items) => Value::Array(items.into_iter().map(forget_hidden_key).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, forget_hidden_key(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A long answer's start.
fn clip(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(400) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// The probes whose answers differ, by probe.
fn differences(a: &[(String, Value)], b: &[(String, Value)]) -> Vec<String> {
    a.iter()
        .zip(b)
        .filter(|((_, x), (_, y))| x != y)
        .map(|((probe, x), (_, y))| format!("{probe}:\n  {}\n  {}", clip(x), clip(y)))
        .collect()
}

async fn a_hidden_record_leaks_nothing(dialect: Dialect) {
    let env = Env::new(dialect).await;
    let read = "record.flag || actor.id == record.owner_id";
    let schema = load(&Policies {
        read: read.into(),
        create: OWNED.into(),
        update: OWNED.into(),
        destroy: OWNED.into(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(env.db.db.clone(), schema, CursorKey::new(b"attack"));
    let data = attack_data();
    let alice = Actor::user(data.users[ALICE].clone());
    let mallory = Actor::user(data.users[MALLORY].clone());
    let anonymous = Actor::anonymous();

    let mut seen = Vec::new();
    for world in [attack_data(), decoy_data(), absent_data()] {
        env.reset(&world).await.unwrap_or_else(|e| panic!("{e}"));
        let mut by_actor = Vec::new();
        for (actor, writes) in [(&mallory, true), (&anonymous, true), (&alice, false)] {
            by_actor.push(observe(&engine, actor, writes).await);
        }
        seen.push(by_actor);
    }
    let name = dialect.name();
    for (who, i) in [("mallory", 0), ("anonymous", 1)] {
        let secret = &seen[0][i];
        let decoy = &seen[1][i];
        let diff = differences(secret, decoy);
        assert!(
            diff.is_empty(),
            "{name}: {who} can tell what the hidden item holds:\n{}",
            diff.join("\n")
        );
        let normalise = |o: &[(String, Value)]| -> Vec<(String, Value)> {
            o.iter()
                .map(|(p, v)| (p.clone(), forget_hidden_key(v.clone())))
                .collect()
        };
        let diff = differences(&normalise(secret), &normalise(&seen[2][i]));
        assert!(
            diff.is_empty(),
            "{name}: {who} can tell that the hidden item exists:\n{}",
            diff.join("\n")
        );
    }
    // The owner, who may read it, tells all three apart with the same
    // probes: they are not blind.
    let alice_sees = |a: usize, b: usize| -> Vec<String> {
        seen[a][2]
            .iter()
            .zip(&seen[b][2])
            .filter(|((_, x), (_, y))| x != y)
            .map(|((probe, _), _)| probe.clone())
            .collect()
    };
    for probe in [
        "list ?filter[label]=s3cret",
        "list ?filter[qty][gt]=41",
        "list ?filter[parent.label]=s3cret",
        "list ?filter[parent.tags][contains]=needle",
        "list ?sort=label&page[size]=1",
        "list ?include=parent,owner,children",
        "get item 0",
    ] {
        for (a, b) in [(0, 1), (0, 2)] {
            assert!(
                alice_sees(a, b).iter().any(|p| p == probe),
                "{name}: `{probe}` does not tell world {a} from world {b} even for the owner"
            );
        }
    }
    env.db.cleanup().await;
}

#[tokio::test]
async fn a_hidden_record_leaks_nothing_on_postgres() {
    a_hidden_record_leaks_nothing(Dialect::Postgres).await;
}

#[tokio::test]
async fn a_hidden_record_leaks_nothing_on_sqlite() {
    a_hidden_record_leaks_nothing(Dialect::Sqlite).await;
}
