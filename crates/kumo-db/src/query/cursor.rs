//! Opaque, tamper-evident page cursors.
//!
//! A cursor holds the sort-key values of a row, sealed with AES-SIV
//! (RFC 5297, the `aes-siv` crate) under a key derived from the server's
//! secret with HKDF-SHA256, with the resource and sort it was made for as
//! associated data: base64url(synthetic IV | ciphertext). So a client can
//! read nothing from a cursor (not the table, not the sort values), cannot
//! forge a position, and cannot feed the server values through one: the
//! tag is checked before the JSON is parsed. SIV is deterministic, so the
//! same position always gives the same cursor, and needs no nonce that a
//! busy server could repeat.

use aes_siv::KeyInit;
use aes_siv::siv::Aes256Siv;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// What the derived key is for: the same secret keys other features under
/// other labels, and no two of them share a key.
const KEY_LABEL: &[u8] = b"kumo page cursors v1";

/// AES-SIV's synthetic IV, which is also its tag.
const TAG_LEN: usize = 16;

#[derive(Clone)]
pub struct CursorKey([u8; 64]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(***)")
    }
}

impl CursorKey {
    pub fn new(secret: &[u8]) -> CursorKey {
        CursorKey(kumo_core::keys::derive_key(secret, KEY_LABEL))
    }

    fn siv(&self) -> Aes256Siv {
        Aes256Siv::new_from_slice(&self.0).expect("AES-256-SIV takes a 64-byte key")
    }

    /// `scope` binds the cursor to a resource and a sort.
    pub fn encode(&self, scope: &str, values: &[Value]) -> String {
        let payload = serde_json::to_vec(values).expect("JSON values serialise");
        let sealed = self
            .siv()
            .encrypt([scope.as_bytes()], &payload)
            .expect("a cursor is far below AES-SIV's length limit");
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// The values, if the cursor is genuine and was made for `scope`.
    pub fn decode(&self, scope: &str, cursor: &str) -> Option<Vec<Value>> {
        let sealed = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if sealed.len() <= TAG_LEN {
            return None;
        }
        let payload = self.siv().decrypt([scope.as_bytes()], &sealed).ok()?;
        match serde_json::from_slice(&payload).ok()? {
            Value::Array(values) => Some(values),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_tampering() {
        let key = CursorKey::new(b"secret");
        let c = key.encode("avatars:id", &[Value::from("x"), Value::Null]);
        assert_eq!(
            key.decode("avatars:id", &c),
            Some(vec![Value::from("x"), Value::Null])
        );
        assert_eq!(key.decode("comments:id", &c), None, "other scope");
        assert_eq!(CursorKey::new(b"other").decode("avatars:id", &c), None);
        // Every single changed byte is caught.
        let sealed = URL_SAFE_NO_PAD.decode(&c).unwrap();
        for i in 0..sealed.len() {
            let mut bent = sealed.clone();
            bent[i] ^= 0x01;
            assert_eq!(
                key.decode("avatars:id", &URL_SAFE_NO_PAD.encode(&bent)),
                None,
                "byte {i}"
            );
        }
        assert_eq!(key.decode("avatars:id", &c[..c.len() - 1]), None, "cut");
        assert_eq!(key.decode("avatars:id", ""), None);
        assert_eq!(key.decode("avatars:id", "%%%.###"), None);
        // Shorter than a block: still sealed and opened.
        let empty = key.encode("s", &[]);
        assert_eq!(key.decode("s", &empty), Some(vec![]));
    }

    #[test]
    fn a_cursor_shows_nothing_of_what_it_holds() {
        let key = CursorKey::new(b"secret");
        let c = key.encode("avatars:-name,id", &[Value::from("Robot"), Value::from(7)]);
        let sealed = URL_SAFE_NO_PAD.decode(&c).unwrap();
        let text = String::from_utf8_lossy(&sealed);
        for secret in ["avatars", "name", "Robot"] {
            assert!(!text.contains(secret), "{secret} is readable in {c}");
            assert!(!c.contains(secret), "{secret} is readable in {c}");
        }
        // Two positions never share an IV; one position always seals alike.
        let other = key.encode("avatars:-name,id", &[Value::from("Robot"), Value::from(8)]);
        assert_ne!(c[..22], other[..22]);
        assert_eq!(
            c,
            key.encode("avatars:-name,id", &[Value::from("Robot"), Value::from(7)])
        );
    }
}
