//! The HTTP layer's error type and its one mapping to status codes and bodies.
//!
//! Layers below have their own errors ([`DbError`], [`AuthError`], [`Invalid`]); each is turned
//! into an [`ApiError`] here, by exhaustive matches, so a new variant forces a decision. 5xx
//! bodies are generic; their cause is logged once, here.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::actors::db::DbError;
use crate::auth::AuthError;
use crate::registry::Invalid;

/// An error answered to an HTTP client.
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

/// The JSON body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable kebab-case code (`not-found`, `invalid-field`, …).
    pub code: &'static str,
    /// A message a user can act on.
    pub message: String,
    /// The field at fault, for `invalid-field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
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

/// The `WWW-Authenticate` challenge of a 401: RFC 6750 (no error code when no credentials
/// were sent), with RFC 9728's `resource_metadata` on MCP endpoints.
fn challenge(message: &str, resource_metadata: Option<&str>) -> String {
    let mut challenge = "Bearer realm=\"mcpgate\"".to_owned();
    if let Some(url) = resource_metadata {
        challenge.push_str(&format!(", resource_metadata=\"{url}\""));
    }
    if message.starts_with("invalid token") {
        challenge.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{}\"",
            message.replace('"', "'")
        ));
    }
    challenge
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) | ApiError::McpUnauthorized { .. } => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable { retry_after }
            | ApiError::TooManyRequests { retry_after, .. } => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            ApiError::Unauthorized(message) => {
                if let Ok(value) = HeaderValue::from_str(&challenge(message, None)) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
            }
            ApiError::McpUnauthorized {
                message,
                resource_metadata,
            } => {
                let challenge = challenge(message, Some(resource_metadata));
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
            }
            _ => {}
        }
        response.json(ErrorBody {
            code: self.code(),
            message: self.to_string(),
            field: match self {
                ApiError::InvalidField { field, .. } => Some(field.clone()),
                _ => None,
            },
        })
    }
}
