//! The gateway as an MCP *client* of upstream servers, in both eras: Streamable HTTP (probing
//! 2026-07-28 with `server/discover`, else `initialize` and a session) and the legacy HTTP+SSE
//! transport, and local processes over stdio. Used only by the UpstreamActor, through its one
//! HTTP client (a pool per thread) and its table of processes.

mod connection;
pub mod oauth;
pub mod process;
pub mod sse;
pub mod transport;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

pub use self::connection::{Budget, Connection, UNREADABLE};
pub(crate) use self::transport::describe;
pub use self::transport::{ClientEnd, ClientRequest, Notifications, OnChange, Transport};

/// The transport an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Streamable HTTP.
    StreamableHttp,
    /// The legacy HTTP+SSE transport.
    Sse,
    /// A local process's stdin and stdout.
    Stdio,
}

/// How to reach an upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Its MCP endpoint (Streamable HTTP) or SSE URL.
    pub url: String,
    /// Its transport.
    pub transport: TransportKind,
    /// Headers sent with every request (authentication).
    pub headers: BTreeMap<String, String>,
    /// A stdio upstream's command (its `url` is then only a description).
    pub command: Option<std::sync::Arc<process::StdioCommand>>,
    /// How tokens for an OAuth-protected upstream are obtained (each call presents one as
    /// `Authorization: Bearer`).
    pub oauth: Option<std::sync::Arc<oauth::OAuthConfig>>,
}

impl Target {
    /// The same upstream, reached with `token` as its bearer.
    pub fn with_bearer(&self, token: &str) -> Target {
        let mut target = self.clone();
        target
            .headers
            .insert("Authorization".to_owned(), format!("Bearer {token}"));
        target
    }

    /// Whether each user presents their own token (the connection is theirs alone).
    pub fn per_user(&self) -> bool {
        self.oauth
            .as_ref()
            .is_some_and(|config| config.flow != oauth::Flow::ClientCredentials)
    }
}

/// Why a request to an upstream failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The upstream could not be reached or answered garbage.
    #[error("{0}")]
    Transport(String),
    /// The upstream forgot our session (HTTP 404 on a session request): reconnect.
    #[error("the upstream ended the session")]
    SessionExpired,
    /// The upstream answered with a JSON-RPC error.
    #[error("upstream error {code}: {message}")]
    Rpc {
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
        /// Its data.
        data: Option<Value>,
    },
    /// The call exceeded its time.
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// The caller went away.
    #[error("cancelled")]
    Cancelled,
    /// What the upstream sent breaks a bound the gateway keeps (the message names it).
    #[error("{0}")]
    Bound(String),
    /// No token could be presented to the upstream (the message says what the caller can do).
    #[error("{0}")]
    NotAuthorized(String),
}

impl From<crate::egress::EgressDenied> for CallError {
    fn from(denied: crate::egress::EgressDenied) -> Self {
        CallError::Transport(denied.to_string())
    }
}
