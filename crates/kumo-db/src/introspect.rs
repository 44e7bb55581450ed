//! Reading the live schema back from the database, in a normalised form that
//! can be compared with what the resources declare.
//!
//! This is a handful of catalog queries (`information_schema`/`pg_catalog`
//! on PostgreSQL, `pragma_*` table functions on SQLite). A general
//! introspection crate would still need mapping onto this exact shape.

use std::collections::{BTreeMap, BTreeSet};

use kumo_core::table::Table;
use sqlx::Row;

use crate::Error;
use crate::db::Database;
use crate::sql::{
    Dialect, check_expr, default_sql, is_text, on_delete_sql, sql_type, string_literal,
};

/// A table as the database reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTable {
    pub columns: BTreeMap<String, LiveColumn>,
    /// Index name → columns in order.
    pub unique_indexes: BTreeMap<String, Vec<String>>,
    /// The other indexes: name → keys in order, each as [`live_key`]
    /// spells it (`score DESC NULLS LAST`, `name COLLATE C ASC NULLS FIRST`).
    pub indexes: BTreeMap<String, Vec<String>>,
    /// (column, referenced table, referenced column, on delete)
    pub foreign_keys: BTreeSet<(String, String, String, String)>,
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    pub sql_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    /// Whether some CHECK constraint mentions the column.
    pub checked: bool,
}

pub type LiveSchema = BTreeMap<String, LiveTable>;

/// What the database should report for `tables`, in the same form.
pub fn expected(tables: &[Table], dialect: Dialect) -> LiveSchema {
    tables
        .iter()
        .map(|t| {
            let columns = t
                .columns
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        LiveColumn {
                            sql_type: normalise_type(sql_type(&c.ty, dialect)),
                            nullable: c.nullable && !c.primary_key,
                            default: c
                                .default
                                .as_ref()
                                .map(|d| normalise_default(&default_sql(d, &c.ty, dialect))),
                            checked: check_expr(c, dialect).is_some(),
                        },
                    )
                })
                .collect();
            let foreign_keys = t
                .columns
                .iter()
                .filter_map(|c| {
                    c.references.as_ref().map(|fk| {
                        (
                            c.name.clone(),
                            fk.table.clone(),
                            fk.column.clone(),
                            on_delete_sql(fk.on_delete).to_string(),
                        )
                    })
                })
                .collect();
            (
                t.name.clone(),
                LiveTable {
                    columns,
                    unique_indexes: t
                        .unique_indexes
                        .iter()
                        .map(|u| (u.name.clone(), u.columns.clone()))
                        .collect(),
                    indexes: t
                        .indexes
                        .iter()
                        .map(|i| {
                            if i.search && dialect == Dialect::Postgres {
                                let keys = i.keys.iter().map(|k| trigram_key(&k.column));
                                return (i.name.clone(), keys.collect());
                            }
                            let keys = i
                                .keys
                                .iter()
                                .map(|k| {
                                    let column = t.column(&k.column);
                                    let primary_key = column.is_some_and(|c| c.primary_key);
                                    let (collate, nulls_first) = match dialect {
                                        // The primary key keeps PostgreSQL's
                                        // default, NULLS FIRST only descending.
                                        Dialect::Postgres => (
                                            column.is_some_and(|c| is_text(&c.ty)),
                                            k.descending == primary_key,
                                        ),
                                        Dialect::Sqlite => (false, !k.descending),
                                    };
                                    live_key(&k.column, collate, k.descending, nulls_first)
                                })
                                .collect();
                            (i.name.clone(), keys)
                        })
                        .collect(),
                    foreign_keys,
                    primary_key: t
                        .columns
                        .iter()
                        .filter(|c| c.primary_key)
                        .map(|c| c.name.clone())
                        .collect(),
                },
            )
        })
        .collect()
}

/// One key of an index as the live schema reports it: the column, whether
/// it is ordered byte-wise (`COLLATE "C"`), its direction and where NULLs go,
/// always spelled out so the two databases' defaults compare.
fn live_key(column: &str, collate_c: bool, descending: bool, nulls_first: bool) -> String {
    format!(
        "{column}{} {} NULLS {}",
        if collate_c { " COLLATE C" } else { "" },
        if descending { "DESC" } else { "ASC" },
        if nulls_first { "FIRST" } else { "LAST" }
    )
}

