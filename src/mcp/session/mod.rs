//! Legacy (2025-11-25 and older) sessions: created by `initialize`, named by `Mcp-Session-Id`,
//! ended by `DELETE`, or (legacy HTTP+SSE) when the stream closes.
//!
//! Any replica serves any session: the id itself carries what a replica needs (sealed: see
//! [`store`]), and each replica keeps a *view* of the sessions it serves. What one view learns
//! that the others need — the client's log level and subscriptions, its stream opened or
//! closed, the session's end — is told over the replica bus; a message for a stream another
//! replica holds, and the client's answer to a request another replica waits on, travel the
//! same way. A view idle past the TTL is let go here unless it keeps a log level or
//! subscriptions (the id opens it again); a session ends by `DELETE`, its SSE stream closing, or
//! its age.
//! Bounded: at most `MCP_MAX_SESSIONS` views at once.

mod client_end;
mod store;

pub use self::store::{SessionIds, SessionStore};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::actors::upstream::Affinity;
use crate::catalog::Scope;
use crate::cluster::{Cluster, Event, SessionChange};
use crate::protocol::LogLevel;
use crate::quota::Quota;

/// The longest request id a cancellation is passed on to other replicas for.
const MAX_REQUEST_ID_BYTES: usize = 256;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One session.
pub struct Session {
    /// Its id (128 random bits, hex).
    pub id: String,
    /// The items it sees.
    pub scope: Scope,
    /// The principal that created it; only they may use it.
    pub owner: String,
    /// The negotiated protocol version.
    pub version: &'static str,
    state: Mutex<SessionState>,
    /// Itself, for the client end of its own upstream sessions.
    me: Weak<Session>,
    /// Its own upstream sessions, once it needs them.
    affinity: OnceLock<Arc<Affinity>>,
    /// Where their places are counted, and how long the client has to answer.
    upstream: UpstreamSessions,
    /// The other replicas, which may hold the stream or wait for an answer.
    cluster: Cluster,
    /// When it ends at the latest (seconds since the epoch; its id says so).
    expires_at: i64,
    /// A legacy HTTP+SSE session: its stream is open on some replica while it lives.
    sse: bool,
    /// The replica that made it, where its own upstream sessions live (empty: unknown).
    home: String,
    /// What makes its id unique (names its lease on every replica's count).
    nonce: u64,
    /// Its place in the principal's quota on every replica's count, while served here.
    lease: Mutex<Option<crate::leases::Lease>>,
    /// Ended for good (not only let go here).
    forgotten: std::sync::atomic::AtomicBool,
}

/// The quota a session's own upstream sessions count against, and how long a client has to
/// answer an upstream's question.
#[derive(Clone)]
pub struct UpstreamSessions {
    /// Upstream sessions of a client's own (`MCP_MAX_UPSTREAM_SESSIONS_PER_PRINCIPAL`).
    pub quota: Arc<Quota>,
    /// How long a question waits for the client's answer.
    pub answer_timeout: Duration,
}

#[derive(Default)]
struct SessionState {
    client_capabilities: Value,
    next_client_request: u64,
    client_requests: HashMap<String, tokio::sync::oneshot::Sender<Value>>,
    last_seen: Option<Instant>,
    log_level: Option<LogLevel>,
    subscriptions: HashSet<String>,
    stream: Option<mpsc::Sender<Value>>,
    in_flight: HashMap<String, CancellationToken>,
    /// The replicas that hold the session's stream now (by their word).
    streams_elsewhere: HashSet<String>,
    /// Relays messages to the stream another replica holds, made on first use.
    relay: Option<mpsc::Sender<Value>>,
}

impl Session {
    fn touch(&self) {
        lock(&self.state).last_seen = Some(Instant::now());
    }

    /// Whether this replica may let the view go: idle past `ttl`, no stream open here, and
    /// nothing kept that the id cannot give back (a log level, subscriptions: a few bytes) —
    /// or past its age. The next request opens it again from its id (its own upstream
    /// sessions, ended with the view, are made again when needed).
    fn expired(&self, ttl: Duration) -> bool {
        if self.past_max_age() {
            return true;
        }
        let state = lock(&self.state);
        let streaming = state
            .stream
            .as_ref()
            .is_some_and(|stream| !stream.is_closed());
        let keeps_state = state.log_level.is_some() || !state.subscriptions.is_empty();
        !streaming && !keeps_state && state.last_seen.is_some_and(|seen| seen.elapsed() > ttl)
    }

