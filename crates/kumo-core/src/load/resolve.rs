//! Checks that span files: duplicate resources, system names, merging a
//! project's `user` extension into the built-in resource, relationship
//! targets and back-references, identity and index fields, policy paths and types
//! (the typing itself is in `policy_types`) and action fields. Produces the
//! final [`Schema`].
//!
//! Names that were declared but had errors of their own (`FileRes::broken`)
//! are accepted silently here, so one typo is reported once rather than again
//! at every place that mentions it. Likewise a belongs_to whose target does
//! not exist is reported there, not again by the has_many or many_to_many
//! that needed it. Damaged declarations (see `parse`) have their references
//! checked, but not what their own error could explain.

use std::collections::BTreeSet;

use super::parse::{
    ActionSrc, Field, FileRes, IMPLICIT_FIELDS, IdentSrc, IndexSrc, RawKind, RelSrc,
};
use super::policy_types::{self, PathTy, TypeError};
use super::value::lit_to_value;
use super::walk::{article, list, list_and, suggest};
use crate::diagnostic::{Diagnostic, Sources};
use crate::policy::{self, Path, Root};
use crate::resource::{
    Action, ActionKind, AttrType, Attribute, FileId, Identity, Index, IndexKey, Policies, Policy,
    Relationship, RelationshipKind, Resource, Schema, Span, Value,
};

/// Kumo's built-in resources, in the order they are listed in a schema.
pub(crate) const SYSTEM_NAMES: [&str; 6] = [
    "user",
    "session",
    "auth_token",
    "api_key",
    "external_identity",
    "audit_event",
];
const SYSTEM_PLURALS: [&str; 6] = [
    "users",
    "sessions",
    "auth_tokens",
    "api_keys",
    "external_identities",
    "audit_events",
];

/// What `actor.<field>` may name when the `user` resource is not loaded.
const ACTOR_FIELDS: [&str; 5] = ["id", "role", "email", "username", "display_name"];

/// The type of one of [`ACTOR_FIELDS`], as the built-in `user` declares it.
fn standard_actor_field(name: &str) -> AttrType {
    match name {
        "id" => AttrType::Uuid,
        "role" => AttrType::Enum {
            values: ["user", "coordinator", "admin"].map(String::from).to_vec(),
        },
        _ => AttrType::String {
            min_length: None,
            max_length: None,
            pattern: None,
        },
    }
}

const ENABLE_AUTH: &str = "run `kumo auth add-strategy magic_link`";

pub(crate) fn build(
    files: Vec<FileRes>,
    unreadable: &[String],
    include_system: bool,
    sources: &Sources,
    diags: &mut Vec<Diagnostic>,
) -> Schema {
    let path = |file: FileId| sources.get(file).path.display().to_string();
    let mut resources: Vec<FileRes> = Vec::new();
    let mut extensions = Vec::new();
    // Files that can't join the schema (no name, a taken or reserved name):
    // the error says why, and what they declare is still checked, on its
    // own, so their other mistakes are reported in the same run.
    let mut set_aside: Vec<FileRes> = Vec::new();
    // The file names of files without a resource name: a reference to one
    // of these is probably to that resource, so it is not reported unknown.
    // Files that could not be read count too, by the same guess.
    let mut unnamed: Vec<String> = unreadable.to_vec();
    for mut f in files {
        if f.system {
            resources.push(f);
            continue;
        }
        if !f.named {
            let file = &sources.get(f.file).path;
            if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
                f.name = stem.to_owned();
                unnamed.push(f.name.clone());
            }
            set_aside.push(f);
            continue;
        }
        if SYSTEM_NAMES.contains(&f.name.as_str()) {
            if f.name == "user" && include_system {
                extensions.push(f);
                continue;
            } else if f.name == "user" {
                diags.push(
                    Diagnostic::new(f.file, f.name_span.clone(), user_disabled_message("user"))
                        .with_help(ENABLE_AUTH),
                );
            } else {
                diags.push(
                    Diagnostic::new(
                        f.file,
                        f.name_span.clone(),
                        format!("`{}` is reserved for Kumo's built-in resource", f.name),
                    )
                    .with_help(format!("choose another name, such as `game_{}`", f.name)),
                );
            }
            set_aside.push(f);
            continue;
        }
        let system_plural = SYSTEM_PLURALS.iter().position(|p| *p == f.plural);
        if let Some(i) = system_plural {
            diags.push(
                Diagnostic::new(
                    f.file,
                    f.plural_at(),
                    format!(
                        "plural `{}` is the table of Kumo's built-in `{}` resource",
                        f.plural, SYSTEM_NAMES[i]
                    ),
                )
                .with_help("set another `plural` in `[resource]`"),
            );
        }
        if let Some(first) = resources.iter().find(|r| r.name == f.name) {
            diags.push(Diagnostic::new(
                f.file,
                f.name_span.clone(),
                format!(
                    "resource `{}` is already defined in {}",
                    f.name,
                    path(first.file)
                ),
            ));
            set_aside.push(f);
            continue;
        }
        if system_plural.is_none()
            && let Some(first) = resources.iter().find(|r| r.plural == f.plural)
        {
            diags.push(
                Diagnostic::new(
                    f.file,
                    f.plural_at(),
                    format!(
                        "plural `{}` is already used by resource `{}` in {}",
                        f.plural,
                        first.name,
                        path(first.file)
                    ),
                )
                .with_help("each resource needs its own table; set another `plural`"),
            );
        }
        resources.push(f);
    }

    if let Some(user) = resources.iter_mut().find(|r| r.system && r.name == "user") {
        for ext in extensions {
            merge_user(user, ext, diags);
        }
    }

    for r in &resources {
        if let Some((old, span)) = &r.renamed_from
            && let Some(other) = resources
                .iter()
                .find(|o| o.name != r.name && (o.name == *old || o.plural == *old))
        {
            diags.push(
                Diagnostic::new(
                    r.file,
                    span.clone(),
                    format!(
                        "`{}` is renamed from `{old}`, but resource `{}` still uses that name",
                        r.name, other.name
                    ),
                )
                .with_help("remove `renamed_from` once the rename has been migrated"),
            );
        }
        check_fields(r, diags);
    }
    for r in &set_aside {
        check_fields(r, diags);
    }

    let mut resolver = Resolver {
        resources: &resources,
        include_system,
        unnamed: &unnamed,
        sources,
        diags,
    };
    let out = resources.iter().map(|r| resolver.resource(r)).collect();
    for r in &set_aside {
        resolver.resource(r);
    }
    Schema { resources: out }
}

