//! How the gateway treats upstream MCP servers (`UPSTREAM_*`, `SSRF_*`, health checks).

use std::time::Duration;

use super::parse;

/// How the gateway treats upstream MCP servers.
#[derive(clap::Args, Clone, Debug)]
pub struct FederationSettings {
    /// Between a gateway's slug and a federated tool or prompt name: 1 to 4 of '-', '_', '.'.
    #[arg(id = "GATEWAY_TOOL_NAME_SEPARATOR", long = "gateway-tool-name-separator", env = "GATEWAY_TOOL_NAME_SEPARATOR", default_value = "-", value_parser = separator)]
    pub tool_name_separator: String,
    /// Where outbound connections may go.
    #[command(flatten)]
    pub egress: crate::egress::EgressPolicy,
    /// Calls in flight to one upstream at most.
    #[arg(id = "UPSTREAM_MAX_CONCURRENCY", long = "upstream-max-concurrency", env = "UPSTREAM_MAX_CONCURRENCY", default_value = "100", value_parser = parse::whole::<usize>(1, 100_000))]
    pub max_concurrency: usize,
    /// Consecutive failures that open an upstream's breaker.
    #[arg(id = "UPSTREAM_CIRCUIT_FAILURE_THRESHOLD", long = "upstream-circuit-failure-threshold", env = "UPSTREAM_CIRCUIT_FAILURE_THRESHOLD", default_value = "5", value_parser = parse::whole::<u32>(1, 1000))]
    pub circuit_failure_threshold: u32,
    /// Seconds an upstream's breaker stays open.
    #[arg(id = "UPSTREAM_CIRCUIT_RESET_SECONDS", long = "upstream-circuit-reset-seconds", env = "UPSTREAM_CIRCUIT_RESET_SECONDS", default_value = "30", value_parser = parse::seconds(3600.0))]
    pub circuit_reset: Duration,
    /// Seconds between health checks of each upstream.
    #[arg(id = "HEALTH_CHECK_INTERVAL", long = "health-check-interval", env = "HEALTH_CHECK_INTERVAL", default_value = "60", value_parser = parse::seconds(86400.0))]
    pub health_check_interval: Duration,
    /// Failed health checks in a row that mark an upstream offline.
    #[arg(id = "UNHEALTHY_THRESHOLD", long = "unhealthy-threshold", env = "UNHEALTHY_THRESHOLD", default_value = "3", value_parser = parse::whole::<u32>(1, 1000))]
    pub unhealthy_threshold: u32,
    /// How often, in seconds, every reachable upstream is discovered again, in case it changed
    /// without telling.
    #[arg(id = "GATEWAY_REFRESH_SECONDS", long = "gateway-refresh-seconds", env = "GATEWAY_REFRESH_SECONDS", default_value = "300", value_parser = parse::seconds(7.0 * 86400.0))]
    pub refresh_interval: Duration,
    /// What a discovery may bring, and how strictly it is checked.
    #[command(flatten)]
    pub discovery: DiscoveryLimits,
    /// Which local programs may run as stdio upstreams, and how they are stopped.
    #[command(flatten)]
    pub stdio: StdioSettings,
}

/// Local programs run as stdio upstreams. Running a command is running code on the gateway's
/// machine: only platform admins may register one, and only a command the operator listed.
#[derive(clap::Args, Clone, Debug)]
pub struct StdioSettings {
    /// Comma-separated commands stdio upstreams may run, each as it will be given (a name
    /// looked up in PATH, like `npx`, or an absolute path). Empty (the default): no stdio
    /// upstreams.
    #[arg(id = "STDIO_COMMANDS", long = "stdio-commands", env = "STDIO_COMMANDS", default_value = "", value_parser = parse::list(command))]
    pub commands: std::vec::Vec<String>,
    /// Seconds a stopped process has between SIGTERM and SIGKILL.
    #[arg(id = "STDIO_STOP_GRACE_SECONDS", long = "stdio-stop-grace-seconds", env = "STDIO_STOP_GRACE_SECONDS", default_value = "5", value_parser = parse::seconds(300.0))]
    pub stop_grace: Duration,
    /// Processes of stdio upstreams running at once, all upstreams and clients together.
    #[arg(id = "STDIO_MAX_PROCESSES", long = "stdio-max-processes", env = "STDIO_MAX_PROCESSES", default_value = "64", value_parser = parse::whole::<usize>(1, 10_000))]
    pub max_processes: usize,
}

