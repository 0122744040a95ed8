//! The UpstreamActor and its handle: the gateway's ONE HTTP client (keep-alive pool,
//! TCP_NODELAY, the egress policy on every connection), REST tool calls (`rest.rs`) and upstream
//! MCP servers over pooled connections with breakers (`federation.rs`). No database connection
//! is involved at any point.
//!
//! The client and every upstream's link (connection, breaker, concurrency limit) are shared
//! state the actor publishes: the [`Upstream`] handle forwards a call on the caller's own
//! thread (an HTTP worker), so upstream I/O spreads over every worker and a call crosses no
//! thread. The actor runs discovery and reports the breakers.

mod affinity;
mod credentials;
mod federation;
mod link;
mod rest;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

pub use self::affinity::Affinity;
pub use self::credentials::{CredentialError, Credentials};
pub use self::federation::{
    Discover, Discovery, Forward, ForwardError, GetUpstreamBreakers, HealthReport,
};
use self::link::Links;
pub use self::rest::{CallHttp, HttpReply};
use crate::config::FederationSettings;

/// The most response bytes read from an upstream.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Redirects a REST tool call follows at most.
const MAX_REDIRECTS: usize = 1;

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
    /// Every upstream's pooled connection, breaker and limit (shared with the handles).
    links: Arc<Links>,
}

impl Actor for UpstreamActor {
    type Context = Context<Self>;
}

impl Supervised for UpstreamActor {}

/// A handle to the UpstreamActor.
#[derive(Clone)]
pub struct Upstream {
    addr: Addr<UpstreamActor>,
    client: crate::egress::HttpClient,
    links: Arc<Links>,
    credentials: Arc<Credentials>,
}

impl Upstream {
    /// Applies another replica's news that upstream `gateway_id` (named `name`) went down or
    /// came back: its breaker here opens or closes.
    pub fn heard_health(&self, gateway_id: &str, name: &str, reachable: bool) {
        self.links.heard(gateway_id, name, reachable);
    }

    /// Starts the actor with the one shared client.
    /// `keys` sign the gateway's assertions for token exchange; `db` and `secrets` keep users'
    /// upstream tokens.
    pub fn start(
        federation: FederationSettings,
        changes: Option<tokio::sync::mpsc::Sender<String>>,
        health: Option<tokio::sync::mpsc::Sender<HealthReport>>,
        keys: Arc<crate::auth::jwt::JwtKeys>,
        db: crate::actors::db::Db,
        secrets: crate::secrets::SecretBox,
    ) -> Result<Self, String> {
        let client = crate::egress::HttpClient::new(federation.egress.clone())?;
        let credentials = Arc::new(Credentials::new(client.clone(), keys, db, secrets));
        let links = Arc::new(Links::new(federation, changes, health));
        let arbiter = Arbiter::new();
        let (actor_client, actor_links) = (client.clone(), links.clone());
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |ctx| {
            ctx.set_mailbox_capacity(16_384);
            UpstreamActor {
                client: actor_client.clone(),
                links: actor_links.clone(),
            }
        });
        Ok(Upstream {
            addr,
            client,
            links,
            credentials,
        })
    }

    /// Tokens for OAuth-protected upstreams.
    pub fn credentials(&self) -> &Arc<Credentials> {
        &self.credentials
    }

    /// Calls an HTTP endpoint (a REST tool), on the caller's thread with the shared client.
    pub async fn call_http(&self, call: CallHttp) -> Result<HttpReply, UpstreamError> {
        rest::call(self.client.clone(), call).await
    }
}
