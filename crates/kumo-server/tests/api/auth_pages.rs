//! The auth layer's HTML pages and their forms, as a browser uses them, on
//! both databases: the pages keep their URL (which holds a token) on this
//! site with `Referrer-Policy: same-origin`, under which a browser sends
//! the page's own `Origin` with its form; a form sent with that `Origin`
//! alone (browsers without `Sec-Fetch-Site`) is accepted, one from another
//! site refused.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use kumo_server::auth::{Auth, Settings};
use serde_json::{Value, json};

use crate::auth_support::{self, PUBLIC_URL, every_strategy, exchange, mailed_link};
use crate::both;
use crate::harness::TestApi;

const SECRET: &[u8] = b"the auth pages test's secret, 32";
const GOOD: &str = "correct horse battery staple";

/// Every strategy, with email confirmation (so registering mails a
/// confirmation link), at the cheapest Argon2 cost.
fn settings() -> Settings {
    every_strategy(true)
}

async fn serving(dialect: kumo_db::sql::Dialect) -> (TestApi, Arc<Auth>) {
    auth_support::serving(dialect, settings(), SECRET).await
}

async fn post_json(api: &TestApi, uri: &str, body: Value) -> StatusCode {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, text) = exchange(api, request).await;
    assert!(status.is_success(), "{uri}: {status} {text}");
    status
}

/// A link of each kind: a magic link, a password reset and an email
/// confirmation, for accounts of their own.
async fn links(api: &TestApi) -> [String; 3] {
    post_json(
        api,
        "/auth/magic_link/request",
        json!({ "email": "ml@example.com" }),
    )
    .await;
    // Registering with confirmation on mails the confirmation link.
    post_json(
        api,
        "/auth/password/register",
        json!({ "email": "ec@example.com", "password": GOOD }),
    )
    .await;
    post_json(
        api,
        "/auth/password/register",
        json!({ "email": "pw@example.com", "password": GOOD }),
    )
    .await;
    post_json(
        api,
        "/auth/password/reset_request",
        json!({ "email": "pw@example.com" }),
    )
    .await;
    [
        format!(
            "/auth/magic_link/{}",
            mailed_link(api, "ml@example.com", "/auth/magic_link/").await
        ),
        format!(
            "/auth/password/reset/{}",
            mailed_link(api, "pw@example.com", "/auth/password/reset/").await
        ),
        format!(
            "/auth/email/confirm/{}",
            mailed_link(api, "ec@example.com", "/auth/email/confirm/").await
        ),
    ]
}

/// A browser's `POST` of the form on the page at `link`, with `headers`.
fn form_post(link: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post(link);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match link.starts_with("/auth/password/reset/") {
        true => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            "password=a+brand+new+passphrase+here"
        }
        false => "",
    };
    request.body(Body::from(body)).unwrap()
}

both!(
    link_pages_keep_their_urls_on_this_site,
    |dialect| async move {
        let (api, _auth) = serving(dialect).await;
        let pages = links(&api).await;
        for page in &pages {
            let (status, headers, html) =
                exchange(&api, Request::get(page).body(Body::empty()).unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{page}: {html}");
            assert!(html.contains("<form method=\"post\""), "{page}: {html}");
            // Regression: `no-referrer` made browsers send `Origin: null`
            // with the page's own form, which browsers without
            // `Sec-Fetch-Site` then had refused as another site's.
            assert_eq!(headers[header::REFERRER_POLICY], "same-origin", "{page}");
        }
        // A refusal's page too.
        let (status, headers, _) = exchange(
            &api,
            form_post(&pages[2], &[("origin", "https://evil.example")]),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
        api.cleanup().await;
    }
);

both!(
    forms_sent_with_only_their_own_origin_are_accepted,
    |dialect| async move {
        let (api, auth) = serving(dialect).await;
        let [magic_link, reset, confirm] = links(&api).await;

        // Another site cannot press the confirmation button: by its
        // `Origin`, by `Sec-Fetch-Site`, or with the `null` origin a
        // page without a referrer would give. Nothing is used up.
        for headers in [
            &[("origin", "https://evil.example")][..],
            &[("sec-fetch-site", "cross-site")],
            &[("sec-fetch-site", "cross-site"), ("origin", PUBLIC_URL)],
            &[("origin", "null")],
        ] {
            let (status, _, html) = exchange(&api, form_post(&confirm, headers)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {html}");
            assert!(html.contains("must be sent from its own page"), "{html}");
        }
        let user = auth
            .accounts()
            .read_one(
                "user",
                &[(
                    "email",
                    kumo_db::query::accounts::Test::Eq(json!("ec@example.com")),
                )],
            )
            .await
            .unwrap()
            .unwrap();
        assert!(user["email_confirmed_at"].is_null(), "{user:?}");

        // The page's own `Origin` and no `Sec-Fetch-Site`, as older Safari
        // sends a form under `Referrer-Policy: same-origin`.
        let own = [("origin", PUBLIC_URL)];
        let (status, _, html) = exchange(&api, form_post(&confirm, &own)).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("ec@example.com is confirmed"), "{html}");
        let (status, _, html) = exchange(&api, form_post(&reset, &own)).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("Your new password is set"), "{html}");
        let (status, headers, html) = exchange(&api, form_post(&magic_link, &own)).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(headers.contains_key(header::SET_COOKIE), "{headers:?}");
        api.cleanup().await;
    }
);

both!(
    paths_that_are_not_utf8_are_answered_like_bad_links_and_missing_records,
    |dialect| async move {
        let (api, _auth) = serving(dialect).await;
        // The link pages and their forms: the invalid link's page, as HTML.
        for (method, uri) in [
            ("GET", "/auth/password/reset/%FF%FE"),
            ("POST", "/auth/password/reset/%FF%FE"),
            ("GET", "/auth/email/confirm/%FF%FE"),
            ("POST", "/auth/email/confirm/%FF%FE"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::ORIGIN, PUBLIC_URL)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("password=correct+horse+battery+staple"))
                .unwrap();
            let (status, headers, page) = exchange(&api, request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {page}");
            assert!(
                headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html"),
                "{method} {uri}: {headers:?}"
            );
            assert!(page.contains("not valid"), "{method} {uri}: {page}");
        }
        // A session's or key's id: a JSON 404, as for one that is missing.
        let registered = api
            .send(
                "POST",
                "/auth/password/register",
                None,
                Some(json!({ "email": "ids@example.com", "password": GOOD })),
            )
            .await;
        assert!(registered.status.is_success(), "{}", registered.body);
        let confirm = mailed_link(&api, "ids@example.com", "/auth/email/confirm/").await;
        post_json(&api, "/auth/email/confirm", json!({ "token": confirm })).await;
        let signed_in = api
            .send(
                "POST",
                "/auth/password/sign_in",
                None,
                Some(json!({ "email": "ids@example.com", "password": GOOD })),
            )
            .await;
        let access = signed_in.data()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        for (uri, what) in [
            ("/auth/sessions/%FF", "no such session"),
            ("/auth/api_keys/%FF", "no such API key"),
        ] {
            let r = api.send("DELETE", uri, Some(&access), None).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}: {}", r.body);
            assert_eq!(r.body["error"]["message"], what, "{uri}");
        }
        api.cleanup().await;
    }
);
