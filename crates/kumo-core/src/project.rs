//! A Kumo project on disk: `kumo.toml` and the folders beside it.
//!
//! `kumo.toml` is read with serde (unknown keys are errors, with line and
//! column) and edited with `toml_edit` so that commands such as
//! `kumo auth add-strategy` keep the user's comments and layout.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const CONFIG_FILE: &str = "kumo.toml";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/kumo.db";
pub const DEFAULT_ADDR: &str = "127.0.0.1:4000";

/// The auth strategies `kumo auth add-strategy` knows.
pub const STRATEGIES: [&str; 3] = ["magic_link", "password", "api_key"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub project: ProjectSection,
    #[serde(default)]
    pub database: DatabaseSection,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub auth: AuthSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub url: Option<String>,
    /// Connections `kumo serve` keeps open; default four per CPU core.
    pub pool_size: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub addr: Option<String>,
    pub public_url: Option<String>,
    #[serde(default)]
    pub rate_limit: RateLimitSection,
}

/// `[server.rate_limit]`: how many requests one client may make. A client
/// is an IPv4 address or an IPv6 /64 network (one household or device).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSection {
    /// `false` turns the limit off (benchmarks, a trusted network).
    pub enabled: bool,
    /// Sustained requests per second per client.
    pub per_second: u32,
    /// Requests a client may make at once before the sustained rate applies.
    pub burst: u32,
    /// Behind a reverse proxy, the header it puts the client's address in
    /// (`x-forwarded-for`: its last entry is used, the one the proxy added).
    /// Unset: the address of the TCP peer.
    pub client_ip_header: Option<String>,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        RateLimitSection {
            enabled: true,
            per_second: 100,
            burst: 200,
            client_ip_header: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    #[serde(default)]
    pub strategies: Vec<String>,
    pub registration: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(
        "no {CONFIG_FILE} in {0}: run this inside a Kumo project, pass --project <dir>, or create one with `kumo new <dir>`"
    )]
    NotAProject(PathBuf),
    #[error("could not read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid:\n{message}")]
    Invalid { path: PathBuf, message: String },
    #[error("unknown auth strategy `{name}`; valid strategies: {}", STRATEGIES.join(", "))]
    UnknownStrategy { name: String },
}

#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub config: Config,
}

impl Project {
    pub fn load(root: &Path) -> Result<Self, ProjectError> {
        let path = root.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProjectError::NotAProject(root.to_path_buf()));
            }
            Err(source) => return Err(ProjectError::Io { path, source }),
        };
        let config = parse_config(&text).map_err(|message| ProjectError::Invalid {
            path: path.clone(),
            message,
        })?;
        for name in &config.auth.strategies {
            if !STRATEGIES.contains(&name.as_str()) {
                return Err(ProjectError::Invalid {
                    path,
                    message: format!(
                        "[auth] strategies: unknown strategy `{name}`; valid strategies: {}",
                        STRATEGIES.join(", ")
                    ),
                });
            }
        }
        if config.database.pool_size == Some(0) {
            return Err(ProjectError::Invalid {
                path,
                message: "[database] pool_size must be at least 1".into(),
            });
        }
        let limit = &config.server.rate_limit;
        if limit.enabled && (limit.per_second == 0 || limit.burst == 0) {
            return Err(ProjectError::Invalid {
                path,
                message: "[server.rate_limit] per_second and burst must be at least 1; \
                          to turn the limit off, set enabled = false"
                    .into(),
            });
        }
        Ok(Project {
            root: root.to_path_buf(),
            config,
        })
    }

    pub fn resources_dir(&self) -> PathBuf {
        self.root.join("resources")
    }

    pub fn migrations_dir(&self) -> PathBuf {
        self.root.join("migrations")
    }

    pub fn seeds_dir(&self) -> PathBuf {
        self.root.join("seeds")
    }

    /// Kumo's built-in resources (users, sessions…) exist once any auth
    /// strategy is enabled.
    pub fn system_resources_enabled(&self) -> bool {
        !self.config.auth.strategies.is_empty()
    }

    /// `DATABASE_URL` wins over `[database] url`; a relative SQLite path is
    /// relative to the project, not to the current directory.
    pub fn database_url(&self) -> String {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| self.config.database.url.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        resolve_sqlite_path(&self.root, &url)
    }

    pub fn addr(&self) -> String {
        self.config
            .server
            .addr
            .clone()
            .unwrap_or_else(|| DEFAULT_ADDR.to_string())
    }
}

