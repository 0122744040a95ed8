//! Typed settings, read once at start from the environment and `.env`.
//!
//! Every setting has a documented default and is validated here, so an invalid value stops the
//! gateway at start with a message naming the variable. The struct is passed into the parts that
//! need it; nothing reads the environment after start.
//!
//! Names follow the peer gateway's where the meaning is the same, so operators can carry their
//! configuration over.

mod auth;
mod database;
mod federation;
mod log;
mod mcp;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub use self::auth::{AuthSettings, IdentitySettings, JwtKeyPair};
pub use self::database::{DatabaseSettings, DatabaseUrl};
pub use self::federation::FederationSettings;
pub use self::log::{LogFormat, LogSettings};
pub use self::mcp::{HostRule, McpSettings};

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

        let database = database::read(&source)?;

        let bound_to_loopback = host.is_loopback();
        let mcp = mcp::read(&source, bound_to_loopback)?;

        let federation = federation::read(&source)?;

        let auth = auth::read(&source, &database.url)?;

        let log = log::read(&source)?;

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
            log,
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
