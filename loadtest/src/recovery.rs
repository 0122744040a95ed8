//! Recovery after a fault, computed from recorded events: how long after the fault ended the
//! first request succeeded, and from when on every request sent succeeded.

use serde::Serialize;

use crate::client::Kind;
use crate::recorder::Event;

/// Successes in a row (from the steady point on) that count as recovered.
pub const STEADY_SUCCESSES: usize = 3;

/// How one kind of request came back after a fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindRecovery {
    /// The kind.
    pub kind: Kind,
    /// Requests of this kind answered during the phase.
    pub requests: u64,
    /// Of those, failed.
    pub failures: u64,
    /// Seconds from the fault's end to the first success answered after it.
    pub first_success_after_s: Option<f64>,
    /// Seconds from the fault's end until the answer of the first request of the run of
    /// successes that lasts to the end of the phase: every request sent from then on (and
    /// after the fault ended) succeeded. Failures of requests sent during the fault do not
    /// delay it.
    pub steady_success_after_s: Option<f64>,
    /// Whether at least [`STEADY_SUCCESSES`] requests succeeded from the steady point on.
    pub recovered: bool,
}

/// The recovery of one kind from `events` (all of this kind, answered during the phase, by
/// finishing time) for a fault that ended at `fault_end_ms`.
pub fn kind_recovery(kind: Kind, events: &[Event], fault_end_ms: u64) -> KindRecovery {
    debug_assert!(events.iter().all(|event| event.kind == kind));
    let seconds_after_end =
        |event: &Event| event.finished_ms.saturating_sub(fault_end_ms) as f64 / 1000.0;
    let first_success = events
        .iter()
        .find(|event| event.ok() && event.finished_ms >= fault_end_ms);
    // Every request sent after the last failed one succeeded (by definition of "last").
    let last_failed_send = events
        .iter()
        .filter(|event| !event.ok())
        .map(|event| event.started_ms)
        .max();
    let sent_after_last_failure =
        |event: &&Event| last_failed_send.is_none_or(|last| event.started_ms > last);
    let steady = events
        .iter()
        .filter(sent_after_last_failure)
        .find(|event| event.finished_ms >= fault_end_ms);
    let successes_after = steady.map_or(0, |steady| {
        events
            .iter()
            .filter(|event| event.started_ms >= steady.started_ms)
            .filter(sent_after_last_failure)
            .count()
    });
    KindRecovery {
        kind,
        requests: events.len() as u64,
        failures: events.iter().filter(|event| !event.ok()).count() as u64,
        first_success_after_s: first_success.map(seconds_after_end),
        steady_success_after_s: steady.map(seconds_after_end),
        recovered: successes_after >= STEADY_SUCCESSES,
    }
}
