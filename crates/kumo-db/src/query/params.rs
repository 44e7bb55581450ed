//! Reading a list request's query string: `filter[…]`, `sort`, `page[…]`,
//! `include`, `fields`. Everything is checked against the resource here, so
//! execution only sees known fields with values of the right kind; anything
//! unknown is a 400 that names it.

use kumo_core::load::normalize_value;
use kumo_core::resource::{AttrType, RelationshipKind};
use serde_json::Value;

use super::catalog::{Catalog, Entry, Kind, Origin};
use super::error::QueryError;

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 250;
/// The largest `page[offset]`: `i64::MAX`, the most either database takes.
pub const MAX_OFFSET: u64 = i64::MAX as u64;
/// Most `belongs_to` hops in a filter path (`filter[avatar.uploader.username]`
/// takes two). Each hop is a subquery with the related resource's read
/// policy in it; a path through a resource that belongs to itself could
/// otherwise nest them until the database refuses the statement. The
/// OpenAPI document lists every path up to this depth.
pub const MAX_FILTER_DEPTH: usize = 2;
/// Most `filter[…]` parameters one list takes.
pub const MAX_FILTERS: usize = 100;
/// Most relationship paths the filters of one list go through, each prefix
/// counted (`filter[avatar.uploader.username]` goes through `avatar` and
/// `avatar.uploader`). The filters through one path share one subquery,
/// with the related resource's read policy in it; on PostgreSQL each is a
/// join the planner orders, and planning time grows steeply with their
/// number, so it is capped like the filters themselves.
pub const MAX_FILTER_PATHS: usize = 8;
/// Most values the `in` filters of one list take together. Each is a bound
/// parameter, and a statement takes at most 32,766 of them on SQLite and
/// 65,535 on PostgreSQL.
pub const MAX_IN_VALUES: usize = 5000;

#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    pub filters: Vec<Filter>,
    /// Never empty: the default is `id`, and `id` always ends the list so
    /// the order is total.
    pub sort: Vec<SortKey>,
    pub size: usize,
    pub position: Position,
    pub count: bool,
    pub view: View,
    /// Text to find, in any letter case, in the fields
    /// `read::searched_fields` names (those marked `search = true`, else
    /// every public string field): the admin's search box. Not a
    /// parameter of the API's query language.
    pub search: Option<String>,
    /// With `count`, stop counting past this many (the total is then one
    /// more than the limit): the admin's lists on big tables. `None`:
    /// exact, as `page[count]` is.
    pub count_limit: Option<u64>,
    /// With `count`, give up counting after this long and answer without a
    /// total (`ListPage::total` is `None`): the admin's lists, whose page
    /// should not wait on counting a filter no index serves. The rows are
    /// read all the same. `None`: count however long it takes (within
    /// `[database] statement_timeout`).
    pub count_time_limit: Option<std::time::Duration>,
}

/// What to return for each record: which fields, which relationships.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct View {
    pub include: Vec<String>,
    /// `None`: every public field.
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    First,
    After(String),
    Before(String),
    Offset(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// `belongs_to` names walked before `field` (`uploader` in
    /// `uploader.username`).
    pub through: Vec<String>,
    pub field: String,
    pub kind: Kind,
    pub op: FilterOp,
    pub value: FilterValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Contains,
    StartsWith,
    IsNil,
}

