//! The resource API over HTTP: routes `/api/<plural>…` to the query engine
//! and turns its results and errors into JSON responses in Kumo's one error
//! shape, `{"error":{"code","message","fields"}}`. Writes run in a task of
//! their own ([`detached`]), so a client that goes away never leaves one
//! committed but unannounced.

// Handlers return an early `Response` as their error, the axum idiom; it is
// built only on the failing path, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kumo_core::actor::Actor;
use kumo_core::resource::ActionKind;
use kumo_db::query::{AuditNote, Engine, Entry, QueryError, View, parse_list, parse_record_query};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::task::JoinError;
use tracing::Instrument;

use crate::AppState;

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Why a request's credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// 401: the credentials are not (or no longer) good.
    Unauthenticated(String),
    /// 403: an unsafe request authorised by the browser's session cookie
    /// but sent from another site (CSRF).
    CrossSite,
}

/// What [`Authenticate`] answers, later: checking a credential may read
/// the database (an API key, the signed-in user's record).
pub type AuthFuture = Pin<Box<dyn Future<Output = Result<Actor, AuthFailure>> + Send>>;

/// Turns a request (its method, headers and, for the audit log, the peer
/// in its extensions) into the actor it speaks for: the accounts layer's
/// [`crate::auth::Auth::authenticate`] when a sign-in strategy is enabled,
/// [`anonymous_only`] otherwise.
pub type Authenticate = Arc<dyn Fn(&Parts) -> AuthFuture + Send + Sync>;

/// Anonymous when there is no `Authorization` header; any credential is
/// refused, since no sign-in strategy is enabled to check it.
pub fn anonymous_only() -> Authenticate {
    Arc::new(|parts: &Parts| {
        let answer = if parts.headers.contains_key(header::AUTHORIZATION) {
            Err(AuthFailure::Unauthenticated(
                "no sign-in strategy is enabled on this server".into(),
            ))
        } else {
            Ok(Actor::anonymous())
        };
        Box::pin(std::future::ready(answer))
    })
}

/// The response to refused credentials.
pub(crate) fn refusal_response(failure: AuthFailure) -> Response {
    match failure {
        AuthFailure::Unauthenticated(message) => {
            let mut r = error_response(StatusCode::UNAUTHORIZED, "unauthenticated", &message, None);
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
        AuthFailure::CrossSite => error_response(
            StatusCode::FORBIDDEN,
            "cross_site_request",
            "a request signed in by the browser's cookie must come from this server's own pages",
            None,
        ),
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/{plural}",
            get(list)
                .post(create)
                .fallback(collection_method_not_allowed),
        )
        .route(
            "/api/{plural}/{id}",
            get(show)
                .patch(update)
                .delete(destroy)
                .post(create_action)
                .fallback(record_method_not_allowed),
        )
        .route(
            "/api/{plural}/{id}/{action}",
            axum::routing::post(record_action).fallback(record_method_not_allowed),
        )
}

/// An error response in the one shape every route uses. `fields` is always
/// there, an empty object when the error concerns no field or parameter, so
/// a client reads it without testing for it.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    fields: Option<&Value>,
) -> Response {
    let body = error_body(code, message, fields);
    (status, Json(json!({ "error": body }))).into_response()
}

/// The object under `"error"`: `code`, `message` and `fields`.
pub(crate) fn error_body(code: &str, message: &str, fields: Option<&Value>) -> Value {
    let fields = fields.cloned().unwrap_or_else(|| json!({}));
    json!({ "code": code, "message": message, "fields": fields })
}

/// What a 503 asks the client to wait before trying again: the database
/// was busy for a moment, not down.
pub(crate) const RETRY_AFTER_SECONDS: &str = "1";

struct ApiError(QueryError);

