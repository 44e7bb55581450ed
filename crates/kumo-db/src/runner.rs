//! Applying and rolling back migrations, and telling what is pending.
//!
//! Each migration runs in one transaction together with its row in
//! `kumo_migrations`, so a failed migration leaves no trace. On SQLite,
//! foreign keys are switched off around the transaction (a table rebuild
//! needs that, and the pragma cannot change inside a transaction) and
//! `PRAGMA foreign_key_check` must come back empty before the commit.

use sqlx::{AssertSqlSafe, Connection, Row};

use crate::Error;
use crate::db::Database;
use crate::files::Migration;

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS kumo_migrations (
  id TEXT PRIMARY KEY,
  checksum TEXT NOT NULL,
  applied_at TEXT NOT NULL
)";

#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub id: String,
    pub checksum: String,
    pub applied_at: String,
}

/// Where the database stands against the migrations folder.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub applied: Vec<Applied>,
    /// In the folder, not applied.
    pub pending: Vec<String>,
    /// Applied, but no longer in the folder.
    pub missing: Vec<String>,
    /// Applied, and changed on disk since.
    pub edited: Vec<String>,
}

impl Status {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.missing.is_empty() && self.edited.is_empty()
    }
}

async fn ensure_table(db: &Database) -> Result<(), Error> {
    match db {
        Database::Postgres(p) => {
            sqlx::raw_sql(CREATE_MIGRATIONS_TABLE).execute(p).await?;
        }
        Database::Sqlite(p) => {
            sqlx::raw_sql(CREATE_MIGRATIONS_TABLE).execute(p).await?;
        }
    }
    Ok(())
}

pub async fn applied(db: &Database) -> Result<Vec<Applied>, Error> {
    ensure_table(db).await?;
    let query = "SELECT id, checksum, applied_at FROM kumo_migrations ORDER BY id";
    let rows = match db {
        Database::Postgres(p) => sqlx::query(query)
            .fetch_all(p)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect::<Vec<(String, String, String)>>(),
        Database::Sqlite(p) => sqlx::query(query)
            .fetch_all(p)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    };
    Ok(rows
        .into_iter()
        .map(|(id, checksum, applied_at)| Applied {
            id,
            checksum,
            applied_at,
        })
        .collect())
}

pub async fn status(db: &Database, migrations: &[Migration]) -> Result<Status, Error> {
    let applied = applied(db).await?;
    let mut status = Status::default();
    for m in migrations {
        match applied.iter().find(|a| a.id == m.id) {
            None => status.pending.push(m.id.clone()),
            Some(a) if a.checksum != m.checksum() => status.edited.push(m.id.clone()),
            Some(_) => {}
        }
    }
    for a in &applied {
        if migrations.iter().all(|m| m.id != a.id) {
            status.missing.push(a.id.clone());
        }
    }
    status.applied = applied;
    Ok(status)
}

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Applies every pending migration in order; returns the ids applied.
pub async fn migrate(db: &Database, migrations: &[Migration]) -> Result<Vec<String>, Error> {
    let status = status(db, migrations).await?;
    if !status.missing.is_empty() {
        return Err(Error::Invalid(format!(
            "the database has migrations that are not in migrations/: {}. Restore them (e.g. from version control) before migrating",
            status.missing.join(", ")
        )));
    }
    if !status.edited.is_empty() {
        return Err(Error::Invalid(format!(
            "applied migrations were edited since: {}. Never edit an applied migration: restore it and make a new one with `kumo codegen <name>`",
            status.edited.join(", ")
        )));
    }
    let mut done = Vec::new();
    for m in migrations.iter().filter(|m| status.pending.contains(&m.id)) {
        run(db, &m.id, m.up(db.dialect()), Direction::Up(m.checksum())).await?;
        done.push(m.id.clone());
    }
    Ok(done)
}

