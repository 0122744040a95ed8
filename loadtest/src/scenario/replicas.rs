//! Replicas: three gateways on one PostgreSQL database and one Redis, behind a round-robin
//! balancer that sends every request to the next replica (no stickiness). Session-era clients
//! (each session's requests land on every replica in turn) and 2026-07-28 clients call the
//! fixture's tool at once. First the same load on one replica alone (the baseline, in the same
//! run), then on the three; the report gives throughput, latency and failures per era, each
//! replica's share of the requests, its CPU per call and memory. Then a fault phase: the same
//! load, and one replica SIGKILLed a third of the way in — the others go on serving, the
//! balancer skips the dead one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{CommonConfig, Harness, Outcome, Rig, RigSpec, ScenarioConfig, publish};
use crate::balancer::Balancer;
use crate::client::{Kind, McpTarget};
use crate::gateway::{Gateway, GatewaySpec};
use crate::load::{Action, LoadRun, Workload};
use crate::recorder::Recorder;
use crate::report::{KindReport, TargetCheck, stamp};
use crate::sampler::{cpu_seconds, rss_kib};
use crate::units::{DelayRange, as_seconds, round3};

/// The Redis every machine runs.
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// How many replicas.
const REPLICAS: usize = 3;

/// Which replica the fault phase kills (not the first: its pool and memory are sampled).
const VICTIM: usize = 1;

/// The scenario's parameters.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicasConfig {
    /// Concurrent 2026-07-28 clients.
    pub modern_clients: usize,
    /// Concurrent session-era clients.
    pub session_clients: usize,
    /// The sessions they share (each session's clients send in turn through the balancer).
    pub sessions: usize,
    /// How long the steady phase runs (and the one-replica baseline before it).
    #[serde(serialize_with = "as_seconds")]
    pub duration: Duration,
    /// How long the fault phase runs (a replica is killed a third of the way in).
    #[serde(serialize_with = "as_seconds")]
    pub fault_duration: Duration,
    /// Over how long the clients start.
    #[serde(serialize_with = "as_seconds")]
    pub ramp_up: Duration,
    /// The tool's delay.
    pub delay: DelayRange,
    /// Gateway settings, sampling, smoke or not.
    #[serde(flatten)]
    pub common: CommonConfig,
}

impl Default for ReplicasConfig {
    fn default() -> Self {
        ReplicasConfig {
            modern_clients: 50,
            session_clients: 50,
            sessions: 10,
            duration: Duration::from_secs(30),
            fault_duration: Duration::from_secs(30),
            ramp_up: Duration::from_secs(2),
            delay: DelayRange::new(0, 0),
            common: CommonConfig::full(Duration::from_secs(1)),
        }
    }
}

impl ScenarioConfig for ReplicasConfig {
    fn smoke() -> Self {
        ReplicasConfig {
            modern_clients: 6,
            session_clients: 6,
            sessions: 2,
            duration: Duration::from_secs(3),
            fault_duration: Duration::from_secs(4),
            ramp_up: Duration::from_millis(200),
            delay: DelayRange::new(0, 5),
            common: CommonConfig::smoke(),
        }
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// One era's requests in one phase.
#[derive(Clone, Debug, Serialize)]
pub struct EraReport {
    /// 2026-07-28 clients.
    pub modern: KindReport,
    /// Session-era clients.
    pub session: KindReport,
}

/// One replica.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaReport {
    /// Its base URL.
    pub base: String,
    /// Its process.
    pub pid: u32,
    /// Requests the balancer sent it in the steady phase.
    pub steady_requests: u64,
    /// Its share of them.
    pub steady_share: f64,
    /// Its CPU time per request in the steady phase (µs).
    pub cpu_us_per_request: Option<f64>,
    /// Its RSS at the end of the steady phase (KiB).
    pub rss_kib: Option<u64>,
    /// Requests it answered in the fault phase.
    pub fault_requests: u64,
    /// Whether the fault phase killed it.
    pub killed: bool,
}

/// The replicas section of the report.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicasReport {
    /// Every replica.
    pub replicas: Vec<ReplicaReport>,
    /// The steady phase, per era.
    pub steady: EraReport,
    /// Requests per second of both eras together, steady phase.
    pub steady_requests_per_s: f64,
    /// The same load on one replica alone (through its own balancer), per era.
    pub single: EraReport,
    /// Requests per second of both eras together on one replica.
    pub single_requests_per_s: f64,
    /// Three replicas' throughput over one's.
    pub throughput_ratio: f64,
    /// The lone replica's CPU time per request (µs).
    pub single_cpu_us_per_request: Option<f64>,
    /// The fault phase, per era.
    pub fault: EraReport,
    /// Seconds into the fault phase the replica was killed.
    pub killed_after_s: f64,
    /// Requests the balancer sent on to the next replica because the killed one refused.
    pub failovers: u64,
}

