//! Kumo's data layer: turning resource changes into migrations for
//! PostgreSQL and SQLite, applying them, reading the live schema back, and
//! loading seeds.
//!
//! - [`diff`]: recorded tables vs. declared tables → changes.
//! - [`sql`]: changes → SQL per dialect (SQLite table rebuilds included).
//! - [`files`]: migration folders and the recorded schema on disk.
//! - [`db`]: connecting, creating and dropping databases.
//! - [`runner`]: migrate, rollback, status.
//! - [`introspect`]: the live schema, normalised for comparison.
//! - [`seed`]: idempotent seed loading.

pub mod db;
pub mod diff;
pub mod files;
pub mod introspect;
pub mod query;
pub mod runner;
pub mod seed;
pub mod sql;

use std::path::PathBuf;

/// The data layer's errors. Each message is complete, its cause included
/// once (a database's own message, not sqlx's wrapping of it); none has a
/// `source()`, so printing the chain (`{:#}`) does not say the cause again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad database URL {0}")]
    BadUrl(String),
    #[error("the {0} does not exist: run `kumo db create` (or `kumo setup`, which also migrates)")]
    Missing(String),
    #[error("database error: {}", sql_message(.0))]
    Sql(sqlx::Error),
    /// PostgreSQL does not answer at `at` (host:port).
    #[error(
        "cannot connect to PostgreSQL at {at}: {}\nIs PostgreSQL running at {at}, and is DATABASE_URL (or [database] url in kumo.toml) right? (In a Kumo checkout, scripts/services.sh installs and starts it.)",
        sql_message(.error)
    )]
    Unreachable { at: String, error: sqlx::Error },
    #[error("could not read or write {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// A rebuild's error names its temporary table (`_kumo_new_avatars`):
    /// the message says the table the user knows (`avatars`).
    #[error(
        "migration {id} failed and was rolled back, nothing changed: {}",
        sql_message(.error).replace(sql::REBUILD_TEMP_PREFIX, "")
    )]
    MigrationFailed { id: String, error: sqlx::Error },
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Sql(error)
    }
}

/// What went wrong, said once: the database's own message for an error it
/// returned (sqlx prefixes it with "error returned from database" and repeats
/// it as its source), the I/O error for a connection that failed.
pub fn sql_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(e) => e.message().to_string(),
        sqlx::Error::Io(e) => e.to_string(),
        e => e.to_string(),
    }
}