    /// Whether it has lived as long as its id allows.
    fn past_max_age(&self) -> bool {
        chrono::Utc::now().timestamp() >= self.expires_at
    }

    /// Records the capabilities the client declared in `initialize` (here only: a session made
    /// by `initialize` carries them in its id).
    pub fn set_client_capabilities(&self, capabilities: Value) {
        lock(&self.state).client_capabilities = capabilities;
    }

    /// Records the capabilities and tells the other replicas (a legacy SSE session, whose id
    /// was made before `initialize`).
    pub fn share_client_capabilities(&self, capabilities: Value) {
        self.set_client_capabilities(capabilities.clone());
        self.share(SessionChange::Capabilities(capabilities));
    }

    /// Tells the other replicas.
    fn share(&self, change: SessionChange) {
        self.cluster.publish(Event::Session {
            id: self.id.clone(),
            change,
        });
    }

    /// Whether the client declared a capability (`sampling`, `elicitation`, `roots`).
    pub fn client_supports(&self, capability: &str) -> bool {
        lock(&self.state)
            .client_capabilities
            .get(capability)
            .is_some_and(|value| !value.is_null())
    }

    /// Sends a request to the client on `stream` and waits (up to `timeout`) for the response
    /// the client POSTs back; returns that response message. When it stops waiting without an
    /// answer — timed out, or dropped because the upstream withdrew its question or the call
    /// ended — the client is told with `notifications/cancelled`.
    pub async fn request_client(
        &self,
        method: &str,
        params: Value,
        stream: &mpsc::Sender<Value>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let id = {
            let mut state = lock(&self.state);
            state.next_client_request += 1;
            // Named by this replica (random at each start): an answer that lands on another
            // replica is passed to this one alone, never to another's question.
            let id = format!(
                "mcpgate-{}-{}",
                self.cluster.replica(),
                state.next_client_request
            );
            state.client_requests.insert(id.clone(), sender);
            id
        };
        let message =
            serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        if stream.send(message).await.is_err() {
            lock(&self.state).client_requests.remove(&id);
            return Err("the client's stream is closed".into());
        }
        let mut outstanding = Outstanding {
            session: self,
            id,
            stream,
        };
        let outcome = tokio::time::timeout(timeout, receiver).await;
        match outcome {
            Ok(Ok(response)) => {
                outstanding.answered();
                Ok(response)
            }
            Ok(Err(_)) => {
                outstanding.answered();
                Err("the session ended".into())
            }
            Err(_) => Err(format!("the client did not answer {method} in time")),
        }
    }

