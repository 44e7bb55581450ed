//! The indexes Kumo creates serve the list queries it runs: on a table of
//! 20,000 rows, the database's own plan for a sorted, a filtered and sorted,
//! and a default page reads an index in order instead of sorting the table,
//! on PostgreSQL (`EXPLAIN`) and SQLite (`EXPLAIN QUERY PLAN`), and a later
//! page (`page[after]`, `page[before]`) starts reading the index at its
//! cursor. A change to how lists sort (`NULLS`, `COLLATE "C"`, the `id`
//! tie-breaker) that the indexes do not follow fails here; so does the
//! control, the same list without its index, if it does not sort.

use std::path::PathBuf;

use kumo_core::actor::Actor;
use kumo_core::load::load_schema;
use kumo_core::resource::Schema;
use kumo_db::files::Plan;
use kumo_db::query::{CursorKey, Engine, parse_list};
use kumo_db::runner;
use kumo_db::sql::Dialect;

use crate::harness::TestDb;

const OWNER: &str = r#"[resource]
name = "owner"

[attributes]
name = { type = "string" }

[policies]
read = "true"
"#;

const ITEM: &str = r#"[resource]
name = "item"

[attributes]
score = { type = "integer" }
rank  = { type = "integer", required = true, default = 0 }
title = { type = "string", required = true, index = true }

[relationships]
owner = { belongs_to = "owner", required = true, on_delete = "cascade" }

[indexes]
by_score = ["-score"]
by_rank = ["-rank"]
per_owner = ["owner", "-rank"]

[policies]
read = "true"
"#;

const ROWS: u32 = 20_000;
const OWNERS: u32 = 50;

fn schema() -> Schema {
    let files = [("owner", OWNER), ("item", ITEM)]
        .map(|(name, text)| (PathBuf::from(format!("{name}.toml")), text.to_owned()));
    load_schema(files.to_vec(), false).unwrap_or_else(|e| panic!("{e}"))
}

fn owner_id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Owners, then items spread over them: every 50th score is NULL, titles
/// and scores are scattered so that no order comes for free.
async fn fill(t: &TestDb) {
    let owners = match t.dialect() {
        Dialect::Postgres => format!(
            "INSERT INTO \"owners\" (\"id\") SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid FROM generate_series(0, {}) AS i",
            OWNERS - 1
        ),
        Dialect::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {})
             INSERT INTO \"owners\" (\"id\") SELECT printf('00000000-0000-4000-8000-%012d', i) FROM n",
            OWNERS - 1
        ),
    };
    t.exec(&owners).await;
    let items = match t.dialect() {
        Dialect::Postgres => format!(
            "INSERT INTO \"items\" (\"id\", \"owner_id\", \"score\", \"rank\", \"title\")
             SELECT md5(i::text)::uuid,
                    ('00000000-0000-4000-8000-' || lpad((i % {OWNERS})::text, 12, '0'))::uuid,
                    CASE WHEN i % 50 = 0 THEN NULL ELSE (i * 7919) % 1000 END,
                    (i * 104729) % 5000,
                    't' || ((i * 31) % {ROWS})
             FROM generate_series(1, {ROWS}) AS i"
        ),
        Dialect::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
             INSERT INTO \"items\" (\"id\", \"owner_id\", \"score\", \"rank\", \"title\")
             SELECT printf('%08x-0000-4000-8000-%012x', (i * 2654435761) % 4294967296, i),
                    printf('00000000-0000-4000-8000-%012d', i % {OWNERS}),
                    CASE WHEN i % 50 = 0 THEN NULL ELSE (i * 7919) % 1000 END,
                    (i * 104729) % 5000,
                    't' || ((i * 31) % {ROWS})
             FROM n"
        ),
    };
    t.exec(&items).await;
    t.exec("ANALYZE").await;
}

/// The plan for the page `query` asks for.
async fn plan(engine: &Engine, query: &str) -> Vec<String> {
    let entry = engine.catalog.get("item").expect("item");
    let req =
        parse_list(&engine.catalog, entry, query).unwrap_or_else(|e| panic!("{query}: {e:?}"));
    engine
        .explain_list(&Actor::anonymous(), entry, &req)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e:?}"))
}

