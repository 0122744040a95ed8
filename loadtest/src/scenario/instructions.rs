//! Instructions per call: the gateway runs under callgrind with instrumentation off; after a
//! warm-up, counting is switched on for a fixed number of sequential `tools/call`s (one client,
//! the fixture upstream answering at once) and the gateway's own instructions per call are read
//! from callgrind's dump. The load generator and the upstream run in this process, outside
//! valgrind, so only the gateway's work is counted: HTTP parsing, authentication, the catalog,
//! the upstream exchange, the response and the per-call bookkeeping.
//!
//! Counts, not seconds: the same binary gives the same count (within a fraction of a percent)
//! whatever else the machine is doing, so a change of the hot path shows on a noisy machine
//! where throughput figures drift by ±20 %.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use super::Harness;
use super::fastpath::ClientEra;
use crate::client::{Api, McpTarget, http_client};
use crate::fixture::{FIXTURE_TOOL, FixtureUpstream};
use crate::gateway::{Gateway, GatewaySpec, provision};
use crate::postgres::TempDatabase;
use crate::units::DelayRange;

/// What to count.
#[derive(Clone, Debug, Serialize)]
pub struct InstructionsConfig {
    /// Calls counted per era.
    pub calls: usize,
    /// Calls made before counting (connections opened, caches warm, code translated).
    pub warmup: usize,
    /// The client eras counted, in turn.
    pub eras: Vec<ClientEra>,
    /// Bytes of text the upstream adds to each result (0: a result of a few dozen bytes).
    pub result_bytes: usize,
}

impl InstructionsConfig {
    /// The defaults, or tiny numbers for a quick check.
    pub fn preset(smoke: bool) -> Self {
        InstructionsConfig {
            calls: if smoke { 20 } else { 1000 },
            warmup: if smoke { 10 } else { 200 },
            eras: vec![ClientEra::Modern, ClientEra::Session],
            result_bytes: 0,
        }
    }
}

/// One era's count.
#[derive(Clone, Debug, Serialize)]
pub struct EraCount {
    /// The clients' era.
    pub era: ClientEra,
    /// Calls counted.
    pub calls: usize,
    /// Instructions the gateway executed over them (callgrind's `Ir`).
    pub instructions: u64,
    /// Instructions per call.
    pub per_call: u64,
}

/// The counts of one run.
#[derive(Clone, Debug, Serialize)]
pub struct InstructionsReport {
    /// The gateway binary counted.
    pub binary: PathBuf,
    /// Bytes of text the upstream added to each result.
    pub result_bytes: usize,
    /// One count per era.
    pub counts: Vec<EraCount>,
}

impl InstructionsReport {
    /// The human lines.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "== instructions: {} (results padded by {} bytes)\n",
            self.binary.display(),
            self.result_bytes
        );
        for count in &self.counts {
            let _ = writeln!(
                text,
                "  {:?} era: {} instructions per tools/call ({} calls, {} in all)",
                count.era, count.per_call, count.calls, count.instructions
            );
        }
        text
    }
}

/// The address the harness's gateway listens on (its `HOST`).
const GATEWAY_HOST: &str = "127.0.0.1";

/// Settings that keep the gateway's own timers out of the counted window.
const QUIET: [(&str, &str); 5] = [
    ("HEALTH_CHECK_INTERVAL", "86400"),
    ("GATEWAY_REFRESH_SECONDS", "604800"),
    ("CATALOG_REFRESH_SECONDS", "86400"),
    ("TOKEN_REVOCATION_REFRESH_SECONDS", "3600"),
    ("HTTP_WORKERS", "2"),
];

