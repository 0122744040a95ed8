//! Making a gateway's stored tools, resources and prompts match what its upstream offers: one
//! algorithm ([`reconcile`]) over the three kinds, each a [`Federated`] that says how it is
//! keyed, compared and written.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;

use super::{DiscoveredPrompt, DiscoveredResource, DiscoveredTool, SyncGateway, new_id};
use crate::catalog::CatalogDelta;
use crate::db::registry::{PromptRow, ResourceRow, ToolRow};
use crate::db::schema::{prompts, resources, tools};
use crate::db::{DbConn, WorkError, WorkResult};
use crate::on_backend;

/// Ids or names per `IN (…)` list: under SQLite's limit of bound parameters.
const KEYS_PER_STATEMENT: usize = 500;

/// Rows per multi-row `INSERT`: with the widest table (tools, 21 columns) 8 400 bound
/// parameters, under SQLite's limit (32 766) and PostgreSQL's (65 535).
const ROWS_PER_INSERT: usize = 400;

/// One kind of federated item (tool, resource, prompt), as [`reconcile`] needs it: how it is
/// keyed and compared, and the few statements that differ by table.
pub(super) trait Federated: Sync {
    /// Its stored row.
    type Row: Send + Sync;
    /// The key that identifies it across refreshes (the upstream's name, or the URI).
    fn key(&self) -> String;
    /// The same key, of a stored row.
    fn row_key(row: &Self::Row) -> String;
    /// A stored row's id.
    fn row_id(row: &Self::Row) -> &str;
    /// Whether the stored row already says what was discovered.
    fn unchanged(&self, row: &Self::Row) -> bool;
    /// A new row for it.
    fn new_row(&self, sync: &SyncGateway, now: NaiveDateTime) -> Self::Row;
    /// The stored row as [`Federated::update`] leaves it.
    fn updated(&self, row: Self::Row, now: NaiveDateTime) -> Self::Row;
    /// The catalog's change for a stored row.
    fn delta(row: Self::Row) -> CatalogDelta;
    /// Its name (or URI) in the gateway, which must not be another gateway's or local.
    fn public_name(&self) -> Option<&str>;
    /// The first of `names` that something outside this gateway holds, as a conflict message.
    fn taken<'a>(
        conn: DbConn<'a>,
        names: &'a [String],
        gateway_id: &'a str,
    ) -> BoxFuture<'a, WorkResult<Option<String>>>;
    /// The gateway's stored rows.
    fn load<'a>(conn: DbConn<'a>, gateway_id: &'a str)
    -> BoxFuture<'a, WorkResult<Vec<Self::Row>>>;
    /// Updates the row `id` with what was discovered.
    fn update<'a>(
        &'a self,
        conn: DbConn<'a>,
        id: &'a str,
        now: NaiveDateTime,
    ) -> BoxFuture<'a, WorkResult<()>>;
    /// Inserts new rows (at most [`ROWS_PER_INSERT`]) in one statement.
    fn insert<'a>(conn: DbConn<'a>, rows: &'a [Self::Row]) -> BoxFuture<'a, WorkResult<()>>;
    /// Deletes the rows with these ids.
    fn delete<'a>(conn: DbConn<'a>, ids: &'a [String]) -> BoxFuture<'a, WorkResult<()>>;
}

/// Makes a gateway's stored items of one kind match what was discovered: refuses names held
/// outside the gateway, updates the items whose description changed (and only those), adds
/// the new and deletes the vanished. An item listed twice counts once (the first). Returns how
/// many items the gateway now has; what changed is added to `changes` for the catalog.
pub(super) async fn reconcile<F: Federated>(
    mut conn: DbConn<'_>,
    sync: &SyncGateway,
    found: &[F],
    now: NaiveDateTime,
    changes: &mut Vec<CatalogDelta>,
) -> WorkResult<usize> {
    let gateway_id = sync.gateway.id.as_str();
    let names: Vec<String> = found
        .iter()
        .filter_map(|item| item.public_name().map(str::to_owned))
        .collect();
    for chunk in names.chunks(KEYS_PER_STATEMENT) {
        if let Some(message) = F::taken(conn.reborrow(), chunk, gateway_id).await? {
            return Err(WorkError::Conflict(message));
        }
    }
    let mut stored: HashMap<String, F::Row> = F::load(conn.reborrow(), gateway_id)
        .await?
        .into_iter()
        .map(|row| (F::row_key(&row), row))
        .collect();
    let mut seen = HashSet::new();
    let mut added = Vec::new();
    for item in found {
        let key = item.key();
        if !seen.insert(key.clone()) {
            continue;
        }
        match stored.remove(&key) {
            Some(row) if item.unchanged(&row) => {}
            Some(row) => {
                item.update(conn.reborrow(), F::row_id(&row), now).await?;
                changes.push(F::delta(item.updated(row, now)));
            }
            None => added.push(item.new_row(sync, now)),
        }
    }
    for chunk in added.chunks(ROWS_PER_INSERT) {
        F::insert(conn.reborrow(), chunk).await?;
    }
    changes.extend(added.into_iter().map(F::delta));
    let vanished: Vec<String> = stored
        .values()
        .map(|row| F::row_id(row).to_owned())
        .collect();
    for chunk in vanished.chunks(KEYS_PER_STATEMENT) {
        F::delete(conn.reborrow(), chunk).await?;
    }
    changes.extend(vanished.into_iter().map(CatalogDelta::Deleted));
    Ok(seen.len())
}

