//! Applying and rolling back migrations, and telling what is pending.
//!
//! Each migration runs in one transaction together with its row in
//! `kumo_migrations`, so a failed migration leaves no trace. On SQLite,
//! foreign keys are switched off around the transaction (a table rebuild
//! needs that, and the pragma cannot change inside a transaction) and
//! `PRAGMA foreign_key_check` must come back empty before the commit.
//!
//! A SQLite table rebuild copies the columns its migration knew about. After
//! a git merge, a migration from another branch may have changed the same
//! table first, so each rebuild is fitted to the live table just before it
//! runs ([`fit_rebuild`], following the `-- kumo:rebuild` line described at
//! [`Rebuild`]): nothing another migration added is lost.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AssertSqlSafe, Connection, Row, SqliteConnection};

use crate::Error;
use crate::db::Database;
use crate::files::Migration;
use crate::sql::{
    ColumnShape, REBUILD_MARK, Rebuild, definition_fingerprint, ident, leading_ident,
    parenthesized, quoted_idents, split_list, split_statements, statement_body,
};

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
    let failed = |error: sqlx::Error| Error::MigrationFailed {
        id: id.to_string(),
        error,
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
                run_sqlite_sql(&mut tx, id, sql).await?;
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

/// Runs a SQLite migration's SQL. A script with rebuilds runs statement by
/// statement, each rebuild fitted to the live table when it is reached (the
/// statements before it may have renamed or changed tables); any other
/// script runs as written.
async fn run_sqlite_sql(conn: &mut SqliteConnection, id: &str, sql: &str) -> Result<(), Error> {
    let failed = |error: sqlx::Error| Error::MigrationFailed {
        id: id.to_string(),
        error,
    };
    if !sql.contains(REBUILD_MARK) {
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
        return Ok(());
    }
    let statements = split_statements(sql);
    let mut i = 0;
    while i < statements.len() {
        let Some(rebuild) = Rebuild::find(statements[i]) else {
            sqlx::raw_sql(AssertSqlSafe(statements[i].to_string()))
                .execute(&mut *conn)
                .await
                .map_err(failed)?;
            i += 1;
            continue;
        };
        let rebuild = rebuild.map_err(|e| {
            Error::Invalid(format!(
                "migration {id}: its `{}` line does not read: {e}",
                REBUILD_MARK.trim_end()
            ))
        })?;
        let len = rebuild_len(&rebuild, &statements[i..]).ok_or_else(|| {
            Error::Invalid(format!(
                "migration {id}: the statements after its `{}` line for `{}` are not the table rebuild Kumo writes (edited by hand?); delete that line to run them as written",
                REBUILD_MARK.trim_end(),
                rebuild.table
            ))
        })?;
        let block: Vec<&str> = statements[i..i + len]
            .iter()
            .map(|s| statement_body(s))
            .collect();
        let live = live_table_sql(conn, &rebuild.table).await?;
        let fitted = match live {
            Some(live) => fit_rebuild(&rebuild, &block, &live).map_err(|changed| {
                Error::Invalid(format!(
                    "migration {id} rebuilds table `{}` and changes {changed}, which another migration changed after {id} was generated (probably one merged from another branch); nothing was changed. Both change the same column, so one of them must be generated again: see \"Merging branches\" in Kumo's docs/migrations.md",
                    rebuild.table
                ))
            })?,
            // No such table: the statements fail and say so.
            None => block.iter().map(|s| s.to_string()).collect(),
        };
        for statement in fitted {
            sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut *conn)
                .await
                .map_err(failed)?;
        }
        i += len;
    }
    Ok(())
}

/// A table as SQLite stores it: its `CREATE TABLE` text, its indexes'
/// names and `CREATE INDEX` texts (not the automatic ones), and the
/// fingerprint of each column's [`ColumnShape`].
struct LiveTableSql {
    create: String,
    indexes: Vec<(String, String)>,
    shapes: BTreeMap<String, String>,
}

