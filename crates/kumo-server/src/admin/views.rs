//! The admin's read pages: the dashboard, a resource's list and a record.
//! Every read goes through the resource engine as the signed-in user, so
//! the resource files' read policies decide what is shown, as for the API.

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use kumo_core::actor::{Actor, Role};
use kumo_core::resource::RelationshipKind;
use kumo_db::query::accounts::Test;
use kumo_db::query::catalog::Origin;
use kumo_db::query::{Entry, QueryError, View, parse_list};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Page, Staff};
use crate::AppState;
use crate::auth::clock::stamp;

/// How many days of sign-ups the dashboard shows.
const SIGNUP_DAYS: i64 = 14;
/// Records per list page.
const PAGE_SIZE: u32 = 50;
/// Columns a list shows, so a page stays readable on a laptop.
const LIST_COLUMNS: usize = 8;

/// The resources in the admin's navigation, in schema order: those whose
/// read policy can ever let `actor` read a record.
pub(super) fn navigation(state: &AppState, actor: &Actor) -> Vec<Value> {
    let Some(engine) = state.engine() else {
        return Vec::new();
    };
    engine
        .catalog
        .entries()
        .filter(|entry| engine.may_ever(actor, entry, entry.resource.policies.read.as_ref()))
        .map(|entry| json!({ "plural": entry.resource.plural, "label": label(entry) }))
        .collect()
}

