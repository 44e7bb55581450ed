//! Kumo's built-in resources, written in the resource format and embedded in
//! the binary so they are checked by the same loader as a project's files.

/// `(name, text)` in schema order: `user` first, since the others refer to it.
pub(crate) const FILES: &[(&str, &str)] = &[
    ("user", include_str!("../system/user.toml")),
    ("session", include_str!("../system/session.toml")),
    ("auth_token", include_str!("../system/auth_token.toml")),
    ("api_key", include_str!("../system/api_key.toml")),
    (
        "external_identity",
        include_str!("../system/external_identity.toml"),
    ),
    ("audit_event", include_str!("../system/audit_event.toml")),
];
