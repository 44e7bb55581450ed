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

/// The project name a directory implies: its last component, snake_cased.
fn project_name(dir: &Path) -> String {
    let raw = dir
        .canonicalize()
        .ok()
        .as_deref()
        .unwrap_or(dir)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kumo_app".into());
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name
    } else {
        format!("kumo_{name}")
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
    say!(
        "Created the Kumo project `{name}` in {}.\n\nNext:\n  cd {}\n  kumo auth add-strategy magic_link\n  kumo codegen initial\n  kumo db create\n  kumo setup\n  kumo serve",
        dir.display(),
        dir.display()
    );
    Ok(())
}

pub fn demo_project(dir: &Path) -> Result<()> {
    ensure_empty(dir)?;
    write_files(dir, DEMO_FILES, &[])
}
