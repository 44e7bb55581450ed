//! The password and email routes over HTTP on both databases: register,
//! sign in by email or username, the same refusal for unknown accounts,
//! weak passwords, resets by JSON and by the link's form, changing a
//! password, email confirmation for new accounts and changed addresses,
//! lockout, rehashing at a raised cost, and the cost of unknown accounts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kumo_auth::password::{Cost, Passwords};
use kumo_core::project::Registration;
use kumo_db::query::accounts::{Set, Test};
use kumo_server::app;
use kumo_server::auth::clock::stamp;
use kumo_server::auth::{Auth, Settings};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::auth_support::{self, every_strategy, link_token, mailbox};
use crate::both;
use crate::harness::{Reply, TestApi};

const SECRET: &[u8] = b"the password route test's secret";
const GOOD: &str = "correct horse battery staple";

fn settings(confirm_email: bool) -> Settings {
    every_strategy(confirm_email)
}

async fn serving(dialect: kumo_db::sql::Dialect, settings: Settings) -> (TestApi, Arc<Auth>) {
    auth_support::serving(dialect, settings, SECRET).await
}

async fn post(api: &TestApi, uri: &str, body: Value) -> Reply {
    api.send("POST", uri, None, Some(body)).await
}

async fn post_as(api: &TestApi, uri: &str, access: &str, body: Value) -> Reply {
    api.send("POST", uri, Some(access), Some(body)).await
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

/// The notices of a changed address mailed to `to`.
async fn notices_to(api: &TestApi, to: &str) -> Vec<Value> {
    mailbox(api)
        .await
        .into_iter()
        .filter(|m| m["to"] == to && m["subject"].as_str().unwrap().contains("was changed"))
        .collect()
}

async fn mails_to(api: &TestApi, to: &str) -> usize {
    mailbox(api).await.iter().filter(|m| m["to"] == to).count()
}

/// An HTML page's status and text.
async fn page(api: &TestApi, request: Request<Body>) -> (StatusCode, String) {
    let response = app(api.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn set_user(auth: &Auth, email: &str, field: &str, value: Value) {
    let now = stamp(auth.clock.now());
    let mut tx = auth.accounts().begin().await.unwrap();
    tx.update(
        "user",
        &[(field, Set::To(value))],
        &[("email", Test::Eq(json!(email)))],
        &now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn stored_user(auth: &Auth, email: &str) -> Value {
    let user = auth
        .accounts()
        .read_one("user", &[("email", Test::Eq(json!(email)))])
        .await
        .unwrap()
        .unwrap();
    Value::Object(user)
}

async fn audit_kinds(auth: &Auth) -> Vec<(String, String)> {
    auth.accounts()
        .read("audit_event", &[], None, None)
        .await
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

both!(
    register_then_sign_in_by_email_or_username,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        let r = post(
            &api,
            "/auth/password/register",
            json!({ "email": " Ada@Example.com ", "password": GOOD, "username": "Ada_1", "display_name": "Ada" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let user = &r.data()["user"];
        assert_eq!(user["email"], "ada@example.com");
        assert_eq!(user["username"], "ada_1");
        assert_eq!(user["display_name"], "Ada");
        assert_eq!(user["role"], "user");
        assert!(user.get("password_hash").is_none(), "{user}");
        assert_eq!(r.data()["token_type"], "Bearer");
        let me = api
            .send("GET", "/auth/me", Some(&access_of(&r)), None)
            .await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        // The hash is Argon2id at the configured cost, never the password.
        let stored = stored_user(&auth, "ada@example.com").await;
        let hash = stored["password_hash"].as_str().unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
        assert!(!hash.contains(GOOD));

        for login in [
            json!({ "email": "ADA@example.com" }),
            json!({ "username": "Ada_1" }),
        ] {
            let r = sign_in(&api, login.clone(), GOOD).await;
            assert_eq!(r.status, StatusCode::OK, "{login}: {}", r.body);
            assert_eq!(r.data()["user"]["email"], "ada@example.com");
            assert!(r.data()["refresh_token"].is_string());
        }
        // A wrong password, an unknown address, an unknown username, and
        // an account with no password (made by a magic link) are refused
        // alike.
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "linked@example.com" }),
        )
        .await;
        let token = link_token(&api, "linked@example.com", "/auth/magic_link/")
            .await
            .unwrap();
        let r = post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let mut refusals = Vec::new();
        for (login, password) in [
            (
                json!({ "email": "ada@example.com" }),
                "wrong horse battery staple",
            ),
            (json!({ "email": "nobody@example.com" }), GOOD),
            (json!({ "username": "nobody" }), GOOD),
            (json!({ "email": "linked@example.com" }), GOOD),
        ] {
            let r = sign_in(&api, login.clone(), password).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{login}: {}", r.body);
            refusals.push(r.body);
        }
        assert!(refusals.windows(2).all(|w| w[0] == w[1]), "{refusals:?}");
        assert_eq!(refusals[0]["error"]["code"], "invalid_credentials");
        // Every attempt is audited; a failure names the account it aimed at.
        let events = auth
            .accounts()
            .read(
                "audit_event",
                &[("strategy", Test::Eq(json!("password")))],
                None,
                None,
            )
            .await
            .unwrap();
        let failures: Vec<_> = events
            .iter()
            .filter(|e| e["kind"] == "sign_in" && e["outcome"] == "failure")
            .collect();
        assert_eq!(failures.len(), 4);
        assert_eq!(failures[0]["user_id"], stored["id"]);
        assert!(failures[1]["user_id"].is_null());
        assert_eq!(failures[0]["detail"]["reason"], "invalid_credentials");
        let kinds = audit_kinds(&auth).await;
        assert!(kinds.contains(&("register".into(), "success".into())));
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == ("sign_in".to_owned(), "success".to_owned()))
                .count(),
            3
        );
        api.cleanup().await;
    }
);

both!(
    bad_registrations_name_their_fields_and_store_nothing,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        for (body, field, fragment) in [
            (
                json!({ "email": "a@example.com", "password": "short" }),
                "password",
                "at least 8",
            ),
            (
                json!({ "email": "a@example.com", "password": "password123" }),
                "password",
                "too easy to guess",
            ),
            (
                json!({ "email": "a@example.com", "password": "qwertyuiop" }),
                "password",
                "too easy to guess",
            ),
            (
                json!({ "email": "a@example.com", "password": "a@example.com!" }),
                "password",
                "too easy to guess",
            ),
            (
                json!({ "email": "a@example.com", "password": "x".repeat(129) }),
                "password",
                "at most 128",
            ),
            (
                json!({ "email": "not an address", "password": GOOD }),
                "email",
                "",
            ),
            (
                json!({ "email": "a@example.com" }),
                "password",
                "is required",
            ),
            (
                json!({ "email": "a@example.com", "password": GOOD, "username": "no spaces" }),
                "username",
                "",
            ),
            (
                json!({ "email": "a@example.com", "password": GOOD, "username": "ab" }),
                "username",
                "at least 3",
            ),
            (
                json!({ "email": "a@example.com", "password": GOOD, "username": 7 }),
                "username",
                "",
            ),
            (
                json!({ "email": "a@example.com", "password": GOOD, "display_name": "d".repeat(65) }),
                "display_name",
                "",
            ),
        ] {
            let r = post(&api, "/auth/password/register", body.clone()).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {}",
                r.body
            );
            let messages = r.body["error"]["fields"][field].to_string();
            assert!(messages.contains(fragment), "{body}: {}", r.body);
        }
        assert!(
            auth.accounts()
                .read_one("user", &[("email", Test::Eq(json!("a@example.com")))])
                .await
                .unwrap()
                .is_none()
        );
        // Taken: without email confirmation, the address and the username
        // are 409s naming the field.
        assert_eq!(
            register(&api, "a@example.com", Some("alice")).await.status,
            StatusCode::CREATED
        );
        let r = register(&api, "A@Example.com", None).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body["error"]["fields"]["email"].is_array(), "{}", r.body);
        let r = register(&api, "b@example.com", Some("Alice")).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(
            r.body["error"]["fields"]["username"].is_array(),
            "{}",
            r.body
        );
        assert!(stored_user_missing(&auth, "b@example.com").await);
        // No body, so no JSON content type: read as the API reads bodies.
        let r = api
            .send("POST", "/auth/password/register", None, None)
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);
        api.cleanup().await;
    }
);