/// The response to an engine error, in the one error shape.
pub(crate) fn query_error_response(e: QueryError) -> Response {
    ApiError(e).into_response()
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match &e {
            QueryError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            QueryError::Unauthenticated => StatusCode::UNAUTHORIZED,
            QueryError::Forbidden(_) => StatusCode::FORBIDDEN,
            QueryError::NotFound => StatusCode::NOT_FOUND,
            QueryError::Conflict { .. } => StatusCode::CONFLICT,
            QueryError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            QueryError::Unavailable(cause) => {
                tracing::warn!(%cause, "database busy in an API request");
                StatusCode::SERVICE_UNAVAILABLE
            }
            QueryError::Database(err) => {
                tracing::error!(error = %err, "database error in an API request");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the database failed; the change, if any, was not made",
                    None,
                );
            }
        };
        let fields = e
            .fields()
            .filter(|f| !f.is_empty())
            .map(|f| serde_json::to_value(f).unwrap_or(Value::Null));
        let mut response = error_response(status, e.code(), &e.to_string(), fields.as_ref());
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

type Reply = Result<Response, Response>;

/// A route's path segments. One that is not UTF-8 once percent-decoded
/// names no resource, record or action (those are ASCII), so it answers 404
/// in the one error shape rather than axum's plain-text 400.
struct Segments<T>(T);

impl<S, T> FromRequestParts<S> for Segments<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(segments)) => Ok(Segments(segments)),
            Err(rejection) => {
                tracing::debug!(%rejection, "a path segment is not UTF-8");
                Err(error_response(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such route",
                    None,
                ))
            }
        }
    }
}

fn engine(state: &AppState) -> Result<&Engine, Response> {
    state
        .engine()
        .ok_or_else(|| error_response(StatusCode::NOT_FOUND, "not_found", "no such route", None))
}

fn resource<'e>(engine: &'e Engine, plural: &str) -> Result<&'e Entry, Response> {
    engine.catalog.by_plural(plural).ok_or_else(|| {
        error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no resource is served at /api/{plural}"),
            None,
        )
    })
}

/// The caller of a request, as the state's [`Authenticate`] hook finds it
/// from the headers. Credentials that do not check out are refused with 401
/// (and `WWW-Authenticate: Bearer`) before the handler runs, so a handler
/// that takes a `Caller` is only ever called with a known actor, which it
/// hands to the engine as it is (an API key stays an API key).
pub(crate) struct Caller(pub(crate) Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        (state.authenticate())(parts)
            .await
            .map(Caller)
            .map_err(refusal_response)
    }
}

/// `{"data": …}` around a record or a list of them.
#[derive(serde::Serialize)]
struct Data<T> {
    data: T,
}

/// A list's body: the page's records and its cursors.
#[derive(serde::Serialize)]
struct ListBody<'a> {
    data: &'a [kumo_db::query::Record],
    page: PageLinks<'a>,
}

#[derive(serde::Serialize)]
struct PageLinks<'a> {
    next: Option<&'a str>,
    prev: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<i64>,
}

/// Serialises `body` straight into the response, into a buffer sized for
/// it. (`Json(json!({…}))` first copied every record into a new `Value`,
/// then wrote it into a buffer that started at 128 bytes and grew.)
fn json_response(status: StatusCode, body: &impl serde::Serialize, size_hint: usize) -> Response {
    let mut bytes = Vec::with_capacity(size_hint);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        // A `Value` always serialises; this only guards the type.
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Bytes a serialised record usually takes, to size the buffer once.
const RECORD_SIZE_HINT: usize = 512;

fn data(status: StatusCode, value: Value) -> Response {
    json_response(status, &Data { data: value }, RECORD_SIZE_HINT)
}

fn fail(e: QueryError) -> Response {
    ApiError(e).into_response()
}

/// Reads a JSON body: 415 unless it is declared JSON, 413 when too large,
/// 400 with the position when it does not parse (`malformed_json`) or an
/// object repeats a key (`bad_request`). An empty body is `null` where
/// `empty_ok`.
pub(crate) async fn json_body(
    headers: &HeaderMap,
    body: Body,
    empty_ok: bool,
) -> Result<Value, Response> {
    let unsupported = |message: &str| {
        error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
            None,
        )
    };
    // Both are decided from the headers, before a byte of the body is read:
    // a large body of the wrong kind is a 415, not a 413.
    let encoded = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("identity"));
    if encoded {
        return Err(unsupported(
            "compressed bodies are not accepted: send plain JSON, without `Content-Encoding`",
        ));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    let not_json = "send the body as JSON with `Content-Type: application/json`";
    // A route that takes an empty body takes it without a content type.
    let limit = match (is_json, empty_ok) {
        (true, _) => BODY_LIMIT,
        (false, true) => 0,
        (false, false) => return Err(unsupported(not_json)),
    };
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        if is_json {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the body is larger than {BODY_LIMIT} bytes"),
                None,
            )
        } else {
            unsupported(not_json)
        }
    })?;
    if bytes.is_empty() && empty_ok {
        return Ok(Value::Null);
    }
    parse_strict(&bytes).map_err(|e| match e.classify() {
        // The only data error a `StrictValue` raises is a repeated key.
        serde_json::error::Category::Data => error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("the body is ambiguous: {e}"),
            None,
        ),
        _ => error_response(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            &format!("the body is not valid JSON: {e}"),
            None,
        ),
    })
}

