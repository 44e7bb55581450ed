//! One handle over the two databases Kumo runs on.
//!
//! sqlx's `Any` driver only knows basic types, so Kumo keeps an enum over the
//! two real pools and matches where the SQL differs.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgPool, SqlitePool};

use crate::Error;
use crate::sql::{Dialect, ident};

/// Where a database lives, parsed from its URL.
#[derive(Debug, Clone)]
pub enum Target {
    Postgres(PgConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|e| {
                Error::BadUrl(format!(
                    "{}: {}",
                    redact(url),
                    redact_in(&e.to_string(), url)
                ))
            })?;
            Ok(Target::Postgres(plain_on_loopback(url, options)))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| {
                    Error::BadUrl(format!(
                        "{}: {}",
                        redact(url),
                        redact_in(&e.to_string(), url)
                    ))
                })?
                .foreign_keys(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            Ok(Target::Sqlite(options))
        } else {
            Err(Error::BadUrl(format!(
                "{}: the database URL must start with sqlite:// or postgres://",
                redact(url)
            )))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Target::Postgres(_) => Dialect::Postgres,
            Target::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// A description safe to print (no password).
    pub fn describe(&self) -> String {
        match self {
            Target::Postgres(o) => format!(
                "PostgreSQL database `{}` on {}:{}",
                o.get_database().unwrap_or("postgres"),
                o.get_host(),
                o.get_port()
            ),
            Target::Sqlite(o) => format!("SQLite database {}", o.get_filename().display()),
        }
    }

    fn sqlite_path(&self) -> Option<PathBuf> {
        match self {
            Target::Sqlite(o) => Some(o.get_filename().to_path_buf()),
            Target::Postgres(_) => None,
        }
    }

    fn is_memory(&self) -> bool {
        self.sqlite_path().is_some_and(|p| is_memory_path(&p))
    }

    /// Whether the database exists.
    pub async fn exists(&self) -> Result<bool, Error> {
        match self {
            Target::Sqlite(_) => {
                Ok(self.is_memory() || self.sqlite_path().is_some_and(|p| p.exists()))
            }
            Target::Postgres(o) => {
                let name = o.get_database().unwrap_or("postgres").to_string();
                // Every PostgreSQL operation starts here, so this is where a
                // server that is not running is told apart.
                let mut conn =
                    o.clone()
                        .database("postgres")
                        .connect()
                        .await
                        .map_err(|e| match e {
                            sqlx::Error::Io(_) => Error::Unreachable {
                                at: format!("{}:{}", o.get_host(), o.get_port()),
                                error: e,
                            },
                            e => Error::Sql(e),
                        })?;
                let found: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                        .bind(&name)
                        .fetch_optional(&mut conn)
                        .await?;
                conn.close().await?;
                Ok(found.is_some())
            }
        }
    }

    /// Creates the database. Returns false when it already existed.
    pub async fn create(&self) -> Result<bool, Error> {
        if self.exists().await? {
            return Ok(false);
        }
        match self {
            Target::Sqlite(o) => {
                let path = o.get_filename();
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| Error::Io {
                        path: parent.to_path_buf(),
                        error: e,
                    })?;
                }
                let conn = o.clone().create_if_missing(true).connect().await?;
                conn.close().await?;
            }
            Target::Postgres(o) => {
                let name = o.get_database().unwrap_or("postgres").to_string();
                let mut conn = o.clone().database("postgres").connect().await?;
                sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {}", ident(&name))))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
            }
        }
        Ok(true)
    }

    /// Drops the database. Returns false when there was none.
    pub async fn drop_database(&self) -> Result<bool, Error> {
        if !self.exists().await? {
            return Ok(false);
        }
        match self {
            Target::Sqlite(o) => {
                let path = o.get_filename().to_path_buf();
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let file = PathBuf::from(file);
                    match std::fs::remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(Error::Io {
                                path: file,
                                error: e,
                            });
                        }
                    }
                }
            }
            Target::Postgres(o) => {
                let name = o.get_database().unwrap_or("postgres").to_string();
                let mut conn = o.clone().database("postgres").connect().await?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    ident(&name)
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await?;
            }
        }
        Ok(true)
    }

    /// The same database, with every statement on PostgreSQL cut off (and
    /// answered 503) after `millis` milliseconds; 0 leaves statements
    /// unlimited. For the pool that serves the API: one expensive query
    /// must not hold a pooled connection forever. Migrations and rollbacks
    /// open their pools without it, so a long `CREATE INDEX` still
    /// finishes. SQLite has no statement timeout; its writers wait at most
    /// its busy timeout (5 s) for the lock.
    pub fn with_statement_timeout(self, millis: u64) -> Target {
        match self {
            // Sent in the startup packet, so every pooled connection,
            // including one reopened later, has it before its first query.
            Target::Postgres(o) if millis > 0 => {
                Target::Postgres(o.options([("statement_timeout", millis)]))
            }
            other => other,
        }
    }

    /// Opens a pool of [`default_pool_size`] connections. A missing
    /// database is an error that says how to create it.
    pub async fn connect(&self) -> Result<Database, Error> {
        self.connect_pool(default_pool_size()).await
    }

    /// Opens a pool of at most `size` connections.
    pub async fn connect_pool(&self, size: u32) -> Result<Database, Error> {
        if !self.exists().await? {
            return Err(Error::Missing(self.describe()));
        }
        let size = size.max(1);
        Ok(match self {
            Target::Postgres(o) => Database::Postgres(
                PgPoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(Duration::from_secs(5))
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
                    .connect_with(o.clone())
                    .await?,
            ),
            Target::Sqlite(o) => Database::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(o.clone())
                    .await?,
            ),
        })
    }
}

