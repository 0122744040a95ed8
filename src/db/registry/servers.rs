//! The generic registry units for virtual servers, whose records span the `servers` table and
//! the three member tables.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;

use super::models::{ServerMembers, ServerRecord, ServerRow};
use super::{DeleteRecord, GetRecord, InsertRecord, ListRecords, SetRecordEnabled, UpdateRecord};
use crate::db::schema::{
    prompts, resources, server_prompts, server_resources, server_tools, servers, tools,
};
use crate::db::{Access, DbConn, UnitOfWork, WorkError, WorkResult};
use crate::on_backend;

/// Fails with a message naming the field and id when a member does not exist.
async fn check_members_exist(mut conn: DbConn<'_>, members: &ServerMembers) -> WorkResult<()> {
    macro_rules! check {
        ($ids:expr, $field:literal, $target:ident) => {
            if !$ids.is_empty() {
                let wanted = $ids.clone();
                let found: Vec<String> = on_backend!(conn.reborrow(), c => {
                    $target::table
                        .filter($target::id.eq_any(wanted))
                        .select($target::id)
                        .load(c)
                        .await
                })?;
                first_missing($field, &$ids, found)?;
            }
        };
    }
    check!(members.tool_ids, "tool_ids", tools);
    check!(members.resource_ids, "resource_ids", resources);
    check!(members.prompt_ids, "prompt_ids", prompts);
    Ok(())
}

fn first_missing(field: &str, wanted: &[String], found: Vec<String>) -> WorkResult<()> {
    let found: HashSet<String> = found.into_iter().collect();
    match wanted.iter().find(|id| !found.contains(*id)) {
        Some(id) => Err(WorkError::rejected(
            field,
            format!("no item with id {id:?} exists"),
        )),
        None => Ok(()),
    }
}

/// Replaces a server's members with `members`, keeping their order.
async fn replace_members(
    mut conn: DbConn<'_>,
    server_id: &str,
    members: &ServerMembers,
) -> WorkResult<()> {
    macro_rules! replace {
        ($ids:expr, $table:ident, $column:ident) => {
            let delete = diesel::delete($table::table.filter($table::server_id.eq(server_id)));
            on_backend!(conn.reborrow(), c => delete.execute(c).await)?;
            // One row at a time: multi-row inserts do not compile for SQLite through
            // diesel-async; this runs inside the unit's single transaction.
            for (position, id) in $ids.iter().enumerate() {
                let insert = diesel::insert_into($table::table).values((
                    $table::server_id.eq(server_id),
                    $table::$column.eq(id),
                    $table::position.eq(position as i32),
                ));
                on_backend!(conn.reborrow(), c => insert.execute(c).await)?;
            }
        };
    }
    replace!(members.tool_ids, server_tools, tool_id);
    replace!(members.resource_ids, server_resources, resource_id);
    replace!(members.prompt_ids, server_prompts, prompt_id);
    Ok(())
}

/// Loads the members of the given servers.
async fn load_members(
    mut conn: DbConn<'_>,
    server_ids: &[String],
) -> WorkResult<HashMap<String, ServerMembers>> {
    let mut by_server: HashMap<String, ServerMembers> = server_ids
        .iter()
        .map(|id| (id.clone(), ServerMembers::default()))
        .collect();
    let ids = server_ids.to_vec();
    let query = server_tools::table
        .filter(server_tools::server_id.eq_any(ids.clone()))
        .order((server_tools::server_id, server_tools::position))
        .select((server_tools::server_id, server_tools::tool_id));
    for (server_id, id) in
        on_backend!(conn.reborrow(), c => query.load::<(String, String)>(c).await)?
    {
        by_server.entry(server_id).or_default().tool_ids.push(id);
    }
    let query = server_resources::table
        .filter(server_resources::server_id.eq_any(ids.clone()))
        .order((server_resources::server_id, server_resources::position))
        .select((server_resources::server_id, server_resources::resource_id));
    for (server_id, id) in
        on_backend!(conn.reborrow(), c => query.load::<(String, String)>(c).await)?
    {
        by_server
            .entry(server_id)
            .or_default()
            .resource_ids
            .push(id);
    }
    let query = server_prompts::table
        .filter(server_prompts::server_id.eq_any(ids))
        .order((server_prompts::server_id, server_prompts::position))
        .select((server_prompts::server_id, server_prompts::prompt_id));
    for (server_id, id) in on_backend!(conn, c => query.load::<(String, String)>(c).await)? {
        by_server.entry(server_id).or_default().prompt_ids.push(id);
    }
    Ok(by_server)
}

/// The enabled servers among `ids`, with their members (what the catalog applies when another
/// replica changed them).
pub(crate) async fn load_enabled_servers(
    mut conn: DbConn<'_>,
    ids: &[String],
) -> WorkResult<Vec<ServerRecord>> {
    let rows: Vec<ServerRow> = on_backend!(conn.reborrow(), c => {
        servers::table
            .filter(servers::id.eq_any(ids.to_vec()).and(servers::enabled.eq(true)))
            .select(ServerRow::as_select())
            .load(c)
            .await
    })?;
    let found: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let mut members = load_members(conn, &found).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let members = members.remove(&row.id).unwrap_or_default();
            ServerRecord { row, members }
        })
        .collect())
}

