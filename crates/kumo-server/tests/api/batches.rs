//! Batch creates. Every `belongs_to` key of a batch is checked with one
//! query per target resource, under its read policy: a query per item made
//! a batch of 1,000 pay 1,000 round trips. Rows are inserted in the order
//! of their unique values, so two batches taking the same values in
//! different orders wait for each other instead of deadlocking; answers
//! and per-item errors keep the caller's order.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use axum::http::StatusCode;
use kumo_db::sql::Dialect;
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use crate::both;
use crate::harness::{ADMIN, TestApi};

/// Every SQL statement sqlx ran in this process since [`statements`] was
/// first called, as it logs them.
static LOG: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

fn statements() -> &'static Mutex<Vec<String>> {
    LOG.get_or_init(|| {
        // Global, not per thread: sqlx runs SQLite statements on a thread
        // of its own. Tests that share a process (`cargo test`) each count
        // only statements on tables of their own.
        tracing::subscriber::set_global_default(StatementLog)
            .expect("no other global subscriber in the API tests");
        Mutex::default()
    })
}

/// How many statements read `table` as their main table (the row alias
/// `r` of Kumo's queries; a policy's subqueries use other aliases).
fn reading(table: &str) -> usize {
    let needle = format!("FROM \"{table}\" r ");
    statements()
        .lock()
        .expect("statement log")
        .iter()
        .filter(|s| s.contains(&needle))
        .count()
}

/// A subscriber that keeps the text of sqlx's statement events.
struct StatementLog;