/// Parses JSON as `serde_json::from_slice` does, except that an object
/// naming a key twice, at any depth, is an error (with its line and
/// column) rather than silently keeping the last value: a body that says
/// two things about one field must not be read as one of them.
fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Deserializes a `serde_json::Value`, refusing repeated object keys.
#[derive(Clone, Copy)]
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so this is always a number.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                // serde_json adds the position: just after the second key.
                return Err(serde::de::Error::custom(format!(
                    "the key `{key}` appears twice in one object"
                )));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// What every record route needs before it acts: the engine, the resource,
/// the caller, and the requested view (`include`, `fields`).
struct Call<'s> {
    engine: &'s Engine,
    entry: &'s Entry,
    actor: Actor,
    view: View,
}

fn call<'s>(
    state: &'s AppState,
    plural: &str,
    actor: Actor,
    query: Option<&str>,
) -> Result<Call<'s>, Response> {
    let engine = engine(state)?;
    let entry = resource(engine, plural)?;
    let view = parse_record_query(&engine.catalog, entry, query.unwrap_or("")).map_err(fail)?;
    Ok(Call {
        engine,
        entry,
        actor,
        view,
    })
}

async fn list(
    State(state): State<AppState>,
    Segments(plural): Segments<String>,
    RawQuery(query): RawQuery,
    Caller(actor): Caller,
) -> Reply {
    let engine = engine(&state)?;
    let entry = resource(engine, &plural)?;
    let req = parse_list(&engine.catalog, entry, query.as_deref().unwrap_or("")).map_err(fail)?;
    let page = engine.list(&actor, entry, &req).await.map_err(fail)?;
    let body = ListBody {
        data: &page.data,
        page: PageLinks {
            next: page.next.as_deref(),
            prev: page.prev.as_deref(),
            total: page.total,
        },
    };
    let size_hint = 256 + page.data.len() * RECORD_SIZE_HINT;
    Ok(json_response(StatusCode::OK, &body, size_hint))
}

async fn show(
    State(state): State<AppState>,
    Segments((plural, id)): Segments<(String, String)>,
    RawQuery(query): RawQuery,
    Caller(actor): Caller,
) -> Reply {
    let Call {
        engine,
        entry,
        actor,
        view,
    } = call(&state, &plural, actor, query.as_deref())?;
    let record = engine.get(&actor, entry, &id, &view).await.map_err(fail)?;
    Ok(data(StatusCode::OK, Value::Object(record)))
}

async fn create(
    State(state): State<AppState>,
    Segments(plural): Segments<String>,
    RawQuery(query): RawQuery,
    Caller(actor): Caller,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let Call {
        entry, actor, view, ..
    } = call(&state, &plural, actor, query.as_deref())?;
    if !entry.creatable() {
        return Err(not_creatable(entry));
    }
    let body = json_body(&headers, body, false).await?;
    let created = detached(&state, entry, actor, view, WriteCall::Create { body }).await?;
    Ok(data(StatusCode::CREATED, created))
}

