//! Opaque, tamper-evident page cursors.
//!
//! A cursor names the resource and the sort it was made for and holds the
//! sort-key values of a row: base64url(JSON) "." base64url(HMAC-SHA256 tag,
//! 16 bytes). The tag is checked in constant time before the JSON is read,
//! so a client can neither forge a position nor feed the server arbitrary
//! values through a cursor.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde_json::Value;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const TAG_LEN: usize = 16;

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

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }

    /// `scope` binds the cursor to a resource and a sort.
    pub fn encode(&self, scope: &str, values: &[Value]) -> String {
        let payload = serde_json::json!([scope, values]).to_string();
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        )
    }

    /// The values, if the cursor is genuine and was made for `scope`.
    pub fn decode(&self, scope: &str, cursor: &str) -> Option<Vec<Value>> {
        let (payload, tag) = cursor.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        // `verify_truncated_left` accepts any prefix, even one byte long.
        if tag.len() != TAG_LEN {
            return None;
        }
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_truncated_left(&tag).ok()?;
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
        let (payload, tag) = c.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(r#"["avatars:id",["y",null]]"#);
        assert_eq!(key.decode("avatars:id", &format!("{forged}.{tag}")), None);
        assert_eq!(key.decode("avatars:id", payload), None, "no tag");
        assert_eq!(key.decode("avatars:id", &format!("{payload}.")), None);
        assert_eq!(key.decode("avatars:id", "%%%.###"), None);
    }
}
