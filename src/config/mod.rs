//! Typed settings, read once at start from the environment and `.env`.
//!
//! Every setting has a documented default and is validated here, so an invalid value stops the
//! gateway at start with a message naming the variable. The struct is passed into the parts that
//! need it; nothing reads the environment after start.
//!
//! Names follow the peer gateway's where the meaning is the same, so operators can carry their
//! configuration over.

mod auth;
mod cluster;
mod database;
mod federation;
mod log;
mod mcp;
mod oidc;

use std::net::IpAddr;

pub use self::auth::{AuthSettings, IdentitySettings, JwtKeyPair};
pub use self::cluster::{Bus, ClusterSettings};
pub use self::database::{DatabaseSettings, DatabaseUrl};
pub use self::federation::{DiscoveryLimits, FederationSettings, StdioSettings};
pub use self::log::{LogFormat, LogSettings};
pub use self::mcp::{HostRule, McpSettings};
pub use self::oidc::{OidcSettings, ProviderSettings, Providers};

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
    /// `AUDIT_RETENTION_DAYS`: how long audit entries are kept (default 90; 0 keeps them).
    pub audit_retention_days: u32,
    /// `METRICS_RETENTION_DAYS`: how long per-call records are kept (default 7; 0 keeps them).
    pub metrics_retention_days: u32,
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
    /// How replicas share changes.
    pub cluster: ClusterSettings,
}

/// A setting that could not be used, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {variable}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

fn invalid(variable: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.to_owned(),
        message: message.into(),
    }
}

/// Every setting, as clap declares it: the variable, the default, the accepted values and the
/// help text are one attribute per field (`mcpgate settings` prints them). Values are read
/// from the environment by [`Settings::from_lookup`] and parsed here; what depends on more than
/// one setting is checked when the groups are turned into [`Settings`].
#[derive(clap::Parser, Debug)]
#[command(name = "settings", no_binary_name = true, disable_help_flag = true)]
struct Variables {
    #[command(flatten)]
    server: ServerVariables,
    #[command(flatten)]
    database: DatabaseSettings,
    #[command(flatten)]
    mcp: McpSettings,
    #[command(flatten)]
    federation: FederationSettings,
    #[command(flatten)]
    auth: AuthSettings,
    #[command(flatten)]
    log: LogSettings,
    #[command(flatten)]
    cluster: ClusterSettings,
}

/// The HTTP server's own settings.
#[derive(clap::Args, Debug)]
struct ServerVariables {
    /// The address the HTTP server binds.
    #[arg(id = "HOST", long = "host", env = "HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// The TCP port the HTTP server binds (0 picks a free port).
    #[arg(id = "PORT", long = "port", env = "PORT", default_value = "4444")]
    port: u16,
    /// actix-web worker threads (default: the number of CPUs).
    #[arg(id = "HTTP_WORKERS", long = "http-workers", env = "HTTP_WORKERS", value_parser = parse::whole::<usize>(1, 512))]
    http_workers: Option<usize>,
    /// The largest request body accepted, in bytes.
    #[arg(id = "MAX_REQUEST_BODY_BYTES", 
        long = "max-request-body-bytes",
        env = "MAX_REQUEST_BODY_BYTES",
        default_value = "1048576",
        value_parser = parse::whole::<usize>(1024, 64 * 1024 * 1024)
    )]
    max_request_body_bytes: usize,
    /// Serve /metrics without a token (otherwise an admin token is needed).
    #[arg(id = "METRICS_PUBLIC", long = "metrics-public", env = "METRICS_PUBLIC", default_value = "false", value_parser = parse::boolean(),
        action = clap::ArgAction::Set)]
    metrics_public: bool,
    /// Comma-separated addresses or CIDR networks of reverse proxies whose Forwarded /
    /// X-Forwarded-* headers are believed (from anyone else those headers are ignored).
    #[arg(id = "TRUSTED_PROXIES", long = "trusted-proxies", env = "TRUSTED_PROXIES", value_parser = parse::list(parse::network))]
    trusted_proxies: Option<std::vec::Vec<ipnet::IpNet>>,
    /// Days audit entries are kept before they are purged (0 keeps them for ever).
    #[arg(id = "AUDIT_RETENTION_DAYS", long = "audit-retention-days", env = "AUDIT_RETENTION_DAYS", default_value = "90", value_parser = parse::whole::<u32>(0, 36_500))]
    audit_retention_days: u32,
    /// Days per-call records (`tool_metrics`) are kept before they are purged (0 keeps them for
    /// ever). The metrics page's history is kept apart: a day per tool, a week in all.
    #[arg(id = "METRICS_RETENTION_DAYS", long = "metrics-retention-days", env = "METRICS_RETENTION_DAYS", default_value = "7", value_parser = parse::whole::<u32>(0, 36_500))]
    metrics_retention_days: u32,
}

