//! Which sessions were signed out recently, so their access tokens stop
//! working within seconds, not at expiry.
//!
//! Access tokens are checked without the database, so a signed-out
//! session's token would otherwise work until it expires. Each server node
//! keeps the ids of sessions revoked within the last access-token lifetime
//! (older ones have no live access token left) and reloads them from the
//! database every [`RELOAD_EVERY`]: a revocation made on any node reaches
//! every node within that time, and the node that made it knows at once.
//! The set is as small as the number of sign-outs in one token lifetime.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use kumo_db::query::QueryError;
use kumo_db::query::accounts::{Accounts, Test};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::clock::{parse_stamp, stamp};

/// How often each node reloads the revoked sessions.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct Revocations {
    /// Session id → when it was revoked.
    revoked: RwLock<HashMap<Uuid, OffsetDateTime>>,
}

impl Revocations {
    pub fn is_revoked(&self, session_id: Uuid) -> bool {
        self.read().contains_key(&session_id)
    }

    /// A revocation this node just made, known before the next reload.
    pub fn insert(&self, session_id: Uuid, at: OffsetDateTime) {
        self.write().insert(session_id, at);
    }

    /// Replaces the set with the sessions revoked after `now - access_ttl`.
    pub async fn reload(
        &self,
        accounts: &Accounts<'_>,
        access_ttl: time::Duration,
        now: OffsetDateTime,
    ) -> Result<usize, QueryError> {
        let since = now - access_ttl;
        let mut tx = accounts.begin().await?;
        let rows = tx
            .find(
                "session",
                &[("revoked_at", Test::Above(json!(stamp(since))))],
                None,
                None,
            )
            .await?;
        drop(tx);
        let fresh: HashMap<Uuid, OffsetDateTime> = rows
            .iter()
            .filter_map(|row| {
                let id = row["id"].as_str().and_then(|s| Uuid::parse_str(s).ok())?;
                let at = row["revoked_at"].as_str().and_then(parse_stamp)?;
                Some((id, at))
            })
            .collect();
        let mut revoked = self.write();
        // Keep what this node revoked after the reload's read began, and
        // drop what has aged out.
        revoked.retain(|_, at| *at > since);
        revoked.extend(fresh);
        Ok(revoked.len())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, OffsetDateTime>> {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, OffsetDateTime>> {
        self.revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