/// The conflict message for a name (or URI) held outside the gateway.
fn held_elsewhere(noun: &str, name: &str, hint: &str) -> String {
    format!(
        "the upstream's {noun} {name:?} is not available (unique across the gateway, including \
         items you cannot see){hint}"
    )
}

const PREFIX_HINT: &str = "; register with prefix_tool_names true";

impl Federated for DiscoveredTool {
    type Row = ToolRow;
    fn key(&self) -> String {
        self.original_name.clone()
    }
    fn row_key(row: &ToolRow) -> String {
        row.original_name.clone().unwrap_or_default()
    }
    fn row_id(row: &ToolRow) -> &str {
        &row.id
    }
    fn unchanged(&self, row: &ToolRow) -> bool {
        row.name == self.name
            && row.description == self.description
            && row.input_schema == self.input_schema
            && row.output_schema == self.output_schema
            && row.annotations == self.annotations
            && row.passthrough == self.passthrough
    }
    fn updated(&self, mut row: ToolRow, now: NaiveDateTime) -> ToolRow {
        row.name.clone_from(&self.name);
        row.description.clone_from(&self.description);
        row.input_schema.clone_from(&self.input_schema);
        row.output_schema.clone_from(&self.output_schema);
        row.annotations.clone_from(&self.annotations);
        row.passthrough.clone_from(&self.passthrough);
        row.updated_at = now;
        row
    }
    fn delta(row: ToolRow) -> CatalogDelta {
        CatalogDelta::Tool(row)
    }
    fn new_row(&self, sync: &SyncGateway, now: NaiveDateTime) -> ToolRow {
        ToolRow {
            id: new_id(),
            name: self.name.clone(),
            description: self.description.clone(),
            integration_type: crate::db::stored::IntegrationType::Mcp,
            url: None,
            request_type: None,
            headers: "{}".into(),
            input_schema: self.input_schema.clone(),
            output_schema: self.output_schema.clone(),
            annotations: self.annotations.clone(),
            tags: "[]".into(),
            gateway_id: Some(sync.gateway.id.clone()),
            original_name: Some(self.original_name.clone()),
            enabled: true,
            owner_email: sync.gateway.owner_email.clone(),
            team_id: sync.gateway.team_id.clone(),
            visibility: sync.gateway.visibility,
            created_at: now,
            updated_at: now,
            passthrough: self.passthrough.clone(),
        }
    }
    fn public_name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn taken<'a>(
        conn: DbConn<'a>,
        names: &'a [String],
        gateway_id: &'a str,
    ) -> BoxFuture<'a, WorkResult<Option<String>>> {
        Box::pin(async move {
            let query = tools::table
                .filter(tools::name.eq_any(names))
                .filter(
                    tools::gateway_id
                        .is_null()
                        .or(tools::gateway_id.ne(gateway_id)),
                )
                .select(tools::name);
            let taken: Option<String> = on_backend!(conn, c => query.first(c).await.optional())?;
            Ok(taken.map(|name| held_elsewhere("tool name", &name, PREFIX_HINT)))
        })
    }
    fn load<'a>(conn: DbConn<'a>, gateway_id: &'a str) -> BoxFuture<'a, WorkResult<Vec<ToolRow>>> {
        Box::pin(async move {
            // The selection is typed per backend, so it is built in each arm.
            Ok(on_backend!(conn, c => {
                tools::table
                    .filter(tools::gateway_id.eq(gateway_id))
                    .select(ToolRow::as_select())
                    .load(c)
                    .await
            })?)
        })
    }
    fn update<'a>(
        &'a self,
        conn: DbConn<'a>,
        id: &'a str,
        now: NaiveDateTime,
    ) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let update = diesel::update(tools::table.find(id)).set((
                tools::name.eq(&self.name),
                tools::description.eq(&self.description),
                tools::input_schema.eq(&self.input_schema),
                tools::output_schema.eq(&self.output_schema),
                tools::annotations.eq(&self.annotations),
                tools::passthrough.eq(&self.passthrough),
                tools::updated_at.eq(now),
            ));
            on_backend!(conn, c => update.execute(c).await)?;
            Ok(())
        })
    }
    fn insert<'a>(conn: DbConn<'a>, rows: &'a [ToolRow]) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            crate::insert_rows!(conn, tools::table, rows);
            Ok(())
        })
    }
    fn delete<'a>(conn: DbConn<'a>, ids: &'a [String]) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let delete = diesel::delete(tools::table.filter(tools::id.eq_any(ids)));
            on_backend!(conn, c => delete.execute(c).await)?;
            Ok(())
        })
    }
}

