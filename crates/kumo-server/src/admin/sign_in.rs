//! Signing in to the admin, through the auth layer's own flows: a magic
//! link (the page signs itself in once the link is pressed on any device,
//! by polling, or takes the mail's six-digit code) or a password. Success
//! sets the auth layer's browser cookie, as pressing a link's button does.
//! Every attempt counts against the auth rate limits and is audited like
//! the `/auth` routes' own.

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use kumo_db::query::accounts::Test;
use serde_json::json;
use uuid::Uuid;

use super::{Page, form_fields};
use crate::auth::audit::Entry;
use crate::auth::magic_link::{self, Poll};
use crate::auth::password::Login;
use crate::auth::routes::Client;
use crate::auth::session::Tokens;

/// `GET /admin/sign_in`.
pub(super) async fn page(page: Page) -> Response {
    if page.staff().is_ok() {
        return Redirect::to("/admin").into_response();
    }
    sign_in_page(&page, StatusCode::OK, "", None, None)
}

fn sign_in_page(
    page: &Page,
    status: StatusCode,
    email: &str,
    message: Option<&str>,
    error: Option<&str>,
) -> Response {
    let strategies = &page.auth.settings.strategies;
    page.render(
        status,
        "sign_in.html",
        "sign_in",
        "Sign in",
        json!({
            "email": email,
            "message": message,
            "error": error,
            "magic_link": strategies.magic_link,
            "password": strategies.password,
        }),
    )
}

/// A 429 from the auth limits, as a page.
fn limited(page: &Page, email: &str, refusal: Response) -> Response {
    let mut response = sign_in_page(
        page,
        StatusCode::TOO_MANY_REQUESTS,
        email,
        None,
        Some("Too many attempts; wait a minute and try again."),
    );
    if let Some(wait) = refusal.headers().get(header::RETRY_AFTER) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, wait.clone());
    }
    response
}

/// `POST /admin/sign_in/link {email}`: mails a link and a code, and shows
/// the page that waits for either.
pub(super) async fn link(page: Page, client: Client, body: Bytes) -> Response {
    let form = form_fields(&body);
    let raw = form.get("email").map(String::as_str).unwrap_or_default();
    if !page.auth.settings.strategies.magic_link {
        return sign_in_page(
            &page,
            StatusCode::NOT_FOUND,
            raw,
            None,
            Some("Sign-in links are not enabled on this server."),
        );
    }
    let email = match kumo_auth::email::normalize(raw) {
        Ok(email) => email,
        Err(why) => {
            let error = format!("That email {why}.");
            return sign_in_page(
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                raw,
                None,
                Some(&error),
            );
        }
    };
    if let Err(refusal) = page
        .auth
        .limit(&client, Some(format!("email:{email}")))
        .await
    {
        return limited(&page, &email, refusal);
    }
    match page
        .auth
        .request_magic_link(&email, &client.device, None)
        .await
    {
        Ok(requested) => link_sent(
            &page,
            StatusCode::OK,
            &email,
            Some(&requested.poll_id),
            &requested.poll_secret,
            None,
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not ask for an admin sign-in link");
            sign_in_page(
                &page,
                StatusCode::SERVICE_UNAVAILABLE,
                &email,
                None,
                Some("The link could not be sent; try again in a moment."),
            )
        }
    }
}

fn link_sent(
    page: &Page,
    status: StatusCode,
    email: &str,
    poll_id: Option<&Uuid>,
    poll_secret: &str,
    error: Option<&str>,
) -> Response {
    page.render(
        status,
        "link_sent.html",
        "sign_in",
        "Check your email",
        json!({
            "email": email,
            "poll_id": poll_id,
            "poll_secret": poll_secret,
            "hx_vals": json!({ "id": poll_id, "secret": poll_secret }).to_string(),
            "interval": magic_link::POLL_INTERVAL,
            "error": error,
        }),
    )
}

