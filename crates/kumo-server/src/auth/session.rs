//! Sessions: what a sign-in opens and a refresh keeps going.
//!
//! A session is a row in `sessions` (one per signed-in device) and a pair
//! of tokens: a short-lived access token ([`kumo_auth::access`]), checked
//! on every request without the database, and a single-use refresh token
//! ([`kumo_auth::refresh`]), which names its session and generation. A
//! refresh moves the generation on in one statement that tests the old
//! generation, so of two refreshes with the same token exactly one
//! rotates; a token from an earlier generation is a reused token and
//! revokes the session (within a short grace, a retry after a lost answer,
//! from the device that rotated, is answered again instead).

use kumo_auth::access::{AccessKey, Claims};
use kumo_auth::refresh::{Presented, RefreshKey, Verdict, verdict};
use kumo_auth::secret;
use kumo_core::actor::Role;
use kumo_db::query::QueryError;
use kumo_db::query::accounts::{Accounts, AccountsTx, Set, Test};
use kumo_db::query::{Catalog, Record};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::clock::{parse_stamp, stamp};

/// The keys and lifetimes sessions are made with.
#[derive(Clone, Debug)]
pub struct Keys {
    pub access: AccessKey,
    pub refresh: RefreshKey,
    pub access_ttl: time::Duration,
    pub session_ttl: time::Duration,
}

/// What the client gets from a sign-in or a refresh. Its `Debug` leaves
/// the tokens out, so a log line can never carry them.
#[derive(Clone, PartialEq)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub session_id: Uuid,
    pub user: Record,
    /// A refresh answered again within the retry grace (its first answer
    /// was lost) rather than rotated: audited, since a copied token used
    /// within the grace looks the same.
    pub repeated: bool,
    /// Sessions this sign-in revoked (a magic link proving an address for
    /// the first time signs out whoever was signed in before), for this
    /// node to forget at once.
    pub signed_out: Vec<Uuid>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"***")
            .field("refresh_token", &"***")
            .field("expires_in", &self.expires_in)
            .field("session_id", &self.session_id)
            .field("user_id", &self.user.get("id"))
            .field("repeated", &self.repeated)
            .field("signed_out", &self.signed_out)
            .finish()
    }
}

impl Tokens {
    pub fn user_id(&self) -> Uuid {
        record_uuid(&self.user, "id")
    }

    pub fn role(&self) -> Role {
        self.user
            .get("role")
            .and_then(Value::as_str)
            .and_then(Role::parse)
            .unwrap_or(Role::User)
    }

    /// The answer's `data`, as every sign-in and refresh returns it; the
    /// user as [`public_user`] shows it.
    pub fn to_json(&self, catalog: &Catalog) -> Value {
        json!({
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "session_id": self.session_id,
            "user": public_user(&self.user, catalog),
        })
    }
}

/// A user as the client sees it: without any attribute marked `sensitive`
/// on the user resource, the built-in `password_hash` and those a project
/// adds in `resources/user.toml` alike (the account store reads them all),
/// as the resource API leaves them out.
pub fn public_user(user: &Record, catalog: &Catalog) -> Value {
    let mut user = user.clone();
    // Whatever the schema says, a password hash never leaves.
    user.remove("password_hash");
    if let Some(entry) = catalog.get("user") {
        for field in entry.fields.iter().filter(|f| f.sensitive) {
            user.remove(&field.name);
        }
    }
    Value::Object(user)
}

/// Where a session was opened from, for the owner's list of devices.
#[derive(Debug, Clone, Default)]
pub struct Device {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Why a refresh was refused. Each is a 401, except a locked account (403).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the refresh token is not valid")]
    Invalid,
    #[error("the session has expired; sign in again")]
    Expired,
    #[error("the session was signed out")]
    Revoked,
    #[error("the refresh token was already used, so it was copied: the session is signed out")]
    Reused,
    #[error("the account is locked")]
    Locked,
    #[error(transparent)]
    Store(#[from] QueryError),
}

impl RefreshError {
    pub fn code(&self) -> &'static str {
        match self {
            RefreshError::Invalid => "token_invalid",
            RefreshError::Expired => "token_expired",
            RefreshError::Revoked => "session_revoked",
            RefreshError::Reused => "token_reused",
            RefreshError::Locked => "account_locked",
            RefreshError::Store(_) => "internal",
        }
    }
}

