//! Reading one resource file into a [`FileRes`]: everything that can be
//! checked without looking at other files (keys, value types, identifiers,
//! attribute types and defaults, policy syntax).
//!
//! References to other things (relationship targets, identity fields, policy
//! paths, action fields) are kept unresolved with their spans; `resolve`
//! checks them once every file is read and `user` extensions are merged.
//!
//! An error inside a declaration must not hide an independent error
//! elsewhere, so a declaration is dropped only when what is left could not be
//! checked at all (an attribute without a known type, a relationship without
//! a kind). Otherwise it is kept and marked `damaged`: `resolve` still checks
//! the references it makes that no local error can explain (a relationship's
//! target, an action's fields and policy), but skips the checks a local
//! error could have caused, so one mistake is still reported once.

use toml::de::{DeTable, DeValue};

use super::value::{Lit, compile_pattern, lit_to_value};
use super::walk::{Cx, Key, Val, describe, list, string_offset, suggest};
use crate::diagnostic::Diagnostic;
use crate::policy;
use crate::resource::{
    ActionKind, AttrType, Attribute, FileId, OnDelete, Policy, ScalarType, Span,
};

/// Fields every resource has; they can't be declared.
pub(crate) const IMPLICIT_FIELDS: [&str; 3] = ["id", "inserted_at", "updated_at"];

/// Plurals that would collide with Kumo's own routes.
const RESERVED_PLURALS: [&str; 3] = ["auth", "activity", "admin"];

/// Action names taken by the routes every resource gets.
const RESERVED_ACTIONS: [&str; 6] = ["create", "read", "update", "destroy", "list", "get"];

const TOP_KEYS: [&str; 7] = [
    "resource",
    "attributes",
    "relationships",
    "identities",
    "indexes",
    "policies",
    "actions",
];
const RESOURCE_KEYS: [&str; 4] = ["name", "plural", "description", "renamed_from"];
const ATTR_KEYS: [&str; 17] = [
    "type",
    "required",
    "default",
    "unique",
    "index",
    "search",
    "sensitive",
    "writable",
    "description",
    "renamed_from",
    "min_length",
    "max_length",
    "pattern",
    "min",
    "max",
    "values",
    "of",
];
const REL_KEYS: [&str; 10] = [
    "belongs_to",
    "has_many",
    "many_to_many",
    "required",
    "on_delete",
    "writable",
    "via",
    "through",
    "description",
    "renamed_from",
];
pub(crate) const POLICY_KEYS: [&str; 4] = ["read", "create", "update", "destroy"];
const ACTION_KEYS: [&str; 6] = [
    "type",
    "description",
    "accept",
    "set",
    "increment",
    "policy",
];
const ACTION_TYPES: [&str; 3] = ["create", "update", "destroy"];
const ON_DELETE: [&str; 3] = ["restrict", "cascade", "nullify"];

/// One resource file after local checks.
pub(crate) struct FileRes {
    pub(crate) file: FileId,
    pub(crate) system: bool,
    /// False when `[resource]` gave no usable name (the error says so): the
    /// file joins no schema, and `resolve` checks it under its file name.
    pub(crate) named: bool,
    pub(crate) name: String,
    pub(crate) name_span: Span,
    pub(crate) plural: String,
    /// Set when `plural` was written (rather than defaulted).
    pub(crate) plural_span: Option<Span>,
    pub(crate) description: Option<String>,
    pub(crate) renamed_from: Option<(String, Span)>,
    pub(crate) attributes: Vec<Attribute>,
    pub(crate) relationships: Vec<RelSrc>,
    pub(crate) identities: Vec<IdentSrc>,
    pub(crate) indexes: Vec<IndexSrc>,
    pub(crate) policies: Vec<PolicySrc>,
    pub(crate) actions: Vec<ActionSrc>,
    /// Every attribute and relationship key, including those whose
    /// declaration had errors and was dropped. Name clashes and renames are
    /// checked on these, so an error inside a declaration never hides a
    /// clash; a dropped one's name is "broken" (see `FileRes::broken`), and
    /// references to it are not reported again as unknown.
    pub(crate) declared: Vec<Declared>,
}

/// An attribute or relationship key as written.
pub(crate) struct Declared {
    pub(crate) file: FileId,
    pub(crate) name: String,
    /// The key.
    pub(crate) span: Span,
    pub(crate) field: Field,
    /// A valid `renamed_from`, with the span of its value.
    pub(crate) renamed_from: Option<(String, Span)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Attribute,
    Relationship,
}

impl FileRes {
    /// The span to point at for the resource's plural: the written value, or
    /// the name it was derived from.
    pub(crate) fn plural_at(&self) -> Span {
        self.plural_span
            .clone()
            .unwrap_or_else(|| self.name_span.clone())
    }

    /// The names declared with errors that left nothing to check (an
    /// attribute without a known type, a relationship without a kind).
    pub(crate) fn broken(&self) -> impl Iterator<Item = &str> {
        self.declared
            .iter()
            .filter(|d| match d.field {
                Field::Attribute => !self.attributes.iter().any(|a| a.name == d.name),
                Field::Relationship => !self.relationships.iter().any(|r| r.name == d.name),
            })
            .map(|d| d.name.as_str())
    }
}

