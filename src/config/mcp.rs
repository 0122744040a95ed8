//! How the MCP endpoints behave (`MCP_*`, `ALLOWED_*`, `PROMPT_RENDER_*`, `TOOL_TIMEOUT`).

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Source, invalid};

/// How the MCP endpoints behave.
#[derive(Clone, Debug)]
pub struct McpSettings {
    /// `MCP_SESSION_TTL_SECONDS`: a legacy (2025-11-25 and older) session idle for this long is
    /// ended (default 3600).
    pub session_ttl: Duration,
    /// `MCP_MAX_SESSIONS`: the most legacy sessions held at once; `initialize` beyond it is
    /// refused with 503 (default 10000).
    pub max_sessions: usize,
    /// `MCP_MAX_SESSIONS_PER_PRINCIPAL`: legacy sessions one principal may hold; beyond it,
    /// `initialize` is refused with 429 (default 100).
    pub max_sessions_per_principal: usize,
    /// `MCP_MAX_STREAMS_PER_PRINCIPAL`: long-lived streams (subscriptions/listen, session GET
    /// streams, legacy SSE, console events) one principal may hold; beyond it, 429 (default 32).
    pub max_streams_per_principal: usize,
    /// `MCP_MAX_TOOL_CALLS_PER_PRINCIPAL`: `tools/call` in flight for one principal; beyond
    /// it, 429 (default 1000).
    pub max_tool_calls_per_principal: usize,
    /// `MCP_MAX_TOOL_CALLS`: `tools/call` in flight in all (default 10000).
    pub max_tool_calls: usize,
    /// `MCP_MAX_PARKED_CALLS_PER_PRINCIPAL`: upstream calls one principal may keep waiting
    /// for their `input_required` answers (default 100).
    pub max_parked_calls_per_principal: usize,
    /// `MCP_MAX_PARKED_CALLS`: such calls in all (default 10000).
    pub max_parked_calls: usize,
    /// `MCP_MAX_STREAMS`: long-lived streams in all (default 10000; lowered at start to leave
    /// a reserve of file descriptors for /health, /ready, the admin API and the database).
    pub max_streams: usize,
    /// `MCP_PAGE_SIZE`: items per page of `tools/list`, `resources/list`, `prompts/list`
    /// (default 100).
    pub page_size: usize,
    /// `MCP_CACHE_TTL_MS`: the `ttlMs` freshness hint on cacheable results (default 10000).
    pub cache_ttl_ms: u64,
    /// `TOOL_TIMEOUT`: seconds a REST tool call may take (default 60).
    pub tool_timeout: Duration,
    /// `CATALOG_REFRESH_SECONDS`: how often the in-memory catalog is reloaded even without a
    /// local change, so replicas converge (default 30).
    pub catalog_refresh: Duration,
    /// `ALLOWED_ORIGINS`: comma-separated origins a browser may call the MCP endpoints from
    /// (`*` for any). Default: loopback origins only. Requests without `Origin` are allowed.
    pub allowed_origins: HostRule,
    /// `ALLOWED_HOSTS`: comma-separated `Host` names the MCP endpoints answer (`*` for any).
    /// Default: loopback names when bound to loopback, any otherwise.
    pub allowed_hosts: HostRule,
    /// The budget of one prompt render: `PROMPT_RENDER_FUEL` (steps, default 100000),
    /// `PROMPT_RENDER_MAX_OUTPUT_BYTES` (default 1048576), `PROMPT_RENDER_MEMORY_MB` (default
    /// 256), `PROMPT_RENDER_TIMEOUT_MS` (default 2000), `PROMPT_RENDER_CONCURRENCY` (default 4)
    /// and `PROMPT_RENDERER` (the `mcpgate` binary run as the renderer; default: this one).
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

    fn parse(variable: &'static str, value: &str) -> Result<Self, ConfigError> {
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
                return Err(invalid(
                    variable,
                    format!("{entry:?} is not a host name or origin"),
                ));
            }
            hosts.push(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase(),
            );
        }
        if hosts.is_empty() {
            return Err(invalid(
                variable,
                "give a comma-separated list of hosts or origins, or *",
            ));
        }
        Ok(HostRule::Only(hosts))
    }
}

/// Reads the MCP settings; `bound_to_loopback` decides the default `ALLOWED_HOSTS`.
pub(super) fn read(
    source: &Source<'_>,
    bound_to_loopback: bool,
) -> Result<McpSettings, ConfigError> {
    Ok(McpSettings {
        session_ttl: source.seconds("MCP_SESSION_TTL_SECONDS", 3600.0, 7.0 * 86400.0)?,
        max_sessions: source.ranged("MCP_MAX_SESSIONS", 10_000usize, 1..=10_000_000)?,
        max_sessions_per_principal: source.ranged(
            "MCP_MAX_SESSIONS_PER_PRINCIPAL",
            100usize,
            1..=10_000_000,
        )?,
        max_streams_per_principal: source.ranged(
            "MCP_MAX_STREAMS_PER_PRINCIPAL",
            32usize,
            1..=1_000_000,
        )?,
        max_streams: source.ranged("MCP_MAX_STREAMS", 10_000usize, 1..=10_000_000)?,
        max_tool_calls_per_principal: source.ranged(
            "MCP_MAX_TOOL_CALLS_PER_PRINCIPAL",
            1000usize,
            1..=1_000_000,
        )?,
        max_tool_calls: source.ranged("MCP_MAX_TOOL_CALLS", 10_000usize, 1..=10_000_000)?,
        max_parked_calls_per_principal: source.ranged(
            "MCP_MAX_PARKED_CALLS_PER_PRINCIPAL",
            100usize,
            1..=1_000_000,
        )?,
        max_parked_calls: source.ranged("MCP_MAX_PARKED_CALLS", 10_000usize, 1..=10_000_000)?,
        page_size: source.ranged("MCP_PAGE_SIZE", 100usize, 1..=10_000)?,
        cache_ttl_ms: source.ranged("MCP_CACHE_TTL_MS", 10_000u64, 0..=86_400_000)?,
        tool_timeout: source.seconds("TOOL_TIMEOUT", 60.0, 3600.0)?,
        catalog_refresh: source.seconds("CATALOG_REFRESH_SECONDS", 30.0, 86400.0)?,
        allowed_origins: match source.raw("ALLOWED_ORIGINS") {
            Some(value) => HostRule::parse("ALLOWED_ORIGINS", &value)?,
            None => HostRule::loopback(),
        },
        allowed_hosts: match source.raw("ALLOWED_HOSTS") {
            Some(value) => HostRule::parse("ALLOWED_HOSTS", &value)?,
            None if bound_to_loopback => HostRule::loopback(),
            None => HostRule::Any,
        },
        prompt_render: crate::prompt_render::RenderLimits {
            fuel: source.ranged("PROMPT_RENDER_FUEL", 100_000u64, 100..=100_000_000)?,
            max_output_bytes: source.ranged(
                "PROMPT_RENDER_MAX_OUTPUT_BYTES",
                1024 * 1024usize,
                1024..=64 * 1024 * 1024,
            )?,
            memory_mb: source.ranged("PROMPT_RENDER_MEMORY_MB", 256u64, 64..=16 * 1024)?,
            timeout: Duration::from_millis(source.ranged(
                "PROMPT_RENDER_TIMEOUT_MS",
                2000u64,
                100..=60_000,
            )?),
            concurrency: source.ranged("PROMPT_RENDER_CONCURRENCY", 4usize, 1..=256)?,
            program: source.raw("PROMPT_RENDERER").map(PathBuf::from),
        },
    })
}