impl ReplicasReport {
    /// The summary lines.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "  one replica alone: {:.1} req/s, CPU {} µs/req; modern p50 {:.3} ms p99 {:.3} ms, session p50 {:.3} ms p99 {:.3} ms\n",
            self.single_requests_per_s,
            self.single_cpu_us_per_request
                .map_or("?".to_owned(), |cpu| format!("{cpu:.0}")),
            self.single.modern.latency.p50_ms,
            self.single.modern.latency.p99_ms,
            self.single.session.latency.p50_ms,
            self.single.session.latency.p99_ms,
        );
        text.push_str(&format!(
            "  three replicas: {:.1} req/s ({:.2}x one); modern p50 {:.3} ms p99 {:.3} ms, session p50 {:.3} ms p99 {:.3} ms",
            self.steady_requests_per_s,
            self.throughput_ratio,
            self.steady.modern.latency.p50_ms,
            self.steady.modern.latency.p99_ms,
            self.steady.session.latency.p50_ms,
            self.steady.session.latency.p99_ms,
        ));
        for (index, replica) in self.replicas.iter().enumerate() {
            text.push_str(&format!(
                "\n    replica {}: share {:.1} % ({} req), CPU {} µs/req, RSS {} KiB; after the kill {} req{}",
                index + 1,
                replica.steady_share * 100.0,
                replica.steady_requests,
                replica
                    .cpu_us_per_request
                    .map_or("?".to_owned(), |cpu| format!("{cpu:.0}")),
                replica.rss_kib.map_or("?".to_owned(), |rss| rss.to_string()),
                replica.fault_requests,
                if replica.killed { " (killed)" } else { "" },
            ));
        }
        text.push_str(&format!(
            "\n  fault phase (replica {} killed after {:.1} s): modern {} req, {} failed; session {} req, {} failed; failovers {}",
            VICTIM + 1,
            self.killed_after_s,
            self.fault.modern.requests,
            self.fault.modern.failed,
            self.fault.session.requests,
            self.fault.session.failed,
            self.failovers,
        ));
        text
    }
}

/// The report of `recorder`'s calls.
fn calls(recorder: &Recorder) -> KindReport {
    KindReport::of(
        &recorder
            .finish()
            .kinds
            .get(&Kind::McpCall)
            .cloned()
            .unwrap_or_default(),
    )
}

/// Runs the modern and session workloads at once for `duration`; `during` runs meanwhile.
async fn phase(
    rig: &Rig,
    workloads: (&Workload, &[Workload]),
    recorders: (&Arc<Recorder>, &Arc<Recorder>),
    ramp_up: Duration,
    duration: Duration,
    during: impl std::future::Future<Output = ()>,
) -> (f64, f64) {
    let started = rig.now_s();
    let modern = LoadRun::start(
        &rig.http,
        recorders.0,
        std::slice::from_ref(workloads.0),
        ramp_up,
    );
    let session = LoadRun::start(&rig.http, recorders.1, workloads.1, ramp_up);
    tokio::join!(tokio::time::sleep(duration), during);
    tokio::join!(modern.stop(), session.stop());
    (started, rig.now_s())
}