impl FilterOp {
    pub const ALL: [&'static str; 10] = [
        "eq",
        "ne",
        "lt",
        "lte",
        "gt",
        "gte",
        "in",
        "contains",
        "starts_with",
        "is_nil",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Eq => "eq",
            FilterOp::Ne => "ne",
            FilterOp::Lt => "lt",
            FilterOp::Lte => "lte",
            FilterOp::Gt => "gt",
            FilterOp::Gte => "gte",
            FilterOp::In => "in",
            FilterOp::Contains => "contains",
            FilterOp::StartsWith => "starts_with",
            FilterOp::IsNil => "is_nil",
        }
    }

    pub fn parse(s: &str) -> Option<FilterOp> {
        Some(match s {
            "eq" => FilterOp::Eq,
            "ne" => FilterOp::Ne,
            "lt" => FilterOp::Lt,
            "lte" => FilterOp::Lte,
            "gt" => FilterOp::Gt,
            "gte" => FilterOp::Gte,
            "in" => FilterOp::In,
            "contains" => FilterOp::Contains,
            "starts_with" => FilterOp::StartsWith,
            "is_nil" => FilterOp::IsNil,
            _ => return None,
        })
    }

    /// The operators a field of `kind` supports, for errors and OpenAPI.
    pub fn for_kind(kind: Kind) -> Vec<&'static str> {
        let mut ops = Vec::new();
        if !matches!(kind, Kind::Json | Kind::Array(_)) {
            ops.extend(["eq", "ne", "in"]);
        }
        if kind.is_ordered() {
            ops.extend(["lt", "lte", "gt", "gte"]);
        }
        if matches!(kind, Kind::Text | Kind::Array(_)) {
            ops.push("contains");
        }
        if kind == Kind::Text {
            ops.push("starts_with");
        }
        ops.push("is_nil");
        ops
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    One(Value),
    Many(Vec<Value>),
    Flag(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

/// The query parameters a list takes, for errors and OpenAPI.
pub const LIST_PARAMETERS: [&str; 9] = [
    "filter[…]",
    "sort",
    "page[size]",
    "page[after]",
    "page[before]",
    "page[offset]",
    "page[count]",
    "include",
    "fields",
];

/// Parses a list's query string (without the `?`).
pub fn parse_list(
    catalog: &Catalog,
    entry: &Entry,
    query: &str,
) -> Result<ListRequest, QueryError> {
    let mut req = ListRequest {
        filters: Vec::new(),
        sort: Vec::new(),
        size: DEFAULT_PAGE_SIZE,
        position: Position::First,
        count: false,
        view: View::default(),
        search: None,
        count_limit: None,
        count_time_limit: None,
    };
    let pairs = query_pairs(query).collect::<Result<Vec<_>, _>>()?;
    // Filters may repeat (they all apply); anything else given twice is
    // ambiguous, so neither value is guessed at, nor read.
    once_each(pairs.iter().filter(|(k, _)| !k.starts_with("filter[")))?;
    let mut in_values = 0;
    // The relationship paths the filters go through so far.
    let mut paths: Vec<Vec<String>> = Vec::new();
    for (key, value) in &pairs {
        let (key, value) = (key.as_str(), value.as_str());
        if let Some(rest) = key.strip_prefix("filter[") {
            if req.filters.len() == MAX_FILTERS {
                return Err(QueryError::bad_field(
                    key,
                    format!("a list takes at most {MAX_FILTERS} filters"),
                ));
            }
            let filter = parse_filter(catalog, entry, key, rest, value)?;
            if let FilterValue::Many(values) = &filter.value {
                in_values += values.len();
                if in_values > MAX_IN_VALUES {
                    return Err(QueryError::bad_field(
                        key,
                        format!(
                            "`in` takes at most {MAX_IN_VALUES} values, counted over all the `in` filters of a list"
                        ),
                    ));
                }
            }
            for depth in 1..=filter.through.len() {
                let path = &filter.through[..depth];
                if !paths.iter().any(|p| p == path) {
                    if paths.len() == MAX_FILTER_PATHS {
                        return Err(QueryError::bad_field(
                            key,
                            format!(
                                "the filters of a list go through at most {MAX_FILTER_PATHS} relationship paths (`a.b.field` goes through `a` and `a.b`); this one would be path {}",
                                MAX_FILTER_PATHS + 1
                            ),
                        ));
                    }
                    paths.push(path.to_vec());
                }
            }
            req.filters.push(filter);
            continue;
        }
        match key {
            "sort" => req.sort = parse_sort(entry, value)?,
            "page[size]" => {
                let size: usize = value.parse().map_err(|_| {
                    QueryError::bad_field(key, format!("`{value}` is not a whole number"))
                })?;
                if !(1..=MAX_PAGE_SIZE).contains(&size) {
                    return Err(QueryError::bad_field(
                        key,
                        format!("must be between 1 and {MAX_PAGE_SIZE}"),
                    ));
                }
                req.size = size;
            }
            "page[after]" | "page[before]" | "page[offset]" => {
                let earlier = match req.position {
                    Position::First => None,
                    Position::After(_) => Some("page[after]"),
                    Position::Before(_) => Some("page[before]"),
                    Position::Offset(_) => Some("page[offset]"),
                };
                if let Some(earlier) = earlier {
                    // Both are named: neither is wrong alone.
                    let message = "use only one of page[after], page[before] and page[offset]";
                    let fields = [earlier, key]
                        .into_iter()
                        .map(|k| (k.to_owned(), vec![message.to_owned()]))
                        .collect();
                    return Err(QueryError::BadRequest {
                        message: message.to_owned(),
                        fields,
                    });
                }
                req.position = match key {
                    "page[after]" => Position::After(value.to_owned()),
                    "page[before]" => Position::Before(value.to_owned()),
                    // Both databases take a signed 64-bit OFFSET; a larger
                    // one is an error there, so it is refused here.
                    _ => Position::Offset(
                        value
                            .parse()
                            .ok()
                            .filter(|n| *n <= MAX_OFFSET)
                            .ok_or_else(|| {
                                QueryError::bad_field(
                                    key,
                                    format!(
                                        "`{value}` is not a whole number from 0 to {MAX_OFFSET}"
                                    ),
                                )
                            })?,
                    ),
                };
            }
            "page[count]" => req.count = parse_flag(key, value)?,
            "include" | "fields" => parse_view(catalog, entry, &mut req.view, key, value)?,
            _ => return Err(unknown_parameter(key, &LIST_PARAMETERS)),
        }
    }
    if !req.sort.iter().any(|k| k.field == "id") {
        req.sort.push(SortKey {
            field: "id".into(),
            descending: false,
        });
    }
    Ok(req)
}

/// Parses the query string of a request for one record: `include`, `fields`.
pub fn parse_view(
    catalog: &Catalog,
    entry: &Entry,
    view: &mut View,
    key: &str,
    value: &str,
) -> Result<(), QueryError> {
    match key {
        "include" => {
            for name in names(key, value)? {
                let known = entry
                    .resource
                    .relationship(name)
                    .is_some_and(|r| catalog.get(r.target()).is_some());
                if !known {
                    let names: Vec<&str> = entry
                        .resource
                        .relationships
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect();
                    return Err(QueryError::bad_field(
                        "include",
                        format!(
                            "`{name}` is not a relationship of `{}`{}",
                            entry.resource.name,
                            one_of(&names)
                        ),
                    ));
                }
                if !view.include.iter().any(|i| i == name) {
                    view.include.push(name.to_owned());
                }
            }
        }
        _ => {
            let mut fields = vec!["id".to_owned()];
            for name in names(key, value)? {
                if !entry.field(name).is_some_and(|f| f.is_public()) {
                    return Err(QueryError::bad_field(
                        "fields",
                        format!("`{name}` is not a field of `{}`", entry.resource.name),
                    ));
                }
                if !fields.iter().any(|f| f == name) {
                    fields.push(name.to_owned());
                }
            }
            view.fields = Some(fields);
        }
    }
    Ok(())
}

/// Parses the query string of a get, update, destroy or action.
pub fn parse_record_query(
    catalog: &Catalog,
    entry: &Entry,
    query: &str,
) -> Result<View, QueryError> {
    let mut view = View::default();
    let pairs = query_pairs(query).collect::<Result<Vec<_>, _>>()?;
    once_each(pairs.iter())?;
    for (key, value) in pairs {
        match key.as_str() {
            k @ ("include" | "fields") => parse_view(catalog, entry, &mut view, k, &value)?,
            other => return Err(unknown_parameter(other, &["include", "fields"])),
        }
    }
    Ok(view)
}

/// The `key=value` pairs of a query string, decoded as
/// `application/x-www-form-urlencoded` like [`form_urlencoded::parse`]
/// (`+` is a space, `%XX` a byte, a `%` without two hex digits after it is
/// itself, empty pairs are skipped), except that a key or value whose bytes
/// are not UTF-8 once decoded (`%ff`) is a 400 naming the parameter: the
/// lossy decoding would turn it into U+FFFD and filter by a value the
/// client never sent.
fn query_pairs(query: &str) -> impl Iterator<Item = Result<(String, String), QueryError>> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let not_utf8 = |what: &str| format!("{what} is not UTF-8 once its %-escapes are decoded");
        let key = String::from_utf8(form_decode(key)).map_err(|e| {
            QueryError::bad_field(
                &String::from_utf8_lossy(e.as_bytes()),
                not_utf8("the parameter's name"),
            )
        })?;
        let value = String::from_utf8(form_decode(value))
            .map_err(|_| QueryError::bad_field(&key, not_utf8("the value")))?;
        Ok((key, value))
    })
}

