//! Random sequences of resource edits, each turned into a migration and
//! applied to PostgreSQL and SQLite side by side.
//!
//! After every step, on both databases: the live schema is what the declared
//! tables say, planning again from the recorded tables finds nothing to do,
//! and every row kept in every table still holds its own value in every
//! column (`id`, the `marker` no edit touches, the timestamps, each
//! attribute, each `belongs_to` key), through renames and SQLite table
//! rebuilds. A column a step adds holds its default (or NULL), one whose type
//! changed holds the converted values where both databases convert them
//! alike (or NULL, where they were emptied first); such columns then get
//! fresh values, distinct per row and per column, for the steps after.
//! At the end the last migration rolls back with the rows in place, then,
//! with the tables emptied, all the others, leaving an empty database.
//!
//! Indexes are edited too: declared ones (`[indexes]`, over attributes,
//! `belongs_to` columns, `marker` and `inserted_at`, either direction) added
//! and dropped, `index = true` switched on and off, and they follow every
//! other edit (a renamed column or table renames them, a column that
//! becomes JSON or goes away takes them along, as a resource file would
//! have to), while Kumo adds and drops the indexes of `belongs_to` columns.
//!
//! Edits pick their resource and attribute with small numbers taken modulo
//! what exists, so any sequence is valid and shrinks to a readable one; an
//! edit that cannot apply (nothing to remove) does nothing. Each case uses
//! fresh databases. `PROPTEST_CASES`, `PROPTEST_MAX_SHRINK_ITERS` and
//! `PROPTEST_RNG_SEED` (a fixed seed reproduces a run) are honoured.

use std::fmt;

use kumo_core::resource::{AttrType, Attribute, OnDelete, ScalarType, Schema, Value};
use kumo_core::table::{self, ColumnType, Table};
use kumo_db::files::{Migration, Plan};
use kumo_db::introspect::{self, LiveSchema};
use kumo_db::runner;
use kumo_db::sql::{Dialect, value_sql};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::json;

use crate::harness::{
    AttributeExt, EXTERNAL_ID, TestDb, attr, belongs_to, check_live_schema, enumeration, float, id,
    identity, index, integer, lit, resource, string, uuid,
};

/// Rows kept in every table.
const ROWS: u32 = 2;

// ---------------------------------------------------------------------------
// What is generated

/// An attribute as generated: required attributes always have a default (so
/// they can be added to tables with rows) and unique ones never do (so rows
/// do not collide).
#[derive(Clone, PartialEq)]
struct AttrSpec {
    ty: AttrType,
    required: bool,
    default: Option<Value>,
    unique: bool,
}

#[derive(Clone, Debug)]
struct ResourceSpec {
    attributes: Vec<AttrSpec>,
    /// (target, on_delete); the target index one past the last resource
    /// means the resource itself.
    belongs_to: Option<(u8, OnDelete)>,
}

#[derive(Clone, Debug)]
enum Edit {
    AddAttribute {
        resource: u8,
        attribute: AttrSpec,
    },
    RemoveAttribute {
        resource: u8,
        attribute: u8,
    },
    RenameAttribute {
        resource: u8,
        attribute: u8,
    },
    /// Optional attributes take `to` (their values are set to NULL first:
    /// PostgreSQL rightly refuses impossible conversions); required ones keep
    /// their values, so they only widen, to text or integer → float.
    ChangeType {
        resource: u8,
        attribute: u8,
        to: Ty,
        pick: u8,
    },
    /// Over `marker` (unique per row) and maybe one more column.
    AddIdentity {
        resource: u8,
        column: Option<u8>,
    },
    AddBelongsTo {
        resource: u8,
        target: u8,
        on_delete: OnDelete,
    },
    AddResource(ResourceSpec),
    DropResource {
        resource: u8,
    },
    RenameResource {
        resource: u8,
        /// `renamed_from` names the old table rather than the old resource.
        by_table_name: bool,
    },
    /// An `[indexes]` entry over one or two of the resource's indexable
    /// columns, each picked by number, `true` for descending.
    AddIndex {
        resource: u8,
        keys: Vec<(u8, bool)>,
    },
    DropIndex {
        resource: u8,
        index: u8,
    },
    /// Switches `index = true` on or off.
    IndexAttribute {
        resource: u8,
        attribute: u8,
    },
    /// Switches `search = true` on or off (text attributes only).
    SearchAttribute {
        resource: u8,
        attribute: u8,
    },
}

struct Case {
    initial: Vec<ResourceSpec>,
    edits: Vec<Edit>,
}

/// An attribute type, printed compactly.
#[derive(Clone, PartialEq)]
struct Ty(AttrType);

fn describe_type(ty: &AttrType) -> String {
    let bound =
        |name: &str, v: Option<String>| v.map(|v| format!(" {name} {v}")).unwrap_or_default();
    match ty {
        AttrType::String {
            min_length,
            max_length,
            ..
        } => format!(
            "string{}{}",
            bound("min_length", min_length.map(|v| v.to_string())),
            bound("max_length", max_length.map(|v| v.to_string()))
        ),
        AttrType::Integer { min, max } => format!(
            "integer{}{}",
            bound("min", min.map(|v| v.to_string())),
            bound("max", max.map(|v| v.to_string()))
        ),
        AttrType::Float { min, max } => format!(
            "float{}{}",
            bound("min", min.map(|v| v.to_string())),
            bound("max", max.map(|v| v.to_string()))
        ),
        AttrType::Enum { values } => format!("enum {values:?}"),
        AttrType::Array { of } => format!("array of {}", of.as_str()),
        other => other.name().to_string(),
    }
}

impl fmt::Debug for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe_type(&self.0))
    }
}

impl fmt::Debug for AttrSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}", describe_type(&self.ty))?;
        if self.required {
            write!(f, " required")?;
        }
        if let Some(d) = &self.default {
            write!(f, " default {d}")?;
        }
        if self.unique {
            write!(f, " unique")?;
        }
        write!(f, ">")
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Case {{")?;
        writeln!(f, "  step 0: create {:?}", self.initial)?;
        for (i, edit) in self.edits.iter().enumerate() {
            writeln!(f, "  step {}: {edit:?}", i + 1)?;
        }
        write!(f, "}}")
    }
}

const SCALARS: [ScalarType; 8] = [
    ScalarType::String,
    ScalarType::Text,
    ScalarType::Integer,
    ScalarType::Float,
    ScalarType::Boolean,
    ScalarType::Uuid,
    ScalarType::Date,
    ScalarType::Datetime,
];

