//! The MetricsActor: per-tool call counters and latency histograms in memory (for `/metrics`),
//! and the per-call records, buffered and written in batches through the DbActor — never one
//! database round trip per call.
//!
//! A call hands its record to a bounded lock-free queue on its own thread (no message, no
//! wake-up of another thread); the actor drains the queue a few times a second and before
//! answering a snapshot, so the per-call cost is one atomic enqueue.
//!
//! Beside the counters since the process started, the actor keeps the [`history`] of the last
//! day and week, written with each batch and read back when the process starts.

pub mod history;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use actix::prelude::*;

use crate::actors::db::Db;
use crate::db::metrics::{InsertToolMetrics, LoadRollups, PurgeMetrics, ToolMetricRow};

pub use history::{History, HistoryView, Point, Range, Scope, Summary};

/// Upper bounds of the latency histogram, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often buffered records are written.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How often the actor takes what calls queued.
const DRAIN_EVERY: Duration = Duration::from_millis(250);
/// A buffer this full is written at once.
const FLUSH_AT: usize = 500;
/// Records kept while the database is unreachable; older ones are dropped beyond this.
const MAX_BUFFERED: usize = 20_000;

/// Aggregates of one tool.
#[derive(Debug, Clone, Default)]
pub struct ToolStats {
    /// Successful calls.
    pub successes: u64,
    /// Failed calls.
    pub failures: u64,
    /// Calls per histogram bucket (cumulative counts are computed when rendered).
    pub buckets: [u64; BUCKETS.len()],
    /// Sum of durations, seconds.
    pub duration_sum: f64,
    /// Durations in milliseconds, for quantiles within 1 %.
    pub latency: Option<history::Latency>,
    /// When the last call started.
    pub last_call_at: Option<chrono::NaiveDateTime>,
    /// The last failure: when, and why.
    pub last_error: Option<(chrono::NaiveDateTime, String)>,
}

impl ToolStats {
    /// Counts one call, and notes when it was and why it failed.
    fn count(&mut self, row: &ToolMetricRow) {
        self.add(row.success, row.duration_ms / 1000.0);
        self.last_call_at = self.last_call_at.max(Some(row.started_at));
        if !row.success {
            let why = row.error.clone().unwrap_or_else(|| "failed".into());
            self.last_error = Some((row.started_at, why));
        }
    }

    /// Counts one call.
    fn add(&mut self, success: bool, seconds: f64) {
        if success {
            self.successes += 1;
        } else {
            self.failures += 1;
        }
        self.duration_sum += seconds;
        if let Some(index) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[index] += 1;
        }
        self.latency
            .get_or_insert_with(history::Latency::default)
            .add(seconds * 1000.0);
    }

    /// The `q`-quantile (0–1) of durations in milliseconds, within 1 %; `None` without calls.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.latency.as_ref()?.quantile(q)
    }
}

/// One hour of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    /// The hour, counted from the Unix epoch.
    pub index: i64,
    /// Calls started in it.
    pub calls: u64,
    /// Of which failed.
    pub failures: u64,
}

/// What calls through one upstream (or one virtual server) showed.
#[derive(Debug, Clone, Default)]
pub struct UpstreamStats {
    /// Counts, latency, the last call and the last failure since the process started.
    pub calls: ToolStats,
    /// The last 24 hours (upstreams only), one entry per hour, oldest first, zeros where there
    /// were no calls; from the history, so it survives a restart.
    pub hours: Vec<Slot>,
}

impl UpstreamStats {
    /// The 24-hour strip, one entry per hour up to `now`.
    pub fn strip(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Slot> {
        let current = now.timestamp().div_euclid(3600);
        (current - history::KEYED_HOURS_KEPT + 1..=current)
            .map(|index| {
                self.hours
                    .iter()
                    .find(|slot| slot.index == index)
                    .copied()
                    .unwrap_or(Slot {
                        index,
                        ..Slot::default()
                    })
            })
            .collect()
    }
}

/// A snapshot for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// Per tool name.
    pub tools: BTreeMap<String, ToolStats>,
    /// Per upstream (gateway id), for federated calls.
    pub upstreams: BTreeMap<String, UpstreamStats>,
    /// Per virtual server (id), for calls on a server's endpoint.
    pub servers: BTreeMap<String, ToolStats>,
    /// Records waiting to be written.
    pub buffered: usize,
    /// Records written so far.
    pub written: u64,
    /// Records dropped because the buffer overflowed.
    pub dropped: u64,
}

/// How often call records and rollups past keeping are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The actor.
pub struct MetricsActor {
    db: Db,
    queue: crossbeam_channel::Receiver<Queued>,
    /// Records the full queue refused (counted where they were refused).
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
    tools: BTreeMap<String, ToolStats>,
    upstreams: BTreeMap<String, ToolStats>,
    servers: BTreeMap<String, ToolStats>,
    history: History,
    buffer: VecDeque<ToolMetricRow>,
    /// Days call records are kept (0: for ever).
    retention_days: u32,
    written: u64,
    dropped: u64,
}