/// Rolls back the last `steps` migrations applied, most recent first;
/// returns the ids undone.
pub async fn rollback(
    db: &Database,
    migrations: &[Migration],
    steps: usize,
) -> Result<Vec<String>, Error> {
    let mut applied = applied(db).await?;
    // Newest first, in the order they were applied: after a merge a
    // migration with an earlier id can be applied after later ones. Within
    // one clock tick, the id decides.
    applied.sort_by(|a, b| {
        (applied_order(&a.applied_at), &a.id).cmp(&(applied_order(&b.applied_at), &b.id))
    });
    let mut done = Vec::new();
    for a in applied.iter().rev().take(steps) {
        let m = migrations.iter().find(|m| m.id == a.id).ok_or_else(|| {
            Error::Invalid(format!(
                "cannot roll back {}: its folder is not in migrations/ (restore it from version control)",
                a.id
            ))
        })?;
        run(db, &m.id, m.down(db.dialect()), Direction::Down).await?;
        done.push(m.id.clone());
    }
    Ok(done)
}

/// A sort key for `applied_at` as [`now_text`] writes it (RFC 3339 in UTC,
/// with a fraction only when it is not zero): the text up to the seconds,
/// then the fraction padded to nanoseconds, so that `…:05Z` sorts before
/// `…:05.1Z` (as text, `.` sorts before `Z`).
fn applied_order(applied_at: &str) -> (&str, String) {
    let seconds = applied_at.get(..19).unwrap_or(applied_at);
    let fraction: String = applied_at
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|f| f.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    (seconds, format!("{fraction:0<9}"))
}

enum Direction {
    Up(String),
    Down,
}

async fn run(db: &Database, id: &str, sql: &str, direction: Direction) -> Result<(), Error> {
    let failed = |source: sqlx::Error| Error::MigrationFailed {
        id: id.to_string(),
        source,
    };
    match db {
        Database::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            match &direction {
                Direction::Up(checksum) => {
                    sqlx::query(
                        "INSERT INTO kumo_migrations (id, checksum, applied_at) VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(checksum)
                    .bind(now_text())
                    .execute(&mut *tx)
                    .await?;
                }
                Direction::Down => {
                    sqlx::query("DELETE FROM kumo_migrations WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        }
        Database::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            sqlx::raw_sql("PRAGMA foreign_keys = OFF")
                .execute(&mut *conn)
                .await?;
            let result = async {
                let mut tx = conn.begin().await?;
                // This pooled connection may hold a schema cached before an
                // earlier migration ran on another connection. SQLite
                // reloads a stale schema when a statement reads the
                // database, but `ALTER TABLE … RENAME/DROP COLUMN` looks the
                // column up while being prepared and fails with "no such
                // column" instead; reading sqlite_schema first reloads it.
                sqlx::raw_sql("SELECT count(*) FROM sqlite_schema")
                    .execute(&mut *tx)
                    .await?;
                sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                let violations = sqlx::query("PRAGMA foreign_key_check")
                    .fetch_all(&mut *tx)
                    .await?;
                if let Some(row) = violations.first() {
                    let table: String = row.get(0);
                    return Err(Error::Invalid(format!(
                        "migration {id} would leave rows in `{table}` pointing at missing records ({} violation(s)); nothing was changed",
                        violations.len()
                    )));
                }
                match &direction {
                    Direction::Up(checksum) => {
                        sqlx::query(
                            "INSERT INTO kumo_migrations (id, checksum, applied_at) VALUES (?1, ?2, ?3)",
                        )
                        .bind(id)
                        .bind(checksum)
                        .bind(now_text())
                        .execute(&mut *tx)
                        .await?;
                    }
                    Direction::Down => {
                        sqlx::query("DELETE FROM kumo_migrations WHERE id = ?1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }
            .await;
            sqlx::raw_sql("PRAGMA foreign_keys = ON")
                .execute(&mut *conn)
                .await?;
            result?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::applied_order;

    #[test]
    fn applied_times_order_by_instant_not_by_text() {
        let times = [
            "2026-11-21T13:40:05Z",
            "2026-11-21T13:40:05.000001Z",
            "2026-11-21T13:40:05.1Z",
            "2026-11-21T13:40:05.25Z",
            "2026-11-21T13:40:06Z",
        ];
        for pair in times.windows(2) {
            assert!(
                applied_order(pair[0]) < applied_order(pair[1]),
                "{} should sort before {}",
                pair[0],
                pair[1]
            );
        }
    }
}
