//! Stored passwords, and the fake SCRAM secrets of users that do not exist.
//!
//! Passwords are stored as PBKDF2-HMAC-SHA256 hashes in the form
//! `pbkdf2-sha256$ITERATIONS$SALT$HASH` (base64). That hash is exactly SCRAM's
//! `SaltedPassword`, so pgwire can run SCRAM-SHA-256 against it and a
//! cleartext password (Flight basic auth, pgwire over TLS with JWTs) can be
//! verified against it; neither ever needs the password.
//!
//! A user name meshgate does not know gets a *mock* SCRAM exchange, as in
//! PostgreSQL: a salt derived from the name and a server secret (so asking
//! twice gives the same salt, like a real user's) and a secret no password
//! matches, so the exchange fails at its end exactly like a wrong password.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Mac, SimpleHmac};
use pgwire::api::auth::sasl::scram::gen_salted_password;
use sha2::{Digest, Sha256};

/// The iteration count meshgate hashes with; SCRAM announces one count per
/// server, so every stored hash must use it.
pub const ITERATIONS: usize = 4096;
const PREFIX: &str = "pbkdf2-sha256";
/// Salt length of hashes meshgate generates, and of mock salts.
const SALT_LEN: usize = 16;

#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl PasswordHash {
    /// Hash `password` with a fresh random salt.
    pub fn generate(password: &str) -> Self {
        let salt: [u8; SALT_LEN] = rand::random();
        Self {
            salted_password: gen_salted_password(password, &salt, ITERATIONS),
            salt: salt.to_vec(),
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let hint = "expected a hash printed by `meshgate hash-password` (pbkdf2-sha256$4096$SALT$HASH), never a plain password";
        let parts: Vec<&str> = s.split('$').collect();
        let [prefix, iterations, salt, hash] = parts.as_slice() else {
            return Err(hint.to_owned());
        };
        if *prefix != PREFIX {
            return Err(hint.to_owned());
        }
        if iterations.parse::<usize>().ok() != Some(ITERATIONS) {
            return Err(format!(
                "iterations must be {ITERATIONS}, got `{iterations}`"
            ));
        }
        let salt = B64.decode(salt).map_err(|e| format!("bad salt: {e}"))?;
        let salted_password = B64.decode(hash).map_err(|e| format!("bad hash: {e}"))?;
        if salted_password.len() != 32 || salt.is_empty() {
            return Err("hash must be 32 bytes with a non-empty salt".into());
        }
        Ok(Self {
            salt,
            salted_password,
        })
    }

    pub fn verify(&self, password: &str) -> bool {
        let candidate = gen_salted_password(password, &self.salt, ITERATIONS);
        constant_time_eq(&candidate, &self.salted_password)
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}${ITERATIONS}${}${}",
            B64.encode(&self.salt),
            B64.encode(&self.salted_password)
        )
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The server secret mock SCRAM salts are derived from.
///
/// It is derived from secret material of the configuration (every stored
/// hash, the JWT shared secret) rather than drawn at random, so a restart
/// does not change the salts of unknown names while real users keep theirs
/// — which would tell them apart. It changes when the users change, as some
/// real salts do then too.
#[derive(Clone)]
pub(crate) struct MockSecret([u8; 32]);

impl std::fmt::Debug for MockSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockSecret(..)")
    }
}

impl Default for MockSecret {
    fn default() -> Self {
        Self(rand::random())
    }
}

impl MockSecret {
    /// From the configuration's secrets, in a stable order.
    pub(crate) fn derive<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut digest = Sha256::new();
        digest.update(b"meshgate mock SCRAM secret v1");
        for secret in secrets {
            digest.update((secret.len() as u64).to_be_bytes());
            digest.update(secret);
        }
        Self(digest.finalize().into())
    }

    fn mac(&self, label: &[u8], user: &str) -> [u8; 32] {
        let mut mac = SimpleHmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(label);
        mac.update(user.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The SCRAM secret announced for a user meshgate does not know: a
    /// stable salt, and a salted password nobody can match (random per call,
    /// so not even someone who learned this secret can sign in).
    pub(crate) fn scram_secret(&self, user: &str) -> PasswordHash {
        PasswordHash {
            salt: self.mac(b"salt:", user)[..SALT_LEN].to_vec(),
            salted_password: rand::random::<[u8; 32]>().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_verify() {
        let hash = PasswordHash::generate("s3cret");
        let parsed = PasswordHash::parse(&hash.to_string()).unwrap();
        assert_eq!(parsed, hash);
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("S3cret"));
    }

    #[test]
    fn plain_or_malformed_values_are_rejected() {
        assert!(PasswordHash::parse("s3cret").is_err());
        assert!(PasswordHash::parse("pbkdf2-sha256$1000$YQ==$YQ==")
            .unwrap_err()
            .contains("iterations"));
        assert!(PasswordHash::parse("pbkdf2-sha256$4096$YQ==$YQ==").is_err());
    }

    #[test]
    fn mock_salts_are_stable_per_name_and_look_like_real_ones() {
        let secret = MockSecret::derive([b"hash-a".as_slice(), b"hash-b".as_slice()]);
        let again = MockSecret::derive([b"hash-a".as_slice(), b"hash-b".as_slice()]);
        let a = secret.scram_secret("mallory");
        assert_eq!(a.salt, again.scram_secret("mallory").salt);
        assert_ne!(a.salt, secret.scram_secret("eve").salt);
        assert_eq!(a.salt.len(), PasswordHash::generate("x").salt.len());
        // Nothing signs in against a mock secret.
        assert_ne!(
            a.salted_password,
            secret.scram_secret("mallory").salted_password
        );
        let other = MockSecret::derive([b"hash-c".as_slice()]);
        assert_ne!(a.salt, other.scram_secret("mallory").salt);
    }
}
