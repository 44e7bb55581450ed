//! Passwords: registering, signing in, forgotten and changed passwords.
//!
//! Hashing is Argon2id ([`kumo_auth::password`]) and takes tens of
//! milliseconds of a core, so it never runs on the async workers: the
//! [`Hasher`] runs it on tokio's blocking threads, at most one hash per
//! core at a time, with a bounded queue behind them. A request that finds
//! the queue full is answered 503 with `Retry-After` instead of waiting
//! without bound, so a flood of sign-ins cannot pile up memory or starve
//! the rest of the API.
//!
//! Hashing also runs before a transaction opens, never inside one: on
//! SQLite a write transaction holds the database's one write lock.
//!
//! A sign-in for an unknown account, or one with no password, checks the
//! password against a throwaway hash ([`Passwords::verify_nobody`]), so
//! the answer and its timing are the same as for a wrong password. Whether
//! the account is locked or unconfirmed is said only once the password
//! was right.

use std::sync::Arc;

use kumo_auth::password::{Cost, PasswordError, Passwords};
use kumo_auth::secret;
use kumo_db::query::accounts::{AccountsTx, Set, Test};
use kumo_db::query::{FieldErrors, QueryError, Record};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::Auth;
use super::audit::Entry;
use super::clock::stamp;
use super::session::{self, Device, Tokens};

/// How long a password-reset link works.
pub const RESET_MINUTES: i64 = 60;
/// How long an email-confirmation link works.
pub const CONFIRM_MINUTES: i64 = 24 * 60;
/// How recently an account without a password must have signed in on the
/// session that changes its address: with no password to give again, a
/// fresh sign-in is what shows the owner is at the keyboard.
pub const RECENT_SIGN_IN_MINUTES: i64 = 10;
/// Hashes that may wait for a core, per core, before requests are turned
/// away: a few seconds of work at the default cost.
const QUEUE_PER_CORE: usize = 32;

/// Runs Argon2 off the async workers, one hash per core at a time.
pub struct Hasher {
    passwords: Arc<Passwords>,
    /// Admission: a permit per hash running or waiting.
    queue: Arc<Semaphore>,
    /// A permit per hash running.
    cores: Arc<Semaphore>,
}

/// The hasher's queue is full: 503, try again shortly.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many password checks are waiting; try again in a moment")]
pub struct Busy;

impl Hasher {
    /// A hasher for this machine: a hash per core, [`QUEUE_PER_CORE`]
    /// waiting per core.
    pub fn new(cost: Cost) -> Result<Hasher, PasswordError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Hasher::with_queue(cost, cores, cores * QUEUE_PER_CORE)
    }

    /// A hasher running `parallel` hashes at once with `waiting` more
    /// queued behind them.
    fn with_queue(cost: Cost, parallel: usize, waiting: usize) -> Result<Hasher, PasswordError> {
        Ok(Hasher {
            passwords: Arc::new(Passwords::new(cost)?),
            queue: Arc::new(Semaphore::new(parallel + waiting)),
            cores: Arc::new(Semaphore::new(parallel)),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Passwords) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let _admitted = self.queue.clone().try_acquire_owned().map_err(|_| Busy)?;
        // The permit moves into the blocking task, so a request that goes
        // away while its hash runs still holds the core until it is done.
        let running = self.cores.clone().acquire_owned().await.map_err(|_| Busy)?;
        let passwords = self.passwords.clone();
        tokio::task::spawn_blocking(move || {
            let _running = running;
            work(&passwords)
        })
        .await
        .map_err(|_| Busy)
    }

    /// A new hash of `password`.
    pub async fn hash(&self, password: &str) -> Result<String, Failure> {
        let password = password.to_owned();
        self.run(move |p| p.hash(&password))
            .await?
            .map_err(|e| Failure::Hash(e.to_string()))
    }

    /// Whether `password` matches `stored`; with no stored hash, the same
    /// work and `false`. `Some(new hash)` alongside a match when the stored
    /// one was made with other parameters than today's.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<(bool, Option<String>), Failure> {
        let password = password.to_owned();
        let stored = stored.map(str::to_owned);
        self.run(move |p| match stored {
            None => Ok((p.verify_nobody(&password), None)),
            Some(stored) => {
                let matched = p.verify(&password, &stored)?;
                let rehash = match matched && p.needs_rehash(&stored) {
                    true => Some(p.hash(&password)?),
                    false => None,
                };
                Ok((matched, rehash))
            }
        })
        .await?
        .map_err(|e: PasswordError| Failure::Hash(e.to_string()))
    }
}

