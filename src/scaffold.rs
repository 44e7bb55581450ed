//! Project templates for `kumo new` and `kumo demo`, embedded in the binary
//! so the scaffold always matches the version of Kumo that reads it.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cli::DatabaseKind;

const NEW_FILES: &[(&str, &str)] = &[
    ("kumo.toml", include_str!("../templates/new/kumo.toml")),
    (
        "resources/avatar.toml",
        include_str!("../templates/new/resources/avatar.toml"),
    ),
    (
        "resources/comment.toml",
        include_str!("../templates/new/resources/comment.toml"),
    ),
    (
        "resources/tag.toml",
        include_str!("../templates/new/resources/tag.toml"),
    ),
    (
        "resources/avatar_tag.toml",
        include_str!("../templates/new/resources/avatar_tag.toml"),
    ),
    (
        "seeds/seeds.toml",
        include_str!("../templates/new/seeds.toml"),
    ),
    ("migrations/.gitkeep", ""),
    (".env.example", include_str!("../templates/new/env.example")),
    (".gitignore", include_str!("../templates/new/gitignore")),
    ("README.md", include_str!("../templates/new/README.md")),
];

const DEMO_FILES: &[(&str, &str)] = &[
    ("kumo.toml", include_str!("../templates/demo/kumo.toml")),
    (
        "resources/avatar.toml",
        include_str!("../templates/demo/resources/avatar.toml"),
    ),
    (
        "resources/comment.toml",
        include_str!("../templates/demo/resources/comment.toml"),
    ),
    (
        "resources/world.toml",
        include_str!("../templates/demo/resources/world.toml"),
    ),
    (
        "seeds/demo.toml",
        include_str!("../templates/demo/seeds/demo.toml"),
    ),
    ("migrations/.gitkeep", ""),
    (".gitignore", include_str!("../templates/new/gitignore")),
];

/// The project name a directory implies: its last component, snake_cased
/// (each run of other characters one `_`, none at either end), so
/// `My Game!` is `my_game`. It names the PostgreSQL database too.
fn project_name(dir: &Path) -> String {
    let raw = dir
        .canonicalize()
        .ok()
        .as_deref()
        .unwrap_or(dir)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kumo_app".into());
    let mut name = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    let name = name.trim_end_matches('_');
    if name.is_empty() {
        "kumo_app".into()
    } else if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.to_string()
    } else {
        format!("kumo_{name}")
    }
}

/// `path` as a shell argument: as it is when that is safe, else in single
/// quotes, so the printed `cd` line can be pasted.
fn shell_quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./+,:@%=".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Whether `dir` is the current directory (`kumo new .`).
fn is_current_dir(dir: &Path) -> bool {
    match (dir.canonicalize(), std::env::current_dir()) {
        (Ok(dir), Ok(here)) => here.canonicalize().is_ok_and(|here| here == dir),
        _ => false,
    }
}

fn ensure_empty(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: `kumo new` only writes into a new or empty directory, so nothing of yours is overwritten. Choose another directory.",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

fn write_files(dir: &Path, files: &[(&str, &str)], vars: &[(&str, &str)]) -> Result<()> {
    for (path, template) in files {
        let mut text = template.to_string();
        for (key, value) in vars {
            text = text.replace(&format!("{{{{{key}}}}}"), value);
        }
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

pub fn new_project(dir: &Path, database: DatabaseKind) -> Result<()> {
    ensure_empty(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = project_name(dir);
    let url = match database {
        DatabaseKind::Sqlite => kumo_core::project::DEFAULT_DATABASE_URL.to_string(),
        DatabaseKind::Postgres => format!("postgres://postgres@127.0.0.1:5432/{name}"),
    };
    write_files(dir, NEW_FILES, &[("name", &name), ("database_url", &url)])?;
    write_secret(dir)?;
    let (place, cd) = if is_current_dir(dir) {
        ("the current directory".to_string(), String::new())
    } else {
        let quoted = shell_quoted(dir);
        (quoted.clone(), format!("  cd {quoted}\n"))
    };
    say!(
        "Created the Kumo project `{name}` in {place}.\n\nNext:\n{cd}  kumo auth add-strategy magic_link\n  kumo codegen initial\n  kumo db create\n  kumo setup\n  kumo serve"
    );
    Ok(())
}

pub fn demo_project(dir: &Path) -> Result<()> {
    ensure_empty(dir)?;
    write_files(dir, DEMO_FILES, &[])?;
    write_secret(dir)
}

/// A `.env` (ignored by git) with a fresh `KUMO_SECRET`, so that sign-ins
/// and page cursors outlive a restart of the project's server from the
/// start. Production sets its own, the same on every node.
fn write_secret(dir: &Path) -> Result<()> {
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let text = format!(
        "# Made by `kumo new`; never commit this file (see .env.example).\n\
         # Seals sign-in tokens and page cursors: keep it secret.\n\
         KUMO_SECRET={secret}\n"
    );
    let path = dir.join(".env");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
