//! The API's OpenAPI 3.1 description, generated from the resources, and the
//! viewer that shows it.
//!
//! `GET /openapi.json` serves [`document`], computed once when the
//! [`AppState`] is built and kept as bytes. Everything in it comes from the
//! same facts the handlers use: the [`Catalog`]'s fields and kinds, the
//! operators [`FilterOp::for_kind`] allows, the page limits of `params.rs`,
//! the error codes of `api.rs`. So the document says exactly what the server
//! accepts and answers; `tests/api/fuzz.rs` holds it to that by fuzzing the
//! server from it. On a server that signs callers in, [`auth`] adds the
//! `/auth/…` routes of the enabled strategies and the security schemes
//! (`AppState::with_auth` regenerates the document with its settings).
//!
//! `GET /docs` is Swagger UI, vendored in `assets/` (see its README) and
//! served from the binary under a strict Content-Security-Policy: no CDN, no
//! inline script, no `eval`.

mod auth;

pub use auth::AUTH_BODY_LIMIT;

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kumo_core::resource::{
    Action, ActionKind, AttrType, OnDelete, Policy, RelationshipKind, Resource, ScalarType,
};
use kumo_db::query::catalog::Origin;
use kumo_db::query::params::{
    DEFAULT_PAGE_SIZE, FilterOp, MAX_FILTER_PATHS, MAX_FILTERS, MAX_IN_VALUES, MAX_OFFSET,
    MAX_PAGE_SIZE,
};
use kumo_db::query::read::INCLUDE_LIMIT;
use kumo_db::query::{Catalog, Entry, Field, Kind};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::api::BODY_LIMIT;
use crate::auth::Settings;

/// How many `belongs_to` hops the listed filter paths take at most
/// (`filter[avatar.uploader.username]` is two): all the server takes, so
/// every path it accepts is listed.
pub const FILTER_DEPTH: usize = kumo_db::query::params::MAX_FILTER_DEPTH;

/// The generated document as served: its bytes and their entity tag.
pub struct Document {
    json: Bytes,
    etag: HeaderValue,
}

impl Document {
    /// Generates the document for the resources of `catalog` (`None`: a
    /// server without the resource API) and, with `sign_in`, the `/auth`
    /// routes of its strategies.
    pub fn new(catalog: Option<&Catalog>, sign_in: Option<&Settings>) -> Document {
        let json = serde_json::to_vec(&document_with_sign_in(catalog, sign_in))
            .expect("a JSON value serializes");
        let mut hasher = std::hash::DefaultHasher::new();
        json.hash(&mut hasher);
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
            .expect("hex digits in quotes are a valid header value");
        Document {
            json: Bytes::from(json),
            etag,
        }
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
        .route(
            VIEWER_JS_PATH,
            get(|| async { asset(VIEWER_JS, JAVASCRIPT, IMMUTABLE) }),
        )
        .route(
            VIEWER_CSS_PATH,
            get(|| async { asset(VIEWER_CSS, CSS, IMMUTABLE) }),
        )
        .route(
            START_JS_PATH,
            get(|| async { asset(START_JS, JAVASCRIPT, REVALIDATE) }),
        )
}

async fn openapi_json(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let doc = state.openapi();
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == doc.etag || tag.trim() == "*");
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE)),
        (header::ETAG, doc.etag.clone()),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        doc.json.clone(),
    )
        .into_response()
}

// The viewer. Its files are named after the vendored version so browsers may
// keep them forever; the page and the start script change with Kumo itself.
const VIEWER_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const VIEWER_CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");
const START_JS: &[u8] = include_bytes!("../assets/docs.js");
const DOCS_HTML: &[u8] = include_bytes!("../assets/docs.html");
const VIEWER_JS_PATH: &str = "/docs/swagger-ui-5.35.0.js";
const VIEWER_CSS_PATH: &str = "/docs/swagger-ui-5.35.0.css";
const START_JS_PATH: &str = "/docs/docs.js";

const JSON: &str = "application/json";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// Scripts and styles only from this server, requests only to it, images
/// from it or `data:` URLs (Swagger UI's icons), nothing else: no inline
/// script, no `eval`, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static [u8], content_type: &'static str, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn docs_page() -> Response {
    let mut response = asset(DOCS_HTML, HTML, REVALIDATE);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

// ---------------------------------------------------------------------------
// The document.

/// Where the error codes a response may carry are listed, by status.
struct ErrorResponse {
    /// The key under `components/responses`.
    name: &'static str,
    status: &'static str,
    codes: &'static [&'static str],
    description: &'static str,
}

const BAD_REQUEST: ErrorResponse = ErrorResponse {
    name: "bad_request",
    status: "400",
    codes: &["bad_request"],
    description: "A query parameter, filter field, operator, value or cursor the route does \
                  not take, a parameter other than `filter[…]` given more than once, or a \
                  percent-escape that does not decode to UTF-8; `fields` names the parameter.",
};
const BAD_BODY: ErrorResponse = ErrorResponse {
    name: "bad_request_or_json",
    status: "400",
    codes: &["bad_request", "malformed_json"],
    description: "A query parameter the route does not take or given more than once \
                  (`bad_request`), a body whose object repeats a key (`bad_request`, naming \
                  the key, its line and column), or a body that is not valid JSON \
                  (`malformed_json`).",
};
const UNAUTHENTICATED: ErrorResponse = ErrorResponse {
    name: "unauthenticated",
    status: "401",
    codes: &["unauthenticated"],
    description: "The `Authorization` header does not check out, or the request is \
                  anonymous and signing in might allow it.",
};
const FORBIDDEN: ErrorResponse = ErrorResponse {
    name: "forbidden",
    status: "403",
    codes: &["forbidden"],
    description: "Signed in, but the resource's policy does not allow this on this record.",
};
/// [`FORBIDDEN`] on a server that signs callers in, whose browser cookie
/// may come from another site.
const FORBIDDEN_SIGNED_IN: ErrorResponse = ErrorResponse {
    name: "forbidden",
    status: "403",
    codes: &["forbidden", "cross_site_request"],
    description: "Signed in, but the resource's policy does not allow this on this record \
                  (`forbidden`); or a change signed in by the browser's cookie from a page \
                  that is not this server's own (`cross_site_request`).",
};
const NOT_FOUND: ErrorResponse = ErrorResponse {
    name: "not_found",
    status: "404",
    codes: &["not_found"],
    description: "No record with this id, or one the caller may not read (the two look \
                  the same).",
};
const CONFLICT: ErrorResponse = ErrorResponse {
    name: "conflict",
    status: "409",
    codes: &["conflict"],
    description: "A unique attribute or identity is already taken (`fields` names its \
                  fields), or other records still refer to this one.",
};
const TOO_LARGE: ErrorResponse = ErrorResponse {
    name: "payload_too_large",
    status: "413",
    codes: &["payload_too_large"],
    // The limit is added by `error_response`.
    description: "The body is larger than",
};
const MEDIA_TYPE: ErrorResponse = ErrorResponse {
    name: "unsupported_media_type",
    status: "415",
    codes: &["unsupported_media_type"],
    description: "A body sent without `Content-Type: application/json`, or with a \
                  `Content-Encoding` (bodies are taken uncompressed); decided before the body \
                  is read, so a large body of the wrong kind is a 415, not a 413.",
};
const INVALID: ErrorResponse = ErrorResponse {
    name: "invalid",
    status: "422",
    codes: &["invalid"],
    description: "Values that break the resource's rules: a wrong type (an integer field \
                  takes a number with a zero fraction such as `5.0` only up to 2^53 in size), \
                  a constraint, an unknown or unwritable field, a field the action does not \
                  accept, a reference to a record that does not exist or cannot be read. \
                  `fields` names each field (`[i].field` for item `i` of a batch).",
};
const RATE_LIMITED: ErrorResponse = ErrorResponse {
    name: "rate_limited",
    status: "429",
    codes: &["rate_limited"],
    description: "Too many requests from this client; retry after `Retry-After` seconds.",
};
const INTERNAL: ErrorResponse = ErrorResponse {
    name: "internal",
    status: "500",
    codes: &["internal"],
    description: "The database failed. A write that fails this way was not made.",
};
const UNAVAILABLE: ErrorResponse = ErrorResponse {
    name: "unavailable",
    status: "503",
    codes: &["unavailable"],
    description: "The database is too busy to answer now: no connection came free in time, \
                  it stayed locked, concurrent writes kept colliding, or a statement ran past \
                  `[database] statement_timeout`. Nothing was changed; retry after \
                  `Retry-After` seconds.",
};

