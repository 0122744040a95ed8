//! Wiring: applies what other replicas changed, in the order they announce it (one task: a
//! catalog event is read back and applied before the next is looked at).

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::actors::auth::Auth;
use crate::actors::catalog::Catalogs;
use crate::cluster::{Cluster, Event, ItemKind, Received};
use crate::federation::Federation;

/// What other replicas' changes are applied to.
pub struct Appliers {
    /// The session-era MCP sessions this replica serves.
    pub sessions: std::sync::Arc<crate::mcp::session::SessionStore>,
    /// The catalog snapshot.
    pub catalog: Catalogs,
    /// Revocations and (through its scoping) cached grants.
    pub auth: Auth,
    /// What is held open for upstreams that are no longer served.
    pub federation: Federation,
}

/// Starts applying other replicas' events until `shutdown` (nothing to do for a replica
/// alone).
pub fn spawn(cluster: &Cluster, appliers: Appliers, shutdown: CancellationToken) {
    if cluster.transport() == "none" {
        return;
    }
    let mut events = cluster.subscribe();
    actix_web::rt::spawn(async move {
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = events.recv() => match next {
                    Ok(received) => received,
                    // Fell behind: some events are lost, so everything is read again.
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "replica events missed; reloading what is cached");
                        Received::Resync
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            appliers.apply(received).await;
        }
    });
}

impl Appliers {
    async fn apply(&self, received: Received) {
        match received {
            Received::Event(Event::Catalog { items }) => {
                let upstreams: Vec<String> = items
                    .iter()
                    .filter(|(kind, _)| matches!(kind, ItemKind::Gateway | ItemKind::Deleted))
                    .map(|(_, id)| id.clone())
                    .collect();
                self.catalog.apply_remote(items).await;
                // An upstream deleted or disabled elsewhere: its sessions and processes here end.
                for gateway_id in upstreams {
                    self.federation.release(&gateway_id).await;
                }
            }
            Received::Event(Event::CatalogReload) => self.catalog.reload().await,
            // Noted by the bus itself.
            Received::Event(Event::Heartbeat { .. }) => {}
            Received::Event(Event::Session { id, change }) => self.sessions.apply(&id, change),
            Received::Event(Event::UpstreamHealth {
                gateway_id,
                reachable,
            }) => self.federation.heard_health(&gateway_id, reachable),
            Received::Event(Event::Revoked { jti }) => self.auth.revoked_here(jti).await,
            Received::Event(Event::Grants { email }) => {
                self.auth.scoping().invalidate_here(email).await;
            }
            Received::Resync => {
                self.auth.refresh_revocations().await;
                self.auth.scoping().invalidate_here(None).await;
                self.catalog.reload().await;
            }
        }
    }
}
