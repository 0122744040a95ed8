//! The fast path: the same `tools/call` against a zero-delay fixture, first straight to the
//! upstream (in its own session), then through the gateway, at the same concurrency for the
//! same time. The gateway's overhead is the throughput ratio and the added p50/p99 latency.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{CommonConfig, Harness, Outcome, Rig, RigSpec, ScenarioConfig, publish};
use crate::client::{Kind, McpTarget};
use crate::fixture::FIXTURE_TOOL;
use crate::load::{Action, Workload, run_for};
use crate::recorder::Recorder;
use crate::report::{KindReport, TargetCheck};
use crate::units::{DelayRange, as_seconds, round3};

/// The fast path's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct FastpathConfig {
    /// Concurrent clients, for each of the two runs.
    pub clients: usize,
    /// How long each run is measured.
    #[serde(serialize_with = "as_seconds")]
    pub duration: Duration,
    /// Unmeasured load before each run (connections opened, caches warm).
    #[serde(serialize_with = "as_seconds")]
    pub warmup: Duration,
    /// The fixture tool's delay: none by default (the gateway's bare overhead); a few ms shows
    /// the overhead next to a tool that does some work.
    pub delay: DelayRange,
    /// The era the clients speak to the gateway.
    pub era: ClientEra,
    /// Gateway settings, sampling, smoke or not.
    #[serde(flatten)]
    pub common: CommonConfig,
}

impl Default for FastpathConfig {
    fn default() -> Self {
        FastpathConfig {
            clients: 64,
            duration: Duration::from_secs(30),
            warmup: Duration::from_secs(3),
            delay: DelayRange::ZERO,
            era: ClientEra::Modern,
            common: CommonConfig::full(Duration::from_secs(1)),
        }
    }
}

impl ScenarioConfig for FastpathConfig {
    fn smoke() -> Self {
        FastpathConfig {
            clients: 16,
            duration: Duration::from_secs(3),
            warmup: Duration::from_millis(500),
            delay: DelayRange::ZERO,
            era: ClientEra::Modern,
            common: CommonConfig::smoke(),
        }
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// The protocol era of the gateway's clients (the upstream is always reached the same way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClientEra {
    /// Stateless 2026-07-28 requests (version and capabilities in `_meta`).
    #[default]
    Modern,
    /// A 2025-11-25 session per client (`initialize` first, `Mcp-Session-Id` on every call).
    Session,
}

/// One side of the comparison.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Side {
    /// Successful calls per second.
    pub calls_per_s: f64,
    /// Median latency (ms).
    pub p50_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Failed calls.
    pub failed: u64,
}

impl Side {
    fn of(report: Option<&KindReport>) -> Self {
        report.map_or_else(Side::default, |report| Side {
            calls_per_s: report.ok_per_s,
            p50_ms: report.latency.p50_ms,
            p99_ms: report.latency.p99_ms,
            failed: report.failed,
        })
    }
}

/// The gateway against direct calls.
#[derive(Clone, Debug, Serialize)]
pub struct FastpathReport {
    /// Concurrency of both runs.
    pub clients: usize,
    /// The era of the gateway's clients.
    pub era: ClientEra,
    /// Straight to the upstream.
    pub direct: Side,
    /// Through the gateway.
    pub gateway: Side,
    /// Gateway calls/s divided by direct calls/s.
    pub throughput_ratio: f64,
    /// Gateway p50 minus direct p50 (ms).
    pub added_p50_ms: f64,
    /// Gateway p99 minus direct p99 (ms).
    pub added_p99_ms: f64,
    /// The gateway process's CPU time (user + system, from `/proc/<pid>/stat`) during the
    /// measured gateway run, divided by the calls it answered (µs per call).
    pub gateway_cpu_us_per_call: Option<f64>,
}

