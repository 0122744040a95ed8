//! Units of work for the registry: one generic set of operations (insert, get, list, update,
//! delete, enable/disable), implemented per record type.

mod models;
mod servers;
pub(crate) use self::servers::load_enabled_servers;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

pub use self::models::{
    GatewayRow, HasId, PromptRow, ResourceRow, ServerMembers, ServerRecord, ServerRow, ToolRow,
};
use crate::db::WorkError;

/// Store a new record.
#[derive(Debug, Clone)]
pub struct InsertRecord<R> {
    /// The complete record, id and timestamps included.
    pub record: R,
}

/// Load one record by id.
pub struct GetRecord<R> {
    /// The record's id.
    pub id: String,
    _record: PhantomData<fn() -> R>,
}

impl<R> GetRecord<R> {
    /// Asks for the record with this id.
    pub fn new(id: impl Into<String>) -> Self {
        GetRecord {
            id: id.into(),
            _record: PhantomData,
        }
    }
}

/// Load one page of records in id order.
pub struct ListRecords<R> {
    /// Only ids greater than this (the previous page's last id).
    pub after: Option<String>,
    /// The most records to return.
    pub limit: i64,
    /// Whether disabled records are included.
    pub include_inactive: bool,
    /// Only what this viewer may see (`None`: everything).
    pub viewer: Option<Viewer>,
    _record: PhantomData<fn() -> R>,
}

/// Whose eyes a list is for: public items, their own, and team items of their teams.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Their email.
    pub email: String,
    /// Their teams.
    pub teams: Vec<String>,
}

impl<R> ListRecords<R> {
    /// Asks for up to `limit` records after `after`, of those `viewer` may see.
    pub fn new(
        after: Option<String>,
        limit: i64,
        include_inactive: bool,
        viewer: Option<Viewer>,
    ) -> Self {
        ListRecords {
            after,
            limit,
            include_inactive,
            viewer,
            _record: PhantomData,
        }
    }
}

/// The visibility condition of a viewer, over any registry table's ownership columns.
#[macro_export]
macro_rules! visible_to {
    ($viewer:expr, $owner:expr, $team:expr, $visibility:expr) => {
        $visibility
            .eq($crate::auth::rbac::Visibility::Public)
            .nullable()
            .or($owner.eq($viewer.email.clone()))
            .or($visibility
                .eq($crate::auth::rbac::Visibility::Team)
                .nullable()
                .and($team.eq_any($viewer.teams.clone())))
    };
}

impl<R> super::sealed::Sealed for InsertRecord<R> {}
impl<R> super::sealed::Sealed for GetRecord<R> {}
impl<R> super::sealed::Sealed for ListRecords<R> {}
impl<R> super::sealed::Sealed for UpdateRecord<R> {}
impl<R> super::sealed::Sealed for DeleteRecord<R> {}
impl<R> super::sealed::Sealed for SetRecordEnabled<R> {}

/// A change computed from the stored record (merge and validate), applied in the same
/// transaction that read it.
pub type ApplyChange<R> = Arc<dyn Fn(R) -> Result<R, WorkError> + Send + Sync>;

/// Read, change and write back one record in one transaction.
pub struct UpdateRecord<R> {
    /// The record's id.
    pub id: String,
    /// Computes the new record from the stored one.
    pub apply: ApplyChange<R>,
}

/// Delete one record by id.
pub struct DeleteRecord<R> {
    /// The record's id.
    pub id: String,
    _record: PhantomData<fn() -> R>,
}

impl<R> DeleteRecord<R> {
    /// Asks to delete the record with this id.
    pub fn new(id: impl Into<String>) -> Self {
        DeleteRecord {
            id: id.into(),
            _record: PhantomData,
        }
    }
}

/// Enable or disable one record.
pub struct SetRecordEnabled<R> {
    /// The record's id.
    pub id: String,
    /// The new state; `None` flips the stored state atomically.
    pub enabled: Option<bool>,
    _record: PhantomData<fn() -> R>,
}

impl<R> SetRecordEnabled<R> {
    /// Asks to set (or, with `None`, flip) the record's `enabled` flag.
    pub fn new(id: impl Into<String>, enabled: Option<bool>) -> Self {
        SetRecordEnabled {
            id: id.into(),
            enabled,
            _record: PhantomData,
        }
    }
}

macro_rules! debug_with_id {
    ($($unit:ident),*) => {$(
        impl<R> fmt::Debug for $unit<R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($unit)).field("id", &self.id).finish_non_exhaustive()
            }
        }
    )*};
}
debug_with_id!(GetRecord, UpdateRecord, DeleteRecord, SetRecordEnabled);

