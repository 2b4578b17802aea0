//! Encryption of stored secrets (Kapso API keys, webhook secrets) with AES-256-GCM.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const NONCE_LEN: usize = 12;

/// The deployment's 32-byte key (`INBOX_SECRET_KEY`). `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "INBOX_SECRET_KEY must be 32 bytes encoded as base64 (generate one with `openssl rand -base64 32`)"
)]
pub struct InvalidSecretKey;

impl SecretKey {
    /// Reads a base64-encoded key.
    ///
    /// # Errors
    /// When the text is not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, InvalidSecretKey> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| InvalidSecretKey)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Self)
            .map_err(|_| InvalidSecretKey)
    }

    /// A new random key.
    #[must_use]
    pub fn generate() -> Self {
        let mut key = [0_u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// The key as base64, for writing it to a key file.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// Encrypts and decrypts secret columns. Each ciphertext is bound to its column and row through
/// the associated data, so a ciphertext copied into another row or column does not decrypt.
#[derive(Clone)]
pub(crate) struct SecretCipher(Aes256Gcm);

/// A stored secret that does not decrypt under the configured key.
#[derive(Debug, thiserror::Error)]
#[error(
    "a stored secret does not decrypt: INBOX_SECRET_KEY differs from the key it was written with"
)]
pub(crate) struct UndecryptableSecret;

impl SecretCipher {
    pub(crate) fn new(key: &SecretKey) -> Self {
        Self(Aes256Gcm::new((&key.0).into()))
    }

    /// `nonce || ciphertext+tag`, with a fresh random nonce.
    pub(crate) fn encrypt(&self, context: &str, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0_u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encryption with a valid key and a 12-byte nonce only fails for plaintexts near 64 GiB.
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub(crate) fn decrypt(
        &self,
        context: &str,
        stored: &[u8],
    ) -> Result<String, UndecryptableSecret> {
        if stored.len() < NONCE_LEN {
            return Err(UndecryptableSecret);
        }
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: context.as_bytes(),
        };
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| UndecryptableSecret)?;
        String::from_utf8(plain).map_err(|_| UndecryptableSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_to_context() {
        let cipher = SecretCipher::new(&SecretKey::generate());
        let sealed = cipher.encrypt("kapso_api_key:1", "kapso_live_abc");
        assert!(
            !sealed.windows(5).any(|w| w == b"kapso"),
            "plaintext leaked"
        );
        assert_eq!(
            cipher.decrypt("kapso_api_key:1", &sealed).ok().as_deref(),
            Some("kapso_live_abc")
        );
        assert!(cipher.decrypt("kapso_api_key:2", &sealed).is_err());
        assert!(cipher.decrypt("kapso_api_key:1", &sealed[..5]).is_err());
    }

    #[test]
    fn a_different_key_does_not_decrypt() {
        let a = SecretCipher::new(&SecretKey::generate());
        let b = SecretCipher::new(&SecretKey::generate());
        let sealed = a.encrypt("c", "secret");
        assert!(b.decrypt("c", &sealed).is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let cipher = SecretCipher::new(&SecretKey::generate());
        assert_ne!(cipher.encrypt("c", "same"), cipher.encrypt("c", "same"));
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes() {
        let key = SecretKey::generate();
        assert!(SecretKey::from_base64(&key.to_base64()).is_ok());
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }
}
