//! The admin's writes: create and edit forms generated from the attribute
//! types, delete behind a confirmation page, named actions as buttons.
//! Each runs through [`crate::api::write_as_api`] as the signed-in user:
//! the API's account rules, validations and policies, nothing bypassed.
//! A refused write shows the form again with each error next to its field;
//! a change made lands in the audit log as `admin_change` (who, what, and
//! the record before and after), written in the change's own transaction.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use kumo_core::resource::{Action, ActionKind, AttrType};
use kumo_db::query::catalog::{Kind, Origin};
use kumo_db::query::{Entry, Field, FieldErrors, QueryError, View, parse_list};
use serde_json::{Map, Value, json};

use super::{Form, Page, Staff, csrf, views};
use crate::api::{WriteCall, WriteFailure, write_as_api};
use crate::auth::audit;
use crate::auth::routes::Client;

/// How many records a `belongs_to` field offers to pick from as you type.
const CHOICES: u32 = 100;

/// What a form was for, to show it again after a refusal.
enum Purpose<'a> {
    Create,
    Update(&'a str),
}

/// A form's fields: each writable field of `entry`, or the fields an
/// action accepts, with the values to show and the errors to show beside
/// them.
async fn form_fields(
    page: &Page,
    staff: &Staff,
    entry: &Entry,
    only: Option<&[String]>,
    values: &Map<String, Value>,
    errors: &FieldErrors,
) -> Vec<Value> {
    let mut fields = Vec::new();
    for f in entry
        .fields
        .iter()
        .filter(|f| f.writable && f.origin != Origin::Managed)
    {
        if let Some(only) = only
            && !accepted(only, f)
        {
            continue;
        }
        let value = values.get(&f.name).cloned().unwrap_or(Value::Null);
        let mut field = json!({
            "name": f.name,
            "required": f.required && !f.has_default,
            "value": shown_in_input(f, &value),
            "errors": errors.get(&f.name).cloned().unwrap_or_default(),
            "options": [],
            "choices": [],
            "input": input_kind(f),
            "hint": hint(f),
        });
        match &f.origin {
            Origin::Attribute(AttrType::Enum { values }) => field["options"] = json!(values),
            Origin::ForeignKey { target, .. } => {
                field["choices"] = json!(choices(page, staff, target, None).await);
                field["target"] = json!(
                    page.state
                        .engine()
                        .and_then(|e| e.catalog.get(target))
                        .map(|t| t.resource.plural.clone())
                );
            }
            _ => {}
        }
        fields.push(field);
    }
    fields
}

fn accepted(only: &[String], f: &Field) -> bool {
    match &f.origin {
        Origin::ForeignKey { relationship, .. } => {
            only.contains(relationship) || only.contains(&f.name)
        }
        _ => only.contains(&f.name),
    }
}

/// The HTML control a field is edited with.
fn input_kind(f: &Field) -> &'static str {
    match (&f.origin, f.kind) {
        (Origin::Attribute(AttrType::Enum { .. }), _) => "select",
        (Origin::Attribute(AttrType::Text), _) => "textarea",
        (_, Kind::Boolean) => "checkbox",
        (_, Kind::Integer | Kind::Float) => "number",
        (_, Kind::Date) => "date",
        (_, Kind::Datetime) => "datetime-local",
        (_, Kind::Json | Kind::Array(_)) => "json",
        (Origin::ForeignKey { .. }, _) => "belongs_to",
        _ => "text",
    }
}

/// What the person typing needs to know about a field's format.
fn hint(f: &Field) -> &'static str {
    if f.sensitive {
        return "never shown; leave empty to keep it as it is";
    }
    match (&f.origin, f.kind) {
        (_, Kind::Datetime) => "UTC",
        (_, Kind::Json) => "JSON",
        (_, Kind::Array(_)) => "a JSON array",
        (Origin::ForeignKey { .. }, _) => "the record's id; type to search",
        _ => "",
    }
}

