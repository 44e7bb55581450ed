//! Every filter operator on every kind of field, on both databases, checked
//! against what the operator means: comparisons are
//! `kumo_core::policy::compare` (filters and policies mean one thing by
//! `==` and `<`), text and array operators are spelled out here. Filters
//! through a relationship share one subquery per relationship path, which
//! answers as one per filter did, and a list goes through at most
//! `MAX_FILTER_PATHS` paths.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use kumo_core::policy::{BinOp, compare};
use kumo_db::query::params::{FilterOp, MAX_FILTER_PATHS, MAX_FILTERS};
use kumo_db::query::{Catalog, Kind};
use kumo_db::sql::Dialect;
use serde_json::{Map, Value, json};

use crate::both;
use crate::harness::{ADMIN, Reply, TestApi};

const GADGET: &str = r#"
[resource]
name = "gadget"

[attributes]
name    = { type = "string", required = true }
note    = { type = "text" }
level   = { type = "integer" }
weight  = { type = "float" }
active  = { type = "boolean" }
grade   = { type = "enum", values = ["low", "mid", "high"] }
made_on = { type = "date" }
seen_at = { type = "datetime" }
serial  = { type = "uuid" }
tags    = { type = "array", of = "string" }

[policies]
read   = "true"
create = "true"
"#;

const UUID_A: &str = "0190b6a4-0000-7000-8000-00000000000a";
const UUID_B: &str = "0190b6a4-0000-7000-8000-00000000000b";

/// Rows with nulls, negatives, zero, the empty string, case and accents,
/// and two datetimes that are one instant written in two zones.
/// A database of gadgets holding [`rows`], and the answer that created them.
async fn gadgets(dialect: Dialect) -> (TestApi, Reply) {
    let api = TestApi::new(dialect, &[("gadget", GADGET)]).await;
    let created = api
        .send(
            "POST",
            "/api/gadgets",
            Some(ADMIN),
            Some(Value::Array(rows())),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    (api, created)
}

fn rows() -> Vec<Value> {
    vec![
        json!({"name": "g0"}),
        json!({"name": "g1", "note": "Apple pie", "level": -5, "weight": -1.5, "active": true,
               "grade": "low", "made_on": "2026-01-01", "seen_at": "2026-01-01T00:00:00Z",
               "serial": UUID_A, "tags": ["a", "b"]}),
        json!({"name": "g2", "note": "apple", "level": 0, "weight": 0.0, "active": false,
               "grade": "mid", "made_on": "2026-06-15", "seen_at": "2026-06-15T12:30:00.500Z",
               "serial": UUID_B, "tags": []}),
        json!({"name": "g3", "note": "Ünïcode ☃", "level": 7, "weight": 2.25, "active": true,
               "grade": "high", "made_on": "2025-12-31", "seen_at": "2025-12-31T23:59:59.999Z",
               "tags": ["b"]}),
        json!({"name": "g4", "note": "", "level": 7, "weight": 1e10, "active": false,
               "grade": "low", "made_on": "2026-06-15", "seen_at": "2026-06-15T14:30:00.5+02:00",
               "serial": UUID_A, "tags": ["B", "a"]}),
        json!({"name": "g5", "note": "apple pie", "level": 9_007_199_254_740_993_i64,
               "weight": 3.0, "grade": "mid", "seen_at": "2026-06-15T12:30:00.501Z"}),
        // LIKE's wildcards and escape, which `contains` must take literally.
        json!({"name": "g6", "note": "100% a_b \\ end"}),
    ]
}

/// Values to filter by beyond those in the rows: absent ones, substrings.
fn extra_probes(kind: Kind) -> Vec<Value> {
    match kind {
        Kind::Text => vec![
            json!("pple"),
            json!("Apple"),
            json!(""),
            json!("☃"),
            json!("zz"),
            json!("%"),
            json!("_"),
            json!("\\"),
            json!("a%b"),
            json!("1_0"),
            json!("\\ E"),
        ],
        Kind::Integer => vec![json!(1), json!(-6)],
        Kind::Float => vec![json!(0.5), json!(-2.0)],
        Kind::Date => vec![json!("2026-03-01")],
        Kind::Datetime => vec![json!("2026-03-01T00:00:00.000Z")],
        Kind::Uuid => vec![json!("0190b6a4-0000-7000-8000-0000000000ff")],
        Kind::Array(_) => vec![json!("a"), json!("b"), json!("B"), json!("zz")],
        Kind::Boolean | Kind::Json => vec![],
    }
}

/// Whether `record.field` passes `op` with `probe`, by the operator's
/// definition.
fn holds(op: FilterOp, field: &Value, probe: &Value) -> bool {
    match op {
        FilterOp::Eq => compare(BinOp::Eq, field, probe),
        FilterOp::Ne => compare(BinOp::Ne, field, probe),
        FilterOp::Lt => compare(BinOp::Lt, field, probe),
        FilterOp::Lte => compare(BinOp::Le, field, probe),
        FilterOp::Gt => compare(BinOp::Gt, field, probe),
        FilterOp::Gte => compare(BinOp::Ge, field, probe),
        FilterOp::Contains => match (field, probe) {
            (Value::String(s), Value::String(p)) => s.contains(p.as_str()),
            (Value::Array(items), p) => items.contains(p),
            _ => false,
        },
        FilterOp::StartsWith => match (field, probe) {
            (Value::String(s), Value::String(p)) => s.starts_with(p.as_str()),
            _ => false,
        },
        FilterOp::In | FilterOp::IsNil => unreachable!("spelled out by the caller"),
    }
}

/// `%XX` for every byte that is not unreserved.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct Checker<'a> {
    api: &'a TestApi,
    stored: Vec<Map<String, Value>>,
    checked: usize,
}

