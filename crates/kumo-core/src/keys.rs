//! Keys derived from the server's secret (`KUMO_SECRET`): each feature
//! (cursors, access tokens, refresh tokens, codes, the browser cookie)
//! derives its own under its own label with HKDF-SHA256, so no two share a
//! key and one secret is all an operator keeps.

/// The `N`-byte key for the purpose `label` names.
pub fn derive_key<const N: usize>(secret: &[u8], label: &[u8]) -> [u8; N] {
    let mut key = [0u8; N];
    hkdf::Hkdf::<sha2::Sha256>::new(None, secret)
        .expand(label, &mut key)
        .expect("keys are within HKDF-SHA256's output limit");
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_label_and_secret_gives_its_own_key() {
        let a: [u8; 32] = derive_key(b"secret", b"kumo cursors");
        assert_eq!(a, derive_key::<32>(b"secret", b"kumo cursors"));
        assert_ne!(a, derive_key::<32>(b"secret", b"kumo access tokens"));
        assert_ne!(a, derive_key::<32>(b"another secret", b"kumo cursors"));
    }
}
