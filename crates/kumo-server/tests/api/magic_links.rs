//! Magic-link sign-in (`kumo_server::auth::magic_link`) on both databases,
//! with a clock the tests move: a link signs in once (also among fifty
//! racing uses), the code of any of the address's newest mails works and
//! allows five tries, links expire, registration decides who is mailed,
//! and a second device collects its session by polling, once, while the
//! link lasts.

use std::sync::Arc;

use kumo_auth::access::AccessKey;
use kumo_auth::refresh::RefreshKey;
use kumo_auth::secret::CodeKey;
use kumo_core::project::Registration;
use kumo_db::query::accounts::{Set, Test};
use kumo_server::auth::clock::{Clock, stamp};
use kumo_server::auth::magic_link::{
    CODE_ATTEMPTS, CODE_ATTEMPTS_PER_HOUR, CODE_LINKS, Failure, MagicLinks, Poll, TOKEN_MINUTES,
};
use kumo_server::auth::session::{Device, Keys};
use serde_json::json;
use time::macros::datetime;

use crate::both;
use crate::harness::TestApi;

const SECRET: &[u8] = b"the magic link test's secret, 32";

fn keys() -> Keys {
    Keys {
        access: AccessKey::new(SECRET),
        refresh: RefreshKey::new(SECRET),
        access_ttl: time::Duration::minutes(15),
        session_ttl: time::Duration::days(30),
    }
}

fn codes() -> CodeKey {
    CodeKey::new(SECRET)
}

fn clock() -> Clock {
    Clock::manual(datetime!(2026-11-21 12:00:00 UTC))
}

fn device() -> Device {
    Device {
        ip: Some("198.51.100.0".into()),
        user_agent: Some("Quest".into()),
    }
}

fn links<'a>(
    api: &'a TestApi,
    keys: &'a Keys,
    codes: &'a CodeKey,
    registration: Registration,
) -> MagicLinks<'a> {
    MagicLinks {
        accounts: api.state.engine().unwrap().accounts().unwrap(),
        keys,
        codes,
        registration,
        audited: false,
    }
}

both!(
    a_link_signs_in_once_and_makes_the_account,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        let requested = links.request("new@example.com", clock.now()).await.unwrap();
        let (token, code) = requested.mail.expect("open registration mails a link");
        assert_eq!(code.len(), 6);
        let tokens = links
            .sign_in_with_token(&token, &device(), clock.now())
            .await
            .unwrap();
        assert_eq!(tokens.user["email"], "new@example.com");
        assert_eq!(tokens.user["email_confirmed_at"], stamp(clock.now()));
        assert_eq!(tokens.user["role"], "user");
        let again = links
            .sign_in_with_token(&token, &device(), clock.now())
            .await;
        assert!(matches!(again, Err(Failure::Used)), "{again:?}");
        let forged = links
            .sign_in_with_token("not-a-token", &device(), clock.now())
            .await;
        assert!(matches!(forged, Err(Failure::Invalid)), "{forged:?}");
        // Its code went with it, and says so.
        let by_code = links
            .sign_in_with_code("new@example.com", &code, &device(), clock.now())
            .await;
        assert!(matches!(by_code, Err(Failure::Used)), "{by_code:?}");
        api.cleanup().await;
    }
);

both!(
    registration_and_locks_decide_who_is_mailed,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let closed = links(&api, &keys, &codes, Registration::Closed);
        let unknown = closed
            .request("stranger@example.com", clock.now())
            .await
            .unwrap();
        assert!(unknown.mail.is_none());
        let accounts = api.state.engine().unwrap().accounts().unwrap();
        let mut tx = accounts.begin().await.unwrap();
        let now = stamp(clock.now());
        tx.insert("user", &[("email", json!("known@example.com"))], &now)
            .await
            .unwrap();
        tx.insert(
            "user",
            &[
                ("email", json!("locked@example.com")),
                ("locked_at", json!(now)),
            ],
            &now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let known = closed
            .request("known@example.com", clock.now())
            .await
            .unwrap();
        let (token, _) = known.mail.expect("an account gets its link");
        let tokens = closed
            .sign_in_with_token(&token, &device(), clock.now())
            .await
            .unwrap();
        assert_eq!(tokens.user["email"], "known@example.com");
        let locked = closed
            .request("locked@example.com", clock.now())
            .await
            .unwrap();
        assert!(locked.mail.is_none(), "a locked account is mailed nothing");
        api.cleanup().await;
    }
);

