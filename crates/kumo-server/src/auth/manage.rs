//! Managing accounts: locking, unlocking, setting a role, confirming an
//! address. `kumo user …` and the admin's user page both run these, each
//! in one transaction with its audit event, whose `detail.by` says who:
//! `"cli"`, or the admin user's id.

use kumo_core::actor::Role;
use kumo_db::query::accounts::{Accounts, AccountsTx, Set, Test};
use kumo_db::query::{QueryError, Record};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit::{Entry, insert};
use super::clock::stamp;
use super::session::Device;

/// Which account: by address (the command line) or by id (the admin).
#[derive(Debug, Clone, Copy)]
pub enum Account<'a> {
    Email(&'a str),
    Id(&'a str),
}

impl Account<'_> {
    fn test(&self) -> (&'static str, Test) {
        match self {
            Account::Email(email) => ("email", Test::Eq(json!(email))),
            Account::Id(id) => ("id", Test::Eq(json!(id))),
        }
    }
}

/// Who made a change, and from where, for its audit event.
#[derive(Debug, Clone)]
pub struct By<'a> {
    /// `"cli"`, or the id of the admin user.
    pub who: Value,
    pub device: &'a Device,
}

/// What locking did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// False when the account was locked already.
    pub newly: bool,
    /// The sessions signed out, for this node to forget at once.
    pub sessions_revoked: Vec<Uuid>,
}

async fn find(tx: &mut AccountsTx<'_>, account: Account<'_>) -> Result<Option<Record>, QueryError> {
    tx.find_one("user", &[account.test()]).await
}

async fn audit(
    tx: &mut AccountsTx<'_>,
    kind: &str,
    user: &Record,
    by: &By<'_>,
    mut detail: Value,
    now: OffsetDateTime,
) -> Result<(), QueryError> {
    detail["by"] = by.who.clone();
    let entry = Entry {
        kind,
        strategy: None,
        success: true,
        user_id: Some(user["id"].clone()),
        device: by.device,
        detail,
    };
    insert(tx, now, &entry).await
}

/// Locks the account and revokes its live sessions, so its refresh tokens
/// are refused at once and its access tokens as soon as the revocations
/// reload. `None` when there is no such account.
pub async fn lock(
    accounts: &Accounts<'_>,
    account: Account<'_>,
    by: &By<'_>,
    now: OffsetDateTime,
) -> Result<Option<Locked>, QueryError> {
    let mut tx = accounts.begin().await?;
    let Some(user) = find(&mut tx, account).await? else {
        return Ok(None);
    };
    let newly = !tx
        .update(
            "user",
            &[("locked_at", Set::To(json!(stamp(now))))],
            &[
                ("id", Test::Eq(user["id"].clone())),
                ("locked_at", Test::IsNull),
            ],
            &stamp(now),
        )
        .await?
        .is_empty();
    // Revoked even when the account was locked already: a session that
    // outlived an earlier lock (made before it, say) must not stay.
    let sessions_revoked: Vec<Uuid> = tx
        .update(
            "session",
            &[("revoked_at", Set::To(json!(stamp(now))))],
            &[
                ("user_id", Test::Eq(user["id"].clone())),
                ("revoked_at", Test::IsNull),
            ],
            &stamp(now),
        )
        .await?
        .iter()
        .filter_map(|row| row["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()))
        .collect();
    if newly || !sessions_revoked.is_empty() {
        let detail = json!({ "sessions_revoked": sessions_revoked.len() });
        audit(&mut tx, "user_locked", &user, by, detail, now).await?;
    }
    tx.commit().await?;
    Ok(Some(Locked {
        newly,
        sessions_revoked,
    }))
}

/// Whether the account was locked (and now is not); `None` when there is
/// no such account.
pub async fn unlock(
    accounts: &Accounts<'_>,
    account: Account<'_>,
    by: &By<'_>,
    now: OffsetDateTime,
) -> Result<Option<bool>, QueryError> {
    let mut tx = accounts.begin().await?;
    let Some(user) = find(&mut tx, account).await? else {
        return Ok(None);
    };
    let unlocked = !tx
        .update(
            "user",
            &[("locked_at", Set::To(Value::Null))],
            &[
                ("id", Test::Eq(user["id"].clone())),
                ("locked_at", Test::NotNull),
            ],
            &stamp(now),
        )
        .await?
        .is_empty();
    if unlocked {
        audit(&mut tx, "user_unlocked", &user, by, json!({}), now).await?;
    }
    tx.commit().await?;
    Ok(Some(unlocked))
}

/// The account's role before the change; `None` when there is no such
/// account.
pub async fn set_role(
    accounts: &Accounts<'_>,
    account: Account<'_>,
    role: Role,
    by: &By<'_>,
    now: OffsetDateTime,
) -> Result<Option<String>, QueryError> {
    let mut tx = accounts.begin().await?;
    let Some(user) = find(&mut tx, account).await? else {
        return Ok(None);
    };
    let old = user["role"].as_str().unwrap_or_default().to_owned();
    if old == role.as_str() {
        return Ok(Some(old));
    }
    tx.update(
        "user",
        &[("role", Set::To(json!(role.as_str())))],
        &[("id", Test::Eq(user["id"].clone()))],
        &stamp(now),
    )
    .await?;
    let detail = json!({ "from": old, "to": role.as_str() });
    audit(&mut tx, "role_changed", &user, by, detail, now).await?;
    tx.commit().await?;
    Ok(Some(old))
}

/// Marks the account's address confirmed, as an admin vouching for it;
/// whether it was not yet. `None` when there is no such account.
pub async fn confirm_email(
    accounts: &Accounts<'_>,
    account: Account<'_>,
    by: &By<'_>,
    now: OffsetDateTime,
) -> Result<Option<bool>, QueryError> {
    let mut tx = accounts.begin().await?;
    let Some(user) = find(&mut tx, account).await? else {
        return Ok(None);
    };
    let confirmed = !tx
        .update(
            "user",
            &[("email_confirmed_at", Set::To(json!(stamp(now))))],
            &[
                ("id", Test::Eq(user["id"].clone())),
                ("email_confirmed_at", Test::IsNull),
            ],
            &stamp(now),
        )
        .await?
        .is_empty();
    if confirmed {
        let detail = json!({ "email": user["email"] });
        audit(&mut tx, "email_confirmed", &user, by, detail, now).await?;
    }
    tx.commit().await?;
    Ok(Some(confirmed))
}