impl Actor for MetricsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
        self.load(ctx);
        ctx.run_interval(FLUSH_EVERY, |actor, ctx| actor.flush(ctx));
        ctx.run_interval(DRAIN_EVERY, |actor, ctx| {
            actor.drain();
            if actor.buffer.len() >= FLUSH_AT {
                actor.flush(ctx);
            }
        });
        ctx.run_interval(PURGE_EVERY, |actor, ctx| actor.purge(ctx));
    }
}

/// One finished tool call, as the MCP layer reports it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The tool's name in the gateway.
    pub tool_name: String,
    /// The upstream it ran on, if federated.
    pub gateway_id: Option<String>,
    /// The virtual server whose endpoint it was called on, if any.
    pub server_id: Option<String>,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// How long it took.
    pub duration: std::time::Duration,
    /// Whether it succeeded (no protocol error, no `isError`).
    pub success: bool,
    /// A short error description.
    pub error: Option<String>,
}

impl MetricsActor {
    /// Takes every queued record into the aggregates and the write buffer.
    fn drain(&mut self) {
        while let Ok(queued) = self.queue.try_recv() {
            self.count(queued);
        }
    }

    fn count(&mut self, Queued { row, server_id }: Queued) {
        self.history.count(&row, server_id.as_deref());
        self.tools
            .entry(row.tool_name.clone())
            .or_default()
            .count(&row);
        if let Some(gateway) = &row.gateway_id {
            self.upstreams
                .entry(gateway.clone())
                .or_default()
                .count(&row);
        }
        if let Some(server) = server_id {
            self.servers.entry(server).or_default().count(&row);
        }
        if self.buffer.len() >= MAX_BUFFERED {
            self.buffer.pop_front();
            self.dropped += 1;
        }
        self.buffer.push_back(row);
    }

    /// Reads what earlier runs and other replicas stored, holding the mailbox until it is in
    /// (a snapshot taken at start already shows it).
    fn load(&mut self, ctx: &mut Context<Self>) {
        let load = LoadRollups {
            other_than: self.history.instance().to_owned(),
            window: History::window(chrono::Utc::now()),
        };
        let db = self.db.clone();
        ctx.wait(
            async move { db.run(load).await }
                .into_actor(self)
                .map(|outcome, actor, _ctx| match outcome {
                    Ok(rows) => actor.history.load(&rows),
                    Err(error) => {
                        tracing::warn!(%error, "reading the stored call history failed; the metrics page starts empty");
                    }
                }),
        );
    }

    /// Writes the buffer and the changed rollups in one unit of work, holding the mailbox until
    /// it is done; on failure the records go back to the front and the rollups are written
    /// with the next batch.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        self.drain();
        let rollups = self.history.take_dirty();
        if self.buffer.is_empty() && rollups.is_empty() {
            return;
        }
        let rows: Vec<ToolMetricRow> = self.buffer.drain(..).collect();
        let db = self.db.clone();
        let work = async move {
            let batch = InsertToolMetrics { rows, rollups };
            let outcome = db.run(batch.clone()).await;
            (batch, outcome)
        };
        ctx.wait(work.into_actor(self).map(|(batch, outcome), actor, _ctx| {
            match outcome {
                Ok(written) => actor.written += written as u64,
                Err(error) => {
                    tracing::warn!(%error, records = batch.rows.len(), "writing call metrics failed; keeping them for the next flush");
                    actor.history.unwritten(&batch.rollups);
                    for row in batch.rows.into_iter().rev() {
                        if actor.buffer.len() >= MAX_BUFFERED {
                            actor.dropped += 1;
                            continue;
                        }
                        actor.buffer.push_front(row);
                    }
                }
            }
        }));
    }

    fn purge(&mut self, ctx: &mut Context<Self>) {
        let now = chrono::Utc::now();
        let purge = PurgeMetrics {
            records_before: (self.retention_days > 0)
                .then(|| now.naive_utc() - chrono::Duration::days(i64::from(self.retention_days))),
            window: History::window(now),
        };
        let db = self.db.clone();
        ctx.spawn(
            async move {
                match db.run(purge).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "call metrics past keeping purged"),
                    Err(error) => tracing::warn!(%error, "purging old call metrics failed"),
                }
            }
            .into_actor(self),
        );
    }
}

/// Read the aggregates.
#[derive(Message)]
#[rtype(result = "MetricsSnapshot")]
pub struct GetMetrics;

impl Handler<GetMetrics> for MetricsActor {
    type Result = MessageResult<GetMetrics>;

