//! Units of work for the audit trail: entries written in batches, read newest first with
//! filters, and purged past the retention period.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::audit_log;
use crate::unit_of_work;

/// Rows per multi-row `INSERT` (14 columns: 5 600 bound parameters).
const ROWS_PER_INSERT: usize = 400;

/// One audit entry as stored.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct AuditRow {
    /// UUIDv7: sorts by time.
    pub id: String,
    pub at: chrono::NaiveDateTime,
    /// The account that acted (for a failed sign-in, the email that was tried).
    pub actor: String,
    /// The id (`jti`) of the token it used.
    pub token_id: Option<String>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    /// Named like the permission it needed: `tools.create`, `users.delete`, `auth.sign_in`.
    pub action: String,
    /// `tool`, `user`, `token`, …
    pub target_kind: String,
    pub target_id: Option<String>,
    pub target_name: Option<String>,
    /// `ok`, or `refused` (a failed sign-in).
    pub outcome: String,
    /// A short note (what a refresh found, why a sign-in failed).
    pub detail: Option<String>,
    /// The record before the change, as JSON with secrets masked.
    pub before_json: Option<String>,
    /// The record after the change, likewise.
    pub after_json: Option<String>,
}

/// What a search of the trail keeps.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// The acting account (exact).
    pub actor: Option<String>,
    /// The action, exactly, or a family when it ends with `.` (`tools.`).
    pub action: Option<String>,
    /// The target's id or name (exact).
    pub target: Option<String>,
    /// `ok` or `refused`.
    pub outcome: Option<String>,
    /// At or after.
    pub since: Option<chrono::NaiveDateTime>,
    /// Before.
    pub until: Option<chrono::NaiveDateTime>,
}

unit_of_work! {
    /// Stores a batch of entries in one transaction.
    InsertAudit { rows: Vec<AuditRow> } -> usize,
    "audit.insert", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        for chunk in this.rows.chunks(ROWS_PER_INSERT) {
            crate::insert_rows!(conn.reborrow(), audit_log::table, chunk);
        }
        Ok(this.rows.len())
    }
}

unit_of_work! {
    /// Up to `limit` entries matching `filter`, newest first, older than the entry `before`.
    ListAudit { filter: AuditFilter, before: Option<String>, limit: i64 } -> Vec<AuditRow>,
    "audit.list", Read, transactional = false,
    |this, conn| {
        let filter = &this.filter;
        let rows = crate::on_backend!(conn, c => {
            let mut query = audit_log::table
                .select(AuditRow::as_select())
                .order(audit_log::id.desc())
                .limit(this.limit)
                .into_boxed();
            if let Some(before) = &this.before {
                query = query.filter(audit_log::id.lt(before.clone()));
            }
            if let Some(actor) = &filter.actor {
                query = query.filter(audit_log::actor.eq(actor.clone()));
            }
            match filter.action.as_deref() {
                Some(family) if family.ends_with('.') => {
                    let pattern = format!("{}%", family.replace(['%', '_', '\\'], ""));
                    query = query.filter(audit_log::action.like(pattern));
                }
                Some(action) => query = query.filter(audit_log::action.eq(action.to_owned())),
                None => {}
            }
            if let Some(target) = &filter.target {
                query = query.filter(
                    audit_log::target_id
                        .eq(target.clone())
                        .or(audit_log::target_name.eq(target.clone())),
                );
            }
            if let Some(outcome) = &filter.outcome {
                query = query.filter(audit_log::outcome.eq(outcome.clone()));
            }
            if let Some(since) = filter.since {
                query = query.filter(audit_log::at.ge(since));
            }
            if let Some(until) = filter.until {
                query = query.filter(audit_log::at.lt(until));
            }
            query.load(c).await
        })?;
        Ok(rows)
    }
}

unit_of_work! {
    /// Deletes the entries older than `before`; answers how many went.
    PurgeAudit { before: chrono::NaiveDateTime } -> usize,
    "audit.purge", Write, transactional = true,
    |this, conn| {
        let purge = diesel::delete(audit_log::table.filter(audit_log::at.lt(this.before)));
        Ok(crate::on_backend!(conn, c => purge.execute(c).await)?)
    }
}