/// Not referenced by any operation: an operation is a method the path
/// takes, and this is the answer to every other method on a path (with
/// `Allow` listing the methods it takes). The document's description says so.
const METHOD_NOT_ALLOWED: ErrorResponse = ErrorResponse {
    name: "method_not_allowed",
    status: "405",
    codes: &["method_not_allowed"],
    description: "The path exists but does not take this method (any method the path does \
                  not list); `Allow` names the methods it takes. Those include HEAD wherever \
                  GET is, and POST on `/api/<plural>/{id}`, whose route create actions share \
                  (`POST /api/<plural>/<action>`): a POST there with an id answers 404.",
};

const ALL_ERRORS: [&ErrorResponse; 13] = [
    &BAD_REQUEST,
    &BAD_BODY,
    &UNAUTHENTICATED,
    &FORBIDDEN,
    &NOT_FOUND,
    &METHOD_NOT_ALLOWED,
    &CONFLICT,
    &TOO_LARGE,
    &MEDIA_TYPE,
    &INVALID,
    &RATE_LIMITED,
    &INTERNAL,
    &UNAVAILABLE,
];

/// Answers of the HTTP layer (hyper, HTTP/1.1) that come before any route:
/// a status line and an empty body, not the error shape. Any request may
/// get them, so every operation lists them. The limits are hyper's: a
/// request target (path and query string) over 65,534 bytes, and a request
/// head over its read buffer (417,792 bytes) or with more than 100 headers.
const TRANSPORT_ERRORS: [(&str, &str, &str); 2] = [
    (
        "uri_too_long",
        "414",
        "The path and query string are longer than 65,534 bytes. Answered by the HTTP \
         layer before any route, with an empty body: not the error shape. A long `in` \
         filter is the usual cause (about 1,700 UUIDs fit); split the list over several \
         requests.",
    ),
    (
        "headers_too_large",
        "431",
        "The request's head is larger than 417,792 bytes, or it has more than 100 \
         headers. Answered by the HTTP layer before any route, with an empty body: not \
         the error shape.",
    ),
];

/// The OpenAPI 3.1 document for the resources of `catalog`, or for the
/// service routes alone, on a server that signs nobody in.
pub fn document(catalog: Option<&Catalog>) -> Value {
    document_with_sign_in(catalog, None)
}

/// The OpenAPI 3.1 document of a server with the resources of `catalog`
/// (if any) and, with `sign_in`, the auth layer those settings describe:
/// the `/auth` routes of its enabled strategies and its security schemes.
pub fn document_with_sign_in(catalog: Option<&Catalog>, sign_in: Option<&Settings>) -> Value {
    let sign_in = sign_in.filter(|s| s.strategies.any());
    let mut doc = Builder::default();
    doc.service_routes(catalog.is_some());
    if let Some(catalog) = catalog {
        for entry in catalog.entries() {
            doc.resource(catalog, entry);
        }
    }
    if let Some(settings) = sign_in {
        doc.auth_routes(settings);
    }
    let mut responses = Map::new();
    for e in ALL_ERRORS {
        responses.insert(e.name.to_owned(), error_response(e));
    }
    if sign_in.is_some() {
        // A write signed in by the browser's cookie from another site is
        // refused before its policy is looked at.
        responses.insert(
            FORBIDDEN.name.to_owned(),
            error_response(&FORBIDDEN_SIGNED_IN),
        );
    }
    for (name, _, description) in TRANSPORT_ERRORS {
        responses.insert(name.to_owned(), json!({ "description": description }));
    }
    responses.append(&mut doc.responses);
    let (security, schemes) = match sign_in {
        Some(settings) => (
            json!([{}, { "bearer": [] }, { "api_key": [] }, { "cookie": [] }]),
            auth::security_schemes(settings),
        ),
        None => (
            json!([{}, { "bearer": [] }]),
            json!({
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A session token or an API key. Optional: without the \
                                    header the request is anonymous, and the resources' \
                                    policies decide what an anonymous caller may do. A \
                                    header that does not check out is refused with 401."
                }
            }),
        ),
    };
    let mut introduction = INTRODUCTION
        .replace("{FILTER_DEPTH}", &FILTER_DEPTH.to_string())
        .replace("{MAX_FILTERS}", &MAX_FILTERS.to_string())
        .replace("{MAX_FILTER_PATHS}", &MAX_FILTER_PATHS.to_string())
        .replace("{MAX_IN_VALUES}", &MAX_IN_VALUES.to_string());
    if sign_in.is_some() {
        introduction.push_str(auth::INTRODUCTION);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Kumo API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": introduction,
        },
        "servers": [{ "url": "/" }],
        "security": security,
        "tags": doc.tags,
        "paths": doc.paths,
        "components": {
            "schemas": doc.schemas,
            "parameters": doc.parameters,
            "responses": responses,
            "securitySchemes": schemes
        }
    })
}

const INTRODUCTION: &str = "\
Every resource is served under `/api/<plural>`. Bodies and answers are JSON.

**Records.** `GET /api/<plural>` lists, `GET /api/<plural>/{id}` reads one, \
`POST /api/<plural>` creates one (an object) or several in one transaction \
(an array: all or nothing), `PATCH /api/<plural>/{id}` changes the fields it \
names, `DELETE /api/<plural>/{id}` deletes and answers the record as it was. \
Named actions are `POST /api/<plural>/{id}/<action>` (update and destroy \
actions) or `POST /api/<plural>/<action>` (create actions).