async fn update(
    State(state): State<AppState>,
    Segments((plural, id)): Segments<(String, String)>,
    RawQuery(query): RawQuery,
    Caller(actor): Caller,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let Call {
        entry, actor, view, ..
    } = call(&state, &plural, actor, query.as_deref())?;
    let body = json_body(&headers, body, false).await?;
    let record = detached(&state, entry, actor, view, WriteCall::Update { id, body }).await?;
    Ok(data(StatusCode::OK, record))
}

async fn destroy(
    State(state): State<AppState>,
    Segments((plural, id)): Segments<(String, String)>,
    RawQuery(query): RawQuery,
    Caller(actor): Caller,
) -> Reply {
    let Call {
        entry, actor, view, ..
    } = call(&state, &plural, actor, query.as_deref())?;
    let record = detached(&state, entry, actor, view, WriteCall::Destroy { id }).await?;
    Ok(data(StatusCode::OK, record))
}

/// `POST /api/<plural>/<name>`: a named action of type create.
async fn create_action(
    State(state): State<AppState>,
    Segments((plural, name)): Segments<(String, String)>,
    RawQuery(query): RawQuery,
    Caller(actor): Caller,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let call = call(&state, &plural, actor, query.as_deref())?;
    action(&state, call, None, name, headers, body).await
}

/// `POST /api/<plural>/<id>/<name>`: a named update or destroy action.
async fn record_action(
    State(state): State<AppState>,
    Segments((plural, id, name)): Segments<(String, String, String)>,
    RawQuery(query): RawQuery,
    Caller(actor): Caller,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let call = call(&state, &plural, actor, query.as_deref())?;
    action(&state, call, Some(id), name, headers, body).await
}

/// Runs the named action `name`: a create action without a record `id`
/// (201), an update or destroy action on the record `id` (200). An action
/// of the other sort is not found on this route.
async fn action(
    state: &AppState,
    Call {
        entry, actor, view, ..
    }: Call<'_>,
    id: Option<String>,
    name: String,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let creates = id.is_none();
    let action = entry
        .resource
        .actions
        .iter()
        .find(|a| a.name == name && (a.kind == ActionKind::Create) == creates)
        .ok_or_else(|| no_action(entry, &name))?;
    let body = json_body(&headers, body, true).await?;
    let call = WriteCall::Action {
        name: action.name.clone(),
        id,
        body,
    };
    let answer = detached(state, entry, actor, view, call).await?;
    let status = if creates {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(data(status, answer))
}

/// Which kind of write a body is for, as [`account_fields`] checks it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Create,
    Update,
    Action,
}

/// What the generic API must hold to on Kumo's own account resources, on
/// top of what their files declare:
///
/// - `user.email` in its one spelling (trimmed, lower case), as the auth
///   layer and `kumo user create` store it, so its unique constraint holds
///   case-insensitively whichever way an account was made or changed, and
///   an account made here signs in with its address however it is typed.
///   One that cannot be mailed is a 422 naming `email` (`[i].email` in a
///   batch).
/// - `revoked_at` of a `session` or an `api_key` only ever set, and set to
///   the server's time whatever time the body gives: an admin signs a
///   session out or stops a key by setting it (picked up like any
///   revocation), but a revoked one is never brought back by clearing it,
///   since it may have been revoked for a stolen token, and a revocation
///   is never backdated past the window in which every node reloads it.
///
/// (That a session, an API key or an external identity stays with its
/// account is declared in their files: `user` is `writable = false`.)
fn account_fields(
    state: &AppState,
    entry: &Entry,
    body: &mut Value,
    write: Write,
) -> Result<(), QueryError> {
    if !entry.resource.system {
        return Ok(());
    }
    let now = state
        .auth()
        .map_or_else(OffsetDateTime::now_utc, |auth| auth.clock.now());
    let mut fields = kumo_db::query::FieldErrors::new();
    let batch = matches!(body, Value::Array(_));
    let items: Vec<&mut Value> = match body {
        Value::Array(items) => items.iter_mut().collect(),
        other => vec![other],
    };
    for (i, item) in items.into_iter().enumerate() {
        let key = |field: &str| match batch {
            true => format!("[{i}].{field}"),
            false => field.to_owned(),
        };
        match entry.resource.name.as_str() {
            "user" => {
                if let Some(Value::String(email)) = item.get_mut("email") {
                    match kumo_auth::email::normalize(email) {
                        Ok(normal) => *email = normal,
                        Err(why) => {
                            let why = match why {
                                "is required" => "is not an email address (it is blank)",
                                why => why,
                            };
                            fields.insert(key("email"), vec![why.to_owned()]);
                        }
                    }
                }
            }
            _ if write == Write::Update && only_ever_set(entry, "revoked_at") => {
                match item.get_mut("revoked_at") {
                    Some(Value::Null) => {
                        fields.insert(
                            key("revoked_at"),
                            vec!["cannot be cleared: what was revoked stays revoked".into()],
                        );
                    }
                    Some(revoked_at) => *revoked_at = json!(crate::auth::clock::stamp(now)),
                    None => {}
                }
            }
            _ => {}
        }
    }
    match fields.is_empty() {
        true => Ok(()),
        false => Err(QueryError::invalid(fields)),
    }
}