/// The bytes a form-encoded key or value stands for.
fn form_decode(text: &str) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let [first, tail @ ..] = rest {
        rest = tail;
        match (*first, tail) {
            (b'+', _) => out.push(b' '),
            (b'%', [h, l, after @ ..]) if hex(*h).is_some() && hex(*l).is_some() => {
                out.push(hex(*h).unwrap_or_default() * 16 + hex(*l).unwrap_or_default());
                rest = after;
            }
            (b, _) => out.push(b),
        }
    }
    out
}

/// An error naming the first key given more than once.
fn once_each<'a>(pairs: impl Iterator<Item = &'a (String, String)>) -> Result<(), QueryError> {
    let mut given: Vec<&str> = Vec::new();
    for (key, _) in pairs {
        if given.contains(&key.as_str()) {
            return Err(QueryError::bad_field(key, "given more than once"));
        }
        given.push(key);
    }
    Ok(())
}

/// The comma-separated names of `include` or `fields`. An empty name
/// (`fields=`, `include=a,`) is refused like any name that is not a
/// relationship or field: the OpenAPI document lists the names each takes,
/// and `fields=` would otherwise read as an empty list there.
fn names<'a>(key: &str, value: &'a str) -> Result<impl Iterator<Item = &'a str>, QueryError> {
    if value.split(',').any(str::is_empty) {
        return Err(QueryError::bad_field(
            key,
            "an empty name; give one or more names separated by commas",
        ));
    }
    Ok(value.split(','))
}