/// Each item keeps its file (as attributes do in their `file`): after `user`
/// is merged, items of one resource come from several files.
pub(crate) struct RelSrc {
    pub(crate) file: FileId,
    pub(crate) name: String,
    pub(crate) span: Span,
    pub(crate) kind: RawKind,
    pub(crate) target_span: Span,
    pub(crate) description: Option<String>,
    pub(crate) renamed_from: Option<(String, Span)>,
    /// The declaration had errors of its own; only its target (and `through`)
    /// are looked up.
    pub(crate) damaged: bool,
}

pub(crate) enum RawKind {
    BelongsTo {
        target: String,
        required: bool,
        on_delete: OnDelete,
        writable: bool,
    },
    HasMany {
        target: String,
        via: Option<(String, Span)>,
    },
    ManyToMany {
        target: String,
        /// Missing only on a damaged relationship (the error says so).
        through: Option<(String, Span)>,
    },
}

impl RawKind {
    pub(crate) fn target(&self) -> &str {
        match self {
            RawKind::BelongsTo { target, .. }
            | RawKind::HasMany { target, .. }
            | RawKind::ManyToMany { target, .. } => target,
        }
    }

    pub(crate) fn label(&self) -> &'static str {
        match self {
            RawKind::BelongsTo { .. } => "belongs_to",
            RawKind::HasMany { .. } => "has_many",
            RawKind::ManyToMany { .. } => "many_to_many",
        }
    }
}

pub(crate) struct IdentSrc {
    pub(crate) file: FileId,
    pub(crate) name: String,
    pub(crate) span: Span,
    pub(crate) fields: Vec<(String, Span)>,
    /// The declaration had errors of its own; its fields are still looked up.
    pub(crate) damaged: bool,
}

/// An entry of `[indexes]`.
pub(crate) struct IndexSrc {
    pub(crate) file: FileId,
    pub(crate) name: String,
    pub(crate) span: Span,
    /// Field name (without the `-`), descending, the span of the string.
    pub(crate) keys: Vec<(String, bool, Span)>,
    /// The declaration had errors of its own; its fields are still looked up.
    pub(crate) damaged: bool,
}

pub(crate) struct PolicySrc {
    /// One of [`POLICY_KEYS`].
    pub(crate) action: &'static str,
    pub(crate) policy: Policy,
}

pub(crate) struct ActionSrc {
    pub(crate) file: FileId,
    pub(crate) name: String,
    pub(crate) span: Span,
    /// `None` when `type` is missing or unknown (the error says so).
    pub(crate) kind: Option<ActionKind>,
    /// The declaration had errors of its own; its fields and policy are still
    /// checked, but not whether a create action sets every required field
    /// (a malformed `accept` would make that a follow-on error).
    pub(crate) damaged: bool,
    pub(crate) description: Option<String>,
    pub(crate) accept: Vec<(String, Span)>,
    pub(crate) accept_span: Option<Span>,
    /// Field, field span, literal, literal span.
    pub(crate) set: Vec<(String, Span, Lit, Span)>,
    pub(crate) set_span: Option<Span>,
    pub(crate) increment: Vec<(String, Span, Lit, Span)>,
    pub(crate) increment_span: Option<Span>,
    pub(crate) policy: Option<Policy>,
}

/// Parses one resource file. A file that names no resource is still
/// returned with `named` false, so what it declares is checked too.
pub(crate) fn parse_file(
    file: FileId,
    text: &str,
    system: bool,
    diags: &mut Vec<Diagnostic>,
) -> FileRes {
    let (root, errors) = DeTable::parse_recoverable(text);
    let mut cx = Cx { file, text, diags };
    for e in errors {
        let span = e.span().unwrap_or(0..0);
        cx.error(span, format!("invalid TOML: {}", e.message().trim_end()));
    }

    let mut out = FileRes {
        file,
        system,
        named: false,
        name: String::new(),
        name_span: 0..0,
        plural: String::new(),
        plural_span: None,
        description: None,
        renamed_from: None,
        attributes: Vec::new(),
        relationships: Vec::new(),
        identities: Vec::new(),
        indexes: Vec::new(),
        policies: Vec::new(),
        actions: Vec::new(),
        declared: Vec::new(),
    };
    let mut saw_resource = false;
    for (key, val) in root.get_ref() {
        let k = key.get_ref().as_ref();
        match k {
            "resource" => {
                saw_resource = true;
                if let Some(t) = cx.want_table("resource", val) {
                    out.named = parse_resource_table(&mut cx, t, val.span(), &mut out);
                }
            }
            "attributes" => {
                if let Some(t) = cx.want_table("attributes", val) {
                    for (k, v) in t {
                        let mut renamed_from = None;
                        out.attributes
                            .extend(parse_attribute(&mut cx, k, v, &mut renamed_from));
                        out.declared.push(Declared {
                            file,
                            name: k.get_ref().to_string(),
                            span: k.span(),
                            field: Field::Attribute,
                            renamed_from,
                        });
                    }
                }
            }
            "relationships" => {
                if let Some(t) = cx.want_table("relationships", val) {
                    for (k, v) in t {
                        let mut renamed_from = None;
                        out.relationships.extend(parse_relationship(
                            &mut cx,
                            k,
                            v,
                            &mut renamed_from,
                        ));
                        out.declared.push(Declared {
                            file,
                            name: k.get_ref().to_string(),
                            span: k.span(),
                            field: Field::Relationship,
                            renamed_from,
                        });
                    }
                }
            }
            "identities" => {
                if let Some(t) = cx.want_table("identities", val) {
                    for (k, v) in t {
                        out.identities.extend(parse_identity(&mut cx, k, v));
                    }
                }
            }
            "indexes" => {
                if let Some(t) = cx.want_table("indexes", val) {
                    for (k, v) in t {
                        out.indexes.extend(parse_index(&mut cx, k, v));
                    }
                }
            }
            "policies" => {
                if let Some(t) = cx.want_table("policies", val) {
                    for (k, v) in t {
                        out.policies.extend(parse_policy_entry(&mut cx, k, v));
                    }
                }
            }
            "actions" => {
                if let Some(t) = cx.want_table("actions", val) {
                    for (k, v) in t {
                        out.actions.extend(parse_action(&mut cx, k, v));
                    }
                }
            }
            _ => cx.unknown_key(key, "at the top level of a resource file", &TOP_KEYS),
        }
    }
    if !saw_resource {
        cx.error_help(
            0..0,
            "missing `[resource]` table",
            Some("start the file with `[resource]` and a line such as `name = \"avatar\"`".into()),
        );
    }
    if !out.named {
        // Whether a has_many or many_to_many is answered by a belongs_to
        // elsewhere depends on this resource's name, which is unknown.
        for rel in &mut out.relationships {
            rel.damaged = true;
        }
    }
    out
}

