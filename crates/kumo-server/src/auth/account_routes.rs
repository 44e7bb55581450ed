//! The password routes (`/auth/password/…`) and the email routes
//! (`/auth/email/…`): register, sign in, reset a forgotten password (by a
//! mailed link whose page has a form), change a password, change and
//! confirm an address.
//!
//! A reset or confirmation link's `GET` shows a page and consumes nothing,
//! as a magic link's does, so a mail scanner fetching it changes nothing.

// Handlers return an early `Response` as their error, the axum idiom.
#![allow(clippy::result_large_err)]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kumo_db::query::{FieldErrors, QueryError};
use kumo_mail::Message;
use kumo_mail::templates::{Kind, Values};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::audit::Entry;
use super::password::{self, Changed, Failure, Login, Mail, Moved, Registered};
use super::routes::{
    Client, LinkPath, Reply, auth, email_field, link_token, object, session_user, signed_in,
    strings, with_strategy,
};
use super::session::public_user;
use super::{Auth, pages};
use crate::AppState;
use crate::api::{Caller, error_response, query_error_response};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/password/register", post(register))
        .route("/auth/password/sign_in", post(sign_in))
        .route("/auth/password/reset_request", post(reset_request))
        .route("/auth/password/reset", post(reset))
        .route(
            "/auth/password/reset/{token}",
            get(reset_page).post(reset_form),
        )
        .route("/auth/password/change", post(change_password))
        .route("/auth/email/change", post(change_email))
        .route("/auth/email/confirm", post(confirm_email))
        .route(
            "/auth/email/confirm/{token}",
            get(confirm_page).post(confirm_press),
        )
}

fn password_enabled(auth: &Auth) -> bool {
    auth.settings.strategies.password
}

fn failure_response(failure: Failure) -> Response {
    let (code, message) = (failure.code(), failure.to_string());
    let status = match failure {
        Failure::Invalid(fields) => return query_error_response(QueryError::invalid(fields)),
        Failure::Taken(fields) => return query_error_response(QueryError::conflict(fields)),
        Failure::Store(e) => return query_error_response(e),
        Failure::Hash(e) => {
            tracing::error!(error = %e, "password hashing failed");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the password could not be checked; nothing was changed",
                None,
            );
        }
        Failure::Busy(_) => {
            let mut response =
                error_response(StatusCode::SERVICE_UNAVAILABLE, code, &message, None);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        Failure::Credentials
        | Failure::TokenInvalid
        | Failure::TokenExpired
        | Failure::TokenUsed => StatusCode::UNAUTHORIZED,
        Failure::Locked
        | Failure::Unconfirmed
        | Failure::RegistrationClosed
        | Failure::Reauthenticate => StatusCode::FORBIDDEN,
    };
    error_response(status, code, &message, None)
}

/// Sends a one-time link. Rendered even when there is nothing to send, so
/// that answering takes as long either way.
fn mail_link(auth: &Auth, mail: Option<&Mail>, to: &str) {
    let kind = mail.map_or(Kind::PasswordReset, |m| m.kind);
    let (path, minutes) = match kind {
        Kind::EmailConfirmation => ("email/confirm", password::CONFIRM_MINUTES),
        _ => ("password/reset", password::RESET_MINUTES),
    };
    let token = mail.map_or_else(kumo_auth::secret::random_token, |m| m.token.clone());
    let to = mail.map_or(to, |m| m.to.as_str());
    let link = format!("{}/auth/{path}/{token}", auth.settings.public_url);
    let values = Values {
        app: &auth.settings.app_name,
        email: to,
        link: &link,
        code: None,
        minutes: minutes as u32,
        new_email: None,
    };
    match auth.templates.render(kind, &values) {
        Ok(rendered) if mail.is_some() => auth.outbox.send(Message::new(to, rendered)),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, kind = kind.name(), "could not render an email"),
    }
}

