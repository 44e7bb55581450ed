//! Sorting and paging: keyset pages in every direction with nulls and ties,
//! offsets, counts, and pages that neither skip nor repeat rows while rows
//! are being inserted.

use axum::http::StatusCode;
use kumo_db::sql::Dialect;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Reply, TestApi};

fn names(r: &Reply) -> Vec<String> {
    r.data()
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

fn cursor(r: &Reply, which: &str) -> Option<String> {
    r.body["page"][which].as_str().map(str::to_owned)
}

/// Walks every page forwards, then backwards from the end.
async fn walk(api: &TestApi, token: &str, query: &str, size: usize) -> (Vec<String>, Vec<String>) {
    let mut forward = Vec::new();
    let mut url = format!("/api/avatars?{query}&page[size]={size}");
    let last = loop {
        let r = api.send("GET", &url, Some(token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        forward.extend(names(&r));
        match cursor(&r, "next") {
            Some(c) => url = format!("/api/avatars?{query}&page[size]={size}&page[after]={c}"),
            None => break r.body,
        }
        assert!(forward.len() < 1000, "paging does not end");
    };
    let mut backward = Vec::new();
    let first_row: Vec<String> = last["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    backward.extend(first_row.into_iter().rev());
    let mut prev = last["page"]["prev"].as_str().map(str::to_owned);
    while let Some(c) = prev {
        let url = format!("/api/avatars?{query}&page[size]={size}&page[before]={c}");
        let r = api.send("GET", &url, Some(token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        backward.extend(names(&r).into_iter().rev());
        prev = cursor(&r, "prev");
        assert!(backward.len() < 1000, "paging back does not end");
    }
    backward.reverse();
    (forward, backward)
}

both!(keyset_pages_in_every_sort, |dialect: Dialect| async move {
    let api = TestApi::avatars(dialect).await;
    let alice = api.user("alice", "user").await;
    let alice_id = api.user_id(&alice);
    let mut items = Vec::new();
    for i in 0..23 {
        let polycount = if i % 4 == 0 {
            Value::Null
        } else {
            json!(i % 5)
        };
        let rating = if i % 3 == 0 {
            Value::Null
        } else {
            json!(f64::from(i % 7) / 2.0)
        };
        // Mixed case and a non-ASCII name: byte order on both databases.
        let name = match i {
            0 => "Zed".to_owned(),
            1 => "apple".to_owned(),
            2 => "Émile".to_owned(),
            _ => format!("n{i:02}"),
        };
        items.push(json!({"name": name, "uploader_id": alice_id, "polycount": polycount, "rating": rating}));
    }
    let r = api
        .send(
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(Value::Array(items)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let all: Vec<Value> = r.data().as_array().unwrap().clone();

    for sort in [
        "name",
        "-name",
        "polycount,-rating",
        "-polycount,name",
        "rating",
        "-inserted_at",
        "-id",
    ] {
        // The order the spec defines: null first ascending, last descending,
        // strings by bytes, then id.
        let mut expected = all.clone();
        expected.sort_by(|a, b| {
            for key in sort.split(',').chain(["id"]) {
                let (field, desc) = match key.strip_prefix('-') {
                    Some(f) => (f, true),
                    None => (key, false),
                };
                let ord = compare(&a[field], &b[field]);
                let ord = if desc { ord.reverse() } else { ord };
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        let expected: Vec<String> = expected
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect();
        let one = api
            .send(
                "GET",
                &format!("/api/avatars?sort={sort}&page[size]=250"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(names(&one), expected, "sort={sort}");
        for size in [1, 4, 7] {
            let (forward, backward) = walk(&api, &alice, &format!("sort={sort}"), size).await;
            assert_eq!(forward, expected, "sort={sort} size={size} forward");
            assert_eq!(backward, expected, "sort={sort} size={size} backward");
        }
    }

    let r = api
        .send(
            "GET",
            "/api/avatars?sort=name&page[offset]=20&page[size]=5&page[count]=true",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(names(&r).len(), 3);
    assert_eq!(r.body["page"]["total"], 23);
    assert!(r.body["page"]["next"].is_null());
    assert!(r.body["page"]["prev"].is_string());

    // A cursor is bound to its sort.
    let r = api
        .send(
            "GET",
            "/api/avatars?sort=name&page[size]=2",
            Some(&alice),
            None,
        )
        .await;
    let c = cursor(&r, "next").unwrap();
    let r = api
        .send(
            "GET",
            &format!("/api/avatars?sort=-name&page[after]={c}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    api.cleanup().await;
});

both!(
    pages_neither_skip_nor_repeat_during_inserts,
    |dialect: Dialect| async move {
        let (api, alice) = thirty_avatars(dialect).await;
        let mut seen = Vec::new();
        let mut url = "/api/avatars?sort=-polycount&page[size]=4".to_owned();
        let mut round = 0;
        loop {
            let r = api.send("GET", &url, Some(&alice), None).await;
            seen.extend(names(&r));
            // Insert rows that land before, inside and after the current page.
            insert_around(&api, &alice, round).await;
            round += 1;
            match cursor(&r, "next") {
                Some(c) => {
                    url = format!("/api/avatars?sort=-polycount&page[size]=4&page[after]={c}")
                }
                None => break,
            }
        }
        assert_each_original_once(&seen);
        api.cleanup().await;
    }
);

/// Alice and 30 avatars of hers, `a00`…`a29`, with polycounts 0 to 5.
async fn thirty_avatars(dialect: Dialect) -> (TestApi, String) {
    let api = TestApi::avatars(dialect).await;
    let alice = api.user("alice", "user").await;
    let alice_id = api.user_id(&alice);
    let initial: Vec<Value> = (0..30)
        .map(|i| json!({"name": format!("a{i:02}"), "uploader_id": alice_id, "polycount": i % 6}))
        .collect();
    let r = api
        .send(
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(Value::Array(initial)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (api, alice)
}

/// Three more avatars (`b<round><k>`) whose polycounts land before, inside
/// and after any page sorted by polycount.
async fn insert_around(api: &TestApi, alice: &str, round: usize) {
    let alice_id = api.user_id(alice);
    let extra: Vec<Value> = (0..3)
        .map(|k| json!({"name": format!("b{round:02}{k}"), "uploader_id": alice_id, "polycount": (round + k) % 6}))
        .collect();
    let w = api
        .send(
            "POST",
            "/api/avatars",
            Some(alice),
            Some(Value::Array(extra)),
        )
        .await;
    assert_eq!(w.status, StatusCode::CREATED);
}

/// Every one of the 30 original avatars was seen exactly once, and no
/// avatar, old or new, twice.
fn assert_each_original_once(seen: &[String]) {
    let originals: Vec<&String> = seen.iter().filter(|n| n.starts_with('a')).collect();
    let mut unique = originals.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        originals.len(),
        "a row was repeated: {seen:?}"
    );
    assert_eq!(unique.len(), 30, "a row was skipped: {seen:?}");
    let mut all = seen.to_vec();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), seen.len(), "no row, old or new, appears twice");
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x.as_f64().unwrap().total_cmp(&y.as_f64().unwrap()),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => Ordering::Equal,
    }
}

both!(
    pages_hold_while_a_writer_runs_at_the_same_time,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let initial: Vec<Value> = (0..40)
            .map(|i| json!({"name": format!("a{i:02}"), "uploader_id": alice_id, "rating": i % 7}))
            .collect();
        api.send(
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(Value::Array(initial)),
        )
        .await;
        let done = std::sync::atomic::AtomicBool::new(false);
        // The writer inserts rows all over the sort order until the reader
        // has walked every page, each insert its own request.
        let writer = async {
            let mut written = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let body = json!({"name": format!("w{written:03}"), "uploader_id": alice_id, "rating": written % 7});
                let w = api
                    .send("POST", "/api/avatars", Some(&alice), Some(body))
                    .await;
                assert_eq!(w.status, StatusCode::CREATED, "{}", w.body);
                written += 1;
            }
            written
        };
        let reader = async {
            let mut seen = Vec::new();
            let mut url = "/api/avatars?sort=rating,-name&page[size]=3".to_owned();
            loop {
                let r = api.send("GET", &url, Some(&alice), None).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                seen.extend(names(&r));
                match cursor(&r, "next") {
                    Some(c) => {
                        url = format!("/api/avatars?sort=rating,-name&page[size]=3&page[after]={c}")
                    }
                    None => break,
                }
                tokio::task::yield_now().await;
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            seen
        };
        let (written, seen) = tokio::join!(writer, reader);
        assert!(written > 0, "the writer ran while the pages were read");
        let originals: Vec<&String> = seen.iter().filter(|n| n.starts_with('a')).collect();
        assert_eq!(
            originals.len(),
            40,
            "every original row exactly once: {seen:?}"
        );
        let mut all = seen.clone();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), seen.len(), "no row appears twice: {seen:?}");
        api.cleanup().await;
    }
);

both!(
    pages_walked_backwards_neither_skip_nor_repeat_during_inserts,
    |dialect: Dialect| async move {
        let (api, alice) = thirty_avatars(dialect).await;
        // To the last page first, with no writes.
        let base = "/api/avatars?sort=-polycount&page[size]=4";
        let mut last = api.send("GET", base, Some(&alice), None).await;
        while let Some(c) = cursor(&last, "next") {
            last = api
                .send(
                    "GET",
                    &format!("{base}&page[after]={c}"),
                    Some(&alice),
                    None,
                )
                .await;
        }
        let mut seen = names(&last);
        let mut r = last;
        let mut round = 0;
        // Then back to the first, inserting rows before, inside and after
        // each page as it goes.
        while let Some(c) = cursor(&r, "prev") {
            insert_around(&api, &alice, round).await;
            round += 1;
            r = api
                .send(
                    "GET",
                    &format!("{base}&page[before]={c}"),
                    Some(&alice),
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let mut page = names(&r);
            page.extend(seen);
            seen = page;
        }
        assert_each_original_once(&seen);
        api.cleanup().await;
    }
);

both!(
    two_page_positions_were_refused_naming_no_parameter,
    |dialect: Dialect| async move {
        // `page[after]` with `page[offset]` answered 400 with no `fields`:
        // a client could not tell which parameters were at fault. Both are
        // named now, each with the message.
        let api = TestApi::avatars(dialect).await;
        let message = "use only one of page[after], page[before] and page[offset]";
        for (query, first, second) in [
            (
                "page[after]=x&page[offset]=1",
                "page[after]",
                "page[offset]",
            ),
            (
                "page[offset]=1&page[before]=x",
                "page[offset]",
                "page[before]",
            ),
            (
                "page[before]=x&page[after]=y",
                "page[before]",
                "page[after]",
            ),
        ] {
            let r = api
                .send("GET", &format!("/api/avatars?{query}"), None, None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
            assert_eq!(
                r.body,
                json!({"error": {
                    "code": "bad_request",
                    "message": message,
                    "fields": { first: [message], second: [message] }
                }}),
                "{query}"
            );
        }
        api.cleanup().await;
    }
);

both!(a_list_without_a_size_has_fifty_rows, |dialect| async move {
    let api = TestApi::avatars(dialect).await;
    let alice = api.user("alice", "user").await;
    let uploader = api.user_id(&alice);
    let batch: Vec<Value> = (0..51)
        .map(|i| json!({ "name": format!("a{i:02}"), "uploader_id": uploader }))
        .collect();
    let r = api
        .send(
            "POST",
            "/api/avatars",
            Some(&alice),
            Some(Value::Array(batch)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let first = api.send("GET", "/api/avatars", Some(&alice), None).await;
    assert_eq!(names(&first).len(), 50);
    let next = cursor(&first, "next").expect("a next page");
    let rest = api
        .send(
            "GET",
            &format!("/api/avatars?page[after]={next}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(names(&rest).len(), 1);
    assert_eq!(cursor(&rest, "next"), None);
    api.cleanup().await;
});

both!(
    a_capped_count_stops_one_past_its_limit,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let avatars: Vec<Value> = (0..30)
            .map(|i| json!({ "name": format!("A{i:02}"), "is_public": true, "uploader_id": alice_id }))
            .collect();
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(Value::Array(avatars)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let engine = api.state.engine().unwrap();
        let entry = engine.catalog.by_plural("avatars").unwrap();
        let mut req =
            kumo_db::query::parse_list(&engine.catalog, entry, "page[size]=5&page[count]=true")
                .unwrap();
        let actor = kumo_core::actor::Actor::anonymous();
        assert_eq!(
            engine.list(&actor, entry, &req).await.unwrap().total,
            Some(30)
        );
        // The admin's lists count only so far on big tables.
        req.count_limit = Some(10);
        let page = engine.list(&actor, entry, &req).await.unwrap();
        assert_eq!(page.total, Some(11));
        assert_eq!(page.data.len(), 5);
        req.count_limit = Some(100);
        assert_eq!(
            engine.list(&actor, entry, &req).await.unwrap().total,
            Some(30)
        );
        api.cleanup().await;
    }
);

both!(
    a_count_out_of_time_answers_the_rows_without_a_total,
    |dialect: Dialect| async move {
        const THING: &str = r#"
[resource]
name = "thing"

[attributes]
label = { type = "string", required = true }

[policies]
read = "true"
"#;
        let api = TestApi::new(dialect, &[("thing", THING)]).await;
        const ROWS: u32 = 300_000;
        let fill = match dialect {
            Dialect::Postgres => format!(
                "INSERT INTO \"things\" (\"id\", \"label\")
                 SELECT md5(i::text)::uuid, 'thing ' || i FROM generate_series(1, {ROWS}) AS i"
            ),
            Dialect::Sqlite => format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
                 INSERT INTO \"things\" (\"id\", \"label\")
                 SELECT printf('%08x-0000-4000-8000-%012x', i, i), 'thing ' || i FROM n"
            ),
        };
        match &api.db {
            kumo_db::db::Database::Postgres(pool) => sqlx::raw_sql(sqlx::AssertSqlSafe(fill))
                .execute(pool)
                .await
                .map(|_| ()),
            kumo_db::db::Database::Sqlite(pool) => sqlx::raw_sql(sqlx::AssertSqlSafe(fill))
                .execute(pool)
                .await
                .map(|_| ()),
        }
        .expect("fill");
        let engine = api.state.engine().unwrap();
        let entry = engine.catalog.by_plural("things").unwrap();
        let actor = kumo_core::actor::Actor::anonymous();
        let mut req = kumo_db::query::parse_list(
            &engine.catalog,
            entry,
            "page[size]=5&page[count]=true&filter[label][contains]=thing",
        )
        .unwrap();
        // Counting 300,000 rows through a filter takes far more than a
        // millisecond: given up, the page still has its rows.
        req.count_time_limit = Some(std::time::Duration::from_millis(1));
        let page = engine.list(&actor, entry, &req).await.unwrap();
        assert_eq!(page.total, None);
        assert_eq!(page.data.len(), 5);
        assert!(page.next.is_some());
        // The connection it ran on is none the worse: the same count with
        // time to spare finishes.
        req.count_time_limit = Some(std::time::Duration::from_secs(60));
        let page = engine.list(&actor, entry, &req).await.unwrap();
        assert_eq!(page.total, Some(i64::from(ROWS)));
        api.cleanup().await;
    }
);
