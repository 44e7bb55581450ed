//! Who a request speaks for: an access token (`Authorization: Bearer …`),
//! an API key (`Authorization: Bearer kumo_…`), the browser's session
//! cookie, or nobody.
//!
//! An access token is checked by its MAC and the revocation list, without
//! the database; the policies then need the user's record, which is kept
//! for [`USER_FRESH_FOR`] (a change on this node drops it at once), so a
//! signed-in request usually reads nothing. An API key is looked up by its
//! hash on every use. A cookie is an access token under a key of its own,
//! and an unsafe request carrying one must come from the server's own
//! origin (CSRF).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use kumo_auth::access::Claims;
use kumo_auth::{api_key, secret};
use kumo_core::actor::Actor;
use kumo_db::query::Record;
use kumo_db::query::accounts::Test;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Auth;
use super::clock::{parse_stamp, stamp};
use super::revocations::RELOAD_EVERY;
use super::session::Device;
use crate::api::AuthFailure;

/// The browser session cookie's name. `__Host-` makes browsers refuse it
/// unless it is `Secure`, has no `Domain` and is for `/`; over plain HTTP
/// (development) the name without the prefix is used.
pub const COOKIE_SECURE: &str = "__Host-kumo_session";
pub const COOKIE_PLAIN: &str = "kumo_session";

/// How long a signed-in user's record is used before it is read again: a
/// role change or a lock made on another node counts within this time, as
/// a sign-out does.
pub const USER_FRESH_FOR: Duration = RELOAD_EVERY;
/// Cached users beyond this are dropped all at once: the cache is only
/// there to spare the database a read per request.
const USER_CACHE_SIZE: usize = 50_000;

/// What a request presents to prove who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    AccessToken(String),
    ApiKey(String),
    Cookie(String),
}

/// Names the kind only: the value is a secret.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::None => "Credential::None",
            Credential::AccessToken(_) => "Credential::AccessToken(***)",
            Credential::ApiKey(_) => "Credential::ApiKey(***)",
            Credential::Cookie(_) => "Credential::Cookie(***)",
        })
    }
}

/// Records by id, each used for [`USER_FRESH_FOR`]: signed-in users, and
/// browser sessions.
#[derive(Default)]
pub(crate) struct RecordCache {
    users: RwLock<HashMap<String, (Instant, Record)>>,
}