/// Opens a session for `user` in `tx` (the sign-in's transaction).
pub async fn open(
    tx: &mut AccountsTx<'_>,
    keys: &Keys,
    user: Record,
    device: &Device,
    now: OffsetDateTime,
) -> Result<Tokens, QueryError> {
    let user_id = record_uuid(&user, "id");
    // The id is chosen here because the refresh token names it.
    let session_id = Uuid::now_v7();
    let refresh_token = keys.refresh.token(session_id, 0);
    tx.insert(
        "session",
        &[
            ("id", json!(session_id)),
            ("user_id", json!(user_id)),
            ("refresh_token_hash", json!(secret::hash(&refresh_token))),
            ("generation", json!(0)),
            ("ip", json!(device.ip)),
            ("user_agent", json!(device.user_agent)),
            ("last_used_at", json!(stamp(now))),
            ("expires_at", json!(stamp(now + keys.session_ttl))),
        ],
        &stamp(now),
    )
    .await?;
    Ok(tokens(keys, user, session_id, refresh_token, now))
}

fn tokens(
    keys: &Keys,
    user: Record,
    session_id: Uuid,
    refresh_token: String,
    now: OffsetDateTime,
) -> Tokens {
    let role = user
        .get("role")
        .and_then(Value::as_str)
        .and_then(Role::parse)
        .unwrap_or(Role::User);
    let access_token = keys.access.issue(&Claims {
        user_id: record_uuid(&user, "id"),
        session_id,
        role,
        issued_at: now.unix_timestamp(),
        expires_at: (now + keys.access_ttl).unix_timestamp(),
    });
    Tokens {
        access_token,
        refresh_token,
        expires_in: keys.access_ttl.whole_seconds(),
        session_id,
        user,
        repeated: false,
        signed_out: Vec::new(),
    }
}

/// `POST /auth/token/refresh`, from an unnamed device.
pub async fn refresh(
    accounts: &Accounts<'_>,
    keys: &Keys,
    presented_token: &str,
    now: OffsetDateTime,
) -> Result<Tokens, RefreshError> {
    let presented = keys
        .refresh
        .open(presented_token)
        .ok_or(RefreshError::Invalid)?;
    refresh_opened(
        accounts,
        keys,
        presented_token,
        presented,
        &Device::default(),
        now,
    )
    .await
    .map_err(|refused| refused.error)
}

/// A refused refresh, with the account it was for when the session was
/// found (for the audit log).
#[derive(Debug)]
pub struct RefreshRefused {
    pub error: RefreshError,
    pub user_id: Option<Value>,
}

impl From<QueryError> for RefreshRefused {
    fn from(e: QueryError) -> RefreshRefused {
        RefreshRefused {
            error: RefreshError::Store(e),
            user_id: None,
        }
    }
}

