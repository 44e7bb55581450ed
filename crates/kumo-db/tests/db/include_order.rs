//! The records an include of a `has_many` or `many_to_many` embeds are the
//! oldest [`INCLUDE_LIMIT`] per parent, oldest first (by `inserted_at`,
//! ties by `id`), on both databases. The rows are written with SQL so that
//! their ids sort opposite to their insertion times: ordered by id, the
//! include would embed the newest records, newest first.

use kumo_core::actor::Actor;
use kumo_core::load::load_schema;
use kumo_core::table::{self, Table};
use kumo_db::files::Plan;
use kumo_db::query::read::INCLUDE_LIMIT;
use kumo_db::query::{CursorKey, Engine, View, parse_list};
use kumo_db::runner;
use kumo_db::sql::{Dialect, ident, value_sql};
use serde_json::{Map, Value, json};

use crate::harness::TestDb;

const RACK: &str = r#"[resource]
name = "rack"

[attributes]
name = { type = "string" }

[relationships]
books = { has_many = "book" }
tags = { many_to_many = "tag", through = "rack_tag" }

[policies]
read = "true"
"#;

const BOOK: &str = r#"[resource]
name = "book"

[attributes]
title = { type = "string" }

[relationships]
rack = { belongs_to = "rack", required = true, on_delete = "cascade" }

[policies]
read = "true"
"#;

const TAG: &str = r#"[resource]
name = "tag"

[attributes]
label = { type = "string" }

[policies]
read = "true"
"#;

const RACK_TAG: &str = r#"[resource]
name = "rack_tag"

[relationships]
rack = { belongs_to = "rack", required = true, on_delete = "cascade" }
tag = { belongs_to = "tag", required = true, on_delete = "cascade" }

[policies]
read = "true"
"#;

/// More records per parent than an include embeds.
const RECORDS: usize = INCLUDE_LIMIT + 5;

/// The `n`th record's id: later records get smaller ids.
fn id(table: u8, n: usize) -> String {
    format!("{:08x}-0000-4000-8000-{table:012}", 0xffff_ff00 - n)
}

/// The insertion time of the `n`th second, except that the 14th is the
/// 13th: two records inserted in the same millisecond, of which the later
/// (with the smaller id) comes first.
fn inserted_at(n: usize) -> String {
    let second = if n == 14 { 13 } else { n };
    format!("2026-01-01T00:{:02}:{:02}.000Z", second / 60, second % 60)
}