/// Whether `field` of `entry` may be set but never cleared through the
/// API: a session's or an API key's `revoked_at` ([`account_fields`]).
/// The OpenAPI description says so too.
pub(crate) fn only_ever_set(entry: &Entry, field: &str) -> bool {
    entry.resource.system
        && matches!(entry.resource.name.as_str(), "session" | "api_key")
        && field == "revoked_at"
}

/// A collection whose records only Kumo makes (sessions, tokens) takes no
/// POST: 405, as for any route without the method.
fn not_creatable(entry: &Entry) -> Response {
    collection_405(
        entry,
        &format!(
            "{} are made by Kumo itself, not through the API",
            entry.resource.plural
        ),
    )
}

/// Another method on `/api/<plural>`. axum's own 405 would offer POST on
/// every collection, also where there is no create (see [`not_creatable`]).
async fn collection_method_not_allowed(
    State(state): State<AppState>,
    Segments(plural): Segments<String>,
) -> Response {
    match engine(&state).and_then(|engine| resource(engine, &plural)) {
        Ok(entry) => collection_405(entry, "this route does not take that method"),
        Err(response) => response,
    }
}

/// A method a record or action route does not take: 404 when the path
/// names no resource (as every other method would answer), else 405.
async fn record_method_not_allowed(
    State(state): State<AppState>,
    Segments(segments): Segments<Vec<String>>,
) -> Response {
    let plural = segments.first().map_or("", String::as_str);
    if let Err(response) = engine(&state).and_then(|engine| resource(engine, plural)) {
        return response;
    }
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
        None,
    );
    let allow = if segments.len() == 3 {
        "POST"
    } else {
        "GET,HEAD,PATCH,DELETE,POST"
    };
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

fn collection_405(entry: &Entry, message: &str) -> Response {
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
        None,
    );
    let allow = if entry.creatable() {
        "GET,HEAD,POST"
    } else {
        "GET,HEAD"
    };
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

fn no_action(entry: &Entry, name: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("`{}` has no action `{name}` here", entry.resource.name),
        None,
    )
}

/// A write a handler asks for, owned, so it can run in a task of its own.
pub(crate) enum WriteCall {
    Create {
        body: Value,
    },
    Update {
        id: String,
        body: Value,
    },
    Destroy {
        id: String,
    },
    /// A named action, already found on the resource: a create action has
    /// no `id`.
    Action {
        name: String,
        id: Option<String>,
        body: Value,
    },
}

/// [`write_as_api`], with a refusal or a crash as the API's answer.
async fn detached(
    state: &AppState,
    entry: &Entry,
    actor: Actor,
    view: View,
    call: WriteCall,
) -> Result<Value, Response> {
    write_as_api(state, entry, actor, view, call, None)
        .await
        .map_err(failure_response)
}

