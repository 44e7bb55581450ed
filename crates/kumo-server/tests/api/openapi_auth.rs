//! The `/auth/…` routes in `GET /openapi.json`: for every combination of
//! strategies, the document lists exactly the routes the server serves
//! (walked from the router's own source, since axum cannot list its
//! routes), it stays valid OpenAPI 3.1, and its auth part is snapshotted.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kumo_core::project::Registration;
use kumo_db::sql::Dialect;
use kumo_server::app;
use kumo_server::auth::clock::Clock;
use kumo_server::auth::{Settings, Strategies};
use serde_json::{Map, Value};
use time::macros::datetime;
use tower::ServiceExt;

use crate::harness::{Reply, TestApi};
use crate::openapi::{harness_catalog, validate};

const SECRET: &[u8] = b"the openapi auth test's secret 32";

/// The settings `auth_http.rs` tests with, for `strategies`.
pub(crate) fn settings(strategies: Strategies, confirm_email: bool) -> Settings {
    Settings {
        strategies,
        registration: Registration::Open,
        access_ttl: time::Duration::minutes(15),
        session_ttl: time::Duration::days(30),
        public_url: "http://game.test".into(),
        app_name: "Test Game".into(),
        limits: None,
        client_ip_header: None,
        confirm_email,
        password_cost: kumo_auth::password::Cost {
            memory_kib: 8,
            iterations: 1,
            lanes: 1,
        },
        audit_retention: Some(time::Duration::days(365)),
        coordinators_manage_users: true,
    }
}

pub(crate) fn clock() -> Clock {
    Clock::manual(datetime!(2026-11-21 12:00:00 UTC))
}

const EVERY_STRATEGY: Strategies = Strategies {
    magic_link: true,
    password: true,
    api_key: true,
};

/// The `/auth/…` paths the router declares, read from the files that
/// declare them: every string literal that starts with `/auth/`.
fn routed_paths() -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for source in [
        include_str!("../../src/auth/routes.rs"),
        include_str!("../../src/auth/account_routes.rs"),
    ] {
        for piece in source.split("\"/auth/").skip(1) {
            let rest = piece.split('"').next().unwrap();
            paths.insert(format!("/auth/{rest}"));
        }
    }
    assert!(paths.len() > 15, "{paths:?}");
    paths
}

