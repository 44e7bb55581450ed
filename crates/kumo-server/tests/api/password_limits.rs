//! The auth layer's rate limits on the password and email routes, on both
//! databases: per account (the email or username a sign-in, registration
//! or reset request names; the signed-in user a password or address change
//! is for) and per client (the routes that take a token, and the pages of
//! the reset and confirmation links). Each is answered `429 rate_limited`
//! with `Retry-After`, and holds up no other account or client.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use kumo_server::auth::limits::LimitSettings;
use kumo_server::auth::{Auth, Settings};
use serde_json::{Value, json};

use crate::auth_support::{self, every_strategy, exchange};
use crate::both;
use crate::harness::{Reply, TestApi};

const SECRET: &[u8] = b"the password limit test's secret";
const GOOD: &str = "correct horse battery staple";
/// The allowance of whichever limit a test runs into.
const ALLOWED: u32 = 3;

/// Every strategy, no email confirmation (an address change answers at
/// once), the cheapest Argon2 cost, and the limits given.
fn settings(per_ip: u32, per_account: u32) -> Settings {
    Settings {
        limits: Some(LimitSettings {
            per_ip_per_minute: per_ip.try_into().unwrap(),
            per_account_per_minute: per_account.try_into().unwrap(),
            polls_per_ip_per_minute: 100.try_into().unwrap(),
        }),
        ..every_strategy(false)
    }
}

async fn serving(dialect: kumo_db::sql::Dialect, settings: Settings) -> (TestApi, Arc<Auth>) {
    auth_support::serving(dialect, settings, SECRET).await
}

async fn post(api: &TestApi, uri: &str, body: Value) -> Reply {
    api.send("POST", uri, None, Some(body)).await
}

/// A 429 from the auth layer's limit named by `whose` (`for this account`,
/// `from this client`), with a `Retry-After` of a whole number of seconds.
fn assert_limited(status: StatusCode, headers: &HeaderMap, message: &str, whose: &str) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{message}");
    assert!(message.contains(whose), "{message}");
    let retry_after: u64 = headers
        .get(header::RETRY_AFTER)
        .unwrap_or_else(|| panic!("no Retry-After: {message}"))
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "{retry_after}");
}

fn assert_limited_reply(r: &Reply, whose: &str) {
    assert_eq!(r.body["error"]["code"], "rate_limited", "{}", r.body);
    assert_limited(
        r.status,
        &r.headers,
        r.body["error"]["message"].as_str().unwrap_or_default(),
        whose,
    );
}

async fn register(api: &TestApi, email: &str, username: Option<&str>) -> Reply {
    let mut body = json!({ "email": email, "password": GOOD });
    if let Some(u) = username {
        body["username"] = json!(u);
    }
    post(api, "/auth/password/register", body).await
}

async fn sign_in(api: &TestApi, login: Value, password: &str) -> Reply {
    let mut body = login;
    body["password"] = json!(password);
    post(api, "/auth/password/sign_in", body).await
}

fn access_of(reply: &Reply) -> String {
    reply.data()["access_token"].as_str().unwrap().to_owned()
}

