//! How the gateway treats upstream MCP servers (`UPSTREAM_*`, `SSRF_*`, health checks).

use std::time::Duration;

use super::{ConfigError, Source, invalid};

/// How the gateway treats upstream MCP servers.
#[derive(Clone, Debug)]
pub struct FederationSettings {
    /// `GATEWAY_TOOL_NAME_SEPARATOR`: between a gateway's slug and a federated tool or prompt
    /// name (default `-`).
    pub tool_name_separator: String,
    /// Where outbound connections may go: `SSRF_ALLOW_LOCALHOST` (default false),
    /// `SSRF_ALLOW_PRIVATE_NETWORKS` (default false) and `SSRF_ALLOWLIST` (comma-separated
    /// host names, `*.domain`, addresses and CIDR networks allowed whatever the rules say).
    pub egress: crate::egress::EgressPolicy,
    /// `UPSTREAM_MAX_CONCURRENCY`: calls in flight to one upstream at most (default 100).
    pub max_concurrency: usize,
    /// `UPSTREAM_CIRCUIT_FAILURE_THRESHOLD`: consecutive failures that open an upstream's
    /// breaker (default 5).
    pub circuit_failure_threshold: u32,
    /// `UPSTREAM_CIRCUIT_RESET_SECONDS`: how long an upstream's breaker stays open (default 30).
    pub circuit_reset: Duration,
    /// `HEALTH_CHECK_INTERVAL`: seconds between health checks of each upstream (default 60).
    pub health_check_interval: Duration,
    /// `UNHEALTHY_THRESHOLD`: failed health checks in a row that mark an upstream offline
    /// (default 3).
    pub unhealthy_threshold: u32,
    /// `GATEWAY_REFRESH_SECONDS`: how often every reachable upstream is discovered again, in
    /// case it changed without telling (default 300).
    pub refresh_interval: Duration,
}

/// Reads the federation settings.
pub(super) fn read(source: &Source<'_>) -> Result<FederationSettings, ConfigError> {
    let tool_name_separator = source.string("GATEWAY_TOOL_NAME_SEPARATOR", "-");
    if tool_name_separator.is_empty()
        || tool_name_separator.len() > 4
        || !tool_name_separator
            .chars()
            .all(|c| matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "GATEWAY_TOOL_NAME_SEPARATOR",
            "use 1 to 4 of '-', '_' and '.' (tool names allow only these besides letters and digits)",
        ));
    }
    Ok(FederationSettings {
        tool_name_separator,
        egress: crate::egress::EgressPolicy {
            allow_localhost: source.boolean("SSRF_ALLOW_LOCALHOST", false)?,
            allow_private_networks: source.boolean("SSRF_ALLOW_PRIVATE_NETWORKS", false)?,
            allow: source.list("SSRF_ALLOWLIST", crate::egress::AllowEntry::parse)?,
        },
        max_concurrency: source.ranged("UPSTREAM_MAX_CONCURRENCY", 100usize, 1..=100_000)?,
        circuit_failure_threshold: source.ranged(
            "UPSTREAM_CIRCUIT_FAILURE_THRESHOLD",
            5u32,
            1..=1000,
        )?,
        circuit_reset: source.seconds("UPSTREAM_CIRCUIT_RESET_SECONDS", 30.0, 3600.0)?,
        health_check_interval: source.seconds("HEALTH_CHECK_INTERVAL", 60.0, 86400.0)?,
        unhealthy_threshold: source.ranged("UNHEALTHY_THRESHOLD", 3u32, 1..=1000)?,
        refresh_interval: source.seconds("GATEWAY_REFRESH_SECONDS", 300.0, 7.0 * 86400.0)?,
    })
}
