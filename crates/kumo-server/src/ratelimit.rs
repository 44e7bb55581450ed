//! Per-client rate limits: every route answers 429 with `Retry-After` once a
//! client goes over `[server.rate_limit]`.
//!
//! A client is an IPv4 address or an IPv6 /64 network: one host usually owns
//! a whole /64, so keying by full IPv6 address would give it 2^64 buckets.
//! Behind a reverse proxy the address comes from a configured header; the
//! proxy appends the peer it saw, so the last entry is the one to trust.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use kumo_core::project::RateLimitSection;

use crate::api::error_response;

/// How often idle clients' buckets are dropped, so that memory follows the
/// number of recent clients rather than every client ever seen.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(10);

/// The limit and where a request's client address comes from.
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
    /// `None`: the TCP peer's address.
    pub client_ip_header: Option<HeaderName>,
}

impl RateLimit {
    /// The limit `kumo.toml` asks for; `None` when it is turned off.
    ///
    /// Every value was checked when `kumo.toml` was read
    /// ([`RateLimitSection`] holds only valid ones), where a mistake is
    /// reported with its line and column; so this cannot fail.
    pub fn new(section: &RateLimitSection) -> Option<RateLimit> {
        section.enabled.then(|| RateLimit {
            per_second: section.per_second,
            burst: section.burst,
            client_ip_header: client_ip_header(section),
        })
    }
}

/// `client_ip_header`, whether or not the limit is enabled: it says where
/// a client's address comes from, which the auth layer's limits, its audit
/// log and the dev mailbox need even with this limit turned off.
pub fn client_ip_header(section: &RateLimitSection) -> Option<HeaderName> {
    section.client_ip_header.as_ref().map(|h| {
        HeaderName::try_from(h.as_str())
            .expect("kumo_core::project::HeaderName holds an RFC 9110 token")
    })
}

pub(crate) struct Limiter {
    buckets: DefaultKeyedRateLimiter<IpAddr>,
    client_ip_header: Option<HeaderName>,
    started: Instant,
    /// Milliseconds after `started` when idle buckets were last dropped.
    last_forget_ms: AtomicU64,
}

impl Limiter {
    pub(crate) fn new(limit: &RateLimit) -> Limiter {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Limiter {
            buckets: RateLimiter::keyed(quota),
            client_ip_header: limit.client_ip_header.clone(),
            started: Instant::now(),
            last_forget_ms: AtomicU64::new(0),
        }
    }

    /// `Err(wait)` when the client must wait that long before its next
    /// request is accepted.
    fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.forget_idle_clients();
        self.buckets
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.buckets.clock().now()))
    }

    fn forget_idle_clients(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_forget_ms.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= FORGET_IDLE_EVERY.as_millis() as u64;
        // One request does the sweep; the others go on.
        if due
            && self
                .last_forget_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.buckets.retain_recent();
            self.buckets.shrink_to_fit();
        }
    }

    fn client(&self, request: &Request) -> IpAddr {
        let ip = client_address(
            request.headers(),
            request.extensions(),
            self.client_ip_header.as_ref(),
        );
        // Without a socket (a router driven in-process) every request is
        // one client.
        bucket_key(ip.unwrap_or(IpAddr::from([0, 0, 0, 0])))
    }
}

/// The client's address: the last entry of `client_ip_header` when it is
/// configured and present (the one the proxy added), otherwise the TCP
/// peer's; `None` without a socket (a router driven in-process).
pub(crate) fn client_address(
    headers: &HeaderMap,
    extensions: &Extensions,
    client_ip_header: Option<&HeaderName>,
) -> Option<IpAddr> {
    let from_header = client_ip_header.and_then(|name| {
        let value = headers.get(name)?.to_str().ok()?;
        value.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
    });
    from_header.or_else(|| {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip())
    })
}

/// IPv4 as is (also when written as an IPv4-mapped IPv6 address); IPv6
/// reduced to its /64 network.
pub(crate) fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

/// The middleware: counts the request against its client, or answers 429.
pub(crate) async fn enforce(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    match limiter.check(limiter.client(&request)) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many_requests(wait),
    }
}

pub(crate) fn too_many_requests(wait: Duration) -> Response {
    too_many(wait, "from this client")
}

/// A 429 whose message says whose allowance ran out (`from this client`,
/// `for this account`), with `Retry-After`.
pub(crate) fn too_many(wait: Duration, whose: &str) -> Response {
    // Whole seconds, rounded up: a client retrying after `Retry-After` must
    // not be refused again.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        &format!("too many requests {whose}; retry in {seconds} s"),
        None,
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).expect("digits are a valid header value"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket_key(a), bucket_key(b));
        assert_eq!(bucket_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(bucket_key(a), bucket_key(other));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(bucket_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let r = too_many_requests(Duration::from_millis(1200));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = too_many_requests(Duration::from_millis(3));
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn the_limit_is_the_checked_section() {
        let mut section: RateLimitSection = kumo_core::project::parse_config(
            "[server.rate_limit]\nper_second = 5\nburst = 7\nclient_ip_header = \"X-Real-IP\"\n",
        )
        .unwrap()
        .server
        .rate_limit;
        let limit = RateLimit::new(&section).unwrap();
        assert_eq!((limit.per_second.get(), limit.burst.get()), (5, 7));
        assert_eq!(limit.client_ip_header.unwrap().as_str(), "x-real-ip");
        section.enabled = false;
        assert!(RateLimit::new(&section).is_none());
        // The header still says where clients' addresses come from.
        assert_eq!(client_ip_header(&section).unwrap().as_str(), "x-real-ip");
    }
}
