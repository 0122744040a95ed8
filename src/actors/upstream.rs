//! The UpstreamActor: owns the gateway's ONE HTTP client (keep-alive pool, TCP_NODELAY, the
//! egress policy on every connection)
//! and carries out calls to upstream HTTP endpoints — REST-backed tools today, upstream MCP
//! servers with federation. No database connection is involved at any point.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::upstream::describe;

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

/// Where a redirect points, resolved against the URL that answered it.
fn redirect_target(
    from: &url::Url,
    status: reqwest::StatusCode,
    location: Option<&reqwest::header::HeaderValue>,
) -> Result<url::Url, UpstreamError> {
    let location = location
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            UpstreamError::Unreachable(format!("HTTP {status} redirect without a Location"))
        })?;
    from.join(location)
        .map_err(|error| UpstreamError::Unreachable(format!("bad redirect {location:?}: {error}")))
}

/// Sends a REST tool call. A redirect is followed once at most: its destination must pass the
/// egress policy like any other, and the tool's configured headers (credentials, under
/// whatever name) are sent only to the origin they were configured for.
async fn send(
    client: crate::egress::HttpClient,
    call: CallHttp,
) -> Result<HttpReply, UpstreamError> {
    let mut method = reqwest::Method::from_bytes(call.method.as_bytes())
        .map_err(|_| UpstreamError::InvalidRequest(format!("bad method {}", call.method)))?;
    let origin = url::Url::parse(&call.url)
        .map_err(|error| UpstreamError::InvalidRequest(format!("bad URL: {error}")))?;
    let mut url = origin.clone();
    let mut body = call.body.clone();
    let mut hops = 0;
    let mut response = loop {
        let mut request = client
            .request(method.clone(), url.as_str())
            .map_err(|denied| UpstreamError::Refused(denied.to_string()))?;
        if crate::egress::same_origin(&origin, &url) {
            for (name, value) in &call.headers {
                request = request.header(name, value);
            }
        }
        if !call.query.is_empty() && hops == 0 {
            request = request.query(&call.query);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| {
            if error.is_builder() {
                UpstreamError::InvalidRequest(error.to_string())
            } else {
                UpstreamError::Unreachable(describe(&error))
            }
        })?;
        let status = response.status();
        if !status.is_redirection() || status == reqwest::StatusCode::NOT_MODIFIED {
            break response;
        }
        if hops == MAX_REDIRECTS {
            return Err(UpstreamError::Unreachable(format!(
                "the endpoint redirected more than {MAX_REDIRECTS} time(s)"
            )));
        }
        hops += 1;
        url = redirect_target(
            &url,
            status,
            response.headers().get(reqwest::header::LOCATION),
        )?;
        // 303 (and, as browsers do, 301/302 after a POST) continue as a GET without a body.
        if status == reqwest::StatusCode::SEE_OTHER
            || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
        {
            method = reqwest::Method::GET;
            body = None;
        }
    };
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

// ---- Federation: upstream MCP servers ------------------------------------------------------

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Map;

use crate::breaker::{Breaker, BreakerSnapshot};
use crate::config::FederationSettings;
use crate::upstream::{CallError, Connection, Notifications, Target};

/// What an upstream offers, read at registration or refresh.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The negotiated protocol version.
    pub protocol_version: String,
    /// Its capabilities.
    pub capabilities: Value,
    /// Its `serverInfo`.
    pub server_info: Value,
    /// Tool definitions.
    pub tools: Vec<Value>,
    /// Resource definitions.
    pub resources: Vec<Value>,
    /// Resource template definitions.
    pub templates: Vec<Value>,
    /// Prompt definitions.
    pub prompts: Vec<Value>,
}

/// Connect to an upstream and list everything it offers (every page).
pub struct Discover {
    /// Where it is.
    pub target: Target,
}

impl Message for Discover {
    type Result = Result<Discovery, CallError>;
}

impl Handler<Discover> for UpstreamActor {
    type Result = ResponseFuture<Result<Discovery, CallError>>;

    fn handle(&mut self, message: Discover, _ctx: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move {
            let connection = Connection::connect(client, message.target).await?;
            let outcome = discover(&connection).await;
            connection.close().await;
            outcome
        })
    }
}