**Policies.** A record the caller may not read does not exist for them: it is \
absent from lists, counts and includes, never matches a filter, and reading it \
is a 404. Each operation's description gives the policy that decides it. A \
create, update or action whose result the caller may not read is still made, \
and answered with the record's `id` alone.

**Errors** all have one shape: \
`{\"error\": {\"code\": \"…\", \"message\": \"…\", \"fields\": {\"name\": [\"…\"]}}}`; \
`code` is stable, `message` is for people, `fields` (when present) names what \
is wrong. A method a path does not list answers 405 (`method_not_allowed`, \
the `method_not_allowed` response) with an `Allow` header; a path not listed \
answers 404. Two answers come from the HTTP layer before any route, with an \
empty body instead of the error shape: 414 for a path and query string over \
65,534 bytes, 431 for headers over 417,792 bytes or more than 100 of them.

**Values.** Datetimes are RFC 3339 with an offset and are answered in UTC \
with milliseconds (a body's finer digits are dropped; a filter's must be \
zeros, else 400); dates are `YYYY-MM-DD`. An integer field also takes a \
number with no fraction (`5.0`) up to 2^53 in size; beyond that only an \
integer written without a fraction or exponent is exact. Text cannot contain \
the NUL character (U+0000) and dates start at 0001-01-01 (UTC): PostgreSQL \
can store neither, so both databases refuse them.

**Query strings** are decoded as `application/x-www-form-urlencoded`; a \
percent-escape that does not decode to UTF-8 is a 400. A parameter other \
than `filter[…]` may be given once (twice is a 400); the same filter given \
twice applies both.

**Lists** take `filter[field][op]=value`, with the operators each \
`filter[field]` parameter lists for its field, and `filter[field]=value` for \
equality. Filters reach through `belongs_to` relationships \
(`filter[uploader.username]=alice`), at most {FILTER_DEPTH} relationships deep. An \
enum field's `eq`, `ne` and `in` take only its values (400 otherwise). `in` \
splits its value at every comma, so a value holding a comma can only be \
matched by `eq`. A \
list takes at most {MAX_FILTERS} filters, and its `in` filters at most {MAX_IN_VALUES} \
values together; its filters go through at most {MAX_FILTER_PATHS} distinct \
relationship paths, each prefix counted (`filter[uploader.team.name]` goes through \
`uploader` and `uploader.team`; any number of filters may share a path). `sort` orders by \
fields (`-` for descending). Pages are keyset pages: follow `page.next` with \
`page[after]` and `page.prev` with `page[before]`; `page[offset]` skips rows \
instead, and `page[count]=true` adds `page.total`.";

/// Ends the description of every query parameter but `filter[…]`.
const ONCE: &str = " At most once: given twice, the request is refused with 400.";

#[derive(Default)]
struct Builder {
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
    parameters: Map<String, Value>,
    /// Response components besides [`ALL_ERRORS`] and [`TRANSPORT_ERRORS`].
    responses: Map<String, Value>,
    tags: Vec<Value>,
}