impl Federated for DiscoveredResource {
    type Row = ResourceRow;
    fn key(&self) -> String {
        resource_key(&self.uri, &self.uri_template)
    }
    fn row_key(row: &ResourceRow) -> String {
        resource_key(&row.uri, &row.uri_template)
    }
    fn row_id(row: &ResourceRow) -> &str {
        &row.id
    }
    fn unchanged(&self, row: &ResourceRow) -> bool {
        row.name == self.name
            && row.description == self.description
            && row.mime_type == self.mime_type
            && row.passthrough == self.passthrough
    }
    fn updated(&self, mut row: ResourceRow, now: NaiveDateTime) -> ResourceRow {
        row.name.clone_from(&self.name);
        row.description.clone_from(&self.description);
        row.mime_type.clone_from(&self.mime_type);
        row.passthrough.clone_from(&self.passthrough);
        row.updated_at = now;
        row
    }
    fn delta(row: ResourceRow) -> CatalogDelta {
        CatalogDelta::Resource(row)
    }
    fn new_row(&self, sync: &SyncGateway, now: NaiveDateTime) -> ResourceRow {
        ResourceRow {
            id: new_id(),
            uri: self.uri.clone(),
            uri_template: self.uri_template.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            mime_type: self.mime_type.clone(),
            content: None,
            tags: "[]".into(),
            gateway_id: Some(sync.gateway.id.clone()),
            enabled: true,
            owner_email: sync.gateway.owner_email.clone(),
            team_id: sync.gateway.team_id.clone(),
            visibility: sync.gateway.visibility,
            created_at: now,
            updated_at: now,
            passthrough: self.passthrough.clone(),
        }
    }
    fn public_name(&self) -> Option<&str> {
        // Fixed resources' URIs are unique; templates are not checked.
        self.uri.as_deref()
    }
    fn taken<'a>(
        conn: DbConn<'a>,
        uris: &'a [String],
        gateway_id: &'a str,
    ) -> BoxFuture<'a, WorkResult<Option<String>>> {
        Box::pin(async move {
            let query = resources::table
                .filter(resources::uri.eq_any(uris))
                .filter(
                    resources::gateway_id
                        .is_null()
                        .or(resources::gateway_id.ne(gateway_id)),
                )
                .select(resources::uri);
            let taken: Option<Option<String>> =
                on_backend!(conn, c => query.first(c).await.optional())?;
            Ok(taken
                .flatten()
                .map(|uri| held_elsewhere("resource URI", &uri, "")))
        })
    }
    fn load<'a>(
        conn: DbConn<'a>,
        gateway_id: &'a str,
    ) -> BoxFuture<'a, WorkResult<Vec<ResourceRow>>> {
        Box::pin(async move {
            // The selection is typed per backend, so it is built in each arm.
            Ok(on_backend!(conn, c => {
                resources::table
                    .filter(resources::gateway_id.eq(gateway_id))
                    .select(ResourceRow::as_select())
                    .load(c)
                    .await
            })?)
        })
    }
    fn update<'a>(
        &'a self,
        conn: DbConn<'a>,
        id: &'a str,
        now: NaiveDateTime,
    ) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let update = diesel::update(resources::table.find(id)).set((
                resources::name.eq(&self.name),
                resources::description.eq(&self.description),
                resources::mime_type.eq(&self.mime_type),
                resources::passthrough.eq(&self.passthrough),
                resources::updated_at.eq(now),
            ));
            on_backend!(conn, c => update.execute(c).await)?;
            Ok(())
        })
    }
    fn insert<'a>(conn: DbConn<'a>, rows: &'a [ResourceRow]) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            crate::insert_rows!(conn, resources::table, rows);
            Ok(())
        })
    }
    fn delete<'a>(conn: DbConn<'a>, ids: &'a [String]) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let delete = diesel::delete(resources::table.filter(resources::id.eq_any(ids)));
            on_backend!(conn, c => delete.execute(c).await)?;
            Ok(())
        })
    }
}