impl Checker<'_> {
    async fn names(&self, query: &str) -> BTreeSet<String> {
        let uri = format!("/api/gadgets?page%5Bsize%5D=250&{query}");
        let r = self.api.send("GET", &uri, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        r.data()
            .as_array()
            .expect("a list")
            .iter()
            .map(|g| g["name"].as_str().expect("name").to_owned())
            .collect()
    }

    fn expected(&self, pass: impl Fn(&Value) -> bool, field: &str) -> BTreeSet<String> {
        self.stored
            .iter()
            .filter(|g| pass(g.get(field).unwrap_or(&Value::Null)))
            .map(|g| g["name"].as_str().expect("name").to_owned())
            .collect()
    }

    async fn check(&mut self, query: String, expected: BTreeSet<String>) {
        let got = self.names(&query).await;
        assert_eq!(got, expected, "filter {query}");
        self.checked += 1;
    }
}

both!(
    every_operator_on_every_kind,
    |dialect: Dialect| async move {
        let (api, created) = gadgets(dialect).await;
        let stored: Vec<Map<String, Value>> = created
            .data()
            .as_array()
            .expect("created rows")
            .iter()
            .map(|r| r.as_object().expect("a record").clone())
            .collect();
        let catalog = Catalog::new(
            kumo_core::load::load_schema(
                vec![("resources/gadget.toml".into(), GADGET.into())],
                true,
            )
            .expect("schema"),
        );
        let entry = catalog.get("gadget").expect("gadget");
        let mut checker = Checker {
            api: &api,
            stored,
            checked: 0,
        };
        let attributes = [
            "note", "level", "weight", "active", "grade", "made_on", "seen_at", "serial", "tags",
        ];
        let mut operators = BTreeSet::new();
        for field in attributes {
            let kind = entry.field(field).expect("a field").kind;
            let mut probes: Vec<Value> = Vec::new();
            for g in &checker.stored {
                match g.get(field) {
                    Some(Value::Array(items)) => probes.extend(items.iter().cloned()),
                    Some(Value::Null) | None => {}
                    Some(v) => probes.push(v.clone()),
                }
            }
            probes.extend(extra_probes(kind));
            probes.dedup();
            // An enum's `eq`, `ne` and `in` take only its values (others are
            // a 400, checked below); its orders and substrings take any text.
            let members: Vec<Value> = probes
                .iter()
                .filter(|p| {
                    field != "grade" || ["low", "mid", "high"].contains(&p.as_str().unwrap_or(""))
                })
                .cloned()
                .collect();
            let ops = FilterOp::for_kind(kind);
            operators.extend(ops.iter().copied());
            for op_name in &ops {
                let op = FilterOp::parse(op_name).expect("a known operator");
                match op {
                    FilterOp::IsNil => {
                        for flag in [true, false] {
                            let expected = checker.expected(|v| v.is_null() == flag, field);
                            checker
                                .check(format!("filter%5B{field}%5D%5Bis_nil%5D={flag}"), expected)
                                .await;
                        }
                    }
                    FilterOp::In => {
                        for pair in members.windows(2) {
                            let expected = checker
                                .expected(|v| pair.iter().any(|p| compare(BinOp::Eq, v, p)), field);
                            let list = pair
                                .iter()
                                .map(|p| encode(&query_text(p)))
                                .collect::<Vec<_>>()
                                .join(",");
                            checker
                                .check(format!("filter%5B{field}%5D%5Bin%5D={list}"), expected)
                                .await;
                        }
                    }
                    _ => {
                        let probes = if matches!(op, FilterOp::Eq | FilterOp::Ne) {
                            &members
                        } else {
                            &probes
                        };
                        for probe in probes {
                            let expected = checker.expected(|v| holds(op, v, probe), field);
                            let value = encode(&query_text(probe));
                            if op == FilterOp::Eq {
                                // A bare filter means equality.
                                checker
                                    .check(format!("filter%5B{field}%5D={value}"), expected.clone())
                                    .await;
                            }
                            checker
                                .check(
                                    format!("filter%5B{field}%5D%5B{op_name}%5D={value}"),
                                    expected,
                                )
                                .await;
                        }
                    }
                }
            }
        }
        assert_eq!(operators, BTreeSet::from(FilterOp::ALL), "every operator");
        assert!(checker.checked > 150, "{} filters checked", checker.checked);

        // A datetime may be written in any zone: it is the same instant.
        let same = checker
            .names("filter%5Bseen_at%5D=2026-06-15T14%3A30%3A00.5%2B02%3A00")
            .await;
        assert_eq!(same, BTreeSet::from(["g2".to_owned(), "g4".to_owned()]));
        // Filters combine with AND.
        let both_hold = checker
            .names("filter%5Blevel%5D=7&filter%5Bactive%5D=false")
            .await;
        assert_eq!(both_hold, BTreeSet::from(["g4".to_owned()]));
        // Comparison is by code point, not by locale: `Z` < `a` < `Ü`.
        let after_z = checker.names("filter%5Bnote%5D%5Bgt%5D=Z").await;
        assert_eq!(
            after_z,
            BTreeSet::from(["g2".to_owned(), "g3".to_owned(), "g5".to_owned()])
        );
        api.cleanup().await;
    }
);