fn attr_type() -> impl Strategy<Value = AttrType> {
    prop_oneof![
        (any::<bool>(), any::<bool>())
            .prop_map(|(min, max)| string(min.then_some(1), max.then_some(20))),
        Just(AttrType::Text),
        (any::<bool>(), any::<bool>())
            .prop_map(|(min, max)| integer(min.then_some(-10), max.then_some(1000))),
        (any::<bool>(), any::<bool>())
            .prop_map(|(min, max)| float(min.then_some(-1.5), max.then_some(99.5))),
        Just(AttrType::Boolean),
        Just(AttrType::Uuid),
        Just(AttrType::Date),
        Just(AttrType::Datetime),
        Just(AttrType::Json),
        proptest::sample::subsequence(vec!["red", "green", "it's blue"], 1..=3)
            .prop_map(|values| enumeration(&values)),
        proptest::sample::select(SCALARS.to_vec()).prop_map(|of| AttrType::Array { of }),
    ]
}

/// A default valid for `ty` (within every generated constraint); `pick`
/// chooses among a few.
fn default_for(ty: &AttrType, pick: u8) -> Value {
    let pick = usize::from(pick);
    let one_of = |values: Vec<Value>| values[pick % values.len()].clone();
    match ty {
        AttrType::String { .. } => one_of(vec![json!("abc"), json!("hello world")]),
        AttrType::Text => one_of(vec![json!("it's text"), json!("")]),
        AttrType::Integer { .. } => one_of(vec![json!(7), json!(-3), json!(0)]),
        AttrType::Float { .. } => one_of(vec![json!(2.5), json!(-1.25), json!(0.0), json!(3.0)]),
        AttrType::Boolean => one_of(vec![json!(true), json!(false)]),
        AttrType::Uuid => json!(EXTERNAL_ID),
        AttrType::Date => json!("2024-02-29"),
        AttrType::Datetime => one_of(vec![
            json!("2024-01-02T03:04:05Z"),
            json!("2024-01-02T03:04:05.250Z"),
        ]),
        AttrType::Json => one_of(vec![
            json!({"k": [1, 2], "a": "x"}),
            json!([1, "two"]),
            json!("s"),
            json!(3),
            json!(true),
        ]),
        AttrType::Enum { values } => json!(values[pick % values.len()]),
        AttrType::Array { of } => {
            if pick % 2 == 1 {
                return json!([]);
            }
            match of {
                ScalarType::String | ScalarType::Text => json!(["a", "b"]),
                ScalarType::Integer => json!([1, 2]),
                ScalarType::Float => json!([1.5]),
                ScalarType::Boolean => json!([true, false]),
                ScalarType::Uuid => json!([EXTERNAL_ID]),
                ScalarType::Date => json!(["2024-01-01"]),
                ScalarType::Datetime => json!(["2024-01-01T00:00:00Z"]),
            }
        }
    }
}

fn attr_spec() -> impl Strategy<Value = AttrSpec> {
    (attr_type(), 0_u8..4, 0_u8..4).prop_map(|(ty, mode, pick)| {
        let default = Some(default_for(&ty, pick));
        match mode {
            0 => AttrSpec {
                ty,
                required: false,
                default: None,
                unique: false,
            },
            1 => AttrSpec {
                ty,
                required: false,
                default,
                unique: false,
            },
            2 => AttrSpec {
                ty,
                required: true,
                default,
                unique: false,
            },
            _ => AttrSpec {
                ty,
                required: false,
                default: None,
                unique: true,
            },
        }
    })
}

fn selector() -> impl Strategy<Value = u8> {
    0_u8..8
}

fn on_delete() -> impl Strategy<Value = OnDelete> {
    prop_oneof![
        Just(OnDelete::Restrict),
        Just(OnDelete::Cascade),
        Just(OnDelete::Nullify)
    ]
}

fn resource_spec() -> impl Strategy<Value = ResourceSpec> {
    (
        proptest::collection::vec(attr_spec(), 1..=3),
        proptest::option::of((selector(), on_delete())),
    )
        .prop_map(|(attributes, belongs_to)| ResourceSpec {
            attributes,
            belongs_to,
        })
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (selector(), attr_spec())
            .prop_map(|(resource, attribute)| Edit::AddAttribute { resource, attribute }),
        2 => (selector(), selector())
            .prop_map(|(resource, attribute)| Edit::RemoveAttribute { resource, attribute }),
        2 => (selector(), selector())
            .prop_map(|(resource, attribute)| Edit::RenameAttribute { resource, attribute }),
        3 => (selector(), selector(), attr_type(), 0_u8..4).prop_map(
            |(resource, attribute, to, pick)| Edit::ChangeType {
                resource,
                attribute,
                to: Ty(to),
                pick
            }
        ),
        1 => (selector(), proptest::option::of(selector()))
            .prop_map(|(resource, column)| Edit::AddIdentity { resource, column }),
        2 => (selector(), selector(), on_delete()).prop_map(|(resource, target, on_delete)| {
            Edit::AddBelongsTo {
                resource,
                target,
                on_delete,
            }
        }),
        1 => resource_spec().prop_map(Edit::AddResource),
        1 => selector().prop_map(|resource| Edit::DropResource { resource }),
        2 => (selector(), any::<bool>()).prop_map(|(resource, by_table_name)| {
            Edit::RenameResource {
                resource,
                by_table_name,
            }
        }),
        2 => (selector(), proptest::collection::vec((selector(), any::<bool>()), 1..=2))
            .prop_map(|(resource, keys)| Edit::AddIndex { resource, keys }),
        1 => (selector(), selector())
            .prop_map(|(resource, index)| Edit::DropIndex { resource, index }),
        2 => (selector(), selector())
            .prop_map(|(resource, attribute)| Edit::IndexAttribute { resource, attribute }),
        1 => (selector(), selector())
            .prop_map(|(resource, attribute)| Edit::SearchAttribute { resource, attribute }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(resource_spec(), 1..=3),
        proptest::collection::vec(edit(), 1..=5),
    )
        .prop_map(|(initial, edits)| Case { initial, edits })
}

// ---------------------------------------------------------------------------
// The model the edits change