/// Reads `[resource]`; returns whether a usable name was found.
fn parse_resource_table(cx: &mut Cx<'_>, t: &DeTable<'_>, header: Span, out: &mut FileRes) -> bool {
    let mut name = None;
    for (key, val) in t {
        match key.get_ref().as_ref() {
            "name" => name = cx.want_str("name", val).map(|s| (s.to_owned(), val.span())),
            "plural" => {
                if let Some(p) = cx.want_str("plural", val) {
                    out.plural = p.to_owned();
                    out.plural_span = Some(val.span());
                }
            }
            "description" => {
                out.description = cx.want_str("description", val).map(str::to_owned);
            }
            "renamed_from" => {
                if let Some(r) = cx.want_str("renamed_from", val)
                    && cx.check_ident("`renamed_from`", r, val.span())
                {
                    out.renamed_from = Some((r.to_owned(), val.span()));
                }
            }
            _ => cx.unknown_key(key, "in `[resource]`", &RESOURCE_KEYS),
        }
    }
    let Some((name, span)) = name else {
        if !t.iter().any(|(k, _)| k.get_ref() == "name") {
            cx.error_help(
                header,
                "`[resource]` has no `name`",
                Some("add a line such as `name = \"avatar\"`".into()),
            );
        }
        return false;
    };
    if cx.check_ident("resource name", &name, span.clone()) {
        check_not_kumo(cx, "resource name", &name, span.clone());
    }
    if out.plural_span.is_none() {
        out.plural = format!("{name}s");
        if name.len() <= super::walk::MAX_IDENT && out.plural.len() > super::walk::MAX_IDENT {
            cx.check_ident("plural", &out.plural, span.clone());
        }
    } else if let Some(pspan) = out.plural_span.clone() {
        let plural = out.plural.clone();
        if cx.check_ident("plural", &plural, pspan.clone()) {
            check_not_kumo(cx, "plural", &plural, pspan);
        }
    }
    if RESERVED_PLURALS.contains(&out.plural.as_str()) {
        cx.error_help(
            out.plural_at(),
            format!("plural `{}` is reserved", out.plural),
            Some(format!(
                "Kumo serves its own routes under `/{}`; set another `plural`",
                out.plural
            )),
        );
    }
    if let Some((old, old_span)) = &out.renamed_from
        && *old == name
    {
        cx.error(
            old_span.clone(),
            format!("`renamed_from` is the resource's own name `{name}`"),
        );
    }
    out.name = name;
    out.name_span = span;
    true
}

fn check_not_kumo(cx: &mut Cx<'_>, what: &str, name: &str, span: Span) {
    if name.starts_with("kumo_") {
        cx.error_help(
            span,
            format!("{what} `{name}` starts with `kumo_`"),
            Some("names starting with `kumo_` are reserved for Kumo's own tables".into()),
        );
    }
}

/// Checks an attribute or relationship name; reports reserved names.
fn check_field_name(cx: &mut Cx<'_>, what: &str, key: &Key<'_>) {
    let name = key.get_ref().as_ref();
    if cx.check_ident(what, name, key.span()) && IMPLICIT_FIELDS.contains(&name) {
        cx.error_help(
            key.span(),
            format!("`{name}` is reserved"),
            Some("every resource already has `id`, `inserted_at` and `updated_at`".into()),
        );
    }
}

