//! Legacy (2025-11-25 and older) sessions: created by `initialize`, named by `Mcp-Session-Id`,
//! ended by `DELETE`, by idling past the TTL, or (legacy HTTP+SSE) when the stream closes.
//! Bounded: at most `MCP_MAX_SESSIONS` at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use rand::Rng;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::error::McpError;
use crate::actors::upstream::Affinity;
use crate::catalog::Scope;
use crate::protocol::LogLevel;
use crate::quota::Quota;
use crate::upstream::ClientEnd;

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
}

impl Session {
    fn touch(&self) {
        lock(&self.state).last_seen = Some(Instant::now());
    }

    fn expired(&self, ttl: Duration) -> bool {
        let state = lock(&self.state);
        let streaming = state
            .stream
            .as_ref()
            .is_some_and(|stream| !stream.is_closed());
        !streaming && state.last_seen.is_some_and(|seen| seen.elapsed() > ttl)
    }

    /// Records the capabilities the client declared in `initialize`.
    pub fn set_client_capabilities(&self, capabilities: Value) {
        lock(&self.state).client_capabilities = capabilities;
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
            let id = format!("mcpgate-{}", state.next_client_request);
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

    /// Routes a response the client POSTed to the request waiting for it.
    pub fn resolve(&self, response: Value) {
        let Some(id) = response.get("id").and_then(Value::as_str) else {
            return;
        };
        if let Some(waiter) = lock(&self.state).client_requests.remove(id) {
            let _ = waiter.send(response);
        }
    }

    /// The level set with `logging/setLevel`.
    pub fn log_level(&self) -> Option<LogLevel> {
        lock(&self.state).log_level
    }

    /// Sets the log level (and tells the session's own upstream sessions).
    pub fn set_log_level(&self, level: LogLevel) {
        lock(&self.state).log_level = Some(level);
        if let Some(affinity) = self.affinity.get() {
            affinity.set_log_level(level);
        }
    }

    /// The session's own upstream sessions, when it needs them: its client can be asked
    /// something, or keeps state on upstreams (a log level, subscriptions). Made on first use.
    pub fn affinity(&self) -> Option<Arc<Affinity>> {
        if let Some(affinity) = self.affinity.get() {
            return Some(affinity.clone());
        }
        let wanted = {
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
        };
        if !wanted {
            return None;
        }
        let affinity = self.affinity.get_or_init(|| {
            let end = SessionEnd {
                session: self.me.clone(),
                timeout: self.upstream.answer_timeout,
            };
            Affinity::new(Arc::new(end), &self.owner, self.upstream.quota.clone())
        });
        Some(affinity.clone())
    }

    /// The session's stream, while it is open.
    fn stream(&self) -> Option<mpsc::Sender<Value>> {
        lock(&self.state)
            .stream
            .clone()
            .filter(|stream| !stream.is_closed())
    }

    /// Subscribes to updates of a resource.
    pub fn subscribe(&self, uri: String) {
        lock(&self.state).subscriptions.insert(uri);
    }

    /// Unsubscribes.
    pub fn unsubscribe(&self, uri: &str) {
        lock(&self.state).subscriptions.remove(uri);
    }

    /// Whether the session subscribed to this resource.
    pub fn is_subscribed(&self, uri: &str) -> bool {
        lock(&self.state).subscriptions.contains(uri)
    }

    /// Attaches the stream server-initiated messages go to, replacing an earlier one (which
    /// then ends).
    pub fn attach_stream(&self, stream: mpsc::Sender<Value>) {
        lock(&self.state).stream = Some(stream);
    }

    /// Sends a server-initiated message on the session's stream, if one is open.
    pub fn notify(&self, message: Value) {
        if let Some(stream) = &lock(&self.state).stream {
            let _ = stream.try_send(message);
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

    /// Cancels an in-flight request by id.
    pub fn cancel(&self, request_id: &Value) {
        if let Some(token) = lock(&self.state).in_flight.remove(&request_id.to_string()) {
            token.cancel();
        }
    }

    fn end(&self) {
        let mut state = lock(&self.state);
        state.stream = None;
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

/// A session as the client its own upstream sessions belong to: what they send outside a call
/// goes to the session's stream.
struct SessionEnd {
    session: Weak<Session>,
    /// How long the client has to answer a question.
    timeout: Duration,
}

impl ClientEnd for SessionEnd {
    fn notify(&self, message: Value) {
        let Some(session) = self.session.upgrade() else {
            return;
        };
        let relayed = match message.get("method").and_then(Value::as_str) {
            // At the client's level (the upstream was told it, and may not care).
            Some("notifications/message") => {
                let level = message
                    .pointer("/params/level")
                    .and_then(Value::as_str)
                    .and_then(LogLevel::parse);
                matches!((level, session.log_level()), (Some(level), Some(threshold)) if level >= threshold)
            }
            Some("notifications/resources/updated") => message
                .pointer("/params/uri")
                .and_then(Value::as_str)
                .is_some_and(|uri| session.is_subscribed(uri)),
            // Progress and cancellation name the gateway's own requests, list changes are
            // the catalog's business.
            _ => false,
        };
        if relayed {
            session.notify(message);
        }
    }

    fn ask(&self, message: Value) -> BoxFuture<'static, Value> {
        let session = self.session.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let Some(session) = session.upgrade() else {
                return refusal(-32603, "the client's session has ended");
            };
            let method = message["method"].as_str().unwrap_or_default();
            if !capability_for(method).is_some_and(|capability| session.client_supports(capability))
            {
                return refusal(-32601, format!("the client does not support {method}"));
            }
            let Some(stream) = session.stream() else {
                return refusal(-32603, "the client has no stream open to be asked on");
            };
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            session
                .request_client(method, params, &stream, timeout)
                .await
                .unwrap_or_else(|cause| refusal(-32603, cause))
        })
    }

    fn log_level(&self) -> Option<LogLevel> {
        self.session.upgrade()?.log_level()
    }
}

/// All sessions of this process.
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    ttl: Duration,
    max: usize,
    per_principal: usize,
    upstream: UpstreamSessions,
}

impl SessionStore {
    /// An empty store.
    pub fn new(
        ttl: Duration,
        max: usize,
        per_principal: usize,
        upstream: UpstreamSessions,
    ) -> Self {
        SessionStore {
            sessions: Mutex::new(HashMap::new()),
            ttl,
            max,
            per_principal,
            upstream,
        }
    }

