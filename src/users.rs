//! `kumo user`: accounts managed from the command line, through the same
//! account store the auth layer uses, so what the CLI writes is what the
//! server reads (one email spelling, canonical times, one audit log).
//!
//! Each command is one transaction: the change and its `audit_event` row
//! commit together, and locking an account signs out its sessions in the
//! same stroke.

use anyhow::{Context, Result, anyhow, bail};
use kumo_auth::access::AccessKey;
use kumo_auth::refresh::RefreshKey;
use kumo_auth::secret::CodeKey;
use kumo_core::actor::Role;
use kumo_core::project::Project;
use kumo_db::query::accounts::{Accounts, AccountsTx, Test};
use kumo_db::query::{CursorKey, Engine, QueryError, Record};
use kumo_db::runner;
use kumo_server::auth::Strategies;
use kumo_server::auth::clock::stamp;
use kumo_server::auth::magic_link::{MagicLinks, TOKEN_MINUTES};
use kumo_server::auth::manage::{self, Account, By, Locked};
use kumo_server::auth::password::{RESET_MINUTES, insert_token};
use kumo_server::auth::session::{Device, Keys};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::cli::UserCommand;
use crate::ops;

pub async fn run(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Create {
            email,
            role,
            username,
            project,
        } => {
            let email = normalize_email(&email)?;
            let username = username.as_deref().map(normalize_username).transpose()?;
            let project = ops::load_project(&project.dir())?;
            let strategies = Strategies::from_names(&project.config.auth.strategies);
            // With both enabled, the magic link: it signs in at once, and a
            // password can still be set later by a reset.
            let secret = if strategies.magic_link {
                // A link sealed with any other key than the server's would
                // be refused by the server, so a random key is no fallback
                // here.
                Some(ops::configured_secret(&project)?.ok_or_else(|| {
                    anyhow!(
                        "KUMO_SECRET is not set, and the sign-in link must be made with the server's secret. Set it in the project's .env (KUMO_SECRET=..., at least 32 bytes: `openssl rand -hex 32`), the same value `kumo serve` uses."
                    )
                })?)
            } else if strategies.password {
                // A reset token is random and stored as its SHA-256, so
                // nothing here needs the server's secret.
                None
            } else {
                // An account nobody can sign in to would need a second
                // command to be of use; refuse before making it.
                bail!(
                    "`kumo user create` prints a link to sign in with, and [auth] strategies enables neither `magic_link` nor `password`: run `kumo auth add-strategy magic_link` (or `password`), then `kumo codegen` and `kumo migrate`"
                );
            };
            let (engine, first) = match &secret {
                Some(secret) => (
                    open(&project, secret).await?,
                    FirstLink::MagicLink { secret },
                ),
                None => (
                    open_without_secret(&project).await?,
                    FirstLink::PasswordReset,
                ),
            };
            let link = create(
                &project,
                accounts(&engine)?,
                first,
                &email,
                role,
                username.as_deref(),
            )
            .await;
            engine.db.close().await;
            let link = link?;
            say!(
                "Created {email} ({}{}).",
                role.as_str(),
                username
                    .map(|u| format!(", username {u}"))
                    .unwrap_or_default()
            );
            match link {
                Link::MagicLink { url, code } => say!(
                    "One-time sign-in link (valid for {TOKEN_MINUTES} minutes, once):\n  {url}\nOr sign in with {email} and the code {code}."
                ),
                Link::PasswordReset { url } => say!(
                    "The account has no password yet. This link sets its first password (valid for {RESET_MINUTES} minutes, once):\n  {url}"
                ),
            }
        }
        UserCommand::SetRole {
            email,
            role,
            project,
        } => {
            let email = normalize_email(&email)?;
            let engine = open_without_secret(&ops::load_project(&project.dir())?).await?;
            let changed = manage::set_role(
                &accounts(&engine)?,
                Account::Email(&email),
                role,
                &from_cli(&Device::default()),
                OffsetDateTime::now_utc(),
            )
            .await;
            engine.db.close().await;
            match changed? {
                Some(old) if old == role.as_str() => {
                    say!("{email} is already {old}; nothing changed.")
                }
                Some(old) => say!("{email}: {old} → {}", role.as_str()),
                None => bail!(no_such_user(&email)),
            }
        }
        UserCommand::Lock { email, project } => {
            let email = normalize_email(&email)?;
            let engine = open_without_secret(&ops::load_project(&project.dir())?).await?;
            let locked = manage::lock(
                &accounts(&engine)?,
                Account::Email(&email),
                &from_cli(&Device::default()),
                OffsetDateTime::now_utc(),
            )
            .await;
            engine.db.close().await;
            let Locked {
                newly,
                sessions_revoked,
            } = locked?.ok_or_else(|| anyhow!(no_such_user(&email)))?;
            let sessions_revoked = sessions_revoked.len();
            if newly {
                say!("Locked {email}: they cannot sign in or refresh.");
            } else {
                say!("{email} was already locked.");
            }
            say!("Signed out {sessions_revoked} session(s).");
        }
        UserCommand::Unlock { email, project } => {
            let email = normalize_email(&email)?;
            let engine = open_without_secret(&ops::load_project(&project.dir())?).await?;
            let unlocked = manage::unlock(
                &accounts(&engine)?,
                Account::Email(&email),
                &from_cli(&Device::default()),
                OffsetDateTime::now_utc(),
            )
            .await;
            engine.db.close().await;
            match unlocked? {
                Some(true) => say!("Unlocked {email}: they can sign in again."),
                Some(false) => say!("{email} is not locked; nothing changed."),
                None => bail!(no_such_user(&email)),
            }
        }
    }
    Ok(())
}

