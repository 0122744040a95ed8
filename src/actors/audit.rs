//! The AuditActor: buffers audit entries and writes them in batches through the DbActor, purges
//! those past the retention period, and lets a reader wait until everything recorded before it
//! is stored (so `GET /audit` shows the change that was just made).
//!
//! Writes run with `ctx.wait`: while one is in flight the actor takes no other message, so
//! entries are stored in the order they were recorded and a [`Settle`] answered after a write
//! has seen every entry recorded before it.

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;

use crate::actors::db::Db;
use crate::db::audit::{AuditRow, InsertAudit, PurgeAudit};

/// How often buffered entries are written.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How often entries past the retention period are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Entries kept while the database is unreachable; the oldest are dropped beyond this (and
/// counted).
const MAX_BUFFERED: usize = 50_000;

/// The actor.
pub struct AuditActor {
    db: Db,
    buffer: VecDeque<AuditRow>,
    /// Days entries are kept (0: for ever).
    retention_days: u32,
    written: u64,
    dropped: u64,
}

impl Actor for AuditActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(FLUSH_EVERY, |actor, ctx| actor.flush(ctx));
        if self.retention_days > 0 {
            self.purge(ctx);
            ctx.run_interval(PURGE_EVERY, |actor, ctx| actor.purge(ctx));
        }
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        if !self.buffer.is_empty() {
            tracing::warn!(
                entries = self.buffer.len(),
                "audit entries not yet written are lost at shutdown"
            );
        }
        Running::Stop
    }
}

impl AuditActor {
    /// Writes the buffer in one unit of work, holding the mailbox until it is done; on failure
    /// the entries go back to the front.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.buffer.is_empty() {
            return;
        }
        let rows: Vec<AuditRow> = self.buffer.drain(..).collect();
        let db = self.db.clone();
        let work = async move {
            let outcome = db.run(InsertAudit { rows: rows.clone() }).await;
            (rows, outcome)
        };
        ctx.wait(work.into_actor(self).map(|(rows, outcome), actor, _ctx| {
            match outcome {
                Ok(written) => actor.written += written as u64,
                Err(error) => {
                    tracing::warn!(%error, entries = rows.len(), "writing audit entries failed; keeping them for the next flush");
                    for row in rows.into_iter().rev() {
                        actor.buffer.push_front(row);
                    }
                    actor.bound();
                }
            }
        }));
    }

    /// Drops the oldest entries beyond [`MAX_BUFFERED`].
    fn bound(&mut self) {
        while self.buffer.len() > MAX_BUFFERED {
            self.buffer.pop_front();
            self.dropped += 1;
        }
    }

    fn purge(&mut self, ctx: &mut Context<Self>) {
        let before =
            chrono::Utc::now().naive_utc() - chrono::Duration::days(i64::from(self.retention_days));
        let db = self.db.clone();
        ctx.spawn(
            async move {
                match db.run(PurgeAudit { before }).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "audit entries past retention purged"),
                    Err(error) => tracing::warn!(%error, "purging old audit entries failed"),
                }
            }
            .into_actor(self),
        );
    }
}

/// Record one entry.
#[derive(Message)]
#[rtype(result = "()")]
struct Record(AuditRow);

impl Handler<Record> for AuditActor {
    type Result = ();

    fn handle(&mut self, message: Record, _ctx: &mut Context<Self>) {
        self.buffer.push_back(message.0);
        self.bound();
    }
}

/// Starts writing what is buffered; a message sent after this one is handled only once
/// that write is done.
#[derive(Message)]
#[rtype(result = "()")]
struct Settle;

impl Handler<Settle> for AuditActor {
    type Result = ();

    fn handle(&mut self, _message: Settle, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

/// What the actor has done.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct AuditCounts {
    /// Entries written.
    pub written: u64,
    /// Entries dropped because the buffer overflowed while the database was unreachable.
    pub dropped: u64,
    /// Entries waiting.
    pub buffered: usize,
}

/// A handle to the AuditActor.
#[derive(Clone)]
pub struct Audit {
    addr: Addr<AuditActor>,
}

impl Audit {
    /// Starts the actor.
    pub fn start(db: Db, retention_days: u32) -> Self {
        let addr = AuditActor {
            db,
            buffer: VecDeque::new(),
            retention_days,
            written: 0,
            dropped: 0,
        }
        .start();
        Audit { addr }
    }

    /// Records an entry (written within [`FLUSH_EVERY`]).
    pub fn record(&self, row: AuditRow) {
        self.addr.do_send(Record(row));
    }

    /// Waits until every entry recorded before this call is written.
    pub async fn settle(&self) -> AuditCounts {
        self.addr.do_send(Settle);
        self.addr.send(Counts).await.unwrap_or_default()
    }
}

/// The counters, answered after any write in flight.
#[derive(Message)]
#[rtype(result = "AuditCounts")]
struct Counts;

impl Handler<Counts> for AuditActor {
    type Result = AuditCounts;

    fn handle(&mut self, _message: Counts, _ctx: &mut Context<Self>) -> AuditCounts {
        AuditCounts {
            written: self.written,
            dropped: self.dropped,
            buffered: self.buffer.len(),
        }
    }
}