both!(
    a_parameter_given_twice_is_refused_but_filters_combine,
    |dialect: Dialect| async move {
        let (api, created) = gadgets(dialect).await;
        let id = created.data()[0]["id"].as_str().unwrap().to_owned();
        for (query, key) in [
            ("sort=name&sort=-name", "sort"),
            ("page%5Bsize%5D=1&page%5Bsize%5D=2", "page[size]"),
            ("page%5Bcount%5D=true&page%5Bcount%5D=false", "page[count]"),
            ("page%5Boffset%5D=1&page%5Boffset%5D=2", "page[offset]"),
            ("fields=name&fields=level", "fields"),
            ("include=&include=", "include"),
        ] {
            let r = api
                .send("GET", &format!("/api/gadgets?{query}"), None, None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
            assert_eq!(
                r.body["error"]["fields"][key][0], "given more than once",
                "{query}: {}",
                r.body
            );
        }
        let one = api
            .send(
                "GET",
                &format!("/api/gadgets/{id}?fields=name&fields=note"),
                None,
                None,
            )
            .await;
        assert_eq!(one.status, StatusCode::BAD_REQUEST, "{}", one.body);
        // The same filter twice: both apply.
        let both = api
        .send(
            "GET",
            "/api/gadgets?filter%5Blevel%5D%5Bne%5D=7&filter%5Blevel%5D%5Bne%5D=0&filter%5Blevel%5D%5Bis_nil%5D=false",
            None,
            None,
        )
        .await;
        assert_eq!(both.status, StatusCode::OK, "{}", both.body);
        let names: BTreeSet<&str> = both
            .data()
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, BTreeSet::from(["g1", "g5"]));
        api.cleanup().await;
    }
);

