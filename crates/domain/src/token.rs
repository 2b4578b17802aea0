//! API tokens: shown once, stored only as a SHA-256 hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::ids::{TokenId, UserId};
use crate::timestamp::Timestamp;
use crate::workspace::Secret;

/// Prefix of every token, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "inbox_";

/// A freshly generated token: the secret to show once, and the hash to store.
#[derive(Debug)]
pub struct GeneratedToken {
    /// The bearer token, shown to the user once.
    pub secret: Secret,
    /// What storage keeps.
    pub hash: TokenHash,
}

/// SHA-256 of a bearer token. Tokens carry 256 random bits, so a fast hash is enough: there is
/// nothing to brute-force, and lookups by hash stay one index probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a presented bearer token.
    #[must_use]
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// From stored bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Makes a new random token.
#[must_use]
pub fn generate_token() -> GeneratedToken {
    let mut bytes = [0_u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = TokenHash::of(&secret);
    GeneratedToken {
        secret: Secret::new(secret),
        hash,
    }
}

/// A stored token's metadata (never the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    /// Id.
    pub id: TokenId,
    /// Owner.
    pub user_id: UserId,
    /// A label such as `laptop` or `n8n`.
    pub name: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last successful authentication, if any.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_to_what_is_stored() {
        let a = generate_token();
        let b = generate_token();
        assert!(a.secret.expose().starts_with(TOKEN_PREFIX));
        assert_ne!(a.secret, b.secret);
        assert_eq!(TokenHash::of(a.secret.expose()), a.hash);
        assert_ne!(a.hash, b.hash);
    }
}
