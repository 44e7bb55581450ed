//! Sessions and refresh-token rotation (`kumo_server::auth::session`), on
//! both databases, with a clock the tests move: a refresh rotates; a token
//! already traded in revokes the session, unless it comes back within the
//! grace of a retry; expiry, locked accounts and foreign tokens are refused;
//! racing refreshes with one token rotate once.

use std::sync::Arc;

use kumo_auth::access::AccessKey;
use kumo_auth::refresh::{RETRY_GRACE_SECONDS, RefreshKey};
use kumo_db::query::Record;
use kumo_db::query::accounts::{Set, Test};
use kumo_server::auth::clock::{Clock, stamp};
use kumo_server::auth::session::{self, Device, Keys, RefreshError, Tokens};
use serde_json::json;
use time::macros::datetime;

use crate::both;
use crate::harness::TestApi;

const SECRET: &[u8] = b"the sessions test's secret, 32 b";

fn keys() -> Keys {
    Keys {
        access: AccessKey::new(SECRET),
        refresh: RefreshKey::new(SECRET),
        access_ttl: time::Duration::minutes(15),
        session_ttl: time::Duration::days(30),
    }
}

fn clock() -> Clock {
    Clock::manual(datetime!(2026-11-21 12:00:00 UTC))
}

/// A user and a session for them, opened at the clock's time.
async fn signed_in(api: &TestApi, clock: &Clock, email: &str) -> (Record, Tokens) {
    let engine = api.state.engine().unwrap();
    let mut tx = engine.accounts().unwrap().begin().await.unwrap();
    let now = stamp(clock.now());
    let user = tx
        .insert("user", &[("email", json!(email))], &now)
        .await
        .unwrap();
    let device = Device {
        ip: Some("203.0.113.0".into()),
        user_agent: Some("KumoTest/1".into()),
    };
    let tokens = session::open(&mut tx, &keys(), user.clone(), &device, clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (user, tokens)
}

async fn session_row(api: &TestApi, tokens: &Tokens) -> Record {
    let engine = api.state.engine().unwrap();
    let mut tx = engine.accounts().unwrap().begin().await.unwrap();
    tx.find_one("session", &[("id", Test::Eq(json!(tokens.session_id)))])
        .await
        .unwrap()
        .expect("the session row")
}

both!(
    a_refresh_rotates_and_a_reused_token_revokes_the_session,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let clock = clock();
        let (user, first) = signed_in(&api, &clock, "alice@example.com").await;
        let engine = api.state.shared_engine().unwrap();
        let data = first.to_json(&engine.catalog);
        assert_eq!(data["token_type"], "Bearer");
        assert_eq!(data["expires_in"], 900);
        assert!(data["user"].get("password_hash").is_none());
        let claims = keys()
            .access
            .verify(&first.access_token, clock.now().unix_timestamp())
            .unwrap();
        assert_eq!(claims.session_id, first.session_id);
        assert_eq!(claims.user_id.to_string(), user["id"].as_str().unwrap());
        let row = session_row(&api, &first).await;
        assert_eq!(row["generation"], 0);
        assert_eq!(row["ip"], "203.0.113.0");
        assert_ne!(
            row["refresh_token_hash"], first.refresh_token,
            "stored hashed"
        );

        let accounts = api.state.engine().unwrap().accounts().unwrap();
        clock.advance(time::Duration::minutes(20));
        let second = session::refresh(&accounts, &keys(), &first.refresh_token, clock.now())
            .await
            .unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_eq!(second.session_id, first.session_id);
        assert_eq!(session_row(&api, &first).await["generation"], 1);

        // The first token again, long after: it was copied. The whole session
        // goes, and its newest token with it.
        clock.advance(time::Duration::seconds(RETRY_GRACE_SECONDS + 1));
        let reused = session::refresh(&accounts, &keys(), &first.refresh_token, clock.now()).await;
        assert!(matches!(reused, Err(RefreshError::Reused)), "{reused:?}");
        assert!(!session_row(&api, &first).await["revoked_at"].is_null());
        let after = session::refresh(&accounts, &keys(), &second.refresh_token, clock.now()).await;
        assert!(matches!(after, Err(RefreshError::Revoked)), "{after:?}");
        api.cleanup().await;
    }
);

both!(
    a_retry_within_the_grace_gets_the_same_answer_again,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let clock = clock();
        let (_, first) = signed_in(&api, &clock, "bob@example.com").await;
        let accounts = api.state.engine().unwrap().accounts().unwrap();
        let second = session::refresh(&accounts, &keys(), &first.refresh_token, clock.now())
            .await
            .unwrap();
        clock.advance(time::Duration::seconds(RETRY_GRACE_SECONDS));
        let retried = session::refresh(&accounts, &keys(), &first.refresh_token, clock.now())
            .await
            .unwrap();
        assert_eq!(retried.refresh_token, second.refresh_token);
        assert!(!second.repeated && retried.repeated);
        let row = session_row(&api, &first).await;
        assert!(row["revoked_at"].is_null());
        assert_eq!(row["generation"], 1);
        let third = session::refresh(&accounts, &keys(), &second.refresh_token, clock.now())
            .await
            .unwrap();
        assert_eq!(session_row(&api, &third).await["generation"], 2);
        api.cleanup().await;
    }
);