/// A pooled connection idle for longer than this is pinged before it is
/// handed out.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// sqlx pings a PostgreSQL connection both when it goes back to the pool and
/// (by default) when it comes out: two round trips for every query, which
/// cost a list request 12% of the server's CPU and a round trip's latency.
/// The ping on release stays and catches a connection that broke during its
/// use; the one on acquire only matters for a connection that sat idle while
/// the database dropped it (a restart, an idle timeout, a proxy), so only a
/// connection idle for [`PING_IF_IDLE_FOR`] is pinged. Under load,
/// connections are reused within milliseconds and never pay for it.
async fn ping_if_idle(
    conn: &mut sqlx::PgConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    if meta.idle_for >= PING_IF_IDLE_FOR {
        // A failed ping discards the connection; the pool opens another.
        return Ok(conn.ping().await.is_ok());
    }
    Ok(true)
}

/// Whether a SQLite "file name" is an in-memory database (sqlx names
/// `sqlite::memory:` `file:sqlx-in-memory-<n>`).
fn is_memory_path(path: &std::path::Path) -> bool {
    let name = path.to_string_lossy();
    name.is_empty() || name.starts_with(":memory:") || name.starts_with("file:sqlx-in-memory-")
}

/// A PostgreSQL server on this machine is reached without TLS unless the
/// URL (`sslmode=`) or `PGSSLMODE` asks for it. The driver's default,
/// `prefer`, encrypts loopback traffic that never leaves the host, which
/// cost the server and PostgreSQL CPU on every query (BENCHMARKS.md).
fn plain_on_loopback(url: &str, options: PgConnectOptions) -> PgConnectOptions {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let asked = query
        .split('&')
        .any(|p| p.starts_with("sslmode=") || p.starts_with("ssl-mode="))
        || std::env::var_os("PGSSLMODE").is_some();
    let host = options.get_host();
    let loopback = host == "localhost"
        || host.starts_with('/')
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback && !asked {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    }
}

/// `[database] statement_timeout` when it is not set: ten seconds, far
/// beyond any request the API answers normally.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 10_000;

/// Connections per pool when `[database] pool_size` is not set: four per
/// CPU core, from 4 to 32. More connections than the machine can serve
/// only make the database switch between them: on 2 cores, 8 connections
/// answered get-by-id 10% faster than 16, with a lower p99 (BENCHMARKS.md).
pub fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    (cores * 4).clamp(4, 32)
}

