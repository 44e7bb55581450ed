//! A fixed-size payload under HMAC-SHA256, written as base64url without
//! padding: the form of access and refresh tokens. base64url decoding
//! refuses non-zero trailing bits, so a token has one spelling only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const MAC_LEN: usize = 32;
/// Room on the stack for the longest token's bytes, plus the three the
/// decoder's length estimate rounds up by.
const MAX_BYTES: usize = 96;

/// Why a token did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unopened {
    /// Not the length or alphabet of a token.
    Malformed,
    /// The right form, but not made under this key.
    Forged,
}

#[derive(Clone)]
pub(crate) struct Sealer {
    /// The HMAC with the key already absorbed: cloning it is cheaper than
    /// keying a new one for every token.
    keyed: HmacSha256,
}

impl Sealer {
    /// Under a key derived from the server's secret for `label`.
    pub(crate) fn new(secret: &[u8], label: &[u8]) -> Sealer {
        let key: [u8; 32] = crate::derive_key(secret, label);
        Sealer {
            keyed: HmacSha256::new_from_slice(&key).expect("HMAC takes a key of any length"),
        }
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac
    }

    pub(crate) fn seal<const N: usize>(&self, payload: &[u8; N]) -> String {
        let mut bytes = [0u8; MAX_BYTES];
        bytes[..N].copy_from_slice(payload);
        bytes[N..N + MAC_LEN].copy_from_slice(&self.mac(payload).finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(&bytes[..N + MAC_LEN])
    }

    /// The payload of a token [`Sealer::seal`] made with this key.
    pub(crate) fn open<const N: usize>(&self, token: &str) -> Result<[u8; N], Unopened> {
        if token.len() != ((N + MAC_LEN) * 4).div_ceil(3) {
            return Err(Unopened::Malformed);
        }
        let mut bytes = [0u8; MAX_BYTES];
        let len = URL_SAFE_NO_PAD
            .decode_slice(token, &mut bytes)
            .map_err(|_| Unopened::Malformed)?;
        if len != N + MAC_LEN {
            return Err(Unopened::Malformed);
        }
        let (payload, tag) = bytes[..len].split_at(N);
        self.mac(payload)
            .verify_slice(tag)
            .map_err(|_| Unopened::Forged)?;
        Ok(payload.try_into().expect("split at N"))
    }
}
