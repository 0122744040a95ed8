//! Typed settings, read once at start from the environment and `.env`.
//!
//! Every setting has a documented default and is validated here, so an invalid value stops the
//! gateway at start with a message naming the variable. The struct is passed into the parts that
//! need it; nothing reads the environment after start.
//!
//! Names follow the peer gateway's where the meaning is the same, so operators can carry their
//! configuration over.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// All settings of one gateway process.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `HOST`: the address the HTTP server binds (default `127.0.0.1`).
    pub host: IpAddr,
    /// `PORT`: the TCP port the HTTP server binds (default `4444`; `0` picks a free port).
    pub port: u16,
    /// `HTTP_WORKERS`: actix-web worker threads (default: the number of CPUs).
    pub http_workers: Option<usize>,
    /// `MAX_REQUEST_BODY_BYTES`: the largest request body accepted (default 1 MiB).
    pub max_request_body_bytes: usize,
    /// `METRICS_PUBLIC`: serve `/metrics` without a token (default false: admin token needed).
    pub metrics_public: bool,
    /// `TRUSTED_PROXIES`: comma-separated addresses or CIDR networks of reverse proxies whose
    /// `Forwarded` / `X-Forwarded-For` / `-Proto` / `-Host` headers are believed (default: none;
    /// from anyone else those headers are ignored).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Database connection and resilience settings.
    pub database: DatabaseSettings,
    /// MCP endpoint settings.
    pub mcp: McpSettings,
    /// Upstream MCP server settings.
    pub federation: FederationSettings,
    /// Token and bootstrap-admin settings.
    pub auth: AuthSettings,
    /// Log settings.
    pub log: LogSettings,
}

/// Where the database lives and how the DbActor treats it.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`: `sqlite://PATH` (default `sqlite://./mcpgate.db`) or `postgres://…`.
    pub url: DatabaseUrl,
    /// `DB_POOL_SIZE`: the most connections the pool opens (default 10).
    pub pool_size: u32,
    /// `DB_POOL_TIMEOUT`: seconds a unit of work may wait to check out a connection (default 5).
    pub pool_timeout: Duration,
    /// `DB_QUERY_TIMEOUT_MS`: the deadline of one unit of work once it holds a connection
    /// (default 10000). On PostgreSQL it is also the server-side `statement_timeout`.
    pub query_timeout: Duration,
    /// `DB_MAX_RETRIES`: retries of a unit of work after a transient failure (default 3).
    pub max_retries: u32,
    /// `DB_RETRY_INTERVAL_MS`: the first backoff; it doubles per retry (default 100).
    pub retry_interval: Duration,
    /// `DB_MAX_BACKOFF_SECONDS`: the cap of one backoff (default 2).
    pub max_backoff: Duration,
    /// `DB_CIRCUIT_ENABLED`: whether the circuit breaker is used (default true).
    pub circuit_enabled: bool,
    /// `DB_CIRCUIT_FAILURE_THRESHOLD`: consecutive transient failures that open it (default 5).
    pub circuit_failure_threshold: u32,
    /// `DB_CIRCUIT_RESET_SECONDS`: how long it stays open before one probe (default 10).
    pub circuit_reset: Duration,
}

/// A parsed `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string, as given.
    Postgres(String),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            // The URL may carry a password: never print it.
            DatabaseUrl::Postgres(_) => f.write_str("postgres://…"),
        }
    }
}

impl DatabaseUrl {
    /// The backend's name, for logs and statistics.
    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
        }
    }
}

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