/// A resource's name as a heading: `avatar_tags` → `Avatar tags`.
fn label(entry: &Entry) -> String {
    let words: Vec<String> = entry
        .resource
        .plural
        .split('_')
        .map(|word| match word {
            // Initialisms read as such: `api_keys` → `API keys`.
            "api" | "id" | "ids" | "url" | "urls" | "ip" | "ips" => word.to_uppercase(),
            _ => word.to_owned(),
        })
        .collect();
    let words = words.join(" ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// The columns a list shows: its public fields but `id` (the first column
/// links to the record), at most [`LIST_COLUMNS`]; the record page shows
/// the rest.
fn list_columns(entry: &Entry) -> Vec<&kumo_db::query::Field> {
    entry
        .fields
        .iter()
        .filter(|f| f.is_public() && f.name != "id")
        .take(LIST_COLUMNS)
        .collect()
}

/// `GET /admin`: counts per resource (those the user may read), sign-ups
/// per day, live sessions, and a warning when migrations are pending.
pub(super) async fn dashboard(page: Page, staff: Staff, RawQuery(query): RawQuery) -> Response {
    let viewer = match viewing_as(&page, &staff, query.as_deref().unwrap_or_default()).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let Some(engine) = page.state.engine() else {
        return page.message(
            StatusCode::SERVICE_UNAVAILABLE,
            "No resources",
            "This server serves no resources.",
            None,
        );
    };
    let mut counts = Vec::new();
    for entry in engine.catalog.entries() {
        let count = match parse_list(&engine.catalog, entry, "page[size]=1&page[count]=true") {
            Ok(mut req) => {
                // A big table's count stops where the list pages' does.
                req.count_limit = Some(super::listing::COUNT_LIMIT);
                req.count_time_limit = Some(super::listing::COUNT_TIME);
                match engine.list(viewer.actor(&staff), entry, &req).await {
                    Ok(listed) => json!(super::listing::total_text(listed.total)),
                    Err(e) => {
                        tracing::warn!(error = %e, resource = entry.resource.name, "admin dashboard count failed");
                        json!("?")
                    }
                }
            }
            Err(_) => json!("?"),
        };
        counts.push(json!({
            "link": format!("/admin/r/{}{}", entry.resource.plural, viewer.suffix()),
            "label": label(entry),
            "count": count,
        }));
    }
    let mut values = json!({
        "counts": counts,
        "accounts": false,
        "pending": pending_migrations(&page.state).await,
        "days": SIGNUP_DAYS,
        "viewing_as": viewer.banner(),
    });
    if let (Some(accounts), Viewer::Staff) = (engine.accounts(), &viewer) {
        let now = page.auth.clock.now();
        let since = (now - time::Duration::days(SIGNUP_DAYS - 1))
            .date()
            .midnight()
            .assume_utc();
        let live = accounts
            .count(
                "session",
                &[
                    ("revoked_at", Test::IsNull),
                    ("expires_at", Test::Above(json!(stamp(now)))),
                ],
            )
            .await;
        let signups = accounts.made_per_day("user", &stamp(since)).await;
        match (live, signups) {
            (Ok(live), Ok(signups)) => {
                let days = every_day(since, now, &signups);
                let max = days
                    .iter()
                    .map(|d| d["count"].as_i64().unwrap_or(0))
                    .max()
                    .unwrap_or(0);
                values["accounts"] = json!(true);
                values["active_sessions"] = json!(live);
                values["signups"] = json!(days);
                values["signups_max"] = json!(max.max(1));
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "admin dashboard account figures failed");
            }
        }
    }
    page.render(
        StatusCode::OK,
        "dashboard.html",
        "dashboard",
        "Dashboard",
        values,
    )
}

/// One row per day from `since` to `now`, days without sign-ups as 0.
fn every_day(since: OffsetDateTime, now: OffsetDateTime, made: &[(String, i64)]) -> Vec<Value> {
    let mut day = since.date();
    let mut rows = Vec::new();
    while day <= now.date() {
        let key = kumo_core::datetime::canonical_date(day);
        let count = made.iter().find(|(d, _)| *d == key).map_or(0, |(_, n)| *n);
        rows.push(json!({ "day": key, "count": count }));
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    rows
}

/// What the dashboard says when the database's migrations are not the
/// ones this build expects; `None` when they are.
async fn pending_migrations(state: &AppState) -> Option<String> {
    match kumo_db::runner::status(state.db(), state.migrations()).await {
        Ok(status) if status.is_current() => None,
        Ok(status) if !status.pending.is_empty() => Some(format!(
            "{} migration(s) not applied: run `kumo migrate`.",
            status.pending.len()
        )),
        Ok(_) => {
            Some("The database's migrations differ from the project's migrations/ folder.".into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "admin dashboard could not read the migration status");
            Some("The migration status could not be read.".into())
        }
    }
}

/// `GET /admin/r/{plural}`: a page of records, in the API's query
/// language (`sort=-inserted_at`, `filter[name][contains]=x`,
/// `page[after]=…`), which links keep.
pub(super) async fn list(
    page: Page,
    staff: Staff,
    Path(plural): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(engine) = page.state.engine() else {
        return no_such_resource(&page);
    };
    let Some(entry) = engine.catalog.by_plural(&plural) else {
        return no_such_resource(&page);
    };
    let raw_query = query.unwrap_or_default();
    let done = done_notice(&raw_query);
    // Links and the engine's request do without the one-time notice.
    let query = without(&raw_query, &["done"]);
    let viewer = match viewing_as(&page, &staff, &query).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let columns = list_columns(entry);
    // Each `belongs_to` shown is read with the page (one query per
    // relationship), so its cell names the record, not its id.
    let shown_relationships: Vec<String> = columns
        .iter()
        .filter_map(|f| match &f.origin {
            Origin::ForeignKey { relationship, .. } => Some(relationship.clone()),
            _ => None,
        })
        .collect();
    let listed = match super::listing::request(engine, entry, &query, PAGE_SIZE, true) {
        Ok(mut req) => {
            req.view.include = shown_relationships;
            engine.list(viewer.actor(&staff), entry, &req).await
        }
        Err(e) => Err(e),
    };
    let listed = match listed {
        Ok(listed) => listed,
        Err(e) => return query_failed(&page, e, &format!("/admin/r/{plural}")),
    };
    let sorted_by = sort_of(&query);
    let small = listed
        .total
        .is_some_and(|n| n as u64 <= super::listing::COUNT_LIMIT);
    let column_values: Vec<Value> = columns
        .iter()
        .map(|f| {
            let (sorted, next) = match sorted_by.as_deref() {
                Some(s) if s == f.name => (Some("ascending"), format!("-{}", f.name)),
                Some(s) if s.strip_prefix('-') == Some(f.name.as_str()) => {
                    (Some("descending"), f.name.clone())
                }
                _ => (None, f.name.clone()),
            };
            // Sorting by a column no index starts with sorts every row the
            // list selects, for each page: offered where an index serves
            // it, or where the list is small enough (counted, at most
            // 10,000 rows) that sorting it costs little. A URL may still
            // ask for any sort; the API's own rules apply.
            let link = (sorted.is_some() || small || entry.indexed(&f.name)).then(|| {
                format!(
                    "/admin/r/{plural}?{}",
                    with(
                        &without(&query, &["sort", "page[after]", "page[before]"]),
                        "sort",
                        &next
                    )
                )
            });
            json!({ "name": f.name, "sorted": sorted, "sort_link": link })
        })
        .collect();
    let rows: Vec<Value> = listed
        .data
        .iter()
        .map(|record| {
            let mut cells: Vec<String> = columns
                .iter()
                .map(|f| {
                    clipped(&related_title(engine, record, f).unwrap_or_else(|| {
                        shown(&record.get(&f.name).cloned().unwrap_or(Value::Null))
                    }))
                })
                .collect();
            let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
            // The first cell is the record's link: never without text.
            if let Some(first) = cells.first_mut().filter(|c| c.trim().is_empty()) {
                *first = format!("{}…", id.chars().take(8).collect::<String>());
            }
            json!({ "cells": cells, "link": format!("/admin/r/{plural}/{id}{}", viewer.suffix()) })
        })
        .collect();
    let page_link = |param: &str, cursor: &Option<String>| {
        cursor.as_ref().map(|c| {
            format!(
                "/admin/r/{plural}?{}",
                with(&without(&query, &["page[after]", "page[before]"]), param, c)
            )
        })
    };
    let label = label(entry);
    let postgres = page.state.db().dialect() == kumo_db::sql::Dialect::Postgres;
    let create_actions = match viewer {
        Viewer::Staff => super::forms::create_actions(&page, &staff, entry).await,
        Viewer::As { .. } => Vec::new(),
    };
    page.render(
        StatusCode::OK,
        "list.html",
        &plural,
        &label,
        json!({
            "label": label,
            "filters": super::listing::filter_controls(entry, &query, postgres),
            "search_scope": super::listing::search_scope(entry, postgres),
            "filtering": query.contains("filter%5B") || query.contains("filter["),
            "done": done,
            "viewing_as": viewer.banner(),
            "search": super::listing::search_of(&query),
            "export": format!("/admin/r/{plural}/export?{}", without(&query, &["page[after]", "page[before]"])),
            "clear": format!("/admin/r/{plural}"),
            "new": (entry.creatable()
                && engine.may_ever(&staff.actor, entry, entry.resource.policies.create.as_ref()))
                .then(|| format!("/admin/r/{plural}/new")),
            "create_actions": create_actions,
            "singular": entry.resource.name.replace('_', " "),
            "columns": column_values,
            "rows": rows,
            "total": super::listing::total_text(listed.total),
            "next": page_link("page[after]", &listed.next),
            "prev": page_link("page[before]", &listed.prev),
        }),
    )
}

/// `GET /admin/r/{plural}/{id}`: every public field, `belongs_to` values
/// linked to their record, and each `has_many` linked to its list.
pub(super) async fn record(
    page: Page,
    staff: Staff,
    Path((plural, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let viewer = match viewing_as(&page, &staff, query.as_deref().unwrap_or_default()).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let Some(engine) = page.state.engine() else {
        return no_such_resource(&page);
    };
    let Some(entry) = engine.catalog.by_plural(&plural) else {
        return no_such_resource(&page);
    };
    // Each `belongs_to` included, so its value shows as the record it
    // names (when the viewer may read that record).
    let view = View {
        include: entry
            .resource
            .relationships
            .iter()
            .filter(|r| matches!(r.kind, RelationshipKind::BelongsTo { .. }))
            .map(|r| r.name.clone())
            .collect(),
        fields: None,
    };
    let record = match engine.get(viewer.actor(&staff), entry, &id, &view).await {
        Ok(record) => record,
        Err(e) => return query_failed(&page, e, &format!("/admin/r/{plural}")),
    };
    let fields: Vec<Value> = entry
        .fields
        .iter()
        .filter(|f| f.is_public())
        .map(|f| {
            let value = record.get(&f.name).cloned().unwrap_or(Value::Null);
            let (link, shown_as) = match (&f.origin, value.as_str()) {
                (Origin::ForeignKey { target, .. }, Some(target_id)) => {
                    let target_entry = engine.catalog.get(target);
                    let label =
                        related_title(engine, &record, f).unwrap_or_else(|| target_id.to_owned());
                    let link = target_entry.map(|t| {
                        format!(
                            "/admin/r/{}/{target_id}{}",
                            t.resource.plural,
                            viewer.suffix()
                        )
                    });
                    (link, label)
                }
                _ => (None, shown(&value)),
            };
            json!({ "name": f.name, "value": shown_as, "link": link })
        })
        .collect();
    let related: Vec<Value> = entry
        .resource
        .relationships
        .iter()
        .filter_map(|r| match &r.kind {
            RelationshipKind::HasMany { target, via } => {
                let target = engine.catalog.get(target)?;
                Some(json!({
                    "name": r.name,
                    "label": label(target),
                    "link": format!("/admin/r/{}?filter[{via}_id]={id}{}", target.resource.plural, viewer.and_suffix()),
                }))
            }
            // The join resource's rows that point here, each naming the
            // record on the other side.
            RelationshipKind::ManyToMany { through, .. } => {
                let join = engine.catalog.get(through)?;
                let back = join.resource.relationships.iter().find(|j| {
                    matches!(&j.kind, RelationshipKind::BelongsTo { target, .. } if *target == entry.resource.name)
                })?;
                Some(json!({
                    "name": r.name,
                    "label": label(join),
                    "link": format!("/admin/r/{}?filter[{}_id]={id}{}", join.resource.plural, back.name, viewer.and_suffix()),
                }))
            }
            RelationshipKind::BelongsTo { .. } => None,
        })
        .collect();
    let title = title_of(&record, entry);
    // Viewing as someone is for reading: no forms, no tools.
    let read_only = viewer.banner().is_some();
    let actions = match read_only {
        true => Vec::new(),
        false => super::forms::record_actions(&page, &staff, entry, &id, &record).await,
    };
    let user_tools = match entry.resource.system && entry.resource.name == "user" && !read_only {
        true => super::users::tools(&page, &staff, &id).await,
        false => None,
    };
    page.render(
        StatusCode::OK,
        "record.html",
        &plural,
        &title,
        json!({
            "plural": plural,
            "list_link": format!("/admin/r/{plural}{}", viewer.suffix()),
            "label": label(entry),
            "singular": entry.resource.name,
            "fields": fields,
            "related": related,
            "actions": actions,
            "user_tools": user_tools,
            "done": done_notice(query.as_deref().unwrap_or_default()),
            "viewing_as": viewer.banner(),
            "view_as": (!read_only
                && entry.resource.system
                && entry.resource.name == "user"
                && may_view_as(&staff))
                .then(|| format!("/admin?as={id}")),
            "edit": engine
                .may_ever(&staff.actor, entry, entry.resource.policies.update.as_ref())
                .then(|| format!("/admin/r/{plural}/{id}/edit")),
            "delete": engine
                .may_ever(&staff.actor, entry, entry.resource.policies.destroy.as_ref())
                .then(|| format!("/admin/r/{plural}/{id}/delete")),
        }),
    )
}

pub(super) fn no_such_resource(page: &Page) -> Response {
    page.message(
        StatusCode::NOT_FOUND,
        "No such resource",
        "There is no resource of that name.",
        Some("/admin"),
    )
}

/// A query the engine refused, as a page: a bad parameter says what is
/// wrong with it; a missing record is a 404.
fn query_failed(page: &Page, error: QueryError, back: &str) -> Response {
    match error {
        QueryError::NotFound => page.message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such record, or you may not see it.",
            Some(back),
        ),
        QueryError::BadRequest { .. } | QueryError::Invalid { .. } => page.message(
            StatusCode::BAD_REQUEST,
            "This list cannot be shown",
            &error.to_string(),
            Some(back),
        ),
        other => {
            tracing::error!(error = %other, "an admin read failed");
            page.message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong",
                "The records could not be read; try again in a moment.",
                Some(back),
            )
        }
    }
}

/// What the record a `belongs_to` field `f` points at is called, when
/// `record` was read with it included and the viewer may read it.
fn related_title(
    engine: &kumo_db::query::Engine,
    record: &serde_json::Map<String, Value>,
    f: &kumo_db::query::Field,
) -> Option<String> {
    let Origin::ForeignKey {
        target,
        relationship,
    } = &f.origin
    else {
        return None;
    };
    match (record.get(relationship), engine.catalog.get(target)) {
        (Some(Value::Object(related)), Some(t)) => Some(title_of(related, t)),
        _ => None,
    }
}

/// What a record is called on a page: its `name`, `title`, `email` or
/// `username` when it has one, else its resource and id.
pub(super) fn title_of(record: &serde_json::Map<String, Value>, entry: &Entry) -> String {
    ["name", "title", "email", "username"]
        .iter()
        .find_map(|field| record.get(*field).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map_or_else(
            || {
                let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
                format!("{} {id}", entry.resource.name.replace('_', " "))
            },
            str::to_owned,
        )
}

/// What a page says of the change that led to it (`?done=…` on the
/// redirect after a save): `None` for anything else.
fn done_notice(query: &str) -> Option<&'static str> {
    let done = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "done")?
        .1;
    Some(match done.as_ref() {
        "created" => "Created.",
        "saved" => "Saved.",
        "deleted" => "Deleted.",
        "action" => "Done.",
        _ => return None,
    })
}

/// `10000` → `10,000`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A value as a table cell shows it.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The most characters of a value a list's cell shows.
const CELL_CHARS: usize = 60;

/// A value cut to [`CELL_CHARS`] for a list's cell (the record page shows
/// it whole): a page of 50 rows stays small whatever the rows hold.
fn clipped(text: &str) -> String {
    match text.char_indices().nth(CELL_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The `sort` parameter of a query string.
fn sort_of(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "sort")
        .map(|(_, v)| v.into_owned())
}

/// `query` without the parameters named in `drop`.
pub(super) fn without(query: &str, drop: &[&str]) -> String {
    let kept =
        form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| !drop.contains(&k.as_ref()));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

/// `query` with `name=value` added.
fn with(query: &str, name: &str, value: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(query.to_owned());
    out.append_pair(name, value);
    out.finish()
}

/// Whose read policies a page is read through: the signed-in staff
/// member's own, or, with `?as=<user id>`, another user's ("view as"),
/// read-only.
pub(super) enum Viewer {
    Staff,
    As {
        actor: Actor,
        id: String,
        email: String,
    },
}

impl Viewer {
    pub(super) fn actor<'a>(&'a self, staff: &'a super::Staff) -> &'a Actor {
        match self {
            Viewer::Staff => &staff.actor,
            Viewer::As { actor, .. } => actor,
        }
    }

    /// What links add to stay in the same view.
    fn suffix(&self) -> String {
        match self {
            Viewer::Staff => String::new(),
            Viewer::As { id, .. } => format!("?as={id}"),
        }
    }

    /// [`Viewer::suffix`] for a link that has a query string already.
    fn and_suffix(&self) -> String {
        self.suffix().replacen('?', "&", 1)
    }

    /// The page's "viewing as" notice, when it is one.
    fn banner(&self) -> Option<Value> {
        match self {
            Viewer::Staff => None,
            Viewer::As { id, email, .. } => Some(json!({ "id": id, "email": email })),
        }
    }
}

/// Whether `staff` may view the admin as another user: admins only. A
/// coordinator viewing as a player would read through the player's
/// policies, which may show what no coordinator may read (a player's
/// private messages, say).
fn may_view_as(staff: &super::Staff) -> bool {
    staff.actor.role() == Some(Role::Admin)
}

/// The viewer `query`'s `as` asks for: only an admin may view as another
/// user (see [`may_view_as`]).
pub(super) async fn viewing_as(
    page: &Page,
    staff: &super::Staff,
    query: &str,
) -> Result<Viewer, Response> {
    let Some(id) = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "as")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
    else {
        return Ok(Viewer::Staff);
    };
    let refused = |message: &str| {
        page.message(
            StatusCode::FORBIDDEN,
            "Cannot view as this user",
            message,
            Some("/admin"),
        )
    };
    let Ok(uuid) = uuid::Uuid::parse_str(&id) else {
        return Err(refused("There is no such user."));
    };
    let user = page
        .auth
        .accounts()
        .read_one("user", &[("id", Test::Eq(json!(uuid)))])
        .await
        .ok()
        .flatten();
    let Some(mut user) = user else {
        return Err(refused("There is no such user."));
    };
    let role = user["role"]
        .as_str()
        .and_then(Role::parse)
        .unwrap_or(Role::User);
    if !may_view_as(staff) {
        return Err(refused("Viewing the admin as another user is for admins."));
    }
    // Audited, once a minute per admin and user rather than per page.
    let by = staff
        .actor
        .id()
        .map(|id| id.to_string())
        .unwrap_or_default();
    if page.auth.first_report(&format!("view_as:{by}:{uuid}")) {
        page.auth
            .audit(crate::auth::audit::Entry {
                kind: "admin_view_as",
                strategy: None,
                success: true,
                user_id: staff.actor.id().map(|id| json!(id)),
                device: &page.device,
                detail: json!({ "as": uuid, "role": role.as_str() }),
            })
            .await;
    }
    // Policies never see a password hash, as for a signed-in request.
    user.remove("password_hash");
    let email = user["email"].as_str().unwrap_or_default().to_owned();
    Ok(Viewer::As {
        actor: Actor::user(user),
        id: uuid.to_string(),
        email,
    })
}
