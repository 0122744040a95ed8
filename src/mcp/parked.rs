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
//! time to live is cancelled upstream. Each principal may keep a bounded number of calls parked
//! (`MCP_MAX_PARKED_CALLS_PER_PRINCIPAL`, and `MCP_MAX_PARKED_CALLS` in all): past it, the call
//! //! is cancelled and the client told which quota it reached. Parked calls live in this process:
//! the `requestState` names the replica that issued it (`mcpgate-parked:<replica>.<id>`), and a
//! retry that lands on another replica is forwarded there (`crate::http::forward`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::error::McpError;
use crate::actors::upstream::ForwardError;
use crate::protocol::LogLevel;
use crate::protocol::RawObject;
use crate::quota::{Permit, Quota, QuotaExceeded};
use crate::upstream::ClientRequest;

/// What marks a `requestState` as the gateway's own (anything else belongs to an upstream).
pub const STATE_PREFIX: &str = "mcpgate-parked:";

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
    pub outcome: oneshot::Receiver<Result<RawObject, ForwardError>>,
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

/// The parked calls of this process, each with its place in the quota.
pub struct ParkedCalls {
    calls: Mutex<HashMap<String, (ParkedCall, Permit)>>,
    quota: Arc<Quota>,
    ttl: Duration,
    /// This replica, named in every state it issues.
    replica: String,
}

/// A call that could not be parked: handed back with the quota it met.
pub struct NotParked {
    /// The call.
    pub parked: ParkedCall,
    /// Which limit.
    pub exceeded: QuotaExceeded,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ParkedCalls {
    /// An empty store whose calls are cancelled when not resumed within `ttl`, holding at most
    /// `per_principal` calls of one principal and `global` in all.
    pub fn new(
        ttl: Duration,
        (per_principal, global): (usize, usize),
        replica: &str,
        leases: Option<Arc<crate::leases::Leases>>,
    ) -> Arc<Self> {
        Arc::new(ParkedCalls {
            calls: Mutex::new(HashMap::new()),
            quota: Quota::shared(
                "calls waiting for input",
                ("MCP_MAX_PARKED_CALLS_PER_PRINCIPAL", per_principal),
                ("MCP_MAX_PARKED_CALLS", global),
                leases,
            ),
            ttl,
            replica: replica.to_owned(),
        })
    }

    /// The replica a gateway `requestState` was issued by (none: not one of the gateway's).
    pub fn holder(state: &str) -> Option<&str> {
        state
            .strip_prefix(STATE_PREFIX)?
            .split_once('.')
            .map(|(replica, _)| replica)
    }

    /// Whether this replica issued `state`.
    pub fn issued_here(&self, state: &str) -> bool {
        Self::holder(state) == Some(self.replica.as_str())
    }

    /// Parks a call; returns the `requestState` that resumes it. Past the principal's quota
    /// (or the global cap) the call is handed back.
    pub async fn park(self: &Arc<Self>, parked: ParkedCall) -> Result<String, Box<NotParked>> {
        let permit = match self.quota.acquire_shared(&parked.owner.principal).await {
            Ok(permit) => permit,
            Err(exceeded) => return Err(Box::new(NotParked { parked, exceeded })),
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        lock(&self.calls).insert(id.clone(), (parked, permit));
        let store = Arc::downgrade(self);
        let ttl = self.ttl;
        let expiring = id.clone();
        actix_web::rt::spawn(async move {
            tokio::time::sleep(ttl).await;
            let expired = store
                .upgrade()
                .and_then(|store| lock(&store.calls).remove(&expiring));
            if let Some((expired, _permit)) = expired {
                tracing::debug!(owner = ?expired.owner, "a parked upstream call was not resumed in time; cancelled");
                expired.call.cancel.cancel();
            }
        });
        Ok(format!("{STATE_PREFIX}{}.{id}", self.replica))
    }

    /// Takes the parked call a `requestState` names, when `owner` is the one that parked it.
    pub fn resume(&self, state: &str, owner: &Owner) -> Result<ParkedCall, McpError> {
        let stale = || {
            McpError::InvalidParams(
                "requestState names no waiting call (it expired, was used already, or its gateway replica is gone); send the request again without inputResponses and requestState"
                    .into(),
            )
        };
        let id = state
            .strip_prefix(STATE_PREFIX)
            .and_then(|rest| rest.strip_prefix(self.replica.as_str()))
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or_else(stale)?;
        let mut calls = lock(&self.calls);
        match calls.get(id) {
            None => Err(stale()),
            Some((parked, _)) if &parked.owner != owner => Err(McpError::InvalidParams(
                "requestState belongs to another request: retry the same method and item it was issued for"
                    .into(),
            )),
            // Resumed: no longer parked, so its place in the quota is given back.
            Some(_) => calls
                .remove(id)
                .map(|(parked, _permit)| parked)
                .ok_or_else(stale),
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
        for (_, (parked, _permit)) in lock(&self.calls).drain() {
            parked.call.cancel.cancel();
        }
    }
}
