//! `GET /openapi.json` and `GET /docs`: the generated document (snapshot,
//! validated by openapi-spec-validator) and how both are served.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kumo_core::load::load_schema;
use kumo_db::query::Catalog;
use kumo_db::sql::Dialect;
use kumo_server::{AppState, app};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::harness::{AVATAR, COMMENT, TestApi};

/// The harness' resources (avatars, comments, and the system resources).
pub(crate) fn harness_catalog() -> Catalog {
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
    assert_eq!(
        paths,
        [
            "/docs",
            "/docs/docs.js",
            "/docs/swagger-ui-5.35.0.css",
            "/docs/swagger-ui-5.35.0.js",
            "/health",
            "/openapi.json",
            "/ready"
        ]
    );
}

#[test]
fn document_is_valid_openapi_3_1() {
    validate(&kumo_server::openapi::document(Some(&harness_catalog())));
}

/// Fails unless openapi-spec-validator finds `doc` valid OpenAPI 3.1.
pub(crate) fn validate(doc: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
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

    // Every script and stylesheet the page names is served here, and is
    // in the document (with the type it is served as).
    let assets: Vec<&str> = html
        .split(['"'])
        .filter(|s| s.starts_with("docs/"))
        .collect();
    assert_eq!(assets.len(), 3, "{html}");
    let doc = kumo_server::openapi::document(None);
    let listed: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| p.starts_with("/docs/"))
        .map(|p| &p[1..])
        .collect();
    let mut named = assets.clone();
    named.sort_unstable();
    assert_eq!(listed, named);
    for asset in assets {
        let content = &doc["paths"][format!("/{asset}")]["get"]["responses"]["200"]["content"];
        let documented = content.as_object().unwrap().keys().next().unwrap().clone();
        let r = get(&api.state, &format!("/{asset}"), &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        let content_type = r.headers()[header::CONTENT_TYPE].to_str().unwrap();
        let expected = if asset.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(content_type, expected, "{asset}");
        assert!(
            content_type.starts_with(&format!("{documented};")),
            "{asset}: {documented}"
        );
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

/// What the document says beyond each operation's own answers: other
/// methods (405), the HTTP layer's 414 and 431 (no error shape), a
/// parameter given twice, integral floats, enum and datetime filters.
#[test]
fn document_describes_what_every_route_shares() {
    let doc = kumo_server::openapi::document(Some(&harness_catalog()));
    let responses = &doc["components"]["responses"];
    let not_allowed = &responses["method_not_allowed"];
    assert_eq!(
        not_allowed["content"]["application/json"]["schema"]["properties"]["error"]["properties"]["code"]
            ["const"],
        "method_not_allowed"
    );
    assert_eq!(not_allowed["headers"]["Allow"]["required"], true);
    for name in ["uri_too_long", "headers_too_large"] {
        let response = responses[name].as_object().unwrap();
        assert!(!response.contains_key("content"), "{name}: {response:?}");
        assert!(
            response["description"]
                .as_str()
                .unwrap()
                .contains("empty body")
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert_eq!(
                op["responses"]["414"]["$ref"], "#/components/responses/uri_too_long",
                "{method} {path}"
            );
            assert_eq!(
                op["responses"]["431"]["$ref"], "#/components/responses/headers_too_large",
                "{method} {path}"
            );
        }
    }
    let intro = doc["info"]["description"].as_str().unwrap();
    for said in [
        "405",
        "414",
        "431",
        "2^53",
        "twice is a 400",
        "not decode to UTF-8",
    ] {
        assert!(intro.contains(said), "the introduction does not say {said}");
    }
    assert!(
        responses["invalid"]["description"]
            .as_str()
            .unwrap()
            .contains("2^53")
    );
    assert!(
        responses["bad_request"]["description"]
            .as_str()
            .unwrap()
            .contains("given more than once")
    );
    for (key, p) in doc["components"]["parameters"].as_object().unwrap() {
        if p["in"] == "query" {
            let description = p["description"].as_str().unwrap();
            assert!(description.contains("At most once"), "{key}: {description}");
        }
    }
    let list = &doc["paths"]["/api/avatars"]["get"];
    let kind = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "filter[kind]")
        .expect("filter[kind]");
    assert!(
        kind["description"]
            .as_str()
            .unwrap()
            .contains("more than once")
    );
    assert_eq!(
        kind["schema"]["$ref"],
        "#/components/schemas/kumo.filter.avatar.kind"
    );
    let schemas = &doc["components"]["schemas"];
    let enum_ops = &schemas["kumo.filter.avatar.kind"]["properties"];
    for op in ["eq", "ne"] {
        assert_eq!(
            enum_ops[op]["enum"],
            serde_json::json!(["humanoid", "creature"]),
            "{op}"
        );
    }
    assert!(enum_ops["gt"].get("enum").is_none());
    assert!(
        schemas["kumo.filter.datetime"]["description"]
            .as_str()
            .unwrap()
            .contains("millisecond")
    );
}

/// A method a path does not list answers 405 with `Allow` naming exactly
/// the methods the document lists for it (and HEAD wherever GET is: the
/// router answers HEAD like GET without a body).
#[tokio::test]
async fn other_methods_answer_405_with_the_documented_methods() {
    let api = TestApi::avatars(Dialect::Sqlite).await;
    let doc = kumo_server::openapi::document(Some(&api.state.engine().unwrap().catalog));
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = path.replace("{id}", "0190b6a4-0000-7000-8000-00000000000a");
        let mut documented: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        if documented.iter().any(|m| m == "GET") {
            documented.push("HEAD".into());
        }
        // `POST /api/<plural>/<action>` (a create action) shares the route of
        // `/api/<plural>/{id}`, so POST is taken there: with an id, 404.
        let record = path.starts_with("/api/") && path.ends_with("/{id}");
        if record {
            documented.push("POST".into());
            let r = api.send("POST", &uri, None, None).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "POST {uri}: {}", r.body);
        }
        documented.sort();
        let other = ["PUT", "PATCH", "POST", "DELETE"]
            .into_iter()
            .find(|m| !documented.iter().any(|d| d == m))
            .unwrap_or_else(|| panic!("{path} takes every method"));
        let r = app(api.state.clone())
            .oneshot(
                Request::builder()
                    .method(other)
                    .uri(&uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{other} {uri}");
        let mut allowed: Vec<String> = r.headers()[header::ALLOW]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        allowed.sort();
        assert_eq!(allowed, documented, "{other} {uri}");
        let error: Value = serde_json::from_slice(&body(r).await).unwrap();
        assert_eq!(
            error["error"]["code"], "method_not_allowed",
            "{other} {uri}"
        );
    }
    api.cleanup().await;
}

/// Sessions, tokens, keys and audit events are made by Kumo itself: a
/// required field of each is one no request may write. Their collections
/// have no create route, in the document or at run time, even for an
/// admin; `user`, whose required `email` an admin may write, keeps its own.
#[tokio::test]
async fn collections_only_kumo_fills_have_no_create_route() {
    let api = TestApi::avatars(Dialect::Sqlite).await;
    let doc = kumo_server::openapi::document(Some(&api.state.engine().unwrap().catalog));
    for plural in [
        "sessions",
        "auth_tokens",
        "api_keys",
        "audit_events",
        "external_identities",
    ] {
        let item = &doc["paths"][format!("/api/{plural}")];
        assert!(
            item.get("get").is_some() && item.get("post").is_none(),
            "{plural}: {item}"
        );
        let r = api
            .send(
                "POST",
                &format!("/api/{plural}"),
                Some(crate::harness::ADMIN),
                Some(json!({})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{plural}: {}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "method_not_allowed");
        assert_eq!(
            r.body["error"]["message"],
            format!("{plural} are made by Kumo itself, not through the API")
        );
    }
    for plural in ["users", "avatars"] {
        assert!(
            doc["paths"][format!("/api/{plural}")].get("post").is_some(),
            "{plural}"
        );
    }
    let created = api
        .send(
            "POST",
            "/api/users",
            Some(crate::harness::ADMIN),
            Some(json!({"email": "new@example.com"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    api.cleanup().await;
}

/// The HTTP layer's own answers, over a real socket: a status line, no
/// body, and no error shape (what the document says of 414 and 431).
#[tokio::test]
async fn a_uri_or_headers_too_large_are_answered_by_the_http_layer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let api = TestApi::avatars(Dialect::Sqlite).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kumo_server::serve(listener, api.state.clone(), async {
        let _ = stopped.await;
    }));
    let exchange = |head: String| async move {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        // The server closes the connection after such an answer.
        let _ = socket.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    // About 1,700 UUIDs in an `in` list fit; 1,800 do not.
    let uuids = |n: usize| vec!["0190b6a4-0000-7000-8000-00000000000a"; n].join(",");
    let get =
        |target: String| format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let fits = exchange(get(format!(
        "/api/avatars?filter%5Bid%5D%5Bin%5D={}",
        uuids(1700)
    )))
    .await;
    assert!(
        fits.starts_with("HTTP/1.1 200"),
        "{}",
        &fits[..fits.len().min(200)]
    );
    let long = exchange(get(format!(
        "/api/avatars?filter%5Bid%5D%5Bin%5D={}",
        uuids(1800)
    )))
    .await;
    assert!(long.starts_with("HTTP/1.1 414"), "{long}");
    let (head, rest) = long.split_once("\r\n\r\n").unwrap();
    assert!(
        rest.is_empty() && head.to_lowercase().contains("content-length: 0"),
        "{long}"
    );

    let many: String = (0..101).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let headers = exchange(format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n")).await;
    assert!(headers.starts_with("HTTP/1.1 431"), "{headers}");
    // (Headers over hyper's 417,792-byte buffer are a 431 too, but the
    // server closes with the rest unread, and the reset can beat the answer.)
    let (head, rest) = headers.split_once("\r\n\r\n").unwrap();
    assert!(
        rest.is_empty() && head.to_lowercase().contains("content-length: 0"),
        "{headers}"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    api.cleanup().await;
}

/// A post with one action of each type, for what the document says of
/// their answers.
const POST: &str = r#"
[resource]
name = "post"

[attributes]
title = { type = "string", required = true }

[policies]
read    = "actor.role == 'admin'"
create  = "true"
update  = "true"
destroy = "true"

[actions.retitle]
type = "update"
accept = ["title"]
policy = "true"

[actions.draft]
type = "create"
accept = ["title"]
policy = "true"

[actions.remove]
type = "destroy"
policy = "true"
"#;

/// A create, update or create/update action whose result the caller may
/// not read is made and answered with the id alone (`unreadable_results.rs`):
/// the document says so on each such answer, in the introduction, and its
/// record schema requires `id` alone, so an id-only answer fits it. A
/// destroy answers the record as it was (it was found under the read
/// policy), and says nothing of the kind.
#[test]
fn document_says_a_write_the_caller_may_not_read_answers_its_id() {
    let sources = vec![("resources/post.toml".into(), POST.to_owned())];
    let catalog = Catalog::new(load_schema(sources, true).unwrap_or_else(|d| panic!("{d}")));
    let doc = kumo_server::openapi::document(Some(&catalog));
    let described = |path: &str, method: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} {status}: no description"))
            .to_owned()
    };
    assert_eq!(
        described("/api/posts", "post", "201"),
        "The created post (an array for an array body). A record the caller may not read \
         once created is answered with its `id` alone."
    );
    let changed = "The post as changed, or only its `id` when the caller may no longer read it.";
    assert_eq!(described("/api/posts/{id}", "patch", "200"), changed);
    assert_eq!(described("/api/posts/{id}/retitle", "post", "200"), changed);
    assert_eq!(
        described("/api/posts/draft", "post", "201"),
        "The created post, or only its `id` when the caller may not read it."
    );
    for (path, method) in [
        ("/api/posts/{id}", "get"),
        ("/api/posts/{id}", "delete"),
        ("/api/posts/{id}/remove", "post"),
    ] {
        let d = described(path, method, "200");
        assert!(!d.contains("`id`"), "{method} {path}: {d}");
    }
    assert_eq!(
        doc["components"]["schemas"]["post"]["required"],
        json!(["id"])
    );
    let intro = doc["info"]["description"].as_str().unwrap();
    let policies = intro
        .split("\n\n")
        .find(|p| p.starts_with("**Policies.**"))
        .expect("a Policies paragraph");
    assert!(
        policies.ends_with(
            "A create, update or action whose result the caller may not read is still made, \
             and answered with the record's `id` alone."
        ),
        "{policies}"
    );
}

/// Every route with a body documents 400 as `bad_request_or_json`, which
/// says what the server answers: a repeated key (at any depth) is a
/// `bad_request` naming the key, line and column, and a body that does not
/// parse is `malformed_json`. Both codes are the ones the document lists.
#[tokio::test]
async fn a_body_with_a_repeated_key_answers_what_the_document_says() {
    let api = TestApi::avatars(Dialect::Sqlite).await;
    let doc = kumo_server::openapi::document(Some(&api.state.engine().unwrap().catalog));
    let response = &doc["components"]["responses"]["bad_request_or_json"];
    let description = response["description"].as_str().unwrap();
    assert_eq!(
        description,
        "A query parameter the route does not take or given more than once (`bad_request`), \
         a body whose object repeats a key (`bad_request`, naming the key, its line and \
         column), or a body that is not valid JSON (`malformed_json`)."
    );
    let codes = &response["content"]["application/json"]["schema"]["properties"]["error"]["properties"]
        ["code"]["enum"];
    assert_eq!(codes, &json!(["bad_request", "malformed_json"]));
    let id = "0190b6a4-0000-7000-8000-00000000000a";
    for (method, path, uri) in [
        ("post", "/api/avatars", "/api/avatars".to_owned()),
        ("patch", "/api/avatars/{id}", format!("/api/avatars/{id}")),
        (
            "post",
            "/api/avatars/{id}/rate",
            format!("/api/avatars/{id}/rate"),
        ),
    ] {
        assert_eq!(
            doc["paths"][path][method]["responses"]["400"]["$ref"],
            "#/components/responses/bad_request_or_json",
            "{method} {path}"
        );
        for (body, code, says) in [
            (
                "{\"metadata\": {\"a\": 1,\n \"a\": 2}}",
                "bad_request",
                "the key `a` appears twice in one object at line 2 column 4",
            ),
            ("{\"name\": ", "malformed_json", "not valid JSON"),
        ] {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap();
            let r = api.raw(request).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{method} {uri}: {}",
                r.body
            );
            assert_eq!(r.body["error"]["code"], code, "{method} {uri}");
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{method} {uri}: {message}");
        }
    }
    api.cleanup().await;
}

/// A method no route takes, on a path that names no resource, is a 404 as
/// every other method there is: the path is wrong before the method is.
#[tokio::test]
async fn an_unknown_resource_is_404_whatever_the_method() {
    let api = TestApi::avatars(Dialect::Sqlite).await;
    for (method, uri) in [
        ("PUT", "/api/nothing"),
        ("PUT", "/api/nothing/x"),
        ("GET", "/api/nothing/x/act"),
        ("PUT", "/api/nothing/x/act"),
    ] {
        let r = app(api.state.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {uri}");
        let error: Value = serde_json::from_slice(&body(r).await).unwrap();
        assert_eq!(error["error"]["code"], "not_found", "{method} {uri}");
    }
    let r = app(api.state.clone())
        .oneshot(
            Request::builder()
                .method("GET")
                .uri("/api/avatars/x/publish")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()[header::ALLOW], "POST");
    api.cleanup().await;
}
