//! The ways an API operation can fail, each with the fields it concerns, and
//! the mapping from database errors to them. The HTTP layer turns each into
//! its status code; nothing here is a 500 unless the database itself failed.

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
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
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
            QueryError::Database(_) => "internal",
        }
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