/// A user attribute from the body, lower-cased when `lower`, checked
/// against the `user` resource's rules; `None` when absent or null.
fn optional_attribute(
    auth: &Auth,
    body: &Map<String, Value>,
    name: &str,
    lower: bool,
    fields: &mut FieldErrors,
) -> Option<String> {
    let value = match body.get(name) {
        None | Some(Value::Null) => return None,
        Some(Value::String(s)) if lower => json!(s.trim().to_lowercase()),
        Some(Value::String(s)) => json!(s.trim()),
        Some(other) => other.clone(),
    };
    match auth.accounts().check("user", name, &value) {
        Ok(Value::String(s)) => Some(s),
        Ok(_) => None,
        Err(why) => {
            fields.insert(name.to_owned(), vec![why]);
            None
        }
    }
}

// ---- passwords --------------------------------------------------------------

/// `POST /auth/password/register {email, password, username?, display_name?}`.
async fn register(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = with_strategy(&state, password_enabled)?;
    auth.limit(&client, None).await?;
    let body = object(&headers, body).await?;
    let [raw, password] = strings(&body, ["email", "password"])?;
    let email = email_field(raw, "email")?;
    let mut fields = FieldErrors::new();
    let username = optional_attribute(auth, &body, "username", true, &mut fields);
    let display_name = optional_attribute(auth, &body, "display_name", false, &mut fields);
    if !fields.is_empty() {
        return Err(query_error_response(QueryError::invalid(fields)));
    }
    auth.limit_account(&client, format!("email:{email}"))
        .await?;
    let registered = auth
        .register(
            &email,
            password,
            username.as_deref(),
            display_name.as_deref(),
            &client.device,
        )
        .await;
    match registered {
        Ok(Registered::SignedIn(tokens)) => Ok((
            StatusCode::CREATED,
            Json(json!({ "data": tokens.to_json(&auth.engine().catalog) })),
        )
            .into_response()),
        Ok(Registered::Confirm(mail)) => {
            mail_link(auth, mail.as_ref(), &email);
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "ok": true, "confirmation_sent": true })),
            )
                .into_response())
        }
        Err(failure) => {
            auth.audit(Entry {
                kind: "register",
                strategy: Some("password"),
                success: false,
                user_id: None,
                device: &client.device,
                detail: json!({ "reason": failure.code(), "email": email }),
            })
            .await;
            Err(failure_response(failure))
        }
    }
}

/// `POST /auth/password/sign_in {email | username, password}`.
async fn sign_in(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = with_strategy(&state, password_enabled)?;
    auth.limit(&client, None).await?;
    let body = object(&headers, body).await?;
    let by_username = body.contains_key("username") && body.get("email").is_none_or(Value::is_null);
    let login = if by_username {
        let [username, _] = strings(&body, ["username", "password"])?;
        let username = json!(username.trim().to_lowercase());
        match auth.accounts().check("user", "username", &username) {
            Ok(Value::String(u)) => Login::Username(u),
            _ => Login::Impossible,
        }
    } else {
        let [raw, _] = strings(&body, ["email", "password"])?;
        Login::Email(email_field(raw, "email")?)
    };
    // Not trimmed: spaces may be part of a password.
    let password = body["password"].as_str().unwrap_or_default();
    auth.limit_account(&client, login.key()).await?;
    let user = auth.find_login(&login).await.map_err(failure_response)?;
    // Also per account, so that its email and its username do not each
    // bring an allowance of their own.
    if let Some(id) = user.as_ref().and_then(|u| u["id"].as_str()) {
        auth.limit_account(&client, format!("user:{id}")).await?;
    }
    match auth.password_sign_in(user, password, &client.device).await {
        Ok(tokens) => Ok(signed_in(auth, &tokens)),
        Err(refused) => {
            if let Some(mail) = &refused.mail {
                mail_link(auth, Some(mail), &mail.to);
            }
            auth.audit(Entry {
                kind: "sign_in",
                strategy: Some("password"),
                success: false,
                user_id: refused.user_id,
                device: &client.device,
                detail: json!({ "reason": refused.failure.code(), "login": login.to_json() }),
            })
            .await;
            Err(failure_response(refused.failure))
        }
    }
}