#[derive(Clone, Debug)]
struct ModelAttr {
    name: String,
    spec: AttrSpec,
    renamed_from: Option<String>,
    /// What each row holds (`None`: NULL), when the model knows it: not
    /// after a conversion whose text differs between the databases.
    values: Option<Vec<Option<Value>>>,
    /// Whether the rows get fresh values after this step's check: the column
    /// is new or its values were emptied (not after a type change, whose
    /// values must convert back on rollback).
    reseed: bool,
    /// `index = true`.
    index: bool,
    /// `search = true`.
    search: bool,
}

#[derive(Clone, Debug)]
struct ModelRel {
    name: String,
    /// The target's `key`.
    target: u32,
    on_delete: OnDelete,
    /// Every row points at the target's row of the same number.
    filled: bool,
}

#[derive(Clone, Debug)]
struct ModelResource {
    /// Stable across renames; row ids and markers derive from it.
    key: u32,
    name: String,
    renamed_from: Option<String>,
    attributes: Vec<ModelAttr>,
    relationships: Vec<ModelRel>,
    identities: Vec<(String, Vec<String>)>,
    /// `[indexes]`: name, then (column, descending).
    indexes: Vec<(String, Vec<(String, bool)>)>,
    /// Whether its rows have been inserted.
    seeded: bool,
}

impl ModelResource {
    fn table(&self) -> String {
        format!("{}s", self.name)
    }

    fn row_id(&self, row: u32) -> String {
        uuid(u64::from(self.key) * 100 + u64::from(row))
    }

    /// The columns an index may list: attributes that are not JSON or
    /// arrays, `belongs_to` keys, `marker` and `inserted_at`.
    fn indexable(&self) -> Vec<String> {
        ["marker".to_string(), "inserted_at".to_string()]
            .into_iter()
            .chain(
                self.attributes
                    .iter()
                    .filter(|a| is_indexable(&a.spec.ty))
                    .map(|a| a.name.clone()),
            )
            .chain(
                self.relationships
                    .iter()
                    .map(|rel| format!("{}_id", rel.name)),
            )
            .collect()
    }

    /// Whether an index over `keys` exists already, as the loader sees it
    /// (`id` appended): declared, or made by `index = true`.
    fn has_index(&self, keys: &[(String, bool)]) -> bool {
        let attribute_index = match keys {
            [(column, false)] => self.attributes.iter().any(|a| a.index && a.name == *column),
            _ => false,
        };
        attribute_index || self.indexes.iter().any(|(_, k)| k == keys)
    }

    /// Drops the indexes over `column` and its `index = true` (the column
    /// is gone, or can no longer be indexed).
    fn unindex(&mut self, column: &str) {
        self.indexes
            .retain(|(_, keys)| !keys.iter().any(|(c, _)| c == column));
        for a in self.attributes.iter_mut().filter(|a| a.name == column) {
            a.index = false;
        }
    }

    fn markers(&self) -> Vec<String> {
        (0..ROWS)
            .map(|row| format!("r{}-row{row}", self.key))
            .collect()
    }

    /// `inserted_at` and `updated_at` of a row, set explicitly so that they
    /// too differ from row to row.
    fn timestamps(&self, row: u32) -> [Value; 2] {
        let day = 1 + (self.key * ROWS + row) % 28;
        [
            json!(format!("2020-01-{day:02}T01:02:03Z")),
            json!(format!("2021-06-{day:02}T04:05:06.500Z")),
        ]
    }
}

/// A data change or check that goes with a step, on both databases.
#[derive(Debug, Default)]
struct StepData {
    /// (table, column) set to NULL before migrating.
    null_first: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Model {
    next: u32,
    /// Makes every column's values differ from every other column's.
    salt: u32,
    resources: Vec<ModelResource>,
}

impl Model {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn pick(&self, selector: u8) -> Option<usize> {
        (!self.resources.is_empty()).then(|| usize::from(selector) % self.resources.len())
    }

    fn name_of(&self, key: u32) -> &str {
        &self
            .resources
            .iter()
            .find(|r| r.key == key)
            .expect("relationship targets exist")
            .name
    }

    fn schema(&self) -> Schema {
        let resources = self
            .resources
            .iter()
            .map(|r| {
                let mut res = resource(&r.name);
                res.renamed_from.clone_from(&r.renamed_from);
                res.attributes = std::iter::once(attr("marker", AttrType::Text))
                    .chain(r.attributes.iter().map(to_attribute))
                    .collect();
                res.relationships = r
                    .relationships
                    .iter()
                    .map(|rel| {
                        belongs_to(&rel.name, self.name_of(rel.target), false, rel.on_delete)
                    })
                    .collect();
                res.identities = r
                    .identities
                    .iter()
                    .map(|(name, columns)| {
                        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                        identity(name, &columns)
                    })
                    .collect();
                res.indexes = r
                    .indexes
                    .iter()
                    .map(|(name, keys)| {
                        let keys: Vec<String> = keys
                            .iter()
                            .map(|(c, desc)| format!("{}{c}", if *desc { "-" } else { "" }))
                            .collect();
                        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                        index(name, &keys)
                    })
                    .collect();
                res
            })
            .collect();
        Schema { resources }
    }

    fn add_resource(&mut self, spec: &ResourceSpec) {
        self.next += 1;
        let key = self.next;
        let name = format!("r{key}");
        let attributes = spec
            .attributes
            .iter()
            .map(|a| ModelAttr {
                name: self.fresh("a"),
                spec: a.clone(),
                renamed_from: None,
                values: None,
                reseed: false,
                index: false,
                search: false,
            })
            .collect();
        let relationships = match spec.belongs_to {
            None => Vec::new(),
            Some((target, on_delete)) => {
                let i = usize::from(target) % (self.resources.len() + 1);
                let target = self.resources.get(i).map_or(key, |r| r.key);
                vec![ModelRel {
                    name: self.fresh("b"),
                    target,
                    on_delete,
                    filled: false,
                }]
            }
        };
        self.resources.push(ModelResource {
            key,
            name,
            renamed_from: None,
            attributes,
            relationships,
            identities: Vec::new(),
            indexes: Vec::new(),
            seeded: false,
        });
    }

