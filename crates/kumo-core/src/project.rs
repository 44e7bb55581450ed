//! A Kumo project on disk: `kumo.toml` and the folders beside it.
//!
//! `kumo.toml` is read with serde (unknown keys are errors, with line and
//! column) and edited with `toml_edit` so that commands such as
//! `kumo auth add-strategy` keep the user's comments and layout.

use std::num::NonZeroU32;
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
    #[serde(default)]
    pub mail: MailSection,
    #[serde(default)]
    pub admin: AdminSection,
}

/// `[admin]`: what the admin web UI lets coordinators do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Whether coordinators may manage players' accounts from the admin
    /// (sign them out, lock and unlock them, confirm their address, send
    /// them a sign-in link); never an admin's or another coordinator's,
    /// and never anyone's role. Default `true`.
    #[serde(default = "yes")]
    pub coordinators_manage_users: bool,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            coordinators_manage_users: true,
        }
    }
}

fn yes() -> bool {
    true
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
    /// Milliseconds a PostgreSQL statement run for the API may take before
    /// it is cancelled (and the request answered 503); 0 is no limit.
    /// Default 10 000. Migrations are never cut off.
    pub statement_timeout: Option<u64>,
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
///
/// Every value is checked as the file is read, so a mistake is reported
/// with its line and column and the server takes the section as it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSection {
    /// `false` turns the limit off (benchmarks, a trusted network).
    pub enabled: bool,
    /// Sustained requests per second per client.
    #[serde(deserialize_with = "at_least_one")]
    pub per_second: NonZeroU32,
    /// Requests a client may make at once before the sustained rate applies.
    #[serde(deserialize_with = "at_least_one")]
    pub burst: NonZeroU32,
    /// Behind a reverse proxy, the header it puts the client's address in
    /// (`x-forwarded-for`: its last entry is used, the one the proxy added).
    /// Unset: the address of the TCP peer.
    pub client_ip_header: Option<HeaderName>,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        RateLimitSection {
            enabled: true,
            per_second: NonZeroU32::new(100).expect("100 is not zero"),
            burst: NonZeroU32::new(200).expect("200 is not zero"),
            client_ip_header: None,
        }
    }
}

/// A zero rate or burst would refuse every request; it is refused even with
/// `enabled = false`, since zero never means "off".
fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    NonZeroU32::new(u32::deserialize(d)?).ok_or_else(|| {
        serde::de::Error::custom(
            "[server.rate_limit] per_second and burst must be at least 1; \
             to turn the limit off, set enabled = false",
        )
    })
}

/// An HTTP header name: a non-empty token of RFC 9110 (letters, digits and
/// ``!#$%&'*+-.^_`|~``), shorter than 64 KiB; exactly what the server's
/// `http::HeaderName` takes, so it converts without failing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HeaderName(String);

impl HeaderName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HeaderName {
    type Error = String;

    fn try_from(name: String) -> Result<HeaderName, String> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || name.len() >= 1 << 16 || !name.bytes().all(token) {
            return Err(format!(
                "[server.rate_limit] client_ip_header `{name}` is not a header name"
            ));
        }
        Ok(HeaderName(name))
    }
}

/// `[auth]`: sign-in. Every value is checked as the file is read, so a
/// mistake is reported with its line and column.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    pub strategies: Vec<String>,
    /// Whether a sign-in for an unknown address creates the account.
    pub registration: Registration,
    /// How long an access token is good for.
    #[serde(deserialize_with = "access_token_minutes")]
    pub access_token_minutes: NonZeroU32,
    /// How long a device stays signed in without using its refresh token.
    #[serde(deserialize_with = "session_days")]
    pub session_days: NonZeroU32,
    /// Whether a password account (and a changed address) must confirm its
    /// email before it can sign in.
    pub confirm_email: bool,
    /// How many days `audit_event` rows are kept; `0` keeps them for ever.
    /// Anyone can add rows (every magic-link request is one), so without
    /// a bound the table grows with every request ever made.
    #[serde(deserialize_with = "audit_retention_days")]
    pub audit_retention_days: u32,
    pub password: PasswordSection,
    pub rate_limit: AuthRateLimitSection,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            strategies: Vec::new(),
            registration: Registration::default(),
            access_token_minutes: NonZeroU32::new(15).expect("15 is not zero"),
            session_days: NonZeroU32::new(30).expect("30 is not zero"),
            confirm_email: false,
            audit_retention_days: 365,
            password: PasswordSection::default(),
            rate_limit: AuthRateLimitSection::default(),
        }
    }
}