/// `POST /auth/password/reset_request {email}`: always 200, whether or
/// not the address has an account.
async fn reset_request(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = with_strategy(&state, password_enabled)?;
    auth.limit(&client, None).await?;
    let body = object(&headers, body).await?;
    let [raw] = strings(&body, ["email"])?;
    let email = email_field(raw, "email")?;
    auth.limit_account(&client, format!("email:{email}"))
        .await?;
    let mail = auth
        .reset_request(&email, &client.device)
        .await
        .map_err(query_error_response)?;
    mail_link(auth, mail.as_ref(), &email);
    Ok(Json(json!({ "ok": true })).into_response())
}

/// Resets the password and forgets the signed-out sessions on this node
/// (the others reload them within seconds); audits a refusal.
async fn reset_with(
    auth: &Auth,
    client: &Client,
    token: &str,
    password: &str,
    open_session: bool,
) -> Result<Option<super::session::Tokens>, Failure> {
    match auth
        .reset_password(token, password, &client.device, open_session)
        .await
    {
        Ok((tokens, revoked)) => {
            auth.forget_sessions(&revoked);
            Ok(tokens)
        }
        Err(failure) => {
            auth.audit(Entry {
                kind: "password_reset",
                strategy: Some("password"),
                success: false,
                user_id: auth.link_owner(token, "password_reset").await,
                device: &client.device,
                detail: json!({ "reason": failure.code() }),
            })
            .await;
            Err(failure)
        }
    }
}

/// `POST /auth/password/reset {token, password}`: a session, with every
/// other device signed out.
async fn reset(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = with_strategy(&state, password_enabled)?;
    auth.limit(&client, None).await?;
    let body = object(&headers, body).await?;
    let [token, password] = strings(&body, ["token", "password"])?;
    let tokens = reset_with(auth, &client, token.trim(), password, true)
        .await
        .map_err(failure_response)?
        .ok_or_else(|| {
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the password was set, but no session was opened; sign in with it",
                None,
            )
        })?;
    Ok(signed_in(auth, &tokens))
}

/// `GET /auth/password/reset/{token}`: the form; consumes nothing.
async fn reset_page(State(state): State<AppState>, path: LinkPath, client: Client) -> Reply {
    let auth = with_strategy(&state, password_enabled)?;
    auth.limit(&client, None).await?;
    if link_token(path).is_none() {
        return Err(pages::failed(
            StatusCode::UNAUTHORIZED,
            "Password not changed",
            "This link is not valid, has expired, or was already used.",
        ));
    }
    Ok(pages::reset_form(
        StatusCode::OK,
        &auth.settings.app_name,
        None,
    ))
}

/// The form's `POST` (`password=…`, form-encoded): sets the password and
/// says to return to the game; a refused password shows the form again.
async fn reset_form(
    State(state): State<AppState>,
    path: LinkPath,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let auth = with_strategy(&state, password_enabled)?;
    let app = &auth.settings.app_name;
    let token = link_token(path).unwrap_or_default();
    if !auth.form_from_own_page(&headers) {
        return Err(pages::failed(
            StatusCode::FORBIDDEN,
            "Password not changed",
            "This form must be sent from its own page. Open the link from your email again.",
        ));
    }
    if let Err(limited) = auth.limit(&client, None).await {
        let page = pages::failed(
            StatusCode::TOO_MANY_REQUESTS,
            "Password not changed",
            "Too many attempts from this network; wait a minute and try again.",
        );
        return Err(with_retry_after(page, &limited));
    }
    let password = form_urlencoded::parse(&body)
        .find(|(name, _)| name == "password")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    match reset_with(auth, &client, &token, &password, false).await {
        Ok(_) => Ok(pages::done(
            "Password changed",
            &format!(
                "Your new password is set and every device was signed out. Return to {app} and sign in with it."
            ),
        )),
        Err(Failure::Invalid(fields)) => {
            let why = fields
                .values()
                .flatten()
                .next()
                .map(|m| format!("The password {m}."))
                .unwrap_or_default();
            Err(pages::reset_form(
                StatusCode::UNPROCESSABLE_ENTITY,
                app,
                Some(&why),
            ))
        }
        Err(failure) => {
            let response = failure_response(failure);
            let status = response.status();
            let message = match status {
                StatusCode::FORBIDDEN => "This account is locked.",
                StatusCode::UNAUTHORIZED => {
                    "This link is not valid, has expired, or was already used. Ask your game for a new one."
                }
                _ => "Something went wrong on the server; try again in a moment.",
            };
            Err(with_retry_after(
                pages::failed(status, "Password not changed", message),
                &response,
            ))
        }
    }
}

