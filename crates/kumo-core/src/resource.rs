//! The validated resource model: what a `resources/*.toml` file declares once
//! it has been parsed and checked.
//!
//! Every value here is already valid: identifiers are snake_case, types carry
//! only the constraints that make sense for them, relationship targets exist,
//! policy expressions parsed and name real fields. Code that consumes a
//! [`Schema`] (lowering to tables, the API, code generation) never re-checks.
//! Spans are kept so later stages can still point at the source line. Every
//! item that has a span also names its file: the built-in `user` resource
//! merges items from a project's `resources/user.toml`, so one resource's
//! items can come from two files.

use std::ops::Range;

use crate::policy::Expr;

/// A byte range in one source file.
pub type Span = Range<usize>;

/// Index of a file in [`crate::diagnostic::Sources`].
pub type FileId = usize;

/// Every resource of a project, system resources included, in a stable order
/// (system resources first, then project files sorted by path).
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub resources: Vec<Resource>,
}

impl Schema {
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// snake_case, singular: `avatar`.
    pub name: String,
    /// snake_case: the table name and the route segment, `avatars`.
    pub plural: String,
    pub description: Option<String>,
    /// The old resource name or table name when the resource was renamed.
    pub renamed_from: Option<String>,
    /// True for Kumo's built-in resources (users, sessions…), which a project
    /// may extend but not redefine.
    pub system: bool,
    pub attributes: Vec<Attribute>,
    pub relationships: Vec<Relationship>,
    pub identities: Vec<Identity>,
    /// The `[indexes]` table, in file order (`index = true` on an attribute
    /// is kept on the attribute).
    pub indexes: Vec<Index>,
    pub policies: Policies,
    pub actions: Vec<Action>,
    pub file: FileId,
    /// The span of the `name = "…"` value in `[resource]`.
    pub span: Span,
}

impl Resource {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    pub fn relationship(&self, name: &str) -> Option<&Relationship> {
        self.relationships.iter().find(|r| r.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub ty: AttrType,
    /// `required = true`: the column is NOT NULL and callers must give a value
    /// unless there is a default.
    pub required: bool,
    pub default: Option<Value>,
    pub unique: bool,
    /// Stored, never serialised to clients.
    pub sensitive: bool,
    pub description: Option<String>,
    pub renamed_from: Option<String>,
    /// `writable = false`: callers can't set it through the generic create
    /// and update, nor through an action's `accept`; only an action's `set`
    /// or `increment`, seeds and Kumo itself (the auth layer) write it.
    pub writable: bool,
    /// `index = true`: the attribute has an index of its own (in the order
    /// the API sorts it by, `id` last), for filtering and sorting by it.
    pub index: bool,
    /// `search = true` (string and text only): the admin's search box looks
    /// in it, and a text index serves `contains` and that search (a
    /// trigram index on PostgreSQL; an ordinary one on SQLite, which has no
    /// such index and scans).
    pub search: bool,
    pub file: FileId,
    /// The attribute's key in `[attributes]`.
    pub span: Span,
}

/// The scalar types an `array` may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    String,
    Text,
    Integer,
    Float,
    Boolean,
    Uuid,
    Date,
    Datetime,
}

impl ScalarType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalarType::String => "string",
            ScalarType::Text => "text",
            ScalarType::Integer => "integer",
            ScalarType::Float => "float",
            ScalarType::Boolean => "boolean",
            ScalarType::Uuid => "uuid",
            ScalarType::Date => "date",
            ScalarType::Datetime => "datetime",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => ScalarType::String,
            "text" => ScalarType::Text,
            "integer" => ScalarType::Integer,
            "float" => ScalarType::Float,
            "boolean" => ScalarType::Boolean,
            "uuid" => ScalarType::Uuid,
            "date" => ScalarType::Date,
            "datetime" => ScalarType::Datetime,
            _ => return None,
        })
    }

    pub const ALL: [&'static str; 8] = [
        "string", "text", "integer", "float", "boolean", "uuid", "date", "datetime",
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttrType {
    String {
        min_length: Option<u32>,
        max_length: Option<u32>,
        /// A regular expression the whole value must match (checked by the
        /// application; SQLite has no regex operator).
        pattern: Option<String>,
    },
    Text,
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    Boolean,
    Uuid,
    Date,
    Datetime,
    Json,
    Enum {
        values: Vec<String>,
    },
    Array {
        of: ScalarType,
    },
}

impl AttrType {
    /// The type's name as written in a resource file.
    pub fn name(&self) -> &'static str {
        match self {
            AttrType::String { .. } => "string",
            AttrType::Text => "text",
            AttrType::Integer { .. } => "integer",
            AttrType::Float { .. } => "float",
            AttrType::Boolean => "boolean",
            AttrType::Uuid => "uuid",
            AttrType::Date => "date",
            AttrType::Datetime => "datetime",
            AttrType::Json => "json",
            AttrType::Enum { .. } => "enum",
            AttrType::Array { .. } => "array",
        }
    }

    pub const ALL: [&'static str; 11] = [
        "string", "text", "integer", "float", "boolean", "uuid", "date", "datetime", "json",
        "enum", "array",
    ];
}

