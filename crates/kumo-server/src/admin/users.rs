//! The admin's tools on a user's page: their live sessions (each can be
//! signed out), lock and unlock, the role, confirming their address,
//! sending them a sign-in link, and their audit trail.
//!
//! These are the account operations `kumo user …` runs
//! ([`crate::auth::manage`]), audited with `detail.by` naming the admin.
//! Admins may use them on anyone but themselves where that would lock
//! them out (locking themselves, dropping their own role). Coordinators
//! may use them on players (role `user`) when `[admin]
//! coordinators_manage_users` allows (the default), never on admins or
//! coordinators, and never set a role.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use kumo_core::actor::Role;
use kumo_db::query::Record;
use kumo_db::query::accounts::{Order, Test};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Page, Staff};
use crate::auth::audit::Entry;
use crate::auth::clock::stamp;
use crate::auth::manage::{self, Account, By};
use crate::auth::routes::Client;

/// Audit events shown on a user's page, newest first.
const TRAIL: u32 = 50;

/// Whether `staff` may manage `target`'s account, and set its role.
fn powers(page: &Page, staff: &Staff, target: &Record) -> (bool, bool) {
    let target_role = target["role"]
        .as_str()
        .and_then(Role::parse)
        .unwrap_or(Role::User);
    match staff.actor.role() {
        Some(Role::Admin) => (true, true),
        Some(Role::Coordinator) => (
            page.auth.settings.coordinators_manage_users && target_role == Role::User,
            false,
        ),
        _ => (false, false),
    }
}

/// The user section of `/admin/r/users/{id}`: `None` when the user may not
/// be read.
pub(super) async fn tools(page: &Page, staff: &Staff, id: &str) -> Option<Value> {
    let accounts = page.auth.accounts();
    let user = accounts
        .read_one("user", &[("id", Test::Eq(json!(id)))])
        .await
        .ok()??;
    let (manage, set_roles) = powers(page, staff, &user);
    // Devices and the audit trail are for those who manage the account:
    // a coordinator does not see where an admin signs in from, nor the
    // records their changes copied into the log.
    if !manage {
        return Some(json!({
            "id": id,
            "role": user["role"],
            "locked": !user["locked_at"].is_null(),
            "confirmed": !user["email_confirmed_at"].is_null(),
            "manage": false,
        }));
    }
    let now = page.auth.clock.now();
    let sessions = accounts
        .read(
            "session",
            &[
                ("user_id", Test::Eq(json!(id))),
                ("revoked_at", Test::IsNull),
                ("expires_at", Test::Above(json!(stamp(now)))),
            ],
            Some(("inserted_at", Order::Descending)),
            Some(100),
        )
        .await
        .unwrap_or_default();
    let trail = accounts
        .read(
            "audit_event",
            &[("user_id", Test::Eq(json!(id)))],
            Some(("inserted_at", Order::Descending)),
            Some(TRAIL),
        )
        .await
        .unwrap_or_default();
    Some(json!({
        "id": id,
        "email": user["email"],
        "role": user["role"],
        "locked": !user["locked_at"].is_null(),
        "confirmed": !user["email_confirmed_at"].is_null(),
        "manage": manage,
        "set_roles": set_roles,
        "roles": ["user", "coordinator", "admin"],
        "can_send_link": manage && page.auth.settings.strategies.magic_link,
        "sessions": sessions.iter().map(|s| json!({
            "id": s["id"],
            "created_at": s["inserted_at"],
            "last_used_at": s["last_used_at"],
            "ip": s["ip"],
            "user_agent": s["user_agent"],
        })).collect::<Vec<_>>(),
        "trail": trail.iter().map(|e| json!({
            "at": e["inserted_at"],
            "kind": e["kind"],
            "outcome": e["outcome"],
            "ip": e["ip"],
            "detail": e["detail"].to_string(),
        })).collect::<Vec<_>>(),
    }))
}

