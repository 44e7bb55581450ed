//! The admin web UI at `/admin`: server-rendered pages (minijinja
//! templates compiled into the binary) with htmx, vendored in the binary
//! too (`assets/`). No CDN and no Node at run time.
//!
//! - Who: a browser signed in through the auth layer (its session cookie)
//!   whose user is an `admin` or a `coordinator`. Signed out, a page
//!   redirects to `/admin/sign_in`; anyone else gets a 403 page.
//! - Reads and writes go through the resource engine as that user, so the
//!   resource files' policies decide what the admin shows and may change,
//!   exactly as for the API.
//! - Every state-changing request carries a CSRF token ([`csrf`]); every
//!   answer carries a Content-Security-Policy without `unsafe-inline`
//!   (`frame-ancestors 'none'`), and pages are not cached.

// Checks return an early `Response` as their error, the axum idiom; it is
// built only on the failing path, so its size costs nothing.
#![allow(clippy::result_large_err)]

pub(crate) mod csrf;
mod forms;
mod listing;
mod sign_in;
mod users;
mod views;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use kumo_core::actor::{Actor, Role};
use minijinja::Environment;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Auth;

/// The admin's routes. Every request that is not a GET (or HEAD) passes
/// [`csrf_guard`] first, so a route added later cannot forget the token.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin", get(views::dashboard))
        .route("/admin/sign_in", get(sign_in::page))
        .route("/admin/sign_in/link", post(sign_in::link))
        .route("/admin/sign_in/code", post(sign_in::code))
        .route("/admin/sign_in/poll", post(sign_in::poll))
        .route("/admin/sign_in/password", post(sign_in::password))
        .route("/admin/sign_out", post(sign_in::sign_out))
        .route("/admin/assets/{name}", get(asset))
        .route("/admin/r/{plural}", get(views::list).post(forms::create))
        .route("/admin/r/{plural}/new", get(forms::new_form))
        .route("/admin/r/{plural}/export", get(listing::export))
        .route("/admin/r/{plural}/choices", get(forms::choices_page))
        .route(
            "/admin/r/{plural}/actions/{name}",
            post(forms::run_create_action),
        )
        .route(
            "/admin/r/{plural}/{id}",
            get(views::record).post(forms::update),
        )
        .route("/admin/r/{plural}/{id}/edit", get(forms::edit_form))
        .route(
            "/admin/r/{plural}/{id}/delete",
            get(forms::delete_form).post(forms::destroy),
        )
        .route(
            "/admin/r/{plural}/{id}/actions/{name}",
            post(forms::run_action),
        )
        .route("/admin/users/{id}/lock", post(users::lock))
        .route("/admin/users/{id}/unlock", post(users::unlock))
        .route("/admin/users/{id}/confirm", post(users::confirm))
        .route("/admin/users/{id}/role", post(users::set_role))
        .route("/admin/users/{id}/send_link", post(users::send_link))
        .route(
            "/admin/users/{id}/sessions/{session}/revoke",
            post(users::revoke_session),
        )
        // The admin answers its own unknown addresses with a page, not the
        // API's JSON 404.
        .route("/admin/", get(|| async { Redirect::permanent("/admin") }))
        .route("/admin/{*rest}", any(no_such_page))
        .route_layer(middleware::from_fn_with_state(state.clone(), csrf_guard))
        .layer(middleware::from_fn_with_state(state, security_headers))
}

async fn no_such_page() -> Response {
    plain_page(
        StatusCode::NOT_FOUND,
        "No such page",
        "The admin has no page at this address.",
    )
}

/// The largest form body an admin request sends.
const FORM_LIMIT: usize = 1024 * 1024;

