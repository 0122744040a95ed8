//! Upstream calls parked between the rounds of a 2026-07-28 multi round-trip request (MRTR).
//!
//! A session-era upstream asks its questions (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`) in the middle of a call and waits for the answer. A 2026-07-28 client cannot
//! be asked that way: it gets an `input_required` result and retries its request with
//! `inputResponses`. So the gateway keeps the upstream call running, parks it here under a
//! random id that becomes the `requestState`, and resumes it when the retry brings the answer.
//!
//! A parked call belongs to the principal, method and item of the request that parked it: a
//! retry that differs in any of them is refused, and the id is single-use (taken on resume,
//! parked again under a new id when the upstream asks again). A call not resumed within its
//! time to live is cancelled upstream. Parked calls live in this process: the `requestState`
//! is valid only on the replica that issued it (the upstream session it waits on is too).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::error::McpError;
use super::protocol::LogLevel;
use crate::actors::upstream::ForwardError;
use crate::upstream::ClientRequest;

/// What marks a `requestState` as the gateway's own (anything else belongs to an upstream).
pub const STATE_PREFIX: &str = "mcpgate-parked:";

/// The most calls parked at once; beyond it, new questions are declined.
const MAX_PARKED: usize = 10_000;

/// Where a running call's notifications go: the stream, progress token and log level of the
/// client request currently waiting on it (none while parked).
#[derive(Default)]
pub struct RelayTarget {
    /// The waiting request's response stream.
    pub notifier: Option<mpsc::Sender<Value>>,
    /// Its progress token.
    pub progress_token: Option<Value>,
    /// Its log level.
    pub log_level: Option<LogLevel>,
}

/// An upstream call running in the background on behalf of one client request at a time.
pub struct RunningCall {
    /// The call's result.
    pub outcome: oneshot::Receiver<Result<Map<String, Value>, ForwardError>>,
    /// The upstream's questions during the call, each with where its answer goes.
    pub questions: mpsc::Receiver<ClientRequest>,
    /// Cancels the upstream call.
    pub cancel: CancellationToken,
    /// Where its notifications go now.
    pub relay: Arc<Mutex<RelayTarget>>,
    /// How many questions the upstream asked so far (keys of `inputRequests`).
    pub asked: u32,
}

/// The question a parked call waits on.
pub struct Question {
    /// Its key in `inputRequests`.
    pub key: String,
    /// The request (`method`, `params`), as the client is shown it.
    pub request: Value,
    /// Where the client's answer goes (a JSON-RPC response message's `result` or `error`).
    pub reply: oneshot::Sender<Value>,
}

/// Which request a parked call belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The principal's email.
    pub principal: String,
    /// `tools/call`, `prompts/get` or `resources/read`.
    pub method: String,
    /// The tool or prompt name, or the resource URI, as the client named it.
    pub item: String,
}

/// A call waiting for its client's answer.
pub struct ParkedCall {
    /// Whose it is.
    pub owner: Owner,
    /// The call.
    pub call: RunningCall,
    /// The question it waits on.
    pub question: Question,
}

/// The parked calls of this process.
pub struct ParkedCalls {
    calls: Mutex<HashMap<String, ParkedCall>>,
    ttl: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ParkedCalls {
    /// An empty store whose calls are cancelled when not resumed within `ttl`.
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(ParkedCalls {
            calls: Mutex::new(HashMap::new()),
            ttl,
        })
    }

    /// Parks a call; returns the `requestState` that resumes it. When the store is full the
    /// call is handed back.
    pub fn park(self: &Arc<Self>, parked: ParkedCall) -> Result<String, Box<ParkedCall>> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        {
            let mut calls = lock(&self.calls);
            if calls.len() >= MAX_PARKED {
                return Err(Box::new(parked));
            }
            calls.insert(id.clone(), parked);
        }
        let store = Arc::downgrade(self);
        let ttl = self.ttl;
        let expiring = id.clone();
        actix_web::rt::spawn(async move {
            tokio::time::sleep(ttl).await;
            let expired = store
                .upgrade()
                .and_then(|store| lock(&store.calls).remove(&expiring));
            if let Some(expired) = expired {
                tracing::debug!(owner = ?expired.owner, "a parked upstream call was not resumed in time; cancelled");
                expired.call.cancel.cancel();
            }
        });
        Ok(format!("{STATE_PREFIX}{id}"))
    }

    /// Takes the parked call a `requestState` names, when `owner` is the one that parked it.
    pub fn resume(&self, state: &str, owner: &Owner) -> Result<ParkedCall, McpError> {
        let stale = || {
            McpError::InvalidParams(
                "requestState names no waiting call (it expired, was used already, or was issued by another gateway replica); send the request again without inputResponses and requestState"
                    .into(),
            )
        };
        let id = state.strip_prefix(STATE_PREFIX).ok_or_else(stale)?;
        let mut calls = lock(&self.calls);
        match calls.get(id) {
            None => Err(stale()),
            Some(parked) if &parked.owner != owner => Err(McpError::InvalidParams(
                "requestState belongs to another request: retry the same method and item it was issued for"
                    .into(),
            )),
            Some(_) => calls.remove(id).ok_or_else(stale),
        }
    }

    /// How many calls are parked now.
    pub fn len(&self) -> usize {
        lock(&self.calls).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cancels every parked call (shutdown).
    pub fn cancel_all(&self) {
        for (_, parked) in lock(&self.calls).drain() {
            parked.call.cancel.cancel();
        }
    }
}
