//! `loadtest`: runs the scenarios of issue 7 against the real `mcpgate` binary, or serves the
//! fixture upstream on its own. Every parameter has a default (the numbers) and
//! `--smoke` swaps in tiny ones; flags given explicitly win over both.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mcpgate_loadtest::fixture::FixtureUpstream;
use mcpgate_loadtest::postgres::PgServer;
use mcpgate_loadtest::scenario::fastpath::{self, ClientEra, FastpathConfig};
use mcpgate_loadtest::scenario::faults::{self, FaultsConfig};
use mcpgate_loadtest::scenario::instructions::{self, InstructionsConfig};
use mcpgate_loadtest::scenario::registry::{self, RegistryConfig};
use mcpgate_loadtest::scenario::replicas::{self, ReplicasConfig};
use mcpgate_loadtest::scenario::soak::{self, SoakConfig};
use mcpgate_loadtest::scenario::storm::{self, StormConfig};
use mcpgate_loadtest::scenario::{CommonConfig, Harness, ScenarioConfig};
use mcpgate_loadtest::units::{DelayRange, parse_duration};

/// Load tests of mcpgate: slow-upstream storm, fast path, soak and faults.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: CommonArgs,
}

/// Flags every scenario takes.
#[derive(Args)]
struct CommonArgs {
    /// The mcpgate binary (default: `mcpgate` next to this executable).
    #[arg(long, global = true)]
    gateway: Option<PathBuf>,
    /// Where reports and gateway logs are written.
    #[arg(long, global = true, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/reports"))]
    reports: PathBuf,
    /// Tiny parameters (seconds, tens of clients) for a quick check.
    #[arg(long, global = true)]
    smoke: bool,
    /// PostgreSQL host (trust auth).
    #[arg(long, global = true, default_value = "127.0.0.1")]
    pg_host: String,
    /// PostgreSQL port.
    #[arg(long, global = true, default_value_t = 5432)]
    pg_port: u16,
    /// PostgreSQL user (a superuser).
    #[arg(long, global = true, default_value = "postgres")]
    pg_user: String,
    /// How long one request may take before it counts as a timeout.
    #[arg(long, global = true, value_parser = parse_duration, default_value = "60s")]
    request_timeout: Duration,
    /// `HTTP_WORKERS` for the gateway (default: its own, the CPU count).
    #[arg(long, global = true)]
    http_workers: Option<usize>,
    /// How often the sampler runs (default: the scenario's own).
    #[arg(long, global = true, value_parser = parse_duration)]
    sample_every: Option<Duration>,
}

#[derive(Subcommand)]
enum Command {
    /// Slow-upstream storm: N MCP clients on a 1–5 s tool plus REST lists, DB_POOL_SIZE=10.
    Storm(StormArgs),
    /// Fast path: tools/call straight to the upstream vs through the gateway.
    Fastpath(FastpathArgs),
    /// Registry sweep: tools created through the API up to each size, then calls and RSS.
    Registry(RegistryArgs),
    /// Soak: steady mixed load for minutes with the gateway's RSS sampled.
    Soak(SoakArgs),
    /// Faults: killed backends, database down, database stalled, upstream killed.
    Faults(FaultsArgs),
    /// Replicas: three gateways behind a round-robin balancer, both eras, one replica killed.
    Replicas(ReplicasArgs),
    /// Instructions the gateway executes per tools/call, counted under callgrind.
    Instructions(InstructionsArgs),
    /// Every scenario in turn, each with its defaults (or `--smoke`).
    All,
    /// Serve the fixture upstream MCP server until Ctrl-C.
    Upstream(UpstreamArgs),
}

#[derive(Args, Default)]
struct StormArgs {
    /// Concurrent MCP clients.
    #[arg(long)]
    clients: Option<usize>,
    /// Concurrent REST list clients.
    #[arg(long)]
    rest_clients: Option<usize>,
    /// How long the load runs (`60s`, `10m`).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Over how long the clients start.
    #[arg(long, value_parser = parse_duration)]
    ramp_up: Option<Duration>,
    /// The tool's delay in ms: `A..B` (uniform) or `A`.
    #[arg(long)]
    delay_ms: Option<DelayRange>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Args, Default)]
struct FastpathArgs {
    /// Concurrent clients (each run).
    #[arg(long)]
    clients: Option<usize>,
    /// How long each run is measured.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Unmeasured load before each run.
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// The tool's delay in ms: `A..B` or `A` (default 0: the gateway's bare overhead).
    #[arg(long)]
    delay_ms: Option<DelayRange>,
    /// The era the clients speak to the gateway (default modern).
    #[arg(long, value_enum)]
    era: Option<ClientEra>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Args, Default)]
struct InstructionsArgs {
    /// Calls counted per era.
    #[arg(long)]
    calls: Option<usize>,
    /// Calls before counting.
    #[arg(long)]
    warmup: Option<usize>,
    /// Count only this era (default: both).
    #[arg(long, value_enum)]
    era: Option<ClientEra>,
    /// Bytes of text the upstream adds to each tool result (default: none).
    #[arg(long)]
    result_bytes: Option<usize>,
}

