//! The `/auth/…` routes and the development mailbox.
//!
//! Every sign-in answers `{"data":{access_token, refresh_token,
//! token_type, expires_in, session_id, user}}`. Errors are in the API's one
//! shape; a bad body is a 400, a missing or malformed field a 422 naming
//! it. A strategy that is not enabled answers 404 on its routes, as does
//! every route here when no strategy is.

// Handlers return an early `Response` as their error, the axum idiom.
#![allow(clippy::result_large_err)]

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kumo_auth::email;
use kumo_core::actor::{Actor, ActorKind};
use kumo_db::query::QueryError;
use kumo_db::query::accounts::{Set, Test};
use kumo_mail::Message;
use kumo_mail::templates::{Kind, Values};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::audit::Entry;
use super::clock::stamp;
use super::magic_link::{self, Failure, Poll};
use super::session::{self, Device, RefreshError, RefreshRefused, Tokens, public_user};
use super::{Auth, pages};
use crate::AppState;
use crate::api::{AuthFailure, Caller, error_response, query_error_response, refusal_response};
use crate::ratelimit::{bucket_key, client_address, too_many, too_many_requests};

pub(super) type Reply = Result<Response, Response>;

/// The longest user agent kept with a session.
const USER_AGENT_MAX: usize = 256;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/magic_link/request", post(magic_link_request))
        .route("/auth/magic_link/sign_in", post(magic_link_sign_in))
        .route("/auth/magic_link/poll", post(magic_link_poll))
        .route(
            "/auth/magic_link/{token}",
            get(magic_link_page).post(magic_link_press),
        )
        .route("/auth/token/refresh", post(refresh))
        .route("/auth/me", get(me))
        .route("/auth/sessions", get(sessions))
        .route("/auth/sessions/{id}", delete(revoke_session))
        .route("/auth/sign_out", post(sign_out))
        .route("/auth/sign_out_everywhere", post(sign_out_everywhere))
        .route("/auth/api_keys", get(list_api_keys).post(create_api_key))
        .route("/auth/api_keys/{id}", delete(revoke_api_key))
        .merge(super::account_routes::routes())
        .route("/dev/mailbox", get(mailbox_page))
        .route("/dev/mailbox.json", get(mailbox_json))
}

pub(super) fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route", None)
}

/// 404 for a record the caller does not have: `no such session`, …
fn no_such(what: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no such {what}"),
        None,
    )
}

/// The auth layer, or 404 when no strategy is enabled.
pub(super) fn auth(state: &AppState) -> Result<&Arc<Auth>, Response> {
    state.auth().ok_or_else(not_found)
}

/// The auth layer when `strategy` is enabled, or 404.
pub(super) fn with_strategy(
    state: &AppState,
    enabled: fn(&Auth) -> bool,
) -> Result<&Arc<Auth>, Response> {
    auth(state).and_then(|a| if enabled(a) { Ok(a) } else { Err(not_found()) })
}

fn magic_link_enabled(auth: &Auth) -> bool {
    auth.settings.strategies.magic_link
}

fn api_key_enabled(auth: &Auth) -> bool {
    auth.settings.strategies.api_key
}

/// Where a request comes from: its address (for rate limits and the audit
/// log) and the device it describes itself as.
pub(crate) struct Client {
    pub(crate) ip: Option<IpAddr>,
    pub(crate) device: Device,
}

impl Client {
    /// The rate limits' key for this client. Without a socket (a router
    /// driven in-process) every request is one client.
    fn bucket(&self) -> IpAddr {
        bucket_key(self.ip.unwrap_or(IpAddr::from([0, 0, 0, 0])))
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let header_name = state
            .auth()
            .and_then(|a| a.settings.client_ip_header.as_ref());
        Ok(client_of(parts, header_name))
    }
}

/// The client of a request: its address (from `header_name` when behind a
/// proxy) and user agent.
fn client_of(parts: &Parts, header_name: Option<&axum::http::HeaderName>) -> Client {
    let ip = client_address(&parts.headers, &parts.extensions, header_name);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(USER_AGENT_MAX).collect());
    Client {
        ip,
        device: Device {
            ip: ip.map(|ip| ip.to_string()),
            user_agent,
        },
    }
}

impl Auth {
    /// The device a request comes from, as the audit log records it.
    pub(crate) fn device_of(&self, parts: &Parts) -> Device {
        client_of(parts, self.settings.client_ip_header.as_ref()).device
    }
}

impl Auth {
    /// Counts a request against its client's and (when given) its target
    /// account's allowance; 429 with `Retry-After` beyond either.
    pub(crate) async fn limit(
        &self,
        client: &Client,
        account: Option<String>,
    ) -> Result<(), Response> {
        let Some(limits) = &self.limits else {
            return Ok(());
        };
        if let Err(wait) = limits.check_client(client.bucket()) {
            self.report_refusal(client, "client", None).await;
            return Err(too_many_requests(wait));
        }
        if let Some(account) = account {
            self.limit_account(client, account).await?;
        }
        Ok(())
    }

