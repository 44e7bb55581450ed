//! Edges of the password and email links over HTTP, on both databases: a
//! confirmation link's day, fifty racing uses of one reset link, a reset
//! for a locked account, the reset routes without the password strategy,
//! and an address change asked for with an API key.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kumo_db::query::accounts::{Set, Test};
use kumo_server::app;
use kumo_server::auth::clock::stamp;
use kumo_server::auth::{Auth, Settings};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::auth_support::{self, every_strategy, mailed_link};
use crate::both;
use crate::harness::{Reply, TestApi};

const SECRET: &[u8] = b"the account links test's secret!";
const GOOD: &str = "correct horse battery staple";
const NEW: &str = "a brand new passphrase here";

fn settings(confirm_email: bool) -> Settings {
    every_strategy(confirm_email)
}

async fn serving(dialect: kumo_db::sql::Dialect, settings: Settings) -> (TestApi, Arc<Auth>) {
    auth_support::serving(dialect, settings, SECRET).await
}

async fn post(api: &TestApi, uri: &str, body: Value) -> Reply {
    api.send("POST", uri, None, Some(body)).await
}

async fn register(api: &TestApi, email: &str) -> Reply {
    post(
        api,
        "/auth/password/register",
        json!({ "email": email, "password": GOOD }),
    )
    .await
}

/// A reset link for a new account `email`.
async fn reset_link(api: &TestApi, email: &str) -> String {
    let r = register(api, email).await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = post(
        api,
        "/auth/password/reset_request",
        json!({ "email": email }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    mailed_link(api, email, "/auth/password/reset/").await
}

async fn stored_user(auth: &Auth, email: &str) -> Option<Value> {
    auth.accounts()
        .read_one("user", &[("email", Test::Eq(json!(email)))])
        .await
        .unwrap()
        .map(Value::Object)
}

both!(a_confirmation_link_works_for_a_day, |dialect| async move {
    let (api, auth) = serving(dialect, settings(true)).await;
    for email in ["early@example.com", "late@example.com"] {
        let r = register(&api, email).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    let early = mailed_link(&api, "early@example.com", "/auth/email/confirm/").await;
    let late = mailed_link(&api, "late@example.com", "/auth/email/confirm/").await;
    auth.clock
        .advance(time::Duration::hours(24) - time::Duration::minutes(1));
    let r = post(&api, "/auth/email/confirm", json!({ "token": early })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["email"], "early@example.com");
    auth.clock.advance(time::Duration::minutes(2));
    let r = post(&api, "/auth/email/confirm", json!({ "token": late })).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "token_expired");
    let user = stored_user(&auth, "late@example.com").await.unwrap();
    assert!(user["email_confirmed_at"].is_null(), "{user}");
    api.cleanup().await;
});

/// `POST /auth/password/reset` from a task of its own: its status and
/// error code. A `503 busy` (the hasher's queue was full, which depends on
/// the machine's cores) is retried after a moment, as its `Retry-After`
/// asks, so the race is decided by the link alone.
async fn racing_reset(state: kumo_server::AppState, token: String) -> (StatusCode, Value) {
    loop {
        let request = Request::post("/auth/password/reset")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({ "token": token, "password": NEW }).to_string(),
            ))
            .unwrap();
        let reply = Reply::from_response(app(state.clone()).oneshot(request).await.unwrap()).await;
        if reply.status != StatusCode::SERVICE_UNAVAILABLE {
            return (reply.status, reply.body["error"]["code"].clone());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

both!(
    fifty_racing_uses_of_one_reset_link_set_the_password_once,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        let token = reset_link(&api, "race@example.com").await;
        let racers: Vec<_> = (0..50)
            .map(|_| tokio::spawn(racing_reset(api.state.clone(), token.clone())))
            .collect();
        let (mut reset, mut used) = (0, 0);
        for racer in racers {
            match racer.await.unwrap() {
                (StatusCode::OK, _) => reset += 1,
                (StatusCode::UNAUTHORIZED, code) if code == "token_used" => used += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((reset, used), (1, 49));
        // One session: the winner's (registering's was signed out).
        let user = stored_user(&auth, "race@example.com").await.unwrap();
        let live = auth
            .accounts()
            .read(
                "session",
                &[
                    ("user_id", Test::Eq(user["id"].clone())),
                    ("revoked_at", Test::IsNull),
                ],
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(live.len(), 1);
        api.cleanup().await;
    }
);

both!(
    a_locked_accounts_reset_link_is_refused,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        // Mailed before the lock: the lock must stop the link.
        let token = reset_link(&api, "locked@example.com").await;
        let now = stamp(auth.clock.now());
        let mut tx = auth.accounts().begin().await.unwrap();
        tx.update(
            "user",
            &[("locked_at", Set::To(json!(now)))],
            &[("email", Test::Eq(json!("locked@example.com")))],
            &now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let r = post(
            &api,
            "/auth/password/reset",
            json!({ "token": token, "password": NEW }),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "account_locked");
        // The link's form says so too.
        let response = app(api.state.clone())
            .oneshot(
                Request::post(format!("/auth/password/reset/{token}"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from("password=a+brand+new+passphrase+here"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        // The password is unchanged: the old one is still the right one
        // (and the account, locked).
        let r = post(
            &api,
            "/auth/password/sign_in",
            json!({ "email": "locked@example.com", "password": GOOD }),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "account_locked");
        api.cleanup().await;
    }
);

both!(
    without_passwords_the_reset_routes_are_404_and_an_api_key_changes_no_address,
    |dialect| async move {
        let mut no_passwords = settings(false);
        no_passwords.strategies.password = false;
        let (api, auth) = serving(dialect, no_passwords).await;
        for (method, uri) in [
            ("GET", "/auth/password/reset/some-token"),
            ("POST", "/auth/password/reset/some-token"),
        ] {
            let response = app(api.state.clone())
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri(uri)
                        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(Body::from("password=a+brand+new+passphrase+here"))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {uri}");
        }

        // Signed in by a magic link, a session makes an API key.
        let r = post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "keys@example.com" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let token = mailed_link(&api, "keys@example.com", "/auth/magic_link/").await;
        let r = post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let access = r.data()["access_token"].as_str().unwrap().to_owned();
        let r = api
            .send(
                "POST",
                "/auth/api_keys",
                Some(&access),
                Some(json!({ "name": "server" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let key = r.data()["key"].as_str().unwrap().to_owned();
        // The key acts as its owner, but cannot move the account's address
        // (which would let a leaked key take the account over).
        let r = api
            .send(
                "POST",
                "/auth/email/change",
                Some(&key),
                Some(json!({ "email": "thief@example.com" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "forbidden");
        assert!(stored_user(&auth, "thief@example.com").await.is_none());
        // The session may.
        let r = api
            .send(
                "POST",
                "/auth/email/change",
                Some(&access),
                Some(json!({ "email": "moved@example.com" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(stored_user(&auth, "moved@example.com").await.is_some());
        api.cleanup().await;
    }
);
