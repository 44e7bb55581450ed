//! Rate limits on the auth routes, on top of the server-wide one: per
//! client (an IPv4 address or an IPv6 /64) across every auth route, and
//! per target account (an email address, a username, a session), so that
//! guessing at one account is slow from any number of addresses. A game
//! polling for a magic link counts against an allowance of its own, per
//! client, since it asks every few seconds for as long as the link lives.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use kumo_core::project::AuthRateLimitSection;

/// The allowances, per minute; a full minute's worth may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    pub per_ip_per_minute: NonZeroU32,
    pub per_account_per_minute: NonZeroU32,
    /// Magic-link polls per client: larger, since a game polls every
    /// [`super::magic_link::POLL_INTERVAL`] seconds while its player opens
    /// the mail, and several players may share an address.
    pub polls_per_ip_per_minute: NonZeroU32,
}

impl LimitSettings {
    /// `None` when `[auth.rate_limit] enabled = false`.
    pub fn from_config(section: &AuthRateLimitSection) -> Option<LimitSettings> {
        section.enabled.then_some(LimitSettings {
            per_ip_per_minute: section.per_ip_per_minute,
            per_account_per_minute: section.per_account_per_minute,
            polls_per_ip_per_minute: section.polls_per_ip_per_minute,
        })
    }
}

pub(crate) struct Limits {
    clients: DefaultKeyedRateLimiter<IpAddr>,
    accounts: DefaultKeyedRateLimiter<String>,
    polls: DefaultKeyedRateLimiter<IpAddr>,
}

impl Limits {
    pub(crate) fn new(settings: &LimitSettings) -> Limits {
        let quota = |n: NonZeroU32| Quota::per_minute(n).allow_burst(n);
        Limits {
            clients: RateLimiter::keyed(quota(settings.per_ip_per_minute)),
            accounts: RateLimiter::keyed(quota(settings.per_account_per_minute)),
            polls: RateLimiter::keyed(quota(settings.polls_per_ip_per_minute)),
        }
    }

    /// `Err(wait)` when `client` must wait before its next auth request.
    pub(crate) fn check_client(&self, client: IpAddr) -> Result<(), Duration> {
        self.clients
            .check_key(&client)
            .map_err(|n| n.wait_time_from(self.clients.clock().now()))
    }

    /// `Err(wait)` when the account `key` names (`email:…`, `session:…`)
    /// must wait.
    pub(crate) fn check_account(&self, key: String) -> Result<(), Duration> {
        self.accounts
            .check_key(&key)
            .map_err(|n| n.wait_time_from(self.accounts.clock().now()))
    }

    /// `Err(wait)` when `client` must wait before its next magic-link poll.
    pub(crate) fn check_poll(&self, client: IpAddr) -> Result<(), Duration> {
        self.polls
            .check_key(&client)
            .map_err(|n| n.wait_time_from(self.polls.clock().now()))
    }

    /// Drops the buckets of clients and accounts that are full again, so
    /// memory follows recent use.
    pub(crate) fn forget_idle(&self) {
        self.clients.retain_recent();
        self.clients.shrink_to_fit();
        self.accounts.retain_recent();
        self.accounts.shrink_to_fit();
        self.polls.retain_recent();
        self.polls.shrink_to_fit();
    }
}