    /// Counts a request against the allowance of the account `key` names
    /// (`email:…`, `username:…`, `user:<id>`) alone; 429 beyond it.
    pub(crate) async fn limit_account(&self, client: &Client, key: String) -> Result<(), Response> {
        let Some(limits) = &self.limits else {
            return Ok(());
        };
        if let Err(wait) = limits.check_account(key.clone()) {
            self.report_refusal(client, "account", Some(key)).await;
            return Err(too_many(wait, "for this account"));
        }
        Ok(())
    }

    /// Counts a magic-link poll against its client's poll allowance, which
    /// is larger than the other auth routes' (a game polls every few
    /// seconds); 429 with `Retry-After` beyond it.
    pub(crate) async fn limit_poll(&self, client: &Client) -> Result<(), Response> {
        let Some(limits) = &self.limits else {
            return Ok(());
        };
        if let Err(wait) = limits.check_poll(client.bucket()) {
            self.report_refusal(client, "poll", None).await;
            return Err(too_many_requests(wait));
        }
        Ok(())
    }

    /// Audits a refusal as `rate_limited`, once per bucket per minute.
    async fn report_refusal(&self, client: &Client, limit: &str, account: Option<String>) {
        let bucket = match &account {
            Some(key) => format!("{limit}:{key}"),
            None => format!("{limit}:{}", client.bucket()),
        };
        if !self.reports.first(&bucket) {
            return;
        }
        let user_id = account
            .as_deref()
            .and_then(|key| key.strip_prefix("user:"))
            .map(|id| json!(id));
        self.audit(Entry {
            kind: "rate_limited",
            strategy: None,
            success: false,
            user_id,
            device: &client.device,
            detail: json!({ "limit": limit, "account": account }),
        })
        .await;
    }

    /// Whether this is `key`'s first report this minute: for what the
    /// admin audits once a minute rather than every time.
    pub(crate) fn first_report(&self, key: &str) -> bool {
        self.reports.first(key)
    }

    pub(crate) fn forget_idle_limits(&self) {
        if let Some(limits) = &self.limits {
            limits.forget_idle();
        }
        self.reports.forget_idle();
    }
}

/// A JSON object body, read as the resource API reads one (415 unless it
/// is declared JSON, 413 over its size limit, 400 `malformed_json` with
/// the position, 400 for a repeated key), and 400 when it is not an object.
pub(super) async fn object(
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, Response> {
    match crate::api::json_body(headers, body, false).await? {
        Value::Object(map) => Ok(map),
        _ => Err(error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be a JSON object",
            None,
        )),
    }
}

/// The non-empty string fields `names` of `body`, or a 422 naming every
/// one that is missing or not a string.
pub(super) fn strings<'b, const N: usize>(
    body: &'b Map<String, Value>,
    names: [&str; N],
) -> Result<[&'b str; N], Response> {
    let mut fields = kumo_db::query::FieldErrors::new();
    let mut found = [""; N];
    for (slot, name) in found.iter_mut().zip(names) {
        match body.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => *slot = s,
            Some(Value::String(_)) | None | Some(Value::Null) => {
                fields.insert(name.to_owned(), vec!["is required".to_owned()]);
            }
            Some(_) => {
                fields.insert(name.to_owned(), vec!["must be a string".to_owned()]);
            }
        }
    }
    if fields.is_empty() {
        Ok(found)
    } else {
        Err(query_error_response(QueryError::invalid(fields)))
    }
}

/// A 422 naming `field` and what is wrong with it.
pub(super) fn invalid_field(field: &str, why: &str) -> Response {
    let mut fields = kumo_db::query::FieldErrors::new();
    fields.insert(field.to_owned(), vec![why.to_owned()]);
    query_error_response(QueryError::invalid(fields))
}

/// An email field, normalised, or a 422 naming `field`.
pub(super) fn email_field(raw: &str, field: &str) -> Result<String, Response> {
    email::normalize(raw).map_err(|why| invalid_field(field, why))
}

pub(super) fn signed_in(auth: &Auth, tokens: &Tokens) -> Response {
    let data = tokens.to_json(&auth.engine().catalog);
    (StatusCode::OK, Json(json!({ "data": data }))).into_response()
}

/// A refused sign-in as the API answers it; a failure of the account
/// store is answered as the resource API answers one (503 with
/// `Retry-After` when the database is busy, 500 otherwise).
fn failure_response(failure: Failure) -> Response {
    match failure {
        Failure::Store(e) => query_error_response(e),
        Failure::Locked => error_response(
            StatusCode::FORBIDDEN,
            failure.code(),
            &failure.to_string(),
            None,
        ),
        _ => error_response(
            StatusCode::UNAUTHORIZED,
            failure.code(),
            &failure.to_string(),
            None,
        ),
    }
}

// ---- magic links ----------------------------------------------------------

