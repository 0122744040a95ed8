//! Encryption of credentials at rest (upstream credentials, REST tool headers): AES-256-GCM with
//! a key derived (SHA-256) from the encryption secret, a random 96-bit nonce per value, stored as
//! base64(nonce ‖ ciphertext). A box may also hold the previous secret of a rotation: values it
//! sealed still open, and [`SecretBox::open_current`] tells the caller to seal them again.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::Rng;
use sha2::{Digest, Sha256};

/// Encrypts and decrypts small secrets, and authenticates values the gateway hands out and
/// must recognise later (the console's CSRF tokens).
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// The secret being rotated away from: opens, never seals.
    previous: Option<Aes256Gcm>,
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
            previous: None,
            mac_key: mac_key.finalize().into(),
        }
    }

    /// The same box, also opening values sealed with `previous` (a rotation in progress).
    pub fn with_previous(mut self, previous: &str) -> Self {
        self.previous = Some(Aes256Gcm::new(&Sha256::digest(previous.as_bytes())));
        self
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

    /// Decrypts a value sealed with the current or the previous secret.
    pub fn open(&self, sealed: &str) -> Result<String, String> {
        self.open_current(sealed).map(|(plain, _)| plain)
    }

    /// Decrypts a value; the flag says whether it was sealed with the current secret (`false`:
    /// the previous one, so it should be sealed again).
    pub fn open_current(&self, sealed: &str) -> Result<(String, bool), String> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| "the stored secret is not base64".to_owned())?;
        if bytes.len() < 12 {
            return Err("the stored secret is too short".into());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce = Nonce::from_slice(nonce);
        let (plain, current) = match self.cipher.decrypt(nonce, ciphertext) {
            Ok(plain) => (plain, true),
            Err(_) => {
                let previous = self
                    .previous
                    .as_ref()
                    .and_then(|previous| previous.decrypt(nonce, ciphertext).ok());
                let plain = previous.ok_or_else(|| {
                    "the stored secret does not decrypt (was AUTH_ENCRYPTION_SECRET changed \
                     without AUTH_ENCRYPTION_SECRET_PREVIOUS?)"
                        .to_owned()
                })?;
                (plain, false)
            }
        };
        let plain =
            String::from_utf8(plain).map_err(|_| "the stored secret is not UTF-8".to_owned())?;
        Ok((plain, current))
    }

    /// Seals a REST tool header value for storage: the marked form [`Self::open_header`] reads.
    pub fn seal_header(&self, plain: &str) -> String {
        format!("{SEALED_HEADER}{}", self.seal(plain))
    }

    /// Opens a stored REST tool header value. A value without the mark was stored in plain text
    /// by an earlier version (sealed at the next start); it is returned as it is, as stale.
    pub fn open_header(&self, stored: &str) -> Result<(String, bool), String> {
        match stored.strip_prefix(SEALED_HEADER) {
            Some(sealed) => self.open_current(sealed),
            None => Ok((stored.to_owned(), false)),
        }
    }
}

impl SecretBox {
    /// Seals `plain` as a token the gateway hands out and reads back later (a session id): the
    /// `purpose` is authenticated with it (a token of one purpose never opens as another), the
    /// text is URL-safe base64 (fit for a header and a query string).
    pub fn seal_token(&self, purpose: &str, plain: &str) -> String {
        let nonce_bytes: [u8; 12] = rand::rng().random();
        let payload = aes_gcm::aead::Payload {
            msg: plain.as_bytes(),
            aad: purpose.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), payload)
            .unwrap_or_default();
        let mut token = nonce_bytes.to_vec();
        token.extend_from_slice(&ciphertext);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Opens a token sealed for `purpose` with the current or the previous secret.
    pub fn open_token(&self, purpose: &str, token: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let open = |cipher: &Aes256Gcm| {
            let payload = aes_gcm::aead::Payload {
                msg: ciphertext,
                aad: purpose.as_bytes(),
            };
            cipher.decrypt(Nonce::from_slice(nonce), payload).ok()
        };
        let plain = open(&self.cipher).or_else(|| self.previous.as_ref().and_then(open))?;
        String::from_utf8(plain).ok()
    }
}

/// The mark of a sealed REST tool header value.
const SEALED_HEADER: &str = "sealed:v1:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_purpose() {
        let secrets = SecretBox::new("one secret value");
        let token = secrets.seal_token("session", "{\"o\":\"a\"}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(
            secrets.open_token("session", &token).as_deref(),
            Some("{\"o\":\"a\"}")
        );
        assert_eq!(secrets.open_token("other", &token), None);
        assert_eq!(
            SecretBox::new("another secret").open_token("session", &token),
            None
        );
        assert_eq!(secrets.open_token("session", "not a token"), None);
    }

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

    #[test]
    fn a_rotation_opens_old_values_and_flags_them() {
        let old = SecretBox::new("the old secret value");
        let sealed_old = old.seal("Bearer old");
        let rotated = SecretBox::new("the new secret value").with_previous("the old secret value");
        assert_eq!(
            rotated.open_current(&sealed_old).unwrap(),
            ("Bearer old".to_owned(), false)
        );
        let sealed_new = rotated.seal("Bearer new");
        assert_eq!(
            rotated.open_current(&sealed_new).unwrap(),
            ("Bearer new".to_owned(), true)
        );
        assert!(old.open(&sealed_new).is_err(), "new values use the new key");
    }

    #[test]
    fn header_values_are_marked_and_legacy_plain_values_read_as_stale() {
        let secrets = SecretBox::new("one secret value");
        // A space cannot occur in the sealed (base64) form, so "Bearer " shows the value is
        // not stored in the clear; a short fragment could appear in random ciphertext by chance.
        let stored = secrets.seal_header("Bearer abc");
        assert!(stored.starts_with(SEALED_HEADER) && !stored.contains("Bearer "));
        assert_eq!(
            secrets.open_header(&stored).unwrap(),
            ("Bearer abc".to_owned(), true)
        );
        assert_eq!(
            secrets.open_header("plain").unwrap(),
            ("plain".to_owned(), false)
        );
        assert!(
            SecretBox::new("another secret")
                .open_header(&stored)
                .is_err()
        );
    }
}
