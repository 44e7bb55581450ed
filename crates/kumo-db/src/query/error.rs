//! The ways an API operation can fail, each with the fields it concerns, and
//! the mapping from database errors to them. The HTTP layer turns each into
//! its status code; nothing here is a 500 unless the database itself failed,
//! and a database too busy to answer is a 503 ([`QueryError::Unavailable`]).

use std::collections::BTreeMap;

/// Messages per field; the key is a field name, or `[i].field` for item `i`
/// of a batch.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A malformed request: unknown parameter, field or operator, bad cursor.
    #[error("{message}")]
    BadRequest {
        message: String,
        fields: FieldErrors,
    },
    /// Anonymous and not allowed: signing in might help.
    #[error("sign in to do this")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// A unique key or identity already taken, or a record still referenced.
    #[error("{message}")]
    Conflict {
        message: String,
        fields: FieldErrors,
    },
    /// Values that break the resource's rules.
    #[error("{message}")]
    Invalid {
        message: String,
        fields: FieldErrors,
    },
    /// The database is too busy to answer now: no pooled connection came
    /// free in time, SQLite stayed locked past its busy timeout, PostgreSQL
    /// kept finding deadlocks, or a statement ran past
    /// `[database] statement_timeout`. Nothing was changed and the same
    /// request may succeed later (503 with `Retry-After`).
    #[error("the server is busy ({0}); nothing was changed, try again shortly")]
    Unavailable(Busy),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

/// Why the database could not answer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Every pooled connection stayed in use past the acquire timeout.
    Pool,
    /// SQLite stayed locked (SQLITE_BUSY, SQLITE_LOCKED) past its busy
    /// timeout.
    Locked,
    /// PostgreSQL aborted the transaction to break a deadlock (40P01) or a
    /// serialization failure (40001). A write retries these itself first.
    Deadlock,
    /// A statement ran past `[database] statement_timeout` (57014).
    Timeout,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Busy::Pool => "no database connection came free in time",
            Busy::Locked => "the database stayed locked",
            Busy::Deadlock => "concurrent writes kept colliding",
            Busy::Timeout => "a database statement took too long",
        })
    }
}

/// Sorts a database error: the ones that say the database is busy become
/// [`QueryError::Unavailable`] (503), the rest stay internal (500).
impl From<sqlx::Error> for QueryError {
    fn from(e: sqlx::Error) -> QueryError {
        match busy(&e) {
            Some(cause) => QueryError::Unavailable(cause),
            None => QueryError::Database(e),
        }
    }
}

fn busy(e: &sqlx::Error) -> Option<Busy> {
    if matches!(e, sqlx::Error::PoolTimedOut) {
        return Some(Busy::Pool);
    }
    let db = e.as_database_error()?;
    let code = db.code()?;
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Extended result codes: the primary code is the low byte.
        let primary = code.parse::<i32>().ok()? & 0xff;
        return matches!(primary, 5 | 6).then_some(Busy::Locked);
    }
    match code.as_ref() {
        "40P01" | "40001" => Some(Busy::Deadlock),
        "57014" => Some(Busy::Timeout),
        _ => None,
    }
}

impl QueryError {
    pub fn bad_request(message: impl Into<String>) -> QueryError {
        QueryError::BadRequest {
            message: message.into(),
            fields: FieldErrors::new(),
        }
    }

    pub fn bad_field(field: &str, message: impl Into<String>) -> QueryError {
        let message = message.into();
        QueryError::BadRequest {
            fields: FieldErrors::from([(field.to_owned(), vec![message.clone()])]),
            message,
        }
    }

    pub fn invalid(fields: FieldErrors) -> QueryError {
        QueryError::Invalid {
            message: summary(&fields, "invalid value"),
            fields,
        }
    }

    pub fn conflict(fields: FieldErrors) -> QueryError {
        QueryError::Conflict {
            message: summary(&fields, "conflict"),
            fields,
        }
    }

    /// The code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::BadRequest { .. } => "bad_request",
            QueryError::Unauthenticated => "unauthenticated",
            QueryError::Forbidden(_) => "forbidden",
            QueryError::NotFound => "not_found",
            QueryError::Conflict { .. } => "conflict",
            QueryError::Invalid { .. } => "invalid",
            QueryError::Unavailable(_) => "unavailable",
            QueryError::Database(_) => "internal",
        }
    }

    /// A PostgreSQL deadlock or serialization failure: the transaction was
    /// rolled back and running it again may well succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, QueryError::Unavailable(Busy::Deadlock))
    }

    pub fn fields(&self) -> Option<&FieldErrors> {
        match self {
            QueryError::BadRequest { fields, .. }
            | QueryError::Conflict { fields, .. }
            | QueryError::Invalid { fields, .. } => Some(fields),
            _ => None,
        }
    }

    /// The failures of several batch items as one answer: a conflict (409)
    /// when every item conflicts, otherwise invalid (422), naming every
    /// field of every item either way.
    pub(crate) fn merge(failures: Vec<QueryError>) -> QueryError {
        let all_conflicts = failures
            .iter()
            .all(|f| matches!(f, QueryError::Conflict { .. }));
        let messages: Vec<String> = failures.iter().map(ToString::to_string).collect();
        let mut fields = FieldErrors::new();
        for failure in failures {
            if let QueryError::Conflict { fields: f, .. } | QueryError::Invalid { fields: f, .. } =
                failure
            {
                for (key, mut msgs) in f {
                    fields.entry(key).or_default().append(&mut msgs);
                }
            }
        }
        let message = match messages.as_slice() {
            [one] => one.clone(),
            _ => format!("{} items were refused; see `fields`", messages.len()),
        };
        if all_conflicts {
            QueryError::Conflict { message, fields }
        } else {
            QueryError::Invalid { message, fields }
        }
    }

    /// Prefixes field names with the batch item they belong to.
    pub(crate) fn in_item(self, index: usize) -> QueryError {
        let prefix = |fields: FieldErrors| -> FieldErrors {
            fields
                .into_iter()
                .map(|(k, v)| (format!("[{index}].{k}"), v))
                .collect()
        };
        match self {
            QueryError::Invalid { fields, .. } => QueryError::invalid(prefix(fields)),
            QueryError::Conflict { message, fields } => QueryError::Conflict {
                message: format!("[{index}]: {message}"),
                fields: prefix(fields),
            },
            QueryError::Forbidden(message) => {
                QueryError::Forbidden(format!("[{index}]: {message}"))
            }
            other => other,
        }
    }
}

/// "name: is required" for one field, a count for several.
fn summary(fields: &FieldErrors, fallback: &str) -> String {
    let mut all = fields
        .iter()
        .flat_map(|(k, msgs)| msgs.iter().map(move |m| format!("{k}: {m}")));
    match (all.next(), all.next()) {
        (Some(one), None) => one,
        (Some(_), Some(_)) => format!(
            "{} problems; see `fields`",
            fields.values().map(Vec::len).sum::<usize>()
        ),
        _ => fallback.to_owned(),
    }
}

pub(crate) fn one(field: &str, message: impl Into<String>) -> FieldErrors {
    FieldErrors::from([(field.to_owned(), vec![message.into()])])
}
