//! Database integration tests for kumo-db: generated migrations applied to
//! real PostgreSQL and SQLite databases.
//!
//! - [`api_keys`]: an API key reaches the engine as such and decides every
//!   policy as its owner does (refused with 403, not an anonymous 401).
//! - [`audited_writes`]: a write with an audit note commits its
//!   `audit_event` row (before and after, public fields) in its own
//!   transaction; a refused write leaves none; a row that cannot be
//!   written rolls the write back.
//! - [`accounts`]: the account store the auth layer writes through: one
//!   form for rows on both databases, one winner among racing consumers of
//!   a token, nothing kept from an uncommitted transaction.
//! - [`live_schema`]: a schema using every feature migrates to exactly the
//!   schema introspection expects, enforces its constraints, rolls back.
//! - [`sql_snapshots`]: the generated SQL for typical changes, reviewed as
//!   insta snapshots, and applied and rolled back on both databases.
//! - [`property`]: random sequences of resource edits, applied step by step
//!   to both databases, keeping the data in untouched columns.
//! - [`runner`]: the order in which migrations are rolled back.
//! - [`merge`]: two git branches that change the same table merge into
//!   migrations that apply (or a real conflict refused clearly).
//! - [`explain`]: the indexes Kumo creates are the ones the list queries
//!   read, by each database's own query plan.
//! - [`datetime_precision`]: PostgreSQL stores datetimes to the
//!   millisecond, and an older database's microsecond columns are migrated.
//! - [`pool`]: a connection the database dropped while idle is replaced.
//! - [`include_order`]: includes embed the oldest related records first.
//! - [`policy_exhaustive`]: policies compiled to SQL decide what the
//!   reference evaluator decides for every expression of a bounded grammar,
//!   every actor kind and every row of a small exhaustive domain.
//! - [`policy_props`]: policies compiled to SQL decide what the reference
//!   evaluator decides, on random policies, actors and rows; hidden records
//!   leak nothing through filters, sorts and includes.
//!
//! PostgreSQL comes from `KUMO_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432`); every test creates its own
//! `kumo_test_<uuid>` database and drops it again. SQLite databases live in a
//! temporary directory.

mod accounts;
mod api_keys;
mod audited_writes;
mod datetime_precision;
mod explain;
mod harness;
mod include_order;
mod live_schema;
mod merge;
mod policy_exhaustive;
mod policy_props;
mod pool;
mod property;
mod runner;
mod sql_snapshots;