/// One key of a trigram index (PostgreSQL's GIN over `gin_trgm_ops`): it
/// has no order, so only its column and access method are compared.
fn trigram_key(column: &str) -> String {
    format!("{column} USING gin")
}

/// A type name in one spelling. A `timestamptz` keeps its fractional
/// precision when it is not PostgreSQL's default (6), as
/// `timestamptz(3)`: Kumo declares milliseconds, and a column without them
/// stores finer values than the API reads.
fn normalise_type(t: &str) -> String {
    match t.to_ascii_lowercase().as_str() {
        "timestamp with time zone" | "timestamptz" | "timestamptz(6)" => "timestamptz".into(),
        "double precision" => "double precision".into(),
        other => other.to_string(),
    }
}

/// Removes the casts and quoting PostgreSQL adds when it stores a default,
/// so `'humanoid'::text` and `'humanoid'` compare equal.
fn normalise_default(d: &str) -> String {
    let mut s = d.trim().to_string();
    loop {
        let trimmed = s.trim();
        if let Some(inner) = trimmed.strip_prefix('(').and_then(|r| r.strip_suffix(')'))
            && (!inner.contains('(') || inner.starts_with("strftime"))
        {
            s = inner.to_string();
            continue;
        }
        match trimmed.rfind("::") {
            // `::text`, `::timestamp with time zone`, and with a precision
            // `::timestamp(3) with time zone`.
            Some(i)
                if trimmed[i + 2..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '(' | ')')) =>
            {
                s = trimmed[..i].to_string();
            }
            _ => break,
        }
    }
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        if inner.parse::<f64>().is_ok() {
            return inner.to_string();
        }
        // PostgreSQL prints jsonb and timestamptz defaults in its own format
        // (`{"a": 1}` with keys reordered, `2024-01-02 03:04:05.25+00`), not
        // as Kumo wrote them, so both sides are brought to one spelling.
        let text = inner.replace("''", "'");
        if let Some(canonical) = canonical_json(&text).or_else(|| canonical_datetime(&text)) {
            return string_literal(&canonical);
        }
    }
    if s.eq_ignore_ascii_case("now()") {
        return "CURRENT_TIMESTAMP".into();
    }
    s.to_string()
}

