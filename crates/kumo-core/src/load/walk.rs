//! Helpers for walking a parsed TOML tree by hand while collecting
//! diagnostics: typed getters that report "`x` must be a boolean, found a
//! string", unknown-key reports with a did-you-mean, identifier checks.
//!
//! The loader walks `toml::de::DeTable` rather than deserialising into
//! structs because serde stops at the first error and loses the spans of
//! unknown keys; a resource file should report every mistake at once.

use std::borrow::Cow;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::Diagnostic;
use crate::resource::{FileId, Span};

pub(crate) type Key<'i> = Spanned<Cow<'i, str>>;
pub(crate) type Val<'i> = Spanned<DeValue<'i>>;

/// Longest identifier accepted, in bytes. Leaves room under PostgreSQL's
/// 63-byte limit for the `_id` suffix of foreign keys and index names.
pub(crate) const MAX_IDENT: usize = 48;

/// The file being walked and the diagnostics collected so far.
pub(crate) struct Cx<'a> {
    pub(crate) file: FileId,
    pub(crate) text: &'a str,
    pub(crate) diags: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    pub(crate) fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(self.file, span, message));
    }

    pub(crate) fn error_help(
        &mut self,
        span: Span,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::new(self.file, span, message);
        d.help = help;
        self.diags.push(d);
    }

    /// How many diagnostics exist; comparing before and after a step tells
    /// whether that step failed without threading booleans everywhere.
    pub(crate) fn mark(&self) -> usize {
        self.diags.len()
    }

    pub(crate) fn failed_since(&self, mark: usize) -> bool {
        self.diags.len() > mark
    }

    pub(crate) fn want_str<'v>(&mut self, key: &str, v: &'v Val<'_>) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.wrong_type(key, "a string", other, v.span());
                None
            }
        }
    }

    pub(crate) fn want_bool(&mut self, key: &str, v: &Val<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.wrong_type(key, "a boolean", other, v.span());
                None
            }
        }
    }

    pub(crate) fn want_table<'v, 'i>(
        &mut self,
        key: &str,
        v: &'v Val<'i>,
    ) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.wrong_type(key, "a table", other, v.span());
                None
            }
        }
    }

    pub(crate) fn want_array<'v, 'i>(
        &mut self,
        key: &str,
        v: &'v Val<'i>,
    ) -> Option<&'v [Val<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a.as_ref()),
            other => {
                self.wrong_type(key, "an array", other, v.span());
                None
            }
        }
    }

    pub(crate) fn want_int(&mut self, key: &str, v: &Val<'_>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(v.span(), format!("`{key}` is out of range"));
                    None
                }
            },
            other => {
                self.wrong_type(key, "an integer", other, v.span());
                None
            }
        }
    }

    /// An array of strings, each with its span.
    pub(crate) fn want_str_list(&mut self, key: &str, v: &Val<'_>) -> Option<Vec<(String, Span)>> {
        let items = self.want_array(key, v)?;
        let mark = self.mark();
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                other => self.error(
                    item.span(),
                    format!("`{key}` must list strings, found {}", describe(other)),
                ),
            }
        }
        (!self.failed_since(mark)).then_some(out)
    }

    pub(crate) fn wrong_type(&mut self, key: &str, want: &str, found: &DeValue<'_>, span: Span) {
        self.error(
            span,
            format!("`{key}` must be {want}, found {}", describe(found)),
        );
    }

    /// Reports a key that is not in `known`, with a did-you-mean when one is
    /// close, otherwise the list of keys that are allowed.
    pub(crate) fn unknown_key(&mut self, key: &Key<'_>, place: &str, known: &[&str]) {
        let help = match suggest(key.get_ref(), known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of {}", list(known)),
        };
        self.error_help(
            key.span(),
            format!("unknown key `{}` {place}", key.get_ref()),
            Some(help),
        );
    }

    /// Checks a snake_case identifier; `what` names it in the message, such
    /// as "attribute name". Returns whether it is valid.
    pub(crate) fn check_ident(&mut self, what: &str, name: &str, span: Span) -> bool {
        if !is_ident(name) {
            let fixed = to_snake_case(name);
            let help = if is_ident(&fixed) && fixed.len() <= MAX_IDENT {
                format!("try `{fixed}`")
            } else {
                "use lower-case letters, digits and `_`, starting with a letter".to_owned()
            };
            self.error_help(
                span,
                format!("{what} `{name}` is not snake_case"),
                Some(help),
            );
            return false;
        }
        if name.len() > MAX_IDENT {
            self.error(
                span,
                format!(
                    "{what} `{name}` is too long: {} bytes, at most {MAX_IDENT}",
                    name.len()
                ),
            );
            return false;
        }
        true
    }
}