/// Parses one attribute; `None` when it has errors. A valid `renamed_from`
/// is left in `renamed` either way, for the name checks.
fn parse_attribute(
    cx: &mut Cx<'_>,
    key: &Key<'_>,
    v: &Val<'_>,
    renamed: &mut Option<(String, Span)>,
) -> Option<Attribute> {
    let name = key.get_ref().as_ref();
    let mark = cx.mark();
    check_field_name(cx, "attribute name", key);
    let table = match v.get_ref() {
        DeValue::Table(t) => t,
        DeValue::String(s) => {
            cx.error_help(
                v.span(),
                format!("attribute `{name}` must be a table, found a string"),
                Some(format!(
                    "write `{name} = {{ type = \"{s}\" }}`; a bare type name is not accepted"
                )),
            );
            return None;
        }
        other => {
            cx.error_help(
                v.span(),
                format!(
                    "attribute `{name}` must be a table, found {}",
                    describe(other)
                ),
                Some(format!("write `{name} = {{ type = \"string\" }}`")),
            );
            return None;
        }
    };

    let mut ty_name: Option<(String, Span)> = None;
    let mut saw_type = false;
    let (mut required, mut unique, mut sensitive) = (false, false, false);
    let mut writable = true;
    let mut unique_span = None;
    let mut index = false;
    let mut index_span = None;
    let mut search = false;
    let mut search_span = None;
    let mut default: Option<&Val<'_>> = None;
    let mut description = None;
    let mut min_length: Option<(u32, Span)> = None;
    let mut max_length: Option<(u32, Span)> = None;
    let mut pattern: Option<(String, Span)> = None;
    let mut min: Option<(&Val<'_>, Span)> = None;
    let mut max: Option<(&Val<'_>, Span)> = None;
    let mut values: Option<(Vec<(String, Span)>, Span)> = None;
    let mut values_given = false;
    let mut of: Option<(String, Span)> = None;
    let mut of_given = false;
    // Type-specific options, checked against the type once it is known.
    let mut specific: Vec<(&str, Span)> = Vec::new();

    for (k, val) in table {
        let opt = k.get_ref().as_ref();
        match opt {
            "type" => {
                saw_type = true;
                ty_name = cx.want_str("type", val).map(|s| (s.to_owned(), val.span()));
            }
            "required" => required = cx.want_bool(opt, val).unwrap_or(false),
            "unique" => {
                unique = cx.want_bool(opt, val).unwrap_or(false);
                unique_span = Some(k.span());
            }
            "index" => {
                index = cx.want_bool(opt, val).unwrap_or(false);
                index_span = Some(k.span());
            }
            "search" => {
                search = cx.want_bool(opt, val).unwrap_or(false);
                search_span = Some(k.span());
            }
            "sensitive" => sensitive = cx.want_bool(opt, val).unwrap_or(false),
            "writable" => writable = cx.want_bool(opt, val).unwrap_or(true),
            "default" => default = Some(val),
            "description" => description = cx.want_str(opt, val).map(str::to_owned),
            "renamed_from" => {
                if let Some(r) = cx.want_str(opt, val)
                    && cx.check_ident("`renamed_from`", r, val.span())
                {
                    if r == name {
                        cx.error(
                            val.span(),
                            format!("`renamed_from` is the attribute's own name `{name}`"),
                        );
                    } else {
                        *renamed = Some((r.to_owned(), val.span()));
                    }
                }
            }
            "min_length" | "max_length" => {
                specific.push((
                    if opt == "min_length" {
                        "min_length"
                    } else {
                        "max_length"
                    },
                    k.span(),
                ));
                if let Some(n) = cx.want_int(opt, val) {
                    match u32::try_from(n) {
                        Ok(n) => {
                            let slot = if opt == "min_length" {
                                &mut min_length
                            } else {
                                &mut max_length
                            };
                            *slot = Some((n, k.span()));
                        }
                        Err(_) if n < 0 => {
                            cx.error(val.span(), format!("`{opt}` must not be negative"));
                        }
                        Err(_) => cx.error(val.span(), format!("`{opt}` is too large")),
                    }
                }
            }
            "pattern" => {
                specific.push(("pattern", k.span()));
                if let Some(p) = cx.want_str(opt, val) {
                    match compile_pattern(p) {
                        Ok(_) => pattern = Some((p.to_owned(), val.span())),
                        Err(e) => cx.error(val.span(), e),
                    }
                }
            }
            "min" => {
                specific.push(("min", k.span()));
                min = Some((val, k.span()));
            }
            "max" => {
                specific.push(("max", k.span()));
                max = Some((val, k.span()));
            }
            "values" => {
                specific.push(("values", k.span()));
                values_given = true;
                values = cx.want_str_list(opt, val).map(|l| (l, val.span()));
            }
            "of" => {
                specific.push(("of", k.span()));
                of_given = true;
                of = cx.want_str(opt, val).map(|s| (s.to_owned(), val.span()));
            }
            _ => cx.unknown_key(k, &format!("in attribute `{name}`"), &ATTR_KEYS),
        }
    }

    let Some((tn, tspan)) = ty_name else {
        if !saw_type {
            cx.error_help(
                key.span(),
                format!("attribute `{name}` has no `type`"),
                Some(format!(
                    "add `type = \"string\"`; the types are {}",
                    list(&AttrType::ALL)
                )),
            );
        }
        return None;
    };
    if !AttrType::ALL.contains(&tn.as_str()) {
        let help = match type_alias(&tn).or_else(|| suggest(&tn, AttrType::ALL)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("the types are {}", list(&AttrType::ALL)),
        };
        cx.error_help(tspan, format!("unknown type `{tn}`"), Some(help));
        return None;
    }

    for (opt, span) in &specific {
        let (applies, types) = match *opt {
            "min_length" | "max_length" | "pattern" => (tn == "string", "string attributes"),
            "min" | "max" => (
                tn == "integer" || tn == "float",
                "integer and float attributes",
            ),
            "values" => (tn == "enum", "enum attributes"),
            _ => (tn == "array", "array attributes"),
        };
        if !applies {
            cx.error(span.clone(), format!("`{opt}` applies only to {types}"));
        }
    }
    let before_type = cx.mark();
    let ty = match tn.as_str() {
        "string" => {
            if let (Some((lo, lo_span)), Some((hi, _))) = (&min_length, &max_length)
                && lo > hi
            {
                cx.error(
                    lo_span.clone(),
                    format!("`min_length` ({lo}) is greater than `max_length` ({hi})"),
                );
            }
            AttrType::String {
                min_length: min_length.map(|(n, _)| n),
                max_length: max_length.map(|(n, _)| n),
                pattern: pattern.map(|(p, _)| p),
            }
        }
        "text" => AttrType::Text,
        "integer" => {
            let lo = min.as_ref().and_then(|(v, _)| int_bound(cx, "min", v));
            let hi = max.and_then(|(v, _)| int_bound(cx, "max", v));
            if let (Some(l), Some(h), Some((_, span))) = (lo, hi, &min)
                && l > h
            {
                cx.error(
                    span.clone(),
                    format!("`min` ({l}) is greater than `max` ({h})"),
                );
            }
            AttrType::Integer { min: lo, max: hi }
        }
        "float" => {
            let lo = min.as_ref().and_then(|(v, _)| float_bound(cx, "min", v));
            let hi = max.and_then(|(v, _)| float_bound(cx, "max", v));
            if let (Some(l), Some(h), Some((_, span))) = (lo, hi, &min)
                && l > h
            {
                cx.error(
                    span.clone(),
                    format!("`min` ({l}) is greater than `max` ({h})"),
                );
            }
            AttrType::Float { min: lo, max: hi }
        }
        "boolean" => AttrType::Boolean,
        "uuid" => AttrType::Uuid,
        "date" => AttrType::Date,
        "datetime" => AttrType::Datetime,
        "json" => AttrType::Json,
        "enum" => {
            let mut out = Vec::new();
            match values {
                Some((items, span)) => {
                    if items.is_empty() {
                        cx.error(span, "`values` must list at least one value");
                    }
                    for (v, vspan) in items {
                        if v.is_empty() {
                            cx.error(vspan, "enum values must not be empty");
                        } else if out.contains(&v) {
                            cx.error(vspan, format!("`values` lists `{v}` twice"));
                        } else {
                            out.push(v);
                        }
                    }
                }
                None if !values_given => cx.error_help(
                    key.span(),
                    format!("enum attribute `{name}` has no `values`"),
                    Some(
                        "add the allowed values, such as `values = [\"small\", \"large\"]`".into(),
                    ),
                ),
                None => {}
            }
            AttrType::Enum { values: out }
        }
        _ => {
            let scalar = match of {
                Some((of, span)) => match ScalarType::parse(&of) {
                    Some(s) => Some(s),
                    None => {
                        let help = match suggest(&of, ScalarType::ALL) {
                            Some(s) if !AttrType::ALL.contains(&of.as_str()) => {
                                format!("did you mean `{s}`?")
                            }
                            _ => format!("arrays hold {}", list(&ScalarType::ALL)),
                        };
                        let msg = if AttrType::ALL.contains(&of.as_str()) {
                            format!("arrays can't hold `{of}` values")
                        } else {
                            format!("unknown type `{of}`")
                        };
                        cx.error_help(span, msg, Some(help));
                        None
                    }
                },
                None => {
                    if !of_given {
                        cx.error_help(
                            key.span(),
                            format!("array attribute `{name}` has no `of`"),
                            Some(format!(
                                "add the element type, such as `of = \"string\"`; arrays hold {}",
                                list(&ScalarType::ALL)
                            )),
                        );
                    }
                    None
                }
            };
            AttrType::Array {
                of: scalar.unwrap_or(ScalarType::String),
            }
        }
    };
    let type_ok = !cx.failed_since(before_type);

    if unique
        && matches!(ty, AttrType::Json | AttrType::Array { .. })
        && let Some(span) = unique_span
    {
        cx.error_help(
            span,
            format!("`unique` is not allowed on {tn} attributes"),
            Some("the database can't index these values for uniqueness".into()),
        );
    }

    if index
        && matches!(ty, AttrType::Json | AttrType::Array { .. })
        && let Some(span) = index_span
    {
        cx.error_help(
            span,
            format!("`index` is not allowed on {tn} attributes"),
            Some(
                "lists can't be filtered or sorted by these values, so an index would not be used"
                    .into(),
            ),
        );
    }

    if search && let Some(span) = search_span {
        if !matches!(ty, AttrType::String { .. } | AttrType::Text) {
            cx.error_help(
                span,
                format!("`search` is not allowed on {tn} attributes"),
                Some("searching finds text inside string and text attributes".into()),
            );
        } else if sensitive {
            cx.error_help(
                span,
                "`search` is not allowed on a sensitive attribute",
                Some("a sensitive value is never shown, so no one may search by it".into()),
            );
        }
    }

    let mut default_value = None;
    if let Some(d) = default
        && type_ok
    {
        match Lit::from_toml(d.get_ref()).and_then(|lit| lit_to_value(&ty, &lit)) {
            Ok(v) => default_value = Some(v),
            Err(e) => cx.error(d.span(), format!("invalid default for `{name}`: {e}")),
        }
    }

    if cx.failed_since(mark) {
        return None;
    }
    Some(Attribute {
        name: name.to_owned(),
        ty,
        required,
        default: default_value,
        unique,
        sensitive,
        description,
        renamed_from: renamed.as_ref().map(|(r, _)| r.clone()),
        writable,
        index,
        search,
        file: cx.file,
        span: key.span(),
    })
}

/// Kumo's name for a type as other languages and databases spell it.
fn type_alias(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "int" | "i32" | "i64" | "bigint" | "long" => "integer",
        "bool" => "boolean",
        "str" | "varchar" => "string",
        "double" | "real" | "number" | "decimal" | "f64" => "float",
        "timestamp" | "timestamptz" | "time" => "datetime",
        "object" | "dict" | "dictionary" | "map" | "jsonb" => "json",
        "list" | "vec" => "array",
        _ => return None,
    })
}