/// Runs the scenario and writes its report.
pub async fn run(harness: &Harness, config: &ReplicasConfig) -> anyhow::Result<Outcome> {
    let secret = || uuid::Uuid::new_v4().simple().to_string();
    // Every replica shares the secrets (tokens, session ids) and one Redis prefix of its own.
    let shared: Vec<(&'static str, String)> = vec![
        ("REDIS_URL", REDIS_URL.to_owned()),
        (
            "REDIS_KEY_PREFIX",
            format!("mcpgate-loadtest-{}:", secret()),
        ),
        ("JWT_SECRET_KEY", format!("{}{}", secret(), secret())),
        (
            "AUTH_ENCRYPTION_SECRET",
            format!("{}{}", secret(), secret()),
        ),
    ];
    let rig = Rig::start(
        harness,
        RigSpec {
            scenario: "replicas",
            delay: config.delay,
            through_proxy: false,
            settings: shared.clone(),
            expected_duration: config.duration + config.fault_duration,
            keep_events: false,
        },
        &config.common,
    )
    .await?;
    let mut settings: BTreeMap<String, String> = config
        .common
        .gateway_settings()
        .chain(shared)
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    if let Some(workers) = harness.http_workers {
        settings.insert("HTTP_WORKERS".into(), workers.to_string());
    }
    let mut others = Vec::new();
    for number in 2..=REPLICAS {
        others.push(
            Gateway::start(GatewaySpec {
                binary: harness.gateway_binary.clone(),
                database_url: rig.database.url(),
                direct_database_url: rig.database.url(),
                settings: settings.clone(),
                log_path: harness.reports_dir.join(format!(
                    "replicas-{}.gateway-{number}.log",
                    stamp(rig.started_at)
                )),
                token_lifetime: config.duration + config.fault_duration,
                wrapper: Vec::new(),
            })
            .await?,
        );
    }
    let mut replicas: Vec<(String, u32)> = vec![(rig.gateway.base().to_owned(), rig.gateway.pid())];
    replicas.extend(
        others
            .iter()
            .map(|gateway| (gateway.base().to_owned(), gateway.pid())),
    );
    // Every replica serves the tool before the load starts (the bus told them of it).
    let path = rig
        .target
        .url
        .strip_prefix(rig.gateway.base())
        .unwrap_or("/mcp")
        .to_owned();
    let token = rig.api.token().to_owned();
    for (base, _) in &replicas {
        let target = McpTarget::gateway(
            format!("{base}{path}"),
            rig.target.tool.clone(),
            token.clone(),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Err(failure) = target.call(&rig.http, 0, 0).await {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "replica {base} never served the tool: {}",
                failure.cause()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let balancer = Balancer::start(
        replicas.iter().map(|(base, _)| base.clone()).collect(),
        rig.http.clone(),
    )
    .await?;
    let alone = Balancer::start(vec![replicas[0].0.clone()], rig.http.clone()).await?;
    let url = format!("{}{path}", balancer.base());
    let modern = Workload {
        action: Action::CallTool(Arc::new(McpTarget::gateway(
            url.clone(),
            rig.target.tool.clone(),
            token.clone(),
        ))),
        users: config.modern_clients,
        think: Duration::ZERO,
    };
    let mut sessions = Vec::new();
    let sessions_wanted = config.sessions.clamp(1, config.session_clients.max(1));
    for index in 0..sessions_wanted {
        let target = McpTarget::gateway_session(
            &rig.http,
            url.clone(),
            rig.target.tool.clone(),
            token.clone(),
        )
        .await?;
        sessions.push(Workload {
            action: Action::CallTool(Arc::new(target)),
            users: config.session_clients / sessions_wanted
                + usize::from(index < config.session_clients % sessions_wanted),
            think: Duration::ZERO,
        });
    }

    // The same clients on one replica alone (the same sessions: any replica opens them).
    let clock = rig.recorder.clock();
    let alone_url = format!("{}{path}", alone.base());
    let on_one = |workload: &Workload| {
        let Action::CallTool(target) = &workload.action else {
            return workload.clone();
        };
        Workload {
            action: Action::CallTool(Arc::new(McpTarget {
                url: alone_url.clone(),
                ..(**target).clone()
            })),
            ..workload.clone()
        }
    };
    let (single_modern, single_session) = (
        Arc::new(Recorder::new(clock, false)),
        Arc::new(Recorder::new(clock, false)),
    );
    let alone_sessions: Vec<Workload> = sessions.iter().map(on_one).collect();
    let lone_cpu_before = cpu_seconds(replicas[0].1);
    phase(
        &rig,
        (&on_one(&modern), &alone_sessions),
        (&single_modern, &single_session),
        config.ramp_up,
        config.duration,
        async {},
    )
    .await;
    let lone_cpu = lone_cpu_before
        .zip(cpu_seconds(replicas[0].1))
        .map(|(before, after)| after - before);
    let lone_served = alone.served().iter().sum::<u64>();
    let single_cpu_us_per_request = lone_cpu
        .filter(|_| lone_served > 0)
        .map(|seconds| round3(seconds * 1e6 / lone_served as f64));
    drop(alone);
    let single = EraReport {
        modern: calls(&single_modern),
        session: calls(&single_session),
    };

    // Steady phase: the three.
    let session_recorder = Arc::new(Recorder::new(clock, false));
    let cpu_before: Vec<Option<f64>> = replicas.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let served_before = balancer.served();
    let load_window = phase(
        &rig,
        (&modern, &sessions),
        (&rig.recorder, &session_recorder),
        config.ramp_up,
        config.duration,
        async {},
    )
    .await;
    let served_steady: Vec<u64> = balancer
        .served()
        .iter()
        .zip(&served_before)
        .map(|(now, before)| now - before)
        .collect();
    let steady_total: u64 = served_steady.iter().sum();
    let mut report_replicas: Vec<ReplicaReport> = replicas
        .iter()
        .enumerate()
        .map(|(index, (base, pid))| {
            let cpu = cpu_before[index]
                .zip(cpu_seconds(*pid))
                .map(|(before, after)| after - before);
            ReplicaReport {
                base: base.clone(),
                pid: *pid,
                steady_requests: served_steady[index],
                steady_share: round3(served_steady[index] as f64 / steady_total.max(1) as f64),
                cpu_us_per_request: cpu
                    .filter(|_| served_steady[index] > 0)
                    .map(|seconds| round3(seconds * 1e6 / served_steady[index] as f64)),
                rss_kib: rss_kib(*pid),
                fault_requests: 0,
                killed: index == VICTIM,
            }
        })
        .collect();
    // The modern clients' steady numbers are the report's own (the rig's recorder).
    let steady_session = calls(&session_recorder);

    // Fault phase: a replica killed a third of the way in.
    let (fault_modern, fault_session) = (
        Arc::new(Recorder::new(clock, false)),
        Arc::new(Recorder::new(clock, false)),
    );
    let served_before = balancer.served();
    let victim_pid = replicas[VICTIM].1;
    let kill_after = config.fault_duration / 3;
    phase(
        &rig,
        (&modern, &sessions),
        (&fault_modern, &fault_session),
        Duration::ZERO,
        config.fault_duration,
        async {
            tokio::time::sleep(kill_after).await;
            let killed = std::process::Command::new("kill")
                .args(["-KILL", &victim_pid.to_string()])
                .status();
            if !killed.is_ok_and(|status| status.success()) {
                tracing::warn!(pid = victim_pid, "could not kill the replica");
            }
        },
    )
    .await;
    for (replica, (now, before)) in report_replicas
        .iter_mut()
        .zip(balancer.served().iter().zip(&served_before))
    {
        replica.fault_requests = now - before;
    }
    let fault = EraReport {
        modern: calls(&fault_modern),
        session: calls(&fault_session),
    };
    let failovers = balancer.failovers();
    drop(balancer);
    for gateway in others {
        gateway.stop().await;
    }
    let (mut report, _) = rig.finish(load_window, config).await?;
    let steady = EraReport {
        modern: report
            .requests
            .get(&Kind::McpCall)
            .cloned()
            .unwrap_or_else(|| KindReport::of(&Default::default())),
        session: steady_session,
    };
    let steady_requests_per_s =
        round3(steady.modern.requests_per_s + steady.session.requests_per_s);
    let single_requests_per_s =
        round3(single.modern.requests_per_s + single.session.requests_per_s);
    let section = ReplicasReport {
        steady_requests_per_s,
        single_requests_per_s,
        throughput_ratio: round3(
            steady_requests_per_s / single_requests_per_s.max(f64::MIN_POSITIVE),
        ),
        single,
        single_cpu_us_per_request,
        replicas: report_replicas,
        steady,
        fault,
        killed_after_s: round3(kill_after.as_secs_f64()),
        failovers,
    };
    let survivors_served = section
        .replicas
        .iter()
        .filter(|replica| !replica.killed)
        .map(|replica| replica.fault_requests)
        .min()
        .unwrap_or(0);
    let fault_failed = section.fault.modern.failed + section.fault.session.failed;
    report.targets = vec![
        TargetCheck::at_most(
            "failure rate, steady phase (every cause)",
            0.0,
            round3(
                report.totals.failure_rate * 100.0 + section.steady.session.failure_rate * 100.0,
            ),
            "%",
        ),
        TargetCheck::at_least(
            "requests each surviving replica served after the kill",
            1.0,
            survivors_served as f64,
            "count",
        ),
        TargetCheck::at_most(
            "failed requests in the fault phase (at most those in flight at the kill)",
            (config.modern_clients + config.session_clients) as f64,
            fault_failed as f64,
            "count",
        ),
    ];
    report.replicas = Some(section);
    publish(harness, report)
}