/// A literal value from a resource or seed file (defaults, `set`, seed rows).
/// Datetimes and dates are kept as their RFC 3339 text.
pub type Value = serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Restrict,
    Cascade,
    Nullify,
}

impl OnDelete {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDelete::Restrict => "restrict",
            OnDelete::Cascade => "cascade",
            OnDelete::Nullify => "nullify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "restrict" => OnDelete::Restrict,
            "cascade" => OnDelete::Cascade,
            "nullify" => OnDelete::Nullify,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relationship {
    pub name: String,
    pub kind: RelationshipKind,
    pub description: Option<String>,
    /// For `belongs_to`: the old relationship name, so the `<old>_id` column
    /// is renamed rather than dropped.
    pub renamed_from: Option<String>,
    pub file: FileId,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RelationshipKind {
    /// Defines the foreign key column `<name>_id`.
    BelongsTo {
        target: String,
        required: bool,
        on_delete: OnDelete,
        /// `writable = false`: no request body sets `<name>_id`, as for an
        /// attribute; Kumo itself does.
        writable: bool,
    },
    /// The inverse of a `belongs_to` on `target`; `via` names that
    /// relationship when the target has several pointing here.
    HasMany { target: String, via: String },
    /// Through a join resource that `belongs_to` both sides.
    ManyToMany { target: String, through: String },
}

impl Relationship {
    /// The foreign-key column a `belongs_to` defines.
    pub fn column_name(&self) -> Option<String> {
        match self.kind {
            RelationshipKind::BelongsTo { .. } => Some(format!("{}_id", self.name)),
            _ => None,
        }
    }

    pub fn target(&self) -> &str {
        match &self.kind {
            RelationshipKind::BelongsTo { target, .. }
            | RelationshipKind::HasMany { target, .. }
            | RelationshipKind::ManyToMany { target, .. } => target,
        }
    }
}

/// A unique key over attributes and/or `belongs_to` relationships.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub name: String,
    /// Column names (a `belongs_to` field is already resolved to `<name>_id`).
    pub columns: Vec<String>,
    pub file: FileId,
    pub span: Span,
}

/// A named index from `[indexes]`: the fields a list is filtered or sorted
/// by, in order, each ascending or descending.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    /// As written: a `belongs_to` is already resolved to its `<name>_id`
    /// column, and `id` is not appended (lowering does that).
    pub keys: Vec<IndexKey>,
    pub file: FileId,
    pub span: Span,
}

/// One column of an index and its direction (`"-score"` is descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKey {
    pub column: String,
    pub descending: bool,
}

impl IndexKey {
    pub fn ascending(column: &str) -> Self {
        IndexKey {
            column: column.to_owned(),
            descending: false,
        }
    }

    /// The key as written in resource files and the recorded schema:
    /// `score`, or `-score` when descending.
    pub fn spelled(&self) -> String {
        format!("{}{}", if self.descending { "-" } else { "" }, self.column)
    }

    /// An index's keys as the database gets them: with `id` appended
    /// unless it is already last. Lists always sort by `id` last (it breaks
    /// ties, so keyset pages are exact), and an index serves a sort only if
    /// it has every key of it.
    pub fn with_id(keys: &[IndexKey]) -> Vec<IndexKey> {
        let mut keys = keys.to_vec();
        if keys.last().is_none_or(|k| k.column != "id") {
            keys.push(IndexKey::ascending("id"));
        }
        keys
    }

    /// Reads [`IndexKey::spelled`] back.
    pub fn parse(spelled: &str) -> Self {
        match spelled.strip_prefix('-') {
            Some(column) => IndexKey {
                column: column.to_owned(),
                descending: true,
            },
            None => IndexKey::ascending(spelled),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policies {
    pub read: Option<Policy>,
    pub create: Option<Policy>,
    pub update: Option<Policy>,
    pub destroy: Option<Policy>,
}

/// A policy expression, kept with its source text for error messages and docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub source: String,
    /// The parsed expression, with string literals normalised to the type
    /// they are compared with (a datetime in canonical form, a uuid in lower
    /// case), so it no longer prints exactly as `source`.
    pub expr: Expr,
    pub file: FileId,
    /// The TOML string holding the expression, quotes included.
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    Create,
    Update,
    Destroy,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Update => "update",
            ActionKind::Destroy => "destroy",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub name: String,
    pub kind: ActionKind,
    pub description: Option<String>,
    /// Fields a caller may set (attribute names or `belongs_to` names).
    pub accept: Vec<String>,
    /// Values the action fixes, by attribute name.
    pub set: Vec<(String, Value)>,
    /// Amounts added to integer or float attributes.
    pub increment: Vec<(String, Value)>,
    pub policy: Option<Policy>,
    pub file: FileId,
    pub span: Span,
}
