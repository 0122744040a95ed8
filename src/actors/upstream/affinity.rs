//! Upstream sessions of a client's own. A session-era client that can be asked something
//! (sampling, elicitation, roots) or keeps state on the upstream (a log level) gets, for each
//! upstream it uses, an upstream session nobody else's calls go over: whatever that upstream
//! sends on any of its streams is this client's, so it is relayed to this client (on the call
//! it concerns when that is clear, else on the client's own stream) and never to another.
//! Made on the first call that needs it, counted against the principal's quota of upstream
//! sessions (past it the shared session serves, where an unattributable question is declined),
//! made again when the upstream forgets it, ended with the client's session (the upstream sees
//! its DELETE).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, json};

use super::link::Link;
use crate::protocol::LogLevel;
use crate::quota::{Permit, Quota};
use crate::upstream::{CallError, ClientEnd, Connection, Notifications, Target};

/// One client's own upstream sessions, by upstream. Each upstream has a slot of its own, so
/// making a session with one upstream (up to the connect timeout) holds up only the client's
/// calls to that upstream, which wait for it rather than make a second.
pub struct Affinity {
    client: Arc<dyn ClientEnd>,
    principal: String,
    quota: Arc<Quota>,
    sessions: Mutex<HashMap<String, Slot>>,
    ended: AtomicBool,
}

/// Where the client's session with one upstream is (none until made, or after a reset).
type Slot = Arc<tokio::sync::Mutex<Option<Own>>>;

/// One upstream session of the client's own, and its place in the principal's quota.
struct Own {
    target: Arc<Target>,
    connection: Arc<Connection>,
    _permit: Permit,
}

impl Affinity {
    /// No upstream session yet; `client` is where what they send outside a call goes.
    pub fn new(client: Arc<dyn ClientEnd>, principal: &str, quota: Arc<Quota>) -> Arc<Self> {
        Arc::new(Affinity {
            client,
            principal: principal.to_owned(),
            quota,
            sessions: Mutex::default(),
            ended: AtomicBool::new(false),
        })
    }

    /// The client's own session with `link`'s upstream, made on first use; `None` when the
    /// shared session has to serve (the principal's quota is used up, or the client ended).
    pub(super) async fn connection(
        &self,
        link: &Link,
        http: &crate::egress::HttpClient,
        target: &Arc<Target>,
    ) -> Result<Option<Arc<Connection>>, CallError> {
        if self.ended.load(Ordering::Acquire) {
            return Ok(None);
        }
        let slot = self.slot(link.gateway_id());
        let mut own = slot.lock().await;
        if let Some(own) = own.as_ref()
            && (Arc::ptr_eq(&own.target, target) || own.target == *target)
            && own.connection.ended().is_none()
        {
            return Ok(Some(own.connection.clone()));
        }
        let permit = match self.quota.acquire_shared(&self.principal).await {
            Ok(permit) => permit,
            Err(exceeded) => {
                tracing::warn!(principal = %self.principal, %exceeded, "no upstream session of its own: the shared one serves");
                return Ok(None);
            }
        };
        let connection = match link.open(http, target, Some(self.client.clone())).await {
            Ok(connection) => Arc::new(connection),
            // A process of its own cannot be started (the places are taken): the shared one
            // serves, as past the quota.
            Err(error) if target.command.is_some() => {
                tracing::warn!(principal = %self.principal, %error, "no stdio process of its own: the shared one serves");
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        if let Some(level) = self.client.log_level() {
            set_level(&connection, level).await;
        }
        let replaced = own.replace(Own {
            target: target.clone(),
            connection: connection.clone(),
            _permit: permit,
        });
        drop(own);
        if let Some(replaced) = replaced {
            // The upstream moved: the session at its old address ends.
            replaced.connection.close().await;
        }
        if self.ended.load(Ordering::Acquire) {
            // The client ended while this session was being made: it ends too.
            if let Some(own) = slot.lock().await.take() {
                own.connection.close().await;
            }
            return Ok(None);
        }
        Ok(Some(connection))
    }

    /// The slot of `gateway_id`'s session, made empty on first use.
    fn slot(&self, gateway_id: &str) -> Slot {
        lock(&self.sessions)
            .entry(gateway_id.to_owned())
            .or_default()
            .clone()
    }

    /// Every slot.
    fn slots(&self) -> Vec<Slot> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// Forgets the session if it is still `stale` (the upstream forgot it, or it broke): the
    /// next call makes a new one.
    pub(super) async fn reset(&self, gateway_id: &str, stale: &Arc<Connection>) {
        let slot = self.slot(gateway_id);
        let mut own = slot.lock().await;
        if own
            .as_ref()
            .is_some_and(|own| Arc::ptr_eq(&own.connection, stale))
        {
            *own = None;
        }
    }

    /// Tells every upstream session of the client its new log level.
    pub fn set_log_level(self: &Arc<Self>, level: LogLevel) {
        let affinity = self.clone();
        spawn(async move {
            for slot in affinity.slots() {
                let connection = slot.lock().await.as_ref().map(|own| own.connection.clone());
                if let Some(connection) = connection {
                    set_level(&connection, level).await;
                }
            }
        });
    }

    /// Ends every upstream session of the client (each upstream sees its DELETE); later calls
    /// go over the shared sessions.
    pub fn end(self: &Arc<Self>) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        let affinity = self.clone();
        spawn(async move {
            for slot in affinity.slots() {
                let own = slot.lock().await.take();
                if let Some(own) = own {
                    own.connection.close().await;
                }
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `logging/setLevel` on an upstream that offers logging (best effort).
async fn set_level(connection: &Connection, level: LogLevel) {
    if connection.capabilities.get("logging").is_none() {
        return;
    }
    let mut params = Map::new();
    params.insert("level".into(), json!(level.as_str()));
    if let Err(error) = connection
        .request("logging/setLevel", params, Notifications::none())
        .await
    {
        tracing::debug!(%error, "the upstream refused the client's log level");
    }
}

/// Runs `work` on the current runtime, if there is one (a session can end outside any, at
/// shutdown: then nothing is sent).
fn spawn(work: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(work);
    }
}
