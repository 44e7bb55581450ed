//! Migrations and the recorded schema on disk.
//!
//! ```text
//! migrations/
//!   20261121120000_initial/
//!     postgres.up.sql  postgres.down.sql  sqlite.up.sql  sqlite.down.sql
//!   schema/            (what the migrations produce)
//!     avatars/
//!       table.toml     (the table and its resource)
//!       columns/       (one file per column: id.toml, name.toml, …)
//!       indexes/       (one file per unique index, when there are any)
//! ```
//! One folder per migration and one file per table, column and index, so two
//! branches that add different resources, attributes, relationships or
//! identities touch different paths and merge without conflict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kumo_core::resource::Schema;
use kumo_core::table::{self, RecordedTable, Table};

use crate::Error;
use crate::diff::{self, Change, RenameHints, Renames};
use crate::sql::{self, Dialect};

pub const SCHEMA_DIR: &str = "schema";

#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    /// The folder name, `20261121120000_initial`; migrations apply in this order.
    pub id: String,
    pub postgres_up: String,
    pub postgres_down: String,
    pub sqlite_up: String,
    pub sqlite_down: String,
}

impl Migration {
    pub fn up(&self, dialect: Dialect) -> &str {
        match dialect {
            Dialect::Postgres => &self.postgres_up,
            Dialect::Sqlite => &self.sqlite_up,
        }
    }

    pub fn down(&self, dialect: Dialect) -> &str {
        match dialect {
            Dialect::Postgres => &self.postgres_down,
            Dialect::Sqlite => &self.sqlite_down,
        }
    }

    /// A fingerprint of the files, recorded when applied, so an edit to an
    /// applied migration is noticed (FNV-1a: a change detector, not a MAC).
    pub fn checksum(&self) -> String {
        // Each part ends with a NUL so moving text between files changes it.
        let mut all = Vec::new();
        for part in [
            &self.postgres_up,
            &self.postgres_down,
            &self.sqlite_up,
            &self.sqlite_down,
        ] {
            all.extend_from_slice(part.as_bytes());
            all.push(0);
        }
        let hash = kumo_core::table::fnv1a(&all);
        format!("{hash:016x}")
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |error| Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn is_migration_id(name: &str) -> bool {
    let (stamp, rest) = name.split_at(name.len().min(14));
    stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with('_')
}

/// Every migration in `dir`, in order. A missing folder means none.
pub fn read_migrations(dir: &Path) -> Result<Vec<Migration>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut migrations = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || !is_migration_id(&name) {
            continue;
        }
        let read = |file: &str| -> Result<String, Error> {
            let path = entry.path().join(file);
            std::fs::read_to_string(&path).map_err(|error| Error::Io { path, error })
        };
        migrations.push(Migration {
            id: name.clone(),
            postgres_up: read("postgres.up.sql")?,
            postgres_down: read("postgres.down.sql")?,
            sqlite_up: read("sqlite.up.sql")?,
            sqlite_down: read("sqlite.down.sql")?,
        });
    }
    migrations.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(migrations)
}

/// The recorded schema: every table under `migrations/schema/`, sorted by
/// name. Tables still in the single-file layout of earlier versions
/// (`schema/<table>.toml`) are read too.
pub fn read_recorded(migrations_dir: &Path) -> Result<Vec<Table>, Error> {
    Ok(read_recorded_layout(migrations_dir)?.0)
}

/// The recorded tables, and whether any is in the single-file layout.
fn read_recorded_layout(migrations_dir: &Path) -> Result<(Vec<Table>, bool), Error> {
    let dir = migrations_dir.join(SCHEMA_DIR);
    let paths = match sorted_entries(&dir) {
        Ok(paths) => paths,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut tables = Vec::new();
    let mut legacy = false;
    for path in paths {
        let invalid =
            |e: &dyn std::fmt::Display| Error::Invalid(format!("{}: {e}", path.display()));
        let table = if path.join(TABLE_FILE).is_file() {
            let table = table::from_snapshot(&read_table_dir(&path)?).map_err(|e| invalid(&e))?;
            let folder = path.file_name().unwrap_or_default().to_string_lossy();
            if table.name != folder {
                return Err(invalid(&format!(
                    "{TABLE_FILE} records table `{}`, but the folder is named `{folder}`",
                    table.name
                )));
            }
            table
        } else if is_toml(&path) {
            legacy = true;
            let text = read_recorded_file(&path)?;
            table::from_legacy_snapshot(&text).map_err(|e| invalid(&e))?
        } else {
            continue;
        };
        if tables.iter().any(|t: &Table| t.name == table.name) {
            return Err(invalid(&format!(
                "table `{}` is recorded twice, as {SCHEMA_DIR}/{0}.toml (the old layout) and as {SCHEMA_DIR}/{0}/; keep the folder (it is the newer) and delete the file",
                table.name
            )));
        }
        tables.push(table);
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((tables, legacy))
}

const TABLE_FILE: &str = "table.toml";
const COLUMNS_DIR: &str = "columns";
const INDEXES_DIR: &str = "indexes";

fn is_toml(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|x| x == "toml")
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        paths.push(entry?.path());
    }
    paths.sort();
    Ok(paths)
}

