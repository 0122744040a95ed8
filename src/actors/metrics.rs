//! The MetricsActor: per-tool call counters and latency histograms in memory (for `/metrics`),
//! and the per-call records, buffered and written in batches through the DbActor — never one
//! database round trip per call.
//!
//! A call hands its record to a bounded lock-free queue on its own thread (no message, no
//! wake-up of another thread); the actor drains the queue a few times a second and before
//! answering a snapshot, so the per-call cost is one atomic enqueue.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use actix::prelude::*;

use crate::actors::db::Db;
use crate::db::federation::{InsertToolMetrics, ToolMetricRow};

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
}

/// A snapshot for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    /// Per tool name.
    pub tools: BTreeMap<String, ToolStats>,
    /// Records waiting to be written.
    pub buffered: usize,
    /// Records written so far.
    pub written: u64,
    /// Records dropped because the buffer overflowed.
    pub dropped: u64,
}

/// The actor.
pub struct MetricsActor {
    db: Db,
    queue: crossbeam_channel::Receiver<ToolMetricRow>,
    /// Records the full queue refused (counted where they were refused).
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
    tools: BTreeMap<String, ToolStats>,
    buffer: VecDeque<ToolMetricRow>,
    flushing: bool,
    written: u64,
    dropped: u64,
}

impl Actor for MetricsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
        ctx.run_interval(FLUSH_EVERY, |actor, ctx| actor.flush(ctx));
        ctx.run_interval(DRAIN_EVERY, |actor, ctx| {
            actor.drain();
            if actor.buffer.len() >= FLUSH_AT {
                actor.flush(ctx);
            }
        });
    }
}

/// One finished tool call, as the MCP layer reports it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The tool's name in the gateway.
    pub tool_name: String,
    /// The upstream it ran on, if federated.
    pub gateway_id: Option<String>,
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
        while let Ok(row) = self.queue.try_recv() {
            self.count(row);
        }
    }

    fn count(&mut self, row: ToolMetricRow) {
        let stats = self.tools.entry(row.tool_name.clone()).or_default();
        if row.success {
            stats.successes += 1;
        } else {
            stats.failures += 1;
        }
        let seconds = row.duration_ms / 1000.0;
        stats.duration_sum += seconds;
        if let Some(index) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            stats.buckets[index] += 1;
        }
        if self.buffer.len() >= MAX_BUFFERED {
            self.buffer.pop_front();
            self.dropped += 1;
        }
        self.buffer.push_back(row);
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
        MessageResult(MetricsSnapshot {
            tools: self.tools.clone(),
            buffered: self.buffer.len(),
            written: self.written,
            dropped: self.dropped + self.refused.load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

impl MetricsActor {
    /// Writes the buffer in one unit of work; on failure the records go back to the front.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.buffer.is_empty() {
            return;
        }
        self.flushing = true;
        let rows: Vec<ToolMetricRow> = self.buffer.drain(..).collect();
        let db = self.db.clone();
        let work = async move {
            let outcome = db.run(InsertToolMetrics { rows: rows.clone() }).await;
            (rows, outcome)
        };
        ctx.spawn(work.into_actor(self).map(|(rows, outcome), actor, _ctx| {
            actor.flushing = false;
            match outcome {
                Ok(written) => actor.written += written as u64,
                Err(error) => {
                    tracing::warn!(%error, records = rows.len(), "writing call metrics failed; keeping them for the next flush");
                    for row in rows.into_iter().rev() {
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
}

/// A handle to the MetricsActor.
#[derive(Clone)]
pub struct Metrics {
    addr: Addr<MetricsActor>,
    queue: crossbeam_channel::Sender<ToolMetricRow>,
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Metrics {
    /// Starts the actor.
    pub fn start(db: Db) -> Self {
        let (queue, receiver) = crossbeam_channel::bounded(MAX_BUFFERED);
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let addr = MetricsActor {
            db,
            queue: receiver,
            refused: refused.clone(),
            tools: BTreeMap::new(),
            buffer: VecDeque::new(),
            flushing: false,
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
        if self.queue.try_send(row).is_err() {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!("metrics queue full; a call record was dropped");
        }
    }

    /// The aggregates.
    pub async fn snapshot(&self) -> MetricsSnapshot {
        self.addr.send(GetMetrics).await.unwrap_or_default()
    }
}
