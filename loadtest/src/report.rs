//! The report every scenario writes: configuration, request rates, failures by cause,
//! latency percentiles, the pool / `pg_stat_activity` / memory time series with their
//! extremes, and issue 7's targets next to what was measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::client::Kind;
use crate::fixture::FixtureCounts;
use crate::gateway::GatewayExit;
use crate::recorder::{KindRecord, Latency, Recorded};
use crate::sampler::Sample;
use crate::scenario::fastpath::FastpathReport;
use crate::scenario::faults::FaultsReport;
use crate::scenario::registry::RegistryReport;
use crate::scenario::replicas::ReplicasReport;
use crate::scenario::soak::SoakReport;
use crate::units::{DelayRange, round3};

/// One kind of request over the run.
#[derive(Clone, Debug, Serialize)]
pub struct KindReport {
    /// Requests answered (or failed).
    pub requests: u64,
    /// Successful.
    pub ok: u64,
    /// Failed.
    pub failed: u64,
    /// `failed / requests`.
    pub failure_rate: f64,
    /// Requests per second over the time this kind was sent.
    pub requests_per_s: f64,
    /// Successful requests per second.
    pub ok_per_s: f64,
    /// Seconds from the first request sent to the last answered.
    pub active_s: f64,
    /// Failures by cause.
    pub failures_by_cause: BTreeMap<String, u64>,
    /// Latency of the successful requests.
    pub latency: Latency,
}

impl KindReport {
    /// The report of one kind's record.
    pub fn of(record: &KindRecord) -> Self {
        let requests = record.requests();
        let failed = record.failed();
        let active_s = record.active_s();
        let per_second = |count: u64| {
            if active_s > 0.0 {
                round3(count as f64 / active_s)
            } else {
                0.0
            }
        };
        KindReport {
            requests,
            ok: record.ok,
            failed,
            failure_rate: rate(failed, requests),
            requests_per_s: per_second(requests),
            ok_per_s: per_second(record.ok),
            active_s: round3(active_s),
            failures_by_cause: record
                .failures
                .iter()
                .map(|(failure, count)| (failure.cause(), *count))
                .collect(),
            latency: Latency::of(&record.latency_us),
        }
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Every request of the run together.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Requests.
    pub requests: u64,
    /// Failed.
    pub failed: u64,
    /// `failed / requests`.
    pub failure_rate: f64,
    /// Failures by cause.
    pub failures_by_cause: BTreeMap<String, u64>,
}

/// The DbActor's pool over the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PoolReport {
    /// Samples in which the gateway answered `GET /admin/pool-stats`.
    pub samples_answered: usize,
    /// Samples in which it did not.
    pub samples_missing: usize,
    /// The most connections checked out at once (sampled).
    pub max_in_use: u32,
    /// The most units of work waiting for a connection at once (sampled).
    pub max_waiting: u64,
    /// Checkout timeouts since the gateway started.
    pub checkout_timeouts: u64,
    /// Retries since the gateway started.
    pub retries: u64,
    /// Failed connection attempts since the gateway started.
    pub connection_errors: u64,
    /// Units detached at their deadline since the gateway started.
    pub deadlines_exceeded: u64,
    /// Callers refused by the open breaker since the gateway started.
    pub breaker_rejections: u64,
    /// Breaker state changes since the gateway started.
    pub breaker_transitions: u64,
    /// Times the breaker opened since the gateway started.
    pub breaker_times_opened: u64,
    /// The breaker's state at the end.
    pub breaker_state_at_end: Option<String>,
    /// The full `GET /admin/pool-stats` body at the end of the load.
    pub final_stats: Value,
}

impl PoolReport {
    fn of(samples: &[Sample], final_stats: Value) -> Self {
        let answered: Vec<_> = samples
            .iter()
            .filter_map(|sample| sample.pool.as_ref())
            .collect();
        let mut report = PoolReport {
            samples_answered: answered.len(),
            samples_missing: samples.len() - answered.len(),
            max_in_use: answered.iter().map(|pool| pool.in_use).max().unwrap_or(0),
            max_waiting: answered.iter().map(|pool| pool.waiting).max().unwrap_or(0),
            final_stats,
            ..PoolReport::default()
        };
        // Counters are cumulative: the last answer holds the totals.
        if let Some(last) = answered.last() {
            report.checkout_timeouts = last.checkout_timeouts;
            report.retries = last.retries;
            report.connection_errors = last.connection_errors;
            report.deadlines_exceeded = last.deadlines_exceeded;
            report.breaker_rejections = last.breaker_rejections;
            report.breaker_transitions = last.breaker.transitions;
            report.breaker_times_opened = last.breaker.times_opened;
            report.breaker_state_at_end = Some(last.breaker.state.clone());
        }
        report
    }
}