/// `POST /auth/magic_link/request {email}`: always 200 with a poll handle,
/// whether or not the address may sign in.
async fn magic_link_request(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = with_strategy(&state, magic_link_enabled)?;
    auth.limit(&client, None).await?;
    let body = object(&headers, body).await?;
    let [raw] = strings(&body, ["email"])?;
    let address = email_field(raw, "email")?;
    auth.limit_account(&client, format!("email:{address}"))
        .await?;
    let requested = auth
        .request_magic_link(&address, &client.device, None)
        .await
        .map_err(query_error_response)?;
    Ok(Json(json!({
        "ok": true,
        "poll": {
            "id": requested.poll_id,
            "secret": requested.poll_secret,
            "interval": magic_link::POLL_INTERVAL,
        }
    }))
    .into_response())
}

/// `POST /auth/magic_link/sign_in {token}` or `{email, code}`.
impl Auth {
    /// Asks for a magic link for `address` (normalised): mails it when the
    /// address may sign in, and audits the request in the link's own
    /// transaction. The same work and answer whether or not it may, so the
    /// caller cannot tell. `by` is the staff member who sent it on the
    /// user's behalf (the admin), audited as `sign_in_link_sent` in that
    /// transaction too when a link was made to be mailed.
    pub(crate) async fn request_magic_link(
        &self,
        address: &str,
        device: &Device,
        by: Option<Value>,
    ) -> Result<magic_link::Requested, QueryError> {
        let now = self.clock.now();
        let mut tx = self.accounts().begin().await?;
        let requested = self.magic_links().request_in(&mut tx, address, now).await?;
        let request = Entry {
            kind: "magic_link_request",
            strategy: Some("magic_link"),
            success: true,
            user_id: requested.user_id.clone(),
            device,
            detail: json!({ "email": address, "sent": requested.mail.is_some() }),
        };
        self.audit_in(&mut tx, &request).await?;
        if let Some(by) = by
            && requested.mail.is_some()
        {
            let sent = Entry {
                kind: "sign_in_link_sent",
                detail: json!({ "by": by }),
                ..request
            };
            self.audit_in(&mut tx, &sent).await?;
        }
        tx.commit().await?;
        // Rendered either way, so the answer takes as long for an unknown
        // address; only sent when the address may sign in.
        let (token, code) = requested
            .mail
            .clone()
            .unwrap_or_else(|| (kumo_auth::secret::random_token(), "000000".into()));
        let link = format!("{}/auth/magic_link/{token}", self.settings.public_url);
        let values = Values {
            app: &self.settings.app_name,
            email: address,
            link: &link,
            code: Some(&code),
            minutes: magic_link::TOKEN_MINUTES as u32,
            new_email: None,
        };
        match self.templates.render(Kind::MagicLink, &values) {
            Ok(rendered) if requested.mail.is_some() => {
                self.outbox.send(Message::new(address, rendered));
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not render the magic-link email"),
        }
        Ok(requested)
    }
}

async fn magic_link_sign_in(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = with_strategy(&state, magic_link_enabled)?;
    auth.limit(&client, None).await?;
    let body = object(&headers, body).await?;
    let now = auth.clock.now();
    let links = auth.magic_links();
    let tokens = if body.contains_key("token") {
        let [token] = strings(&body, ["token"])?;
        let result = links.sign_in_with_token(token, &client.device, now).await;
        audit_attempt(auth, &client, "magic_link", result, Target::Link(token)).await?
    } else {
        let [raw, code] = strings(&body, ["email", "code"])?;
        let address = email_field(raw, "email")?;
        auth.limit_account(&client, format!("email:{address}"))
            .await?;
        let result = links
            .sign_in_with_code(&address, code.trim(), &client.device, now)
            .await;
        audit_sign_in(auth, &client, "magic_link", result, Some(address)).await?
    };
    Ok(signed_in(auth, &tokens))
}

/// Audits a failed sign-in (a successful one wrote its event in its own
/// transaction); the error is the response to give. The account aimed at
/// is recorded when it is known: the user with `email`.
async fn audit_sign_in(
    auth: &Auth,
    client: &Client,
    strategy: &str,
    result: Result<Tokens, Failure>,
    email: Option<String>,
) -> Result<Tokens, Response> {
    let target = match &email {
        Some(email) => Target::Email(email),
        None => Target::Unknown,
    };
    audit_attempt(auth, client, strategy, result, target).await
}

/// Which account a sign-in attempt aimed at, as far as the request says.
enum Target<'a> {
    Unknown,
    /// A code's or a password's address.
    Email(&'a str),
    /// A magic link, by its token.
    Link(&'a str),
    /// A magic link, by its poll handle.
    Poll(Uuid),
}

impl Auth {
    /// The id of the account `target` names, if it exists: one read, made
    /// only for a failed attempt.
    async fn target_user(&self, target: &Target<'_>) -> Option<Value> {
        let link = |tests| async move {
            let row = self.accounts().read_one("auth_token", tests).await.ok()??;
            Some(row["user_id"].clone()).filter(|id| !id.is_null())
        };
        match target {
            Target::Unknown => None,
            Target::Email(email) => self
                .accounts()
                .read_one("user", &[("email", Test::Eq(json!(email)))])
                .await
                .ok()?
                .map(|user| user["id"].clone()),
            Target::Link(token) => {
                link(&[
                    (
                        "token_hash",
                        Test::Eq(json!(kumo_auth::secret::hash(token))),
                    ),
                    ("purpose", Test::Eq(json!("magic_link"))),
                ])
                .await
            }
            Target::Poll(id) => link(&[("poll_id", Test::Eq(json!(id)))]).await,
        }
    }
}

/// [`audit_sign_in`] for any [`Target`].
async fn audit_attempt(
    auth: &Auth,
    client: &Client,
    strategy: &str,
    result: Result<Tokens, Failure>,
    target: Target<'_>,
) -> Result<Tokens, Response> {
    match result {
        // The sign-in's transaction wrote its audit event.
        Ok(tokens) => {
            auth.forget_sessions(&tokens.signed_out);
            Ok(tokens)
        }
        Err(failure) => {
            let email = match target {
                Target::Email(email) => Some(email.to_owned()),
                _ => None,
            };
            auth.audit(Entry {
                kind: "sign_in",
                strategy: Some(strategy),
                success: false,
                user_id: auth.target_user(&target).await,
                device: &client.device,
                detail: json!({ "reason": failure.code(), "email": email }),
            })
            .await;
            Err(failure_response(failure))
        }
    }
}

/// `POST /auth/magic_link/poll {id, secret}`: 202 while the link is unused,
/// then this device's own session, once. An `id` that is not a UUID is a
/// 422 naming it: no handle was ever issued with it.
async fn magic_link_poll(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = with_strategy(&state, magic_link_enabled)?;
    auth.limit_poll(&client).await?;
    let body = object(&headers, body).await?;
    let [id, poll_secret] = strings(&body, ["id", "secret"])?;
    let poll_id = Uuid::parse_str(id.trim())
        .map_err(|_| invalid_field("id", "must be the poll id a link request answered"))?;
    let now = auth.clock.now();
    let result = match auth
        .magic_links()
        .poll(poll_id, poll_secret, &client.device, now)
        .await
    {
        Ok(Poll::Pending) => {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "ok": true, "status": "pending", "interval": magic_link::POLL_INTERVAL })),
            )
                .into_response());
        }
        Ok(Poll::SignedIn(tokens)) => Ok(tokens),
        Err(failure) => Err(failure),
    };
    // A refused poll (a wrong secret, a handle collected already) is a
    // failed sign-in attempt like a wrong code, so it is audited as one.
    let tokens = audit_attempt(auth, &client, "magic_link", result, Target::Poll(poll_id)).await?;
    Ok(signed_in(auth, &tokens))
}

