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
    /// enables no strategy. Links in emails point to `[server] public_url`,
    /// by default the address the server is `listening` on. Mail goes where `[mail]` (or `SMTP_URL`) says,
    /// with the templates in the project's `mail/` folder in place of the
    /// built-in ones. Must run inside a tokio runtime.
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
        let public_url = config
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listening}"));
        let app_name = config
            .project
            .name
            .clone()
            .unwrap_or_else(|| "your game".to_owned());
        // Read whether or not the server-wide limit is on: behind a proxy
        // the auth limits and the audit log need the client's address too.
        let client_ip_header = crate::ratelimit::client_ip_header(&config.server.rate_limit);
        let settings =
            Settings::from_config(&config.auth, client_ip_header, &public_url, &app_name);
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

    fn magic_links(&self) -> magic_link::MagicLinks<'_> {
        magic_link::MagicLinks {
            accounts: self.accounts(),
            keys: &self.keys,
            codes: &self.codes,
            registration: self.settings.registration,
            audited: true,
        }
    }
}

/// How long after it expired a one-time link's row is deleted.
pub const PRUNE_LINKS_AFTER: time::Duration = time::Duration::days(1);
/// How many reloads apart expired links are pruned (about every ten
/// minutes).
const PRUNE_EVERY_TICKS: u32 = 300;

/// Reloads the revoked sessions every [`RELOAD_EVERY`], so a sign-out on
/// another node reaches this one, drops cached users whose record
/// changed on this node, and now and then prunes expired links. Ends when
/// the auth layer is dropped.
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
                if ticks.is_multiple_of(PRUNE_EVERY_TICKS)
                    && let Err(e) = auth.prune_links().await
                {
                    tracing::warn!(error = %e, "could not prune expired sign-in links");
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
