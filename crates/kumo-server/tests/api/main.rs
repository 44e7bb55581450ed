//! The resource API end to end: real PostgreSQL and SQLite databases,
//! migrated from resource files, driven through the axum router in-process.
//! Every test runs on both databases.

mod account_links;
mod account_resources;
mod admin;
mod admin_only;
mod audit_retention;
mod auth_http;
mod auth_pages;
mod auth_support;
mod batches;
mod busy;
mod crud;
mod datetimes;
mod events;
mod filters;
mod fuzz;
mod fuzz_found;
mod harness;
mod known;
mod magic_links;
mod openapi;
mod openapi_auth;
mod pages;
mod password_limits;
mod passwords;
mod relations;
mod request_log;
mod sessions;
mod snapshots;
mod unreadable_results;