impl Builder {
    fn service_routes(&mut self, api: bool) {
        self.tags.push(json!({
            "name": "service",
            "description": "Health, readiness and this description."
        }));
        self.schemas.insert("kumo.error".into(), error_schema(None));
        self.schemas.insert(
            "kumo.page".into(),
            json!({
                "type": "object",
                "description": "Where the list goes on. A cursor is opaque and bound to the \
                                resource and sort it came from.",
                "required": ["next", "prev"],
                "additionalProperties": false,
                "properties": {
                    "next": {
                        "type": ["string", "null"],
                        "description": "Pass as `page[after]` for the next page; `null` on the last."
                    },
                    "prev": {
                        "type": ["string", "null"],
                        "description": "Pass as `page[before]` for the previous page; `null` on the first."
                    },
                    "total": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "How many records match the filters, with `page[count]=true`."
                    }
                }
            }),
        );
        let status = |value: &str| {
            json!({
                "type": "object",
                "required": ["status"],
                "additionalProperties": false,
                "properties": { "status": { "const": value } }
            })
        };
        self.paths.insert(
            "/health".into(),
            json!({ "get": {
                "tags": ["service"],
                "operationId": "health",
                "summary": "The process is up",
                "security": [{}],
                "responses": with_errors(
                    json!({ "200": json_response("Up.", status("ok")) }),
                    &[&RATE_LIMITED],
                )
            }}),
        );
        let not_ready = json!({
            "type": "object",
            "required": ["status", "error"],
            "additionalProperties": false,
            "properties": {
                "status": { "const": "not_ready" },
                "error": {
                    "type": "object",
                    "required": ["code", "message", "fields"],
                    "additionalProperties": false,
                    "properties": {
                        "code": { "enum": ["database_unavailable", "schema_not_current"] },
                        "message": { "type": "string" },
                        "fields": { "type": "object", "maxProperties": 0 }
                    }
                }
            }
        });
        self.paths.insert(
            "/ready".into(),
            json!({ "get": {
                "tags": ["service"],
                "operationId": "ready",
                "summary": "The database answers and its schema is current",
                "security": [{}],
                "responses": with_errors(
                    json!({
                        "200": json_response("Ready to serve.", status("ready")),
                        "503": json_response("Not ready; `error` says why.", not_ready),
                    }),
                    &[&RATE_LIMITED],
                )
            }}),
        );
        self.paths.insert(
            "/openapi.json".into(),
            json!({ "get": {
                "tags": ["service"],
                "operationId": "openapi",
                "summary": "This description",
                "description": if api {
                    "Generated from the resources when the server starts."
                } else {
                    "This server does not serve the resource API, only the routes below."
                },
                "security": [{}],
                "responses": with_errors(
                    json!({
                        "200": {
                            "description": "The OpenAPI 3.1 document.",
                            "headers": { "ETag": { "required": true, "schema": { "type": "string" } } },
                            "content": { JSON: { "schema": { "type": "object" } } }
                        },
                        "304": { "description": "Unchanged since the `If-None-Match` entity tag." }
                    }),
                    &[&RATE_LIMITED],
                )
            }}),
        );
        self.paths.insert(
            "/docs".into(),
            json!({ "get": {
                "tags": ["service"],
                "operationId": "docs",
                "summary": "This description in a viewer (Swagger UI, served by Kumo)",
                "security": [{}],
                "responses": with_errors(
                    json!({
                        "200": {
                            "description": "The viewer's page.",
                            "content": { "text/html": { "schema": { "type": "string" } } }
                        }
                    }),
                    &[&RATE_LIMITED],
                )
            }}),
        );
        // The viewer's own files, which its page loads: routes like any
        // other, so they are listed too.
        for (path, id, summary, media_type) in [
            (
                VIEWER_JS_PATH,
                "docs.viewer_js",
                "The viewer's script (Swagger UI; cached for good, the name holds its version)",
                "text/javascript",
            ),
            (
                VIEWER_CSS_PATH,
                "docs.viewer_css",
                "The viewer's stylesheet (Swagger UI; cached for good, the name holds its version)",
                "text/css",
            ),
            (
                START_JS_PATH,
                "docs.start_js",
                "The script that starts the viewer on /openapi.json",
                "text/javascript",
            ),
        ] {
            self.paths.insert(
                path.into(),
                json!({ "get": {
                    "tags": ["service"],
                    "operationId": id,
                    "summary": summary,
                    "security": [{}],
                    "responses": with_errors(
                        json!({
                            "200": {
                                "description": "The file.",
                                "content": { media_type: { "schema": { "type": "string" } } }
                            }
                        }),
                        &[&RATE_LIMITED],
                    )
                }}),
            );
        }
        self.parameters.insert(
            "kumo.id".into(),
            json!({
                "name": "id",
                "in": "path",
                "required": true,
                "description": "The record's id. Any other text answers 404.",
                "schema": { "type": "string", "format": "uuid" }
            }),
        );
        let page = [
            (
                "page[size]",
                "How many records a page holds.",
                json!({
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PAGE_SIZE,
                    "default": DEFAULT_PAGE_SIZE
                }),
            ),
            (
                "page[after]",
                "The page after this cursor (a `page.next`). Only one of `page[after]`, \
                 `page[before]` and `page[offset]`.",
                json!({ "type": "string" }),
            ),
            (
                "page[before]",
                "The page before this cursor (a `page.prev`).",
                json!({ "type": "string" }),
            ),
            (
                "page[offset]",
                "Skip this many records instead of following a cursor.",
                json!({ "type": "integer", "minimum": 0, "maximum": MAX_OFFSET }),
            ),
            (
                "page[count]",
                "`true` adds `page.total`, how many records match.",
                json!({ "type": "boolean", "default": false }),
            ),
        ];
        for (name, description, schema) in page {
            self.parameters.insert(
                param_key(name),
                json!({
                    "name": name,
                    "in": "query",
                    "description": format!("{description}{ONCE}"),
                    "schema": schema
                }),
            );
        }
    }

    fn resource(&mut self, catalog: &Catalog, entry: &Entry) {
        let r = &entry.resource;
        let name = r.name.as_str();
        let plural = r.plural.as_str();
        self.tags.push(match &r.description {
            Some(d) => json!({ "name": plural, "description": d }),
            None => json!({ "name": plural }),
        });
        self.record_schemas(catalog, entry);
        let include = self.view_parameters(catalog, entry);
        let id = json!({ "$ref": "#/components/parameters/kumo.id" });
        let unique = has_unique(entry);
        let record_routes = [id]
            .into_iter()
            .chain(include.iter().cloned())
            .collect::<Vec<_>>();

        // The collection: list and create.
        let mut list_params = include.clone();
        list_params.push(self.sort_parameter(entry));
        for p in [
            "page[size]",
            "page[after]",
            "page[before]",
            "page[offset]",
            "page[count]",
        ] {
            list_params
                .push(json!({ "$ref": format!("#/components/parameters/{}", param_key(p)) }));
        }
        list_params.extend(filter_parameters(catalog, entry, &mut self.schemas));
        let list = json!({
            "tags": [plural],
            "operationId": format!("{plural}.list"),
            "summary": format!("List {plural}"),
            "description": format!(
                "The {plural} the caller may read.{}",
                read_rule(r)
            ),
            "parameters": list_params,
            "responses": with_errors(
                json!({ "200": json_response(
                    &format!("A page of {plural}."),
                    schema_ref(&format!("{name}.page")),
                )}),
                &[&BAD_REQUEST, &UNAUTHENTICATED, &RATE_LIMITED, &INTERNAL, &UNAVAILABLE],
            )
        });
        let mut create_errors = vec![
            &BAD_BODY,
            &UNAUTHENTICATED,
            &FORBIDDEN,
            &TOO_LARGE,
            &MEDIA_TYPE,
            &INVALID,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ];
        if unique {
            create_errors.push(&CONFLICT);
        }
        let create = json!({
            "tags": [plural],
            "operationId": format!("{plural}.create"),
            "summary": format!("Create one {name}, or several in one transaction"),
            "description": format!(
                "An object creates one {name}; an array creates each of its items in one \
                 transaction, all or none.{}{}",
                unsettable(entry, None),
                write_rule(r.policies.create.as_ref())
            ),
            "parameters": include,
            "requestBody": {
                "required": true,
                "content": { JSON: { "schema": {
                    "oneOf": [
                        schema_ref(&format!("{name}.create")),
                        { "type": "array", "items": schema_ref(&format!("{name}.create")),
                          "maxItems": kumo_db::query::write::MAX_BATCH }
                    ]
                }}}
            },
            "responses": with_errors(
                json!({ "201": json_response(
                    &format!(
                        "The created {name} (an array for an array body). A record the \
                         caller may not read once created is answered with its `id` alone."
                    ),
                    json!({ "oneOf": [
                        schema_ref(&format!("{name}.one")),
                        schema_ref(&format!("{name}.many"))
                    ]}),
                )}),
                &create_errors,
            )
        });
        let mut list = list;
        let mut create = create;
        list["responses"]["200"]["links"] = record_links(r, "$response.body#/data/0/id");
        create["responses"]["201"]["links"] = record_links(r, "$response.body#/data/id");
        // Records only Kumo makes (sessions, tokens) have no create route.
        let collection = if entry.creatable() {
            json!({ "get": list, "post": create })
        } else {
            json!({ "get": list })
        };
        self.paths.insert(format!("/api/{plural}"), collection);

        // One record: read, update, destroy.
        let one = schema_ref(&format!("{name}.one"));
        let get = json!({
            "tags": [plural],
            "operationId": format!("{plural}.get"),
            "summary": format!("Read one {name}"),
            "description": read_rule(r).trim_start().to_owned(),
            "parameters": record_routes,
            "responses": with_errors(
                json!({ "200": json_response(&format!("The {name}."), one.clone()) }),
                &[&BAD_REQUEST, &UNAUTHENTICATED, &NOT_FOUND, &RATE_LIMITED, &INTERNAL, &UNAVAILABLE],
            )
        });
        let mut update_errors = vec![
            &BAD_BODY,
            &UNAUTHENTICATED,
            &FORBIDDEN,
            &NOT_FOUND,
            &TOO_LARGE,
            &MEDIA_TYPE,
            &INVALID,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ];
        if unique {
            update_errors.push(&CONFLICT);
        }
        let as_changed = changed(name);
        let update = json!({
            "tags": [plural],
            "operationId": format!("{plural}.update"),
            "summary": format!("Change fields of one {name}"),
            "description": format!(
                "Changes the fields the body names; the others keep their values.{}",
                write_rule(r.policies.update.as_ref())
            ),
            "parameters": record_routes,
            "requestBody": {
                "required": true,
                "content": { JSON: { "schema": schema_ref(&format!("{name}.update")) } }
            },
            "responses": with_errors(
                json!({ "200": json_response(&as_changed, one.clone()) }),
                &update_errors,
            )
        });
        let mut destroy_errors = vec![
            &BAD_REQUEST,
            &UNAUTHENTICATED,
            &FORBIDDEN,
            &NOT_FOUND,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ];
        if still_referenced(catalog, name, &mut BTreeSet::new()) {
            destroy_errors.push(&CONFLICT);
        }
        let destroy = json!({
            "tags": [plural],
            "operationId": format!("{plural}.destroy"),
            "summary": format!("Delete one {name}"),
            "description": format!(
                "Answers the {name} as it was.{}",
                write_rule(r.policies.destroy.as_ref())
            ),
            "parameters": record_routes,
            "responses": with_errors(
                json!({ "200": json_response(&format!("The deleted {name}."), one) }),
                &destroy_errors,
            )
        });
        self.paths.insert(
            format!("/api/{plural}/{{id}}"),
            json!({ "get": get, "patch": update, "delete": destroy }),
        );

        for action in &r.actions {
            self.action(catalog, entry, action, &include, &record_routes);
        }
    }

    /// A named action's route, body schema and responses.
    fn action(
        &mut self,
        catalog: &Catalog,
        entry: &Entry,
        action: &Action,
        include: &[Value],
        record_routes: &[Value],
    ) {
        let r = &entry.resource;
        let (name, plural) = (r.name.as_str(), r.plural.as_str());
        let body_name = format!("{name}.actions.{}", action.name);
        let fields = accepted_fields(entry, action);
        let mut body = Map::new();
        body.insert("type".into(), json!(["object", "null"]));
        if let Some(d) = &action.description {
            body.insert("description".into(), json!(d));
        }
        let mut properties = Map::new();
        for f in &fields {
            properties.insert(f.name.clone(), input_schema(entry, f));
        }
        body.insert("properties".into(), Value::Object(properties));
        body.insert("additionalProperties".into(), json!(false));
        let required: Vec<&str> = match action.kind {
            ActionKind::Create => fields
                .iter()
                .filter(|f| f.required && !f.has_default && !sets(action, &f.name))
                .map(|f| f.name.as_str())
                .collect(),
            _ => Vec::new(),
        };
        if !required.is_empty() {
            // An empty body (or `null`) is an empty object, which lacks them.
            body.insert("type".into(), json!("object"));
            body.insert("required".into(), json!(required));
        }
        self.schemas.insert(body_name.clone(), Value::Object(body));

        // An action has only its own policy (none: admins only), never the
        // resource's policy for its type.
        let policy = action.policy.as_ref();
        let mut description = action
            .description
            .clone()
            .map(|d| format!("{d}."))
            .unwrap_or_default();
        description.push_str(&effects(action));
        if action.kind == ActionKind::Create {
            description.push_str(&unsettable(entry, Some(action)));
        }
        description.push_str(&write_rule(policy));
        let unique = has_unique(entry);
        let mut errors: Vec<&ErrorResponse> = vec![
            &BAD_BODY,
            &UNAUTHENTICATED,
            &FORBIDDEN,
            &TOO_LARGE,
            &MEDIA_TYPE,
            &INVALID,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ];
        let (path, params, status, what) = match action.kind {
            ActionKind::Create => {
                if unique {
                    errors.push(&CONFLICT);
                }
                (
                    format!("/api/{plural}/{}", action.name),
                    include.to_vec(),
                    "201",
                    format!(
                        "The created {name}, or only its `id` when the caller may not read it."
                    ),
                )
            }
            kind => {
                errors.push(&NOT_FOUND);
                let conflict = match kind {
                    ActionKind::Destroy => still_referenced(catalog, name, &mut BTreeSet::new()),
                    _ => unique,
                };
                if conflict {
                    errors.push(&CONFLICT);
                }
                (
                    format!("/api/{plural}/{{id}}/{}", action.name),
                    record_routes.to_vec(),
                    "200",
                    if kind == ActionKind::Destroy {
                        format!("The deleted {name}, as it was.")
                    } else {
                        changed(name)
                    },
                )
            }
        };
        let mut operation = json!({
            "tags": [plural],
            "operationId": format!("{plural}.actions.{}", action.name),
            "summary": format!("{} ({} action)", action.name, action.kind.as_str()),
            "description": description.trim_start(),
            "parameters": params,
            "requestBody": if required.is_empty() {
                json!({
                    "required": false,
                    "description": "Optional: an empty body is an empty object.",
                    "content": { JSON: { "schema": schema_ref(&body_name) } }
                })
            } else {
                json!({
                    "required": true,
                    "description": format!(
                        "Required: it must set {}.",
                        required.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    ),
                    "content": { JSON: { "schema": schema_ref(&body_name) } }
                })
            },
            "responses": with_errors(
                json!({ status: json_response(&what, schema_ref(&format!("{name}.one"))) }),
                &errors,
            )
        });
        if action.kind == ActionKind::Create {
            operation["responses"]["201"]["links"] = record_links(r, "$response.body#/data/id");
        }
        self.paths.insert(path, json!({ "post": operation }));
    }

    /// The record as answered, the bodies of create and update, and the
    /// envelopes around records.
    fn record_schemas(&mut self, catalog: &Catalog, entry: &Entry) {
        let r = &entry.resource;
        let name = r.name.as_str();
        let mut properties = Map::new();
        for f in entry.public_fields() {
            properties.insert(f.name.clone(), output_schema(f));
        }
        for rel in &r.relationships {
            let Some(target) = catalog.get(rel.target()) else {
                continue;
            };
            let target = schema_ref(&target.resource.name);
            let schema = match &rel.kind {
                RelationshipKind::BelongsTo { .. } => json!({
                    "description": format!(
                        "With `include={}`: the related record, or `null` when there is \
                         none or the caller may not read it.",
                        rel.name
                    ),
                    "oneOf": [target, { "type": "null" }]
                }),
                _ => json!({
                    "description": format!(
                        "With `include={}`: the related records the caller may read, \
                         oldest first (by `inserted_at`, then `id`), at most {INCLUDE_LIMIT}: \
                         the oldest {INCLUDE_LIMIT}.",
                        rel.name
                    ),
                    "type": "array",
                    "maxItems": INCLUDE_LIMIT,
                    "items": target
                }),
            };
            properties.insert(rel.name.clone(), schema);
        }
        let mut record = json!({
            "type": "object",
            "description": format!(
                "{} {name} as answered: every field below, or with `fields` only those \
                 named (and `id`), plus the relationships named by `include`. A write \
                 whose result the caller may not read answers `id` alone.",
                capitalized(article(name))
            ),
            "required": ["id"],
            "additionalProperties": false,
            "properties": properties
        });
        if let Some(d) = &r.description {
            record["description"] = json!(format!(
                "{d}. {}",
                record["description"].as_str().unwrap_or("")
            ));
        }
        self.schemas.insert(name.to_owned(), record);

        let writable: Vec<&Field> = entry
            .fields
            .iter()
            .filter(|f| f.writable && f.origin != Origin::Managed)
            .collect();
        let inputs = |required: bool| {
            let mut properties = Map::new();
            for f in &writable {
                let mut schema = input_schema(entry, f);
                if crate::api::only_ever_set(entry, &f.name) {
                    schema = not_null(schema);
                    schema["description"] = json!(
                        "Any time revokes it now: the server stores its own time. Never cleared."
                    );
                }
                properties.insert(f.name.clone(), schema);
            }
            let mut schema = json!({
                "type": "object",
                "additionalProperties": false,
                "properties": properties
            });
            if required {
                let names: Vec<&str> = writable
                    .iter()
                    .filter(|f| f.required && !f.has_default)
                    .map(|f| f.name.as_str())
                    .collect();
                if !names.is_empty() {
                    schema["required"] = json!(names);
                }
            }
            schema
        };
        self.schemas.insert(format!("{name}.create"), inputs(true));
        self.schemas.insert(format!("{name}.update"), inputs(false));

        let envelope = |data: Value| {
            json!({
                "type": "object",
                "required": ["data"],
                "additionalProperties": false,
                "properties": { "data": data }
            })
        };
        let record_ref = schema_ref(name);
        self.schemas
            .insert(format!("{name}.one"), envelope(record_ref.clone()));
        self.schemas.insert(
            format!("{name}.many"),
            envelope(json!({ "type": "array", "items": record_ref })),
        );
        let mut page = envelope(json!({
            "type": "array",
            "maxItems": MAX_PAGE_SIZE,
            "items": record_ref
        }));
        page["required"] = json!(["data", "page"]);
        page["properties"]["page"] = schema_ref("kumo.page");
        self.schemas.insert(format!("{name}.page"), page);
    }

    /// `include` and `fields`, shared by every route that answers records.
    fn view_parameters(&mut self, catalog: &Catalog, entry: &Entry) -> Vec<Value> {
        let name = &entry.resource.name;
        let mut refs = Vec::new();
        let relationships: Vec<&str> = entry
            .resource
            .relationships
            .iter()
            .filter(|r| catalog.get(r.target()).is_some())
            .map(|r| r.name.as_str())
            .collect();
        if !relationships.is_empty() {
            let key = format!("{name}.include");
            self.parameters.insert(
                key.clone(),
                json!({
                    "name": "include",
                    "in": "query",
                    "description": format!(
                        "Relationships to embed in each record, comma-separated. \
                         `has_many` and `many_to_many` embed at most {INCLUDE_LIMIT} \
                         records each.{ONCE}"
                    ),
                    "style": "form",
                    "explode": false,
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "items": { "type": "string", "enum": relationships }
                    }
                }),
            );
            refs.push(json!({ "$ref": format!("#/components/parameters/{key}") }));
        }
        let fields: Vec<&str> = entry.public_fields().map(|f| f.name.as_str()).collect();
        let key = format!("{name}.fields");
        self.parameters.insert(
            key.clone(),
            json!({
                "name": "fields",
                "in": "query",
                "description": format!("Answer only these fields (and `id`), comma-separated.{ONCE}"),
                "style": "form",
                "explode": false,
                "schema": {
                    "type": "array",
                    "minItems": 1,
                    "items": { "type": "string", "enum": fields }
                }
            }),
        );
        refs.push(json!({ "$ref": format!("#/components/parameters/{key}") }));
        refs
    }

    fn sort_parameter(&mut self, entry: &Entry) -> Value {
        let mut keys = Vec::new();
        for f in entry.public_fields() {
            if f.kind.is_ordered() || f.kind == Kind::Boolean {
                keys.push(f.name.clone());
                keys.push(format!("-{}", f.name));
            }
        }
        json!({
            "name": "sort",
            "in": "query",
            "description": format!(
                "Fields to order by, comma-separated; `-` before a field orders it \
                 descending. A field given again is ignored: its first occurrence \
                 decides the order (`name,-name` is `name`). `null` sorts first \
                 ascending. `id` always ends the order, so it is total. \
                 Default: `id`.{ONCE}"
            ),
            "style": "form",
            "explode": false,
            "schema": {
                "type": "array",
                "minItems": 1,
                "items": { "type": "string", "enum": keys }
            }
        })
    }
}

