//! Policies compiled to SQL decide what the reference evaluator
//! (`kumo_core::policy::eval`) decides for **every** expression of a
//! bounded grammar, every actor kind and every row of a table holding every
//! combination of a small value domain (docs/policies.md, "Testing").
//! [`policy_props`](super::policy_props) samples a much larger space at
//! random; this test leaves nothing out of a small one.
//!
//! **The rows.** `items` holds one row per combination of
//! `n` (integer) ∈ {NULL, 0, 1, 2}, `x` (float) ∈ {NULL, 1.0, 1.5},
//! `s` (string) ∈ {NULL, "B", "a"}, `b` (boolean) ∈ {NULL, false, true} and
//! `owner` (a `belongs_to` user) ∈ {NULL, alice, bob}: 324 rows. Against the
//! literals below each field takes a value below, equal to and above it
//! (`B` is below `a` byte-wise but above it in a locale's order), and NULL;
//! `n` against `x` is below, equal (1 = 1.0, an integer meeting a float)
//! and above. `nums` (an array of integers) is NULL, `[1]` or `[0, 2]`,
//! chosen by `b` rather than multiplying the rows by three: a comparison
//! has two sides, so what membership needs is every value of the array
//! against every value of each other field, which `n`, `x`, `s` and
//! `owner` still give; only `b` and `nums` vary together. The owners' `level` (alice 1, bob NULL) makes
//! `record.owner.level` NULL both through a NULL key and through a NULL
//! field.
//!
//! **The actors.** Anonymous (`actor` is null), alice (role `user`, level
//! 1), bob (`coordinator`, level NULL), carol (`admin`, level 2), and an API
//! key of alice's: each kind the compiler folds differently (a null actor,
//! a known id, a null field, each role).
//!
//! **The leaves.** Every comparison `lhs op rhs` with `op` one of `== != <
//! <= > >= in` and each side one of the operands: record fields of each
//! type (`record.n`, `record.x`, `record.s`, `record.b`, `record.nums`,
//! `record.owner_id`), a field through a `belongs_to` (`record.owner.level`),
//! bare `actor` and its fields (`actor.id`, `actor.level`, `actor.role`),
//! `null`, and literals (`1`, `1.5`, `'a'`, `'user'`, `true`, alice's id);
//! `in` also takes list literals of each type, with `null` and a path among
//! the elements; and the boolean path `record.b` alone. Of those, the
//! loader's type checker keeps the well-typed
//! ones (the rest are load errors, never run); each is checked alone and
//! negated. These are every compiler case a comparison has: constant
//! folding of two known sides and of the actor's fields, `IS NULL` for a
//! comparison with the literal `null`, a null actor field equal to nothing,
//! field against value and field against field (with SQLite's integer/float
//! casts and PostgreSQL's byte-wise collation), lookups through a key, a
//! list as a chain of `OR`s, membership in an array (compared as floats
//! when an integer meets a float), and a boolean path as a condition.
//!
//! **The boolean structure.** Where SQL and the spec can differ is NULL:
//! SQL's comparisons have a third value, the spec has two. The compiler
//! pushes `!` down to the comparisons (De Morgan) and wraps a negated one
//! in `COALESCE(…, FALSE)`; `&&`, `||` and constants it folds. That is
//! independent of which comparison sits at a leaf, only of what the leaf
//! can be in SQL: NULL for some rows, never NULL, or folded to a constant.
//! So the structure is checked over four atoms covering those, two of them
//! NULL on different rows (so NULL meets NULL under `&&` and `||`):
//! `record.n < 1` (NULL for a NULL `n`), `actor.id == record.owner_id`
//! (folded to false for an anonymous actor, NULL for a NULL owner
//! otherwise), `record.owner_id == null` (`IS NULL`, never NULL) and
//! `actor.role == 'admin'` (a constant, true for one actor). Every
//! expression up to depth two is built: depth 1 is the atoms, their
//! negations and every `a && b`, `a || b` of two atoms; depth 2 the same
//! over depth 1, so it holds every negation of a conjunction or
//! disjunction, double negations and every mix of `&&` and `||` two deep
//! (3,280 expressions). A bare boolean path (`record.b`, NULL for a NULL)
//! is among the leaves, where it is also negated.
//!
//! Outside the bound, and left to the random test: dates, datetimes, json
//! and arrays of other types, paths two relationships deep, and paths from
//! `actor` through a relationship. Each would multiply the rows or the
//! leaves for a compiler case the bound already has (a field compared with
//! a value, a lookup through a key).
//!
//! Each (expression, actor) is decided twice, and both must be exactly the
//! rows the evaluator allows: as a read, by one list query (the policy in
//! its `WHERE`), and as a write, by the flags a write computes on the
//! record it checks (`CASE WHEN … THEN 1 ELSE 0 END`, through
//! `Engine::write_decisions`, with the expression's negation as the update
//! policy, so a mix-up of the two policies shows on every row). Create, update, destroy and actions compile their
//! policies with the same function and check them with the same flag, so
//! one write kind covers them; which check a write makes when (404 before
//! 403, the new record for a create, the result of an update) is the
//! random test's and the API tests' to check. The test prints
//! how many expressions, queries and rows it checked, and how long it took.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kumo_core::actor::Actor;
use kumo_core::load::load_schema;
use kumo_core::policy::{BinOp, EvalContext, Expr, eval};
use kumo_core::resource::{ActionKind, Policy, Schema};
use kumo_core::table::{self, Table};
use kumo_db::files::Plan;
use kumo_db::query::params::{ListRequest, Position, SortKey};
use kumo_db::query::{CursorKey, Engine, View};
use kumo_db::runner;
use kumo_db::sql::{Dialect, ident, value_sql};
use serde_json::{Map, Value, json};

