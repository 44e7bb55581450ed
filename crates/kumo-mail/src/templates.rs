//! The emails Kumo sends, as minijinja templates: for each kind a subject
//! (`<kind>.subject.txt`), a plain-text body (`<kind>.txt`) and an HTML body
//! (`<kind>.html`, where every value is HTML-escaped). Built-in templates
//! are compiled into the binary; a project overrides any of them with a
//! file of the same name in its `mail/` folder. Every template is parsed
//! when the server starts, so a mistake is reported then, with the file
//! and line, and not when the first player asks for a link.

use std::path::{Path, PathBuf};

use minijinja::Environment;

/// The kinds of email, and the values each template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `app`, `email`, `link`, `code`, `minutes`
    MagicLink,
    /// `app`, `email`, `link`, `minutes`
    PasswordReset,
    /// `app`, `email`, `link`, `minutes`
    EmailConfirmation,
    /// `app`, `email` (the old address, which it is sent to), `new_email`:
    /// the notice that an account's address changed.
    EmailChanged,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::MagicLink,
        Kind::PasswordReset,
        Kind::EmailConfirmation,
        Kind::EmailChanged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::MagicLink => "magic_link",
            Kind::PasswordReset => "password_reset",
            Kind::EmailConfirmation => "email_confirmation",
            Kind::EmailChanged => "email_changed",
        }
    }

    fn built_in(self) -> [(&'static str, &'static str); 3] {
        match self {
            Kind::MagicLink => [
                (
                    "subject.txt",
                    include_str!("../templates/magic_link.subject.txt"),
                ),
                ("txt", include_str!("../templates/magic_link.txt")),
                ("html", include_str!("../templates/magic_link.html")),
            ],
            Kind::PasswordReset => [
                (
                    "subject.txt",
                    include_str!("../templates/password_reset.subject.txt"),
                ),
                ("txt", include_str!("../templates/password_reset.txt")),
                ("html", include_str!("../templates/password_reset.html")),
            ],
            Kind::EmailConfirmation => [
                (
                    "subject.txt",
                    include_str!("../templates/email_confirmation.subject.txt"),
                ),
                ("txt", include_str!("../templates/email_confirmation.txt")),
                ("html", include_str!("../templates/email_confirmation.html")),
            ],
            Kind::EmailChanged => [
                (
                    "subject.txt",
                    include_str!("../templates/email_changed.subject.txt"),
                ),
                ("txt", include_str!("../templates/email_changed.txt")),
                ("html", include_str!("../templates/email_changed.html")),
            ],
        }
    }
}

/// What the templates are given. Its `Debug` leaves out the link and the
/// code, which sign in whoever holds them.
#[derive(Clone)]
pub struct Values<'a> {
    pub app: &'a str,
    pub email: &'a str,
    pub link: &'a str,
    pub code: Option<&'a str>,
    pub minutes: u32,
    /// The address an account moved to (`email_changed` only).
    pub new_email: Option<&'a str>,
}

impl std::fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Values")
            .field("app", &self.app)
            .field("email", &self.email)
            .field("link", &"***")
            .field("code", &self.code.map(|_| "***"))
            .field("minutes", &self.minutes)
            .field("new_email", &self.new_email)
            .finish()
    }
}