/// "a" or "an" before `word`, by its first letter ("a user", "a uuid":
/// a leading `u` usually sounds like "you").
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o']) {
        "an"
    } else {
        "a"
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Links from an answer holding a record to the operations on it, with
/// `id` the runtime expression that finds the record's id in the answer.
fn record_links(r: &Resource, id: &str) -> Value {
    let plural = &r.plural;
    let mut links = Map::new();
    let mut link = |name: &str, operation: String| {
        links.insert(
            name.to_owned(),
            json!({ "operationId": operation, "parameters": { "id": id } }),
        );
    };
    for op in ["get", "update", "destroy"] {
        link(op, format!("{plural}.{op}"));
    }
    for action in r.actions.iter().filter(|a| a.kind != ActionKind::Create) {
        link(&action.name, format!("{plural}.actions.{}", action.name));
    }
    Value::Object(links)
}

/// The key of a shared parameter: `page[size]` is `kumo.page_size`.
fn param_key(name: &str) -> String {
    format!("kumo.{}", name.replace('[', "_").replace(']', ""))
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "content": { JSON: { "schema": schema } }
    })
}

/// `responses` plus a reference to each error response, and to the HTTP
/// layer's own answers, which any request may get.
fn with_errors(mut responses: Value, errors: &[&ErrorResponse]) -> Value {
    let mut errors: Vec<(&str, &str)> = errors.iter().map(|e| (e.status, e.name)).collect();
    errors.extend(
        TRANSPORT_ERRORS
            .iter()
            .map(|(name, status, _)| (*status, *name)),
    );
    errors.sort();
    for (status, name) in errors {
        responses[status] = json!({ "$ref": format!("#/components/responses/{name}") });
    }
    responses
}

