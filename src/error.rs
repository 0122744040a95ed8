//! The error of every operation the gateway offers its clients (the service layer, the REST
//! API and the console), with a stable code. Layers below have their own errors ([`DbError`],
//! [`AuthError`], [`Invalid`]); each is turned into an [`ApiError`] here, by exhaustive
//! matches, so a new variant forces a decision. How it is answered over HTTP is
//! `crate::http::error`'s.

use std::time::Duration;

use crate::actors::db::DbError;
use crate::auth::AuthError;
use crate::registry::Invalid;

/// An error answered to a client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The request cannot be understood (malformed JSON, a bad query parameter).
    #[error("{message}")]
    BadRequest {
        /// A stable kebab-case code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A field is missing or invalid.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// No or invalid credentials on an MCP endpoint: the challenge names the protected
    /// resource metadata (RFC 9728) so clients can discover how to authorize.
    #[error("{message}")]
    McpUnauthorized {
        /// What is wrong.
        message: String,
        /// The URL of the endpoint's protected resource metadata.
        resource_metadata: String,
    },
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing at this id or path.
    #[error("{0}")]
    NotFound(String),
    /// The path exists, the method does not.
    #[error("{message}")]
    MethodNotAllowed {
        /// What was asked and what is allowed.
        message: String,
        /// The methods the path allows (the `Allow` header).
        allow: String,
    },
    /// Conflicts with stored data.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than `MAX_REQUEST_BODY_BYTES`.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not JSON.
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    /// An upstream the request needed failed.
    #[error("{0}")]
    BadGateway(String),
    /// Too many attempts; try again later.
    #[error("{message}")]
    TooManyRequests {
        /// What happened.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// A dependency is down; try again later.
    #[error("the service is temporarily unavailable; retry after {} s", retry_after.as_secs())]
    Unavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// The work did not finish in time.
    #[error("the request took too long and was abandoned")]
    Timeout,
    /// A bug; details are in the log.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::InvalidField { .. } => "invalid-field",
            ApiError::Unauthorized(_) | ApiError::McpUnauthorized { .. } => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed { .. } => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::BadGateway(_) => "bad-gateway",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Timeout => "timeout",
            ApiError::Internal => "internal",
        }
    }

    /// Maps a database error for an operation on a `noun` (`tool`) with optional id.
    pub fn from_db(error: DbError, noun: &str, id: Option<&str>) -> Self {
        match error {
            DbError::NotFound => ApiError::NotFound(match id {
                Some(id) => format!("no {noun} with id {id:?}"),
                None => format!("no such {noun}"),
            }),
            DbError::Conflict { constraint } => {
                ApiError::Conflict(format!("conflicts with an existing {noun} ({constraint})"))
            }
            DbError::Rejected { field, message } => ApiError::InvalidField { field, message },
            DbError::Unavailable {
                reason,
                retry_after,
            } => {
                tracing::warn!(error = %reason, "database unavailable");
                ApiError::Unavailable { retry_after }
            }
            DbError::Timeout(deadline) => {
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "database deadline exceeded"
                );
                ApiError::Timeout
            }
            DbError::Internal(cause) => {
                tracing::error!(error = %cause, "database error");
                ApiError::Internal
            }
        }
    }

    /// Maps an authentication error.
    pub fn from_auth(error: AuthError) -> Self {
        match error {
            AuthError::MissingCredentials
            | AuthError::InvalidToken(_)
            | AuthError::BadCredentials => ApiError::Unauthorized(error.to_string()),
            AuthError::Locked { retry_after } => ApiError::TooManyRequests {
                message: error.to_string(),
                retry_after,
            },
            AuthError::Forbidden(message) => ApiError::Forbidden(message),
            AuthError::Unavailable => ApiError::Unavailable {
                retry_after: Duration::from_secs(1),
            },
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::InvalidField {
            field: invalid.field,
            message: invalid.message,
        }
    }
}
