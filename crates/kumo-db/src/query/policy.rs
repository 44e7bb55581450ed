//! The SQL side of policy evaluation (docs/policies.md).
//!
//! A policy is compiled in two steps. [`compile`] folds in what is known
//! before the query runs — the actor's values — so `actor.role == 'admin'`
//! becomes a constant and an admin's read query has no policy condition at
//! all. [`render`] writes what is left as SQL over the row being read.
//!
//! The SQL must be true exactly when the two-valued semantics of the spec
//! say true. Rendering pushes negations down to the comparisons (De
//! Morgan); a positive comparison is written so it is true when the spec
//! says true and false or NULL otherwise, and a negated one as
//! `NOT COALESCE(c, FALSE)`. Without a `NOT` above them, AND and OR treat a
//! NULL like false as far as `WHERE` is concerned (Kleene logic is
//! monotone), so the whole condition selects exactly the rows the spec
//! allows. The reference evaluator in `kumo_core::policy` is the oracle in
//! the tests.

use kumo_core::policy::{BinOp, Expr, Path, Root, compare};
use kumo_core::resource::{Policy, RelationshipKind};
use serde_json::Value;

use super::catalog::{Catalog, Entry, Kind};
use super::exec::Sql;
use crate::sql::{Dialect, ident};

/// A condition over one row, after the actor's values are folded in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    Const(bool),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Eq(Operand, Operand),
    /// `<`, `<=`, `>`, `>=`.
    Order(BinOp, Operand, Operand),
    /// A boolean used as a condition.
    IsTrue(Operand),
    /// `elem in array` for an array-valued operand.
    Contains {
        array: Operand,
        elem: Operand,
    },
    /// A string field containing (or starting with) a value: API filters;
    /// `any_case`: containing it in any letter case (the admin's search;
    /// SQLite folds ASCII letters only).
    Text {
        field: Operand,
        value: Value,
        prefix: bool,
        any_case: bool,
    },
    /// A related row exists, reached through the `belongs_to` key `column`
    /// of this row, for which `cond` (rendered over that row) holds.
    Related {
        column: String,
        table: String,
        cond: Box<Cond>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Value(Value),
    Field(FieldRef),
}

/// A column of the row, or reached from it (or from the actor) through
/// `belongs_to` keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldRef {
    pub(crate) start: Start,
    /// Each hop reads `column` from `table` at the id the previous step gave.
    pub(crate) hops: Vec<(String, String)>,
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Start {
    /// A column of the row being evaluated.
    Column(String),
    /// A known id (the actor's key), the first hop's row.
    Id(String),
}

impl Cond {
    pub(crate) fn and(parts: Vec<Cond>) -> Cond {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Cond::Const(true) => {}
                Cond::Const(false) => return Cond::Const(false),
                Cond::And(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Cond::Const(true),
            1 => out.pop().unwrap_or(Cond::Const(true)),
            _ => Cond::And(out),
        }
    }

    pub(crate) fn or(parts: Vec<Cond>) -> Cond {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Cond::Const(false) => {}
                Cond::Const(true) => return Cond::Const(true),
                Cond::Or(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Cond::Const(false),
            1 => out.pop().unwrap_or(Cond::Const(false)),
            _ => Cond::Or(out),
        }
    }

    pub(crate) fn not(c: Cond) -> Cond {
        match c {
            Cond::Const(b) => Cond::Const(!b),
            Cond::Not(inner) => *inner,
            other => Cond::Not(Box::new(other)),
        }
    }

    /// `a == b`, folded when both sides are known.
    pub(crate) fn eq(a: Operand, b: Operand) -> Cond {
        match (&a, &b) {
            (Operand::Value(x), Operand::Value(y)) => Cond::Const(compare(BinOp::Eq, x, y)),
            _ => Cond::Eq(a, b),
        }
    }