fn row(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn insert(tables: &[Table], dialect: Dialect, table: &str, row: &Map<String, Value>) -> String {
    let t = tables
        .iter()
        .find(|t| t.name == table)
        .unwrap_or_else(|| panic!("no table {table}"));
    let (names, values): (Vec<String>, Vec<String>) = t
        .columns
        .iter()
        .map(|c| {
            let v = row.get(&c.name).unwrap_or(&Value::Null);
            (ident(&c.name), value_sql(v, &c.ty, dialect))
        })
        .unzip();
    format!(
        "INSERT INTO {} ({}) VALUES ({});\n",
        ident(table),
        names.join(", "),
        values.join(", ")
    )
}

/// The ids of an embedded list, in order.
fn embedded(record: &Map<String, Value>, name: &str) -> Vec<String> {
    record[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: {:?}", record.get(name)))
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn includes_embed_the_oldest_first(dialect: Dialect) {
    let db = TestDb::new(dialect).await;
    let files = [
        ("rack", RACK),
        ("book", BOOK),
        ("tag", TAG),
        ("rack_tag", RACK_TAG),
    ]
    .iter()
    .map(|(name, text)| (format!("resources/{name}.toml").into(), (*text).to_owned()))
    .collect();
    let schema = load_schema(files, true).unwrap_or_else(|d| panic!("{d}"));
    let migration = Plan::new(Vec::new(), &schema).migration("20260101000000_initial".into());
    runner::migrate(&db.db, std::slice::from_ref(&migration))
        .await
        .unwrap_or_else(|e| panic!("{}: migrating: {e}", db.name()));
    let tables = table::lower(&schema);

    // Two racks: the second one's books and tags are older than all of
    // the first's, so a cap counted over all parents would leave the first
    // rack short.
    let racks = [id(1, 0), id(1, 1)];
    let mut sql = String::new();
    for (s, rack) in racks.iter().enumerate() {
        let stamp = json!(inserted_at(0));
        let fields = [
            ("id", json!(rack)),
            ("name", json!(format!("rack {s}"))),
            ("inserted_at", stamp.clone()),
            ("updated_at", stamp),
        ];
        sql.push_str(&insert(&tables, dialect, "racks", &row(&fields)));
    }
    let mut want: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for (s, rack) in racks.iter().enumerate() {
        let count = if s == 0 { RECORDS } else { 3 };
        let mut books = Vec::new();
        let mut tags = Vec::new();
        for n in 0..count {
            // The second rack's records come first in time.
            let n_at = if s == 0 { n + 10 } else { n };
            let stamp = json!(inserted_at(n_at));
            let (book, tag) = (id(2 + s as u8 * 10, n), id(3 + s as u8 * 10, n));
            let common = [("inserted_at", stamp.clone()), ("updated_at", stamp)];
            let book_row = [
                ("id", json!(book)),
                ("title", json!(format!("book {s}.{n}"))),
                ("rack_id", json!(rack)),
            ];
            let tag_row = [("id", json!(tag)), ("label", json!(format!("tag {s}.{n}")))];
            let link_row = [
                ("id", json!(id(4 + s as u8 * 10, n))),
                ("rack_id", json!(rack)),
                ("tag_id", json!(tag)),
            ];
            for (table, fields) in [
                ("books", &book_row[..]),
                ("tags", &tag_row[..]),
                ("rack_tags", &link_row[..]),
            ] {
                let all: Vec<(&str, Value)> = fields.iter().chain(&common).cloned().collect();
                sql.push_str(&insert(&tables, dialect, table, &row(&all)));
            }
            books.push((inserted_at(n_at), book));
            tags.push((inserted_at(n_at), tag));
        }
        let oldest = |mut records: Vec<(String, String)>| -> Vec<String> {
            records.sort();
            records
                .into_iter()
                .take(INCLUDE_LIMIT)
                .map(|(_, id)| id)
                .collect()
        };
        want.push((oldest(books), oldest(tags)));
    }
    db.exec(&sql).await;
    // The expected order is not the id order: the test would pass with it.
    assert_ne!(want[0].0, {
        let mut by_id = want[0].0.clone();
        by_id.sort();
        by_id
    });

    let engine = Engine::new(db.db.clone(), schema, CursorKey::new(b"include order"));
    let entry = engine.catalog.get("rack").expect("rack");
    let view = View {
        include: vec!["books".into(), "tags".into()],
        fields: None,
    };
    let anonymous = Actor::anonymous();
    for (s, rack) in racks.iter().enumerate() {
        let record = engine
            .get(&anonymous, entry, rack, &view)
            .await
            .unwrap_or_else(|e| panic!("{}: get: {e}", db.name()));
        assert_eq!(
            embedded(&record, "books"),
            want[s].0,
            "{}: books",
            db.name()
        );
        assert_eq!(embedded(&record, "tags"), want[s].1, "{}: tags", db.name());
    }
    let req =
        parse_list(&engine.catalog, entry, "include=books,tags").unwrap_or_else(|e| panic!("{e}"));
    let page = engine
        .list(&anonymous, entry, &req)
        .await
        .unwrap_or_else(|e| panic!("{}: list: {e}", db.name()));
    for record in &page.data {
        let s = racks
            .iter()
            .position(|rack| record["id"] == json!(rack))
            .expect("a rack");
        assert_eq!(embedded(record, "books"), want[s].0, "{}: list", db.name());
        assert_eq!(embedded(record, "tags"), want[s].1, "{}: list", db.name());
    }
    assert_eq!(page.data.len(), 2);
    db.cleanup().await;
}

#[tokio::test]
async fn includes_embed_the_oldest_first_on_postgres() {
    includes_embed_the_oldest_first(Dialect::Postgres).await;
}

#[tokio::test]
async fn includes_embed_the_oldest_first_on_sqlite() {
    includes_embed_the_oldest_first(Dialect::Sqlite).await;
}