    /// Routes a response the client POSTed to the request waiting for it, here or (over the
    /// bus) on the replica that sent the request.
    pub fn resolve(&self, response: Value) {
        if self.resolve_here(&response) {
            return;
        }
        // Passed on only when its id names another replica's question.
        let elsewhere = response
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.strip_prefix("mcpgate-"))
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(replica, _)| replica != self.cluster.replica());
        if elsewhere {
            self.share(SessionChange::Answer(response));
        }
    }

    /// Routes a response to a request waiting here; whether one was.
    fn resolve_here(&self, response: &Value) -> bool {
        let Some(id) = response.get("id").and_then(Value::as_str) else {
            return true;
        };
        let waiter = lock(&self.state).client_requests.remove(id);
        waiter.is_some_and(|waiter| waiter.send(response.clone()).is_ok())
    }

    /// The level set with `logging/setLevel`.
    pub fn log_level(&self) -> Option<LogLevel> {
        lock(&self.state).log_level
    }

    /// Sets the log level (and tells the session's own upstream sessions, and other replicas).
    pub fn set_log_level(&self, level: LogLevel) {
        self.set_log_level_here(level);
        self.share(SessionChange::Level(level.as_str().to_owned()));
    }

    fn set_log_level_here(&self, level: LogLevel) {
        lock(&self.state).log_level = Some(level);
        if let Some(affinity) = self.affinity.get() {
            affinity.set_log_level(level);
        }
    }

    /// Whether the session needs upstream sessions of its own: its client can be asked
    /// something, or keeps state on upstreams (a log level, subscriptions).
    fn wants_affinity(&self) -> bool {
        let state = lock(&self.state);
        ["sampling", "elicitation", "roots"]
            .iter()
            .any(|capability| {
                state
                    .client_capabilities
                    .get(*capability)
                    .is_some_and(|value| !value.is_null())
            })
            || state.log_level.is_some()
            || !state.subscriptions.is_empty()
    }

    /// The replica a request of this session that reaches upstreams is served on: the one
    /// that made the session, when it is not this one and its own upstream sessions live
    /// there — or always for a legacy HTTP+SSE session, whose stream (and whose client's
    /// capabilities, learnt after its id was made) are there (none: serve it here).
    /// When that replica is gone, one of the others takes over (the same for every replica).
    pub fn home_elsewhere(&self) -> Option<String> {
        if self.home.is_empty() || !(self.sse || self.wants_affinity()) {
            return None;
        }
        let serving = if self.cluster.alive(&self.home) {
            self.home.clone()
        } else {
            self.cluster.successor(&self.id)
        };
        (serving != self.cluster.replica()).then_some(serving)
    }

    /// The session's own upstream sessions, when it needs them (see `wants_affinity`). Made on
    /// first use.
    pub fn affinity(&self) -> Option<Arc<Affinity>> {
        if let Some(affinity) = self.affinity.get() {
            return Some(affinity.clone());
        }
        if !self.wants_affinity() {
            return None;
        }
        let affinity = self.affinity.get_or_init(|| {
            let end = client_end::SessionEnd {
                session: self.me.clone(),
                timeout: self.upstream.answer_timeout,
            };
            Affinity::new(Arc::new(end), &self.owner, self.upstream.quota.clone())
        });
        Some(affinity.clone())
    }

    /// Where server-initiated messages go: the session's stream here while it is open, else a
    /// relay to the replica that holds it (none: no stream anywhere).
    fn stream(&self) -> Option<mpsc::Sender<Value>> {
        let mut state = lock(&self.state);
        if let Some(stream) = state.stream.clone().filter(|stream| !stream.is_closed()) {
            return Some(stream);
        }
        // A holder not heard from lately is gone (killed): nothing to ask on there.
        let cluster = &self.cluster;
        state
            .streams_elsewhere
            .retain(|holder| cluster.alive(holder));
        if state.streams_elsewhere.is_empty() {
            return None;
        }
        if let Some(relay) = state.relay.clone().filter(|relay| !relay.is_closed()) {
            return Some(relay);
        }
        let (relay, mut messages) = mpsc::channel::<Value>(64);
        let (cluster, id) = (self.cluster.clone(), self.id.clone());
        tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                cluster.publish(Event::Session {
                    id: id.clone(),
                    change: SessionChange::Deliver(message),
                });
            }
        });
        state.relay = Some(relay.clone());
        Some(relay)
    }

    /// Subscribes to updates of a resource.
    pub fn subscribe(&self, uri: String) {
        lock(&self.state).subscriptions.insert(uri.clone());
        self.share(SessionChange::Subscribe(uri));
    }

    /// Unsubscribes.
    pub fn unsubscribe(&self, uri: &str) {
        lock(&self.state).subscriptions.remove(uri);
        self.share(SessionChange::Unsubscribe(uri.to_owned()));
    }

    /// Whether the session subscribed to this resource.
    pub fn is_subscribed(&self, uri: &str) -> bool {
        lock(&self.state).subscriptions.contains(uri)
    }

    /// Attaches the stream server-initiated messages go to, replacing an earlier one (which
    /// then ends), here or on another replica.
    pub fn attach_stream(&self, stream: mpsc::Sender<Value>) {
        lock(&self.state).stream = Some(stream);
        self.share(SessionChange::Stream {
            holder: self.cluster.replica().to_owned(),
            open: true,
        });
    }

    /// The stream attached here closed (the client went away).
    pub fn stream_closed(&self) {
        let mut state = lock(&self.state);
        if state
            .stream
            .as_ref()
            .is_some_and(|stream| !stream.is_closed())
        {
            // A newer stream replaced it.
            return;
        }
        state.stream = None;
        drop(state);
        self.share(SessionChange::Stream {
            holder: self.cluster.replica().to_owned(),
            open: false,
        });
    }

    /// Sends a server-initiated message on the session's stream, wherever it is open: here, or
    /// over the bus to the replica that holds it — for a legacy SSE session always (its stream
    /// opened with it, maybe before this replica heard so), for another only while some
    /// replica says it holds one.
    pub fn notify(&self, message: Value) {
        let (local, elsewhere) = {
            let state = lock(&self.state);
            let local = state.stream.clone().filter(|stream| !stream.is_closed());
            let elsewhere = state
                .streams_elsewhere
                .iter()
                .any(|holder| self.cluster.alive(holder));
            (local, elsewhere)
        };
        match local {
            Some(stream) => {
                let _ = stream.try_send(message);
            }
            None if self.sse || elsewhere => self.share(SessionChange::Deliver(message)),
            None => {}
        }
    }

    /// Applies what another replica told about this session.
    fn apply(&self, change: SessionChange) {
        match change {
            SessionChange::Deliver(message) => {
                let stream = lock(&self.state).stream.clone();
                if let Some(stream) = stream {
                    let _ = stream.try_send(message);
                }
            }
            SessionChange::Answer(response) => {
                self.resolve_here(&response);
            }
            SessionChange::Cancel(request_id) => self.cancel_here(&request_id),
            SessionChange::Capabilities(capabilities) => self.set_client_capabilities(capabilities),
            SessionChange::Level(level) => {
                if let Some(level) = LogLevel::parse(&level) {
                    self.set_log_level_here(level);
                }
            }
            SessionChange::Subscribe(uri) => {
                lock(&self.state).subscriptions.insert(uri);
            }
            SessionChange::Unsubscribe(uri) => {
                lock(&self.state).subscriptions.remove(&uri);
            }
            SessionChange::Stream { holder, open } => {
                let mut state = lock(&self.state);
                if open {
                    // The client opened a stream elsewhere: the one here is abandoned.
                    state.stream = None;
                    state.streams_elsewhere.insert(holder);
                } else {
                    state.streams_elsewhere.remove(&holder);
                }
            }
            // The store ends the view.
            SessionChange::Ended => {}
        }
    }

    /// Registers an in-flight request so `notifications/cancelled` can stop it.
    pub fn track(&self, request_id: &Value, cancel: CancellationToken) {
        lock(&self.state)
            .in_flight
            .insert(request_id.to_string(), cancel);
    }

    /// Forgets a finished request.
    pub fn untrack(&self, request_id: &Value) {
        lock(&self.state).in_flight.remove(&request_id.to_string());
    }

    /// Cancels an in-flight request by id, here or on the replica that runs it.
    pub fn cancel(&self, request_id: &Value) {
        let token = lock(&self.state).in_flight.remove(&request_id.to_string());
        match token {
            Some(token) => token.cancel(),
            // A request id is a string or a number; anything else names no request.
            None if (request_id.is_string() || request_id.is_number())
                && request_id.to_string().len() <= MAX_REQUEST_ID_BYTES =>
            {
                self.share(SessionChange::Cancel(request_id.clone()));
            }
            None => {}
        }
    }

    fn cancel_here(&self, request_id: &Value) {
        if let Some(token) = lock(&self.state).in_flight.remove(&request_id.to_string()) {
            token.cancel();
        }
    }

    /// What names the session in its principal's shared count.
    fn lease_member(&self) -> String {
        format!("{:016x}", self.nonce)
    }

    /// Keeps its place in the shared count while this view lives (an ended view gives it up).
    fn hold(&self, lease: crate::leases::Lease) {
        let mut held = lock(&self.lease);
        if !self.past_max_age() && !self.forgotten.load(std::sync::atomic::Ordering::Acquire) {
            *held = Some(lease);
        }
    }

    fn end(&self) {
        lock(&self.lease).take();
        let mut state = lock(&self.state);
        state.stream = None;
        state.relay = None;
        state.client_requests.clear();
        for (_, token) in state.in_flight.drain() {
            token.cancel();
        }
        drop(state);
        if let Some(affinity) = self.affinity.get() {
            affinity.end();
        }
    }
}
/// A request to the client still waiting for its answer: dropped unanswered, it is forgotten
/// and the client told it is cancelled.
struct Outstanding<'a> {
    session: &'a Session,
    id: String,
    stream: &'a mpsc::Sender<Value>,
}

impl Outstanding<'_> {
    /// The client answered (or cannot any more): nothing to cancel.
    fn answered(&mut self) {
        self.id.clear();
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        if self.id.is_empty() {
            return;
        }
        lock(&self.session.state).client_requests.remove(&self.id);
        let _ = self.stream.try_send(serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {
                "requestId": self.id,
                "reason": "mcpgate stopped waiting: the upstream withdrew its request, its call ended, or the answer took too long",
            },
        }));
    }
}

/// The capability a question from an upstream needs of the client.
pub fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// An error answer to an upstream's question.
pub fn refusal(code: i64, message: impl Into<String>) -> Value {
    serde_json::json!({ "error": { "code": code, "message": message.into() } })
}