fn int_bound(cx: &mut Cx<'_>, opt: &str, v: &Val<'_>) -> Option<i64> {
    match v.get_ref() {
        DeValue::Integer(_) => cx.want_int(opt, v),
        other => {
            cx.error(
                v.span(),
                format!(
                    "`{opt}` of an integer attribute must be an integer, found {}",
                    describe(other)
                ),
            );
            None
        }
    }
}

fn float_bound(cx: &mut Cx<'_>, opt: &str, v: &Val<'_>) -> Option<f64> {
    match v.get_ref() {
        DeValue::Integer(_) | DeValue::Float(_) => match Lit::from_toml(v.get_ref()) {
            Ok(Lit::Int(i)) => Some(i as f64),
            Ok(Lit::Float(x)) => Some(x),
            Ok(_) => None,
            Err(e) => {
                cx.error(v.span(), e);
                None
            }
        },
        other => {
            cx.error(
                v.span(),
                format!("`{opt}` must be a number, found {}", describe(other)),
            );
            None
        }
    }
}

/// Parses one relationship; `None` only when it has no usable kind and
/// target. Any other error leaves it `damaged`. A valid `renamed_from` is
/// left in `renamed` either way, for the name checks.
fn parse_relationship(
    cx: &mut Cx<'_>,
    key: &Key<'_>,
    v: &Val<'_>,
    renamed: &mut Option<(String, Span)>,
) -> Option<RelSrc> {
    let name = key.get_ref().as_ref();
    let mark = cx.mark();
    check_field_name(cx, "relationship name", key);
    let table = match v.get_ref() {
        DeValue::Table(t) => t,
        other => {
            cx.error_help(
                v.span(),
                format!(
                    "relationship `{name}` must be a table, found {}",
                    describe(other)
                ),
                Some(format!("write `{name} = {{ belongs_to = \"user\" }}`")),
            );
            return None;
        }
    };

    let mut kinds: Vec<(&str, String, Span, Span)> = Vec::new();
    let mut required: Option<(bool, Span)> = None;
    let mut writable: Option<(bool, Span)> = None;
    let mut on_delete: Option<(OnDelete, Span, Span)> = None;
    let mut via: Option<(String, Span, Span)> = None;
    let mut through: Option<(String, Span, Span)> = None;
    let mut description = None;
    let mut renamed_from: Option<(String, Span, Span)> = None;
    for (k, val) in table {
        let opt = k.get_ref().as_ref();
        match opt {
            "belongs_to" | "has_many" | "many_to_many" => {
                let label = match opt {
                    "belongs_to" => "belongs_to",
                    "has_many" => "has_many",
                    _ => "many_to_many",
                };
                if let Some(t) = cx.want_str(opt, val) {
                    kinds.push((label, t.to_owned(), val.span(), k.span()));
                }
            }
            "required" => {
                if let Some(b) = cx.want_bool(opt, val) {
                    required = Some((b, k.span()));
                }
            }
            "writable" => {
                if let Some(b) = cx.want_bool(opt, val) {
                    writable = Some((b, k.span()));
                }
            }
            "on_delete" => {
                if let Some(s) = cx.want_str(opt, val) {
                    match OnDelete::parse(s) {
                        Some(od) => on_delete = Some((od, val.span(), k.span())),
                        None => {
                            let help = match suggest(s, ON_DELETE) {
                                Some(g) => format!("did you mean `{g}`?"),
                                None => format!("expected {}", list(&ON_DELETE)),
                            };
                            cx.error_help(
                                val.span(),
                                format!("unknown `on_delete` value `{s}`"),
                                Some(help),
                            );
                        }
                    }
                }
            }
            "via" => {
                via = cx
                    .want_str(opt, val)
                    .map(|s| (s.to_owned(), val.span(), k.span()))
            }
            "through" => {
                through = cx
                    .want_str(opt, val)
                    .map(|s| (s.to_owned(), val.span(), k.span()));
            }
            "description" => description = cx.want_str(opt, val).map(str::to_owned),
            "renamed_from" => {
                if let Some(r) = cx.want_str(opt, val)
                    && cx.check_ident("`renamed_from`", r, val.span())
                {
                    if r == name {
                        cx.error(
                            val.span(),
                            format!("`renamed_from` is the relationship's own name `{name}`"),
                        );
                    } else {
                        *renamed = Some((r.to_owned(), val.span()));
                    }
                    renamed_from = Some((r.to_owned(), val.span(), k.span()));
                }
            }
            _ => cx.unknown_key(k, &format!("in relationship `{name}`"), &REL_KEYS),
        }
    }

    let (kind, target, target_span) = match kinds.as_slice() {
        [] => {
            if !table.iter().any(|(k, _)| {
                matches!(
                    k.get_ref().as_ref(),
                    "belongs_to" | "has_many" | "many_to_many"
                )
            }) {
                cx.error_help(
                    key.span(),
                    format!("relationship `{name}` has no kind"),
                    Some("add one of `belongs_to`, `has_many` or `many_to_many` naming the other resource".into()),
                );
            }
            return None;
        }
        [(kind, target, span, _)] => (*kind, target.clone(), span.clone()),
        [_, (_, _, _, second), ..] => {
            cx.error(
                second.clone(),
                format!(
                    "relationship `{name}` can have only one of `belongs_to`, `has_many` or `many_to_many`"
                ),
            );
            return None;
        }
    };

    let only = |cx: &mut Cx<'_>, opt: &str, span: Option<Span>, applies: &str| {
        if let Some(span) = span {
            cx.error(
                span,
                format!("`{opt}` applies only to {applies} relationships"),
            );
        }
    };
    if kind != "belongs_to" {
        only(
            cx,
            "required",
            required.as_ref().map(|r| r.1.clone()),
            "belongs_to",
        );
        only(
            cx,
            "on_delete",
            on_delete.as_ref().map(|o| o.2.clone()),
            "belongs_to",
        );
        only(
            cx,
            "writable",
            writable.as_ref().map(|w| w.1.clone()),
            "belongs_to",
        );
        only(
            cx,
            "renamed_from",
            renamed_from.as_ref().map(|r| r.2.clone()),
            "belongs_to",
        );
    }
    if kind != "has_many" {
        only(cx, "via", via.as_ref().map(|v| v.2.clone()), "has_many");
    }
    if kind != "many_to_many" {
        only(
            cx,
            "through",
            through.as_ref().map(|t| t.2.clone()),
            "many_to_many",
        );
    }

    let raw = match kind {
        "belongs_to" => {
            let required = required.is_some_and(|r| r.0);
            let on_delete_value = on_delete.as_ref().map_or(OnDelete::Restrict, |o| o.0);
            if required
                && on_delete_value == OnDelete::Nullify
                && let Some((_, span, _)) = &on_delete
            {
                cx.error_help(
                    span.clone(),
                    format!("required belongs_to `{name}` can't use `on_delete = \"nullify\"`"),
                    Some(format!(
                        "nullify sets `{name}_id` to null, which `required` forbids; use `cascade` or `restrict`, or drop `required`"
                    )),
                );
            }
            RawKind::BelongsTo {
                target,
                required,
                on_delete: on_delete_value,
                writable: writable.is_none_or(|w| w.0),
            }
        }
        "has_many" => RawKind::HasMany {
            target,
            via: via.map(|(v, span, _)| (v, span)),
        },
        _ => {
            if through.is_none() && !table.iter().any(|(k, _)| k.get_ref() == "through") {
                cx.error_help(
                    key.span(),
                    format!("many_to_many `{name}` has no `through`"),
                    Some("name the join resource that belongs_to both sides, such as `through = \"avatar_tag\"`".into()),
                );
            }
            RawKind::ManyToMany {
                target,
                through: through.map(|(t, span, _)| (t, span)),
            }
        }
    };
    Some(RelSrc {
        file: cx.file,
        name: name.to_owned(),
        span: key.span(),
        kind: raw,
        target_span,
        description,
        renamed_from: renamed_from.map(|(r, span, _)| (r, span)),
        damaged: cx.failed_since(mark),
    })
}