    /// Applies an edit; what must happen to the data first.
    fn apply(&mut self, edit: &Edit) -> StepData {
        let mut data = StepData::default();
        match edit {
            Edit::AddResource(spec) => self.add_resource(spec),
            Edit::AddAttribute {
                resource,
                attribute,
            } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let name = self.fresh("a");
                // Existing rows take the default (or NULL).
                let seeded = self.resources[r].seeded;
                self.resources[r].attributes.push(ModelAttr {
                    name,
                    spec: attribute.clone(),
                    renamed_from: None,
                    values: seeded.then(|| vec![attribute.default.clone(); ROWS as usize]),
                    reseed: seeded,
                    index: false,
                    search: false,
                });
            }
            Edit::RemoveAttribute {
                resource,
                attribute,
            } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let res = &mut self.resources[r];
                if res.attributes.is_empty() {
                    return data;
                }
                let i = usize::from(*attribute) % res.attributes.len();
                let removed = res.attributes.remove(i);
                res.identities
                    .retain(|(_, cols)| !cols.contains(&removed.name));
                res.unindex(&removed.name);
            }
            Edit::RenameAttribute {
                resource,
                attribute,
            } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                if self.resources[r].attributes.is_empty() {
                    return data;
                }
                let new = self.fresh("a");
                let res = &mut self.resources[r];
                let i = usize::from(*attribute) % res.attributes.len();
                let old = std::mem::replace(&mut res.attributes[i].name, new.clone());
                res.attributes[i].renamed_from = Some(old.clone());
                for (_, cols) in &mut res.identities {
                    for c in cols.iter_mut().filter(|c| **c == old) {
                        c.clone_from(&new);
                    }
                }
                for (_, keys) in &mut res.indexes {
                    for (c, _) in keys.iter_mut().filter(|(c, _)| *c == old) {
                        c.clone_from(&new);
                    }
                }
            }
            Edit::ChangeType {
                resource,
                attribute,
                to,
                pick,
            } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let res = &mut self.resources[r];
                if res.attributes.is_empty() {
                    return data;
                }
                let table = res.table();
                let i = usize::from(*attribute) % res.attributes.len();
                let a = &mut res.attributes[i];
                if a.spec.required {
                    // Keep the values: only conversions every value survives.
                    let ty = match (&a.spec.ty, &to.0) {
                        (AttrType::Integer { .. }, AttrType::Float { .. }) => float(None, None),
                        _ => AttrType::Text,
                    };
                    a.spec.default = Some(default_for(&ty, *pick));
                    let from = std::mem::replace(&mut a.spec.ty, ty);
                    a.values = a
                        .values
                        .take()
                        .and_then(|rows| converted(&from, &a.spec.ty, rows));
                    // No fresh values: values of the new type need not
                    // convert back when everything is rolled back.
                    a.reseed = false;
                } else {
                    a.spec.ty = to.0.clone();
                    if a.spec.default.is_some() {
                        a.spec.default = Some(default_for(&to.0, *pick));
                    }
                    // It stays NULL: values of the new type need not convert
                    // back to the old one when everything is rolled back.
                    a.values = Some(vec![None; ROWS as usize]);
                    a.reseed = false;
                    data.null_first.push((table, a.name.clone()));
                }
                if !is_indexable(&res.attributes[i].spec.ty) {
                    let name = res.attributes[i].name.clone();
                    res.unindex(&name);
                }
                if !is_searchable(&res.attributes[i].spec.ty) {
                    res.attributes[i].search = false;
                }
            }
            Edit::AddIdentity { resource, column } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let res = &self.resources[r];
                let candidates: Vec<String> = res
                    .attributes
                    .iter()
                    .map(|a| a.name.clone())
                    .chain(
                        res.relationships
                            .iter()
                            .map(|rel| format!("{}_id", rel.name)),
                    )
                    .collect();
                let mut columns = vec!["marker".to_string()];
                if let (Some(c), false) = (column, candidates.is_empty()) {
                    columns.push(candidates[usize::from(*c) % candidates.len()].clone());
                }
                if res.identities.iter().any(|(_, cols)| *cols == columns) {
                    return data;
                }
                let name = self.fresh("i");
                self.resources[r].identities.push((name, columns));
            }
            Edit::AddBelongsTo {
                resource,
                target,
                on_delete,
            } => {
                let (Some(r), Some(t)) = (self.pick(*resource), self.pick(*target)) else {
                    return data;
                };
                let target = self.resources[t].key;
                let name = self.fresh("b");
                self.resources[r].relationships.push(ModelRel {
                    name,
                    target,
                    on_delete: *on_delete,
                    filled: false,
                });
            }
            Edit::DropResource { resource } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let gone = self.resources.remove(r).key;
                for res in &mut self.resources {
                    let columns: Vec<String> = res
                        .relationships
                        .iter()
                        .filter(|rel| rel.target == gone)
                        .map(|rel| format!("{}_id", rel.name))
                        .collect();
                    res.relationships.retain(|rel| rel.target != gone);
                    res.identities
                        .retain(|(_, cols)| !cols.iter().any(|c| columns.contains(c)));
                    for column in &columns {
                        res.unindex(column);
                    }
                }
            }
            Edit::RenameResource {
                resource,
                by_table_name,
            } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let new = self.fresh("r");
                let res = &mut self.resources[r];
                let old = if *by_table_name {
                    res.table()
                } else {
                    res.name.clone()
                };
                res.name = new;
                res.renamed_from = Some(old);
            }
            Edit::AddIndex { resource, keys } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let candidates = self.resources[r].indexable();
                let mut columns: Vec<(String, bool)> = Vec::new();
                for (pick, descending) in keys {
                    let column = &candidates[usize::from(*pick) % candidates.len()];
                    if !columns.iter().any(|(c, _)| c == column) {
                        columns.push((column.clone(), *descending));
                    }
                }
                if self.resources[r].has_index(&columns) {
                    return data;
                }
                let name = self.fresh("x");
                self.resources[r].indexes.push((name, columns));
            }
            Edit::DropIndex { resource, index } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let res = &mut self.resources[r];
                if !res.indexes.is_empty() {
                    let i = usize::from(*index) % res.indexes.len();
                    res.indexes.remove(i);
                }
            }
            Edit::IndexAttribute {
                resource,
                attribute,
            } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let res = &mut self.resources[r];
                if res.attributes.is_empty() {
                    return data;
                }
                let i = usize::from(*attribute) % res.attributes.len();
                let a = &res.attributes[i];
                let on = !a.index;
                let same = [(a.name.clone(), false)];
                if on && (!is_indexable(&a.spec.ty) || res.indexes.iter().any(|(_, k)| *k == same))
                {
                    return data;
                }
                res.attributes[i].index = on;
            }
            Edit::SearchAttribute {
                resource,
                attribute,
            } => {
                let Some(r) = self.pick(*resource) else {
                    return data;
                };
                let res = &mut self.resources[r];
                if res.attributes.is_empty() {
                    return data;
                }
                let i = usize::from(*attribute) % res.attributes.len();
                let a = &mut res.attributes[i];
                if is_searchable(&a.spec.ty) {
                    a.search = !a.search;
                }
            }
        }
        data
    }
}

