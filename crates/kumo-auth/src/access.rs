//! Access tokens: what a signed-in client sends as
//! `Authorization: Bearer <token>` until the token expires (15 minutes by
//! default) and the client refreshes it.
//!
//! A token is base64url, without padding, of 82 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 0 | layout version, 1 |
//! | 1..17 | user id |
//! | 17..33 | session id |
//! | 33 | role: 0 user, 1 coordinator, 2 admin |
//! | 34..42 | issued at, Unix seconds, big-endian |
//! | 42..50 | expires at, Unix seconds, big-endian |
//! | 50..82 | HMAC-SHA256 of bytes 0..50 |
//!
//! Only this server checks its tokens, so a fixed layout under one MAC does
//! what a JWT would without JWT's algorithm field (the `alg: none` and
//! key-confusion attacks) or a JSON parse per request. Checking a token is
//! one HMAC and a constant-time comparison, with no database read. Making a
//! revoked session's tokens fail before they expire is the server's
//! revocation list's job, keyed by the session id a token carries.
//!
//! base64url decoding refuses non-zero trailing bits, so a token has one
//! spelling only: a client cannot make a different string that verifies.

use kumo_core::actor::Role;
use uuid::Uuid;

use crate::sealed::{Sealer, Unopened};

const KEY_LABEL: &[u8] = b"kumo access tokens v1";
const BROWSER_KEY_LABEL: &[u8] = b"kumo browser session cookies v1";
const VERSION: u8 = 1;
/// The signed bytes; the MAC follows them.
const SIGNED_LEN: usize = 50;

/// What a token says about its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; the token is refused from this second on.
    pub expires_at: i64,
}

/// Why a token was refused. Each is a 401 to the client; the kinds exist
/// for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not an access token")]
    Malformed,
    #[error("the access token's signature does not match")]
    Forged,
    #[error("the access token has expired")]
    Expired,
}

/// Issues and checks access tokens under a key derived from the server's
/// secret.
#[derive(Clone)]
pub struct AccessKey {
    sealer: Sealer,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessKey(***)")
    }
}

impl AccessKey {
    pub fn new(secret: &[u8]) -> AccessKey {
        AccessKey {
            sealer: Sealer::new(secret, KEY_LABEL),
        }
    }

    /// The key for a browser's session cookie, which has the same layout:
    /// its own key, so a cookie never passes as an access token nor an
    /// access token as a cookie.
    pub fn for_browser(secret: &[u8]) -> AccessKey {
        AccessKey {
            sealer: Sealer::new(secret, BROWSER_KEY_LABEL),
        }
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let mut bytes = [0u8; SIGNED_LEN];
        bytes[0] = VERSION;
        bytes[1..17].copy_from_slice(claims.user_id.as_bytes());
        bytes[17..33].copy_from_slice(claims.session_id.as_bytes());
        bytes[33] = role_byte(claims.role);
        bytes[34..42].copy_from_slice(&claims.issued_at.to_be_bytes());
        bytes[42..50].copy_from_slice(&claims.expires_at.to_be_bytes());
        self.sealer.seal(&bytes)
    }

