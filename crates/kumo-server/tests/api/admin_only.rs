//! No policy means admins only: for a resource's read, create, update and
//! destroy, and for a named action, which never borrows the resource's
//! policy for its type (an action may `set` what no request body can).

use axum::http::StatusCode;
use kumo_core::load::load_schema;
use kumo_db::query::Catalog;
use kumo_db::sql::Dialect;
use serde_json::json;

use crate::both;
use crate::harness::{ADMIN, TestApi};

/// Owners may read, create, update and destroy their badges; `verified` is
/// not writable, and the actions have no policy of their own.
const BADGE: &str = r#"
[resource]
name = "badge"

[attributes]
label    = { type = "string", required = true }
verified = { type = "boolean", default = false, writable = false }

[relationships]
owner = { belongs_to = "user", required = true, on_delete = "cascade" }

[policies]
read    = "actor.id == record.owner_id || actor.role == 'admin'"
create  = "actor.id == record.owner_id"
update  = "actor.id == record.owner_id"
destroy = "actor.id == record.owner_id"

[actions.verify]
type = "update"
set = { verified = true }

[actions.grant]
type = "create"
accept = ["label", "owner"]

[actions.retire]
type = "destroy"
"#;

/// A resource with no policies at all.
const NOTE: &str = r#"
[resource]
name = "note"

[attributes]
body = { type = "text", required = true }
"#;