async fn live_table_sql(
    conn: &mut SqliteConnection,
    table: &str,
) -> Result<Option<LiveTableSql>, Error> {
    let create: Option<String> =
        sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1")
            .bind(table)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(create) = create else {
        return Ok(None);
    };
    let indexes = sqlx::query(
        "SELECT name, sql FROM sqlite_schema
         WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL ORDER BY name",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let references: Vec<(String, String, String, String)> = sqlx::query(
        "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?1)",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect();
    let shapes = sqlx::query(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo(?1) WHERE hidden = 0",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| {
        let name: String = r.get(0);
        let primary_key = r.get::<i64, _>(4) > 0;
        let shape = ColumnShape {
            sql_type: r.get(1),
            not_null: r.get::<i64, _>(2) != 0 || primary_key,
            default: r.get(3),
            primary_key,
            references: references
                .iter()
                .find(|(from, ..)| *from == name)
                .map(|(_, t, c, d)| (t.clone(), c.clone(), d.clone())),
        };
        (name, shape.fingerprint())
    })
    .collect();
    Ok(Some(LiveTableSql {
        create,
        indexes,
        shapes,
    }))
}

/// How many statements, from the first, make up the rebuild `rebuild`
/// announces: create the new table, copy, drop, rename, then its indexes.
/// `None` if they are not in the form `sql` writes.
fn rebuild_len(rebuild: &Rebuild, statements: &[&str]) -> Option<usize> {
    let (table, temp) = (ident(&rebuild.table), ident(&rebuild.temp_name()));
    let body = |i: usize| statements.get(i).map(|s| statement_body(s));
    let fits = body(0)?.starts_with(&format!("CREATE TABLE {temp} ("))
        && body(1)?.starts_with(&format!("INSERT INTO {temp} ("))
        && body(2)? == format!("DROP TABLE {table};")
        && body(3)? == format!("ALTER TABLE {temp} RENAME TO {table};");
    if !fits {
        return None;
    }
    let indexes = statements[4..]
        .iter()
        .take_while(|s| index_of(statement_body(s), &rebuild.table).is_some())
        .count();
    Some(4 + indexes)
}

/// The name of the index a `CREATE [UNIQUE] INDEX "name" ON "table" (…);`
/// statement creates, if it is one on `table`.
fn index_of(statement: &str, table: &str) -> Option<String> {
    let rest = statement
        .strip_prefix("CREATE UNIQUE INDEX ")
        .or_else(|| statement.strip_prefix("CREATE INDEX "))?;
    let (name, _) = leading_ident(rest)?;
    rest[ident(&name).len()..]
        .starts_with(&format!(" ON {} (", ident(table)))
        .then_some(name)
}

