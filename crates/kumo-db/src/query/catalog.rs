//! What the query layer needs to know about each resource, computed once
//! when the server starts: its table, its fields in column order with their
//! kinds, and which of them clients may see, filter on or write.

use std::collections::HashMap;

use kumo_core::resource::{AttrType, RelationshipKind, Resource, ScalarType, Schema};

/// The kind of value a field holds, which decides how it is bound, compared
/// and decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string`, `text` and `enum`.
    Text,
    Integer,
    Float,
    Boolean,
    Uuid,
    Date,
    Datetime,
    Json,
    Array(ScalarType),
}

impl Kind {
    pub fn of(ty: &AttrType) -> Kind {
        match ty {
            AttrType::String { .. } | AttrType::Text | AttrType::Enum { .. } => Kind::Text,
            AttrType::Integer { .. } => Kind::Integer,
            AttrType::Float { .. } => Kind::Float,
            AttrType::Boolean => Kind::Boolean,
            AttrType::Uuid => Kind::Uuid,
            AttrType::Date => Kind::Date,
            AttrType::Datetime => Kind::Datetime,
            AttrType::Json => Kind::Json,
            AttrType::Array { of } => Kind::Array(*of),
        }
    }

    pub fn of_scalar(of: ScalarType) -> Kind {
        match of {
            ScalarType::String | ScalarType::Text => Kind::Text,
            ScalarType::Integer => Kind::Integer,
            ScalarType::Float => Kind::Float,
            ScalarType::Boolean => Kind::Boolean,
            ScalarType::Uuid => Kind::Uuid,
            ScalarType::Date => Kind::Date,
            ScalarType::Datetime => Kind::Datetime,
        }
    }

    /// Values of this kind have an order clients may sort and compare by.
    pub fn is_ordered(self) -> bool {
        matches!(
            self,
            Kind::Text | Kind::Integer | Kind::Float | Kind::Uuid | Kind::Date | Kind::Datetime
        )
    }

    pub fn is_number(self) -> bool {
        matches!(self, Kind::Integer | Kind::Float)
    }
}

/// Where a field comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// `id`, `inserted_at`, `updated_at`: set by Kumo.
    Managed,
    Attribute(AttrType),
    /// The `<name>_id` column of a `belongs_to`; holds the target resource.
    ForeignKey {
        relationship: String,
        target: String,
    },
}

#[derive(Debug, Clone)]
pub struct Field {
    /// The column name (`uploader_id` for a `belongs_to` named `uploader`).
    pub name: String,
    pub kind: Kind,
    pub origin: Origin,
    /// Required: NOT NULL.
    pub required: bool,
    /// The database fills it when a create leaves it out.
    pub has_default: bool,
    pub sensitive: bool,
    pub writable: bool,
}

impl Field {
    /// A column a query computes for itself (a parent key, a policy check),
    /// decoded with the record's fields and then taken out of it.
    pub(crate) fn computed(name: &str, kind: Kind) -> Field {
        Field {
            name: name.to_owned(),
            kind,
            origin: Origin::Managed,
            required: true,
            has_default: false,
            sensitive: false,
            writable: false,
        }
    }

    /// Clients may see, filter and sort on it.
    pub fn is_public(&self) -> bool {
        !self.sensitive
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub resource: Resource,
    pub table: String,
    pub fields: Vec<Field>,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether a client can ever create one: not when a required field
    /// without a default is one only Kumo writes (`writable = false`), as
    /// in the sessions, tokens and keys the auth layer makes. The API then
    /// has no create route for the resource.
    pub fn creatable(&self) -> bool {
        !self
            .fields
            .iter()
            .any(|f| f.required && !f.has_default && !f.writable && f.origin != Origin::Managed)
    }

    /// Whether an index starts with `field`, so a list sorted by it, or
    /// filtered on it by equality or a range, reads the index instead of
    /// the whole table: `id`, an attribute with `index = true`, the first
    /// key of an `[indexes]` entry or an identity, and a `belongs_to`
    /// column (Kumo indexes each). A search index serves neither.
    pub fn indexed(&self, field: &str) -> bool {
        let r = &self.resource;
        field == "id"
            || r.attribute(field).is_some_and(|a| a.index || a.unique)
            || r.indexes
                .iter()
                .any(|i| i.keys.first().is_some_and(|k| k.column == field))
            || r.identities
                .iter()
                .any(|i| i.columns.first().is_some_and(|c| c == field))
            || self
                .field(field)
                .is_some_and(|f| matches!(f.origin, Origin::ForeignKey { .. }))
    }

    /// The fields a client may see, in column order.
    pub fn public_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.is_public())
    }
}

/// Every resource of the schema by name and by plural.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub schema: Schema,
    entries: HashMap<String, Entry>,
    by_plural: HashMap<String, String>,
}

impl Catalog {
    pub fn new(schema: Schema) -> Catalog {
        let mut entries = HashMap::new();
        let mut by_plural = HashMap::new();
        for resource in &schema.resources {
            by_plural.insert(resource.plural.clone(), resource.name.clone());
            entries.insert(resource.name.clone(), entry(resource));
        }
        Catalog {
            schema,
            entries,
            by_plural,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// The entry of a resource the schema validated; a miss is a bug.
    pub(crate) fn entry(&self, name: &str) -> &Entry {
        &self.entries[name]
    }

    pub fn by_plural(&self, plural: &str) -> Option<&Entry> {
        self.by_plural.get(plural).and_then(|n| self.entries.get(n))
    }

    /// Resources in schema order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.schema.resources.iter().map(|r| &self.entries[&r.name])
    }
}

fn managed(name: &str, kind: Kind) -> Field {
    Field {
        name: name.to_owned(),
        kind,
        origin: Origin::Managed,
        required: true,
        has_default: true,
        sensitive: false,
        writable: false,
    }
}

fn entry(resource: &Resource) -> Entry {
    let mut fields = vec![managed("id", Kind::Uuid)];
    for a in &resource.attributes {
        fields.push(Field {
            name: a.name.clone(),
            kind: Kind::of(&a.ty),
            origin: Origin::Attribute(a.ty.clone()),
            required: a.required,
            has_default: a.default.is_some(),
            sensitive: a.sensitive,
            writable: a.writable,
        });
    }
    for r in &resource.relationships {
        if let RelationshipKind::BelongsTo {
            target,
            required,
            writable,
            ..
        } = &r.kind
        {
            fields.push(Field {
                name: format!("{}_id", r.name),
                kind: Kind::Uuid,
                origin: Origin::ForeignKey {
                    relationship: r.name.clone(),
                    target: target.clone(),
                },
                required: *required,
                has_default: false,
                sensitive: false,
                writable: *writable,
            });
        }
    }
    fields.push(managed("inserted_at", Kind::Datetime));
    fields.push(managed("updated_at", Kind::Datetime));
    Entry {
        resource: resource.clone(),
        table: resource.plural.clone(),
        fields,
    }
}