/// [`refresh`] of `presented_token`, already opened as `presented` (the
/// route opens it first, to count the attempt against its session's rate
/// limit), from `device`.
///
/// The previous generation's token is answered again within the retry
/// grace only from the device that rotated it (same address and user
/// agent): that is a client retrying after a lost answer. From anywhere
/// else it is a copy, and revokes the session like any reused token.
pub async fn refresh_opened(
    accounts: &Accounts<'_>,
    keys: &Keys,
    presented_token: &str,
    presented: Presented,
    device: &Device,
    now: OffsetDateTime,
) -> Result<Tokens, RefreshRefused> {
    let id = presented.session_id.to_string();
    let mut tx = accounts.begin().await?;
    let Some(session) = tx
        .find_one("session", &[("id", Test::Eq(json!(id)))])
        .await?
    else {
        return Err(RefreshRefused {
            error: RefreshError::Invalid,
            user_id: None,
        });
    };
    let refused = |error: RefreshError| RefreshRefused {
        error,
        user_id: Some(session["user_id"].clone()),
    };
    let user = tx
        .find_one("user", &[("id", Test::Eq(session["user_id"].clone()))])
        .await?
        .ok_or_else(|| refused(RefreshError::Invalid))?;
    // Locked first: locking also revokes every session, and the owner
    // should hear why.
    if !user["locked_at"].is_null() {
        return Err(refused(RefreshError::Locked));
    }
    if !session["revoked_at"].is_null() {
        return Err(refused(RefreshError::Revoked));
    }
    let expires_at = stored_time(&session, "expires_at");
    if expires_at.is_none_or(|at| now >= at) {
        return Err(refused(RefreshError::Expired));
    }
    let current = session["generation"].as_i64().unwrap_or(0);
    let rotated_at = stored_time(&session, "last_used_at")
        .or_else(|| stored_time(&session, "inserted_at"))
        .map_or(0, OffsetDateTime::unix_timestamp);
    let from_rotating_device =
        session["ip"] == json!(device.ip) && session["user_agent"] == json!(device.user_agent);
    let verdict = match verdict(
        presented.generation,
        current,
        rotated_at,
        now.unix_timestamp(),
    ) {
        Verdict::Retry if !from_rotating_device => Verdict::Reused,
        // The current generation's token must also be the one stored: a
        // second check, besides the token's own MAC.
        Verdict::Rotate
            if !session["refresh_token_hash"]
                .as_str()
                .is_some_and(|stored| secret::equal(stored, &secret::hash(presented_token))) =>
        {
            Verdict::Invalid
        }
        other => other,
    };
    match verdict {
        Verdict::Rotate => {
            let next = current + 1;
            let refresh_token = keys.refresh.token(presented.session_id, next);
            let rotated = tx
                .update(
                    "session",
                    &[
                        ("generation", Set::To(json!(next))),
                        (
                            "refresh_token_hash",
                            Set::To(json!(secret::hash(&refresh_token))),
                        ),
                        ("ip", Set::To(json!(device.ip))),
                        ("user_agent", Set::To(json!(device.user_agent))),
                        ("last_used_at", Set::To(json!(stamp(now)))),
                        ("expires_at", Set::To(json!(stamp(now + keys.session_ttl)))),
                    ],
                    &[
                        ("id", Test::Eq(json!(id))),
                        ("generation", Test::Eq(json!(current))),
                        ("revoked_at", Test::IsNull),
                    ],
                    &stamp(now),
                )
                .await?;
            if rotated.is_empty() {
                // Another refresh with the same token rotated first (on
                // SQLite the write lock makes this one wait and see it):
                // answer as to a retry.
                drop(tx);
                return Box::pin(refresh_opened(
                    accounts,
                    keys,
                    presented_token,
                    presented,
                    device,
                    now,
                ))
                .await;
            }
            tx.commit().await?;
            Ok(tokens(keys, user, presented.session_id, refresh_token, now))
        }
        Verdict::Retry => {
            drop(tx);
            let refresh_token = keys.refresh.token(presented.session_id, current);
            let mut again = tokens(keys, user, presented.session_id, refresh_token, now);
            again.repeated = true;
            Ok(again)
        }
        Verdict::Reused => {
            tx.update(
                "session",
                &[("revoked_at", Set::To(json!(stamp(now))))],
                &[("id", Test::Eq(json!(id))), ("revoked_at", Test::IsNull)],
                &stamp(now),
            )
            .await?;
            tx.commit().await?;
            Err(refused(RefreshError::Reused))
        }
        Verdict::Invalid => Err(refused(RefreshError::Invalid)),
    }
}

fn stored_time(record: &Record, field: &str) -> Option<OffsetDateTime> {
    record
        .get(field)
        .and_then(Value::as_str)
        .and_then(parse_stamp)
}

fn record_uuid(record: &Record, field: &str) -> Uuid {
    record
        .get(field)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("the store gave a `{field}` that is not a uuid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_their_secrets_in_debug_output() {
        let tokens = Tokens {
            access_token: "the-access-token".into(),
            refresh_token: "the-refresh-token".into(),
            expires_in: 900,
            session_id: Uuid::nil(),
            user: serde_json::from_value(json!({ "id": "u1" })).unwrap(),
            repeated: false,
            signed_out: Vec::new(),
        };
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("the-access-token"), "{shown}");
        assert!(!shown.contains("the-refresh-token"), "{shown}");
        assert!(shown.contains("u1"), "{shown}");
    }
}
