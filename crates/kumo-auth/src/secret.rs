//! One-time secrets and how they are stored.
//!
//! A long secret (a refresh token, a magic-link token, a poll secret, an
//! API key) is 256 random bits, so a plain SHA-256 of it is enough to store:
//! nobody can search that space, and the stored hash survives a change of
//! the server's secret. A six-digit code has only a million values, so its
//! hash is keyed ([`CodeKey`]): a copy of the database alone does not give
//! the codes away.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<Sha256>;

const CODE_KEY_LABEL: &[u8] = b"kumo one-time codes v1";

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes
}

/// A new 256-bit secret, base64url: 43 characters.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// How a long secret is stored: SHA-256, base64url.
pub fn hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Whether two strings are equal, in time that depends only on their
/// lengths.
pub fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A uniformly random six-digit code, `000000` to `999999`.
pub fn six_digit_code() -> String {
    // 2^32 is not a multiple of a million: values past the last whole
    // multiple would make low codes likelier, so they are drawn again.
    const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000);
    loop {
        let n = u32::from_be_bytes(random_bytes::<4>());
        if n < LIMIT {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// An HMAC-SHA256 under a key derived from the server's secret for one
/// purpose (its label): a value that only this server can make or check.
#[derive(Clone)]
pub struct KeyedHash {
    keyed: HmacSha256,
}

impl std::fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHash(***)")
    }
}

impl KeyedHash {
    pub fn new(secret: &[u8], label: &[u8]) -> KeyedHash {
        let key: [u8; 32] = crate::derive_key(secret, label);
        KeyedHash {
            keyed: HmacSha256::new_from_slice(&key).expect("HMAC takes a key of any length"),
        }
    }

    /// The keyed hash of `value` bound to `scope`, base64url: the same
    /// value under two scopes hashes differently.
    pub fn hash(&self, scope: &str, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `stored` is the hash of `value` for `scope`, compared in
    /// constant time.
    pub fn matches(&self, scope: &str, value: &str, stored: &str) -> bool {
        equal(&self.hash(scope, value), stored)
    }
}

/// Keys the hashes of short codes, under a key derived from the server's
/// secret.
#[derive(Clone, Debug)]
pub struct CodeKey(KeyedHash);

impl CodeKey {
    pub fn new(secret: &[u8]) -> CodeKey {
        CodeKey(KeyedHash::new(secret, CODE_KEY_LABEL))
    }

    /// The stored form of `code`, bound to `scope` (the id of the token it
    /// belongs to), so the same code under two tokens hashes differently.
    pub fn hash(&self, scope: &str, code: &str) -> String {
        self.0.hash(scope, code)
    }

    /// Whether `code` is the one stored as `stored` for `scope`.
    pub fn matches(&self, scope: &str, code: &str, stored: &str) -> bool {
        self.0.matches(scope, code, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_differ() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_ne!(hash(&a), a);
    }

    #[test]
    fn codes_are_six_digits_and_cover_the_range() {
        let mut first_digits = [0u32; 10];
        for _ in 0..5000 {
            let code = six_digit_code();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|c| c.is_ascii_digit()), "{code}");
            first_digits[usize::from(code.as_bytes()[0] - b'0')] += 1;
        }
        // 500 expected per digit; 300 is over nine standard deviations out.
        assert!(first_digits.iter().all(|&n| n > 300), "{first_digits:?}");
    }

    #[test]
    fn a_code_matches_only_its_own_scope_and_key() {
        let key = CodeKey::new(b"0123456789abcdef0123456789abcdef");
        let stored = key.hash("token-1", "123456");
        assert!(key.matches("token-1", "123456", &stored));
        assert!(!key.matches("token-1", "123457", &stored));
        assert!(!key.matches("token-2", "123456", &stored));
        let other = CodeKey::new(b"another server's secret, 32 byte");
        assert!(!other.matches("token-1", "123456", &stored));
    }

    #[test]
    fn equal_compares_whole_strings() {
        assert!(equal("abc", "abc"));
        assert!(!equal("abc", "abd"));
        assert!(!equal("abc", "abcd"));
        assert!(!equal("", "a"));
    }
}
