//! The soak: steady mixed load (MCP calls, REST lists, REST writes) for ten minutes with the
//! gateway's memory sampled every 5 s. The peer's memory grows 50–60 % in minutes (a new HTTP
//! client per upstream request); the target is under 5 % growth after warm-up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::{CommonConfig, Harness, Outcome, Rig, RigSpec, ScenarioConfig, pool_targets, publish};
use crate::report::TargetCheck;
use crate::sampler::Sample;
use crate::units::{DelayRange, as_seconds, round3};

/// The soak's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct SoakConfig {
    /// Concurrent MCP clients.
    pub clients: usize,
    /// Concurrent REST list clients.
    pub rest_clients: usize,
    /// Concurrent REST writers (`POST /resources`, then `DELETE` of what was created).
    pub writers: usize,
    /// A writer's pause between writes.
    #[serde(serialize_with = "as_seconds")]
    pub writer_think: Duration,
    /// How long the load runs.
    #[serde(serialize_with = "as_seconds")]
    pub duration: Duration,
    /// How long after the load starts memory counts as warmed up.
    #[serde(serialize_with = "as_seconds")]
    pub warmup: Duration,
    /// The tool's delay.
    pub delay: DelayRange,
    /// Gateway settings, sampling, smoke or not.
    #[serde(flatten)]
    pub common: CommonConfig,
}

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            clients: 200,
            rest_clients: 10,
            writers: 2,
            writer_think: Duration::from_millis(100),
            duration: Duration::from_secs(600),
            // Measured: RSS settles after 90–120 s of this load (allocator arenas, connection
            // pools and buffers reach their working size), not after 60 s.
            warmup: Duration::from_secs(120),
            delay: DelayRange::new(10, 100),
            common: CommonConfig::full(Duration::from_secs(5)),
        }
    }
}

impl ScenarioConfig for SoakConfig {
    fn smoke() -> Self {
        SoakConfig {
            clients: 50,
            rest_clients: 2,
            writers: 1,
            duration: Duration::from_secs(6),
            warmup: Duration::from_secs(2),
            delay: DelayRange::new(100, 300),
            common: CommonConfig::smoke(),
            ..SoakConfig::default()
        }
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// Memory over the soak.
#[derive(Clone, Debug, Serialize)]
pub struct SoakReport {
    /// Seconds of warm-up after the load started.
    pub warmup_s: f64,
    /// RSS before the load (KiB).
    pub rss_start_kib: u64,
    /// RSS at the first sample after warm-up (KiB).
    pub rss_after_warmup_kib: Option<u64>,
    /// The most RSS after warm-up (KiB).
    pub rss_peak_after_warmup_kib: Option<u64>,
    /// The most RSS over the run (KiB).
    pub rss_peak_kib: u64,
    /// RSS at the end (KiB).
    pub rss_end_kib: u64,
    /// `(end - after warm-up) / after warm-up`, in %.
    pub growth_after_warmup_pct: Option<f64>,
    /// `(peak after warm-up - after warm-up) / after warm-up`, in %.
    pub peak_growth_after_warmup_pct: Option<f64>,
    /// Acknowledged writes during the soak.
    pub writes_acknowledged: usize,
}

impl SoakReport {
    fn of(samples: &[Sample], warmed_up_at_s: f64, warmup: Duration, writes: usize) -> Self {
        let rss: Vec<(f64, u64)> = samples
            .iter()
            .filter_map(|sample| Some((sample.t_s, sample.rss_kib?)))
            .collect();
        let after: Vec<u64> = rss
            .iter()
            .filter(|(t_s, _)| *t_s >= warmed_up_at_s)
            .map(|(_, kib)| *kib)
            .collect();
        let after_warmup = after.first().copied();
        let peak_after = after.iter().copied().max();
        let end = rss.last().map_or(0, |(_, kib)| *kib);
        let growth = |to: u64| {
            after_warmup
                .filter(|base| *base > 0)
                .map(|base| round3((to as f64 - base as f64) / base as f64 * 100.0))
        };
        SoakReport {
            warmup_s: warmup.as_secs_f64(),
            rss_start_kib: rss.first().map_or(0, |(_, kib)| *kib),
            rss_after_warmup_kib: after_warmup,
            rss_peak_after_warmup_kib: peak_after,
            rss_peak_kib: rss.iter().map(|(_, kib)| *kib).max().unwrap_or(0),
            rss_end_kib: end,
            growth_after_warmup_pct: growth(end),
            peak_growth_after_warmup_pct: peak_after.and_then(growth),
            writes_acknowledged: writes,
        }
    }

    /// The human line.
    pub fn summary(&self) -> String {
        let known = |value: Option<u64>| value.map_or("unknown".to_owned(), |v| v.to_string());
        let percent = |value: Option<f64>| value.map_or("unknown".to_owned(), |v| format!("{v} %"));
        format!(
            "  soak RSS: start {} KiB, after {:.0} s warm-up {} KiB, peak {} KiB, end {} KiB; growth after warm-up {} (peak {})",
            self.rss_start_kib,
            self.warmup_s,
            known(self.rss_after_warmup_kib),
            self.rss_peak_kib,
            self.rss_end_kib,
            percent(self.growth_after_warmup_pct),
            percent(self.peak_growth_after_warmup_pct),
        )
    }
}

/// Runs the soak and writes its report.
pub async fn run(harness: &Harness, config: &SoakConfig) -> anyhow::Result<Outcome> {
    let rig = Rig::start(
        harness,
        RigSpec {
            scenario: "soak",
            delay: config.delay,
            through_proxy: false,
            settings: Vec::new(),
            expected_duration: config.duration,
            keep_events: false,
        },
        &config.common,
    )
    .await?;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let workloads = [
        rig.tool_callers(config.clients, Duration::ZERO),
        rig.listers(config.rest_clients, Duration::ZERO),
        // Each write is deleted again: the registry keeps its size, so memory can settle.
        rig.writers(config.writers, config.writer_think, &acknowledged, true),
    ];
    let load_window = rig
        .run_for(&workloads, Duration::ZERO, config.duration)
        .await;
    let (mut report, _) = rig.finish(load_window, config).await?;
    let writes = acknowledged.lock().map_or(0, |ids| ids.len());
    let soak = SoakReport::of(
        &report.samples,
        load_window.0 + config.warmup.as_secs_f64(),
        config.warmup,
        writes,
    );
    let growth_target = match soak.growth_after_warmup_pct {
        Some(growth) => TargetCheck::below("RSS growth after warm-up", 5.0, growth, "%"),
        None => TargetCheck::unmeasured("RSS growth after warm-up", "< 5", "%"),
    };
    let [checkout_timeouts, idle_in_transaction] = pool_targets(&report);
    report.targets = vec![growth_target, checkout_timeouts, idle_in_transaction];
    report.soak = Some(soak);
    publish(harness, report)
}