fn user_disabled_message(name: &str) -> String {
    if name == "user" {
        "`user` is Kumo's built-in account resource, enabled by the first auth strategy".into()
    } else {
        format!(
            "`{name}` is one of Kumo's built-in auth resources, enabled by the first auth strategy"
        )
    }
}

/// Adds a project's `resources/user.toml` to the built-in `user`.
fn merge_user(user: &mut FileRes, ext: FileRes, diags: &mut Vec<Diagnostic>) {
    const CHANGE_HELP: &str = "a project can add attributes, relationships, identities, indexes, policies and actions to `user`, but not change the built-in ones";
    if let Some(span) = &ext.plural_span
        && ext.plural != user.plural
    {
        diags.push(Diagnostic::new(
            ext.file,
            span.clone(),
            format!(
                "the plural of Kumo's built-in `user` resource is `{}` and can't be changed",
                user.plural
            ),
        ));
    }
    if let Some((_, span)) = &ext.renamed_from {
        diags.push(Diagnostic::new(
            ext.file,
            span.clone(),
            "Kumo's built-in `user` resource can't be renamed",
        ));
    }
    if ext.description.is_some() {
        user.description = ext.description;
    }
    let signup_help = "Kumo creates users at sign-up knowing only their email; add a `default` or drop `required`";
    // Checked on the declared names, so a redeclared built-in field is
    // reported even when its declaration has errors of its own.
    let built_in: BTreeSet<String> = user.declared.iter().map(|d| d.name.clone()).collect();
    let mut rejected = BTreeSet::new();
    for d in ext.declared {
        if built_in.contains(&d.name) {
            diags.push(
                Diagnostic::new(
                    d.file,
                    d.span.clone(),
                    format!(
                        "`{}` is already defined by Kumo's built-in `user` resource",
                        d.name
                    ),
                )
                .with_help(CHANGE_HELP),
            );
            rejected.insert(d.name);
        } else {
            user.declared.push(d);
        }
    }
    for a in ext.attributes {
        let n = &a.name;
        if rejected.contains(n) {
            continue;
        }
        if a.required && a.default.is_none() {
            diags.push(
                Diagnostic::new(
                    a.file,
                    a.span.clone(),
                    format!(
                        "attribute `{n}` added to `user` can't be required without a `default`"
                    ),
                )
                .with_help(signup_help),
            );
        }
        user.attributes.push(a);
    }
    for r in ext.relationships {
        if rejected.contains(&r.name) {
            continue;
        }
        if let RawKind::BelongsTo { required: true, .. } = r.kind {
            diags.push(
                Diagnostic::new(
                    r.file,
                    r.span.clone(),
                    format!("belongs_to `{}` added to `user` can't be required", r.name),
                )
                .with_help(
                    "Kumo creates users at sign-up knowing only their email; drop `required`",
                ),
            );
        }
        user.relationships.push(r);
    }
    for i in ext.identities {
        if user.identities.iter().any(|b| b.name == i.name) {
            diags.push(
                Diagnostic::new(
                    i.file,
                    i.span.clone(),
                    format!(
                        "identity `{}` is already defined by Kumo's built-in `user` resource",
                        i.name
                    ),
                )
                .with_help(CHANGE_HELP),
            );
            continue;
        }
        user.identities.push(i);
    }
    for i in ext.indexes {
        if user.indexes.iter().any(|b| b.name == i.name) {
            diags.push(
                Diagnostic::new(
                    i.file,
                    i.span.clone(),
                    format!(
                        "index `{}` is already defined by Kumo's built-in `user` resource",
                        i.name
                    ),
                )
                .with_help(CHANGE_HELP),
            );
            continue;
        }
        user.indexes.push(i);
    }
    for a in ext.actions {
        if user.actions.iter().any(|b| b.name == a.name) {
            diags.push(
                Diagnostic::new(
                    a.file,
                    a.span.clone(),
                    format!(
                        "action `{}` is already defined by Kumo's built-in `user` resource",
                        a.name
                    ),
                )
                .with_help(CHANGE_HELP),
            );
            continue;
        }
        user.actions.push(a);
    }
    // A project's policy replaces the built-in one for the same action: that
    // is how a game opens up, say, reading other players' profiles.
    for p in ext.policies {
        user.policies.retain(|q| q.action != p.action);
        user.policies.push(p);
    }
}

