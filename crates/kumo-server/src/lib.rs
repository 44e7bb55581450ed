//! Kumo's HTTP server. The app is a value: [`app`] builds the router from
//! an [`AppState`], so tests drive it directly or on a real socket.
//!
//! Routes: `GET /health` (the process is up), `GET /ready` (the database
//! answers and its schema is current), the resource API under `/api`
//! ([`api`]), and its description: `GET /openapi.json` and the viewer at
//! `GET /docs` ([`openapi`]), and accounts and sign-in under `/auth` with
//! the development mailbox at `/dev/mailbox` ([`auth`]). Every route is
//! rate-limited per client
//! ([`ratelimit`]). Unknown routes answer a JSON 404 in the one error shape
//! every Kumo route uses.

pub mod admin;
pub mod api;
pub mod auth;
pub mod log;
pub mod openapi;
pub mod ratelimit;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{MatchedPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kumo_core::actor::Actor;
use kumo_core::resource::Schema;
use kumo_db::db::Database;
use kumo_db::files::Migration;
use kumo_db::query::{CursorKey, Engine};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// What every request can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// The migrations this build of the project expects to be applied.
    migrations: Vec<Migration>,
    /// The resource API; `None` serves only health and readiness.
    engine: Option<Arc<Engine>>,
    /// Accounts and sign-in; `None` when no strategy is enabled.
    auth: Option<Arc<auth::Auth>>,
    authenticate: api::Authenticate,
    /// `GET /openapi.json`, generated once from the resources.
    openapi: openapi::Document,
    /// `None`: no limit (`[server.rate_limit] enabled = false`).
    rate_limit: Option<Arc<ratelimit::Limiter>>,
}

impl AppState {
    pub fn new(db: Database, migrations: Vec<Migration>) -> Self {
        AppState {
            inner: Arc::new(Inner {
                db,
                migrations,
                engine: None,
                auth: None,
                authenticate: api::anonymous_only(),
                openapi: openapi::Document::new(None, None),
                rate_limit: None,
            }),
        }
    }

    /// Serves the resources of `schema` under `/api`. `secret` signs page
    /// cursors; nodes behind one load balancer must share it.
    pub fn with_api(
        db: Database,
        migrations: Vec<Migration>,
        schema: Schema,
        secret: &[u8],
    ) -> Self {
        let engine = Engine::new(db.clone(), schema, CursorKey::new(secret));
        AppState {
            inner: Arc::new(Inner {
                db,
                migrations,
                openapi: openapi::Document::new(Some(&engine.catalog), None),
                engine: Some(Arc::new(engine)),
                auth: None,
                authenticate: api::anonymous_only(),
                rate_limit: None,
            }),
        }
    }

    /// Replaces how requests are turned into actors.
    pub fn with_authenticate(self, authenticate: api::Authenticate) -> Self {
        self.rebuild(|inner| Inner {
            authenticate,
            ..inner
        })
    }

    /// Signs requests in with `auth`: its routes are served, and the
    /// resource API's actor comes from its access tokens, API keys and
    /// browser cookies.
    pub fn with_auth(self, auth: Arc<auth::Auth>) -> Self {
        let checker = auth.clone();
        let authenticate: api::Authenticate =
            Arc::new(
                move |parts| match checker.credential(&parts.method, &parts.headers) {
                    Ok(auth::credentials::Credential::None) => {
                        Box::pin(std::future::ready(Ok(Actor::anonymous())))
                    }
                    Ok(credential) => {
                        let auth = checker.clone();
                        let device = auth.device_of(parts);
                        Box::pin(async move { auth.actor(credential, &device).await })
                    }
                    Err(refused) => Box::pin(std::future::ready(Err(refused))),
                },
            );
        self.rebuild(|inner| Inner {
            // The document now describes the `/auth` routes the settings
            // enable, and how a caller signs in.
            openapi: openapi::Document::new(
                inner.engine.as_ref().map(|e| &e.catalog),
                Some(&auth.settings),
            ),
            auth: Some(auth),
            authenticate,
            ..inner
        })
    }

