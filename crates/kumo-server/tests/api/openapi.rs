//! `GET /openapi.json` and `GET /docs`: the generated document (snapshot,
//! validated by openapi-spec-validator) and how both are served.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kumo_core::load::load_schema;
use kumo_db::query::Catalog;
use kumo_db::sql::Dialect;
use kumo_server::{AppState, app};
use serde_json::Value;
use tower::ServiceExt;

use crate::harness::{AVATAR, COMMENT, TestApi};

/// The harness' resources (avatars, comments, and the system resources).
fn harness_catalog() -> Catalog {
    let sources = [("avatar", AVATAR), ("comment", COMMENT)]
        .iter()
        .map(|(name, text)| (format!("resources/{name}.toml").into(), (*text).to_owned()))
        .collect();
    Catalog::new(load_schema(sources, true).unwrap_or_else(|d| panic!("{d}")))
}

/// A tool from the project's Python virtualenv (scripts/python-tools.sh).
pub(crate) fn python_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("KUMO_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
        PathBuf::from,
    );
    let path = venv.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/python-tools.sh (scripts/test does)",
        path.display()
    );
    path
}

#[test]
fn document_for_the_harness_resources() {
    let doc = kumo_server::openapi::document(Some(&harness_catalog()));
    insta::assert_json_snapshot!(doc);
}

#[test]
fn document_without_the_resource_api() {
    let doc = kumo_server::openapi::document(None);
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(paths, ["/docs", "/health", "/openapi.json", "/ready"]);
}

#[test]
fn document_is_valid_openapi_3_1() {
    let doc = kumo_server::openapi::document(Some(&harness_catalog()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = std::process::Command::new(python_tool("openapi-spec-validator"))
        .args(["--schema", "3.1", "--validation-errors", "all"])
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every operation's responses name every status its handler can answer,
/// and every route the router serves is in the document.
#[test]
fn every_operation_documents_429_and_the_error_shape() {
    let doc = kumo_server::openapi::document(Some(&harness_catalog()));
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("429"),
                "{method} {path} does not document 429"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status == "500" {
                    let name = response["$ref"].as_str().unwrap_or_else(|| {
                        panic!("{method} {path} {status} is not a shared error response")
                    });
                    assert!(name.starts_with("#/components/responses/"));
                }
            }
        }
    }
}

async fn get(state: &AppState, uri: &str, headers: &[(&str, &str)]) -> axum::response::Response {
    let mut request = Request::builder().uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app(state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body(response: axum::response::Response) -> Vec<u8> {
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn openapi_json_is_served_with_an_entity_tag() {
    let api = TestApi::avatars(Dialect::Sqlite).await;
    let r = get(&api.state, "/openapi.json", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
    let etag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
    let served: Value = serde_json::from_slice(&body(r).await).unwrap();
    let catalog = &api.state.engine().unwrap().catalog;
    assert_eq!(served, kumo_server::openapi::document(Some(catalog)));

    let again = get(&api.state, "/openapi.json", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(body(again).await.is_empty());
    let stale = get(
        &api.state,
        "/openapi.json",
        &[("if-none-match", "\"other\"")],
    )
    .await;
    assert_eq!(stale.status(), StatusCode::OK);
    api.cleanup().await;
}

#[tokio::test]
async fn docs_viewer_is_served_from_the_binary_under_a_strict_policy() {
    let api = TestApi::avatars(Dialect::Sqlite).await;
    let page = get(&api.state, "/docs", &[]).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = String::from_utf8(body(page).await).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));

    // Every script and stylesheet the page names is served here.
    let assets: Vec<&str> = html
        .split(['"'])
        .filter(|s| s.starts_with("docs/"))
        .collect();
    assert_eq!(assets.len(), 3, "{html}");
    for asset in assets {
        let r = get(&api.state, &format!("/{asset}"), &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        let content_type = r.headers()[header::CONTENT_TYPE].to_str().unwrap();
        let expected = if asset.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(content_type, expected, "{asset}");
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let cache = r.headers()[header::CACHE_CONTROL].to_str().unwrap();
        if asset.contains("swagger-ui-") {
            assert!(cache.contains("immutable"), "{asset}: {cache}");
        } else {
            assert_eq!(cache, "no-cache", "{asset}");
        }
        assert!(!body(r).await.is_empty());
    }
    api.cleanup().await;
}
