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
pub mod email;
pub mod password;
pub mod refresh;
mod sealed;
pub mod secret;

/// Derives a key for one purpose from the server's secret.
pub(crate) fn derive_key<const N: usize>(secret: &[u8], label: &[u8]) -> [u8; N] {
    let mut key = [0u8; N];
    hkdf::Hkdf::<sha2::Sha256>::new(None, secret)
        .expand(label, &mut key)
        .expect("keys are within HKDF-SHA256's output limit");
    key
}