/// A change made from the command line, for its audit event.
fn from_cli(device: &Device) -> By<'_> {
    By {
        who: json!("cli"),
        device,
    }
}

fn normalize_email(input: &str) -> Result<String> {
    kumo_auth::email::normalize(input).map_err(|why| anyhow!("the email `{}` {why}", input.trim()))
}

/// `input` trimmed and in lower case, as `POST /auth/password/register`
/// takes it, so `--username Bob` makes the same account `bob` that
/// registering as `Bob` would; then held to the rules of `user.username`
/// (crates/kumo-core/src/system/user.toml), checked here so the message
/// names them rather than the database's constraint.
fn normalize_username(input: &str) -> Result<String> {
    let username = input.trim().to_lowercase();
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    if !(3..=16).contains(&username.len()) || !username.chars().all(allowed) {
        bail!(
            "the username `{}` must be 3 to 16 characters of a-z, 0-9 and _",
            input.trim()
        );
    }
    Ok(username)
}

fn no_such_user(email: &str) -> String {
    format!("there is no account with the email {email}; make one with `kumo user create {email}`")
}

/// The project's engine over its database, which must be set up: the
/// account tables come from its migrations.
async fn open(project: &Project, secret: &[u8]) -> Result<Engine> {
    let schema = ops::load_schema(project)?;
    let target = ops::target(project)?;
    if !target.exists().await? {
        bail!("the {} does not exist: run `kumo setup`", target.describe());
    }
    let db = target.connect().await?;
    let migrations = kumo_db::files::read_migrations(&project.migrations_dir())?;
    let status = runner::status(&db, &migrations).await?;
    if !status.pending.is_empty() {
        db.close().await;
        bail!(
            "{} migration(s) are not applied to the {}: {}\nRun: kumo migrate",
            status.pending.len(),
            target.describe(),
            status.pending.join(", ")
        );
    }
    Ok(Engine::new(db, schema, CursorKey::new(secret)))
}

/// [`open`] for the commands that seal nothing: the engine's cursor key is
/// never used by them, so a random one does.
async fn open_without_secret(project: &Project) -> Result<Engine> {
    let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    open(project, &key).await
}

fn accounts(engine: &Engine) -> Result<Accounts<'_>> {
    engine.accounts().ok_or_else(|| {
        anyhow!(
            "no sign-in strategy is enabled, so the project has no accounts: run `kumo auth add-strategy magic_link`, `kumo codegen`, `kumo migrate` first"
        )
    })
}

/// How a new account gets in for the first time: the magic link the
/// server accepts (sealed with its secret), or, when only passwords are
/// enabled, a password-reset link that sets the first password.
enum FirstLink<'a> {
    MagicLink { secret: &'a [u8] },
    PasswordReset,
}

/// The one-time link printed for a new account.
enum Link {
    MagicLink { url: String, code: String },
    PasswordReset { url: String },
}