/// `[auth.rate_limit]`: how many auth requests (sign-ins, refreshes, link
/// requests…) one client and one target account may make, on top of
/// `[server.rate_limit]`. Beyond either: 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthRateLimitSection {
    /// `false` turns these limits off (benchmarks, a trusted network).
    pub enabled: bool,
    /// Per client (an IPv4 address or an IPv6 /64), across the auth routes.
    #[serde(deserialize_with = "auth_limit")]
    pub per_ip_per_minute: NonZeroU32,
    /// Per target account (an email, a username, a session).
    #[serde(deserialize_with = "auth_limit")]
    pub per_account_per_minute: NonZeroU32,
    /// Magic-link polls per client: a game polls every few seconds while
    /// its player opens the mail, and players may share an address.
    #[serde(deserialize_with = "auth_limit")]
    pub polls_per_ip_per_minute: NonZeroU32,
}

impl Default for AuthRateLimitSection {
    fn default() -> Self {
        AuthRateLimitSection {
            enabled: true,
            per_ip_per_minute: NonZeroU32::new(60).expect("60 is not zero"),
            per_account_per_minute: NonZeroU32::new(10).expect("10 is not zero"),
            // Ten games polling every two seconds from one address.
            polls_per_ip_per_minute: NonZeroU32::new(300).expect("300 is not zero"),
        }
    }
}

fn auth_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    in_range(
        d,
        "[auth.rate_limit] per_ip_per_minute, per_account_per_minute and polls_per_ip_per_minute (enabled = false turns them off)",
        1..=1_000_000,
    )
    .map(|n| NonZeroU32::new(n).expect("the range starts at 1"))
}

/// `open`: the first sign-in of an unknown address creates its account
/// (what `kumo new` writes). `closed` (the default when unset): only
/// accounts made by an admin or `kumo user create` can sign in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    #[default]
    Closed,
}

/// `[auth.password]`: the Argon2id cost of each password hash. The default
/// is OWASP's (19 MiB, two passes, one lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordSection {
    #[serde(deserialize_with = "password_memory")]
    pub memory_kib: u32,
    #[serde(deserialize_with = "password_iterations")]
    pub iterations: u32,
    #[serde(deserialize_with = "password_lanes")]
    pub lanes: u32,
}

impl Default for PasswordSection {
    fn default() -> Self {
        PasswordSection {
            memory_kib: 19 * 1024,
            iterations: 2,
            lanes: 1,
        }
    }
}

fn in_range<'de, D: serde::Deserializer<'de>>(
    d: D,
    what: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(format!(
            "{what} must be from {} to {}",
            range.start(),
            range.end()
        )))
    }
}

fn access_token_minutes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    // Revocation reaches access tokens within seconds anyway; a day caps
    // what a copied token is worth if the revocation list is ever missed.
    in_range(d, "[auth] access_token_minutes", 1..=1440)
        .map(|n| NonZeroU32::new(n).expect("the range starts at 1"))
}

fn session_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    in_range(d, "[auth] session_days", 1..=3650)
        .map(|n| NonZeroU32::new(n).expect("the range starts at 1"))
}

fn audit_retention_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    // 0 keeps events for ever; past a hundred years is surely a typo.
    in_range(
        d,
        "[auth] audit_retention_days (0: keep for ever)",
        0..=36500,
    )
}

fn password_memory<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    // Below 8 MiB Argon2 protects little; over 1 GiB one sign-in could
    // exhaust the server.
    in_range(d, "[auth.password] memory_kib", 8 * 1024..=1024 * 1024)
}

fn password_iterations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "[auth.password] iterations", 1..=20)
}

fn password_lanes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "[auth.password] lanes", 1..=16)
}