both!(
    password_routes_are_limited_per_account,
    |dialect| async move {
        // Clients have room to spare: only the account limit is reached.
        let (api, auth) = serving(dialect, settings(1000, ALLOWED)).await;

        // Registering: a taken address counts as much as a new one, and
        // the address is counted in its one spelling.
        let r = register(&api, "reg@example.com", None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        for _ in 1..ALLOWED {
            let r = register(&api, "Reg@Example.com", None).await;
            assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        }
        let r = register(&api, "reg@example.com", None).await;
        assert_limited_reply(&r, "for this account");
        let r = register(&api, "other@example.com", None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        // Signing in by email: the registration spent one of the
        // address's tries, and once they are gone even the right password
        // waits.
        let r = register(&api, "si@example.com", Some("si_user")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        for _ in 1..ALLOWED {
            let r = sign_in(
                &api,
                json!({ "email": "si@example.com" }),
                "wrong guess 1234",
            )
            .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        }
        let r = sign_in(&api, json!({ "email": "si@example.com" }), GOOD).await;
        assert_limited_reply(&r, "for this account");

        // By username: the account's allowance is shared with its email,
        // so the wrong guesses by email leave it one try.
        let r = sign_in(&api, json!({ "username": "si_user" }), "wrong guess 1234").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        for _ in 0..2 {
            let r = sign_in(&api, json!({ "username": "SI_user" }), GOOD).await;
            assert_limited_reply(&r, "for this account");
        }
        // Each refused bucket is audited once a minute, however often it
        // refuses: the address's bucket (refused once) and the account's
        // (refused twice), the latter with the account.
        {
            let mut tx = auth.accounts().begin().await.unwrap();
            let users = tx.find("user", &[], None, None).await.unwrap();
            let events = tx.find("audit_event", &[], None, None).await.unwrap();
            let limited: Vec<_> = events
                .iter()
                .filter(|e| e["kind"] == "rate_limited")
                .collect();
            let si = &users
                .iter()
                .find(|u| u["email"] == "si@example.com")
                .unwrap()["id"];
            let of = |account: String| {
                limited
                    .iter()
                    .filter(|e| e["detail"]["account"] == json!(account))
                    .collect::<Vec<_>>()
            };
            let by_address = of("email:si@example.com".into());
            assert_eq!(by_address.len(), 1, "{limited:?}");
            let by_account = of(format!("user:{}", si.as_str().unwrap()));
            assert_eq!(by_account.len(), 1, "{limited:?}");
            assert_eq!(&by_account[0]["user_id"], si);
            assert_eq!(by_account[0]["outcome"], "failure");
            assert_eq!(by_account[0]["detail"]["limit"], "account");
        }
        // Another account signs in.
        let r = sign_in(&api, json!({ "email": "other@example.com" }), GOOD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        // Reset requests: counted whether or not the address has an
        // account, so the limit says nothing about who plays either.
        for _ in 0..ALLOWED {
            let r = post(
                &api,
                "/auth/password/reset_request",
                json!({ "email": "nobody@example.com" }),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
        let r = post(
            &api,
            "/auth/password/reset_request",
            json!({ "email": "nobody@example.com" }),
        )
        .await;
        assert_limited_reply(&r, "for this account");

        // A password change, counted for the signed-in user: wrong current
        // passwords use the tries up, then the right one waits.
        let r = register(&api, "pc@example.com", None).await;
        let access = access_of(&r);
        for _ in 0..ALLOWED {
            let r = api
                .send(
                    "POST",
                    "/auth/password/change",
                    Some(&access),
                    Some(json!({
                        "current_password": "not my password",
                        "new_password": "a brand new passphrase here",
                    })),
                )
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
            assert!(r.body["error"]["fields"]["current_password"].is_array());
        }
        let r = api
            .send(
                "POST",
                "/auth/password/change",
                Some(&access),
                Some(json!({
                    "current_password": GOOD,
                    "new_password": "a brand new passphrase here",
                })),
            )
            .await;
        assert_limited_reply(&r, "for this account");

        // An address change: the same allowance per user. (An account
        // with a password gives it to change its address.)
        let r = register(&api, "ec@example.com", None).await;
        let access = access_of(&r);
        for i in 0..ALLOWED {
            let r = api
                .send(
                    "POST",
                    "/auth/email/change",
                    Some(&access),
                    Some(json!({
                        "email": format!("ec{i}@example.com"),
                        "current_password": GOOD,
                    })),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
        let r = api
            .send(
                "POST",
                "/auth/email/change",
                Some(&access),
                Some(json!({ "email": "ec9@example.com", "current_password": GOOD })),
            )
            .await;
        assert_limited_reply(&r, "for this account");
        api.cleanup().await;
    }
);

/// `request` from `peer`, as axum's `ConnectInfo` gives it over a socket:
/// each client has an allowance of its own.
fn from(peer: &str, mut request: Request<Body>) -> Request<Body> {
    request
        .extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    request
}

fn json_post(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

both!(
    token_routes_and_link_pages_are_limited_per_client,
    |dialect| async move {
        // Accounts have room to spare: only the client limit is reached.
        let (api, _auth) = serving(dialect, settings(ALLOWED, 1000)).await;
        // Each route from a client of its own, so each spends a whole
        // allowance; the token is never valid, the limit comes first.
        type Make = fn() -> Request<Body>;
        let routes: [(&str, StatusCode, Make); 6] = [
            ("reset", StatusCode::UNAUTHORIZED, || {
                json_post(
                    "/auth/password/reset",
                    json!({ "token": "not-a-token", "password": GOOD }),
                )
            }),
            ("confirm", StatusCode::UNAUTHORIZED, || {
                json_post("/auth/email/confirm", json!({ "token": "not-a-token" }))
            }),
            ("reset page", StatusCode::OK, || {
                Request::get("/auth/password/reset/not-a-token")
                    .body(Body::empty())
                    .unwrap()
            }),
            ("confirm page", StatusCode::OK, || {
                Request::get("/auth/email/confirm/not-a-token")
                    .body(Body::empty())
                    .unwrap()
            }),
            // The pages' forms, as a browser sends them from the page.
            ("reset form", StatusCode::UNAUTHORIZED, || {
                Request::post("/auth/password/reset/not-a-token")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header("sec-fetch-site", "same-origin")
                    .body(Body::from("password=correct+horse+battery+staple"))
                    .unwrap()
            }),
            ("confirm button", StatusCode::UNAUTHORIZED, || {
                Request::post("/auth/email/confirm/not-a-token")
                    .header("sec-fetch-site", "same-origin")
                    .body(Body::empty())
                    .unwrap()
            }),
        ];
        for (i, (name, allowed, make)) in routes.iter().enumerate() {
            let peer = format!("203.0.113.{}:40000", 10 + i);
            for n in 0..ALLOWED {
                let (status, _, body) = exchange(&api, from(&peer, make())).await;
                assert_eq!(status, *allowed, "{name}, request {n}: {body}");
            }
            let (status, headers, body) = exchange(&api, from(&peer, make())).await;
            if name.ends_with("form") || name.ends_with("button") {
                // The pages' forms say it on a page, with the wait the
                // JSON answer has.
                assert_limited(status, &headers, &body, "from this network");
            } else {
                assert_limited(status, &headers, &body, "from this client");
                assert!(body.contains("\"rate_limited\""), "{body}");
            }
            // Another client is not held up.
            let other = format!("198.51.100.{}:40000", 10 + i);
            let (status, _, body) = exchange(&api, from(&other, make())).await;
            assert_eq!(status, *allowed, "{name} from another client: {body}");
        }
        api.cleanup().await;
    }
);

both!(
    malformed_bodies_count_against_the_client,
    |dialect| async move {
        let (api, _auth) = serving(dialect, settings(ALLOWED, 1000)).await;
        // Refused before anything is read, yet counted: a client cannot
        // probe the routes without bound by sending broken bodies.
        let broken = || {
            from(
                "203.0.113.50:40000",
                Request::post("/auth/password/sign_in")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{not json"))
                    .unwrap(),
            )
        };
        for n in 0..ALLOWED {
            let (status, _, body) = exchange(&api, broken()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "request {n}: {body}");
        }
        let (status, headers, body) = exchange(&api, broken()).await;
        assert_limited(status, &headers, &body, "from this client");
        api.cleanup().await;
    }
);
