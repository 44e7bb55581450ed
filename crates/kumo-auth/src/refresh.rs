//! Refresh tokens: what a client trades for a new access token and a new
//! refresh token (`POST /auth/token/refresh`). Each is good once.
//!
//! A token names its session and the session's generation, under a MAC:
//! base64url of `session id (16) | generation (8, big-endian) |
//! HMAC-SHA256 (32)`, 75 characters. The server stores the hash of the
//! current token ([`crate::secret::hash`]) and the session's generation,
//! and moves both on at each refresh. Because the MAC proves a token was
//! issued by this server for that session and generation, a token from an
//! earlier generation is recognised as a *reused* token, not as garbage:
//! someone replayed a token that was already traded in, so the token was
//! copied, and the whole session is revoked (theft detection). Nobody
//! without the server's secret can make such a token for someone else's
//! session, so a forged one cannot revoke it.
//!
//! A client whose refresh answer was lost on the network retries with the
//! token it still has, which is now one generation old. Within
//! [`RETRY_GRACE_SECONDS`] of the refresh, the server answers that retry
//! with the current generation's token (which it can make again, since
//! tokens are a function of session and generation) instead of revoking.

use uuid::Uuid;

use crate::sealed::Sealer;

const KEY_LABEL: &[u8] = b"kumo refresh tokens v1";
/// Session id and generation; the MAC follows them.
const SIGNED_LEN: usize = 24;

/// How long after a refresh the previous token may be presented again
/// without revoking the session: a retry after a lost answer.
pub const RETRY_GRACE_SECONDS: i64 = 30;

/// What a genuine refresh token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented {
    pub session_id: Uuid,
    pub generation: i64,
}

/// What to do with a genuine token, given the session's stored generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The current token: rotate to `generation + 1`.
    Rotate,
    /// The previous token, within the grace period: answer the current
    /// generation's token again.
    Retry,
    /// An older token, or the previous one after the grace period: revoke
    /// the session.
    Reused,
    /// A generation the session never had: refuse, revoke nothing.
    Invalid,
}

/// Decides what a token of `presented` generation means for a session at
/// `current` generation, last rotated at `rotated_at` (Unix seconds).
pub fn verdict(presented: i64, current: i64, rotated_at: i64, now: i64) -> Verdict {
    if presented == current {
        Verdict::Rotate
    } else if presented > current || presented < 0 {
        Verdict::Invalid
    } else if presented == current - 1 && now - rotated_at <= RETRY_GRACE_SECONDS {
        Verdict::Retry
    } else {
        Verdict::Reused
    }
}

#[derive(Clone)]
pub struct RefreshKey {
    sealer: Sealer,
}

impl std::fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshKey(***)")
    }
}

impl RefreshKey {
    pub fn new(secret: &[u8]) -> RefreshKey {
        RefreshKey {
            sealer: Sealer::new(secret, KEY_LABEL),
        }
    }

    /// The token of `session_id` at `generation`; the same inputs always
    /// give the same token.
    pub fn token(&self, session_id: Uuid, generation: i64) -> String {
        let mut bytes = [0u8; SIGNED_LEN];
        bytes[..16].copy_from_slice(session_id.as_bytes());
        bytes[16..].copy_from_slice(&generation.to_be_bytes());
        self.sealer.seal(&bytes)
    }

    /// The session and generation of a token this server issued; `None`
    /// for anything else.
    pub fn open(&self, token: &str) -> Option<Presented> {
        let bytes: [u8; SIGNED_LEN] = self.sealer.open(token).ok()?;
        Some(Presented {
            session_id: Uuid::from_slice(&bytes[..16]).ok()?,
            generation: i64::from_be_bytes(bytes[16..].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> RefreshKey {
        RefreshKey::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_token_opens_to_its_session_and_generation_only_under_its_key() {
        let session = Uuid::now_v7();
        let token = key().token(session, 7);
        assert_eq!(token.len(), 75);
        assert_eq!(token, key().token(session, 7), "deterministic");
        assert_ne!(token, key().token(session, 8));
        assert_eq!(
            key().open(&token),
            Some(Presented {
                session_id: session,
                generation: 7
            })
        );
        assert_eq!(
            RefreshKey::new(b"another server's secret, 32 byte").open(&token),
            None
        );
        for at in 0..token.len() {
            let mut changed = token.clone().into_bytes();
            changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
            assert_eq!(key().open(&String::from_utf8(changed).unwrap()), None);
            assert_eq!(key().open(&token[..at]), None);
        }
    }

    #[test]
    fn verdicts() {
        let rotated = 1_000;
        assert_eq!(verdict(5, 5, rotated, rotated + 999), Verdict::Rotate);
        assert_eq!(verdict(4, 5, rotated, rotated + 30), Verdict::Retry);
        assert_eq!(verdict(4, 5, rotated, rotated + 31), Verdict::Reused);
        assert_eq!(verdict(3, 5, rotated, rotated + 1), Verdict::Reused);
        assert_eq!(verdict(0, 5, rotated, rotated), Verdict::Reused);
        assert_eq!(verdict(6, 5, rotated, rotated), Verdict::Invalid);
        assert_eq!(verdict(-1, 5, rotated, rotated), Verdict::Invalid);
    }

    proptest! {
        #[test]
        fn no_string_panics_or_opens(s in "\\PC{0,90}", t in "[A-Za-z0-9_-]{75}") {
            prop_assert_eq!(key().open(&s), None);
            prop_assert_eq!(key().open(&t), None);
        }
    }
}