/// `idle in transaction` backends of the gateway's database over the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IdleInTransactionReport {
    /// Samples in which PostgreSQL answered.
    pub samples: usize,
    /// The most backends of the database at once.
    pub max_backends: i64,
    /// The most `idle in transaction` backends at once.
    pub max_count: i64,
    /// The oldest `idle in transaction` age seen, in seconds.
    pub max_age_s: f64,
    /// Samples that saw one older than 1 s.
    pub samples_older_than_1s: usize,
}

impl IdleInTransactionReport {
    fn of(samples: &[Sample]) -> Self {
        let activity: Vec<_> = samples.iter().filter_map(|sample| sample.pg).collect();
        IdleInTransactionReport {
            samples: activity.len(),
            max_backends: activity.iter().map(|pg| pg.backends).max().unwrap_or(0),
            max_count: activity
                .iter()
                .map(|pg| pg.idle_in_transaction)
                .max()
                .unwrap_or(0),
            max_age_s: activity
                .iter()
                .map(|pg| pg.idle_in_transaction_max_age_s)
                .fold(0.0, f64::max),
            samples_older_than_1s: activity
                .iter()
                .filter(|pg| pg.idle_in_transaction_max_age_s > 1.0)
                .count(),
        }
    }
}

/// The gateway's resident memory.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RssReport {
    /// At the first sample (before the load).
    pub start_kib: u64,
    /// The most seen.
    pub peak_kib: u64,
    /// At the last sample (after the load).
    pub end_kib: u64,
}

impl RssReport {
    fn of(samples: &[Sample]) -> Self {
        let rss: Vec<u64> = samples.iter().filter_map(|sample| sample.rss_kib).collect();
        RssReport {
            start_kib: rss.first().copied().unwrap_or(0),
            peak_kib: rss.iter().copied().max().unwrap_or(0),
            end_kib: rss.last().copied().unwrap_or(0),
        }
    }
}

/// A target of issue 7 next to the measured value.
#[derive(Clone, Debug, Serialize)]
pub struct TargetCheck {
    /// What is measured.
    pub name: String,
    /// The target, as text (`<= 0`, `>= 0.7`).
    pub target: String,
    /// The measured value.
    pub measured: f64,
    /// Its unit.
    pub unit: &'static str,
    /// Whether the target is met.
    pub met: bool,
    /// How far from the target, in the unit, when missed.
    pub missed_by: Option<f64>,
}

impl TargetCheck {
    /// A check whose `shortfall` (in the unit) is positive when the target is missed.
    fn compare(
        name: impl Into<String>,
        target: String,
        measured: f64,
        unit: &'static str,
        met: bool,
        shortfall: f64,
    ) -> Self {
        TargetCheck {
            name: name.into(),
            target,
            measured: round3(measured),
            unit,
            met,
            missed_by: (!met).then(|| round3(shortfall)),
        }
    }

    /// Met when `measured <= limit`.
    pub fn at_most(name: impl Into<String>, limit: f64, measured: f64, unit: &'static str) -> Self {
        let met = measured <= limit;
        Self::compare(
            name,
            format!("<= {limit}"),
            measured,
            unit,
            met,
            measured - limit,
        )
    }

    /// Met when `measured >= limit`.
    pub fn at_least(
        name: impl Into<String>,
        limit: f64,
        measured: f64,
        unit: &'static str,
    ) -> Self {
        let met = measured >= limit;
        Self::compare(
            name,
            format!(">= {limit}"),
            measured,
            unit,
            met,
            limit - measured,
        )
    }