    pub(crate) fn order(op: BinOp, a: Operand, b: Operand) -> Cond {
        match (&a, &b) {
            (Operand::Value(x), Operand::Value(y)) => Cond::Const(compare(op, x, y)),
            (Operand::Value(Value::Null), _) | (_, Operand::Value(Value::Null)) => {
                Cond::Const(false)
            }
            _ => Cond::Order(op, a, b),
        }
    }
}

/// The condition for `policy` (or, when there is none, admins only) on
/// rows of `entry`, with the actor's values folded in. `actor` is the
/// policy's `actor`: the user record, or null.
pub(crate) fn compile(
    catalog: &Catalog,
    entry: &Entry,
    policy: Option<&Policy>,
    actor: &Value,
) -> Cond {
    match policy {
        None => Cond::Const(actor.get("role").and_then(Value::as_str) == Some("admin")),
        Some(p) => Compiler {
            catalog,
            entry,
            actor,
        }
        .cond(&p.expr),
    }
}

struct Compiler<'a> {
    catalog: &'a Catalog,
    entry: &'a Entry,
    actor: &'a Value,
}

impl Compiler<'_> {
    fn cond(&self, e: &Expr) -> Cond {
        match e {
            Expr::Bool(b) => Cond::Const(*b),
            Expr::Not(inner) => Cond::not(self.cond(inner)),
            Expr::Binary {
                op: BinOp::And,
                lhs,
                rhs,
            } => Cond::and(vec![self.cond(lhs), self.cond(rhs)]),
            Expr::Binary {
                op: BinOp::Or,
                lhs,
                rhs,
            } => Cond::or(vec![self.cond(lhs), self.cond(rhs)]),
            Expr::Binary { op, lhs, rhs } => self.comparison(*op, lhs, rhs),
            Expr::Path(_) => match self.operand(e) {
                Operand::Value(v) => Cond::Const(v == Value::Bool(true)),
                field => Cond::IsTrue(field),
            },
            // The loader only lets conditions through; a value in a
            // condition's place is never true.
            Expr::Null | Expr::Int(_) | Expr::Float(_) | Expr::Str(_) | Expr::List(_) => {
                Cond::Const(false)
            }
        }
    }

    fn comparison(&self, op: BinOp, lhs: &Expr, rhs: &Expr) -> Cond {
        match op {
            BinOp::Eq => self.equal(lhs, rhs),
            BinOp::Ne => Cond::not(self.equal(lhs, rhs)),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                Cond::order(op, self.operand(lhs), self.operand(rhs))
            }
            BinOp::In => {
                let elem = self.operand(lhs);
                match rhs {
                    Expr::List(items) => {
                        Cond::or(items.iter().map(|i| self.equal(lhs, i)).collect())
                    }
                    _ => contains(self.operand(rhs), elem),
                }
            }
            BinOp::And | BinOp::Or => unreachable!("handled by cond"),
        }
    }

    /// `a == b` in a policy: next to the literal `null` it tests for null;
    /// otherwise a `null` operand (an anonymous actor's id, an empty
    /// `belongs_to`) equals nothing.
    fn equal(&self, lhs: &Expr, rhs: &Expr) -> Cond {
        let (a, b) = (self.operand(lhs), self.operand(rhs));
        if matches!(lhs, Expr::Null) || matches!(rhs, Expr::Null) {
            return Cond::eq(a, b);
        }
        match (&a, &b) {
            (Operand::Value(Value::Null), _) | (_, Operand::Value(Value::Null)) => {
                Cond::Const(false)
            }
            _ => Cond::eq(a, b),
        }
    }

    fn operand(&self, e: &Expr) -> Operand {
        match e {
            Expr::Null => Operand::Value(Value::Null),
            Expr::Bool(b) => Operand::Value(Value::Bool(*b)),
            Expr::Int(i) => Operand::Value(Value::from(*i)),
            Expr::Float(f) => {
                Operand::Value(serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number))
            }
            Expr::Str(s) => Operand::Value(Value::String(s.clone())),
            Expr::List(items) => Operand::Value(Value::Array(
                items
                    .iter()
                    .map(|i| match self.operand(i) {
                        Operand::Value(v) => v,
                        Operand::Field(_) => Value::Null,
                    })
                    .collect(),
            )),
            Expr::Path(p) => self.path(p),
            // Conditions are not operands; the loader rejects them there.
            Expr::Not(_) | Expr::Binary { .. } => Operand::Value(Value::Null),
        }
    }

    fn path(&self, p: &Path) -> Operand {
        match p.root {
            Root::Actor => {
                let user = self.catalog.get("user");
                walk_known(self.catalog, user, self.actor, &p.fields)
            }
            Root::Record => walk_row(self.catalog, self.entry, &p.fields),
        }
    }
}

