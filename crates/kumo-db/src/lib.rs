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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad database URL {0}")]
    BadUrl(String),
    #[error("the {0} does not exist: run `kumo db create` (or `kumo setup`, which also migrates)")]
    Missing(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("could not read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("migration {id} failed and was rolled back, nothing changed: {source}")]
    MigrationFailed { id: String, source: sqlx::Error },
}
