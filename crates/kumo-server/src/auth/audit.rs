//! The audit log: every sign-in attempt and its outcome, refresh-token
//! reuse, sign-outs and lockouts, as `audit_event` rows admins can read at
//! `/api/audit_events`. An IP address is kept truncated (IPv4 to its /24,
//! IPv6 to its /48): enough to tell where attempts come from, not to name a
//! player's connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use kumo_db::query::AuditNote;
use kumo_db::query::accounts::AccountsTx;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Auth;
use super::clock::stamp;
use super::session::Device;

/// One audited event.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// What was attempted: `sign_in`, `refresh`, `refresh_token_reused`,
    /// `magic_link_request`, `sign_out`, `sign_out_everywhere`,
    /// `session_revoked`, …
    pub kind: &'a str,
    /// The strategy involved (`magic_link`, `password`, `api_key`), if any.
    pub strategy: Option<&'a str>,
    pub success: bool,
    /// The account concerned, when known.
    pub user_id: Option<Value>,
    pub device: &'a Device,
    /// Why it failed (`token_expired`, `account_locked`, …) and the like.
    pub detail: Value,
}

impl Auth {
    /// Writes `entry` in a transaction of its own. A failure to write is
    /// logged, not passed on: the request it audits has already happened.
    pub async fn audit(&self, entry: Entry<'_>) {
        let result = async {
            let mut tx = self.accounts().begin().await?;
            self.audit_in(&mut tx, &entry).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, kind = entry.kind, "could not write an audit event");
        }
    }

    /// Writes `entry` in `tx`, so it commits with what it records.
    pub async fn audit_in(
        &self,
        tx: &mut AccountsTx<'_>,
        entry: &Entry<'_>,
    ) -> Result<(), kumo_db::query::QueryError> {
        insert(tx, self.clock.now(), entry).await
    }
}

/// Lets through the first report of each key per minute: what repeats
/// (a client hammering a rate limit, a dead API key retried in a loop) is
/// audited once a minute, not once per request, so a flood of refusals
/// does not become a flood of writes.
pub(crate) struct OncePerMinute(DefaultKeyedRateLimiter<String>);

impl Default for OncePerMinute {
    fn default() -> Self {
        OncePerMinute(RateLimiter::keyed(Quota::per_minute(NonZeroU32::MIN)))
    }
}

impl OncePerMinute {
    /// Whether this is `key`'s first report this minute.
    pub(crate) fn first(&self, key: &str) -> bool {
        self.0.check_key(&key.to_owned()).is_ok()
    }

    /// Drops the keys that may report again, so memory follows recent use.
    pub(crate) fn forget_idle(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
}

/// Writes `entry` at `now` in `tx`, so it commits with what it records.
pub async fn insert(
    tx: &mut AccountsTx<'_>,
    now: OffsetDateTime,
    entry: &Entry<'_>,
) -> Result<(), kumo_db::query::QueryError> {
    {
        let now = stamp(now);
        tx.insert(
            "audit_event",
            &[
                ("kind", json!(entry.kind)),
                ("strategy", json!(entry.strategy)),
                (
                    "outcome",
                    json!(if entry.success { "success" } else { "failure" }),
                ),
                ("ip", json!(entry.device.ip.as_deref().map(truncate_ip))),
                ("user_agent", json!(entry.device.user_agent)),
                ("detail", entry.detail.clone()),
                ("user_id", entry.user_id.clone().unwrap_or(Value::Null)),
            ],
            &now,
        )
        .await?;
        Ok(())
    }
}

/// The audit row a resource write adds in its own transaction (the
/// admin's `admin_change`), made as [`insert`] makes the others: the IP
/// truncated, the time from the auth layer's clock. The write adds
/// `record_id`, `before` and `after` to `detail`.
pub fn note(
    kind: &str,
    user_id: Option<String>,
    device: &Device,
    now: OffsetDateTime,
    detail: serde_json::Map<String, Value>,
) -> AuditNote {
    AuditNote {
        kind: kind.to_owned(),
        user_id,
        ip: device.ip.as_deref().map(truncate_ip),
        user_agent: device.user_agent.clone(),
        at: stamp(now),
        detail,
    }
}

/// An address with its host part dropped: `203.0.113.7` → `203.0.113.0`,
/// `2001:db8:1:2::5` → `2001:db8:1::`. Anything else is dropped whole.
pub fn truncate_ip(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            Ipv4Addr::new(a, b, c, 0).to_string()
        }
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => truncate_ip(&v4.to_string()),
            None => {
                let network = u128::from(v6) & !((1u128 << 80) - 1);
                Ipv6Addr::from(network).to_string()
            }
        },
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_lose_their_host_part() {
        assert_eq!(truncate_ip("203.0.113.7"), "203.0.113.0");
        assert_eq!(truncate_ip("2001:db8:1:2::5"), "2001:db8:1::");
        assert_eq!(truncate_ip("::ffff:198.51.100.9"), "198.51.100.0");
        assert_eq!(truncate_ip("not an address"), "");
    }
}
