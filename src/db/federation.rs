//! Units of work for federation: storing what an upstream offers, and its health.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;

use crate::db::registry::{GatewayRow, PromptRow, ResourceRow, ToolRow};
use crate::db::schema::{gateways, prompts, resources, tools};
use crate::db::{Access, DbConn, UnitOfWork, WorkError, WorkResult};
use crate::on_backend;

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

impl UnitOfWork for SyncGateway {
    type Output = SyncCounts;
    fn name(&self) -> &'static str {
        "gateways.sync"
    }
    fn access(&self) -> Access {
        Access::Write
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<SyncCounts>> {
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
                    gateways::updated_at.eq(now),
                ));
                if on_backend!(conn.reborrow(), c => update.execute(c).await)? == 0 {
                    return Err(diesel::result::Error::NotFound.into());
                }
            }
            sync_tools(conn.reborrow(), self, now).await?;
            sync_resources(conn.reborrow(), self, now).await?;
            sync_prompts(conn.reborrow(), self, now).await?;
            Ok(SyncCounts {
                tools: self.tools.len(),
                resources: self.resources.len(),
                prompts: self.prompts.len(),
            })
        })
    }
}

async fn sync_tools(
    mut conn: DbConn<'_>,
    sync: &SyncGateway,
    now: NaiveDateTime,
) -> WorkResult<()> {
    let gateway_id = &sync.gateway.id;
    let names: Vec<String> = sync.tools.iter().map(|t| t.name.clone()).collect();
    let taken: Vec<String> = on_backend!(conn.reborrow(), c => {
        tools::table
            .filter(tools::name.eq_any(names.clone()))
            .filter(tools::gateway_id.is_null().or(tools::gateway_id.ne(gateway_id)))
            .select(tools::name)
            .load(c)
            .await
    })?;
    if let Some(name) = taken.into_iter().next() {
        return Err(WorkError::Conflict(format!(
            "the upstream's tool name {name:?} is not available (names are unique across the \
             gateway, including items you cannot see); register with prefix_tool_names true"
        )));
    }
    let existing: Vec<ToolRow> = on_backend!(conn.reborrow(), c => {
        tools::table
            .filter(tools::gateway_id.eq(gateway_id))
            .select(ToolRow::as_select())
            .load(c)
            .await
    })?;
    let mut by_original: HashMap<String, ToolRow> = existing
        .into_iter()
        .map(|row| (row.original_name.clone().unwrap_or_default(), row))
        .collect();
    for found in &sync.tools {
        match by_original.remove(&found.original_name) {
            Some(row) => {
                let update = diesel::update(tools::table.find(&row.id)).set((
                    tools::name.eq(&found.name),
                    tools::description.eq(&found.description),
                    tools::input_schema.eq(&found.input_schema),
                    tools::output_schema.eq(&found.output_schema),
                    tools::annotations.eq(&found.annotations),
                    tools::updated_at.eq(now),
                ));
                on_backend!(conn.reborrow(), c => update.execute(c).await)?;
            }
            None => {
                let row = ToolRow {
                    id: new_id(),
                    name: found.name.clone(),
                    description: found.description.clone(),
                    integration_type: crate::db::stored::IntegrationType::Mcp,
                    url: None,
                    request_type: None,
                    headers: "{}".into(),
                    input_schema: found.input_schema.clone(),
                    output_schema: found.output_schema.clone(),
                    annotations: found.annotations.clone(),
                    tags: "[]".into(),
                    gateway_id: Some(gateway_id.clone()),
                    original_name: Some(found.original_name.clone()),
                    enabled: true,
                    owner_email: sync.gateway.owner_email.clone(),
                    team_id: sync.gateway.team_id.clone(),
                    visibility: sync.gateway.visibility,
                    created_at: now,
                    updated_at: now,
                };
                let insert = diesel::insert_into(tools::table).values(&row);
                on_backend!(conn.reborrow(), c => insert.execute(c).await)?;
            }
        }
    }
    let vanished: Vec<String> = by_original.into_values().map(|row| row.id).collect();
    if !vanished.is_empty() {
        let delete = diesel::delete(tools::table.filter(tools::id.eq_any(vanished)));
        on_backend!(conn, c => delete.execute(c).await)?;
    }
    Ok(())
}

