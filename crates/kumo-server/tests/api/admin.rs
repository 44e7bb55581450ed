//! The admin web UI through the router, as a browser would drive it (its
//! cookies kept, its forms posted), on both databases: signing in by
//! password, by a magic link's code and by polling while the link is
//! pressed elsewhere; the CSRF token every form carries; who may see the
//! admin; every page rendered with its security headers.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use kumo_db::query::accounts::{Set, Test};
use kumo_db::sql::Dialect;
use kumo_server::auth::clock::stamp;
use serde_json::{Value, json};

use crate::auth_support::{self, PUBLIC_URL, every_strategy, exchange, mailbox};
use crate::both;
use crate::harness::TestApi;

const SECRET: &[u8] = b"the admin test's secret, 32 byte";
const GOOD: &str = "correct horse battery staple";

/// A browser: its cookies, sent with every request, and what the last
/// page said.
struct Browser<'a> {
    api: &'a TestApi,
    cookies: HashMap<String, String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl<'a> Browser<'a> {
    fn new(api: &'a TestApi) -> Browser<'a> {
        Browser {
            api,
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, request: axum::http::request::Builder, body: Body) -> Answer {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = request.header(header::COOKIE, cookie);
        // A browser says where a form came from; the auth layer checks it
        // for cookie-authorised changes.
        request = request.header("sec-fetch-site", "same-origin");
        let (status, headers, body) = exchange(self.api, request.body(body).unwrap()).await;
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.send(Request::get(uri), Body::empty()).await
    }

    /// Posts a form with `fields`, and the page's CSRF token unless
    /// `csrf` is `None`.
    async fn post(&mut self, uri: &str, fields: &[(&str, &str)], csrf: Option<&str>) -> Answer {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(fields);
        if let Some(token) = csrf {
            form.append_pair("_csrf", token);
        }
        self.send(
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            Body::from(form.finish()),
        )
        .await
    }
}

/// HTML with the entities the templates write decoded (minijinja escapes
/// `/` in values too).
fn decoded(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &Answer) -> String {
    let at = page
        .body
        .find("name=\"_csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {}", page.body))
        + "name=\"_csrf\" value=\"".len();
    page.body[at..].chars().take_while(|c| *c != '"').collect()
}

fn assert_secure_page(answer: &Answer) {
    let csp = answer.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(answer.headers["x-frame-options"], "DENY");
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(answer.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(answer.headers[header::REFERRER_POLICY], "same-origin");
    // Nothing inline for the policy to have to allow.
    assert!(
        !answer.body.contains("<script>") && !answer.body.contains(" style="),
        "{}",
        answer.body
    );
    // No id is used twice (labels and descriptions point at one element).
    let mut ids = std::collections::HashSet::new();
    for (at, _) in answer.body.match_indices(" id=\"") {
        let id: String = answer.body[at + 5..]
            .chars()
            .take_while(|c| *c != '"')
            .collect();
        assert!(ids.insert(id.clone()), "the id {id} is used twice");
    }
    // Every input, select and text area is labelled (hidden inputs carry
    // no text for a person).
    let controls = ["<input ", "<select ", "<textarea "]
        .iter()
        .flat_map(|tag| answer.body.match_indices(tag))
        .collect::<Vec<_>>();
    for (at, _) in controls {
        let tag: String = answer.body[at..]
            .chars()
            .take_while(|c| *c != '>')
            .collect();
        if tag.contains("type=\"hidden\"") {
            continue;
        }
        let id = tag
            .split("id=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("a form control without an id: {tag}"));
        assert!(
            answer.body.contains(&format!("<label for=\"{id}\">")),
            "no label for {id}"
        );
    }
}

/// A password account with `role`, made through the auth routes.
async fn account(api: &TestApi, auth: &kumo_server::auth::Auth, email: &str, role: &str) {
    let r = api
        .send(
            "POST",
            "/auth/password/register",
            None,
            Some(json!({ "email": email, "password": GOOD })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let now = stamp(auth.clock.now());
    let mut tx = auth.accounts().begin().await.unwrap();
    tx.update(
        "user",
        &[("role", Set::To(json!(role)))],
        &[("email", Test::Eq(json!(email)))],
        &now,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Signs `browser` in by the admin's password form.
async fn signed_in(browser: &mut Browser<'_>, email: &str) -> Answer {
    let answer = password_sign_in(browser, email).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.headers[header::LOCATION], "/admin");
    answer
}

/// The password form posted as `email`, from the sign-in page.
async fn password_sign_in(browser: &mut Browser<'_>, email: &str) -> Answer {
    let form = browser.get("/admin/sign_in").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let token = csrf_of(&form);
    browser
        .post(
            "/admin/sign_in/password",
            &[("email", email), ("password", GOOD)],
            Some(&token),
        )
        .await
}

both!(
    an_admin_signs_in_and_every_page_renders_safely,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        let mut browser = Browser::new(&api);
        // Signed out, the admin sends the browser to its sign-in page.
        let r = browser.get("/admin").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.headers[header::LOCATION], "/admin/sign_in");
        let form = browser.get("/admin/sign_in").await;
        assert_secure_page(&form);
        assert!(form.body.contains("Email me a link") && form.body.contains("current-password"));
        signed_in(&mut browser, "boss@example.com").await;

        let dashboard = browser.get("/admin").await;
        assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.body);
        assert_secure_page(&dashboard);
        assert!(
            dashboard.body.contains("Active sessions"),
            "{}",
            dashboard.body
        );
        assert!(
            dashboard.body.contains("/admin/r/users"),
            "{}",
            dashboard.body
        );
        assert!(
            dashboard.body.contains("Sign-ups per day"),
            "{}",
            dashboard.body
        );

        let users = browser.get("/admin/r/users?sort=email").await;
        assert_eq!(users.status, StatusCode::OK, "{}", users.body);
        assert_secure_page(&users);
        assert!(users.body.contains("boss@example.com"), "{}", users.body);
        assert!(
            users.body.contains("aria-sort=\"ascending\""),
            "{}",
            users.body
        );
        // Sensitive attributes are never shown.
        assert!(!users.body.contains("password_hash"), "{}", users.body);
        let html = decoded(&users.body);
        let link_at = html
            .find("/admin/r/users/")
            .unwrap_or_else(|| panic!("no record link in {html}"));
        let link: String = html[link_at..].chars().take_while(|c| *c != '"').collect();
        let record = browser.get(&link).await;
        assert_eq!(record.status, StatusCode::OK, "{}", record.body);
        assert_secure_page(&record);
        assert!(record.body.contains("boss@example.com"), "{}", record.body);

        // A bad query says what is wrong; an unknown resource is a 404.
        let bad = browser.get("/admin/r/users?sort=nope").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
        assert!(bad.body.contains("nope"), "{}", bad.body);
        assert_eq!(
            browser.get("/admin/r/nothing").await.status,
            StatusCode::NOT_FOUND
        );

        // Signing out ends the session.
        let token = csrf_of(&dashboard);
        let out = browser.post("/admin/sign_out", &[], Some(&token)).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
        assert_eq!(browser.get("/admin").await.status, StatusCode::SEE_OTHER);
        api.cleanup().await;
    }
);

both!(
    a_form_without_its_csrf_token_is_refused,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        let mut browser = Browser::new(&api);
        let form = browser.get("/admin/sign_in").await;
        let token = csrf_of(&form);
        // Without a token, with another's token: 403, nothing done.
        for csrf in [None, Some("forged")] {
            let r = browser
                .post(
                    "/admin/sign_in/password",
                    &[("email", "boss@example.com"), ("password", GOOD)],
                    csrf,
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
            assert!(!browser.cookies.contains_key("kumo_session"));
        }
        // A token made for the signed-out browser stops working once it is
        // signed in: tokens are bound to the session.
        signed_in(&mut browser, "boss@example.com").await;
        let r = browser.post("/admin/sign_out", &[], Some(&token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(browser.get("/admin").await.status, StatusCode::OK);
        // A browser with no CSRF cookie at all is refused too.
        let mut stranger = Browser::new(&api);
        let r = stranger
            .post(
                "/admin/sign_in/link",
                &[("email", "x@example.com")],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    a_player_gets_a_403_page_and_a_coordinator_gets_in,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "player@example.com", "user").await;
        account(&api, &auth, "coord@example.com", "coordinator").await;
        let mut player = Browser::new(&api);
        signed_in(&mut player, "player@example.com").await;
        for page in ["/admin", "/admin/r/users"] {
            let r = player.get(page).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{page}: {}", r.body);
            assert!(r.body.contains("admins and coordinators"), "{}", r.body);
        }
        // The refused player can sign out to use another account.
        let refused = player.get("/admin").await;
        assert!(
            refused.body.contains("Sign out and use another account"),
            "{}",
            refused.body
        );
        let out = player
            .post("/admin/sign_out", &[], Some(&csrf_of(&refused)))
            .await;
        assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
        assert_eq!(player.get("/admin").await.status, StatusCode::SEE_OTHER);
        let mut coordinator = Browser::new(&api);
        signed_in(&mut coordinator, "coord@example.com").await;
        let r = coordinator.get("/admin").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("(coordinator)"), "{}", r.body);
        api.cleanup().await;
    }
);

/// The newest mail's code and link token for `to`.
async fn mailed(api: &TestApi, to: &str) -> (String, String) {
    let mail = mailbox(api)
        .await
        .into_iter()
        .find(|m| m["to"] == to)
        .expect("a mail");
    let text = mail["text"].as_str().unwrap();
    let prefix = format!("{PUBLIC_URL}/auth/magic_link/");
    let at = text.find(&prefix).unwrap() + prefix.len();
    let token: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let code = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned();
    (code, token)
}

/// One poll of the "check your email" page, as htmx sends it.
async fn poll(desk: &mut Browser<'_>, id: &str, secret: &str, token: &str) -> Answer {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("id", id).append_pair("secret", secret);
    desk.send(
        Request::post("/admin/sign_in/poll")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("hx-request", "true")
            .header("x-csrf-token", token),
        Body::from(form.finish()),
    )
    .await
}

/// The hidden poll values the "check your email" page polls with.
fn poll_values(page: &Answer) -> (String, String) {
    let html = decoded(&page.body);
    let value = |name: &str| {
        let key = format!("\"{name}\":\"");
        let at = html
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {html}"))
            + key.len();
        html[at..]
            .chars()
            .take_while(|c| *c != '"')
            .collect::<String>()
    };
    (value("id"), value("secret"))
}

both!(
    an_admin_signs_in_by_magic_link_code_or_by_pressing_the_link,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;

        // The code from the mail.
        let mut browser = Browser::new(&api);
        let form = browser.get("/admin/sign_in").await;
        let token = csrf_of(&form);
        let sent = browser
            .post(
                "/admin/sign_in/link",
                &[("email", "Boss@Example.com")],
                Some(&token),
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        assert_secure_page(&sent);
        let (code, _) = mailed(&api, "boss@example.com").await;
        // As the page's form sends it: with the poll it waits on.
        let (poll_id, poll_secret) = poll_values(&sent);
        let wrong = browser
            .post(
                "/admin/sign_in/code",
                &[
                    ("email", "boss@example.com"),
                    ("code", "000000"),
                    ("poll_id", &poll_id),
                    ("poll_secret", &poll_secret),
                ],
                Some(&token),
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
        // The page goes on waiting for the link, with the same handle.
        assert_eq!(poll_values(&wrong), poll_values(&sent));
        let r = browser
            .post(
                "/admin/sign_in/code",
                &[("email", "boss@example.com"), ("code", &code)],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(browser.get("/admin").await.status, StatusCode::OK);

        // Polling while the link is pressed on another device.
        let mut desk = Browser::new(&api);
        let form = desk.get("/admin/sign_in").await;
        let token = csrf_of(&form);
        let sent = desk
            .post(
                "/admin/sign_in/link",
                &[("email", "boss@example.com")],
                Some(&token),
            )
            .await;
        let (id, secret) = poll_values(&sent);
        let pending = poll(&mut desk, &id, &secret, &token).await;
        assert_eq!(pending.status, StatusCode::NO_CONTENT, "{}", pending.body);
        let (_, link) = mailed(&api, "boss@example.com").await;
        let mut phone = Browser::new(&api);
        let pressed = phone
            .send(
                Request::post(format!("/auth/magic_link/{link}")),
                Body::empty(),
            )
            .await;
        assert_eq!(pressed.status, StatusCode::OK, "{}", pressed.body);
        let done = poll(&mut desk, &id, &secret, &token).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        assert_eq!(done.headers["hx-redirect"], "/admin");
        let dashboard = desk.get("/admin").await;
        assert_eq!(dashboard.status, StatusCode::OK);
        // Used up: a poll (with the signed-in page's token) stops polling.
        let again = poll(&mut desk, &id, &secret, &csrf_of(&dashboard)).await;
        assert_eq!(again.status.as_u16(), 286, "{}", again.body);
        api.cleanup().await;
    }
);

#[tokio::test]
async fn htmx_and_the_stylesheet_are_served_from_the_binary() {
    let (api, _auth) =
        auth_support::serving(kumo_db::sql::Dialect::Sqlite, every_strategy(false), SECRET).await;
    let plain = Request::get("/admin/assets/htmx.min.js")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = exchange(&api, plain).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("var htmx="), "{}", &body[..40]);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let gzipped = Request::get("/admin/assets/htmx.min.js")
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = exchange(&api, gzipped).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    let (status, _, css) = exchange(
        &api,
        Request::get("/admin/assets/admin.css")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains("--accent"));
    let (status, _, _) = exchange(
        &api,
        Request::get("/admin/assets/nothing.js")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.cleanup().await;
}

/// Every `admin_change` row of the audit log, oldest first.
async fn admin_changes(auth: &kumo_server::auth::Auth) -> Vec<kumo_db::query::Record> {
    auth.accounts()
        .read(
            "audit_event",
            &[("kind", Test::Eq(json!("admin_change")))],
            None,
            None,
        )
        .await
        .unwrap()
}

/// The URL a 303 sends the browser to.
fn location(answer: &Answer) -> String {
    answer.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

both!(
    records_are_created_edited_acted_on_and_deleted_through_the_api_s_rules,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        let mut browser = Browser::new(&api);
        signed_in(&mut browser, "boss@example.com").await;
        let boss_id = auth
            .accounts()
            .read_one("user", &[("email", Test::Eq(json!("boss@example.com")))])
            .await
            .unwrap()
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // The form is generated from the attribute types.
        let form = browser.get("/admin/r/avatars/new").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        assert_secure_page(&form);
        for control in [
            "type=\"checkbox\" name=\"is_public\"",
            "type=\"number\" name=\"polycount\"",
            "<select id=\"f-kind\" name=\"kind\"",
            "<textarea id=\"f-metadata\"",
            "type=\"datetime-local\" name=\"released_at\"",
            "list=\"l-uploader_id\"",
        ] {
            assert!(form.body.contains(control), "{control} in {}", form.body);
        }
        // The uploader can be picked among the users.
        assert!(form.body.contains(&boss_id), "{}", form.body);
        let token = csrf_of(&form);

        // JSON that does not parse is named; nothing is written.
        let mut fields = vec![
            ("name", ""),
            ("is_public", "false"),
            ("polycount", "-3"),
            ("kind", "creature"),
            ("metadata", "{not json"),
            ("released_at", "2026-11-22T10:30"),
            ("uploader_id", boss_id.as_str()),
        ];
        let r = browser
            .post("/admin/r/avatars", &fields, Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("is not valid JSON"), "{}", r.body);
        // The engine's own errors, each beside its field.
        fields[4] = ("metadata", "{\"level\": 3}");
        let r = browser
            .post("/admin/r/avatars", &fields, Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        for field in ["name", "polycount"] {
            assert!(
                r.body.contains(&format!("id=\"e-{field}\"")),
                "no error beside {field}: {}",
                r.body
            );
        }
        assert!(r.body.contains("aria-invalid=\"true\""), "{}", r.body);
        // What was typed is kept.
        assert!(
            r.body.contains("creature\" selected") || r.body.contains("selected>creature"),
            "{}",
            r.body
        );
        // Corrected, it is created.
        fields[0] = ("name", "Robo");
        fields[2] = ("polycount", "1200");
        let r = browser
            .post("/admin/r/avatars", &fields, Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        // The record, with word that it was made.
        let created_url = location(&r);
        assert!(created_url.ends_with("?done=created"), "{created_url}");
        let record = browser.get(&created_url).await;
        assert!(record.body.contains("Created."), "{}", record.body);
        let record_url = created_url.trim_end_matches("?done=created").to_owned();
        let id = record_url.rsplit('/').next().unwrap().to_owned();
        assert_eq!(record.status, StatusCode::OK, "{}", record.body);
        assert_secure_page(&record);
        // The uploader shows as the account it names, linked.
        assert!(
            record.body.contains(">boss@example.com</a>"),
            "{}",
            record.body
        );
        assert!(
            record.body.contains("Robo") && record.body.contains("2026-11-22T10:30:00.000Z"),
            "{}",
            record.body
        );

        // Edited: the form shows the stored values.
        let edit = browser.get(&format!("{record_url}/edit")).await;
        assert_eq!(edit.status, StatusCode::OK, "{}", edit.body);
        assert!(
            edit.body.contains("value=\"Robo\"")
                && edit.body.contains("value=\"2026-11-22T10:30:00.000\""),
            "{}",
            edit.body
        );
        fields[0] = ("name", "Robo II");
        let r = browser.post(&record_url, &fields, Some(&token)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert!(browser.get(&record_url).await.body.contains("Robo II"));

        // A named action, as a button.
        assert!(
            decoded(&record.body).contains("/actions/publish"),
            "{}",
            record.body
        );
        let r = browser
            .post(&format!("{record_url}/actions/publish"), &[], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let stored = api
            .send("GET", &format!("/api/avatars/{id}"), None, None)
            .await;
        assert_eq!(stored.status, StatusCode::OK, "public now: {}", stored.body);
        assert_eq!(stored.data()["is_public"], true);

        // Each change is in the audit log: who, what, before and after.
        let changes = auth
            .accounts()
            .read(
                "audit_event",
                &[("kind", Test::Eq(json!("admin_change")))],
                None,
                None,
            )
            .await
            .unwrap();
        let kinds: Vec<&str> = changes
            .iter()
            .map(|c| c["detail"]["change"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["create", "update", "action:publish"], "{changes:?}");
        let create = &changes[0];
        assert_eq!(create["user_id"], json!(boss_id));
        assert_eq!(create["detail"]["by"], json!(boss_id));
        assert_eq!(create["detail"]["record_id"], json!(id));
        assert_eq!(create["detail"]["before"], json!(null));
        assert_eq!(create["detail"]["after"]["name"], "Robo");
        let update = &changes[1];
        assert_eq!(update["user_id"], json!(boss_id));
        assert_eq!(update["detail"]["before"]["name"], "Robo");
        assert_eq!(update["detail"]["after"]["name"], "Robo II");
        assert!(update["detail"]["after"].get("secret_note").is_none());
        let publish = &changes[2];
        assert_eq!(publish["detail"]["before"]["is_public"], false);
        assert_eq!(publish["detail"]["after"]["is_public"], true);

        // Deleted behind a confirmation.
        let confirm = browser.get(&format!("{record_url}/delete")).await;
        assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
        assert!(confirm.body.contains("Delete Robo II?"), "{}", confirm.body);
        let r = browser
            .post(&format!("{record_url}/delete"), &[], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(browser.get(&record_url).await.status, StatusCode::NOT_FOUND);
        let destroyed = admin_changes(&auth)
            .await
            .into_iter()
            .find(|c| c["detail"]["change"] == "destroy")
            .expect("the destroy is audited");
        assert_eq!(destroyed["detail"]["record_id"], json!(id));
        assert_eq!(destroyed["detail"]["before"]["name"], "Robo II");
        assert!(destroyed["detail"]["before"].get("secret_note").is_none());
        assert_eq!(destroyed["detail"]["after"], json!(null));
        api.cleanup().await;
    }
);

/// The value of the hidden `_seen` field in a form page.
fn seen_of(answer: &Answer) -> String {
    let html = decoded(&answer.body);
    let at = html.find("name=\"_seen\" value=\"").expect("a _seen field") + 20;
    html[at..].chars().take_while(|c| *c != '"').collect()
}

both!(
    a_save_over_a_newer_change_is_refused_and_keeps_what_was_typed,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        let boss_id = id_of(&auth, "boss@example.com").await;
        let mut browser = Browser::new(&api);
        signed_in(&mut browser, "boss@example.com").await;
        let token = csrf_of(&browser.get("/admin").await);
        let r = browser
            .post(
                "/admin/r/avatars",
                &[("name", "Start"), ("uploader_id", &boss_id)],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let record_url = location(&r).trim_end_matches("?done=created").to_owned();
        // Two forms opened on the same version; the first saves.
        let seen = seen_of(&browser.get(&format!("{record_url}/edit")).await);
        let save = |name: &'static str, seen: String| {
            [
                ("name", name),
                ("uploader_id", boss_id.as_str()),
                ("_seen", ""),
            ]
            .map(|(k, v)| {
                (
                    k,
                    if k == "_seen" {
                        seen.clone()
                    } else {
                        v.to_owned()
                    },
                )
            })
        };
        let first = save("First", seen.clone());
        let first: Vec<(&str, &str)> = first.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // `updated_at` counts milliseconds: the save must land in a later one.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let r = browser.post(&record_url, &first, Some(&token)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        // The second, from the older version, is refused with what it typed.
        let second = save("Second", seen);
        let second: Vec<(&str, &str)> = second.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = browser.post(&record_url, &second, Some(&token)).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body.contains("Someone saved this record"), "{}", r.body);
        assert!(r.body.contains("value=\"Second\""), "{}", r.body);
        let stored = decoded(&browser.get(&record_url).await.body);
        assert!(
            stored.contains("First") && !stored.contains("Second"),
            "{stored}"
        );
        // Saved again from the refusal, knowingly, it goes through.
        let newer = seen_of(&r);
        let again = save("Second", newer);
        let again: Vec<(&str, &str)> = again.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = browser.post(&record_url, &again, Some(&token)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert!(decoded(&browser.get(&record_url).await.body).contains("Second"));
        api.cleanup().await;
    }
);

both!(
    the_admin_cannot_do_what_the_policies_refuse,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        account(&api, &auth, "coord@example.com", "coordinator").await;
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let boss_id = auth
            .accounts()
            .read_one("user", &[("email", Test::Eq(json!("boss@example.com")))])
            .await
            .unwrap()
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let form = boss.get("/admin/r/avatars/new").await;
        let token = csrf_of(&form);
        let fields = [
            ("name", "Mine"),
            ("is_public", "true"),
            ("uploader_id", boss_id.as_str()),
        ];
        let r = boss.post("/admin/r/avatars", &fields, Some(&token)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let record_url = location(&r);
        // A coordinator may read the public avatar, but its update policy
        // is its uploader's alone: the admin refuses as the API does.
        let mut coordinator = Browser::new(&api);
        signed_in(&mut coordinator, "coord@example.com").await;
        let page = coordinator.get(&record_url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let token = csrf_of(&page);
        let r = coordinator
            .post(&record_url, &[("name", "Taken over")], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert!(r.body.contains("policies"), "{}", r.body);
        assert!(boss.get(&record_url).await.body.contains("Mine"));
        // And without the token, nothing at all.
        let r = boss.post(&record_url, &[("name", "x")], None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        // A record that is not there, and a value the engine refuses.
        let token = csrf_of(&boss.get(&record_url).await);
        let r = boss
            .post(
                "/admin/r/avatars/0193a5a0-0000-7000-8000-000000000000",
                &[("name", "x")],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        let r = boss
            .post(&record_url, &[("polycount", "-1")], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        // None of the refused writes is in the audit log: only the create.
        let changes = admin_changes(&auth).await;
        let kinds: Vec<&Value> = changes.iter().map(|c| &c["detail"]["change"]).collect();
        assert_eq!(kinds, [&json!("create")], "{changes:?}");
        api.cleanup().await;
    }
);

/// The id of the account with this address.
async fn id_of(auth: &kumo_server::auth::Auth, email: &str) -> String {
    auth.accounts()
        .read_one("user", &[("email", Test::Eq(json!(email)))])
        .await
        .unwrap()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

both!(
    an_admin_manages_a_players_account_from_their_page,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        // The player is signed in on a device of their own.
        let player = api
            .send(
                "POST",
                "/auth/password/register",
                None,
                Some(json!({ "email": "player@example.com", "password": GOOD })),
            )
            .await;
        let player_access = player.data()["access_token"].as_str().unwrap().to_owned();
        let player_id = id_of(&auth, "player@example.com").await;
        let boss_id = id_of(&auth, "boss@example.com").await;
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let page_url = format!("/admin/r/users/{player_id}");
        let page = boss.get(&page_url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_secure_page(&page);
        let html = decoded(&page.body);
        for tool in [
            "/lock",
            "/confirm",
            "/send_link",
            "/role",
            "/revoke",
            "Audit trail",
        ] {
            assert!(html.contains(tool), "{tool} in {html}");
        }
        let token = csrf_of(&page);
        let tool = |name: &str| format!("/admin/users/{player_id}/{name}");

        // Sign one device out: revoked and audited, naming the admin.
        let session = auth
            .accounts()
            .read_one("session", &[("user_id", Test::Eq(json!(player_id)))])
            .await
            .unwrap()
            .expect("the player's session");
        let session_id = session["id"].as_str().unwrap().to_owned();
        assert!(
            html.contains(&format!("/sessions/{session_id}/revoke")),
            "{html}"
        );
        let r = boss
            .post(
                &tool(&format!("sessions/{session_id}/revoke")),
                &[],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let revoked = auth
            .accounts()
            .read_one("session", &[("id", Test::Eq(json!(session_id)))])
            .await
            .unwrap()
            .unwrap();
        assert!(!revoked["revoked_at"].is_null());
        // Revoked already: not live, so nothing more is audited.
        let r = boss
            .post(
                &tool(&format!("sessions/{session_id}/revoke")),
                &[],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);

        // Send a sign-in link: it is mailed.
        let r = boss.post(&tool("send_link"), &[], Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            mailbox(&api)
                .await
                .iter()
                .any(|m| m["to"] == "player@example.com"
                    && m["subject"].as_str().unwrap().contains("sign-in"))
        );
        // Confirm the address.
        let r = boss.post(&tool("confirm"), &[], Some(&token)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        // Lock: the player's token stops working, their devices are gone.
        let r = boss.post(&tool("lock"), &[], Some(&token)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let me = api
            .send("GET", "/auth/me", Some(&player_access), None)
            .await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.body);
        assert!(boss.get(&page_url).await.body.contains("Locked."));
        let r = boss.post(&tool("unlock"), &[], Some(&token)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        // The role.
        let r = boss
            .post(&tool("role"), &[("role", "coordinator")], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        // An admin cannot lock themselves out.
        let own = format!("/admin/users/{boss_id}/lock");
        let r = boss.post(&own, &[], Some(&token)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);

        // Each change is audited against the player, naming the admin.
        let events = auth
            .accounts()
            .read(
                "audit_event",
                &[("user_id", Test::Eq(json!(player_id)))],
                None,
                None,
            )
            .await
            .unwrap();
        for kind in [
            "session_revoked",
            "sign_in_link_sent",
            "email_confirmed",
            "user_locked",
            "user_unlocked",
            "role_changed",
        ] {
            let event = events
                .iter()
                .find(|e| e["kind"] == kind)
                .unwrap_or_else(|| panic!("no {kind} in {events:?}"));
            assert_eq!(event["detail"]["by"], json!(boss_id), "{kind}");
        }
        let revocations: Vec<_> = events
            .iter()
            .filter(|e| e["kind"] == "session_revoked")
            .collect();
        assert_eq!(revocations.len(), 1, "{revocations:?}");
        assert_eq!(revocations[0]["detail"]["session_id"], json!(session_id));
        let trail = boss.get(&page_url).await;
        assert!(trail.body.contains("role_changed"), "{}", trail.body);
        api.cleanup().await;
    }
);

both!(
    a_user_changed_through_the_generic_form_is_in_their_audit_trail,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        account(&api, &auth, "player@example.com", "user").await;
        let (boss_id, player_id) = (
            id_of(&auth, "boss@example.com").await,
            id_of(&auth, "player@example.com").await,
        );
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let page_url = format!("/admin/r/users/{player_id}");
        let edit = boss.get(&format!("{page_url}/edit")).await;
        assert_eq!(edit.status, StatusCode::OK, "{}", edit.body);
        let token = csrf_of(&edit);
        let r = boss
            .post(&page_url, &[("role", "coordinator")], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

        // Filed under the player, naming the admin, with the role before
        // and after and no password hash.
        let changes = admin_changes(&auth).await;
        assert_eq!(changes.len(), 1, "{changes:?}");
        let change = &changes[0];
        assert_eq!(change["user_id"], json!(player_id));
        assert_eq!(change["detail"]["by"], json!(boss_id));
        assert_eq!(change["detail"]["resource"], "user");
        assert_eq!(change["detail"]["before"]["role"], "user");
        assert_eq!(change["detail"]["after"]["role"], "coordinator");
        assert!(change["detail"]["after"].get("password_hash").is_none());
        // So the player's page shows it in their trail.
        let page = boss.get(&page_url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let trail_at = page.body.find("Audit trail").expect("a trail");
        assert!(
            page.body[trail_at..].contains("admin_change"),
            "{}",
            page.body
        );
        api.cleanup().await;
    }
);

both!(
    a_coordinator_manages_players_only_and_sets_no_roles,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        account(&api, &auth, "coord@example.com", "coordinator").await;
        account(&api, &auth, "player@example.com", "user").await;
        let (boss_id, player_id) = (
            id_of(&auth, "boss@example.com").await,
            id_of(&auth, "player@example.com").await,
        );
        let mut coordinator = Browser::new(&api);
        signed_in(&mut coordinator, "coord@example.com").await;
        let page = coordinator
            .get(&format!("/admin/r/users/{player_id}"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            !decoded(&page.body).contains("/role\""),
            "no role form: {}",
            page.body
        );
        // The navigation offers only what a coordinator may ever read:
        // sign-in tokens are for admins alone (no read policy). Nor is
        // an edit offered that the user policy could only refuse.
        let html = decoded(&page.body);
        assert!(html.contains("href=\"/admin/r/avatars\""), "{html}");
        assert!(!html.contains("href=\"/admin/r/auth_tokens\""), "{html}");
        assert!(!html.contains("/edit\""), "{html}");
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let admin_view = decoded(&boss.get(&format!("/admin/r/users/{player_id}")).await.body);
        assert!(
            admin_view.contains("href=\"/admin/r/auth_tokens\""),
            "{admin_view}"
        );
        assert!(admin_view.contains("/edit\""), "{admin_view}");
        let token = csrf_of(&page);
        let r = coordinator
            .post(&format!("/admin/users/{player_id}/lock"), &[], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = coordinator
            .post(
                &format!("/admin/users/{player_id}/role"),
                &[("role", "admin")],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = coordinator
            .post(&format!("/admin/users/{boss_id}/lock"), &[], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let boss = auth
            .accounts()
            .read_one("user", &[("id", Test::Eq(json!(boss_id)))])
            .await
            .unwrap()
            .unwrap();
        assert!(boss["locked_at"].is_null());
        api.cleanup().await;
    }
);

both!(
    coordinators_manage_no_accounts_when_the_project_says_so,
    |dialect| async move {
        let settings = kumo_server::auth::Settings {
            coordinators_manage_users: false,
            ..every_strategy(false)
        };
        let (api, auth) = auth_support::serving(dialect, settings, SECRET).await;
        account(&api, &auth, "coord@example.com", "coordinator").await;
        account(&api, &auth, "player@example.com", "user").await;
        let player_id = id_of(&auth, "player@example.com").await;
        let mut coordinator = Browser::new(&api);
        signed_in(&mut coordinator, "coord@example.com").await;
        // The player's page still reads, without the account's tools.
        let page = coordinator
            .get(&format!("/admin/r/users/{player_id}"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(!decoded(&page.body).contains("/lock\""), "{}", page.body);
        let token = csrf_of(&page);
        for tool in ["lock", "confirm", "send_link"] {
            let r = coordinator
                .post(
                    &format!("/admin/users/{player_id}/{tool}"),
                    &[],
                    Some(&token),
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{tool}: {}", r.body);
        }
        let player = auth
            .accounts()
            .read_one("user", &[("id", Test::Eq(json!(player_id)))])
            .await
            .unwrap()
            .unwrap();
        assert!(player["locked_at"].is_null());
        api.cleanup().await;
    }
);

both!(
    the_dashboard_warns_of_migrations_not_applied,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let dashboard = boss.get("/admin").await;
        assert!(
            !dashboard.body.contains("role=\"alert\""),
            "{}",
            dashboard.body
        );
        // As if the project had gained a migration this database lacks.
        let forget = "DELETE FROM kumo_migrations";
        match &api.db {
            kumo_db::db::Database::Postgres(pool) => {
                sqlx::raw_sql(forget).execute(pool).await.map(|_| ())
            }
            kumo_db::db::Database::Sqlite(pool) => {
                sqlx::raw_sql(forget).execute(pool).await.map(|_| ())
            }
        }
        .expect("forget the migrations");
        let dashboard = boss.get("/admin").await;
        assert!(
            dashboard
                .body
                .contains("migration(s) not applied: run `kumo migrate`."),
            "{}",
            dashboard.body
        );
        api.cleanup().await;
    }
);

both!(
    lists_filter_by_type_search_text_page_and_export_csv,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        let boss_id = id_of(&auth, "boss@example.com").await;
        let mut browser = Browser::new(&api);
        signed_in(&mut browser, "boss@example.com").await;
        let token = csrf_of(&browser.get("/admin").await);
        // 60 avatars: more than a page; a few with names to find.
        for i in 0..60 {
            let name = match i {
                7 => "Robo Seven".to_owned(),
                8 => "=SUM(1,2)".to_owned(),
                _ => format!("Avatar {i:02}"),
            };
            let polycount = (i * 100).to_string();
            let public = if i % 2 == 0 { "true" } else { "false" };
            let r = browser
                .post(
                    "/admin/r/avatars",
                    &[
                        ("name", &name),
                        ("is_public", public),
                        ("polycount", &polycount),
                        ("released_at", "2026-11-20T12:00"),
                        ("uploader_id", &boss_id),
                    ],
                    Some(&token),
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        }
        // Newest first by default: the 10 oldest are on the second page.
        let newest = decoded(&browser.get("/admin/r/avatars").await.body);
        assert!(
            newest.contains("Avatar 59<") && newest.contains("Avatar 10<"),
            "{newest}"
        );
        assert!(!newest.contains("Avatar 09<"), "{newest}");
        let list = browser.get("/admin/r/avatars?sort=polycount").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        assert_secure_page(&list);
        assert!(list.body.contains("60 in all"), "{}", list.body);
        // A list this small links a sort on every column (the one sorted
        // by now reverses).
        let html = decoded(&list.body);
        for link in ["?sort=-polycount\"", "?sort=name\"", "?sort=rating\""] {
            assert!(html.contains(link), "{link} in {html}");
        }
        // The form says which filters and searches no index serves.
        for hint in [
            "name contains <small>(no index)</small>",
            "polycount from <small>(no index)</small>",
            "Search name, kind <small>(no search index: reads every row)</small>",
        ] {
            assert!(html.contains(hint), "{hint} in {html}");
        }
        assert!(
            html.contains("for=\"flt-uploader_id\">uploader_id</label>"),
            "{html}"
        );
        // The filter form fits each type.
        for control in [
            "name=\"filter[name][contains]\"",
            "<select id=\"flt-is_public\" name=\"filter[is_public]\"",
            "<select id=\"flt-kind\" name=\"filter[kind]\"",
            "name=\"filter[polycount][gte]\" type=\"number\"",
            "name=\"filter[released_at][lte]\" type=\"date\"",
        ] {
            assert!(list.body.contains(control), "{control} in {}", list.body);
        }
        // Paging: the next page continues where the first stopped.
        let html = decoded(&list.body);
        let next_at = html.find("rel=\"next\" href=\"").unwrap() + "rel=\"next\" href=\"".len();
        let next: String = html[next_at..].chars().take_while(|c| *c != '"').collect();
        let second = browser.get(&next).await;
        assert_eq!(second.status, StatusCode::OK, "{}", second.body);
        assert!(
            second.body.contains("Avatar 59") && !second.body.contains("Avatar 00<"),
            "{}",
            second.body
        );
        // Empty filter fields mean "any"; set ones narrow, dates by whole
        // days; search finds text in any case.
        let r = browser
            .get("/admin/r/avatars?filter[name][contains]=&filter[is_public]=true&filter[polycount][gte]=1000&filter[released_at][lte]=2026-11-20")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("25 in all"), "{}", r.body);
        let r = browser.get("/admin/r/avatars?q=robo%20s").await;
        assert!(
            r.body.contains("1 in all") && r.body.contains("Robo Seven"),
            "{}",
            r.body
        );
        let r = browser
            .get("/admin/r/avatars?filter[released_at][gte]=2026-11-21")
            .await;
        assert!(r.body.contains("0 in all"), "{}", r.body);
        // Text no database holds (NUL) is a 400 page, not a server error.
        for path in ["/admin/r/avatars?q=a%00b", "/admin/r/avatars/export?q=%00"] {
            let r = browser.get(path).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
            assert!(r.body.contains("NUL"), "{path}: {}", r.body);
        }
        // A float that is no number is refused beside its field, not
        // stored as nothing.
        let r = browser
            .post(
                "/admin/r/avatars",
                &[
                    ("name", "Infinite"),
                    ("rating", "inf"),
                    ("uploader_id", &boss_id),
                ],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("id=\"e-rating\""), "{}", r.body);

        // The export has every selected row, formulas defused.
        let csv = browser
            .get("/admin/r/avatars/export?sort=polycount&filter[is_public]=false")
            .await;
        assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
        assert!(
            csv.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert!(
            csv.headers[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .contains("avatars.csv")
        );
        let lines: Vec<&str> = csv.body.lines().collect();
        assert_eq!(lines.len(), 31, "a header and 30 rows: {}", csv.body);
        assert!(lines[0].starts_with("id,name,"), "{}", lines[0]);
        assert!(csv.body.contains("Robo Seven"), "{}", csv.body);
        // Exports are audited.
        let exports = auth
            .accounts()
            .read(
                "audit_event",
                &[("kind", Test::Eq(json!("admin_export")))],
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(exports.len(), 1, "{exports:?}");
        assert_eq!(exports[0]["detail"]["resource"], "avatar");
        let all = browser.get("/admin/r/avatars/export").await;
        assert!(all.body.contains("\"'=SUM(1,2)\""), "{}", all.body);
        assert!(!all.body.contains("secret_note"), "{}", all.body);
        // A long value is cut short in the list, whole on its record.
        let long = format!("{{\"story\":\"{}\"}}", "x".repeat(500));
        let r = browser
            .post(
                "/admin/r/avatars",
                &[
                    ("name", "Long"),
                    ("metadata", &long),
                    ("uploader_id", &boss_id),
                ],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let record = browser.get(&location(&r)).await;
        assert!(
            record.body.contains(&"x".repeat(500)),
            "whole on the record page"
        );
        let r = browser
            .get("/admin/r/avatars?filter[name][contains]=Long")
            .await;
        assert!(
            r.body.contains("…") && !r.body.contains(&"x".repeat(100)),
            "{}",
            r.body
        );
        api.cleanup().await;
    }
);

both!(
    an_export_streams_every_page_of_a_long_list,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        let boss = auth
            .accounts()
            .read_one("user", &[("email", Test::Eq(json!("boss@example.com")))])
            .await
            .unwrap()
            .unwrap();
        let boss_id = boss["id"].as_str().unwrap().to_owned();
        // 600 avatars: the export reads them 250 at a time.
        let engine = api.state.engine().unwrap();
        let entry = engine.catalog.by_plural("avatars").unwrap();
        let avatars: Vec<serde_json::Value> = (0..600)
            .map(|i| json!({ "name": format!("Many {i:03}"), "uploader_id": boss_id }))
            .collect();
        engine
            .create(
                &kumo_core::actor::Actor::user(boss.clone()),
                entry,
                &serde_json::Value::Array(avatars),
                &kumo_db::query::View::default(),
            )
            .await
            .unwrap();
        let mut browser = Browser::new(&api);
        signed_in(&mut browser, "boss@example.com").await;
        let csv = browser.get("/admin/r/avatars/export?sort=name").await;
        assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
        let lines: Vec<&str> = csv.body.lines().collect();
        assert_eq!(lines.len(), 601, "a header and 600 rows");
        // In order, each once.
        let names: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        let expected: Vec<String> = (0..600).map(|i| format!("Many {i:03}")).collect();
        assert_eq!(names, expected);
        api.cleanup().await;
    }
);

both!(
    view_as_reads_through_another_users_policies_read_only,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        account(&api, &auth, "coord@example.com", "coordinator").await;
        account(&api, &auth, "player@example.com", "user").await;
        let (boss_id, player_id) = (
            id_of(&auth, "boss@example.com").await,
            id_of(&auth, "player@example.com").await,
        );
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let token = csrf_of(&boss.get("/admin").await);
        let mut hidden = String::new();
        for (name, public) in [("Shown", "true"), ("Hidden", "false")] {
            let r = boss
                .post(
                    "/admin/r/avatars",
                    &[
                        ("name", name),
                        ("is_public", public),
                        ("uploader_id", &boss_id),
                    ],
                    Some(&token),
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
            if name == "Hidden" {
                hidden = location(&r).split('?').next().unwrap().to_owned();
            }
        }
        // As the admin: both. As the player: only what their read policy
        // lets them see, and no way to change anything.
        assert!(boss.get("/admin/r/avatars").await.body.contains("2 in all"));
        let as_player = boss.get(&format!("/admin/r/avatars?as={player_id}")).await;
        assert_eq!(as_player.status, StatusCode::OK, "{}", as_player.body);
        assert!(
            as_player.body.contains("Viewing as player@example.com"),
            "{}",
            as_player.body
        );
        assert!(
            as_player.body.contains("1 in all") && as_player.body.contains("Shown"),
            "{}",
            as_player.body
        );
        assert!(!as_player.body.contains("Export CSV") && !as_player.body.contains("New avatar"));
        // The record page's links stay in the player's view.
        let html = decoded(&as_player.body);
        let start = html.find("href=\"/admin/r/avatars/").unwrap() + "href=\"".len();
        let shown_url: String = html[start..].chars().take_while(|c| *c != '"').collect();
        assert!(
            shown_url.ends_with(&format!("?as={player_id}")),
            "{shown_url}"
        );
        let shown_id = shown_url
            .trim_start_matches("/admin/r/avatars/")
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let record = decoded(&boss.get(&shown_url).await.body);
        for link in [
            format!("href=\"/admin/r/avatars?as={player_id}\""),
            format!("/admin/r/comments?filter[avatar_id]={shown_id}&as={player_id}\""),
        ] {
            assert!(record.contains(&link), "{link} in {record}");
        }
        let r = boss.get(&format!("{hidden}?as={player_id}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        let dashboard = boss.get(&format!("/admin?as={player_id}")).await;
        assert!(
            dashboard.body.contains("Viewing as player@example.com"),
            "{}",
            dashboard.body
        );
        // Viewing as is audited, once a minute per admin and user.
        let views = auth
            .accounts()
            .read(
                "audit_event",
                &[("kind", Test::Eq(json!("admin_view_as")))],
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(views.len(), 1, "{views:?}");
        assert_eq!(views[0]["detail"]["as"], json!(player_id));
        assert_eq!(views[0]["user_id"], json!(boss_id));
        // It is for admins: a coordinator would read through a player's
        // policies what no coordinator may.
        let mut coordinator = Browser::new(&api);
        signed_in(&mut coordinator, "coord@example.com").await;
        for target in [&boss_id, &player_id] {
            let r = coordinator
                .get(&format!("/admin/r/avatars?as={target}"))
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        }
        api.cleanup().await;
    }
);

/// A resource whose `create` action fixes a value its form cannot set.
const NOTE: &str = r#"
[resource]
name = "note"

[attributes]
text = { type = "string", required = true, min_length = 1 }
pinned = { type = "boolean", default = false }
mood = { type = "string" }

[relationships]
author = { belongs_to = "user", required = true }

[policies]
read = "true"
create = "actor.id == record.author_id"

[actions.jot]
type = "create"
description = "A pinned note"
accept = ["text", "author"]
set = { pinned = true }
policy = "actor.id == record.author_id"

[actions.discard]
type = "destroy"
policy = "actor.id == record.author_id"

[actions.reword]
type = "update"
accept = ["text", "mood"]
policy = "actor.id == record.author_id"
"#;

/// A resource whose titles are marked for search and whose bodies are not.
const POST: &str = r#"
[resource]
name = "post"

[attributes]
title = { type = "string", required = true, search = true }
body  = { type = "text" }
rank  = { type = "integer", index = true }

[policies]
read = "true"
create = "true"
"#;

both!(
    the_search_box_looks_in_the_fields_marked_for_search,
    |dialect| async move {
        let mut api = TestApi::new(dialect, &[("post", POST)]).await;
        let auth = api.sign_ins(
            every_strategy(false),
            SECRET,
            kumo_server::auth::clock::Clock::manual(time::macros::datetime!(2026-11-22 12:00 UTC)),
        );
        account(&api, &auth, "boss@example.com", "admin").await;
        let mut browser = Browser::new(&api);
        signed_in(&mut browser, "boss@example.com").await;
        for (title, body) in [("Hello World", "first"), ("Other", "says hello too")] {
            let r = api
                .send(
                    "POST",
                    "/api/posts",
                    None,
                    Some(json!({ "title": title, "body": body })),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        }
        let found = decoded(&browser.get("/admin/r/posts?q=HELLO").await.body);
        assert!(
            found.contains("1 in all") && found.contains("Hello World"),
            "{found}"
        );
        // The label names what is searched, and only SQLite, which has no
        // text index, says it reads every row.
        assert!(found.contains("Search title"), "{found}");
        assert_eq!(
            found.contains("(no search index"),
            dialect == Dialect::Sqlite,
            "{found}"
        );
        // Past 10,000 rows, a column offers a sort only where an index
        // serves it: `rank` has one; `title`'s search index serves no
        // sort; `body` has none.
        let fill = match dialect {
            Dialect::Postgres => "INSERT INTO posts (id, title, body)
                SELECT md5(i::text)::uuid, 'Filler ' || i, 'text' FROM generate_series(1, 10001) AS i",
            Dialect::Sqlite => "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10001)
                INSERT INTO posts (id, title, body)
                SELECT printf('%08x-0000-4000-8000-%012x', i, i), 'Filler ' || i, 'text' FROM n",
        };
        match &api.db {
            kumo_db::db::Database::Postgres(pool) => {
                sqlx::raw_sql(fill).execute(pool).await.map(|_| ())
            }
            kumo_db::db::Database::Sqlite(pool) => {
                sqlx::raw_sql(fill).execute(pool).await.map(|_| ())
            }
        }
        .expect("fill");
        let big = decoded(&browser.get("/admin/r/posts").await.body);
        assert!(big.contains("more than 10,000 in all"), "{big}");
        assert!(big.contains("?sort=rank\""), "{big}");
        assert!(
            !big.contains("sort=title") && !big.contains("sort=body"),
            "{big}"
        );
        // A `contains` filter on a marked field is served by its index.
        assert_eq!(
            found.contains("title contains <small>(no index)"),
            dialect == Dialect::Sqlite,
            "{found}"
        );
        api.cleanup().await;
    }
);

const SHELF: &str = r#"
[resource]
name = "shelf"
plural = "shelves"

[attributes]
title = { type = "string", required = true }

[relationships]
books = { has_many = "book" }
labels = { many_to_many = "label", through = "shelf_label" }

[policies]
read = "true"
create = "true"
"#;

const BOOK: &str = r#"
[resource]
name = "book"

[attributes]
title = { type = "string", required = true }

[relationships]
shelf = { belongs_to = "shelf", required = true }

[policies]
read = "true"
"#;

const LABEL: &str = r#"
[resource]
name = "label"

[attributes]
text = { type = "string", required = true }

[policies]
read = "true"
"#;

const SHELF_LABEL: &str = r#"
[resource]
name = "shelf_label"

[relationships]
shelf = { belongs_to = "shelf", required = true }
label = { belongs_to = "label", required = true }

[policies]
read = "true"
"#;

both!(
    a_record_page_links_its_has_many_and_many_to_many_records,
    |dialect| async move {
        let mut api = TestApi::new(
            dialect,
            &[
                ("shelf", SHELF),
                ("book", BOOK),
                ("label", LABEL),
                ("shelf_label", SHELF_LABEL),
            ],
        )
        .await;
        let auth = api.sign_ins(
            every_strategy(false),
            SECRET,
            kumo_server::auth::clock::Clock::manual(time::macros::datetime!(2026-11-22 12:00 UTC)),
        );
        account(&api, &auth, "boss@example.com", "admin").await;
        let mut browser = Browser::new(&api);
        signed_in(&mut browser, "boss@example.com").await;
        let r = api
            .send(
                "POST",
                "/api/shelves",
                None,
                Some(json!({ "title": "Top" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.id();
        let page = decoded(&browser.get(&format!("/admin/r/shelves/{id}")).await.body);
        for link in [
            format!("/admin/r/books?filter[shelf_id]={id}"),
            format!("/admin/r/shelf_labels?filter[shelf_id]={id}"),
        ] {
            assert!(page.contains(&link), "{link} in {page}");
        }
        api.cleanup().await;
    }
);

both!(
    a_create_action_runs_from_the_list_page,
    |dialect| async move {
        let mut api = TestApi::new(dialect, &[("note", NOTE)]).await;
        let auth = api.sign_ins(
            every_strategy(false),
            SECRET,
            kumo_server::auth::clock::Clock::manual(time::macros::datetime!(2026-11-22 12:00 UTC)),
        );
        account(&api, &auth, "boss@example.com", "admin").await;
        let boss_id = id_of(&auth, "boss@example.com").await;
        let mut browser = Browser::new(&api);
        signed_in(&mut browser, "boss@example.com").await;
        let list = browser.get("/admin/r/notes").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        assert_secure_page(&list);
        assert!(
            decoded(&list.body).contains("/admin/r/notes/actions/jot"),
            "{}",
            list.body
        );
        let token = csrf_of(&list);
        // Refused with the field named; then made, with the action's value.
        let r = browser
            .post(
                "/admin/r/notes/actions/jot",
                &[("text", ""), ("author_id", &boss_id)],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("text:"), "{}", r.body);
        let r = browser
            .post(
                "/admin/r/notes/actions/jot",
                &[("text", "hello"), ("author_id", &boss_id)],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let record = browser.get(&location(&r)).await;
        assert!(record.body.contains("hello"), "{}", record.body);
        let notes = api.send("GET", "/api/notes", None, None).await;
        assert_eq!(notes.data()[0]["pinned"], true, "{}", notes.body);
        // In the list, the author is named, not shown as an id.
        let list = browser.get("/admin/r/notes").await;
        assert!(
            list.body.contains("<td>boss@example.com</td>")
                && !list.body.contains(&format!("<td>{boss_id}</td>")),
            "{}",
            list.body
        );

        let record_url = location(&r).trim_end_matches("?done=created").to_owned();
        // An update action's form starts with the record's values: sent as
        // shown but for one field, it changes that field alone.
        let id = record_url.rsplit('/').next().unwrap().to_owned();
        let r = browser
            .post(
                &record_url,
                &[("text", "hello"), ("mood", "calm"), ("author_id", &boss_id)],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let record = decoded(&browser.get(&record_url).await.body);
        let reword = &record[record.find("actions/reword").expect("the reword form")..];
        assert!(reword.contains("name=\"mood\" value=\"calm\""), "{reword}");
        let r = browser
            .post(
                &format!("{record_url}/actions/reword"),
                &[("text", "hello again"), ("mood", "calm")],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let stored = api
            .send("GET", &format!("/api/notes/{id}"), None, None)
            .await;
        assert_eq!(stored.data()["text"], "hello again");
        assert_eq!(stored.data()["mood"], "calm");

        // A destroy action asks first, in its form and on the server.
        let record = browser.get(&record_url).await;
        assert!(
            record
                .body
                .contains("name=\"_confirm\" value=\"yes\" required")
                && record.body.contains("Yes, delete this note"),
            "{}",
            record.body
        );
        let discard = format!("{record_url}/actions/discard");
        let r = browser.post(&discard, &[], Some(&token)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("Yes, delete this note"), "{}", r.body);
        assert_eq!(browser.get(&record_url).await.status, StatusCode::OK);
        let r = browser
            .post(&discard, &[("_confirm", "yes")], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(browser.get(&record_url).await.status, StatusCode::NOT_FOUND);
        api.cleanup().await;
    }
);

both!(
    a_belongs_to_field_searches_its_targets_as_you_type,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        account(&api, &auth, "zed@example.com", "user").await;
        let zed_id = id_of(&auth, "zed@example.com").await;
        let mut browser = Browser::new(&api);
        signed_in(&mut browser, "boss@example.com").await;
        let form = browser.get("/admin/r/avatars/new").await;
        assert!(
            decoded(&form.body).contains("hx-get=\"/admin/r/users/choices?field=uploader_id\""),
            "{}",
            form.body
        );
        // The text comes under the field's name, in any case; or an id.
        let r = browser
            .get("/admin/r/users/choices?field=uploader_id&uploader_id=ZED")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains("zed@example.com") && !r.body.contains("boss@"),
            "{}",
            r.body
        );
        let r = browser
            .get(&format!(
                "/admin/r/users/choices?field=uploader_id&uploader_id={zed_id}"
            ))
            .await;
        assert!(
            r.body.contains(&zed_id) && !r.body.contains("boss@"),
            "{}",
            r.body
        );
        // Other parameters are not the search: the first choices, both.
        let r = browser
            .get("/admin/r/users/choices?field=uploader_id&other=ZED")
            .await;
        assert!(
            r.body.contains("zed@example.com") && r.body.contains("boss@"),
            "{}",
            r.body
        );
        // Signed out: nothing.
        let mut stranger = Browser::new(&api);
        let r = stranger.get("/admin/r/users/choices?q=zed").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        api.cleanup().await;
    }
);

both!(
    only_the_browser_cookie_opens_the_admin_and_admins_keep_their_role,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        account(&api, &auth, "coord@example.com", "coordinator").await;
        let boss_id = id_of(&auth, "boss@example.com").await;
        // An admin's access token and API key are for the API, not the
        // admin: as them, the admin is signed out.
        let signed = api
            .send(
                "POST",
                "/auth/password/sign_in",
                None,
                Some(json!({ "email": "boss@example.com", "password": GOOD })),
            )
            .await;
        let access = signed.data()["access_token"].as_str().unwrap().to_owned();
        let key = api
            .send(
                "POST",
                "/auth/api_keys",
                Some(&access),
                Some(json!({ "name": "k" })),
            )
            .await
            .data()["key"]
            .as_str()
            .unwrap()
            .to_owned();
        for credential in [&access, &key] {
            let request = Request::get("/admin")
                .header(header::AUTHORIZATION, format!("Bearer {credential}"))
                .body(Body::empty())
                .unwrap();
            let (status, headers, _) = exchange(&api, request).await;
            assert_eq!(status, StatusCode::SEE_OTHER);
            assert_eq!(headers[header::LOCATION], "/admin/sign_in");
        }
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let token = csrf_of(&boss.get("/admin").await);
        // Not by the generic form, nor by an id spelt another way.
        let r = boss
            .post(
                &format!("/admin/r/users/{boss_id}"),
                &[("email", "boss@example.com"), ("role", "user")],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body.contains("cannot be taken from yourself"),
            "{}",
            r.body
        );
        let shouting = boss_id.to_uppercase();
        let r = boss
            .post(&format!("/admin/users/{shouting}/lock"), &[], Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        // Nor do they delete their own account.
        let r = boss
            .post(
                &format!("/admin/r/users/{boss_id}/delete"),
                &[],
                Some(&token),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body.contains("your own account"), "{}", r.body);
        let me = auth
            .accounts()
            .read_one("user", &[("id", Test::Eq(json!(boss_id)))])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(me["role"], "admin");
        assert!(me["locked_at"].is_null());
        // A coordinator sees no admin's devices or audit trail.
        let mut coordinator = Browser::new(&api);
        signed_in(&mut coordinator, "coord@example.com").await;
        let page = coordinator.get(&format!("/admin/r/users/{boss_id}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            !page.body.contains("Signed-in devices") && !page.body.contains("Audit trail"),
            "{}",
            page.body
        );
        // Nor exports as someone else.
        let r = coordinator
            .get(&format!("/admin/r/avatars/export?as={boss_id}"))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    over_https_the_admin_asks_for_https_and_secure_cookies,
    |dialect| async move {
        let https = kumo_server::auth::Settings {
            public_url: "https://game.example".into(),
            ..every_strategy(false)
        };
        let (api, _auth) = auth_support::serving(dialect, https, SECRET).await;
        let mut browser = Browser::new(&api);
        let page = browser.get("/admin/sign_in").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(
            page.headers[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000"
        );
        let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
        assert!(
            cookie.starts_with("__Host-kumo_admin_csrf=") && cookie.contains("Secure"),
            "{cookie}"
        );
        api.cleanup().await;
        // Over plain HTTP there is no HTTPS to insist on.
        let (api, _auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        let page = Browser::new(&api).get("/admin/sign_in").await;
        assert!(
            page.headers
                .get(header::STRICT_TRANSPORT_SECURITY)
                .is_none()
        );
        api.cleanup().await;
    }
);

both!(
    links_sent_from_the_admin_count_against_the_address,
    |dialect| async move {
        let limited = kumo_server::auth::Settings {
            limits: Some(kumo_server::auth::limits::LimitSettings {
                per_ip_per_minute: 100.try_into().unwrap(),
                per_account_per_minute: 5.try_into().unwrap(),
                polls_per_ip_per_minute: 100.try_into().unwrap(),
            }),
            ..every_strategy(false)
        };
        let (api, auth) = auth_support::serving(dialect, limited, SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        account(&api, &auth, "player@example.com", "user").await;
        let player_id = id_of(&auth, "player@example.com").await;
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let token = csrf_of(&boss.get("/admin").await);
        // The address's allowance (5 a minute, some spent making the
        // account) runs out within six sends.
        let send = format!("/admin/users/{player_id}/send_link");
        let first = boss.post(&send, &[], Some(&token)).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        let mut r = first;
        for _ in 0..5 {
            r = boss.post(&send, &[], Some(&token)).await;
            if r.status != StatusCode::OK {
                break;
            }
        }
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(r.headers.contains_key(header::RETRY_AFTER));
        assert!(r.body.contains("Too many links"), "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    signing_in_leads_back_to_the_page_asked_for,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        let mut browser = Browser::new(&api);
        let r = browser.get("/admin/r/avatars?sort=name").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/admin/sign_in");
        let r = password_sign_in(&mut browser, "boss@example.com").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(location(&r), "/admin/r/avatars?sort=name");
        // Once: signing in forgets it.
        assert!(!browser.cookies.contains_key("kumo_admin_return"));
        // A remembered address that leads off the admin is ignored.
        let mut planted = Browser::new(&api);
        planted.cookies.insert(
            "kumo_admin_return".into(),
            "%2F%2Fevil.example%2Fadmin".into(),
        );
        let r = password_sign_in(&mut planted, "boss@example.com").await;
        assert_eq!(location(&r), "/admin");
        api.cleanup().await;
    }
);

both!(
    unknown_and_unreadable_admin_addresses_get_an_admin_page,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let r = boss.get("/admin/").await;
        assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(location(&r), "/admin");
        for path in ["/admin/nowhere", "/admin/r/avatars/a/b/c/d"] {
            let r = boss.get(path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert_secure_page(&r);
            assert!(r.body.contains("No such page"), "{path}: {}", r.body);
        }
        // A segment that is not UTF-8: axum refuses it before any handler;
        // the admin says so in a page of its own.
        for path in ["/admin/r/%FF", "/admin/r/avatars/%C3%28"] {
            let r = boss.get(path).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
            assert_secure_page(&r);
            assert!(
                r.body.contains("Not an admin address"),
                "{path}: {}",
                r.body
            );
        }
        api.cleanup().await;
    }
);

both!(
    every_admin_post_without_the_token_is_refused_before_its_handler,
    |dialect| async move {
        let (api, auth) = auth_support::serving(dialect, every_strategy(false), SECRET).await;
        account(&api, &auth, "boss@example.com", "admin").await;
        account(&api, &auth, "player@example.com", "user").await;
        let player_id = id_of(&auth, "player@example.com").await;
        let mut boss = Browser::new(&api);
        signed_in(&mut boss, "boss@example.com").await;
        let some_id = "01a201b2-0000-7000-8000-000000000000";
        let routes = [
            "/admin/sign_in/link".to_owned(),
            "/admin/sign_in/code".to_owned(),
            "/admin/sign_in/poll".to_owned(),
            "/admin/sign_in/password".to_owned(),
            "/admin/sign_out".to_owned(),
            "/admin/r/avatars".to_owned(),
            "/admin/r/avatars/actions/anything".to_owned(),
            format!("/admin/r/avatars/{some_id}"),
            format!("/admin/r/avatars/{some_id}/delete"),
            format!("/admin/r/avatars/{some_id}/actions/publish"),
            format!("/admin/users/{player_id}/lock"),
            format!("/admin/users/{player_id}/unlock"),
            format!("/admin/users/{player_id}/confirm"),
            format!("/admin/users/{player_id}/role"),
            format!("/admin/users/{player_id}/send_link"),
            format!("/admin/users/{player_id}/sessions/{some_id}/revoke"),
        ];
        for route in &routes {
            let r = boss.post(route, &[("role", "admin")], None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{route}: {}", r.body);
            assert!(r.body.contains("security token"), "{route}: {}", r.body);
        }
        // Nothing was done: the player is still a player, not locked.
        let player = auth
            .accounts()
            .read_one("user", &[("id", Test::Eq(json!(player_id)))])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(player["role"], "user");
        assert!(player["locked_at"].is_null());
        api.cleanup().await;
    }
);
