//! Counters kept by the DbActor and the snapshot it serves.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::breaker::BreakerSnapshot;

/// Live counters; all updates are lock-free except the set of held connections.
#[derive(Default)]
pub(super) struct Counters {
    pub waiting: AtomicU64,
    pub units_ok: AtomicU64,
    pub units_failed: AtomicU64,
    pub checkout_timeouts: AtomicU64,
    pub connection_errors: AtomicU64,
    pub retries: AtomicU64,
    pub deadlines_exceeded: AtomicU64,
    pub panics: AtomicU64,
    pub breaker_rejections: AtomicU64,
    pub longest_hold_us: AtomicU64,
    next_hold_id: AtomicU64,
    holds: Mutex<BTreeMap<u64, Instant>>,
    last_connection_error: Mutex<Option<String>>,
    by_unit: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a connection as held until the guard drops.
    pub fn hold(&self) -> HoldGuard<'_> {
        let id = self.next_hold_id.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        lock(&self.holds).insert(id, started);
        HoldGuard {
            counters: self,
            id,
            started,
        }
    }

    /// Counts one finished unit of work under its name.
    pub fn count_unit(&self, name: &'static str) {
        *lock(&self.by_unit).entry(name).or_default() += 1;
    }

    pub fn set_last_connection_error(&self, message: String) {
        Self::bump(&self.connection_errors);
        *lock(&self.last_connection_error) = Some(message);
    }

    pub fn last_connection_error(&self) -> Option<String> {
        lock(&self.last_connection_error).clone()
    }

    fn current_longest_hold_ms(&self) -> u64 {
        lock(&self.holds)
            .values()
            .next()
            .map(|started| started.elapsed().as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A poisoned lock only means another thread panicked while holding it; the data (counters,
/// a message) is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Ends a hold and records its length.
pub(super) struct HoldGuard<'a> {
    counters: &'a Counters,
    id: u64,
    started: Instant,
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        let held = self.started.elapsed().as_micros() as u64;
        self.counters
            .longest_hold_us
            .fetch_max(held, Ordering::Relaxed);
        lock(&self.counters.holds).remove(&self.id);
    }
}

/// Pool figures from bb8.
pub(super) struct PoolFigures {
    pub max_size: u32,
    pub connections: u32,
    pub idle: u32,
    pub connections_created: u64,
    pub connections_closed_broken: u64,
    pub connections_closed_invalid: u64,
    pub gets_waited: u64,
}

/// Everything the DbActor knows about its pool, served at `GET /admin/pool-stats`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PoolStats {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// `DB_POOL_SIZE`.
    pub max_size: u32,
    /// Open connections.
    pub connections: u32,
    /// Open connections checked out right now.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Units of work waiting to check out a connection right now.
    pub waiting: u64,
    /// Checkouts that gave up after `DB_POOL_TIMEOUT`.
    pub checkout_timeouts: u64,
    /// Failed attempts to open a connection.
    pub connection_errors: u64,
    /// The last of those failures, as the driver put it.
    pub last_connection_error: Option<String>,
    /// Retries after transient failures.
    pub retries: u64,
    /// Units of work that succeeded.
    pub units_ok: u64,
    /// Units of work that failed (for any reason, including not-found answers).
    pub units_failed: u64,
    /// Finished units of work (either outcome) by name (`identity.load`, `tools.create`, …).
    pub units_by_name: BTreeMap<&'static str, u64>,
    /// Units detached at their deadline.
    pub deadlines_exceeded: u64,
    /// Units whose code panicked.
    pub panics: u64,
    /// Callers refused at once because the breaker was open.
    pub breaker_rejections: u64,
    /// The longest any connection has been held by one unit of work, in milliseconds.
    pub longest_hold_ms: f64,
    /// How long the longest-held connection right now has been held, in milliseconds.
    pub current_longest_hold_ms: u64,
    /// Connections opened since start.
    pub connections_created: u64,
    /// Connections discarded as broken.
    pub connections_closed_broken: u64,
    /// Connections discarded as invalid.
    pub connections_closed_invalid: u64,
    /// Checkouts that had to wait for a connection.
    pub gets_waited: u64,
    /// The circuit breaker.
    #[schema(value_type = Object)]
    pub breaker: BreakerSnapshot,
}

impl PoolStats {
    pub(super) fn collect(
        backend: &'static str,
        counters: &Counters,
        pool: PoolFigures,
        breaker: BreakerSnapshot,
    ) -> Self {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PoolStats {
            backend,
            max_size: pool.max_size,
            connections: pool.connections,
            in_use: pool.connections.saturating_sub(pool.idle),
            idle: pool.idle,
            waiting: load(&counters.waiting),
            checkout_timeouts: load(&counters.checkout_timeouts),
            connection_errors: load(&counters.connection_errors),
            last_connection_error: counters.last_connection_error(),
            retries: load(&counters.retries),
            units_ok: load(&counters.units_ok),
            units_failed: load(&counters.units_failed),
            units_by_name: lock(&counters.by_unit).clone(),
            deadlines_exceeded: load(&counters.deadlines_exceeded),
            panics: load(&counters.panics),
            breaker_rejections: load(&counters.breaker_rejections),
            longest_hold_ms: load(&counters.longest_hold_us) as f64 / 1000.0,
            current_longest_hold_ms: counters.current_longest_hold_ms(),
            connections_created: pool.connections_created,
            connections_closed_broken: pool.connections_closed_broken,
            connections_closed_invalid: pool.connections_closed_invalid,
            gets_waited: pool.gets_waited,
            breaker,
        }
    }
}