fn unknown_parameter(key: &str, known: &[&str]) -> QueryError {
    QueryError::bad_field(
        key,
        format!(
            "unknown query parameter `{key}`; known: {}",
            known.join(", ")
        ),
    )
}

fn one_of(names: &[&str]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (it has {})", names.join(", "))
    }
}

fn parse_flag(key: &str, value: &str) -> Result<bool, QueryError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(QueryError::bad_field(key, "must be `true` or `false`")),
    }
}

fn parse_sort(entry: &Entry, value: &str) -> Result<Vec<SortKey>, QueryError> {
    let mut keys: Vec<SortKey> = Vec::new();
    for part in value.split(',') {
        let (descending, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part),
        };
        let field = entry.field(name).filter(|f| f.is_public()).ok_or_else(|| {
            QueryError::bad_field(
                "sort",
                format!("`{name}` is not a field of `{}`", entry.resource.name),
            )
        })?;
        if !(field.kind.is_ordered() || field.kind == Kind::Boolean) {
            return Err(QueryError::bad_field(
                "sort",
                format!(
                    "`{name}` holds {} values, which have no order",
                    kind_name(field.kind)
                ),
            ));
        }
        // Records equal in a field stay equal in it, whichever direction a
        // later occurrence asks for: the first occurrence decides the
        // order, so the others are dropped (and not refused, which would
        // make the OpenAPI document's schema for `sort` unwritable).
        if keys.iter().any(|k| k.field == name) {
            continue;
        }
        keys.push(SortKey {
            field: name.to_owned(),
            descending,
        });
    }
    Ok(keys)
}

fn parse_filter(
    catalog: &Catalog,
    entry: &Entry,
    key: &str,
    rest: &str,
    value: &str,
) -> Result<Filter, QueryError> {
    let malformed = || {
        QueryError::bad_field(
            key,
            "write filters as `filter[field]=value` or `filter[field][op]=value`",
        )
    };
    let (path, rest) = rest.split_once(']').ok_or_else(malformed)?;
    let op = match rest {
        "" => FilterOp::Eq,
        _ => {
            let name = rest
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .ok_or_else(malformed)?;
            FilterOp::parse(name).ok_or_else(|| {
                QueryError::bad_field(
                    key,
                    format!(
                        "unknown operator `{name}`; operators: {}",
                        FilterOp::ALL.join(", ")
                    ),
                )
            })?
        }
    };
    let mut names: Vec<&str> = path.split('.').collect();
    let field_name = names.pop().unwrap_or_default();
    if names.len() > MAX_FILTER_DEPTH {
        return Err(QueryError::bad_field(
            key,
            format!(
                "a filter path goes through at most {MAX_FILTER_DEPTH} relationships; this one goes through {}",
                names.len()
            ),
        ));
    }
    let mut at = entry;
    let mut through = Vec::new();
    for rel in names {
        let target = at.resource.relationship(rel).and_then(|r| match &r.kind {
            RelationshipKind::BelongsTo { target, .. } => catalog.get(target),
            _ => None,
        });
        at = target.ok_or_else(|| {
            QueryError::bad_field(
                key,
                format!(
                    "`{rel}` is not a belongs_to relationship of `{}`",
                    at.resource.name
                ),
            )
        })?;
        through.push(rel.to_owned());
    }
    let field = at
        .field(field_name)
        .filter(|f| f.is_public())
        .ok_or_else(|| {
            QueryError::bad_field(
                key,
                format!("`{field_name}` is not a field of `{}`", at.resource.name),
            )
        })?;
    let kind = field.kind;
    let op_name = op.as_str();
    if !FilterOp::for_kind(kind).contains(&op_name) {
        return Err(QueryError::bad_field(
            key,
            format!(
                "`{op_name}` does not apply to {} values; use {}",
                kind_name(kind),
                FilterOp::for_kind(kind).join(", ")
            ),
        ));
    }
    let parse = |text: &str, kind: Kind| {
        parse_scalar(kind, text).map_err(|m| QueryError::bad_field(key, m))
    };
    // An enum's values are known: equality with any other value is a
    // mistake (a typo would otherwise match nothing, silently). Orders and
    // substrings stay free text, like the value's own comparisons.
    let member = |text: &str| match &field.origin {
        Origin::Attribute(ty @ AttrType::Enum { .. }) => {
            normalize_value(ty, &Value::String(text.to_owned()))
                .map(|_| ())
                .map_err(|m| QueryError::bad_field(key, m))
        }
        _ => Ok(()),
    };
    let value = match op {
        FilterOp::IsNil => FilterValue::Flag(parse_flag(key, value)?),
        FilterOp::In => FilterValue::Many(
            value
                .split(',')
                .map(|v| {
                    member(v)?;
                    parse(v, kind)
                })
                .collect::<Result<_, _>>()?,
        ),
        FilterOp::Eq | FilterOp::Ne => {
            member(value)?;
            FilterValue::One(parse(value, kind)?)
        }
        FilterOp::Contains | FilterOp::StartsWith if kind == Kind::Text => {
            FilterValue::One(parse(value, Kind::Text)?)
        }
        FilterOp::Contains => match kind {
            Kind::Array(of) => FilterValue::One(parse(value, Kind::of_scalar(of))?),
            _ => return Err(malformed()),
        },
        _ => FilterValue::One(parse(value, kind)?),
    };
    Ok(Filter {
        through,
        field: field_name.to_owned(),
        kind,
        op,
        value,
    })
}