impl Federated for DiscoveredPrompt {
    type Row = PromptRow;
    fn key(&self) -> String {
        self.original_name.clone()
    }
    fn row_key(row: &PromptRow) -> String {
        row.original_name.clone().unwrap_or_default()
    }
    fn row_id(row: &PromptRow) -> &str {
        &row.id
    }
    fn unchanged(&self, row: &PromptRow) -> bool {
        row.name == self.name
            && row.description == self.description
            && row.arguments == self.arguments
            && row.passthrough == self.passthrough
    }
    fn updated(&self, mut row: PromptRow, now: NaiveDateTime) -> PromptRow {
        row.name.clone_from(&self.name);
        row.description.clone_from(&self.description);
        row.arguments.clone_from(&self.arguments);
        row.passthrough.clone_from(&self.passthrough);
        row.updated_at = now;
        row
    }
    fn delta(row: PromptRow) -> CatalogDelta {
        CatalogDelta::Prompt(row)
    }
    fn new_row(&self, sync: &SyncGateway, now: NaiveDateTime) -> PromptRow {
        PromptRow {
            id: new_id(),
            name: self.name.clone(),
            description: self.description.clone(),
            template: String::new(),
            arguments: self.arguments.clone(),
            tags: "[]".into(),
            gateway_id: Some(sync.gateway.id.clone()),
            original_name: Some(self.original_name.clone()),
            enabled: true,
            owner_email: sync.gateway.owner_email.clone(),
            team_id: sync.gateway.team_id.clone(),
            visibility: sync.gateway.visibility,
            created_at: now,
            updated_at: now,
            passthrough: self.passthrough.clone(),
        }
    }
    fn public_name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn taken<'a>(
        conn: DbConn<'a>,
        names: &'a [String],
        gateway_id: &'a str,
    ) -> BoxFuture<'a, WorkResult<Option<String>>> {
        Box::pin(async move {
            let query = prompts::table
                .filter(prompts::name.eq_any(names))
                .filter(
                    prompts::gateway_id
                        .is_null()
                        .or(prompts::gateway_id.ne(gateway_id)),
                )
                .select(prompts::name);
            let taken: Option<String> = on_backend!(conn, c => query.first(c).await.optional())?;
            Ok(taken.map(|name| held_elsewhere("prompt name", &name, PREFIX_HINT)))
        })
    }
    fn load<'a>(
        conn: DbConn<'a>,
        gateway_id: &'a str,
    ) -> BoxFuture<'a, WorkResult<Vec<PromptRow>>> {
        Box::pin(async move {
            // The selection is typed per backend, so it is built in each arm.
            Ok(on_backend!(conn, c => {
                prompts::table
                    .filter(prompts::gateway_id.eq(gateway_id))
                    .select(PromptRow::as_select())
                    .load(c)
                    .await
            })?)
        })
    }
    fn update<'a>(
        &'a self,
        conn: DbConn<'a>,
        id: &'a str,
        now: NaiveDateTime,
    ) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let update = diesel::update(prompts::table.find(id)).set((
                prompts::name.eq(&self.name),
                prompts::description.eq(&self.description),
                prompts::arguments.eq(&self.arguments),
                prompts::passthrough.eq(&self.passthrough),
                prompts::updated_at.eq(now),
            ));
            on_backend!(conn, c => update.execute(c).await)?;
            Ok(())
        })
    }
    fn insert<'a>(conn: DbConn<'a>, rows: &'a [PromptRow]) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            crate::insert_rows!(conn, prompts::table, rows);
            Ok(())
        })
    }
    fn delete<'a>(conn: DbConn<'a>, ids: &'a [String]) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let delete = diesel::delete(prompts::table.filter(prompts::id.eq_any(ids)));
            on_backend!(conn, c => delete.execute(c).await)?;
            Ok(())
        })
    }
}

fn resource_key(uri: &Option<String>, template: &Option<String>) -> String {
    match (uri, template) {
        (Some(uri), _) => format!("uri:{uri}"),
        (None, Some(template)) => format!("template:{template}"),
        (None, None) => String::new(),
    }
}