/// Fits a rebuild's statements (`block`, without comments) to the table as
/// it is live, so the rebuild changes what its migration was generated to
/// change and keeps everything else as it is:
///
/// - a live column the migration did not know (another branch added it) is
///   carried over with its live definition and data, and so is a live index
///   it did not know;
/// - a column the rebuild keeps as it was keeps its live definition, even
///   if another migration changed it since, or is left out if another
///   migration dropped (or renamed) it, and an index the rebuild keeps is
///   left out if another migration dropped it;
/// - a column the rebuild itself converts, renames or copies from must have
///   the [`ColumnShape`] it expects (its CHECK may be worded differently, by
///   an older Kumo): otherwise two migrations changed the same column and
///   the answer is `Err` with the columns, for the caller to refuse.
///
/// When the live table is what the migration expects, the statements come
/// back unchanged.
fn fit_rebuild(
    rebuild: &Rebuild,
    block: &[&str],
    live: &LiveTableSql,
) -> Result<Vec<String>, String> {
    let unchanged = || block.iter().map(|s| s.to_string()).collect();
    let (table, temp) = (ident(&rebuild.table), ident(&rebuild.temp_name()));
    // `rebuild_len` checked the form of the four statements.
    let Some((create_list, create_end)) = parenthesized(block[0]) else {
        return Ok(unchanged());
    };
    let Some((targets, select)) = parenthesized(block[1]) else {
        return Ok(unchanged());
    };
    let Some(sources) = select
        .trim()
        .strip_prefix("SELECT ")
        .and_then(|s| s.strip_suffix(&format!(" FROM {table};")))
    else {
        return Ok(unchanged());
    };
    let named = |items: Vec<&str>| -> Vec<(String, String)> {
        items
            .into_iter()
            .filter_map(|item| leading_ident(item).map(|(name, _)| (name, item.to_string())))
            .collect()
    };
    let mut columns = named(split_list(create_list));
    let targets = named(split_list(targets));
    let sources = split_list(sources);
    if targets.len() != sources.len() {
        return Ok(unchanged());
    }
    let mut copies: Vec<(String, String)> = targets
        .into_iter()
        .map(|(name, _)| name)
        .zip(sources.iter().map(|s| s.to_string()))
        .collect();
    let read: BTreeSet<String> = sources.iter().flat_map(|s| quoted_idents(s)).collect();

    let Some((live_list, _)) = parenthesized(&live.create) else {
        return Ok(unchanged());
    };
    let mut live_columns = Vec::new();
    let mut live_constraints = Vec::new();
    for item in split_list(live_list) {
        match leading_ident(item) {
            Some((name, quoted))
                if quoted
                    || !["constraint", "primary", "unique", "check", "foreign"]
                        .contains(&name.to_ascii_lowercase().as_str()) =>
            {
                live_columns.push((name, item.to_string()));
            }
            _ => live_constraints.push(item.to_string()),
        }
    }
    let live_def = |name: &str| {
        live_columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_str())
    };

    let mut fitted = false;
    let mut conflicts = Vec::new();
    for (name, [fingerprint, shape]) in &rebuild.columns {
        let found = live_def(name);
        if found.is_some_and(|d| definition_fingerprint(d) == *fingerprint) {
            continue;
        }
        let kept = columns
            .iter()
            .any(|(n, d)| n == name && definition_fingerprint(d) == *fingerprint);
        if kept {
            fitted = true;
            match found {
                Some(definition) => {
                    for (n, d) in &mut columns {
                        if n == name {
                            *d = definition.to_string();
                        }
                    }
                    for (n, s) in &mut copies {
                        if n == name {
                            *s = ident(name);
                        }
                    }
                }
                None => {
                    columns.retain(|(n, _)| n != name);
                    copies.retain(|(n, _)| n != name);
                }
            }
        } else if read.contains(name) {
            match found {
                None => conflicts.push(format!("`{name}` (gone)")),
                Some(_) if live.shapes.get(name) != Some(shape) => {
                    conflicts.push(format!("`{name}` (changed)"));
                }
                // Worded differently (an older Kumo's CHECK, say), but the
                // same shape: converting it as written is right.
                Some(_) => {}
            }
        }
        // Otherwise the rebuild drops the column anyway.
    }
    if !conflicts.is_empty() {
        return Err(conflicts.join(", "));
    }
    for (name, definition) in &live_columns {
        if rebuild.columns.contains_key(name) {
            continue;
        }
        fitted = true;
        // The migration adds a column another one added first: the rows
        // keep their values.
        if !columns.iter().any(|(n, _)| n == name) {
            columns.push((name.clone(), definition.clone()));
        }
        if !copies.iter().any(|(n, _)| n == name) {
            copies.push((name.clone(), ident(name)));
        }
    }
    if !live_constraints.is_empty() {
        fitted = true;
    }

    let kept_indexes: Vec<(String, &str)> = block[4..]
        .iter()
        .filter_map(|s| index_of(s, &rebuild.table).map(|name| (name, *s)))
        .collect();
    let mut indexes = Vec::new();
    for (name, statement) in &kept_indexes {
        let dropped_elsewhere =
            rebuild.indexes.contains(name) && !live.indexes.iter().any(|(n, _)| n == name);
        if dropped_elsewhere {
            fitted = true;
        } else {
            indexes.push(statement.to_string());
        }
    }
    for (name, sql) in &live.indexes {
        if !rebuild.indexes.contains(name) && !kept_indexes.iter().any(|(n, _)| n == name) {
            fitted = true;
            indexes.push(format!("{sql};"));
        }
    }
    if !fitted {
        return Ok(unchanged());
    }

    let items: Vec<String> = columns
        .into_iter()
        .map(|(_, d)| d)
        .chain(live_constraints)
        .collect();
    let (targets, sources): (Vec<String>, Vec<String>) = copies
        .into_iter()
        .map(|(name, source)| (ident(&name), source))
        .unzip();
    let mut out = vec![
        format!(
            "CREATE TABLE {temp} (\n  {}\n){create_end}",
            items.join(",\n  ")
        ),
        format!(
            "INSERT INTO {temp} ({})\n  SELECT {} FROM {table};",
            targets.join(", "),
            sources.join(", ")
        ),
        block[2].to_string(),
        block[3].to_string(),
    ];
    out.extend(indexes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{
        ColumnShape, LiveTableSql, Rebuild, applied_order, definition_fingerprint, fit_rebuild,
    };

    const ID: &str = "\"id\" TEXT PRIMARY KEY";
    const OLD_NAME: &str =
        "\"name\" TEXT NOT NULL CONSTRAINT \"t_name_check\" CHECK (length(\"name\") <= 64)";

    fn shape(sql_type: &str, not_null: bool, primary_key: bool) -> String {
        ColumnShape {
            sql_type: sql_type.into(),
            not_null,
            default: None,
            primary_key,
            references: None,
        }
        .fingerprint()
    }

    /// A rebuild of `t` that lengthens `name`, as `sql` writes it.
    fn lengthen_name() -> (Rebuild, Vec<&'static str>) {
        let rebuild = Rebuild {
            table: "t".into(),
            columns: [
                (
                    "id".to_string(),
                    [definition_fingerprint(ID), shape("TEXT", true, true)],
                ),
                (
                    "name".to_string(),
                    [definition_fingerprint(OLD_NAME), shape("TEXT", true, false)],
                ),
            ]
            .into(),
            indexes: vec![],
        };
        let block = vec![
            "CREATE TABLE \"_kumo_new_t\" (\n  \"id\" TEXT PRIMARY KEY,\n  \"name\" TEXT NOT NULL CONSTRAINT \"t_name_check\" CHECK (length(\"name\") <= 200)\n) STRICT;",
            "INSERT INTO \"_kumo_new_t\" (\"id\", \"name\")\n  SELECT \"id\", \"name\" FROM \"t\";",
            "DROP TABLE \"t\";",
            "ALTER TABLE \"_kumo_new_t\" RENAME TO \"t\";",
        ];
        (rebuild, block)
    }

    /// `t` as it is live: `name` defined as given, and `more` appended.
    fn live(name: &str, name_type: &str, more: &str) -> LiveTableSql {
        LiveTableSql {
            create: format!("CREATE TABLE \"t\" (\n  {ID},\n  {name}\n{more}) STRICT"),
            indexes: vec![],
            shapes: [
                ("id".to_string(), shape("TEXT", true, true)),
                ("name".to_string(), shape(name_type, true, false)),
            ]
            .into(),
        }
    }

    #[test]
    fn a_rebuild_runs_as_written_on_the_table_it_expects() {
        let (rebuild, block) = lengthen_name();
        let live = live(OLD_NAME, "TEXT", "");
        assert_eq!(fit_rebuild(&rebuild, &block, &live).unwrap(), block);
    }

    #[test]
    fn a_rebuild_carries_over_a_column_and_index_it_does_not_know() {
        let (rebuild, block) = lengthen_name();
        // `ALTER TABLE ADD COLUMN` appends its definition this way.
        let mut live = live(
            OLD_NAME,
            "TEXT",
            ", \"x\" TEXT CONSTRAINT \"t_x_check\" CHECK (\"x\" IN ('a', 'b'))",
        );
        live.indexes = vec![(
            "t_x_key".into(),
            "CREATE UNIQUE INDEX \"t_x_key\" ON \"t\" (\"x\")".into(),
        )];
        assert_eq!(
            fit_rebuild(&rebuild, &block, &live).unwrap(),
            [
                "CREATE TABLE \"_kumo_new_t\" (\n  \"id\" TEXT PRIMARY KEY,\n  \"name\" TEXT NOT NULL CONSTRAINT \"t_name_check\" CHECK (length(\"name\") <= 200),\n  \"x\" TEXT CONSTRAINT \"t_x_check\" CHECK (\"x\" IN ('a', 'b'))\n) STRICT;",
                "INSERT INTO \"_kumo_new_t\" (\"id\", \"name\", \"x\")\n  SELECT \"id\", \"name\", \"x\" FROM \"t\";",
                "DROP TABLE \"t\";",
                "ALTER TABLE \"_kumo_new_t\" RENAME TO \"t\";",
                "CREATE UNIQUE INDEX \"t_x_key\" ON \"t\" (\"x\");",
            ]
        );
    }

    #[test]
    fn a_rebuild_refuses_a_column_it_changes_that_changed_elsewhere() {
        let (rebuild, block) = lengthen_name();
        let live = live("\"name\" INTEGER NOT NULL", "INTEGER", "");
        assert_eq!(
            fit_rebuild(&rebuild, &block, &live),
            Err("`name` (changed)".to_string())
        );
    }

    /// A CHECK an older Kumo worded differently is not another migration's
    /// change: the column has the shape the rebuild expects.
    #[test]
    fn a_rebuild_converts_a_column_whose_check_is_only_worded_differently() {
        let (rebuild, block) = lengthen_name();
        let older =
            "\"name\" TEXT NOT NULL CONSTRAINT \"t_name_check\" CHECK (length(\"name\") < 65)";
        let live = live(older, "TEXT", "");
        assert_eq!(fit_rebuild(&rebuild, &block, &live).unwrap(), block);
    }

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