/// Value parsers the settings groups share; each error says what would be accepted.
pub(crate) mod parse {
    use std::time::Duration;

    use clap::builder::{BoolishValueParser, RangedU64ValueParser, TypedValueParser};

    /// A whole number from `min` to `max`.
    pub(crate) fn whole<T>(min: u64, max: u64) -> RangedU64ValueParser<T>
    where
        T: TryFrom<u64> + Clone + Send + Sync + 'static,
        <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
    {
        RangedU64ValueParser::<T>::new().range(min..=max)
    }

    /// Milliseconds from `min` to `max`.
    pub(crate) fn millis(min: u64, max: u64) -> impl TypedValueParser<Value = Duration> {
        whole::<u64>(min, max).map(Duration::from_millis)
    }

    /// Minutes from `min` to `max`.
    pub(crate) fn minutes(min: u64, max: u64) -> impl TypedValueParser<Value = Duration> {
        whole::<u64>(min, max).map(|minutes| Duration::from_secs(60 * minutes))
    }

    /// A number of seconds above 0 and at most `max` (fractions allowed).
    pub(crate) fn seconds(max: f64) -> impl TypedValueParser<Value = Duration> {
        move |value: &str| -> Result<Duration, String> {
            match value.parse::<f64>() {
                Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= max => {
                    Ok(Duration::from_secs_f64(seconds))
                }
                _ => Err(format!("not a number of seconds above 0 and at most {max}")),
            }
        }
    }

    /// true/false, 1/0, yes/no, on/off.
    pub(crate) fn boolean() -> BoolishValueParser {
        BoolishValueParser::new()
    }

    /// A comma-separated list, each entry parsed by `entry` (whose error names the entry).
    pub(crate) fn list<T, F>(entry: F) -> impl TypedValueParser<Value = Vec<T>>
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static,
    {
        move |value: &str| -> Result<Vec<T>, String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(&entry)
                .collect()
        }
    }

    /// An address or a CIDR network.
    pub(crate) fn network(entry: &str) -> Result<ipnet::IpNet, String> {
        entry
            .parse::<ipnet::IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| format!("{entry:?} is not an IP address or CIDR network"))
    }
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

    /// Builds settings from any name → value lookup (the environment; tests pass a map). A
    /// value is trimmed, and an empty one counts as unset.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use clap::{CommandFactory, FromArgMatches};
        let command = Variables::command();
        let mut arguments = Vec::new();
        for argument in command.get_arguments() {
            let (Some(variable), Some(long)) = (argument.get_env(), argument.get_long()) else {
                continue;
            };
            let value = lookup(&variable.to_string_lossy())
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty());
            if let Some(value) = value {
                arguments.push(format!("--{long}={value}"));
            }
        }
        // The values come from `lookup` alone: clap must not read the process environment.
        let matches = command
            .clone()
            .mut_args(|argument| argument.env(None))
            .try_get_matches_from(arguments)
            .map_err(|error| from_clap(&command, &error))?;
        let variables =
            Variables::from_arg_matches(&matches).map_err(|error| from_clap(&command, &error))?;
        Self::from_variables(variables)
    }

    fn from_variables(variables: Variables) -> Result<Self, ConfigError> {
        let Variables {
            server,
            database,
            mcp,
            federation,
            auth,
            log,
            cluster,
        } = variables;
        let cluster = cluster.settle(&database.url)?;
        let mcp = mcp.settle(server.host.is_loopback());
        let auth = auth.settle(&database.url)?;
        Ok(Settings {
            host: server.host,
            port: server.port,
            http_workers: server.http_workers,
            max_request_body_bytes: server.max_request_body_bytes,
            metrics_public: server.metrics_public,
            trusted_proxies: server.trusted_proxies.unwrap_or_default(),
            audit_retention_days: server.audit_retention_days,
            metrics_retention_days: server.metrics_retention_days,
            database,
            mcp,
            federation,
            auth,
            log,
            cluster,
        })
    }

    /// Every setting: its variable, its default (if any) and what it means.
    pub fn describe() -> Vec<(String, Option<String>, String)> {
        use clap::CommandFactory;
        Variables::command()
            .get_arguments()
            .filter_map(|argument| {
                let variable = argument.get_env()?.to_string_lossy().into_owned();
                let default = argument
                    .get_default_values()
                    .first()
                    .map(|value| value.to_string_lossy().into_owned())
                    .filter(|value| !value.is_empty());
                let help = argument
                    .get_help()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                Some((variable, default, help))
            })
            .collect()
    }
}