/// `elem in array`, folded when the array is known.
fn contains(array: Operand, elem: Operand) -> Cond {
    match (array, elem) {
        (Operand::Value(Value::Array(items)), elem) => Cond::or(
            items
                .into_iter()
                .map(|i| Cond::eq(elem.clone(), Operand::Value(i)))
                .collect(),
        ),
        (Operand::Value(_), _) | (_, Operand::Value(Value::Null)) => Cond::Const(false),
        (array, elem) => Cond::Contains { array, elem },
    }
}

/// Follows `fields` from a known record (the actor). Plain fields fold to
/// values; a path through a `belongs_to` becomes a lookup from its key.
fn walk_known(
    catalog: &Catalog,
    shape: Option<&Entry>,
    record: &Value,
    fields: &[String],
) -> Operand {
    let Some((first, rest)) = fields.split_first() else {
        return Operand::Value(record.clone());
    };
    if record.is_null() {
        return Operand::Value(Value::Null);
    }
    let relationship = shape.and_then(|s| belongs_to_target(s, first));
    match (relationship, shape) {
        (Some(target), Some(_)) => {
            let key = record
                .get(format!("{first}_id"))
                .cloned()
                .unwrap_or(Value::Null);
            let Value::String(id) = key else {
                return Operand::Value(Value::Null);
            };
            let target = catalog.entry(&target);
            follow(catalog, target, Start::Id(id), rest)
        }
        _ => Operand::Value(record.get(first).cloned().unwrap_or(Value::Null)),
    }
}

/// Follows `fields` from the row being evaluated.
fn walk_row(catalog: &Catalog, entry: &Entry, fields: &[String]) -> Operand {
    let Some((first, rest)) = fields.split_first() else {
        return Operand::Value(Value::Null);
    };
    match belongs_to_target(entry, first) {
        Some(target) => follow(
            catalog,
            catalog.entry(&target),
            Start::Column(format!("{first}_id")),
            rest,
        ),
        None => Operand::Field(FieldRef {
            start: Start::Column(first.clone()),
            hops: Vec::new(),
            kind: field_kind(entry, first),
        }),
    }
}

/// Continues a path at `entry`, whose row the `start` key identifies.
fn follow<'a>(
    catalog: &'a Catalog,
    mut entry: &'a Entry,
    start: Start,
    fields: &[String],
) -> Operand {
    let mut hops = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        match belongs_to_target(entry, f) {
            Some(target) if i + 1 < fields.len() => {
                hops.push((entry.table.clone(), format!("{f}_id")));
                entry = catalog.entry(&target);
            }
            _ => {
                hops.push((entry.table.clone(), f.clone()));
                return Operand::Field(FieldRef {
                    start,
                    hops,
                    kind: field_kind(entry, f),
                });
            }
        }
    }
    Operand::Value(Value::Null)
}

fn belongs_to_target(entry: &Entry, name: &str) -> Option<String> {
    entry
        .resource
        .relationship(name)
        .and_then(|r| match &r.kind {
            RelationshipKind::BelongsTo { target, .. } => Some(target.clone()),
            _ => None,
        })
}

fn field_kind(entry: &Entry, name: &str) -> Kind {
    entry.field(name).map_or(Kind::Text, |f| f.kind)
}

