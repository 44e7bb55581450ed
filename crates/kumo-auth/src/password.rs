//! Passwords: which are accepted, and how they are stored and checked.
//!
//! Stored as Argon2id PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
//! with OWASP's parameters by default (19 MiB, two passes, one lane). The
//! parameters travel in each stored string, so raising them later still
//! checks old hashes, and [`Passwords::needs_rehash`] says when to store a
//! fresh one after a successful sign-in.
//!
//! Hashing is deliberately slow (tens of milliseconds of one core): the
//! server runs it on the blocking pool behind a bound, never on the async
//! workers. A sign-in for an account that does not exist, or has no
//! password, checks the password against a hash made at start-up
//! ([`Passwords::verify_nobody`]), so it costs the same time as a wrong
//! password and the timing does not say which accounts exist.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

/// Shortest and longest accepted passwords, in characters. The upper bound
/// keeps a request from buying seconds of hashing and strength checking.
pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

/// The Argon2 cost parameters, as `[auth.password]` in `kumo.toml` sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
}

impl Default for Cost {
    fn default() -> Self {
        Cost {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            lanes: Params::DEFAULT_P_COST,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the Argon2 parameters are out of range: {0}")]
    BadCost(String),
    #[error("a stored password hash could not be read: {0}")]
    BadHash(String),
}

/// Hashes and checks passwords with one set of Argon2id parameters.
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    /// The hash [`Passwords::verify_nobody`] checks against.
    nobody: String,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passwords")
    }
}

impl Passwords {
    pub fn new(cost: Cost) -> Result<Passwords, PasswordError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.lanes, None)
            .map_err(|e| PasswordError::BadCost(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut passwords = Passwords {
            argon,
            nobody: String::new(),
        };
        passwords.nobody = passwords.hash(&crate::secret::random_token())?;
        Ok(passwords)
    }

    /// A new PHC string for `password`, under a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        self.argon
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| PasswordError::BadCost(e.to_string()))
    }

    /// Whether `password` is the one `stored` was made from. A stored string
    /// that is not an Argon2 hash is an error, not a mismatch, so a damaged
    /// row is noticed.
    pub fn verify(&self, password: &str, stored: &str) -> Result<bool, PasswordError> {
        match self.argon.verify_password(password.as_bytes(), stored) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(e) => Err(PasswordError::BadHash(e.to_string())),
        }
    }

    /// The work of [`Passwords::verify`], for a sign-in with no account to
    /// check against. Always false.
    pub fn verify_nobody(&self, password: &str) -> bool {
        let _ = self.verify(password, &self.nobody);
        false
    }

    /// Whether `stored` was made with other parameters than these, so a
    /// sign-in that just proved the password should store a new hash.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(stored) else {
            return true;
        };
        let current = self.argon.params();
        let param = |name: &str| parsed.params.get_decimal(name).unwrap_or(u32::MAX);
        parsed.algorithm.as_str() != "argon2id"
            || param("m") != current.m_cost()
            || param("t") != current.t_cost()
            || param("p") != current.p_cost()
    }
}

/// Why a new password is refused: a message for the field error.
pub fn refusal(password: &str, user_inputs: &[&str]) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Some(format!("must be at least {MIN_CHARS} characters"));
    }
    if chars > MAX_CHARS {
        return Some(format!("must be at most {MAX_CHARS} characters"));
    }
    // zxcvbn knows the 30,000 most common passwords (with their l33t and
    // reversed spellings), names, words, keyboard walks, dates and
    // repeats. Scores 0 and 1 fall within a million guesses.
    let strength = zxcvbn::zxcvbn(password, user_inputs);
    if strength.score() >= zxcvbn::Score::Two {
        return None;
    }
    let why = strength
        .feedback()
        .and_then(|f| f.warning())
        .map(|w| format!(": {}", w.to_string().trim_end_matches('.').to_lowercase()))
        .unwrap_or_default();
    Some(format!(
        "is too easy to guess{why}; a few unrelated words make a strong password"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest cost Argon2 accepts, so tests don't wait on hashing;
    /// the behaviour does not depend on the cost.
    fn cheap() -> Passwords {
        Passwords::new(Cost {
            memory_kib: 8,
            iterations: 1,
            lanes: 1,
        })
        .unwrap()
    }

    #[test]
    fn a_hash_checks_its_password_only() {
        let p = cheap();
        let stored = p.hash("correct horse battery staple").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=8,t=1,p=1$"),
            "{stored}"
        );
        assert_eq!(p.verify("correct horse battery staple", &stored), Ok(true));
        assert_eq!(p.verify("correct horse battery stapl", &stored), Ok(false));
        assert_ne!(
            p.hash("correct horse battery staple").unwrap(),
            stored,
            "salted"
        );
        assert!(!p.verify_nobody("correct horse battery staple"));
    }

    #[test]
    fn a_damaged_hash_is_an_error() {
        let p = cheap();
        assert!(matches!(
            p.verify("x", "not a hash"),
            Err(PasswordError::BadHash(_))
        ));
    }

    #[test]
    fn other_parameters_ask_for_a_rehash_and_still_verify() {
        let old = cheap();
        let stored = old.hash("correct horse battery staple").unwrap();
        assert!(!old.needs_rehash(&stored));
        let new = Passwords::new(Cost {
            memory_kib: 16,
            iterations: 2,
            lanes: 1,
        })
        .unwrap();
        assert!(new.needs_rehash(&stored));
        assert_eq!(
            new.verify("correct horse battery staple", &stored),
            Ok(true)
        );
        assert!(new.needs_rehash("garbage"));
    }

    #[test]
    fn out_of_range_costs_are_refused() {
        let bad = Passwords::new(Cost {
            memory_kib: 1,
            iterations: 0,
            lanes: 1,
        });
        assert!(matches!(bad, Err(PasswordError::BadCost(_))));
    }

    #[test]
    fn common_short_long_and_personal_passwords_are_refused() {
        for common in [
            "password",
            "password1",
            "qwertyuiop",
            "iloveyou",
            "P@ssw0rd",
            "1234567890",
            "drowssap1",
        ] {
            let why = refusal(common, &[]);
            assert!(
                why.as_deref().is_some_and(|w| w.starts_with("is too easy")),
                "{common}: {why:?}"
            );
        }
        assert_eq!(
            refusal("a1b2c3", &[]).as_deref(),
            Some("must be at least 8 characters")
        );
        assert_eq!(
            refusal(&"x".repeat(129), &[]).as_deref(),
            Some("must be at most 128 characters")
        );
        assert!(
            refusal("alicewonder1", &["alicewonder1"]).is_some(),
            "the user's own name"
        );
        for fine in [
            "correct horse battery staple",
            "violet-tangent-harbor-41",
            "Gq7#vLm2pXz!",
        ] {
            assert_eq!(refusal(fine, &[]), None, "{fine}");
        }
    }
}
