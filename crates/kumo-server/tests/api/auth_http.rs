//! The `/auth/…` routes over HTTP on both databases, with the real auth
//! layer (`AppState::with_auth`), the dev mail adapter and a clock the
//! tests move: magic links by link, code and poll; refresh rotation and
//! reuse; sessions and sign-out; the browser cookie and CSRF; lockout;
//! strategies not enabled; tampered tokens; rate limits; the audit log;
//! the dev mailbox.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Request, StatusCode, header};
use kumo_core::project::Registration;
use kumo_db::query::accounts::{Set, Test};
use kumo_server::app;
use kumo_server::auth::clock::{Clock, stamp};
use kumo_server::auth::limits::LimitSettings;
use kumo_server::auth::{Auth, Settings, Strategies};
use serde_json::{Value, json};
use time::macros::datetime;
use tower::ServiceExt;

use crate::both;
use crate::harness::{Reply, TestApi};

const SECRET: &[u8] = b"the auth route test's secret, 32";
/// A loopback URL: the dev mailbox answers only a server players reach on
/// this machine.
const PUBLIC_URL: &str = "http://127.0.0.1:4000";

fn settings(registration: Registration) -> Settings {
    Settings {
        strategies: Strategies {
            magic_link: true,
            password: false,
            api_key: true,
        },
        registration,
        access_ttl: time::Duration::minutes(15),
        session_ttl: time::Duration::days(30),
        public_url: PUBLIC_URL.into(),
        app_name: "Test Game".into(),
        limits: None,
        client_ip_header: None,
        confirm_email: false,
        password_cost: kumo_auth::password::Cost {
            memory_kib: 8,
            iterations: 1,
            lanes: 1,
        },
        audit_retention: Some(time::Duration::days(365)),
        coordinators_manage_users: true,
    }
}

fn clock() -> Clock {
    Clock::manual(datetime!(2026-11-21 12:00:00 UTC))
}

async fn signing_in(dialect: kumo_db::sql::Dialect, settings: Settings) -> (TestApi, Arc<Auth>) {
    let mut api = TestApi::avatars(dialect).await;
    let auth = api.sign_ins(settings, SECRET, clock());
    (api, auth)
}

async fn post(api: &TestApi, uri: &str, body: Value) -> Reply {
    api.send("POST", uri, None, Some(body)).await
}