/// Refuses (403) any state-changing admin request without this browser's
/// CSRF token, in its `X-CSRF-Token` header or its form's `_csrf` field,
/// before its handler runs: the one place the token is checked.
async fn csrf_guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    use axum::extract::FromRequestParts;
    use axum::http::Method;
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return plain_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too large",
            "This form is larger than the admin takes (1 MiB).",
        );
    };
    let page = match Page::from_request_parts(&mut parts, &state).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let field = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == csrf::FIELD)
        .map(|(_, v)| v.into_owned());
    if let Err(refused) = page.check_csrf(&parts.headers, field.as_deref()) {
        return refused;
    }
    // The handler takes this page as it is, rather than authenticating the
    // request a second time.
    parts.extensions.insert(page);
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The Content-Security-Policy of every admin answer: only this server's
/// own scripts, styles and requests; no inline script or style (the
/// templates have none); never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How long a browser that reached the admin over HTTPS keeps to HTTPS
/// for this host (a year; `Strict-Transport-Security`).
const HSTS: &str = "max-age=31536000";

async fn security_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let asset = request.uri().path().starts_with("/admin/assets/");
    let mut response = next.run(request).await;
    // axum refuses a path it cannot decode (a segment that is not UTF-8)
    // before any handler runs, in plain text; the admin's pages are HTML,
    // so a plain-text 400 can only be that.
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if response.status() == StatusCode::BAD_REQUEST && plain_text {
        response = plain_page(
            StatusCode::BAD_REQUEST,
            "Not an admin address",
            "A part of this address is not valid text, so the admin cannot read it.",
        );
    }
    let headers = response.headers_mut();
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if state.auth().is_some_and(|auth| secure(auth)) {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    if !asset {
        // Pages show records and carry CSRF tokens: never from a cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

// ---- assets -------------------------------------------------------------------

const HTMX: &[u8] = include_bytes!("assets/htmx.min.js");
/// The same file gzipped, as htmx ships it: a third of the bytes.
const HTMX_GZ: &[u8] = include_bytes!("assets/htmx.min.js.gz");
const CSS: &[u8] = include_bytes!("assets/admin.css");

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let gzip_ok = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let (body, kind, gzipped): (&'static [u8], &str, bool) = match name.as_str() {
        "htmx.min.js" if gzip_ok => (HTMX_GZ, "text/javascript; charset=utf-8", true),
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8", false),
        "admin.css" => (CSS, "text/css; charset=utf-8", false),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(kind).expect("ascii"),
    );
    // The files change only with the binary; a day is short enough for an
    // upgrade to show.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

// ---- templates ----------------------------------------------------------------

/// Every template, compiled in. Values are HTML-escaped (the names end in
/// `.html`).
const TEMPLATES: [(&str, &str); 10] = [
    ("layout.html", include_str!("templates/layout.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("link_sent.html", include_str!("templates/link_sent.html")),
    ("message.html", include_str!("templates/message.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("list.html", include_str!("templates/list.html")),
    ("record.html", include_str!("templates/record.html")),
    ("form.html", include_str!("templates/form.html")),
    ("field.html", include_str!("templates/field.html")),
    (
        "confirm_delete.html",
        include_str!("templates/confirm_delete.html"),
    ),
];

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A misspelt value fails in the tests that render every page, not
        // as an empty cell in production.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("admin template {name}: {e}"));
        }
        env
    })
}

// ---- the request's context ------------------------------------------------------

/// What every admin handler starts from: the auth layer, who is asking,
/// and this browser's CSRF value (made now when it has none).
#[derive(Clone)]
pub(crate) struct Page {
    auth: Arc<Auth>,
    state: AppState,
    actor: Actor,
    session: Option<Uuid>,
    csrf_value: String,
    /// A new CSRF cookie to set with the answer.
    set_csrf: Option<HeaderValue>,
    /// Where the request comes from, for the audit log.
    device: crate::auth::session::Device,
    /// This page's address when it is one to come back to after signing
    /// in (a GET under `/admin`).
    here: Option<String>,
    /// The page the browser asked for before it was sent to sign in
    /// ([`RETURN_COOKIE`]), checked to be an admin address.
    wanted: Option<String>,
}

/// The cookie that remembers, for 15 minutes, which admin page a
/// signed-out browser asked for, so signing in leads back to it.
const RETURN_COOKIE: &str = "kumo_admin_return";

/// `path` when it is an admin page to return to: under `/admin`, and no
/// way to another host (`//`, a backslash).
fn admin_address(path: &str) -> Option<String> {
    let inside = path == "/admin" || path.starts_with("/admin/") || path.starts_with("/admin?");
    let elsewhere = path.contains("//") || path.contains('\\');
    (inside && !elsewhere && !path.starts_with("/admin/sign_")).then(|| path.to_owned())
}

/// The page the browser's [`RETURN_COOKIE`] names, if it is one.
fn wanted_page(headers: &HeaderMap) -> Option<String> {
    let value = crate::auth::credentials::cookie(headers, |name| name == RETURN_COOKIE)?;
    let decoded: String = form_urlencoded::parse(format!("p={value}").as_bytes())
        .next()?
        .1
        .into_owned();
    admin_address(&decoded)
}

/// Who may use the admin, once signed in: an admin or a coordinator. As
/// an extractor it is the role guard: a handler that takes it answers a
/// signed-out browser with the sign-in page and anyone else with a 403
/// page before it runs, so a route's signature says who may call it.
pub(crate) struct Staff {
    pub(crate) actor: Actor,
}

impl axum::extract::FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Staff, Response> {
        Page::from_request_parts(parts, state).await?.staff()
    }
}

impl axum::extract::FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Page, Response> {
        // The CSRF guard made it already for a request that changes things.
        if let Some(page) = parts.extensions.get::<Page>() {
            return Ok(page.clone());
        }
        let Some(auth) = state.auth().cloned() else {
            return Err(plain_page(
                StatusCode::NOT_FOUND,
                "The admin needs a sign-in strategy",
                "Enable one with `kumo auth add-strategy magic_link` (or `password`), run `kumo codegen` and `kumo migrate`, and restart.",
            ));
        };
        // Only the browser's session cookie signs in to the admin: an
        // access token or an API key (for games, servers and tools) does
        // not open it. A cookie that no longer checks out (signed out,
        // expired) is a signed-out browser here, sent to the sign-in page,
        // not a 401.
        let by_cookie = matches!(
            auth.credential(&parts.method, &parts.headers),
            Ok(crate::auth::credentials::Credential::Cookie(_))
        );
        let actor = match by_cookie {
            true => (state.authenticate())(parts)
                .await
                .unwrap_or_else(|_| Actor::anonymous()),
            false => Actor::anonymous(),
        };
        let session = auth.current_session(&parts.headers);
        let here = (parts.method == axum::http::Method::GET)
            .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
            .flatten()
            .and_then(|p| admin_address(&p));
        let wanted = wanted_page(&parts.headers);
        let (csrf_value, set_csrf) = match csrf::cookie_value(&parts.headers, secure(&auth)) {
            Some(value) => (value, None),
            None => {
                let (value, cookie) = csrf::new_cookie(secure(&auth));
                (value, Some(cookie))
            }
        };
        let device = auth.device_of(parts);
        let page = Page {
            device,
            auth,
            state: state.clone(),
            actor,
            session,
            csrf_value,
            set_csrf,
            here,
            wanted,
        };
        // Kept for the request's other extractors (`Staff` and `Page` in
        // one handler authenticate once).
        parts.extensions.insert(page.clone());
        Ok(page)
    }
}