/// `POST /admin/sign_in/code {email, code}`.
pub(super) async fn code(page: Page, client: Client, body: Bytes) -> Response {
    let form = form_fields(&body);
    let raw = form.get("email").map(String::as_str).unwrap_or_default();
    let code = form
        .get("code")
        .map(String::as_str)
        .unwrap_or_default()
        .trim();
    let Ok(email) = kumo_auth::email::normalize(raw) else {
        return sign_in_page(
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            raw,
            None,
            Some("Ask for a new link with your email address."),
        );
    };
    if let Err(refusal) = page
        .auth
        .limit(&client, Some(format!("email:{email}")))
        .await
    {
        return limited(&page, &email, refusal);
    }
    let now = page.auth.clock.now();
    let result = page
        .auth
        .magic_links()
        .sign_in_with_code(&email, code, &client.device, now)
        .await;
    match result {
        Ok(tokens) => signed_in(&page, &tokens, false),
        Err(failure) => {
            audit_failure(&page, &client, "magic_link", failure.code(), Some(&email)).await;
            let status = match failure {
                magic_link::Failure::Locked => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            // The page keeps waiting for the link as before the wrong code.
            let poll_id = form.get("poll_id").and_then(|id| Uuid::parse_str(id).ok());
            let poll_secret = form
                .get("poll_secret")
                .map(String::as_str)
                .unwrap_or_default();
            link_sent(
                &page,
                status,
                &email,
                poll_id.as_ref(),
                poll_secret,
                Some(&failure.to_string()),
            )
        }
    }
}

/// `POST /admin/sign_in/poll {id, secret}` (htmx, every few seconds):
/// nothing while the link is unused; once it is pressed, this browser is
/// signed in and sent to the dashboard. A poll that can no longer succeed
/// answers 286, which stops htmx polling.
pub(super) async fn poll(page: Page, client: Client, body: Bytes) -> Response {
    let form = form_fields(&body);
    if let Err(refusal) = page.auth.limit_poll(&client).await {
        return refusal;
    }
    let id = form
        .get("id")
        .and_then(|id| Uuid::parse_str(id.trim()).ok());
    let secret = form.get("secret").map(String::as_str).unwrap_or_default();
    let Some(id) = id else {
        return stop_polling();
    };
    let now = page.auth.clock.now();
    match page
        .auth
        .magic_links()
        .poll(id, secret, &client.device, now)
        .await
    {
        Ok(Poll::Pending) => StatusCode::NO_CONTENT.into_response(),
        Ok(Poll::SignedIn(tokens)) => signed_in(&page, &tokens, true),
        Err(failure) => {
            audit_failure(&page, &client, "magic_link", failure.code(), None).await;
            stop_polling()
        }
    }
}

/// htmx's "stop polling" status.
fn stop_polling() -> Response {
    StatusCode::from_u16(286)
        .expect("286 is a valid status")
        .into_response()
}

/// `POST /admin/sign_in/password {email, password}`.
pub(super) async fn password(page: Page, client: Client, body: Bytes) -> Response {
    let form = form_fields(&body);
    let raw = form.get("email").map(String::as_str).unwrap_or_default();
    if !page.auth.settings.strategies.password {
        return sign_in_page(
            &page,
            StatusCode::NOT_FOUND,
            raw,
            None,
            Some("Passwords are not enabled on this server."),
        );
    }
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    let login = match kumo_auth::email::normalize(raw) {
        Ok(email) => Login::Email(email),
        Err(_) => Login::Impossible,
    };
    if let Err(refusal) = page.auth.limit(&client, Some(login.key())).await {
        return limited(&page, raw, refusal);
    }
    let refused =
        |status: StatusCode, message: &str| sign_in_page(&page, status, raw, None, Some(message));
    let user = match page.auth.find_login(&login).await {
        Ok(user) => user,
        Err(e) => {
            tracing::error!(error = %e, "could not look up an admin sign-in");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in failed on the server; try again in a moment.",
            );
        }
    };
    if let Some(id) = user.as_ref().and_then(|u| u["id"].as_str())
        && let Err(refusal) = page.auth.limit_account(&client, format!("user:{id}")).await
    {
        return limited(&page, raw, refusal);
    }
    match page
        .auth
        .password_sign_in(user, password, &client.device)
        .await
    {
        Ok(tokens) => signed_in(&page, &tokens, false),
        Err(refusal) => {
            page.auth
                .audit(Entry {
                    kind: "sign_in",
                    strategy: Some("password"),
                    success: false,
                    user_id: refusal.user_id,
                    device: &client.device,
                    detail: json!({ "reason": refusal.failure.code(), "login": login.to_json(), "admin": true }),
                })
                .await;
            let status = match refusal.failure.code() {
                "account_locked" | "email_not_confirmed" => StatusCode::FORBIDDEN,
                "busy" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            };
            refused(status, &refusal.failure.to_string())
        }
    }
}

async fn audit_failure(
    page: &Page,
    client: &Client,
    strategy: &str,
    reason: &str,
    email: Option<&str>,
) {
    page.auth
        .audit(Entry {
            kind: "sign_in",
            strategy: Some(strategy),
            success: false,
            user_id: None,
            device: &client.device,
            detail: json!({ "reason": reason, "email": email, "admin": true }),
        })
        .await;
}

/// Signs this browser in with `tokens`' session: the auth layer's cookie,
/// then the dashboard (by htmx's redirect header when `htmx`).
fn signed_in(page: &Page, tokens: &Tokens, htmx: bool) -> Response {
    let cookie = page.auth.browser_cookie(tokens, page.auth.clock.now());
    // Back to the page asked for before signing in (checked to be an
    // admin address when read), once.
    let target = page.after_sign_in();
    let mut response = if htmx {
        let mut r = StatusCode::OK.into_response();
        if let Ok(target) = HeaderValue::from_str(target) {
            r.headers_mut().insert("hx-redirect", target);
        }
        r
    } else {
        Redirect::to(target).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    page.set_return_cookie(&mut response, "", 0);
    page.with_cookie(response)
}

/// `POST /admin/sign_out`: ends this browser's session.
pub(super) async fn sign_out(page: Page, client: Client) -> Response {
    if let Some(session) = page.session {
        let revoked = page
            .auth
            .revoke(&[("id", Test::Eq(json!(session)))], |_| {
                Some(Entry {
                    kind: "sign_out",
                    strategy: None,
                    success: true,
                    user_id: page.actor.id().map(|id| json!(id)),
                    device: &client.device,
                    detail: json!({ "session_id": session, "admin": true }),
                })
            })
            .await;
        match revoked {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "could not sign an admin session out");
                return page.message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not signed out",
                    "Signing out failed on the server; try again in a moment.",
                    Some("/admin"),
                );
            }
        }
    }
    let mut response = Redirect::to("/admin/sign_in").into_response();
    if let Ok(value) = HeaderValue::from_str(&page.auth.cleared_cookie()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    page.with_cookie(response)
}