both!(
    expired_locked_and_foreign_tokens_are_refused,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let clock = clock();
        let (user, tokens) = signed_in(&api, &clock, "carol@example.com").await;
        let accounts = api.state.engine().unwrap().accounts().unwrap();

        let foreign =
            RefreshKey::new(b"another server's secret, 32 byte").token(tokens.session_id, 0);
        for bad in [foreign.as_str(), "", "garbage", &tokens.access_token] {
            let r = session::refresh(&accounts, &keys(), bad, clock.now()).await;
            assert!(matches!(r, Err(RefreshError::Invalid)), "{bad}: {r:?}");
        }

        let mut tx = accounts.begin().await.unwrap();
        tx.update(
            "user",
            &[("locked_at", Set::To(json!(stamp(clock.now()))))],
            &[("id", Test::Eq(user["id"].clone()))],
            &stamp(clock.now()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let locked = session::refresh(&accounts, &keys(), &tokens.refresh_token, clock.now()).await;
        assert!(matches!(locked, Err(RefreshError::Locked)), "{locked:?}");
        assert_eq!(locked.unwrap_err().code(), "account_locked");

        let (_, other) = signed_in(&api, &clock, "dave@example.com").await;
        clock.advance(time::Duration::days(30));
        let expired = session::refresh(&accounts, &keys(), &other.refresh_token, clock.now()).await;
        assert!(matches!(expired, Err(RefreshError::Expired)), "{expired:?}");
        api.cleanup().await;
    }
);

both!(
    racing_refreshes_with_one_token_rotate_once,
    |dialect| async move {
        let api = Arc::new(TestApi::avatars(dialect).await);
        let clock = clock();
        let (_, tokens) = signed_in(&api, &clock, "erin@example.com").await;
        let mut racers = Vec::new();
        for _ in 0..20 {
            let api = api.clone();
            let token = tokens.refresh_token.clone();
            let now = clock.now();
            racers.push(tokio::spawn(async move {
                let accounts = api.state.engine().unwrap().accounts().unwrap();
                session::refresh(&accounts, &keys(), &token, now)
                    .await
                    .map(|t| t.refresh_token)
            }));
        }
        let mut answers = Vec::new();
        for racer in racers {
            answers.push(racer.await.unwrap().expect("every racer is answered"));
        }
        answers.dedup();
        assert_eq!(answers.len(), 1, "one new token for all");
        let row = session_row(&api, &tokens).await;
        assert_eq!(row["generation"], 1);
        assert!(row["revoked_at"].is_null());
        Arc::try_unwrap(api)
            .ok()
            .expect("the racers are done")
            .cleanup()
            .await;
    }
);

both!(
    a_revocation_reaches_another_node_at_its_next_reload_and_ages_out,
    |dialect| async move {
        use kumo_server::auth::revocations::Revocations;

        let api = TestApi::avatars(dialect).await;
        let clock = clock();
        let (_, tokens) = signed_in(&api, &clock, "frank@example.com").await;
        let accounts = api.state.engine().unwrap().accounts().unwrap();
        let (here, there) = (Revocations::default(), Revocations::default());
        let ttl = keys().access_ttl;

        // Signed out on this node: known here at once, there at its reload.
        let mut tx = accounts.begin().await.unwrap();
        tx.update(
            "session",
            &[("revoked_at", Set::To(json!(stamp(clock.now()))))],
            &[("id", Test::Eq(json!(tokens.session_id)))],
            &stamp(clock.now()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        here.insert(tokens.session_id, clock.now());
        assert!(here.is_revoked(tokens.session_id));
        assert!(!there.is_revoked(tokens.session_id));
        clock.advance(time::Duration::seconds(2));
        assert_eq!(there.reload(&accounts, ttl, clock.now()).await.unwrap(), 1);
        assert!(there.is_revoked(tokens.session_id));

        // Once every access token of the session has expired, it is dropped.
        clock.advance(ttl);
        assert_eq!(there.reload(&accounts, ttl, clock.now()).await.unwrap(), 0);
        assert_eq!(here.reload(&accounts, ttl, clock.now()).await.unwrap(), 0);
        assert!(!there.is_revoked(tokens.session_id));
        assert!(!here.is_revoked(tokens.session_id));
        api.cleanup().await;
    }
);