/// Parses one identity; `None` only when its value is not a list of
/// strings. Any other error leaves it `damaged`.
fn parse_identity(cx: &mut Cx<'_>, key: &Key<'_>, v: &Val<'_>) -> Option<IdentSrc> {
    let name = key.get_ref().as_ref();
    let mark = cx.mark();
    cx.check_ident("identity name", name, key.span());
    let fields = cx.want_str_list(name, v)?;
    if fields.is_empty() {
        cx.error(v.span(), format!("identity `{name}` lists no fields"));
    }
    for (i, (f, span)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(g, _)| g == f) {
            cx.error(span.clone(), format!("identity `{name}` lists `{f}` twice"));
        }
    }
    Some(IdentSrc {
        file: cx.file,
        name: name.to_owned(),
        span: key.span(),
        fields,
        damaged: cx.failed_since(mark),
    })
}

/// Parses one `[indexes]` entry: a list of field names, each optionally
/// prefixed with `-` (descending). `None` only when its value is not a list
/// of strings; any other error leaves it `damaged`.
fn parse_index(cx: &mut Cx<'_>, key: &Key<'_>, v: &Val<'_>) -> Option<IndexSrc> {
    let name = key.get_ref().as_ref();
    let mark = cx.mark();
    cx.check_ident("index name", name, key.span());
    let fields = match v.get_ref() {
        DeValue::Array(_) => cx.want_str_list(name, v)?,
        other => {
            cx.error_help(
                v.span(),
                format!("index `{name}` must be a list of fields, found {}", describe(other)),
                Some(format!("write `{name} = [\"-score\", \"name\"]`: the fields in order, `-` for descending")),
            );
            return None;
        }
    };
    if fields.is_empty() {
        cx.error(v.span(), format!("index `{name}` lists no fields"));
    }
    let mut keys: Vec<(String, bool, Span)> = Vec::new();
    for (field, span) in fields {
        let (descending, bare) = match field.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, field.as_str()),
        };
        if !super::walk::is_ident(bare) {
            let help = if bare.starts_with('+') {
                "fields are ascending unless prefixed with `-`; drop the `+`".to_owned()
            } else {
                "write a field name, with `-` in front for descending order: `\"-score\"`"
                    .to_owned()
            };
            cx.error_help(span, format!("`{field}` is not a field name"), Some(help));
            continue;
        }
        if keys.iter().any(|(k, _, _)| k == bare) {
            cx.error(span, format!("index `{name}` lists `{bare}` twice"));
            continue;
        }
        keys.push((bare.to_owned(), descending, span));
    }
    Some(IndexSrc {
        file: cx.file,
        name: name.to_owned(),
        span: key.span(),
        keys,
        damaged: cx.failed_since(mark),
    })
}

