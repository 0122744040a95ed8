//! Faults under steady load (MCP calls, REST reads, REST writes whose acknowledged ids are
//! kept), with the gateway reaching PostgreSQL through a proxy the harness controls:
//!
//! (a) every backend of the gateway's database terminated (`pg_terminate_backend`);
//! (b) the database down: connections closed, new ones refused, for a while;
//! (c) the database stalled: connections open, no byte forwarded, for a while;
//! (d) the upstream killed, then restarted on the same port.
//!
//! For each: errors by cause during the phase, and the time from the fault's end to the first
//! success and to steady success. At the end every acknowledged write is read back. The target
//! is recovery within `DB_CIRCUIT_RESET_SECONDS` + 2 s and no acknowledged write lost.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinSet;

use super::{CommonConfig, Harness, Outcome, Rig, RigSpec, ScenarioConfig, publish};
use crate::client::{Api, Kind};
use crate::load::LoadRun;
use crate::postgres::Observer;
use crate::recorder::{Event, Recorder};
use crate::recovery::{KindRecovery, kind_recovery};
use crate::report::TargetCheck;
use crate::units::{DelayRange, as_seconds, round3};

/// Seconds added to a breaker's reset time to make the recovery target (issue 7).
const RECOVERY_MARGIN_S: f64 = 2.0;
/// How often recovery is checked while waiting for it.
const RECOVERY_POLL: Duration = Duration::from_millis(250);
/// Attempts to read back one acknowledged write.
const READ_BACK_ATTEMPTS: usize = 10;
/// Concurrent read-backs.
const READ_BACK_CONCURRENCY: usize = 16;
/// Ids listed in the report per outcome (the counts are complete).
const LISTED_IDS: usize = 100;

/// The faults' parameters.
#[derive(Clone, Debug, Serialize)]
pub struct FaultsConfig {
    /// Concurrent MCP clients.
    pub clients: usize,
    /// Concurrent REST readers (lists).
    pub readers: usize,
    /// Concurrent REST writers (`POST /resources`).
    pub writers: usize,
    /// Every user's pause between requests (steady, not saturating, load).
    #[serde(serialize_with = "as_seconds")]
    pub think: Duration,
    /// The tool's delay.
    pub delay: DelayRange,
    /// Load before the first fault.
    #[serde(serialize_with = "as_seconds")]
    pub baseline: Duration,
    /// How long the database is down or stalled, and the upstream dead.
    #[serde(serialize_with = "as_seconds")]
    pub fault_duration: Duration,
    /// The least time observed after each fault ends.
    #[serde(serialize_with = "as_seconds")]
    pub recovery_window: Duration,
    /// The most time waited for recovery after each fault ends.
    #[serde(serialize_with = "as_seconds")]
    pub recovery_limit: Duration,
    /// `DB_CIRCUIT_RESET_SECONDS`.
    pub db_circuit_reset_seconds: u64,
    /// `UPSTREAM_CIRCUIT_RESET_SECONDS`.
    pub upstream_circuit_reset_seconds: u64,
    /// Gateway settings, sampling, smoke or not.
    #[serde(flatten)]
    pub common: CommonConfig,
}

impl Default for FaultsConfig {
    fn default() -> Self {
        FaultsConfig {
            clients: 50,
            readers: 4,
            writers: 4,
            think: Duration::from_millis(50),
            delay: DelayRange::new(10, 50),
            baseline: Duration::from_secs(10),
            fault_duration: Duration::from_secs(15),
            recovery_window: Duration::from_secs(15),
            recovery_limit: Duration::from_secs(60),
            db_circuit_reset_seconds: 5,
            upstream_circuit_reset_seconds: 5,
            common: CommonConfig::full(Duration::from_secs(1)),
        }
    }
}