/// A path's one segment (a link's token, a session's or key's id),
/// extracted as a `Result` so that a segment that is not UTF-8 once
/// percent-decoded reaches the handler instead of answering axum's
/// plain-text 400.
pub(super) type LinkPath = Result<Path<String>, axum::extract::rejection::PathRejection>;

/// The segment; `None` when it is not UTF-8, which is no token ever sent
/// (tokens are URL-safe ASCII) and no id: the handler answers as for an
/// invalid link or a missing record.
pub(super) fn link_token(path: LinkPath) -> Option<String> {
    path.map(|Path(token)| token).ok()
}

/// The page of a link that is not valid, expired or used.
fn invalid_link_page(status: StatusCode) -> Response {
    pages::sign_in_failed(
        status,
        "This link is not valid, has expired, or was already used. Ask your game for a new one.",
    )
}

/// `GET /auth/magic_link/{token}`: a page with a button; consumes nothing,
/// so a mail scanner that fetches the link does not use it up.
async fn magic_link_page(State(state): State<AppState>, path: LinkPath, client: Client) -> Reply {
    let auth = with_strategy(&state, magic_link_enabled)?;
    auth.limit(&client, None).await?;
    if link_token(path).is_none() {
        return Err(invalid_link_page(StatusCode::UNAUTHORIZED));
    }
    Ok(pages::confirm_sign_in(&auth.settings.app_name))
}

