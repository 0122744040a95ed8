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