both!(
    fifty_racing_uses_of_one_link_sign_in_once,
    |dialect| async move {
        let api = Arc::new(TestApi::avatars(dialect).await);
        let (keys, codes, clock) = (Arc::new(keys()), Arc::new(codes()), clock());
        let requested = links(&api, &keys, &codes, Registration::Open)
            .request("race@example.com", clock.now())
            .await
            .unwrap();
        let (token, _) = requested.mail.unwrap();
        let mut racers = Vec::new();
        for _ in 0..50 {
            let (api, keys, codes, token, now) = (
                api.clone(),
                keys.clone(),
                codes.clone(),
                token.clone(),
                clock.now(),
            );
            racers.push(tokio::spawn(async move {
                links(&api, &keys, &codes, Registration::Open)
                    .sign_in_with_token(&token, &device(), now)
                    .await
            }));
        }
        let (mut signed_in, mut used) = (0, 0);
        for racer in racers {
            match racer.await.unwrap() {
                Ok(_) => signed_in += 1,
                Err(Failure::Used) => used += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!((signed_in, used), (1, 49));
        let accounts = api.state.engine().unwrap().accounts().unwrap();
        let mut tx = accounts.begin().await.unwrap();
        let sessions = tx.find("session", &[], None, None).await.unwrap();
        assert_eq!(sessions.len(), 1);
        drop(tx);
        Arc::try_unwrap(api)
            .ok()
            .expect("racers done")
            .cleanup()
            .await;
    }
);

both!(the_code_allows_five_tries, |dialect| async move {
    let api = TestApi::avatars(dialect).await;
    let (keys, codes, clock) = (keys(), codes(), clock());
    let links = links(&api, &keys, &codes, Registration::Open);
    let wrong = |code: &str| {
        if code == "000000" {
            "000001".to_owned()
        } else {
            "000000".to_owned()
        }
    };

    let (_, code) = links
        .request("typist@example.com", clock.now())
        .await
        .unwrap()
        .mail
        .unwrap();
    for _ in 0..CODE_ATTEMPTS - 1 {
        let r = links
            .sign_in_with_code("typist@example.com", &wrong(&code), &device(), clock.now())
            .await;
        assert!(matches!(r, Err(Failure::Invalid)), "{r:?}");
    }
    let tokens = links
        .sign_in_with_code("typist@example.com", &code, &device(), clock.now())
        .await
        .expect("the fifth try is the right code");
    assert_eq!(tokens.user["email"], "typist@example.com");

    let (_, code) = links
        .request("guesser@example.com", clock.now())
        .await
        .unwrap()
        .mail
        .unwrap();
    for _ in 0..CODE_ATTEMPTS {
        let r = links
            .sign_in_with_code("guesser@example.com", &wrong(&code), &device(), clock.now())
            .await;
        assert!(matches!(r, Err(Failure::Invalid)), "{r:?}");
    }
    let late = links
        .sign_in_with_code("guesser@example.com", &code, &device(), clock.now())
        .await;
    assert!(
        matches!(late, Err(Failure::Invalid)),
        "after five tries even the right code: {late:?}"
    );
    api.cleanup().await;
});

both!(
    code_tries_are_capped_per_address_across_links,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        let address = "target@example.com";
        // A guesser asks for link after link and spends each one's tries.
        let mut spent = 0;
        while spent < CODE_ATTEMPTS_PER_HOUR {
            let (_, code) = links
                .request(address, clock.now())
                .await
                .unwrap()
                .mail
                .unwrap();
            let wrong = if code == "000000" { "000001" } else { "000000" };
            for _ in 0..CODE_ATTEMPTS.min(CODE_ATTEMPTS_PER_HOUR - spent) {
                let r = links
                    .sign_in_with_code(address, wrong, &device(), clock.now())
                    .await;
                assert!(matches!(r, Err(Failure::Invalid)), "{r:?}");
                spent += 1;
            }
        }
        // A fresh link's right code is now refused too…
        let (token, code) = links
            .request(address, clock.now())
            .await
            .unwrap()
            .mail
            .unwrap();
        let r = links
            .sign_in_with_code(address, &code, &device(), clock.now())
            .await;
        assert!(matches!(r, Err(Failure::Invalid)), "{r:?}");
        // …but its link, which only the mailbox's owner has, still works.
        let tokens = links
            .sign_in_with_token(&token, &device(), clock.now())
            .await
            .expect("the link still signs in");
        assert_eq!(tokens.user["email"], address);
        // An hour on, codes work again.
        clock.advance(time::Duration::minutes(61));
        let (_, code) = links
            .request(address, clock.now())
            .await
            .unwrap()
            .mail
            .unwrap();
        links
            .sign_in_with_code(address, &code, &device(), clock.now())
            .await
            .expect("the cap counts the last hour only");
        api.cleanup().await;
    }
);

/// A code that is not `code`.
fn wrong(code: &str) -> &'static str {
    if code == "000000" { "000001" } else { "000000" }
}