both!(
    named_action_without_policy_is_admin_only_not_the_resource_policy,
    |dialect: Dialect| async move {
        let api = TestApi::new(dialect, &[("badge", BADGE)]).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let created = api
            .send(
                "POST",
                "/api/badges",
                Some(&alice),
                Some(json!({"label": "Mine", "owner_id": alice_id})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.id();
        let badge = format!("/api/badges/{id}");

        // Alice passes the update policy, so she may change the label...
        let patched = api
            .send(
                "PATCH",
                &badge,
                Some(&alice),
                Some(json!({"label": "Ours"})),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
        // ...but not run `verify`, which sets a field she cannot write.
        let r = api
            .send("POST", &format!("{badge}/verify"), Some(&alice), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "forbidden");
        let got = api.send("GET", &badge, Some(&alice), None).await;
        assert_eq!(
            got.data()["verified"],
            false,
            "the refused action changed nothing"
        );
        let r = api
            .send("POST", &format!("{badge}/verify"), Some(ADMIN), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["verified"], true);

        // A create action: Alice passes the create policy for her own badge.
        let body = json!({"label": "Granted", "owner_id": alice_id});
        let r = api
            .send(
                "POST",
                "/api/badges/grant",
                Some(&alice),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = api
            .send("POST", "/api/badges/grant", None, Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        let r = api
            .send("POST", "/api/badges/grant", Some(ADMIN), Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

        // A destroy action: Alice passes the destroy policy.
        let r = api
            .send("POST", &format!("{badge}/retire"), Some(&alice), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = api
            .send("POST", &format!("{badge}/retire"), Some(ADMIN), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = api.send("GET", &badge, Some(ADMIN), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "retired");
        api.cleanup().await;
    }
);

both!(
    write_without_policy_is_admin_only,
    |dialect: Dialect| async move {
        // `comment` has read and create policies, no update or destroy.
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let avatar = api
            .send(
                "POST",
                "/api/avatars",
                Some(&alice),
                Some(json!({"name": "Robot", "uploader_id": alice_id, "is_public": true})),
            )
            .await;
        assert_eq!(avatar.status, StatusCode::CREATED, "{}", avatar.body);
        let comment = api
            .send(
                "POST",
                "/api/comments",
                Some(&alice),
                Some(json!({"body": "Hi", "avatar_id": avatar.id(), "author_id": alice_id})),
            )
            .await;
        assert_eq!(comment.status, StatusCode::CREATED, "{}", comment.body);
        let comment = format!("/api/comments/{}", comment.id());
        // Everyone can read the comment (its avatar is public), so what
        // refuses them is the missing policy, not the read policy.
        assert_eq!(
            api.send("GET", &comment, None, None).await.status,
            StatusCode::OK
        );

        let change = json!({"body": "Edited"});
        let r = api
            .send("PATCH", &comment, Some(&alice), Some(change.clone()))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "the author: {}", r.body);
        assert_eq!(r.body["error"]["code"], "forbidden");
        let r = api
            .send("PATCH", &comment, None, Some(change.clone()))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "anonymous: {}", r.body);
        assert_eq!(r.body["error"]["code"], "unauthenticated");
        let r = api.send("DELETE", &comment, Some(&alice), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "the author: {}", r.body);
        let r = api.send("DELETE", &comment, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "anonymous: {}", r.body);
        let r = api.send("GET", &comment, Some(&alice), None).await;
        assert_eq!(r.data()["body"], "Hi", "the refused writes changed nothing");

        let r = api.send("PATCH", &comment, Some(ADMIN), Some(change)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.data()["body"], "Edited");
        let r = api.send("DELETE", &comment, Some(ADMIN), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        // A resource with no policies at all: creating is for admins.
        let api2 = TestApi::new(dialect, &[("note", NOTE)]).await;
        let bob = api2.user("bob", "user").await;
        let note = json!({"body": "x"});
        let r = api2
            .send("POST", "/api/notes", Some(&bob), Some(note.clone()))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        let r = api2
            .send("POST", "/api/notes", None, Some(note.clone()))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        let r = api2
            .send("POST", "/api/notes", Some(ADMIN), Some(note))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        api2.cleanup().await;
        api.cleanup().await;
    }
);

both!(
    read_without_policy_shows_nothing_to_non_admins,
    |dialect: Dialect| async move {
        let api = TestApi::new(dialect, &[("note", NOTE)]).await;
        let alice = api.user("alice", "user").await;
        let coordinator = api.user("cora", "coordinator").await;
        let created = api
            .send(
                "POST",
                "/api/notes",
                Some(ADMIN),
                Some(json!({"body": "x"})),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let note = format!("/api/notes/{}", created.id());

        for (who, token) in [
            ("a user", Some(alice.as_str())),
            ("a coordinator", Some(coordinator.as_str())),
            ("anonymous", None),
        ] {
            let r = api
                .send("GET", "/api/notes?page[count]=true", token, None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{who}: {}", r.body);
            assert_eq!(r.data(), &json!([]), "{who}");
            assert_eq!(r.body["page"]["total"], 0, "{who}");
            let r = api.send("GET", &note, token, None).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{who}: {}", r.body);
        }
        let r = api.send("GET", "/api/notes", Some(ADMIN), None).await;
        assert_eq!(r.data().as_array().map(Vec::len), Some(1), "{}", r.body);
        let r = api.send("GET", &note, Some(ADMIN), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        api.cleanup().await;
    }
);

/// The document says what the server does: an action without a policy is
/// for admins, whatever the resource's policy for its type.
#[test]
fn openapi_says_an_action_without_policy_is_admin_only() {
    let sources = [("badge", BADGE)]
        .iter()
        .map(|(name, text)| (format!("resources/{name}.toml").into(), (*text).to_owned()))
        .collect();
    let catalog = Catalog::new(load_schema(sources, true).unwrap_or_else(|d| panic!("{d}")));
    let doc = kumo_server::openapi::document(Some(&catalog));
    let paths = &doc["paths"];
    let description = |path: &str, method: &str| {
        paths[path][method]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("no {method} {path}"))
            .to_owned()
    };
    assert!(
        description("/api/badges/{id}", "patch")
            .ends_with("Allowed when `actor.id == record.owner_id`."),
        "the update policy is quoted"
    );
    for (path, method) in [
        ("/api/badges/{id}/verify", "post"),
        ("/api/badges/grant", "post"),
        ("/api/badges/{id}/retire", "post"),
    ] {
        let text = description(path, method);
        assert!(text.ends_with("Only admins may do this."), "{path}: {text}");
        assert!(!text.contains("record.owner_id"), "{path}: {text}");
    }
}
