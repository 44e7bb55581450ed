//! What the password and email tests share: settings with every strategy
//! at the cheapest Argon2 cost, a server with the auth layer, the dev
//! mailbox and a manual clock, and reading that mailbox.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use kumo_auth::password::Cost;
use kumo_core::project::Registration;
use kumo_server::app;
use kumo_server::auth::clock::Clock;
use kumo_server::auth::{Auth, Settings, Strategies};
use serde_json::Value;
use time::macros::datetime;
use tower::ServiceExt;

use crate::harness::TestApi;

/// Loopback, so the dev mailbox answers.
pub(crate) const PUBLIC_URL: &str = "http://127.0.0.1:4000";
/// The cheapest cost Argon2 takes: the flows do not depend on it.
pub(crate) const CHEAP: Cost = Cost {
    memory_kib: 8,
    iterations: 1,
    lanes: 1,
};

/// Every strategy, open registration, no rate limits, at [`CHEAP`].
pub(crate) fn every_strategy(confirm_email: bool) -> Settings {
    Settings {
        strategies: Strategies {
            magic_link: true,
            password: true,
            api_key: true,
        },
        registration: Registration::Open,
        access_ttl: time::Duration::minutes(15),
        session_ttl: time::Duration::days(30),
        public_url: PUBLIC_URL.into(),
        app_name: "Test Game".into(),
        limits: None,
        client_ip_header: None,
        confirm_email,
        password_cost: CHEAP,
        // `[auth] audit_retention_days`' default.
        audit_retention: Some(time::Duration::days(365)),
        coordinators_manage_users: true,
    }
}

/// The avatars test project with the auth layer `settings` describe,
/// keyed by `secret`, on a manual clock.
pub(crate) async fn serving(
    dialect: kumo_db::sql::Dialect,
    settings: Settings,
    secret: &[u8],
) -> (TestApi, Arc<Auth>) {
    let mut api = TestApi::avatars(dialect).await;
    let auth = api.sign_ins(
        settings,
        secret,
        Clock::manual(datetime!(2026-11-22 12:00:00 UTC)),
    );
    (api, auth)
}

/// Status, headers and body text (some answers are HTML pages).
pub(crate) async fn exchange(
    api: &TestApi,
    request: Request<Body>,
) -> (StatusCode, HeaderMap, String) {
    let response = app(api.state.clone()).oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// The dev mailbox, newest first.
pub(crate) async fn mailbox(api: &TestApi) -> Vec<Value> {
    let mut request = Request::get("/dev/mailbox.json")
        .body(Body::empty())
        .unwrap();
    // From this machine: the mailbox answers no one else.
    request.extensions_mut().insert(axum::extract::ConnectInfo(
        "127.0.0.1:50000".parse::<std::net::SocketAddr>().unwrap(),
    ));
    let (status, _, text) = exchange(api, request).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).expect(&text)
}

/// The token of the newest mail to `to` whose link starts with `path`.
pub(crate) async fn link_token(api: &TestApi, to: &str, path: &str) -> Option<String> {
    let prefix = format!("{PUBLIC_URL}{path}");
    mailbox(api).await.iter().find_map(|m| {
        let text = m["text"].as_str()?;
        let at = text.find(&prefix)? + prefix.len();
        (m["to"] == to).then(|| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect()
        })
    })
}

/// [`link_token`], which must be there.
pub(crate) async fn mailed_link(api: &TestApi, to: &str, path: &str) -> String {
    link_token(api, to, path)
        .await
        .unwrap_or_else(|| panic!("no {path} link to {to}"))
}
