//! Command-line arguments. Every command's `--help` ends with an example.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kumo_core::actor::Role;

use crate::ops;

#[derive(Debug, Parser)]
#[command(
    name = "kumo",
    version,
    about = "One binary that gives a Godot game its whole cloud",
    after_help = "Examples:\n  kumo new mygame && cd mygame\n  kumo auth add-strategy magic_link\n  kumo codegen initial\n  kumo db create\n  kumo setup\n  kumo user create you@example.com --role admin\n  kumo serve"
)]
pub struct Cli {
    /// The project directory (default: the current directory); also taken
    /// after the command
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// `--project` for every command that works on a project.
#[derive(Debug, Args, Clone)]
pub struct ProjectArg {
    /// The project directory (default: the current directory)
    #[arg(long, global = true, value_name = "DIR", env = "KUMO_PROJECT")]
    pub project: Option<PathBuf>,
}

impl ProjectArg {
    pub fn dir(&self) -> PathBuf {
        self.project.clone().unwrap_or_else(|| PathBuf::from("."))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new project in DIR
    #[command(after_help = "Example:\n  kumo new mygame --database postgres")]
    New {
        /// Where to create the project (must not exist, or be empty)
        dir: PathBuf,
        /// The database the project starts on
        #[arg(long, value_enum, default_value = "sqlite")]
        database: DatabaseKind,
    },
    /// Manage sign-in strategies
    #[command(
        subcommand,
        after_help = "Example:\n  kumo auth add-strategy magic_link   # sign-in by emailed link; adds the user resource"
    )]
    Auth(AuthCommand),
    /// Create accounts, change their role, lock them out
    #[command(
        subcommand,
        after_help = "Examples:\n  kumo user create admin@example.com --role admin --username boss\n  kumo user set-role ada@example.com coordinator\n  kumo user lock troll@example.com"
    )]
    User(UserCommand),
    /// Write a migration for the changes in resources/
    #[command(
        after_help = "Examples:\n  kumo codegen initial\n  kumo codegen add_ratings --dry-run\n  kumo codegen --check            # in CI: exit 1 if a migration is missing\n  kumo codegen drop_legacy --allow-destructive"
    )]
    Codegen {
        /// The migration's name (snake_case), e.g. `initial`
        #[arg(required_unless_present = "check")]
        name: Option<String>,
        /// Write nothing; exit 1 and list the changes if a migration is pending
        #[arg(long)]
        check: bool,
        /// Print the migration instead of writing it
        #[arg(long)]
        dry_run: bool,
        /// Allow steps that drop tables or columns or narrow types
        #[arg(long)]
        allow_destructive: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Create, drop, inspect or reset the database
    #[command(
        subcommand,
        after_help = "Examples:\n  kumo db create\n  kumo db status      # applied and pending migrations; exit 1 unless current\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/mygame kumo db reset"
    )]
    Db(DbCommand),
    /// Apply pending migrations
    #[command(after_help = "Example:\n  DATABASE_URL=postgres://localhost/mygame kumo migrate")]
    Migrate {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Undo the most recent migrations
    #[command(after_help = "Example:\n  kumo rollback --steps 2")]
    Rollback {
        /// How many migrations to undo (at least 1)
        #[arg(long, default_value_t = 1, value_parser = parse_steps)]
        steps: usize,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Create the database if missing, migrate, load seeds/ (safe to repeat)
    #[command(after_help = "Example:\n  kumo setup --project mygame")]
    Setup {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Serve the project's API
    #[command(after_help = "Example:\n  kumo serve --addr 0.0.0.0:4000")]
    Serve {
        /// Address to listen on (default: [server] addr in kumo.toml, or 127.0.0.1:4000)
        #[arg(long)]
        addr: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Create (or reuse) a demo project on SQLite, set it up and serve it
    ///
    /// The demo always uses its own SQLite file, DIR/data/kumo.db: DATABASE_URL
    /// is ignored, so the demo never touches your project's database.
    #[command(after_help = "Example:\n  cargo run --release -- demo")]
    Demo {
        /// Where the demo project lives
        #[arg(long, default_value = "kumo-demo")]
        dir: PathBuf,
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:4000")]
        addr: String,
    },
}

/// `--steps`: a count of migrations, at least one (`--steps 0` would undo
/// nothing and look like success).
fn parse_steps(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 would undo nothing; give how many migrations to undo, 1 or more".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{text}` is not a number of migrations; give 1 or more"
        )),
    }
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Enable a sign-in strategy in kumo.toml (magic_link, password, api_key)
    #[command(after_help = "Example:\n  kumo auth add-strategy magic_link")]
    AddStrategy {
        /// magic_link, password or api_key
        name: String,
        #[command(flatten)]
        project: ProjectArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account and print a one-time sign-in link for it
    ///
    /// A magic link, made with KUMO_SECRET (which must be the server's); or,
    /// when only the password strategy is enabled, a link that sets the
    /// account's first password.
    ///
    /// The link starts with kumo.toml's [server] public_url, else its
    /// [server] addr: a server started with `kumo serve --addr` elsewhere
    /// needs public_url set, or the link's address changed by hand.
    #[command(
        after_help = "Example:\n  kumo user create admin@example.com --role admin --username boss"
    )]
    Create {
        email: String,
        /// user, coordinator or admin
        #[arg(long, default_value = "user", value_parser = parse_role)]
        role: Role,
        /// 3 to 16 of a-z, 0-9 and _ (upper case is lowered, as registering does)
        #[arg(long)]
        username: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Change an account's role (user, coordinator or admin)
    #[command(after_help = "Example:\n  kumo user set-role ada@example.com coordinator")]
    SetRole {
        email: String,
        /// user, coordinator or admin
        #[arg(value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Lock an account: it cannot sign in, and its sessions are signed out
    #[command(after_help = "Example:\n  kumo user lock troll@example.com")]
    Lock {
        email: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Let a locked account sign in again
    #[command(after_help = "Example:\n  kumo user unlock troll@example.com")]
    Unlock {
        email: String,
        #[command(flatten)]
        project: ProjectArg,
    },
}

/// A role as `user.role` stores it.
fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text)
        .ok_or_else(|| format!("`{text}` is not a role; give user, coordinator or admin"))
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the database
    #[command(after_help = "Example:\n  kumo db create")]
    Create {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Drop the database and everything in it
    #[command(after_help = "Example:\n  kumo db drop")]
    Drop {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Show the database, its migrations, and anything pending
    #[command(after_help = "Example:\n  kumo db status")]
    Status {
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Drop, create, migrate and seed the database
    ///
    /// Everything `kumo setup` checks (resources, seeds, a migration for every
    /// change, migrations/) is checked first: if anything is wrong, nothing is
    /// dropped.
    #[command(after_help = "Example:\n  kumo db reset")]
    Reset {
        #[command(flatten)]
        project: ProjectArg,
    },
}

impl Command {
    /// The project the command works on, if it works on one.
    fn project_dir(&self) -> Option<PathBuf> {
        let project = match self {
            Command::New { .. } | Command::Demo { .. } => return None,
            Command::Auth(AuthCommand::AddStrategy { project, .. })
            | Command::User(
                UserCommand::Create { project, .. }
                | UserCommand::SetRole { project, .. }
                | UserCommand::Lock { project, .. }
                | UserCommand::Unlock { project, .. },
            )
            | Command::Codegen { project, .. }
            | Command::Db(
                DbCommand::Create { project }
                | DbCommand::Drop { project }
                | DbCommand::Status { project }
                | DbCommand::Reset { project },
            )
            | Command::Migrate { project }
            | Command::Rollback { project, .. }
            | Command::Setup { project }
            | Command::Serve { project, .. } => project,
        };
        Some(project.dir())
    }
}

/// Reads the project's `.env` into the environment, as `.env.example`
/// promises; a variable already set in the environment wins over the file.
/// This runs before the async runtime starts, while the process has a single
/// thread, which is what makes changing the environment sound.
fn load_env_file(dir: &std::path::Path) -> Result<(), String> {
    let path = dir.join(".env");
    match dotenvy::from_path(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        // The line may hold a secret: say where it is, never what it says.
        Err(dotenvy::Error::LineParse(line, _)) => {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let first = line.lines().next().unwrap_or_default();
            let at = text
                .lines()
                .position(|l| !first.is_empty() && l.trim_end() == first.trim_end())
                .map(|n| format!(":{}", n + 1))
                .unwrap_or_default();
            Err(format!(
                "{}{at}: cannot parse this line; write it as NAME=value, quoting a value with spaces or #. Its text is not shown, as it may hold a secret.",
                path.display(),
            ))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The error and its causes, `: `-separated like `{:#}`, leaving out a cause
/// whose text is already said (many errors quote their cause, and the cause
/// its own), so each cause appears once.
pub fn say_once(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `--project` is global (it may come before the command), so clap also
    // accepts it on the commands that make a project rather than use one.
    if cli.project.is_some()
        && let Command::New { .. } | Command::Demo { .. } = cli.command
    {
        eprintln!(
            "error: `kumo new` and `kumo demo` make a project and take no --project: `kumo new DIR`, `kumo demo --dir DIR`"
        );
        return ExitCode::from(2);
    }
    if let Some(dir) = cli.command.project_dir()
        && let Err(e) = load_env_file(&dir)
    {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ops::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<ops::Report>() {
                Some(report) => eprintln!("{report}"),
                None => eprintln!("error: {}", say_once(&e)),
            }
            ExitCode::FAILURE
        }
    }
}