/// The button's `POST`: signs this browser in (a session cookie) and tells
/// the player to return to the game, whose poll now gets its own session.
async fn magic_link_press(
    State(state): State<AppState>,
    path: LinkPath,
    client: Client,
    headers: HeaderMap,
) -> Reply {
    let auth = with_strategy(&state, magic_link_enabled)?;
    let token = link_token(path);
    // Login CSRF: another site must not sign this browser in.
    if !auth.form_from_own_page(&headers) {
        return Err(pages::sign_in_failed(
            StatusCode::FORBIDDEN,
            "This sign-in must be confirmed from its own page. Open the link from your email again.",
        ));
    }
    if let Err(limited) = auth.limit(&client, None).await {
        let mut page = pages::sign_in_failed(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts from this network; wait a minute and try again.",
        );
        if let Some(wait) = limited.headers().get(header::RETRY_AFTER) {
            page.headers_mut().insert(header::RETRY_AFTER, wait.clone());
        }
        return Err(page);
    }
    let now = auth.clock.now();
    let (result, target) = match &token {
        Some(token) => (
            auth.magic_links()
                .sign_in_with_token(token, &client.device, now)
                .await,
            Target::Link(token),
        ),
        None => (Err(Failure::Invalid), Target::Unknown),
    };
    let app = &auth.settings.app_name;
    match audit_attempt(auth, &client, "magic_link", result, target).await {
        Ok(tokens) => {
            let mut page = pages::signed_in(app);
            let cookie = auth.browser_cookie(&tokens, now);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                page.headers_mut().insert(header::SET_COOKIE, value);
            }
            Ok(page)
        }
        Err(response) => {
            let status = response.status();
            let message = match status {
                StatusCode::FORBIDDEN => "This account is locked.",
                StatusCode::INTERNAL_SERVER_ERROR | StatusCode::SERVICE_UNAVAILABLE => {
                    "Something went wrong on the server; try the link again in a moment."
                }
                _ => return Err(invalid_link_page(status)),
            };
            Err(pages::sign_in_failed(status, message))
        }
    }
}

// ---- sessions ---------------------------------------------------------------

/// `POST /auth/token/refresh {refresh_token}`. Every refusal is audited,
/// with the account when the token named a session that exists.
async fn refresh(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = auth(&state)?;
    auth.limit(&client, None).await?;
    let body = object(&headers, body).await?;
    let [token] = strings(&body, ["refresh_token"])?;
    let presented = auth.keys.refresh.open(token);
    if let Some(p) = presented {
        auth.limit_account(&client, format!("session:{}", p.session_id))
            .await?;
    }
    let now = auth.clock.now();
    let refreshed = match presented {
        Some(presented) => {
            session::refresh_opened(
                &auth.accounts(),
                &auth.keys,
                token,
                presented,
                &client.device,
                now,
            )
            .await
        }
        None => Err(RefreshRefused {
            error: RefreshError::Invalid,
            user_id: None,
        }),
    };
    let refused = match refreshed {
        Ok(tokens) => {
            if tokens.repeated {
                // A retry after a lost answer, from the device that
                // rotated; audited all the same.
                auth.audit(Entry {
                    kind: "refresh_repeated",
                    strategy: None,
                    success: true,
                    user_id: tokens.user.get("id").cloned(),
                    device: &client.device,
                    detail: json!({ "session_id": tokens.session_id }),
                })
                .await;
            }
            return Ok(signed_in(auth, &tokens));
        }
        Err(refused) => refused,
    };
    let session_id = presented.map(|p| p.session_id);
    if matches!(refused.error, RefreshError::Reused)
        && let Some(id) = session_id
    {
        auth.revocations.insert(id, now);
        auth.sessions.forget(&id.to_string());
    }
    if !matches!(refused.error, RefreshError::Store(_)) {
        let reused = matches!(refused.error, RefreshError::Reused);
        auth.audit(Entry {
            kind: if reused {
                "refresh_token_reused"
            } else {
                "refresh"
            },
            strategy: None,
            success: false,
            user_id: refused.user_id,
            device: &client.device,
            detail: json!({ "reason": refused.error.code(), "session_id": session_id }),
        })
        .await;
    }
    Err(refresh_error(refused.error))
}

fn refresh_error(e: RefreshError) -> Response {
    match e {
        RefreshError::Store(store) => query_error_response(store),
        RefreshError::Locked => {
            error_response(StatusCode::FORBIDDEN, e.code(), &e.to_string(), None)
        }
        _ => {
            let mut r = error_response(StatusCode::UNAUTHORIZED, e.code(), &e.to_string(), None);
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

/// The signed-in user's id, or 401 for an anonymous caller.
pub(super) fn signed_in_user(actor: &Actor) -> Result<String, Response> {
    actor
        .id()
        .map(|id| id.to_string())
        .ok_or_else(|| refusal_response(AuthFailure::Unauthenticated("sign in first".into())))
}

/// `GET /auth/me`.
async fn me(State(state): State<AppState>, Caller(actor): Caller, client: Client) -> Reply {
    let auth = auth(&state)?;
    auth.limit(&client, None).await?;
    let id = signed_in_user(&actor)?;
    let user = auth
        .accounts()
        .read_one("user", &[("id", Test::Eq(json!(id)))])
        .await
        .map_err(query_error_response)?
        .ok_or_else(|| no_such("account"))?;
    Ok(Json(json!({ "data": public_user(&user, &auth.engine().catalog) })).into_response())
}

/// `GET /auth/sessions`: the caller's signed-in devices, newest first.
async fn sessions(
    State(state): State<AppState>,
    Caller(actor): Caller,
    client: Client,
    headers: HeaderMap,
) -> Reply {
    let auth = auth(&state)?;
    auth.limit(&client, None).await?;
    let id = session_user(&actor)?;
    let now = auth.clock.now();
    let current = auth.current_session(&headers);
    let rows = auth
        .accounts()
        .read(
            "session",
            &[
                ("user_id", Test::Eq(json!(id))),
                ("revoked_at", Test::IsNull),
                ("expires_at", Test::Above(json!(stamp(now)))),
            ],
            Some(("inserted_at", kumo_db::query::accounts::Order::Descending)),
            None,
        )
        .await
        .map_err(query_error_response)?;
    let data: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "id": row["id"],
                "created_at": row["inserted_at"],
                "last_used_at": row["last_used_at"],
                "expires_at": row["expires_at"],
                "ip": row["ip"],
                "user_agent": row["user_agent"],
                "current": current.is_some_and(|c| row["id"] == json!(c)),
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })).into_response())
}