/// Token signing and the bootstrap platform admin.
#[derive(Clone)]
pub struct AuthSettings {
    /// `JWT_SECRET_KEY`: the HS256 signing secret (at least 32 characters). When unset, it is
    /// read from the key file (`SECRETS_FILE`), which is created on first start.
    pub jwt_secret: Option<String>,
    /// `JWT_SECRET_KEY_PREVIOUS`: the secret being rotated away from; tokens it signed still
    /// verify (new ones are signed with `JWT_SECRET_KEY`).
    pub jwt_secret_previous: Option<String>,
    /// `JWT_AUDIENCE`: the `aud` claim tokens are issued for and checked against
    /// (default `mcpgate-api`).
    pub jwt_audience: String,
    /// `JWT_ISSUER`: the `iss` claim (default `mcpgate`).
    pub jwt_issuer: String,
    /// `PLATFORM_ADMIN_EMAIL`: the platform admin created at first start
    /// (default `admin@example.com`).
    pub platform_admin_email: String,
    /// `PLATFORM_ADMIN_PASSWORD`: that admin's password. When unset, one is generated on first
    /// start and printed once. When set, it is applied at every start.
    pub platform_admin_password: Option<String>,
    /// `AUTH_ENCRYPTION_SECRET`: the secret upstream credentials and REST tool headers are
    /// encrypted with at rest. When unset, it is read from the key file (`SECRETS_FILE`).
    pub encryption_secret: Option<String>,
    /// `AUTH_ENCRYPTION_SECRET_PREVIOUS`: the secret being rotated away from; what it sealed
    /// still opens and is sealed again with the current secret at start.
    pub encryption_secret_previous: Option<String>,
    /// `SECRETS_FILE`: a JSON key file (mode 0600) holding the secrets not given by settings.
    /// Default on SQLite: beside the database (`mcpgate.db` → `mcpgate.secrets`), created on
    /// first start. On PostgreSQL there is no default: give the secrets as settings (every
    /// replica the same) or name a file.
    pub secrets_file: Option<PathBuf>,
    /// Sign-in, passwords and the identity cache.
    pub identity: IdentitySettings,
    /// `JWT_ALGORITHM` with `JWT_PRIVATE_KEY_PATH` and `JWT_PUBLIC_KEY_PATH`: sign and verify
    /// with RS256 or ES256 and this PEM key pair instead of the HS256 secret.
    pub jwt_key_pair: Option<JwtKeyPair>,
    /// `MCP_AUTHORIZATION_SERVERS`: comma-separated URLs of the authorization servers the MCP
    /// endpoints' protected resource metadata names (default: this gateway).
    pub authorization_servers: Vec<String>,
}

/// An asymmetric signing key pair, read from PEM files at start.
#[derive(Clone)]
pub struct JwtKeyPair {
    /// `RS256` or `ES256`.
    pub algorithm: jsonwebtoken::Algorithm,
    /// The private key (PEM).
    pub private_pem: Vec<u8>,
    /// The public key (PEM).
    pub public_pem: Vec<u8>,
}

impl fmt::Debug for JwtKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeyPair")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Sign-in, password policy and the identity cache.
#[derive(Clone, Debug)]
pub struct IdentitySettings {
    /// `TOKEN_EXPIRY`: minutes a token from `POST /auth/login` is valid (default 1440).
    pub token_expiry: Duration,
    /// `PASSWORD_MIN_LENGTH`: the shortest accepted password (default 12).
    pub password_min_length: usize,
    /// `MAX_FAILED_LOGIN_ATTEMPTS`: failed sign-ins in a row that lock an account (default 5).
    pub max_failed_logins: i32,
    /// `ACCOUNT_LOCKOUT_DURATION_MINUTES`: how long a locked account stays locked (default 5:
    /// short, so a lockout cannot keep an account out for long; the per-address limit below
    /// slows guessing).
    pub lockout: Duration,
    /// `LOGIN_RATE_LIMIT_PER_MINUTE`: sign-in attempts one address may make per minute, on the
    /// REST API and the console together (default 10); beyond it, 429 with `Retry-After`.
    pub login_rate_per_minute: u32,
    /// `LOGIN_CONCURRENCY`: password verifications (argon2id) in flight at once (default 4), so
    /// a flood of sign-ins cannot take the gateway's CPU.
    pub login_concurrency: usize,
    /// `AUTH_CACHE_TTL_SECONDS`: how long a user's roles and teams are served from the cache
    /// before they are read again (default 30); changes made on this replica apply at once.
    pub cache_ttl: Duration,
    /// `DEFAULT_USER_ROLE`: the global role a new user gets unless one is given (default
    /// `developer`).
    pub default_role: String,
    /// `TOKEN_REVOCATION_REFRESH_SECONDS`: how often the revocation list is read again (default
    /// 5): a token revoked on another replica stops working here within this time.
    pub revocation_refresh: Duration,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("platform_admin_email", &self.platform_admin_email)
            .field(
                "platform_admin_password",
                &self.platform_admin_password.as_ref().map(|_| "<set>"),
            )
            .field(
                "jwt_secret_previous",
                &self.jwt_secret_previous.as_ref().map(|_| "<set>"),
            )
            .field(
                "encryption_secret",
                &self.encryption_secret.as_ref().map(|_| "<set>"),
            )
            .field(
                "encryption_secret_previous",
                &self.encryption_secret_previous.as_ref().map(|_| "<set>"),
            )
            .field("secrets_file", &self.secrets_file)
            .field("jwt_key_pair", &self.jwt_key_pair)
            .field("authorization_servers", &self.authorization_servers)
            .field("identity", &self.identity)
            .finish()
    }
}