/// Whether `search = true` may mark an attribute of `ty`.
fn is_searchable(ty: &AttrType) -> bool {
    matches!(ty, AttrType::String { .. } | AttrType::Text)
}

/// Whether lists can be filtered and sorted by values of `ty`, so that it
/// may be indexed.
fn is_indexable(ty: &AttrType) -> bool {
    !matches!(ty, AttrType::Json | AttrType::Array { .. })
}

fn to_attribute(a: &ModelAttr) -> Attribute {
    let mut attribute = attr(&a.name, a.spec.ty.clone());
    if a.spec.required {
        attribute = attribute.required();
    }
    if let Some(d) = &a.spec.default {
        attribute = attribute.default(d.clone());
    }
    if a.spec.unique {
        attribute = attribute.unique();
    }
    if let Some(old) = &a.renamed_from {
        attribute = attribute.renamed_from(old);
    }
    if a.index {
        attribute = attribute.indexed();
    }
    if a.search {
        attribute = attribute.searched();
    }
    attribute
}

// ---------------------------------------------------------------------------
// Running a case

fn config() -> Config {
    let env = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Config {
        cases: env("PROPTEST_CASES", 12),
        // Every shrinking run creates two databases; keep shrinking bounded.
        max_shrink_iters: env("PROPTEST_MAX_SHRINK_ITERS", 256),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_edits_migrate_both_databases_and_keep_data(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run_case(&case))?;
    }
}

async fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let dbs = [TestDb::postgres().await, TestDb::sqlite().await];
    let result = run_steps(case, &dbs).await;
    for db in dbs {
        db.cleanup().await;
    }
    result.map_err(TestCaseError::fail)
}

async fn run_steps(case: &Case, dbs: &[TestDb]) -> Result<(), String> {
    let mut model = Model::default();
    let mut recorded: Vec<Table> = Vec::new();
    let mut migrations: Vec<Migration> = Vec::new();
    // The model and tables after each applied migration.
    let mut applied: Vec<(Model, Vec<Table>)> = Vec::new();
    for step in 0..=case.edits.len() {
        let (what, data) = if step == 0 {
            for spec in &case.initial {
                model.add_resource(spec);
            }
            ("create".to_string(), StepData::default())
        } else {
            let edit = &case.edits[step - 1];
            (format!("{edit:?}"), model.apply(edit))
        };
        let context = format!("step {step} ({what})");
        let schema = model.schema();
        // Before planning: the model already counts on it, even when the
        // edit turns out to change nothing (a type changed to itself).
        for db in dbs {
            for (table, column) in &data.null_first {
                db.exec(&format!("UPDATE {} SET {} = NULL", id(table), id(column)))
                    .await;
            }
        }
        let plan = Plan::new(recorded.clone(), &schema);
        if plan.is_empty() {
            continue;
        }
        let migration = plan.migration(format!("{:014}_step{step}", step + 1));
        migrations.push(migration.clone());
        for db in dbs {
            let d = db.dialect();
            let fail = |e: String| {
                format!(
                    "{context} on {}: {e}\n--- up SQL ---\n{}",
                    db.name(),
                    migration.up(d)
                )
            };
            let ran = runner::migrate(&db.db, &migrations)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if ran != [migration.id.clone()] {
                return Err(fail(format!("applied {ran:?}")));
            }
            check_live_schema(db, &introspect::expected(&plan.new_tables, d))
                .await
                .map_err(fail)?;
        }
        for db in dbs {
            check_data(&model, &plan.new_tables, db)
                .await
                .map_err(|e| format!("{context} on {}: {e}", db.name()))?;
        }
        seed(&mut model, &plan.new_tables, dbs).await;
        // What codegen records and reads back for the next migration.
        recorded = plan
            .new_tables
            .iter()
            .map(|t| table::from_snapshot(&table::to_snapshot(t)))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{context}: recorded table does not read back: {e}"))?;
        let mut declared = plan.new_tables.clone();
        for t in &mut declared {
            table::sort_columns_as_recorded(&mut t.columns);
        }
        if recorded != declared {
            return Err(format!(
                "{context}: recorded tables change when read back:\n{:#?}\nvs\n{:#?}",
                recorded, declared
            ));
        }
        let again = Plan::new(recorded.clone(), &schema);
        if !again.is_empty() {
            return Err(format!(
                "{context}: planning again is not empty: {:?}",
                again.describe()
            ));
        }
        applied.push((model.clone(), plan.new_tables.clone()));
    }
    roll_back(dbs, &migrations, &applied).await
}

/// Rolls the last migration back with the rows in place, then, with the
/// tables emptied, everything else.
///
/// Only the last one keeps the rows: a down migration cannot restore dropped
/// data, so undoing "remove attribute" re-adds the column filled with its
/// latest default, which undoing an earlier type change may then rightly
/// refuse to convert (the enum `["b"]` cannot take the string default `a`).
async fn roll_back(
    dbs: &[TestDb],
    migrations: &[Migration],
    applied: &[(Model, Vec<Table>)],
) -> Result<(), String> {
    let [.., (last, _)] = applied else {
        return Ok(());
    };
    let (before, before_tables) = match applied.len() {
        1 => (Model::default(), Vec::new()),
        n => applied[n - 2].clone(),
    };
    for db in dbs {
        rollback(db, migrations, 1).await?;
        let context = |e: String| {
            format!(
                "after rolling back the last migration on {}: {e}",
                db.name()
            )
        };
        check_live_schema(db, &introspect::expected(&before_tables, db.dialect()))
            .await
            .map_err(context)?;
        // Tables on both sides of the last migration still hold their rows.
        for r in &before.resources {
            if last.resources.iter().any(|l| l.key == r.key) {
                check_markers(r, db).await.map_err(context)?;
            }
        }
        for r in &before.resources {
            for rel in &r.relationships {
                db.exec(&format!(
                    "UPDATE {} SET {} = NULL",
                    id(&r.table()),
                    id(&format!("{}_id", rel.name))
                ))
                .await;
            }
        }
        for r in &before.resources {
            db.exec(&format!("DELETE FROM {}", id(&r.table()))).await;
        }
        rollback(db, migrations, migrations.len() - 1).await?;
        check_live_schema(db, &LiveSchema::new())
            .await
            .map_err(|e| format!("after rolling back everything on {}: {e}", db.name()))?;
    }
    Ok(())
}