/// Hides the secrets in a URL before it is printed or logged: the password
/// of `user:password@`, and the value of every query parameter whose name
/// says it is one (`password`, `sslpassword`, `token`, `api_key`, `secret`…).
pub fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => head.to_string(),
            },
            None => head.to_string(),
        },
        None => head.to_string(),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                _ => param.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// Removes every secret of `url` (see [`redact`]) from `text`, for messages
/// (a driver's error, say) that may quote the URL or a part of it.
fn redact_in(text: &str, url: &str) -> String {
    let mut secrets: Vec<&str> = Vec::new();
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    if let Some((_, rest)) = head.split_once("://")
        && let Some((userinfo, _)) = rest.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        secrets.push(password);
    }
    for param in query.split('&') {
        if let Some((name, value)) = param.split_once('=')
            && is_secret_param(name)
        {
            secrets.push(value);
        }
    }
    let mut text = text.replace(url, &redact(url));
    for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***");
    }
    text
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token", "key"]
        .iter()
        .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssl_mode(url: &str) -> PgSslMode {
        match Target::parse(url).expect("a URL") {
            Target::Postgres(o) => o.get_ssl_mode(),
            Target::Sqlite(_) => unreachable!("a postgres URL"),
        }
    }

    #[test]
    fn a_local_postgres_is_reached_without_tls_unless_asked() {
        // The test environment must not decide for the URL.
        if std::env::var_os("PGSSLMODE").is_some() {
            panic!("unset PGSSLMODE to run this test");
        }
        for local in [
            "postgres://u@127.0.0.1:5432/x",
            "postgres://u@localhost/x",
            "postgres://u@[::1]:5432/x",
        ] {
            assert!(matches!(ssl_mode(local), PgSslMode::Disable), "{local}");
        }
        assert!(matches!(
            ssl_mode("postgres://u@127.0.0.1/x?sslmode=require"),
            PgSslMode::Require
        ));
        assert!(matches!(
            ssl_mode("postgres://u@db.example.com/x"),
            PgSslMode::Prefer
        ));
    }

    #[test]
    fn redact_masks_passwords_in_userinfo_and_query() {
        assert_eq!(
            redact("postgres://u:hunter2@h:5432/x?sslmode=disable&password=hunter3"),
            "postgres://u:***@h:5432/x?sslmode=disable&password=***"
        );
        assert_eq!(
            redact(
                "postgres://u@h/x?PassWord=a&sslpassword=b&api_key=c&token=d&client_secret=e&x=f"
            ),
            "postgres://u@h/x?PassWord=***&sslpassword=***&api_key=***&token=***&client_secret=***&x=f"
        );
        assert_eq!(redact("sqlite://data/kumo.db"), "sqlite://data/kumo.db");
        assert_eq!(
            redact("sqlite://data/kumo.db?mode=rwc&key=k"),
            "sqlite://data/kumo.db?mode=rwc&key=***"
        );
    }

    #[test]
    fn a_bad_url_error_never_shows_a_query_password() {
        for url in [
            "postgres://u@h:notaport/x?password=hunter2",
            "postgres://u:hunter2@h/x?sslmode=bogus",
            "sqlite://data/kumo.db?mode=bogus&password=hunter2",
            "mysql://u@h/x?password=hunter2",
        ] {
            let message = Target::parse(url).unwrap_err().to_string();
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}

#[derive(Debug, Clone)]
pub enum Database {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Database {
    pub fn dialect(&self) -> Dialect {
        match self {
            Database::Postgres(_) => Dialect::Postgres,
            Database::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Does the database answer? A SQLite file that was removed while the
    /// pool is open still answers on the connections that have it open, but
    /// what they write is lost when they close, so it counts as gone.
    pub async fn ping(&self) -> Result<(), Error> {
        match self {
            Database::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ())?,
            Database::Sqlite(p) => {
                let options = p.connect_options();
                let path = options.get_filename();
                if !is_memory_path(path) && !path.exists() {
                    return Err(Error::Missing(format!(
                        "SQLite database {}",
                        path.display()
                    )));
                }
                sqlx::query("SELECT 1").execute(p).await.map(|_| ())?
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Database::Postgres(p) => p.close().await,
            Database::Sqlite(p) => p.close().await,
        }
    }
}