impl FastpathReport {
    /// The human lines.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        let _ = write!(
            text,
            "  fast path at {} clients ({:?} era): direct {:.1} calls/s (p50 {:.3} ms, p99 {:.3} ms), gateway {:.1} calls/s (p50 {:.3} ms, p99 {:.3} ms)\n  throughput ratio {:.3}, added p50 {:.3} ms, added p99 {:.3} ms, gateway CPU {} µs per call",
            self.clients,
            self.era,
            self.direct.calls_per_s,
            self.direct.p50_ms,
            self.direct.p99_ms,
            self.gateway.calls_per_s,
            self.gateway.p50_ms,
            self.gateway.p99_ms,
            self.throughput_ratio,
            self.added_p50_ms,
            self.added_p99_ms,
            self.gateway_cpu_us_per_call
                .map_or_else(|| "unknown".to_owned(), |us| format!("{us:.1}")),
        );
        text
    }
}

/// Runs the comparison and writes its report.
pub async fn run(harness: &Harness, config: &FastpathConfig) -> anyhow::Result<Outcome> {
    let rig = Rig::start(
        harness,
        RigSpec {
            scenario: "fastpath",
            delay: config.delay,
            through_proxy: false,
            settings: Vec::new(),
            expected_duration: (config.duration + config.warmup) * 2,
            keep_events: false,
        },
        &config.common,
    )
    .await?;
    let direct =
        McpTarget::direct(&rig.http, rig.upstream.endpoint(), FIXTURE_TOOL.to_owned()).await?;
    let gateway_target = match config.era {
        ClientEra::Modern => rig.target.clone(),
        // Every virtual user shares the session: the gateway serves each call in it.
        ClientEra::Session => Arc::new(
            McpTarget::gateway_session(
                &rig.http,
                rig.target.url.clone(),
                rig.target.tool.clone(),
                rig.api.token().to_owned(),
            )
            .await?,
        ),
    };
    let load_started = rig.now_s();
    let gateway_pid = rig.gateway.pid();
    let mut gateway_cpu = None;
    for (index, target) in [Arc::new(direct), gateway_target].into_iter().enumerate() {
        let workloads = [Workload {
            action: Action::CallTool(target),
            users: config.clients,
            think: Duration::ZERO,
        }];
        let unmeasured = Arc::new(Recorder::new(rig.recorder.clock(), false));
        run_for(
            &rig.http,
            &unmeasured,
            &workloads,
            Duration::ZERO,
            config.warmup,
        )
        .await;
        let before = crate::sampler::cpu_seconds(gateway_pid);
        rig.run_for(&workloads, Duration::ZERO, config.duration)
            .await;
        if index == 1 {
            gateway_cpu = before
                .zip(crate::sampler::cpu_seconds(gateway_pid))
                .map(|(before, after)| after - before);
        }
    }
    let load_window = (load_started, rig.now_s());
    let (mut report, _) = rig.finish(load_window, config).await?;
    let direct = Side::of(report.requests.get(&Kind::DirectCall));
    let gateway = Side::of(report.requests.get(&Kind::McpCall));
    let comparison = FastpathReport {
        clients: config.clients,
        era: config.era,
        direct,
        gateway,
        throughput_ratio: if direct.calls_per_s > 0.0 {
            round3(gateway.calls_per_s / direct.calls_per_s)
        } else {
            0.0
        },
        added_p50_ms: round3(gateway.p50_ms - direct.p50_ms),
        added_p99_ms: round3(gateway.p99_ms - direct.p99_ms),
        gateway_cpu_us_per_call: gateway_cpu.and_then(|seconds| {
            let calls = gateway.calls_per_s * config.duration.as_secs_f64();
            (calls > 0.0).then(|| round3(seconds * 1e6 / calls))
        }),
    };
    report.targets = vec![
        TargetCheck::at_least(
            "gateway throughput / direct throughput",
            0.5,
            comparison.throughput_ratio,
            "ratio",
        ),
        TargetCheck::at_most("added p50 latency", 0.1, comparison.added_p50_ms, "ms"),
        TargetCheck::at_most("added p99 latency", 0.3, comparison.added_p99_ms, "ms"),
    ];
    if let Some(cpu) = comparison.gateway_cpu_us_per_call {
        report.targets.push(TargetCheck::at_most(
            "gateway CPU per call",
            50.0,
            cpu,
            "µs",
        ));
    }
    report.fastpath = Some(comparison);
    publish(harness, report)
}