impl Subscriber for StatementLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query"
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = StatementText::default();
        event.record(&mut text);
        if let Some(log) = LOG.get() {
            log.lock().expect("statement log").push(text.0);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// sqlx logs a short `summary` and, when it is cut, the whole statement.
#[derive(Default)]
struct StatementText(String);

impl Visit for StatementText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if matches!(field.name(), "summary" | "db.statement") && value.len() > self.0.len() {
            self.0 = value.to_owned();
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// Pledges name a patron, maybe a cosigner (patrons too) and a fund. A
/// patron who is not `listed` can't be read, so can't be named. `PREFIX`
/// makes the tables this test's own (see [`statements`]).
const PATRON: &str = r#"
[resource]
name = "PREFIX_patron"
plural = "PREFIX_patrons"

[attributes]
name   = { type = "string", required = true }
listed = { type = "boolean", default = true }

[policies]
read = "record.listed"
"#;

const FUND: &str = r#"
[resource]
name = "PREFIX_fund"
plural = "PREFIX_funds"

[attributes]
title = { type = "string", required = true }

[policies]
read = "true"
"#;

const PLEDGE: &str = r#"
[resource]
name = "PREFIX_pledge"
plural = "PREFIX_pledges"

[attributes]
amount = { type = "integer", required = true }

[relationships]
patron   = { belongs_to = "PREFIX_patron", required = true }
cosigner = { belongs_to = "PREFIX_patron" }
fund     = { belongs_to = "PREFIX_fund", required = true }

[policies]
read   = "actor != null"
create = "actor != null"
"#;

async fn created(api: &TestApi, plural: &str, body: Value) -> String {
    let r = api
        .send("POST", &format!("/api/{plural}"), Some(ADMIN), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.id()
}

both!(
    a_batch_checks_its_keys_with_one_query_per_target,
    |dialect: Dialect| async move {
        let prefix = match dialect {
            Dialect::Postgres => "pg",
            Dialect::Sqlite => "lite",
        };
        let files: Vec<(String, String)> = [("patron", PATRON), ("fund", FUND), ("pledge", PLEDGE)]
            .iter()
            .map(|(name, text)| (format!("{prefix}_{name}"), text.replace("PREFIX", prefix)))
            .collect();
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let api = TestApi::new(dialect, &files).await;
        let (patrons, funds, pledges) = (
            format!("{prefix}_patrons"),
            format!("{prefix}_funds"),
            format!("{prefix}_pledges"),
        );
        let alice = api.user("alice", "user").await;
        let mut listed = Vec::new();
        for name in ["Ann", "Ben", "Cy"] {
            listed.push(created(&api, &patrons, json!({ "name": name })).await);
        }
        let unlisted = created(&api, &patrons, json!({"name": "Hid", "listed": false})).await;
        let mut fund_ids = Vec::new();
        for title in ["roof", "organ"] {
            fund_ids.push(created(&api, &funds, json!({ "title": title })).await);
        }
        let missing = "0190f3a2-1c8b-7d4e-9a6b-3c2d1e0f9a8b";
        let pledge = |i: usize| {
            json!({
                "amount": i,
                "patron_id": listed[i % 3],
                "cosigner_id": if i.is_multiple_of(2) { Value::from(listed[(i + 1) % 3].clone()) } else { Value::Null },
                "fund_id": fund_ids[i % 2],
            })
        };
        let mut batch: Vec<Value> = (0..30).map(pledge).collect();
        batch[5]["patron_id"] = json!(unlisted);
        batch[7]["fund_id"] = json!(missing);
        batch[9]["cosigner_id"] = json!(unlisted);

        let (patron_reads, fund_reads) = (reading(&patrons), reading(&funds));
        let r = api
            .send(
                "POST",
                &format!("/api/{pledges}"),
                Some(&alice),
                Some(Value::Array(batch)),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            r.body["error"]["fields"],
            json!({
                "[5].patron_id": [format!("no {prefix}_patron with id {unlisted}")],
                "[7].fund_id": [format!("no {prefix}_fund with id {missing}")],
                "[9].cosigner_id": [format!("no {prefix}_patron with id {unlisted}")],
            })
        );
        // Thirty items, three keys each, two target resources: two queries.
        assert_eq!(reading(&patrons) - patron_reads, 1);
        assert_eq!(reading(&funds) - fund_reads, 1);

        let (patron_reads, fund_reads) = (reading(&patrons), reading(&funds));
        let r = api
            .send(
                "POST",
                &format!("/api/{pledges}"),
                Some(&alice),
                Some(Value::Array((0..30).map(pledge).collect())),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let amounts: Vec<i64> = r
            .data()
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|p| p["amount"].as_i64())
            .collect();
        assert_eq!(
            amounts,
            (0..30).collect::<Vec<i64>>(),
            "in the caller's order"
        );
        assert_eq!(reading(&patrons) - patron_reads, 1);
        assert_eq!(reading(&funds) - fund_reads, 1);
        api.cleanup().await;
    }
);

both!(
    a_batch_inserts_in_the_order_of_its_unique_values,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let mut events = api.state.engine().expect("an API").subscribe();
        let batch = |names: &[&str]| -> Value {
            names
                .iter()
                .map(|name| json!({ "name": name, "uploader_id": alice_id }))
                .collect()
        };
        let sent = ["delta", "alpha", "charlie", "bravo"];
        let r = api
            .send("POST", "/api/avatars", Some(&alice), Some(batch(&sent)))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let answered = r.data().as_array().expect("records");
        // Answered, and announced, in the caller's order…
        let names: Vec<&str> = answered
            .iter()
            .map(|a| a["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(names, sent);
        let announced: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
            .map(|e| e.record["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(announced, sent);
        // …but inserted in the order of the unique identity (uploader,
        // name): ids are time-ordered (UUIDv7, in creation order within a
        // process), so sorting by id gives the order of the inserts.
        let mut by_id: Vec<(&str, &str)> = answered
            .iter()
            .map(|a| {
                (
                    a["id"].as_str().unwrap_or_default(),
                    a["name"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        by_id.sort();
        let inserted: Vec<&str> = by_id.iter().map(|(_, name)| *name).collect();
        assert_eq!(inserted, ["alpha", "bravo", "charlie", "delta"]);

        // Errors name the items as sent: `alpha` is taken, and of the two
        // `echo`s the first is inserted and the second refused.
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(batch(&["echo", "alpha", "foxtrot", "echo"])),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        let fields: BTreeSet<&str> = r.body["error"]["fields"]
            .as_object()
            .expect("fields")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from(["[1].name", "[1].uploader_id", "[3].name", "[3].uploader_id"])
        );
        assert!(events.try_recv().is_err(), "nothing announced");
        api.cleanup().await;
    }
);

both!(
    a_batch_item_the_create_policy_refuses_is_named_and_nothing_is_stored,
    |dialect: Dialect| async move {
        let api = TestApi::avatars(dialect).await;
        // A coordinator may read every user, so bob's key passes its check
        // and only the create policy (uploader = caller) refuses item 1.
        let alice = api.user("alice", "coordinator").await;
        let bob = api.user("bob", "user").await;
        let batch = json!([
            { "name": "mine", "uploader_id": api.user_id(&alice) },
            { "name": "bob's", "uploader_id": api.user_id(&bob) },
        ]);
        let r = api
            .send("POST", "/api/avatars", Some(&alice), Some(batch))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("[1]: "), "{message}");
        let stored = api.send("GET", "/api/avatars", Some(ADMIN), None).await;
        assert_eq!(
            stored.data().as_array().unwrap().len(),
            0,
            "{}",
            stored.body
        );
        api.cleanup().await;
    }
);
