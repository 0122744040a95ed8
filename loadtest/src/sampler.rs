//! The sampler: every interval, the DbActor's pool statistics (`GET /admin/pool-stats`), the
//! gateway database's backends in `pg_stat_activity`, the gateway's resident memory
//! (`VmRSS` in `/proc/<pid>/status`) and the load's progress so far.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::{Api, Kind};
use crate::postgres::{Activity, Observer};
use crate::recorder::{Progress, Recorder};

/// How long one probe of a sample may take (a stalled gateway must not stall the sampler).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The breaker part of the pool statistics.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct BreakerSample {
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Changes of state since start.
    pub transitions: u64,
    /// Times it opened since start.
    pub times_opened: u64,
}

/// The pool statistics the reports follow over time (the gateway's `PoolStats`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct PoolSample {
    /// Connections checked out now.
    pub in_use: u32,
    /// Connections idle in the pool now.
    pub idle: u32,
    /// Units of work waiting for a connection now.
    pub waiting: u64,
    /// Checkouts that gave up since start.
    pub checkout_timeouts: u64,
    /// Retries after transient failures since start.
    pub retries: u64,
    /// Failed attempts to connect since start.
    pub connection_errors: u64,
    /// Units of work detached at their deadline since start.
    pub deadlines_exceeded: u64,
    /// Callers refused by the open breaker since start.
    pub breaker_rejections: u64,
    /// The database breaker.
    pub breaker: BreakerSample,
}

/// One sample.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the run's origin.
    pub t_s: f64,
    /// The pool statistics, when the gateway answered.
    pub pool: Option<PoolSample>,
    /// Why they are missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_error: Option<String>,
    /// The gateway database's backends, when PostgreSQL answered.
    pub pg: Option<Activity>,
    /// The gateway's resident memory in KiB.
    pub rss_kib: Option<u64>,
    /// Cumulative successes and failures per kind.
    pub progress: BTreeMap<Kind, Progress>,
}

/// What the sampler watches.
pub struct SamplerTargets {
    /// The gateway's API (admin token).
    pub api: Api,
    /// The gateway's process id.
    pub pid: u32,
    /// Its database's backends.
    pub observer: Observer,
    /// The load's recorder.
    pub recorder: Arc<Recorder>,
}

/// A sampler running in the background.
pub struct Sampler {
    stop: CancellationToken,
    task: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Starts sampling every `interval` (the first sample at once).
    pub fn start(mut targets: SamplerTargets, interval: Duration) -> Self {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => samples.push(sample(&mut targets).await),
                    _ = stopped.cancelled() => break,
                }
            }
            // A last sample as the run ends.
            samples.push(sample(&mut targets).await);
            samples
        });
        Sampler { stop, task }
    }

    /// Stops and returns every sample.
    pub async fn finish(self) -> Vec<Sample> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

async fn sample(targets: &mut SamplerTargets) -> Sample {
    let t_s = crate::units::round3(targets.recorder.clock().now_s());
    let (pool, pg) = tokio::join!(
        pool_stats(&targets.api),
        tokio::time::timeout(PROBE_TIMEOUT, targets.observer.activity()),
    );
    let (pool, pool_error) = match pool {
        Ok(pool) => (Some(pool), None),
        Err(error) => (None, Some(error)),
    };
    let pg = match pg {
        Ok(Ok(activity)) => Some(activity),
        Ok(Err(error)) => {
            tracing::debug!(error = %format!("{error:#}"), "no pg_stat_activity sample");
            None
        }
        Err(_) => None,
    };
    Sample {
        t_s,
        pool,
        pool_error,
        pg,
        rss_kib: rss_kib(targets.pid),
        progress: targets.recorder.progress(),
    }
}

/// The gateway's pool statistics now, or why not.
pub async fn pool_stats(api: &Api) -> Result<PoolSample, String> {
    let raw = pool_stats_raw(api).await?;
    serde_json::from_value(raw).map_err(|error| format!("unexpected pool-stats shape: {error}"))
}

/// The full `GET /admin/pool-stats` body, or why not.
pub async fn pool_stats_raw(api: &Api) -> Result<Value, String> {
    match tokio::time::timeout(PROBE_TIMEOUT, api.get("/admin/pool-stats")).await {
        Ok(Ok(reply)) if reply.status.is_success() => Ok(reply.body),
        Ok(Ok(reply)) => Err(format!("HTTP {}", reply.status.as_u16())),
        Ok(Err(error)) => Err(format!("{error:#}")),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

/// `VmRSS` of a process in KiB (none once it is gone).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A process's CPU time so far (user + system), from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// `sysconf(_SC_CLK_TCK)`, as `getconf CLK_TCK` prints it (100 on Linux when unknown).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}
