//! Magic links: sign in by a link or a six-digit code sent by email, on
//! this device or another (the game polls while the player taps the link
//! on a phone).
//!
//! A request always does the same work and answers the same thing, whether
//! or not the address has an account: a token row is written and a mail
//! rendered either way, and the mail is sent only when the address may sign
//! in (it has an account, or `registration = "open"`). So neither the
//! answer nor its timing says which addresses exist.
//!
//! Consuming is one statement that tests `used_at IS NULL`, so of many
//! concurrent uses of one token exactly one signs in. A code is compared
//! with the address's [`CODE_LINKS`] newest live links (the player may
//! type an earlier mail's code), and each link's code with at most
//! [`CODE_ATTEMPTS`] tries, counted in one statement too. The poll secret
//! is collected once, before the link expires: the device that polls gets
//! its own session.

use kumo_auth::secret::{self, CodeKey};
use kumo_core::project::Registration;
use kumo_db::query::QueryError;
use kumo_db::query::Record;
use kumo_db::query::accounts::{Accounts, AccountsTx, Order, Set, Test};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit;
use super::clock::{parse_stamp, stamp};
use super::session::{self, Device, Keys, Tokens};

/// Tries a token's code allows before it is refused for good.
pub const CODE_ATTEMPTS: i64 = 5;
/// Code tries one address may make in an hour, over all its links: the
/// link in the mail still works after it.
pub const CODE_ATTEMPTS_PER_HOUR: i64 = 10;
/// How many of an address's newest live links a code is compared with: a
/// player who asked twice may type either mail's code, and a guesser who
/// asks for many links gains at most this many chances per try.
pub const CODE_LINKS: u32 = 3;
/// How long a link and its code work.
pub const TOKEN_MINUTES: i64 = 15;
/// How often the game should poll, in seconds.
pub const POLL_INTERVAL: u32 = 2;

/// What a request made: the poll handle always, and the secrets to mail
/// when the address may sign in. Its `Debug` leaves the secrets out.
#[derive(Clone)]
pub struct Requested {
    pub poll_id: Uuid,
    pub poll_secret: String,
    /// `(token, code)` to put in the mail; `None`: send nothing.
    pub mail: Option<(String, String)>,
    /// The account with the address, if there is one (for the audit log).
    pub user_id: Option<Value>,
}

impl std::fmt::Debug for Requested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requested")
            .field("poll_id", &self.poll_id)
            .field("poll_secret", &"***")
            .field("mail", &self.mail.as_ref().map(|_| "***"))
            .field("user_id", &self.user_id)
            .finish()
    }
}

/// Why a link, code or poll was refused.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("this sign-in link or code is not valid")]
    Invalid,
    #[error("this sign-in link or code has expired; ask for a new one")]
    Expired,
    #[error("this sign-in link or code was already used; ask for a new one")]
    Used,
    #[error("the account is locked")]
    Locked,
    #[error(transparent)]
    Store(#[from] QueryError),
}

impl Failure {
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Invalid => "token_invalid",
            Failure::Expired => "token_expired",
            Failure::Used => "token_used",
            Failure::Locked => "account_locked",
            Failure::Store(_) => "internal",
        }
    }
}

/// What a poll finds.
#[derive(Debug)]
pub enum Poll {
    /// Not used yet: poll again.
    Pending,
    SignedIn(Tokens),
}

/// What the magic-link flows need.
#[derive(Clone, Copy)]
pub struct MagicLinks<'a> {
    pub accounts: Accounts<'a>,
    pub keys: &'a Keys,
    pub codes: &'a CodeKey,
    pub registration: Registration,
    /// Whether a successful sign-in writes its audit event in its own
    /// transaction (the server's routes; a failed one is audited by the
    /// caller, since its transaction is rolled back).
    pub audited: bool,
}

