//! The scenarios of issue 7 and the rig they share: a fresh database, the fixture upstream,
//! the gateway (optionally on a database proxy), a provisioned virtual server, one HTTP
//! client, one recorder and the sampler.

pub mod fastpath;
pub mod faults;
pub mod instructions;
pub mod registry;
pub mod replicas;
pub mod soak;
pub mod storm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::client::{Api, McpTarget, http_client};
use crate::fixture::{FIXTURE_TOOL, FixtureUpstream};
use crate::gateway::{Gateway, GatewaySpec, provision};
use crate::load::{Action, Workload, run_for};
use crate::postgres::{Observer, PgServer, TempDatabase};
use crate::proxy::DbProxy;
use crate::recorder::{Clock, Recorded, Recorder};
use crate::report::{FixtureReport, GatewayReport, Report, ReportParts, TargetCheck, stamp};
use crate::sampler::{Sampler, SamplerTargets, pool_stats_raw};
use crate::units::{DelayRange, as_seconds};

/// What every scenario needs to know about the machine.
#[derive(Clone, Debug)]
pub struct Harness {
    /// The `mcpgate` binary to run.
    pub gateway_binary: PathBuf,
    /// Where reports (and the gateway's logs) go.
    pub reports_dir: PathBuf,
    /// The PostgreSQL server to create the run's database on.
    pub postgres: PgServer,
    /// How long one request may take before it counts as a timeout.
    pub request_timeout: Duration,
    /// `HTTP_WORKERS` for the gateway (its default, the CPU count, when unset).
    pub http_workers: Option<usize>,
    /// Overrides every scenario's sampling interval.
    pub sample_every: Option<Duration>,
}

impl Harness {
    /// The harness with defaults for everything but the binary and the reports' folder.
    pub fn new(gateway_binary: PathBuf, reports_dir: PathBuf) -> Self {
        Harness {
            gateway_binary,
            reports_dir,
            postgres: PgServer::default(),
            request_timeout: Duration::from_secs(60),
            http_workers: None,
            sample_every: None,
        }
    }
}

/// A finished scenario: its report and where it was written.
#[derive(Debug)]
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// The JSON file.
    pub path: PathBuf,
}

/// What every scenario's parameters share: the gateway settings each run states explicitly
/// (and reports), the sampling interval, and whether these are the smoke parameters.
#[derive(Clone, Debug, Serialize)]
pub struct CommonConfig {
    /// `DB_POOL_SIZE`.
    pub pool_size: u32,
    /// `UPSTREAM_MAX_CONCURRENCY` (its default, 100, would queue most clients in the gateway).
    pub upstream_max_concurrency: usize,
    /// How often the sampler runs.
    #[serde(serialize_with = "as_seconds")]
    pub sample_every: Duration,
    /// Whether these are the smoke parameters.
    pub smoke: bool,
}

impl CommonConfig {
    /// The full-size defaults, sampling every `sample_every`.
    pub fn full(sample_every: Duration) -> Self {
        CommonConfig {
            pool_size: 10,
            upstream_max_concurrency: 10_000,
            sample_every,
            smoke: false,
        }
    }

    /// The smoke defaults: a sample every second.
    pub fn smoke() -> Self {
        CommonConfig {
            smoke: true,
            ..CommonConfig::full(Duration::from_secs(1))
        }
    }

    fn gateway_settings(&self) -> impl Iterator<Item = (&'static str, String)> {
        [
            ("DB_POOL_SIZE", self.pool_size.to_string()),
            (
                "UPSTREAM_MAX_CONCURRENCY",
                self.upstream_max_concurrency.to_string(),
            ),
        ]
        .into_iter()
    }
}

/// A scenario's parameters: issue 7's numbers by default, tiny ones for the smoke version.
pub trait ScenarioConfig: Default + Serialize {
    /// Seconds, not minutes: for the test suite and a quick check.
    fn smoke() -> Self;

    /// What it shares with the other scenarios.
    fn common(&self) -> &CommonConfig;

    /// The smoke parameters or the defaults.
    fn preset(smoke: bool) -> Self {
        if smoke {
            Self::smoke()
        } else {
            Self::default()
        }
    }
}