/// Log output.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// `LOG_LEVEL`: a level (`info`) or a full filter (`info,mcpgate=debug`); default `info`.
    pub level: String,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub format: LogFormat,
}

/// The log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A setting that could not be used, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {variable}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong and what would be accepted.
    pub message: String,
}

fn invalid(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

/// Reads raw values by variable name; the environment in production, a map in tests.
struct Source<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Source<'_> {
    fn raw(&self, variable: &'static str) -> Option<String> {
        (self.lookup)(variable)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// A comma-separated list, each entry parsed by `parse` (whose error names the entry).
    fn list<T>(
        &self,
        variable: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        self.raw(variable)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| parse(entry).map_err(|message| invalid(variable, message)))
            .collect()
    }

    fn string(&self, variable: &'static str, default: &str) -> String {
        self.raw(variable).unwrap_or_else(|| default.to_owned())
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        variable: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.raw(variable) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| invalid(variable, format!("{value:?} is not {expected}"))),
        }
    }

    fn ranged<T>(
        &self,
        variable: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let expected = format!("a whole number from {} to {}", range.start(), range.end());
        let value = self.parsed(variable, default, &expected)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(invalid(variable, format!("{value} is not {expected}")))
        }
    }

    fn seconds(
        &self,
        variable: &'static str,
        default: f64,
        max: f64,
    ) -> Result<Duration, ConfigError> {
        let expected = format!("a number of seconds above 0 and at most {max}");
        let value: f64 = self.parsed(variable, default, &expected)?;
        if value.is_finite() && value > 0.0 && value <= max {
            Ok(Duration::from_secs_f64(value))
        } else {
            Err(invalid(variable, format!("{value} is not {expected}")))
        }
    }

    fn millis(
        &self,
        variable: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.ranged(variable, default, range)
            .map(Duration::from_millis)
    }

    fn boolean(&self, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(variable) {
            None => Ok(default),
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(invalid(
                    variable,
                    format!("{value:?} is not a boolean (true/false, 1/0, yes/no, on/off)"),
                )),
            },
        }
    }
}

