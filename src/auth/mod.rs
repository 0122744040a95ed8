//! Tokens and passwords: pure functions used by the AuthActor, the bootstrap and the CLI.

pub mod jwt;
pub mod password;
pub mod rbac;

/// Who is making a request, once their credentials are verified, with what they may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user's email (the token's `sub`).
    pub email: String,
    /// Whether the user is a platform admin (from the stored account, not the token).
    pub is_admin: bool,
    /// The token's id (`jti`).
    pub token_id: String,
    /// Their teams and role grants (cached by the ScopingActor).
    pub grants: std::sync::Arc<rbac::Grants>,
}

impl Principal {
    /// Refuses unless `permission` is granted somewhere (globally or in one of their teams).
    pub fn require(&self, permission: &str) -> Result<(), AuthError> {
        if self.grants.allows_somewhere(permission) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "your roles do not grant {permission}"
            )))
        }
    }
}

/// Why a request could not be authenticated or authorised.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No credentials were sent.
    #[error("authentication required: send Authorization: Bearer <token>")]
    MissingCredentials,
    /// The credentials were sent but are not valid (bad signature, expired, wrong audience…).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A sign-in with a wrong email or password (which one is not said).
    #[error("the email or password is not correct")]
    BadCredentials,
    /// Too many failed sign-ins: the account is locked for a while.
    #[error("too many failed sign-ins: the account is locked; try again in {} minutes", .retry_after.as_secs().div_ceil(60))]
    Locked {
        /// How long until the lock ends.
        retry_after: std::time::Duration,
    },
    /// The principal is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The auth actor could not answer.
    #[error("authentication is unavailable right now")]
    Unavailable,
}