/// What every tool starts with: the token checked, the signed-in staff
/// member, the target account, and whether they may do this to it.
async fn prepare(
    page: &Page,
    staff: Staff,
    id: &str,
    needs_roles: bool,
) -> Result<(Staff, Record), Response> {
    let user = page
        .auth
        .accounts()
        .read_one("user", &[("id", Test::Eq(json!(id)))])
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            page.message(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such user.",
                Some("/admin/r/users"),
            )
        })?;
    let (manage, set_roles) = powers(page, &staff, &user);
    if !manage || (needs_roles && !set_roles) {
        return Err(page.message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "You may not manage this account: coordinators manage players' accounts only (when `[admin] coordinators_manage_users` allows), and only admins set roles.",
            Some(&back(id)),
        ));
    }
    Ok((staff, user))
}

/// A user id in its one spelling (lower-case, hyphenated), so every
/// comparison and lookup agrees whatever way the URL wrote it; anything
/// that is no UUID is kept, to be found missing.
fn canonical(id: &str) -> String {
    Uuid::parse_str(id.trim()).map_or_else(|_| id.to_owned(), |u| u.to_string())
}

fn back(id: &str) -> String {
    format!("/admin/r/users/{id}")
}

fn by<'a>(staff: &Staff, client: &'a Client) -> By<'a> {
    By {
        who: staff.actor.id().map_or(Value::Null, |id| json!(id)),
        device: &client.device,
    }
}

fn failed(page: &Page, id: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "an admin account change failed");
    page.message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Not changed",
        "The change could not be made; nothing was changed. Try again in a moment.",
        Some(&back(id)),
    )
}

/// Whether `staff` is acting on their own account (the id compared as a
/// UUID, however it is spelt).
pub(super) fn themselves(staff: &Staff, id: &str) -> bool {
    match (staff.actor.id(), Uuid::parse_str(id.trim())) {
        (Some(own), Ok(id)) => own == id,
        _ => false,
    }
}

/// `POST /admin/users/{id}/lock`: locks and signs out every session.
pub(super) async fn lock(
    page: Page,
    staff: Staff,
    client: Client,
    Path(id): Path<String>,
) -> Response {
    let id = canonical(&id);
    let (staff, _) = match prepare(&page, staff, &id, false).await {
        Ok(ready) => ready,
        Err(response) => return response,
    };
    if themselves(&staff, &id) {
        return page.message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not locked",
            "You cannot lock your own account from the admin.",
            Some(&back(&id)),
        );
    }
    let now = page.auth.clock.now();
    match manage::lock(
        &page.auth.accounts(),
        Account::Id(&id),
        &by(&staff, &client),
        now,
    )
    .await
    {
        Ok(Some(locked)) => {
            page.auth.forget_sessions(&locked.sessions_revoked);
            Redirect::to(&back(&id)).into_response()
        }
        Ok(None) => page.message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such user.",
            None,
        ),
        Err(e) => failed(&page, &id, e),
    }
}

/// `POST /admin/users/{id}/unlock`.
pub(super) async fn unlock(
    page: Page,
    staff: Staff,
    client: Client,
    Path(id): Path<String>,
) -> Response {
    let id = canonical(&id);
    let (staff, _) = match prepare(&page, staff, &id, false).await {
        Ok(ready) => ready,
        Err(response) => return response,
    };
    let now = page.auth.clock.now();
    match manage::unlock(
        &page.auth.accounts(),
        Account::Id(&id),
        &by(&staff, &client),
        now,
    )
    .await
    {
        Ok(_) => Redirect::to(&back(&id)).into_response(),
        Err(e) => failed(&page, &id, e),
    }
}

/// `POST /admin/users/{id}/confirm`: marks the address confirmed.
pub(super) async fn confirm(
    page: Page,
    staff: Staff,
    client: Client,
    Path(id): Path<String>,
) -> Response {
    let id = canonical(&id);
    let (staff, _) = match prepare(&page, staff, &id, false).await {
        Ok(ready) => ready,
        Err(response) => return response,
    };
    let now = page.auth.clock.now();
    match manage::confirm_email(
        &page.auth.accounts(),
        Account::Id(&id),
        &by(&staff, &client),
        now,
    )
    .await
    {
        Ok(_) => Redirect::to(&back(&id)).into_response(),
        Err(e) => failed(&page, &id, e),
    }
}