/// `<name>.toml` files in `dir` by name; a missing folder holds none.
fn read_parts(dir: &Path) -> Result<BTreeMap<String, String>, Error> {
    let paths = match sorted_entries(dir) {
        Ok(paths) => paths,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut parts = BTreeMap::new();
    for path in paths.into_iter().filter(|p| is_toml(p)) {
        let Some(name) = path.file_stem().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let text = read_recorded_file(&path)?;
        parts.insert(name, text);
    }
    Ok(parts)
}

/// A file of the recorded schema. One git could not merge (two branches
/// changed the same column, say) is refused with where to read how to
/// resolve it, rather than with a TOML error about `<<<<<<<`.
fn read_recorded_file(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    if let Some(line) = text.lines().position(|l| l.starts_with("<<<<<<<")) {
        return Err(Error::Invalid(format!(
            "{}:{}: git conflict markers: two merged branches changed this recorded file. Resolve the conflict as the \"Merging branches\" section of docs/migrations.md says, then run `kumo codegen --check`.",
            path.display(),
            line + 1
        )));
    }
    Ok(text)
}

fn read_table_dir(dir: &Path) -> Result<RecordedTable, Error> {
    let path = dir.join(TABLE_FILE);
    Ok(RecordedTable {
        table: read_recorded_file(&path)?,
        columns: read_parts(&dir.join(COLUMNS_DIR))?,
        indexes: read_parts(&dir.join(INDEXES_DIR))?,
    })
}

/// Whether `migrations/schema/` still has tables in the single-file layout,
/// which [`write_recorded`] would convert.
pub fn recorded_in_old_layout(migrations_dir: &Path) -> Result<bool, Error> {
    Ok(read_recorded_layout(migrations_dir)?.1)
}

/// What `kumo codegen` would write.
#[derive(Debug, Clone)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub renames: Renames,
    pub new_tables: Vec<Table>,
    pub old_tables: Vec<Table>,
}