/// Rolls back the last `steps` migrations.
async fn rollback(db: &TestDb, migrations: &[Migration], steps: usize) -> Result<(), String> {
    let undone = runner::rollback(&db.db, migrations, steps)
        .await
        .map_err(|e| {
            let downs: Vec<String> = migrations
                .iter()
                .rev()
                .take(steps)
                .map(|m| format!("--- {} down ---\n{}", m.id, m.down(db.dialect())))
                .collect();
            format!("rolling back on {}: {e}\n{}", db.name(), downs.join("\n"))
        })?;
    if undone.len() == steps {
        Ok(())
    } else {
        Err(format!("{}: rolled back only {undone:?}", db.name()))
    }
}

async fn check_markers(r: &ModelResource, db: &TestDb) -> Result<(), String> {
    let markers = db
        .strings(&format!(
            "SELECT \"marker\" FROM {} ORDER BY \"marker\"",
            id(&r.table())
        ))
        .await;
    let expected: Vec<Option<String>> = r.markers().into_iter().map(Some).collect();
    if markers == expected {
        Ok(())
    } else {
        Err(format!(
            "{}: markers {markers:?}, want {expected:?}",
            r.table()
        ))
    }
}

/// The values after converting `from` to `to`, where PostgreSQL and SQLite
/// convert them to the same thing; `None` where they differ (a float's text
/// is `3` on one and `3.0` on the other) or the model does not know.
fn converted(
    from: &AttrType,
    to: &AttrType,
    rows: Vec<Option<Value>>,
) -> Option<Vec<Option<Value>>> {
    use AttrType as A;
    let text_like = |t: &AttrType| matches!(t, A::String { .. } | A::Text | A::Enum { .. });
    let convert = |v: Value| -> Option<Value> {
        match (from, to, v) {
            (f, t, v @ Value::String(_)) if text_like(f) && text_like(t) => Some(v),
            (A::Uuid, t, v @ Value::String(_)) if text_like(t) => Some(v),
            (A::Integer { .. }, A::Float { .. }, Value::Number(n)) => Some(json!(n.as_f64()?)),
            (A::Integer { .. }, t, Value::Number(n)) if text_like(t) => Some(json!(n.to_string())),
            (A::Boolean, t, Value::Bool(b)) if text_like(t) => Some(json!(b.to_string())),
            _ => None,
        }
    };
    rows.into_iter()
        .map(|v| v.map(convert).map_or(Some(None), |c| c.map(Some)))
        .collect()
}

/// The value `row` gets in a column: its own, except that a unique column
/// whose type has fewer values than there are rows (an enum of one value)
/// is NULL after the first row, since two rows may not share a value.
fn seed_value(spec: &AttrSpec, salt: u32, row: u32) -> Option<Value> {
    let too_few = matches!(&spec.ty, AttrType::Enum { values } if values.len() < ROWS as usize);
    (!(spec.unique && too_few && row > 0)).then(|| row_value(&spec.ty, salt, row))
}

/// A value of type `ty` for `row`, within every generated constraint, that
/// differs from the other rows' and (through `salt`) other columns'.
fn row_value(ty: &AttrType, salt: u32, row: u32) -> Value {
    let n = salt * ROWS + row;
    let scalar = |of: ScalarType| -> Value {
        match of {
            ScalarType::String => json!(format!("s{salt}r{row}")),
            ScalarType::Text => json!(format!("it's t{salt}r{row}")),
            ScalarType::Integer => json!(n % 1000),
            ScalarType::Float => json!(f64::from(n % 99) + 0.25),
            ScalarType::Boolean => json!(row.is_multiple_of(2)),
            ScalarType::Uuid => json!(uuid(900_000 + u64::from(n))),
            ScalarType::Date => json!(format!("2024-02-{:02}", 1 + n % 28)),
            ScalarType::Datetime => json!(format!("2024-03-{:02}T04:05:06.250Z", 1 + n % 28)),
        }
    };
    match ty {
        AttrType::String { .. } => scalar(ScalarType::String),
        AttrType::Text => scalar(ScalarType::Text),
        AttrType::Integer { .. } => scalar(ScalarType::Integer),
        AttrType::Float { .. } => scalar(ScalarType::Float),
        AttrType::Boolean => scalar(ScalarType::Boolean),
        AttrType::Uuid => scalar(ScalarType::Uuid),
        AttrType::Date => scalar(ScalarType::Date),
        AttrType::Datetime => scalar(ScalarType::Datetime),
        AttrType::Json => json!({"row": row, "salt": salt}),
        AttrType::Enum { values } => json!(values[(salt + row) as usize % values.len()]),
        AttrType::Array { of } => json!([scalar(*of)]),
    }
}

fn column_type<'a>(tables: &'a [Table], table: &str, column: &str) -> &'a ColumnType {
    &tables
        .iter()
        .find(|t| t.name == table)
        .and_then(|t| t.column(column))
        .unwrap_or_else(|| panic!("no column {table}.{column}"))
        .ty
}

/// `column = value` (or `IS NULL`) as `dialect` writes it.
fn equals(column: &str, value: Option<&Value>, ty: &ColumnType, dialect: Dialect) -> String {
    match value {
        None => format!("{} IS NULL", id(column)),
        Some(v) => format!("{} = {}", id(column), value_sql(v, ty, dialect)),
    }
}

/// A value to set: table, row id, column, value (`None`: NULL), type.
type Update = (String, String, String, Option<Value>, ColumnType);

/// A column of rows to insert: its name, one value per row, its type.
type ColumnValues = (String, Vec<Value>, ColumnType);