impl ScenarioConfig for FaultsConfig {
    fn smoke() -> Self {
        FaultsConfig {
            clients: 10,
            readers: 2,
            writers: 2,
            delay: DelayRange::new(100, 300),
            baseline: Duration::from_secs(2),
            fault_duration: Duration::from_secs(3),
            recovery_window: Duration::from_secs(4),
            recovery_limit: Duration::from_secs(45),
            db_circuit_reset_seconds: 1,
            upstream_circuit_reset_seconds: 1,
            common: CommonConfig::smoke(),
            ..FaultsConfig::default()
        }
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

impl FaultsConfig {
    fn total_duration(&self) -> Duration {
        self.baseline + (self.fault_duration + self.recovery_limit) * 4
    }
}

/// A fault the scenario injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// (a) `pg_terminate_backend` on every backend of the gateway's database.
    TerminateBackends,
    /// (b) the proxy closes every connection and refuses new ones.
    DatabaseDown,
    /// (c) the proxy keeps connections open but forwards nothing.
    DatabaseStalled,
    /// (d) the fixture upstream is stopped, then restarted on the same port.
    UpstreamKilled,
}

impl Fault {
    /// In the order they are injected.
    pub const ALL: [Fault; 4] = [
        Fault::TerminateBackends,
        Fault::DatabaseDown,
        Fault::DatabaseStalled,
        Fault::UpstreamKilled,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::TerminateBackends => "terminate_backends",
            Fault::DatabaseDown => "database_down",
            Fault::DatabaseStalled => "database_stalled",
            Fault::UpstreamKilled => "upstream_killed",
        }
    }

    /// The kinds of request the fault takes away.
    fn affects(self) -> &'static [Kind] {
        match self {
            Fault::TerminateBackends | Fault::DatabaseDown | Fault::DatabaseStalled => {
                &[Kind::RestWrite, Kind::RestList]
            }
            Fault::UpstreamKilled => &[Kind::McpCall],
        }
    }

    /// The breaker reset behind the target: the database's, or the upstream's for (d).
    fn recovery_target_s(self, config: &FaultsConfig) -> f64 {
        let reset = match self {
            Fault::UpstreamKilled => config.upstream_circuit_reset_seconds,
            Fault::TerminateBackends | Fault::DatabaseDown | Fault::DatabaseStalled => {
                config.db_circuit_reset_seconds
            }
        };
        reset as f64 + RECOVERY_MARGIN_S
    }
}

/// One fault and how the gateway came through it.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// The fault.
    pub fault: Fault,
    /// When it was injected (seconds since the run's origin).
    pub fault_started_s: f64,
    /// When it was lifted (the same moment for (a)).
    pub fault_ended_s: f64,
    /// When observation of this phase ended.
    pub observed_until_s: f64,
    /// Backends terminated, for (a).
    pub backends_terminated: Option<i64>,
    /// Requests answered during the phase.
    pub requests: u64,
    /// Failures during the phase, per kind and cause.
    pub failures: BTreeMap<Kind, BTreeMap<String, u64>>,
    /// The kinds the fault takes away.
    pub affected_kinds: Vec<Kind>,
    /// Recovery of every kind sent during the phase.
    pub recovery: Vec<KindRecovery>,
    /// Whether every kind recovered.
    pub recovered: bool,
    /// Seconds from the fault's end until every affected kind had a success.
    pub time_to_first_success_s: Option<f64>,
    /// Seconds from the fault's end until every affected kind succeeded steadily.
    pub time_to_steady_success_s: Option<f64>,
    /// The breaker's reset time + 2 s.
    pub recovery_target_s: f64,
}

/// The acknowledged writes, read back.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WriteCheck {
    /// Writes the gateway acknowledged with 201.
    pub acknowledged: usize,
    /// Of those, read back.
    pub present: usize,
    /// Of those, answered 404: lost.
    pub lost: usize,
    /// Of those, not readable at all (neither 200 nor 404).
    pub unverified: usize,
    /// The first lost ids.
    pub lost_ids: Vec<String>,
    /// The first unverified ids.
    pub unverified_ids: Vec<String>,
}

