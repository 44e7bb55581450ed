//! CSRF tokens for the admin's forms and htmx requests.
//!
//! Every admin page sets a random `kumo_admin_csrf` cookie (HttpOnly,
//! SameSite=Strict) when the browser has none, and every state-changing
//! request must carry the token for it: a keyed hash of the cookie and of
//! the signed-in session, if any. Another site can neither read the cookie
//! nor compute the hash, and a token made for one session is worthless in
//! another, so a token someone obtained for their own browser cannot be
//! planted in an admin's. Requests carry it as the form field `_csrf` or,
//! from htmx, the `X-CSRF-Token` header; without it they are refused 403.
//!
//! The auth layer's cookie check (a cookie-authorised unsafe request must
//! come from this site: `Sec-Fetch-Site` or `Origin`) still applies on
//! top; the token is what the admin's pages themselves prove.

use axum::http::{HeaderMap, HeaderValue};
use kumo_auth::secret::{self, KeyedHash};
use uuid::Uuid;

/// The cookie holding the browser's random CSRF value.
pub(crate) const COOKIE: &str = "kumo_admin_csrf";
/// Its name over HTTPS: `__Host-` cookies are Secure, for the whole host
/// and set by it alone, so a sibling subdomain cannot plant one.
pub(crate) const COOKIE_SECURE: &str = "__Host-kumo_admin_csrf";
/// The form field a token travels in.
pub(crate) const FIELD: &str = "_csrf";
/// The header htmx sends it in (set on `<body hx-headers>`).
pub(crate) const HEADER: &str = "x-csrf-token";

const LABEL: &[u8] = b"kumo admin csrf v1";

#[derive(Clone, Debug)]
pub(crate) struct CsrfKey(KeyedHash);

impl CsrfKey {
    pub(crate) fn new(secret: &[u8]) -> CsrfKey {
        CsrfKey(KeyedHash::new(secret, LABEL))
    }

    /// The token for the browser whose cookie holds `value`, signed in to
    /// `session` (none before signing in).
    pub(crate) fn token(&self, value: &str, session: Option<Uuid>) -> String {
        self.0.hash(&scope(session), value)
    }

    /// Whether `presented` is the token for this browser and session.
    pub(crate) fn check(&self, value: &str, session: Option<Uuid>, presented: &str) -> bool {
        !value.is_empty() && self.0.matches(&scope(session), value, presented)
    }
}

fn scope(session: Option<Uuid>) -> String {
    session.map_or_else(|| "signed out".to_owned(), |s| s.to_string())
}

/// The browser's CSRF value from its cookies, if it has one: over HTTPS
/// (`secure`) only the `__Host-` cookie counts, so one planted by a
/// sibling subdomain under the plain name is ignored.
pub(crate) fn cookie_value(headers: &HeaderMap, secure: bool) -> Option<String> {
    let wanted = if secure { COOKIE_SECURE } else { COOKIE };
    crate::auth::credentials::cookie(headers, |name| name == wanted)
        .filter(|value| value.len() == 43 && value.bytes().all(is_token_byte))
        .map(str::to_owned)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A fresh value and the `Set-Cookie` that gives it to the browser:
/// `Secure` when the admin is served over HTTPS.
pub(crate) fn new_cookie(secure: bool) -> (String, HeaderValue) {
    let value = secret::random_token();
    let cookie = match secure {
        true => format!("{COOKIE_SECURE}={value}; Path=/; HttpOnly; SameSite=Strict; Secure"),
        false => format!("{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict"),
    };
    let header = HeaderValue::from_str(&cookie).expect("a token is a valid header value");
    (value, header)
}

/// The token a request presents: its header, else its form's field.
pub(crate) fn presented<'a>(headers: &'a HeaderMap, form: Option<&'a str>) -> Option<&'a str> {
    headers.get(HEADER).and_then(|v| v.to_str().ok()).or(form)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn a_token_holds_only_for_its_browser_and_session() {
        let key = CsrfKey::new(b"a secret of thirty-two bytes....");
        let (value, _) = new_cookie(false);
        let session = Uuid::now_v7();
        let token = key.token(&value, Some(session));
        assert!(key.check(&value, Some(session), &token));
        // Another browser, another session, signed out, another server.
        let (other, _) = new_cookie(false);
        assert!(!key.check(&other, Some(session), &token));
        assert!(!key.check(&value, Some(Uuid::now_v7()), &token));
        assert!(!key.check(&value, None, &token));
        let elsewhere = CsrfKey::new(b"another secret of 32 bytes......");
        assert!(!elsewhere.check(&value, Some(session), &token));
        // No cookie, no token.
        assert!(!key.check("", None, &key.token("", None)));
    }

    #[test]
    fn the_cookie_is_read_among_others_and_must_look_like_ours() {
        let (value, set) = new_cookie(true);
        assert!(set.to_str().unwrap().starts_with("__Host-kumo_admin_csrf="));
        assert!(
            set.to_str().unwrap().contains("; Path=/; ")
                && set.to_str().unwrap().contains("Secure")
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}={value}; c=d")).unwrap(),
        );
        assert_eq!(cookie_value(&headers, false), Some(value.clone()));
        // Over HTTPS the plain name does not count.
        assert_eq!(cookie_value(&headers, true), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}=planted; {COOKIE_SECURE}={value}")).unwrap(),
        );
        assert_eq!(cookie_value(&headers, true), Some(value));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("kumo_admin_csrf=short"),
        );
        assert_eq!(cookie_value(&headers, false), None);
    }
}
