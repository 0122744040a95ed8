//! The unit of work that loads everything the in-memory catalog is built from.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;

use crate::db::registry::{GatewayRow, ListRecords, PromptRow, ResourceRow, ServerRecord, ToolRow};
use crate::db::schema::{gateways, prompts, resources, tools};
use crate::db::{Access, DbConn, UnitOfWork, WorkResult};
use crate::on_backend;

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

/// Load the catalog's source rows (a consistent snapshot).
#[derive(Debug, Clone, Copy)]
pub struct LoadCatalog;

impl super::sealed::Sealed for LoadCatalog {}

impl UnitOfWork for LoadCatalog {
    type Output = CatalogRows;
    fn name(&self) -> &'static str {
        "catalog.load"
    }
    fn access(&self) -> Access {
        Access::Read
    }
    fn transactional(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<CatalogRows>> {
        Box::pin(async move {
            let tools: Vec<ToolRow> = on_backend!(conn.reborrow(), c => {
                tools::table
                    .filter(tools::enabled.eq(true))
                    .select(ToolRow::as_select())
                    .order(tools::id)
                    .load(c)
                    .await
            })?;
            let resources: Vec<ResourceRow> = on_backend!(conn.reborrow(), c => {
                resources::table
                    .filter(resources::enabled.eq(true))
                    .select(ResourceRow::as_select())
                    .order(resources::id)
                    .load(c)
                    .await
            })?;
            let prompts: Vec<PromptRow> = on_backend!(conn.reborrow(), c => {
                prompts::table
                    .filter(prompts::enabled.eq(true))
                    .select(PromptRow::as_select())
                    .order(prompts::id)
                    .load(c)
                    .await
            })?;
            let gateways: Vec<GatewayRow> = on_backend!(conn.reborrow(), c => {
                gateways::table
                    .filter(gateways::enabled.eq(true))
                    .select(GatewayRow::as_select())
                    .order(gateways::id)
                    .load(c)
                    .await
            })?;
            let servers = ListRecords::<ServerRecord>::new(None, i64::MAX, false, None)
                .run(conn)
                .await?;
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