/// The cursor after the first `rows` rows of `query`, read a page at a
/// time; from the middle of a list, reading from either end would show.
async fn cursor_after(engine: &Engine, query: &str, rows: usize) -> String {
    let entry = engine.catalog.get("item").expect("item");
    let mut page_query = query.to_string();
    let mut cursor = String::new();
    let mut read = 0;
    while read < rows {
        let req = parse_list(&engine.catalog, entry, &page_query).expect("query");
        let page = engine
            .list(&Actor::anonymous(), entry, &req)
            .await
            .expect("page");
        read += page.data.len();
        cursor = page.next.expect("a next page");
        page_query = format!("{query}&page[after]={cursor}");
    }
    cursor
}

/// The plan reads `index` in the order of the page and sorts nothing.
fn reads_index(dialect: Dialect, plan: &[String], index: &str) -> Result<(), String> {
    let text = plan.join("\n");
    let (uses, sorts) = match dialect {
        Dialect::Postgres => (
            plan.iter().any(|l| {
                l.contains(&format!("Index Scan using {index} "))
                    || l.contains(&format!("Index Scan Backward using {index} "))
            }),
            text.contains("Sort"),
        ),
        Dialect::Sqlite => (
            plan.iter()
                .any(|l| l.contains(&format!(" r USING INDEX {index}"))),
            text.contains("TEMP B-TREE"),
        ),
    };
    if uses && !sorts {
        Ok(())
    } else {
        Err(format!(
            "expected an ordered read of {index} and no sort:\n{text}"
        ))
    }
}

/// Like [`reads_index`], and the scan starts at a bound on `column`.
fn seeks_index(dialect: Dialect, plan: &[String], index: &str, column: &str) -> Result<(), String> {
    reads_index(dialect, plan, index)?;
    let seeks = match dialect {
        Dialect::Postgres => plan.iter().any(|l| {
            l.trim_start().starts_with("Index Cond:")
                && (l.contains(&format!("{column} <=")) || l.contains(&format!("{column} >=")))
        }),
        Dialect::Sqlite => plan.iter().any(|l| {
            l.contains(&format!("SEARCH r USING INDEX {index} ("))
                && (l.contains(&format!("{column}<")) || l.contains(&format!("{column}>")))
        }),
    };
    if seeks {
        Ok(())
    } else {
        Err(format!(
            "expected {index} to be searched from a bound on {column}:\n{}",
            plan.join("\n")
        ))
    }
}

#[tokio::test]
async fn postgres_sorted_and_filtered_pages_read_an_index() {
    sorted_and_filtered_pages_read_an_index(Dialect::Postgres).await;
}

#[tokio::test]
async fn sqlite_sorted_and_filtered_pages_read_an_index() {
    sorted_and_filtered_pages_read_an_index(Dialect::Sqlite).await;
}