/// A stored value as its input shows it.
fn shown_in_input(f: &Field, value: &Value) -> String {
    match (f.kind, value) {
        (_, Value::Null) => String::new(),
        // `2026-01-02T03:04:05.123Z` → `2026-01-02T03:04:05.123`, the form
        // a `datetime-local` input takes (in UTC, as its hint says), to
        // the millisecond, so saving a form leaves a datetime as it was.
        (Kind::Datetime, Value::String(s)) => s.chars().take(23).collect(),
        (Kind::Json | Kind::Array(_), v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, Value::String(s)) => s.clone(),
        (_, v) => v.to_string(),
    }
}

/// Up to [`CHOICES`] records of `target` the user may read, as
/// `{id, label}`, for a `belongs_to` field's list; with `search`, those
/// with it in a text field (or that id).
async fn choices(page: &Page, staff: &Staff, target: &str, search: Option<&str>) -> Vec<Value> {
    let Some(engine) = page.state.engine() else {
        return Vec::new();
    };
    let Some(entry) = engine.catalog.get(target) else {
        return Vec::new();
    };
    let query = match search.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) if uuid::Uuid::parse_str(id).is_ok() => {
            format!("page[size]={CHOICES}&filter[id]={id}")
        }
        _ => format!("page[size]={CHOICES}"),
    };
    let Ok(mut req) = parse_list(&engine.catalog, entry, &query) else {
        return Vec::new();
    };
    if !query.contains("filter[id]") {
        req.search = search
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
    }
    match engine.list(&staff.actor, entry, &req).await {
        Ok(listed) => listed
            .data
            .iter()
            .map(|r| json!({ "id": r.get("id"), "label": views::title_of(r, entry) }))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, target, "admin choices failed");
            Vec::new()
        }
    }
}

/// The checkbox a destroy action's form must have ticked (`yes`).
const CONFIRM: &str = "_confirm";

/// `GET /admin/r/{plural}/choices?field=<name>&<name>=<text>`: the
/// `<option>`s of a `belongs_to` field's list, for what is typed so far
/// (htmx swaps them in as the person types). htmx sends the input under
/// its own name, which `field` gives; without it, the first choices.
pub(super) async fn choices_page(
    page: Page,
    staff: Staff,
    Path(plural): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(target) = page
        .state
        .engine()
        .and_then(|e| e.catalog.by_plural(&plural))
        .map(|t| t.resource.name.clone())
    else {
        return views::no_such_resource(&page);
    };
    let query = query.unwrap_or_default();
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let typed = param("field")
        .filter(|field| field != "field")
        .and_then(|field| param(&field));
    let options: String = choices(&page, &staff, &target, typed.as_deref())
        .await
        .iter()
        .map(|c| {
            format!(
                "<option value=\"{}\">{}</option>",
                super::escape(c["id"].as_str().unwrap_or_default()),
                super::escape(c["label"].as_str().unwrap_or_default())
            )
        })
        .collect();
    page.with_cookie(
        (
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            options,
        )
            .into_response(),
    )
}

/// The JSON body a form makes: each field converted by its kind; an empty
/// optional field is `null`. A value that does not convert is passed on as
/// typed, so the engine's own check names what is wrong with it; JSON that
/// does not parse is refused here, by field.
fn body_of(
    entry: &Entry,
    only: Option<&[String]>,
    form: &Form,
) -> Result<Map<String, Value>, FieldErrors> {
    let mut body = Map::new();
    let mut errors = FieldErrors::new();
    for f in entry
        .fields
        .iter()
        .filter(|f| f.writable && f.origin != Origin::Managed)
    {
        if let Some(only) = only
            && !accepted(only, f)
        {
            continue;
        }
        let Some(raw) = form.get(f.name.as_str()) else {
            continue;
        };
        let value = match (f.kind, raw.trim()) {
            // Never shown, so an empty input means "as it is", not "clear".
            (_, "") if f.sensitive => continue,
            (Kind::Boolean, v) => json!(v == "true"),
            (_, "") if !f.required => Value::Null,
            (Kind::Integer, v) => v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n)),
            // `inf` and `NaN` parse, but JSON has no such number: sent on
            // as text, the engine refuses them beside the field.
            (Kind::Float, v) => match v.parse::<f64>() {
                Ok(n) if n.is_finite() => json!(n),
                _ => json!(v),
            },
            (Kind::Datetime, v) => json!(as_utc(v)),
            (Kind::Json | Kind::Array(_), v) => match serde_json::from_str::<Value>(v) {
                Ok(parsed) => parsed,
                Err(e) => {
                    errors.insert(f.name.clone(), vec![format!("is not valid JSON: {e}")]);
                    continue;
                }
            },
            // Text keeps its spaces: they may be part of it.
            (_, _) => json!(raw),
        };
        body.insert(f.name.clone(), value);
    }
    match errors.is_empty() {
        true => Ok(body),
        false => Err(errors),
    }
}