impl MagicLinks<'_> {
    /// `POST /auth/magic_link/request`: `email` is already normalised.
    pub async fn request(&self, email: &str, now: OffsetDateTime) -> Result<Requested, QueryError> {
        let mut tx = self.accounts.begin().await?;
        let requested = self.request_in(&mut tx, email, now).await?;
        tx.commit().await?;
        Ok(requested)
    }

    /// [`MagicLinks::request`] in `tx`, so a link can commit with what
    /// made it (`kumo user create`: the account and its first link).
    pub async fn request_in(
        &self,
        tx: &mut AccountsTx<'_>,
        email: &str,
        now: OffsetDateTime,
    ) -> Result<Requested, QueryError> {
        let (codes, registration) = (self.codes, self.registration);
        let token = secret::random_token();
        let code = secret::six_digit_code();
        let poll_id = Uuid::now_v7();
        let poll_secret = secret::random_token();
        // The code's hash is keyed by the token's id, chosen here.
        let token_id = Uuid::now_v7();
        let user = tx
            .find_one("user", &[("email", Test::Eq(json!(email)))])
            .await?;
        let user_id = user.as_ref().map(|u| u["id"].clone());
        let may_sign_in = match &user {
            Some(user) => user["locked_at"].is_null(),
            None => registration == Registration::Open,
        };
        tx.insert(
            "auth_token",
            &[
                ("id", json!(token_id)),
                ("purpose", json!("magic_link")),
                ("token_hash", json!(secret::hash(&token))),
                ("email", json!(email)),
                ("code_hash", json!(codes.hash(&token_id.to_string(), &code))),
                ("poll_id", json!(poll_id)),
                ("poll_secret_hash", json!(secret::hash(&poll_secret))),
                (
                    "expires_at",
                    json!(stamp(now + time::Duration::minutes(TOKEN_MINUTES))),
                ),
                ("user_id", user_id.clone().unwrap_or(Value::Null)),
            ],
            &stamp(now),
        )
        .await?;
        Ok(Requested {
            poll_id,
            poll_secret,
            mail: may_sign_in.then_some((token, code)),
            user_id,
        })
    }

    /// `POST /auth/magic_link/sign_in {token}`, and the button on the link's
    /// page.
    pub async fn sign_in_with_token(
        &self,
        token: &str,
        device: &Device,
        now: OffsetDateTime,
    ) -> Result<Tokens, Failure> {
        match self.sign_in_with_token_once(token, device, now).await {
            Err(e) if made_the_account_meanwhile(&e) => {
                self.sign_in_with_token_once(token, device, now).await
            }
            other => other,
        }
    }

    async fn sign_in_with_token_once(
        &self,
        token: &str,
        device: &Device,
        now: OffsetDateTime,
    ) -> Result<Tokens, Failure> {
        let (accounts, keys, registration) = (&self.accounts, self.keys, self.registration);
        let hash = secret::hash(token);
        let mut tx = accounts.begin().await?;
        let used = tx
            .update(
                "auth_token",
                &[("used_at", Set::To(json!(stamp(now))))],
                &[
                    ("token_hash", Test::Eq(json!(hash))),
                    ("purpose", Test::Eq(json!("magic_link"))),
                    ("used_at", Test::IsNull),
                    ("expires_at", Test::Above(json!(stamp(now)))),
                ],
                &stamp(now),
            )
            .await?;
        let Some(row) = used.into_iter().next() else {
            let found = tx
                .find_one(
                    "auth_token",
                    &[
                        ("token_hash", Test::Eq(json!(hash))),
                        ("purpose", Test::Eq(json!("magic_link"))),
                    ],
                )
                .await?;
            return Err(why_not(found.as_ref()));
        };
        let tokens = finish(&mut tx, keys, registration, &row, device, now).await?;
        self.audit_success(&mut tx, &tokens, device, now).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// `POST /auth/magic_link/sign_in {email, code}`: the code of any of
    /// `email`'s [`CODE_LINKS`] newest live links (the player may type the
    /// code of an earlier mail), each compared with at most
    /// [`CODE_ATTEMPTS`] tries.
    pub async fn sign_in_with_code(
        &self,
        email: &str,
        code: &str,
        device: &Device,
        now: OffsetDateTime,
    ) -> Result<Tokens, Failure> {
        match self.sign_in_with_code_once(email, code, device, now).await {
            Err(e) if made_the_account_meanwhile(&e) => {
                self.sign_in_with_code_once(email, code, device, now).await
            }
            other => other,
        }
    }

    async fn sign_in_with_code_once(
        &self,
        email: &str,
        code: &str,
        device: &Device,
        now: OffsetDateTime,
    ) -> Result<Tokens, Failure> {
        let (accounts, keys, codes, registration) =
            (&self.accounts, self.keys, self.codes, self.registration);
        let mut tx = accounts.begin().await?;
        // Each link allows CODE_ATTEMPTS tries, and asking for links is
        // free: without a cap per address, guessing would go on link
        // after link. The tries of the last hour's links are counted.
        let recent = tx
            .find(
                "auth_token",
                &[
                    ("email", Test::Eq(json!(email))),
                    ("purpose", Test::Eq(json!("magic_link"))),
                    (
                        "inserted_at",
                        Test::Above(json!(stamp(now - time::Duration::hours(1)))),
                    ),
                ],
                None,
                None,
            )
            .await?;
        let tries: i64 = recent.iter().map(attempts).sum();
        if tries >= CODE_ATTEMPTS_PER_HOUR {
            return Err(Failure::Invalid);
        }
        // Ids are UUIDv7, so the greatest is the newest link, also among
        // links made within one clock tick.
        let mut live = tx
            .find(
                "auth_token",
                &[
                    ("email", Test::Eq(json!(email))),
                    ("purpose", Test::Eq(json!("magic_link"))),
                    ("used_at", Test::IsNull),
                    ("expires_at", Test::Above(json!(stamp(now)))),
                ],
                Some(("id", Order::Descending)),
                Some(CODE_LINKS),
            )
            .await?;
        let Some(newest) = live.first() else {
            return Err(why_not_code(codes, &recent, code, now));
        };
        // A try is counted once, on the newest live link, before any code
        // is compared, in one statement, so parallel guesses cannot share
        // an attempt. The newest link saw the fewest tries of the live
        // ones, so when it has none left, none has.
        let counted = tx
            .update(
                "auth_token",
                &[("code_attempts", Set::Add(1))],
                &[
                    ("id", Test::Eq(newest["id"].clone())),
                    ("used_at", Test::IsNull),
                    ("code_attempts", Test::Below(json!(CODE_ATTEMPTS))),
                ],
                &stamp(now),
            )
            .await?;
        let Some(counted) = counted.into_iter().next() else {
            return Err(Failure::Invalid);
        };
        live[0] = counted;
        // Every live code is compared (no early return), so the time taken
        // does not say which mail's code matched.
        let matching: Vec<&Record> = live
            .iter()
            .filter(|link| {
                let id = link["id"].as_str().unwrap_or_default();
                let stored = link["code_hash"].as_str().unwrap_or_default();
                codes.matches(id, code, stored)
            })
            .collect();
        let matched = matching
            .into_iter()
            .find(|link| tries_seen(link, &recent, &live) <= CODE_ATTEMPTS);
        let Some(matched) = matched else {
            // The failed try stays counted.
            tx.commit().await?;
            return Err(why_not_code(codes, &recent, code, now));
        };
        let used = tx
            .update(
                "auth_token",
                &[("used_at", Set::To(json!(stamp(now))))],
                &[
                    ("id", Test::Eq(matched["id"].clone())),
                    ("used_at", Test::IsNull),
                    ("expires_at", Test::Above(json!(stamp(now)))),
                ],
                &stamp(now),
            )
            .await?;
        let Some(row) = used.into_iter().next() else {
            return Err(Failure::Used);
        };
        let tokens = finish(&mut tx, keys, registration, &row, device, now).await?;
        self.audit_success(&mut tx, &tokens, device, now).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// `POST /auth/magic_link/poll {id, secret}`.
    pub async fn poll(
        &self,
        poll_id: Uuid,
        poll_secret: &str,
        device: &Device,
        now: OffsetDateTime,
    ) -> Result<Poll, Failure> {
        let (accounts, keys) = (&self.accounts, self.keys);
        let secret_hash = secret::hash(poll_secret);
        let mut tx = accounts.begin().await?;
        let row = tx
            .find_one("auth_token", &[("poll_id", Test::Eq(json!(poll_id)))])
            .await?
            .ok_or(Failure::Invalid)?;
        match row["poll_secret_hash"].as_str() {
            Some(stored) if secret::equal(stored, &secret_hash) => {}
            // Collected already (the hash is cleared when it is) or wrong.
            Some(_) => return Err(Failure::Invalid),
            None => return Err(Failure::Used),
        }
        if row["used_at"].is_null() {
            return match expired(&row, now) {
                true => Err(Failure::Expired),
                false => Ok(Poll::Pending),
            };
        }
        // The session waits for its device only as long as the link would
        // have: a handle found later (in a log, a crash dump) opens nothing.
        if expired(&row, now) {
            return Err(Failure::Expired);
        }
        let collected = tx
            .update(
                "auth_token",
                &[("poll_secret_hash", Set::To(Value::Null))],
                &[
                    ("id", Test::Eq(row["id"].clone())),
                    ("poll_secret_hash", Test::Eq(json!(secret_hash))),
                    ("expires_at", Test::Above(json!(stamp(now)))),
                ],
                &stamp(now),
            )
            .await?;
        if collected.is_empty() {
            return Err(Failure::Used);
        }
        let user = tx
            .find_one("user", &[("id", Test::Eq(row["user_id"].clone()))])
            .await?
            .ok_or(Failure::Invalid)?;
        if !user["locked_at"].is_null() {
            return Err(Failure::Locked);
        }
        let tokens = session::open(&mut tx, keys, user, device, now).await?;
        self.audit_success(&mut tx, &tokens, device, now).await?;
        tx.commit().await?;
        Ok(Poll::SignedIn(tokens))
    }
}

impl MagicLinks<'_> {
    async fn audit_success(
        &self,
        tx: &mut AccountsTx<'_>,
        tokens: &Tokens,
        device: &Device,
        now: OffsetDateTime,
    ) -> Result<(), QueryError> {
        if !self.audited {
            return Ok(());
        }
        let entry = audit::Entry {
            kind: "sign_in",
            strategy: Some("magic_link"),
            success: true,
            user_id: tokens.user.get("id").cloned(),
            device,
            detail: json!({}),
        };
        audit::insert(tx, now, &entry).await
    }
}

