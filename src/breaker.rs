//! A circuit breaker: closed → open after N consecutive transient failures → half-open after
//! the reset time, letting one probe through → closed on success. Used by the DbActor (one for
//! the database) and the UpstreamActor (one per upstream).

use std::time::{Duration, Instant};

use serde::Serialize;

/// The breaker's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Work flows.
    Closed,
    /// Work is refused at once until the reset time passes.
    Open,
    /// One probe is allowed through; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// The snake_case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// How an attempt was let through, so its outcome is booked correctly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A normal attempt while closed (or with the breaker disabled).
    Normal,
    /// The single half-open probe.
    Probe,
}

/// A read-only view for statistics.
#[derive(Clone, Debug, Serialize)]
pub struct BreakerSnapshot {
    /// Whether the breaker is in use at all.
    pub enabled: bool,
    /// Its current position.
    pub state: BreakerState,
    /// Transient failures in a row so far.
    pub consecutive_failures: u32,
    /// How many times it has opened.
    pub times_opened: u64,
    /// Every change of state so far.
    pub transitions: u64,
    /// Seconds until a probe is allowed, while open.
    pub retry_after_seconds: Option<u64>,
}

/// The breaker's state machine. Callers hold its mutex only for these short calls.
#[derive(Debug)]
pub struct Breaker {
    name: String,
    enabled: bool,
    threshold: u32,
    reset: Duration,
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
    times_opened: u64,
    transitions: u64,
}

impl Breaker {
    /// A closed breaker named for logs (`database`, `upstream weather`).
    pub fn new(name: impl Into<String>, enabled: bool, threshold: u32, reset: Duration) -> Self {
        debug_assert!(threshold >= 1);
        Breaker {
            name: name.into(),
            enabled,
            threshold,
            reset,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            opened_at: None,
            probe_in_flight: false,
            times_opened: 0,
            transitions: 0,
        }
    }

    /// Decides whether an attempt may run now; `Err` carries how long to wait.
    pub fn admit(&mut self, now: Instant) -> Result<Admission, Duration> {
        if !self.enabled {
            return Ok(Admission::Normal);
        }
        match self.state {
            BreakerState::Closed => Ok(Admission::Normal),
            BreakerState::Open => {
                let opened_at = self.opened_at.unwrap_or(now);
                let elapsed = now.saturating_duration_since(opened_at);
                if elapsed < self.reset {
                    return Err(self.reset - elapsed);
                }
                self.transition(BreakerState::HalfOpen);
                self.probe_in_flight = true;
                Ok(Admission::Probe)
            }
            BreakerState::HalfOpen => {
                if self.probe_in_flight {
                    Err(self.reset)
                } else {
                    self.probe_in_flight = true;
                    Ok(Admission::Probe)
                }
            }
        }
    }

    /// Books an attempt that reached the database (whatever the database answered).
    pub fn record_success(&mut self, admission: Admission) {
        self.consecutive_failures = 0;
        if admission == Admission::Probe {
            self.probe_in_flight = false;
        }
        if self.state != BreakerState::Closed {
            self.opened_at = None;
            self.transition(BreakerState::Closed);
        }
    }

    /// Books an attempt that failed for a transient, infrastructure reason.
    pub fn record_failure(&mut self, admission: Admission, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if !self.enabled {
            return;
        }
        let should_open = match (self.state, admission) {
            (BreakerState::HalfOpen, Admission::Probe) => true,
            (BreakerState::Closed, _) => self.consecutive_failures >= self.threshold,
            _ => false,
        };
        if admission == Admission::Probe {
            self.probe_in_flight = false;
        }
        if should_open {
            self.opened_at = Some(now);
            self.times_opened += 1;
            self.transition(BreakerState::Open);
        }
    }