/// Inserts the rows of newly created tables with a value in every column,
/// gives fresh values to columns that are new or were emptied or converted,
/// and points new relationships at their target's row of the same number,
/// on every database.
async fn seed(model: &mut Model, tables: &[Table], dbs: &[TestDb]) {
    let mut updates: Vec<Update> = Vec::new();
    // Per new table, its columns.
    let mut inserts: Vec<(String, Vec<ColumnValues>)> = Vec::new();
    let mut salt = model.salt;
    for r in &mut model.resources {
        let table = r.table();
        let text = ColumnType::Text {
            min_length: None,
            max_length: None,
        };
        if !r.seeded {
            let mut columns = vec![
                (
                    "id".to_string(),
                    (0..ROWS).map(|row| json!(r.row_id(row))).collect(),
                    ColumnType::Uuid,
                ),
                (
                    "marker".to_string(),
                    r.markers().into_iter().map(Value::String).collect(),
                    text,
                ),
            ];
            for (i, name) in ["inserted_at", "updated_at"].into_iter().enumerate() {
                let values = (0..ROWS).map(|row| r.timestamps(row)[i].clone()).collect();
                columns.push((name.to_string(), values, ColumnType::Datetime));
            }
            for a in &mut r.attributes {
                salt += 1;
                let values: Vec<Value> = (0..ROWS)
                    .map(|row| seed_value(&a.spec, salt, row).unwrap_or(Value::Null))
                    .collect();
                a.values = Some(
                    values
                        .iter()
                        .map(|v| (!v.is_null()).then(|| v.clone()))
                        .collect(),
                );
                a.reseed = false;
                let ty = column_type(tables, &table, &a.name).clone();
                columns.push((a.name.clone(), values, ty));
            }
            inserts.push((table.clone(), columns));
            r.seeded = true;
        }
        let row_ids: Vec<String> = (0..ROWS).map(|row| r.row_id(row)).collect();
        for a in r.attributes.iter_mut().filter(|a| a.reseed) {
            salt += 1;
            let values: Vec<Option<Value>> = (0..ROWS)
                .map(|row| seed_value(&a.spec, salt, row))
                .collect();
            let ty = column_type(tables, &table, &a.name);
            for (row_id, v) in row_ids.iter().zip(&values) {
                updates.push((
                    table.clone(),
                    row_id.clone(),
                    a.name.clone(),
                    v.clone(),
                    ty.clone(),
                ));
            }
            a.values = Some(values);
            a.reseed = false;
        }
    }
    model.salt = salt;
    for r in &model.resources {
        for rel in r.relationships.iter().filter(|rel| !rel.filled) {
            let target = model
                .resources
                .iter()
                .find(|t| t.key == rel.target)
                .expect("target");
            for row in 0..ROWS {
                updates.push((
                    r.table(),
                    r.row_id(row),
                    format!("{}_id", rel.name),
                    Some(json!(target.row_id(row))),
                    ColumnType::Uuid,
                ));
            }
        }
    }
    for r in &mut model.resources {
        for rel in &mut r.relationships {
            rel.filled = true;
        }
    }
    for db in dbs {
        let d = db.dialect();
        for (table, columns) in &inserts {
            let names: Vec<String> = columns.iter().map(|(c, _, _)| id(c)).collect();
            let rows: Vec<String> = (0..ROWS as usize)
                .map(|row| {
                    let values: Vec<String> = columns
                        .iter()
                        .map(|(_, values, ty)| value_sql(&values[row], ty, d))
                        .collect();
                    format!("({})", values.join(", "))
                })
                .collect();
            db.exec(&format!(
                "INSERT INTO {} ({}) VALUES {}",
                id(table),
                names.join(", "),
                rows.join(", ")
            ))
            .await;
        }
        for (table, row_id, column, value, ty) in &updates {
            let v = value
                .as_ref()
                .map_or_else(|| "NULL".to_string(), |v| value_sql(v, ty, d));
            db.exec(&format!(
                "UPDATE {} SET {} = {v} WHERE \"id\" = {}",
                id(table),
                id(column),
                lit(row_id)
            ))
            .await;
        }
    }
}

/// Every row of every seeded table still holds what the model says, in
/// every column the model knows; the error names each column that does not.
async fn check_data(model: &Model, tables: &[Table], db: &TestDb) -> Result<(), String> {
    let d = db.dialect();
    let text = ColumnType::Text {
        min_length: None,
        max_length: None,
    };
    for r in model.resources.iter().filter(|r| r.seeded) {
        let table = r.table();
        for (row, marker) in (0..ROWS).zip(r.markers()) {
            let [inserted_at, updated_at] = r.timestamps(row);
            let mut conditions = vec![
                (
                    "marker".to_string(),
                    equals("marker", Some(&json!(marker)), &text, d),
                ),
                (
                    "inserted_at".to_string(),
                    equals("inserted_at", Some(&inserted_at), &ColumnType::Datetime, d),
                ),
                (
                    "updated_at".to_string(),
                    equals("updated_at", Some(&updated_at), &ColumnType::Datetime, d),
                ),
            ];
            for a in &r.attributes {
                if let Some(values) = &a.values {
                    let ty = column_type(tables, &table, &a.name);
                    let want = values[row as usize].as_ref();
                    conditions.push((a.name.clone(), equals(&a.name, want, ty, d)));
                }
            }
            for rel in r.relationships.iter().filter(|rel| rel.filled) {
                let target = model
                    .resources
                    .iter()
                    .find(|t| t.key == rel.target)
                    .expect("target");
                let column = format!("{}_id", rel.name);
                let want = json!(target.row_id(row));
                conditions.push((
                    column.clone(),
                    equals(&column, Some(&want), &ColumnType::Uuid, d),
                ));
            }
            let this_row = format!("{} WHERE \"id\" = {}", id(&table), lit(&r.row_id(row)));
            let all: Vec<&str> = conditions.iter().map(|(_, c)| c.as_str()).collect();
            let matching = db
                .count(&format!(
                    "SELECT COUNT(*) FROM {this_row} AND {}",
                    all.join(" AND ")
                ))
                .await;
            if matching == 1 {
                continue;
            }
            // Say which columns differ, and what they hold.
            let mut wrong = Vec::new();
            for (column, condition) in &conditions {
                let ok = db
                    .count(&format!("SELECT COUNT(*) FROM {this_row} AND {condition}"))
                    .await;
                if ok != 1 {
                    let got = db
                        .strings(&format!(
                            "SELECT CAST({} AS TEXT) FROM {this_row}",
                            id(column)
                        ))
                        .await;
                    wrong.push(format!("{column}: got {got:?}, want {condition}"));
                }
            }
            return Err(format!(
                "{table} row {row} does not hold its values:\n  {}",
                wrong.join("\n  ")
            ));
        }
    }
    Ok(())
}

