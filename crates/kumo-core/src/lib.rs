//! Kumo's resource model, with no database or HTTP in it.
//!
//! - [`actor`]: who is making a request, as policies see them.
//! - [`resource`]: the validated model of `resources/*.toml`.
//! - [`load`]: reading and validating a project's resource files, with every
//!   error reported at once (file, line, column, did-you-mean).
//! - [`policy`]: the policy expression language.
//! - [`table`]: the table model resources lower to, and its recorded snapshot.
//! - [`project`]: `kumo.toml`, the project's configuration.
//! - [`datetime`]: the one written form of dates and datetimes.
//! - [`email`]: email addresses in their one spelling.
//! - [`keys`]: keys derived from the server's secret.

pub mod actor;
pub mod datetime;
pub mod diagnostic;
pub mod email;
pub mod keys;
pub mod load;
pub mod policy;
pub mod project;
pub mod resource;
pub mod table;
