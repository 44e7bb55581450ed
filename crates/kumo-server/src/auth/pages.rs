//! The few HTML pages of the auth layer: a magic link's page (a button, so
//! that a mail scanner fetching the link consumes nothing), what pressing
//! it gives, a password reset's form, an email confirmation's button, and
//! the development mailbox.
//!
//! Every page is sent with a CSP that allows no script and only its own
//! inline style, `Referrer-Policy: same-origin` and `Cache-Control:
//! no-store`. A link's URL holds its token, so it must never reach another
//! site as a referrer; `same-origin` ensures that, where `no-referrer` would
//! also make browsers send `Origin: null` with the page's own form, and a
//! browser without `Sec-Fetch-Site` (older Safari) would then be refused
//! by the same-origin check of the form's `POST`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kumo_mail::Sent;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1d2433}\
button{font-size:1.2rem;padding:.8rem 1.6rem;border:0;border-radius:.5rem;background:#3355dd;color:#fff;cursor:pointer}\
.error{color:#b3261e}article{border:1px solid #ccd;border-radius:.5rem;padding:1rem;margin:1rem 0}\
pre{white-space:pre-wrap;word-break:break-word}small{color:#667}";

/// `text` with HTML's special characters escaped, for text and quoted
/// attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /auth/magic_link/{token}`: a button that posts back to the link.
pub(super) fn confirm_sign_in(app: &str) -> Response {
    page(
        StatusCode::OK,
        &format!("Sign in to {app}"),
        &format!(
            "<h1>Sign in to {}</h1><p>Press the button to finish signing in.</p>\
             <form method=\"post\"><button type=\"submit\">Sign in</button></form>\
             <p><small>If you did not ask to sign in, close this page: nothing happens.</small></p>",
            escape(app)
        ),
    )
}

pub(super) fn signed_in(app: &str) -> Response {
    page(
        StatusCode::OK,
        "Signed in",
        &format!(
            "<h1>You are signed in</h1><p>Return to {} now: it continues by itself.</p>",
            escape(app)
        ),
    )
}

pub(super) fn sign_in_failed(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in failed",
        &format!(
            "<h1>Sign-in failed</h1><p class=\"error\">{}</p>",
            escape(message)
        ),
    )
}

/// A page that says something went wrong, under `title`.
pub(super) fn failed(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p class=\"error\">{}</p>",
            escape(title),
            escape(message)
        ),
    )
}

/// A page that says something worked, under `title`.
pub(super) fn done(title: &str, message: &str) -> Response {
    page(
        StatusCode::OK,
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(message)),
    )
}

/// `GET /auth/password/reset/{token}`: a form for the new password that
/// posts back to the link; `error` is the last try's refusal.
pub(super) fn reset_form(status: StatusCode, app: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"password-error\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        status,
        &format!("New password for {app}"),
        &format!(
            "<h1>Choose a new password for {}</h1>\
             <form method=\"post\"><p><label for=\"password\">New password</label><br>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" \
             required minlength=\"8\" maxlength=\"128\" aria-describedby=\"password-error\"></p>{error}\
             <button type=\"submit\">Set password</button></form>\
             <p><small>A few unrelated words make a strong password. Every device signed in \
             to the account is signed out.</small></p>",
            escape(app)
        ),
    )
}

/// `GET /auth/email/confirm/{token}`: a button that posts back to the link.
pub(super) fn confirm_email(app: &str) -> Response {
    page(
        StatusCode::OK,
        "Confirm your email",
        &format!(
            "<h1>Confirm your email for {}</h1><p>Press the button to confirm this address.</p>\
             <form method=\"post\"><button type=\"submit\">Confirm</button></form>",
            escape(app)
        ),
    )
}

/// `GET /dev/mailbox`: the dev adapter's messages, newest first.
pub(super) fn mailbox(messages: &[Sent]) -> Response {
    let mut body = String::from(
        "<h1>Development mailbox</h1><p><small>Messages the <code>dev</code> mail adapter \
         kept, newest first; as JSON at <a href=\"/dev/mailbox.json\">/dev/mailbox.json</a>.</small></p>",
    );
    if messages.is_empty() {
        body.push_str("<p>No messages yet.</p>");
    }
    for m in messages {
        body.push_str(&format!(
            "<article><p><strong>{}</strong><br><small>to {} at {}</small></p><pre>{}</pre></article>",
            escape(&m.subject),
            escape(&m.to),
            escape(&m.sent_at),
            escape(&m.text)
        ));
    }
    page(StatusCode::OK, "Development mailbox", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
