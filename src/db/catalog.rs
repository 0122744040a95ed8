//! The units of work that load what the in-memory catalog is built from: everything, or one
//! upstream with its items (served again after it was disabled).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;

use crate::db::registry::{GatewayRow, ListRecords, PromptRow, ResourceRow, ServerRecord, ToolRow};
use crate::db::schema::{gateways, prompts, resources, tools};
use crate::db::{Access, DbConn, UnitOfWork, WorkResult};
use crate::on_backend;

/// The enabled rows of `$table` that pass `$filter`, in id order.
macro_rules! enabled_rows {
    ($conn:expr, $table:ident, $row:ty, $filter:expr) => {
        on_backend!($conn.reborrow(), c => {
            $table::table
                .filter($table::enabled.eq(true).and($filter))
                .select(<$row>::as_select())
                .order($table::id)
                .load(c)
                .await
        })
    };
}

/// Every enabled tool, resource, prompt and virtual server, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct CatalogRows {
    /// Enabled tools.
    pub tools: Vec<ToolRow>,
    /// Enabled resources and resource templates.
    pub resources: Vec<ResourceRow>,
    /// Enabled prompts.
    pub prompts: Vec<PromptRow>,
    /// Enabled virtual servers with their members.
    pub servers: Vec<ServerRecord>,
    /// Enabled upstream gateways.
    pub gateways: Vec<GatewayRow>,
}

/// Load the catalog's source rows (a consistent snapshot): everything, or one upstream and its
/// items (what the catalog needs when the upstream is served again).
#[derive(Debug, Clone, Default)]
pub struct LoadCatalog {
    /// Only this upstream (when enabled) and its enabled items.
    pub upstream: Option<String>,
}

impl LoadCatalog {
    /// Everything.
    pub fn all() -> Self {
        LoadCatalog::default()
    }

    /// One upstream and its items.
    pub fn upstream(gateway_id: &str) -> Self {
        LoadCatalog {
            upstream: Some(gateway_id.to_owned()),
        }
    }
}

impl super::sealed::Sealed for LoadCatalog {}

impl UnitOfWork for LoadCatalog {
    type Output = CatalogRows;
    fn name(&self) -> &'static str {
        if self.upstream.is_some() {
            "catalog.load_upstream"
        } else {
            "catalog.load"
        }
    }
    fn access(&self) -> Access {
        Access::Read
    }
    fn transactional(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<CatalogRows>> {
        Box::pin(async move {
            let Some(id) = &self.upstream else {
                // Every row: the filter is always true.
                let tools: Vec<ToolRow> =
                    enabled_rows!(conn, tools, ToolRow, tools::id.is_not_null())?;
                let resources: Vec<ResourceRow> =
                    enabled_rows!(conn, resources, ResourceRow, resources::id.is_not_null())?;
                let prompts: Vec<PromptRow> =
                    enabled_rows!(conn, prompts, PromptRow, prompts::id.is_not_null())?;
                let gateways: Vec<GatewayRow> =
                    enabled_rows!(conn, gateways, GatewayRow, gateways::id.is_not_null())?;
                let servers = ListRecords::<ServerRecord>::new(None, i64::MAX, false, None)
                    .run(conn)
                    .await?;
                return Ok(CatalogRows {
                    tools,
                    resources,
                    prompts,
                    servers,
                    gateways,
                });
            };
            let gateways: Vec<GatewayRow> =
                enabled_rows!(conn, gateways, GatewayRow, gateways::id.eq(id))?;
            if gateways.is_empty() {
                return Ok(CatalogRows::default());
            }
            let tools: Vec<ToolRow> =
                enabled_rows!(conn, tools, ToolRow, tools::gateway_id.eq(id))?;
            let resources: Vec<ResourceRow> =
                enabled_rows!(conn, resources, ResourceRow, resources::gateway_id.eq(id))?;
            let prompts: Vec<PromptRow> =
                enabled_rows!(conn, prompts, PromptRow, prompts::gateway_id.eq(id))?;
            Ok(CatalogRows {
                tools,
                resources,
                prompts,
                servers: Vec::new(),
                gateways,
            })
        })
    }
}

/// Load the enabled rows with these ids (one transaction): what another replica changed.
/// An id that is absent was deleted or disabled.
#[derive(Debug, Clone, Default)]
pub struct LoadCatalogItems {
    /// Tools.
    pub tools: Vec<String>,
    /// Resources and resource templates.
    pub resources: Vec<String>,
    /// Prompts.
    pub prompts: Vec<String>,
    /// Virtual servers.
    pub servers: Vec<String>,
    /// Upstreams.
    pub gateways: Vec<String>,
}

impl super::sealed::Sealed for LoadCatalogItems {}

impl UnitOfWork for LoadCatalogItems {
    type Output = CatalogRows;
    fn name(&self) -> &'static str {
        "catalog.load_items"
    }
    fn access(&self) -> Access {
        Access::Read
    }
    fn transactional(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<CatalogRows>> {
        Box::pin(async move {
            let tools: Vec<ToolRow> =
                enabled_rows!(conn, tools, ToolRow, tools::id.eq_any(self.tools.clone()))?;
            let resources: Vec<ResourceRow> = enabled_rows!(
                conn,
                resources,
                ResourceRow,
                resources::id.eq_any(self.resources.clone())
            )?;
            let prompts: Vec<PromptRow> = enabled_rows!(
                conn,
                prompts,
                PromptRow,
                prompts::id.eq_any(self.prompts.clone())
            )?;
            let gateways: Vec<GatewayRow> = enabled_rows!(
                conn,
                gateways,
                GatewayRow,
                gateways::id.eq_any(self.gateways.clone())
            )?;
            let servers =
                crate::db::registry::load_enabled_servers(conn.reborrow(), &self.servers).await?;
            Ok(CatalogRows {
                tools,
                resources,
                prompts,
                servers,
                gateways,
            })
        })
    }
}

impl CatalogRows {
    /// The rows as catalog writes, in an order that applies: upstreams first, then their items,
    /// then virtual servers.
    pub fn into_deltas(self) -> Vec<crate::catalog::CatalogDelta> {
        use crate::catalog::CatalogDelta;
        let mut deltas = Vec::with_capacity(
            self.gateways.len()
                + self.tools.len()
                + self.resources.len()
                + self.prompts.len()
                + self.servers.len(),
        );
        deltas.extend(self.gateways.into_iter().map(CatalogDelta::Gateway));
        deltas.extend(self.tools.into_iter().map(CatalogDelta::Tool));
        deltas.extend(self.resources.into_iter().map(CatalogDelta::Resource));
        deltas.extend(self.prompts.into_iter().map(CatalogDelta::Prompt));
        deltas.extend(self.servers.into_iter().map(CatalogDelta::Server));
        deltas
    }
}