impl Plan {
    pub fn new(recorded: Vec<Table>, schema: &Schema) -> Self {
        let new_tables = table::lower(schema);
        let renames = Renames::resolve(&recorded, &new_tables, &RenameHints::from_schema(schema));
        let changes = diff::diff(&recorded, &new_tables, &renames);
        Plan {
            changes,
            renames,
            new_tables,
            old_tables: recorded,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn up_sql(&self, dialect: Dialect) -> String {
        sql::render(&self.changes, dialect)
    }

    pub fn down_sql(&self, dialect: Dialect) -> String {
        let back = diff::diff(&self.new_tables, &self.old_tables, &self.renames.inverted());
        sql::render(&back, dialect)
    }

    pub fn describe(&self) -> Vec<String> {
        diff::describe(&self.changes)
    }

    pub fn destructive_steps(&self) -> Vec<String> {
        diff::destructive_steps(&self.changes)
    }

    pub fn warnings(&self) -> Vec<String> {
        diff::warnings(&self.changes)
    }

    /// The migration as it would be written, with id `id`.
    pub fn migration(&self, id: String) -> Migration {
        Migration {
            id,
            postgres_up: self.up_sql(Dialect::Postgres),
            postgres_down: self.down_sql(Dialect::Postgres),
            sqlite_up: self.up_sql(Dialect::Sqlite),
            sqlite_down: self.down_sql(Dialect::Sqlite),
        }
    }
}

/// The name of the migration that gives a PostgreSQL database migrated by
/// a Kumo before `TIMESTAMPTZ(3)` millisecond datetimes
/// ([`sql::datetime_milliseconds_sql`]).
pub const DATETIME_MILLISECONDS: &str = "datetime_milliseconds";

/// Whether `migrations` declared PostgreSQL datetime columns as plain
/// `TIMESTAMPTZ` (microseconds), as Kumo did before it declared
/// `TIMESTAMPTZ(3)`, and none of them is the [`DATETIME_MILLISECONDS`]
/// migration that upgrades them. The recorded schema names only the
/// `datetime` type, so the migrations' SQL is the only trace of the older
/// precision. Kumo now writes `TIMESTAMPTZ(3)` everywhere, except in that
/// migration's down file, which is not read here.
pub fn needs_datetime_milliseconds(migrations: &[Migration]) -> bool {
    let upgraded = migrations.iter().any(|m| {
        m.id.get(15..)
            .is_some_and(|name| name == DATETIME_MILLISECONDS)
    });
    !upgraded
        && migrations
            .iter()
            .any(|m| declares_microsecond_datetimes(&m.postgres_up))
}

fn declares_microsecond_datetimes(sql: &str) -> bool {
    let body = strip_header(sql);
    body.match_indices("TIMESTAMPTZ")
        .any(|(at, word)| !body[at + word.len()..].starts_with("(3)"))
}

/// The [`DATETIME_MILLISECONDS`] migration for the `recorded` tables (the
/// database's tables as the existing migrations made them), with id `id`.
/// SQLite stores datetimes as text in one form: its files only say so.
pub fn datetime_milliseconds_migration(id: String, recorded: &[Table]) -> Migration {
    let (postgres_up, postgres_down) = sql::datetime_milliseconds_sql(recorded);
    let sqlite = "-- Nothing to do: SQLite stores datetimes as text, to the millisecond.\n";
    Migration {
        id,
        postgres_up,
        postgres_down,
        sqlite_up: sqlite.into(),
        sqlite_down: sqlite.into(),
    }
}

/// A new migration id: the UTC time, made later than every existing one so
/// order is kept even when two migrations are made in the same second.
pub fn next_id(existing: &[Migration], name: &str, now: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year][month][day][hour][minute][second]");
    let mut stamp: u64 = now
        .to_offset(time::UtcOffset::UTC)
        .format(&format)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if let Some(last) = existing
        .iter()
        .filter_map(|m| m.id[..14].parse::<u64>().ok())
        .max()
        && stamp <= last
    {
        stamp = last + 1;
    }
    format!("{stamp:014}_{name}")
}

/// Writes a migration folder and brings `migrations/schema/` up to date.
pub fn write(
    migrations_dir: &Path,
    migration: &Migration,
    tables: &[Table],
) -> Result<PathBuf, Error> {
    let dir = migrations_dir.join(&migration.id);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let header = |dialect: &str, direction: &str| {
        format!(
            "-- Kumo migration {} ({dialect}, {direction}). Generated by `kumo codegen`; never edit a migration that has been applied.\n\n",
            migration.id
        )
    };
    for (file, dialect, direction, body) in [
        ("postgres.up.sql", "postgres", "up", &migration.postgres_up),
        (
            "postgres.down.sql",
            "postgres",
            "down",
            &migration.postgres_down,
        ),
        ("sqlite.up.sql", "sqlite", "up", &migration.sqlite_up),
        ("sqlite.down.sql", "sqlite", "down", &migration.sqlite_down),
    ] {
        let path = dir.join(file);
        let text = format!("{}{body}", header(dialect, direction));
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    write_recorded(migrations_dir, tables)?;
    Ok(dir)
}

/// Makes `migrations/schema/` hold exactly `tables`, touching only files
/// whose content changes, and removing what no longer exists (including
/// tables recorded in the single-file layout, now rewritten as folders).
pub fn write_recorded(migrations_dir: &Path, tables: &[Table]) -> Result<(), Error> {
    let dir = migrations_dir.join(SCHEMA_DIR);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    for t in tables {
        write_table_dir(&dir.join(&t.name), &table::to_snapshot(t))?;
    }
    for path in sorted_entries(&dir).map_err(io(&dir))? {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() && tables.iter().any(|t| t.name == name) {
            continue;
        }
        // Only what Kumo wrote is removed: a table folder or an old-layout file.
        if path.join(TABLE_FILE).is_file() {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        } else if is_toml(&path) {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

fn write_table_dir(dir: &Path, recorded: &RecordedTable) -> Result<(), Error> {
    write_if_changed(&dir.join(TABLE_FILE), &recorded.table)?;
    write_parts(&dir.join(COLUMNS_DIR), &recorded.columns)?;
    write_parts(&dir.join(INDEXES_DIR), &recorded.indexes)
}

/// Makes `dir` hold exactly `parts` as `<name>.toml`; an empty `dir` is
/// removed, since git does not keep empty folders anyway.
fn write_parts(dir: &Path, parts: &BTreeMap<String, String>) -> Result<(), Error> {
    for (name, text) in parts {
        write_if_changed(&dir.join(format!("{name}.toml")), text)?;
    }
    let existing = match sorted_entries(dir) {
        Ok(paths) => paths,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut left = existing.len();
    for path in existing {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        if is_toml(&path) && !parts.contains_key(stem.as_ref()) {
            std::fs::remove_file(&path).map_err(io(&path))?;
            left -= 1;
        }
    }
    if left == 0 {
        std::fs::remove_dir(dir).map_err(io(dir))?;
    }
    Ok(())
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), Error> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

/// The body of a migration file without Kumo's header comment.
pub fn strip_header(sql: &str) -> &str {
    sql.strip_prefix("-- Kumo migration")
        .and_then(|rest| rest.split_once("\n\n").map(|(_, body)| body))
        .unwrap_or(sql)
}
