//! `[auth] audit_retention_days`: audit events older than it are deleted
//! by the auth layer's periodic pruning (with expired links), on both
//! databases, on a manual clock; `0` keeps them for ever.

use std::sync::Arc;

use kumo_server::auth::{Auth, Settings};
use serde_json::json;

use crate::auth_support::{self, every_strategy};
use crate::both;
use crate::harness::TestApi;

const SECRET: &[u8] = b"the audit retention test's secret";

fn keeping_events_for(retention: Option<time::Duration>) -> Settings {
    Settings {
        audit_retention: retention,
        coordinators_manage_users: true,
        ..every_strategy(false)
    }
}

async fn serving(dialect: kumo_db::sql::Dialect, settings: Settings) -> (TestApi, Arc<Auth>) {
    auth_support::serving(dialect, settings, SECRET).await
}

/// A magic-link request for an address with no account: what anyone can
/// send, and each one is an audit event.
async fn request_link(api: &TestApi) {
    let reply = api
        .send(
            "POST",
            "/auth/magic_link/request",
            None,
            Some(json!({ "email": "ghost@example.com" })),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
}

async fn count(auth: &Auth, resource: &str) -> usize {
    auth.accounts()
        .read(resource, &[], None, None)
        .await
        .unwrap()
        .len()
}

both!(
    audit_events_past_the_retention_are_pruned_with_expired_links,
    |dialect| async move {
        let (api, auth) =
            serving(dialect, keeping_events_for(Some(time::Duration::days(30)))).await;
        request_link(&api).await;
        assert_eq!(count(&auth, "audit_event").await, 1);
        auth.clock.advance(time::Duration::days(29));
        request_link(&api).await;
        assert_eq!(count(&auth, "audit_event").await, 2);

        // The first is 29 days old: within the retention, kept.
        auth.prune().await;
        assert_eq!(count(&auth, "audit_event").await, 2);
        // The first link expired 29 days ago: gone in the same pass.
        assert_eq!(count(&auth, "auth_token").await, 1);

        auth.clock.advance(time::Duration::days(2));
        auth.prune().await;
        let left = auth
            .accounts()
            .read("audit_event", &[], None, None)
            .await
            .unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["kind"], "magic_link_request");
        assert_eq!(auth.prune_audit_events().await.unwrap(), 0);
        assert_eq!(count(&auth, "auth_token").await, 0);
        api.cleanup().await;
    }
);

both!(
    audit_events_are_kept_for_ever_with_a_retention_of_zero,
    |dialect| async move {
        let (api, auth) = serving(dialect, keeping_events_for(None)).await;
        request_link(&api).await;
        auth.clock.advance(time::Duration::days(100 * 365));
        auth.prune().await;
        assert_eq!(count(&auth, "audit_event").await, 1);
        assert_eq!(auth.prune_audit_events().await.unwrap(), 0);
        api.cleanup().await;
    }
);