/// A JSON object or array in compact form with object keys sorted.
fn canonical_json(text: &str) -> Option<String> {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(
                    entries.into_iter().map(|(k, v)| (k, sorted(v))).collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    if !(text.starts_with('{') || text.starts_with('[')) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(sorted(value).to_string())
}

/// A date and time with an offset (`2024-01-02T03:04:05.250Z`,
/// `2024-01-02 03:04:05.25+00`, `…+05:30`) as UTC RFC 3339 with the
/// fraction's trailing zeros removed.
fn canonical_datetime(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut nanos = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = fraction[..digits].parse::<u32>().ok()? * 10_u32.pow(9 - digits as u32);
        rest = &fraction[digits..];
    }
    let offset = if rest.eq_ignore_ascii_case("z") {
        time::UtcOffset::UTC
    } else {
        let sign: i8 = match rest.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let mut parts = rest[1..].split(':');
        let mut part = || -> Option<i8> {
            match parts.next() {
                None => Some(0),
                Some(p) if p.len() == 2 && p.bytes().all(|c| c.is_ascii_digit()) => p.parse().ok(),
                Some(_) => None,
            }
        };
        let (h, m, s) = (part()?, part()?, part()?);
        if parts.next().is_some() {
            return None;
        }
        time::UtcOffset::from_hms(sign * h, sign * m, sign * s).ok()?
    };
    let date = time::Date::from_calendar_date(
        i32::try_from(year).ok()?,
        time::Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let clock = time::Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    let utc = time::PrimitiveDateTime::new(date, clock)
        .assume_offset(offset)
        .to_offset(time::UtcOffset::UTC);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    );
    if utc.nanosecond() != 0 {
        let fraction = format!("{:09}", utc.nanosecond());
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    Some(out)
}

/// Reads every table except Kumo's own bookkeeping tables.
pub async fn read(db: &Database) -> Result<LiveSchema, Error> {
    match db {
        Database::Postgres(pool) => {
            let mut schema = LiveSchema::new();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                   AND table_name NOT LIKE 'kumo\\_%'",
            )
            .fetch_all(pool)
            .await?;
            for name in tables {
                let mut table = LiveTable {
                    columns: BTreeMap::new(),
                    unique_indexes: BTreeMap::new(),
                    indexes: BTreeMap::new(),
                    foreign_keys: BTreeSet::new(),
                    primary_key: Vec::new(),
                };
                let rows = sqlx::query(
                    "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text,
                            datetime_precision::int
                     FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                let checks: Vec<String> = sqlx::query_scalar(
                    "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
                     JOIN pg_class t ON t.oid = c.conrelid
                     WHERE c.contype = 'c' AND t.relname = $1
                       AND t.relnamespace = current_schema()::regnamespace",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for r in rows {
                    let column: String = r.get(0);
                    let checked = checks.iter().any(|c| mentions(c, &column));
                    let mut data_type = r.get::<String, _>(1);
                    if data_type == "timestamp with time zone"
                        && let Some(precision) = r.get::<Option<i32>, _>(4)
                    {
                        data_type = format!("timestamptz({precision})");
                    }
                    table.columns.insert(
                        column,
                        LiveColumn {
                            sql_type: normalise_type(&data_type),
                            nullable: r.get::<String, _>(2) == "YES",
                            default: r.get::<Option<String>, _>(3).map(|d| normalise_default(&d)),
                            checked,
                        },
                    );
                }
                let indexes = sqlx::query(
                    "SELECT i.relname::text, x.indisprimary,
                            array_agg(a.attname::text ORDER BY k.n)
                     FROM pg_index x
                     JOIN pg_class i ON i.oid = x.indexrelid
                     JOIN pg_class t ON t.oid = x.indrelid
                     CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
                     WHERE t.relname = $1 AND x.indisunique
                       AND t.relnamespace = current_schema()::regnamespace
                     GROUP BY i.relname, x.indisprimary",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for r in indexes {
                    let columns: Vec<String> = r.get(2);
                    if r.get::<bool, _>(1) {
                        table.primary_key = columns;
                    } else {
                        table.unique_indexes.insert(r.get(0), columns);
                    }
                }
                // indoption holds a bit for DESC (1) and one for NULLS FIRST
                // (2) per key; indcollation the key's collation (0 when its
                // type has none).
                let keys = sqlx::query(
                    "SELECT i.relname::text, a.attname::text,
                            (x.indoption[k.n - 1] & 1) <> 0,
                            (x.indoption[k.n - 1] & 2) <> 0,
                            COALESCE(c.collname::text, ''),
                            am.amname::text
                     FROM pg_index x
                     JOIN pg_class i ON i.oid = x.indexrelid
                     JOIN pg_am am ON am.oid = i.relam
                     JOIN pg_class t ON t.oid = x.indrelid
                     CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
                     LEFT JOIN pg_collation c ON c.oid = x.indcollation[k.n - 1]
                     WHERE t.relname = $1 AND NOT x.indisunique
                       AND t.relnamespace = current_schema()::regnamespace
                     ORDER BY i.relname, k.n",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for r in keys {
                    let collation: String = r.get(4);
                    let column: String = r.get(1);
                    let key = match r.get::<String, _>(5).as_str() {
                        "gin" => trigram_key(&column),
                        _ => live_key(&column, collation == "C", r.get(2), r.get(3)),
                    };
                    table.indexes.entry(r.get(0)).or_default().push(key);
                }
                let fks = sqlx::query(
                    "SELECT a.attname::text, rt.relname::text, ra.attname::text, c.confdeltype::text
                     FROM pg_constraint c
                     JOIN pg_class t ON t.oid = c.conrelid
                     JOIN pg_class rt ON rt.oid = c.confrelid
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1]
                     JOIN pg_attribute ra ON ra.attrelid = rt.oid AND ra.attnum = c.confkey[1]
                     WHERE c.contype = 'f' AND t.relname = $1
                       AND t.relnamespace = current_schema()::regnamespace",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for r in fks {
                    let rule = match r.get::<String, _>(3).as_str() {
                        "c" => "CASCADE",
                        "n" => "SET NULL",
                        "r" => "RESTRICT",
                        "d" => "SET DEFAULT",
                        _ => "NO ACTION",
                    };
                    table
                        .foreign_keys
                        .insert((r.get(0), r.get(1), r.get(2), rule.to_string()));
                }
                schema.insert(name, table);
            }
            Ok(schema)
        }
        Database::Sqlite(pool) => {
            let mut schema = LiveSchema::new();
            let tables = sqlx::query(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'table'
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'kumo\\_%' ESCAPE '\\'",
            )
            .fetch_all(pool)
            .await?;
            for t in tables {
                let name: String = t.get(0);
                let create_sql: String = t.get(1);
                let mut table = LiveTable {
                    columns: BTreeMap::new(),
                    unique_indexes: BTreeMap::new(),
                    indexes: BTreeMap::new(),
                    foreign_keys: BTreeSet::new(),
                    primary_key: Vec::new(),
                };
                let columns = sqlx::query(
                    "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for c in columns {
                    let column: String = c.get(0);
                    if c.get::<i64, _>(4) > 0 {
                        table.primary_key.push(column.clone());
                    }
                    let checked = column_has_check(&create_sql, &column);
                    table.columns.insert(
                        column,
                        LiveColumn {
                            sql_type: normalise_type(&c.get::<String, _>(1)),
                            nullable: c.get::<i64, _>(2) == 0 && c.get::<i64, _>(4) == 0,
                            default: c.get::<Option<String>, _>(3).map(|d| normalise_default(&d)),
                            checked,
                        },
                    );
                }
                let indexes = sqlx::query(
                    "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND origin = 'c'",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for i in indexes {
                    let index: String = i.get(0);
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                            .bind(&index)
                            .fetch_all(pool)
                            .await?;
                    table.unique_indexes.insert(index, columns);
                }
                let indexes: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 0 AND origin = 'c'",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for index in indexes {
                    // SQLite puts NULLs first ascending and last descending,
                    // and indexes can't say otherwise.
                    let keys = sqlx::query(
                        "SELECT name, \"desc\", coll FROM pragma_index_xinfo(?1)
                         WHERE key = 1 ORDER BY seqno",
                    )
                    .bind(&index)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(|k| {
                        let descending = k.get::<i64, _>(1) != 0;
                        let collation: String = k.get(2);
                        live_key(
                            &k.get::<String, _>(0),
                            collation == "C",
                            descending,
                            !descending,
                        )
                    })
                    .collect();
                    table.indexes.insert(index, keys);
                }
                let fks = sqlx::query(
                    "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?1)",
                )
                .bind(&name)
                .fetch_all(pool)
                .await?;
                for f in fks {
                    table
                        .foreign_keys
                        .insert((f.get(0), f.get(1), f.get(2), f.get(3)));
                }
                schema.insert(name, table);
            }
            Ok(schema)
        }
    }
}