/// `JWT_ALGORITHM` (`HS256` by default) and, for RS256/ES256, the key files; the keys are
/// checked to load and to match here, so a bad key stops the start with the variable named.
fn jwt_key_pair(source: &Source<'_>) -> Result<Option<JwtKeyPair>, ConfigError> {
    let algorithm = match source
        .string("JWT_ALGORITHM", "HS256")
        .to_ascii_uppercase()
        .as_str()
    {
        "HS256" => return Ok(None),
        "RS256" => jsonwebtoken::Algorithm::RS256,
        "ES256" => jsonwebtoken::Algorithm::ES256,
        other => {
            return Err(invalid(
                "JWT_ALGORITHM",
                format!("{other:?} is not HS256, RS256 or ES256"),
            ));
        }
    };
    let read = |variable: &'static str| -> Result<Vec<u8>, ConfigError> {
        let path = source.raw(variable).ok_or_else(|| {
            invalid(
                variable,
                "required with JWT_ALGORITHM RS256 or ES256 (a PEM file)",
            )
        })?;
        std::fs::read(&path)
            .map_err(|error| invalid(variable, format!("cannot read {path}: {error}")))
    };
    let pair = JwtKeyPair {
        algorithm,
        private_pem: read("JWT_PRIVATE_KEY_PATH")?,
        public_pem: read("JWT_PUBLIC_KEY_PATH")?,
    };
    crate::auth::jwt::JwtKeys::asymmetric(
        algorithm,
        &pair.private_pem,
        &pair.public_pem,
        "check",
        "check",
    )
    .map_err(|reason| invalid("JWT_PRIVATE_KEY_PATH", reason))?;
    Ok(Some(pair))
}