impl RecordCache {
    fn get(&self, id: &str) -> Option<Record> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        let (at, user) = users.get(id)?;
        (at.elapsed() < USER_FRESH_FOR).then(|| user.clone())
    }

    fn put(&self, id: String, user: Record) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if users.len() >= USER_CACHE_SIZE {
            users.clear();
        }
        users.insert(id, (Instant::now(), user));
    }

    pub(crate) fn forget(&self, id: &str) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        users.remove(id);
    }

    pub(crate) fn clear(&self) {
        self.users
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl Auth {
    /// The actor a request speaks for; `parts` is the request's head.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Actor, AuthFailure> {
        let credential = self.credential(&parts.method, &parts.headers)?;
        self.actor(credential, &self.device_of(parts)).await
    }

    /// What a request presents, read from its headers without waiting on
    /// anything (so the future that checks it borrows nothing).
    pub fn credential(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Credential, AuthFailure> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let presented = value
                .to_str()
                .ok()
                .and_then(bearer_token)
                .ok_or_else(|| refused("use `Authorization: Bearer <token>`"))?;
            return Ok(if api_key::is_api_key(presented) {
                Credential::ApiKey(presented.to_owned())
            } else {
                Credential::AccessToken(presented.to_owned())
            });
        }
        if let Some(cookie) = session_cookie(headers) {
            if !is_safe(method) && !self.same_origin(headers) {
                return Err(AuthFailure::CrossSite);
            }
            return Ok(Credential::Cookie(cookie.to_owned()));
        }
        Ok(Credential::None)
    }

    /// The actor `credential`, sent from `device`, speaks for, or why it
    /// is refused.
    pub async fn actor(
        &self,
        credential: Credential,
        device: &Device,
    ) -> Result<Actor, AuthFailure> {
        let now = self.clock.now().unix_timestamp();
        match credential {
            Credential::None => Ok(Actor::anonymous()),
            Credential::ApiKey(key) => self.api_key_actor(&key, device).await,
            Credential::AccessToken(token) => {
                let claims = self
                    .keys
                    .access
                    .verify(&token, now)
                    .map_err(|e| refused(&e.to_string()))?;
                self.session_actor(&claims, device).await
            }
            Credential::Cookie(cookie) => {
                let claims = self
                    .browser
                    .verify(&cookie, now)
                    .map_err(|_| refused("the browser session is not valid; sign in again"))?;
                // A cookie outlives the revocation list's memory (one
                // access token lifetime), so its session is checked in the
                // store.
                self.live_browser_session(&claims.session_id.to_string())
                    .await?;
                self.session_actor(&claims, device).await
            }
        }
    }

    async fn session_actor(&self, claims: &Claims, device: &Device) -> Result<Actor, AuthFailure> {
        if self.revocations.is_revoked(claims.session_id) {
            return Err(refused("the session was signed out; sign in again"));
        }
        let user_id = claims.user_id.to_string();
        let user = self.known_user(&user_id).await?;
        if !user["locked_at"].is_null() {
            self.report_refused_credential(
                device,
                &format!("user:{user_id}"),
                json!(user_id),
                json!({ "reason": "account_locked", "session_id": claims.session_id }),
            );
            return Err(refused("the account is locked"));
        }
        Ok(Actor::user(user))
    }

    /// Audits a refused credential that names an account (a revoked or
    /// expired API key, a locked account's token or key), at most once a
    /// minute per `bucket`: a client retrying a dead key in a loop is one
    /// line a minute, not one per request. Written off the request's path.
    fn report_refused_credential(
        &self,
        device: &Device,
        bucket: &str,
        user_id: Value,
        detail: Value,
    ) {
        if !self.reports.first(bucket) {
            return;
        }
        let engine = self.engine.clone();
        let now = self.clock.now();
        let device = device.clone();
        tokio::spawn(async move {
            let Some(accounts) = engine.accounts() else {
                return;
            };
            let entry = super::audit::Entry {
                kind: "credential_refused",
                strategy: None,
                success: false,
                user_id: Some(user_id),
                device: &device,
                detail,
            };
            let result = async {
                let mut tx = accounts.begin().await?;
                super::audit::insert(&mut tx, now, &entry).await?;
                tx.commit().await
            }
            .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "could not write an audit event");
            }
        });
    }

    /// The user's record as policies see it, from the cache or the store.
    /// A deleted account is refused; a locked one is the caller's to refuse.
    async fn known_user(&self, id: &str) -> Result<Record, AuthFailure> {
        let user = match self.users.get(id) {
            Some(user) => user,
            None => {
                let mut user = self
                    .accounts()
                    .read_one("user", &[("id", Test::Eq(json!(id)))])
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "could not read the signed-in user");
                        refused("could not check the credentials; try again")
                    })?
                    .ok_or_else(|| refused("the account no longer exists"))?;
                // Policies never see a password hash.
                user.remove("password_hash");
                self.users.put(id.to_owned(), user.clone());
                user
            }
        };
        Ok(user)
    }

    /// Refuses a cookie whose session was signed out or has expired.
    async fn live_browser_session(&self, id: &str) -> Result<(), AuthFailure> {
        let session = match self.sessions.get(id) {
            Some(session) => session,
            None => {
                let session = self
                    .accounts()
                    .read_one("session", &[("id", Test::Eq(json!(id)))])
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "could not read a browser session");
                        refused("could not check the credentials; try again")
                    })?
                    .ok_or_else(|| refused("the session was signed out; sign in again"))?;
                self.sessions.put(id.to_owned(), session.clone());
                session
            }
        };
        let expired = session["expires_at"]
            .as_str()
            .and_then(parse_stamp)
            .is_none_or(|at| self.clock.now() >= at);
        if !session["revoked_at"].is_null() || expired {
            return Err(refused("the session was signed out; sign in again"));
        }
        Ok(())
    }

    async fn api_key_actor(&self, presented: &str, device: &Device) -> Result<Actor, AuthFailure> {
        if !self.settings.strategies.api_key {
            return Err(refused("API keys are not enabled on this server"));
        }
        // A mistyped key fails its checksum here, without a database read.
        api_key::check(presented).map_err(|e| refused(&e.to_string()))?;
        let row = self
            .accounts()
            .read_one(
                "api_key",
                &[("key_hash", Test::Eq(json!(secret::hash(presented))))],
            )
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "could not read an API key");
                refused("could not check the credentials; try again")
            })?
            .ok_or_else(|| refused("the API key is not valid"))?;
        let now = self.clock.now();
        let owner = row["user_id"].as_str().unwrap_or_default().to_owned();
        // A key that exists but may not be used names its owner: whoever
        // holds it is worth a line in the owner's audit trail.
        let dead = |reason: &str, message: &str| {
            self.report_refused_credential(
                device,
                &format!("api_key:{}", row["id"]),
                json!(owner),
                json!({ "reason": reason, "api_key_id": row["id"] }),
            );
            refused(message)
        };
        if !row["revoked_at"].is_null() {
            return Err(dead("api_key_revoked", "the API key was revoked"));
        }
        if row["expires_at"]
            .as_str()
            .and_then(parse_stamp)
            .is_some_and(|at| now >= at)
        {
            return Err(dead("api_key_expired", "the API key has expired"));
        }
        let key_id = row["id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| refused("the API key is not valid"))?;
        let user = self.known_user(&owner).await?;
        if !user["locked_at"].is_null() {
            return Err(dead("account_locked", "the account is locked"));
        }
        self.note_key_use(&row, now);
        Ok(Actor::api_key(key_id, user))
    }

    /// Records when a key was last used, at most once a minute per key and
    /// off the request's path.
    fn note_key_use(&self, row: &Record, now: OffsetDateTime) {
        let stale = row["last_used_at"]
            .as_str()
            .and_then(parse_stamp)
            .is_none_or(|at| now - at >= time::Duration::minutes(1));
        if !stale {
            return;
        }
        let id = row["id"].clone();
        let engine = self.engine.clone();
        tokio::spawn(async move {
            let Some(accounts) = engine.accounts() else {
                return;
            };
            let result = async {
                let mut tx = accounts.begin().await?;
                tx.update(
                    "api_key",
                    &[(
                        "last_used_at",
                        kumo_db::query::accounts::Set::To(json!(stamp(now))),
                    )],
                    &[("id", Test::Eq(id))],
                    &stamp(now),
                )
                .await?;
                tx.commit().await
            }
            .await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "could not note an API key's use");
            }
        });
    }

    /// Whether a browser request comes from this server's own pages:
    /// `Sec-Fetch-Site: same-origin`, or an `Origin` equal to the public
    /// URL's. Neither header: not a browser request the cookie should
    /// authorise.
    pub(crate) fn same_origin(&self, headers: &HeaderMap) -> bool {
        if let Some(site) = headers.get("sec-fetch-site") {
            return site.as_bytes() == b"same-origin";
        }
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
            return false;
        };
        origin == origin_of(&self.settings.public_url)
    }

    /// The `Set-Cookie` value that keeps a browser signed in to the
    /// session `tokens` opened, for as long as the session lasts.
    pub(crate) fn browser_cookie(
        &self,
        tokens: &super::session::Tokens,
        now: OffsetDateTime,
    ) -> String {
        let claims = Claims {
            user_id: tokens.user_id(),
            session_id: tokens.session_id,
            role: tokens.role(),
            issued_at: now.unix_timestamp(),
            expires_at: (now + self.settings.session_ttl).unix_timestamp(),
        };
        let value = self.browser.issue(&claims);
        self.set_cookie(&value, self.settings.session_ttl.whole_seconds())
    }

    /// A `Set-Cookie` value that removes the browser's session cookie.
    pub(crate) fn cleared_cookie(&self) -> String {
        self.set_cookie("", 0)
    }

    /// The session cookie with `value` for `max_age` seconds: `Secure`
    /// and `__Host-` named when the public URL is HTTPS.
    fn set_cookie(&self, value: &str, max_age: i64) -> String {
        let secure = self.settings.public_url.starts_with("https://");
        let name = if secure { COOKIE_SECURE } else { COOKIE_PLAIN };
        format!(
            "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
            if secure { "; Secure" } else { "" }
        )
    }

    /// The session of the request's access token or cookie (an API key has
    /// none): the credential as the authenticator reads it.
    pub(crate) fn current_session(&self, headers: &HeaderMap) -> Option<Uuid> {
        let now = self.clock.now().unix_timestamp();
        let claims = match self.credential(&Method::GET, headers).ok()? {
            Credential::AccessToken(token) => self.keys.access.verify(&token, now),
            Credential::Cookie(cookie) => self.browser.verify(&cookie, now),
            Credential::ApiKey(_) | Credential::None => return None,
        };
        claims.ok().map(|c| c.session_id)
    }
}

fn refused(message: &str) -> AuthFailure {
    AuthFailure::Unauthenticated(message.to_owned())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// The session cookie's value, under either name.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, |name| {
        name == COOKIE_SECURE || name == COOKIE_PLAIN
    })
}

/// The value of the first cookie the request sends whose name `wanted`
/// accepts: the one reader of `Cookie` headers (the session's, the
/// admin's CSRF and return cookies).
pub(crate) fn cookie(headers: &HeaderMap, wanted: impl Fn(&str) -> bool) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| wanted(name))
        .map(|(_, value)| value)
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive (RFC 9110 §11.1: `bearer`, `BEARER`), and one or more
/// spaces may follow it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc", "bEaReR abc "] {
            assert_eq!(bearer_token(value), Some("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    #[test]
    fn the_origin_is_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://game.example/x/y"),
            "https://game.example"
        );
        assert_eq!(origin_of("http://127.0.0.1:4000"), "http://127.0.0.1:4000");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "theme=dark; kumo_session=abc; other=1".parse().unwrap(),
        );
        assert_eq!(session_cookie(&headers), Some("abc"));
        headers.insert(header::COOKIE, "kumo_sessionx=abc".parse().unwrap());
        assert_eq!(session_cookie(&headers), None);
    }
}