async fn discover(connection: &Connection) -> Result<Discovery, CallError> {
    let offers = |capability: &str| connection.capabilities.get(capability).is_some();
    let tools = if offers("tools") {
        connection.list_all("tools/list", "tools").await?
    } else {
        Vec::new()
    };
    let (resources, templates) = if offers("resources") {
        (
            connection.list_all("resources/list", "resources").await?,
            // Templates are optional even for servers with resources.
            connection
                .list_all("resources/templates/list", "resourceTemplates")
                .await
                .unwrap_or_default(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let prompts = if offers("prompts") {
        connection.list_all("prompts/list", "prompts").await?
    } else {
        Vec::new()
    };
    Ok(Discovery {
        protocol_version: connection.protocol_version().to_owned(),
        capabilities: connection.capabilities.clone(),
        server_info: connection.server_info.clone(),
        tools,
        resources,
        templates,
        prompts,
    })
}

/// Why a forwarded request got no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    /// The upstream's breaker is open; calls fail at once.
    #[error("upstream {name} is unavailable (circuit open); retry in {} s", retry_after.as_secs().max(1))]
    Open {
        /// The upstream's name.
        name: String,
        /// When a probe will be let through.
        retry_after: Duration,
    },
    /// The call failed.
    #[error("upstream {name}: {error}")]
    Call {
        /// The upstream's name.
        name: String,
        /// What happened.
        error: CallError,
    },
}

/// Forward one request to an upstream over its pooled connection.
pub struct Forward {
    /// The gateway id (the pool key).
    pub gateway_id: String,
    /// The gateway's name, for messages.
    pub gateway_name: String,
    /// Where it is.
    pub target: Target,
    /// The method.
    pub method: String,
    /// Its params.
    pub params: Map<String, Value>,
    /// Where the request's notifications go.
    pub notifications: Notifications,
    /// Cancelled when the client goes away.
    pub cancel: CancellationToken,
    /// How long the call may take.
    pub timeout: Duration,
}

impl Message for Forward {
    type Result = Result<Map<String, Value>, ForwardError>;
}

/// One upstream's pooled connection, breaker and concurrency limit.
struct Link {
    gateway_id: String,
    changes: Option<tokio::sync::mpsc::Sender<String>>,
    connection: tokio::sync::Mutex<Option<(Target, Arc<Connection>)>>,
    breaker: Mutex<Breaker>,
    limit: tokio::sync::Semaphore,
}

impl Link {
    /// The live connection, reconnecting when there is none or the target changed. A new
    /// connection follows the upstream's change notifications.
    async fn connection(
        &self,
        client: &crate::egress::HttpClient,
        target: &Target,
    ) -> Result<Arc<Connection>, CallError> {
        let mut slot = self.connection.lock().await;
        if let Some((known, connection)) = slot.as_ref()
            && known == target
        {
            return Ok(connection.clone());
        }
        let mut connection = Connection::connect(client.clone(), target.clone()).await?;
        if let Some(changes) = &self.changes {
            let changes = changes.clone();
            let gateway_id = self.gateway_id.clone();
            connection.watch(Arc::new(move || {
                let _ = changes.try_send(gateway_id.clone());
            }));
        }
        let connection = Arc::new(connection);
        *slot = Some((target.clone(), connection.clone()));
        Ok(connection)
    }

    /// Forgets the connection if it is still `stale` (so the next call reconnects).
    async fn reset(&self, stale: &Arc<Connection>) {
        let mut slot = self.connection.lock().await;
        if slot
            .as_ref()
            .is_some_and(|(_, current)| Arc::ptr_eq(current, stale))
        {
            *slot = None;
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl UpstreamActor {
    fn link(&mut self, gateway_id: &str, name: &str) -> Arc<Link> {
        let settings = &self.federation;
        self.links
            .entry(gateway_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Link {
                    gateway_id: gateway_id.to_owned(),
                    changes: self.changes.clone(),
                    connection: tokio::sync::Mutex::new(None),
                    breaker: Mutex::new(Breaker::new(
                        format!("upstream {name}"),
                        true,
                        settings.circuit_failure_threshold,
                        settings.circuit_reset,
                    )),
                    limit: tokio::sync::Semaphore::new(settings.max_concurrency),
                })
            })
            .clone()
    }
}

impl Handler<Forward> for UpstreamActor {
    type Result = ResponseFuture<Result<Map<String, Value>, ForwardError>>;

    fn handle(&mut self, message: Forward, _ctx: &mut Context<Self>) -> Self::Result {
        let link = self.link(&message.gateway_id, &message.gateway_name);
        let client = self.client.clone();
        Box::pin(async move {
            let name = message.gateway_name.clone();
            let fail = |error: CallError| ForwardError::Call {
                name: name.clone(),
                error,
            };
            let admission =
                link.breaker()
                    .admit(std::time::Instant::now())
                    .map_err(|retry_after| ForwardError::Open {
                        name: name.clone(),
                        retry_after,
                    })?;
            let work = async {
                let _permit = tokio::select! {
                    permit = link.limit.acquire() => {
                        permit.map_err(|_| CallError::Transport("the upstream link is closed".into()))?
                    }
                    _ = message.cancel.cancelled() => return Err(CallError::Cancelled),
                };
                for attempt in 0..2 {
                    let connection = link.connection(&client, &message.target).await?;
                    let id = connection.next_request_id();
                    let call = connection.request_with_id(
                        id,
                        &message.method,
                        message.params.clone(),
                        message.notifications.clone(),
                    );
                    let outcome = tokio::select! {
                        outcome = call => outcome,
                        _ = message.cancel.cancelled() => {
                            if connection.is_legacy() {
                                let connection = connection.clone();
                                tokio::spawn(async move { connection.cancel(id).await });
                            }
                            Err(CallError::Cancelled)
                        }
                    };
                    match outcome {
                        Err(CallError::SessionExpired) if attempt == 0 => {
                            // The upstream forgot our session: start a new one, once.
                            link.reset(&connection).await;
                        }
                        Err(error @ CallError::Transport(_)) => {
                            link.reset(&connection).await;
                            return Err(error);
                        }
                        other => return other,
                    }
                }
                Err(CallError::SessionExpired)
            };
            let outcome = tokio::time::timeout(message.timeout, work)
                .await
                .unwrap_or(Err(CallError::Timeout(message.timeout)));
            let now = std::time::Instant::now();
            match &outcome {
                // The upstream answered (a result or a JSON-RPC error): it is up.
                Ok(_) | Err(CallError::Rpc { .. }) => link.breaker().record_success(admission),
                Err(CallError::Cancelled) => link.breaker().record_neutral(admission),
                Err(
                    CallError::Transport(_) | CallError::Timeout(_) | CallError::SessionExpired,
                ) => link.breaker().record_failure(admission, now),
            }
            outcome.map_err(fail)
        })
    }
}

/// The breakers of every upstream used so far, for `/metrics`.
pub struct GetUpstreamBreakers;

impl Message for GetUpstreamBreakers {
    type Result = Vec<(String, BreakerSnapshot)>;
}

impl Handler<GetUpstreamBreakers> for UpstreamActor {
    type Result = MessageResult<GetUpstreamBreakers>;

    fn handle(&mut self, _message: GetUpstreamBreakers, _ctx: &mut Context<Self>) -> Self::Result {
        let now = std::time::Instant::now();
        MessageResult(
            self.links
                .iter()
                .map(|(id, link)| (id.clone(), link.breaker().snapshot(now)))
                .collect(),
        )
    }
}

impl Upstream {
    /// Connects to an upstream and lists what it offers.
    pub async fn discover(&self, target: Target) -> Result<Discovery, CallError> {
        self.addr
            .send(Discover { target })
            .timeout(Duration::from_secs(120))
            .await
            .map_err(|_| CallError::Transport("the upstream actor did not answer".into()))?
    }

    /// Forwards a request to an upstream.
    pub async fn forward(&self, forward: Forward) -> Result<Map<String, Value>, ForwardError> {
        let name = forward.gateway_name.clone();
        let wait = forward.timeout + REPLY_MARGIN;
        self.addr
            .send(forward)
            .timeout(wait)
            .await
            .map_err(|_| ForwardError::Call {
                name,
                error: CallError::Transport("the upstream actor did not answer".into()),
            })?
    }

    /// Breaker states of the upstreams used so far.
    pub async fn breakers(&self) -> Vec<(String, BreakerSnapshot)> {
        self.addr
            .send(GetUpstreamBreakers)
            .await
            .unwrap_or_default()
    }
}