/// `POST /admin/users/{id}/role {role}`: admins only; an admin cannot
/// drop their own role (someone must be left to undo it).
pub(super) async fn set_role(
    page: Page,
    staff: Staff,
    client: Client,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = super::form_fields(&body);
    let id = canonical(&id);
    let (staff, _) = match prepare(&page, staff, &id, true).await {
        Ok(ready) => ready,
        Err(response) => return response,
    };
    let Some(role) = form.get("role").and_then(|v| Role::parse(v)) else {
        return page.message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Role not set",
            "Choose user, coordinator or admin.",
            Some(&back(&id)),
        );
    };
    if themselves(&staff, &id) && role != Role::Admin {
        return page.message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Role not set",
            "You cannot take the admin role from yourself; another admin can.",
            Some(&back(&id)),
        );
    }
    let now = page.auth.clock.now();
    match manage::set_role(
        &page.auth.accounts(),
        Account::Id(&id),
        role,
        &by(&staff, &client),
        now,
    )
    .await
    {
        Ok(_) => Redirect::to(&back(&id)).into_response(),
        Err(e) => failed(&page, &id, e),
    }
}

/// `POST /admin/users/{id}/send_link`: mails the user a sign-in link, as a
/// request of their own would.
pub(super) async fn send_link(
    page: Page,
    staff: Staff,
    client: Client,
    Path(id): Path<String>,
) -> Response {
    let id = canonical(&id);
    let (staff, user) = match prepare(&page, staff, &id, false).await {
        Ok(ready) => ready,
        Err(response) => return response,
    };
    if !page.auth.settings.strategies.magic_link {
        return page.message(
            StatusCode::NOT_FOUND,
            "No link sent",
            "Sign-in links are not enabled on this server.",
            Some(&back(&id)),
        );
    }
    let email = user["email"].as_str().unwrap_or_default();
    // Counted as the player's own request is (per address, and against
    // this browser), so no one floods an inbox from here either.
    if let Err(refusal) = page
        .auth
        .limit(&client, Some(format!("email:{email}")))
        .await
    {
        let mut response = page.message(
            StatusCode::TOO_MANY_REQUESTS,
            "No link sent",
            &format!("Too many links asked for {email} just now; wait a minute and try again."),
            Some(&back(&id)),
        );
        if let Some(wait) = refusal.headers().get(axum::http::header::RETRY_AFTER) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, wait.clone());
        }
        return response;
    }
    // Audited, naming the admin, in the link's own transaction.
    let by = json!(staff.actor.id());
    match page
        .auth
        .request_magic_link(email, &client.device, Some(by))
        .await
    {
        Ok(requested) if requested.mail.is_some() => page.message(
            StatusCode::OK,
            "Link sent",
            &format!("A sign-in link is on its way to {email}."),
            Some(&back(&id)),
        ),
        Ok(_) => page.message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "No link sent",
            "This account may not sign in (it is locked): unlock it first.",
            Some(&back(&id)),
        ),
        Err(e) => failed(&page, &id, e),
    }
}

/// `POST /admin/users/{id}/sessions/{session}/revoke`: signs one device
/// out.
pub(super) async fn revoke_session(
    page: Page,
    staff: Staff,
    client: Client,
    Path((id, session)): Path<(String, String)>,
) -> Response {
    let id = canonical(&id);
    let (staff, _) = match prepare(&page, staff, &id, false).await {
        Ok(ready) => ready,
        Err(response) => return response,
    };
    let Ok(session) = Uuid::parse_str(&session) else {
        return page.message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such session.",
            Some(&back(&id)),
        );
    };
    let tests = [
        ("id", Test::Eq(json!(session))),
        ("user_id", Test::Eq(json!(id))),
    ];
    // Audited in the revocation's own transaction, naming the admin.
    let revoked = page
        .auth
        .revoke(&tests, |revoked| {
            (revoked > 0).then(|| Entry {
                kind: "session_revoked",
                strategy: None,
                success: true,
                user_id: Some(json!(id)),
                device: &client.device,
                detail: json!({ "session_id": session, "by": staff.actor.id() }),
            })
        })
        .await;
    match revoked {
        Ok(0) => page.message(
            StatusCode::NOT_FOUND,
            "Not found",
            "That session is not live.",
            Some(&back(&id)),
        ),
        Ok(_) => Redirect::to(&back(&id)).into_response(),
        Err(e) => failed(&page, &id, e),
    }
}