fn parse_policy_entry(cx: &mut Cx<'_>, key: &Key<'_>, v: &Val<'_>) -> Option<PolicySrc> {
    let k = key.get_ref().as_ref();
    let Some(action) = POLICY_KEYS.iter().copied().find(|p| *p == k) else {
        let help = match k {
            "delete" | "remove" => "did you mean `destroy`?".to_owned(),
            "list" | "get" | "show" | "index" => {
                "`read` covers both listing and getting records".to_owned()
            }
            "write" | "edit" => "did you mean `update`?".to_owned(),
            _ => match suggest(k, POLICY_KEYS) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("the policies are {}", list(&POLICY_KEYS)),
            },
        };
        cx.error_help(key.span(), format!("unknown policy `{k}`"), Some(help));
        return None;
    };
    let src = cx.want_str(k, v)?;
    let policy = parse_policy(cx, v, src)?;
    Some(PolicySrc { action, policy })
}

/// Parses a policy string, reporting a syntax error at its position inside
/// the TOML string.
fn parse_policy(cx: &mut Cx<'_>, v: &Val<'_>, src: &str) -> Option<Policy> {
    match policy::parse(src) {
        Ok(expr) => Some(Policy {
            source: src.to_owned(),
            expr,
            file: cx.file,
            span: v.span(),
        }),
        Err(e) => {
            let span = v.span();
            let start = string_offset(cx.text, &span, e.span.start);
            let end = string_offset(cx.text, &span, e.span.end).max(start);
            cx.error_help(start..end, format!("invalid policy: {}", e.message), e.help);
            None
        }
    }
}

