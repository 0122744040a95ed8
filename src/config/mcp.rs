//! How the MCP endpoints behave (`MCP_*`, `ALLOWED_*`, `PROMPT_RENDER_*`, `TOOL_TIMEOUT`).

use std::time::Duration;

use super::parse;

/// How the MCP endpoints behave.
#[derive(clap::Args, Clone, Debug)]
pub struct McpSettings {
    /// Seconds a legacy (2025-11-25 and older) session may stay idle before a replica lets it
    /// go (its own upstream sessions end; the next request opens it again from its id).
    #[arg(id = "MCP_SESSION_TTL_SECONDS", long = "mcp-session-ttl-seconds", env = "MCP_SESSION_TTL_SECONDS", default_value = "3600", value_parser = parse::seconds(7.0 * 86400.0))]
    pub session_ttl: Duration,
    /// Seconds a legacy session may live at most, however busy (its id carries the expiry, so
    /// every replica agrees); the client starts a new one with initialize.
    #[arg(id = "MCP_SESSION_MAX_AGE_SECONDS", long = "mcp-session-max-age-seconds", env = "MCP_SESSION_MAX_AGE_SECONDS", default_value = "86400", value_parser = parse::seconds(30.0 * 86400.0))]
    pub session_max_age: Duration,
    /// The most legacy sessions held at once; initialize beyond it is refused with 503.
    #[arg(id = "MCP_MAX_SESSIONS", long = "mcp-max-sessions", env = "MCP_MAX_SESSIONS", default_value = "10000", value_parser = parse::whole::<usize>(1, 10_000_000))]
    pub max_sessions: usize,
    /// Legacy sessions one principal may hold; beyond it, initialize is refused with 429.
    #[arg(id = "MCP_MAX_SESSIONS_PER_PRINCIPAL", long = "mcp-max-sessions-per-principal", env = "MCP_MAX_SESSIONS_PER_PRINCIPAL", default_value = "100", value_parser = parse::whole::<usize>(1, 10_000_000))]
    pub max_sessions_per_principal: usize,
    /// Long-lived streams (subscriptions/listen, session GET streams, legacy SSE, console
    /// events) one principal may hold; beyond it, 429.
    #[arg(id = "MCP_MAX_STREAMS_PER_PRINCIPAL", long = "mcp-max-streams-per-principal", env = "MCP_MAX_STREAMS_PER_PRINCIPAL", default_value = "32", value_parser = parse::whole::<usize>(1, 1_000_000))]
    pub max_streams_per_principal: usize,
    /// tools/call in flight for one principal; beyond it, 429.
    #[arg(id = "MCP_MAX_TOOL_CALLS_PER_PRINCIPAL", long = "mcp-max-tool-calls-per-principal", env = "MCP_MAX_TOOL_CALLS_PER_PRINCIPAL", default_value = "1000", value_parser = parse::whole::<usize>(1, 1_000_000))]
    pub max_tool_calls_per_principal: usize,
    /// tools/call in flight in all.
    #[arg(id = "MCP_MAX_TOOL_CALLS", long = "mcp-max-tool-calls", env = "MCP_MAX_TOOL_CALLS", default_value = "10000", value_parser = parse::whole::<usize>(1, 10_000_000))]
    pub max_tool_calls: usize,
    /// Upstream calls one principal may keep waiting for their input_required answers.
    #[arg(id = "MCP_MAX_PARKED_CALLS_PER_PRINCIPAL", long = "mcp-max-parked-calls-per-principal", env = "MCP_MAX_PARKED_CALLS_PER_PRINCIPAL", default_value = "100", value_parser = parse::whole::<usize>(1, 1_000_000))]
    pub max_parked_calls_per_principal: usize,
    /// MCP requests one principal may make per minute, on every replica together when
    /// REDIS_URL is set (0: no limit). Bursts of up to a sixth of it (ten seconds' worth) pass.
    #[arg(id = "RATE_LIMIT_PRINCIPAL_PER_MINUTE", long = "rate-limit-principal-per-minute", env = "RATE_LIMIT_PRINCIPAL_PER_MINUTE", default_value = "0", value_parser = parse::whole::<u32>(0, 60_000_000))]
    pub rate_principal: u32,
    /// MCP requests the members of one team may make per minute together, each request
    /// counting for every team its principal shares with others (0: no limit).
    #[arg(id = "RATE_LIMIT_TEAM_PER_MINUTE", long = "rate-limit-team-per-minute", env = "RATE_LIMIT_TEAM_PER_MINUTE", default_value = "0", value_parser = parse::whole::<u32>(0, 60_000_000))]
    pub rate_team: u32,
    /// Calls of one tool per minute, everyone together (0: no limit).
    #[arg(id = "RATE_LIMIT_TOOL_PER_MINUTE", long = "rate-limit-tool-per-minute", env = "RATE_LIMIT_TOOL_PER_MINUTE", default_value = "0", value_parser = parse::whole::<u32>(0, 60_000_000))]
    pub rate_tool: u32,
    /// Such parked calls in all.
    #[arg(id = "MCP_MAX_PARKED_CALLS", long = "mcp-max-parked-calls", env = "MCP_MAX_PARKED_CALLS", default_value = "10000", value_parser = parse::whole::<usize>(1, 10_000_000))]
    pub max_parked_calls: usize,
    /// Upstream sessions of their own (made for session-era clients that can be asked
    /// something or keep a log level upstream) one principal may hold; beyond it the shared
    /// upstream session serves their calls.
    #[arg(id = "MCP_MAX_UPSTREAM_SESSIONS_PER_PRINCIPAL", long = "mcp-max-upstream-sessions-per-principal", env = "MCP_MAX_UPSTREAM_SESSIONS_PER_PRINCIPAL", default_value = "64", value_parser = parse::whole::<usize>(1, 1_000_000))]
    pub max_upstream_sessions_per_principal: usize,
    /// Such upstream sessions in all.
    #[arg(id = "MCP_MAX_UPSTREAM_SESSIONS", long = "mcp-max-upstream-sessions", env = "MCP_MAX_UPSTREAM_SESSIONS", default_value = "2000", value_parser = parse::whole::<usize>(1, 10_000_000))]
    pub max_upstream_sessions: usize,
    /// Long-lived streams in all (lowered at start to leave a reserve of file descriptors for
    /// /health, /ready, the admin API and the database).
    #[arg(id = "MCP_MAX_STREAMS", long = "mcp-max-streams", env = "MCP_MAX_STREAMS", default_value = "10000", value_parser = parse::whole::<usize>(1, 10_000_000))]
    pub max_streams: usize,
    /// Items per page of tools/list, resources/list and prompts/list.
    #[arg(id = "MCP_PAGE_SIZE", long = "mcp-page-size", env = "MCP_PAGE_SIZE", default_value = "100", value_parser = parse::whole::<usize>(1, 10_000))]
    pub page_size: usize,
    /// The ttlMs freshness hint on cacheable results, in milliseconds.
    #[arg(id = "MCP_CACHE_TTL_MS", long = "mcp-cache-ttl-ms", env = "MCP_CACHE_TTL_MS", default_value = "10000", value_parser = parse::whole::<u64>(0, 86_400_000))]
    pub cache_ttl_ms: u64,
    /// Seconds a REST tool call may take.
    #[arg(id = "TOOL_TIMEOUT", long = "tool-timeout", env = "TOOL_TIMEOUT", default_value = "60", value_parser = parse::seconds(3600.0))]
    pub tool_timeout: Duration,
    /// How often, in seconds, the in-memory catalog is reloaded even without a local change:
    /// the backstop for another replica's change whose event this one missed.
    #[arg(id = "CATALOG_REFRESH_SECONDS", long = "catalog-refresh-seconds", env = "CATALOG_REFRESH_SECONDS", default_value = "30", value_parser = parse::seconds(86400.0))]
    pub catalog_refresh: Duration,
    /// Comma-separated origins a browser may call the MCP endpoints from (* for any). Requests
    /// without Origin are allowed.
    #[arg(id = "ALLOWED_ORIGINS", long = "allowed-origins", env = "ALLOWED_ORIGINS", default_value = "localhost,127.0.0.1,[::1]", value_parser = HostRule::parse)]
    pub allowed_origins: HostRule,
    /// Comma-separated Host names the MCP endpoints answer (* for any). Default: loopback
    /// names when HOST is a loopback address, any otherwise.
    #[arg(id = "ALLOWED_HOSTS", long = "allowed-hosts", env = "ALLOWED_HOSTS", value_parser = HostRule::parse)]
    pub allowed_hosts_given: Option<HostRule>,
    /// The `Host` names the MCP endpoints answer: `ALLOWED_HOSTS`, or its default.
    #[arg(skip = HostRule::Any)]
    pub allowed_hosts: HostRule,
    /// The budget of one prompt render.
    #[command(flatten)]
    pub prompt_render: crate::prompt_render::RenderLimits,
}