async fn sorted_and_filtered_pages_read_an_index(dialect: Dialect) {
    let schema = schema();
    let migration = Plan::new(Vec::new(), &schema).migration("00000000000001_initial".into());
    let t = TestDb::new(dialect).await;
    runner::migrate(&t.db, std::slice::from_ref(&migration))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", t.name()));
    fill(&t).await;
    let engine = Engine::new(t.db.clone(), schema, CursorKey::new(b"explain"));
    let owner = owner_id(7);
    let pkey = match dialect {
        Dialect::Postgres => "items_pkey",
        Dialect::Sqlite => "sqlite_autoindex_items_1",
    };
    let mut failures = Vec::new();
    let mut check = |query: &str, result: Result<(), String>| {
        if let Err(e) = result {
            failures.push(format!("{query}: {e}"));
        }
    };

    // First pages: sorted (a nullable number, text), filtered and sorted,
    // and the default order (by `id` alone, the primary key's index).
    for (query, index) in [
        ("sort=-score".to_string(), "items_by_score_idx"),
        ("sort=-rank".to_string(), "items_by_rank_idx"),
        ("sort=title".to_string(), "items_title_idx"),
        (
            format!("filter[owner_id]={owner}&sort=-rank"),
            "items_per_owner_idx",
        ),
        (String::new(), pkey),
        ("page[size]=250".to_string(), pkey),
    ] {
        check(
            &query,
            reads_index(dialect, &plan(&engine, &query).await, index),
        );
    }

    // Later pages, both ways, start at their cursor when the first key is
    // never null.
    for (query, middle, index) in [
        (
            "sort=-rank&page[size]=250".to_string(),
            ROWS / 2,
            "items_by_rank_idx",
        ),
        (
            format!("filter[owner_id]={owner}&sort=-rank&page[size]=20"),
            ROWS / OWNERS / 2,
            "items_per_owner_idx",
        ),
    ] {
        let cursor = cursor_after(&engine, &query, middle as usize).await;
        for position in ["after", "before"] {
            let page = format!("{query}&page[{position}]={cursor}");
            check(
                &page,
                seeks_index(dialect, &plan(&engine, &page).await, index, "rank"),
            );
        }
    }
    // A descending sort on a column that may be null still reads its index
    // in order; the page after a cursor starts at the start of the index.
    let query = "sort=-score&page[size]=250";
    let cursor = cursor_after(&engine, query, ROWS as usize / 2).await;
    let page = format!("{query}&page[after]={cursor}");
    check(
        &page,
        reads_index(dialect, &plan(&engine, &page).await, "items_by_score_idx"),
    );
    // The way back is ascending, NULLs first, and starts at the cursor.
    let page = format!("{query}&page[before]={cursor}");
    check(
        &page,
        seeks_index(
            dialect,
            &plan(&engine, &page).await,
            "items_by_score_idx",
            "score",
        ),
    );

    // An equality filter on a text column that leads an index searches it:
    // on PostgreSQL the filter compares byte-wise (`COLLATE "C"`), as the
    // index orders.
    let query = "filter[title]=t5000";
    let lines = plan(&engine, query).await;
    // PostgreSQL names the index on one line and its condition on the next.
    let searches = lines.iter().any(|l| {
        l.contains("items_title_idx") && (l.contains("SEARCH") || l.contains("Index Scan"))
    }) && (dialect == Dialect::Sqlite
        || lines.iter().any(|l| l.contains("Index Cond")));
    if !searches {
        failures.push(format!(
            "{query}: expected items_title_idx to be searched:\n{}",
            lines.join("\n")
        ));
    }

    // The control: without its index the same list sorts the table.
    t.exec("DROP INDEX \"items_by_score_idx\"").await;
    let without = plan(&engine, "sort=-score").await;
    let sorts = match dialect {
        Dialect::Postgres => without
            .iter()
            .any(|l| l.contains("Sort Key: score DESC NULLS LAST")),
        Dialect::Sqlite => without
            .iter()
            .any(|l| l.contains("USE TEMP B-TREE FOR ORDER BY")),
    };
    if !sorts {
        failures.push(format!(
            "without its index, sort=-score should sort:\n{}",
            without.join("\n")
        ));
    }

    assert!(
        failures.is_empty(),
        "{}:\n{}",
        t.name(),
        failures.join("\n\n")
    );
    t.cleanup().await;
}

#[tokio::test]
async fn postgres_filters_through_one_relationship_read_it_once() {
    filters_through_one_relationship_read_it_once(Dialect::Postgres).await;
}

#[tokio::test]
async fn sqlite_filters_through_one_relationship_read_it_once() {
    filters_through_one_relationship_read_it_once(Dialect::Sqlite).await;
}