/// `METHOD path` for every auth operation in the served document.
async fn documented(api: &TestApi) -> BTreeSet<String> {
    let r = api.send("GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut ops = BTreeSet::new();
    for (path, item) in r.body["paths"].as_object().unwrap() {
        if path.starts_with("/auth") {
            for method in item.as_object().unwrap().keys() {
                ops.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    ops
}

/// `METHOD path` for every route the server serves: an anonymous request
/// with an empty object is answered by the handler (401, 422, a page…),
/// not 404 (no such route, or a strategy not enabled) nor 405.
async fn served(api: &TestApi) -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for path in routed_paths() {
        let uri = path
            .replace("{token}", "probe-token")
            .replace("{id}", "0190b6a4-0000-7000-8000-00000000000a");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let mut request = Request::builder().method(method).uri(&uri);
            let body = if matches!(method, "GET" | "DELETE") {
                Body::empty()
            } else {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from("{}")
            };
            let response = app(api.state.clone())
                .oneshot(request.body(body).unwrap())
                .await
                .unwrap();
            let status = response.status();
            if status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED {
                ops.insert(format!("{method} {path}"));
            }
        }
    }
    ops
}

/// A route added to the router but not to the document (or left in the
/// document when its strategy is off) fails here, for each combination of
/// strategies and with `confirm_email` on and off.
#[tokio::test]
async fn the_document_lists_exactly_the_auth_routes_served() {
    let mut api = TestApi::avatars(Dialect::Sqlite).await;
    // No strategy: `kumo serve` starts no auth layer, and every /auth
    // route answers 404.
    api.without_sign_in();
    assert_eq!(served(&api).await, BTreeSet::new());
    assert_eq!(documented(&api).await, BTreeSet::new());
    let mut seen = BTreeSet::new();
    for bits in 1..8u8 {
        for confirm_email in [false, true] {
            let strategies = Strategies {
                magic_link: bits & 1 != 0,
                password: bits & 2 != 0,
                api_key: bits & 4 != 0,
            };
            let auth = api.sign_ins(settings(strategies, confirm_email), SECRET, clock());
            let served = served(&api).await;
            assert_eq!(
                documented(&api).await,
                served,
                "{strategies:?}, confirm_email = {confirm_email}"
            );
            // The served document is the one generated for these settings.
            let r = api.send("GET", "/openapi.json", None, None).await;
            let catalog = &api.state.engine().unwrap().catalog;
            assert_eq!(
                r.body,
                kumo_server::openapi::document_with_sign_in(Some(catalog), Some(&auth.settings))
            );
            seen.extend(served);
        }
    }
    // Every route the router declares is served by some combination.
    let paths: BTreeSet<String> = seen
        .iter()
        .map(|op| op.split_once(' ').unwrap().1.to_owned())
        .collect();
    assert_eq!(paths, routed_paths());
    api.cleanup().await;
}

fn auth_document(confirm_email: bool) -> Value {
    kumo_server::openapi::document_with_sign_in(
        Some(&harness_catalog()),
        Some(&settings(EVERY_STRATEGY, confirm_email)),
    )
}

/// The part of the document the auth layer adds or changes.
fn auth_part(doc: &Value) -> Value {
    let pick = |section: &Value, keep: &dyn Fn(&str) -> bool| {
        Value::Object(
            section
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Map<String, Value>>(),
        )
    };
    let components = &doc["components"];
    serde_json::json!({
        "security": doc["security"],
        "paths": pick(&doc["paths"], &|p| p.starts_with("/auth/")),
        "schemas": pick(&components["schemas"], &|k| k.starts_with("kumo.auth.")),
        "responses": pick(&components["responses"], &|k| k.starts_with("auth.") || k == "forbidden"),
        "securitySchemes": components["securitySchemes"],
    })
}

#[test]
fn document_with_every_strategy() {
    insta::assert_json_snapshot!(auth_part(&auth_document(false)));
}

/// What `confirm_email` changes: registering and changing an address
/// answer 202 and mail a link, and a password sign-in may be refused as
/// unconfirmed.
#[test]
fn document_with_email_confirmation() {
    let doc = auth_document(true);
    let paths = &doc["paths"];
    let register = paths["/auth/password/register"]["post"]["responses"]
        .as_object()
        .unwrap();
    assert!(register.contains_key("202") && !register.contains_key("201"));
    let change = paths["/auth/email/change"]["post"]["responses"]
        .as_object()
        .unwrap();
    assert!(change.contains_key("202") && !change.contains_key("200"));
    assert!(!change.contains_key("409"));
    assert_eq!(
        paths["/auth/password/sign_in"]["post"]["responses"]["403"]["$ref"],
        "#/components/responses/auth.account_locked_or_unconfirmed"
    );
}

#[test]
fn documents_with_sign_in_are_valid_openapi_3_1() {
    validate(&auth_document(false));
    validate(&auth_document(true));
}

/// The auth routes keep the document's rules: 429 everywhere, errors as
/// shared responses, 414 and 431 from the HTTP layer, and `Retry-After`
/// on every 429 and 503 (required, except on the pages that may not send
/// it).
#[test]
fn auth_operations_document_429_503_and_shared_errors() {
    let doc = auth_document(false);
    let responses = &doc["components"]["responses"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/auth/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let ours = op["responses"].as_object().unwrap();
            for status in ["429", "414", "431"] {
                assert!(ours.contains_key(status), "{method} {path} lacks {status}");
            }
            for (status, response) in ours {
                if status.starts_with('2') {
                    continue;
                }
                let name = response["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/responses/"))
                    .unwrap_or_else(|| panic!("{method} {path} {status} is not shared"));
                let shared = &responses[name];
                assert!(shared.is_object(), "{method} {path}: {name} is missing");
                // The failure pages of a link's form answer 503 without it.
                if (status == "429" || status == "503") && name != "auth.page_503" {
                    assert!(
                        shared["headers"]["Retry-After"].is_object(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

/// An auth route's JSON body is read as the resource API reads one: the
/// API's 413 (in the error shape) over its limit, 415 unless declared
/// JSON, `malformed_json` with the position. The reset link's form page
/// is read by the framework, with its own plain-text 413.
#[tokio::test]
async fn auth_bodies_are_read_as_the_api_reads_them() {
    let mut api = TestApi::avatars(Dialect::Sqlite).await;
    api.sign_ins(settings(EVERY_STRATEGY, false), SECRET, clock());
    let doc = api.send("GET", "/openapi.json", None, None).await.body;
    let send = |uri: &str, content_type: &str, body: Vec<u8>| {
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        app(api.state.clone()).oneshot(request)
    };
    let json_limit = kumo_server::api::BODY_LIMIT;
    let path = "/auth/magic_link/request";
    let over = Reply::from_response(
        send(path, "application/json", vec![b' '; json_limit + 1])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(over.body["error"]["code"], "payload_too_large");
    let form = Reply::from_response(
        send(
            path,
            "application/x-www-form-urlencoded",
            b"email=a".to_vec(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        form.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        form.body
    );
    let broken = Reply::from_response(
        send(path, "application/json", b"{\"email\":".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.body["error"]["code"], "malformed_json");
    let twice = Reply::from_response(
        send(
            path,
            "application/json",
            br#"{"email":"a@b.example","email":"c@d.example"}"#.to_vec(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST, "{}", twice.body);
    let responses = &doc["paths"][path]["post"]["responses"];
    assert_eq!(
        responses["413"]["$ref"],
        "#/components/responses/payload_too_large"
    );
    assert_eq!(
        responses["415"]["$ref"],
        "#/components/responses/unsupported_media_type"
    );

    let form_limit = kumo_server::openapi::AUTH_BODY_LIMIT;
    let page = "/auth/password/reset/probe";
    let over = send(
        page,
        "application/x-www-form-urlencoded",
        vec![b' '; form_limit + 1],
    )
    .await
    .unwrap();
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        over.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        doc["paths"]["/auth/password/reset/{token}"]["post"]["responses"]["413"]["$ref"],
        "#/components/responses/auth.payload_too_large"
    );
    api.cleanup().await;
}