async fn create(
    project: &Project,
    accounts: Accounts<'_>,
    first: FirstLink<'_>,
    email: &str,
    role: Role,
    username: Option<&str>,
) -> Result<Link> {
    let now = OffsetDateTime::now_utc();
    let mut tx = accounts.begin().await?;
    if tx
        .find_one("user", &[("email", Test::Eq(json!(email)))])
        .await?
        .is_some()
    {
        bail!("an account with the email {email} already exists");
    }
    if let Some(username) = username
        && tx
            .find_one("user", &[("username", Test::Eq(json!(username)))])
            .await?
            .is_some()
    {
        bail!("the username {username} is taken");
    }
    let mut values = vec![("email", json!(email)), ("role", json!(role.as_str()))];
    if let Some(username) = username {
        values.push(("username", json!(username)));
    }
    let user = match tx.insert("user", &values, &stamp(now)).await {
        // Another writer took the email or username since the checks above.
        Err(QueryError::Conflict { message, .. }) => bail!("cannot create {email}: {message}"),
        other => other?,
    };
    audit(
        &mut tx,
        "user_created",
        &user,
        json!({ "by": "cli", "role": role.as_str() }),
        now,
    )
    .await?;

    let secret = match first {
        FirstLink::MagicLink { secret } => secret,
        FirstLink::PasswordReset => {
            // The row `POST /auth/password/reset_request` writes, so the
            // server's reset route and form accept it; in the account's
            // transaction, so a failure leaves no account without a link.
            let token =
                insert_token(&mut tx, "password_reset", email, &user, RESET_MINUTES, now).await?;
            tx.commit().await?;
            return Ok(Link::PasswordReset {
                url: format!("{}/auth/password/reset/{token}", public_url(project)),
            });
        }
    };
    // The link is requested as `POST /auth/magic_link/request` would, so it
    // is the same one-time, fifteen-minute token the server accepts; in
    // the account's transaction, so a failure leaves no account behind.
    let auth = &project.config.auth;
    let keys = Keys {
        access: AccessKey::new(secret),
        refresh: RefreshKey::new(secret),
        access_ttl: time::Duration::minutes(i64::from(auth.access_token_minutes.get())),
        session_ttl: time::Duration::days(i64::from(auth.session_days.get())),
    };
    let links = MagicLinks {
        accounts,
        keys: &keys,
        codes: &CodeKey::new(secret),
        registration: auth.registration,
        // Nobody signs in here; the link's use is audited by the server.
        audited: false,
    };
    let requested = links.request_in(&mut tx, email, now).await?;
    let (token, code) = requested
        .mail
        .context("the new account may not sign in; is it locked?")?;
    tx.commit().await?;
    Ok(Link::MagicLink {
        url: format!("{}/auth/magic_link/{token}", public_url(project)),
        code,
    })
}

/// Where players reach the server, as the links in its emails say
/// ([`kumo_server::auth::public_url`]): `[server] public_url`, else
/// `[server] addr`. Not an address `kumo serve --addr` was given: this
/// command cannot know it, and the help of `kumo user create` says so.
fn public_url(project: &Project) -> String {
    let configured = project.config.server.public_url.as_deref();
    let addr = project.addr();
    match (configured, addr.parse::<std::net::SocketAddr>()) {
        (configured, Ok(listening)) => kumo_server::auth::public_url(configured, listening),
        (Some(url), Err(_)) => url.trim_end_matches('/').to_owned(),
        // A host name (`localhost:4000`) rather than an address.
        (None, Err(_)) => format!("http://{addr}"),
    }
}

/// An `audit_event` row for a change made from the command line: no
/// strategy, no device, always a success (a refused command changes
/// nothing and is not recorded).
async fn audit(
    tx: &mut AccountsTx<'_>,
    kind: &str,
    user: &Record,
    detail: Value,
    now: OffsetDateTime,
) -> Result<(), QueryError> {
    tx.insert(
        "audit_event",
        &[
            ("kind", json!(kind)),
            ("strategy", Value::Null),
            ("outcome", json!("success")),
            ("detail", detail),
            ("user_id", user["id"].clone()),
        ],
        &stamp(now),
    )
    .await?;
    Ok(())
}