    /// Creates a session, first dropping expired ones if the store is full.
    pub fn create(
        &self,
        scope: Scope,
        owner: &str,
        version: &'static str,
    ) -> Result<Arc<Session>, McpError> {
        let mut sessions = lock(&self.sessions);
        // One principal's share first: another principal still gets in.
        let owned = |sessions: &HashMap<String, Arc<Session>>| {
            sessions
                .values()
                .filter(|session| session.owner == owner)
                .count()
        };
        if owned(&sessions) >= self.per_principal {
            sessions.retain(|_, session| !session.expired(self.ttl));
            let held = owned(&sessions);
            if held >= self.per_principal {
                return Err(McpError::Quota {
                    message: format!(
                        "quota exceeded: you hold {held} MCP sessions (the most per principal, \
                         MCP_MAX_SESSIONS_PER_PRINCIPAL = {}); end one with DELETE first",
                        self.per_principal
                    ),
                    retry_after: Duration::from_secs(5),
                });
            }
        }
        if sessions.len() >= self.max {
            sessions.retain(|_, session| !session.expired(self.ttl));
            if sessions.len() >= self.max {
                tracing::warn!(
                    sessions = sessions.len(),
                    "session limit reached; refusing a new session"
                );
                return Err(McpError::Unavailable {
                    retry_after: Duration::from_secs(5),
                });
            }
        }
        let id = format!("{:032x}", rand::rng().random::<u128>());
        let session = Arc::new_cyclic(|me| Session {
            id: id.clone(),
            scope,
            owner: owner.to_owned(),
            version,
            state: Mutex::new(SessionState::default()),
            me: me.clone(),
            affinity: OnceLock::new(),
            upstream: self.upstream.clone(),
        });
        session.touch();
        sessions.insert(id, session.clone());
        Ok(session)
    }