/// Whether a CHECK definition as PostgreSQL prints it refers to `column`.
/// String literals (`'admin'::text` in an enum's list) and the type names
/// after `::` are not column references, so they are skipped: a column named
/// `admin` or `text` is not checked by an enum's CHECK.
fn mentions(check: &str, column: &str) -> bool {
    let mut chars = check.chars().peekable();
    let mut after_cast = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // '' inside a literal is an escaped quote: two literals in a row.
                while let Some(c) = chars.next() {
                    if c == '\'' && chars.peek() != Some(&'\'') {
                        break;
                    } else if c == '\'' {
                        chars.next();
                    }
                }
            }
            '"' => {
                let mut name = String::new();
                while let Some(c) = chars.next() {
                    if c == '"' && chars.peek() == Some(&'"') {
                        chars.next();
                        name.push('"');
                    } else if c == '"' {
                        break;
                    } else {
                        name.push(c);
                    }
                }
                if name == column {
                    return true;
                }
            }
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                after_cast = true;
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::from(c);
                while let Some(&c) = chars.peek() {
                    if !(c.is_ascii_alphanumeric() || c == '_') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                if after_cast {
                    // A type name; `double precision` and `timestamp with
                    // time zone` continue for a few more words.
                    let continues = matches!(
                        word.as_str(),
                        "double" | "timestamp" | "time" | "with" | "without" | "character"
                    );
                    after_cast = continues;
                } else if word == column {
                    return true;
                }
            }
            c if c.is_whitespace() => {}
            _ => after_cast = false,
        }
    }
    false
}