/// The kind of an operand: a field's, or for a value, `Integer` or `Float`
/// for a number (a JSON number holding an integer is an integer) and
/// `default` otherwise.
fn operand_kind(o: &Operand, default: Kind) -> Kind {
    match o {
        Operand::Field(f) => f.kind,
        Operand::Value(Value::Number(n)) if n.is_f64() => Kind::Float,
        Operand::Value(Value::Number(_)) => Kind::Integer,
        Operand::Value(_) => default,
    }
}

/// Whether a comparison of `a` and `b` must cast both to floats: on SQLite,
/// when one is an integer and the other a float. SQLite compares those
/// exactly; the spec (and PostgreSQL, which converts the bigint to double
/// precision) compares them as 64-bit floats.
/// A LIKE pattern matching any text that contains `text`: its `%`, `_`
/// and backslashes escaped (a backslash is PostgreSQL's default escape).
fn like_containing(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn as_reals(dialect: Dialect, a: &Operand, b: &Operand) -> bool {
    let kinds = [operand_kind(a, Kind::Text), operand_kind(b, Kind::Text)];
    dialect == Dialect::Sqlite && kinds.contains(&Kind::Integer) && kinds.contains(&Kind::Float)
}

/// The most terms [`Renderer`] writes as one flat `AND` or `OR` chain;
/// longer ones are nested (see `Renderer::chain`).
const FLAT_CHAIN: usize = 32;

/// Writes a condition as SQL over the row aliased `alias`.
pub(crate) struct Renderer {
    alias: String,
    /// Numbers the aliases of lookup subqueries.
    next_alias: usize,
}

impl Renderer {
    pub(crate) fn new(alias: &str) -> Renderer {
        Renderer {
            alias: alias.to_owned(),
            next_alias: 0,
        }
    }

    fn fresh_alias(&mut self) -> String {
        self.next_alias += 1;
        format!("k{}", self.next_alias)
    }

    pub(crate) fn render(&mut self, c: &Cond, sql: &mut Sql) {
        self.cond(c, false, sql);
    }

    fn cond(&mut self, c: &Cond, negated: bool, sql: &mut Sql) {
        match c {
            Cond::Const(b) => {
                sql.push(if *b != negated { "TRUE" } else { "FALSE" });
            }
            Cond::Not(inner) => self.cond(inner, !negated, sql),
            Cond::And(parts) | Cond::Or(parts) => {
                let is_and = matches!(c, Cond::And(_)) != negated;
                self.chain(parts, is_and, negated, sql);
            }
            Cond::Eq(Operand::Field(f), Operand::Value(Value::Null))
            | Cond::Eq(Operand::Value(Value::Null), Operand::Field(f)) => {
                sql.push("(");
                self.field(f, sql);
                sql.push(if negated {
                    " IS NOT NULL)"
                } else {
                    " IS NULL)"
                });
            }
            leaf if negated => {
                sql.push("NOT COALESCE(");
                self.leaf(leaf, sql);
                sql.push(", FALSE)");
            }
            leaf => self.leaf(leaf, sql),
        }
    }

    /// `parts` joined by AND (`is_and`) or OR, in parentheses. SQLite
    /// parses `a OR b OR c …` into a tree one level deeper per term and
    /// refuses one over 1000 levels deep, so a long chain (an `in` filter
    /// with a thousand values, an include of a thousand ids) is split in
    /// halves, each in its own parentheses, until every run is short: the
    /// depth then grows with the logarithm of the length. Both databases
    /// flatten nested ANDs and ORs again when they plan, so the plan is
    /// the one the flat chain would have.
    fn chain(&mut self, parts: &[Cond], is_and: bool, negated: bool, sql: &mut Sql) {
        sql.push("(");
        if parts.len() > FLAT_CHAIN {
            let (left, right) = parts.split_at(parts.len() / 2);
            self.chain(left, is_and, negated, sql);
            sql.push(if is_and { " AND " } else { " OR " });
            self.chain(right, is_and, negated, sql);
        } else {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    sql.push(if is_and { " AND " } else { " OR " });
                }
                self.cond(p, negated, sql);
            }
        }
        sql.push(")");
    }

    fn leaf(&mut self, c: &Cond, sql: &mut Sql) {
        match c {
            Cond::Eq(a, b) => {
                let real = as_reals(sql.dialect, a, b);
                sql.push("(");
                match (a, b) {
                    // Two fields come only from a policy, where a null
                    // equals nothing: plain `=` is NULL, so false, there.
                    (Operand::Field(f), Operand::Field(g)) => {
                        self.number(a, f.kind, real, sql);
                        sql.push(" = ");
                        self.number(b, g.kind, real, sql);
                    }
                    (field @ Operand::Field(f), value @ Operand::Value(_))
                    | (value @ Operand::Value(_), field @ Operand::Field(f)) => {
                        self.number(field, f.kind, real, sql);
                        // Byte-wise, like the indexes on text: equality is
                        // the same under any deterministic collation, and
                        // this one lets an index that starts with the field
                        // answer the filter.
                        if f.kind == Kind::Text && sql.dialect == Dialect::Postgres {
                            sql.push(" COLLATE \"C\"");
                        }
                        sql.push(" = ");
                        self.number(value, f.kind, real, sql);
                    }
                    (Operand::Value(x), Operand::Value(y)) => {
                        sql.push(if compare(BinOp::Eq, x, y) {
                            "TRUE"
                        } else {
                            "FALSE"
                        });
                    }
                }
                sql.push(")");
            }
            Cond::Order(op, a, b) => {
                let kind = match (a, b) {
                    (Operand::Field(f), _) | (_, Operand::Field(f)) => f.kind,
                    _ => Kind::Text,
                };
                let real = as_reals(sql.dialect, a, b);
                sql.push("(");
                self.number(a, kind, real, sql);
                sql.push(" ").push(op.as_str()).push(" ");
                self.number(b, kind, real, sql);
                if kind == Kind::Text && sql.dialect == Dialect::Postgres {
                    sql.push(" COLLATE \"C\"");
                }
                sql.push(")");
            }
            Cond::IsTrue(a) => {
                sql.push("(");
                self.operand(a, Kind::Boolean, sql);
                sql.push(match sql.dialect {
                    Dialect::Postgres => " = TRUE)",
                    Dialect::Sqlite => " = 1)",
                });
            }
            Cond::Contains { array, elem } => {
                let elem_kind = match array {
                    Operand::Field(FieldRef {
                        kind: Kind::Array(of),
                        ..
                    }) => Kind::of_scalar(*of),
                    _ => Kind::Text,
                };
                // An integer and a float are equal as 64-bit floats, but
                // both databases compare a JSON integer with a JSON float
                // exactly: with a float on either side, every element is
                // compared as a float.
                let needle = operand_kind(elem, elem_kind);
                let floats = elem_kind.is_number()
                    && needle.is_number()
                    && (elem_kind == Kind::Float || needle == Kind::Float);
                match (sql.dialect, floats) {
                    (Dialect::Postgres, false) => {
                        sql.push("(");
                        self.operand(array, Kind::Json, sql);
                        sql.push(" @> jsonb_build_array(");
                        self.json_element(elem, elem_kind, sql);
                        sql.push("))");
                    }
                    (Dialect::Postgres, true) => {
                        let alias = self.fresh_alias();
                        sql.push("EXISTS (SELECT 1 FROM jsonb_array_elements(");
                        self.operand(array, Kind::Json, sql);
                        sql.push(&format!(
                            ") AS {alias}(v) WHERE CAST({alias}.v AS double precision) = CAST("
                        ));
                        self.operand(elem, Kind::Float, sql);
                        sql.push(" AS double precision))");
                    }
                    (Dialect::Sqlite, floats) => {
                        let alias = self.fresh_alias();
                        sql.push("EXISTS (SELECT 1 FROM json_each(");
                        self.operand(array, Kind::Json, sql);
                        sql.push(&format!(") AS {alias} WHERE "));
                        let value = format!("{alias}.value");
                        if floats {
                            sql.push(&format!("CAST({value} AS REAL) = CAST("));
                            self.operand(elem, Kind::Float, sql);
                            sql.push(" AS REAL))");
                        } else {
                            sql.push(&format!("{value} = "));
                            self.operand(elem, elem_kind, sql);
                            sql.push(")");
                        }
                    }
                }
            }
            // On PostgreSQL, `contains` is a LIKE pattern, which a trigram
            // index (`search = true`) serves; `strpos` would always scan.
            Cond::Text {
                field,
                value: Value::String(text),
                prefix: false,
                any_case,
            } if sql.dialect == Dialect::Postgres => {
                sql.push("(");
                self.operand(field, Kind::Text, sql);
                sql.push(if *any_case { " ILIKE " } else { " LIKE " });
                sql.bind_value(Kind::Text, &Value::String(like_containing(text)));
                sql.push(")");
            }
            Cond::Text {
                field,
                value,
                prefix,
                any_case: true,
            } if !prefix => {
                let find = match sql.dialect {
                    Dialect::Postgres => "(strpos(lower(",
                    Dialect::Sqlite => "(instr(lower(",
                };
                sql.push(find);
                self.operand(field, Kind::Text, sql);
                sql.push("), lower(");
                sql.bind_value(Kind::Text, value);
                sql.push(")) > 0)");
            }
            Cond::Text {
                field,
                value,
                prefix,
                ..
            } => {
                sql.push("(");
                match (sql.dialect, prefix) {
                    (Dialect::Postgres, false) => {
                        sql.push("strpos(");
                        self.operand(field, Kind::Text, sql);
                        sql.push(", ");
                        sql.bind_value(Kind::Text, value);
                        sql.push(") > 0");
                    }
                    (Dialect::Postgres, true) => {
                        sql.push("starts_with(");
                        self.operand(field, Kind::Text, sql);
                        sql.push(", ");
                        sql.bind_value(Kind::Text, value);
                        sql.push(")");
                    }
                    (Dialect::Sqlite, false) => {
                        sql.push("instr(");
                        self.operand(field, Kind::Text, sql);
                        sql.push(", ");
                        sql.bind_value(Kind::Text, value);
                        sql.push(") > 0");
                    }
                    (Dialect::Sqlite, true) => {
                        sql.push("substr(");
                        self.operand(field, Kind::Text, sql);
                        sql.push(", 1, length(");
                        sql.bind_value(Kind::Text, value);
                        sql.push(")) = ");
                        sql.bind_value(Kind::Text, value);
                    }
                }
                sql.push(")");
            }
            Cond::Related {
                column,
                table,
                cond,
            } => {
                let alias = self.fresh_alias();
                sql.push(&format!(
                    "EXISTS (SELECT 1 FROM {} {alias} WHERE {alias}.\"id\" = {}.{} AND ",
                    ident(table),
                    self.alias,
                    ident(column)
                ));
                let outer = std::mem::replace(&mut self.alias, alias);
                self.cond(cond, false, sql);
                self.alias = outer;
                sql.push(")");
            }
            Cond::Const(_) | Cond::And(_) | Cond::Or(_) | Cond::Not(_) => self.cond(c, false, sql),
        }
    }

    /// An element as PostgreSQL's JSON would hold it: strings for uuids,
    /// dates and datetimes, in their canonical text.
    fn json_element(&mut self, elem: &Operand, kind: Kind, sql: &mut Sql) {
        match (elem, kind) {
            (Operand::Value(v), Kind::Uuid | Kind::Date | Kind::Datetime | Kind::Text) => {
                sql.bind_value(Kind::Text, v);
            }
            (Operand::Field(f), Kind::Datetime) => {
                sql.push("to_char(");
                self.field(f, sql);
                sql.push(" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
            }
            (Operand::Field(f), Kind::Date) => {
                sql.push("to_char(");
                self.field(f, sql);
                sql.push(", 'YYYY-MM-DD')");
            }
            (Operand::Field(f), Kind::Uuid) => {
                self.field(f, sql);
                sql.push("::text");
            }
            (other, kind) => self.operand(other, kind, sql),
        }
    }

    /// An operand of a comparison; with `real`, cast to a float so that
    /// SQLite compares an integer with a float as floats.
    fn number(&mut self, o: &Operand, kind: Kind, real: bool, sql: &mut Sql) {
        if real {
            sql.push("CAST(");
            self.operand(o, kind, sql);
            sql.push(" AS REAL)");
        } else {
            self.operand(o, kind, sql);
        }
    }

    fn operand(&mut self, o: &Operand, kind: Kind, sql: &mut Sql) {
        match o {
            Operand::Value(v) => {
                sql.bind_value(kind, v);
            }
            Operand::Field(f) => self.field(f, sql),
        }
    }

    /// A field as an SQL expression: a column, or nested lookups by id.
    pub(crate) fn field(&mut self, f: &FieldRef, sql: &mut Sql) {
        let mut expr = Sql::new(sql.dialect);
        std::mem::swap(&mut expr.params, &mut sql.params);
        match &f.start {
            Start::Column(c) => {
                expr.push(&format!("{}.{}", self.alias, ident(c)));
            }
            Start::Id(id) => {
                expr.bind_value(Kind::Uuid, &Value::String(id.clone()));
            }
        }
        for (table, column) in &f.hops {
            let alias = self.fresh_alias();
            let inner = std::mem::take(&mut expr.text);
            expr.push(&format!(
                "(SELECT {alias}.{} FROM {} {alias} WHERE {alias}.\"id\" = {inner})",
                ident(column),
                ident(table)
            ));
        }
        sql.push(&expr.text);
        std::mem::swap(&mut expr.params, &mut sql.params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deepest nesting of parentheses in `text`, and the most
    /// `op`s between two parentheses.
    fn depth_and_run(text: &str, op: &str) -> (usize, usize) {
        let (mut depth, mut deepest, mut run, mut longest) = (0usize, 0, 0, 0);
        for (i, c) in text.char_indices() {
            match c {
                '(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                    run = 0;
                }
                ')' => {
                    depth -= 1;
                    run = 0;
                }
                _ if text[i..].starts_with(op) => {
                    run += 1;
                    longest = longest.max(run);
                }
                _ => {}
            }
        }
        (deepest, longest)
    }

    #[test]
    fn a_long_chain_is_nested_in_halves_so_sqlite_can_parse_it() {
        let field = || {
            Operand::Field(FieldRef {
                start: Start::Column("level".into()),
                hops: Vec::new(),
                kind: Kind::Integer,
            })
        };
        let parts: Vec<Cond> = (0..10_000)
            .map(|i| Cond::eq(field(), Operand::Value(Value::from(i))))
            .collect();
        for (cond, op) in [
            (Cond::Or(parts.clone()), " OR "),
            (Cond::And(parts.clone()), " AND "),
            // Negated, an OR is written as an AND of negations.
            (Cond::not(Cond::Or(parts)), " AND "),
        ] {
            let mut sql = Sql::new(Dialect::Sqlite);
            Renderer::new("r").render(&cond, &mut sql);
            assert_eq!(sql.params.len(), 10_000);
            let (depth, run) = depth_and_run(&sql.text, op);
            // Each term adds a level of its own (`(r."level" = ?1)`).
            assert!(depth <= 16, "{depth} levels");
            assert!(run < FLAT_CHAIN, "{run} terms in a row");
        }
        // A short chain stays flat.
        let mut sql = Sql::new(Dialect::Sqlite);
        let three = (0..3)
            .map(|i| Cond::eq(field(), Operand::Value(Value::from(i))))
            .collect();
        Renderer::new("r").render(&Cond::Or(three), &mut sql);
        assert_eq!(
            sql.text,
            "((r.\"level\" = ?1) OR (r.\"level\" = ?2) OR (r.\"level\" = ?3))"
        );
    }
}