/// A write that was not made, as the API answers it.
fn failure_response(failure: WriteFailure) -> Response {
    match failure {
        WriteFailure::Refused(e) => fail(e),
        WriteFailure::Crashed => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed during this write",
            None,
        ),
    }
}

async fn write(
    engine: &Engine,
    entry: &Entry,
    actor: &Actor,
    view: &View,
    call: WriteCall,
    audit: Option<&AuditNote>,
) -> Result<Value, QueryError> {
    let writes = engine.writes(audit);
    match call {
        WriteCall::Create { body } => writes.create(actor, entry, &body, view).await,
        WriteCall::Update { id, body } => writes
            .update(actor, entry, &id, &body, view)
            .await
            .map(Value::Object),
        WriteCall::Destroy { id } => writes
            .destroy(actor, entry, &id, view)
            .await
            .map(Value::Object),
        WriteCall::Action { name, id, body } => {
            let creates = id.is_none();
            let action = entry
                .resource
                .actions
                .iter()
                .find(|a| a.name == name && (a.kind == ActionKind::Create) == creates)
                .ok_or(QueryError::NotFound)?;
            writes
                .action(actor, entry, action, id.as_deref(), &body, view)
                .await
        }
    }
}

/// Why a write the admin asked for was not made.
pub(crate) enum WriteFailure {
    /// The engine (or the account rules) refused it: show why.
    Refused(QueryError),
    /// Its task panicked or the runtime shut down under it: a server fault.
    Crashed,
}

/// A write as the API makes it, for its routes and the admin alike: the
/// account rules ([`account_fields`]), then the engine operation as
/// `actor`, run to its end in a task of its own. axum drops a handler's
/// future when the client disconnects; a write dropped between its COMMIT
/// and its announcement would be made but never announced to the realtime
/// layer. The task is not dropped with the handler, so a write once begun
/// commits or rolls back, and announces what it committed, whoever is
/// still waiting. A panic in the write is [`WriteFailure::Crashed`],
/// logged (a transaction it leaves unfinished is dropped, which rolls it
/// back). With an `audit` note (the admin's changes), each record written
/// gets its audit row in the write's own transaction ([`AuditNote`]).
pub(crate) async fn write_as_api(
    state: &AppState,
    entry: &Entry,
    actor: Actor,
    view: View,
    mut call: WriteCall,
    audit: Option<AuditNote>,
) -> Result<Value, WriteFailure> {
    let rules = match &mut call {
        WriteCall::Create { body } => account_fields(state, entry, body, Write::Create),
        WriteCall::Update { body, .. } => account_fields(state, entry, body, Write::Update),
        WriteCall::Action { body, .. } => account_fields(state, entry, body, Write::Action),
        WriteCall::Destroy { .. } => Ok(()),
    };
    rules.map_err(WriteFailure::Refused)?;
    let state = state.clone();
    let resource = entry.resource.name.clone();
    let task = tokio::spawn(crate::log::labelled(
        async move {
            // The caller found both in this same state, which never changes.
            let engine = state.engine().ok_or(QueryError::NotFound)?;
            let entry = engine.catalog.get(&resource).ok_or(QueryError::NotFound)?;
            write(engine, entry, &actor, &view, call, audit.as_ref()).await
        }
        // What the write logs stays under the request's span and label.
        .instrument(tracing::Span::current()),
    ));
    joined(task.await)
}

/// The answer of a write's task: its own result, or
/// [`WriteFailure::Crashed`] when it panicked (or the runtime shut down
/// under it).
fn joined<T>(result: Result<Result<T, QueryError>, JoinError>) -> Result<T, WriteFailure> {
    match result {
        Ok(answer) => answer.map_err(WriteFailure::Refused),
        Err(e) => {
            tracing::error!(error = %e, "a write's task failed");
            Err(WriteFailure::Crashed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_panics_answers_500_in_the_error_shape() {
        let task = tokio::spawn(async {
            if true {
                panic!("a bug in a write");
            }
            Ok::<Value, QueryError>(Value::Null)
        });
        let response = failure_response(joined(task.await).expect_err("a panic is an error"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(body["error"]["code"], "internal");
    }
}
