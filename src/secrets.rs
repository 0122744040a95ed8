//! Encryption of upstream credentials at rest: AES-256-GCM with a key derived (SHA-256) from
//! `AUTH_ENCRYPTION_SECRET`, a random 96-bit nonce per value, stored as base64(nonce ‖ ciphertext).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Encrypts and decrypts small secrets, and authenticates values the gateway hands out and
/// must recognise later (the console's CSRF tokens).
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// A separate key for MACs, derived from the same secret.
    mac_key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox")
    }
}

impl SecretBox {
    /// A box keyed by `secret`.
    pub fn new(secret: &str) -> Self {
        let key = Sha256::digest(secret.as_bytes());
        let mut mac_key = Sha256::new();
        mac_key.update(b"mcpgate-mac-key\0");
        mac_key.update(secret.as_bytes());
        SecretBox {
            cipher: Aes256Gcm::new(&key),
            mac_key: mac_key.finalize().into(),
        }
    }

    /// HMAC-SHA256 of `message` under `purpose` (domain-separated), as hex. Only a holder of
    /// the secret can compute it; every replica with the same secret computes the same value.
    pub fn mac(&self, purpose: &str, message: &str) -> String {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key)
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(message.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Encrypts `plain`.
    pub fn seal(&self, plain: &str) -> String {
        let nonce_bytes: [u8; 12] = rand::rng().random();
        let nonce = Nonce::from_slice(&nonce_bytes);
        // Encryption with a valid key and nonce cannot fail.
        let ciphertext = self
            .cipher
            .encrypt(nonce, plain.as_bytes())
            .unwrap_or_default();
        let mut stored = nonce_bytes.to_vec();
        stored.extend_from_slice(&ciphertext);
        STANDARD.encode(stored)
    }

    /// Decrypts a value sealed with the same secret.
    pub fn open(&self, sealed: &str) -> Result<String, String> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| "the stored secret is not base64".to_owned())?;
        if bytes.len() < 12 {
            return Err("the stored secret is too short".into());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| {
                "the stored secret does not decrypt (was AUTH_ENCRYPTION_SECRET changed?)"
                    .to_owned()
            })?;
        String::from_utf8(plain).map_err(|_| "the stored secret is not UTF-8".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let sealed = SecretBox::new("one secret value").seal("Bearer abc");
        assert_ne!(sealed, "Bearer abc");
        assert_eq!(
            SecretBox::new("one secret value").open(&sealed).unwrap(),
            "Bearer abc"
        );
        assert!(SecretBox::new("another secret").open(&sealed).is_err());
    }
}