/// Why a password flow was refused.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// 422: field errors.
    #[error("invalid value")]
    Invalid(FieldErrors),
    /// 409: an email or username that is taken.
    #[error("already taken")]
    Taken(FieldErrors),
    #[error("the email, username or password is not correct")]
    Credentials,
    #[error("the account is locked")]
    Locked,
    #[error("confirm your email address first: a new confirmation link was sent to it")]
    Unconfirmed,
    #[error("this server does not take new accounts; ask its operator for one")]
    RegistrationClosed,
    #[error(
        "sign in again first: an account without a password changes its address only within 10 minutes of signing in"
    )]
    Reauthenticate,
    #[error("this link is not valid")]
    TokenInvalid,
    #[error("this link has expired; ask for a new one")]
    TokenExpired,
    #[error("this link was already used; ask for a new one")]
    TokenUsed,
    #[error(transparent)]
    Busy(#[from] Busy),
    /// A stored hash that is not an Argon2 hash, or parameters Argon2
    /// refuses: a server fault.
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] QueryError),
}

impl Failure {
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Invalid(_) => "validation_failed",
            Failure::Taken(_) => "conflict",
            Failure::Credentials => "invalid_credentials",
            Failure::Locked => "account_locked",
            Failure::Unconfirmed => "email_not_confirmed",
            Failure::RegistrationClosed => "registration_closed",
            Failure::Reauthenticate => "reauthentication_required",
            Failure::TokenInvalid => "token_invalid",
            Failure::TokenExpired => "token_expired",
            Failure::TokenUsed => "token_used",
            Failure::Busy(_) => "busy",
            Failure::Hash(_) | Failure::Store(_) => "internal",
        }
    }

    fn field(name: &str, message: impl Into<String>) -> Failure {
        Failure::Invalid(FieldErrors::from([(name.to_owned(), vec![message.into()])]))
    }
}

/// A store failure, with a taken unique value as [`Failure::Taken`].
fn stored(e: QueryError) -> Failure {
    match e {
        QueryError::Conflict { fields, .. } => Failure::Taken(fields),
        e => Failure::Store(e),
    }
}

/// A refused password sign-in: why, the account when the login named one
/// (for the audit log), and a confirmation link to mail when the address
/// is unconfirmed.
#[derive(Debug)]
pub struct Refused {
    pub failure: Failure,
    pub user_id: Option<Value>,
    pub mail: Option<Mail>,
}

impl From<Failure> for Refused {
    fn from(failure: Failure) -> Refused {
        Refused {
            failure,
            user_id: None,
            mail: None,
        }
    }
}

/// What a registration did: signed in at once, or mailed a confirmation
/// link first (the answer is the same whether or not the address was new).
#[derive(Debug)]
pub enum Registered {
    SignedIn(Tokens),
    /// A confirmation link for a new account, or a reset link for an
    /// address that already has one (none when that account is locked).
    Confirm(Option<Mail>),
}

/// What an address change did: the account, a confirmation link to mail
/// to the new address (with `confirm_email`), and, when the address
/// changed at once, the move to tell the old address about.
#[derive(Debug)]
pub struct Changed {
    pub user: Record,
    pub mail: Option<Mail>,
    pub moved: Option<Moved>,
}

/// An account's address that changed: its old mailbox is told, so that a
/// stolen session moving an account away does not go unnoticed.
#[derive(Debug, Clone)]
pub struct Moved {
    pub from: String,
    pub to: String,
}

/// A one-time link to mail. Its `Debug` leaves the token out.
#[derive(Clone)]
pub struct Mail {
    pub to: String,
    pub token: String,
    pub kind: kumo_mail::templates::Kind,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("token", &"***")
            .field("kind", &self.kind)
            .finish()
    }
}

/// What a sign-in names: an email address or a username.
#[derive(Debug, Clone)]
pub enum Login {
    Email(String),
    Username(String),
    /// A username no account can have (the wrong length or characters, or
    /// a NUL the database would refuse): refused as an unknown account is,
    /// after the same work.
    Impossible,
}

impl Login {
    /// The rate-limit key of the account it names.
    pub fn key(&self) -> String {
        match self {
            Login::Email(e) => format!("email:{e}"),
            Login::Username(u) => format!("username:{u}"),
            Login::Impossible => "username:".to_owned(),
        }
    }

    /// How the audit log names it.
    pub fn to_json(&self) -> Value {
        match self {
            Login::Email(e) => json!({ "email": e }),
            Login::Username(u) => json!({ "username": u }),
            Login::Impossible => json!({ "username": null }),
        }
    }

    fn test(&self) -> Option<(&'static str, Test)> {
        match self {
            Login::Email(e) => Some(("email", Test::Eq(json!(e)))),
            Login::Username(u) => Some(("username", Test::Eq(json!(u)))),
            Login::Impossible => None,
        }
    }
}

