//! What virtual users record: latency of successful requests in an HDR histogram per kind,
//! failures by cause, live counters for the sampler, and (when asked) every request's start,
//! end and outcome so fault recovery can be timed.
//!
//! Users write into one of a few mutex-guarded shards (picked by user index), so thousands of
//! users neither contend on one lock nor each carry their own histograms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::client::{Failure, Kind};

/// Shards of the recorder.
const SHARDS: usize = 16;
/// Significant figures of the latency histograms.
const SIGNIFICANT_FIGURES: u8 = 3;

/// The time origin of a run; timestamps are milliseconds since it.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Milliseconds from the origin to `instant` (0 before it).
    pub fn ms_at(&self, instant: Instant) -> u64 {
        instant.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// Milliseconds from the origin to now.
    pub fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// Seconds from the origin to now.
    pub fn now_s(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }
}

/// One finished request (kept only when the recorder keeps events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// What it was.
    pub kind: Kind,
    /// When it was sent (ms since the run's origin).
    pub started_ms: u64,
    /// When its outcome was known.
    pub finished_ms: u64,
    /// Why it failed, if it did.
    pub failure: Option<Failure>,
}

impl Event {
    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Everything recorded about one kind of request.
#[derive(Clone, Debug)]
pub struct KindRecord {
    /// Successful requests.
    pub ok: u64,
    /// Failed requests by cause.
    pub failures: BTreeMap<Failure, u64>,
    /// Latency of successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
    /// When the first request of this kind was sent (ms since the origin).
    pub first_started_ms: Option<u64>,
    /// When the last one finished.
    pub last_finished_ms: Option<u64>,
}

impl Default for KindRecord {
    fn default() -> Self {
        Self::new()
    }
}

impl KindRecord {
    pub(crate) fn new() -> Self {
        KindRecord {
            ok: 0,
            failures: BTreeMap::new(),
            latency_us: new_histogram(),
            first_started_ms: None,
            last_finished_ms: None,
        }
    }

    /// Failed requests.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// All requests.
    pub fn requests(&self) -> u64 {
        self.ok + self.failed()
    }

    /// The time from the first request sent to the last answered, in seconds.
    pub fn active_s(&self) -> f64 {
        match (self.first_started_ms, self.last_finished_ms) {
            (Some(first), Some(last)) if last > first => (last - first) as f64 / 1000.0,
            _ => 0.0,
        }
    }

    fn merge(&mut self, other: &KindRecord) {
        self.ok += other.ok;
        for (failure, count) in &other.failures {
            *self.failures.entry(*failure).or_default() += count;
        }
        self.latency_us
            .add(&other.latency_us)
            .expect("auto-resizing histograms always merge");
        self.first_started_ms = min_option(self.first_started_ms, other.first_started_ms);
        self.last_finished_ms = self.last_finished_ms.max(other.last_finished_ms);
    }
}

fn min_option(left: Option<u64>, right: Option<u64>) -> Option<u64> {
    match (left, right) {
        (Some(left), Some(right)) => Some(left.min(right)),
        (left, None) => left,
        (None, right) => right,
    }
}

fn new_histogram() -> Histogram<u64> {
    let mut histogram =
        Histogram::new(SIGNIFICANT_FIGURES).expect("3 significant figures are supported");
    histogram.auto(true);
    histogram
}

/// One shard: a record per kind and the events.
struct Shard {
    kinds: [KindRecord; 4],
    events: Vec<Event>,
}

/// Live totals per kind, read by the sampler while the run goes on.
#[derive(Default)]
struct LiveCounts {
    ok: [AtomicU64; 4],
    failed: [AtomicU64; 4],
}

/// Cumulative successes and failures of one kind at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Successful requests so far.
    pub ok: u64,
    /// Failed requests so far.
    pub failed: u64,
}

/// Shared by every virtual user of a run.
pub struct Recorder {
    clock: Clock,
    keep_events: bool,
    shards: Vec<Mutex<Shard>>,
    live: LiveCounts,
}