/// `^[a-z][a-z0-9_]*$`.
pub(crate) fn is_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// A best guess at the snake_case form the user meant (`AvatarTag` →
/// `avatar_tag`, `is-public` → `is_public`), only used for a hint.
fn to_snake_case(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c == '-' || c == ' ' || c == '.' {
            out.push('_');
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// "a string", "an integer"… for messages about a TOML value.
pub(crate) fn describe(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(dt) => match (dt.date.is_some(), dt.time.is_some()) {
            (true, false) => "a date",
            (false, _) => "a time",
            (true, true) => "a datetime",
        },
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The closest candidate to a misspelt word, if any is close enough to be a
/// plausible typo: Jaro-Winkler ≥ 0.8, or at most two edits on a word long
/// enough that two edits are not a different word altogether.
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let len = word.chars().count();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .filter_map(|c| {
            let lev = strsim::osa_distance(word, c);
            let jw = strsim::jaro_winkler(word, c);
            // Two edits on a short word can make another word entirely, so
            // the edit budget shrinks with length; Jaro-Winkler catches
            // transpositions (`lenght`) but not mere shared prefixes.
            let close = (lev <= 2 && lev < len && lev * 2 <= len.max(c.chars().count()))
                || (jw >= 0.9 && lev <= 3);
            close.then_some((lev, -jw, c))
        })
        .min_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal))
        })
        .map(|(_, _, c)| c)
}

/// "`a`, `b` or `c`".
pub(crate) fn list<S: AsRef<str>>(items: &[S]) -> String {
    join(items, "or")
}

/// "`a`, `b` and `c`".
pub(crate) fn list_and<S: AsRef<str>>(items: &[S]) -> String {
    join(items, "and")
}

fn join<S: AsRef<str>>(items: &[S], last_word: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{}`", s.as_ref())).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} {last_word} {last}", rest.join(", ")),
    }
}

/// "a" or "an" for a type name: "an integer", "a string", "a uuid".
pub(crate) fn article(word: &str) -> &'static str {
    // "uuid" is said "you-you-id", so it takes "a" despite its vowel.
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) && !word.starts_with("uu") {
        "an"
    } else {
        "a"
    }
}

/// Maps a byte offset inside the decoded value of a TOML string to a byte
/// offset in the file, so errors inside policy expressions point at the right
/// column. Exact for literal strings and for basic strings with escapes.
pub(crate) fn string_offset(text: &str, value: &Span, decoded: usize) -> usize {
    let Some(raw) = text.get(value.clone()) else {
        return value.start;
    };
    let (delim, literal) = if raw.starts_with("\"\"\"") {
        (3, false)
    } else if raw.starts_with("'''") {
        (3, true)
    } else if raw.starts_with('"') {
        (1, false)
    } else if raw.starts_with('\'') {
        (1, true)
    } else {
        return value.start;
    };
    let mut body_start = delim;
    if delim == 3 {
        // TOML drops a newline right after the opening delimiter.
        if raw[body_start..].starts_with("\r\n") {
            body_start += 2;
        } else if raw[body_start..].starts_with('\n') {
            body_start += 1;
        }
    }
    let body = &raw[body_start..];
    let base = value.start + body_start;
    if literal {
        return base + decoded.min(body.len());
    }
    let mut seen = 0;
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if seen >= decoded {
            return base + i;
        }
        if c != '\\' {
            seen += c.len_utf8();
            continue;
        }
        match chars.next() {
            Some((_, 'x')) => {
                let hex: String = (0..2)
                    .filter_map(|_| chars.next().map(|(_, c)| c))
                    .collect();
                seen += char_len(&hex);
            }
            Some((_, 'u')) => {
                let hex: String = (0..4)
                    .filter_map(|_| chars.next().map(|(_, c)| c))
                    .collect();
                seen += char_len(&hex);
            }
            Some((_, 'U')) => {
                let hex: String = (0..8)
                    .filter_map(|_| chars.next().map(|(_, c)| c))
                    .collect();
                seen += char_len(&hex);
            }
            Some((_, c)) if c.is_whitespace() => {
                // A line-ending backslash swallows all following whitespace.
                while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some(_) => seen += 1,
            None => break,
        }
    }
    base + body.len()
}

fn char_len(hex: &str) -> usize {
    u32::from_str_radix(hex, 16)
        .ok()
        .and_then(char::from_u32)
        .map_or(1, char::len_utf8)
}
