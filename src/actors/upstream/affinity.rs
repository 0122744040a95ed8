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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, json};

use super::federation::Link;
use crate::protocol::LogLevel;
use crate::quota::{Permit, Quota};
use crate::upstream::{CallError, ClientEnd, Connection, Notifications, Target};

/// One client's own upstream sessions, by upstream.
pub struct Affinity {
    client: Arc<dyn ClientEnd>,
    principal: String,
    quota: Arc<Quota>,
    sessions: tokio::sync::Mutex<HashMap<String, Own>>,
    ended: AtomicBool,
}

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
            sessions: tokio::sync::Mutex::default(),
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
        let mut sessions = self.sessions.lock().await;
        if let Some(own) = sessions.get(link.gateway_id())
            && (Arc::ptr_eq(&own.target, target) || own.target == *target)
        {
            return Ok(Some(own.connection.clone()));
        }
        let permit = match self.quota.acquire(&self.principal) {
            Ok(permit) => permit,
            Err(exceeded) => {
                tracing::warn!(principal = %self.principal, %exceeded, "no upstream session of its own: the shared one serves");
                return Ok(None);
            }
        };
        let connection = Arc::new(link.open(http, target, Some(self.client.clone())).await?);
        if let Some(level) = self.client.log_level() {
            set_level(&connection, level).await;
        }
        let replaced = sessions.insert(
            link.gateway_id().to_owned(),
            Own {
                target: target.clone(),
                connection: connection.clone(),
                _permit: permit,
            },
        );
        drop(sessions);
        if let Some(replaced) = replaced {
            // The upstream moved: the session at its old address ends.
            replaced.connection.close().await;
        }
        Ok(Some(connection))
    }

    /// Forgets the session if it is still `stale` (the upstream forgot it, or it broke): the
    /// next call makes a new one.
    pub(super) async fn reset(&self, gateway_id: &str, stale: &Arc<Connection>) {
        let mut sessions = self.sessions.lock().await;
        if sessions
            .get(gateway_id)
            .is_some_and(|own| Arc::ptr_eq(&own.connection, stale))
        {
            sessions.remove(gateway_id);
        }
    }

    /// Tells every upstream session of the client its new log level.
    pub fn set_log_level(self: &Arc<Self>, level: LogLevel) {
        let affinity = self.clone();
        spawn(async move {
            let connections: Vec<Arc<Connection>> = affinity
                .sessions
                .lock()
                .await
                .values()
                .map(|own| own.connection.clone())
                .collect();
            for connection in connections {
                set_level(&connection, level).await;
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
            let ended: Vec<Own> = affinity
                .sessions
                .lock()
                .await
                .drain()
                .map(|(_, own)| own)
                .collect();
            for own in ended {
                own.connection.close().await;
            }
        });
    }
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