    /// Met when `measured < limit`.
    pub fn below(name: impl Into<String>, limit: f64, measured: f64, unit: &'static str) -> Self {
        let met = measured < limit;
        Self::compare(
            name,
            format!("< {limit}"),
            measured,
            unit,
            met,
            measured - limit,
        )
    }

    /// A measurement that could not be made: missed, by an unknown amount.
    pub fn unmeasured(
        name: impl Into<String>,
        target: impl Into<String>,
        unit: &'static str,
    ) -> Self {
        TargetCheck {
            name: name.into(),
            target: target.into(),
            measured: f64::NAN,
            unit,
            met: false,
            missed_by: None,
        }
    }
}

/// The gateway as it ran.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayReport {
    /// The binary.
    pub binary: PathBuf,
    /// Its process id.
    pub pid: u32,
    /// Every setting it was started with (secrets hidden).
    pub settings: BTreeMap<String, String>,
    /// `postgresql`.
    pub database: &'static str,
    /// Where its output went.
    pub log_file: PathBuf,
    /// How it ended.
    pub exit: GatewayExit,
}

/// The fixture upstream as it ran.
#[derive(Clone, Debug, Serialize)]
pub struct FixtureReport {
    /// Its tool's delay.
    pub delay: DelayRange,
    /// What it did.
    pub counts: FixtureCounts,
}

/// A scenario's report (written as JSON).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `storm`, `fastpath`, `soak` or `faults`.
    pub scenario: &'static str,
    /// Whether this was the smoke version (tiny parameters).
    pub smoke: bool,
    /// When the run started (UTC).
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// Seconds from the load's start until every virtual user stopped (requests in flight at
    /// the end of the configured duration finish first).
    pub duration_s: f64,
    /// Seconds since the run's origin when the load started (sample times share the origin).
    pub load_started_s: f64,
    /// Every parameter of the scenario.
    pub config: Value,
    /// The gateway.
    pub gateway: GatewayReport,
    /// The fixture upstream.
    pub upstream: FixtureReport,
    /// Per kind of request.
    pub requests: BTreeMap<Kind, KindReport>,
    /// All requests.
    pub totals: Totals,
    /// The DbActor's pool.
    pub pool: PoolReport,
    /// `idle in transaction` backends.
    pub idle_in_transaction: IdleInTransactionReport,
    /// The gateway's memory.
    pub rss: RssReport,
    /// Issue 7's targets with the measured values.
    pub targets: Vec<TargetCheck>,
    /// The fast path's comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fastpath: Option<FastpathReport>,
    /// The registry-size sweep's steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryReport>,
    /// The soak's memory growth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<SoakReport>,
    /// The fault phases and the write check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultsReport>,
    /// The replicas: shares, per-era numbers, the kill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicasReport>,
    /// The time series.
    pub samples: Vec<Sample>,
}

/// What every report is made of; the scenario adds targets and its own section.
pub struct ReportParts<'a> {
    /// The scenario.
    pub scenario: &'static str,
    /// Smoke or not.
    pub smoke: bool,
    /// Its parameters.
    pub config: Value,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When the load started and stopped (seconds since the origin).
    pub load_window_s: (f64, f64),
    /// What the users recorded.
    pub recorded: &'a Recorded,
    /// The samples.
    pub samples: Vec<Sample>,
    /// The last pool statistics (or why they are missing).
    pub final_pool_stats: Value,
    /// The gateway.
    pub gateway: GatewayReport,
    /// The fixture.
    pub upstream: FixtureReport,
}