/// Counts and writes the report (`instructions-<stamp>.json` in the reports folder).
pub async fn run(
    harness: &Harness,
    config: &InstructionsConfig,
) -> anyhow::Result<InstructionsReport> {
    for tool in ["valgrind", "callgrind_control"] {
        let found = std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success());
        if !found {
            bail!(
                "{tool} is needed to count instructions: run loadtest/setup.sh (installs valgrind)"
            );
        }
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let dumps = harness.reports_dir.join(format!("instructions-{stamp}"));
    std::fs::create_dir_all(&dumps)
        .with_context(|| format!("cannot create {}", dumps.display()))?;
    let http = http_client(Duration::from_secs(60))?;
    let database = TempDatabase::create(&harness.postgres).await?;
    let upstream = FixtureUpstream::start_sized(0, DelayRange::ZERO, config.result_bytes).await?;
    let gateway = Gateway::start(GatewaySpec {
        binary: harness.gateway_binary.clone(),
        database_url: database.url(),
        direct_database_url: database.url(),
        settings: QUIET
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        log_path: dumps.join("gateway.log"),
        token_lifetime: Duration::from_secs(3600),
        wrapper: vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            "--instr-atstart=no".into(),
            format!("--callgrind-out-file={}/callgrind.out.%p", dumps.display()),
        ],
    })
    .await?;
    let api = Api::new(
        http.clone(),
        gateway.base().to_owned(),
        gateway.admin_token().to_owned(),
    );
    let modern = provision(
        &api,
        &http,
        "instructions fixture",
        &upstream.endpoint(),
        FIXTURE_TOOL,
    )
    .await?;
    let pid = gateway.pid();
    let mut counts = Vec::new();
    for era in &config.eras {
        let target = match era {
            ClientEra::Modern => modern.clone(),
            ClientEra::Session => {
                McpTarget::gateway_session(
                    &http,
                    modern.url.clone(),
                    modern.tool.clone(),
                    api.token().to_owned(),
                )
                .await?
            }
        };
        let target = Arc::new(target);
        calls(&http, &target, config.warmup).await?;
        control(pid, &["--instr=on"])?;
        calls(&http, &target, 10).await?;
        control(pid, &["--zero"])?;
        calls(&http, &target, config.calls).await?;
        let dumped = dump_count(&dumps, pid);
        control(pid, &["--dump"])?;
        let instructions = latest_total(&dumps, pid, dumped).await?;
        control(pid, &["--instr=off"])?;
        counts.push(EraCount {
            era: *era,
            calls: config.calls,
            instructions,
            per_call: instructions / config.calls.max(1) as u64,
        });
    }
    let _ = gateway.stop().await;
    drop(upstream);
    drop(database);
    let report = InstructionsReport {
        binary: harness.gateway_binary.clone(),
        result_bytes: config.result_bytes,
        counts,
    };
    let path = harness
        .reports_dir
        .join(format!("instructions-{stamp}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}  report: {}", report.summary(), path.display());
    Ok(report)
}

/// `count` sequential calls; any failure ends the run (a count over failures means nothing).
async fn calls(http: &reqwest::Client, target: &McpTarget, count: usize) -> anyhow::Result<()> {
    for id in 0..count {
        target
            .call(http, id as u64 + 1, 0)
            .await
            .map_err(|failure| anyhow::anyhow!("a call failed: {}", failure.cause()))?;
    }
    Ok(())
}

/// Runs `callgrind_control <arguments> <pid>`. valgrind names the pipes it is controlled
/// through after `$LOGNAME` and `$HOST` as the gateway saw them (unset, and its listening
/// address): the same environment finds them.
fn control(pid: u32, arguments: &[&str]) -> anyhow::Result<()> {
    let output = std::process::Command::new("callgrind_control")
        .env_remove("LOGNAME")
        .env_remove("USER")
        .env("HOST", GATEWAY_HOST)
        .args(arguments)
        .arg(pid.to_string())
        .output()
        .context("cannot run callgrind_control")?;
    let said = String::from_utf8_lossy(&output.stdout);
    // It exits with 0 even when it finds no such process.
    if !output.status.success() || !said.contains("OK") {
        bail!(
            "callgrind_control {arguments:?} {pid} failed: {said} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// How many dumps of `pid` there are (`callgrind.out.<pid>.<n>`), and the newest.
fn dumps_of(dumps: &Path, pid: u32) -> Vec<(u32, PathBuf)> {
    let prefix = format!("callgrind.out.{pid}.");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dumps)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let number: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
                    Some((number, entry.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn dump_count(dumps: &Path, pid: u32) -> usize {
    dumps_of(dumps, pid).len()
}

/// The total `Ir` of the dump after the first `before` ones, once callgrind has written it
/// (the dump is written by the gateway's process when it next runs: waited for, bounded).
async fn latest_total(dumps: &Path, pid: u32, before: usize) -> anyhow::Result<u64> {
    for _ in 0..600 {
        if let Some((_, newest)) = dumps_of(dumps, pid).get(before) {
            let text = std::fs::read_to_string(newest)?;
            let total = text.lines().find_map(|line| {
                line.strip_prefix("totals:")
                    .or_else(|| line.strip_prefix("summary:"))
                    .and_then(|numbers| numbers.split_whitespace().next()?.parse().ok())
            });
            if let Some(total) = total {
                return Ok(total);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "callgrind wrote no dump within 60 s (in {})",
        dumps.display()
    )
}