/// Implements the generic units for a table whose record is a single row.
macro_rules! single_row_units {
    ($row:ty, $table:ident, $label:literal) => {
        const _: () = {
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;
            use futures_util::future::BoxFuture;

            use crate::db::schema::$table::dsl;
            use crate::db::{Access, DbConn, UnitOfWork, WorkResult};
            use crate::on_backend;

            impl UnitOfWork for InsertRecord<$row> {
                type Output = $row;
                fn name(&self) -> &'static str {
                    concat!($label, ".insert")
                }
                fn access(&self) -> Access {
                    Access::Write
                }
                fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<$row>> {
                    Box::pin(async move {
                        let insert = diesel::insert_into(dsl::$table).values(&self.record);
                        on_backend!(conn, c => insert.execute(c).await)?;
                        Ok(self.record.clone())
                    })
                }
            }

            impl UnitOfWork for GetRecord<$row> {
                type Output = $row;
                fn name(&self) -> &'static str {
                    concat!($label, ".get")
                }
                fn access(&self) -> Access {
                    Access::Read
                }
                fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<$row>> {
                    Box::pin(async move {
                        Ok(on_backend!(conn, c => {
                            dsl::$table.find(&self.id).select(<$row>::as_select()).get_result(c).await
                        })?)
                    })
                }
            }

            impl UnitOfWork for ListRecords<$row> {
                type Output = Vec<$row>;
                fn name(&self) -> &'static str {
                    concat!($label, ".list")
                }
                fn access(&self) -> Access {
                    Access::Read
                }
                fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<Vec<$row>>> {
                    Box::pin(async move {
                        let rows = on_backend!(conn, c => {
                            let mut query = dsl::$table
                                .select(<$row>::as_select())
                                .order(dsl::id.asc())
                                .limit(self.limit)
                                .into_boxed();
                            if let Some(after) = &self.after {
                                query = query.filter(dsl::id.gt(after));
                            }
                            if !self.include_inactive {
                                query = query.filter(dsl::enabled.eq(true));
                            }
                            if let Some(viewer) = &self.viewer {
                                query = query.filter(crate::visible_to!(
                                    viewer,
                                    dsl::owner_email,
                                    dsl::team_id,
                                    dsl::visibility
                                ));
                            }
                            query.load(c).await
                        })?;
                        Ok(rows)
                    })
                }
            }

            impl UnitOfWork for UpdateRecord<$row> {
                type Output = $row;
                fn name(&self) -> &'static str {
                    concat!($label, ".update")
                }
                fn access(&self) -> Access {
                    Access::Write
                }
                fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<$row>> {
                    Box::pin(async move {
                        let stored: $row = match conn.inner {
                            crate::db::Conn::Pg(c) => {
                                let query =
                                    dsl::$table.find(&self.id).select(<$row>::as_select()).for_update();
                                let stored = query.get_result(c).await?;
                                let changed = (self.apply)(stored)?;
                                diesel::update(dsl::$table.find(&self.id))
                                    .set(&changed)
                                    .execute(c)
                                    .await?;
                                changed
                            }
                            crate::db::Conn::Sqlite(c) => {
                                // The write lock is taken by the UPDATE; SQLite serialises writers.
                                let query = dsl::$table.find(&self.id).select(<$row>::as_select());
                                let stored = query.get_result(c).await?;
                                let changed = (self.apply)(stored)?;
                                diesel::update(dsl::$table.find(&self.id))
                                    .set(&changed)
                                    .execute(c)
                                    .await?;
                                changed
                            }
                        };
                        Ok(stored)
                    })
                }
            }

            impl UnitOfWork for DeleteRecord<$row> {
                type Output = ();
                fn name(&self) -> &'static str {
                    concat!($label, ".delete")
                }
                fn access(&self) -> Access {
                    Access::Write
                }
                fn idempotent(&self) -> bool {
                    true
                }
                fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<()>> {
                    Box::pin(async move {
                        let delete = diesel::delete(dsl::$table.find(&self.id));
                        let deleted = on_backend!(conn, c => delete.execute(c).await)?;
                        if deleted == 0 {
                            return Err(diesel::result::Error::NotFound.into());
                        }
                        Ok(())
                    })
                }
            }

            impl UnitOfWork for SetRecordEnabled<$row> {
                type Output = $row;
                fn name(&self) -> &'static str {
                    concat!($label, ".set_enabled")
                }
                fn access(&self) -> Access {
                    Access::Write
                }
                fn idempotent(&self) -> bool {
                    self.enabled.is_some()
                }
                fn run<'a>(&'a self, mut conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<$row>> {
                    Box::pin(async move {
                        let target = dsl::$table.find(&self.id);
                        let now = crate::db::now();
                        let updated = match self.enabled {
                            Some(enabled) => {
                                let update = diesel::update(target)
                                    .set((dsl::enabled.eq(enabled), dsl::updated_at.eq(now)));
                                on_backend!(conn.reborrow(), c => update.execute(c).await)?
                            }
                            None => {
                                let update = diesel::update(target)
                                    .set((dsl::enabled.eq(diesel::dsl::not(dsl::enabled)), dsl::updated_at.eq(now)));
                                on_backend!(conn.reborrow(), c => update.execute(c).await)?
                            }
                        };
                        if updated == 0 {
                            return Err(diesel::result::Error::NotFound.into());
                        }
                        Ok(on_backend!(conn, c => {
                            dsl::$table.find(&self.id).select(<$row>::as_select()).get_result(c).await
                        })?)
                    })
                }
            }
        };
    };
}

single_row_units!(ToolRow, tools, "tools");
single_row_units!(ResourceRow, resources, "resources");
single_row_units!(PromptRow, prompts, "prompts");
single_row_units!(GatewayRow, gateways, "gateways");