async fn load_server(mut conn: DbConn<'_>, id: &str) -> WorkResult<ServerRecord> {
    let row: ServerRow = on_backend!(conn.reborrow(), c => {
        servers::table.find(id).select(ServerRow::as_select()).get_result(c).await
    })?;
    let members = load_members(conn, std::slice::from_ref(&row.id))
        .await?
        .remove(&row.id)
        .unwrap_or_default();
    Ok(ServerRecord { row, members })
}

impl UnitOfWork for InsertRecord<ServerRecord> {
    type Output = ServerRecord;
    fn name(&self) -> &'static str {
        "servers.insert"
    }
    fn access(&self) -> Access {
        Access::Write
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<ServerRecord>> {
        Box::pin(async move {
            check_members_exist(conn.reborrow(), &self.record.members).await?;
            let insert = diesel::insert_into(servers::table).values(&self.record.row);
            on_backend!(conn.reborrow(), c => insert.execute(c).await)?;
            replace_members(conn, &self.record.row.id, &self.record.members).await?;
            Ok(self.record.clone())
        })
    }
}

impl UnitOfWork for GetRecord<ServerRecord> {
    type Output = ServerRecord;
    fn name(&self) -> &'static str {
        "servers.get"
    }
    fn access(&self) -> Access {
        Access::Read
    }
    fn transactional(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<ServerRecord>> {
        Box::pin(load_server(conn, &self.id))
    }
}

impl UnitOfWork for ListRecords<ServerRecord> {
    type Output = Vec<ServerRecord>;
    fn name(&self) -> &'static str {
        "servers.list"
    }
    fn access(&self) -> Access {
        Access::Read
    }
    fn transactional(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<Vec<ServerRecord>>> {
        Box::pin(async move {
            let rows: Vec<ServerRow> = on_backend!(conn.reborrow(), c => {
                let mut query = servers::table
                    .select(ServerRow::as_select())
                    .order(servers::id.asc())
                    .limit(self.limit)
                    .into_boxed();
                if let Some(after) = &self.after {
                    query = query.filter(servers::id.gt(after));
                }
                if !self.include_inactive {
                    query = query.filter(servers::enabled.eq(true));
                }
                if let Some(viewer) = &self.viewer {
                    query = query.filter(crate::visible_to!(
                        viewer,
                        servers::owner_email,
                        servers::team_id,
                        servers::visibility
                    ));
                }
                query.load(c).await
            })?;
            let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
            let mut members = load_members(conn, &ids).await?;
            Ok(rows
                .into_iter()
                .map(|row| ServerRecord {
                    members: members.remove(&row.id).unwrap_or_default(),
                    row,
                })
                .collect())
        })
    }
}

impl UnitOfWork for UpdateRecord<ServerRecord> {
    type Output = ServerRecord;
    fn name(&self) -> &'static str {
        "servers.update"
    }
    fn access(&self) -> Access {
        Access::Write
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<ServerRecord>> {
        Box::pin(async move {
            if let crate::db::Conn::Pg(c) = conn.reborrow().inner {
                // Serialise concurrent updates of one server.
                servers::table
                    .find(&self.id)
                    .select(servers::id)
                    .for_update()
                    .get_result::<String>(c)
                    .await?;
            }
            let stored = load_server(conn.reborrow(), &self.id).await?;
            let changed = (self.apply)(stored.clone())?;
            if changed.members != stored.members {
                check_members_exist(conn.reborrow(), &changed.members).await?;
                replace_members(conn.reborrow(), &self.id, &changed.members).await?;
            }
            let update = diesel::update(servers::table.find(&self.id)).set(&changed.row);
            on_backend!(conn, c => update.execute(c).await)?;
            Ok(changed)
        })
    }
}

impl UnitOfWork for DeleteRecord<ServerRecord> {
    type Output = ();
    fn name(&self) -> &'static str {
        "servers.delete"
    }
    fn access(&self) -> Access {
        Access::Write
    }
    fn idempotent(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            let delete = diesel::delete(servers::table.find(&self.id));
            if on_backend!(conn, c => delete.execute(c).await)? == 0 {
                return Err(diesel::result::Error::NotFound.into());
            }
            Ok(())
        })
    }
}

impl UnitOfWork for SetRecordEnabled<ServerRecord> {
    type Output = ServerRecord;
    fn name(&self) -> &'static str {
        "servers.set_enabled"
    }
    fn access(&self) -> Access {
        Access::Write
    }
    fn idempotent(&self) -> bool {
        self.enabled.is_some()
    }
    fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<ServerRecord>> {
        Box::pin(async move {
            let target = servers::table.find(&self.id);
            let now = crate::db::now();
            let updated = match self.enabled {
                Some(enabled) => {
                    let update = diesel::update(target)
                        .set((servers::enabled.eq(enabled), servers::updated_at.eq(now)));
                    on_backend!(conn.reborrow(), c => update.execute(c).await)?
                }
                None => {
                    let update = diesel::update(target).set((
                        servers::enabled.eq(diesel::dsl::not(servers::enabled)),
                        servers::updated_at.eq(now),
                    ));
                    on_backend!(conn.reborrow(), c => update.execute(c).await)?
                }
            };
            if updated == 0 {
                return Err(diesel::result::Error::NotFound.into());
            }
            load_server(conn, &self.id).await
        })
    }
}