    /// The live session with this id, if it belongs to `owner` and `scope`; touches it.
    pub fn get(&self, id: &str, owner: &str, scope: &Scope) -> Option<Arc<Session>> {
        let mut sessions = lock(&self.sessions);
        let session = sessions.get(id)?.clone();
        if session.expired(self.ttl) {
            sessions.remove(id);
            session.end();
            return None;
        }
        // Another principal's (or another server's) session is "not found", not "forbidden".
        if session.owner != owner || session.scope != *scope {
            return None;
        }
        session.touch();
        Some(session)
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let session = lock(&self.sessions).remove(id)?;
        session.end();
        Some(session)
    }

    /// Ends every expired session; returns how many.
    pub fn sweep(&self) -> usize {
        let mut sessions = lock(&self.sessions);
        let before = sessions.len();
        sessions.retain(|_, session| {
            let expired = session.expired(self.ttl);
            if expired {
                session.end();
            }
            !expired
        });
        before - sessions.len()
    }

    /// Ends every session (at shutdown), closing their streams.
    pub fn end_all(&self) {
        for (_, session) in lock(&self.sessions).drain() {
            session.end();
        }
    }

    /// Live (not expired) sessions, for statistics.
    pub fn len(&self) -> usize {
        lock(&self.sessions)
            .values()
            .filter(|session| !session.expired(self.ttl))
            .count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live session (for fan-out of notifications).
    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_owned_and_expire() {
        let upstream = UpstreamSessions {
            quota: Quota::new("upstream sessions", ("PER", 1), ("ALL", 1)),
            answer_timeout: Duration::from_secs(1),
        };
        let store = SessionStore::new(Duration::from_millis(0), 2, 100, upstream.clone());
        let a = store
            .create(Scope::All, "a@example.com", "2025-11-25")
            .unwrap();
        assert!(
            store.get(&a.id, "b@example.com", &Scope::All).is_none(),
            "owner checked"
        );
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            store.get(&a.id, "a@example.com", &Scope::All).is_none(),
            "expired"
        );
        let store = SessionStore::new(Duration::from_secs(60), 1, 100, upstream);
        store
            .create(Scope::All, "a@example.com", "2025-11-25")
            .unwrap();
        assert!(
            store
                .create(Scope::All, "a@example.com", "2025-11-25")
                .is_err(),
            "bounded"
        );
    }

    /// A session gets upstream sessions of its own only once it needs them: its client can be
    /// asked something, or keeps a log level upstream.
    #[test]
    fn only_a_client_that_can_be_asked_or_keeps_state_gets_its_own_upstream_sessions() {
        let upstream = UpstreamSessions {
            quota: Quota::new("upstream sessions", ("PER", 1), ("ALL", 1)),
            answer_timeout: Duration::from_secs(1),
        };
        let store = SessionStore::new(Duration::from_secs(60), 10, 10, upstream);
        let plain = store
            .create(Scope::All, "a@example.com", "2025-11-25")
            .unwrap();
        plain.set_client_capabilities(serde_json::json!({"sampling": null}));
        assert!(plain.affinity().is_none());
        plain.set_log_level(LogLevel::Debug);
        assert!(plain.affinity().is_some(), "a log level kept upstream");
        let asking = store
            .create(Scope::All, "a@example.com", "2025-11-25")
            .unwrap();
        asking.set_client_capabilities(serde_json::json!({"elicitation": {}}));
        let first = asking.affinity().unwrap();
        assert!(
            Arc::ptr_eq(&first, &asking.affinity().unwrap()),
            "made once"
        );
        assert_eq!(capability_for("roots/list"), Some("roots"));
        assert_eq!(capability_for("tools/call"), None);
    }
}