/// The faults section of the report.
#[derive(Clone, Debug, Serialize)]
pub struct FaultsReport {
    /// `DB_CIRCUIT_RESET_SECONDS`.
    pub db_circuit_reset_seconds: u64,
    /// `UPSTREAM_CIRCUIT_RESET_SECONDS`.
    pub upstream_circuit_reset_seconds: u64,
    /// `DB_CIRCUIT_RESET_SECONDS` + 2 s.
    pub database_recovery_target_s: f64,
    /// `UPSTREAM_CIRCUIT_RESET_SECONDS` + 2 s.
    pub upstream_recovery_target_s: f64,
    /// Each fault.
    pub phases: Vec<PhaseReport>,
    /// The write check.
    pub writes: WriteCheck,
}

impl FaultsReport {
    /// The human lines.
    pub fn summary(&self) -> String {
        let seconds = |value: Option<f64>| value.map_or("never".to_owned(), |s| format!("{s} s"));
        let mut text = String::new();
        for phase in &self.phases {
            let failures: Vec<String> = phase
                .failures
                .iter()
                .map(|(kind, causes)| format!("{kind} {causes:?}"))
                .collect();
            let _ = writeln!(
                text,
                "  fault {:<18} {:>6.1}..{:>6.1} s: {} requests, recovered {}, first success after {}, steady after {} (target {} s); failures: {}",
                phase.fault.name(),
                phase.fault_started_s,
                phase.fault_ended_s,
                phase.requests,
                phase.recovered,
                seconds(phase.time_to_first_success_s),
                seconds(phase.time_to_steady_success_s),
                phase.recovery_target_s,
                if failures.is_empty() {
                    "none".to_owned()
                } else {
                    failures.join(", ")
                },
            );
        }
        let writes = &self.writes;
        let _ = write!(
            text,
            "  writes: {} acknowledged, {} read back, {} lost, {} unverified",
            writes.acknowledged, writes.present, writes.lost, writes.unverified
        );
        text
    }
}