fn resource_key(uri: &Option<String>, template: &Option<String>) -> String {
    match (uri, template) {
        (Some(uri), _) => format!("uri:{uri}"),
        (None, Some(template)) => format!("template:{template}"),
        (None, None) => String::new(),
    }
}

async fn sync_resources(
    mut conn: DbConn<'_>,
    sync: &SyncGateway,
    now: NaiveDateTime,
) -> WorkResult<()> {
    let gateway_id = &sync.gateway.id;
    let uris: Vec<String> = sync
        .resources
        .iter()
        .filter_map(|r| r.uri.clone())
        .collect();
    let taken: Vec<Option<String>> = on_backend!(conn.reborrow(), c => {
        resources::table
            .filter(resources::uri.eq_any(uris.clone()))
            .filter(resources::gateway_id.is_null().or(resources::gateway_id.ne(gateway_id)))
            .select(resources::uri)
            .load(c)
            .await
    })?;
    if let Some(Some(uri)) = taken.into_iter().next() {
        return Err(WorkError::Conflict(format!(
            "the upstream's resource URI {uri:?} is not available (URIs are unique across the \
             gateway, including items you cannot see)"
        )));
    }
    let existing: Vec<ResourceRow> = on_backend!(conn.reborrow(), c => {
        resources::table
            .filter(resources::gateway_id.eq(gateway_id))
            .select(ResourceRow::as_select())
            .load(c)
            .await
    })?;
    let mut by_key: HashMap<String, ResourceRow> = existing
        .into_iter()
        .map(|row| (resource_key(&row.uri, &row.uri_template), row))
        .collect();
    let mut seen = HashSet::new();
    for found in &sync.resources {
        let key = resource_key(&found.uri, &found.uri_template);
        if !seen.insert(key.clone()) {
            continue;
        }
        match by_key.remove(&key) {
            Some(row) => {
                let update = diesel::update(resources::table.find(&row.id)).set((
                    resources::name.eq(&found.name),
                    resources::description.eq(&found.description),
                    resources::mime_type.eq(&found.mime_type),
                    resources::updated_at.eq(now),
                ));
                on_backend!(conn.reborrow(), c => update.execute(c).await)?;
            }
            None => {
                let row = ResourceRow {
                    id: new_id(),
                    uri: found.uri.clone(),
                    uri_template: found.uri_template.clone(),
                    name: found.name.clone(),
                    description: found.description.clone(),
                    mime_type: found.mime_type.clone(),
                    content: None,
                    tags: "[]".into(),
                    gateway_id: Some(gateway_id.clone()),
                    enabled: true,
                    owner_email: sync.gateway.owner_email.clone(),
                    team_id: sync.gateway.team_id.clone(),
                    visibility: sync.gateway.visibility,
                    created_at: now,
                    updated_at: now,
                };
                let insert = diesel::insert_into(resources::table).values(&row);
                on_backend!(conn.reborrow(), c => insert.execute(c).await)?;
            }
        }
    }
    let vanished: Vec<String> = by_key.into_values().map(|row| row.id).collect();
    if !vanished.is_empty() {
        let delete = diesel::delete(resources::table.filter(resources::id.eq_any(vanished)));
        on_backend!(conn, c => delete.execute(c).await)?;
    }
    Ok(())
}