/// `POST /auth/password/change {current_password, new_password}`: every
/// other device is signed out; this one stays.
async fn change_password(
    State(state): State<AppState>,
    Caller(actor): Caller,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = with_strategy(&state, password_enabled)?;
    auth.limit(&client, None).await?;
    let user_id = session_user(&actor)?;
    let body = object(&headers, body).await?;
    let [current, new] = strings(&body, ["current_password", "new_password"])?;
    auth.limit_account(&client, format!("user:{user_id}"))
        .await?;
    let keep = auth.current_session(&headers);
    let revoked = auth
        .change_password(&user_id, current, new, keep, &client.device)
        .await
        .map_err(failure_response)?;
    auth.forget_sessions(&revoked);
    Ok(Json(json!({ "ok": true, "signed_out": revoked.len() })).into_response())
}

// ---- email addresses --------------------------------------------------------

/// `POST /auth/email/change {email}`: with `confirm_email`, 202 and a
/// link to the new address; without, 200 and the changed account.
async fn change_email(
    State(state): State<AppState>,
    Caller(actor): Caller,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = auth(&state)?;
    auth.limit(&client, None).await?;
    let user_id = session_user(&actor)?;
    let body = object(&headers, body).await?;
    let [raw] = strings(&body, ["email"])?;
    let email = email_field(raw, "email")?;
    let current_password = match body.get("current_password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.as_str()),
        Some(_) => {
            return Err(super::routes::invalid_field(
                "current_password",
                "must be a string",
            ));
        }
    };
    auth.limit_account(&client, format!("user:{user_id}"))
        .await?;
    let session = auth.current_session(&headers);
    let Changed { user, mail, moved } = auth
        .change_email(&user_id, &email, current_password, session, &client.device)
        .await
        .map_err(failure_response)?;
    if let Some(moved) = &moved {
        tell_old_address(auth, moved);
    }
    if auth.settings.confirm_email {
        mail_link(auth, mail.as_ref(), &email);
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "ok": true, "confirmation_sent": true })),
        )
            .into_response());
    }
    Ok(Json(json!({ "data": public_user(&user, &auth.engine().catalog) })).into_response())
}

/// Confirms an address, and tells the old one when the account moved;
/// audits a refusal.
async fn confirm_with(
    auth: &Auth,
    client: &Client,
    token: &str,
) -> Result<kumo_db::query::Record, Failure> {
    match auth.confirm_email(token, &client.device).await {
        Ok((user, moved)) => {
            if let Some(moved) = &moved {
                tell_old_address(auth, moved);
            }
            Ok(user)
        }
        Err(failure) => {
            auth.audit(Entry {
                kind: "email_confirmed",
                strategy: None,
                success: false,
                user_id: auth.link_owner(token, "email_confirmation").await,
                device: &client.device,
                detail: json!({ "reason": failure.code() }),
            })
            .await;
            Err(failure)
        }
    }
}

