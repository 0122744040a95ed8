//! The MCP layer's error type and its one mapping to JSON-RPC codes and HTTP statuses, per era.

use std::time::Duration;

use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::protocol::Era;
use crate::protocol::supported_versions;

/// A request the gateway answers with a JSON-RPC error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum McpError {
    /// The body is not JSON.
    #[error("parse error: {0}")]
    Parse(String),
    /// The body is JSON but not a valid JSON-RPC message, or not one this transport accepts.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No such method (in this era).
    #[error("method not found: {0}")]
    MethodNotFound(String),
    /// The parameters are wrong (an unknown tool, arguments that fail the schema, …).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// A modern request lacks required `_meta` fields.
    #[error("invalid params: {0}")]
    MissingMeta(String),
    /// No resource with this URI.
    #[error("resource not found: {0}")]
    ResourceNotFound(String),
    /// HTTP headers disagree with the body, or required ones are missing.
    #[error("header mismatch: {0}")]
    HeaderMismatch(String),
    /// The requested protocol version is not served.
    #[error("unsupported protocol version {requested:?}")]
    UnsupportedVersion {
        /// What the client asked for.
        requested: String,
    },
    /// The request needs a session (legacy era) and has none.
    #[error("bad request: {0}")]
    SessionRequired(String),
    /// The session id is unknown or expired; start a new session with `initialize`.
    #[error("session not found: {0}")]
    SessionNotFound(String),
    /// The request needs a response stream the client does not accept.
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// The body is larger than allowed.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// An upstream MCP server answered this JSON-RPC error; it is passed on as it came.
    #[error("{message}")]
    Relayed {
        /// The upstream's code.
        code: i64,
        /// Its message.
        message: String,
        /// Its data.
        data: Option<Value>,
    },
    /// The upstream MCP server that owns the item failed or is unavailable.
    #[error("{0}")]
    Upstream(String),
    /// A dependency (database, an actor) is down; retry later.
    #[error("temporarily unavailable; retry later")]
    Unavailable {
        /// When to retry.
        retry_after: Duration,
    },
    /// A per-principal quota (or the global cap) on long-lived resources is reached: 429.
    #[error("{message}")]
    Quota {
        /// Which quota, naming its setting.
        message: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// The caller may see this but not do it (a permission their roles or token lack).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A bug; details are in the log.
    #[error("internal error")]
    Internal,
}

impl From<crate::ratelimit::Limited> for McpError {
    fn from(limited: crate::ratelimit::Limited) -> Self {
        McpError::Quota {
            message: limited.message,
            retry_after: limited.retry_after,
        }
    }
}

impl From<crate::quota::QuotaExceeded> for McpError {
    fn from(exceeded: crate::quota::QuotaExceeded) -> Self {
        McpError::Quota {
            message: exceeded.message,
            retry_after: exceeded.retry_after,
        }
    }
}

impl McpError {
    /// The JSON-RPC error code in this era.
    pub fn code(&self, era: Era) -> i64 {
        match self {
            McpError::Parse(_) => -32700,
            McpError::InvalidRequest(_)
            | McpError::SessionRequired(_)
            | McpError::SessionNotFound(_)
            | McpError::NotAcceptable(_)
            | McpError::TooLarge(_) => -32600,
            McpError::MethodNotFound(_) => -32601,
            McpError::InvalidParams(_) | McpError::MissingMeta(_) => -32602,
            McpError::ResourceNotFound(_) => match era {
                Era::Modern => -32602,
                Era::Legacy { .. } => -32002,
            },
            McpError::HeaderMismatch(_) => -32020,
            McpError::UnsupportedVersion { .. } => -32022,
            McpError::Relayed { code, .. } => *code,
            McpError::Forbidden(_) => -32003,
            McpError::Unavailable { .. } | McpError::Internal | McpError::Upstream(_) => -32603,
            McpError::Quota { .. } => -32000,
        }
    }

    /// The HTTP status of a response carrying this error on an MCP endpoint.
    ///
    /// Transport-level failures are 4xx in both eras; errors of a well-formed request are 200 in
    /// the legacy era (the JSON-RPC error is the answer) and follow the 2026-07-28 transport
    /// rules in the modern era.
    pub fn http_status(&self, era: Era) -> StatusCode {
        match self {
            McpError::Parse(_)
            | McpError::InvalidRequest(_)
            | McpError::SessionRequired(_)
            | McpError::MissingMeta(_)
            | McpError::HeaderMismatch(_)
            | McpError::UnsupportedVersion { .. } => StatusCode::BAD_REQUEST,
            McpError::SessionNotFound(_) => StatusCode::NOT_FOUND,
            McpError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            McpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            McpError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            McpError::Quota { .. } => StatusCode::TOO_MANY_REQUESTS,
            McpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            McpError::MethodNotFound(_) => match era {
                Era::Modern => StatusCode::NOT_FOUND,
                Era::Legacy { .. } => StatusCode::OK,
            },
            McpError::InvalidParams(_)
            | McpError::ResourceNotFound(_)
            | McpError::Relayed { .. }
            | McpError::Upstream(_) => StatusCode::OK,
            McpError::Forbidden(_) => match era {
                Era::Modern => StatusCode::FORBIDDEN,
                Era::Legacy { .. } => StatusCode::OK,
            },
        }
    }

    /// The error's `data`, where the spec defines one.
    pub fn data(&self) -> Option<Value> {
        match self {
            McpError::UnsupportedVersion { requested } => Some(json!({
                "supported": supported_versions(),
                "requested": requested,
            })),
            McpError::ResourceNotFound(uri) => Some(json!({ "uri": uri })),
            McpError::Relayed { data, .. } => data.clone(),
            McpError::Parse(_)
            | McpError::InvalidRequest(_)
            | McpError::MethodNotFound(_)
            | McpError::InvalidParams(_)
            | McpError::MissingMeta(_)
            | McpError::HeaderMismatch(_)
            | McpError::SessionRequired(_)
            | McpError::SessionNotFound(_)
            | McpError::NotAcceptable(_)
            | McpError::TooLarge(_)
            | McpError::Upstream(_)
            | McpError::Forbidden(_)
            | McpError::Unavailable { .. }
            | McpError::Quota { .. }
            | McpError::Internal => None,
        }
    }

    /// The JSON-RPC error object.
    pub fn to_error_object(&self, era: Era) -> Value {
        let mut error = json!({ "code": self.code(era), "message": self.to_string() });
        if let Some(data) = self.data() {
            error["data"] = data;
        }
        error
    }
}