/// Refuses a new password (in `field`) that is too short, too long or too
/// easy to guess, given the account's address and username and the
/// game's name.
fn check_new(
    password: &str,
    field: &str,
    email: &str,
    username: Option<&str>,
    app: &str,
) -> Result<(), Failure> {
    match kumo_auth::password::refusal(password, &personal(email, username, app)) {
        Some(why) => Err(Failure::field(field, why)),
        None => Ok(()),
    }
}

/// What the strength check should not find in a password: the address,
/// its local part, the username and the game's name.
fn personal<'a>(email: &'a str, username: Option<&'a str>, app: &'a str) -> Vec<&'a str> {
    let local = email.split('@').next().unwrap_or(email);
    let mut inputs = vec![email, local, app];
    inputs.extend(username);
    inputs
}

impl Auth {
    /// `POST /auth/password/register`: `email` is normalised, `username`
    /// checked. Without `confirm_email` it signs in at once (409 for a
    /// taken address); with it, it mails a link and says the same for an
    /// address that is taken, whose owner gets a reset link instead.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        username: Option<&str>,
        display_name: Option<&str>,
        device: &Device,
    ) -> Result<Registered, Failure> {
        if self.settings.registration != kumo_core::project::Registration::Open {
            return Err(Failure::RegistrationClosed);
        }
        check_new(
            password,
            "password",
            email,
            username,
            &self.settings.app_name,
        )?;
        let hash = self.hasher.hash(password).await?;
        let now = self.clock.now();
        let mut tx = self.accounts().begin().await?;
        let existing = tx
            .find_one("user", &[("email", Test::Eq(json!(email)))])
            .await?;
        if existing.is_some() && !self.settings.confirm_email {
            return Err(Failure::Taken(FieldErrors::from([(
                "email".to_owned(),
                vec!["is already registered: sign in, or reset the password".to_owned()],
            )])));
        }
        if let Some(user) = existing {
            // Saying "taken" would tell anyone which addresses have
            // accounts; the owner gets a way back in instead.
            let token =
                insert_token(&mut tx, "password_reset", email, &user, RESET_MINUTES, now).await?;
            self.audit_in(
                &mut tx,
                &Entry {
                    kind: "register",
                    strategy: Some("password"),
                    success: false,
                    user_id: Some(user["id"].clone()),
                    device,
                    detail: json!({ "reason": "email_taken", "email": email }),
                },
            )
            .await?;
            tx.commit().await?;
            let mail = user["locked_at"].is_null().then(|| Mail {
                to: email.to_owned(),
                token,
                kind: kumo_mail::templates::Kind::PasswordReset,
            });
            return Ok(Registered::Confirm(mail));
        }
        let mut values = vec![("email", json!(email)), ("password_hash", json!(hash))];
        if let Some(username) = username {
            values.push(("username", json!(username)));
        }
        if let Some(display_name) = display_name {
            values.push(("display_name", json!(display_name)));
        }
        let user = match tx
            .insert("user", &values, &stamp(now))
            .await
            .map_err(stored)
        {
            // A registration of the same address committed meanwhile; with
            // confirmation on, answering 409 would say the address exists.
            Err(Failure::Taken(fields))
                if self.settings.confirm_email && fields.contains_key("email") =>
            {
                return Ok(Registered::Confirm(None));
            }
            other => other?,
        };
        self.audit_in(
            &mut tx,
            &Entry {
                kind: "register",
                strategy: Some("password"),
                success: true,
                user_id: Some(user["id"].clone()),
                device,
                detail: json!({}),
            },
        )
        .await?;
        if self.settings.confirm_email {
            let token = insert_token(
                &mut tx,
                "email_confirmation",
                email,
                &user,
                CONFIRM_MINUTES,
                now,
            )
            .await?;
            tx.commit().await?;
            return Ok(Registered::Confirm(Some(Mail {
                to: email.to_owned(),
                token,
                kind: kumo_mail::templates::Kind::EmailConfirmation,
            })));
        }
        let tokens = session::open(&mut tx, &self.keys, user, device, now).await?;
        tx.commit().await?;
        Ok(Registered::SignedIn(tokens))
    }

    /// The account a password sign-in names, if any.
    pub async fn find_login(&self, login: &Login) -> Result<Option<Record>, Failure> {
        match login.test() {
            Some(test) => Ok(self.accounts().read_one("user", &[test]).await?),
            None => Ok(None),
        }
    }

    /// `POST /auth/password/sign_in`. An unconfirmed address (with
    /// `confirm_email`) is refused with a fresh confirmation link to mail.
    /// `user` is the account `login` names ([`Auth::find_login`]), if any.
    pub async fn password_sign_in(
        &self,
        user: Option<Record>,
        password: &str,
        device: &Device,
    ) -> Result<Tokens, Refused> {
        let stored_hash = user
            .as_ref()
            .and_then(|u| u["password_hash"].as_str())
            .map(str::to_owned);
        let user_id = user.as_ref().map(|u| u["id"].clone());
        let fail = |failure: Failure| Refused {
            failure,
            user_id: user_id.clone(),
            mail: None,
        };
        let (matched, rehash) = self
            .hasher
            .verify(password, stored_hash.as_deref())
            .await
            .map_err(fail)?;
        let Some(user) = user.filter(|_| matched) else {
            return Err(fail(Failure::Credentials));
        };
        if !user["locked_at"].is_null() {
            return Err(fail(Failure::Locked));
        }
        let now = self.clock.now();
        let mut tx = self.accounts().begin().await.map_err(|e| fail(e.into()))?;
        if self.settings.confirm_email && user["email_confirmed_at"].is_null() {
            let email = user["email"].as_str().unwrap_or_default().to_owned();
            let token = insert_token(
                &mut tx,
                "email_confirmation",
                &email,
                &user,
                CONFIRM_MINUTES,
                now,
            )
            .await
            .map_err(|e| fail(e.into()))?;
            tx.commit().await.map_err(|e| fail(e.into()))?;
            let mail = Mail {
                to: email,
                token,
                kind: kumo_mail::templates::Kind::EmailConfirmation,
            };
            return Err(Refused {
                failure: Failure::Unconfirmed,
                user_id,
                mail: Some(mail),
            });
        }
        let user = match rehash {
            // Parameters were raised since this hash was made: store one
            // at today's cost, now that the password is known.
            // Only over the hash just checked, so a change or reset that
            // landed meanwhile is not undone.
            Some(hash) => tx
                .update(
                    "user",
                    &[("password_hash", Set::To(json!(hash)))],
                    &[
                        ("id", Test::Eq(user["id"].clone())),
                        ("password_hash", Test::Eq(json!(stored_hash))),
                    ],
                    &stamp(now),
                )
                .await
                .map_err(|e| fail(e.into()))?
                .pop()
                .unwrap_or(user),
            None => user,
        };
        let tokens = session::open(&mut tx, &self.keys, user, device, now)
            .await
            .map_err(|e| fail(e.into()))?;
        self.audit_in(
            &mut tx,
            &Entry {
                kind: "sign_in",
                strategy: Some("password"),
                success: true,
                user_id: user_id.clone(),
                device,
                detail: json!({}),
            },
        )
        .await
        .map_err(|e| fail(e.into()))?;
        tx.commit().await.map_err(|e| fail(e.into()))?;
        Ok(tokens)
    }

    /// `POST /auth/password/reset_request`: the same work for any address;
    /// the link to mail only when it has an account that is not locked.
    pub async fn reset_request(
        &self,
        email: &str,
        device: &Device,
    ) -> Result<Option<Mail>, QueryError> {
        let now = self.clock.now();
        let mut tx = self.accounts().begin().await?;
        let user = tx
            .find_one("user", &[("email", Test::Eq(json!(email)))])
            .await?;
        let nobody = Record::new();
        let token = insert_token(
            &mut tx,
            "password_reset",
            email,
            user.as_ref().unwrap_or(&nobody),
            RESET_MINUTES,
            now,
        )
        .await?;
        let may_reset = user.as_ref().is_some_and(|u| u["locked_at"].is_null());
        self.audit_in(
            &mut tx,
            &Entry {
                kind: "password_reset_request",
                strategy: Some("password"),
                success: true,
                user_id: user.as_ref().map(|u| u["id"].clone()),
                device,
                detail: json!({ "email": email, "sent": may_reset }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(may_reset.then(|| Mail {
            to: email.to_owned(),
            token,
            kind: kumo_mail::templates::Kind::PasswordReset,
        }))
    }

    /// `POST /auth/password/reset {token, password}`: sets the password,
    /// confirms the address (the link proved the mailbox), signs every
    /// device out, revokes every API key (whoever got in may have made
    /// one), uses up the account's other links, and, when `open_session`,
    /// opens a session for this device (the game's JSON call; the link's
    /// form page has nobody to hand one to). The revoked sessions are
    /// returned so the caller can drop them from the live list.
    pub async fn reset_password(
        &self,
        token: &str,
        password: &str,
        device: &Device,
        open_session: bool,
    ) -> Result<(Option<Tokens>, Vec<Uuid>), Failure> {
        let token_hash = secret::hash(token);
        let by_hash = [
            ("token_hash", Test::Eq(json!(token_hash))),
            ("purpose", Test::Eq(json!("password_reset"))),
        ];
        // Read first, outside a transaction: the strength check needs the
        // account, and hashing must not hold the write lock.
        let row = self
            .accounts()
            .read_one("auth_token", &by_hash)
            .await?
            .ok_or(Failure::TokenInvalid)?;
        let now = self.clock.now();
        check_token(&row, now)?;
        let user = self
            .accounts()
            .read_one("user", &[("id", Test::Eq(row["user_id"].clone()))])
            .await?
            .ok_or(Failure::TokenInvalid)?;
        if !user["locked_at"].is_null() {
            return Err(Failure::Locked);
        }
        check_new(
            password,
            "password",
            user["email"].as_str().unwrap_or_default(),
            user["username"].as_str(),
            &self.settings.app_name,
        )?;
        let hash = self.hasher.hash(password).await?;
        let now = self.clock.now();
        let mut tx = self.accounts().begin().await?;
        // Used or expired while the password was hashed: refused here.
        let row = consume_link(&mut tx, &by_hash, now).await?;
        let mut sets = vec![("password_hash", Set::To(json!(hash)))];
        if user["email_confirmed_at"].is_null() {
            sets.push(("email_confirmed_at", Set::To(json!(stamp(now)))));
        }
        let user = tx
            .update(
                "user",
                &sets,
                &[("id", Test::Eq(row["user_id"].clone()))],
                &stamp(now),
            )
            .await?
            .pop()
            .ok_or(Failure::TokenInvalid)?;
        let id = user["id"].clone();
        let revoked = revoke_all(&mut tx, &id, None, now).await?;
        let keys = revoke_api_keys(&mut tx, &id, now).await?;
        spend_links(&mut tx, &id, &["password_reset", "email_confirmation"], now).await?;
        let tokens = match open_session {
            true => Some(session::open(&mut tx, &self.keys, user, device, now).await?),
            false => None,
        };
        self.audit_in(
            &mut tx,
            &Entry {
                kind: "password_reset",
                strategy: Some("password"),
                success: true,
                user_id: Some(id),
                device,
                detail: json!({ "signed_out": revoked.len(), "api_keys_revoked": keys }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((tokens, revoked))
    }

    /// `POST /auth/password/change`: the current password must be given
    /// (an account without one sets it by a reset link, which proves the
    /// mailbox); every other device is signed out. Returns those sessions.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
        keep_session: Option<Uuid>,
        device: &Device,
    ) -> Result<Vec<Uuid>, Failure> {
        let user = self
            .accounts()
            .read_one("user", &[("id", Test::Eq(json!(user_id)))])
            .await?
            .ok_or(Failure::Credentials)?;
        let Some(stored_hash) = user["password_hash"].as_str() else {
            return Err(Failure::field(
                "current_password",
                "this account has no password yet: ask for a reset link to set one",
            ));
        };
        let (matched, _) = self.hasher.verify(current, Some(stored_hash)).await?;
        if !matched {
            self.audit(Entry {
                kind: "password_change",
                strategy: Some("password"),
                success: false,
                user_id: Some(json!(user_id)),
                device,
                detail: json!({ "reason": "invalid_credentials" }),
            })
            .await;
            return Err(Failure::field("current_password", "is not correct"));
        }
        check_new(
            new,
            "new_password",
            user["email"].as_str().unwrap_or_default(),
            user["username"].as_str(),
            &self.settings.app_name,
        )?;
        let hash = self.hasher.hash(new).await?;
        let now = self.clock.now();
        let mut tx = self.accounts().begin().await?;
        // Only over the hash just checked: a reset that landed while this
        // one hashed must not be undone.
        let changed = tx
            .update(
                "user",
                &[("password_hash", Set::To(json!(hash)))],
                &[
                    ("id", Test::Eq(json!(user_id))),
                    ("password_hash", Test::Eq(json!(stored_hash))),
                ],
                &stamp(now),
            )
            .await?;
        if changed.is_empty() {
            return Err(Failure::field(
                "current_password",
                "the password was changed meanwhile; sign in again",
            ));
        }
        spend_links(&mut tx, &json!(user_id), &["password_reset"], now).await?;
        let revoked = revoke_all(&mut tx, &json!(user_id), keep_session, now).await?;
        self.audit_in(
            &mut tx,
            &Entry {
                kind: "password_change",
                strategy: Some("password"),
                success: true,
                user_id: Some(json!(user_id)),
                device,
                detail: json!({ "signed_out": revoked.len() }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// `POST /auth/email/change {email}`: with `confirm_email`, a link to
    /// the new address, which changes only when it is followed (and the
    /// same answer when the address is taken, so as not to say so);
    /// without, the change at once, with the new address unconfirmed.
    /// `session` is the caller's: an account without a password must have
    /// opened it within [`RECENT_SIGN_IN_MINUTES`].
    pub async fn change_email(
        &self,
        user_id: &str,
        email: &str,
        current_password: Option<&str>,
        session: Option<Uuid>,
        device: &Device,
    ) -> Result<Changed, Failure> {
        // An account with a password proves it again: a stolen access
        // token alone must not move the account to another mailbox.
        let stored_hash = self
            .accounts()
            .read_one("user", &[("id", Test::Eq(json!(user_id)))])
            .await?
            .ok_or(Failure::Credentials)?
            .get("password_hash")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if stored_hash.is_none() {
            self.signed_in_recently(session).await?;
        }
        if let Some(stored_hash) = stored_hash {
            let Some(current) = current_password else {
                return Err(Failure::field("current_password", "is required"));
            };
            if !self.hasher.verify(current, Some(&stored_hash)).await?.0 {
                self.audit(Entry {
                    kind: "email_change",
                    strategy: None,
                    success: false,
                    user_id: Some(json!(user_id)),
                    device,
                    detail: json!({ "reason": "invalid_credentials" }),
                })
                .await;
                return Err(Failure::field("current_password", "is not correct"));
            }
        }
        let now = self.clock.now();
        let mut tx = self.accounts().begin().await?;
        let user = tx
            .find_one("user", &[("id", Test::Eq(json!(user_id)))])
            .await?
            .ok_or(Failure::Credentials)?;
        if user["email"] == json!(email) {
            return Err(Failure::field("email", "is already this account's address"));
        }
        let entry = |confirmed: bool| Entry {
            kind: "email_change",
            strategy: None,
            success: true,
            user_id: Some(json!(user_id)),
            device,
            detail: json!({
                "from": user["email"],
                "to": email,
                "confirmation_sent": confirmed,
            }),
        };
        if self.settings.confirm_email {
            let token = insert_token(
                &mut tx,
                "email_confirmation",
                email,
                &user,
                CONFIRM_MINUTES,
                now,
            )
            .await?;
            self.audit_in(&mut tx, &entry(true)).await?;
            tx.commit().await?;
            let taken = self
                .accounts()
                .read_one("user", &[("email", Test::Eq(json!(email)))])
                .await?
                .is_some();
            let mail = (!taken).then(|| Mail {
                to: email.to_owned(),
                token,
                kind: kumo_mail::templates::Kind::EmailConfirmation,
            });
            return Ok(Changed {
                user,
                mail,
                moved: None,
            });
        }
        let from = user["email"].as_str().unwrap_or_default().to_owned();
        let user = tx
            .update(
                "user",
                &[
                    ("email", Set::To(json!(email))),
                    ("email_confirmed_at", Set::To(Value::Null)),
                ],
                &[("id", Test::Eq(json!(user_id)))],
                &stamp(now),
            )
            .await
            .map_err(stored)?
            .pop()
            .ok_or(Failure::Credentials)?;
        // Links mailed to the old address must not work for the new one.
        spend_links(
            &mut tx,
            &json!(user_id),
            &["password_reset", "email_confirmation"],
            now,
        )
        .await?;
        self.audit_in(&mut tx, &entry(false)).await?;
        tx.commit().await?;
        Ok(Changed {
            user,
            mail: None,
            moved: Some(Moved {
                from,
                to: email.to_owned(),
            }),
        })
    }

    /// Refuses unless `session` (the caller's) was opened by a sign-in
    /// within [`RECENT_SIGN_IN_MINUTES`]; refreshing keeps a session, not
    /// its age.
    async fn signed_in_recently(&self, session: Option<Uuid>) -> Result<(), Failure> {
        let Some(session) = session else {
            return Err(Failure::Reauthenticate);
        };
        let row = self
            .accounts()
            .read_one("session", &[("id", Test::Eq(json!(session)))])
            .await?
            .ok_or(Failure::Reauthenticate)?;
        let since = self.clock.now() - time::Duration::minutes(RECENT_SIGN_IN_MINUTES);
        match row["inserted_at"]
            .as_str()
            .and_then(super::clock::parse_stamp)
        {
            Some(opened) if opened >= since => Ok(()),
            _ => Err(Failure::Reauthenticate),
        }
    }

    /// `POST /auth/email/confirm {token}` and the button on the link's page:
    /// the account's address becomes the one the link was sent to, and is
    /// confirmed; the move from the old address when it was another.
    pub async fn confirm_email(
        &self,
        token: &str,
        device: &Device,
    ) -> Result<(Record, Option<Moved>), Failure> {
        let now = self.clock.now();
        let by_hash = [
            ("token_hash", Test::Eq(json!(secret::hash(token)))),
            ("purpose", Test::Eq(json!("email_confirmation"))),
        ];
        let mut tx = self.accounts().begin().await?;
        let row = consume_link(&mut tx, &by_hash, now).await?;
        let before = tx
            .find_one("user", &[("id", Test::Eq(row["user_id"].clone()))])
            .await?
            .ok_or(Failure::TokenInvalid)?;
        let moved = (before["email"] != row["email"]).then(|| Moved {
            from: before["email"].as_str().unwrap_or_default().to_owned(),
            to: row["email"].as_str().unwrap_or_default().to_owned(),
        });
        let user = tx
            .update(
                "user",
                &[
                    ("email", Set::To(row["email"].clone())),
                    ("email_confirmed_at", Set::To(json!(stamp(now)))),
                ],
                &[("id", Test::Eq(row["user_id"].clone()))],
                &stamp(now),
            )
            .await
            .map_err(stored)?
            .pop()
            .ok_or(Failure::TokenInvalid)?;
        // Whatever else was mailed for this account went to an address
        // that is no longer its own, or is superseded by this one.
        spend_links(
            &mut tx,
            &user["id"],
            &["password_reset", "email_confirmation"],
            now,
        )
        .await?;
        self.audit_in(
            &mut tx,
            &Entry {
                kind: "email_confirmed",
                strategy: None,
                success: true,
                user_id: Some(user["id"].clone()),
                device,
                detail: json!({ "from": moved.as_ref().map(|m| &m.from) }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((user, moved))
    }
}

impl Auth {
    /// The account a link (`token`, made for `purpose`) was mailed for, if
    /// it names one: for auditing a refused use of it.
    pub async fn link_owner(&self, token: &str, purpose: &str) -> Option<Value> {
        let by_hash = [
            ("token_hash", Test::Eq(json!(secret::hash(token)))),
            ("purpose", Test::Eq(json!(purpose))),
        ];
        match self.accounts().read_one("auth_token", &by_hash).await {
            Ok(row) => row.map(|r| r["user_id"].clone()).filter(|id| !id.is_null()),
            Err(_) => None,
        }
    }
}

/// Confirms `user`'s address for its mailbox's proven owner (a magic link
/// was used). Until now nobody had proven the address, so whoever set a
/// password on it, or signed in with that password, may be someone else
/// who registered the address first: the password is cleared and every
/// session and API key of the account revoked, and so are outstanding
/// reset links (the owner sets a password again by a reset link).
///
/// Returns the account and the sessions it signed out.
pub(super) async fn claim_address(
    tx: &mut AccountsTx<'_>,
    user: Record,
    device: &Device,
    now: OffsetDateTime,
) -> Result<(Record, Vec<Uuid>), QueryError> {
    let id = user["id"].clone();
    let had_password = !user["password_hash"].is_null();
    let mut sets = vec![("email_confirmed_at", Set::To(json!(stamp(now))))];
    if had_password {
        sets.push(("password_hash", Set::To(Value::Null)));
    }
    let claimed = tx
        .update("user", &sets, &[("id", Test::Eq(id.clone()))], &stamp(now))
        .await?
        .pop()
        .unwrap_or(user);
    let sessions = revoke_all(tx, &id, None, now).await?;
    let keys = revoke_api_keys(tx, &id, now).await?;
    spend_links(tx, &id, &["password_reset", "email_confirmation"], now).await?;
    if had_password || !sessions.is_empty() || keys > 0 {
        let entry = Entry {
            kind: "address_claimed",
            strategy: Some("magic_link"),
            success: true,
            user_id: Some(id),
            device,
            detail: json!({
                "password_cleared": had_password,
                "signed_out": sessions.len(),
                "api_keys_revoked": keys,
            }),
        };
        super::audit::insert(tx, now, &entry).await?;
    }
    Ok((claimed, sessions))
}

/// Revokes every live API key of `user_id`; how many.
async fn revoke_api_keys(
    tx: &mut AccountsTx<'_>,
    user_id: &Value,
    now: OffsetDateTime,
) -> Result<usize, QueryError> {
    let revoked = tx
        .update(
            "api_key",
            &[("revoked_at", Set::To(json!(stamp(now))))],
            &[
                ("user_id", Test::Eq(user_id.clone())),
                ("revoked_at", Test::IsNull),
            ],
            &stamp(now),
        )
        .await?;
    Ok(revoked.len())
}

/// Uses up the outstanding one-time links of `user_id` for `purposes`,
/// so a link mailed before a password or address changed stops working.
async fn spend_links(
    tx: &mut AccountsTx<'_>,
    user_id: &Value,
    purposes: &[&str],
    now: OffsetDateTime,
) -> Result<(), QueryError> {
    for purpose in purposes {
        tx.update(
            "auth_token",
            &[("used_at", Set::To(json!(stamp(now))))],
            &[
                ("user_id", Test::Eq(user_id.clone())),
                ("purpose", Test::Eq(json!(purpose))),
                ("used_at", Test::IsNull),
            ],
            &stamp(now),
        )
        .await?;
    }
    Ok(())
}

/// A one-time link's row in `tx`, for `user` (an empty record: nobody),
/// good for `minutes`; the token to mail (only its hash is stored).
/// `kumo user create` uses it too, in the new account's transaction.
pub async fn insert_token(
    tx: &mut AccountsTx<'_>,
    purpose: &str,
    email: &str,
    user: &Record,
    minutes: i64,
    now: OffsetDateTime,
) -> Result<String, QueryError> {
    let token = secret::random_token();
    tx.insert(
        "auth_token",
        &[
            ("purpose", json!(purpose)),
            ("token_hash", json!(secret::hash(&token))),
            ("email", json!(email)),
            (
                "expires_at",
                json!(stamp(now + time::Duration::minutes(minutes))),
            ),
            ("user_id", user.get("id").cloned().unwrap_or(Value::Null)),
        ],
        &stamp(now),
    )
    .await?;
    Ok(token)
}

/// Uses up the link `by_hash` finds, in one statement that tests it is
/// unused and unexpired, so of concurrent uses exactly one wins; the
/// others learn why it cannot be used.
async fn consume_link(
    tx: &mut AccountsTx<'_>,
    by_hash: &[(&str, Test)],
    now: OffsetDateTime,
) -> Result<Record, Failure> {
    let mut consume = by_hash.to_vec();
    consume.push(("used_at", Test::IsNull));
    consume.push(("expires_at", Test::Above(json!(stamp(now)))));
    let used = tx
        .update(
            "auth_token",
            &[("used_at", Set::To(json!(stamp(now))))],
            &consume,
            &stamp(now),
        )
        .await?;
    match used.into_iter().next() {
        Some(row) => Ok(row),
        None => {
            let row = tx.find_one("auth_token", by_hash).await?;
            Err(row.map_or(Failure::TokenInvalid, |r| {
                check_token(&r, now).err().unwrap_or(Failure::TokenUsed)
            }))
        }
    }
}

/// Why a link's row cannot be used now, if it cannot.
fn check_token(row: &Record, now: OffsetDateTime) -> Result<(), Failure> {
    if !row["used_at"].is_null() {
        return Err(Failure::TokenUsed);
    }
    if row["user_id"].is_null() {
        // A reset asked for an address with no account: never mailed.
        return Err(Failure::TokenInvalid);
    }
    let expires = row["expires_at"]
        .as_str()
        .and_then(super::clock::parse_stamp);
    match expires {
        Some(at) if now < at => Ok(()),
        _ => Err(Failure::TokenExpired),
    }
}

/// Revokes the live sessions of `user_id` but `keep`, in `tx`.
async fn revoke_all(
    tx: &mut AccountsTx<'_>,
    user_id: &Value,
    keep: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, QueryError> {
    let mut tests = vec![
        ("user_id", Test::Eq(user_id.clone())),
        ("revoked_at", Test::IsNull),
    ];
    if let Some(keep) = keep {
        tests.push(("id", Test::Ne(json!(keep))));
    }
    let rows = tx
        .update(
            "session",
            &[("revoked_at", Set::To(json!(stamp(now))))],
            &tests,
            &stamp(now),
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| row["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_never_shows_its_token_in_debug_output() {
        let mail = Mail {
            to: "a@example.com".into(),
            token: "the-secret-token".into(),
            kind: kumo_mail::templates::Kind::PasswordReset,
        };
        let shown = format!(
            "{mail:?} {:?}",
            Refused {
                failure: Failure::Unconfirmed,
                user_id: None,
                mail: Some(mail.clone()),
            }
        );
        assert!(!shown.contains("the-secret-token"), "{shown}");
        assert!(shown.contains("a@example.com"), "{shown}");
    }

    const CHEAP: Cost = Cost {
        memory_kib: 8,
        iterations: 1,
        lanes: 1,
    };

    #[tokio::test]
    async fn the_hasher_turns_work_away_when_its_queue_is_full() {
        let hasher = Hasher::with_queue(CHEAP, 1, 1).unwrap();
        // Two pieces of work that hold their places until released.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (release_too, held_too) = std::sync::mpsc::channel::<()>();
        let running = hasher.run(move |_| held.recv().is_ok());
        let waiting = hasher.run(move |_| held_too.recv().is_ok());
        tokio::pin!(running, waiting);
        // Poll each once, so they take the running and the waiting place.
        tokio::select! {
            biased;
            _ = &mut running => panic!("cannot finish before it is released"),
            _ = &mut waiting => panic!("cannot finish before it is released"),
            _ = std::future::ready(()) => {}
        }
        // Turned away at once, not queued behind work that cannot finish.
        let third =
            tokio::time::timeout(std::time::Duration::from_secs(10), hasher.hash("a third"));
        assert!(matches!(third.await, Ok(Err(Failure::Busy(_)))));
        release.send(()).unwrap();
        release_too.send(()).unwrap();
        assert!(running.await.unwrap());
        assert!(waiting.await.unwrap());
        // Places come free again.
        let hash = hasher.hash("a third").await.unwrap();
        assert_eq!(
            hasher.verify("a third", Some(&hash)).await.unwrap(),
            (true, None)
        );
        assert_eq!(hasher.verify("a third", None).await.unwrap(), (false, None));
    }
}