/// Runs the faults and writes the report.
pub async fn run(harness: &Harness, config: &FaultsConfig) -> anyhow::Result<Outcome> {
    let settings = vec![
        (
            "DB_CIRCUIT_RESET_SECONDS",
            config.db_circuit_reset_seconds.to_string(),
        ),
        (
            "UPSTREAM_CIRCUIT_RESET_SECONDS",
            config.upstream_circuit_reset_seconds.to_string(),
        ),
    ];
    let mut rig = Rig::start(
        harness,
        RigSpec {
            scenario: "faults",
            delay: config.delay,
            through_proxy: true,
            settings,
            expected_duration: config.total_duration(),
            keep_events: true,
        },
        &config.common,
    )
    .await?;
    let mut observer = Observer::new(rig.database.server(), rig.database.name());
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let workloads = [
        rig.tool_callers(config.clients, config.think),
        rig.listers(config.readers, config.think),
        rig.writers(config.writers, config.think, &acknowledged, false),
    ];
    let load_started = rig.now_s();
    let load = LoadRun::start(&rig.http, &rig.recorder, &workloads, Duration::ZERO);
    tokio::time::sleep(config.baseline).await;
    let mut windows = Vec::new();
    for fault in Fault::ALL {
        let window = inject(fault, &mut rig, &mut observer, config).await;
        let window = match window {
            Ok(window) => window,
            Err(error) => {
                load.stop().await;
                return Err(error);
            }
        };
        let observed_until_ms = wait_for_recovery(&rig.recorder, &window, config).await;
        windows.push((window, observed_until_ms));
    }
    load.stop().await;
    let load_stopped = rig.now_s();
    let ids = acknowledged
        .lock()
        .map(|ids| ids.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
    let writes = read_back(&rig.api, ids).await;
    let (mut report, recorded) = rig.finish((load_started, load_stopped), config).await?;
    let phases: Vec<PhaseReport> = windows
        .iter()
        .map(|(window, observed_until_ms)| {
            phase_report(&recorded.events, window, *observed_until_ms, config)
        })
        .collect();
    report.targets = phases
        .iter()
        .map(|phase| {
            let name = format!(
                "{}: steady success after the fault ends",
                phase.fault.name()
            );
            match phase.time_to_steady_success_s {
                Some(seconds) => TargetCheck::at_most(name, phase.recovery_target_s, seconds, "s"),
                None => {
                    TargetCheck::unmeasured(name, format!("<= {}", phase.recovery_target_s), "s")
                }
            }
        })
        .chain([TargetCheck::at_most(
            "acknowledged writes lost",
            0.0,
            (writes.lost + writes.unverified) as f64,
            "count",
        )])
        .collect();
    report.faults = Some(FaultsReport {
        db_circuit_reset_seconds: config.db_circuit_reset_seconds,
        upstream_circuit_reset_seconds: config.upstream_circuit_reset_seconds,
        database_recovery_target_s: Fault::DatabaseDown.recovery_target_s(config),
        upstream_recovery_target_s: Fault::UpstreamKilled.recovery_target_s(config),
        phases,
        writes,
    });
    publish(harness, report)
}

/// When a fault held (ms since the run's origin).
struct FaultWindow {
    fault: Fault,
    started_ms: u64,
    ended_ms: u64,
    backends_terminated: Option<i64>,
}

async fn inject(
    fault: Fault,
    rig: &mut Rig,
    observer: &mut Observer,
    config: &FaultsConfig,
) -> anyhow::Result<FaultWindow> {
    let clock = rig.recorder.clock();
    let started_ms = clock.now_ms();
    tracing::info!(fault = fault.name(), "injecting");
    let mut backends_terminated = None;
    match fault {
        Fault::TerminateBackends => {
            backends_terminated = Some(observer.terminate_backends().await?);
        }
        Fault::DatabaseDown | Fault::DatabaseStalled => {
            let proxy = rig
                .proxy
                .as_ref()
                .context("the faults rig runs the database through a proxy")?;
            if fault == Fault::DatabaseDown {
                proxy.cut();
            } else {
                proxy.stall();
            }
            tokio::time::sleep(config.fault_duration).await;
            proxy.restore();
        }
        Fault::UpstreamKilled => {
            rig.upstream.stop().await;
            tokio::time::sleep(config.fault_duration).await;
            rig.upstream.restart().await?;
        }
    }
    let ended_ms = match fault {
        // The kill itself is the moment recovery is timed from.
        Fault::TerminateBackends => started_ms,
        Fault::DatabaseDown | Fault::DatabaseStalled | Fault::UpstreamKilled => clock.now_ms(),
    };
    Ok(FaultWindow {
        fault,
        started_ms,
        ended_ms,
        backends_terminated,
    })
}

/// Waits at least the recovery window after the fault ended, and longer (up to the limit)
/// while some kind has not recovered; returns when observation ended (ms).
async fn wait_for_recovery(
    recorder: &Recorder,
    window: &FaultWindow,
    config: &FaultsConfig,
) -> u64 {
    let clock = recorder.clock();
    let least = window.ended_ms + config.recovery_window.as_millis() as u64;
    let most = window.ended_ms + config.recovery_limit.as_millis() as u64;
    loop {
        tokio::time::sleep(RECOVERY_POLL).await;
        let now = clock.now_ms();
        if now >= most {
            return now;
        }
        if now < least {
            continue;
        }
        let recovered = Kind::ALL.into_iter().all(|kind| {
            let events = recorder.events_since(kind, window.started_ms);
            events.is_empty() || kind_recovery(kind, &events, window.ended_ms).recovered
        });
        if recovered {
            return now;
        }
    }
}

fn phase_report(
    events: &[Event],
    window: &FaultWindow,
    observed_until_ms: u64,
    config: &FaultsConfig,
) -> PhaseReport {
    let in_phase: Vec<Event> = events
        .iter()
        .filter(|event| {
            event.finished_ms >= window.started_ms && event.finished_ms <= observed_until_ms
        })
        .copied()
        .collect();
    let mut failures: BTreeMap<Kind, BTreeMap<String, u64>> = BTreeMap::new();
    for event in &in_phase {
        if let Some(failure) = event.failure {
            *failures
                .entry(event.kind)
                .or_default()
                .entry(failure.cause())
                .or_default() += 1;
        }
    }
    let recovery: Vec<KindRecovery> = Kind::ALL
        .into_iter()
        .filter_map(|kind| {
            let of_kind: Vec<Event> = in_phase
                .iter()
                .filter(|event| event.kind == kind)
                .copied()
                .collect();
            (!of_kind.is_empty()).then(|| kind_recovery(kind, &of_kind, window.ended_ms))
        })
        .collect();
    let affected: Vec<&KindRecovery> = recovery
        .iter()
        .filter(|kind| window.fault.affects().contains(&kind.kind))
        .collect();
    // The moment every affected kind got there; none if one never did.
    let slowest = |pick: fn(&KindRecovery) -> Option<f64>| {
        let times: Option<Vec<f64>> = affected.iter().map(|kind| pick(kind)).collect();
        times
            .filter(|times| !times.is_empty())
            .map(|times| times.into_iter().fold(0.0, f64::max))
    };
    let seconds = |ms: u64| round3(ms as f64 / 1000.0);
    PhaseReport {
        fault: window.fault,
        fault_started_s: seconds(window.started_ms),
        fault_ended_s: seconds(window.ended_ms),
        observed_until_s: seconds(observed_until_ms),
        backends_terminated: window.backends_terminated,
        requests: in_phase.len() as u64,
        failures,
        affected_kinds: window.fault.affects().to_vec(),
        recovered: recovery.iter().all(|kind| kind.recovered),
        time_to_first_success_s: slowest(|kind| kind.first_success_after_s),
        time_to_steady_success_s: slowest(|kind| kind.steady_success_after_s),
        recovery,
        recovery_target_s: window.fault.recovery_target_s(config),
    }
}

/// How reading back one acknowledged write went.
enum ReadBack {
    Present,
    Lost,
    Unverified,
}

/// Reads every acknowledged write back (`GET /resources/{id}`).
async fn read_back(api: &Api, ids: Vec<String>) -> WriteCheck {
    let mut check = WriteCheck {
        acknowledged: ids.len(),
        ..WriteCheck::default()
    };
    let chunk_size = ids.len().div_ceil(READ_BACK_CONCURRENCY).max(1);
    let mut readers = JoinSet::new();
    for chunk in ids.chunks(chunk_size) {
        let chunk = chunk.to_vec();
        let api = api.clone();
        readers.spawn(async move {
            let mut outcomes = Vec::with_capacity(chunk.len());
            for id in chunk {
                let outcome = read_one(&api, &id).await;
                outcomes.push((id, outcome));
            }
            outcomes
        });
    }
    while let Some(outcomes) = readers.join_next().await {
        for (id, outcome) in outcomes.unwrap_or_default() {
            match outcome {
                ReadBack::Present => check.present += 1,
                ReadBack::Lost => {
                    check.lost += 1;
                    if check.lost_ids.len() < LISTED_IDS {
                        check.lost_ids.push(id);
                    }
                }
                ReadBack::Unverified => {
                    check.unverified += 1;
                    if check.unverified_ids.len() < LISTED_IDS {
                        check.unverified_ids.push(id);
                    }
                }
            }
        }
    }
    check
}

async fn read_one(api: &Api, id: &str) -> ReadBack {
    for _ in 0..READ_BACK_ATTEMPTS {
        match api.get(&format!("/resources/{id}")).await {
            Ok(reply) if reply.status.is_success() => return ReadBack::Present,
            Ok(reply) if reply.status == reqwest::StatusCode::NOT_FOUND => return ReadBack::Lost,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    ReadBack::Unverified
}