impl StdioSettings {
    /// Whether `program` is one of the allowed commands.
    pub fn allows(&self, program: &str) -> bool {
        self.commands.iter().any(|allowed| allowed == program)
    }
}

/// One `STDIO_COMMANDS` entry: a bare name or an absolute path.
fn command(entry: &str) -> Result<String, String> {
    if entry.contains('/') && !entry.starts_with('/') {
        return Err(format!(
            "{entry:?}: give a command name (looked up in PATH) or an absolute path"
        ));
    }
    Ok(entry.to_owned())
}

/// Bounds on what one upstream's discovery may bring (everything an upstream sends is
/// untrusted input). Past a count or size bound the whole discovery is refused (at refresh:
/// the last good catalog stays and the upstream is marked degraded); an item that breaks a
/// per-item rule is skipped and reported, or refuses the discovery in strict mode.
#[derive(clap::Args, Clone, Debug)]
pub struct DiscoveryLimits {
    /// Tools, resources (with templates) or prompts one upstream may offer, each.
    #[arg(id = "UPSTREAM_MAX_ITEMS", long = "upstream-max-items", env = "UPSTREAM_MAX_ITEMS", default_value = "5000", value_parser = parse::whole::<usize>(1, 1_000_000))]
    pub max_items: usize,
    /// Bytes of one page of a list result.
    #[arg(id = "UPSTREAM_MAX_PAGE_BYTES", long = "upstream-max-page-bytes", env = "UPSTREAM_MAX_PAGE_BYTES", default_value = "8388608", value_parser = parse::whole::<usize>(1024, 16 * 1024 * 1024))]
    pub max_page_bytes: usize,
    /// Bytes of every page of one discovery together.
    #[arg(id = "UPSTREAM_MAX_DISCOVERY_BYTES", long = "upstream-max-discovery-bytes", env = "UPSTREAM_MAX_DISCOVERY_BYTES", default_value = "33554432", value_parser = parse::whole::<usize>(1024, 1024 * 1024 * 1024))]
    pub max_discovery_bytes: usize,
    /// Characters of an item's description.
    #[arg(id = "UPSTREAM_MAX_DESCRIPTION_CHARS", long = "upstream-max-description-chars", env = "UPSTREAM_MAX_DESCRIPTION_CHARS", default_value = "16384", value_parser = parse::whole::<usize>(1, 10_000_000))]
    pub max_description_chars: usize,
    /// Bytes of a tool's input or output schema (as JSON text).
    #[arg(id = "UPSTREAM_MAX_SCHEMA_BYTES", long = "upstream-max-schema-bytes", env = "UPSTREAM_MAX_SCHEMA_BYTES", default_value = "131072", value_parser = parse::whole::<usize>(64, 16 * 1024 * 1024))]
    pub max_schema_bytes: usize,
    /// Nesting depth of a tool's schema (objects and arrays).
    #[arg(id = "UPSTREAM_MAX_SCHEMA_DEPTH", long = "upstream-max-schema-depth", env = "UPSTREAM_MAX_SCHEMA_DEPTH", default_value = "32", value_parser = parse::whole::<usize>(2, 1000))]
    pub max_schema_depth: usize,
    /// Refuse a whole discovery when any item fails a check (instead of skipping that item).
    #[arg(id = "UPSTREAM_DISCOVERY_STRICT", long = "upstream-discovery-strict", env = "UPSTREAM_DISCOVERY_STRICT", default_value = "false", value_parser = parse::boolean(),
        action = clap::ArgAction::Set)]
    pub strict: bool,
}

/// `GATEWAY_TOOL_NAME_SEPARATOR`: tool names allow only these besides letters and digits.
fn separator(value: &str) -> Result<String, String> {
    if value.is_empty() || value.len() > 4 || !value.chars().all(|c| matches!(c, '-' | '_' | '.')) {
        return Err(
            "use 1 to 4 of '-', '_' and '.' (tool names allow only these besides letters and digits)"
                .into(),
        );
    }
    Ok(value.to_owned())
}
