//! Tokens and passwords: pure functions used by the AuthActor, the bootstrap and the CLI.

pub mod jwt;
pub mod password;
pub mod rbac;
pub mod scope;

/// Who is making a request, once their credentials are verified, with what they may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user's email (the token's `sub`).
    pub email: String,
    /// Whether the user is a platform admin (from the stored account, not the token).
    pub is_admin: bool,
    /// The token's id (`jti`).
    pub token_id: String,
    /// When the token expires.
    pub token_expires_at: Option<chrono::NaiveDateTime>,
    /// Their teams and role grants (cached by the ScopingActor).
    pub grants: std::sync::Arc<rbac::Grants>,
    /// For an API token, its restrictions.
    pub scope: Option<std::sync::Arc<scope::TokenScope>>,
}

impl Principal {
    /// Refuses unless `permission` is granted somewhere (globally or in one of their teams)
    /// and the token's scope keeps it.
    pub fn require(&self, permission: &str) -> Result<(), AuthError> {
        if !self.grants.allows_somewhere(permission) {
            return Err(AuthError::Forbidden(format!(
                "your roles do not grant {permission}"
            )));
        }
        if self
            .scope
            .as_ref()
            .is_some_and(|scope| !scope.keeps(permission))
        {
            return Err(AuthError::Forbidden(format!(
                "this token's scope does not include {permission}"
            )));
        }
        Ok(())
    }

    /// Whether this principal may see an item.
    pub fn sees(&self, item: &rbac::Ownership) -> bool {
        self.grants.sees(&self.email, item)
    }

    /// Refuses unless `permission` applies to an item of `team` (a global grant, or a grant for
    /// that team) and the token's scope keeps it.
    pub fn require_for(&self, permission: &str, team: Option<&str>) -> Result<(), AuthError> {
        if !self.grants.allows(permission, team) {
            return Err(AuthError::Forbidden(match team {
                Some(team) => format!("your roles do not grant {permission} in team {team}"),
                None => format!("your roles do not grant {permission}"),
            }));
        }
        self.require(permission)
    }

    /// The virtual server an API token is restricted to, if any.
    pub fn server_restriction(&self) -> Option<&str> {
        self.scope
            .as_ref()
            .and_then(|scope| scope.server_id.as_deref())
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
