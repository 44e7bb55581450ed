//! Seed files (`seeds/*.toml`): rows to insert, checked against a schema and
//! ordered so every row comes after the rows it refers to.
//!
//! A seed row is named by its `key`; its id is a UUID v5 of
//! `<resource>/<key>`, so seeding is repeatable and rows can refer to each
//! other by key (`uploader = "alice"`) without knowing ids.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};
use uuid::Uuid;

use super::parse::IMPLICIT_FIELDS;
use super::value::{Lit, lit_to_value};
use super::walk::{Cx, describe, suggest};
use super::{Diagnostics, KUMO_SEED_NAMESPACE, SeedRow};
use crate::diagnostic::{Diagnostic, Sources};
use crate::resource::{FileId, RelationshipKind, Resource, Schema, Span, Value};

/// The id a seed row gets: stable across runs and machines.
pub(crate) fn seed_id(resource: &str, key: &str) -> Uuid {
    Uuid::new_v5(&KUMO_SEED_NAMESPACE, format!("{resource}/{key}").as_bytes())
}

/// A row as read, before references are checked.
struct RawRow {
    /// Index into `schema.resources`.
    resource: usize,
    file: FileId,
    span: Span,
    key: Option<(String, Span)>,
    fields: Vec<RawField>,
}

struct RawField {
    name: String,
    span: Span,
    value: Lit,
    value_span: Span,
}

pub(crate) fn load(
    schema: &Schema,
    mut files: Vec<(PathBuf, String)>,
) -> Result<Vec<SeedRow>, Diagnostics> {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sources = Sources::default();
    let ids: Vec<FileId> = files
        .into_iter()
        .map(|(path, text)| sources.add(path, text))
        .collect();
    let mut diags = Vec::new();
    let mut rows = Vec::new();
    for id in ids {
        read_file(schema, id, &sources.get(id).text, &mut diags, &mut rows);
    }
    let out = check(schema, &sources, rows, &mut diags);
    super::finish(sources, diags, out)
}

fn read_file(
    schema: &Schema,
    file: FileId,
    text: &str,
    diags: &mut Vec<Diagnostic>,
    rows: &mut Vec<RawRow>,
) {
    let (root, errors) = DeTable::parse_recoverable(text);
    let mut cx = Cx { file, text, diags };
    for e in errors {
        cx.error(
            e.span().unwrap_or(0..0),
            format!("invalid TOML: {}", e.message().trim_end()),
        );
    }
    for (key, val) in root.get_ref() {
        let name = key.get_ref().as_ref();
        let Some(resource) = schema.resources.iter().position(|r| r.name == name) else {
            let names = schema.resources.iter().map(|r| r.name.as_str());
            let help = match suggest(name, names) {
                Some(s) => Some(format!("did you mean `{s}`?")),
                None => schema.resources.iter().find(|r| r.plural == name).map(|r| {
                    format!(
                        "seed tables are named after the resource in the singular: `[[{}]]`",
                        r.name
                    )
                }),
            };
            cx.error_help(key.span(), format!("unknown resource `{name}`"), help);
            continue;
        };
        let tables: Vec<_> = match val.get_ref() {
            DeValue::Array(items) => items.iter().collect(),
            DeValue::Table(_) => {
                cx.error_help(
                    val.span(),
                    format!("`{name}` must be an array of tables"),
                    Some(format!("write each row under `[[{name}]]`")),
                );
                continue;
            }
            other => {
                cx.error_help(
                    val.span(),
                    format!(
                        "`{name}` must be an array of tables, found {}",
                        describe(other)
                    ),
                    Some(format!("write each row under `[[{name}]]`")),
                );
                continue;
            }
        };
        for item in tables {
            let DeValue::Table(t) = item.get_ref() else {
                cx.error(
                    item.span(),
                    format!(
                        "a `{name}` seed row must be a table, found {}",
                        describe(item.get_ref())
                    ),
                );
                continue;
            };
            let mut row = RawRow {
                resource,
                file,
                span: item.span(),
                key: None,
                fields: Vec::new(),
            };
            for (fk, fv) in t {
                let field = fk.get_ref().as_ref();
                if field == "key" {
                    match cx.want_str("key", fv) {
                        Some("") => cx.error(fv.span(), "`key` must not be empty"),
                        Some(k) => row.key = Some((k.to_owned(), fv.span())),
                        None => {}
                    }
                    continue;
                }
                match Lit::from_toml(fv.get_ref()) {
                    Ok(value) => row.fields.push(RawField {
                        name: field.to_owned(),
                        span: fk.span(),
                        value,
                        value_span: fv.span(),
                    }),
                    Err(e) => cx.error(fv.span(), e),
                }
            }
            if row.key.is_none() && !t.iter().any(|(k, _)| k.get_ref() == "key") {
                cx.error_help(
                    row.span.clone(),
                    format!("`{name}` seed row has no `key`"),
                    Some(
                        "add `key = \"…\"`: it names the row so other rows can refer to it".into(),
                    ),
                );
            }
            rows.push(row);
        }
    }
}