both!(
    an_earlier_mail_s_code_was_refused_and_cost_a_try,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        let address = "impatient@example.com";
        // The first mail is slow, so the player asks again a minute later,
        // then types the first mail's code.
        let (_, first) = links
            .request(address, clock.now())
            .await
            .unwrap()
            .mail
            .unwrap();
        clock.advance(time::Duration::minutes(1));
        let (second_token, second) = links
            .request(address, clock.now())
            .await
            .unwrap()
            .mail
            .unwrap();
        let tokens = links
            .sign_in_with_code(address, &first, &device(), clock.now())
            .await
            .expect("the first mail's code signs in");
        assert_eq!(tokens.user["email"], address);
        let again = links
            .sign_in_with_code(address, &first, &device(), clock.now())
            .await;
        assert!(matches!(again, Err(Failure::Used)), "{again:?}");
        // Each mail is its own link: the older code spent only its own,
        // and the newer code and link still work (once between them).
        links
            .sign_in_with_code(address, &second, &device(), clock.now())
            .await
            .expect("the second mail's code signs in too");
        let link = links
            .sign_in_with_token(&second_token, &device(), clock.now())
            .await;
        assert!(matches!(link, Err(Failure::Used)), "{link:?}");
        api.cleanup().await;
    }
);

both!(
    an_earlier_mail_s_code_allows_five_tries_in_all,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        let address = "guessed@example.com";
        let (_, first) = links
            .request(address, clock.now())
            .await
            .unwrap()
            .mail
            .unwrap();
        for _ in 0..CODE_ATTEMPTS {
            let r = links
                .sign_in_with_code(address, wrong(&first), &device(), clock.now())
                .await;
            assert!(matches!(r, Err(Failure::Invalid)), "{r:?}");
        }
        // A new link gives the guesser no new tries at the first link's
        // code, which has been compared with five wrong ones…
        let (_, second) = links
            .request(address, clock.now())
            .await
            .unwrap()
            .mail
            .unwrap();
        let r = links
            .sign_in_with_code(address, &first, &device(), clock.now())
            .await;
        assert!(matches!(r, Err(Failure::Invalid)), "{r:?}");
        // …while the new link's code has tries left.
        links
            .sign_in_with_code(address, &second, &device(), clock.now())
            .await
            .expect("the second code has seen one try");
        api.cleanup().await;
    }
);

both!(
    only_the_newest_mails_codes_are_compared,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        let address = "many@example.com";
        let mut mailed = Vec::new();
        for _ in 0..=CODE_LINKS {
            let requested = links.request(address, clock.now()).await.unwrap();
            mailed.push(requested.mail.unwrap());
        }
        // Asking for link after link does not give a guesser more codes
        // to hit with each try.
        let (oldest_token, oldest_code) = &mailed[0];
        let r = links
            .sign_in_with_code(address, oldest_code, &device(), clock.now())
            .await;
        assert!(matches!(r, Err(Failure::Invalid)), "{r:?}");
        links
            .sign_in_with_token(oldest_token, &device(), clock.now())
            .await
            .expect("the oldest mail's link still works");
        let (_, code) = &mailed[1];
        links
            .sign_in_with_code(address, code, &device(), clock.now())
            .await
            .expect("the oldest live mails are among the newest now");
        api.cleanup().await;
    }
);

both!(
    links_and_polls_expire_after_fifteen_minutes,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        let requested = links
            .request("slow@example.com", clock.now())
            .await
            .unwrap();
        let (token, code) = requested.mail.clone().unwrap();
        clock.advance(time::Duration::minutes(15));
        let r = links
            .sign_in_with_token(&token, &device(), clock.now())
            .await;
        assert!(matches!(r, Err(Failure::Expired)), "{r:?}");
        let r = links
            .sign_in_with_code("slow@example.com", &code, &device(), clock.now())
            .await;
        assert!(matches!(r, Err(Failure::Expired)), "{r:?}");
        let r = links
            .poll(
                requested.poll_id,
                &requested.poll_secret,
                &device(),
                clock.now(),
            )
            .await;
        assert!(matches!(r, Err(Failure::Expired)), "{r:?}");
        api.cleanup().await;
    }
);