/// The error shape; with `codes`, only those codes.
fn error_schema(codes: Option<&[&str]>) -> Value {
    let code = match codes {
        Some([one]) => json!({ "const": one }),
        Some(many) => json!({ "enum": many }),
        None => json!({ "type": "string" }),
    };
    json!({
        "type": "object",
        "required": ["error"],
        "additionalProperties": false,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "additionalProperties": false,
                "properties": {
                    "code": code,
                    "message": { "type": "string" },
                    "fields": {
                        "type": "object",
                        "description": "Messages by field or parameter name; empty when the error concerns none.",
                        "additionalProperties": {
                            "type": "array",
                            "items": { "type": "string" }
                        }
                    }
                }
            }
        }
    })
}

fn error_response(e: &ErrorResponse) -> Value {
    let description = match e.status {
        "413" => format!("{} {BODY_LIMIT} bytes.", e.description),
        _ => e.description.to_owned(),
    };
    let mut response = json_response(&description, error_schema(Some(e.codes)));
    if e.status == "401" {
        response["headers"] = json!({ "WWW-Authenticate": {
            "description": "`Bearer`.",
            "required": true,
            "schema": { "type": "string" }
        }});
    }
    if e.status == "405" {
        response["headers"] = json!({ "Allow": {
            "description": "The methods the path takes, comma-separated.",
            "required": true,
            "schema": { "type": "string" }
        }});
    }
    if e.status == "429" || e.status == "503" {
        response["headers"] = json!({ "Retry-After": {
            "description": "Seconds to wait before the next request.",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 }
        }});
    }
    response
}

