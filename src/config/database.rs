//! Where the database lives and how the DbActor treats it (`DATABASE_URL`, `DB_*`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::parse;

/// Where the database lives and how the DbActor treats it.
#[derive(clap::Args, Clone, Debug)]
pub struct DatabaseSettings {
    /// sqlite://PATH or postgres://USER@HOST:PORT/DATABASE.
    #[arg(id = "DATABASE_URL", long = "database-url", env = "DATABASE_URL", default_value = "sqlite://./mcpgate.db", value_parser = parse_database_url, hide_env_values = true)]
    pub url: DatabaseUrl,
    /// The most connections the pool opens.
    #[arg(id = "DB_POOL_SIZE", long = "db-pool-size", env = "DB_POOL_SIZE", default_value = "10", value_parser = parse::whole::<u32>(1, 1000))]
    pub pool_size: u32,
    /// Seconds a unit of work may wait to check out a connection.
    #[arg(id = "DB_POOL_TIMEOUT", long = "db-pool-timeout", env = "DB_POOL_TIMEOUT", default_value = "5", value_parser = parse::seconds(600.0))]
    pub pool_timeout: Duration,
    /// The deadline of one unit of work once it holds a connection, in milliseconds (on
    /// PostgreSQL also the server-side statement_timeout).
    #[arg(id = "DB_QUERY_TIMEOUT_MS", long = "db-query-timeout-ms", env = "DB_QUERY_TIMEOUT_MS", default_value = "10000", value_parser = parse::millis(10, 3_600_000))]
    pub query_timeout: Duration,
    /// Retries of a unit of work after a transient failure.
    #[arg(id = "DB_MAX_RETRIES", long = "db-max-retries", env = "DB_MAX_RETRIES", default_value = "3", value_parser = parse::whole::<u32>(0, 20))]
    pub max_retries: u32,
    /// The first retry backoff in milliseconds; it doubles per retry.
    #[arg(id = "DB_RETRY_INTERVAL_MS", long = "db-retry-interval-ms", env = "DB_RETRY_INTERVAL_MS", default_value = "100", value_parser = parse::millis(1, 60_000))]
    pub retry_interval: Duration,
    /// The cap of one backoff, in seconds.
    #[arg(id = "DB_MAX_BACKOFF_SECONDS", long = "db-max-backoff-seconds", env = "DB_MAX_BACKOFF_SECONDS", default_value = "2", value_parser = parse::seconds(300.0))]
    pub max_backoff: Duration,
    /// Whether the circuit breaker is used.
    #[arg(id = "DB_CIRCUIT_ENABLED", long = "db-circuit-enabled", env = "DB_CIRCUIT_ENABLED", default_value = "true", value_parser = parse::boolean(),
        action = clap::ArgAction::Set)]
    pub circuit_enabled: bool,
    /// Consecutive transient failures that open the breaker.
    #[arg(id = "DB_CIRCUIT_FAILURE_THRESHOLD", long = "db-circuit-failure-threshold", env = "DB_CIRCUIT_FAILURE_THRESHOLD", default_value = "5", value_parser = parse::whole::<u32>(1, 1000))]
    pub circuit_failure_threshold: u32,
    /// Seconds the breaker stays open before one probe.
    #[arg(id = "DB_CIRCUIT_RESET_SECONDS", long = "db-circuit-reset-seconds", env = "DB_CIRCUIT_RESET_SECONDS", default_value = "10", value_parser = parse::seconds(3600.0))]
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

fn parse_database_url(value: &str) -> Result<DatabaseUrl, String> {
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(value.to_owned()));
    }
    let path = value
        .strip_prefix("sqlite://")
        .or_else(|| value.strip_prefix("sqlite:"));
    match path {
        Some("") => Err("the sqlite URL names no file".into()),
        Some(path) if path.contains(":memory:") || path.starts_with("file:") => Err(
            "in-memory SQLite is not supported (each pooled connection would see its own \
             database); give a file path such as sqlite://./mcpgate.db"
                .into(),
        ),
        Some(path) => Ok(DatabaseUrl::Sqlite(PathBuf::from(path))),
        None => Err("expected sqlite://PATH or postgres://USER@HOST:PORT/DATABASE".into()),
    }
}