both!(
    a_second_device_collects_its_session_by_polling_once,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        let requested = links
            .request("headset@example.com", clock.now())
            .await
            .unwrap();
        let (id, secret) = (requested.poll_id, requested.poll_secret.clone());
        let pending = links
            .poll(id, &secret, &device(), clock.now())
            .await
            .unwrap();
        assert!(matches!(pending, Poll::Pending));
        let wrong = links.poll(id, "wrong-secret", &device(), clock.now()).await;
        assert!(matches!(wrong, Err(Failure::Invalid)), "{wrong:?}");

        // The player taps the link on a phone.
        let (token, _) = requested.mail.unwrap();
        let phone = links
            .sign_in_with_token(&token, &device(), clock.now())
            .await
            .unwrap();
        let headset = match links
            .poll(id, &secret, &device(), clock.now())
            .await
            .unwrap()
        {
            Poll::SignedIn(tokens) => tokens,
            Poll::Pending => panic!("the link was used"),
        };
        assert_eq!(headset.user["id"], phone.user["id"]);
        assert_ne!(
            headset.session_id, phone.session_id,
            "each device its own session"
        );
        let again = links.poll(id, &secret, &device(), clock.now()).await;
        assert!(matches!(again, Err(Failure::Used)), "{again:?}");
        clock.advance(time::Duration::minutes(TOKEN_MINUTES));
        let later = links.poll(id, &secret, &device(), clock.now()).await;
        assert!(matches!(later, Err(Failure::Used)), "{later:?}");
        api.cleanup().await;
    }
);

both!(
    a_used_link_s_poll_handle_opened_a_session_until_it_was_pruned,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        let requested = links
            .request("forgetful@example.com", clock.now())
            .await
            .unwrap();
        let (token, _) = requested.mail.clone().unwrap();
        // Used at once on the phone; the game that asked was closed.
        links
            .sign_in_with_token(&token, &device(), clock.now())
            .await
            .unwrap();
        clock.advance(time::Duration::minutes(TOKEN_MINUTES));
        let (id, secret) = (requested.poll_id, requested.poll_secret);
        let late = links.poll(id, &secret, &device(), clock.now()).await;
        assert!(matches!(late, Err(Failure::Expired)), "{late:?}");
        let accounts = api.state.engine().unwrap().accounts().unwrap();
        let mut tx = accounts.begin().await.unwrap();
        let sessions = tx.find("session", &[], None, None).await.unwrap();
        assert_eq!(sessions.len(), 1, "the phone's only");
        drop(tx);
        api.cleanup().await;
    }
);

both!(
    a_lock_after_the_request_stops_the_sign_in,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        let requested = links
            .request("later@example.com", clock.now())
            .await
            .unwrap();
        let (token, _) = requested.mail.unwrap();
        let first = links
            .request("later@example.com", clock.now())
            .await
            .unwrap();
        let signed = links
            .sign_in_with_token(&first.mail.unwrap().0, &device(), clock.now())
            .await
            .unwrap();
        let accounts = api.state.engine().unwrap().accounts().unwrap();
        let mut tx = accounts.begin().await.unwrap();
        tx.update(
            "user",
            &[("locked_at", Set::To(json!(stamp(clock.now()))))],
            &[("id", Test::Eq(signed.user["id"].clone()))],
            &stamp(clock.now()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let r = links
            .sign_in_with_token(&token, &device(), clock.now())
            .await;
        assert!(matches!(r, Err(Failure::Locked)), "{r:?}");
        api.cleanup().await;
    }
);

both!(
    two_links_of_a_new_address_used_at_once_both_sign_in,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let (keys, codes, clock) = (keys(), codes(), clock());
        let links = links(&api, &keys, &codes, Registration::Open);
        for round in 0..10 {
            let address = format!("double{round}@example.com");
            let (first, _) = links
                .request(&address, clock.now())
                .await
                .unwrap()
                .mail
                .unwrap();
            let (second, _) = links
                .request(&address, clock.now())
                .await
                .unwrap()
                .mail
                .unwrap();
            let here = device();
            let (a, b) = tokio::join!(
                links.sign_in_with_token(&first, &here, clock.now()),
                links.sign_in_with_token(&second, &here, clock.now()),
            );
            let (a, b) = (a.expect("the first link"), b.expect("the second link"));
            assert_eq!(a.user["id"], b.user["id"], "one account");
        }
        api.cleanup().await;
    }
);
