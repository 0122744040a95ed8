//! The UpstreamActor: owns the gateway's ONE HTTP client (keep-alive pool, TCP_NODELAY, the
//! egress policy on every connection) and carries out calls to upstream HTTP endpoints: REST
//! tools (`rest.rs`) and upstream MCP servers over pooled connections with breakers
//! (`federation.rs`). No database connection is involved at any point.

mod federation;
mod rest;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use self::federation::Link;
pub use self::federation::{Discover, Discovery, Forward, ForwardError, GetUpstreamBreakers};
pub use self::rest::{CallHttp, HttpReply};
use crate::config::FederationSettings;

/// The most response bytes read from an upstream.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Redirects a REST tool call follows at most.
const MAX_REDIRECTS: usize = 1;

/// Extra time the caller allows beyond the call's own timeout before giving up on a reply.
const REPLY_MARGIN: Duration = Duration::from_secs(2);

/// Why an upstream call produced no HTTP response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// No response within the timeout.
    #[error("no response within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// Connecting or sending failed.
    #[error("could not reach the endpoint: {0}")]
    Unreachable(String),
    /// The response was larger than the gateway accepts.
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    /// The egress policy refused the destination (or a redirect's).
    #[error("{0}")]
    Refused(String),
    /// The request could not be built (a bad URL or header).
    #[error("the request is invalid: {0}")]
    InvalidRequest(String),
    /// The caller went away.
    #[error("cancelled")]
    Cancelled,
    /// The actor could not take the call.
    #[error("the upstream actor is unavailable")]
    Unavailable,
}

/// The actor.
pub struct UpstreamActor {
    client: crate::egress::HttpClient,
    federation: FederationSettings,
    links: HashMap<String, Arc<Link>>,
    /// Where "gateway X's lists changed" is reported (the federation maintenance loop).
    changes: Option<tokio::sync::mpsc::Sender<String>>,
}

impl Actor for UpstreamActor {
    type Context = Context<Self>;
}

impl Supervised for UpstreamActor {}

/// A handle to the UpstreamActor.
#[derive(Clone)]
pub struct Upstream {
    addr: Addr<UpstreamActor>,
}

impl Upstream {
    /// Starts the actor with the one shared client.
    pub fn start(
        federation: FederationSettings,
        changes: Option<tokio::sync::mpsc::Sender<String>>,
    ) -> Result<Self, String> {
        let client = crate::egress::HttpClient::new(federation.egress.clone())?;
        let arbiter = Arbiter::new();
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |ctx| {
            ctx.set_mailbox_capacity(16_384);
            UpstreamActor {
                client,
                federation,
                links: HashMap::new(),
                changes,
            }
        });
        Ok(Upstream { addr })
    }

    /// Calls an HTTP endpoint.
    pub async fn call_http(&self, call: CallHttp) -> Result<HttpReply, UpstreamError> {
        let wait = call.timeout + REPLY_MARGIN;
        self.addr
            .send(call)
            .timeout(wait)
            .await
            .map_err(|error| match error {
                MailboxError::Timeout => UpstreamError::Timeout(wait),
                MailboxError::Closed => UpstreamError::Unavailable,
            })?
    }
}