/// A value of `kind` (filters, keys, Kumo's own fields).
fn kind_schema(kind: Kind) -> Value {
    match kind {
        Kind::Text => json!({ "type": "string" }),
        Kind::Integer => json!({ "type": "integer", "format": "int64" }),
        Kind::Float => json!({ "type": "number", "format": "double" }),
        Kind::Boolean => json!({ "type": "boolean" }),
        Kind::Uuid => json!({ "type": "string", "format": "uuid" }),
        Kind::Date => json!({ "type": "string", "format": "date" }),
        Kind::Datetime => json!({ "type": "string", "format": "date-time" }),
        Kind::Json => json!({}),
        Kind::Array(of) => json!({ "type": "array", "items": kind_schema(Kind::of_scalar(of)) }),
    }
}

/// A value of an attribute of type `ty`, with its constraints.
fn type_schema(ty: &AttrType) -> Value {
    let mut schema = kind_schema(Kind::of(ty));
    match ty {
        AttrType::String {
            min_length,
            max_length,
            pattern,
        } => {
            if let Some(n) = min_length {
                schema["minLength"] = json!(n);
            }
            if let Some(n) = max_length {
                schema["maxLength"] = json!(n);
            }
            if let Some(p) = pattern {
                // Kumo matches the whole value; JSON Schema finds a match anywhere.
                schema["pattern"] = json!(format!("^(?:{p})$"));
            }
        }
        AttrType::Integer { min, max } => {
            if let Some(n) = min {
                schema["minimum"] = json!(n);
            }
            if let Some(n) = max {
                schema["maximum"] = json!(n);
            }
        }
        AttrType::Float { min, max } => {
            if let Some(n) = min {
                schema["minimum"] = json!(n);
            }
            if let Some(n) = max {
                schema["maximum"] = json!(n);
            }
        }
        AttrType::Enum { values } => schema["enum"] = json!(values),
        _ => {}
    }
    schema
}

/// A field's value schema, `null` allowed unless the field is required.
fn field_schema(f: &Field) -> Value {
    let mut schema = match &f.origin {
        Origin::Attribute(ty) => type_schema(ty),
        _ => kind_schema(f.kind),
    };
    if !f.required {
        schema = nullable(schema);
    }
    let description = match &f.origin {
        Origin::Managed => Some(match f.name.as_str() {
            "id" => "Set by Kumo when the record is created.".to_owned(),
            "inserted_at" => "When the record was created (UTC, milliseconds).".to_owned(),
            _ => "When the record last changed (UTC, milliseconds).".to_owned(),
        }),
        Origin::ForeignKey {
            relationship,
            target,
        } => Some(format!(
            "The id of the {target} this belongs to (relationship `{relationship}`)."
        )),
        Origin::Attribute(_) => None,
    };
    if let Some(d) = description {
        schema["description"] = json!(d);
    }
    schema
}

fn output_schema(f: &Field) -> Value {
    let mut schema = field_schema(f);
    if !f.writable {
        schema["readOnly"] = json!(true);
    }
    schema
}

fn input_schema(entry: &Entry, f: &Field) -> Value {
    let mut schema = field_schema(f);
    if f.sensitive {
        schema["writeOnly"] = json!(true);
        let note = "Sensitive: stored, never answered.";
        schema["description"] = json!(match schema["description"].as_str() {
            Some(d) => format!("{d} {note}"),
            None => note.to_owned(),
        });
    }
    if let Some(default) = entry
        .resource
        .attribute(&f.name)
        .and_then(|a| a.default.clone())
    {
        schema["default"] = default;
    }
    schema
}

/// `schema` without `null`, as [`nullable`] added it.
fn not_null(mut schema: Value) -> Value {
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::Array(types)) = schema.get("type").cloned() {
        let kept: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
        schema["type"] = match kept.as_slice() {
            [one] => one.clone(),
            _ => Value::Array(kept),
        };
    }
    schema
}

/// `schema` or `null`.
fn nullable(mut schema: Value) -> Value {
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    match schema.get("type").cloned() {
        Some(Value::String(t)) => schema["type"] = json!([t, "null"]),
        // No type: any value, `null` included.
        None => {}
        Some(_) => {}
    }
    schema
}

/// The fields an action's body may set.
fn accepted_fields<'e>(entry: &'e Entry, action: &Action) -> Vec<&'e Field> {
    entry
        .fields
        .iter()
        .filter(|f| match &f.origin {
            Origin::Managed => false,
            Origin::Attribute(_) => action.accept.contains(&f.name),
            Origin::ForeignKey { relationship, .. } => {
                action.accept.contains(relationship) || action.accept.contains(&f.name)
            }
        })
        .filter(|f| f.writable)
        .collect()
}

fn sets(action: &Action, field: &str) -> bool {
    action.set.iter().any(|(n, _)| n == field)
}

/// What an action does besides writing its body.
fn effects(action: &Action) -> String {
    let mut out = String::new();
    for (name, value) in &action.set {
        out.push_str(&format!(" Sets `{name}` to `{value}`."));
    }
    for (name, value) in &action.increment {
        out.push_str(&format!(" Adds `{value}` to `{name}`."));
    }
    out
}

/// A note when a create cannot succeed through this route: a required
/// field without a default that the body may not set.
fn unsettable(entry: &Entry, action: Option<&Action>) -> String {
    let missing: Vec<String> = entry
        .fields
        .iter()
        .filter(|f| f.required && !f.has_default && f.origin != Origin::Managed)
        .filter(|f| match action {
            None => !f.writable,
            Some(a) => {
                !accepted_fields(entry, a).iter().any(|g| g.name == f.name) && !sets(a, &f.name)
            }
        })
        .map(|f| format!("`{}`", f.name))
        .collect();
    if missing.is_empty() {
        String::new()
    } else {
        format!(
            " Always refused with 422: {} required but not settable here (Kumo itself \
             writes {}).",
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" }
        )
    }
}

fn read_rule(r: &Resource) -> String {
    match &r.policies.read {
        Some(p) => format!(" Readable when `{}`.", p.source),
        None => " Only admins may read them.".to_owned(),
    }
}

fn write_rule(policy: Option<&Policy>) -> String {
    match policy {
        // The built-in audit log, tokens and sessions: "allowed when
        // `false`" would read as a riddle.
        Some(p) if p.expr == kumo_core::policy::Expr::Bool(false) => {
            " Nobody may do this through the API, admins included (403).".to_owned()
        }
        Some(p) => format!(" Allowed when `{}`.", p.source),
        None => " Only admins may do this.".to_owned(),
    }
}

/// What an update or an update action answers: the read policy decides
/// whether the caller sees the changed record or only its id.
fn changed(name: &str) -> String {
    format!("The {name} as changed, or only its `id` when the caller may no longer read it.")
}