/// Each filter through `owner` was an `EXISTS` of its own, and PostgreSQL
/// took minutes to plan 100 of them; the filters through one relationship
/// now share one subquery, so the plan reads `owners` once, however many
/// filters go through it (on empty tables: only the plan's shape counts).
async fn filters_through_one_relationship_read_it_once(dialect: Dialect) {
    let schema = schema();
    let migration = Plan::new(Vec::new(), &schema).migration("00000000000001_initial".into());
    let t = TestDb::new(dialect).await;
    runner::migrate(&t.db, std::slice::from_ref(&migration))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", t.name()));
    let engine = Engine::new(t.db.clone(), schema, CursorKey::new(b"explain"));
    let filters: Vec<String> = (1..=kumo_db::query::params::MAX_FILTERS - 1)
        .map(|i| format!("filter[owner.name][ne]=u{i}"))
        .chain(["filter[score][gt]=0".to_owned()])
        .collect();
    let lines = plan(&engine, &filters.join("&")).await;
    let reads = lines.iter().filter(|l| l.contains("owners")).count();
    assert_eq!(
        reads,
        1,
        "{}: the plan should read `owners` once:\n{}",
        t.name(),
        lines.join("\n")
    );
    t.cleanup().await;
}

const NOTE: &str = r#"[resource]
name = "note"

[attributes]
title = { type = "string", required = true, search = true }
body  = { type = "string", required = true }

[policies]
read = "true"
"#;

/// `search = true` makes a trigram index on PostgreSQL, and a `contains`
/// filter or a search on the attribute finds its rows through it instead
/// of reading all 20,000; on an attribute without one, it reads the table.
#[tokio::test]
async fn postgres_contains_and_search_read_the_search_index() {
    let files = vec![(PathBuf::from("note.toml"), NOTE.to_owned())];
    let schema = load_schema(files, false).unwrap_or_else(|e| panic!("{e}"));
    let migration = Plan::new(Vec::new(), &schema).migration("00000000000001_initial".into());
    let t = TestDb::new(Dialect::Postgres).await;
    runner::migrate(&t.db, std::slice::from_ref(&migration))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", t.name()));
    t.exec(&format!(
        "INSERT INTO \"notes\" (\"id\", \"title\", \"body\")
         SELECT md5(i::text)::uuid, 'Title ' || i, 'Body ' || i
         FROM generate_series(1, {ROWS}) AS i"
    ))
    .await;
    t.exec("ANALYZE").await;
    let engine = Engine::new(t.db.clone(), schema, CursorKey::new(b"explain"));
    let entry = engine.catalog.get("note").expect("note");
    let explain = |query: &str, search: Option<&str>| {
        let mut req = parse_list(&engine.catalog, entry, query).expect("query");
        req.search = search.map(str::to_owned);
        let engine = &engine;
        async move {
            engine
                .explain_list(&Actor::anonymous(), entry, &req)
                .await
                .expect("plan")
                .join("\n")
        }
    };
    let by_index = "Bitmap Index Scan on notes_title_search";
    let contains = explain("filter[title][contains]=itle 1234", None).await;
    assert!(contains.contains(by_index), "{contains}");
    let search = explain("", Some("TITLE 1234")).await;
    assert!(search.contains(by_index), "{search}");
    let control = explain("filter[body][contains]=ody 1234", None).await;
    assert!(
        !control.contains("Bitmap Index Scan") && control.contains("Seq Scan"),
        "{control}"
    );
    // And they find what they should: both ways, any case for the search.
    let listed = |query: &str, search: Option<&str>| {
        let mut req = parse_list(&engine.catalog, entry, query).expect("query");
        req.search = search.map(str::to_owned);
        let engine = &engine;
        async move {
            let page = engine
                .list(&Actor::anonymous(), entry, &req)
                .await
                .expect("list");
            let mut titles: Vec<String> = page
                .data
                .iter()
                .map(|r| r["title"].as_str().expect("title").to_owned())
                .collect();
            titles.sort();
            titles
        }
    };
    let expected: Vec<String> = (1..=ROWS)
        .map(|i| format!("Title {i}"))
        .filter(|t| t.contains("itle 1234"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        listed("filter[title][contains]=itle 1234", None).await,
        expected
    );
    assert_eq!(listed("", Some("tItLe 1234")).await, expected);
    t.cleanup().await;
}