/// Clashes between the fields of one resource. Checked on the declared
/// names, so a field whose declaration has errors of its own still clashes.
fn check_fields(r: &FileRes, diags: &mut Vec<Diagnostic>) {
    let declared = |field: Field, name: &str| {
        r.declared
            .iter()
            .find(|d| d.field == field && d.name == name)
    };
    for rel in r.declared.iter().filter(|d| d.field == Field::Relationship) {
        if declared(Field::Attribute, &rel.name).is_some() {
            diags.push(Diagnostic::new(
                rel.file,
                rel.span.clone(),
                format!(
                    "`{}` is declared both as an attribute and as a relationship",
                    rel.name
                ),
            ));
        }
        if r.rel(&rel.name)
            .is_some_and(|x| matches!(x.kind, RawKind::BelongsTo { .. }))
        {
            let column = format!("{}_id", rel.name);
            if let Some(a) = declared(Field::Attribute, &column) {
                diags.push(
                    Diagnostic::new(
                        a.file,
                        a.span.clone(),
                        format!(
                            "attribute `{column}` clashes with the column of belongs_to `{}`",
                            rel.name
                        ),
                    )
                    .with_help(format!(
                        "belongs_to `{}` stores its key in a column named `{column}`; rename the attribute",
                        rel.name
                    )),
                );
            }
        }
        if let Some((old, span)) = &rel.renamed_from
            && declared(Field::Relationship, old).is_some()
        {
            diags.push(Diagnostic::new(
                rel.file,
                span.clone(),
                format!(
                    "`{}` is renamed from `{old}`, but relationship `{old}` still exists",
                    rel.name
                ),
            ));
        }
    }
    for a in r.declared.iter().filter(|d| d.field == Field::Attribute) {
        if let Some((old, _)) = &a.renamed_from
            && declared(Field::Attribute, old).is_some()
        {
            diags.push(Diagnostic::new(
                a.file,
                a.span.clone(),
                format!(
                    "`{}` is renamed from `{old}`, but attribute `{old}` still exists",
                    a.name
                ),
            ));
        }
    }
}

/// Lookups over one resource's declared fields.
impl FileRes {
    fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    fn rel(&self, name: &str) -> Option<&RelSrc> {
        self.relationships.iter().find(|r| r.name == name)
    }

    /// The belongs_to whose column is `column` (`uploader_id` → `uploader`).
    fn column_owner(&self, column: &str) -> Option<&RelSrc> {
        let base = column.strip_suffix("_id")?;
        self.rel(base)
            .filter(|r| matches!(r.kind, RawKind::BelongsTo { .. }))
    }

    fn belongs_to_names(&self) -> impl Iterator<Item = &str> {
        self.relationships
            .iter()
            .filter(|r| matches!(r.kind, RawKind::BelongsTo { .. }))
            .map(|r| r.name.as_str())
    }

    /// Every name a policy path may use on this resource.
    fn value_names(&self) -> Vec<String> {
        let mut out: Vec<String> = IMPLICIT_FIELDS.iter().map(|s| (*s).to_owned()).collect();
        out.extend(self.attributes.iter().map(|a| a.name.clone()));
        for b in self.belongs_to_names() {
            out.push(b.to_owned());
            out.push(format!("{b}_id"));
        }
        // Broken declarations are still what the user meant.
        out.extend(self.broken().map(str::to_owned));
        out
    }

    /// Attribute and belongs_to names, broken ones included, for did-you-mean.
    fn field_names(&self) -> Vec<&str> {
        self.attributes
            .iter()
            .map(|a| a.name.as_str())
            .chain(self.belongs_to_names())
            .chain(self.broken())
            .collect()
    }

    /// Whether `name` (or the belongs_to whose column it is) was declared
    /// with errors, so a reference to it is not reported again.
    fn is_broken(&self, name: &str) -> bool {
        let base = name.strip_suffix("_id");
        self.broken().any(|b| b == name || Some(b) == base)
    }
}

