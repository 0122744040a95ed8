//! Upstream MCP servers: discovery, and requests forwarded over each upstream's pooled
//! connection with its breaker and concurrency limit.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::affinity::Affinity;
use super::link::Link;
use super::{Upstream, UpstreamActor};
use crate::breaker::BreakerSnapshot;
use crate::protocol::RawObject;
use crate::upstream::process::{ProcessView, Role};
use crate::upstream::{Budget, CallError, Connection, Notifications, Target};

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

impl Discovery {
    /// What is known of an upstream not discovered yet (it waits for its owner to connect).
    pub fn awaiting_connection() -> Self {
        Discovery {
            protocol_version: "(awaiting connection)".to_owned(),
            capabilities: serde_json::json!({}),
            server_info: serde_json::json!({}),
            tools: Vec::new(),
            resources: Vec::new(),
            templates: Vec::new(),
            prompts: Vec::new(),
        }
    }
}

/// Connect to an upstream and list everything it offers (every page), within a budget.
pub struct Discover {
    /// Where it is.
    pub target: Target,
    /// What the discovery may bring.
    pub budget: Budget,
}

impl Message for Discover {
    type Result = Result<Discovery, CallError>;
}

impl Handler<Discover> for UpstreamActor {
    type Result = ResponseFuture<Result<Discovery, CallError>>;

    fn handle(&mut self, message: Discover, _ctx: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        let links = self.links.clone();
        Box::pin(async move {
            // A stdio upstream is discovered over its shared process (made now, if it is not
            // running), so what is listed is what calls will meet.
            if let Some(command) = message.target.command.clone() {
                let link = links.link(&command.gateway_id, &command.label);
                let connection = link.connection(&client, &Arc::new(message.target)).await?;
                return discover(&connection, message.budget).await;
            }
            let connection =
                Connection::connect(client, &links.processes, message.target, Role::Discovery)
                    .await?;
            let outcome = discover(&connection, message.budget).await;
            connection.close().await;
            outcome
        })
    }
}

async fn discover(connection: &Connection, mut budget: Budget) -> Result<Discovery, CallError> {
    let offers = |capability: &str| connection.capabilities.get(capability).is_some();
    let tools = if offers("tools") {
        connection
            .list_all("tools/list", "tools", &mut budget)
            .await?
    } else {
        Vec::new()
    };
    let (resources, templates) = if offers("resources") {
        let resources = connection
            .list_all("resources/list", "resources", &mut budget)
            .await?;
        // Templates are optional even for servers with resources; they count with resources.
        let mut left = budget.clone();
        left.max_items = budget.max_items.saturating_sub(resources.len());
        let templates = match connection
            .list_all("resources/templates/list", "resourceTemplates", &mut left)
            .await
        {
            Ok(templates) => templates,
            Err(bound @ CallError::Bound(_)) => return Err(bound),
            Err(_) => Vec::new(),
        };
        budget.bytes_left = left.bytes_left;
        (resources, templates)
    } else {
        (Vec::new(), Vec::new())
    };
    let prompts = if offers("prompts") {
        connection
            .list_all("prompts/list", "prompts", &mut budget)
            .await?
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
    pub target: Arc<Target>,
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
    /// The client's own upstream sessions, when it needs them.
    pub affinity: Option<Arc<Affinity>>,
    /// Who calls (an upstream that authenticates each user gets their own token).
    pub user: Option<String>,
}

/// What calls tell about an upstream's health: it went down (its calls failed
/// `UNHEALTHY_THRESHOLD` times in a row; the error of the last) or answered again.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// The upstream.
    pub gateway_id: String,
    /// Whether it answers.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
}