/// The 400 a list answers for `query`, and its message for `parameter`.
async fn refused(api: &TestApi, query: &str, parameter: &str) -> String {
    let r = api
        .send("GET", &format!("/api/gadgets?{query}"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
    assert_eq!(
        r.body["error"]["code"], "bad_request",
        "{query}: {}",
        r.body
    );
    r.body["error"]["fields"][parameter][0]
        .as_str()
        .unwrap_or_else(|| panic!("{query}: `{parameter}` is not named: {}", r.body))
        .to_owned()
}

async fn names(api: &TestApi, query: &str) -> BTreeSet<String> {
    let r = api
        .send("GET", &format!("/api/gadgets?{query}"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    r.data()
        .as_array()
        .expect("a list")
        .iter()
        .map(|g| g["name"].as_str().expect("name").to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

both!(
    an_enum_filter_takes_only_the_enums_values,
    |dialect: Dialect| async move {
        // It answered 200 with no records: a typo looked like "none match".
        let (api, _) = gadgets(dialect).await;
        for (query, parameter) in [
            ("filter%5Bgrade%5D=bogus", "filter[grade]"),
            ("filter%5Bgrade%5D%5Beq%5D=Low", "filter[grade][eq]"),
            ("filter%5Bgrade%5D%5Bne%5D=bogus", "filter[grade][ne]"),
            ("filter%5Bgrade%5D%5Bin%5D=low,bogus", "filter[grade][in]"),
        ] {
            let message = refused(&api, query, parameter).await;
            assert!(message.contains("is not one of"), "{query}: {message}");
            for value in ["low", "mid", "high"] {
                assert!(message.contains(value), "{query}: {message}");
            }
        }
        assert_eq!(
            names(&api, "filter%5Bgrade%5D%5Bin%5D=low,high").await,
            set(&["g1", "g3", "g4"])
        );
        // Orders and substrings are about text, not members.
        assert_eq!(
            names(&api, "filter%5Bgrade%5D%5Bgt%5D=m").await,
            set(&["g2", "g5"])
        );
        assert_eq!(
            names(&api, "filter%5Bgrade%5D%5Bcontains%5D=i").await,
            set(&["g2", "g3", "g5"])
        );
        api.cleanup().await;
    }
);

both!(
    a_query_string_that_is_not_utf8_is_refused,
    |dialect: Dialect| async move {
        // `%ff` decoded to U+FFFD, and the list filtered by a value the client
        // never sent.
        let api = TestApi::new(dialect, &[("gadget", GADGET)]).await;
        let created = api
            .send(
                "POST",
                "/api/gadgets",
                Some(ADMIN),
                Some(json!({"name": "é"})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.id();
        for (query, parameter) in [
            ("filter%5Bname%5D=%ff", "filter[name]"),
            ("filter%5Bname%5D%5Bin%5D=a,%C3%28", "filter[name][in]"),
            ("sort=name%80", "sort"),
            ("filter%5Bname%ff%5D=a", "filter[name\u{fffd}]"),
        ] {
            let message = refused(&api, query, parameter).await;
            assert!(message.contains("is not UTF-8"), "{query}: {message}");
        }
        let one = api
            .send("GET", &format!("/api/gadgets/{id}?fields=%ff"), None, None)
            .await;
        assert_eq!(one.status, StatusCode::BAD_REQUEST, "{}", one.body);
        assert!(
            one.body["error"]["fields"]["fields"][0].is_string(),
            "{}",
            one.body
        );
        // Valid escapes, `+` and a `%` that starts no escape decode as before.
        assert_eq!(names(&api, "filter%5Bname%5D=%C3%A9").await, set(&["é"]));
        assert_eq!(names(&api, "filter%5Bname%5D=a+%25zz").await, set(&[]));
        api.cleanup().await;
    }
);

both!(
    a_datetime_filter_finer_than_a_millisecond_is_refused,
    |dialect: Dialect| async move {
        // Finer digits were dropped, which moved the bound: `lt …00.5004Z`
        // left out a record at `…00.500Z`, which is before it.
        let (api, _) = gadgets(dialect).await;
        for (query, parameter) in [
            (
                "filter%5Bseen_at%5D%5Blt%5D=2026-06-15T12:30:00.5004Z",
                "filter[seen_at][lt]",
            ),
            (
                "filter%5Bseen_at%5D%5Bgt%5D=2026-01-01T00:00:00.123456Z",
                "filter[seen_at][gt]",
            ),
            (
                "filter%5Bseen_at%5D=2026-01-01T00:00:00.0000001Z",
                "filter[seen_at]",
            ),
            (
                "filter%5Bseen_at%5D%5Bin%5D=2026-01-01T00:00:00Z,2026-01-01T00:00:00.0001%2B01:00",
                "filter[seen_at][in]",
            ),
        ] {
            let message = refused(&api, query, parameter).await;
            assert!(
                message.contains("more precise than a millisecond"),
                "{query}: {message}"
            );
        }
        // Zeros past the milliseconds change nothing.
        assert_eq!(
            names(
                &api,
                "filter%5Bseen_at%5D%5Blt%5D=2026-06-15T12:30:00.500000000Z"
            )
            .await,
            set(&["g1", "g3"])
        );
        assert_eq!(
            names(&api, "filter%5Bseen_at%5D=2026-06-15T12:30:00.500000Z").await,
            set(&["g2", "g4"])
        );
        assert_eq!(
            names(
                &api,
                "filter%5Bseen_at%5D%5Bgte%5D=2026-06-15T12:30:00.501Z"
            )
            .await,
            set(&["g5"])
        );
        api.cleanup().await;
    }
);

both!(
    an_in_list_splits_at_every_comma,
    |dialect: Dialect| async move {
        // Documented in docs/api.md: a value with a comma is matched by `eq`,
        // and the same filter twice means both (AND), not either.
        let api = TestApi::new(dialect, &[("gadget", GADGET)]).await;
        let rows = json!([{"name": "x,y"}, {"name": "x"}, {"name": "y"}]);
        let created = api
            .send("POST", "/api/gadgets", Some(ADMIN), Some(rows))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        assert_eq!(
            names(&api, "filter%5Bname%5D%5Bin%5D=x,y").await,
            set(&["x", "y"])
        );
        assert_eq!(
            names(&api, "filter%5Bname%5D%5Bin%5D=x%2Cy").await,
            set(&["x", "y"])
        );
        assert_eq!(names(&api, "filter%5Bname%5D=x,y").await, set(&["x,y"]));
        assert_eq!(
            names(&api, "filter%5Bname%5D%5Beq%5D=x%2Cy").await,
            set(&["x,y"])
        );
        assert_eq!(
            names(&api, "filter%5Bname%5D=x&filter%5Bname%5D=y").await,
            set(&[])
        );
        assert_eq!(
            names(
                &api,
                "filter%5Bname%5D%5Bne%5D=x&filter%5Bname%5D%5Bne%5D=y"
            )
            .await,
            set(&["x,y"])
        );
        api.cleanup().await;
    }
);

/// `filter[<path>][<op>]=<value>`, escaped.
fn filter(path: &str, op: &str, value: &str) -> String {
    format!("filter%5B{path}%5D%5B{op}%5D={}", encode(value))
}

/// The bodies of the comments `token` lists with `query`, and the total.
async fn comment_bodies(api: &TestApi, token: &str, query: &str) -> (BTreeSet<String>, i64) {
    let r = api
        .send(
            "GET",
            &format!("/api/comments?page%5Bsize%5D=250&page%5Bcount%5D=true&{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    let bodies = r
        .data()
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["body"].as_str().expect("body").to_owned())
        .collect();
    (bodies, r.body["page"]["total"].as_i64().expect("a total"))
}

both!(
    a_hundred_filters_through_one_relationship_share_one_subquery,
    |dialect: Dialect| async move {
        // Each filter through `avatar` was an EXISTS of its own: 100 of them
        // took PostgreSQL minutes to plan and run on 1,201 comments. They now
        // share one, which must answer as the separate ones did, hidden
        // avatars included.
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let bob = api.user("bob", "user").await;
        let alice_id = api.user_id(&alice);
        let bob_id = api.user_id(&bob);
        let mut avatars = Vec::new();
        for (name, polycount) in [
            ("u1", json!(1)),
            ("u50", json!(2)),
            ("x", Value::Null),
            ("y", json!(3)),
            ("z", Value::Null),
        ] {
            let r = api
                .send(
                    "POST",
                    "/api/avatars",
                    Some(&alice),
                    Some(json!({"name": name, "is_public": true, "polycount": polycount, "uploader_id": alice_id})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            avatars.push(r.id());
        }
        let comments: Vec<Value> = ["u1", "u50", "x", "y", "z"]
            .iter()
            .zip(&avatars)
            .flat_map(|(name, id)| {
                let bob_id = &bob_id;
                (0..2).map(move |i| json!({"body": format!("{name}-{i}"), "avatar_id": id, "author_id": bob_id}))
            })
            .collect();
        let r = api
            .send(
                "POST",
                "/api/comments",
                Some(&bob),
                Some(Value::Array(comments)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        // `z` is hidden from bob afterwards; he still reads his comments on it.
        let r = api
            .send(
                "PATCH",
                &format!("/api/avatars/{}", avatars[4]),
                Some(&alice),
                Some(json!({"is_public": false})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let pair = |name: &str| [format!("{name}-0"), format!("{name}-1")];
        let expected =
            |names: &[&str]| -> BTreeSet<String> { names.iter().flat_map(|n| pair(n)).collect() };
        assert_eq!(
            comment_bodies(&api, &bob, "").await,
            (expected(&["u1", "u50", "x", "y", "z"]), 10)
        );

        let hundred: Vec<String> = (1..=MAX_FILTERS)
            .map(|i| filter("avatar.name", "ne", &format!("u{i}")))
            .collect();
        assert_eq!(
            comment_bodies(&api, &bob, &hundred.join("&")).await,
            (expected(&["x", "y"]), 4),
            "the hidden avatar `z` matches no filter"
        );
        // Filters on the comment itself, through `avatar`, and through
        // `avatar.uploader` (nested in the same `avatar` subquery), mixed.
        let mixed = [
            filter("avatar.name", "ne", "u1"),
            filter("body", "ne", "y-1"),
            filter("avatar.uploader.username", "eq", "alice"),
            filter("avatar.name", "ne", "u50"),
            filter("avatar.uploader.role", "eq", "user"),
        ]
        .join("&");
        assert_eq!(
            comment_bodies(&api, &alice, &mixed).await,
            (set(&["x-0", "x-1", "y-0"]), 3)
        );
        // Bob may not read alice's user record: nothing matches through it,
        // though the same filters without it match.
        assert_eq!(comment_bodies(&api, &bob, &mixed).await, (set(&[]), 0));
        let without_uploader = [
            filter("avatar.name", "ne", "u1"),
            filter("body", "ne", "y-1"),
            filter("avatar.name", "ne", "u50"),
        ]
        .join("&");
        assert_eq!(
            comment_bodies(&api, &bob, &without_uploader).await,
            (set(&["x-0", "x-1", "y-0"]), 3)
        );
        // Conditions that each hold for some avatar but not together for
        // one match nothing: they are about the one avatar a comment has.
        let apart = [
            filter("avatar.name", "eq", "x"),
            filter("avatar.polycount", "eq", "3"),
        ]
        .join("&");
        assert_eq!(comment_bodies(&api, &bob, &apart).await, (set(&[]), 0));
        // `is_nil` through a relationship is about a readable avatar's
        // field: `z`'s polycount is null, but `z` is hidden.
        assert_eq!(
            comment_bodies(&api, &bob, &filter("avatar.polycount", "is_nil", "true")).await,
            (expected(&["x"]), 2)
        );
        assert_eq!(
            comment_bodies(
                &api,
                &bob,
                &[
                    filter("avatar.polycount", "is_nil", "false"),
                    filter("avatar.name", "ne", "u1"),
                ]
                .join("&")
            )
            .await,
            (expected(&["u50", "y"]), 4)
        );
        // Alice reads `z` (hers), but not bob's comments on it (a comment
        // is read through a public avatar or by its author).
        assert_eq!(
            comment_bodies(&api, &alice, &hundred.join("&")).await,
            (expected(&["x", "y"]), 4)
        );
        api.cleanup().await;
    }
);

const NODE: &str = r#"
[resource]
name = "node"

[attributes]
name = { type = "string", required = true }

[relationships]
a = { belongs_to = "node" }
b = { belongs_to = "node" }
c = { belongs_to = "node" }
d = { belongs_to = "node" }
e = { belongs_to = "node" }

[policies]
read   = "true"
create = "true"
"#;

both!(
    a_list_goes_through_at_most_eight_relationship_paths,
    |dialect: Dialect| async move {
        // Each path is a subquery the planner joins; the filters through one
        // path share it, so only distinct paths count, each prefix too.
        let api = TestApi::new(dialect, &[("node", NODE)]).await;
        let r = api
            .send(
                "POST",
                "/api/nodes",
                Some(ADMIN),
                Some(json!({"name": "n"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let list = |query: String| {
            let api = &api;
            async move {
                api.send("GET", &format!("/api/nodes?{query}"), None, None)
                    .await
            }
        };
        // a, b, c, d, e, a.a, a.b, a.c: eight paths, some twice.
        let eight = [
            "a.name", "b.name", "c.name", "d.name", "e.name", "a.a.name", "a.b.name", "a.c.name",
            "a.name", "a.c.name",
        ]
        .iter()
        .map(|path| filter(path, "ne", "x"))
        .collect::<Vec<_>>()
        .join("&");
        let r = list(eight.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data().as_array().map(Vec::len), Some(0));
        let r = list(format!("{eight}&{}", filter("b.a.name", "ne", "x"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        let message = r.body["error"]["fields"]["filter[b.a.name][ne]"][0]
            .as_str()
            .unwrap_or_else(|| panic!("the parameter is named: {}", r.body));
        assert!(
            message.contains(&format!("at most {MAX_FILTER_PATHS} relationship paths")),
            "{message}"
        );
        // Seven paths, and `e.e.name` goes through two more: `e` and `e.e`.
        let r = list(format!(
            "{}&{}",
            ["a", "b", "c", "d", "a.b", "a.c", "a.d"]
                .iter()
                .map(|p| filter(&format!("{p}.name"), "ne", "x"))
                .collect::<Vec<_>>()
                .join("&"),
            filter("e.e.name", "ne", "x")
        ))
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    integer_filters_refused_an_integral_float_that_bodies_take,
    |dialect: Dialect| async move {
        // `filter[polycount]=12000.0` answered 400 "not an integer", while
        // a body takes `5.0` for an integer field (Godot writes every
        // number as a float). A filter now takes a float with no fraction
        // as that integer, up to 2^53, as a body does, in every operator
        // and in `in` lists; a fraction is still refused.
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        for (name, polycount) in [("small", 1000), ("big", 12000)] {
            let r = api
                .send(
                    "POST",
                    "/api/avatars",
                    Some(&alice),
                    Some(json!({"name": name, "polycount": polycount, "uploader_id": alice_id})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let names = |r: &Reply| -> Vec<String> {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.data()
                .as_array()
                .expect("a list")
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned())
                .collect()
        };
        for (query, expected) in [
            ("filter[polycount]=12000.0", vec!["big"]),
            ("filter[polycount]=1e3", vec!["small"]),
            ("filter[polycount]=1.2E4", vec!["big"]),
            ("filter[polycount][gt]=1000.0", vec!["big"]),
            ("filter[polycount][in]=1e3,12000", vec!["big", "small"]),
            ("filter[polycount][ne]=-0.0", vec!["big", "small"]),
            ("filter[polycount]=9007199254740992.0", vec![]),
        ] {
            let r = api
                .send(
                    "GET",
                    &format!("/api/avatars?{query}&sort=name"),
                    Some(&alice),
                    None,
                )
                .await;
            assert_eq!(names(&r), expected, "{query}");
        }
        for (query, key, value) in [
            ("filter[polycount]=1.5", "filter[polycount]", "1.5"),
            (
                "filter[polycount][lt]=1e-3",
                "filter[polycount][lt]",
                "1e-3",
            ),
            (
                "filter[polycount][in]=1,2.5",
                "filter[polycount][in]",
                "2.5",
            ),
            // Beyond 2^53 a float stands for many integers.
            (
                "filter[polycount]=9007199254740994.0",
                "filter[polycount]",
                "9007199254740994.0",
            ),
            ("filter[polycount]=1e400", "filter[polycount]", "1e400"),
            ("filter[polycount]=NaN", "filter[polycount]", "NaN"),
        ] {
            let r = api
                .send("GET", &format!("/api/avatars?{query}"), Some(&alice), None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
            let message = format!(
                "`{value}` is not an integer (a number with no fraction, like `5.0`, is taken up to 2^53)"
            );
            assert_eq!(
                r.body["error"]["fields"],
                json!({ key: [message] }),
                "{query}"
            );
        }
        // Digits are exact over the whole 64-bit range, as before.
        let r = api
            .send(
                "GET",
                "/api/avatars?filter[polycount]=9223372036854775807",
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(names(&r), Vec::<String>::new());
        api.cleanup().await;
    }
);