/// A request whose answer may be HTML: status, headers and the body text.
async fn text(api: &TestApi, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = app(api.state.clone()).oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// `request` as if from a client on this machine: a loopback peer, as
/// axum's `ConnectInfo` gives it over a socket.
fn from_here(mut request: Request<Body>) -> Request<Body> {
    request.extensions_mut().insert(axum::extract::ConnectInfo(
        "127.0.0.1:50000".parse::<std::net::SocketAddr>().unwrap(),
    ));
    request
}

/// The dev mailbox's JSON, asked for from this machine.
fn mailbox_request() -> Request<Body> {
    from_here(
        Request::get("/dev/mailbox.json")
            .body(Body::empty())
            .unwrap(),
    )
}

/// The newest mail in the dev mailbox to `to`: its link's token and code.
async fn mailed(api: &TestApi, to: &str) -> (String, String) {
    let (status, _, body) = text(api, mailbox_request()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mails: Value = serde_json::from_str(&body).unwrap();
    let mail = mails
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["to"] == to)
        .unwrap_or_else(|| panic!("no mail to {to} in {mails}"));
    let text = mail["text"].as_str().unwrap();
    let prefix = format!("{PUBLIC_URL}/auth/magic_link/");
    let at = text.find(&prefix).expect("the mail holds the link") + prefix.len();
    let token: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let code = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("the mail holds a six-digit code")
        .to_owned();
    for field in ["subject", "html", "sent_at"] {
        assert!(mail[field].is_string(), "{field} in {mail}");
    }
    (token, code)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn me(api: &TestApi, credential: &str) -> Reply {
    let request = Request::get("/auth/me")
        .header(header::AUTHORIZATION, bearer(credential))
        .body(Body::empty())
        .unwrap();
    api.raw(request).await
}

/// The id of the account with this address.
async fn api_user_id(auth: &Auth, email: &str) -> Value {
    auth.accounts()
        .read_one("user", &[("email", Test::Eq(json!(email)))])
        .await
        .unwrap()
        .unwrap()["id"]
        .clone()
}

/// The audit events of `kind` whose `detail.reason` is `reason`, once at
/// least one is there: some are written off the request's path.
async fn audited_soon(auth: &Auth, kind: &str, reason: &str) -> Vec<kumo_db::query::Record> {
    let read = || async {
        auth.accounts()
            .read(
                "audit_event",
                &[("kind", Test::Eq(json!(kind)))],
                None,
                None,
            )
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e["detail"]["reason"] == reason)
            .collect::<Vec<_>>()
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read().await.is_empty() && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A moment more, so a second (wrong) write would show.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    read().await
}

/// A refresh from a device of its own, told apart by its user agent.
async fn refresh_from(api: &TestApi, device: &str, refresh_token: &str) -> Reply {
    let request = Request::post("/auth/token/refresh")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, device)
        .body(Body::from(
            json!({ "refresh_token": refresh_token }).to_string(),
        ))
        .unwrap();
    api.raw(request).await
}

fn session_of(reply: &Reply) -> (String, String) {
    let data = reply.data();
    (
        data["access_token"].as_str().unwrap().to_owned(),
        data["refresh_token"].as_str().unwrap().to_owned(),
    )
}

both!(
    a_magic_link_signs_in_the_browser_and_the_polling_game,
    |dialect| async move {
        let (api, _auth) = signing_in(dialect, settings(Registration::Open)).await;
        let r = post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": " Player@Example.com " }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["ok"], true);
        let poll = r.body["poll"].clone();
        assert!(
            poll["id"].is_string() && poll["secret"].is_string(),
            "{poll}"
        );
        assert_eq!(poll["interval"], 2);
        let (token, _code) = mailed(&api, "player@example.com").await;

        // The game polls: pending.
        let r = post(&api, "/auth/magic_link/poll", poll.clone()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.body["status"], "pending");

        // A mail scanner fetches the link: a page with a button, nothing used.
        let (status, headers, page) = text(
            &api,
            Request::get(format!("/auth/magic_link/{token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("<form method=\"post\">"), "{page}");
        assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        let r = post(&api, "/auth/magic_link/poll", poll.clone()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);

        // Another site cannot press the button for the player.
        let (status, _, _) = text(
            &api,
            Request::post(format!("/auth/magic_link/{token}"))
                .header(header::ORIGIN, "https://evil.test")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // The player presses it: signed in, told to return to the game.
        let (status, headers, page) = text(
            &api,
            Request::post(format!("/auth/magic_link/{token}"))
                .header(header::ORIGIN, PUBLIC_URL)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Return to Test Game"), "{page}");
        let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(cookie.starts_with("kumo_session="), "{cookie}");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let cookie = cookie.split(';').next().unwrap().to_owned();

        // The game's poll now gets its own session, once.
        let r = post(&api, "/auth/magic_link/poll", poll.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let data = r.data();
        for field in [
            "access_token",
            "refresh_token",
            "expires_in",
            "session_id",
            "user",
        ] {
            assert!(!data[field].is_null(), "{field} in {data}");
        }
        assert_eq!(data["token_type"], "Bearer");
        assert_eq!(data["expires_in"], 900);
        assert_eq!(data["user"]["email"], "player@example.com");
        assert!(data["user"].get("password_hash").is_none());
        let r2 = post(&api, "/auth/magic_link/poll", poll).await;
        assert_eq!(r2.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r2.body["error"]["code"], "token_used");

        // The access token is the player.
        let (access, _) = session_of(&r);
        let who = me(&api, &access).await;
        assert_eq!(who.status, StatusCode::OK, "{}", who.body);
        assert_eq!(who.data()["email"], "player@example.com");

        // So is the browser's cookie, for reads and same-origin writes;
        // a write from another site is refused.
        let (status, _, body) = text(
            &api,
            Request::get("/auth/me")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, body) = text(
            &api,
            Request::post("/auth/sign_out")
                .header(header::COOKIE, &cookie)
                .header(header::ORIGIN, "https://evil.test")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("cross_site_request"), "{body}");
        let (status, headers, body) = text(
            &api,
            Request::post("/auth/sign_out")
                .header(header::COOKIE, &cookie)
                .header("sec-fetch-site", "same-origin")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            headers[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        // Signed out: the cookie no longer works, the game's session does.
        let (status, _, _) = text(
            &api,
            Request::get("/auth/me")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(me(&api, &access).await.status, StatusCode::OK);

        // The link was used: pressing it again says so.
        let (status, _, page) = text(
            &api,
            Request::post(format!("/auth/magic_link/{token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(page.contains("already used"), "{page}");
        api.cleanup().await;
    }
);

both!(
    a_code_signs_in_and_allows_five_tries,
    |dialect| async move {
        let (api, _auth) = signing_in(dialect, settings(Registration::Open)).await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "coder@example.com" }),
        )
        .await;
        let (_, code) = mailed(&api, "coder@example.com").await;
        let wrong = if code == "000000" { "000001" } else { "000000" };
        let r = post(
            &api,
            "/auth/magic_link/sign_in",
            json!({ "email": "coder@example.com", "code": wrong }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["error"]["code"], "token_invalid");
        let r = post(
            &api,
            "/auth/magic_link/sign_in",
            json!({ "email": "Coder@example.com", "code": code }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["user"]["email"], "coder@example.com");

        // A new link; five wrong tries use its code up, the right one then fails.
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "coder@example.com" }),
        )
        .await;
        let (_, code) = mailed(&api, "coder@example.com").await;
        let wrong = if code == "000000" { "000001" } else { "000000" };
        for _ in 0..5 {
            let r = post(
                &api,
                "/auth/magic_link/sign_in",
                json!({ "email": "coder@example.com", "code": wrong }),
            )
            .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        let r = post(
            &api,
            "/auth/magic_link/sign_in",
            json!({ "email": "coder@example.com", "code": code }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    a_request_answers_the_same_for_unknown_addresses,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Closed)).await;
        let accounts = auth.accounts();
        let mut tx = accounts.begin().await.unwrap();
        tx.insert(
            "user",
            &[("email", json!("known@example.com"))],
            &stamp(auth.clock.now()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let known = post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "known@example.com" }),
        )
        .await;
        let unknown = post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "nobody@example.com" }),
        )
        .await;
        assert_eq!(known.status, unknown.status);
        assert_eq!(known.headers.len(), unknown.headers.len());
        let shape = |body: &Value| {
            let mut body = body.clone();
            body["poll"]["id"] = json!("<id>");
            body["poll"]["secret"] = json!("<secret>");
            body
        };
        assert_eq!(shape(&known.body), shape(&unknown.body));
        // Only the known address got mail.
        let (_, _, mails) = text(&api, mailbox_request()).await;
        assert!(mails.contains("known@example.com") && !mails.contains("nobody@example.com"));
        api.cleanup().await;
    }
);

both!(
    refresh_rotates_and_a_reused_token_ends_the_session,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "r@example.com" }),
        )
        .await;
        let (token, _) = mailed(&api, "r@example.com").await;
        let r = post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let (access, first_refresh) = session_of(&r);

        // Past the retry grace, so a reuse is a reuse.
        auth.clock.advance(time::Duration::minutes(1));
        let r = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": first_refresh }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let (new_access, new_refresh) = session_of(&r);
        assert_ne!(new_refresh, first_refresh);
        assert_eq!(me(&api, &new_access).await.status, StatusCode::OK);

        auth.clock.advance(time::Duration::minutes(1));
        let r = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": first_refresh }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "token_reused");
        // The whole session is gone: its newest refresh token, and at once
        // its access tokens.
        let r = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": new_refresh }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me(&api, &new_access).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(me(&api, &access).await.status, StatusCode::UNAUTHORIZED);

        // The audit log has the sign-in and the reuse.
        let mut tx = auth.accounts().begin().await.unwrap();
        let events = tx.find("audit_event", &[], None, None).await.unwrap();
        drop(tx);
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e["kind"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
            .collect();
        assert!(kinds.contains(&("sign_in", "success")), "{kinds:?}");
        // Both refusals name the account: the reuse, and the refresh of
        // the revoked session after it.
        let user_id = api_user_id(&auth, "r@example.com").await;
        let of = |kind: &str| {
            events
                .iter()
                .find(|e| e["kind"] == kind && e["outcome"] == "failure")
                .unwrap_or_else(|| panic!("no failed {kind} in {kinds:?}"))
        };
        assert_eq!(of("refresh_token_reused")["user_id"], user_id);
        let revoked = of("refresh");
        assert_eq!(revoked["user_id"], user_id);
        assert_eq!(revoked["detail"]["reason"], "session_revoked");
        api.cleanup().await;
    }
);

both!(sessions_are_listed_and_signed_out, |dialect| async move {
    let (api, _auth) = signing_in(dialect, settings(Registration::Open)).await;
    let mut sessions = Vec::new();
    for device in ["Quest", "Phone"] {
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "s@example.com" }),
        )
        .await;
        let (token, _) = mailed(&api, "s@example.com").await;
        let request = Request::post("/auth/magic_link/sign_in")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, device)
            .body(Body::from(json!({ "token": token }).to_string()))
            .unwrap();
        let r = api.raw(request).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        sessions.push((
            session_of(&r).0,
            r.data()["session_id"].as_str().unwrap().to_owned(),
        ));
    }
    let (quest, quest_id) = sessions[0].clone();
    let (phone, phone_id) = sessions[1].clone();
    let list = api.send("GET", "/auth/sessions", Some(&quest), None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let rows = list.data().as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let quest_row = rows.iter().find(|r| r["id"] == quest_id.as_str()).unwrap();
    assert_eq!(quest_row["current"], true);
    assert_eq!(quest_row["user_agent"], "Quest");
    for field in ["created_at", "last_used_at", "ip", "expires_at"] {
        assert!(quest_row.get(field).is_some(), "{field}");
    }

    // Another user cannot end these sessions.
    post(
        &api,
        "/auth/magic_link/request",
        json!({ "email": "other@example.com" }),
    )
    .await;
    let (token, _) = mailed(&api, "other@example.com").await;
    let other =
        session_of(&post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await).0;
    let r = api
        .send(
            "DELETE",
            &format!("/auth/sessions/{phone_id}"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(me(&api, &phone).await.status, StatusCode::OK);

    // The owner ends the phone's from the headset.
    let (status, _, body) = text(
        &api,
        Request::delete(format!("/auth/sessions/{phone_id}"))
            .header(header::AUTHORIZATION, bearer(&quest))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, "");
    assert_eq!(me(&api, &phone).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&api, &quest).await.status, StatusCode::OK);

    // Everywhere: the headset too.
    let r = api
        .send("POST", "/auth/sign_out_everywhere", Some(&quest), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["signed_out"], 1);
    assert_eq!(me(&api, &quest).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&api, &other).await.status, StatusCode::OK);
    api.cleanup().await;
});