impl Settings {
    /// Loads `.env` (when present) and then the process environment, and validates.
    pub fn from_env() -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(error) if error.not_found() => {}
            Err(error) => return Err(invalid(".env", error.to_string())),
        }
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Builds settings from any name → value lookup (tests pass a map).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let source = Source { lookup };
        let host = source.parsed(
            "HOST",
            IpAddr::from([127, 0, 0, 1]),
            "an IP address such as 127.0.0.1 or 0.0.0.0",
        )?;
        let port = source.parsed("PORT", 4444u16, "a port number from 0 to 65535")?;
        let http_workers = match source.raw("HTTP_WORKERS") {
            None => None,
            Some(_) => Some(source.ranged("HTTP_WORKERS", 1usize, 1..=512)?),
        };
        let max_request_body_bytes = source.ranged(
            "MAX_REQUEST_BODY_BYTES",
            1024 * 1024,
            1024..=64 * 1024 * 1024,
        )?;

        let database = DatabaseSettings {
            url: parse_database_url(&source.string("DATABASE_URL", "sqlite://./mcpgate.db"))?,
            pool_size: source.ranged("DB_POOL_SIZE", 10u32, 1..=1000)?,
            pool_timeout: source.seconds("DB_POOL_TIMEOUT", 5.0, 600.0)?,
            query_timeout: source.millis("DB_QUERY_TIMEOUT_MS", 10_000, 10..=3_600_000)?,
            max_retries: source.ranged("DB_MAX_RETRIES", 3u32, 0..=20)?,
            retry_interval: source.millis("DB_RETRY_INTERVAL_MS", 100, 1..=60_000)?,
            max_backoff: source.seconds("DB_MAX_BACKOFF_SECONDS", 2.0, 300.0)?,
            circuit_enabled: source.boolean("DB_CIRCUIT_ENABLED", true)?,
            circuit_failure_threshold: source.ranged(
                "DB_CIRCUIT_FAILURE_THRESHOLD",
                5u32,
                1..=1000,
            )?,
            circuit_reset: source.seconds("DB_CIRCUIT_RESET_SECONDS", 10.0, 3600.0)?,
        };

        let bound_to_loopback = host.is_loopback();
        let mcp = McpSettings {
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
        };

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
        let federation = FederationSettings {
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
        };

        let jwt_secret = source.raw("JWT_SECRET_KEY");
        let jwt_secret_previous = source.raw("JWT_SECRET_KEY_PREVIOUS");
        for (name, secret) in [
            ("JWT_SECRET_KEY", &jwt_secret),
            ("JWT_SECRET_KEY_PREVIOUS", &jwt_secret_previous),
        ] {
            if let Some(secret) = secret
                && secret.len() < 32
            {
                return Err(invalid(
                    name,
                    format!(
                        "the secret has {} characters; use at least 32 (or unset it to have one generated)",
                        secret.len()
                    ),
                ));
            }
        }
        let secrets_file = match source.raw("SECRETS_FILE") {
            Some(path) => Some(PathBuf::from(path)),
            None => match &database.url {
                DatabaseUrl::Sqlite(path) => Some(path.with_extension("secrets")),
                DatabaseUrl::Postgres(_) => None,
            },
        };
        let platform_admin_email = source.string("PLATFORM_ADMIN_EMAIL", "admin@example.com");
        if !looks_like_email(&platform_admin_email) {
            return Err(invalid(
                "PLATFORM_ADMIN_EMAIL",
                format!("{platform_admin_email:?} is not an email address"),
            ));
        }
        let platform_admin_password = source.raw("PLATFORM_ADMIN_PASSWORD");
        if let Some(password) = &platform_admin_password
            && password.chars().count() < 12
        {
            return Err(invalid(
                "PLATFORM_ADMIN_PASSWORD",
                "use at least 12 characters (or unset it to have one generated)",
            ));
        }
        let auth = AuthSettings {
            jwt_secret,
            jwt_secret_previous,
            secrets_file,
            encryption_secret_previous: source.raw("AUTH_ENCRYPTION_SECRET_PREVIOUS"),
            jwt_audience: source.string("JWT_AUDIENCE", "mcpgate-api"),
            jwt_issuer: source.string("JWT_ISSUER", "mcpgate"),
            platform_admin_email: platform_admin_email.to_ascii_lowercase(),
            platform_admin_password,
            encryption_secret: source.raw("AUTH_ENCRYPTION_SECRET"),
            jwt_key_pair: jwt_key_pair(&source)?,
            authorization_servers: match source.raw("MCP_AUTHORIZATION_SERVERS") {
                None => Vec::new(),
                Some(value) => {
                    let mut servers = Vec::new();
                    for url in value.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                        let parsed = url::Url::parse(url).map_err(|error| {
                            invalid("MCP_AUTHORIZATION_SERVERS", format!("{url:?}: {error}"))
                        })?;
                        if !matches!(parsed.scheme(), "https" | "http") {
                            return Err(invalid(
                                "MCP_AUTHORIZATION_SERVERS",
                                format!("{url:?} is not an http(s) URL"),
                            ));
                        }
                        servers.push(url.trim_end_matches('/').to_owned());
                    }
                    servers
                }
            },
            identity: IdentitySettings {
                token_expiry: Duration::from_secs(
                    60 * source.ranged("TOKEN_EXPIRY", 1440u64, 1..=525_600)?,
                ),
                password_min_length: source.ranged("PASSWORD_MIN_LENGTH", 12usize, 8..=128)?,
                max_failed_logins: source.ranged("MAX_FAILED_LOGIN_ATTEMPTS", 5i32, 1..=1000)?,
                lockout: Duration::from_secs(
                    60 * source.ranged("ACCOUNT_LOCKOUT_DURATION_MINUTES", 5u64, 1..=10_080)?,
                ),
                login_rate_per_minute: source.ranged(
                    "LOGIN_RATE_LIMIT_PER_MINUTE",
                    10u32,
                    1..=1_000_000,
                )?,
                login_concurrency: source.ranged("LOGIN_CONCURRENCY", 4usize, 1..=256)?,
                cache_ttl: source.seconds("AUTH_CACHE_TTL_SECONDS", 30.0, 3600.0)?,
                revocation_refresh: source.seconds(
                    "TOKEN_REVOCATION_REFRESH_SECONDS",
                    5.0,
                    3600.0,
                )?,
                default_role: {
                    let role = source.string("DEFAULT_USER_ROLE", "developer");
                    if !crate::auth::rbac::ROLES.contains(&role.as_str()) {
                        return Err(invalid(
                            "DEFAULT_USER_ROLE",
                            format!(
                                "{role:?} is not a role; use one of {}",
                                crate::auth::rbac::ROLES.join(", ")
                            ),
                        ));
                    }
                    role
                },
            },
        };
        for (name, secret) in [
            ("AUTH_ENCRYPTION_SECRET", &auth.encryption_secret),
            (
                "AUTH_ENCRYPTION_SECRET_PREVIOUS",
                &auth.encryption_secret_previous,
            ),
        ] {
            if let Some(secret) = secret
                && secret.len() < 16
            {
                return Err(invalid(
                    name,
                    "use at least 16 characters (or unset it to have one generated)",
                ));
            }
        }

        let level = source.string("LOG_LEVEL", "info");
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(invalid(
                "LOG_LEVEL",
                format!("{level:?} is not a level (error, warn, info, debug, trace) or filter"),
            ));
        }
        let format = match source
            .string("LOG_FORMAT", "text")
            .to_ascii_lowercase()
            .as_str()
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("{other:?} is not one of text, json"),
                ));
            }
        };

        Ok(Settings {
            host,
            port,
            http_workers,
            max_request_body_bytes,
            metrics_public: source.boolean("METRICS_PUBLIC", false)?,
            trusted_proxies: source.list("TRUSTED_PROXIES", |entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an IP address or CIDR network"))
            })?,
            database,
            mcp,
            federation,
            auth,
            log: LogSettings { level, format },
        })
    }
}