/// An allow list of host names (ports ignored), or everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostRule {
    /// Any value.
    Any,
    /// Only these lowercase host names.
    Only(Vec<String>),
}

impl HostRule {
    /// Whether a host name (without port) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            HostRule::Any => true,
            HostRule::Only(hosts) => {
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase();
                hosts.contains(&host)
            }
        }
    }

    fn loopback() -> Self {
        HostRule::Only(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])
    }

    fn parse(value: &str) -> Result<Self, String> {
        let mut hosts = Vec::new();
        for entry in value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            if entry == "*" {
                return Ok(HostRule::Any);
            }
            // Accept bare host names and full origins (`https://app.example:8443`).
            let host = match url::Url::parse(entry) {
                Ok(url) if url.host_str().is_some() => {
                    url.host_str().unwrap_or_default().to_owned()
                }
                _ => entry
                    .rsplit_once(':')
                    .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
                    .map_or(entry, |(host, _)| host)
                    .to_owned(),
            };
            if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
                return Err(format!("{entry:?} is not a host name or origin"));
            }
            hosts.push(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase(),
            );
        }
        if hosts.is_empty() {
            return Err("give a comma-separated list of hosts or origins, or *".into());
        }
        Ok(HostRule::Only(hosts))
    }
}

impl McpSettings {
    /// Settles what depends on another setting: `ALLOWED_HOSTS` defaults to the loopback names
    /// when the server binds a loopback address.
    pub(super) fn settle(mut self, bound_to_loopback: bool) -> Self {
        self.allowed_hosts = match self.allowed_hosts_given.clone() {
            Some(rule) => rule,
            None if bound_to_loopback => HostRule::loopback(),
            None => HostRule::Any,
        };
        self
    }
}