/// A `datetime-local` value (`2026-01-02T03:04` or with seconds) read as
/// UTC; anything else is passed on for the engine to refuse.
fn as_utc(v: &str) -> String {
    match v.len() {
        16 => format!("{v}:00Z"),
        19 | 23 => format!("{v}Z"),
        _ => v.to_owned(),
    }
}

/// Looks up the resource, or the answer to give instead.
fn found<'a>(page: &'a Page, plural: &str) -> Result<&'a Entry, Response> {
    page.state
        .engine()
        .and_then(|engine| engine.catalog.by_plural(plural))
        .ok_or_else(|| views::no_such_resource(page))
}

async fn render_form(
    page: &Page,
    staff: &Staff,
    entry: &Entry,
    purpose: Purpose<'_>,
    status: StatusCode,
    values: &Map<String, Value>,
    errors: &FieldErrors,
) -> Response {
    let plural = &entry.resource.plural;
    let fields = form_fields(page, staff, entry, None, values, errors).await;
    let general: Vec<&String> = errors
        .iter()
        .filter(|(k, _)| !fields.iter().any(|f| f["name"] == **k))
        .flat_map(|(_, v)| v)
        .collect();
    let (title, action, submit) = match purpose {
        Purpose::Create => (
            format!("New {}", entry.resource.name.replace('_', " ")),
            format!("/admin/r/{plural}"),
            "Create",
        ),
        Purpose::Update(id) => (
            format!("Edit {} {id}", entry.resource.name.replace('_', " ")),
            format!("/admin/r/{plural}/{id}"),
            "Save",
        ),
    };
    page.render(
        status,
        "form.html",
        plural,
        &title,
        json!({
            "heading": title,
            "action": action,
            "submit": submit,
            "fields": fields,
            "general": general,
            "back": format!("/admin/r/{plural}"),
            // When the record was last saved as this form shows it (see
            // `update`): from the record, or carried through a refusal.
            "seen": match purpose {
                Purpose::Update(_) => values.get(SEEN).or_else(|| values.get("updated_at")),
                Purpose::Create => None,
            },
        }),
    )
}

/// The edit form's hidden field holding the record's `updated_at` as the
/// form was filled in.
const SEEN: &str = "_seen";

/// `GET /admin/r/{plural}/new`.
pub(super) async fn new_form(page: Page, staff: Staff, Path(plural): Path<String>) -> Response {
    let entry = match found(&page, &plural) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    render_form(
        &page,
        &staff,
        entry,
        Purpose::Create,
        StatusCode::OK,
        &defaults(entry),
        &FieldErrors::new(),
    )
    .await
}

/// The declared defaults, as a new form starts.
fn defaults(entry: &Entry) -> Map<String, Value> {
    entry
        .resource
        .attributes
        .iter()
        .filter_map(|a| a.default.clone().map(|d| (a.name.clone(), d)))
        .collect()
}

/// `POST /admin/r/{plural}`: creates, or shows the form again with why not.
pub(super) async fn create(
    page: Page,
    staff: Staff,
    client: Client,
    Path(plural): Path<String>,
    body: Bytes,
) -> Response {
    let form = super::form_fields(&body);
    let entry = match found(&page, &plural) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let values = match body_of(entry, None, &form) {
        Ok(values) => values,
        Err(errors) => {
            let typed = typed_back(&form);
            return render_form(
                &page,
                &staff,
                entry,
                Purpose::Create,
                StatusCode::UNPROCESSABLE_ENTITY,
                &typed,
                &errors,
            )
            .await;
        }
    };
    let call = WriteCall::Create {
        body: Value::Object(values.clone()),
    };
    match audited_write(&page, &staff, &client, entry, "create", call).await {
        Ok(created) => {
            let id = created
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Redirect::to(&format!("/admin/r/{plural}/{id}?done=created")).into_response()
        }
        Err(failure) => refused(&page, &staff, entry, Purpose::Create, &values, failure).await,
    }
}

