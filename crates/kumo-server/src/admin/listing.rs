//! What a list page asks the engine for, from its URL: the API's query
//! language (`filter[…]`, `sort`, `page[after]`), the filter form's
//! fields (an empty one means "any"; a bare date bounds a datetime by
//! whole days), and the search box (`q`: the fields `read::searched_fields`
//! names, any letter case). The same request serves the page and its CSV export.

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use kumo_core::resource::AttrType;
use kumo_db::query::catalog::{Kind, Origin};
use kumo_db::query::params::Position;
use kumo_db::query::{Engine, Entry, ListRequest, QueryError, parse_list};
use serde_json::{Value, json};

use super::views::{no_such_resource, without};
use super::{Page, Staff};

/// How far a list page counts: past it the page says "more than 10,000",
/// so a page of a million-row table costs no full count.
pub(super) const COUNT_LIMIT: u64 = 10_000;

/// How long a list page waits for its total. Counting up to
/// [`COUNT_LIMIT`] rows takes a few milliseconds when an index serves the
/// filters, but a filter no index serves makes the database read the table
/// to count; the page then says the total was not counted rather than wait.
pub(super) const COUNT_TIME: std::time::Duration = std::time::Duration::from_millis(40);

/// Rows read per page of an export: the API's largest page.
const EXPORT_PAGE: u32 = 250;

/// A list's total as its page says it: capped, or not counted.
pub(super) fn total_text(total: Option<i64>) -> String {
    match total {
        None => "not counted (too slow without an index)".to_owned(),
        Some(n) if n as u64 > COUNT_LIMIT => {
            format!("more than {}", super::views::thousands(COUNT_LIMIT))
        }
        Some(n) => n.to_string(),
    }
}

/// The engine's request for `query` (an admin list URL's query string):
/// `size` records, with the total when `count`.
pub(super) fn request(
    engine: &Engine,
    entry: &Entry,
    query: &str,
    size: u32,
    count: bool,
) -> Result<ListRequest, QueryError> {
    let mut api = form_urlencoded::Serializer::new(String::new());
    // Newest first unless the page says otherwise: ids are UUIDv7, which
    // sort by the time they were made, and the primary key serves it.
    if !form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "sort" && !v.trim().is_empty()) {
        api.append_pair("sort", "-id");
    }
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        // The admin's own parameters: the search box, "view as", and the
        // page size and count it sets itself.
        let skip = value.trim().is_empty()
            || matches!(
                key.as_ref(),
                // An offset page reads every row before it: not on a
                // million-row table.
                "q" | "as" | "done" | "page[size]" | "page[count]" | "page[offset]"
            );
        if skip {
            continue;
        }
        let value = whole_days(entry, &key, value.trim());
        api.append_pair(&key, &value);
    }
    api.append_pair("page[size]", &size.to_string());
    if count {
        api.append_pair("page[count]", "true");
    }
    let mut req = parse_list(&engine.catalog, entry, &api.finish())?;
    req.search = search_of(query).filter(|q| !q.is_empty());
    req.count_limit = Some(COUNT_LIMIT);
    req.count_time_limit = Some(COUNT_TIME);
    Ok(req)
}

/// A bare date given to bound a datetime field: from the day's start
/// (`gte`, `gt`) or to its end (`lte`, `lt`), in UTC.
fn whole_days(entry: &Entry, key: &str, value: &str) -> String {
    let bare_date = value.len() == 10 && value.as_bytes().get(4) == Some(&b'-');
    let Some((field, op)) = key
        .strip_prefix("filter[")
        .and_then(|rest| rest.split_once("]["))
        .map(|(f, op)| (f, op.trim_end_matches(']')))
    else {
        return value.to_owned();
    };
    let datetime = entry.field(field).is_some_and(|f| f.kind == Kind::Datetime);
    match (datetime && bare_date, op) {
        // From the day on, or up to its end, inclusive.
        (true, "gte" | "lt") => format!("{value}T00:00:00.000Z"),
        (true, "lte" | "gt") => format!("{value}T23:59:59.999Z"),
        _ => value.to_owned(),
    }
}

/// The search box's text.
pub(super) fn search_of(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned())
}