impl Report {
    /// The common sections; targets and scenario sections are added by the scenario.
    pub fn assemble(parts: ReportParts<'_>) -> Self {
        let requests: BTreeMap<Kind, KindReport> = parts
            .recorded
            .kinds
            .iter()
            .map(|(kind, record)| (*kind, KindReport::of(record)))
            .collect();
        let mut failures_by_cause: BTreeMap<String, u64> = BTreeMap::new();
        for report in requests.values() {
            for (cause, count) in &report.failures_by_cause {
                *failures_by_cause.entry(cause.clone()).or_default() += count;
            }
        }
        let total: u64 = requests.values().map(|report| report.requests).sum();
        let failed: u64 = requests.values().map(|report| report.failed).sum();
        let (load_started_s, load_stopped_s) = parts.load_window_s;
        Report {
            scenario: parts.scenario,
            smoke: parts.smoke,
            started_at: parts.started_at,
            finished_at: Utc::now(),
            duration_s: round3(load_stopped_s - load_started_s),
            load_started_s: round3(load_started_s),
            config: parts.config,
            gateway: parts.gateway,
            upstream: parts.upstream,
            totals: Totals {
                requests: total,
                failed,
                failure_rate: rate(failed, total),
                failures_by_cause,
            },
            requests,
            pool: PoolReport::of(&parts.samples, parts.final_pool_stats),
            idle_in_transaction: IdleInTransactionReport::of(&parts.samples),
            rss: RssReport::of(&parts.samples),
            targets: Vec::new(),
            fastpath: None,
            registry: None,
            soak: None,
            faults: None,
            replicas: None,
            samples: parts.samples,
        }
    }

    /// The file name: `<scenario>-<UTC timestamp>.json`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.scenario, stamp(self.started_at))
    }

    /// Writes the JSON into `dir` (created if needed); returns its path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(self.file_name());
        let json = serde_json::to_vec_pretty(self).context("cannot serialize the report")?;
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// The human summary.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        let smoke = if self.smoke { " (smoke)" } else { "" };
        let _ = writeln!(
            text,
            "== {}{smoke}: {:.1} s of load, {} requests, failure rate {:.3} %",
            self.scenario,
            self.duration_s,
            self.totals.requests,
            self.totals.failure_rate * 100.0
        );
        for (kind, report) in &self.requests {
            let _ = writeln!(
                text,
                "  {kind:<11} {:>9} req {:>9.1} req/s  failed {:>7}  p50 {:>9.3} ms  p95 {:>9.3}  p99 {:>9.3}  max {:>9.3}",
                report.requests,
                report.requests_per_s,
                report.failed,
                report.latency.p50_ms,
                report.latency.p95_ms,
                report.latency.p99_ms,
                report.latency.max_ms,
            );
            if !report.failures_by_cause.is_empty() {
                let _ = writeln!(
                    text,
                    "              failures: {:?}",
                    report.failures_by_cause
                );
            }
        }
        let pool = &self.pool;
        let _ = writeln!(
            text,
            "  pool: max in use {}, max waiting {}, checkout timeouts {}, retries {}, breaker transitions {} (now {})",
            pool.max_in_use,
            pool.max_waiting,
            pool.checkout_timeouts,
            pool.retries,
            pool.breaker_transitions,
            pool.breaker_state_at_end.as_deref().unwrap_or("unknown"),
        );
        let idle = &self.idle_in_transaction;
        let _ = writeln!(
            text,
            "  idle in transaction: max {} at once, oldest {:.3} s; backends max {}",
            idle.max_count, idle.max_age_s, idle.max_backends
        );
        let _ = writeln!(
            text,
            "  gateway RSS: start {} KiB, peak {} KiB, end {} KiB",
            self.rss.start_kib, self.rss.peak_kib, self.rss.end_kib
        );
        if let Some(fastpath) = &self.fastpath {
            let _ = writeln!(text, "{}", fastpath.summary());
        }
        if let Some(registry) = &self.registry {
            let _ = writeln!(text, "{}", registry.summary());
        }
        if let Some(soak) = &self.soak {
            let _ = writeln!(text, "{}", soak.summary());
        }
        if let Some(faults) = &self.faults {
            let _ = writeln!(text, "{}", faults.summary());
        }
        if let Some(replicas) = &self.replicas {
            let _ = writeln!(text, "{}", replicas.summary());
        }
        let _ = writeln!(text, "  targets:");
        for target in &self.targets {
            let verdict = match (target.met, target.missed_by) {
                (true, _) => "met".to_owned(),
                (false, Some(by)) => format!("MISSED by {by} {}", target.unit),
                (false, None) => "MISSED (not measured)".to_owned(),
            };
            let _ = writeln!(
                text,
                "    {:<55} target {:<8} measured {} {:<5} {verdict}",
                target.name, target.target, target.measured, target.unit
            );
        }
        text
    }
}

/// A UTC timestamp for file names: `20260728T101500Z`.
pub fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}