/// What a run recorded, merged.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Per kind, only the kinds that were sent.
    pub kinds: BTreeMap<Kind, KindRecord>,
    /// Every request, by finishing time (empty unless events were kept).
    pub events: Vec<Event>,
}

impl Recorder {
    /// A recorder timing from `clock`; `keep_events` keeps every request (for recovery times).
    pub fn new(clock: Clock, keep_events: bool) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    kinds: std::array::from_fn(|_| KindRecord::new()),
                    events: Vec::new(),
                })
            })
            .collect();
        Recorder {
            clock,
            keep_events,
            shards,
            live: LiveCounts::default(),
        }
    }

    /// The run's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn shard(&self, user: usize) -> MutexGuard<'_, Shard> {
        self.shards[user % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one request of `user` sent at `started` and finished now.
    pub fn record(&self, user: usize, kind: Kind, started: Instant, outcome: Result<(), Failure>) {
        let finished = Instant::now();
        let latency = finished.saturating_duration_since(started);
        let started_ms = self.clock.ms_at(started);
        let finished_ms = self.clock.ms_at(finished);
        let counter = match outcome {
            Ok(()) => &self.live.ok[kind.index()],
            Err(_) => &self.live.failed[kind.index()],
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(user);
        let record = &mut shard.kinds[kind.index()];
        match outcome {
            Ok(()) => {
                record.ok += 1;
                let micros = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                // Auto-resizing: recording cannot fail for a positive value.
                let _ = record.latency_us.record(micros);
            }
            Err(failure) => *record.failures.entry(failure).or_default() += 1,
        }
        record.first_started_ms = min_option(record.first_started_ms, Some(started_ms));
        record.last_finished_ms = record.last_finished_ms.max(Some(finished_ms));
        if self.keep_events {
            shard.events.push(Event {
                kind,
                started_ms,
                finished_ms,
                failure: outcome.err(),
            });
        }
    }

    /// Cumulative successes and failures per kind (kinds with no request left out).
    pub fn progress(&self) -> BTreeMap<Kind, Progress> {
        Kind::ALL
            .into_iter()
            .map(|kind| {
                let progress = Progress {
                    ok: self.live.ok[kind.index()].load(Ordering::Relaxed),
                    failed: self.live.failed[kind.index()].load(Ordering::Relaxed),
                };
                (kind, progress)
            })
            .filter(|(_, progress)| progress.ok + progress.failed > 0)
            .collect()
    }

    /// The events of `kind` finished at or after `since_ms`, by finishing time (a copy, for a
    /// live recovery check; empty unless events are kept).
    pub fn events_since(&self, kind: Kind, since_ms: u64) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .shards
            .iter()
            .flat_map(|shard| {
                let shard = shard
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                shard
                    .events
                    .iter()
                    .rev()
                    // Pushes are ordered by finishing time up to thread scheduling: a second
                    // of slack keeps every event that finished after `since_ms`.
                    .take_while(|event| event.finished_ms + 1000 >= since_ms)
                    .filter(|event| event.kind == kind && event.finished_ms >= since_ms)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect();
        events.sort_by_key(|event| event.finished_ms);
        events
    }

    /// Merges every shard (the recorder is left empty).
    pub fn finish(&self) -> Recorded {
        let mut kinds: BTreeMap<Kind, KindRecord> = BTreeMap::new();
        let mut events = Vec::new();
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for kind in Kind::ALL {
                let record = &shard.kinds[kind.index()];
                if record.requests() > 0 {
                    kinds.entry(kind).or_default().merge(record);
                }
            }
            events.append(&mut shard.events);
            shard.kinds = std::array::from_fn(|_| KindRecord::new());
        }
        events.sort_by_key(|event| event.finished_ms);
        Recorded { kinds, events }
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// The mean.
    pub mean_ms: f64,
}

impl Latency {
    /// The percentiles of `histogram` (microseconds).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Latency::default();
        }
        let ms = |micros: u64| crate::units::round3(micros as f64 / 1000.0);
        Latency {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
            mean_ms: crate::units::round3(histogram.mean() / 1000.0),
        }
    }
}