both!(
    a_locked_account_cannot_sign_in_or_refresh,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "l@example.com" }),
        )
        .await;
        let (token, _) = mailed(&api, "l@example.com").await;
        let r = post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
        let (access, refresh) = session_of(&r);
        // A second link, asked for before the lock.
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "l@example.com" }),
        )
        .await;
        let (fresh, _) = mailed(&api, "l@example.com").await;
        assert_ne!(fresh, token);
        // Cached as signed in…
        assert_eq!(me(&api, &access).await.status, StatusCode::OK);
        // Locked as `kumo user lock` locks: the account, and every one of
        // its sessions revoked.
        let now = stamp(auth.clock.now());
        let user_id = api_user_id(&auth, "l@example.com").await;
        let mut tx = auth.accounts().begin().await.unwrap();
        tx.update(
            "user",
            &[("locked_at", Set::To(json!(now)))],
            &[("id", Test::Eq(user_id.clone()))],
            &now,
        )
        .await
        .unwrap();
        tx.update(
            "session",
            &[("revoked_at", Set::To(json!(now)))],
            &[("user_id", Test::Eq(user_id))],
            &now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        // The user cache keeps a record for a couple of seconds at most.
        tokio::time::sleep(kumo_server::auth::credentials::USER_FRESH_FOR).await;
        assert_eq!(me(&api, &access).await.status, StatusCode::UNAUTHORIZED);
        auth.clock.advance(time::Duration::minutes(1));
        let r = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": refresh }),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "account_locked");
        let r = post(&api, "/auth/magic_link/sign_in", json!({ "token": fresh })).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "account_locked");
        api.cleanup().await;
    }
);

both!(
    bad_and_tampered_credentials_are_401_never_500,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "t@example.com" }),
        )
        .await;
        let (token, _) = mailed(&api, "t@example.com").await;
        let r = post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
        let (access, refresh) = session_of(&r);
        let other_server = {
            let key = kumo_auth::access::AccessKey::new(b"another server's secret, 32 byte");
            let claims = auth
                .keys()
                .access
                .verify(&access, auth.clock.now().unix_timestamp())
                .unwrap();
            key.issue(&claims)
        };
        let mut flipped = access.clone().into_bytes();
        flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            flipped.as_str(),
            &access[..access.len() - 3],
            other_server.as_str(),
            "",
            "kumo_notakey_000000",
            "\u{7f}",
        ] {
            let request = Request::get("/api/avatars")
                .header(header::AUTHORIZATION, format!("Bearer {bad}"))
                .body(Body::empty());
            let Ok(request) = request else { continue };
            let r = api.raw(request).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}: {}", r.body);
            assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
        }
        let r = api
            .raw(
                Request::get("/api/avatars")
                    .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        for bad in [&refresh[..refresh.len() - 2], "x", &access] {
            let r = post(&api, "/auth/token/refresh", json!({ "refresh_token": bad })).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}: {}", r.body);
        }
        // Expired: fifteen minutes on.
        auth.clock.advance(time::Duration::minutes(15));
        let r = me(&api, &access).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired")
        );
        api.cleanup().await;
    }
);

