//! Opaque, tamper-evident page cursors.
//!
//! A cursor names the resource and the sort it was made for and holds the
//! sort-key values of a row, sealed with the server's secret in the SIV
//! manner: tag = HMAC-SHA256(key, 0x00 | payload) cut to 16 bytes; the
//! payload is XORed with a keystream of HMAC-SHA256(key, 0x01 | tag |
//! block number); the cursor is base64url(tag | ciphertext). So a client
//! can read nothing from a cursor (not the table, not the sort values),
//! cannot forge a position, and cannot feed the server values through one:
//! the tag is checked in constant time before the JSON is parsed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde_json::Value;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const TAG_LEN: usize = 16;
/// Domain separation: the same key makes tags and keystream, never alike.
const TAG_DOMAIN: u8 = 0;
const STREAM_DOMAIN: u8 = 1;

#[derive(Clone)]
pub struct CursorKey(Vec<u8>);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(***)")
    }
}

impl CursorKey {
    pub fn new(secret: &[u8]) -> CursorKey {
        CursorKey(secret.to_vec())
    }

    fn mac(&self, domain: u8) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(&[domain]);
        mac
    }

    /// XORs `data` with the keystream the tag selects; its own inverse.
    fn apply_keystream(&self, tag: &[u8], data: &mut [u8]) {
        for (block, chunk) in data.chunks_mut(32).enumerate() {
            let mut mac = self.mac(STREAM_DOMAIN);
            mac.update(tag);
            mac.update(&(block as u64).to_be_bytes());
            let stream = mac.finalize().into_bytes();
            for (byte, key) in chunk.iter_mut().zip(stream.iter()) {
                *byte ^= key;
            }
        }
    }

    /// `scope` binds the cursor to a resource and a sort.
    pub fn encode(&self, scope: &str, values: &[Value]) -> String {
        let payload = serde_json::json!([scope, values]).to_string();
        let mut mac = self.mac(TAG_DOMAIN);
        mac.update(payload.as_bytes());
        let full = mac.finalize().into_bytes();
        let tag = &full[..TAG_LEN];
        let mut sealed = tag.to_vec();
        let mut body = payload.into_bytes();
        self.apply_keystream(tag, &mut body);
        sealed.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// The values, if the cursor is genuine and was made for `scope`.
    pub fn decode(&self, scope: &str, cursor: &str) -> Option<Vec<Value>> {
        let sealed = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if sealed.len() <= TAG_LEN {
            return None;
        }
        let (tag, body) = sealed.split_at(TAG_LEN);
        let mut payload = body.to_vec();
        self.apply_keystream(tag, &mut payload);
        let mut mac = self.mac(TAG_DOMAIN);
        mac.update(&payload);
        // Constant time; the tag length is fixed above, so no short prefix
        // can pass.
        mac.verify_truncated_left(tag).ok()?;
        let Value::Array(mut parts) = serde_json::from_slice(&payload).ok()? else {
            return None;
        };
        match (parts.pop(), parts.pop()) {
            (Some(Value::Array(values)), Some(Value::String(s))) if s == scope => Some(values),
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
        // Two positions never share a keystream: different tags.
        let other = key.encode("avatars:-name,id", &[Value::from("Robot"), Value::from(8)]);
        assert_ne!(c[..22], other[..22]);
    }
}