/// Mails the address an account moved away from that it did: if the move
/// was not its owner's doing, the owner hears of it.
fn tell_old_address(auth: &Auth, moved: &Moved) {
    let values = Values {
        app: &auth.settings.app_name,
        email: &moved.from,
        link: &auth.settings.public_url,
        code: None,
        minutes: 0,
        new_email: Some(&moved.to),
    };
    match auth.templates.render(Kind::EmailChanged, &values) {
        Ok(rendered) => auth.outbox.send(Message::new(&moved.from, rendered)),
        Err(e) => tracing::error!(error = %e, "could not render the email-changed notice"),
    }
}

/// `POST /auth/email/confirm {token}`: the confirmed account.
async fn confirm_email(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let auth = auth(&state)?;
    auth.limit(&client, None).await?;
    let body = object(&headers, body).await?;
    let [token] = strings(&body, ["token"])?;
    let user = confirm_with(auth, &client, token.trim())
        .await
        .map_err(failure_response)?;
    Ok(Json(json!({ "data": public_user(&user, &auth.engine().catalog) })).into_response())
}

/// `GET /auth/email/confirm/{token}`: a button; consumes nothing.
async fn confirm_page(State(state): State<AppState>, path: LinkPath, client: Client) -> Reply {
    let auth = auth(&state)?;
    auth.limit(&client, None).await?;
    if link_token(path).is_none() {
        return Err(pages::failed(
            StatusCode::UNAUTHORIZED,
            "Email not confirmed",
            "This link is not valid, has expired, or was already used.",
        ));
    }
    Ok(pages::confirm_email(&auth.settings.app_name))
}

/// The button's `POST`.
async fn confirm_press(
    State(state): State<AppState>,
    path: LinkPath,
    client: Client,
    headers: HeaderMap,
) -> Reply {
    let auth = auth(&state)?;
    // No token was ever sent with a path that is not UTF-8: an empty one
    // is refused as not valid, as such a link is.
    let token = link_token(path).unwrap_or_default();
    let title = "Email not confirmed";
    if !auth.form_from_own_page(&headers) {
        return Err(pages::failed(
            StatusCode::FORBIDDEN,
            title,
            "This confirmation must be sent from its own page. Open the link from your email again.",
        ));
    }
    if let Err(limited) = auth.limit(&client, None).await {
        let page = pages::failed(
            StatusCode::TOO_MANY_REQUESTS,
            title,
            "Too many attempts from this network; wait a minute and try again.",
        );
        return Err(with_retry_after(page, &limited));
    }
    match confirm_with(auth, &client, &token).await {
        Ok(user) => Ok(pages::done(
            "Email confirmed",
            &format!(
                "{} is confirmed. Return to {} now.",
                user["email"].as_str().unwrap_or("Your address"),
                auth.settings.app_name
            ),
        )),
        Err(failure) => {
            let response = failure_response(failure);
            let message = match response.status() {
                StatusCode::CONFLICT => "Another account uses this address now.",
                StatusCode::UNAUTHORIZED => {
                    "This link is not valid, has expired, or was already used."
                }
                _ => "Something went wrong on the server; try again in a moment.",
            };
            Err(with_retry_after(
                pages::failed(response.status(), title, message),
                &response,
            ))
        }
    }
}

/// `page` with the `Retry-After` of the JSON answer it stands for (a busy
/// server's 503).
fn with_retry_after(mut page: Response, answer: &Response) -> Response {
    if let Some(wait) = answer.headers().get(header::RETRY_AFTER) {
        page.headers_mut().insert(header::RETRY_AFTER, wait.clone());
    }
    page
}

impl Auth {
    /// Drops sessions signed out by a password change or reset from this
    /// node's caches at once.
    pub(crate) fn forget_sessions(&self, revoked: &[Uuid]) {
        let now = self.clock.now();
        for id in revoked {
            self.revocations.insert(*id, now);
            self.sessions.forget(&id.to_string());
        }
    }
}