both!(
    bad_bodies_are_400_or_a_422_naming_the_field,
    |dialect| async move {
        let (api, _auth) = signing_in(dialect, settings(Registration::Open)).await;
        let raw = |body: &'static str| {
            Request::post("/auth/magic_link/request")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .unwrap()
        };
        let r = api.raw(raw("{not json")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = api.raw(raw("[]")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = post(&api, "/auth/magic_link/request", json!({})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body["error"]["fields"]["email"].is_array(), "{}", r.body);
        let r = post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "not an address" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body["error"]["fields"]["email"].is_array(), "{}", r.body);
        let r = post(&api, "/auth/magic_link/request", json!({ "email": 7 })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = post(
            &api,
            "/auth/magic_link/sign_in",
            json!({ "email": "a@example.com" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.body["error"]["fields"]["code"].is_array(), "{}", r.body);
        // No handle was ever issued with an id that is not a UUID: the
        // field is named, as any malformed field is (it was a 401).
        let r = post(
            &api,
            "/auth/magic_link/poll",
            json!({ "id": "nope", "secret": "x" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body["error"]["fields"]["id"].is_array(), "{}", r.body);
        api.cleanup().await;
    }
);

both!(a_strategy_not_enabled_answers_404, |dialect| async move {
    let mut only_keys = settings(Registration::Open);
    only_keys.strategies.magic_link = false;
    let (api, _auth) = signing_in(dialect, only_keys).await;
    let r = post(
        &api,
        "/auth/magic_link/request",
        json!({ "email": "a@example.com" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let (status, _, _) = text(
        &api,
        Request::get("/auth/magic_link/abc")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The session routes stay: API keys sign in too.
    let r = api.send("GET", "/auth/me", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    api.cleanup().await;

    // No strategy at all: no auth routes, anonymous requests only.
    let mut api = TestApi::avatars(dialect).await;
    api.without_sign_in();
    let r = api.send("GET", "/auth/me", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = post(&api, "/auth/token/refresh", json!({ "refresh_token": "x" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.send("GET", "/api/avatars", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api
        .send("GET", "/api/avatars", Some("anything"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(r.body["error"]["fields"], json!({}));
    api.cleanup().await;
});

both!(auth_routes_are_rate_limited, |dialect| async move {
    let mut limited = settings(Registration::Open);
    limited.limits = Some(LimitSettings {
        per_ip_per_minute: 100.try_into().unwrap(),
        per_account_per_minute: 3.try_into().unwrap(),
        polls_per_ip_per_minute: 100.try_into().unwrap(),
    });
    let (api, _auth) = signing_in(dialect, limited).await;
    for _ in 0..3 {
        let r = post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "rl@example.com" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = post(
        &api,
        "/auth/magic_link/request",
        json!({ "email": "RL@example.com" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    // The message says whose allowance ran out.
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("for this account"), "{message}");
    // Another account is not held up.
    let r = post(
        &api,
        "/auth/magic_link/request",
        json!({ "email": "rl2@example.com" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    api.cleanup().await;

    let mut limited = settings(Registration::Open);
    limited.limits = Some(LimitSettings {
        per_ip_per_minute: 5.try_into().unwrap(),
        per_account_per_minute: 100.try_into().unwrap(),
        polls_per_ip_per_minute: 100.try_into().unwrap(),
    });
    let (api, _auth) = signing_in(dialect, limited).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": format!("ip{i}@example.com") }),
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses[..5], [StatusCode::OK; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    // Every auth route counts against the client: the signed-in ones too.
    for uri in ["/auth/me", "/auth/sessions", "/auth/api_keys"] {
        let r = api.send("GET", uri, None, None).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{uri}");
    }
    api.cleanup().await;
});

both!(
    the_dev_mailbox_is_for_this_machine_only,
    |dialect| async move {
        let (api, _auth) = signing_in(dialect, settings(Registration::Open)).await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "m@example.com" }),
        )
        .await;
        let page_request = || Request::get("/dev/mailbox").body(Body::empty()).unwrap();
        let (status, headers, page) = text(&api, from_here(page_request())).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("m@example.com"), "{page}");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        // Through a proxy, or from another machine: not there.
        let mut proxied = mailbox_request();
        proxied
            .headers_mut()
            .insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        let (status, _, _) = text(&api, proxied).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let mut remote = Request::get("/dev/mailbox.json")
            .body(Body::empty())
            .unwrap();
        remote.extensions_mut().insert(axum::extract::ConnectInfo(
            "203.0.113.9:5000".parse::<std::net::SocketAddr>().unwrap(),
        ));
        let (status, _, _) = text(&api, remote).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // No peer address (no socket): not known to be local, so not
        // local (it used to count as local).
        let (status, _, _) = text(&api, page_request()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        api.cleanup().await;

        // Behind a proxy that writes the client's address to a header of
        // its own: a request carrying it came through the proxy, whatever
        // it says and whatever the peer (the proxy, on this machine).
        let mut behind_proxy = settings(Registration::Open);
        behind_proxy.client_ip_header = Some(HeaderName::from_static("x-client-address"));
        let (api, _auth) = signing_in(dialect, behind_proxy).await;
        for client in ["203.0.113.9", "127.0.0.1"] {
            let mut request = mailbox_request();
            request
                .headers_mut()
                .insert("x-client-address", client.parse().unwrap());
            let (status, _, _) = text(&api, request).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{client}");
        }
        let (status, _, _) = text(&api, mailbox_request()).await;
        assert_eq!(status, StatusCode::OK);
        api.cleanup().await;

        // A server whose public URL is not on this machine is reached from
        // others (perhaps through a proxy on this one): no mailbox, even
        // for a loopback peer.
        let mut public = settings(Registration::Open);
        public.public_url = "https://game.example".into();
        let (api, _auth) = signing_in(dialect, public).await;
        let (status, _, _) = text(&api, mailbox_request()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        api.cleanup().await;
    }
);

both!(
    polls_have_a_larger_allowance_of_their_own_per_client,
    |dialect| async move {
        let mut limited = settings(Registration::Open);
        limited.limits = Some(LimitSettings {
            per_ip_per_minute: 3.try_into().unwrap(),
            per_account_per_minute: 100.try_into().unwrap(),
            polls_per_ip_per_minute: 8.try_into().unwrap(),
        });
        let (api, _auth) = signing_in(dialect, limited).await;
        let mut polls = Vec::new();
        for email in ["p1@example.com", "p2@example.com"] {
            let r = post(&api, "/auth/magic_link/request", json!({ "email": email })).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            polls.push(r.body["poll"].clone());
        }
        // More polls than the other routes allow, over two handles: the
        // client's poll allowance is what counts (it was each handle's).
        for i in 0..8 {
            let r = post(&api, "/auth/magic_link/poll", polls[i % 2].clone()).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "poll {i}: {}", r.body);
        }
        let r = post(&api, "/auth/magic_link/poll", polls[0].clone()).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(r.headers.contains_key(header::RETRY_AFTER));
        // The polls spent none of the allowance of the other routes.
        let r = post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "p3@example.com" }),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        api.cleanup().await;
    }
);

both!(a_refused_poll_is_audited, |dialect| async move {
    let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
    let r = post(
        &api,
        "/auth/magic_link/request",
        json!({ "email": "guess@example.com" }),
    )
    .await;
    let poll = r.body["poll"].clone();
    let wrong = json!({ "id": poll["id"], "secret": "not the secret" });
    let r = post(&api, "/auth/magic_link/poll", wrong).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "token_invalid");
    let mut tx = auth.accounts().begin().await.unwrap();
    let events = tx
        .find(
            "audit_event",
            &[
                ("kind", Test::Eq(json!("sign_in"))),
                ("outcome", Test::Eq(json!("failure"))),
            ],
            None,
            None,
        )
        .await
        .unwrap();
    drop(tx);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["strategy"], "magic_link");
    assert_eq!(events[0]["detail"]["reason"], "token_invalid", "{events:?}");
    api.cleanup().await;
});

both!(
    a_link_request_was_audited_without_its_address,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
        // The first link makes the account; the request for it had none.
        let known = signed_in_as(&api, "known@example.com").await;
        let known_id = me(&api, &known).await.data()["id"].clone();
        for email in [" Known@Example.com", "stranger@example.com"] {
            let r = post(&api, "/auth/magic_link/request", json!({ "email": email })).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
        let mut tx = auth.accounts().begin().await.unwrap();
        let requests = tx
            .find(
                "audit_event",
                &[("kind", Test::Eq(json!("magic_link_request")))],
                None,
                None,
            )
            .await
            .unwrap();
        drop(tx);
        let of = |email: &str| {
            requests
                .iter()
                .filter(|e| e["detail"]["email"] == email)
                .collect::<Vec<_>>()
        };
        let known: Vec<_> = of("known@example.com")
            .iter()
            .map(|e| (e["user_id"].clone(), e["detail"]["sent"].clone()))
            .collect();
        assert_eq!(known.len(), 2, "{requests:?}");
        assert!(known.contains(&(Value::Null, json!(true))), "{known:?}");
        assert!(known.contains(&(known_id, json!(true))), "{known:?}");
        let stranger = of("stranger@example.com");
        assert_eq!(stranger.len(), 1, "{requests:?}");
        assert!(stranger[0]["user_id"].is_null(), "{stranger:?}");
        api.cleanup().await;
    }
);

both!(
    a_link_path_that_is_not_utf8_was_a_plain_text_400,
    |dialect| async move {
        let (api, _auth) = signing_in(dialect, settings(Registration::Open)).await;
        let press = |path: &str| {
            Request::post(path)
                .header(header::ORIGIN, PUBLIC_URL)
                .body(Body::empty())
                .unwrap()
        };
        let (status, _, invalid) = text(&api, press("/auth/magic_link/not-a-token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{invalid}");
        let (status, headers, page) = text(&api, press("/auth/magic_link/%FF%FE")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{headers:?}"
        );
        assert_eq!(page, invalid, "the invalid link's page");
        let (status, _, page) = text(
            &api,
            Request::get("/auth/magic_link/%FF%FE")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
        assert_eq!(page, invalid, "the invalid link's page");
        api.cleanup().await;
    }
);

/// A project's own attribute on the user, marked sensitive.
const USER_WITH_A_SECRET: &str = r#"
[resource]
name = "user"

[attributes]
recovery_hint = { type = "string", sensitive = true }
"#;

both!(
    sign_ins_show_no_sensitive_user_attribute,
    |dialect| async move {
        let mut api = TestApi::new(dialect, &[("user", USER_WITH_A_SECRET)]).await;
        let auth = api.sign_ins(settings(Registration::Open), SECRET, clock());
        let mut tx = auth.accounts().begin().await.unwrap();
        tx.insert(
            "user",
            &[
                ("email", json!("hint@example.com")),
                ("recovery_hint", json!("the dog's name")),
            ],
            &stamp(auth.clock.now()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let r = post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "hint@example.com" }),
        )
        .await;
        let poll = r.body["poll"].clone();
        let (token, _) = mailed(&api, "hint@example.com").await;
        let signed_in = post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
        assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
        let polled = post(&api, "/auth/magic_link/poll", poll).await;
        assert_eq!(polled.status, StatusCode::OK, "{}", polled.body);
        let (access, _) = session_of(&signed_in);
        let me = me(&api, &access).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        for user in [&signed_in.data()["user"], &polled.data()["user"], me.data()] {
            assert_eq!(user["email"], "hint@example.com", "{user}");
            assert!(user.get("recovery_hint").is_none(), "{user}");
            assert!(user.get("password_hash").is_none(), "{user}");
        }
        api.cleanup().await;
    }
);

/// With `[server.rate_limit] enabled = false`, `client_ip_header` still
/// says where a client's address comes from, for the auth layer's limits
/// and its audit log (it was read only when that limit was on).
#[tokio::test]
async fn the_proxy_header_counts_with_the_api_limit_off() {
    let api = TestApi::avatars(kumo_db::sql::Dialect::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kumo_core::project::parse_config(
        "[server.rate_limit]\nenabled = false\nclient_ip_header = \"X-Client-Address\"\n\n\
         [auth]\nstrategies = [\"magic_link\"]\n",
    )
    .unwrap();
    let project = kumo_core::project::Project {
        root: dir.path().to_owned(),
        config,
    };
    let auth = Auth::from_project(
        api.state.shared_engine().unwrap(),
        &project,
        SECRET,
        "127.0.0.1:4000".parse().unwrap(),
    )
    .unwrap()
    .expect("a strategy is enabled");
    assert_eq!(
        auth.settings
            .client_ip_header
            .as_ref()
            .map(HeaderName::as_str),
        Some("x-client-address")
    );
    drop(auth);
    api.cleanup().await;
}

both!(
    admins_read_the_audit_log_and_revoke_sessions_through_the_api,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Closed)).await;
        let mut tx = auth.accounts().begin().await.unwrap();
        let now = stamp(auth.clock.now());
        for (email, role) in [("boss@example.com", "admin"), ("pat@example.com", "user")] {
            tx.insert(
                "user",
                &[("email", json!(email)), ("role", json!(role))],
                &now,
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let admin = signed_in_as(&api, "boss@example.com").await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "pat@example.com" }),
        )
        .await;
        let (token, _) = mailed(&api, "pat@example.com").await;
        let r = post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
        let (player, refresh) = session_of(&r);
        let session_id = r.data()["session_id"].as_str().unwrap().to_owned();

        // The admin reads the audit log; for a player it does not exist.
        let log = api
            .send("GET", "/api/audit_events", Some(&admin), None)
            .await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.body);
        let events = log.data().as_array().unwrap().clone();
        assert!(!events.is_empty());
        let event = format!("/api/audit_events/{}", events[0]["id"].as_str().unwrap());
        let r = api.send("GET", &event, Some(&admin), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = api
            .send("GET", "/api/audit_events", Some(&player), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data(), &json!([]));
        let r = api.send("GET", &event, Some(&player), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        // Not even an admin edits or deletes it.
        let r = api
            .send("PATCH", &event, Some(&admin), Some(json!({})))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = api.send("DELETE", &event, Some(&admin), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

        // Setting `revoked_at` signs the session out: its access token
        // within seconds (here at once, on this node), its refresh token
        // at once.
        let session = format!("/api/sessions/{session_id}");
        let r = api.send("DELETE", &session, Some(&admin), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(me(&api, &player).await.status, StatusCode::OK);
        let r = api
            .send(
                "PATCH",
                &session,
                Some(&admin),
                Some(json!({ "revoked_at": stamp(auth.clock.now()) })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let signed_out = async {
            while me(&api, &player).await.status != StatusCode::UNAUTHORIZED {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(3), signed_out)
            .await
            .expect("the access token stops working");
        auth.clock.advance(time::Duration::minutes(1));
        let r = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": refresh }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "session_revoked");
        // And it stays revoked.
        let r = api
            .send(
                "PATCH",
                &session,
                Some(&admin),
                Some(json!({ "revoked_at": null })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body["error"]["fields"]["revoked_at"].is_array(),
            "{}",
            r.body
        );
        api.cleanup().await;
    }
);

/// The median of `samples`.
fn median(mut samples: Vec<std::time::Duration>) -> std::time::Duration {
    samples.sort();
    samples[samples.len() / 2]
}

both!(
    a_link_request_takes_as_long_for_an_unknown_address,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Closed)).await;
        let mut tx = auth.accounts().begin().await.unwrap();
        tx.insert(
            "user",
            &[("email", json!("known@example.com"))],
            &stamp(auth.clock.now()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let timed = |email: &'static str| {
            let api = &api;
            async move {
                let started = std::time::Instant::now();
                let r = post(api, "/auth/magic_link/request", json!({ "email": email })).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                started.elapsed()
            }
        };
        // Warm both paths (connections, statement caches) before timing.
        for _ in 0..5 {
            timed("known@example.com").await;
            timed("nobody@example.com").await;
        }
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for i in 0..40 {
            // Interleaved, each first in turn, so a slow moment of a busy
            // machine falls on both.
            if i % 2 == 0 {
                known.push(timed("known@example.com").await);
                unknown.push(timed("nobody@example.com").await);
            } else {
                unknown.push(timed("nobody@example.com").await);
                known.push(timed("known@example.com").await);
            }
        }
        let (known, unknown) = (median(known), median(unknown));
        // Coarse, so it does not flake: an answer that says which
        // addresses exist differs by a database round trip or a mail
        // delivery, several times this on a quiet machine.
        let bound = std::time::Duration::from_millis(5).max(known.max(unknown) / 2);
        let difference = known.abs_diff(unknown);
        assert!(
            difference <= bound,
            "median {known:?} for an account, {unknown:?} for none"
        );
        api.cleanup().await;
    }
);

both!(
    a_used_or_expired_code_says_so_and_names_the_account,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
        let email = "typist@example.com";
        post(&api, "/auth/magic_link/request", json!({ "email": email })).await;
        let (_, code) = mailed(&api, email).await;
        let sign_in = json!({ "email": email, "code": code });
        let r = post(&api, "/auth/magic_link/sign_in", sign_in.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let user_id = r.data()["user"]["id"].clone();
        // The same code again: that link was used (it said token_invalid).
        let r = post(&api, "/auth/magic_link/sign_in", sign_in).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "token_used");

        // A new link whose code is typed too late.
        post(&api, "/auth/magic_link/request", json!({ "email": email })).await;
        let (_, code) = mailed(&api, email).await;
        auth.clock.advance(time::Duration::minutes(16));
        let r = post(
            &api,
            "/auth/magic_link/sign_in",
            json!({ "email": email, "code": code }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "token_expired");

        // The failures name the account they aimed at.
        let mut tx = auth.accounts().begin().await.unwrap();
        let failures = tx
            .find(
                "audit_event",
                &[("outcome", Test::Eq(json!("failure")))],
                None,
                None,
            )
            .await
            .unwrap();
        drop(tx);
        assert_eq!(failures.len(), 2, "{failures:?}");
        for failure in &failures {
            assert_eq!(failure["user_id"], user_id, "{failure:?}");
        }
        api.cleanup().await;
    }
);

both!(
    a_refresh_repeated_within_the_grace_is_audited,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "again@example.com" }),
        )
        .await;
        let (token, _) = mailed(&api, "again@example.com").await;
        let r = post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
        let (_, refresh) = session_of(&r);
        let first = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": refresh }),
        )
        .await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        let again = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": refresh }),
        )
        .await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(session_of(&again).1, session_of(&first).1);
        let mut tx = auth.accounts().begin().await.unwrap();
        let repeated = tx
            .find(
                "audit_event",
                &[("kind", Test::Eq(json!("refresh_repeated")))],
                None,
                None,
            )
            .await
            .unwrap();
        drop(tx);
        assert_eq!(repeated.len(), 1, "{repeated:?}");
        assert_eq!(repeated[0]["user_id"], r.data()["user"]["id"]);

        // The scheme is case-insensitive (RFC 9110): `bearer` works too.
        let (access, _) = session_of(&again);
        let request = Request::get("/auth/me")
            .header(header::AUTHORIZATION, format!("bearer {access}"))
            .body(Body::empty())
            .unwrap();
        let r = api.raw(request).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        api.cleanup().await;
    }
);

/// A bug that panics while a request is handled (here, in the
/// authenticator) answers 500 in the one error shape, not a dropped
/// connection.
#[tokio::test]
async fn a_panicking_handler_answers_500_in_the_error_shape() {
    let mut api = TestApi::avatars(kumo_db::sql::Dialect::Sqlite).await;
    api.authenticating_with(Arc::new(|_: &axum::http::request::Parts| panic!("a bug")));
    let r = api.send("GET", "/api/avatars", None, None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body["error"]["code"], "internal");
    assert_eq!(r.body["error"]["fields"], json!({}));
    api.cleanup().await;
}

/// Signs `email` in by a magic link; its access token.
async fn signed_in_as(api: &TestApi, email: &str) -> String {
    post(api, "/auth/magic_link/request", json!({ "email": email })).await;
    let (token, _) = mailed(api, email).await;
    let r = post(api, "/auth/magic_link/sign_in", json!({ "token": token })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    session_of(&r).0
}

both!(
    api_keys_are_shown_once_and_act_as_their_owner,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
        let owner = signed_in_as(&api, "owner@example.com").await;
        let r = api
            .send(
                "POST",
                "/auth/api_keys",
                Some(&owner),
                Some(json!({ "name": "dedicated server" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let key = r.data()["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("kumo_") && key.len() == 44, "{key}");
        assert_eq!(r.data()["prefix"], key[..12]);
        assert!(r.data().get("key_hash").is_none());
        let key_id = r.data()["id"].as_str().unwrap().to_owned();

        // The key is its owner, for the resource API and the auth routes.
        let who = me(&api, &key).await;
        assert_eq!(who.status, StatusCode::OK, "{}", who.body);
        assert_eq!(who.data()["email"], "owner@example.com");
        // But it cannot make more keys, nor list them.
        let r = api
            .send(
                "POST",
                "/auth/api_keys",
                Some(&key),
                Some(json!({ "name": "x" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let list = api.send("GET", "/auth/api_keys", Some(&owner), None).await;
        assert_eq!(list.status, StatusCode::OK);
        let keys = list.data().as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(
            keys[0].get("key").is_none() && keys[0].get("key_hash").is_none(),
            "{}",
            keys[0]
        );
        assert_eq!(keys[0]["name"], "dedicated server");

        // A mistyped key fails its checksum.
        let mut typo = key.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let r = me(&api, &String::from_utf8(typo).unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);

        // Bad expiries are named.
        for (expires_at, _) in [("2020-01-01T00:00:00Z", "past"), ("tomorrow", "format")] {
            let r = api
                .send(
                    "POST",
                    "/auth/api_keys",
                    Some(&owner),
                    Some(json!({ "name": "k", "expires_at": expires_at })),
                )
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
            assert!(r.body["error"]["fields"]["expires_at"].is_array());
        }
        // A key that expires stops working then.
        let soon = stamp(auth.clock.now() + time::Duration::minutes(5));
        let r = api
            .send(
                "POST",
                "/auth/api_keys",
                Some(&owner),
                Some(json!({ "name": "brief", "expires_at": soon })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let brief = r.data()["key"].as_str().unwrap().to_owned();
        assert_eq!(me(&api, &brief).await.status, StatusCode::OK);

        // A key does not manage its owner's account: it cannot see or end
        // the owner's sessions, nor revoke another key.
        let brief_id = r.data()["id"].as_str().unwrap().to_owned();
        let session_id = api
            .send("GET", "/auth/sessions", Some(&owner), None)
            .await
            .data()[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (method, uri) in [
            ("GET", "/auth/sessions".to_owned()),
            ("DELETE", format!("/auth/sessions/{session_id}")),
            ("POST", "/auth/sign_out_everywhere".to_owned()),
            ("DELETE", format!("/auth/api_keys/{brief_id}")),
        ] {
            let r = api.send(method, &uri, Some(&key), None).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{method} {uri}: {}",
                r.body
            );
            assert_eq!(r.body["error"]["code"], "forbidden");
        }
        assert_eq!(me(&api, &owner).await.status, StatusCode::OK);
        assert_eq!(me(&api, &brief).await.status, StatusCode::OK);

        // Another user cannot revoke it; its owner can, and it stops at once.
        let other = signed_in_as(&api, "other@example.com").await;
        let revoke_with = |id: &str, token: &str| {
            Request::delete(format!("/auth/api_keys/{id}"))
                .header(header::AUTHORIZATION, bearer(token))
                .body(Body::empty())
                .unwrap()
        };
        let revoke = |token: String| revoke_with(&key_id, &token);
        let (status, _, body) = text(&api, revoke(other)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("no such API key"), "{body}");
        assert_eq!(me(&api, &key).await.status, StatusCode::OK);
        let (status, _, _) = text(&api, revoke(owner.clone())).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let r = me(&api, &key).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("revoked")
        );
        // Whoever still holds it shows in the owner's audit trail, once a
        // minute however often they try.
        assert_eq!(me(&api, &key).await.status, StatusCode::UNAUTHORIZED);
        let refused = audited_soon(&auth, "credential_refused", "api_key_revoked").await;
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["detail"]["reason"], "api_key_revoked");
        assert_eq!(refused[0]["detail"]["api_key_id"], json!(key_id));
        assert_eq!(
            refused[0]["user_id"],
            api_user_id(&auth, "owner@example.com").await
        );

        // A key may revoke itself.
        let second = api
            .send(
                "POST",
                "/auth/api_keys",
                Some(&owner),
                Some(json!({ "name": "self" })),
            )
            .await;
        let (second, second_id) = (
            second.data()["key"].as_str().unwrap().to_owned(),
            second.data()["id"].as_str().unwrap().to_owned(),
        );
        let (status, _, body) = text(&api, revoke_with(&second_id, &second)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(me(&api, &second).await.status, StatusCode::UNAUTHORIZED);

        auth.clock.advance(time::Duration::minutes(6));
        // The owner's access token has expired by now too: sign in again.
        let r = me(&api, &brief).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired")
        );
        let expired = audited_soon(&auth, "credential_refused", "api_key_expired").await;
        assert_eq!(expired.len(), 1, "{expired:?}");
        assert_eq!(expired[0]["detail"]["api_key_id"], json!(brief_id));
        api.cleanup().await;
    }
);

both!(api_key_routes_need_their_strategy, |dialect| async move {
    let mut links_only = settings(Registration::Open);
    links_only.strategies.api_key = false;
    let (api, _auth) = signing_in(dialect, links_only).await;
    let owner = signed_in_as(&api, "owner@example.com").await;
    let r = api
        .send(
            "POST",
            "/auth/api_keys",
            Some(&owner),
            Some(json!({ "name": "k" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = me(&api, "kumo_0123456789abcdefghijABCDEFGHIJ01_abcdef").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    api.cleanup().await;
});

both!(
    a_retry_within_the_grace_is_answered_only_on_the_rotating_device,
    |dialect| async move {
        let (api, _auth) = signing_in(dialect, settings(Registration::Open)).await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "g@example.com" }),
        )
        .await;
        let (token, _) = mailed(&api, "g@example.com").await;
        let (_, first) =
            session_of(&post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await);
        let r = refresh_from(&api, "game/1.0", &first).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let (_, second) = session_of(&r);
        // The same device, its answer lost: the same pair again.
        let again = refresh_from(&api, "game/1.0", &first).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(session_of(&again).1, second);
        // A copy on another device within the same seconds is a reuse:
        // the session ends, the owner's newest token with it.
        let thief = refresh_from(&api, "curl/8", &first).await;
        assert_eq!(thief.status, StatusCode::UNAUTHORIZED, "{}", thief.body);
        assert_eq!(thief.body["error"]["code"], "token_reused");
        let r = refresh_from(&api, "game/1.0", &second).await;
        assert_eq!(r.body["error"]["code"], "session_revoked", "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    a_refresh_token_must_also_match_the_stored_hash,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
        post(
            &api,
            "/auth/magic_link/request",
            json!({ "email": "h@example.com" }),
        )
        .await;
        let (token, _) = mailed(&api, "h@example.com").await;
        let (_, refresh) =
            session_of(&post(&api, "/auth/magic_link/sign_in", json!({ "token": token })).await);
        // The row no longer holds this token's hash (as if the database
        // and the secret disagreed): the token's MAC alone is not enough.
        let now = stamp(auth.clock.now());
        let mut tx = auth.accounts().begin().await.unwrap();
        tx.update(
            "session",
            &[("refresh_token_hash", Set::To(json!("another hash")))],
            &[(
                "user_id",
                Test::Eq(api_user_id(&auth, "h@example.com").await),
            )],
            &now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let r = post(
            &api,
            "/auth/token/refresh",
            json!({ "refresh_token": refresh }),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "token_invalid");
        api.cleanup().await;
    }
);

both!(
    a_locked_account_s_token_is_refused_and_audited,
    |dialect| async move {
        let (api, auth) = signing_in(dialect, settings(Registration::Open)).await;
        let access = signed_in_as(&api, "lk@example.com").await;
        assert_eq!(me(&api, &access).await.status, StatusCode::OK);
        // Locked without its sessions revoked (as an edit straight in the
        // database would): the lock alone refuses the token.
        let now = stamp(auth.clock.now());
        let user_id = api_user_id(&auth, "lk@example.com").await;
        let mut tx = auth.accounts().begin().await.unwrap();
        tx.update(
            "user",
            &[("locked_at", Set::To(json!(now)))],
            &[("id", Test::Eq(user_id.clone()))],
            &now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        tokio::time::sleep(kumo_server::auth::credentials::USER_FRESH_FOR).await;
        let r = me(&api, &access).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("locked")
        );
        let refused = audited_soon(&auth, "credential_refused", "account_locked").await;
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0]["user_id"], user_id);
        api.cleanup().await;
    }
);