    /// Opens now, whatever its count says (another replica saw the upstream go down): callers
    /// are refused until the reset time, then one probe goes.
    pub fn open_now(&mut self, now: Instant) {
        if !self.enabled || self.state == BreakerState::Open {
            return;
        }
        self.opened_at = Some(now);
        self.probe_in_flight = false;
        self.times_opened += 1;
        self.transition(BreakerState::Open);
    }

    /// Closes now (another replica saw the upstream answer again).
    pub fn close_now(&mut self) {
        self.consecutive_failures = 0;
        self.probe_in_flight = false;
        if self.state != BreakerState::Closed {
            self.opened_at = None;
            self.transition(BreakerState::Closed);
        }
    }

    /// Books an attempt that ended without telling anything about the database (a panic in
    /// the unit's own code): a probe slot is released, nothing else changes.
    pub fn record_neutral(&mut self, admission: Admission) {
        if admission == Admission::Probe {
            self.probe_in_flight = false;
        }
    }

    /// How long a refused caller should wait; at least one second for `Retry-After`.
    pub fn retry_after(&self, now: Instant) -> Duration {
        let remaining = match (self.state, self.opened_at) {
            (BreakerState::Open, Some(opened_at)) => self
                .reset
                .saturating_sub(now.saturating_duration_since(opened_at)),
            _ => Duration::ZERO,
        };
        remaining.max(Duration::from_secs(1))
    }

    /// A view for statistics.
    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        BreakerSnapshot {
            enabled: self.enabled,
            state: self.state,
            consecutive_failures: self.consecutive_failures,
            times_opened: self.times_opened,
            transitions: self.transitions,
            retry_after_seconds: (self.state == BreakerState::Open)
                .then(|| self.retry_after(now).as_secs_f64().ceil() as u64),
        }
    }

    fn transition(&mut self, next: BreakerState) {
        if self.state == next {
            return;
        }
        match next {
            BreakerState::Open => tracing::warn!(
                breaker = %self.name,
                breaker.from = ?self.state,
                consecutive_failures = self.consecutive_failures,
                "circuit breaker opened"
            ),
            BreakerState::HalfOpen => {
                tracing::info!(breaker = %self.name, "circuit breaker half-open: letting one probe through")
            }
            BreakerState::Closed => tracing::info!(breaker = %self.name, "circuit breaker closed"),
        }
        self.state = next;
        self.transitions += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_after_a_good_probe() {
        let start = Instant::now();
        let mut breaker = Breaker::new("test", true, 3, Duration::from_secs(10));
        for _ in 0..2 {
            let admission = breaker.admit(start).unwrap();
            breaker.record_failure(admission, start);
        }
        assert_eq!(breaker.state, BreakerState::Closed);
        let admission = breaker.admit(start).unwrap();
        breaker.record_failure(admission, start);
        assert_eq!(breaker.state, BreakerState::Open);
        assert!(breaker.admit(start + Duration::from_secs(5)).is_err());

        let later = start + Duration::from_secs(11);
        assert_eq!(breaker.admit(later), Ok(Admission::Probe));
        assert!(breaker.admit(later).is_err(), "only one probe at a time");
        breaker.record_success(Admission::Probe);
        assert_eq!(breaker.state, BreakerState::Closed);
        assert_eq!(breaker.snapshot(later).transitions, 3);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let start = Instant::now();
        let mut breaker = Breaker::new("test", true, 1, Duration::from_secs(1));
        breaker.record_failure(Admission::Normal, start);
        let later = start + Duration::from_secs(2);
        let probe = breaker.admit(later).unwrap();
        breaker.record_failure(probe, later);
        assert_eq!(breaker.state, BreakerState::Open);
        assert!(breaker.admit(later).is_err());
    }

    #[test]
    fn disabled_never_refuses() {
        let now = Instant::now();
        let mut breaker = Breaker::new("test", false, 1, Duration::from_secs(1));
        for _ in 0..10 {
            breaker.record_failure(Admission::Normal, now);
        }
        assert_eq!(breaker.admit(now), Ok(Admission::Normal));
    }
}