/// Parses one action; `None` only when it is not a table. Any other error
/// leaves it `damaged`.
fn parse_action(cx: &mut Cx<'_>, key: &Key<'_>, v: &Val<'_>) -> Option<ActionSrc> {
    let name = key.get_ref().as_ref();
    let mark = cx.mark();
    if cx.check_ident("action name", name, key.span()) && RESERVED_ACTIONS.contains(&name) {
        cx.error_help(
            key.span(),
            format!("action name `{name}` is reserved"),
            Some(format!(
                "{} are built into every resource; name actions after what they do, such as `publish`",
                super::walk::list_and(&RESERVED_ACTIONS)
            )),
        );
    }
    let table = cx.want_table(name, v)?;
    let mut kind = None;
    let mut saw_type = false;
    let mut description = None;
    let mut accept = Vec::new();
    let mut accept_span = None;
    let mut set = Vec::new();
    let mut set_span = None;
    let mut increment = Vec::new();
    let mut increment_span = None;
    let mut policy = None;
    for (k, val) in table {
        let opt = k.get_ref().as_ref();
        match opt {
            "type" => {
                saw_type = true;
                if let Some(t) = cx.want_str(opt, val) {
                    kind = match t {
                        "create" => Some(ActionKind::Create),
                        "update" => Some(ActionKind::Update),
                        "destroy" => Some(ActionKind::Destroy),
                        _ => {
                            let help = match suggest(t, ACTION_TYPES) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => format!("expected {}", list(&ACTION_TYPES)),
                            };
                            cx.error_help(
                                val.span(),
                                format!("unknown action type `{t}`"),
                                Some(help),
                            );
                            None
                        }
                    };
                }
            }
            "description" => description = cx.want_str(opt, val).map(str::to_owned),
            "accept" => {
                accept_span = Some(k.span());
                if let Some(items) = cx.want_str_list(opt, val) {
                    for (i, (f, span)) in items.iter().enumerate() {
                        if items[..i].iter().any(|(g, _)| g == f) {
                            cx.error(span.clone(), format!("`accept` lists `{f}` twice"));
                        }
                    }
                    accept = items;
                }
            }
            "set" | "increment" => {
                let Some(t) = cx.want_table(opt, val) else {
                    continue;
                };
                let mut items = Vec::new();
                for (fk, fv) in t {
                    match Lit::from_toml(fv.get_ref()) {
                        Ok(lit) => {
                            if opt == "increment" && !matches!(lit, Lit::Int(_) | Lit::Float(_)) {
                                cx.error(
                                    fv.span(),
                                    format!(
                                        "`increment` amounts must be numbers, found {}",
                                        describe(fv.get_ref())
                                    ),
                                );
                                continue;
                            }
                            items.push((fk.get_ref().to_string(), fk.span(), lit, fv.span()));
                        }
                        Err(e) => cx.error(fv.span(), e),
                    }
                }
                if opt == "set" {
                    set = items;
                    set_span = Some(k.span());
                } else {
                    increment = items;
                    increment_span = Some(k.span());
                }
            }
            "policy" => {
                if let Some(src) = cx.want_str(opt, val) {
                    policy = parse_policy(cx, val, src);
                }
            }
            _ => cx.unknown_key(k, &format!("in action `{name}`"), &ACTION_KEYS),
        }
    }
    if !saw_type {
        cx.error_help(
            key.span(),
            format!("action `{name}` has no `type`"),
            Some("add `type = \"update\"` (or `create` or `destroy`)".into()),
        );
    }
    Some(ActionSrc {
        file: cx.file,
        name: name.to_owned(),
        span: key.span(),
        kind,
        damaged: cx.failed_since(mark),
        description,
        accept,
        accept_span,
        set,
        set_span,
        increment,
        increment_span,
        policy,
    })
}
