//! Tokens and passwords: pure functions used by the AuthActor, the bootstrap and the CLI.

pub mod jwt;
pub mod password;

/// Who is making a request, once their credentials are verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user's email (the token's `sub`).
    pub email: String,
    /// Whether the user is a platform admin.
    pub is_admin: bool,
    /// The token's id (`jti`).
    pub token_id: String,
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
    /// The principal is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The auth actor could not answer.
    #[error("authentication is unavailable right now")]
    Unavailable,
}