/// Whether the resource has a unique attribute or an identity, so a write
/// may conflict.
fn has_unique(entry: &Entry) -> bool {
    !entry.resource.identities.is_empty() || entry.resource.attributes.iter().any(|a| a.unique)
}

/// Whether deleting a `name` can be refused because a `restrict` reference,
/// directly or through cascades, still points at it.
fn still_referenced(catalog: &Catalog, name: &str, seen: &mut BTreeSet<String>) -> bool {
    if !seen.insert(name.to_owned()) {
        return false;
    }
    for other in catalog.entries() {
        for rel in &other.resource.relationships {
            if let RelationshipKind::BelongsTo {
                target, on_delete, ..
            } = &rel.kind
                && target == name
            {
                match on_delete {
                    OnDelete::Restrict => return true,
                    OnDelete::Cascade => {
                        if still_referenced(catalog, &other.resource.name, seen) {
                            return true;
                        }
                    }
                    OnDelete::Nullify => {}
                }
            }
        }
    }
    false
}

/// The `filter[…]` parameters: one per public field of the resource and of
/// the resources it belongs to (up to [`FILTER_DEPTH`] hops), each an object
/// of the operators its kind takes in `deepObject` style, so
/// `{"gte": 3}` is sent as `filter[polycount][gte]=3`.
fn filter_parameters(
    catalog: &Catalog,
    entry: &Entry,
    schemas: &mut Map<String, Value>,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut queue = vec![(String::new(), entry, 0)];
    while let Some((prefix, at, depth)) = queue.pop() {
        for f in at.public_fields() {
            let path = format!("{prefix}{}", f.name);
            let about = if prefix.is_empty() {
                format!("`{}`", f.name)
            } else {
                format!(
                    "`{}` of the related {} (`{}`)",
                    f.name,
                    at.resource.name,
                    prefix.trim_end_matches('.')
                )
            };
            out.push(json!({
                "name": format!("filter[{path}]"),
                "in": "query",
                "description": format!(
                    "Filters on {about}. May be given more than once (with the same or \
                     other operators): every one must hold."
                ),
                "style": "deepObject",
                "explode": true,
                "schema": schema_ref(&match &f.origin {
                    Origin::Attribute(AttrType::Enum { values }) => {
                        enum_operators_schema(&at.resource.name, &f.name, values, schemas)
                    }
                    _ => operators_schema(f.kind, schemas),
                })
            }));
        }
        if depth < FILTER_DEPTH {
            // Pushed in reverse so they come out in declaration order.
            for rel in at.resource.relationships.iter().rev() {
                if let RelationshipKind::BelongsTo { target, .. } = &rel.kind
                    && let Some(target) = catalog.get(target)
                {
                    queue.push((format!("{prefix}{}.", rel.name), target, depth + 1));
                }
            }
        }
    }
    out
}

/// The operators of an enum field: those of text, with `eq` and `ne` taking
/// only the enum's values (and `in` only them, which a comma-separated
/// string cannot say but the description does), as the server checks.
fn enum_operators_schema(
    resource: &str,
    field: &str,
    values: &[String],
    schemas: &mut Map<String, Value>,
) -> String {
    let name = format!("kumo.filter.{resource}.{field}");
    if schemas.contains_key(&name) {
        return name;
    }
    let text = operators_schema(Kind::Text, schemas);
    let mut schema = schemas[&text].clone();
    for op in ["eq", "ne"] {
        schema["properties"][op]["enum"] = json!(values);
    }
    schema["properties"]["in"]["description"] =
        json!("is one of the values, separated by commas; each must be one of the enum's");
    schema["description"] = json!(format!(
        "The operators a filter on `{field}` of {} {resource} takes, sent as \
         `filter[field][op]=value`; every one given must hold. `filter[field]=value` is \
         short for `filter[field][eq]=value`. `eq`, `ne` and `in` take only the enum's \
         values ({}); any other is refused with 400.",
        article(resource),
        values.join(", ")
    ));
    schemas.insert(name.clone(), schema);
    name
}

/// The name of the schema of the operators a field of `kind` takes (from
/// [`FilterOp::for_kind`]), added to `schemas` on first use.
fn operators_schema(kind: Kind, schemas: &mut Map<String, Value>) -> String {
    let key = match kind {
        Kind::Array(of) => format!("array_of_{}", of.as_str()),
        other => kumo_db::query::params::kind_name(other).to_owned(),
    };
    let holding = |kind: Kind| match kind {
        Kind::Text => "text",
        Kind::Integer => "integers",
        Kind::Float => "floats",
        Kind::Boolean => "booleans",
        Kind::Uuid => "UUIDs",
        Kind::Date => "dates",
        Kind::Datetime => "datetimes",
        Kind::Json => "JSON",
        Kind::Array(_) => "arrays",
    };
    let about = match kind {
        Kind::Array(of) => format!("arrays of {}", holding(Kind::of_scalar(of))),
        other => holding(other).to_owned(),
    };
    let name = format!("kumo.filter.{key}");
    if schemas.contains_key(&name) {
        return name;
    }
    let value = kind_schema(kind);
    let mut properties = Map::new();
    for op in FilterOp::for_kind(kind) {
        let op = FilterOp::parse(op).expect("for_kind names operators");
        let (mut schema, description) = match op {
            FilterOp::Eq => (value.clone(), "equals the value"),
            FilterOp::Ne => (
                value.clone(),
                "differs from the value (null differs from every value)",
            ),
            FilterOp::Lt => (value.clone(), "is less than the value"),
            FilterOp::Lte => (value.clone(), "is at most the value"),
            FilterOp::Gt => (value.clone(), "is greater than the value"),
            FilterOp::Gte => (value.clone(), "is at least the value"),
            FilterOp::In => (
                json!({ "type": "string" }),
                "is one of the values, separated by commas; each must be a value of the \
                 field's kind, else the request is refused with 400",
            ),
            FilterOp::Contains => match kind {
                Kind::Array(of) => (
                    kind_schema(Kind::of_scalar(of)),
                    "has the value as an element",
                ),
                _ => (value.clone(), "contains the text"),
            },
            FilterOp::StartsWith => (value.clone(), "starts with the text"),
            FilterOp::IsNil => (
                json!({ "type": "boolean" }),
                "`true`: is null; `false`: is not null",
            ),
        };
        schema["description"] = json!(description);
        properties.insert(op.as_str().to_owned(), schema);
    }
    schemas.insert(
        name.clone(),
        json!({
            "type": "object",
            "description": format!(
                "The operators a filter on a field holding {about} takes, sent as \
                 `filter[field][op]=value`; every one given must hold.{}{}",
                if properties.contains_key("eq") {
                    " `filter[field]=value` is short for `filter[field][eq]=value`."
                } else {
                    ""
                },
                if matches!(kind, Kind::Datetime | Kind::Array(ScalarType::Datetime)) {
                    " Datetimes are kept to the millisecond: a value with a nonzero digit \
                     past the milliseconds (`.1234Z`) is refused with 400."
                } else {
                    ""
                }
            ),
            "additionalProperties": false,
            "properties": properties
        }),
    );
    name
}
