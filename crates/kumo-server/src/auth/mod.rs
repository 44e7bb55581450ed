//! Accounts and sign-in: who a request speaks for ([`Auth::authenticate`])
//! and the `/auth/…` routes ([`routes`]).
//!
//! - [`clock`]: the clock token lifetimes are decided against;
//! - [`session`]: sessions with rotating refresh tokens;
//! - [`magic_link`]: sign-in by an emailed link or code, on any device;
//! - [`password`]: passwords (Argon2id off the async workers), resets,
//!   and confirming and changing email addresses;
//! - [`revocations`]: signed-out sessions, so their access tokens stop
//!   working within seconds;
//! - [`credentials`]: the authenticator (access tokens, API keys, the
//!   browser's session cookie) and its cache of signed-in users;
//! - [`limits`]: per-IP and per-account rate limits on the auth routes;
//! - [`audit`]: the audit log;
//! - [`routes`], [`account_routes`] and [`pages`]: HTTP.

mod account_routes;
pub mod audit;
pub mod clock;
pub mod credentials;
pub mod limits;
pub mod magic_link;
pub mod manage;
mod pages;
pub mod password;
pub mod revocations;
pub mod routes;
pub mod session;

use std::sync::{Arc, Weak};

use kumo_auth::access::AccessKey;
use kumo_auth::refresh::RefreshKey;
use kumo_auth::secret::CodeKey;
use kumo_core::project::{AuthSection, Project, Registration};
use kumo_db::query::Engine;
use kumo_db::query::accounts::Accounts;
use kumo_mail::Outbox;
use kumo_mail::templates::Templates;

use self::clock::Clock;
use self::credentials::RecordCache;
use self::limits::Limits;
use self::revocations::{RELOAD_EVERY, Revocations};
use self::session::Keys;

/// Which sign-in strategies `kumo.toml` enables. The routes of one that is
/// not enabled answer 404.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Strategies {
    pub magic_link: bool,
    pub password: bool,
    pub api_key: bool,
}

impl Strategies {
    pub fn from_names(names: &[String]) -> Strategies {
        let has = |name: &str| names.iter().any(|n| n == name);
        Strategies {
            magic_link: has("magic_link"),
            password: has("password"),
            api_key: has("api_key"),
        }
    }

    pub fn any(self) -> bool {
        self.magic_link || self.password || self.api_key
    }
}

/// How the auth layer is set up, from `kumo.toml`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub strategies: Strategies,
    pub registration: Registration,
    pub access_ttl: time::Duration,
    pub session_ttl: time::Duration,
    /// Where players reach the server, without a trailing slash: links in
    /// emails point here, and a browser's unsafe requests must come from
    /// this origin.
    pub public_url: String,
    /// The game's name, for the emails.
    pub app_name: String,
    /// `None`: no auth rate limits (benchmarks, trusted networks).
    pub limits: Option<limits::LimitSettings>,
    /// Behind a reverse proxy, the header holding the client's address
    /// (`[server.rate_limit] client_ip_header`).
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// Whether password accounts, and changed addresses, must confirm
    /// their email before they count.
    pub confirm_email: bool,
    /// The Argon2id cost of new password hashes.
    pub password_cost: kumo_auth::password::Cost,
    /// How long `audit_event` rows are kept (`[auth]
    /// audit_retention_days`); `None` keeps them for ever.
    pub audit_retention: Option<time::Duration>,
    /// Whether coordinators manage players' accounts in the admin
    /// (`[admin] coordinators_manage_users`).
    pub coordinators_manage_users: bool,
}

impl Settings {
    pub fn from_config(
        section: &AuthSection,
        client_ip_header: Option<axum::http::HeaderName>,
        public_url: &str,
        app_name: &str,
    ) -> Settings {
        Settings {
            strategies: Strategies::from_names(&section.strategies),
            registration: section.registration,
            access_ttl: time::Duration::minutes(i64::from(section.access_token_minutes.get())),
            session_ttl: time::Duration::days(i64::from(section.session_days.get())),
            public_url: public_url.trim_end_matches('/').to_owned(),
            app_name: app_name.to_owned(),
            limits: limits::LimitSettings::from_config(&section.rate_limit),
            client_ip_header,
            confirm_email: section.confirm_email,
            password_cost: kumo_auth::password::Cost {
                memory_kib: section.password.memory_kib,
                iterations: section.password.iterations,
                lanes: section.password.lanes,
            },
            audit_retention: (section.audit_retention_days > 0)
                .then(|| time::Duration::days(i64::from(section.audit_retention_days))),
            coordinators_manage_users: true,
        }
    }
}