impl InstructionsArgs {
    fn config(self, smoke: bool) -> InstructionsConfig {
        let mut config = InstructionsConfig::preset(smoke);
        set(&mut config.calls, self.calls);
        set(&mut config.warmup, self.warmup);
        set(&mut config.result_bytes, self.result_bytes);
        if let Some(era) = self.era {
            config.eras = vec![era];
        }
        config
    }
}

#[derive(Args, Default)]
struct RegistryArgs {
    /// Registry sizes, comma-separated (default 0,1000,10000).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Concurrent clients of the busy call run at each size.
    #[arg(long)]
    clients: Option<usize>,
    /// How long each call run is measured.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Args, Default)]
struct SoakArgs {
    /// Concurrent MCP clients.
    #[arg(long)]
    clients: Option<usize>,
    /// Concurrent REST list clients.
    #[arg(long)]
    rest_clients: Option<usize>,
    /// Concurrent REST writers.
    #[arg(long)]
    writers: Option<usize>,
    /// A writer's pause between writes.
    #[arg(long, value_parser = parse_duration)]
    writer_think: Option<Duration>,
    /// How long the load runs.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Warm-up after which memory growth is measured.
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// The tool's delay in ms: `A..B` or `A`.
    #[arg(long)]
    delay_ms: Option<DelayRange>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Args, Default)]
