//! Units of work for federation: storing what an upstream offers, and its health.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;

use crate::db::registry::GatewayRow;
use crate::db::schema::gateways;
use crate::db::{Access, DbConn, UnitOfWork, WorkResult};
use crate::on_backend;

mod reconcile;

use self::reconcile::reconcile;

/// A tool as discovered, already named for the gateway.
#[derive(Debug, Clone)]
pub struct DiscoveredTool {
    /// Its name on the upstream.
    pub original_name: String,
    /// Its name in the gateway (prefixed or not).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// JSON text.
    pub input_schema: String,
    /// JSON text.
    pub output_schema: Option<String>,
    /// JSON text.
    pub annotations: String,
    /// JSON object text: definition members passed through as the upstream sent them.
    pub passthrough: String,
}

/// A resource or template as discovered.
#[derive(Debug, Clone)]
pub struct DiscoveredResource {
    /// Its URI, for a fixed resource.
    pub uri: Option<String>,
    /// Its template, for a template.
    pub uri_template: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    /// JSON object text: definition members passed through as the upstream sent them.
    pub passthrough: String,
}

/// A prompt as discovered, already named for the gateway.
#[derive(Debug, Clone)]
pub struct DiscoveredPrompt {
    /// Its name on the upstream.
    pub original_name: String,
    /// Its name in the gateway.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// JSON text of the declared arguments.
    pub arguments: String,
    /// JSON object text: definition members passed through as the upstream sent them.
    pub passthrough: String,
}

/// A discovered item the gateway does not serve, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Skipped {
    /// `tool`, `resource` or `prompt`.
    pub kind: String,
    /// Its name (or URI) as the upstream gave it, cut to 200 characters.
    pub name: String,
    /// Why it is not served.
    pub reason: String,
}

/// Counts of what a sync stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SyncCounts {
    /// Tools now federated from the upstream.
    pub tools: usize,
    /// Resources and templates.
    pub resources: usize,
    /// Prompts.
    pub prompts: usize,
}

/// Store a gateway (new or existing) and make its federated tools, resources and prompts match
/// what was discovered: update by original name, add the new, remove the vanished. One
/// transaction: a clash (409) leaves everything as it was.
#[derive(Debug, Clone)]
pub struct SyncGateway {
    /// The gateway row (inserted when `is_new`, else its discovery columns are updated).
    pub gateway: GatewayRow,
    /// Whether the gateway is being registered now.
    pub is_new: bool,
    /// Discovered tools.
    pub tools: Vec<DiscoveredTool>,
    /// Discovered resources and templates.
    pub resources: Vec<DiscoveredResource>,
    /// Discovered prompts.
    pub prompts: Vec<DiscoveredPrompt>,
}

fn new_id() -> String {
    crate::registry::new_id()
}

impl super::sealed::Sealed for SyncGateway {}

/// What a sync stored: the counts, and the changes for the in-memory catalog (the gateway
/// first, then what changed among its items).
#[derive(Debug, Clone)]
pub struct Synced {
    /// Items now federated from the upstream.
    pub counts: SyncCounts,
    /// What changed, for the catalog.
    pub changes: Vec<crate::catalog::CatalogDelta>,
}

impl UnitOfWork for SyncGateway {
    type Output = Synced;
    fn name(&self) -> &'static str {
        "gateways.sync"
    }
    fn access(&self) -> Access {
        Access::Write
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<Synced>> {
        Box::pin(async move {
            let gateway = &self.gateway;
            let now = gateway.updated_at;
            if self.is_new {
                let insert = diesel::insert_into(gateways::table).values(gateway);
                on_backend!(conn.reborrow(), c => insert.execute(c).await)?;
            } else {
                let update = diesel::update(gateways::table.find(&gateway.id)).set((
                    gateways::protocol_version.eq(&gateway.protocol_version),
                    gateways::capabilities.eq(&gateway.capabilities),
                    gateways::reachable.eq(true),
                    gateways::last_seen_at.eq(gateway.last_seen_at),
                    gateways::skipped.eq(&gateway.skipped),
                    // A discovery within every bound ends a degradation.
                    gateways::degraded_reason.eq(None::<String>),
                    gateways::updated_at.eq(now),
                ));
                if on_backend!(conn.reborrow(), c => update.execute(c).await)? == 0 {
                    return Err(diesel::result::Error::NotFound.into());
                }
            }
            let mut changes = vec![crate::catalog::CatalogDelta::Gateway(gateway.clone())];
            let counts = SyncCounts {
                tools: reconcile(conn.reborrow(), self, &self.tools, now, &mut changes).await?,
                resources: reconcile(conn.reborrow(), self, &self.resources, now, &mut changes)
                    .await?,
                prompts: reconcile(conn.reborrow(), self, &self.prompts, now, &mut changes).await?,
            };
            Ok(Synced { counts, changes })
        })
    }
}

/// Marks an upstream degraded: its last refresh broke a bound (`reason`), so what it offered
/// before is still served.
#[derive(Debug, Clone)]
pub struct MarkDegraded {
    /// The gateway.
    pub gateway_id: String,
    /// Which bound, as the operator is shown it.
    pub reason: String,
}

impl super::sealed::Sealed for MarkDegraded {}

impl UnitOfWork for MarkDegraded {
    type Output = ();
    fn name(&self) -> &'static str {
        "gateways.degraded"
    }
    fn access(&self) -> Access {
        Access::Write
    }
    fn idempotent(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let update = diesel::update(gateways::table.find(&self.gateway_id))
                .set(gateways::degraded_reason.eq(Some(&self.reason)));
            on_backend!(conn, c => update.execute(c).await)?;
            Ok(())
        })
    }
}

/// Record a health check's outcome.
#[derive(Debug, Clone)]
pub struct SetGatewayHealth {
    /// The gateway.
    pub gateway_id: String,
    /// Whether it answered.
    pub reachable: bool,
    /// When it answered (if it did).
    pub seen_at: Option<NaiveDateTime>,
    /// Why it failed, recorded with the time (if it did).
    pub error: Option<String>,
}

impl super::sealed::Sealed for SetGatewayHealth {}

impl UnitOfWork for SetGatewayHealth {
    type Output = ();
    fn name(&self) -> &'static str {
        "gateways.health"
    }
    fn access(&self) -> Access {
        Access::Write
    }
    fn idempotent(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let target = gateways::table.find(&self.gateway_id);
            if let Some(error) = &self.error {
                let error: String = error.chars().take(500).collect();
                let update = diesel::update(target).set((
                    gateways::last_error.eq(Some(error)),
                    gateways::last_error_at.eq(Some(crate::db::now())),
                ));
                on_backend!(conn.reborrow(), c => update.execute(c).await)?;
            }
            match self.seen_at {
                Some(seen) => {
                    let update = diesel::update(target).set((
                        gateways::reachable.eq(self.reachable),
                        gateways::last_seen_at.eq(seen),
                    ));
                    on_backend!(conn, c => update.execute(c).await)?;
                }
                None => {
                    let update = diesel::update(target).set(gateways::reachable.eq(self.reachable));
                    on_backend!(conn, c => update.execute(c).await)?;
                }
            }
            Ok(())
        })
    }
}
