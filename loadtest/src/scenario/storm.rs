//! The slow-upstream storm: thousands of MCP clients calling a tool that takes 1–5 s, a few
//! REST list clients beside them, on PostgreSQL with a pool of 10. The peer collapses here
//! (connections idle in transaction for minutes, pool exhaustion); the targets are no checkout
//! timeout, no `idle in transaction` older than 1 s and no failed request.

use std::time::Duration;

use serde::Serialize;

use super::{CommonConfig, Harness, Outcome, Rig, RigSpec, ScenarioConfig, pool_targets, publish};
use crate::report::TargetCheck;
use crate::units::{DelayRange, as_seconds};

/// The storm's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct StormConfig {
    /// Concurrent MCP clients calling the slow tool.
    pub clients: usize,
    /// Concurrent REST clients listing tools and servers.
    pub rest_clients: usize,
    /// How long the load runs.
    #[serde(serialize_with = "as_seconds")]
    pub duration: Duration,
    /// Over how long the clients start.
    #[serde(serialize_with = "as_seconds")]
    pub ramp_up: Duration,
    /// The slow tool's delay.
    pub delay: DelayRange,
    /// Gateway settings, sampling, smoke or not.
    #[serde(flatten)]
    pub common: CommonConfig,
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            clients: 2000,
            rest_clients: 10,
            duration: Duration::from_secs(60),
            ramp_up: Duration::from_secs(10),
            delay: DelayRange::new(1000, 5000),
            common: CommonConfig::full(Duration::from_secs(1)),
        }
    }
}

impl ScenarioConfig for StormConfig {
    fn smoke() -> Self {
        StormConfig {
            clients: 50,
            rest_clients: 2,
            duration: Duration::from_secs(5),
            ramp_up: Duration::from_millis(500),
            delay: DelayRange::new(100, 300),
            common: CommonConfig::smoke(),
        }
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// Runs the storm and writes its report.
pub async fn run(harness: &Harness, config: &StormConfig) -> anyhow::Result<Outcome> {
    let rig = Rig::start(
        harness,
        RigSpec {
            scenario: "storm",
            delay: config.delay,
            through_proxy: false,
            settings: Vec::new(),
            expected_duration: config.duration,
            keep_events: false,
        },
        &config.common,
    )
    .await?;
    let workloads = [
        rig.tool_callers(config.clients, Duration::ZERO),
        rig.listers(config.rest_clients, Duration::ZERO),
    ];
    let load_window = rig
        .run_for(&workloads, config.ramp_up, config.duration)
        .await;
    let (mut report, _) = rig.finish(load_window, config).await?;
    let [checkout_timeouts, idle_in_transaction] = pool_targets(&report);
    report.targets = vec![
        checkout_timeouts,
        idle_in_transaction,
        TargetCheck::at_most(
            "failure rate (every cause)",
            0.0,
            report.totals.failure_rate * 100.0,
            "%",
        ),
    ];
    publish(harness, report)
}