/// What the person typed, to show again after a refusal.
fn typed_back(form: &Form) -> Map<String, Value> {
    form.iter()
        .filter(|(k, _)| k.as_str() != csrf::FIELD)
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect()
}

/// A refused write: the form again, errors beside their fields (422, or
/// 409 for a taken value); a policy's refusal or a missing record as a
/// page.
async fn refused(
    page: &Page,
    staff: &Staff,
    entry: &Entry,
    purpose: Purpose<'_>,
    values: &Map<String, Value>,
    failure: WriteFailure,
) -> Response {
    let back = format!("/admin/r/{}", entry.resource.plural);
    match failure {
        WriteFailure::Refused(QueryError::Invalid { fields, message })
        | WriteFailure::Refused(QueryError::BadRequest { fields, message }) => {
            let fields = if fields.is_empty() {
                FieldErrors::from([("body".to_owned(), vec![message])])
            } else {
                fields
            };
            render_form(
                page,
                staff,
                entry,
                purpose,
                StatusCode::UNPROCESSABLE_ENTITY,
                values,
                &fields,
            )
            .await
        }
        WriteFailure::Refused(QueryError::Conflict { fields, message }) => {
            let fields = if fields.is_empty() {
                FieldErrors::from([("body".to_owned(), vec![message])])
            } else {
                fields
            };
            render_form(
                page,
                staff,
                entry,
                purpose,
                StatusCode::CONFLICT,
                values,
                &fields,
            )
            .await
        }
        WriteFailure::Refused(QueryError::Forbidden(message)) => page.message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!("The resource's policies do not let you do this: {message}"),
            Some(&back),
        ),
        WriteFailure::Refused(QueryError::NotFound) => page.message(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such record, or you may not see it.",
            Some(&back),
        ),
        WriteFailure::Refused(other) => {
            tracing::error!(error = %other, "an admin write failed");
            page.message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not saved",
                "The change could not be made; nothing was changed. Try again in a moment.",
                Some(&back),
            )
        }
        WriteFailure::Crashed => page.message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not saved",
            "The server failed during this change; the server's log says why.",
            Some(&back),
        ),
    }
}

/// The record as the user may read it, for a form.
async fn current(
    page: &Page,
    staff: &Staff,
    entry: &Entry,
    id: &str,
) -> Result<Map<String, Value>, QueryError> {
    let engine = page.state.engine().ok_or(QueryError::NotFound)?;
    engine.get(&staff.actor, entry, id, &View::default()).await
}

/// `GET /admin/r/{plural}/{id}/edit`.
pub(super) async fn edit_form(
    page: Page,
    staff: Staff,
    Path((plural, id)): Path<(String, String)>,
) -> Response {
    let entry = match found(&page, &plural) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    match current(&page, &staff, entry, &id).await {
        Ok(record) => {
            render_form(
                &page,
                &staff,
                entry,
                Purpose::Update(&id),
                StatusCode::OK,
                &record,
                &FieldErrors::new(),
            )
            .await
        }
        Err(e) => {
            refused(
                &page,
                &staff,
                entry,
                Purpose::Update(&id),
                &Map::new(),
                WriteFailure::Refused(e),
            )
            .await
        }
    }
}