    /// Limits how many requests each client may make (429 beyond it).
    pub fn with_rate_limit(self, limit: Option<&ratelimit::RateLimit>) -> Self {
        let rate_limit = limit.map(|l| Arc::new(ratelimit::Limiter::new(l)));
        self.rebuild(|inner| Inner {
            rate_limit,
            ..inner
        })
    }

    fn rebuild(self, change: impl FnOnce(Inner) -> Inner) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| {
            panic!("the state is configured while it is built, before it is shared")
        });
        AppState {
            inner: Arc::new(change(inner)),
        }
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// The migrations this build expects to be applied.
    pub(crate) fn migrations(&self) -> &[Migration] {
        &self.inner.migrations
    }

    pub fn engine(&self) -> Option<&Engine> {
        self.inner.engine.as_deref()
    }

    /// The engine, to share with the auth layer.
    pub fn shared_engine(&self) -> Option<Arc<Engine>> {
        self.inner.engine.clone()
    }

    pub fn auth(&self) -> Option<&Arc<auth::Auth>> {
        self.inner.auth.as_ref()
    }

    pub(crate) fn authenticate(&self) -> &api::Authenticate {
        &self.inner.authenticate
    }

    pub(crate) fn openapi(&self) -> &openapi::Document {
        &self.inner.openapi
    }
}

pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(api::routes())
        .merge(auth::routes::routes())
        .merge(admin::routes(state.clone()))
        .merge(openapi::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    if let Some(limiter) = &state.inner.rate_limit {
        router = router.layer(axum::middleware::from_fn_with_state(
            limiter.clone(),
            ratelimit::enforce,
        ));
    }
    router
        .layer(CatchPanicLayer::custom(panicked as fn(_) -> Response))
        .layer(request_log())
        .layer(axum::middleware::from_fn(log::label))
        .with_state(state)
}

/// A bug that panicked in a handler: the client gets a 500 in the one
/// error shape rather than a dropped connection, and the panic is logged.
/// (Writes run in tasks of their own, which turn a panic into the same
/// answer after rolling back.)
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    api::error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed on this request",
        None,
    )
}

/// Each request's span: its method and the route it matched, the path
/// template (`/api/{plural}/{id}`), never the URI. A query string holds
/// filter values (emails, names) and a path holds ids, and neither belongs
/// in a log; headers (credentials) are left out too. The response event
/// adds the status and latency (`tower_http`'s defaults, at DEBUG).
/// (At the default filter the span is off; the warnings and errors a
/// request logs name it through [`log`].)
fn request_log() -> TraceLayer<
    tower_http::trace::HttpMakeClassifier,
    fn(&axum::http::Request<axum::body::Body>) -> tracing::Span,
> {
    TraceLayer::new_for_http().make_span_with(request_span as fn(&_) -> _)
}

fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    // An unknown route (the 404 fallback) matched no template.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<no route>", MatchedPath::as_str);
    tracing::debug_span!("request", method = %request.method(), route = %route)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer's address is what the rate limit counts requests against.
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Response {
    if let Err(e) = state.db().ping().await {
        tracing::warn!(error = %e, "readiness: database does not answer");
        return not_ready("database_unavailable", "the database does not answer");
    }
    match kumo_db::runner::status(state.db(), &state.inner.migrations).await {
        Ok(status) if status.is_current() => Json(json!({ "status": "ready" })).into_response(),
        Ok(status) => {
            let mut reasons = Vec::new();
            if !status.pending.is_empty() {
                reasons.push(format!(
                    "{} migration(s) not applied: run `kumo migrate`",
                    status.pending.len()
                ));
            }
            if !status.missing.is_empty() || !status.edited.is_empty() {
                reasons.push("the database's migrations differ from migrations/".to_string());
            }
            not_ready("schema_not_current", &reasons.join("; "))
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot read migration status");
            not_ready("database_unavailable", "cannot read the migration status")
        }
    }
}

fn not_ready(code: &str, message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "status": "not_ready",
            "error": api::error_body(code, message, None)
        })),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    api::error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
        None,
    )
}

async fn not_found() -> Response {
    api::error_response(StatusCode::NOT_FOUND, "not_found", "no such route", None)
}
