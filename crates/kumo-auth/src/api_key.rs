//! API keys: long-lived credentials for dedicated servers and tools, sent
//! as `Authorization: Bearer kumo_…`.
//!
//! A key is `kumo_<32 base62 characters>_<6 base62 characters>`: 190
//! random bits, then the CRC-32 of the random part. The fixed prefix and
//! the checksum let secret scanners (GitHub's, gitleaks) recognise a
//! leaked key without false alarms, and let the server refuse a mistyped
//! or truncated key before it looks anything up. The server stores only
//! the key's SHA-256 ([`crate::secret::hash`]) and its first
//! [`PREFIX_LEN`] characters, which tell a user's keys apart in lists.

use crate::secret::{hash, random_bytes};

pub const SCHEME: &str = "kumo_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// `kumo_` and the first seven random characters.
pub const PREFIX_LEN: usize = SCHEME.len() + 7;
const KEY_LEN: usize = SCHEME.len() + RANDOM_LEN + 1 + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// A key as it is made: shown to its owner once, then stored as
/// `prefix` and `hash`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewApiKey({}…)", self.prefix)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("an API key is `kumo_`, 32 letters and digits, `_`, and 6 more")]
    Malformed,
    #[error("the API key's checksum does not match: it was mistyped or cut short")]
    BadChecksum,
}

pub fn generate() -> NewApiKey {
    let mut random = String::with_capacity(RANDOM_LEN);
    while random.len() < RANDOM_LEN {
        for byte in random_bytes::<48>() {
            // 248 is the largest multiple of 62 a byte holds: bytes above
            // it are skipped so every character is equally likely.
            if byte < 248 && random.len() < RANDOM_LEN {
                random.push(char::from(BASE62[usize::from(byte % 62)]));
            }
        }
    }
    let key = format!("{SCHEME}{random}_{}", checksum(&random));
    NewApiKey {
        prefix: key[..PREFIX_LEN].to_owned(),
        hash: hash(&key),
        key,
    }
}

/// Whether a bearer credential is meant as an API key (and not an access
/// token), so the right check and the right error apply.
pub fn is_api_key(credential: &str) -> bool {
    credential.starts_with(SCHEME)
}

/// Checks the key's form and checksum; the key is then looked up by its
/// [`hash`].
pub fn check(key: &str) -> Result<(), ApiKeyError> {
    let random = key
        .strip_prefix(SCHEME)
        .filter(|_| key.len() == KEY_LEN)
        .and_then(|rest| rest.split_once('_'))
        .filter(|(random, sum)| {
            random.len() == RANDOM_LEN
                && sum.len() == CHECKSUM_LEN
                && random
                    .bytes()
                    .chain(sum.bytes())
                    .all(|b| b.is_ascii_alphanumeric())
        });
    let Some((random, sum)) = random else {
        return Err(ApiKeyError::Malformed);
    };
    if checksum(random) == sum {
        Ok(())
    } else {
        Err(ApiKeyError::BadChecksum)
    }
}

/// The CRC-32 of `random` in six base62 characters (62^6 > 2^32).
fn checksum(random: &str) -> String {
    let mut n = CRC32.checksum(random.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_new_key_has_the_documented_form_and_checks() {
        let made = generate();
        assert_eq!(made.key.len(), KEY_LEN);
        assert!(made.key.starts_with("kumo_"));
        assert_eq!(&made.key[..PREFIX_LEN], made.prefix);
        assert_eq!(made.hash, hash(&made.key));
        assert_eq!(check(&made.key), Ok(()));
        assert!(is_api_key(&made.key));
        assert_ne!(generate().key, made.key);
        assert!(!format!("{made:?}").contains(&made.key[PREFIX_LEN..]));
    }

    #[test]
    fn a_changed_character_fails_the_checksum() {
        let key = generate().key;
        for at in SCHEME.len()..SCHEME.len() + RANDOM_LEN {
            let mut changed = key.clone().into_bytes();
            changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(check(&changed), Err(ApiKeyError::BadChecksum), "{changed}");
        }
    }

    #[test]
    fn wrong_shapes_are_malformed() {
        let key = generate().key;
        for bad in [
            "",
            "kumo_",
            &key[..key.len() - 1],
            &format!("{key}x"),
            &key.replacen("kumo_", "kumo-", 1),
            &key.replacen('_', "", 2),
            &format!("kumo_{}", "é".repeat(19)),
        ] {
            assert_eq!(check(bad), Err(ApiKeyError::Malformed), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn no_string_panics_and_random_ones_fail(s in "\\PC{0,60}") {
            prop_assert!(check(&s).is_err());
        }
    }
}