struct FaultsArgs {
    /// Concurrent MCP clients.
    #[arg(long)]
    clients: Option<usize>,
    /// Concurrent REST readers.
    #[arg(long)]
    readers: Option<usize>,
    /// Concurrent REST writers.
    #[arg(long)]
    writers: Option<usize>,
    /// Every user's pause between requests.
    #[arg(long, value_parser = parse_duration)]
    think: Option<Duration>,
    /// The tool's delay in ms: `A..B` or `A`.
    #[arg(long)]
    delay_ms: Option<DelayRange>,
    /// Load before the first fault.
    #[arg(long, value_parser = parse_duration)]
    baseline: Option<Duration>,
    /// How long the database is down or stalled, and the upstream dead.
    #[arg(long, value_parser = parse_duration)]
    fault_duration: Option<Duration>,
    /// The least time observed after each fault.
    #[arg(long, value_parser = parse_duration)]
    recovery_window: Option<Duration>,
    /// The most time waited for recovery after each fault.
    #[arg(long, value_parser = parse_duration)]
    recovery_limit: Option<Duration>,
    /// `DB_CIRCUIT_RESET_SECONDS`.
    #[arg(long)]
    db_circuit_reset_seconds: Option<u64>,
    /// `UPSTREAM_CIRCUIT_RESET_SECONDS`.
    #[arg(long)]
    upstream_circuit_reset_seconds: Option<u64>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

/// The gateway settings every scenario states explicitly.
#[derive(Args, Default)]
struct GatewayArgs {
    /// `DB_POOL_SIZE`.
    #[arg(long)]
    pool_size: Option<u32>,
    /// `UPSTREAM_MAX_CONCURRENCY`.
    #[arg(long)]
    upstream_max_concurrency: Option<usize>,
}

impl GatewayArgs {
    fn apply(self, common: &mut CommonConfig) {
        set(&mut common.pool_size, self.pool_size);
        set(
            &mut common.upstream_max_concurrency,
            self.upstream_max_concurrency,
        );
    }
}

#[derive(Args, Default)]
struct ReplicasArgs {
    /// Concurrent 2026-07-28 clients.
    #[arg(long)]
    modern_clients: Option<usize>,
    /// Concurrent session-era clients.
    #[arg(long)]
    session_clients: Option<usize>,
    /// The sessions they share.
    #[arg(long)]
    sessions: Option<usize>,
    /// How long the steady phase runs.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// How long the fault phase runs (a replica killed a third of the way in).
    #[arg(long, value_parser = parse_duration)]
    fault_duration: Option<Duration>,
    /// The tool's delay in ms: `A..B` or `A`.
    #[arg(long)]
    delay_ms: Option<DelayRange>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

impl ReplicasArgs {
    fn config(self, smoke: bool) -> ReplicasConfig {
        let mut config = ReplicasConfig::preset(smoke);
        set(&mut config.modern_clients, self.modern_clients);
        set(&mut config.session_clients, self.session_clients);
        set(&mut config.sessions, self.sessions);
        set(&mut config.duration, self.duration);
        set(&mut config.fault_duration, self.fault_duration);
        set(&mut config.delay, self.delay_ms);
        self.gateway.apply(&mut config.common);
        config
    }
}

#[derive(Args)]
struct UpstreamArgs {
    /// The port on 127.0.0.1 (0 picks one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The tool's delay in ms: `A..B` or `A`.
    #[arg(long, default_value = "0")]
    delay_ms: DelayRange,
}

/// Replaces `target` with `value` when a flag gave one.
fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

impl StormArgs {
    fn config(self, smoke: bool) -> StormConfig {
        let mut config = StormConfig::preset(smoke);
        set(&mut config.clients, self.clients);
        set(&mut config.rest_clients, self.rest_clients);
        set(&mut config.duration, self.duration);
        set(&mut config.ramp_up, self.ramp_up);
        set(&mut config.delay, self.delay_ms);
        self.gateway.apply(&mut config.common);
        config
    }
}

impl FastpathArgs {
    fn config(self, smoke: bool) -> FastpathConfig {
        let mut config = FastpathConfig::preset(smoke);
        set(&mut config.clients, self.clients);
        set(&mut config.duration, self.duration);
        set(&mut config.warmup, self.warmup);
        set(&mut config.delay, self.delay_ms);
        set(&mut config.era, self.era);
        self.gateway.apply(&mut config.common);
        config
    }
}

impl RegistryArgs {
    fn config(self, smoke: bool) -> RegistryConfig {
        let mut config = RegistryConfig::preset(smoke);
        set(&mut config.sizes, self.sizes);
        set(&mut config.clients, self.clients);
        set(&mut config.duration, self.duration);
        self.gateway.apply(&mut config.common);
        config
    }
}

impl SoakArgs {
    fn config(self, smoke: bool) -> SoakConfig {
        let mut config = SoakConfig::preset(smoke);
        set(&mut config.clients, self.clients);
        set(&mut config.rest_clients, self.rest_clients);
        set(&mut config.writers, self.writers);
        set(&mut config.writer_think, self.writer_think);
        set(&mut config.duration, self.duration);
        set(&mut config.warmup, self.warmup);
        set(&mut config.delay, self.delay_ms);
        self.gateway.apply(&mut config.common);
        config
    }
}

impl FaultsArgs {
    fn config(self, smoke: bool) -> FaultsConfig {
        let mut config = FaultsConfig::preset(smoke);
        set(&mut config.clients, self.clients);
        set(&mut config.readers, self.readers);
        set(&mut config.writers, self.writers);
        set(&mut config.think, self.think);
        set(&mut config.delay, self.delay_ms);
        set(&mut config.baseline, self.baseline);
        set(&mut config.fault_duration, self.fault_duration);
        set(&mut config.recovery_window, self.recovery_window);
        set(&mut config.recovery_limit, self.recovery_limit);
        set(
            &mut config.db_circuit_reset_seconds,
            self.db_circuit_reset_seconds,
        );
        set(
            &mut config.upstream_circuit_reset_seconds,
            self.upstream_circuit_reset_seconds,
        );
        self.gateway.apply(&mut config.common);
        config
    }
}

fn harness(common: &CommonArgs) -> Harness {
    let binary = common
        .gateway
        .clone()
        .unwrap_or_else(mcpgate_loadtest::gateway::default_binary);
    let mut harness = Harness::new(binary, common.reports.clone());
    harness.postgres = PgServer {
        host: common.pg_host.clone(),
        port: common.pg_port,
        user: common.pg_user.clone(),
    };
    harness.request_timeout = common.request_timeout;
    harness.http_workers = common.http_workers;
    harness.sample_every = common.sample_every;
    harness
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let smoke = cli.common.smoke;
    let harness = harness(&cli.common);
    match cli.command {
        Command::Storm(args) => storm::run(&harness, &args.config(smoke)).await.map(drop),
        Command::Fastpath(args) => fastpath::run(&harness, &args.config(smoke)).await.map(drop),
        Command::Registry(args) => registry::run(&harness, &args.config(smoke)).await.map(drop),
        Command::Soak(args) => soak::run(&harness, &args.config(smoke)).await.map(drop),
        Command::Faults(args) => faults::run(&harness, &args.config(smoke)).await.map(drop),
        Command::Replicas(args) => replicas::run(&harness, &args.config(smoke)).await.map(drop),
        Command::Instructions(args) => instructions::run(&harness, &args.config(smoke))
            .await
            .map(drop),
        Command::All => {
            storm::run(&harness, &StormArgs::default().config(smoke)).await?;
            fastpath::run(&harness, &FastpathArgs::default().config(smoke)).await?;
            soak::run(&harness, &SoakArgs::default().config(smoke)).await?;
            faults::run(&harness, &FaultsArgs::default().config(smoke)).await?;
            replicas::run(&harness, &ReplicasArgs::default().config(smoke)).await?;
            Ok(())
        }
        Command::Upstream(args) => serve_upstream(args).await,
    }
}

async fn serve_upstream(args: UpstreamArgs) -> anyhow::Result<()> {
    let upstream = FixtureUpstream::start(args.port, args.delay_ms).await?;
    println!(
        "fixture upstream listening on {} (tool `work`, delay {} ms); Ctrl-C stops it",
        upstream.endpoint(),
        args.delay_ms
    );
    tokio::signal::ctrl_c().await?;
    println!("calls served: {}", upstream.counts().calls_served);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,mcpgate_loadtest=info")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadtest: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadtest: {error:#}");
            ExitCode::FAILURE
        }
    }
}
