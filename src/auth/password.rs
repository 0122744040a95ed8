//! Password hashing (argon2id) and generation. Hashing is CPU-heavy: call these from a
//! blocking thread, never on an async executor.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|error| format!("cannot encode the salt: {error}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| format!("cannot hash the password: {error}"))
}

/// Whether `password` matches a stored PHC hash.
pub fn verify(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Passwords refused whatever their length (lower-cased; a password is refused when its
/// lower-cased form is one of these, or one of these followed by digits and symbols).
const KNOWN_WEAK: &[&str] = &[
    "password",
    "passw0rd",
    "p@ssword",
    "p@ssw0rd",
    "123456789012",
    "1234567890",
    "12345678",
    "qwertyuiop",
    "qwerty",
    "letmein",
    "welcome",
    "iloveyou",
    "admin",
    "administrator",
    "changeme",
    "changethis",
    "secret",
    "default",
    "trustno1",
    "dragon",
    "monkey",
    "football",
    "baseball",
    "abc123",
    "mcpgate",
    "sunshine",
    "princess",
    "superman",
    "master",
    "login",
];

/// A broken password rule: its stable name and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyViolation {
    /// `min-length`, `max-length`, `known-weak`, `contains-email`.
    pub rule: &'static str,
    /// What the rule asks for.
    pub message: String,
}

/// Checks a new password against the policy: at least `min_length` characters, at most 256,
/// not a known-weak password (with or without trailing digits and symbols), and not containing
/// the account's email name.
pub fn check_policy(password: &str, email: &str, min_length: usize) -> Result<(), PolicyViolation> {
    let length = password.chars().count();
    if length < min_length {
        return Err(PolicyViolation {
            rule: "min-length",
            message: format!("use at least {min_length} characters (this one has {length})"),
        });
    }
    if length > 256 {
        return Err(PolicyViolation {
            rule: "max-length",
            message: "use at most 256 characters".into(),
        });
    }
    let lowered = password.to_lowercase();
    let stem = lowered.trim_end_matches(|c: char| !c.is_alphabetic());
    if KNOWN_WEAK.contains(&lowered.as_str())
        || KNOWN_WEAK.contains(&stem)
        || lowered
            .chars()
            .all(|c| c == lowered.chars().next().unwrap_or(' '))
    {
        return Err(PolicyViolation {
            rule: "known-weak",
            message: "this password is on the list of commonly used passwords; choose another"
                .into(),
        });
    }
    let name = email.split('@').next().unwrap_or_default().to_lowercase();
    if name.len() >= 3 && lowered.contains(&name) {
        return Err(PolicyViolation {
            rule: "contains-email",
            message: "the password must not contain the account's email name".into(),
        });
    }
    Ok(())
}

/// A random secret of `length` characters from an unambiguous alphabet.
pub fn generate(length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..length)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let hashed = hash("correct horse battery").unwrap();
        assert!(verify("correct horse battery", &hashed));
        assert!(!verify("wrong", &hashed));
        assert_eq!(generate(24).len(), 24);
    }

    #[test]
    fn policy_names_the_rule() {
        let rule = |password: &str| {
            check_policy(password, "alice@example.com", 12)
                .err()
                .map(|violation| violation.rule)
        };
        assert_eq!(rule("short"), Some("min-length"));
        assert_eq!(rule(&"x".repeat(300)), Some("max-length"));
        assert_eq!(rule("Password1234!"), Some("known-weak"));
        assert_eq!(rule("aaaaaaaaaaaaaa"), Some("known-weak"));
        assert_eq!(rule("alice-in-wonderland"), Some("contains-email"));
        assert_eq!(rule("correct horse battery staple"), None);
        assert!(check_policy(&generate(20), "a@example.com", 12).is_ok());
    }
}