/// Checks fields and references, then orders the rows.
fn check(
    schema: &Schema,
    sources: &Sources,
    rows: Vec<RawRow>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<SeedRow> {
    // Keys per resource, with their position among that resource's rows.
    let mut keys: HashMap<(usize, &str), (usize, FileId, Span)> = HashMap::new();
    let mut per_resource: HashMap<usize, usize> = HashMap::new();
    let mut positions = Vec::with_capacity(rows.len());
    for row in &rows {
        let pos = per_resource.entry(row.resource).or_insert(0);
        positions.push(*pos);
        *pos += 1;
        let Some((key, span)) = &row.key else {
            continue;
        };
        if let Some((_, file, first)) = keys.get(&(row.resource, key.as_str())) {
            let line = Diagnostic::new(*file, first.clone(), "")
                .line_column(sources)
                .map_or(0, |(l, _)| l);
            diags.push(Diagnostic::new(
                row.file,
                span.clone(),
                format!(
                    "seed key `{key}` is already used by another `{}` row ({}:{line})",
                    schema.resources[row.resource].name,
                    sources.get(*file).path.display()
                ),
            ));
        } else {
            keys.insert(
                (row.resource, key.as_str()),
                (positions[positions.len() - 1], row.file, span.clone()),
            );
        }
    }

    let mut out: Vec<Option<SeedRow>> = Vec::with_capacity(rows.len());
    // Resource-level dependencies (a row of `from` refers to a row of `to`),
    // with the reference to point at if they form a cycle.
    let mut deps: Vec<(usize, usize, FileId, Span)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let res = &schema.resources[row.resource];
        let mut values: Vec<(String, Value)> = Vec::new();
        let mut ok = row.key.is_some();
        for f in &row.fields {
            match field_value(schema, res, row, f, &keys, positions[i]) {
                Ok(FieldValue::Value(column, v)) => values.push((column, v)),
                Ok(FieldValue::Reference(column, v, target)) => {
                    values.push((column, v));
                    if target != row.resource {
                        deps.push((row.resource, target, row.file, f.value_span.clone()));
                    }
                }
                Err((span, message, help)) => {
                    ok = false;
                    let mut d = Diagnostic::new(row.file, span, message);
                    d.help = help;
                    diags.push(d);
                }
            }
        }
        let given: HashSet<&str> = row.fields.iter().map(|f| f.name.as_str()).collect();
        let key_text = row
            .key
            .as_ref()
            .map_or(String::new(), |(k, _)| format!(" `{k}`"));
        for a in &res.attributes {
            if a.required && a.default.is_none() && !given.contains(a.name.as_str()) {
                ok = false;
                diags.push(Diagnostic::new(
                    row.file,
                    row.span.clone(),
                    format!(
                        "`{}` seed row{key_text} is missing required attribute `{}`",
                        res.name, a.name
                    ),
                ));
            }
        }
        for rel in &res.relationships {
            if let RelationshipKind::BelongsTo { required: true, .. } = rel.kind
                && !given.contains(rel.name.as_str())
            {
                ok = false;
                diags.push(
                    Diagnostic::new(
                        row.file,
                        row.span.clone(),
                        format!(
                            "`{}` seed row{key_text} is missing required relationship `{}`",
                            res.name, rel.name
                        ),
                    )
                    .with_help(format!(
                        "add `{} = \"<key of a {} seed row>\"`",
                        rel.name,
                        rel.target()
                    )),
                );
            }
        }
        out.push(match (&row.key, ok) {
            (Some((key, _)), true) => Some(SeedRow {
                resource: res.name.clone(),
                key: key.clone(),
                id: seed_id(&res.name, key),
                values,
            }),
            _ => None,
        });
    }

    let order = resource_order(schema, &rows, &deps, diags);
    let mut sorted = Vec::with_capacity(out.len());
    for r in order {
        for (i, row) in rows.iter().enumerate() {
            if row.resource == r
                && let Some(seed) = out[i].take()
            {
                sorted.push(seed);
            }
        }
    }
    sorted
}

enum FieldValue {
    Value(String, Value),
    /// A belongs_to: column, value, and the referenced resource's index.
    Reference(String, Value, usize),
}

type FieldError = (Span, String, Option<String>);

