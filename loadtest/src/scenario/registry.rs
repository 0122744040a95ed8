//! The registry-size sweep: tools created one by one through `POST /tools` up to each size (each
//! create timed), then the same `tools/call` as the fast path at `clients` and at one client,
//! and the gateway's RSS — so a catalog whose cost grows with the registry shows.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::{CommonConfig, Harness, Outcome, Rig, RigSpec, ScenarioConfig, publish};
use crate::client::Kind;
use crate::load::{Action, Workload, run_for};
use crate::recorder::Recorder;
use crate::report::KindReport;
use crate::units::{DelayRange, as_seconds, round3};

/// The sweep's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct RegistryConfig {
    /// Registry sizes (tools) measured, in increasing order.
    pub sizes: Vec<usize>,
    /// Concurrent clients of the busy run at each size (the other run has one).
    pub clients: usize,
    /// How long each call run is measured.
    #[serde(serialize_with = "as_seconds")]
    pub duration: Duration,
    /// Unmeasured load before each call run.
    #[serde(serialize_with = "as_seconds")]
    pub warmup: Duration,
    /// Gateway settings, sampling, smoke or not.
    #[serde(flatten)]
    pub common: CommonConfig,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            sizes: vec![0, 1_000, 10_000],
            clients: 32,
            duration: Duration::from_secs(15),
            warmup: Duration::from_secs(3),
            common: CommonConfig::full(Duration::from_secs(1)),
        }
    }
}

impl ScenarioConfig for RegistryConfig {
    fn smoke() -> Self {
        RegistryConfig {
            sizes: vec![0, 20],
            clients: 4,
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(200),
            common: CommonConfig::smoke(),
        }
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// Calls at one concurrency.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Calls {
    /// Successful calls per second.
    pub calls_per_s: f64,
    /// Median latency (ms).
    pub p50_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Failed calls.
    pub failed: u64,
}

/// One registry size.
#[derive(Clone, Debug, Serialize)]
pub struct RegistryStep {
    /// Tools created through the API so far (the fixture's federated tool besides).
    pub tools: usize,
    /// Creates made to reach this size.
    pub created: usize,
    /// Their total time (s).
    pub create_s: f64,
    /// Median create latency (ms).
    pub create_p50_ms: f64,
    /// 99th percentile create latency (ms).
    pub create_p99_ms: f64,
    /// Calls at `clients`.
    pub busy: Calls,
    /// Calls at one client.
    pub one_client: Calls,
    /// The gateway's RSS after the calls (KiB).
    pub rss_kib: Option<u64>,
}

/// The whole sweep.
#[derive(Clone, Debug, Serialize)]
pub struct RegistryReport {
    /// Concurrency of the busy runs.
    pub clients: usize,
    /// One entry per size.
    pub steps: Vec<RegistryStep>,
}

impl RegistryReport {
    /// The human lines.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        for step in &self.steps {
            let _ = writeln!(
                text,
                "  {} tools: {} creates in {:.1} s (p50 {:.2} ms, p99 {:.2} ms); {} clients {:.1} calls/s (p50 {:.3} ms); 1 client {:.1} calls/s (p50 {:.3} ms); RSS {} KiB",
                step.tools,
                step.created,
                step.create_s,
                step.create_p50_ms,
                step.create_p99_ms,
                self.clients,
                step.busy.calls_per_s,
                step.busy.p50_ms,
                step.one_client.calls_per_s,
                step.one_client.p50_ms,
                step.rss_kib
                    .map_or_else(|| "?".to_owned(), |kib| kib.to_string()),
            );
        }
        text.trim_end().to_owned()
    }
}

/// The `p`th percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Runs the sweep and writes its report.
pub async fn run(harness: &Harness, config: &RegistryConfig) -> anyhow::Result<Outcome> {
    let calls_time = (config.duration + config.warmup) * 2;
    let rig = Rig::start(
        harness,
        RigSpec {
            scenario: "registry",
            delay: DelayRange::ZERO,
            through_proxy: false,
            settings: Vec::new(),
            expected_duration: calls_time * config.sizes.len() as u32,
            keep_events: false,
        },
        &config.common,
    )
    .await?;
    let load_started = rig.now_s();
    let mut steps = Vec::new();
    let mut created = 0usize;
    for &size in &config.sizes {
        let mut latencies = Vec::new();
        let began = Instant::now();
        while created < size {
            let started = Instant::now();
            let response = rig
                .http
                .post(format!("{}/tools", rig.gateway.base()))
                .bearer_auth(rig.gateway.admin_token())
                .json(&json!({
                    "name": format!("sweep-{created:06}"),
                    "url": "http://127.0.0.1:9/items/{id}",
                    "request_type": "GET",
                    "description": "a REST tool of the registry sweep",
                    "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
                }))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "creating tool {created} answered {}",
                response.status()
            );
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            created += 1;
        }
        let create_s = began.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let mut runs = [Calls::default(); 2];
        for (run, clients) in runs.iter_mut().zip([config.clients, 1]) {
            let workloads = [Workload {
                action: Action::CallTool(rig.target.clone()),
                users: clients,
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
            let measured = Arc::new(Recorder::new(rig.recorder.clock(), false));
            run_for(
                &rig.http,
                &measured,
                &workloads,
                Duration::ZERO,
                config.duration,
            )
            .await;
            if let Some(record) = measured.finish().kinds.get(&Kind::McpCall) {
                let report = KindReport::of(record);
                *run = Calls {
                    calls_per_s: report.ok_per_s,
                    p50_ms: report.latency.p50_ms,
                    p99_ms: report.latency.p99_ms,
                    failed: report.failed,
                };
            }
        }
        steps.push(RegistryStep {
            tools: size,
            created: latencies.len(),
            create_s: round3(create_s),
            create_p50_ms: round3(percentile(&latencies, 0.5)),
            create_p99_ms: round3(percentile(&latencies, 0.99)),
            busy: runs[0],
            one_client: runs[1],
            rss_kib: crate::sampler::rss_kib(rig.gateway.pid()),
        });
    }
    let load_window = (load_started, rig.now_s());
    let (mut report, _) = rig.finish(load_window, config).await?;
    report.registry = Some(RegistryReport {
        clients: config.clients,
        steps,
    });
    publish(harness, report)
}