/// A minimal shape check: one `@`, something before it, a dot after it, no spaces.
pub fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !value.chars().any(char::is_whitespace)
        && value.len() <= 254
}

fn parse_database_url(value: &str) -> Result<DatabaseUrl, ConfigError> {
    const VARIABLE: &str = "DATABASE_URL";
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(value.to_owned()));
    }
    let path = value
        .strip_prefix("sqlite://")
        .or_else(|| value.strip_prefix("sqlite:"));
    match path {
        Some("") => Err(invalid(VARIABLE, "the sqlite URL names no file")),
        Some(path) if path.contains(":memory:") || path.starts_with("file:") => Err(invalid(
            VARIABLE,
            "in-memory SQLite is not supported (each pooled connection would see its own \
             database); give a file path such as sqlite://./mcpgate.db",
        )),
        Some(path) => Ok(DatabaseUrl::Sqlite(PathBuf::from(path))),
        None => Err(invalid(
            VARIABLE,
            "expected sqlite://PATH or postgres://USER@HOST:PORT/DATABASE",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(&|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_valid() {
        let settings = load(&[]).expect("defaults load");
        assert_eq!(settings.port, 4444);
        assert_eq!(
            settings.database.url,
            DatabaseUrl::Sqlite(PathBuf::from("./mcpgate.db"))
        );
        assert!(settings.database.circuit_enabled);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (variable, value) in [
            ("PORT", "70000"),
            ("HOST", "not-an-ip"),
            ("DATABASE_URL", "mysql://x"),
            ("DATABASE_URL", "sqlite://:memory:"),
            ("DB_POOL_SIZE", "0"),
            ("DB_POOL_TIMEOUT", "-1"),
            ("DB_CIRCUIT_ENABLED", "maybe"),
            ("JWT_SECRET_KEY", "short"),
            ("PLATFORM_ADMIN_EMAIL", "nobody"),
            ("LOG_FORMAT", "xml"),
        ] {
            let error = load(&[(variable, value)]).expect_err(variable);
            assert_eq!(error.variable, variable);
            assert!(error.to_string().contains(variable));
        }
    }

    #[test]
    fn host_rules() {
        let settings = load(&[("ALLOWED_ORIGINS", "https://app.example:8443, localhost")]).unwrap();
        assert!(settings.mcp.allowed_origins.allows("app.example"));
        assert!(settings.mcp.allowed_origins.allows("LOCALHOST"));
        assert!(!settings.mcp.allowed_origins.allows("evil.example"));
        assert!(settings.mcp.allowed_hosts.allows("[::1]"));
        assert!(!settings.mcp.allowed_hosts.allows("rebind.example"));
        let public = load(&[("HOST", "0.0.0.0")]).unwrap();
        assert_eq!(public.mcp.allowed_hosts, HostRule::Any);
        assert!(load(&[("ALLOWED_HOSTS", " , ")]).is_err());
    }

    #[test]
    fn postgres_urls_are_not_printed() {
        let settings = load(&[("DATABASE_URL", "postgres://u:secret@h/db")]).unwrap();
        assert!(!format!("{:?}", settings.database.url).contains("secret"));
    }
}