fn field_value(
    schema: &Schema,
    res: &Resource,
    row: &RawRow,
    f: &RawField,
    keys: &HashMap<(usize, &str), (usize, FileId, Span)>,
    position: usize,
) -> Result<FieldValue, FieldError> {
    let name = f.name.as_str();
    if IMPLICIT_FIELDS.contains(&name) {
        let why = if name == "id" {
            "is derived from the row's `key`"
        } else {
            "is set by the database"
        };
        return Err((
            f.span.clone(),
            format!("`{name}` {why} and can't be seeded"),
            None,
        ));
    }
    if let Some(a) = res.attribute(name) {
        let mut v = lit_to_value(&a.ty, &f.value).map_err(|e| {
            (
                f.value_span.clone(),
                format!("invalid value for `{name}`: {e}"),
                None,
            )
        })?;
        // The auth layer looks users up by an address's one spelling; a
        // seeded `Alice@Example.com` would otherwise never sign in, and
        // could sit beside an `alice@example.com` made at sign-up.
        if res.system
            && res.name == "user"
            && name == "email"
            && let Value::String(s) = &v
        {
            let email = crate::email::normalize(s).map_err(|why| {
                (
                    f.value_span.clone(),
                    format!("invalid value for `email`: {why}"),
                    None,
                )
            })?;
            v = Value::String(email);
        }
        return Ok(FieldValue::Value(name.to_owned(), v));
    }
    if let Some(rel) = res.relationship(name) {
        let RelationshipKind::BelongsTo { target, .. } = &rel.kind else {
            return Err((
                f.span.clone(),
                format!(
                    "`{name}` is a {} relationship and can't be seeded here",
                    match rel.kind {
                        RelationshipKind::HasMany { .. } => "has_many",
                        _ => "many_to_many",
                    }
                ),
                Some("seed the rows on the other side, which belong_to this one".into()),
            ));
        };
        let Lit::Str(key) = &f.value else {
            return Err((
                f.value_span.clone(),
                format!("`{name}` must be the key of a `{target}` seed row, as a string"),
                None,
            ));
        };
        let Some(t) = schema.resources.iter().position(|r| r.name == *target) else {
            return Err((
                f.value_span.clone(),
                format!("unknown resource `{target}`"),
                None,
            ));
        };
        let Some((target_pos, ..)) = keys.get(&(t, key.as_str())) else {
            let candidates = keys.keys().filter(|(r, _)| *r == t).map(|(_, k)| *k);
            let help = suggest(key, candidates)
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("add a `[[{target}]]` row with `key = \"{key}\"`")));
            return Err((
                f.value_span.clone(),
                format!("no `{target}` seed row has the key `{key}`"),
                help,
            ));
        };
        if t == row.resource && *target_pos >= position {
            return Err((
                f.value_span.clone(),
                format!("`{name}` refers to `{key}`, which is not an earlier `{target}` row"),
                Some(format!(
                    "rows are inserted in file order; move the `{key}` row above this one"
                )),
            ));
        }
        return Ok(FieldValue::Reference(
            format!("{name}_id"),
            Value::String(seed_id(target, key).to_string()),
            t,
        ));
    }
    let candidates: Vec<&str> = res
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .chain(res.relationships.iter().map(|r| r.name.as_str()))
        .collect();
    let help = match suggest(name, candidates) {
        Some(s) => Some(format!("did you mean `{s}`?")),
        None => name
            .strip_suffix("_id")
            .and_then(|b| res.relationship(b))
            .map(|r| {
                format!(
                    "write `{} = \"<key of a {} seed row>\"`",
                    r.name,
                    r.target()
                )
            }),
    };
    Err((
        f.span.clone(),
        format!("`{}` has no field `{name}`", res.name),
        help,
    ))
}

/// Orders the seeded resources so each comes after the ones its rows refer
/// to; ties keep schema order. Reports a cycle between resources.
fn resource_order(
    schema: &Schema,
    rows: &[RawRow],
    deps: &[(usize, usize, FileId, Span)],
    diags: &mut Vec<Diagnostic>,
) -> Vec<usize> {
    let mut seeded: Vec<usize> = rows.iter().map(|r| r.resource).collect();
    seeded.sort_unstable();
    seeded.dedup();
    let mut done: Vec<usize> = Vec::new();
    let mut left = seeded;
    while !left.is_empty() {
        let ready = left.iter().position(|r| {
            deps.iter()
                .filter(|(from, ..)| from == r)
                .all(|(_, to, ..)| done.contains(to))
        });
        match ready {
            Some(i) => done.push(left.remove(i)),
            None => {
                // Every remaining resource waits on another: a cycle.
                let r = left[0];
                if let Some((_, to, file, span)) = deps
                    .iter()
                    .find(|(from, to, ..)| *from == r && !done.contains(to))
                {
                    diags.push(
                        Diagnostic::new(
                            *file,
                            span.clone(),
                            format!(
                                "seed rows of `{}` and `{}` refer to each other in a cycle",
                                schema.resources[r].name, schema.resources[*to].name
                            ),
                        )
                        .with_help("seeds are inserted one resource at a time; leave one side of the cycle unset"),
                    );
                }
                done.append(&mut left);
            }
        }
    }
    done
}