/// A rendered email. Its `Debug` shows only the subject: the bodies hold
/// the link and the code.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("could not read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Templates {
    /// The built-in templates, with those in `overrides` (a project's
    /// `mail/` folder; missing is fine) in their place.
    pub fn load(overrides: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        // Undefined values are errors, so a misspelt `{{ lnik }}` fails at
        // the first render in the tests, not as an empty link in a mail.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for kind in Kind::ALL {
            for (suffix, built_in) in kind.built_in() {
                let name = format!("{}.{suffix}", kind.name());
                let (source, shown) = match overrides.map(|dir| dir.join(&name)) {
                    Some(path) if path.is_file() => {
                        let text =
                            std::fs::read_to_string(&path).map_err(|source| TemplateError::Io {
                                path: path.clone(),
                                source,
                            })?;
                        (text, path.display().to_string())
                    }
                    _ => (built_in.to_owned(), format!("built-in {name}")),
                };
                env.add_template_owned(name, source)
                    .map_err(|e| invalid(&shown, &e))?;
            }
        }
        let templates = Templates { env };
        // Render each once with sample values: a template that names a
        // value its kind does not have is refused at start-up.
        for kind in Kind::ALL {
            templates
                .render(
                    kind,
                    &Values {
                        app: "app",
                        email: "player@example.com",
                        link: "https://example.com/",
                        code: Some("000000"),
                        minutes: 15,
                        new_email: Some("new@example.com"),
                    },
                )
                .map_err(|e| match (e, overrides) {
                    (TemplateError::Invalid { path, message }, Some(dir)) => {
                        TemplateError::Invalid {
                            path: dir.join(path).display().to_string(),
                            message,
                        }
                    }
                    (e, _) => e,
                })?;
        }
        Ok(templates)
    }

    pub fn render(&self, kind: Kind, values: &Values<'_>) -> Result<Rendered, TemplateError> {
        let render = |suffix: &str| -> Result<String, TemplateError> {
            let name = format!("{}.{suffix}", kind.name());
            let template = self
                .env
                .get_template(&name)
                .map_err(|e| invalid(&name, &e))?;
            template
                .render(minijinja::context! {
                    app => values.app,
                    email => values.email,
                    link => values.link,
                    code => values.code,
                    minutes => values.minutes,
                    new_email => values.new_email,
                })
                .map_err(|e| invalid(&name, &e))
        };
        Ok(Rendered {
            // A subject is one line: a template's trailing newline (or any
            // other) must not end up in the header.
            subject: render("subject.txt")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

fn invalid(path: &str, error: &minijinja::Error) -> TemplateError {
    let line = error
        .line()
        .map(|line| format!("line {line}: "))
        .unwrap_or_default();
    TemplateError::Invalid {
        path: path.to_owned(),
        message: format!("{line}{}", error.detail().unwrap_or(&error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        Values {
            app: "Dragon <Hoard>",
            email: "a@example.com",
            link: "https://game.example/auth/magic_link/abc?x=1&y=2",
            code: Some("012345"),
            minutes: 15,
            new_email: Some("b&c@example.com"),
        }
    }

    #[test]
    fn built_in_templates_render_every_value_and_escape_html() {
        let t = Templates::load(None).unwrap();
        let mail = t.render(Kind::MagicLink, &values()).unwrap();
        assert_eq!(mail.subject, "Your sign-in link for Dragon <Hoard>");
        assert!(
            mail.text
                .contains("https://game.example/auth/magic_link/abc?x=1&y=2")
        );
        assert!(mail.text.contains("012345") && mail.text.contains("15 minutes"));
        assert!(mail.html.contains("Dragon &lt;Hoard&gt;"), "{}", mail.html);
        assert!(mail.html.contains("abc?x=1&amp;y=2"), "{}", mail.html);
        for kind in [Kind::PasswordReset, Kind::EmailConfirmation] {
            let mail = t.render(kind, &values()).unwrap();
            assert!(
                mail.text.contains("https://game.example/"),
                "{}",
                kind.name()
            );
            assert!(!mail.subject.contains('\n'));
        }
        // The notice names both addresses, the new one escaped in HTML.
        let mail = t.render(Kind::EmailChanged, &values()).unwrap();
        assert!(mail.subject.contains("Dragon <Hoard>"), "{}", mail.subject);
        assert!(mail.text.contains("a@example.com") && mail.text.contains("b&c@example.com"));
        assert!(mail.html.contains("b&amp;c@example.com"), "{}", mail.html);
    }

    #[test]
    fn debug_output_never_shows_a_link_or_code() {
        let t = Templates::load(None).unwrap();
        let values = values();
        let mail = t.render(Kind::MagicLink, &values).unwrap();
        let shown = format!("{values:?} {mail:?}");
        assert!(
            !shown.contains("abc?x=1") && !shown.contains("012345"),
            "{shown}"
        );
    }

    #[test]
    fn a_project_file_replaces_its_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("magic_link.subject.txt"),
            "Welcome back to\n{{ app }}!\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let mail = t.render(Kind::MagicLink, &values()).unwrap();
        assert_eq!(mail.subject, "Welcome back to Dragon <Hoard>!");
        assert!(mail.text.contains("Sign in to"), "the others stay built in");
    }

    #[test]
    fn a_broken_or_misspelt_template_is_refused_at_load_with_its_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password_reset.txt");
        std::fs::write(&path, "Hello\n{% if %}\n").unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("password_reset.txt") && err.contains("line 2"),
            "{err}"
        );

        std::fs::write(&path, "Open {{ lnik }}\n").unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("password_reset.txt") && err.contains("line 1"),
            "{err}"
        );
    }
}