async fn stored_user_missing(auth: &Auth, email: &str) -> bool {
    auth.accounts()
        .read_one("user", &[("email", Test::Eq(json!(email)))])
        .await
        .unwrap()
        .is_none()
}

both!(
    closed_registration_and_disabled_strategy,
    |dialect| async move {
        let mut closed = settings(false);
        closed.registration = Registration::Closed;
        let (api, _auth) = serving(dialect, closed).await;
        let r = register(&api, "c@example.com", None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "registration_closed");
        api.cleanup().await;

        let mut magic_only = settings(false);
        magic_only.strategies.password = false;
        let (api, _auth) = serving(dialect, magic_only).await;
        for route in [
            "/auth/password/register",
            "/auth/password/sign_in",
            "/auth/password/reset_request",
            "/auth/password/reset",
            "/auth/password/change",
        ] {
            let r = post(&api, route, json!({})).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{route}: {}", r.body);
        }
        api.cleanup().await;
    }
);

both!(
    a_reset_link_sets_the_password_once_and_signs_every_device_out,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        let first = register(&api, "r@example.com", None).await;
        let old_refresh = first.data()["refresh_token"].as_str().unwrap().to_owned();
        let old_access = access_of(&first);
        // The same answer for an address with no account; only the real
        // one gets mail.
        let known = post(
            &api,
            "/auth/password/reset_request",
            json!({ "email": "R@example.com" }),
        )
        .await;
        let unknown = post(
            &api,
            "/auth/password/reset_request",
            json!({ "email": "ghost@example.com" }),
        )
        .await;
        assert_eq!(known.status, StatusCode::OK, "{}", known.body);
        assert_eq!(known.body, unknown.body);
        assert_eq!(known.body, json!({ "ok": true }));
        assert_eq!(mails_to(&api, "ghost@example.com").await, 0);
        let token = link_token(&api, "r@example.com", "/auth/password/reset/")
            .await
            .expect("a reset mail");
        // Opening the link shows a form and consumes nothing.
        let (status, html) = page(
            &api,
            Request::get(format!("/auth/password/reset/{token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("<label for=\"password\">") && html.contains("type=\"password\""),
            "{html}"
        );
        // A weak password is refused and the link still works.
        let r = post(
            &api,
            "/auth/password/reset",
            json!({ "token": token, "password": "password" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body["error"]["fields"]["password"].is_array());
        let new = "a brand new passphrase here";
        let r = post(
            &api,
            "/auth/password/reset",
            json!({ "token": token, "password": new }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.data()["access_token"].is_string());
        // Once only.
        let again = post(
            &api,
            "/auth/password/reset",
            json!({ "token": token, "password": new }),
        )
        .await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
        assert_eq!(again.body["error"]["code"], "token_used");
        // Its refusal is audited against the account the link was for.
        let refusals = auth
            .accounts()
            .read(
                "audit_event",
                &[
                    ("kind", Test::Eq(json!("password_reset"))),
                    ("outcome", Test::Eq(json!("failure"))),
                ],
                None,
                None,
            )
            .await
            .unwrap();
        let used = refusals
            .iter()
            .find(|e| e["detail"]["reason"] == "token_used")
            .expect("the reuse is audited");
        assert_eq!(
            used["user_id"],
            stored_user(&auth, "r@example.com").await["id"]
        );
        let bogus = post(
            &api,
            "/auth/password/reset",
            json!({ "token": "not-a-token", "password": new }),
        )
        .await;
        assert_eq!(bogus.body["error"]["code"], "token_invalid");
        // The old password is gone, the new one works, and the devices
        // signed in before are signed out, refresh and access alike.
        assert_eq!(
            sign_in(&api, json!({ "email": "r@example.com" }), GOOD)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            sign_in(&api, json!({ "email": "r@example.com" }), new)
                .await
                .status,
            StatusCode::OK
        );
        let refresh = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": old_refresh }),
        )
        .await;
        assert_eq!(refresh.status, StatusCode::UNAUTHORIZED, "{}", refresh.body);
        assert_eq!(refresh.body["error"]["code"], "session_revoked");
        let me = api.send("GET", "/auth/me", Some(&old_access), None).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.body);
        // A reset also confirms the address: the link proved the mailbox.
        assert!(stored_user(&auth, "r@example.com").await["email_confirmed_at"].is_string());

        // Links expire after an hour.
        post(
            &api,
            "/auth/password/reset_request",
            json!({ "email": "r@example.com" }),
        )
        .await;
        let late = link_token(&api, "r@example.com", "/auth/password/reset/")
            .await
            .unwrap();
        assert_ne!(late, token);
        auth.clock.advance(time::Duration::minutes(61));
        let r = post(
            &api,
            "/auth/password/reset",
            json!({ "token": late, "password": new }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "token_expired");
        let kinds = audit_kinds(&auth).await;
        assert!(kinds.contains(&("password_reset".into(), "success".into())));
        assert!(kinds.contains(&("password_reset".into(), "failure".into())));
        assert!(kinds.contains(&("password_reset_request".into(), "success".into())));
        api.cleanup().await;
    }
);

both!(
    the_reset_page_form_sets_the_password_from_its_own_origin_only,
    |dialect| async move {
        let (api, _auth) = serving(dialect, settings(false)).await;
        register(&api, "f@example.com", None).await;
        post(
            &api,
            "/auth/password/reset_request",
            json!({ "email": "f@example.com" }),
        )
        .await;
        let token = link_token(&api, "f@example.com", "/auth/password/reset/")
            .await
            .unwrap();
        let form = |password: &str, site: &str| {
            Request::post(format!("/auth/password/reset/{token}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("sec-fetch-site", site)
                .body(Body::from(format!(
                    "password={}",
                    password.replace(' ', "+")
                )))
                .unwrap()
        };
        let new = "plenty of unrelated words";
        let (status, html) = page(&api, form(new, "cross-site")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
        let (status, html) = page(&api, form("12345678", "same-origin")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(
            html.contains("too easy to guess") && html.contains("<form"),
            "{html}"
        );
        let (status, html) = page(&api, form(new, "same-origin")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(
            html.contains("Password changed") && html.contains("Test Game"),
            "{html}"
        );
        assert_eq!(
            sign_in(&api, json!({ "email": "f@example.com" }), new)
                .await
                .status,
            StatusCode::OK
        );
        let (status, html) = page(&api, form(new, "same-origin")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{html}");
        api.cleanup().await;
    }
);

both!(
    changing_a_password_keeps_this_device_and_signs_out_the_rest,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        let here = access_of(&register(&api, "p@example.com", None).await);
        let elsewhere = sign_in(&api, json!({ "email": "p@example.com" }), GOOD).await;
        let elsewhere_refresh = elsewhere.data()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let new = "another long passphrase indeed";
        let r = post_as(
            &api,
            "/auth/password/change",
            &here,
            json!({ "current_password": "wrong password here", "new_password": new }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body["error"]["fields"]["current_password"].is_array(),
            "{}",
            r.body
        );
        let r = post_as(
            &api,
            "/auth/password/change",
            &here,
            json!({ "current_password": GOOD, "new_password": "p@example.com" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body["error"]["fields"]["new_password"].is_array(),
            "{}",
            r.body
        );
        let r = post(
            &api,
            "/auth/password/change",
            json!({ "current_password": GOOD, "new_password": new }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        let r = post_as(
            &api,
            "/auth/password/change",
            &here,
            json!({ "current_password": GOOD, "new_password": new }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body, json!({ "ok": true, "signed_out": 1 }));
        assert_eq!(
            api.send("GET", "/auth/me", Some(&here), None).await.status,
            StatusCode::OK
        );
        let refresh = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": elsewhere_refresh }),
        )
        .await;
        assert_eq!(
            refresh.body["error"]["code"], "session_revoked",
            "{}",
            refresh.body
        );
        assert_eq!(
            sign_in(&api, json!({ "email": "p@example.com" }), new)
                .await
                .status,
            StatusCode::OK
        );
        // An API key of the account may not change its password.
        let key = post_as(&api, "/auth/api_keys", &here, json!({ "name": "server" })).await;
        let key = key.data()["key"].as_str().unwrap().to_owned();
        let r = post_as(
            &api,
            "/auth/password/change",
            &key,
            json!({ "current_password": new, "new_password": "yet another passphrase" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert!(
            audit_kinds(&auth)
                .await
                .contains(&("password_change".into(), "failure".into()))
        );
        api.cleanup().await;
    }
);

both!(
    locked_accounts_are_told_only_after_the_right_password,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        register(&api, "l@example.com", None).await;
        set_user(
            &auth,
            "l@example.com",
            "locked_at",
            json!(stamp(auth.clock.now())),
        )
        .await;
        let r = sign_in(
            &api,
            json!({ "email": "l@example.com" }),
            "wrong horse battery staple",
        )
        .await;
        assert_eq!(r.body["error"]["code"], "invalid_credentials", "{}", r.body);
        let r = sign_in(&api, json!({ "email": "l@example.com" }), GOOD).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "account_locked");
        // A locked account gets no reset link.
        post(
            &api,
            "/auth/password/reset_request",
            json!({ "email": "l@example.com" }),
        )
        .await;
        assert_eq!(
            link_token(&api, "l@example.com", "/auth/password/reset/").await,
            None
        );
        api.cleanup().await;
    }
);

both!(
    with_confirmation_an_account_counts_once_its_address_is_confirmed,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(true)).await;
        let r = register(&api, "n@example.com", Some("newbie")).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.body, json!({ "ok": true, "confirmation_sent": true }));
        let first = link_token(&api, "n@example.com", "/auth/email/confirm/")
            .await
            .unwrap();
        // Before confirming: refused, with a fresh link mailed.
        let r = sign_in(&api, json!({ "username": "newbie" }), GOOD).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "email_not_confirmed");
        let second = link_token(&api, "n@example.com", "/auth/email/confirm/")
            .await
            .unwrap();
        assert_ne!(first, second);
        // Registering a taken address answers the same and mails its
        // owner a reset link instead.
        let again = register(&api, "n@example.com", None).await;
        assert_eq!(again.status, StatusCode::ACCEPTED);
        assert_eq!(
            again.body,
            r#"{"ok":true,"confirmation_sent":true}"#.parse::<Value>().unwrap()
        );
        assert!(
            link_token(&api, "n@example.com", "/auth/password/reset/")
                .await
                .is_some()
        );
        // The link's page consumes nothing; its button confirms.
        let (status, html) = page(
            &api,
            Request::get(format!("/auth/email/confirm/{first}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<form method=\"post\">"), "{html}");
        let (status, html) = page(
            &api,
            Request::post(format!("/auth/email/confirm/{first}"))
                .header("sec-fetch-site", "same-origin")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("n@example.com is confirmed"), "{html}");
        assert!(stored_user(&auth, "n@example.com").await["email_confirmed_at"].is_string());
        let r = sign_in(&api, json!({ "username": "newbie" }), GOOD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // Confirming used up the account's other links.
        let r = post(&api, "/auth/email/confirm", json!({ "token": second })).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "token_used", "{}", r.body);
        // The refusal is audited against the account the link was for.
        let refused = auth
            .accounts()
            .read(
                "audit_event",
                &[
                    ("kind", Test::Eq(json!("email_confirmed"))),
                    ("outcome", Test::Eq(json!("failure"))),
                ],
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(
            refused[0]["user_id"],
            stored_user(&auth, "n@example.com").await["id"]
        );
        api.cleanup().await;
    }
);

both!(
    a_changed_address_is_confirmed_before_it_counts,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(true)).await;
        // An account made by a magic link is confirmed already.
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "old@example.com" }),
        )
        .await;
        let token = link_token(&api, "old@example.com", "/auth/magic_link/")
            .await
            .unwrap();
        let access =
            access_of(&post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await);
        register(&api, "taken@example.com", None).await;
        let r = post_as(
            &api,
            "/auth/email/change",
            &access,
            json!({ "email": "New@Example.com" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        // Unchanged until the new address confirms it.
        assert!(stored_user_missing(&auth, "new@example.com").await);
        let token = link_token(&api, "new@example.com", "/auth/email/confirm/")
            .await
            .unwrap();
        // A taken address answers the same and mails nothing.
        let before = mails_to(&api, "taken@example.com").await;
        let taken = post_as(
            &api,
            "/auth/email/change",
            &access,
            json!({ "email": "taken@example.com" }),
        )
        .await;
        assert_eq!(taken.status, r.status);
        assert_eq!(taken.body, r.body);
        assert_eq!(mails_to(&api, "taken@example.com").await, before);
        // The old address hears of the move only once it happens.
        assert_eq!(
            notices_to(&api, "old@example.com").await,
            Vec::<Value>::new()
        );
        let r = post(&api, "/auth/email/confirm", json!({ "token": token })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["email"], "new@example.com");
        assert!(r.data()["email_confirmed_at"].is_string());
        assert!(stored_user_missing(&auth, "old@example.com").await);
        let notices = notices_to(&api, "old@example.com").await;
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0]["text"]
                .as_str()
                .unwrap()
                .contains("new@example.com")
        );
        let same = post_as(
            &api,
            "/auth/email/change",
            &access,
            json!({ "email": "new@example.com" }),
        )
        .await;
        assert_eq!(
            same.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            same.body
        );
        api.cleanup().await;

        // Without confirmation the change is at once, and unconfirmed.
        let (api, _auth) = serving(dialect, settings(false)).await;
        let access = access_of(&register(&api, "m@example.com", None).await);
        register(&api, "other@example.com", None).await;
        // A password account proves its password again to move.
        for (body, why) in [
            (json!({ "email": "m2@example.com" }), "is required"),
            (
                json!({ "email": "m2@example.com", "current_password": "not it at all" }),
                "is not correct",
            ),
        ] {
            let r = post_as(&api, "/auth/email/change", &access, body).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
            assert_eq!(r.body["error"]["fields"]["current_password"][0], why);
        }
        let r = post_as(
            &api,
            "/auth/email/change",
            &access,
            json!({ "email": "other@example.com", "current_password": GOOD }),
        )
        .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body["error"]["fields"]["email"].is_array(), "{}", r.body);
        let r = post_as(
            &api,
            "/auth/email/change",
            &access,
            json!({ "email": "m2@example.com", "current_password": GOOD }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["email"], "m2@example.com");
        assert!(r.data()["email_confirmed_at"].is_null());
        let notices = notices_to(&api, "m@example.com").await;
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0]["html"]
                .as_str()
                .unwrap()
                .contains("m2@example.com")
        );
        assert!(r.data().get("password_hash").is_none());
        assert_eq!(
            sign_in(&api, json!({ "email": "m2@example.com" }), GOOD)
                .await
                .status,
            StatusCode::OK
        );
        api.cleanup().await;
    }
);

both!(
    a_hash_made_at_an_old_cost_is_replaced_at_sign_in,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        register(&api, "h@example.com", None).await;
        let old = Passwords::new(Cost {
            memory_kib: 16,
            iterations: 2,
            lanes: 1,
        })
        .unwrap()
        .hash(GOOD)
        .unwrap();
        set_user(&auth, "h@example.com", "password_hash", json!(old)).await;
        let r = sign_in(&api, json!({ "email": "h@example.com" }), GOOD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let stored = stored_user(&auth, "h@example.com").await;
        let hash = stored["password_hash"].as_str().unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{hash}");
        assert_eq!(
            sign_in(&api, json!({ "email": "h@example.com" }), GOOD)
                .await
                .status,
            StatusCode::OK
        );
        api.cleanup().await;
    }
);

both!(
    an_unknown_account_costs_a_password_check,
    |dialect| async move {
        // At a real cost, so a sign-in that skipped hashing would stand out.
        let mut real = settings(false);
        real.password_cost = Cost {
            memory_kib: 8192,
            iterations: 2,
            lanes: 1,
        };
        let (api, _auth) = serving(dialect, real).await;
        register(&api, "t@example.com", None).await;
        let median = |mut times: Vec<Duration>| {
            times.sort();
            times[times.len() / 2]
        };
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for _ in 0..7 {
            let start = Instant::now();
            sign_in(
                &api,
                json!({ "email": "t@example.com" }),
                "not the password at all",
            )
            .await;
            known.push(start.elapsed());
            let start = Instant::now();
            sign_in(
                &api,
                json!({ "email": "ghost@example.com" }),
                "not the password at all",
            )
            .await;
            unknown.push(start.elapsed());
        }
        let (known, unknown) = (median(known), median(unknown));
        // Coarse on purpose: the check dominates both; without it an
        // unknown address answers in a fraction of the time.
        assert!(
            unknown * 2 > known,
            "unknown {unknown:?} vs known {known:?}"
        );
        api.cleanup().await;
    }
);

both!(
    registering_someone_elses_address_first_takes_nothing_over,
    |dialect| async move {
        for confirm in [true, false] {
            let (api, auth) = serving(dialect, settings(confirm)).await;
            // The attacker registers the victim's address with a password
            // of their own (and, without confirmation, gets a session and
            // makes an API key).
            let r = register(&api, "victim@example.com", None).await;
            let attacker = (!confirm).then(|| {
                (
                    access_of(&r),
                    r.data()["refresh_token"].as_str().unwrap().to_owned(),
                )
            });
            let key = match &attacker {
                Some((access, _)) => {
                    let r =
                        post_as(&api, "/auth/api_keys", access, json!({ "name": "mine" })).await;
                    Some(r.data()["key"].as_str().unwrap().to_owned())
                }
                None => None,
            };
            // The owner signs in by a magic link, proving the mailbox.
            post(
                &api,
                "/auth/magic_link/request",
                json!({ "email": "victim@example.com" }),
            )
            .await;
            let token = link_token(&api, "victim@example.com", "/auth/magic_link/")
                .await
                .unwrap();
            let r = post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            // The attacker's password, session and key are gone.
            let r = sign_in(&api, json!({ "email": "victim@example.com" }), GOOD).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "confirm={confirm}: {}",
                r.body
            );
            assert!(stored_user(&auth, "victim@example.com").await["password_hash"].is_null());
            if let Some((access, refresh)) = &attacker {
                // At once on this server, not at the next reload.
                let r = api.send("GET", "/auth/me", Some(access), None).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
                let r = post(
                    &api,
                    "/auth/token/refresh",
                    json!({ "refresh_token": refresh }),
                )
                .await;
                assert_eq!(r.body["error"]["code"], "session_revoked", "{}", r.body);
            }
            if let Some(key) = &key {
                let r = api.send("GET", "/auth/me", Some(key), None).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
            }
            assert!(
                audit_kinds(&auth)
                    .await
                    .contains(&("address_claimed".into(), "success".into()))
            );
            api.cleanup().await;
        }
    }
);

both!(
    impossible_logins_and_names_are_refused_not_failed,
    |dialect| async move {
        let (api, _auth) = serving(dialect, settings(false)).await;
        let access = access_of(&register(&api, "z@example.com", Some("zed")).await);
        // A NUL cannot be stored (PostgreSQL refuses it): an unknown
        // account, not a 500.
        for username in ["ze\u{0}d", "no", "UPPER CASE!"] {
            let r = sign_in(&api, json!({ "username": username }), GOOD).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{username}: {}", r.body);
            assert_eq!(r.body["error"]["code"], "invalid_credentials");
        }
        // `email: null` beside a username is no email.
        let r = sign_in(&api, json!({ "username": "zed", "email": null }), GOOD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = post_as(
            &api,
            "/auth/api_keys",
            &access,
            json!({ "name": "a\u{0}b" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body["error"]["fields"]["name"].is_array(), "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    a_reset_ends_everything_an_intruder_could_have_left,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        let access = access_of(&register(&api, "k@example.com", None).await);
        let key = post_as(
            &api,
            "/auth/api_keys",
            &access,
            json!({ "name": "left behind" }),
        )
        .await;
        let key = key.data()["key"].as_str().unwrap().to_owned();
        post(
            &api,
            "/auth/password/reset_request",
            json!({ "email": "k@example.com" }),
        )
        .await;
        let first = link_token(&api, "k@example.com", "/auth/password/reset/")
            .await
            .unwrap();
        post(
            &api,
            "/auth/password/reset_request",
            json!({ "email": "k@example.com" }),
        )
        .await;
        let second = link_token(&api, "k@example.com", "/auth/password/reset/")
            .await
            .unwrap();
        let sessions_before = auth
            .accounts()
            .read("session", &[], None, None)
            .await
            .unwrap()
            .len();
        // Through the form: no session is opened for nobody.
        let (status, html) = page(
            &api,
            Request::post(format!("/auth/password/reset/{second}"))
                .header("sec-fetch-site", "same-origin")
                .body(Body::from("password=fresh+words+for+a+fresh+start"))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let sessions_after = auth
            .accounts()
            .read("session", &[], None, None)
            .await
            .unwrap()
            .len();
        assert_eq!(sessions_after, sessions_before);
        // The key stopped working, and so did the other link.
        assert_eq!(
            api.send("GET", "/auth/me", Some(&key), None).await.status,
            StatusCode::UNAUTHORIZED
        );
        let r = post(
            &api,
            "/auth/password/reset",
            json!({ "token": first, "password": "someone else's words here" }),
        )
        .await;
        assert_eq!(r.body["error"]["code"], "token_used", "{}", r.body);
        // A password change also ends outstanding reset links.
        let access = access_of(
            &sign_in(
                &api,
                json!({ "email": "k@example.com" }),
                "fresh words for a fresh start",
            )
            .await,
        );
        post(
            &api,
            "/auth/password/reset_request",
            json!({ "email": "k@example.com" }),
        )
        .await;
        let third = link_token(&api, "k@example.com", "/auth/password/reset/")
            .await
            .unwrap();
        let r = post_as(&api, "/auth/password/change", &access, json!({ "current_password": "fresh words for a fresh start", "new_password": "changed words once again" })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = post(
            &api,
            "/auth/password/reset",
            json!({ "token": third, "password": "someone else's words here" }),
        )
        .await;
        assert_eq!(r.body["error"]["code"], "token_used", "{}", r.body);
        // The request is audited with its account and address.
        let requests = auth
            .accounts()
            .read(
                "audit_event",
                &[("kind", Test::Eq(json!("password_reset_request")))],
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            requests[0]["user_id"],
            stored_user(&auth, "k@example.com").await["id"]
        );
        assert_eq!(requests[0]["detail"]["email"], "k@example.com");
        api.cleanup().await;
    }
);

both!(
    an_old_confirmation_link_cannot_move_the_address_back,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(true)).await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "o@example.com" }),
        )
        .await;
        let token = link_token(&api, "o@example.com", "/auth/magic_link/")
            .await
            .unwrap();
        let access =
            access_of(&post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await);
        for to in ["a1@example.com", "a2@example.com"] {
            let r = post_as(&api, "/auth/email/change", &access, json!({ "email": to })).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        }
        let to_a1 = link_token(&api, "a1@example.com", "/auth/email/confirm/")
            .await
            .unwrap();
        let to_a2 = link_token(&api, "a2@example.com", "/auth/email/confirm/")
            .await
            .unwrap();
        let r = post(&api, "/auth/email/confirm", json!({ "token": to_a2 })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = post(&api, "/auth/email/confirm", json!({ "token": to_a1 })).await;
        assert_eq!(r.body["error"]["code"], "token_used", "{}", r.body);
        assert!(stored_user_missing(&auth, "a1@example.com").await);
        // The change is audited from and to.
        let changes = auth
            .accounts()
            .read(
                "audit_event",
                &[("kind", Test::Eq(json!("email_change")))],
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(changes[0]["detail"]["from"], "o@example.com");
        assert_eq!(changes[0]["detail"]["to"], "a1@example.com");
        api.cleanup().await;
    }
);

both!(expired_links_are_pruned_after_a_day, |dialect| async move {
    let (api, auth) = serving(dialect, settings(false)).await;
    post(
        &api,
        "/auth/password/reset_request",
        json!({ "email": "ghost@example.com" }),
    )
    .await;
    let links = || async {
        auth.accounts()
            .read("auth_token", &[], None, None)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(links().await, 1);
    // Expired, but within the day of grace: kept.
    auth.clock.advance(time::Duration::hours(2));
    assert_eq!(auth.prune_links().await.unwrap(), 0);
    post(
        &api,
        "/auth/password/reset_request",
        json!({ "email": "ghost@example.com" }),
    )
    .await;
    auth.clock.advance(time::Duration::hours(24));
    assert_eq!(auth.prune_links().await.unwrap(), 1);
    assert_eq!(links().await, 1);
    api.cleanup().await;
});

both!(
    an_account_without_a_password_moves_only_from_a_fresh_sign_in,
    |dialect| async move {
        let (api, auth) = serving(dialect, settings(false)).await;
        let sign_in_by_link = async || {
            post(
                &api,
                "/auth/magic_link/request",
                json!({ "email": "p@example.com" }),
            )
            .await;
            let token = link_token(&api, "p@example.com", "/auth/magic_link/")
                .await
                .unwrap();
            post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await
        };
        let first = sign_in_by_link().await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        // Past the window, a session that has only been refreshed since
        // is refused: a stolen refresh token must not move the account.
        auth.clock.advance(time::Duration::minutes(11));
        let r = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": first.data()["refresh_token"] }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let refreshed = access_of(&r);
        let change = json!({ "email": "p2@example.com" });
        let r = post_as(&api, "/auth/email/change", &refreshed, change.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "reauthentication_required");
        assert!(!stored_user_missing(&auth, "p@example.com").await);
        assert_eq!(notices_to(&api, "p@example.com").await.len(), 0);
        // A fresh sign-in moves it, and the old address is told where to.
        let fresh = access_of(&sign_in_by_link().await);
        let r = post_as(&api, "/auth/email/change", &fresh, change).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["email"], "p2@example.com");
        let notices = notices_to(&api, "p@example.com").await;
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0]["text"]
                .as_str()
                .unwrap()
                .contains("p2@example.com")
        );
        // An account with a password gives it instead, however old the
        // session.
        let r = register(&api, "w@example.com", None).await;
        let access = access_of(&r);
        auth.clock.advance(time::Duration::minutes(11));
        let r = post_as(
            &api,
            "/auth/email/change",
            &access,
            json!({ "email": "w2@example.com", "current_password": GOOD }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        api.cleanup().await;
    }
);