/// SQLite keeps the CREATE TABLE text, with each column's CHECK in the
/// column's own definition, `"name" TYPE … CHECK (…)`. `ALTER TABLE ADD
/// COLUMN` appends definitions as `, "x" …, "y" …` on one line before the
/// closing parenthesis, so definitions are found by splitting the column list
/// at top-level commas, not by lines.
fn column_has_check(create_sql: &str, column: &str) -> bool {
    let quoted = format!("\"{column}\" ");
    column_definitions(create_sql)
        .iter()
        .any(|def| def.starts_with(&quoted) && def.contains("CHECK ("))
}

/// The comma-separated items inside the outermost parentheses of a CREATE
/// TABLE statement, trimmed.
fn column_definitions(create_sql: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0_u32;
    let mut quote: Option<char> = None;
    let mut start = None;
    for (i, c) in create_sql.char_indices() {
        if let Some(q) = quote {
            // A doubled quote closes and reopens: the same state either way.
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '[' => quote = Some(']'),
            '(' => {
                depth += 1;
                if depth == 1 {
                    start = Some(i + 1);
                }
            }
            ')' => {
                if depth == 1
                    && let Some(s) = start.take()
                {
                    items.push(create_sql[s..i].trim());
                }
                depth = depth.saturating_sub(1);
            }
            ',' if depth == 1 => {
                if let Some(s) = start {
                    items.push(create_sql[s..i].trim());
                }
                start = Some(i + 1);
            }
            _ => {}
        }
    }
    items
}