/// After a token was consumed: the account (made now if registration is
/// open), its email confirmed, the token tied to it, and a session.
async fn finish(
    tx: &mut AccountsTx<'_>,
    keys: &Keys,
    registration: Registration,
    token: &Record,
    device: &Device,
    now: OffsetDateTime,
) -> Result<Tokens, Failure> {
    let email = token["email"].clone();
    let user = match tx
        .find_one("user", &[("email", Test::Eq(email.clone()))])
        .await?
    {
        Some(user) => user,
        None if registration == Registration::Open => {
            tx.insert(
                "user",
                &[("email", email), ("email_confirmed_at", json!(stamp(now)))],
                &stamp(now),
            )
            .await?
        }
        // Closed registration mails no link to an unknown address, so
        // this token was never sent: nobody should hold it.
        None => return Err(Failure::Invalid),
    };
    if !user["locked_at"].is_null() {
        return Err(Failure::Locked);
    }
    let (user, signed_out) = if user["email_confirmed_at"].is_null() {
        super::password::claim_address(tx, user, device, now).await?
    } else {
        (user, Vec::new())
    };
    tx.update(
        "auth_token",
        &[("user_id", Set::To(user["id"].clone()))],
        &[("id", Test::Eq(token["id"].clone()))],
        &stamp(now),
    )
    .await?;
    let mut tokens = session::open(tx, keys, user, device, now).await?;
    tokens.signed_out = signed_out;
    Ok(tokens)
}

