//! The UpstreamActor: owns the gateway's ONE `reqwest::Client` (keep-alive pool, TCP_NODELAY)
//! and carries out calls to upstream HTTP endpoints — REST-backed tools today, upstream MCP
//! servers with federation. No database connection is involved at any point.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The most response bytes read from an upstream.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

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

/// Call an HTTP endpoint.
pub struct CallHttp {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Headers to send.
    pub headers: BTreeMap<String, String>,
    /// Query parameters to add.
    pub query: Vec<(String, String)>,
    /// A JSON body.
    pub body: Option<Value>,
    /// How long the whole call may take.
    pub timeout: Duration,
    /// Cancelled when the client that asked goes away.
    pub cancel: CancellationToken,
}

/// An upstream's answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Message for CallHttp {
    type Result = Result<HttpReply, UpstreamError>;
}

/// The actor.
pub struct UpstreamActor {
    client: reqwest::Client,
}

impl Actor for UpstreamActor {
    type Context = Context<Self>;
}

impl Supervised for UpstreamActor {}

impl Handler<CallHttp> for UpstreamActor {
    type Result = ResponseFuture<Result<HttpReply, UpstreamError>>;

    fn handle(&mut self, call: CallHttp, _ctx: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move {
            let cancel = call.cancel.clone();
            let timeout = call.timeout;
            tokio::select! {
                _ = cancel.cancelled() => Err(UpstreamError::Cancelled),
                outcome = tokio::time::timeout(timeout, send(client, call)) => {
                    outcome.unwrap_or(Err(UpstreamError::Timeout(timeout)))
                }
            }
        })
    }
}

async fn send(client: reqwest::Client, call: CallHttp) -> Result<HttpReply, UpstreamError> {
    let method = reqwest::Method::from_bytes(call.method.as_bytes())
        .map_err(|_| UpstreamError::InvalidRequest(format!("bad method {}", call.method)))?;
    let mut request = client.request(method, &call.url);
    for (name, value) in &call.headers {
        request = request.header(name, value);
    }
    if !call.query.is_empty() {
        request = request.query(&call.query);
    }
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    let mut response = request.send().await.map_err(|error| {
        if error.is_builder() {
            UpstreamError::InvalidRequest(error.to_string())
        } else {
            UpstreamError::Unreachable(describe(&error))
        }
    })?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| UpstreamError::Unreachable(describe(&error)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamError::TooLarge(MAX_RESPONSE_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpReply {
        status,
        content_type,
        body,
    })
}

/// The innermost cause of a reqwest error ("connection refused" rather than "error sending
/// request").
fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    message
}

/// A handle to the UpstreamActor.
#[derive(Clone)]
pub struct Upstream {
    addr: Addr<UpstreamActor>,
}

impl Upstream {
    /// Starts the actor with the one shared client.
    pub fn start() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("mcpgate/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        let arbiter = Arbiter::new();
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |ctx| {
            ctx.set_mailbox_capacity(16_384);
            UpstreamActor { client }
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