async fn sync_prompts(
    mut conn: DbConn<'_>,
    sync: &SyncGateway,
    now: NaiveDateTime,
) -> WorkResult<()> {
    let gateway_id = &sync.gateway.id;
    let names: Vec<String> = sync.prompts.iter().map(|p| p.name.clone()).collect();
    let taken: Vec<String> = on_backend!(conn.reborrow(), c => {
        prompts::table
            .filter(prompts::name.eq_any(names.clone()))
            .filter(prompts::gateway_id.is_null().or(prompts::gateway_id.ne(gateway_id)))
            .select(prompts::name)
            .load(c)
            .await
    })?;
    if let Some(name) = taken.into_iter().next() {
        return Err(WorkError::Conflict(format!(
            "the upstream's prompt name {name:?} is not available (names are unique across the \
             gateway, including items you cannot see); register with prefix_tool_names true"
        )));
    }
    let existing: Vec<PromptRow> = on_backend!(conn.reborrow(), c => {
        prompts::table
            .filter(prompts::gateway_id.eq(gateway_id))
            .select(PromptRow::as_select())
            .load(c)
            .await
    })?;
    let mut by_original: HashMap<String, PromptRow> = existing
        .into_iter()
        .map(|row| (row.original_name.clone().unwrap_or_default(), row))
        .collect();
    for found in &sync.prompts {
        match by_original.remove(&found.original_name) {
            Some(row) => {
                let update = diesel::update(prompts::table.find(&row.id)).set((
                    prompts::name.eq(&found.name),
                    prompts::description.eq(&found.description),
                    prompts::arguments.eq(&found.arguments),
                    prompts::updated_at.eq(now),
                ));
                on_backend!(conn.reborrow(), c => update.execute(c).await)?;
            }
            None => {
                let row = PromptRow {
                    id: new_id(),
                    name: found.name.clone(),
                    description: found.description.clone(),
                    template: String::new(),
                    arguments: found.arguments.clone(),
                    tags: "[]".into(),
                    gateway_id: Some(gateway_id.clone()),
                    original_name: Some(found.original_name.clone()),
                    enabled: true,
                    owner_email: sync.gateway.owner_email.clone(),
                    team_id: sync.gateway.team_id.clone(),
                    visibility: sync.gateway.visibility,
                    created_at: now,
                    updated_at: now,
                };
                let insert = diesel::insert_into(prompts::table).values(&row);
                on_backend!(conn.reborrow(), c => insert.execute(c).await)?;
            }
        }
    }
    let vanished: Vec<String> = by_original.into_values().map(|row| row.id).collect();
    if !vanished.is_empty() {
        let delete = diesel::delete(prompts::table.filter(prompts::id.eq_any(vanished)));
        on_backend!(conn, c => delete.execute(c).await)?;
    }
    Ok(())
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
    fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let target = gateways::table.find(&self.gateway_id);
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

/// One tool call, as stored in `tool_metrics`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = crate::db::schema::tool_metrics)]
pub struct ToolMetricRow {
    /// Row id.
    pub id: String,
    /// The tool's name in the gateway.
    pub tool_name: String,
    /// The upstream it ran on, if federated.
    pub gateway_id: Option<String>,
    /// When it started.
    pub started_at: NaiveDateTime,
    /// How long it took.
    pub duration_ms: f64,
    /// Whether it succeeded (no protocol error, no `isError`).
    pub success: bool,
    /// A short error description.
    pub error: Option<String>,
}

/// Rows per multi-row INSERT of tool-call records on PostgreSQL.
const METRICS_ROWS_PER_INSERT: usize = 1000;

/// Store a batch of tool-call records in one transaction.
#[derive(Debug, Clone)]
pub struct InsertToolMetrics {
    /// The records.
    pub rows: Vec<ToolMetricRow>,
}

impl super::sealed::Sealed for InsertToolMetrics {}

impl UnitOfWork for InsertToolMetrics {
    type Output = usize;
    fn name(&self) -> &'static str {
        "metrics.insert"
    }
    fn access(&self) -> Access {
        Access::Write
    }
    fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<usize>> {
        Box::pin(async move {
            match conn.inner {
                // Multi-row INSERTs: one statement per chunk (7 parameters a row, well under
                // PostgreSQL's 65535), not one round trip per call.
                crate::db::Conn::Pg(c) => {
                    for chunk in self.rows.chunks(METRICS_ROWS_PER_INSERT) {
                        diesel::insert_into(crate::db::schema::tool_metrics::table)
                            .values(chunk)
                            .execute(c)
                            .await?;
                    }
                }
                // One row at a time inside the one transaction: multi-row inserts do not compile
                // for SQLite through diesel-async (and cost no round trip there).
                crate::db::Conn::Sqlite(c) => {
                    for row in &self.rows {
                        diesel::insert_into(crate::db::schema::tool_metrics::table)
                            .values(row)
                            .execute(c)
                            .await?;
                    }
                }
            }
            Ok(self.rows.len())
        })
    }
}