/// What the search box says it looks in: the fields, and whether an index
/// serves the search (`search = true` on them; only PostgreSQL has a text
/// index that finds text inside a value).
pub(super) fn search_scope(entry: &Entry, postgres: bool) -> Value {
    let fields = kumo_db::query::read::searched_fields(entry);
    let indexed = postgres
        && fields
            .iter()
            .all(|f| entry.resource.attribute(&f.name).is_some_and(|a| a.search));
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    json!({ "fields": names.join(", "), "indexed": indexed, "any": !names.is_empty() })
}

/// The filter form: a control per public field, fitted to its type, with
/// the value the URL gives it, and whether an index serves it (one that
/// does not reads the whole table, which a big table feels).
pub(super) fn filter_controls(entry: &Entry, query: &str, postgres: bool) -> Vec<Value> {
    let given = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let mut controls = Vec::new();
    for f in entry
        .fields
        .iter()
        .filter(|f| f.is_public() && f.name != "id")
    {
        let name = &f.name;
        let searchable = postgres && entry.resource.attribute(name).is_some_and(|a| a.search);
        let indexed = entry.indexed(name);
        let mut control = match (&f.origin, f.kind) {
            (Origin::Attribute(AttrType::Enum { values }), _) => {
                let key = format!("filter[{name}]");
                json!({ "kind": "select", "field": name, "key": key, "value": given(&key), "options": values })
            }
            (_, Kind::Boolean) => {
                let key = format!("filter[{name}]");
                json!({ "kind": "select", "field": name, "key": key, "value": given(&key), "options": ["true", "false"] })
            }
            (_, Kind::Text) => {
                let key = format!("filter[{name}][contains]");
                json!({ "kind": "text", "field": name, "key": key, "value": given(&key), "contains": true })
            }
            (_, Kind::Uuid) => {
                let key = format!("filter[{name}]");
                json!({ "kind": "text", "field": name, "key": key, "value": given(&key), "contains": false })
            }
            (_, Kind::Integer | Kind::Float | Kind::Date | Kind::Datetime) => {
                let input = match f.kind {
                    Kind::Integer | Kind::Float => "number",
                    _ => "date",
                };
                // The browser refuses a fraction for an integer before
                // the server has to.
                let step = if f.kind == Kind::Integer { "1" } else { "any" };
                let (from, to) = (
                    format!("filter[{name}][gte]"),
                    format!("filter[{name}][lte]"),
                );
                json!({
                    "kind": "range",
                    "field": name,
                    "input": input,
                    "step": step,
                    "from_key": from,
                    "from": given(&from),
                    "to_key": to,
                    "to": given(&to),
                })
            }
            // JSON and arrays are searched through the API's own filters.
            _ => continue,
        };
        let contains = control["contains"] == json!(true);
        control["indexed"] = json!(if contains { searchable } else { indexed });
        controls.push(control);
    }
    controls
}