/// A query-string value as the canonical JSON value of `kind`.
pub fn parse_scalar(kind: Kind, text: &str) -> Result<Value, String> {
    let normalized = |ty: AttrType| normalize_value(&ty, &Value::String(text.to_owned()));
    match kind {
        Kind::Text => normalized(AttrType::Text),
        Kind::Integer => parse_integer(text),
        Kind::Float => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("`{text}` is not a number")),
        Kind::Boolean => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not `true` or `false`")),
        },
        Kind::Uuid => normalized(AttrType::Uuid),
        Kind::Date => normalized(AttrType::Date),
        Kind::Datetime => {
            let value = normalized(AttrType::Datetime)?;
            finer_than_millis(text)?;
            Ok(value)
        }
        Kind::Json | Kind::Array(_) => {
            Err(format!("{} values cannot be compared", kind_name(kind)))
        }
    }
}

/// An integer filter value. Digits are read exactly (all of `i64`); a
/// number spelled as a float (`12000.0`, `1e3`) is taken as that integer by
/// the rule a body's integer follows (`normalize_value`): no fraction, and
/// at most 2^53 in size, where a float still stands for one integer.
fn parse_integer(text: &str) -> Result<Value, String> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(Value::from(n));
    }
    let not_integer = || {
        format!(
            "`{text}` is not an integer (a number with no fraction, like `5.0`, is taken up to 2^53)"
        )
    };
    let float = text
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64)
        .ok_or_else(not_integer)?;
    let integer = AttrType::Integer {
        min: None,
        max: None,
    };
    normalize_value(&integer, &Value::Number(float)).map_err(|_| not_integer())
}

/// Refuses a valid datetime with a nonzero digit past the milliseconds.
///
/// Kumo keeps datetimes to the millisecond (SQLite stores the text
/// `…05.123Z`), and a body's finer digits are dropped when it is written.
/// A filter's value is a bound, not a value to store: dropping its digits
/// would move it (`lt …05.1235Z` would leave out a record at `…05.123Z`,
/// which is before it), and comparing it exactly is not something the
/// stored text can do. So such a value is refused, alike on both databases;
/// zeros past the milliseconds (`.123000Z`) change nothing and are taken.
fn finer_than_millis(text: &str) -> Result<(), String> {
    let fraction = text
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|f| {
            f.bytes()
                .take_while(u8::is_ascii_digit)
                .skip(3)
                .any(|d| d != b'0')
        });
    if fraction == Some(true) {
        return Err(format!(
            "`{text}` is more precise than a millisecond; Kumo keeps datetimes to the \
             millisecond, so give at most three fraction digits (`2026-01-02T03:04:05.123Z`)"
        ));
    }
    Ok(())
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "string",
        Kind::Integer => "integer",
        Kind::Float => "float",
        Kind::Boolean => "boolean",
        Kind::Uuid => "uuid",
        Kind::Date => "date",
        Kind::Datetime => "datetime",
        Kind::Json => "json",
        Kind::Array(_) => "array",
    }
}