/// How a scenario wants its rig.
pub(crate) struct RigSpec {
    pub scenario: &'static str,
    pub delay: DelayRange,
    pub through_proxy: bool,
    /// Gateway settings beyond [`CommonConfig`]'s.
    pub settings: Vec<(&'static str, String)>,
    pub expected_duration: Duration,
    pub keep_events: bool,
}

/// Everything a run has started.
pub(crate) struct Rig {
    pub scenario: &'static str,
    pub started_at: DateTime<Utc>,
    pub http: reqwest::Client,
    pub database: TempDatabase,
    pub proxy: Option<DbProxy>,
    pub upstream: FixtureUpstream,
    pub gateway: Gateway,
    pub api: Api,
    pub target: Arc<McpTarget>,
    pub recorder: Arc<Recorder>,
    sampler: Sampler,
}

impl Rig {
    /// Creates the database, starts the fixture and the gateway, provisions the virtual
    /// server, starts the sampler. Whatever was started is stopped again if a later step fails
    /// (by drop).
    pub async fn start(
        harness: &Harness,
        spec: RigSpec,
        common: &CommonConfig,
    ) -> anyhow::Result<Rig> {
        let started_at = Utc::now();
        let clock = Clock::start();
        let http = http_client(harness.request_timeout)?;
        let database = TempDatabase::create(&harness.postgres).await?;
        let proxy = if spec.through_proxy {
            Some(DbProxy::start(harness.postgres.address()).await?)
        } else {
            None
        };
        let database_url = match &proxy {
            Some(proxy) => database.url_via("127.0.0.1", proxy.port()),
            None => database.url(),
        };
        let upstream = FixtureUpstream::start(0, spec.delay).await?;
        let mut settings: BTreeMap<String, String> = common
            .gateway_settings()
            .chain(spec.settings)
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        if let Some(workers) = harness.http_workers {
            settings.insert("HTTP_WORKERS".into(), workers.to_string());
        }
        let log_path = harness.reports_dir.join(format!(
            "{}-{}.gateway.log",
            spec.scenario,
            stamp(started_at)
        ));
        let gateway = Gateway::start(GatewaySpec {
            binary: harness.gateway_binary.clone(),
            database_url,
            direct_database_url: database.url(),
            settings,
            log_path,
            token_lifetime: spec.expected_duration,
            wrapper: Vec::new(),
        })
        .await?;
        let api = Api::new(
            http.clone(),
            gateway.base().to_owned(),
            gateway.admin_token().to_owned(),
        );
        let target = provision(
            &api,
            &http,
            "loadtest fixture",
            &upstream.endpoint(),
            FIXTURE_TOOL,
        )
        .await?;
        tracing::info!(
            scenario = spec.scenario,
            gateway.base = gateway.base(),
            database.name = database.name(),
            "rig ready"
        );
        let recorder = Arc::new(Recorder::new(clock, spec.keep_events));
        let sampler = Sampler::start(
            SamplerTargets {
                api: api.clone(),
                pid: gateway.pid(),
                observer: Observer::new(database.server(), database.name()),
                recorder: recorder.clone(),
            },
            harness.sample_every.unwrap_or(common.sample_every),
        );
        Ok(Rig {
            scenario: spec.scenario,
            started_at,
            http,
            database,
            proxy,
            upstream,
            gateway,
            api,
            target: Arc::new(target),
            recorder,
            sampler,
        })
    }

    /// Runs `workloads` for `duration`; returns when the load ran (seconds since the origin).
    pub async fn run_for(
        &self,
        workloads: &[Workload],
        ramp_up: Duration,
        duration: Duration,
    ) -> (f64, f64) {
        let started = self.now_s();
        run_for(&self.http, &self.recorder, workloads, ramp_up, duration).await;
        (started, self.now_s())
    }

    /// `users` MCP clients calling the fixture's tool through the gateway.
    pub fn tool_callers(&self, users: usize, think: Duration) -> Workload {
        Workload {
            action: Action::CallTool(self.target.clone()),
            users,
            think,
        }
    }

    /// `users` REST clients listing tools and servers in turn.
    pub fn listers(&self, users: usize, think: Duration) -> Workload {
        Workload {
            action: Action::List {
                api: self.api.clone(),
                paths: ["/tools?limit=50".to_owned(), "/servers".to_owned()].into(),
            },
            users,
            think,
        }
    }

    /// `users` REST clients creating resources; acknowledged ids go to `acknowledged`.
    pub fn writers(
        &self,
        users: usize,
        think: Duration,
        acknowledged: &Arc<Mutex<Vec<String>>>,
        churn: bool,
    ) -> Workload {
        Workload {
            action: Action::Write {
                api: self.api.clone(),
                run_tag: uuid::Uuid::new_v4().simple().to_string().into(),
                acknowledged: acknowledged.clone(),
                churn,
            },
            users,
            think,
        }
    }

    /// Seconds since the run's origin.
    pub fn now_s(&self) -> f64 {
        self.recorder.clock().now_s()
    }

    /// Stops sampling, reads the final pool statistics, stops the gateway, the fixture and the
    /// proxy, drops the database; returns the report's common sections (the scenario adds its
    /// targets and own section) and what the users recorded.
    pub async fn finish<C: ScenarioConfig>(
        self,
        load_window_s: (f64, f64),
        config: &C,
    ) -> anyhow::Result<(Report, Recorded)> {
        let samples = self.sampler.finish().await;
        let final_pool_stats = pool_stats_raw(&self.api)
            .await
            .unwrap_or_else(|error| serde_json::json!({ "error": error }));
        let upstream = FixtureReport {
            delay: self.upstream.delay(),
            counts: self.upstream.counts(),
        };
        let binary = self.gateway.binary().to_owned();
        let pid = self.gateway.pid();
        let settings = self.gateway.reported_settings();
        let log_file = self.gateway.log_path().to_owned();
        let exit = self.gateway.stop().await;
        drop(self.proxy);
        drop(self.upstream);
        drop(self.database);
        let recorded = self.recorder.finish();
        let report = Report::assemble(ReportParts {
            scenario: self.scenario,
            smoke: config.common().smoke,
            config: serde_json::to_value(config)?,
            started_at: self.started_at,
            load_window_s,
            recorded: &recorded,
            samples,
            final_pool_stats,
            gateway: GatewayReport {
                binary,
                pid,
                settings,
                database: "postgresql",
                log_file,
                exit,
            },
            upstream,
        });
        Ok((report, recorded))
    }
}

/// Prints the summary, writes the report, and says where.
pub(crate) fn publish(harness: &Harness, report: Report) -> anyhow::Result<Outcome> {
    let path = report.write(&harness.reports_dir)?;
    println!("{}", report.summary());
    println!("  report: {}", path.display());
    Ok(Outcome { report, path })
}

/// The targets about the pool every steady-load scenario reports: no checkout timeout, no
/// `idle in transaction` older than 1 s.
pub(crate) fn pool_targets(report: &Report) -> [TargetCheck; 2] {
    [
        TargetCheck::at_most(
            "pool checkout timeouts",
            0.0,
            report.pool.checkout_timeouts as f64,
            "count",
        ),
        TargetCheck::at_most(
            "oldest `idle in transaction` backend",
            1.0,
            report.idle_in_transaction.max_age_s,
            "s",
        ),
    ]
}