/// Whether the admin is served over HTTPS (its cookies are then `Secure`).
fn secure(auth: &Auth) -> bool {
    auth.settings.public_url.starts_with("https://")
}

impl Page {
    /// The token this browser's forms carry.
    fn csrf_token(&self) -> String {
        self.auth.admin_csrf.token(&self.csrf_value, self.session)
    }

    /// 403 unless the request carries this browser's token, in its
    /// `X-CSRF-Token` header or its `_csrf` form field.
    fn check_csrf(&self, headers: &HeaderMap, form_field: Option<&str>) -> Result<(), Response> {
        let presented = csrf::presented(headers, form_field).unwrap_or_default();
        let fresh_cookie = self.set_csrf.is_some();
        if fresh_cookie
            || !self
                .auth
                .admin_csrf
                .check(&self.csrf_value, self.session, presented)
        {
            return Err(self.message(
                StatusCode::FORBIDDEN,
                "Request refused",
                "This form is out of date or did not come from this admin (its security token is missing or wrong). Reload the page and try again.",
                None,
            ));
        }
        Ok(())
    }

    /// The signed-in admin or coordinator; signed out, a redirect to the
    /// sign-in page; anyone else, a 403 page.
    fn staff(&self) -> Result<Staff, Response> {
        match self.actor.role() {
            None => {
                let mut response = Redirect::to("/admin/sign_in").into_response();
                if let Some(here) = &self.here {
                    let value: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
                    self.set_return_cookie(&mut response, &value, 900);
                }
                Err(self.with_cookie(response))
            }
            Some(Role::Admin | Role::Coordinator) => Ok(Staff {
                actor: self.actor.clone(),
            }),
            Some(Role::User) => Err(self.message(
                StatusCode::FORBIDDEN,
                "Not for this account",
                "The admin is for the game's admins and coordinators. Ask an admin to give your account a role if you need it.",
                None,
            )),
        }
    }

