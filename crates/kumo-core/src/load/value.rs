//! Literal values: TOML literals from resource and seed files (defaults,
//! action `set`, seed rows) and JSON values from API callers, checked against
//! an attribute's type and constraints and normalised to the one JSON form the
//! model stores.
//!
//! Stored forms: string/text/enum → string; uuid → lower-case hyphenated
//! string; integer → i64; float → f64; date → `YYYY-MM-DD`; datetime → UTC
//! with milliseconds, `2026-01-02T03:04:05.000Z`; json → any JSON; array →
//! JSON array of its elements.

use serde_json::Number;
use toml::de::DeValue;
use toml::value::{Datetime, Offset};

use crate::resource::{AttrType, ScalarType, Value};

/// A TOML literal detached from the parsed document, so it can be checked
/// once the attribute it is for is known (after `user` is merged, after all
/// resources are read).
#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(Datetime),
    Array(Vec<Lit>),
    Table(Vec<(String, Lit)>),
}

impl Lit {
    pub(crate) fn from_toml(v: &DeValue<'_>) -> Result<Lit, String> {
        Ok(match v {
            DeValue::String(s) => Lit::Str(s.to_string()),
            DeValue::Integer(i) => Lit::Int(
                i64::from_str_radix(i.as_str(), i.radix())
                    .map_err(|_| format!("integer `{i}` is out of range"))?,
            ),
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                Ok(x) if x.is_finite() => Lit::Float(x),
                _ => return Err(format!("`{f}` can't be stored: floats must be finite")),
            },
            DeValue::Boolean(b) => Lit::Bool(*b),
            DeValue::Datetime(dt) => Lit::Datetime(*dt),
            DeValue::Array(items) => Lit::Array(
                items
                    .iter()
                    .map(|i| Lit::from_toml(i.get_ref()))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(t) => Lit::Table(
                t.iter()
                    .map(|(k, v)| Ok((k.get_ref().to_string(), Lit::from_toml(v.get_ref())?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    fn describe(&self) -> &'static str {
        match self {
            Lit::Str(_) => "a string",
            Lit::Int(_) => "an integer",
            Lit::Float(_) => "a float",
            Lit::Bool(_) => "a boolean",
            Lit::Datetime(dt) => {
                match (dt.date.is_some(), dt.time.is_some(), dt.offset.is_some()) {
                    (true, false, _) => "a date",
                    (false, _, _) => "a time",
                    (true, true, false) => "a local datetime (no UTC offset)",
                    (true, true, true) => "a datetime",
                }
            }
            Lit::Array(_) => "an array",
            Lit::Table(_) => "a table",
        }
    }

    /// Plain conversion, used for `json` attributes and once the type has
    /// been checked. Datetimes become their TOML text.
    fn to_json(&self) -> Value {
        match self {
            Lit::Str(s) => Value::String(s.clone()),
            Lit::Int(i) => Value::from(*i),
            Lit::Float(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Lit::Bool(b) => Value::Bool(*b),
            Lit::Datetime(dt) => Value::String(dt.to_string()),
            Lit::Array(items) => Value::Array(items.iter().map(Lit::to_json).collect()),
            Lit::Table(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Converts a TOML literal for an attribute of type `ty` to the stored JSON
/// value, checking its type and the attribute's constraints.
pub(crate) fn lit_to_value(ty: &AttrType, lit: &Lit) -> Result<Value, String> {
    let json = match (ty, lit) {
        (AttrType::Json, lit) => return Ok(lit.to_json()),
        (AttrType::Date, Lit::Datetime(dt)) => match (dt.date, dt.time) {
            (Some(d), None) => Value::String(format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)),
            _ => {
                return Err(format!(
                    "expected {}, found {}",
                    expected(ty),
                    lit.describe()
                ));
            }
        },
        (AttrType::Datetime, Lit::Datetime(dt)) => match (dt.date, dt.time, dt.offset) {
            (Some(d), Some(t), Some(offset)) => {
                let mut s = format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    d.year,
                    d.month,
                    d.day,
                    t.hour,
                    t.minute,
                    t.second.unwrap_or(0)
                );
                if let Some(n) = t.nanosecond {
                    s.push_str(&format!(".{n:09}"));
                }
                match offset {
                    Offset::Z => s.push('Z'),
                    Offset::Custom { minutes } => {
                        let sign = if minutes < 0 { '-' } else { '+' };
                        let m = minutes.unsigned_abs();
                        s.push_str(&format!("{sign}{:02}:{:02}", m / 60, m % 60));
                    }
                }
                Value::String(s)
            }
            (Some(_), Some(_), None) => return Err(no_offset(&dt.to_string())),
            _ => {
                return Err(format!(
                    "expected {}, found {}",
                    expected(ty),
                    lit.describe()
                ));
            }
        },
        (AttrType::Array { of }, Lit::Array(items)) => {
            let elem = scalar_attr(*of);
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(lit_to_value(&elem, item).map_err(|e| format!("element {}: {e}", i + 1))?);
            }
            Value::Array(out)
        }
        (_, Lit::Datetime(_) | Lit::Table(_) | Lit::Array(_)) => {
            return Err(format!(
                "expected {}, found {}",
                expected(ty),
                lit.describe()
            ));
        }
        (_, lit) => lit.to_json(),
    };
    normalize_value(ty, &json)
}

/// The attribute type of an array element: the scalar with no constraints.
pub(crate) fn scalar_attr(of: ScalarType) -> AttrType {
    match of {
        ScalarType::String => AttrType::String {
            min_length: None,
            max_length: None,
            pattern: None,
        },
        ScalarType::Text => AttrType::Text,
        ScalarType::Integer => AttrType::Integer {
            min: None,
            max: None,
        },
        ScalarType::Float => AttrType::Float {
            min: None,
            max: None,
        },
        ScalarType::Boolean => AttrType::Boolean,
        ScalarType::Uuid => AttrType::Uuid,
        ScalarType::Date => AttrType::Date,
        ScalarType::Datetime => AttrType::Datetime,
    }
}

/// Checks a value against an attribute type and its constraints. The API
/// layer uses this on JSON input; the loader on defaults, `set` and seeds.
/// `Err` is a message for a human ("`robot` is not one of `humanoid`,
/// `creature`").
pub fn check_value(ty: &AttrType, value: &Value) -> Result<(), String> {
    normalize_value(ty, value).map(|_| ())
}

/// Like [`check_value`], but returns the value in the form the model stores:
/// a datetime converted to UTC, a UUID lower-cased and hyphenated, an integer
/// given to a float attribute as a float.
pub fn normalize_value(ty: &AttrType, value: &Value) -> Result<Value, String> {
    let normalized = normalize_shape(ty, value)?;
    storable(ty, &normalized)?;
    Ok(normalized)
}

/// What both databases can store: PostgreSQL's `text` and `jsonb` refuse
/// the NUL character and its dates have no year 0, so such values are
/// refused here, alike on both, instead of failing in PostgreSQL.
fn storable(ty: &AttrType, value: &Value) -> Result<(), String> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    if has_nul(value) {
        return Err("text cannot contain the NUL character (\\u0000)".to_owned());
    }
    let dated = matches!(ty, AttrType::Date | AttrType::Datetime);
    if dated && value.as_str().is_some_and(|s| s.starts_with("0000-")) {
        return Err(
            "the year 0000 cannot be stored; the earliest date is 0001-01-01 (UTC)".to_owned(),
        );
    }
    Ok(())
}

/// JSON has one kind of number: `5.0` is the integer 5 to JSON Schema, and
/// some clients write every number that way (Godot's JSON parser reads all
/// numbers as floats). So a float with no fraction is taken as that
/// integer while it is exact: up to 2^53 in size. Beyond that a float
/// stands for many integers (`-9223372036854775809` reads as the float
/// -2^63), and taking one of them would change the value silently.
fn as_integer(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let x = value.as_f64().filter(|_| value.is_f64())?;
    let exact = 2f64.powi(53);
    (x.fract() == 0.0 && x.abs() <= exact).then_some(x as i64)
}

fn normalize_shape(ty: &AttrType, value: &Value) -> Result<Value, String> {
    let mismatch = || format!("expected {}, found {}", expected(ty), describe_json(value));
    match ty {
        AttrType::String {
            min_length,
            max_length,
            pattern,
        } => {
            let s = value.as_str().ok_or_else(mismatch)?;
            let len = s.chars().count();
            if let Some(min) = min_length
                && len < *min as usize
            {
                let plural = if *min == 1 { "" } else { "s" };
                return Err(if s.is_empty() {
                    format!("is empty; at least {min} character{plural}")
                } else {
                    format!(
                        "{} is too short: {len} characters, at least {min}",
                        preview(s)
                    )
                });
            }
            if let Some(max) = max_length
                && len > *max as usize
            {
                return Err(format!(
                    "{} is too long: {len} characters, at most {max}",
                    preview(s)
                ));
            }
            if let Some(p) = pattern {
                let re = compile_pattern(p)?;
                if !re.is_match(s) {
                    return Err(format!("`{s}` does not match the pattern `{p}`"));
                }
            }
            Ok(value.clone())
        }
        AttrType::Text => value.as_str().map(|_| value.clone()).ok_or_else(mismatch),
        AttrType::Integer { min, max } => {
            let n = as_integer(value).ok_or_else(|| match value.as_f64() {
                Some(x) => format!("expected an integer, found `{x:?}`"),
                None => mismatch(),
            })?;
            if let Some(min) = min
                && n < *min
            {
                return Err(format!("{n} is less than the minimum {min}"));
            }
            if let Some(max) = max
                && n > *max
            {
                return Err(format!("{n} is greater than the maximum {max}"));
            }
            Ok(Value::from(n))
        }
        AttrType::Float { min, max } => {
            let x = value.as_f64().ok_or_else(mismatch)?;
            if let Some(min) = min
                && x < *min
            {
                return Err(format!("{x} is less than the minimum {min}"));
            }
            if let Some(max) = max
                && x > *max
            {
                return Err(format!("{x} is greater than the maximum {max}"));
            }
            Number::from_f64(x)
                .map(Value::Number)
                .ok_or_else(|| "floats must be finite".to_owned())
        }
        AttrType::Boolean => value.as_bool().map(|_| value.clone()).ok_or_else(mismatch),
        AttrType::Uuid => {
            let s = value.as_str().ok_or_else(mismatch)?;
            uuid::Uuid::try_parse(s)
                .map(|u| Value::String(u.hyphenated().to_string()))
                .map_err(|_| format!("`{s}` is not a UUID"))
        }
        AttrType::Date => {
            let s = value.as_str().ok_or_else(mismatch)?;
            parse_date(s)
                .map(|_| Value::String(s.to_owned()))
                .ok_or_else(|| format!("`{s}` is not a date like 2026-01-02"))
        }
        AttrType::Datetime => {
            let s = value.as_str().ok_or_else(mismatch)?;
            parse_datetime(s).map(Value::String)
        }
        AttrType::Json => Ok(value.clone()),
        AttrType::Enum { values } => {
            let s = value.as_str().ok_or_else(mismatch)?;
            if values.iter().any(|v| v == s) {
                Ok(value.clone())
            } else {
                Err(format!("`{s}` is not one of {}", super::walk::list(values)))
            }
        }
        AttrType::Array { of } => {
            let items = value.as_array().ok_or_else(mismatch)?;
            let elem = scalar_attr(*of);
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(
                    normalize_value(&elem, item).map_err(|e| format!("element {}: {e}", i + 1))?,
                );
            }
            Ok(Value::Array(out))
        }
    }
}

/// Compiles a `pattern` so that it must match the whole value.
pub(crate) fn compile_pattern(pattern: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        let msg = e.to_string();
        // regex-lite's messages can span several lines; the first says what
        // is wrong, which is what fits in a diagnostic.
        let first = msg.lines().next().unwrap_or("invalid regular expression");
        format!("`{pattern}` is not a valid regular expression: {first}")
    })
}

fn preview(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(37).collect();
        format!("`{head}…`")
    } else {
        format!("`{s}`")
    }
}

fn expected(ty: &AttrType) -> String {
    match ty {
        AttrType::String { .. } | AttrType::Text => "a string".into(),
        AttrType::Integer { .. } => "an integer".into(),
        AttrType::Float { .. } => "a number".into(),
        AttrType::Boolean => "a boolean".into(),
        AttrType::Uuid => "a UUID string".into(),
        AttrType::Date => "a date like 2026-01-02".into(),
        AttrType::Datetime => "a datetime like 2026-01-02T03:04:05Z".into(),
        AttrType::Json => "any value".into(),
        AttrType::Enum { values } => format!("one of {}", super::walk::list(values)),
        AttrType::Array { of } => format!("an array of {} values", of.as_str()),
    }
}

fn describe_json(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer".into(),
        Value::Number(_) => "a float".into(),
        Value::String(s) => format!("the string {}", preview(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn no_offset(text: &str) -> String {
    format!(
        "datetime `{text}` has no UTC offset; add `Z` for UTC (`{text}Z`) or an offset such as `+02:00`"
    )
}

/// `YYYY-MM-DD` with a real calendar day.
pub(crate) fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some((i64::from(year), month, day))
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

/// Parses an RFC 3339 datetime with a UTC offset and returns its canonical
/// form: UTC with exactly three fraction digits, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// One fixed width matters because SQLite stores datetimes as text and
/// compares them as text: `…05Z` sorts after `…05.5Z`, and the column default
/// `strftime('%Y-%m-%dT%H:%M:%fZ','now')` writes three digits. Milliseconds
/// are also the precision both databases keep for a value written by Kumo.
pub(crate) fn parse_datetime(s: &str) -> Result<String, String> {
    let bad = || format!("`{s}` is not a datetime like 2026-01-02T03:04:05Z");
    if s.len() < 19 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return Err(bad());
    }
    let (year, month, day) = parse_date(&s[..10]).ok_or_else(bad)?;
    if !matches!(s.as_bytes()[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    let time = &s[11..19];
    let tb = time.as_bytes();
    if tb[2] != b':' || tb[5] != b':' {
        return Err(bad());
    }
    let hour = digits(&time[0..2]).ok_or_else(bad)?;
    let minute = digits(&time[3..5]).ok_or_else(bad)?;
    let second = digits(&time[6..8]).ok_or_else(bad)?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    // Milliseconds: finer digits are dropped (truncated, not rounded, so a
    // value never moves into the next second) and missing ones are zeros.
    let mut millis = String::from("000");
    if let Some(after_dot) = rest.strip_prefix('.') {
        let n = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(bad());
        }
        let kept = &after_dot[..n.min(3)];
        millis.replace_range(..kept.len(), kept);
        rest = &after_dot[n..];
    }
    let offset_minutes: i64 = match rest {
        "Z" | "z" => 0,
        "" => return Err(no_offset(s)),
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || !matches!(ob[0], b'+' | b'-') || ob[3] != b':' {
                return Err(bad());
            }
            let h = digits(&rest[1..3]).ok_or_else(bad)?;
            let m = digits(&rest[4..6]).ok_or_else(bad)?;
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let total = i64::from(h * 60 + m);
            if ob[0] == b'-' { -total } else { total }
        }
    };
    let days = days_from_civil(year, i64::from(month), i64::from(day));
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - offset_minutes * 60;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    if !(0..=9999).contains(&y) {
        return Err(format!("`{s}` is outside the years 0001–9999 in UTC"));
    }
    Ok(format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{millis}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    ))
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn integer() -> AttrType {
        AttrType::Integer {
            min: None,
            max: None,
        }
    }

    #[test]
    fn an_integral_float_is_an_integer() {
        assert_eq!(normalize_value(&integer(), &json!(5.0)), Ok(json!(5)));
        assert_eq!(normalize_value(&integer(), &json!(-2.0)), Ok(json!(-2)));
        assert_eq!(
            normalize_value(&integer(), &json!(2.5)),
            Err("expected an integer, found `2.5`".to_owned())
        );
        // Beyond 2^53 a float is not one integer: refused, never rounded.
        assert_eq!(
            normalize_value(&integer(), &json!(9_007_199_254_740_992.0)),
            Ok(json!(9_007_199_254_740_992_i64))
        );
        assert!(normalize_value(&integer(), &json!(9_007_199_254_740_994.0)).is_err());
        let below_i64: Value = serde_json::from_str("-9223372036854775809").unwrap();
        assert!(normalize_value(&integer(), &below_i64).is_err());
        let array = AttrType::Array {
            of: ScalarType::Integer,
        };
        assert_eq!(normalize_value(&array, &json!([1.0, 2])), Ok(json!([1, 2])));
    }

    #[test]
    fn nul_is_refused_in_every_kind_of_text() {
        let nul = "text cannot contain the NUL character (\\u0000)".to_owned();
        assert_eq!(
            normalize_value(&AttrType::Text, &json!("a\u{0}b")),
            Err(nul.clone())
        );
        assert_eq!(
            normalize_value(&AttrType::Json, &json!({"k": ["x\u{0}"]})),
            Err(nul.clone())
        );
        assert_eq!(
            normalize_value(&AttrType::Json, &json!({"\u{0}": 1})),
            Err(nul)
        );
        let strings = AttrType::Array {
            of: ScalarType::String,
        };
        assert!(normalize_value(&strings, &json!(["ok", "\u{0}"])).is_err());
        assert_eq!(
            normalize_value(&AttrType::Text, &json!("a b")),
            Ok(json!("a b"))
        );
    }

    #[test]
    fn the_year_0000_is_refused() {
        let zero =
            Err("the year 0000 cannot be stored; the earliest date is 0001-01-01 (UTC)".to_owned());
        assert_eq!(normalize_value(&AttrType::Date, &json!("0000-06-01")), zero);
        // In UTC this is still the year 0000.
        assert_eq!(
            normalize_value(&AttrType::Datetime, &json!("0001-01-01T01:00:00+02:00")),
            zero
        );
        assert_eq!(
            normalize_value(&AttrType::Date, &json!("0001-01-01")),
            Ok(json!("0001-01-01"))
        );
        // The year before 0000 names the range that can be stored (it said
        // 0000–9999, though 0000 is refused too).
        let before = "0000-01-01T00:30:00+01:00";
        assert_eq!(
            normalize_value(&AttrType::Datetime, &json!(before)),
            Err(format!("`{before}` is outside the years 0001–9999 in UTC"))
        );
    }
}