use crate::harness::TestDb;

/// Extends the built-in `user` with a number for policies to compare.
const USER: &str = r#"[resource]
name = "user"

[attributes]
level = { type = "integer" }
"#;

/// `item`, with `{read}` to fill in.
const ITEM: &str = r#"[resource]
name = "item"

[attributes]
n = { type = "integer" }
x = { type = "float" }
s = { type = "string" }
b = { type = "boolean" }
nums = { type = "array", of = "integer" }

[relationships]
owner = { belongs_to = "user", on_delete = "nullify" }

[policies]
read = {read}
"#;

const ALICE: &str = "00000000-0000-4000-8000-0000000a11ce";
const BOB: &str = "00000000-0000-4000-8000-000000000b0b";
const CAROL: &str = "00000000-0000-4000-8000-0000000ca201";

fn domains() -> [(&'static str, Vec<Value>); 5] {
    [
        ("n", vec![Value::Null, json!(0), json!(1), json!(2)]),
        ("x", vec![Value::Null, json!(1.0), json!(1.5)]),
        ("s", vec![Value::Null, json!("B"), json!("a")]),
        ("b", vec![Value::Null, json!(false), json!(true)]),
        ("owner_id", vec![Value::Null, json!(ALICE), json!(BOB)]),
    ]
}

const RECORD_OPERANDS: [&str; 7] = [
    "record.n",
    "record.x",
    "record.s",
    "record.b",
    "record.nums",
    "record.owner_id",
    "record.owner.level",
];

/// `nums` for each value of `b` (see the module doc).
fn nums_for(b: &Value) -> Value {
    match b {
        Value::Bool(false) => json!([1]),
        Value::Bool(true) => json!([0, 2]),
        _ => Value::Null,
    }
}

const ACTOR_OPERANDS: [&str; 4] = ["actor", "actor.id", "actor.level", "actor.role"];

fn literal_operands() -> Vec<String> {
    ["null", "1", "1.5", "'a'", "'user'", "true"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([format!("'{ALICE}'")])
        .collect()
}

/// The right sides `in` takes besides a single operand: a list literal of
/// each type, with `null` and a path among the elements.
fn lists() -> Vec<String> {
    vec![
        "[1, 2]".into(),
        "[0, 1.5, null]".into(),
        "[actor.level, 0]".into(),
        "['a', 'B']".into(),
        "['user', 'admin']".into(),
        "[true, null]".into(),
        format!("['{ALICE}', '{BOB}']"),
        "[null]".into(),
    ]
}

const COMPARISONS: [&str; 7] = ["==", "!=", "<", "<=", ">", ">=", "in"];

/// The atoms of the boolean structure (see the module doc).
const ATOMS: [&str; 4] = [
    "record.n < 1",
    "record.owner_id == null",
    "actor.id == record.owner_id",
    "actor.role == 'admin'",
];

/// A TOML basic string holding `s` (the expressions hold no `"` or `\`).
fn toml_string(s: &str) -> String {
    format!("\"{s}\"")
}

/// The resources with this `item` read policy; `Err` is the loader's
/// diagnostics (an ill-typed expression).
fn load(read: &str) -> Result<Schema, String> {
    let item = ITEM.replace("{read}", &toml_string(read));
    let files = [("user", USER), ("item", item.as_str())]
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

/// The loaded (typed, canonical) expression of a policy source.
fn loaded(read: &str) -> Option<Expr> {
    let schema = load(read).ok()?;
    let policy = schema.resource("item")?.policies.read.clone()?;
    Some(policy.expr)
}

/// Every well-typed leaf comparison, with how many candidates there were.
fn leaves() -> (Vec<(String, Expr)>, usize) {
    let operands: Vec<String> = RECORD_OPERANDS
        .iter()
        .chain(&ACTOR_OPERANDS)
        .map(|s| (*s).to_owned())
        .chain(literal_operands())
        .collect();
    let mut candidates = Vec::new();
    for lhs in &operands {
        for op in COMPARISONS {
            for rhs in &operands {
                candidates.push(format!("{lhs} {op} {rhs}"));
            }
        }
        for list in lists() {
            candidates.push(format!("{lhs} in {list}"));
        }
    }
    // A boolean path is a condition of its own.
    candidates.push("record.b".to_owned());
    let total = candidates.len();
    let typed = candidates
        .into_iter()
        .filter_map(|text| loaded(&text).map(|e| (text, e)))
        .collect();
    (typed, total)
}

fn not(e: &Expr) -> Expr {
    Expr::Not(Box::new(e.clone()))
}

fn binary(op: BinOp, a: &Expr, b: &Expr) -> Expr {
    Expr::Binary {
        op,
        lhs: Box::new(a.clone()),
        rhs: Box::new(b.clone()),
    }
}

/// One level more: the expressions, their negations, and every `&&` and
/// `||` of two of them.
fn deepen(level: &[Expr]) -> Vec<Expr> {
    let mut out = level.to_vec();
    out.extend(level.iter().map(not));
    for a in level {
        for b in level {
            out.push(binary(BinOp::And, a, b));
            out.push(binary(BinOp::Or, a, b));
        }
    }
    out
}

/// Every expression up to depth two over [`ATOMS`].
fn structures() -> Vec<Expr> {
    let atoms: Vec<Expr> = ATOMS
        .iter()
        .map(|a| loaded(a).unwrap_or_else(|| panic!("atom {a} does not load")))
        .collect();
    deepen(&deepen(&atoms))
}

type Record = Map<String, Value>;

fn record(pairs: &[(&str, Value)]) -> Record {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

const STAMP: &str = "2026-01-01T00:00:00.000Z";

fn users() -> Vec<Record> {
    [
        (ALICE, "alice", "user", json!(1)),
        (BOB, "bob", "coordinator", Value::Null),
        (CAROL, "carol", "admin", json!(2)),
    ]
    .into_iter()
    .map(|(id, name, role, level)| {
        record(&[
            ("id", json!(id)),
            ("email", json!(format!("{name}@example.com"))),
            ("username", json!(name)),
            ("role", json!(role)),
            ("level", level),
            ("inserted_at", json!(STAMP)),
            ("updated_at", json!(STAMP)),
        ])
    })
    .collect()
}

/// One item per combination of the domains, ids in the order generated.
fn items() -> Vec<Record> {
    let mut rows = vec![Record::new()];
    for (column, values) in domains() {
        rows = rows
            .into_iter()
            .flat_map(|row| {
                values.iter().map(move |v| {
                    let mut row = row.clone();
                    row.insert(column.to_owned(), v.clone());
                    row
                })
            })
            .collect();
    }
    for (i, row) in rows.iter_mut().enumerate() {
        let nums = nums_for(&row["b"]);
        row.insert("nums".into(), nums);
        row.insert(
            "id".into(),
            json!(format!("00000000-0000-4000-8000-{i:012}")),
        );
        row.insert("inserted_at".into(), json!(STAMP));
        row.insert("updated_at".into(), json!(STAMP));
    }
    rows
}

/// The actors, named; the evaluator sees each as [`Actor::value`].
fn actors(users: &[Record]) -> Vec<(&'static str, Actor)> {
    vec![
        ("anonymous", Actor::anonymous()),
        ("alice (user)", Actor::user(users[0].clone())),
        ("bob (coordinator)", Actor::user(users[1].clone())),
        ("carol (admin)", Actor::user(users[2].clone())),
        (
            "an API key of alice's",
            Actor::api_key(uuid::Uuid::from_u128(1), users[0].clone()),
        ),
    ]
}

fn inserts(tables: &[Table], dialect: Dialect, table: &str, rows: &[Record]) -> String {
    let t = tables
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
                .map(|c| value_sql(row.get(&c.name).unwrap_or(&Value::Null), &c.ty, dialect))
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

/// The schema with `expr` as the `item` read policy.
fn with_read(base: &Schema, expr: &Expr) -> Schema {
    let mut schema = base.clone();
    let item = schema
        .resources
        .iter_mut()
        .find(|r| r.name == "item")
        .expect("item");
    let mut policy: Policy = item.policies.read.clone().expect("a read policy");
    policy.source = expr.to_string();
    policy.expr = expr.clone();
    // Updates are decided by its negation: a write whose flags mixed up
    // the read and update policies would then disagree on every row.
    let mut update = policy.clone();
    update.expr = update_policy(expr);
    update.source = update.expr.to_string();
    item.policies.update = Some(update);
    item.policies.read = Some(policy);
    schema
}

/// The update policy the test pairs with the read policy `expr`.
fn update_policy(expr: &Expr) -> Expr {
    Expr::Not(Box::new(expr.clone()))
}

async fn compiled_policies_match_the_evaluator_everywhere(dialect: Dialect) {
    let started = std::time::Instant::now();
    let (leaves, candidates) = leaves();
    let mut per_operator: BTreeMap<&str, usize> = BTreeMap::new();
    for (text, _) in &leaves {
        for op in COMPARISONS {
            if text.contains(&format!(" {op} ")) {
                *per_operator.entry(op).or_default() += 1;
            }
        }
    }
    // The loader must keep some of every operator (and of every operand),
    // or the domain would silently shrink.
    assert_eq!(per_operator.len(), COMPARISONS.len(), "{per_operator:?}");
    for operand in RECORD_OPERANDS.iter().chain(&ACTOR_OPERANDS) {
        assert!(
            leaves
                .iter()
                .any(|(t, _)| t.split(' ').any(|w| w == *operand)),
            "no well-typed leaf uses {operand}"
        );
    }
    let mut expressions: Vec<Expr> = Vec::new();
    for (_, leaf) in &leaves {
        expressions.push(leaf.clone());
        expressions.push(not(leaf));
    }
    let structure = structures();
    let structure_count = structure.len();
    expressions.extend(structure);

    let db = TestDb::new(dialect).await;
    let base = load("true").unwrap_or_else(|e| panic!("{e}"));
    let migration = Plan::new(Vec::new(), &base).migration("20260101000000_initial".into());
    runner::migrate(&db.db, std::slice::from_ref(&migration))
        .await
        .unwrap_or_else(|e| panic!("{}: migrating: {e}", db.name()));
    let tables = table::lower(&base);
    let (users, items) = (users(), items());
    let sql =
        inserts(&tables, dialect, "users", &users) + &inserts(&tables, dialect, "items", &items);
    db.exec(&sql).await;
    let actors = actors(&users);
    let items_as_values: Vec<Value> = items.iter().cloned().map(Value::Object).collect();
    let related = |resource: &str, id: &str| {
        let rows = if resource == "user" { &users } else { &items };
        rows.iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
            .map_or(Value::Null, |r| Value::Object(r.clone()))
    };
    let request = ListRequest {
        filters: Vec::new(),
        sort: vec![SortKey {
            field: "id".into(),
            descending: false,
        }],
        // Every row in one page.
        size: items.len(),
        position: Position::First,
        count: false,
        search: None,
        count_limit: None,
        count_time_limit: None,
        view: View::default(),
    };

    let (mut queries, mut rows_checked, mut visible) = (0usize, 0usize, 0usize);
    let mut none_some_all = [0usize; 3];
    for expr in &expressions {
        let schema = with_read(&base, expr);
        let engine = Engine::new(db.db.clone(), schema.clone(), CursorKey::new(b"exhaustive"));
        let entry = engine.catalog.get("item").expect("item");
        let resource = schema.resource("item").expect("item");
        for (name, actor) in &actors {
            let actor_value = actor.value();
            let allows = |policy: &Expr| -> Vec<&str> {
                items_as_values
                    .iter()
                    .filter(|record| {
                        eval(
                            policy,
                            &EvalContext {
                                schema: &schema,
                                resource,
                                actor: &actor_value,
                                record,
                                related: &related,
                            },
                        )
                    })
                    .map(|r| r["id"].as_str().unwrap_or_default())
                    .collect()
            };
            let want = allows(expr);
            let want_update = allows(&update_policy(expr));
            let page = engine
                .list(actor, entry, &request)
                .await
                .unwrap_or_else(|e| panic!("{}: `{expr}` as {name}: {e}", db.name()));
            let got: Vec<&str> = page
                .data
                .iter()
                .map(|r| r["id"].as_str().unwrap_or_default())
                .collect();
            if got != want {
                let disputed: Vec<String> = items
                    .iter()
                    .filter(|r| {
                        let id = r["id"].as_str().unwrap_or_default();
                        got.contains(&id) != want.contains(&id)
                    })
                    .take(5)
                    .map(|r| {
                        let id = r["id"].as_str().unwrap_or_default();
                        let who = if want.contains(&id) {
                            "evaluator"
                        } else {
                            "SQL"
                        };
                        format!("only the {who} shows {}", Value::Object(r.clone()))
                    })
                    .collect();
                panic!(
                    "{}: `{expr}` as {name}: the SQL shows {} rows, the evaluator {}; first \
                     disputed rows:\n{}",
                    db.name(),
                    got.len(),
                    want.len(),
                    disputed.join("\n")
                );
            }
            // As a write decides it: the flags an update computes on the
            // stored record (may the caller read it, may they update it).
            let decisions = engine
                .write_decisions(actor, entry, ActionKind::Update)
                .await
                .unwrap_or_else(|e| panic!("{}: `{expr}` as {name}: {e}", db.name()));
            assert_eq!(decisions.len(), items.len());
            for (id, readable, allowed) in &decisions {
                let wanted = want.contains(&id.as_str());
                let wanted_update = want_update.contains(&id.as_str());
                assert!(
                    *readable == wanted && *allowed == wanted_update,
                    "{}: `{expr}` as {name}: row {id}: the write's flags say readable \
                     {readable}, allowed {allowed}; the evaluator says {wanted}, \
                     {wanted_update}",
                    db.name()
                );
            }
            queries += 2;
            rows_checked += items.len();
            visible += got.len();
            none_some_all[match got.len() {
                0 => 0,
                n if n == items.len() => 2,
                _ => 1,
            }] += 1;
        }
    }
    eprintln!(
        "{}: {} expressions ({} well-typed leaves of {candidates} candidates, each alone and \
         negated, by operator {per_operator:?}; {structure_count} boolean structures) × {} \
         actors = {queries} queries (a list and a write's flags each) over {} rows ({rows_checked} row decisions, {visible} \
         visible; lists showing none/some/all rows: {none_some_all:?}) in {:.1?}",
        db.name(),
        expressions.len(),
        leaves.len(),
        actors.len(),
        items.len(),
        started.elapsed()
    );
    db.cleanup().await;
}

#[tokio::test]
async fn compiled_policies_match_the_evaluator_everywhere_on_postgres() {
    compiled_policies_match_the_evaluator_everywhere(Dialect::Postgres).await;
}

#[tokio::test]
async fn compiled_policies_match_the_evaluator_everywhere_on_sqlite() {
    compiled_policies_match_the_evaluator_everywhere(Dialect::Sqlite).await;
}