struct Resolver<'a> {
    resources: &'a [FileRes],
    include_system: bool,
    /// See `unnamed` in [`build`].
    unnamed: &'a [String],
    sources: &'a Sources,
    diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Resolver<'a> {
    fn error(&mut self, file: FileId, span: Span, message: String, help: Option<String>) {
        let mut d = Diagnostic::new(file, span, message);
        d.help = help;
        self.diags.push(d);
    }

    fn find(&self, name: &str) -> Option<&'a FileRes> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// Reports a reference to a resource that does not exist.
    fn missing_resource(&mut self, file: FileId, span: Span, name: &str) {
        if SYSTEM_NAMES.contains(&name) && !self.include_system {
            self.error(
                file,
                span,
                user_disabled_message(name),
                Some(ENABLE_AUTH.into()),
            );
            return;
        }
        if self.unnamed.iter().any(|u| u == name) {
            return;
        }
        let names = self.resources.iter().map(|r| r.name.as_str());
        let help = match suggest(name, names) {
            Some(s) => Some(format!("did you mean `{s}`?")),
            None => self
                .resources
                .iter()
                .find(|r| r.plural == name)
                .map(|r| format!("resources are named in the singular: `{}`", r.name)),
        };
        self.error(file, span, format!("unknown resource `{name}`"), help);
    }

    fn resource(&mut self, r: &'a FileRes) -> Resource {
        let relationships = r
            .relationships
            .iter()
            .filter_map(|rel| self.relationship(r, rel))
            .collect();
        let identities = r
            .identities
            .iter()
            .filter_map(|i| self.identity(r, i))
            .collect();
        let indexes = self.indexes(r);
        let mut policies = Policies::default();
        for p in &r.policies {
            let policy = self.check_policy(r, &p.policy);
            let slot = match p.action {
                "read" => &mut policies.read,
                "create" => &mut policies.create,
                "update" => &mut policies.update,
                _ => &mut policies.destroy,
            };
            *slot = Some(policy);
        }
        let actions = r.actions.iter().filter_map(|a| self.action(r, a)).collect();
        Resource {
            name: r.name.clone(),
            plural: r.plural.clone(),
            description: r.description.clone(),
            renamed_from: r.renamed_from.as_ref().map(|(n, _)| n.clone()),
            system: r.system,
            attributes: r.attributes.clone(),
            relationships,
            identities,
            indexes,
            policies,
            actions,
            file: r.file,
            span: r.name_span.clone(),
        }
    }

    /// Whether `r` may have meant a belongs_to it does not have: one of its
    /// relationships has no usable kind, or one of its belongs_to names a
    /// resource that does not exist. Both are reported on `r`, so a has_many
    /// or many_to_many that needs a belongs_to on `r` does not report its
    /// absence again.
    fn may_lack_belongs_to(&self, r: &FileRes) -> bool {
        r.declared
            .iter()
            .any(|d| d.field == Field::Relationship && r.rel(&d.name).is_none())
            || r.relationships.iter().any(|b| {
                matches!(&b.kind, RawKind::BelongsTo { target, .. } if self.find(target).is_none())
            })
    }

    fn relationship(&mut self, r: &FileRes, rel: &RelSrc) -> Option<Relationship> {
        let target_name = rel.kind.target();
        let target = self.find(target_name);
        if target.is_none() {
            self.missing_resource(rel.file, rel.target_span.clone(), target_name);
        }
        // The join resource is looked up even when the target is unknown:
        // the two names are independent.
        let mut join = None;
        if let RawKind::ManyToMany {
            through: Some((through, span)),
            ..
        } = &rel.kind
        {
            join = self.find(through);
            if join.is_none() {
                self.missing_resource(rel.file, span.clone(), through);
            }
        }
        // The rest (has_many `via`, the join's belongs_to) depends on
        // options a damaged relationship may have got wrong.
        if rel.damaged {
            return None;
        }
        let target = target?;
        let kind = match &rel.kind {
            RawKind::BelongsTo {
                target,
                required,
                on_delete,
                writable,
            } => RelationshipKind::BelongsTo {
                target: target.clone(),
                required: *required,
                on_delete: *on_delete,
                writable: *writable,
            },
            RawKind::HasMany { target: t, via } => {
                let via = self.has_many_via(r, rel, target, via.as_ref())?;
                RelationshipKind::HasMany {
                    target: t.clone(),
                    via,
                }
            }
            RawKind::ManyToMany { target: t, through } => {
                let (Some((through, through_span)), Some(join)) = (through, join) else {
                    return None;
                };
                let points = |to: &str| {
                    join.relationships
                        .iter()
                        .filter(|j| matches!(&j.kind, RawKind::BelongsTo { target, .. } if target == to))
                        .count()
                };
                let missing = if r.name == *t {
                    (points(&r.name) < 2).then(|| r.name.clone())
                } else if points(&r.name) == 0 {
                    Some(r.name.clone())
                } else if points(t) == 0 {
                    Some(t.clone())
                } else {
                    None
                };
                if let Some(m) = missing {
                    if !self.may_lack_belongs_to(join) {
                        let (message, help) = if r.name == *t {
                            (
                                format!("`{through}` must have two belongs_to pointing to `{m}`"),
                                format!(
                                    "a many_to_many from `{m}` to itself joins two `{m}` rows, so `{through}` needs a belongs_to for each side"
                                ),
                            )
                        } else {
                            (
                                format!(
                                    "`{through}` must belong_to both `{}` and `{t}`, but has no belongs_to pointing to `{m}`",
                                    r.name
                                ),
                                format!(
                                    "add `{m} = {{ belongs_to = \"{m}\", required = true, on_delete = \"cascade\" }}` to the [relationships] of `{through}`"
                                ),
                            )
                        };
                        self.error(rel.file, through_span.clone(), message, Some(help));
                    }
                    return None;
                }
                RelationshipKind::ManyToMany {
                    target: t.clone(),
                    through: through.clone(),
                }
            }
        };
        Some(Relationship {
            name: rel.name.clone(),
            kind,
            description: rel.description.clone(),
            renamed_from: rel.renamed_from.as_ref().map(|(n, _)| n.clone()),
            file: rel.file,
            span: rel.span.clone(),
        })
    }

    /// Finds the belongs_to on `target` that a has_many on `r` is the inverse of.
    fn has_many_via(
        &mut self,
        r: &FileRes,
        rel: &RelSrc,
        target: &FileRes,
        via: Option<&(String, Span)>,
    ) -> Option<String> {
        let backs: Vec<&str> = target
            .relationships
            .iter()
            .filter(|b| matches!(&b.kind, RawKind::BelongsTo { target, .. } if *target == r.name))
            .map(|b| b.name.as_str())
            .collect();
        if let Some((v, span)) = via {
            match target.rel(v) {
                Some(b) => match &b.kind {
                    RawKind::BelongsTo { target: to, .. } if *to == r.name => {
                        return Some(v.clone());
                    }
                    // A misspelt target, reported on the belongs_to.
                    RawKind::BelongsTo { target: to, .. } if self.find(to).is_none() => {}
                    RawKind::BelongsTo { target: to, .. } => self.error(
                        rel.file,
                        span.clone(),
                        format!(
                            "`{}.{v}` points to `{to}`, not to `{}`",
                            target.name, r.name
                        ),
                        (!backs.is_empty()).then(|| {
                            format!(
                                "the belongs_to on `{}` pointing to `{}`: {}",
                                target.name,
                                r.name,
                                list(&backs)
                            )
                        }),
                    ),
                    other => self.error(
                        rel.file,
                        span.clone(),
                        format!(
                            "`{}.{v}` is a {} relationship; `via` names a belongs_to",
                            target.name,
                            other.label()
                        ),
                        None,
                    ),
                },
                None if target.broken().any(|b| b == v) => {}
                None => {
                    let help =
                        suggest(v, backs.iter().copied()).map(|s| format!("did you mean `{s}`?"));
                    self.error(
                        rel.file,
                        span.clone(),
                        format!("`{}` has no belongs_to named `{v}`", target.name),
                        help,
                    );
                }
            }
            return None;
        }
        match backs.as_slice() {
            [one] => Some((*one).to_owned()),
            [] => {
                if !self.may_lack_belongs_to(target) {
                    self.error(
                        rel.file,
                        rel.target_span.clone(),
                        format!(
                            "has_many `{}` needs a belongs_to on `{}` pointing back to `{}`",
                            rel.name, target.name, r.name
                        ),
                        Some(format!(
                            "add `{n} = {{ belongs_to = \"{n}\" }}` to the [relationships] of `{}`",
                            target.name,
                            n = r.name
                        )),
                    );
                }
                None
            }
            several => {
                self.error(
                    rel.file,
                    rel.span.clone(),
                    format!(
                        "has_many `{}` is ambiguous: `{}` has several belongs_to pointing to `{}` ({})",
                        rel.name,
                        target.name,
                        r.name,
                        list_and(several)
                    ),
                    Some(format!("say which with `via`, such as `via = \"{}\"`", several[0])),
                );
                None
            }
        }
    }

    fn identity(&mut self, r: &FileRes, i: &IdentSrc) -> Option<Identity> {
        let mut columns = Vec::new();
        let mut ok = true;
        for (f, span) in &i.fields {
            if IMPLICIT_FIELDS.contains(&f.as_str()) {
                self.error(
                    i.file,
                    span.clone(),
                    format!("`{f}` can't be part of an identity"),
                    Some("identities combine attributes and belongs_to relationships; `id` is already unique".into()),
                );
                ok = false;
            } else if let Some(a) = r.attr(f) {
                if matches!(a.ty, AttrType::Json | AttrType::Array { .. }) {
                    self.error(
                        i.file,
                        span.clone(),
                        format!(
                            "`{f}` is {} {} attribute and can't be part of an identity",
                            article(a.ty.name()),
                            a.ty.name()
                        ),
                        None,
                    );
                    ok = false;
                }
                columns.push(f.clone());
            } else if let Some(rel) = r.rel(f) {
                if let RawKind::BelongsTo { .. } = rel.kind {
                    columns.push(format!("{f}_id"));
                } else {
                    self.error(
                        i.file,
                        span.clone(),
                        format!(
                            "`{f}` is a {} relationship; identities use attributes and belongs_to relationships",
                            rel.kind.label()
                        ),
                        None,
                    );
                    ok = false;
                }
            } else {
                ok = false;
                if !r.is_broken(f) {
                    let help = suggest(f, r.field_names()).map(|s| format!("did you mean `{s}`?"));
                    self.error(
                        i.file,
                        span.clone(),
                        format!("unknown field `{f}` in identity `{}`", i.name),
                        help,
                    );
                }
            }
        }
        (ok && !i.damaged).then(|| Identity {
            name: i.name.clone(),
            columns,
            file: i.file,
            span: i.span.clone(),
        })
    }

    /// The resource's `[indexes]`, each checked on its own and then against
    /// the others: a name can't be one Kumo gives an index of its own
    /// (`index = true` on an attribute, a `belongs_to` column), and two
    /// indexes can't be the same once `id` is appended.
    fn indexes(&mut self, r: &FileRes) -> Vec<Index> {
        let mut out: Vec<Index> = Vec::new();
        for i in &r.indexes {
            if let Some(a) = r.attributes.iter().find(|a| a.index && a.name == i.name) {
                self.error(
                    i.file,
                    i.span.clone(),
                    format!(
                        "index `{}` has the name of the index `index = true` makes for attribute `{}`",
                        i.name, a.name
                    ),
                    Some("choose another name for this index".into()),
                );
            } else if let Some(rel) = r.column_owner(&i.name) {
                self.error(
                    i.file,
                    i.span.clone(),
                    format!(
                        "index `{}` has the name of the index Kumo makes for belongs_to `{}`",
                        i.name, rel.name
                    ),
                    Some("choose another name for this index".into()),
                );
            }
            let Some(index) = self.index(r, i) else {
                continue;
            };
            let keys = IndexKey::with_id(&index.keys);
            let same_as_attribute = r
                .attributes
                .iter()
                .find(|a| a.index && keys == IndexKey::with_id(&[IndexKey::ascending(&a.name)]));
            if let Some(a) = same_as_attribute {
                self.error(
                    i.file,
                    i.span.clone(),
                    format!(
                        "index `{}` is the index `index = true` already makes for attribute `{}`",
                        i.name, a.name
                    ),
                    Some("remove one of the two".into()),
                );
                continue;
            }
            if let Some(first) = out.iter().find(|o| IndexKey::with_id(&o.keys) == keys) {
                self.error(
                    i.file,
                    i.span.clone(),
                    format!("index `{}` is the same as index `{}`", i.name, first.name),
                    Some(
                        "remove one of the two; Kumo ends every index with `id`, so a last `\"id\"` makes no difference"
                            .into(),
                    ),
                );
                continue;
            }
            out.push(index);
        }
        out
    }

    fn index(&mut self, r: &FileRes, i: &IndexSrc) -> Option<Index> {
        let mut keys = Vec::new();
        let mut ok = true;
        let last = i.keys.len().saturating_sub(1);
        for (n, (f, descending, span)) in i.keys.iter().enumerate() {
            let column = if f == "id" {
                if i.keys.len() == 1 {
                    self.error(
                        i.file,
                        span.clone(),
                        format!("index `{}` lists only `id`, which is already indexed", i.name),
                        Some("`id` is the primary key; list the fields lists are filtered or sorted by".into()),
                    );
                    ok = false;
                } else if n != last {
                    self.error(
                        i.file,
                        span.clone(),
                        format!("`id` must be the last field of index `{}`", i.name),
                        Some("`id` is unique, so no field after it changes the order; Kumo ends every index with `id` anyway".into()),
                    );
                    ok = false;
                }
                Some(f.clone())
            } else if IMPLICIT_FIELDS.contains(&f.as_str()) {
                Some(f.clone())
            } else if let Some(a) = r.attr(f) {
                if matches!(a.ty, AttrType::Json | AttrType::Array { .. }) {
                    self.error(
                        i.file,
                        span.clone(),
                        format!(
                            "`{f}` is {} {} attribute and can't be indexed",
                            article(a.ty.name()),
                            a.ty.name()
                        ),
                        Some("lists can't be filtered or sorted by these values".into()),
                    );
                    ok = false;
                }
                Some(f.clone())
            } else if let Some(rel) = r.rel(f) {
                if let RawKind::BelongsTo { .. } = rel.kind {
                    Some(format!("{f}_id"))
                } else {
                    self.error(
                        i.file,
                        span.clone(),
                        format!(
                            "`{f}` is a {} relationship; indexes use attributes and belongs_to relationships",
                            rel.kind.label()
                        ),
                        None,
                    );
                    ok = false;
                    None
                }
            } else if let Some(rel) = r.column_owner(f) {
                self.error(
                    i.file,
                    span.clone(),
                    format!("unknown field `{f}` in index `{}`", i.name),
                    Some(format!(
                        "write the relationship's name, `{}`: it stands for its column `{f}`",
                        rel.name
                    )),
                );
                ok = false;
                None
            } else {
                ok = false;
                if !r.is_broken(f) {
                    let mut names = r.field_names();
                    names.extend(IMPLICIT_FIELDS);
                    let help = suggest(f, names).map(|s| format!("did you mean `{s}`?"));
                    self.error(
                        i.file,
                        span.clone(),
                        format!("unknown field `{f}` in index `{}`", i.name),
                        help,
                    );
                }
                None
            };
            if let Some(column) = column {
                keys.push(IndexKey {
                    column,
                    descending: *descending,
                });
            }
        }
        (ok && !i.damaged).then(|| Index {
            name: i.name.clone(),
            keys,
            file: i.file,
            span: i.span.clone(),
        })
    }

    /// Checks a policy: every path must name a real field, and the
    /// expression must be well typed (`docs/policies.md`, "Types"). Returns
    /// the policy with its string literals normalised to the types they are
    /// compared with.
    fn check_policy(&mut self, r: &FileRes, policy: &Policy) -> Policy {
        let mut errors = Vec::new();
        for path in policy.expr.paths() {
            if let Err((segment, message, help)) = self.path_type(r, path) {
                let span = segment_span(&policy.source, &path.span, segment);
                errors.push(TypeError {
                    span,
                    message,
                    help,
                });
            }
        }
        let mut checked = policy.clone();
        // Parsing again gives the spans of literals and comparisons, which
        // the stored expression does not keep; the source parsed once already.
        if let Ok((mut expr, spans)) = policy::parse_with_spans(&policy.source) {
            // A path that failed above has type `Unknown`, which checks
            // against anything, so each mistake is reported once.
            let path_type = |p: &Path| self.path_type(r, p).unwrap_or(PathTy::Unknown);
            errors.extend(policy_types::check(
                &mut expr,
                &spans,
                &policy.source,
                &path_type,
            ));
            checked.expr = expr;
        }
        let text = &self.sources.get(policy.file).text;
        let at = |offset| super::walk::string_offset(text, &policy.span, offset);
        let located: Vec<_> = errors
            .into_iter()
            .map(|e| {
                let start = at(e.span.start);
                (start..at(e.span.end).max(start), e.message, e.help)
            })
            .collect();
        for (span, message, help) in located {
            self.error(policy.file, span, message, help);
        }
        checked
    }

    /// The type of a path's value, or why the path names no value: the
    /// index of the offending segment (0 is the root), a message and a hint.
    fn path_type(
        &self,
        r: &FileRes,
        path: &Path,
    ) -> Result<PathTy, (usize, String, Option<String>)> {
        match path.root {
            Root::Actor if path.fields.is_empty() => Ok(PathTy::Actor),
            Root::Actor => match self.find("user") {
                Some(user) => self.walk(user, &path.fields, "actor"),
                None => {
                    let f = &path.fields[0];
                    if !ACTOR_FIELDS.contains(&f.as_str()) {
                        let help = suggest(f, ACTOR_FIELDS)
                            .map(|s| format!("did you mean `{s}`?"))
                            .unwrap_or_else(|| format!("`actor` has {}", list(&ACTOR_FIELDS)));
                        Err((1, format!("unknown field `{f}` on `actor`"), Some(help)))
                    } else if path.fields.len() > 1 {
                        Err((
                            2,
                            format!(
                                "`actor.{f}` is a value and has no field `{}`",
                                path.fields[1]
                            ),
                            None,
                        ))
                    } else {
                        Ok(PathTy::Field(standard_actor_field(f)))
                    }
                }
            },
            Root::Record if path.fields.is_empty() => Err((
                0,
                "`record` alone is not a value".to_owned(),
                Some("name one of its fields, such as `record.id`".into()),
            )),
            Root::Record => self.walk(r, &path.fields, "record"),
        }
    }

    /// Follows a path's fields from resource `start` to the type of the
    /// value it names. On error returns the index of the offending segment
    /// (0 is the root), a message and a hint.
    fn walk(
        &self,
        start: &FileRes,
        fields: &[String],
        root: &str,
    ) -> Result<PathTy, (usize, String, Option<String>)> {
        let mut shape = start;
        let mut prefix = root.to_owned();
        for (i, f) in fields.iter().enumerate() {
            let segment = i + 1;
            let next = fields.get(i + 1);
            let value_type = match f.as_str() {
                "id" => Some(AttrType::Uuid),
                "inserted_at" | "updated_at" => Some(AttrType::Datetime),
                _ => shape
                    .attr(f)
                    .map(|a| a.ty.clone())
                    .or_else(|| shape.column_owner(f).map(|_| AttrType::Uuid)),
            };
            if let Some(ty) = value_type {
                return match next {
                    None => Ok(PathTy::Field(ty)),
                    Some(n) => Err((
                        segment + 1,
                        format!(
                            "`{prefix}.{f}` is {} {} value and has no field `{n}`",
                            article(ty.name()),
                            ty.name()
                        ),
                        None,
                    )),
                };
            }
            if let Some(rel) = shape.rel(f) {
                match &rel.kind {
                    RawKind::BelongsTo { target, .. } => {
                        if next.is_none() {
                            return Err((
                                segment,
                                format!("`{prefix}.{f}` is a belongs_to relationship, not a value"),
                                Some(format!(
                                    "compare `{prefix}.{f}_id`, or follow it to a field such as `{prefix}.{f}.id`"
                                )),
                            ));
                        }
                        match self.find(target) {
                            Some(t) => {
                                shape = t;
                                prefix = format!("{prefix}.{f}");
                                continue;
                            }
                            // The unknown target is reported on the relationship.
                            None => return Ok(PathTy::Unknown),
                        }
                    }
                    other => {
                        return Err((
                            segment,
                            format!(
                                "`{prefix}.{f}` is a {} relationship; policies can only follow belongs_to relationships",
                                other.label()
                            ),
                            None,
                        ));
                    }
                }
            }
            if shape.is_broken(f) {
                return Ok(PathTy::Unknown);
            }
            let names = shape.value_names();
            let help = suggest(f, names.iter().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"));
            return Err((
                segment,
                format!(
                    "unknown field `{f}` on `{prefix}` (resource `{}`)",
                    shape.name
                ),
                help,
            ));
        }
        Ok(PathTy::Unknown)
    }

    fn action(&mut self, r: &FileRes, a: &ActionSrc) -> Option<Action> {
        let mark = self.diags.len();
        let file = a.file;
        if a.kind == Some(ActionKind::Destroy) {
            for (key, span) in [
                ("accept", &a.accept_span),
                ("set", &a.set_span),
                ("increment", &a.increment_span),
            ] {
                if let Some(span) = span {
                    self.error(
                        file,
                        span.clone(),
                        format!("`{key}` does not apply to destroy actions"),
                        Some("a destroy action deletes the record; it sets no fields".into()),
                    );
                }
            }
        }
        if a.kind == Some(ActionKind::Create)
            && let Some(span) = &a.increment_span
        {
            self.error(
                file,
                span.clone(),
                "create actions can't `increment`".into(),
                Some("there is no previous value to add to; use `set`".into()),
            );
        }

        for (f, span) in &a.accept {
            if IMPLICIT_FIELDS.contains(&f.as_str()) {
                self.error(
                    file,
                    span.clone(),
                    format!("`{f}` is set by Kumo and can't be accepted"),
                    None,
                );
            } else if let Some(attr) = r.attr(f) {
                if !attr.writable {
                    self.error(
                        file,
                        span.clone(),
                        format!("`{f}` is not writable, so action `{}` can't accept it", a.name),
                        Some(format!(
                            "`{f}` has `writable = false`: no caller may set it; fix its value with `set` instead"
                        )),
                    );
                }
            } else if let Some(rel) = r.rel(f) {
                if matches!(
                    rel.kind,
                    RawKind::BelongsTo {
                        writable: false,
                        ..
                    }
                ) {
                    self.error(
                        file,
                        span.clone(),
                        format!(
                            "`{f}` is not writable, so action `{}` can't accept it",
                            a.name
                        ),
                        Some(format!(
                            "`{f}` has `writable = false`: no caller may set it"
                        )),
                    );
                } else if !matches!(rel.kind, RawKind::BelongsTo { .. }) {
                    self.error(
                        file,
                        span.clone(),
                        format!(
                            "`{f}` is a {} relationship; `accept` takes attributes and belongs_to relationships",
                            rel.kind.label()
                        ),
                        None,
                    );
                }
            } else if !r.is_broken(f) {
                let help = suggest(f, r.field_names()).map(|s| format!("did you mean `{s}`?"));
                self.error(
                    file,
                    span.clone(),
                    format!("unknown field `{f}` in `accept` of action `{}`", a.name),
                    help,
                );
            }
        }

        let attr_names: Vec<&str> = r
            .attributes
            .iter()
            .map(|x| x.name.as_str())
            .chain(r.broken())
            .collect();
        let mut set: Vec<(String, Value)> = Vec::new();
        for (f, fspan, lit, vspan) in &a.set {
            let Some(attr) = self.settable(r, a, "set", f, fspan, &attr_names) else {
                continue;
            };
            if a.accept.iter().any(|(x, _)| x == f) {
                self.error(
                    file,
                    fspan.clone(),
                    format!("`{f}` is both accepted and set"),
                    Some("a field is either given by the caller (`accept`) or fixed by the action (`set`)".into()),
                );
            }
            match lit_to_value(&attr.ty, lit) {
                Ok(v) => set.push((f.clone(), v)),
                Err(e) => self.error(
                    file,
                    vspan.clone(),
                    format!("invalid value for `{f}`: {e}"),
                    None,
                ),
            }
        }

        let mut increment: Vec<(String, Value)> = Vec::new();
        for (f, fspan, lit, vspan) in &a.increment {
            let Some(attr) = self.settable(r, a, "increment", f, fspan, &attr_names) else {
                continue;
            };
            let numeric = matches!(attr.ty, AttrType::Integer { .. } | AttrType::Float { .. });
            if numeric
                && (a.set.iter().any(|(x, ..)| x == f) || a.accept.iter().any(|(x, _)| x == f))
            {
                self.error(
                    file,
                    fspan.clone(),
                    format!("`{f}` is incremented and also accepted or set"),
                    None,
                );
            }
            match (&attr.ty, lit) {
                (AttrType::Integer { .. }, super::value::Lit::Int(n)) => {
                    increment.push((f.clone(), Value::from(*n)));
                }
                (AttrType::Integer { .. }, _) => self.error(
                    file,
                    vspan.clone(),
                    format!("`{f}` is an integer attribute, so its increment must be an integer"),
                    None,
                ),
                (AttrType::Float { .. }, super::value::Lit::Int(n)) => {
                    increment.push((f.clone(), Value::from(*n as f64)));
                }
                (AttrType::Float { .. }, super::value::Lit::Float(x)) => {
                    increment.push((f.clone(), Value::from(*x)));
                }
                (ty, _) => self.error(
                    file,
                    fspan.clone(),
                    format!(
                        "`increment` applies only to integer and float attributes; `{f}` is {} {}",
                        article(ty.name()),
                        ty.name()
                    ),
                    None,
                ),
            }
        }

        // A damaged action may have lost part of its `accept` or `set` to
        // its own error, so what it seems not to set proves nothing.
        if a.kind == Some(ActionKind::Create) && !a.damaged {
            let given = |n: &str| {
                a.accept.iter().any(|(x, _)| x == n) || a.set.iter().any(|(x, ..)| x == n)
            };
            for attr in &r.attributes {
                if attr.required && attr.default.is_none() && !given(&attr.name) {
                    self.error(
                        file,
                        a.span.clone(),
                        format!(
                            "create action `{}` never sets required attribute `{}`",
                            a.name, attr.name
                        ),
                        Some(format!("add `{}` to `accept` or `set`", attr.name)),
                    );
                }
            }
            for rel in &r.relationships {
                if let RawKind::BelongsTo { required: true, .. } = rel.kind
                    && !given(&rel.name)
                {
                    self.error(
                        file,
                        a.span.clone(),
                        format!(
                            "create action `{}` never sets required relationship `{}`",
                            a.name, rel.name
                        ),
                        Some(format!("add `{}` to `accept`", rel.name)),
                    );
                }
            }
        }

        let policy = a.policy.as_ref().map(|p| self.check_policy(r, p));
        let kind = a.kind?;
        if a.damaged || self.diags.len() > mark {
            return None;
        }
        Some(Action {
            name: a.name.clone(),
            kind,
            description: a.description.clone(),
            accept: a.accept.iter().map(|(f, _)| f.clone()).collect(),
            set,
            increment,
            policy,
            file: a.file,
            span: a.span.clone(),
        })
    }

    /// The attribute a `set` or `increment` key names, or a diagnostic.
    fn settable<'r>(
        &mut self,
        r: &'r FileRes,
        a: &ActionSrc,
        key: &str,
        f: &str,
        span: &Span,
        attr_names: &[&str],
    ) -> Option<&'r Attribute> {
        if let Some(attr) = r.attr(f) {
            return Some(attr);
        }
        let (message, help) = if IMPLICIT_FIELDS.contains(&f) {
            (
                format!("`{f}` is set by Kumo and can't be changed by `{key}`"),
                None,
            )
        } else if let Some(rel) = r.rel(f) {
            (
                format!(
                    "`{f}` is a {} relationship; `{key}` takes attributes",
                    rel.kind.label()
                ),
                None,
            )
        } else if r.broken().any(|b| b == f) {
            return None;
        } else {
            (
                format!("unknown attribute `{f}` in `{key}` of action `{}`", a.name),
                suggest(f, attr_names.iter().copied()).map(|s| format!("did you mean `{s}`?")),
            )
        };
        self.error(a.file, span.clone(), message, help);
        None
    }
}

/// The byte range of segment `n` (0 = the root) of a path inside the policy
/// text, so an error points at the offending field rather than the whole path.
fn segment_span(source: &str, path: &Span, n: usize) -> Span {
    let Some(text) = source.get(path.clone()) else {
        return path.clone();
    };
    let mut offset = path.start;
    for (i, part) in text.split('.').enumerate() {
        let lead = part.len() - part.trim_start().len();
        let start = offset + lead;
        let end = start + part.trim().len();
        if i == n {
            return start..end;
        }
        offset += part.len() + 1;
    }
    path.clone()
}