/// `GET /admin/r/{plural}/export`: every record the list's filters,
/// search and sort select, as CSV, read a page at a time as the signed-in
/// user.
pub(super) async fn export(
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
    let query = without(&query.unwrap_or_default(), &["page[after]", "page[before]"]);
    // "View as" is for reading on screen: nothing is exported as another.
    if form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "as") {
        return page.message(
            StatusCode::FORBIDDEN,
            "Not exported",
            "Exports are made as yourself, not while viewing as another user.",
            Some(&format!("/admin/r/{plural}")),
        );
    }
    let req = match request(engine, entry, &query, EXPORT_PAGE, false) {
        Ok(req) => req,
        Err(e) => {
            return page.message(
                StatusCode::BAD_REQUEST,
                "This list cannot be exported",
                &e.to_string(),
                Some(&format!("/admin/r/{plural}")),
            );
        }
    };
    let columns: Vec<String> = entry
        .fields
        .iter()
        .filter(|f| f.is_public())
        .map(|f| f.name.clone())
        .collect();
    // The first page is read before answering, so a database that cannot
    // be read gets a page saying so rather than a broken download.
    let mut req = req;
    let first = match engine.list(&staff.actor, entry, &req).await {
        Ok(listed) => listed,
        Err(e @ (QueryError::BadRequest { .. } | QueryError::Invalid { .. })) => {
            return page.message(
                StatusCode::BAD_REQUEST,
                "This list cannot be exported",
                &e.to_string(),
                Some(&format!("/admin/r/{plural}")),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "an admin export failed");
            return page.message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not exported",
                "The records could not be read; try again in a moment.",
                Some(&format!("/admin/r/{plural}")),
            );
        }
    };
    // A bulk read of what may be private: on the record, once the export could start.
    page.auth
        .audit(crate::auth::audit::Entry {
            kind: "admin_export",
            strategy: None,
            success: true,
            user_id: staff.actor.id().map(|id| serde_json::json!(id)),
            device: &page.device,
            detail: serde_json::json!({ "resource": entry.resource.name, "query": query }),
        })
        .await;
    let mut head = String::new();
    push_row(&mut head, columns.iter().map(String::as_str));
    push_records(&mut head, &columns, &first.data);
    let rest = first.next.map(|cursor| {
        req.position = Position::After(cursor);
        req
    });
    let pages = export_pages(
        page.state.clone(),
        staff.actor.clone(),
        entry,
        rest,
        columns,
    );
    let body = futures_util::stream::once(async { Ok(head.into_bytes()) }).chain(pages);
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("attachment; filename=\"{plural}.csv\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    page.with_cookie(response)
}

/// The CSV rows of every page from `req` on (none when `None`), read one
/// page at a time as the response is sent: a million-row export holds
/// one page in memory, not the file. A page that cannot be read ends the
/// body with an error, so the download fails instead of looking complete.
fn export_pages(
    state: crate::AppState,
    actor: kumo_core::actor::Actor,
    entry: &Entry,
    req: Option<ListRequest>,
    columns: Vec<String>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let resource = entry.resource.name.clone();
    futures_util::stream::unfold(req, move |next| {
        let (state, actor, resource, columns) = (
            state.clone(),
            actor.clone(),
            resource.clone(),
            columns.clone(),
        );
        async move {
            let mut req = next?;
            // The caller found both in this same state, which never changes.
            let engine = state.engine()?;
            let entry = engine.catalog.get(&resource)?;
            let listed = match engine.list(&actor, entry, &req).await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::error!(error = %e, "an admin export failed part way");
                    let failed = std::io::Error::other("the export could not be read to its end");
                    return Some((Err(failed), None));
                }
            };
            let mut csv = String::new();
            push_records(&mut csv, &columns, &listed.data);
            let next = listed.next.map(|cursor| {
                req.position = Position::After(cursor);
                req
            });
            Some((Ok(csv.into_bytes()), next))
        }
    })
}

/// A CSV line per record, its `columns` in order.
fn push_records(csv: &mut String, columns: &[String], records: &[kumo_db::query::Record]) {
    for record in records {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| cell(record.get(c).unwrap_or(&Value::Null)))
            .collect();
        push_row(csv, cells.iter().map(String::as_str));
    }
}

/// A value as a CSV cell: numbers and other values as JSON; text as it
/// is, except that text a spreadsheet would run as a formula (starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading
/// `'`, so opening an export never runs what a player typed.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => match s.chars().next() {
            Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
            _ => s.clone(),
        },
        other => other.to_string(),
    }
}

/// One CSV line (RFC 4180: a field with a comma, quote or line break is
/// quoted, quotes doubled).
fn push_row<'a>(csv: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            csv.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            csv.push('"');
            csv.push_str(&cell.replace('"', "\"\""));
            csv.push('"');
        } else {
            csv.push_str(cell);
        }
    }
    csv.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let cells: Vec<String> = [
            json!("plain"),
            json!("a,b"),
            json!("say \"hi\""),
            json!("=HYPERLINK(\"x\")"),
            json!(-1),
            json!("line\nbreak"),
            Value::Null,
        ]
        .iter()
        .map(cell)
        .collect();
        let mut csv = String::new();
        push_row(&mut csv, cells.iter().map(String::as_str));
        assert_eq!(
            csv,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"'=HYPERLINK(\"\"x\"\")\",-1,\"line\nbreak\",\r\n"
        );
    }
}