/// `POST /admin/r/{plural}/{id}`: saves, or shows the form again with why
/// not.
pub(super) async fn update(
    page: Page,
    staff: Staff,
    client: Client,
    Path((plural, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form = super::form_fields(&body);
    let entry = match found(&page, &plural) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let values = match body_of(entry, None, &form) {
        Ok(values) => values,
        Err(errors) => {
            return render_form(
                &page,
                &staff,
                entry,
                Purpose::Update(&id),
                StatusCode::UNPROCESSABLE_ENTITY,
                &typed_back(&form),
                &errors,
            )
            .await;
        }
    };
    // An admin does not take the admin role from themselves (someone must
    // be left to undo it), through this form either.
    let own_role_dropped = entry.resource.system
        && entry.resource.name == "user"
        && super::users::themselves(&staff, &id)
        && values.get("role").is_some_and(|r| r != "admin");
    if own_role_dropped {
        let errors = FieldErrors::from([(
            "role".to_owned(),
            vec!["cannot be taken from yourself; another admin can".to_owned()],
        )]);
        return render_form(
            &page,
            &staff,
            entry,
            Purpose::Update(&id),
            StatusCode::UNPROCESSABLE_ENTITY,
            &values,
            &errors,
        )
        .await;
    }
    // Saved by someone else since this form was filled in: their change is
    // not overwritten unseen. The form comes back with what was typed and
    // the newer time, so saving again replaces their change knowingly.
    // (A save in the instant between this read and the write still wins.)
    if let Some(seen) = form.get(SEEN).filter(|s| !s.is_empty())
        && let Ok(stored) = current(&page, &staff, entry, &id).await
        && let Some(now) = stored.get("updated_at").and_then(Value::as_str)
        && now != seen
    {
        let mut shown = typed_back(&form);
        shown.insert(SEEN.to_owned(), json!(now));
        let errors = FieldErrors::from([(
            "record".to_owned(),
            vec![format!(
                "Someone saved this record at {now}, after you opened this form; nothing was saved. \
                 What you typed is below: save again to replace their change, or go back to see it."
            )],
        )]);
        return render_form(
            &page,
            &staff,
            entry,
            Purpose::Update(&id),
            StatusCode::CONFLICT,
            &shown,
            &errors,
        )
        .await;
    }
    let call = WriteCall::Update {
        id: id.clone(),
        body: Value::Object(values.clone()),
    };
    match audited_write(&page, &staff, &client, entry, "update", call).await {
        Ok(_) => Redirect::to(&format!("/admin/r/{plural}/{id}?done=saved")).into_response(),
        Err(failure) => refused(&page, &staff, entry, Purpose::Update(&id), &values, failure).await,
    }
}

/// `GET /admin/r/{plural}/{id}/delete`: asks first.
pub(super) async fn delete_form(
    page: Page,
    staff: Staff,
    Path((plural, id)): Path<(String, String)>,
) -> Response {
    let entry = match found(&page, &plural) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    match current(&page, &staff, entry, &id).await {
        Ok(record) => {
            let title = views::title_of(&record, entry);
            page.render(
                StatusCode::OK,
                "confirm_delete.html",
                &plural,
                &format!("Delete {title}?"),
                json!({
                    "heading": format!("Delete {title}?"),
                    "action": format!("/admin/r/{plural}/{id}/delete"),
                    "back": format!("/admin/r/{plural}/{id}"),
                    "cascades": cascades(entry),
                }),
            )
        }
        Err(e) => {
            refused(
                &page,
                &staff,
                entry,
                Purpose::Update(&id),
                &Map::new(),
                WriteFailure::Refused(e),
            )
            .await
        }
    }
}

/// What deleting a record of `entry` also deletes or changes, in words.
fn cascades(entry: &Entry) -> Vec<String> {
    entry
        .resource
        .relationships
        .iter()
        .filter_map(|r| match &r.kind {
            kumo_core::resource::RelationshipKind::HasMany { target, .. } => Some(format!(
                "Its {} follow their relationship's `on_delete` rule.",
                r.name.replace('_', " ")
            ))
            .filter(|_| !target.is_empty()),
            _ => None,
        })
        .collect()
}

/// `POST /admin/r/{plural}/{id}/delete`.
pub(super) async fn destroy(
    page: Page,
    staff: Staff,
    client: Client,
    Path((plural, id)): Path<(String, String)>,
) -> Response {
    let entry = match found(&page, &plural) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    // No one deletes their own account here (with it everything it owns
    // by cascade): another admin can, so an admin always remains.
    if entry.resource.system
        && entry.resource.name == "user"
        && super::users::themselves(&staff, &id)
    {
        return page.message(
            StatusCode::CONFLICT,
            "Not deleted",
            "You cannot delete your own account; another admin can.",
            Some(&format!("/admin/r/{plural}/{id}")),
        );
    }
    let call = WriteCall::Destroy { id: id.clone() };
    match audited_write(&page, &staff, &client, entry, "destroy", call).await {
        Ok(_) => Redirect::to(&format!("/admin/r/{plural}?done=deleted")).into_response(),
        Err(WriteFailure::Refused(QueryError::Conflict { message, .. })) => page.message(
            StatusCode::CONFLICT,
            "Not deleted",
            &message,
            Some(&format!("/admin/r/{plural}/{id}")),
        ),
        Err(failure) => {
            refused(
                &page,
                &staff,
                entry,
                Purpose::Update(&id),
                &Map::new(),
                failure,
            )
            .await
        }
    }
}

/// The named actions a record page offers as buttons: update and destroy
/// actions, each with the fields it accepts, filled in with `record`'s
/// values (a field sent empty would clear it, so each starts as it is).
pub(super) async fn record_actions(
    page: &Page,
    staff: &Staff,
    entry: &Entry,
    id: &str,
    record: &Map<String, Value>,
) -> Vec<Value> {
    let mut actions = Vec::new();
    for action in entry
        .resource
        .actions
        .iter()
        .filter(|a| a.kind != ActionKind::Create)
        .filter(|a| may_run(page, staff, entry, a))
    {
        let fields = form_fields(
            page,
            staff,
            entry,
            Some(&action.accept),
            record,
            &FieldErrors::new(),
        )
        .await;
        actions.push(json!({
            "name": action.name,
            "label": action.name.replace('_', " "),
            "description": action.description,
            "action": format!("/admin/r/{}/{id}/actions/{}", entry.resource.plural, action.name),
            "fields": fields,
            "destroys": action.kind == ActionKind::Destroy,
        }));
    }
    actions
}

/// `POST /admin/r/{plural}/{id}/actions/{name}`: runs a named action.
pub(super) async fn run_action(
    page: Page,
    staff: Staff,
    client: Client,
    Path((plural, id, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let form = super::form_fields(&body);
    let entry = match found(&page, &plural) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let Some(action) = entry
        .resource
        .actions
        .iter()
        .find(|a: &&Action| a.name == name && a.kind != ActionKind::Create)
    else {
        return views::no_such_resource(&page);
    };
    let back = format!("/admin/r/{plural}/{id}");
    // A destroy action deletes the record: its form asks first, as the
    // Delete button's page does, and so does the server.
    if action.kind == ActionKind::Destroy && form.get(CONFIRM).map(String::as_str) != Some("yes") {
        let errors = FieldErrors::from([(
            "confirmation".to_owned(),
            vec![format!(
                "tick \"Yes, delete this {}\" to run an action that deletes it",
                entry.resource.name.replace('_', " ")
            )],
        )]);
        return action_refused(&page, &back, &errors);
    }
    let values = match body_of(entry, Some(&action.accept), &form) {
        Ok(values) => values,
        Err(errors) => return action_refused(&page, &back, &errors),
    };
    let call = WriteCall::Action {
        name: name.clone(),
        id: Some(id.clone()),
        body: Value::Object(values),
    };
    match audited_write(
        &page,
        &staff,
        &client,
        entry,
        &format!("action:{name}"),
        call,
    )
    .await
    {
        Ok(_) => {
            let destroys = action.kind == ActionKind::Destroy;
            match destroys {
                true => Redirect::to(&format!("/admin/r/{plural}?done=deleted")).into_response(),
                false => Redirect::to(&format!("{back}?done=action")).into_response(),
            }
        }
        Err(WriteFailure::Refused(
            QueryError::Invalid { fields, message }
            | QueryError::BadRequest { fields, message }
            | QueryError::Conflict { fields, message },
        )) => {
            let fields = if fields.is_empty() {
                FieldErrors::from([("body".to_owned(), vec![message])])
            } else {
                fields
            };
            action_refused(&page, &back, &fields)
        }
        Err(failure) => {
            refused(
                &page,
                &staff,
                entry,
                Purpose::Update(&id),
                &Map::new(),
                failure,
            )
            .await
        }
    }
}

/// Whether `action`'s policy can ever let the staff member run it: a
/// page offers no button that could only be refused.
fn may_run(page: &Page, staff: &Staff, entry: &Entry, action: &Action) -> bool {
    page.state
        .engine()
        .is_some_and(|engine| engine.may_ever(&staff.actor, entry, action.policy.as_ref()))
}

/// The `create` actions a list page offers, each with the fields it
/// accepts.
pub(super) async fn create_actions(page: &Page, staff: &Staff, entry: &Entry) -> Vec<Value> {
    let mut actions = Vec::new();
    for action in entry
        .resource
        .actions
        .iter()
        .filter(|a| a.kind == ActionKind::Create)
        .filter(|a| may_run(page, staff, entry, a))
    {
        let fields = form_fields(
            page,
            staff,
            entry,
            Some(&action.accept),
            &Map::new(),
            &FieldErrors::new(),
        )
        .await;
        actions.push(json!({
            "name": action.name,
            "label": action.name.replace('_', " "),
            "description": action.description,
            "action": format!("/admin/r/{}/actions/{}", entry.resource.plural, action.name),
            "fields": fields,
        }));
    }
    actions
}

/// `POST /admin/r/{plural}/actions/{name}`: runs a `create` action and
/// shows what it made.
pub(super) async fn run_create_action(
    page: Page,
    staff: Staff,
    client: Client,
    Path((plural, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form = super::form_fields(&body);
    let entry = match found(&page, &plural) {
        Ok(entry) => entry,
        Err(response) => return response,
    };
    let Some(action) = entry
        .resource
        .actions
        .iter()
        .find(|a| a.name == name && a.kind == ActionKind::Create)
    else {
        return views::no_such_resource(&page);
    };
    let back = format!("/admin/r/{plural}");
    let values = match body_of(entry, Some(&action.accept), &form) {
        Ok(values) => values,
        Err(errors) => return action_refused(&page, &back, &errors),
    };
    let call = WriteCall::Action {
        name: name.clone(),
        id: None,
        body: Value::Object(values),
    };
    match audited_write(
        &page,
        &staff,
        &client,
        entry,
        &format!("action:{name}"),
        call,
    )
    .await
    {
        Ok(created) => {
            let id = created
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Redirect::to(&format!("/admin/r/{plural}/{id}?done=created")).into_response()
        }
        Err(WriteFailure::Refused(
            QueryError::Invalid { fields, message }
            | QueryError::BadRequest { fields, message }
            | QueryError::Conflict { fields, message },
        )) => {
            let fields = if fields.is_empty() {
                FieldErrors::from([("body".to_owned(), vec![message])])
            } else {
                fields
            };
            action_refused(&page, &back, &fields)
        }
        Err(failure) => refused(&page, &staff, entry, Purpose::Create, &Map::new(), failure).await,
    }
}

/// An action's refusal, as a page naming each field's problem.
fn action_refused(page: &Page, back: &str, errors: &FieldErrors) -> Response {
    let message = errors
        .iter()
        .map(|(field, why)| format!("{field}: {}", why.join("; ")))
        .collect::<Vec<_>>()
        .join(". ");
    page.message(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Action refused",
        &message,
        Some(back),
    )
}

/// Runs `call` as the staff member through [`write_as_api`], with its
/// `admin_change` audit row written by the engine in the write's own
/// transaction, just before it commits (`kumo_db::query::AuditNote`):
/// who made it (`user_id`, and `detail.by`; a change to a user record is
/// filed under that user, so it shows in their trail), what (`resource`,
/// `record_id`, `change`) and the record before (as read under the
/// write's row lock) and after, public fields only. The change and its row
/// commit together or not at all; a refused write leaves no row.
async fn audited_write(
    page: &Page,
    staff: &Staff,
    client: &Client,
    entry: &Entry,
    change: &str,
    call: WriteCall,
) -> Result<Value, WriteFailure> {
    let by = staff.actor.id().map(|id| id.to_string());
    let detail = Map::from_iter([
        ("resource".to_owned(), json!(entry.resource.name)),
        ("change".to_owned(), json!(change)),
        ("by".to_owned(), json!(by)),
    ]);
    let note = audit::note(
        "admin_change",
        by,
        &client.device,
        page.auth.clock.now(),
        detail,
    );
    let actor = staff.actor.clone();
    write_as_api(&page.state, entry, actor, View::default(), call, Some(note)).await
}
