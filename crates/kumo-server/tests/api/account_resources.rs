//! Kumo's own account resources through the generic `/api`, as an admin
//! of the test authenticator: `user.email` is stored in one spelling and
//! unique whatever its case, whichever route writes it; the audit log,
//! sign-in tokens and sessions are not made, edited or deleted there (a
//! session is only revoked). A revocation of a session or an API key is
//! stamped with the server's time and never undone, and neither they nor
//! external identities move to another account. Both databases.

use axum::http::StatusCode;
use kumo_server::auth::clock::stamp;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, TestApi};

both!(
    a_user_email_is_one_spelling_and_unique_whatever_its_case,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let r = api
            .send(
                "POST",
                "/api/users",
                Some(ADMIN),
                Some(json!({ "email": "  Mixed.Case@Example.COM " })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.data()["email"], "mixed.case@example.com");

        // The same address in another case is taken: a 409 naming the
        // field, nothing lost (it was a second account).
        let r = api
            .send(
                "POST",
                "/api/users",
                Some(ADMIN),
                Some(json!({ "email": "MIXED.case@example.com" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body["error"]["fields"]["email"].is_array(), "{}", r.body);

        // An update too.
        let other = api
            .send(
                "POST",
                "/api/users",
                Some(ADMIN),
                Some(json!({ "email": "other@example.com" })),
            )
            .await;
        let other = format!("/api/users/{}", other.id());
        let r = api
            .send(
                "PATCH",
                &other,
                Some(ADMIN),
                Some(json!({ "email": "Mixed.Case@example.com" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body["error"]["fields"]["email"].is_array(), "{}", r.body);
        let r = api
            .send(
                "PATCH",
                &other,
                Some(ADMIN),
                Some(json!({ "email": "Renamed@Example.com" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["email"], "renamed@example.com");

        // What cannot be mailed is named, in a batch by its item.
        let r = api
            .send(
                "POST",
                "/api/users",
                Some(ADMIN),
                Some(json!({ "email": "not an address" })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body["error"]["fields"]["email"].is_array(), "{}", r.body);
        let r = api
            .send(
                "POST",
                "/api/users",
                Some(ADMIN),
                Some(json!([{ "email": "Fine@example.com" }, { "email": "   " }])),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body["error"]["fields"]["[1].email"].is_array(),
            "{}",
            r.body
        );
        let r = api
            .send(
                "POST",
                "/api/users",
                Some(ADMIN),
                Some(json!([{ "email": "Fine@example.com" }, { "email": "FINE@example.com" }])),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    the_audit_log_tokens_and_sessions_are_not_edited_through_the_api,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let bob = api.user("bob", "user").await;
        let bob_id = api.user_id(&bob);
        let engine = api.state.shared_engine().unwrap();
        let accounts = engine.accounts().unwrap();
        let now = stamp(time::OffsetDateTime::now_utc());
        let later = stamp(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
        let mut tx = accounts.begin().await.unwrap();
        let event = tx
            .insert(
                "audit_event",
                &[
                    ("kind", json!("sign_in")),
                    ("outcome", json!("success")),
                    ("user_id", json!(bob_id)),
                ],
                &now,
            )
            .await
            .unwrap();
        let token = tx
            .insert(
                "auth_token",
                &[
                    ("purpose", json!("magic_link")),
                    ("token_hash", json!("a hash")),
                    ("email", json!("bob@example.com")),
                    ("expires_at", json!(later)),
                ],
                &now,
            )
            .await
            .unwrap();
        let session = tx
            .insert(
                "session",
                &[
                    ("user_id", json!(bob_id)),
                    ("refresh_token_hash", json!("another hash")),
                    ("expires_at", json!(later)),
                ],
                &now,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let event = format!("/api/audit_events/{}", event["id"].as_str().unwrap());
        let token = format!("/api/auth_tokens/{}", token["id"].as_str().unwrap());
        let session = format!("/api/sessions/{}", session["id"].as_str().unwrap());

        // Admins read the log; for anyone else it does not exist.
        let r = api
            .send("GET", "/api/audit_events", Some(ADMIN), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data().as_array().map(Vec::len), Some(1), "{}", r.body);
        let r = api.send("GET", &event, Some(ADMIN), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = api.send("GET", "/api/audit_events", Some(&bob), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data(), &json!([]));
        let r = api.send("GET", &event, Some(&bob), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);

        // Nobody, admins included, makes, edits or deletes these (an admin
        // could delete and edit all three).
        for (collection, record) in [
            ("/api/audit_events", &event),
            ("/api/auth_tokens", &token),
            ("/api/sessions", &session),
        ] {
            let r = api
                .send("POST", collection, Some(ADMIN), Some(json!({})))
                .await;
            assert_eq!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{collection}: {}",
                r.body
            );
            let r = api.send("DELETE", record, Some(ADMIN), None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{record}: {}", r.body);
            let r = api.send("GET", record, Some(ADMIN), None).await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{record} is still there: {}",
                r.body
            );
        }
        for record in [&event, &token] {
            let r = api
                .send("PATCH", record, Some(ADMIN), Some(json!({})))
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{record}: {}", r.body);
        }
        // A session is revoked by setting `revoked_at`, never un-revoked.
        let r = api
            .send(
                "PATCH",
                &session,
                Some(ADMIN),
                Some(json!({ "revoked_at": now })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = api
            .send(
                "PATCH",
                &session,
                Some(ADMIN),
                Some(json!({ "revoked_at": null })),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body["error"]["fields"]["revoked_at"].is_array(),
            "{}",
            r.body
        );
        let r = api
            .send(
                "PATCH",
                &session,
                Some(&bob),
                Some(json!({ "revoked_at": now })),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        api.cleanup().await;
    }
);

both!(
    revocations_are_not_backdated_undone_or_moved_between_accounts,
    |dialect| async move {
        let api = TestApi::avatars(dialect).await;
        let bob = api.user("bob", "user").await;
        let bob_id = api.user_id(&bob);
        let eve = api.user("eve", "user").await;
        let eve_id = api.user_id(&eve);
        let engine = api.state.shared_engine().unwrap();
        let accounts = engine.accounts().unwrap();
        let before = stamp(time::OffsetDateTime::now_utc());
        let later = stamp(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
        let mut tx = accounts.begin().await.unwrap();
        let mut insert = async |resource: &str, fields: &[(&str, Value)]| {
            let mut fields = fields.to_vec();
            fields.push(("user_id", json!(bob_id)));
            let row = tx.insert(resource, &fields, &before).await.unwrap();
            row["id"].as_str().unwrap().to_owned()
        };
        let session = insert(
            "session",
            &[
                ("refresh_token_hash", json!("a hash")),
                ("expires_at", json!(later)),
            ],
        )
        .await;
        let key = insert(
            "api_key",
            &[
                ("name", json!("ci")),
                ("prefix", json!("kumo_abc")),
                ("key_hash", json!("a key hash")),
            ],
        )
        .await;
        let identity = insert(
            "external_identity",
            &[
                ("issuer", json!("https://id.example.com")),
                ("subject", json!("bob-at-provider")),
            ],
        )
        .await;
        tx.commit().await.unwrap();
        let session = format!("/api/sessions/{session}");
        let key = format!("/api/api_keys/{key}");
        let identity = format!("/api/external_identities/{identity}");

        // None of them moves to another account, even by an admin: whoever
        // holds the token, key or identity would act as that account
        // (`user` is `writable = false` in their files).
        for record in [&session, &key, &identity] {
            let r = api
                .send(
                    "PATCH",
                    record,
                    Some(ADMIN),
                    Some(json!({ "user_id": eve_id })),
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{record}: {}",
                r.body
            );
            assert!(
                r.body["error"]["fields"]["user_id"].is_array(),
                "{}",
                r.body
            );
            let r = api.send("GET", record, Some(ADMIN), None).await;
            assert_eq!(r.data()["user_id"], json!(bob_id), "{record}: {}", r.body);
        }

        // A revocation takes the server's time, whatever time it is given:
        // one backdated past the reload window would never reach the other
        // nodes, and the session's access tokens would live on.
        for record in [&session, &key] {
            let r = api
                .send(
                    "PATCH",
                    record,
                    Some(ADMIN),
                    Some(json!({ "revoked_at": "2001-01-01T00:00:00.000Z" })),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{record}: {}", r.body);
            let revoked_at = r.data()["revoked_at"].as_str().unwrap().to_owned();
            let after = stamp(time::OffsetDateTime::now_utc());
            assert!(
                before <= revoked_at && revoked_at <= after,
                "{record}: {before} <= {revoked_at} <= {after}"
            );
            // And what is revoked stays so.
            let r = api
                .send(
                    "PATCH",
                    record,
                    Some(ADMIN),
                    Some(json!({ "revoked_at": null })),
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{record}: {}",
                r.body
            );
            assert!(
                r.body["error"]["fields"]["revoked_at"].is_array(),
                "{}",
                r.body
            );
            let r = api.send("GET", record, Some(ADMIN), None).await;
            assert_eq!(r.data()["revoked_at"], json!(revoked_at), "{record}");
        }
        // A key's name and expiry are still an admin's to change.
        let r = api
            .send(
                "PATCH",
                &key,
                Some(ADMIN),
                Some(json!({ "name": "deploy", "expires_at": later })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["name"], "deploy");
        api.cleanup().await;
    }
);