    /// The claims of a genuine token that has not expired at `now` (Unix
    /// seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let bytes: [u8; SIGNED_LEN] = self.sealer.open(token).map_err(|e| match e {
            Unopened::Malformed => TokenError::Malformed,
            Unopened::Forged => TokenError::Forged,
        })?;
        // Only this server signs, so a genuine token has a layout it wrote;
        // the checks below guard against a future layout, not an attacker.
        if bytes[0] != VERSION {
            return Err(TokenError::Malformed);
        }
        let role = role_from_byte(bytes[33]).ok_or(TokenError::Malformed)?;
        let claims = Claims {
            user_id: Uuid::from_slice(&bytes[1..17]).map_err(|_| TokenError::Malformed)?,
            session_id: Uuid::from_slice(&bytes[17..33]).map_err(|_| TokenError::Malformed)?,
            role,
            issued_at: i64::from_be_bytes(bytes[34..42].try_into().expect("8 bytes")),
            expires_at: i64::from_be_bytes(bytes[42..50].try_into().expect("8 bytes")),
        };
        if now >= claims.expires_at {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn role_byte(role: Role) -> u8 {
    match role {
        Role::User => 0,
        Role::Coordinator => 1,
        Role::Admin => 2,
    }
}

fn role_from_byte(byte: u8) -> Option<Role> {
    Some(match byte {
        0 => Role::User,
        1 => Role::Coordinator,
        2 => Role::Admin,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000;

    fn claims(role: Role) -> Claims {
        Claims {
            user_id: Uuid::from_u128(0x0193_a5b0_0000_7000_8000_0000_0000_0001),
            session_id: Uuid::from_u128(0x0193_a5b0_0000_7000_8000_0000_0000_0002),
            role,
            issued_at: NOW,
            expires_at: NOW + 900,
        }
    }

    fn key() -> AccessKey {
        AccessKey::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_token_verifies_to_its_claims_until_it_expires() {
        for role in [Role::User, Role::Coordinator, Role::Admin] {
            let token = key().issue(&claims(role));
            assert_eq!(token.len(), 110);
            assert_eq!(key().verify(&token, NOW), Ok(claims(role)));
            assert_eq!(key().verify(&token, NOW + 899), Ok(claims(role)));
            assert_eq!(key().verify(&token, NOW + 900), Err(TokenError::Expired));
        }
    }

    #[test]
    fn another_servers_token_is_forged() {
        let token = AccessKey::new(b"another server's secret, 32 byte").issue(&claims(Role::Admin));
        assert_eq!(key().verify(&token, NOW), Err(TokenError::Forged));
    }

    #[test]
    fn a_browser_cookie_is_not_an_access_token_nor_the_reverse() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let browser = AccessKey::for_browser(secret);
        let cookie = browser.issue(&claims(Role::Admin));
        assert_eq!(browser.verify(&cookie, NOW), Ok(claims(Role::Admin)));
        assert_eq!(key().verify(&cookie, NOW), Err(TokenError::Forged));
        let token = key().issue(&claims(Role::Admin));
        assert_eq!(browser.verify(&token, NOW), Err(TokenError::Forged));
    }

    #[test]
    fn every_changed_or_truncated_character_is_refused() {
        let token = key().issue(&claims(Role::User));
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for at in 0..token.len() {
            for &c in alphabet {
                let mut changed = token.clone().into_bytes();
                if changed[at] == c {
                    continue;
                }
                changed[at] = c;
                let changed = String::from_utf8(changed).unwrap();
                let result = key().verify(&changed, NOW);
                assert!(
                    matches!(result, Err(TokenError::Forged | TokenError::Malformed)),
                    "{changed}: {result:?}"
                );
            }
            assert_eq!(key().verify(&token[..at], NOW), Err(TokenError::Malformed));
        }
        assert_eq!(
            key().verify(&format!("{token}A"), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_role_byte_no_server_writes_is_malformed_even_when_signed() {
        let mut bytes = [0u8; SIGNED_LEN];
        bytes[0] = VERSION;
        bytes[33] = 7;
        bytes[42..50].copy_from_slice(&(NOW + 60).to_be_bytes());
        let token = key().sealer.seal(&bytes);
        assert_eq!(key().verify(&token, NOW), Err(TokenError::Malformed));
    }

    proptest! {
        #[test]
        fn no_string_panics_or_verifies(s in "\\PC{0,120}", t in "[A-Za-z0-9_-]{110}") {
            prop_assert!(key().verify(&s, NOW).is_err());
            prop_assert!(key().verify(&t, NOW).is_err());
        }

        #[test]
        fn any_claims_round_trip(
            user in any::<u128>(),
            session in any::<u128>(),
            issued in 0i64..i64::MAX / 2,
            lifetime in 1i64..1_000_000,
        ) {
            let claims = Claims {
                user_id: Uuid::from_u128(user),
                session_id: Uuid::from_u128(session),
                role: Role::Coordinator,
                issued_at: issued,
                expires_at: issued.saturating_add(lifetime),
            };
            let token = key().issue(&claims);
            prop_assert_eq!(key().verify(&token, issued), Ok(claims));
        }
    }
}
