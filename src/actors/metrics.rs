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
    }

    /// The bound of the histogram bucket holding the `q`-quantile (0–1) of durations, in
    /// seconds; `None` without calls, infinity past the last bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.successes + self.failures;
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bound, count) in BUCKETS.iter().zip(self.buckets) {
            seen += count;
            if seen >= rank {
                return Some(*bound);
            }
        }
        Some(f64::INFINITY)
    }
}

/// Hours of per-upstream history kept (the console's 24-hour strip).
pub const HOURS_KEPT: usize = 24;

/// Minutes of history kept for the metrics page's chart.
pub const MINUTES_KEPT: usize = 60;

/// One interval (an hour, a minute) of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    /// The interval, counted from the Unix epoch in its own unit (hours, minutes).
    pub index: i64,
    /// Calls started in it.
    pub calls: u64,
    /// Of which failed.
    pub failures: u64,
}

/// Calls per interval: the last few intervals that had calls, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Series {
    slots: VecDeque<Slot>,
}

impl Series {
    /// Counts a call in interval `index`, keeping the newest `kept` intervals.
    fn add(&mut self, index: i64, success: bool, kept: usize) {
        let failure = u64::from(!success);
        // A record from an interval already passed (queued late) counts in its own.
        match self.slots.iter_mut().rev().find(|slot| slot.index == index) {
            Some(slot) => {
                slot.calls += 1;
                slot.failures += failure;
            }
            None => {
                self.slots.push_back(Slot {
                    index,
                    calls: 1,
                    failures: failure,
                });
                self.slots.make_contiguous().sort_by_key(|slot| slot.index);
                while self.slots.len() > kept {
                    self.slots.pop_front();
                }
            }
        }
    }

    /// The `kept` intervals up to `current`, one entry each (zeros where there were no calls),
    /// oldest first.
    pub fn window(&self, current: i64, kept: usize) -> Vec<Slot> {
        (0..kept as i64)
            .rev()
            .map(|ago| {
                let index = current - ago;
                self.slots
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

/// What calls through one upstream (or one virtual server) showed since the process started.
#[derive(Debug, Clone, Default)]
pub struct UpstreamStats {
    /// Counts, latency, the last call and the last failure.
    pub calls: ToolStats,
    /// Calls per hour.
    pub hours: Series,
}

impl UpstreamStats {
    fn add(&mut self, row: &ToolMetricRow) {
        self.calls.count(row);
        let hour = row.started_at.and_utc().timestamp().div_euclid(3600);
        self.hours.add(hour, row.success, HOURS_KEPT);
    }

    /// The last 24 hours up to `now`, one entry per hour, oldest first.
    pub fn strip(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Slot> {
        self.hours
            .window(now.timestamp().div_euclid(3600), HOURS_KEPT)
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
    pub servers: BTreeMap<String, UpstreamStats>,
    /// Every call, per minute.
    pub minutes: Series,
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
    queue: crossbeam_channel::Receiver<Queued>,
    /// Records the full queue refused (counted where they were refused).
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
    tools: BTreeMap<String, ToolStats>,
    upstreams: BTreeMap<String, UpstreamStats>,
    servers: BTreeMap<String, UpstreamStats>,
    minutes: Series,
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
        self.tools
            .entry(row.tool_name.clone())
            .or_default()
            .count(&row);
        if let Some(gateway) = &row.gateway_id {
            self.upstreams.entry(gateway.clone()).or_default().add(&row);
        }
        if let Some(server) = server_id {
            self.servers.entry(server).or_default().add(&row);
        }
        let minute = row.started_at.and_utc().timestamp().div_euclid(60);
        self.minutes.add(minute, row.success, MINUTES_KEPT);
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
            upstreams: self.upstreams.clone(),
            servers: self.servers.clone(),
            minutes: self.minutes.clone(),
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
    queue: crossbeam_channel::Sender<Queued>,
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A record on its way to the actor, with what is counted but not stored.
pub struct Queued {
    row: ToolMetricRow,
    server_id: Option<String>,
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
            upstreams: BTreeMap::new(),
            servers: BTreeMap::new(),
            minutes: Series::default(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: &str, ms: f64, success: bool) -> ToolMetricRow {
        ToolMetricRow {
            id: "x".into(),
            tool_name: "t".into(),
            gateway_id: Some("g".into()),
            started_at: chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S").unwrap(),
            duration_ms: ms,
            success,
            error: (!success).then(|| "connection refused".into()),
        }
    }

    #[test]
    fn quantiles_are_bucket_bounds() {
        let mut stats = ToolStats::default();
        assert_eq!(stats.quantile(0.5), None);
        for _ in 0..9 {
            stats.add(true, 0.004);
        }
        stats.add(false, 0.3);
        assert_eq!(stats.quantile(0.5), Some(0.005));
        assert_eq!(stats.quantile(0.9), Some(0.005));
        assert_eq!(stats.quantile(0.99), Some(0.5));
        stats.add(true, 99.0);
        assert_eq!(stats.quantile(1.0), Some(f64::INFINITY));
    }

    #[test]
    fn an_upstream_keeps_a_day_of_hours() {
        let mut stats = UpstreamStats::default();
        stats.add(&row("2026-12-04 10:05:00", 3.0, true));
        stats.add(&row("2026-12-04 10:59:00", 3.0, false));
        stats.add(&row("2026-12-04 12:00:00", 3.0, true));
        // Late: an earlier hour still counts in its own.
        stats.add(&row("2026-12-04 10:30:00", 3.0, true));
        assert_eq!(stats.calls.successes, 3);
        assert_eq!(
            stats.calls.last_error.as_ref().unwrap().1,
            "connection refused"
        );
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T12:30:00Z")
            .unwrap()
            .to_utc();
        let strip = stats.strip(now);
        assert_eq!(strip.len(), HOURS_KEPT);
        let last = strip[HOURS_KEPT - 1];
        assert_eq!((last.calls, last.failures), (1, 0));
        assert_eq!((strip[HOURS_KEPT - 2].calls), 0);
        let ten = strip[HOURS_KEPT - 3];
        assert_eq!((ten.calls, ten.failures), (3, 1));
        // Two days later only the new hour is kept in the strip's window.
        for day in 0..30 {
            stats.add(&row(
                &format!("2026-12-{:02} 00:00:00", 5 + day % 20),
                1.0,
                true,
            ));
        }
        assert!(stats.hours.slots.len() <= HOURS_KEPT);
    }
}