/// Forwards one request over the upstream's link: breaker, concurrency limit, the pooled
/// connection (reconnected once when the upstream forgot the session), timeout, cancellation.
async fn forward(
    link: Arc<Link>,
    client: &crate::egress::HttpClient,
    credentials: &super::Credentials,
    mut message: Forward,
) -> Result<RawObject, ForwardError> {
    let name = message.gateway_name.clone();
    let fail = |error: CallError| ForwardError::Call {
        name: name.clone(),
        error,
    };
    // An OAuth-protected upstream is called with a token: the gateway's own, or the user's
    // (over a connection of that user's alone). Not having one is the caller's state, not the
    // upstream's: it counts nowhere.
    let mut target = message.target.clone();
    let mut per_user = None;
    if let Some(config) = target.oauth.clone() {
        let bearer = credentials
            .bearer(
                &message.gateway_id,
                &message.gateway_name,
                &config,
                message.user.as_deref(),
            )
            .await
            .map_err(|error| fail(CallError::NotAuthorized(error.to_string())))?;
        target = Arc::new(target.with_bearer(&bearer));
        if target.per_user() {
            per_user = message.user.clone();
        }
    }
    let admission = link
        .breaker()
        .admit(std::time::Instant::now())
        .map_err(|retry_after| ForwardError::Open {
            name: name.clone(),
            retry_after,
        })?;
    let mut params = std::mem::take(&mut message.params);
    let work = async {
        let _permit = tokio::select! {
            permit = link.limit.acquire() => {
                permit.map_err(|_| CallError::Transport("the upstream link is closed".into()))?
            }
            _ = message.cancel.cancelled() => return Err(CallError::Cancelled),
        };
        for attempt in 0..2 {
            let own = match &message.affinity {
                Some(affinity) => affinity.connection(&link, client, &target).await?,
                None => None,
            };
            let dedicated = own.is_some();
            let connection = match (own, &per_user) {
                (Some(own), _) => own,
                (None, Some(user)) => link.user_connection(client, &target, user).await?,
                (None, None) => link.connection(client, &target).await?,
            };
            let forget = |connection: Arc<Connection>| {
                let link = link.clone();
                let affinity = message.affinity.clone();
                let user = per_user.clone();
                async move {
                    match (affinity.filter(|_| dedicated), user) {
                        (Some(affinity), _) => affinity.reset(link.gateway_id(), &connection).await,
                        (None, Some(user)) => link.reset_user(&user, &connection).await,
                        (None, None) => link.reset(&connection).await,
                    }
                }
            };
            let id = connection.next_request_id();
            let body = connection.request_body(id, &message.method, params, &message.notifications);
            // A session-era upstream is told when the call is abandoned, however it ends.
            let mut abandoned = Abandoned::watch(&connection, id);
            let outcome = tokio::select! {
                outcome = connection.send(&body, &message.method, message.notifications.clone()) => outcome,
                _ = message.cancel.cancelled() => Err(CallError::Cancelled),
            };
            if !matches!(outcome, Err(CallError::Cancelled)) {
                abandoned.disarm();
            }
            match outcome {
                Err(CallError::SessionExpired) if attempt == 0 => {
                    // The upstream forgot our session: start a new one, once.
                    forget(connection).await;
                    params = Connection::params_of(body);
                }
                Err(error @ CallError::Transport(_)) => {
                    forget(connection).await;
                    return Err(error);
                }
                other => return other,
            }
        }
        Err(CallError::SessionExpired)
    };
    let outcome = tokio::time::timeout(message.timeout, work)
        .await
        .unwrap_or(Err(CallError::Timeout(message.timeout)))
        .and_then(|result| {
            // Relayed as the upstream wrote it, so it must stay readable by clients' parsers.
            if result.too_deep() {
                return Err(CallError::Bound(format!(
                    "the upstream's answer nests more than {} levels deep",
                    crate::protocol::MAX_NESTING
                )));
            }
            Ok(result)
        });
    let now = std::time::Instant::now();
    match &outcome {
        // The upstream answered (a result or a JSON-RPC error): it is up.
        // (An answer past a bound is an answer: the upstream is up, if misbehaving.)
        Ok(_) | Err(CallError::Rpc { .. } | CallError::Bound(_)) => {
            link.breaker().record_success(admission);
            link.report(true, None);
        }
        Err(CallError::Cancelled | CallError::NotAuthorized(_)) => {
            link.breaker().record_neutral(admission)
        }
        Err(
            error @ (CallError::Transport(_) | CallError::Timeout(_) | CallError::SessionExpired),
        ) => {
            let failures = {
                let mut breaker = link.breaker();
                breaker.record_failure(admission, now);
                breaker.snapshot(now).consecutive_failures
            };
            if failures >= link.unhealthy_threshold {
                link.report(false, Some(error.to_string()));
            }
        }
    }
    outcome.map_err(fail)
}

/// Sends `notifications/cancelled` for a request to a session-era upstream when dropped armed:
/// the caller cancelled, timed out or went away (its future dropped) before the answer.
struct Abandoned {
    request: Option<(Arc<Connection>, i64)>,
}

impl Abandoned {
    fn watch(connection: &Arc<Connection>, id: i64) -> Self {
        Abandoned {
            request: connection.is_legacy().then(|| (connection.clone(), id)),
        }
    }

    /// The request got its answer: nothing to cancel.
    fn disarm(&mut self) {
        self.request = None;
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some((connection, id)) = self.request.take() {
            // Dropped inside a runtime (a request's future); outside one, nothing can be sent.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { connection.cancel(id).await });
            }
        }
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
                .links
                .iter()
                .map(|entry| (entry.key().clone(), entry.value().breaker().snapshot(now)))
                .collect(),
        )
    }
}

impl Upstream {
    /// Connects to an upstream and lists what it offers, within `budget`.
    pub async fn discover(&self, target: Target, budget: Budget) -> Result<Discovery, CallError> {
        self.addr
            .send(Discover { target, budget })
            .timeout(Duration::from_secs(120))
            .await
            .map_err(|_| CallError::Transport("the upstream actor did not answer".into()))?
    }

    /// Forwards a request to an upstream, on the caller's thread: the link (connection,
    /// breaker, limit) is shared, so no message is needed and upstream I/O spreads over every
    /// HTTP worker.
    pub async fn forward(&self, forward: Forward) -> Result<RawObject, ForwardError> {
        let link = self.links.link(&forward.gateway_id, &forward.gateway_name);
        self::forward(link, &self.client, &self.credentials, forward).await
    }

    /// Whether a stdio upstream's shared process is resting: never started, or stopped by the
    /// gateway (idle) rather than dead.
    pub fn resting(&self, gateway_id: &str) -> bool {
        self.links.resting(gateway_id)
    }

    /// Ends what the gateway holds open for a deleted or disabled upstream: its shared
    /// connection, and every process it runs for it.
    pub async fn forget(&self, gateway_id: &str) {
        self.links.forget(gateway_id).await;
        self.credentials.reset(gateway_id);
    }

    /// The processes running for a stdio upstream.
    pub fn processes(&self, gateway_id: &str) -> Vec<ProcessView> {
        self.links.processes.of(gateway_id)
    }

    /// Stops every stdio upstream's process (at shutdown) and waits until they have exited;
    /// none is started after.
    pub async fn stop_processes(&self) {
        self.links.processes.stop(None).await;
    }

    /// Breaker states of the upstreams used so far.
    pub async fn breakers(&self) -> Vec<(String, BreakerSnapshot)> {
        self.addr
            .send(GetUpstreamBreakers)
            .await
            .unwrap_or_default()
    }
}
