//! What each command does. Output goes to stdout; errors come back as
//! `anyhow` errors that `cli::main` prints once, with the command that fixes
//! them wherever there is one.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use kumo_core::project::{self, CONFIG_FILE, Project};
use kumo_core::resource::Schema;
use kumo_db::db::{Database, Target};
use kumo_db::files::{self, Plan};
use kumo_db::sql::Dialect;
use kumo_db::{introspect, runner, seed};

use crate::cli::{AuthCommand, Command, DbCommand};
use crate::scaffold;

/// The demo's database, relative to its project directory.
const DEMO_DATABASE: &str = "data/kumo.db";

pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::New { dir, database } => {
            scaffold::new_project(&dir, database)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Auth(AuthCommand::AddStrategy { name, project }) => {
            add_strategy(&project.dir(), &name)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User(command) => {
            crate::users::run(command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Codegen {
            name,
            check,
            dry_run,
            allow_destructive,
            project,
        } => {
            let outcome = codegen(
                &load_project(&project.dir())?,
                name.as_deref(),
                check,
                dry_run,
                allow_destructive,
            )?;
            Ok(match outcome {
                Generated::Migration => {
                    say!("Next: kumo migrate");
                    ExitCode::SUCCESS
                }
                Generated::Nothing => ExitCode::SUCCESS,
                Generated::Pending => ExitCode::FAILURE,
            })
        }
        Command::Db(DbCommand::Create { project }) => {
            db_create(&load_project(&project.dir())?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Drop { project }) => {
            let project = load_project(&project.dir())?;
            let target = target(&project)?;
            if target.drop_database().await? {
                say!("Dropped the {}.", target.describe());
            } else {
                say!("The {} does not exist; nothing to drop.", target.describe());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Status { project }) => {
            db_status(&load_project(&project.dir())?).await
        }
        Command::Db(DbCommand::Reset { project }) => {
            let project = load_project(&project.dir())?;
            let target = target(&project)?;
            // Everything that could stop `setup` is checked before anything
            // is dropped, so a failed reset loses no data.
            let prepared = prepare_setup(&project).map_err(nothing_dropped)?;
            if target.drop_database().await? {
                say!("Dropped the {}.", target.describe());
            }
            setup_prepared(&target, prepared).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { project } => {
            let project = load_project(&project.dir())?;
            let db = connect(&project).await?;
            report_migrated(&runner::migrate(&db, &read_migrations(&project)?).await?);
            db.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { steps, project } => {
            let project = load_project(&project.dir())?;
            let db = connect(&project).await?;
            let undone = runner::rollback(&db, &read_migrations(&project)?, steps).await?;
            if undone.is_empty() {
                say!("No applied migrations to roll back.");
            }
            for id in undone {
                say!("Rolled back {id}");
            }
            db.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Setup { project } => {
            let project = load_project(&project.dir())?;
            setup(&project, &target(&project)?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { addr, project } => {
            let project = load_project(&project.dir())?;
            let addr = addr.unwrap_or_else(|| project.addr());
            serve(&project, &target(&project)?, &addr, Instant::now()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir, addr } => {
            demo(&dir, &addr).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn load_project(dir: &Path) -> Result<Project> {
    Ok(Project::load(dir)?)
}

/// The project's resources, system resources included when auth is on.
/// Every problem in every file is reported at once.
pub fn load_schema(project: &Project) -> Result<Schema> {
    kumo_core::load::load_schema_dir(
        &project.resources_dir(),
        Path::new("resources"),
        project.system_resources_enabled(),
    )
    .map_err(|diagnostics| Report(diagnostics.to_string()).into())
}

/// Diagnostics already formatted as a report, each one starting with
/// `error:`, so `cli::main` prints them without adding a prefix of its own.
#[derive(Debug)]
pub struct Report(pub String);

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.trim_end())
    }
}

impl std::error::Error for Report {}

pub(crate) fn target(project: &Project) -> Result<Target> {
    Ok(Target::parse(&project.database_url())?)
}

async fn connect(project: &Project) -> Result<Database> {
    Ok(target(project)?.connect().await?)
}

fn read_migrations(project: &Project) -> Result<Vec<files::Migration>> {
    Ok(files::read_migrations(&project.migrations_dir())?)
}

fn plan(project: &Project, schema: &Schema) -> Result<Plan> {
    let recorded = files::read_recorded(&project.migrations_dir())?;
    Ok(Plan::new(recorded, schema))
}

fn add_strategy(dir: &Path, name: &str) -> Result<()> {
    let project = load_project(dir)?;
    let path = project.root.join(CONFIG_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let first = !project.system_resources_enabled();
    match project::add_strategy(&text, name)? {
        None => say!("`{name}` is already enabled in {CONFIG_FILE}."),
        Some(updated) => {
            std::fs::write(&path, updated)
                .with_context(|| format!("writing {}", path.display()))?;
            say!("Enabled the `{name}` sign-in strategy in {CONFIG_FILE}.");
            if first {
                say!(
                    "Kumo's built-in account resources (users, sessions, tokens, API keys, audit events) are now part of the project.\nNext: kumo codegen {}",
                    if read_migrations(&project)?.is_empty() {
                        "initial"
                    } else {
                        "add_accounts"
                    }
                );
            }
        }
    }
    Ok(())
}

fn is_migration_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// What `codegen` did, so that each caller says what comes next.
enum Generated {
    /// A migration was written.
    Migration,
    /// Nothing to write, or a dry run.
    Nothing,
    /// `--check` found changes with no migration.
    Pending,
}

/// A name for the migration of `plan`, for messages that say to run
/// `kumo codegen`: `initial` for the first, else one that says what changes
/// (`add_badges`, `add_rank_to_avatars`, `update_avatars`).
fn suggested_name(plan: &Plan, first: bool) -> String {
    use kumo_db::diff::Change;
    if first {
        return "initial".into();
    }
    let only_adds_columns = |a: &kumo_db::diff::TableAlter| {
        a.old.name == a.new.name
            && a.renamed_columns.is_empty()
            && a.dropped.is_empty()
            && a.altered.is_empty()
            && a.dropped_unique.is_empty()
            && a.renamed_unique.is_empty()
    };
    let name = match plan.changes.as_slice() {
        [Change::CreateTable(t)] => format!("add_{}", t.name),
        [Change::DropTable(t)] => format!("drop_{}", t.name),
        [Change::RenameTable { from, to }] => format!("rename_{from}_to_{to}"),
        [Change::AlterTable(a)] if only_adds_columns(a) => match a.added.as_slice() {
            [column] => format!("add_{}_to_{}", column.name, a.new.name),
            [] => format!("add_unique_to_{}", a.new.name),
            _ => format!("add_columns_to_{}", a.new.name),
        },
        [Change::AlterTable(a)] => format!("update_{}", a.new.name),
        [Change::CreateTable(a), Change::CreateTable(b)] => {
            format!("add_{}_and_{}", a.name, b.name)
        }
        changes if changes.iter().all(|c| matches!(c, Change::CreateTable(_))) => {
            "add_tables".into()
        }
        _ => "update_schema".into(),
    };
    if is_migration_name(&name) {
        name
    } else {
        "update_schema".into()
    }
}

fn codegen(
    project: &Project,
    name: Option<&str>,
    check: bool,
    dry_run: bool,
    allow_destructive: bool,
) -> Result<Generated> {
    if let Some(name) = name
        && !is_migration_name(name)
    {
        bail!(
            "the migration name `{name}` must be snake_case (a-z, 0-9, _), start with a letter and be at most 64 characters, e.g. `add_ratings`"
        );
    }
    let schema = load_schema(project)?;
    let plan = plan(project, &schema)?;
    let existing = read_migrations(project)?;
    let upgrade_datetimes = files::needs_datetime_milliseconds(&existing);
    if plan.is_empty() && !upgrade_datetimes {
        let migrations_dir = project.migrations_dir();
        if check || dry_run || !files::recorded_in_old_layout(&migrations_dir)? {
            say!("No changes: the resources match the recorded schema. Nothing written.");
            return Ok(Generated::Nothing);
        }
        files::write_recorded(&migrations_dir, &plan.new_tables)?;
        say!(
            "No changes: the resources match the recorded schema. No migration written.\nRewrote migrations/schema/ in the layout of this version (a folder per table, a file per column and index), so branches changing one resource merge cleanly. Commit it."
        );
        return Ok(Generated::Nothing);
    }
    let mut lines = Vec::new();
    if upgrade_datetimes {
        lines.push(DATETIME_UPGRADE.to_owned());
    }
    lines.extend(plan.describe());
    if check {
        say!("Pending changes with no migration:");
        for line in &lines {
            say!("  {line}");
        }
        let next = if plan.is_empty() {
            files::DATETIME_MILLISECONDS.to_owned()
        } else {
            suggested_name(&plan, existing.is_empty())
        };
        say!("Run: kumo codegen {next}");
        return Ok(Generated::Pending);
    }
    say!("Changes:");
    for line in &lines {
        say!("  {line}");
    }
    for warning in plan.warnings() {
        say!("warning: {warning}");
    }
    let destructive = plan.destructive_steps();
    if !destructive.is_empty() && !allow_destructive && !dry_run {
        let list: Vec<String> = destructive.iter().map(|d| format!("  - {d}")).collect();
        bail!(
            "this migration would destroy or narrow data:\n{}\nNothing was written. If that is intended, run again with --allow-destructive.",
            list.join("\n")
        );
    }
    // The upgrade comes first, under its own name, so that it applies to
    // the tables the existing migrations made, and the resources' changes
    // (written at the new precision) come after it.
    let now = time::OffsetDateTime::now_utc();
    let mut written = existing;
    let mut migrations = Vec::new();
    if upgrade_datetimes {
        let id = files::next_id(&written, files::DATETIME_MILLISECONDS, now);
        let migration = files::datetime_milliseconds_migration(id, &plan.old_tables);
        written.push(migration.clone());
        migrations.push(migration);
    }
    if !plan.is_empty() {
        let id = files::next_id(&written, name.unwrap_or("pending"), now);
        migrations.push(plan.migration(id));
    }
    if dry_run {
        for migration in &migrations {
            for dialect in Dialect::ALL {
                say!("\n-- {} {} up", migration.id, dialect.name());
                crate::write_stdout(format_args!("{}", migration.up(dialect)));
                say!("-- {} {} down", migration.id, dialect.name());
                crate::write_stdout(format_args!("{}", migration.down(dialect)));
            }
        }
        if !destructive.is_empty() {
            say!("\nnote: writing this migration needs --allow-destructive:");
            for d in &destructive {
                say!("  - {d}");
            }
        }
        say!("\nDry run: nothing written.");
        return Ok(Generated::Nothing);
    }
    for migration in &migrations {
        let dir = files::write(&project.migrations_dir(), migration, &plan.new_tables)?;
        say!(
            "Wrote {} (PostgreSQL and SQLite, up and down).",
            display_relative(&project.root, &dir)
        );
    }
    Ok(Generated::Migration)
}

/// How `codegen` names the upgrade of migrations from a Kumo before
/// `TIMESTAMPTZ(3)` in its list of changes.
const DATETIME_UPGRADE: &str = "store PostgreSQL datetimes to the millisecond (the migrations were made by an older Kumo: see \"Datetime precision on PostgreSQL\" in docs/migrations.md)";

fn display_relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

async fn db_create(project: &Project) -> Result<()> {
    let target = target(project)?;
    if target.create().await? {
        say!("Created the {}.", target.describe());
    } else {
        say!("The {} already exists.", target.describe());
    }
    Ok(())
}

fn report_migrated(ids: &[String]) {
    if ids.is_empty() {
        say!("The database is up to date.");
    }
    for id in ids {
        say!("Applied {id}");
    }
}

/// Fails with the exact fixing command when resources changed without a
/// migration: migrating or seeding then would not match the resources.
fn require_no_pending_changes(project: &Project, schema: &Schema) -> Result<()> {
    let plan = plan(project, schema)?;
    let existing = read_migrations(project)?;
    if files::needs_datetime_milliseconds(&existing) {
        bail!(
            "the migrations need one more:\n  {DATETIME_UPGRADE}\nRun: kumo codegen {}",
            files::DATETIME_MILLISECONDS
        );
    }
    if plan.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = plan.describe().iter().map(|l| format!("  {l}")).collect();
    bail!(
        "the resources have changes with no migration:\n{}\nRun: kumo codegen {}",
        lines.join("\n"),
        suggested_name(&plan, existing.is_empty())
    )
}

/// What `setup` needs from the project, read and checked before it touches
/// any database.
struct Prepared {
    schema: Schema,
    seeds: Vec<kumo_core::load::SeedRow>,
    migrations: Vec<files::Migration>,
}

/// Loads the resources and seeds, requires a migration for every change and
/// reads `migrations/`: every check `setup` makes that needs no database.
fn prepare_setup(project: &Project) -> Result<Prepared> {
    let schema = load_schema(project)?;
    require_no_pending_changes(project, &schema)?;
    let seeds = kumo_core::load::load_seeds_dir(&schema, &project.seeds_dir(), Path::new("seeds"))
        .map_err(|d| Report(d.to_string()))?;
    let migrations = read_migrations(project)?;
    Ok(Prepared {
        schema,
        seeds,
        migrations,
    })
}

/// `kumo db reset`'s refusal: the error, and that the database is untouched.
fn nothing_dropped(e: anyhow::Error) -> anyhow::Error {
    const UNTOUCHED: &str = "Nothing was dropped: fix this, then run `kumo db reset` again.";
    match e.downcast::<Report>() {
        Ok(Report(text)) => Report(format!("{}\n{UNTOUCHED}", text.trim_end())).into(),
        Err(e) => anyhow!("{}\n{UNTOUCHED}", crate::cli::say_once(&e)),
    }
}

async fn setup(project: &Project, target: &Target) -> Result<()> {
    setup_prepared(target, prepare_setup(project)?).await
}

async fn setup_prepared(target: &Target, prepared: Prepared) -> Result<()> {
    let Prepared {
        schema,
        seeds,
        migrations,
    } = prepared;
    if target.create().await? {
        say!("Created the {}.", target.describe());
    }
    let db = target.connect().await?;
    report_migrated(&runner::migrate(&db, &migrations).await?);
    let inserted = seed::load(&db, &schema, &seeds).await?;
    say!(
        "Seeds: {inserted} row(s) inserted, {} already present.",
        seeds.len() as u64 - inserted
    );
    db.close().await;
    Ok(())
}

async fn db_status(project: &Project) -> Result<ExitCode> {
    let target = target(project)?;
    say!("Database: {}", target.describe());
    let schema = load_schema(project)?;
    let plan = plan(project, &schema)?;
    let mut current = true;
    if plan.is_empty() {
        say!("Resources: match the recorded schema.");
    } else {
        current = false;
        let first = read_migrations(project)?.is_empty();
        say!(
            "Resources: changes with no migration (run `kumo codegen {}`):",
            suggested_name(&plan, first)
        );
        for line in plan.describe() {
            say!("  {line}");
        }
    }
    if !target.exists().await? {
        say!("The database does not exist: run `kumo setup`.");
        return Ok(ExitCode::FAILURE);
    }
    let db = target.connect().await?;
    let migrations = read_migrations(project)?;
    let status = runner::status(&db, &migrations).await?;
    say!("Migrations:");
    for m in &migrations {
        let state = match status.applied.iter().find(|a| a.id == m.id) {
            Some(a) if status.edited.contains(&m.id) => {
                format!("applied {}, EDITED SINCE", a.applied_at)
            }
            Some(a) => format!("applied {}", a.applied_at),
            None => "pending".to_string(),
        };
        say!("  {}  {state}", m.id);
    }
    for id in &status.missing {
        say!("  {id}  applied, but missing from migrations/");
    }
    if migrations.is_empty() && status.missing.is_empty() {
        say!("  (none)");
    }
    if !status.pending.is_empty() {
        say!("Run: kumo migrate");
    }
    current &= status.is_current();
    if status.is_current() {
        let expected = introspect::expected(&plan.old_tables, db.dialect());
        let live = introspect::read(&db).await?;
        if live == expected {
            say!("Live schema: matches the recorded schema.");
        } else {
            current = false;
            say!(
                "Live schema: DIFFERS from the recorded schema (was the database changed by hand?):"
            );
            for (name, table) in &expected {
                match live.get(name) {
                    None => say!("  missing table {name}"),
                    Some(l) if l != table => {
                        say!("  table {name} differs:");
                        for line in introspect::differences(table, l) {
                            say!("    {line}");
                        }
                    }
                    Some(_) => {}
                }
            }
            for name in live.keys().filter(|n| !expected.contains_key(*n)) {
                say!("  extra table {name}");
            }
        }
    }
    db.close().await;
    Ok(if current {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Checks that the project and database are current, then serves.
async fn serve(project: &Project, target: &Target, addr: &str, started: Instant) -> Result<()> {
    init_tracing();
    let schema = load_schema(project)?;
    require_no_pending_changes(project, &schema)?;
    let migrations = read_migrations(project)?;
    let rate_limit = kumo_server::ratelimit::RateLimit::new(&project.config.server.rate_limit);
    let pool_size = project
        .config
        .database
        .pool_size
        .unwrap_or_else(kumo_db::db::default_pool_size);
    let statement_timeout = project
        .config
        .database
        .statement_timeout
        .unwrap_or(kumo_db::db::DEFAULT_STATEMENT_TIMEOUT_MS);
    let db = target
        .clone()
        .with_statement_timeout(statement_timeout)
        .connect_pool(pool_size)
        .await?;
    let status = runner::status(&db, &migrations).await?;
    if !status.pending.is_empty() {
        bail!(
            "{} migration(s) are not applied to the {}: {}\nRun: kumo migrate",
            status.pending.len(),
            target.describe(),
            status.pending.join(", ")
        );
    }
    if !status.missing.is_empty() {
        bail!(
            "the {} has migrations that are not in migrations/: {}\nRestore them (e.g. from version control), or roll the database back with a checkout that has them.",
            target.describe(),
            status.missing.join(", ")
        );
    }
    if !status.edited.is_empty() {
        bail!(
            "applied migrations were edited since: {}\nRestore them and make a new migration with `kumo codegen <name>`.",
            status.edited.join(", ")
        );
    }
    let secret = secret(project)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let mut state = kumo_server::AppState::with_api(db.clone(), migrations, schema, &secret)
        .with_rate_limit(rate_limit.as_ref());
    let engine = state.shared_engine().context("the API has an engine")?;
    let auth = kumo_server::auth::Auth::from_project(engine, project, &secret, local)?;
    if let Some(auth) = &auth {
        if auth.outbox().dev_mailbox().is_some() && !local.ip().is_loopback() {
            tracing::warn!(
                "[mail] adapter = \"dev\" keeps sign-in emails in memory instead of sending them; set up \"smtp\" before players use this server (docs/configuration.md)"
            );
        }
        state = state.with_auth(auth.clone());
    }
    let mut sign_in = String::new();
    if let Some(auth) = &auth {
        sign_in = format!(
            "\n  auth:   http://{local}/auth/… ({})",
            project.config.auth.strategies.join(", ")
        );
        sign_in.push_str(&format!(
            "\n  admin:  http://{local}/admin (for admin and coordinator accounts: `kumo user set-role <email> admin`)"
        ));
        if auth.outbox().dev_mailbox().is_some() {
            sign_in.push_str(&format!("\n  mail:   http://{local}/dev/mailbox"));
        }
    }
    say!(
        "Kumo is serving {} on http://{local} (ready in {} ms)\n  api:    http://{local}/api/<plural>\n  docs:   http://{local}/docs (OpenAPI: http://{local}/openapi.json){sign_in}\n  health: http://{local}/health\n  ready:  http://{local}/ready\nPress Ctrl-C to stop.",
        target.describe(),
        started.elapsed().as_millis()
    );
    kumo_server::serve(listener, state, shutdown_signal()).await?;
    db.close().await;
    say!("Stopped.");
    Ok(())
}

/// Shortest `KUMO_SECRET` accepted: 32 bytes, as much as the keys derived
/// from it, so a guessable secret cannot be the weak link.
const MIN_SECRET_LEN: usize = 32;

/// The server's secret, from which the key that seals page cursors is
/// derived: `KUMO_SECRET`, or a random one that lives as long as the
/// process (cursors then break on restart, and nodes behind one load
/// balancer reject each other's).
fn secret(project: &Project) -> Result<Vec<u8>> {
    if let Some(secret) = configured_secret(project)? {
        return Ok(secret);
    }
    tracing::warn!(
        "KUMO_SECRET is not set: page cursors and sign-ins are sealed with a random key and stop working after a restart or on another node (docs/configuration.md)"
    );
    let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    Ok(key)
}

/// `KUMO_SECRET` from the environment or, failing that, from the project's
/// `.env`, if it is set; refused when it is too short. (`kumo demo` reads
/// no `.env` into the environment, since a DATABASE_URL there is the
/// user's, not the demo's, so the file is read here too.)
pub(crate) fn configured_secret(project: &Project) -> Result<Option<Vec<u8>>> {
    let from_file = || {
        dotenvy::from_path_iter(project.root.join(".env"))
            .ok()?
            .filter_map(Result::ok)
            .find(|(name, _)| name == "KUMO_SECRET")
            .map(|(_, value)| value)
    };
    match std::env::var("KUMO_SECRET").ok().or_else(from_file) {
        Some(s) if !s.is_empty() => {
            if s.len() < MIN_SECRET_LEN {
                bail!(
                    "KUMO_SECRET is {} bytes long; it must be at least {MIN_SECRET_LEN}. Make one with `openssl rand -hex 32`.",
                    s.len()
                );
            }
            Ok(Some(s.into_bytes()))
        }
        _ => Ok(None),
    }
}

async fn demo(dir: &Path, addr: &str) -> Result<()> {
    let started = Instant::now();
    if dir.join(CONFIG_FILE).exists() {
        say!("Reusing the demo project in {}", dir.display());
    } else {
        scaffold::demo_project(dir)?;
        say!("Created a demo project in {}", dir.display());
    }
    let project = load_project(dir)?;
    let schema = load_schema(&project)?;
    let plan = plan(&project, &schema)?;
    if !plan.is_empty() {
        let first = read_migrations(&project)?.is_empty();
        codegen(
            &project,
            Some(if first { "initial" } else { "demo_changes" }),
            false,
            false,
            false,
        )?;
    }
    // Always the demo's own SQLite file: a DATABASE_URL meant for the user's
    // project must never receive (or lose data to) the demo's tables.
    let target = Target::parse(&format!(
        "sqlite://{}",
        project.root.join(DEMO_DATABASE).display()
    ))?;
    setup(&project, &target).await?;
    serve(&project, &target, addr, started).await
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUMO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(kumo_server::log::log_format())
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