pub fn parse_config(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// Turns `sqlite://data/kumo.db` into `sqlite:///abs/project/data/kumo.db`.
/// Absolute paths, `:memory:` and non-SQLite URLs pass through.
fn resolve_sqlite_path(root: &Path, url: &str) -> String {
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return url.to_string();
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.starts_with('/') || path.starts_with(":memory:") || path.is_empty() {
        return url.to_string();
    }
    let absolute = root.join(path);
    match query {
        Some(q) => format!("sqlite://{}?{q}", absolute.display()),
        None => format!("sqlite://{}", absolute.display()),
    }
}

/// Adds `name` to `[auth] strategies` in the text of a `kumo.toml`, keeping
/// comments and layout. Returns `None` when it is already enabled.
pub fn add_strategy(config_text: &str, name: &str) -> Result<Option<String>, ProjectError> {
    if !STRATEGIES.contains(&name) {
        return Err(ProjectError::UnknownStrategy {
            name: name.to_string(),
        });
    }
    let invalid = |message: String| ProjectError::Invalid {
        path: PathBuf::from(CONFIG_FILE),
        message,
    };
    let mut doc: toml_edit::DocumentMut = config_text
        .parse()
        .map_err(|e: toml_edit::TomlError| invalid(e.to_string()))?;
    let auth = doc
        .entry("auth")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| invalid("`auth` must be a table".into()))?;
    let strategies = auth
        .entry("strategies")
        .or_insert(toml_edit::value(toml_edit::Array::new()))
        .as_array_mut()
        .ok_or_else(|| invalid("[auth] strategies must be an array of strings".into()))?;
    if strategies.iter().any(|v| v.as_str() == Some(name)) {
        return Ok(None);
    }
    strategies.push(name);
    Ok(Some(doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_strategy_keeps_comments_and_layout() {
        let text = "# my game\n[project]\nname = \"x\" # the name\n\n[auth]\n# sign-in methods\nstrategies = [] # none yet\nregistration = \"open\"\n";
        let out = add_strategy(text, "magic_link").unwrap().unwrap();
        assert_eq!(
            out,
            "# my game\n[project]\nname = \"x\" # the name\n\n[auth]\n# sign-in methods\nstrategies = [\"magic_link\"] # none yet\nregistration = \"open\"\n"
        );
        let again = add_strategy(&out, "password").unwrap().unwrap();
        assert!(again.contains("strategies = [\"magic_link\", \"password\"] # none yet"));
        assert!(add_strategy(&again, "password").unwrap().is_none());
    }

    #[test]
    fn add_strategy_creates_the_auth_table_when_missing() {
        let out = add_strategy("[project]\nname = \"x\"\n", "api_key")
            .unwrap()
            .unwrap();
        let config = parse_config(&out).unwrap();
        assert_eq!(config.auth.strategies, vec!["api_key"]);
        assert!(out.starts_with("[project]\nname = \"x\"\n"));
    }

    #[test]
    fn unknown_strategy_lists_the_valid_ones() {
        let err = add_strategy("", "magic_links").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown auth strategy `magic_links`; valid strategies: magic_link, password, api_key"
        );
    }

    #[test]
    fn relative_sqlite_paths_resolve_against_the_project() {
        let root = Path::new("/p");
        assert_eq!(
            resolve_sqlite_path(root, "sqlite://data/kumo.db"),
            "sqlite:///p/data/kumo.db"
        );
        assert_eq!(
            resolve_sqlite_path(root, "sqlite:///abs.db?mode=rwc"),
            "sqlite:///abs.db?mode=rwc"
        );
        assert_eq!(
            resolve_sqlite_path(root, "postgres://u@h/db"),
            "postgres://u@h/db"
        );
    }
}