/// `DELETE /auth/sessions/{id}`: signs one of the caller's devices out.
/// Another user's session is a 404, as a missing one is.
async fn revoke_session(
    State(state): State<AppState>,
    Caller(actor): Caller,
    client: Client,
    session_id: LinkPath,
) -> Reply {
    let auth = auth(&state)?;
    auth.limit(&client, None).await?;
    let user_id = session_user(&actor)?;
    let Some(Ok(session_id)) = link_token(session_id).map(|id| Uuid::parse_str(&id)) else {
        return Err(no_such("session"));
    };
    let tests = [
        ("id", Test::Eq(json!(session_id))),
        ("user_id", Test::Eq(json!(user_id))),
    ];
    let revoked = auth
        .revoke(&tests, |revoked| {
            (revoked > 0).then(|| Entry {
                kind: "session_revoked",
                strategy: None,
                success: true,
                user_id: Some(json!(user_id)),
                device: &client.device,
                detail: json!({ "session_id": session_id }),
            })
        })
        .await
        .map_err(query_error_response)?;
    if revoked == 0 {
        return Err(no_such("session"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /auth/sign_out`: ends the session the caller's token or cookie
/// belongs to (an API key has none: revoke it instead).
async fn sign_out(
    State(state): State<AppState>,
    Caller(actor): Caller,
    client: Client,
    headers: HeaderMap,
) -> Reply {
    let auth = auth(&state)?;
    auth.limit(&client, None).await?;
    let user_id = signed_in_user(&actor)?;
    let Some(session_id) = auth.current_session(&headers) else {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "an API key has no session to sign out of; revoke the key instead",
            None,
        ));
    };
    auth.revoke(&[("id", Test::Eq(json!(session_id)))], |_| {
        Some(Entry {
            kind: "sign_out",
            strategy: None,
            success: true,
            user_id: Some(json!(user_id)),
            device: &client.device,
            detail: json!({ "session_id": session_id }),
        })
    })
    .await
    .map_err(query_error_response)?;
    let mut response = Json(json!({ "ok": true })).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth.cleared_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// `POST /auth/sign_out_everywhere`: ends every session of the caller.
async fn sign_out_everywhere(
    State(state): State<AppState>,
    Caller(actor): Caller,
    client: Client,
) -> Reply {
    let auth = auth(&state)?;
    auth.limit(&client, None).await?;
    let user_id = session_user(&actor)?;
    let revoked = auth
        .revoke(&[("user_id", Test::Eq(json!(user_id)))], |revoked| {
            Some(Entry {
                kind: "sign_out_everywhere",
                strategy: None,
                success: true,
                user_id: Some(json!(user_id)),
                device: &client.device,
                detail: json!({ "sessions": revoked }),
            })
        })
        .await
        .map_err(query_error_response)?;
    let mut response = Json(json!({ "ok": true, "signed_out": revoked })).into_response();
    if let Ok(v) = HeaderValue::from_str(&auth.cleared_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

// ---- API keys -------------------------------------------------------------

/// A key as its owner's list shows it: never the key nor its hash.
fn api_key_json(row: &kumo_db::query::Record) -> Value {
    json!({
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "created_at": row["inserted_at"],
        "expires_at": row["expires_at"],
        "last_used_at": row["last_used_at"],
        "revoked_at": row["revoked_at"],
    })
}

/// The caller's user id when signed in by a session (an access token or
/// the cookie). What manages the account itself (its devices, its keys,
/// its password and address) takes a session: a leaked API key cannot
/// make itself a successor, sign its owner out, or read where they play.
pub(super) fn session_user(actor: &Actor) -> Result<String, Response> {
    let id = signed_in_user(actor)?;
    if matches!(actor.kind, ActorKind::ApiKey { .. }) {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this is done from a signed-in session (an access token or the browser's cookie), not with an API key",
            None,
        ));
    }
    Ok(id)
}

/// `POST /auth/api_keys {name, expires_at?}`: the key, shown this once.
async fn create_api_key(
    State(state): State<AppState>,
    Caller(actor): Caller,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = with_strategy(&state, api_key_enabled)?;
    auth.limit(&client, None).await?;
    let user_id = session_user(&actor)?;
    let body = object(&headers, body).await?;
    let [name] = strings(&body, ["name"])?;
    let name = name.trim();
    let now = auth.clock.now();
    let mut fields = kumo_db::query::FieldErrors::new();
    // The resource's own rules (its length, and text the database can
    // store: PostgreSQL refuses a NUL), so a bad name is a 422, not a 500.
    if let Err(why) = auth.accounts().check("api_key", "name", &json!(name)) {
        fields.insert("name".into(), vec![why]);
    }
    let expires_at = match body.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => match super::clock::parse_stamp(text) {
            Some(at) if at > now => Some(stamp(at)),
            Some(_) => {
                fields.insert("expires_at".into(), vec!["must be in the future".into()]);
                None
            }
            None => {
                fields.insert(
                    "expires_at".into(),
                    vec!["must be an RFC 3339 date and time, such as 2027-01-31T12:00:00Z".into()],
                );
                None
            }
        },
        Some(_) => {
            fields.insert("expires_at".into(), vec!["must be a string".into()]);
            None
        }
    };
    if !fields.is_empty() {
        return Err(query_error_response(QueryError::invalid(fields)));
    }
    auth.limit_account(&client, format!("user:{user_id}"))
        .await?;
    let key = kumo_auth::api_key::generate();
    let mut tx = auth
        .accounts()
        .begin()
        .await
        .map_err(query_error_response)?;
    let row = tx
        .insert(
            "api_key",
            &[
                ("name", json!(name)),
                ("prefix", json!(key.prefix)),
                ("key_hash", json!(key.hash)),
                ("expires_at", json!(expires_at)),
                ("user_id", json!(user_id)),
            ],
            &stamp(now),
        )
        .await
        .map_err(query_error_response)?;
    auth.audit_in(
        &mut tx,
        &Entry {
            kind: "api_key_created",
            strategy: Some("api_key"),
            success: true,
            user_id: Some(json!(user_id)),
            device: &client.device,
            detail: json!({ "api_key_id": row["id"], "name": name }),
        },
    )
    .await
    .map_err(query_error_response)?;
    tx.commit().await.map_err(query_error_response)?;
    let mut data = api_key_json(&row);
    data["key"] = json!(key.key);
    Ok((StatusCode::CREATED, Json(json!({ "data": data }))).into_response())
}

/// `GET /auth/api_keys`: the caller's keys, newest first, revoked ones too.
async fn list_api_keys(
    State(state): State<AppState>,
    Caller(actor): Caller,
    client: Client,
) -> Reply {
    let auth = with_strategy(&state, api_key_enabled)?;
    auth.limit(&client, None).await?;
    let user_id = session_user(&actor)?;
    let rows = auth
        .accounts()
        .read(
            "api_key",
            &[("user_id", Test::Eq(json!(user_id)))],
            Some(("inserted_at", kumo_db::query::accounts::Order::Descending)),
            None,
        )
        .await
        .map_err(query_error_response)?;
    let data: Vec<Value> = rows.iter().map(api_key_json).collect();
    Ok(Json(json!({ "data": data })).into_response())
}

/// `DELETE /auth/api_keys/{id}`: the key stops working at once (keys are
/// looked up on every use). Another user's key is a 404.
async fn revoke_api_key(
    State(state): State<AppState>,
    Caller(actor): Caller,
    client: Client,
    key_id: LinkPath,
) -> Reply {
    let auth = with_strategy(&state, api_key_enabled)?;
    auth.limit(&client, None).await?;
    let Some(Ok(key_id)) = link_token(key_id).map(|id| Uuid::parse_str(&id)) else {
        return Err(no_such("API key"));
    };
    // A key may revoke itself (a leaked key's holder can do no worse than
    // stop it); any other key is revoked from a session.
    let user_id = match actor.kind {
        ActorKind::ApiKey { key_id: own } if own == key_id => signed_in_user(&actor)?,
        _ => session_user(&actor)?,
    };
    let now = auth.clock.now();
    let mut tx = auth
        .accounts()
        .begin()
        .await
        .map_err(query_error_response)?;
    let revoked = tx
        .update(
            "api_key",
            &[("revoked_at", Set::To(json!(stamp(now))))],
            &[
                ("id", Test::Eq(json!(key_id))),
                ("user_id", Test::Eq(json!(user_id))),
                ("revoked_at", Test::IsNull),
            ],
            &stamp(now),
        )
        .await
        .map_err(query_error_response)?;
    if revoked.is_empty() {
        let exists = tx
            .find_one(
                "api_key",
                &[
                    ("id", Test::Eq(json!(key_id))),
                    ("user_id", Test::Eq(json!(user_id))),
                ],
            )
            .await
            .map_err(query_error_response)?;
        // Revoking a revoked key of one's own is done already.
        return match exists {
            Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
            None => Err(no_such("API key")),
        };
    }
    auth.audit_in(
        &mut tx,
        &Entry {
            kind: "api_key_revoked",
            strategy: Some("api_key"),
            success: true,
            user_id: Some(json!(user_id)),
            device: &client.device,
            detail: json!({ "api_key_id": key_id }),
        },
    )
    .await
    .map_err(query_error_response)?;
    tx.commit().await.map_err(query_error_response)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

impl Auth {
    /// Revokes the live sessions that pass `tests`, on this node at once
    /// and on the others within [`super::revocations::RELOAD_EVERY`], with
    /// the audit event `audit` makes of how many were revoked (if any) in
    /// the same transaction: a revocation is never committed unaudited,
    /// and one whose event cannot be written does not happen.
    pub async fn revoke<'d>(
        &self,
        tests: &[(&str, Test)],
        audit: impl FnOnce(usize) -> Option<Entry<'d>>,
    ) -> Result<usize, QueryError> {
        let now = self.clock.now();
        let mut all = tests.to_vec();
        all.push(("revoked_at", Test::IsNull));
        let mut tx = self.accounts().begin().await?;
        let revoked = tx
            .update(
                "session",
                &[("revoked_at", Set::To(json!(stamp(now))))],
                &all,
                &stamp(now),
            )
            .await?;
        if let Some(entry) = audit(revoked.len()) {
            self.audit_in(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        for row in &revoked {
            if let Some(id) = row["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                self.revocations.insert(id, now);
                self.sessions.forget(&id.to_string());
            }
        }
        Ok(revoked.len())
    }

    /// Whether a form post comes from this server's own page.
    pub(super) fn form_from_own_page(&self, headers: &HeaderMap) -> bool {
        let has_browser_headers =
            headers.contains_key("sec-fetch-site") || headers.contains_key(header::ORIGIN);
        !has_browser_headers || self.same_origin(headers)
    }
}

// ---- dev mailbox ---------------------------------------------------------

/// The dev adapter's messages, to a client on this machine only: they hold
/// sign-in links, which would let anyone who can read them sign in as
/// anyone. Otherwise, and when the adapter is not `dev`, 404.
impl Auth {
    /// Whether mail goes to the dev mailbox (which the admin links to).
    pub(crate) fn has_dev_mailbox(&self) -> bool {
        self.outbox.dev_mailbox().is_some()
    }
}

fn dev_mailbox(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
) -> Result<Vec<kumo_mail::Sent>, Response> {
    let auth = auth(state)?;
    let mailbox = auth.outbox.dev_mailbox().ok_or_else(not_found)?;
    if !auth.is_local_request(client, headers) {
        return Err(not_found());
    }
    Ok(mailbox.list())
}

impl Auth {
    /// Whether a request comes from this machine to a server players
    /// reach on this machine only:
    ///
    /// - `public_url` is a loopback URL: one that points elsewhere means
    ///   the server is reached from other machines, perhaps through a proxy
    ///   on this one, whose requests arrive from a loopback peer;
    /// - the request carries no proxy header (the usual ones, nor the
    ///   configured `client_ip_header`), since a proxy on this machine
    ///   forwards other machines' requests from a loopback address;
    /// - its peer is a loopback address. A request with no peer address
    ///   (no socket) is not known to be local, so it is not.
    fn is_local_request(&self, client: &Client, headers: &HeaderMap) -> bool {
        let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
            .iter()
            .any(|h| headers.contains_key(*h))
            || self
                .settings
                .client_ip_header
                .as_ref()
                .is_some_and(|h| headers.contains_key(h));
        // Without a proxy header, `client.ip` is the TCP peer's address.
        is_loopback_url(&self.settings.public_url)
            && !proxied
            && client.ip.is_some_and(|ip| ip.is_loopback())
    }
}

/// Whether `url`'s host is `localhost` or a loopback address
/// (`http://127.0.0.1:4000`, `http://[::1]:4000`, `http://localhost`).
fn is_loopback_url(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn mailbox_page(State(state): State<AppState>, client: Client, headers: HeaderMap) -> Reply {
    let messages = dev_mailbox(&state, &client, &headers)?;
    Ok(pages::mailbox(&messages))
}

async fn mailbox_json(State(state): State<AppState>, client: Client, headers: HeaderMap) -> Reply {
    let messages = dev_mailbox(&state, &client, &headers)?;
    let mut response = Json(messages).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::is_loopback_url;

    #[test]
    fn loopback_urls_are_told_from_others() {
        for url in [
            "http://127.0.0.1:4000",
            "http://localhost",
            "https://LOCALHOST:8443/game",
            "http://[::1]:4000/",
            "http://127.0.0.2",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://0.0.0.0:4000",
            "https://game.example",
            "http://localhost.evil.example",
            "http://127.0.0.1@evil.example",
            "http://[2001:db8::1]:4000",
            "127.0.0.1:4000",
            "",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