/// `[mail]`: how Kumo sends its emails (sign-in links, password resets).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSection {
    /// Where mail goes: to an SMTP server, to the dev mailbox
    /// (`/dev/mailbox`, the default), or to `.eml` files.
    #[serde(default)]
    pub adapter: MailAdapter,
    /// The sender, `Name <address>` or a bare address.
    pub from: Option<String>,
    /// The SMTP server for `adapter = "smtp"`, as a URL:
    /// `smtps://user:pass@host:465` (TLS), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtp://host:25` (plain, for a local relay). `SMTP_URL`
    /// in the environment overrides it, which keeps the password out of the file.
    pub url: Option<String>,
    /// The folder `adapter = "file"` writes to (default `data/mail`).
    pub dir: Option<PathBuf>,
    /// A PEM file (relative to the project) of certificate authorities to
    /// trust for the SMTP server's certificate, on top of the usual public
    /// ones: for a server whose certificate a private CA signed. Nothing is
    /// trusted less with it.
    pub tls_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailAdapter {
    Smtp,
    #[default]
    Dev,
    File,
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

    #[test]
    fn rate_limit_mistakes_are_reported_with_line_and_column() {
        let zero =
            parse_config("[server.rate_limit]\nenabled = true\nper_second = 0\n").unwrap_err();
        assert!(zero.contains("line 3, column 14"), "{zero}");
        assert!(
            zero.contains(
                "[server.rate_limit] per_second and burst must be at least 1; \
                 to turn the limit off, set enabled = false"
            ),
            "{zero}"
        );
        let burst = parse_config("[server.rate_limit]\nburst = 0\n").unwrap_err();
        assert!(burst.contains("line 2, column 9"), "{burst}");
        // Zero never means "off", also when the limit is off.
        let off = parse_config("[server.rate_limit]\nenabled = false\nburst = 0\n").unwrap_err();
        assert!(off.contains("must be at least 1"), "{off}");
        for bad in ["bad header", "", "x-forwarded-for:", "ü"] {
            let text = format!("[server.rate_limit]\nclient_ip_header = \"{bad}\"\n");
            let err = parse_config(&text).unwrap_err();
            assert!(err.contains("line 2, column 20"), "{err}");
            assert!(
                err.contains(&format!("client_ip_header `{bad}` is not a header name")),
                "{err}"
            );
        }
        let ok = parse_config(
            "[server.rate_limit]\nenabled = false\nper_second = 5\nburst = 1\nclient_ip_header = \"X-Forwarded-For\"\n",
        )
        .unwrap()
        .server
        .rate_limit;
        assert!(!ok.enabled);
        assert_eq!((ok.per_second.get(), ok.burst.get()), (5, 1));
        assert_eq!(ok.client_ip_header.unwrap().as_str(), "X-Forwarded-For");
        let default = parse_config("").unwrap().server.rate_limit;
        assert_eq!((default.per_second.get(), default.burst.get()), (100, 200));
    }

    #[test]
    fn auth_and_mail_settings_are_read_and_checked_with_line_and_column() {
        let default = parse_config("").unwrap();
        assert_eq!(default.auth.registration, Registration::Closed);
        assert_eq!(default.auth.access_token_minutes.get(), 15);
        assert_eq!(default.auth.session_days.get(), 30);
        assert!(!default.auth.confirm_email);
        assert_eq!(default.auth.audit_retention_days, 365);
        assert_eq!(default.auth.password, PasswordSection::default());
        assert_eq!(default.mail.adapter, MailAdapter::Dev);

        let set = parse_config(
            "[auth]\nregistration = \"open\"\naccess_token_minutes = 5\nsession_days = 90\nconfirm_email = true\naudit_retention_days = 0\n\n[auth.password]\nmemory_kib = 65536\niterations = 3\nlanes = 2\n\n[mail]\nadapter = \"smtp\"\nfrom = \"Game <a@b.example>\"\nurl = \"smtp://localhost:25\"\n",
        )
        .unwrap();
        assert_eq!(set.auth.registration, Registration::Open);
        assert_eq!(
            (
                set.auth.access_token_minutes.get(),
                set.auth.session_days.get()
            ),
            (5, 90)
        );
        assert!(set.auth.confirm_email);
        assert_eq!(set.auth.audit_retention_days, 0);
        assert_eq!(
            set.auth.password,
            PasswordSection {
                memory_kib: 65536,
                iterations: 3,
                lanes: 2
            }
        );
        assert_eq!(set.mail.adapter, MailAdapter::Smtp);

        for (text, place, message) in [
            (
                "[auth]\nregistration = \"invite\"\n",
                "line 2, column 16",
                "unknown variant `invite`",
            ),
            (
                "[auth]\naccess_token_minutes = 0\n",
                "line 2, column 24",
                "[auth] access_token_minutes must be from 1 to 1440",
            ),
            (
                "[auth]\nsession_days = 5000\n",
                "line 2, column 16",
                "[auth] session_days must be from 1 to 3650",
            ),
            (
                "[auth]\naudit_retention_days = 40000\n",
                "line 2, column 24",
                "[auth] audit_retention_days (0: keep for ever) must be from 0 to 36500",
            ),
            (
                "[auth.password]\nmemory_kib = 1024\n",
                "line 2, column 14",
                "[auth.password] memory_kib must be from 8192 to 1048576",
            ),
            (
                "[auth.password]\niterations = 0\n",
                "line 2, column 14",
                "[auth.password] iterations must be from 1 to 20",
            ),
            (
                "[auth.password]\nlanes = 99\n",
                "line 2, column 9",
                "[auth.password] lanes must be from 1 to 16",
            ),
            (
                "[mail]\nadapter = \"pigeon\"\n",
                "line 2, column 11",
                "unknown variant `pigeon`",
            ),
            (
                "[mail]\nhost = \"x\"\n",
                "line 2, column 1",
                "unknown field `host`",
            ),
        ] {
            let err = parse_config(text).unwrap_err();
            assert!(
                err.contains(place) && err.contains(message),
                "{text}: {err}"
            );
        }
    }
}