/// A clap error as a [`ConfigError`] naming the variable (found from the argument clap names).
/// The value is repeated in the message unless it is a secret (or a URL that may carry one).
fn from_clap(command: &clap::Command, error: &clap::Error) -> ConfigError {
    use clap::error::{ContextKind, ContextValue};
    let named = |kind| match error.get(kind) {
        Some(ContextValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    // An argument renders as clap shows it (`--port <PORT>`) only once its command is built.
    let mut command = command.clone();
    command.build();
    let argument = named(ContextKind::InvalidArg).and_then(|shown| {
        command
            .get_arguments()
            .find(|argument| argument.to_string() == shown)
    });
    let variable = argument
        .and_then(|argument| argument.get_env())
        .map_or_else(
            || "settings".to_owned(),
            |v| v.to_string_lossy().into_owned(),
        );
    let reason = std::error::Error::source(error)
        .map(ToString::to_string)
        .unwrap_or_else(|| error.kind().to_string());
    let secret = argument.is_none_or(clap::Arg::is_hide_env_values_set);
    let message = match named(ContextKind::InvalidValue) {
        Some(value) if !secret => format!("{value:?}: {reason}"),
        _ => reason,
    };
    invalid(&variable, message)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

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
            ("LOG_LEVEL", "[[["),
            ("TRUSTED_PROXIES", "10.0.0.1, proxy"),
            ("MCP_AUTHORIZATION_SERVERS", "ftp://as.example"),
            ("DEFAULT_USER_ROLE", "root"),
            ("GATEWAY_TOOL_NAME_SEPARATOR", "/"),
            ("TOKEN_EXPIRY", "0"),
            ("HTTP_WORKERS", "513"),
            ("DB_POOL_TIMEOUT", "NaN"),
            ("ALLOWED_ORIGINS", "a b"),
            ("JWT_ALGORITHM", "none"),
        ] {
            let error = load(&[(variable, value)]).expect_err(variable);
            assert_eq!(error.variable, variable, "{error}");
            assert!(error.to_string().contains(variable));
        }
    }

    #[test]
    fn secrets_are_not_repeated_in_errors() {
        let error = load(&[("JWT_SECRET_KEY", "tooshort")]).unwrap_err();
        assert_eq!(error.variable, "JWT_SECRET_KEY");
        assert!(!error.to_string().contains("tooshort"), "{error}");
        let error = load(&[("DATABASE_URL", "mysql://user:hunter2@db/x")]).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let error = load(&[("PORT", "70000")]).unwrap_err();
        assert!(error.to_string().contains("70000"), "{error}");
    }

    #[test]
    fn the_replica_bus_is_chosen_and_checked() {
        assert_eq!(
            load(&[]).unwrap().cluster.bus,
            Bus::None,
            "SQLite: one replica"
        );
        let redis = load(&[("REDIS_URL", "redis://:pw@cache:6379/2")]).unwrap();
        assert_eq!(redis.cluster.bus, Bus::Redis);
        let advertised = load(&[("CLUSTER_ADVERTISE_URL", "http://gateway-1:4444/")]).unwrap();
        assert_eq!(
            advertised.cluster.advertise_url.as_deref(),
            Some("http://gateway-1:4444")
        );
        for (variable, value, extra) in [
            ("CLUSTER_BUS", "postgres", None),
            ("CLUSTER_BUS", "redis", None),
            ("CLUSTER_BUS", "kafka", None),
            ("REDIS_URL", "http://cache:6379", None),
            ("REDIS_KEY_PREFIX", "has space", None),
            ("REDIS_URL", "redis://:hunter2@", Some("hunter2")),
            ("CLUSTER_ADVERTISE_URL", "gateway-1:4444", None),
            ("CLUSTER_ADVERTISE_URL", "http://gateway-1:4444/mcp", None),
            ("CLUSTER_ADVERTISE_URL", "ftp://gateway-1", None),
            ("CLUSTER_ADVERTISE_URL", "http://gateway-1:4444/#x", None),
            (
                "CLUSTER_ADVERTISE_URL",
                "http://:hunter2@gateway-1",
                Some("hunter2"),
            ),
        ] {
            let error = load(&[(variable, value)]).expect_err(value);
            assert_eq!(error.variable, variable, "{error}");
            if let Some(secret) = extra {
                assert!(!error.to_string().contains(secret), "{error}");
            }
        }
    }

    #[test]
    fn values_are_trimmed_and_empty_means_unset() {
        let settings = load(&[
            ("PORT", " 8080 "),
            ("DB_POOL_SIZE", ""),
            ("SSRF_ALLOWLIST", " api.example , 10.0.0.0/8 ,"),
            ("TOKEN_EXPIRY", "2"),
            ("METRICS_PUBLIC", "yes"),
        ])
        .unwrap();
        assert_eq!(settings.port, 8080);
        assert_eq!(settings.database.pool_size, 10);
        assert_eq!(settings.federation.egress.allow.len(), 2);
        assert_eq!(settings.auth.identity.token_expiry.as_secs(), 120);
        assert!(settings.metrics_public);
        assert_eq!(
            settings.auth.secrets_file,
            Some(PathBuf::from("./mcpgate.secrets"))
        );
        let postgres = load(&[("DATABASE_URL", "postgres://h/db")]).unwrap();
        assert_eq!(postgres.auth.secrets_file, None);
    }

    /// Every variable set to a valid value at once: each reaches its field.
    #[test]
    fn every_setting_reaches_its_field() {
        let settings = load(&[
            ("HOST", "0.0.0.0"),
            ("HTTP_WORKERS", "3"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1"),
            ("ALLOWED_HOSTS", "gw.example"),
            ("MCP_AUTHORIZATION_SERVERS", "https://as.example/"),
            ("PROMPT_RENDERER", "/usr/bin/mcpgate"),
            ("PROMPT_RENDER_TIMEOUT_MS", "500"),
            ("SECRETS_FILE", "/run/keys.json"),
            ("JWT_SECRET_KEY", "0123456789abcdef0123456789abcdef"),
            ("AUTH_ENCRYPTION_SECRET", "0123456789abcdef"),
            ("PLATFORM_ADMIN_EMAIL", "Root@Example.com"),
            ("PLATFORM_ADMIN_PASSWORD", "correct horse battery"),
            ("DEFAULT_USER_ROLE", "viewer"),
            ("GATEWAY_TOOL_NAME_SEPARATOR", "__"),
            ("MAX_FAILED_LOGIN_ATTEMPTS", "7"),
            ("DB_QUERY_TIMEOUT_MS", "250"),
            ("DB_CIRCUIT_ENABLED", "off"),
            ("MCP_SESSION_TTL_SECONDS", "1.5"),
            ("LOG_FORMAT", "JSON"),
        ])
        .unwrap();
        assert_eq!(settings.http_workers, Some(3));
        assert_eq!(settings.trusted_proxies.len(), 2);
        assert!(settings.mcp.allowed_hosts.allows("gw.example"));
        assert!(!settings.mcp.allowed_hosts.allows("other.example"));
        assert_eq!(settings.auth.authorization_servers, ["https://as.example"]);
        assert_eq!(
            settings.mcp.prompt_render.program,
            Some(PathBuf::from("/usr/bin/mcpgate"))
        );
        assert_eq!(settings.mcp.prompt_render.timeout.as_millis(), 500);
        assert_eq!(
            settings.auth.secrets_file,
            Some(PathBuf::from("/run/keys.json"))
        );
        assert!(settings.auth.jwt_secret.is_some() && settings.auth.encryption_secret.is_some());
        assert_eq!(settings.auth.platform_admin_email, "root@example.com");
        assert_eq!(settings.auth.identity.default_role, "viewer");
        assert_eq!(settings.federation.tool_name_separator, "__");
        assert_eq!(settings.auth.identity.max_failed_logins, 7);
        assert_eq!(settings.database.query_timeout.as_millis(), 250);
        assert!(!settings.database.circuit_enabled);
        assert_eq!(settings.mcp.session_ttl.as_millis(), 1500);
        assert_eq!(settings.log.format, LogFormat::Json);
        assert!(settings.auth.jwt_key_pair.is_none());
    }

    #[test]
    fn every_setting_is_described() {
        let described = Settings::describe();
        for variable in [
            "HOST",
            "DATABASE_URL",
            "MCP_MAX_PARKED_CALLS",
            "PROMPT_RENDERER",
            "SSRF_ALLOWLIST",
            "JWT_PUBLIC_KEY_PATH",
            "TOKEN_REVOCATION_REFRESH_SECONDS",
            "LOG_FORMAT",
        ] {
            assert!(
                described
                    .iter()
                    .any(|(name, _, help)| name == variable && !help.is_empty()),
                "{variable} described"
            );
        }
        assert!(described.len() >= 60, "{}", described.len());
        let (_, default, _) = described.iter().find(|(name, ..)| name == "PORT").unwrap();
        assert_eq!(default.as_deref(), Some("4444"));
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
