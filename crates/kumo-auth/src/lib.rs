//! Account credentials, without HTTP or a database: what the auth routes
//! issue, store and check.
//!
//! - [`access`]: short-lived access tokens, verified by their MAC alone.
//! - [`secret`]: random one-time secrets (refresh tokens, magic links,
//!   codes) and the hashes they are stored as.
//! - [`api_key`]: long-lived keys in a format secret scanners recognise.
//! - [`email`]: one spelling per email address.
//! - [`password`]: which passwords are accepted; Argon2id hashing.
//! - [`refresh`]: single-use refresh tokens that recognise their own reuse.
//!
//! Every key is derived from the server's secret (`KUMO_SECRET`) with
//! HKDF-SHA256 under its own label, so no two features share a key.

pub mod access;
pub mod api_key;
/// Email addresses in their one spelling; defined beside the resources, since
/// seeds write them too.
pub use kumo_core::email;
pub mod password;
pub mod refresh;
mod sealed;
pub mod secret;

use kumo_core::keys::derive_key;