/// What differs between the table the recorded schema expects and the live
/// one, one line each (`column label: type INTEGER, expected TEXT`), for
/// `kumo db status` to name the drift rather than just report it.
pub fn differences(expected: &LiveTable, live: &LiveTable) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in &expected.columns {
        let Some(have) = live.columns.get(name) else {
            out.push(format!("missing column {name}"));
            continue;
        };
        let mut what = Vec::new();
        if have.sql_type != want.sql_type {
            // Migrations by Kumo versions before `TIMESTAMPTZ(3)`.
            let hint = if have.sql_type == "timestamptz" && want.sql_type == "timestamptz(3)" {
                " (microseconds: migrated by an older Kumo; see \"Datetime precision on PostgreSQL\" in docs/migrations.md)"
            } else {
                ""
            };
            what.push(format!(
                "type {}, expected {}{hint}",
                have.sql_type, want.sql_type
            ));
        }
        if have.nullable != want.nullable {
            let spell = |nullable: bool| if nullable { "NULL" } else { "NOT NULL" };
            what.push(format!(
                "{}, expected {}",
                spell(have.nullable),
                spell(want.nullable)
            ));
        }
        if have.default != want.default {
            let spell = |d: &Option<String>| d.clone().unwrap_or_else(|| "no default".into());
            what.push(format!(
                "default {}, expected {}",
                spell(&have.default),
                spell(&want.default)
            ));
        }
        if have.checked != want.checked {
            what.push(if want.checked {
                "no CHECK constraint, expected one".to_string()
            } else {
                "a CHECK constraint, expected none".to_string()
            });
        }
        if !what.is_empty() {
            out.push(format!("column {name}: {}", what.join("; ")));
        }
    }
    for name in live.columns.keys() {
        if !expected.columns.contains_key(name) {
            out.push(format!("extra column {name}"));
        }
    }
    if live.primary_key != expected.primary_key {
        out.push(format!(
            "primary key ({}), expected ({})",
            live.primary_key.join(", "),
            expected.primary_key.join(", ")
        ));
    }
    for (kind, want, have) in [
        (
            "unique index",
            &expected.unique_indexes,
            &live.unique_indexes,
        ),
        ("index", &expected.indexes, &live.indexes),
    ] {
        for (name, keys) in want {
            match have.get(name) {
                None => out.push(format!("missing {kind} {name} ({})", keys.join(", "))),
                Some(live_keys) if live_keys != keys => out.push(format!(
                    "{kind} {name} on ({}), expected ({})",
                    live_keys.join(", "),
                    keys.join(", ")
                )),
                Some(_) => {}
            }
        }
        for (name, keys) in have {
            if !want.contains_key(name) {
                out.push(format!("extra {kind} {name} ({})", keys.join(", ")));
            }
        }
    }
    let spell = |(column, table, references, on_delete): &(String, String, String, String)| {
        format!("foreign key {column} → {table}({references}) ON DELETE {on_delete}")
    };
    for fk in expected.foreign_keys.difference(&live.foreign_keys) {
        out.push(format!("missing {}", spell(fk)));
    }
    for fk in live.foreign_keys.difference(&expected.foreign_keys) {
        out.push(format!("extra {}", spell(fk)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{normalise_default, normalise_type};

    #[test]
    fn postgres_defaults_normalise_to_the_literal_kumo_wrote() {
        assert_eq!(normalise_default("'humanoid'::text"), "'humanoid'");
        assert_eq!(normalise_default("'-1'::bigint"), "-1");
        assert_eq!(normalise_default("'[]'::jsonb"), "'[]'");
        assert_eq!(normalise_default("now()"), "CURRENT_TIMESTAMP");
        assert_eq!(normalise_default("false"), "false");
    }

    #[test]
    fn check_detection_ignores_literals_and_finds_added_columns() {
        use super::{column_has_check, mentions};
        let enum_check = "CHECK ((role = ANY (ARRAY['admin'::text, 'it''s'::text])))";
        assert!(mentions(enum_check, "role"));
        assert!(!mentions(enum_check, "admin"));
        assert!(!mentions(enum_check, "text"));
        assert!(!mentions(enum_check, "s"));
        assert!(mentions("CHECK ((\"select\" >= 1))", "select"));
        assert!(!mentions(
            "CHECK ((x >= '1'::double precision))",
            "precision"
        ));
        assert!(mentions("CHECK (((x)::text <> ''::text) AND (y > 0))", "y"));

        let sql = "CREATE TABLE \"t\" (\n  \"id\" TEXT PRIMARY KEY,\n  \"a\" TEXT DEFAULT 'x, (y)' CONSTRAINT \"t_a_check\" CHECK (length(\"a\") >= 1),\n  \"u\" TEXT NOT NULL\n, \"b\" INTEGER, \"c\" INTEGER CONSTRAINT \"t_c_check\" CHECK (\"c\" >= 1)) STRICT";
        assert!(column_has_check(sql, "a"));
        assert!(!column_has_check(sql, "u"));
        assert!(!column_has_check(sql, "b"));
        assert!(column_has_check(sql, "c"));
        assert!(!column_has_check(sql, "id"));
    }

    #[test]
    fn postgres_json_and_datetime_defaults_normalise_like_the_written_ones() {
        assert_eq!(
            normalise_default(r#"'{"volume": [1, 2], "theme": "it''s"}'::jsonb"#),
            normalise_default(r#"'{"theme":"it''s","volume":[1,2]}'::jsonb"#),
        );
        assert_eq!(
            normalise_default("'2024-01-02 03:04:05.25+00'::timestamp with time zone"),
            "'2024-01-02T03:04:05.25Z'"
        );
        assert_eq!(
            normalise_default("'2024-01-02T03:04:05.250Z'"),
            "'2024-01-02T03:04:05.25Z'"
        );
        assert_eq!(
            normalise_default("'2024-01-02 08:34:05+05:30'::timestamp with time zone"),
            "'2024-01-02T03:04:05Z'"
        );
        assert_eq!(normalise_default("'2024-01-02'::date"), "'2024-01-02'");
        assert_eq!(normalise_default("'not [json'"), "'not [json'");
        // A `TIMESTAMPTZ(3)` column's default is cast with the precision.
        assert_eq!(
            normalise_default("'2024-01-02 03:04:05.25+00'::timestamp(3) with time zone"),
            "'2024-01-02T03:04:05.25Z'"
        );
    }

    #[test]
    fn a_timestamptz_keeps_its_precision_unless_it_is_the_default() {
        assert_eq!(normalise_type("TIMESTAMPTZ(3)"), "timestamptz(3)");
        assert_eq!(normalise_type("timestamptz(6)"), "timestamptz");
        assert_eq!(normalise_type("TIMESTAMPTZ"), "timestamptz");
        assert_eq!(normalise_type("timestamp with time zone"), "timestamptz");
    }
}