#[test]
fn the_model_tracks_renames_through_identities_and_relationships() {
    let mut model = Model::default();
    model.add_resource(&ResourceSpec {
        attributes: vec![AttrSpec {
            ty: AttrType::Text,
            required: false,
            default: None,
            unique: false,
        }],
        belongs_to: Some((0, OnDelete::Cascade)),
    });
    model.apply(&Edit::AddIdentity {
        resource: 0,
        column: Some(0),
    });
    model.apply(&Edit::RenameAttribute {
        resource: 0,
        attribute: 0,
    });
    model.apply(&Edit::RenameResource {
        resource: 0,
        by_table_name: true,
    });
    let schema = model.schema();
    let r = &schema.resources[0];
    assert_eq!(r.name, "r6");
    assert_eq!(r.renamed_from.as_deref(), Some("r1s"));
    assert_eq!(r.attributes[1].name, "a5");
    assert_eq!(r.attributes[1].renamed_from.as_deref(), Some("a2"));
    assert_eq!(r.identities[0].columns, ["marker", "a5"]);
    assert_eq!(
        r.relationships[0].target(),
        "r6",
        "a self-reference follows the rename"
    );
}

#[test]
fn the_model_keeps_indexes_valid_through_other_edits() {
    let mut model = Model::default();
    model.add_resource(&ResourceSpec {
        attributes: vec![AttrSpec {
            ty: AttrType::Text,
            required: false,
            default: None,
            unique: false,
        }],
        belongs_to: Some((0, OnDelete::Cascade)),
    });
    // Indexable: marker, inserted_at, a2, b3_id.
    model.apply(&Edit::AddIndex {
        resource: 0,
        keys: vec![(2, true), (3, false)],
    });
    model.apply(&Edit::IndexAttribute {
        resource: 0,
        attribute: 0,
    });
    // The same index as `index = true` makes is not declared again.
    model.apply(&Edit::AddIndex {
        resource: 0,
        keys: vec![(2, false)],
    });
    model.apply(&Edit::RenameAttribute {
        resource: 0,
        attribute: 0,
    });
    let names = |model: &Model| -> Vec<String> {
        table::lower(&model.schema())[0]
            .indexes
            .iter()
            .map(|i| {
                let keys: Vec<String> = i.keys.iter().map(|k| k.spelled()).collect();
                format!("{} ({})", i.name, keys.join(", "))
            })
            .collect()
    };
    assert_eq!(
        names(&model),
        [
            "r1s_a5_idx (a5, id)",
            // Not led by `b3_id`, so it does not stand in for its index.
            "r1s_b3_id_idx (b3_id, id)",
            "r1s_x4_idx (-a5, b3_id, id)",
        ],
        "renamed through both"
    );
    // As JSON the attribute can't be indexed: both its indexes go.
    model.apply(&Edit::ChangeType {
        resource: 0,
        attribute: 0,
        to: Ty(AttrType::Json),
        pick: 0,
    });
    assert_eq!(names(&model), ["r1s_b3_id_idx (b3_id, id)"]);
}

/// A fixed sequence that exercises every edit kind, so a regression in any of
/// them shows even when the random cases happen to miss it.
#[tokio::test]
async fn every_edit_kind_in_one_sequence() {
    let text = |required: bool| AttrSpec {
        ty: AttrType::Text,
        required,
        default: required.then(|| json!("x")),
        unique: false,
    };
    let case = Case {
        initial: vec![
            ResourceSpec {
                attributes: vec![
                    AttrSpec {
                        ty: integer(Some(-10), None),
                        required: true,
                        default: Some(json!(7)),
                        unique: false,
                    },
                    AttrSpec {
                        ty: AttrType::Json,
                        required: false,
                        default: Some(json!({"k": [1, 2]})),
                        unique: false,
                    },
                ],
                belongs_to: Some((1, OnDelete::Nullify)),
            },
            ResourceSpec {
                attributes: vec![text(false)],
                belongs_to: Some((0, OnDelete::Cascade)),
            },
        ],
        edits: vec![
            Edit::AddAttribute {
                resource: 0,
                attribute: text(true),
            },
            // The integer gets an index, rebuilt when it becomes a float.
            Edit::IndexAttribute {
                resource: 0,
                attribute: 0,
            },
            Edit::ChangeType {
                resource: 0,
                attribute: 0,
                to: Ty(float(None, None)),
                pick: 0,
            },
            Edit::ChangeType {
                resource: 0,
                attribute: 1,
                to: Ty(AttrType::Array {
                    of: ScalarType::Integer,
                }),
                pick: 0,
            },
            // Over the text attribute, descending, and the belongs_to key,
            // which then needs no index of its own; the rename follows.
            Edit::AddIndex {
                resource: 1,
                keys: vec![(2, true), (3, false)],
            },
            Edit::RenameAttribute {
                resource: 1,
                attribute: 0,
            },
            Edit::AddIdentity {
                resource: 1,
                column: Some(0),
            },
            Edit::AddBelongsTo {
                resource: 1,
                target: 0,
                on_delete: OnDelete::Restrict,
            },
            Edit::AddIndex {
                resource: 0,
                keys: vec![(1, true)],
            },
            Edit::RenameResource {
                resource: 0,
                by_table_name: false,
            },
            Edit::RemoveAttribute {
                resource: 0,
                attribute: 1,
            },
            Edit::DropIndex {
                resource: 1,
                index: 0,
            },
            Edit::DropResource { resource: 0 },
            Edit::AddResource(ResourceSpec {
                attributes: vec![text(true)],
                belongs_to: Some((0, OnDelete::Restrict)),
            }),
        ],
    };
    if let Err(e) = run_case(&case).await {
        panic!("{case:?}\n{e}");
    }
}

/// Found by the property: rolling back "remove attribute" re-adds the column
/// on one pooled SQLite connection, then rolling back "rename attribute"
/// renames it on another whose cached schema predates the re-add.
#[tokio::test]
async fn rename_then_remove_rolls_back() {
    let case = Case {
        initial: vec![ResourceSpec {
            attributes: vec![AttrSpec {
                ty: string(None, None),
                required: false,
                default: None,
                unique: false,
            }],
            belongs_to: None,
        }],
        edits: vec![
            Edit::RenameAttribute {
                resource: 0,
                attribute: 0,
            },
            Edit::RemoveAttribute {
                resource: 0,
                attribute: 0,
            },
        ],
    };
    if let Err(e) = run_case(&case).await {
        panic!("{case:?}\n{e}");
    }
}
