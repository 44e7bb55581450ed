//! What the password and email tests share: settings with every strategy
//! at the cheapest Argon2 cost, and a server with the auth layer, the dev
//! mailbox and a manual clock.

use std::sync::Arc;

use kumo_auth::password::Cost;
use kumo_core::project::Registration;
use kumo_server::auth::clock::Clock;
use kumo_server::auth::{Auth, Settings, Strategies};
use time::macros::datetime;

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
