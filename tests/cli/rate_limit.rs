//! `[server.rate_limit]`: a client over its budget gets 429 with
//! `Retry-After`, on every route, counted per client address.

use crate::{HttpResponse, Kumo, Server, http_request};

/// The new project's `[server.rate_limit]` settings.
const TEMPLATE_LIMIT: &str = "[server.rate_limit]\nper_second = 100\nburst = 200\n";

fn set_limit(k: &Kumo, limit: &str) {
    k.set_up_project();
    let config = k.read("app/kumo.toml");
    assert!(config.contains(TEMPLATE_LIMIT), "{config}");
    k.write(
        "app/kumo.toml",
        &config.replace(TEMPLATE_LIMIT, &format!("[server.rate_limit]\n{limit}\n")),
    );
}

fn serve_with_limit(k: &Kumo, limit: &str) -> Server {
    set_limit(k, limit);
    Server::start(k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]))
        .expect("serve starts")
}

/// Sends requests until one is refused; returns how many were served and
/// the refusal. The budget refills one request a second, so on a loaded
/// machine a few more than the burst may get through first.
fn exhaust(addr: &str, path: &str, headers: &[(&str, &str)]) -> (usize, HttpResponse) {
    for served in 0..50 {
        let response = http_request(addr, path, headers);
        if response.status != 200 {
            return (served, response);
        }
    }
    panic!("50 requests in a row were served");
}

#[test]
fn a_client_over_its_burst_gets_429_with_retry_after() {
    let k = Kumo::new();
    let server = serve_with_limit(&k, "per_second = 1\nburst = 3");
    let (served, refused) = exhaust(&server.addr, "/api/users", &[]);
    assert!(served >= 3, "the burst is served: {served}");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // The budget refills: after Retry-After the client is served again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(http_request(&server.addr, "/health", &[]).status, 200);
}

#[test]
fn behind_a_proxy_each_forwarded_client_has_its_own_budget() {
    let k = Kumo::new();
    let server = serve_with_limit(
        &k,
        "per_second = 1\nburst = 2\nclient_ip_header = \"x-forwarded-for\"",
    );
    // The proxy appends the address it saw: the last entry is the client,
    // whatever the client itself wrote before it.
    let alice = [("x-forwarded-for", "203.0.113.9, 198.51.100.1")];
    let spoofing_alice = [("x-forwarded-for", "198.51.100.1, 198.51.100.2")];
    let (served, refused) = exhaust(&server.addr, "/health", &alice);
    assert!(
        served >= 2 && refused.status == 429,
        "{served} {}",
        refused.status
    );
    assert_eq!(
        http_request(&server.addr, "/health", &spoofing_alice).status,
        200,
        "another client is not limited by alice's budget"
    );
    // Two addresses in one IPv6 /64 are one client; the next /64 is not.
    let v6_a = [("x-forwarded-for", "2001:db8::1")];
    let v6_b = [("x-forwarded-for", "2001:db8::ffff")];
    let v6_next = [("x-forwarded-for", "2001:db8:0:1::1")];
    let (_, refused) = exhaust(&server.addr, "/health", &v6_a);
    assert_eq!(refused.status, 429);
    assert_eq!(http_request(&server.addr, "/health", &v6_b).status, 429);
    assert_eq!(http_request(&server.addr, "/health", &v6_next).status, 200);
}

#[test]
fn the_limit_can_be_turned_off() {
    let k = Kumo::new();
    let server = serve_with_limit(&k, "enabled = false\nper_second = 1\nburst = 1");
    for _ in 0..20 {
        assert_eq!(http_request(&server.addr, "/health", &[]).status, 200);
    }
}

#[test]
fn a_zero_limit_is_refused_with_the_setting_named() {
    let k = Kumo::new();
    set_limit(&k, "per_second = 0");
    let err = Server::start(k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]))
        .err()
        .expect("serve must refuse");
    assert!(
        err.contains("[server.rate_limit] per_second and burst must be at least 1"),
        "{err}"
    );
}
