//! Tokens whose signature was verified recently, so that a client calling many times with the
//! same token pays for the signature check once every few seconds, not on every request.
//!
//! Only the signature check and the decoding are remembered: revocation, the account, its
//! grants and an API token's address and time limits are still checked on every request by
//! the caller, so a revoked token is refused at once. An entry is keyed by the SHA-256 of the
//! token (the cache never holds a bearer secret), lives at most [`TTL_SECONDS`] and never past
//! the token's own expiry.

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::jwt::Claims;

/// How long a verification is remembered.
pub const TTL_SECONDS: i64 = 30;

/// Entries kept at most; past it, expired entries are dropped, then everything if still full.
const CAPACITY: usize = 10_000;

/// Recently verified tokens.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: DashMap<[u8; 32], Entry>,
}

struct Entry {
    claims: Claims,
    /// Seconds since the epoch after which the entry is not used.
    until: i64,
}

impl VerifiedTokens {
    /// The claims of `token` if it was verified less than [`TTL_SECONDS`] ago and has not
    /// expired since (`now` in seconds since the epoch).
    pub fn get(&self, token: &str, now: i64) -> Option<Claims> {
        let entry = self.entries.get(&key(token))?;
        (now < entry.until).then(|| entry.claims.clone())
    }

    /// Remembers that `token` verified to `claims`.
    pub fn insert(&self, token: &str, claims: &Claims, now: i64) {
        let until = (now + TTL_SECONDS).min(claims.exp);
        if until <= now {
            return;
        }
        if self.entries.len() >= CAPACITY {
            self.entries.retain(|_, entry| entry.until > now);
            if self.entries.len() >= CAPACITY {
                self.entries.clear();
            }
        }
        self.entries.insert(
            key(token),
            Entry {
                claims: claims.clone(),
                until,
            },
        );
    }

    /// How many verifications are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::JwtKeys;

    fn verified_token() -> (String, Claims) {
        let keys = JwtKeys::hs256("0123456789abcdef0123456789abcdef", "i", "a");
        let token = keys
            .issue("a@example.com", false, std::time::Duration::from_secs(3600))
            .unwrap();
        let claims = keys.verify(&token).unwrap();
        (token, claims)
    }

    #[test]
    fn an_entry_lives_until_its_ttl_or_the_tokens_expiry() {
        let (token, claims) = verified_token();
        let cache = VerifiedTokens::default();
        let now = chrono::Utc::now().timestamp();
        assert!(cache.get(&token, now).is_none());
        cache.insert(&token, &claims, now);
        assert_eq!(cache.get(&token, now).unwrap().jti, claims.jti);
        assert!(cache.get(&token, now + TTL_SECONDS).is_none());
        assert!(cache.get("another token", now).is_none());

        // A token about to expire is remembered only until it does.
        let mut short = claims.clone();
        short.exp = now + 2;
        cache.insert("short", &short, now);
        assert!(cache.get("short", now + 1).is_some());
        assert!(cache.get("short", now + 2).is_none());
        // An expired one is not remembered at all.
        short.exp = now;
        cache.insert("expired", &short, now);
        assert!(cache.get("expired", now).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let (_, claims) = verified_token();
        let cache = VerifiedTokens::default();
        let now = chrono::Utc::now().timestamp();
        for index in 0..CAPACITY + 10 {
            cache.insert(&format!("token {index}"), &claims, now);
        }
        assert!(cache.len() <= CAPACITY);
    }
}
