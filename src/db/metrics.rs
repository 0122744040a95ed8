//! Units of work for call metrics: the per-call records and the per-process rollups written
//! together in batches, the rollups read back when a process starts, and both purged past
//! their retention.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;

use crate::db::schema::{metric_rollups, tool_metrics};
use crate::db::{Access, DbConn, UnitOfWork, WorkResult};
use crate::unit_of_work;

/// One tool call, as stored in `tool_metrics`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tool_metrics)]
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

/// One process's tally of one interval, as stored in `metric_rollups`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = metric_rollups)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct RollupRow {
    /// The process that counted (a new id each start).
    pub instance: String,
    /// The interval's length in seconds (60 or 3600).
    pub width: i32,
    /// The interval, counted from the Unix epoch in units of `width`.
    pub bucket: i64,
    /// `all`, `tool`, `server` or `upstream`.
    pub scope: String,
    /// The tool's name, the server's or upstream's id; empty for `all`.
    pub key: String,
    pub calls: i64,
    pub failures: i64,
    pub duration_ms_sum: f64,
    /// The latency sketch as JSON (hourly rows of a tool, server or upstream).
    pub latency: Option<String>,
    pub last_call_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub last_error_at: Option<NaiveDateTime>,
}

/// Rows per multi-row INSERT of tool-call records on PostgreSQL (7 parameters a row).
const METRICS_ROWS_PER_INSERT: usize = 1000;
/// Rollups per multi-row upsert on PostgreSQL (12 parameters a row).
const ROLLUPS_PER_UPSERT: usize = 500;

/// Store a batch of tool-call records, and this process's rollups as they now stand, in one
/// transaction.
#[derive(Debug, Clone)]
pub struct InsertToolMetrics {
    /// The records.
    pub rows: Vec<ToolMetricRow>,
    /// The rollups that changed since the last batch (replacing this process's earlier rows).
    pub rollups: Vec<RollupRow>,
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
                // Multi-row statements: one per chunk, not one round trip per call.
                crate::db::Conn::Pg(c) => {
                    for chunk in self.rows.chunks(METRICS_ROWS_PER_INSERT) {
                        diesel::insert_into(tool_metrics::table)
                            .values(chunk)
                            .execute(c)
                            .await?;
                    }
                    for chunk in self.rollups.chunks(ROLLUPS_PER_UPSERT) {
                        upsert_rollups!(chunk).execute(c).await?;
                    }
                }
                // One row at a time inside the one transaction: multi-row inserts do not compile
                // for SQLite through diesel-async (and cost no round trip there).
                crate::db::Conn::Sqlite(c) => {
                    for row in &self.rows {
                        diesel::insert_into(tool_metrics::table)
                            .values(row)
                            .execute(c)
                            .await?;
                    }
                    for rollup in &self.rollups {
                        upsert_rollups!(rollup).execute(c).await?;
                    }
                }
            }
            Ok(self.rows.len())
        })
    }
}

/// An upsert of rollups: a process's row for an interval is replaced by its newer tally.
macro_rules! upsert_rollups {
    ($values:expr) => {
        diesel::insert_into(metric_rollups::table)
            .values($values)
            .on_conflict((
                metric_rollups::instance,
                metric_rollups::width,
                metric_rollups::bucket,
                metric_rollups::scope,
                metric_rollups::key,
            ))
            .do_update()
            .set((
                metric_rollups::calls.eq(excluded(metric_rollups::calls)),
                metric_rollups::failures.eq(excluded(metric_rollups::failures)),
                metric_rollups::duration_ms_sum.eq(excluded(metric_rollups::duration_ms_sum)),
                metric_rollups::latency.eq(excluded(metric_rollups::latency)),
                metric_rollups::last_call_at.eq(excluded(metric_rollups::last_call_at)),
                metric_rollups::last_error.eq(excluded(metric_rollups::last_error)),
                metric_rollups::last_error_at.eq(excluded(metric_rollups::last_error_at)),
            ))
    };
}
use upsert_rollups;

/// Where rollups start to count: the first interval of each kind to keep or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupWindow {
    /// The first minute of all calls.
    pub minutes: i64,
    /// The first hour of all calls.
    pub hours: i64,
    /// The first hour per tool, server and upstream.
    pub keyed: i64,
}

/// Rows of `metric_rollups` within (or, negated, before) a window.
macro_rules! in_window {
    ($window:expr, $within:ident) => {{
        let window: &RollupWindow = $window;
        let minutes = metric_rollups::width
            .eq(60)
            .and(metric_rollups::bucket.$within(window.minutes));
        let hours = metric_rollups::width
            .eq(3600)
            .and(metric_rollups::scope.eq("all"))
            .and(metric_rollups::bucket.$within(window.hours));
        let keyed = metric_rollups::width
            .eq(3600)
            .and(metric_rollups::scope.ne("all"))
            .and(metric_rollups::bucket.$within(window.keyed));
        minutes.or(hours).or(keyed)
    }};
}

unit_of_work! {
    /// The rollups other processes wrote (earlier runs of this one, other replicas) within
    /// `window`.
    LoadRollups { other_than: String, window: RollupWindow } -> Vec<RollupRow>,
    "metrics.load", Read, transactional = false,
    |this, conn| {
        Ok(crate::on_backend!(conn, c => {
            metric_rollups::table
                .select(RollupRow::as_select())
                .filter(metric_rollups::instance.ne(&this.other_than))
                .filter(in_window!(&this.window, ge))
                .load(c)
                .await
        })?)
    }
}

unit_of_work! {
    /// Deletes call records started before `records_before` (if set) and rollups before
    /// `window`. Answers how many rows went.
    PurgeMetrics { records_before: Option<NaiveDateTime>, window: RollupWindow } -> usize,
    "metrics.purge", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let mut purged = 0;
        if let Some(before) = this.records_before {
            let records =
                diesel::delete(tool_metrics::table.filter(tool_metrics::started_at.lt(before)));
            purged += crate::on_backend!(conn.reborrow(), c => records.execute(c).await)?;
        }
        let rollups = diesel::delete(metric_rollups::table.filter(in_window!(&this.window, lt)));
        purged += crate::on_backend!(conn, c => rollups.execute(c).await)?;
        Ok(purged)
    }
}