/// Everything the auth routes and the authenticator share.
pub struct Auth {
    engine: Arc<Engine>,
    pub settings: Settings,
    keys: Keys,
    /// Seals the browser's session cookie: a key of its own, so a cookie
    /// is never an access token nor the other way round.
    browser: AccessKey,
    codes: CodeKey,
    pub revocations: Revocations,
    users: RecordCache,
    sessions: RecordCache,
    pub clock: Clock,
    outbox: Outbox,
    templates: Templates,
    limits: Option<Limits>,
    /// The admin's CSRF tokens: keyed from the same secret.
    pub(crate) admin_csrf: crate::admin::csrf::CsrfKey,
    /// What is audited once a minute rather than every time.
    reports: audit::OncePerMinute,
    hasher: password::Hasher,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("strategies", &self.settings.strategies)
            .finish_non_exhaustive()
    }
}

/// Why the auth layer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "an auth strategy is enabled but the schema has no account resources: run `kumo codegen` and `kumo migrate`"
    )]
    NoAccountResources,
    #[error(transparent)]
    Mail(#[from] kumo_mail::MailError),
    #[error("mail template {0}")]
    Template(#[from] kumo_mail::templates::TemplateError),
    #[error("[auth.password]: {0}")]
    Password(#[from] kumo_auth::password::PasswordError),
}

impl Auth {
    /// The auth layer a project's `kumo.toml` asks for, or `None` when it
    /// enables no strategy. Links in emails point to [`public_url`]. Mail
    /// goes where `[mail]` (or `SMTP_URL`) says, with the templates in the
    /// project's `mail/` folder in place of the built-in ones. Must run
    /// inside a tokio runtime.
    pub fn from_project(
        engine: Arc<Engine>,
        project: &Project,
        secret: &[u8],
        listening: std::net::SocketAddr,
    ) -> Result<Option<Arc<Auth>>, StartError> {
        let config = &project.config;
        if config.auth.strategies.is_empty() {
            return Ok(None);
        }
        let public_url = public_url(config.server.public_url.as_deref(), listening);
        if config.server.public_url.is_none() && listening.ip().is_unspecified() {
            tracing::warn!(
                %listening,
                %public_url,
                "[server] public_url is not set and the server listens on every address: the links in its emails point to {public_url}, which works only on this machine; set [server] public_url in kumo.toml to the address players reach"
            );
        }
        let app_name = config
            .project
            .name
            .clone()
            .unwrap_or_else(|| "your game".to_owned());
        // Read whether or not the server-wide limit is on: behind a proxy
        // the auth limits and the audit log need the client's address too.
        let client_ip_header = crate::ratelimit::client_ip_header(&config.server.rate_limit);
        let mut settings =
            Settings::from_config(&config.auth, client_ip_header, &public_url, &app_name);
        settings.coordinators_manage_users = config.admin.coordinators_manage_users;
        let mail = kumo_mail::Settings::from_config(
            &config.mail,
            std::env::var("SMTP_URL").ok(),
            &project.root,
        )?;
        let templates = Templates::load(Some(&project.root.join("mail")))?;
        let outbox = Outbox::start(mail);
        Auth::start(engine, settings, secret, outbox, templates, Clock::System).map(Some)
    }

    /// The auth layer over `engine`, with every key derived from `secret`
    /// (`KUMO_SECRET`). Starts the task that reloads revoked sessions and
    /// forgets changed users; it ends when the `Auth` is dropped.
    pub fn start(
        engine: Arc<Engine>,
        settings: Settings,
        secret: &[u8],
        outbox: Outbox,
        templates: Templates,
        clock: Clock,
    ) -> Result<Arc<Auth>, StartError> {
        if engine.accounts().is_none() {
            return Err(StartError::NoAccountResources);
        }
        let auth = Arc::new(Auth {
            keys: Keys {
                access: AccessKey::new(secret),
                refresh: RefreshKey::new(secret),
                access_ttl: settings.access_ttl,
                session_ttl: settings.session_ttl,
            },
            browser: AccessKey::for_browser(secret),
            codes: CodeKey::new(secret),
            revocations: Revocations::default(),
            users: RecordCache::default(),
            sessions: RecordCache::default(),
            limits: settings.limits.as_ref().map(Limits::new),
            reports: audit::OncePerMinute::default(),
            admin_csrf: crate::admin::csrf::CsrfKey::new(secret),
            hasher: password::Hasher::new(settings.password_cost)?,
            engine,
            settings,
            clock,
            outbox,
            templates,
        });
        tokio::spawn(keep_fresh(Arc::downgrade(&auth)));
        Ok(auth)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn accounts(&self) -> Accounts<'_> {
        self.engine
            .accounts()
            .expect("Auth::start checked the account resources")
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Reloads the revoked sessions now (tests; the background task does it
    /// every [`RELOAD_EVERY`]).
    pub async fn reload_revocations(&self) -> Result<usize, kumo_db::query::QueryError> {
        self.revocations
            .reload(&self.accounts(), self.keys.access_ttl, self.clock.now())
            .await
    }

    /// Deletes one-time links that expired a day ago or more: every reset
    /// request writes a row, also for addresses with no account, so
    /// without this the table grows with every request ever made. A day's
    /// grace keeps the answers typed (`token_expired`, not `token_invalid`)
    /// and the hourly count of code tries exact. Returns how many went.
    pub async fn prune_links(&self) -> Result<u64, kumo_db::query::QueryError> {
        let before = self.clock.now() - PRUNE_LINKS_AFTER;
        let mut tx = self.accounts().begin().await?;
        let pruned = tx
            .delete(
                "auth_token",
                &[(
                    "expires_at",
                    kumo_db::query::accounts::Test::Below(serde_json::json!(clock::stamp(before))),
                )],
            )
            .await?;
        tx.commit().await?;
        Ok(pruned)
    }

    /// Deletes the audit events older than `[auth] audit_retention_days`
    /// (none when it is 0): anyone can add events (every link request
    /// is one), so without this the log grows for ever. Returns how many
    /// went.
    pub async fn prune_audit_events(&self) -> Result<u64, kumo_db::query::QueryError> {
        let Some(retention) = self.settings.audit_retention else {
            return Ok(0);
        };
        let before = self.clock.now() - retention;
        let mut tx = self.accounts().begin().await?;
        let pruned = tx
            .delete(
                "audit_event",
                &[(
                    "inserted_at",
                    kumo_db::query::accounts::Test::Below(serde_json::json!(clock::stamp(before))),
                )],
            )
            .await?;
        tx.commit().await?;
        Ok(pruned)
    }

    /// What the background task deletes now and then: expired links
    /// ([`Auth::prune_links`]) and old audit events
    /// ([`Auth::prune_audit_events`]). A failure of one is logged and does
    /// not keep the other from running.
    pub async fn prune(&self) {
        if let Err(e) = self.prune_links().await {
            tracing::warn!(error = %e, "could not prune expired sign-in links");
        }
        if let Err(e) = self.prune_audit_events().await {
            tracing::warn!(error = %e, "could not prune old audit events");
        }
    }

    pub(crate) fn magic_links(&self) -> magic_link::MagicLinks<'_> {
        magic_link::MagicLinks {
            accounts: self.accounts(),
            keys: &self.keys,
            codes: &self.codes,
            registration: self.settings.registration,
            audited: true,
        }
    }
}

/// Where players reach the server, without a trailing slash: the links in
/// emails point here. `configured` is `[server] public_url`; without it,
/// the address the server is `listening` on, except that an unspecified
/// one (`0.0.0.0`, `::`) is no address a browser can open, so loopback
/// (`127.0.0.1`, `[::1]`) on the same port stands for it: such links work
/// on this machine only, and [`Auth::from_project`] warns of it.
pub fn public_url(configured: Option<&str>, listening: std::net::SocketAddr) -> String {
    let url = match configured {
        Some(url) => url.to_owned(),
        None => {
            let mut reachable = listening;
            if reachable.ip().is_unspecified() {
                reachable.set_ip(match reachable {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{reachable}")
        }
    };
    url.trim_end_matches('/').to_owned()
}

/// How long after it expired a one-time link's row is deleted.
pub const PRUNE_LINKS_AFTER: time::Duration = time::Duration::days(1);
/// How many reloads apart expired links and old audit events are pruned
/// (about every ten minutes).
const PRUNE_EVERY_TICKS: u32 = 300;

/// Reloads the revoked sessions every [`RELOAD_EVERY`], so a sign-out on
/// another node reaches this one, drops cached users whose record
/// changed on this node, and now and then prunes expired links and old
/// audit events. Ends when the auth layer is dropped.
async fn keep_fresh(auth: Weak<Auth>) {
    let Some(mut changes) = auth.upgrade().map(|a| a.engine.subscribe()) else {
        return;
    };
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let Some(auth) = auth.upgrade() else { return };
                if let Err(e) = auth.reload_revocations().await {
                    tracing::warn!(error = %e, "could not reload revoked sessions");
                }
                auth.forget_idle_limits();
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(PRUNE_EVERY_TICKS) {
                    auth.prune().await;
                }
            }
            change = changes.recv() => {
                let Some(auth) = auth.upgrade() else { return };
                match change {
                    Ok(event) if event.resource == "user" => auth.users.forget(&event.id),
                    // An admin revoking a session through the API: on
                    // this node at once, as the auth routes' revocations
                    // are (the others reload it within RELOAD_EVERY).
                    Ok(event) if event.resource == "session" => {
                        auth.sessions.forget(&event.id);
                        let revoked = !event.record.get("revoked_at").is_none_or(|v| v.is_null());
                        if let (true, Ok(id)) = (revoked, uuid::Uuid::parse_str(&event.id)) {
                            auth.revocations.insert(id, auth.clock.now());
                        }
                    }
                    Ok(_) => {}
                    // Missed some: any of them may have been a user.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => auth.users.clear(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kumo_core::project::AuthSection;

    use super::{Settings, public_url};

    #[test]
    fn audit_retention_comes_from_the_config_and_zero_keeps_events_for_ever() {
        let settings = |days| {
            let section = AuthSection {
                audit_retention_days: days,
                ..AuthSection::default()
            };
            Settings::from_config(&section, None, "http://127.0.0.1:4000", "Game").audit_retention
        };
        assert_eq!(settings(365), Some(time::Duration::days(365)));
        assert_eq!(settings(1), Some(time::Duration::days(1)));
        assert_eq!(settings(0), None);
    }

    #[test]
    fn public_url_is_the_configured_one_without_its_trailing_slash() {
        let listening = "0.0.0.0:4000".parse().unwrap();
        assert_eq!(
            public_url(Some("https://play.example.com/"), listening),
            "https://play.example.com"
        );
    }

    #[test]
    fn public_url_defaults_to_the_listening_address() {
        assert_eq!(
            public_url(None, "127.0.0.1:4000".parse().unwrap()),
            "http://127.0.0.1:4000"
        );
        assert_eq!(
            public_url(None, "192.0.2.10:8080".parse().unwrap()),
            "http://192.0.2.10:8080"
        );
        assert_eq!(
            public_url(None, "[2001:db8::1]:4000".parse().unwrap()),
            "http://[2001:db8::1]:4000"
        );
    }

    /// Regression: a server bound to every address mailed links to
    /// `http://0.0.0.0:4000`, which no browser can open.
    #[test]
    fn an_unspecified_listening_address_becomes_loopback() {
        assert_eq!(
            public_url(None, "0.0.0.0:4000".parse().unwrap()),
            "http://127.0.0.1:4000"
        );
        assert_eq!(
            public_url(None, "[::]:4001".parse().unwrap()),
            "http://[::1]:4001"
        );
    }
}