/// Two links of a new address used at once (a double tap, the link and
/// the code): both try to make the account, and the second insert finds
/// the email taken. Its transaction rolled back, token and all, so the
/// sign-in runs again and finds the account.
fn made_the_account_meanwhile(failure: &Failure) -> bool {
    matches!(failure, Failure::Store(QueryError::Conflict { .. }))
}

fn expired(row: &Record, now: OffsetDateTime) -> bool {
    row["expires_at"]
        .as_str()
        .and_then(parse_stamp)
        .is_none_or(|at| now >= at)
}

fn attempts(link: &Record) -> i64 {
    link["code_attempts"].as_i64().unwrap_or(0)
}

/// The code tries `link` has been compared with, this one included: each
/// try is counted on the address's newest live link, so the tries counted
/// on `link` and on every link sent after it (`latest` holds the counts
/// this transaction updated; `recent` the last hour's links as read).
fn tries_seen(link: &Record, recent: &[Record], latest: &[Record]) -> i64 {
    let sent = |row: &Record| row["id"].as_str().and_then(|id| Uuid::parse_str(id).ok());
    let since = sent(link);
    recent
        .iter()
        .filter(|row| sent(row) >= since)
        .map(|row| {
            let current = latest.iter().find(|l| l["id"] == row["id"]).unwrap_or(row);
            attempts(current)
        })
        .sum()
}

/// Why a code that signs nothing in was refused: `token_used` or
/// `token_expired` when it is the code of one of the address's links of
/// the last hour that was used or has expired (the player typed an old
/// mail's code), else `token_invalid`.
fn why_not_code(codes: &CodeKey, recent: &[Record], code: &str, now: OffsetDateTime) -> Failure {
    let matched = recent.iter().find(|row| {
        let id = row["id"].as_str().unwrap_or_default();
        let stored = row["code_hash"].as_str().unwrap_or_default();
        codes.matches(id, code, stored)
    });
    match matched {
        Some(row) if !row["used_at"].is_null() => Failure::Used,
        Some(row) if expired(row, now) => Failure::Expired,
        _ => Failure::Invalid,
    }
}

fn why_not(found: Option<&Record>) -> Failure {
    match found {
        None => Failure::Invalid,
        Some(row) if !row["used_at"].is_null() => Failure::Used,
        Some(_) => Failure::Expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_never_shows_its_secrets_in_debug_output() {
        let requested = Requested {
            poll_id: Uuid::nil(),
            poll_secret: "the-poll-secret".into(),
            mail: Some(("the-link-token".into(), "123456".into())),
            user_id: None,
        };
        let shown = format!("{requested:?}");
        for secret in ["the-poll-secret", "the-link-token", "123456"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