    /// `template` rendered with `values` and the layout's own values.
    fn render(
        &self,
        status: StatusCode,
        template: &str,
        page: &str,
        title: &str,
        values: Value,
    ) -> Response {
        let mut context = json!({
            "app": self.auth.settings.app_name,
            "title": title,
            "page": page,
            "csrf": self.csrf_token(),
            // JSON for htmx's attribute, made here rather than spliced
            // into the template (the template escapes it as any value).
            "hx_headers": json!({ "X-CSRF-Token": self.csrf_token() }).to_string(),
            "signed_in": false,
            // Anyone signed in can sign out, a player refused included.
            "can_sign_out": self.actor.role().is_some(),
            "nav": [],
            "mailbox": self.auth.has_dev_mailbox(),
            "who": "",
            "role": "",
        });
        if let Some(role) = self.actor.role().filter(|r| *r != Role::User) {
            context["signed_in"] = json!(true);
            context["role"] = json!(role.as_str());
            context["who"] = self
                .actor
                .record()
                .and_then(|r| r.get("email"))
                .cloned()
                .unwrap_or(Value::Null);
            context["nav"] = json!(views::navigation(&self.state, &self.actor));
        }
        if let (Value::Object(context), Value::Object(values)) = (&mut context, values) {
            context.extend(values);
        }
        let html = templates()
            .get_template(template)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&context))));
        let response = match html {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, template, "an admin template failed");
                plain_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "This page could not be shown; the server's log says why.",
                )
            }
        };
        self.with_cookie(response)
    }

    /// A page saying `message`, with a link back.
    fn message(
        &self,
        status: StatusCode,
        title: &str,
        message: &str,
        back: Option<&str>,
    ) -> Response {
        self.render(
            status,
            "message.html",
            "",
            title,
            json!({ "message": message, "status": status.as_u16(), "back": back }),
        )
    }

    /// `response` with this browser's new CSRF cookie, if it was given one.
    /// Where signing in leads: the page asked for before, or the dashboard.
    fn after_sign_in(&self) -> &str {
        self.wanted.as_deref().unwrap_or("/admin")
    }

    /// Sets (or, with `max_age` 0 and no value, forgets) the
    /// [`RETURN_COOKIE`] on `response`.
    fn set_return_cookie(&self, response: &mut Response, value: &str, max_age: u32) {
        let secure = if secure(&self.auth) { "; Secure" } else { "" };
        let cookie = format!(
            "{RETURN_COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
        );
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }

    fn with_cookie(&self, mut response: Response) -> Response {
        if let Some(cookie) = &self.set_csrf {
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        response
    }
}

/// A page for when there is no admin to render with (no auth layer).
fn plain_page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head><body><main><h1>{}</h1><p>{}</p></main></body></html>",
        escape(title),
        escape(title),
        escape(message)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A form body's fields (`application/x-www-form-urlencoded`). Of a name
/// sent twice the last value counts: a checkbox sends a hidden `false`
/// and, when ticked, `true` after it.
type Form = std::collections::HashMap<String, String>;

fn form_fields(body: &[u8]) -> Form {
    form_urlencoded::parse(body).into_owned().collect()
}