    fn handle(&mut self, _message: GetMetrics, _ctx: &mut Context<Self>) -> Self::Result {
        self.drain();
        let now = chrono::Utc::now();
        let mut upstreams: BTreeMap<String, UpstreamStats> = self
            .upstreams
            .iter()
            .map(|(id, calls)| {
                let stats = UpstreamStats {
                    calls: calls.clone(),
                    hours: Vec::new(),
                };
                (id.clone(), stats)
            })
            .collect();
        for id in self.history.keys(Scope::Upstream) {
            let hours = self
                .history
                .hours(Scope::Upstream, id, now)
                .into_iter()
                .map(|(index, tally)| Slot {
                    index,
                    calls: tally.calls,
                    failures: tally.failures,
                })
                .collect();
            upstreams.entry(id.to_owned()).or_default().hours = hours;
        }
        MessageResult(MetricsSnapshot {
            tools: self.tools.clone(),
            upstreams,
            servers: self.servers.clone(),
            buffered: self.buffer.len(),
            written: self.written,
            dropped: self.dropped + self.refused.load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// The history: the chart over a range and the tables of the last day.
#[derive(Message)]
#[rtype(result = "HistoryView")]
pub struct GetHistory(pub Range);

impl Handler<GetHistory> for MetricsActor {
    type Result = MessageResult<GetHistory>;

    fn handle(&mut self, GetHistory(range): GetHistory, _ctx: &mut Context<Self>) -> Self::Result {
        self.drain();
        MessageResult(self.history.view(range, chrono::Utc::now()))
    }
}

/// Writes what is buffered; answered once it is written.
#[derive(Message)]
#[rtype(result = "()")]
struct Settle;

impl Handler<Settle> for MetricsActor {
    type Result = ();

    fn handle(&mut self, _message: Settle, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

/// A handle to the MetricsActor.
#[derive(Clone)]
pub struct Metrics {
    addr: Addr<MetricsActor>,
    queue: crossbeam_channel::Sender<Queued>,
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A record on its way to the actor, with what is counted but not stored.
pub struct Queued {
    row: ToolMetricRow,
    server_id: Option<String>,
}

impl Metrics {
    /// Starts the actor; call records are kept `retention_days` (0: for ever).
    pub fn start(db: Db, retention_days: u32) -> Self {
        let (queue, receiver) = crossbeam_channel::bounded(MAX_BUFFERED);
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let addr = MetricsActor {
            db,
            queue: receiver,
            refused: refused.clone(),
            tools: BTreeMap::new(),
            upstreams: BTreeMap::new(),
            servers: BTreeMap::new(),
            history: History::new(crate::registry::new_id()),
            buffer: VecDeque::new(),
            retention_days,
            written: 0,
            dropped: 0,
        }
        .start();
        Metrics {
            addr,
            queue,
            refused,
        }
    }

    /// Records a call on the caller's thread; never waits (a full queue drops the record).
    pub fn record(&self, call: CallRecord) {
        let row = ToolMetricRow {
            id: crate::registry::new_id(),
            tool_name: call.tool_name,
            gateway_id: call.gateway_id,
            started_at: crate::db::now_from(call.started_at),
            duration_ms: call.duration.as_secs_f64() * 1000.0,
            success: call.success,
            error: call.error,
        };
        let queued = Queued {
            row,
            server_id: call.server_id,
        };
        if self.queue.try_send(queued).is_err() {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!("metrics queue full; a call record was dropped");
        }
    }

    /// The aggregates.
    pub async fn snapshot(&self) -> MetricsSnapshot {
        self.addr.send(GetMetrics).await.unwrap_or_default()
    }

    /// The history over `range`.
    pub async fn history(&self, range: Range) -> Option<HistoryView> {
        self.addr.send(GetHistory(range)).await.ok()
    }

    /// Writes what was recorded so far (at shutdown, so a restart shows it).
    pub async fn settle(&self) {
        let _ = self.addr.send(Settle).await;
        let _ = self.addr.send(GetMetrics).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_sketch_and_buckets_stay_for_prometheus() {
        let mut stats = ToolStats::default();
        assert_eq!(stats.quantile_ms(0.5), None);
        for _ in 0..9 {
            stats.add(true, 0.004);
        }
        stats.add(false, 0.3);
        let p50 = stats.quantile_ms(0.5).unwrap();
        assert!((p50 - 4.0).abs() < 0.05, "{p50}");
        let max = stats.quantile_ms(1.0).unwrap();
        assert!((max - 300.0).abs() < 3.0, "{max}");
        assert_eq!(stats.buckets[0], 9);
        assert_eq!(stats.buckets[6], 1, "0.3 s is under the 0.5 s bound");
    }

    #[test]
    fn the_strip_has_a_slot_per_hour() {
        let stats = UpstreamStats {
            calls: ToolStats::default(),
            hours: vec![Slot {
                index: 492_730,
                calls: 3,
                failures: 1,
            }],
        };
        let now = chrono::DateTime::from_timestamp(492_731 * 3600 + 60, 0).unwrap();
        let strip = stats.strip(now);
        assert_eq!(strip.len(), 24);
        assert_eq!(strip[22].calls, 3);
        assert_eq!(strip[23].calls, 0);
    }
}
