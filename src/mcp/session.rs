//! Legacy (2025-11-25 and older) sessions: created by `initialize`, named by `Mcp-Session-Id`,
//! ended by `DELETE`, by idling past the TTL, or (legacy HTTP+SSE) when the stream closes.
//! Bounded: at most `MCP_MAX_SESSIONS` at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::error::McpError;
use crate::catalog::Scope;
use crate::protocol::LogLevel;

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
    /// the client POSTs back; returns that response message.
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
        let outcome = tokio::time::timeout(timeout, receiver).await;
        lock(&self.state).client_requests.remove(&id);
        match outcome {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err("the session ended".into()),
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

    /// Sets the log level.
    pub fn set_log_level(&self, level: LogLevel) {
        lock(&self.state).log_level = Some(level);
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
    }
}

/// All sessions of this process.
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    ttl: Duration,
    max: usize,
    per_principal: usize,
}

impl SessionStore {
    /// An empty store.
    pub fn new(ttl: Duration, max: usize, per_principal: usize) -> Self {
        SessionStore {
            sessions: Mutex::new(HashMap::new()),
            ttl,
            max,
            per_principal,
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
        let session = Arc::new(Session {
            id: id.clone(),
            scope,
            owner: owner.to_owned(),
            version,
            state: Mutex::new(SessionState::default()),
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
        let store = SessionStore::new(Duration::from_millis(0), 2, 100);
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
        let store = SessionStore::new(Duration::from_secs(60), 1, 100);
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
}
