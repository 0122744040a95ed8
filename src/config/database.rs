//! Where the database lives and how the DbActor treats it (`DATABASE_URL`, `DB_*`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, Source, invalid};

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

/// Reads the database settings.
pub(super) fn read(source: &Source<'_>) -> Result<DatabaseSettings, ConfigError> {
    Ok(DatabaseSettings {
        url: parse_database_url(&source.string("DATABASE_URL", "sqlite://./mcpgate.db"))?,
        pool_size: source.ranged("DB_POOL_SIZE", 10u32, 1..=1000)?,
        pool_timeout: source.seconds("DB_POOL_TIMEOUT", 5.0, 600.0)?,
        query_timeout: source.millis("DB_QUERY_TIMEOUT_MS", 10_000, 10..=3_600_000)?,
        max_retries: source.ranged("DB_MAX_RETRIES", 3u32, 0..=20)?,
        retry_interval: source.millis("DB_RETRY_INTERVAL_MS", 100, 1..=60_000)?,
        max_backoff: source.seconds("DB_MAX_BACKOFF_SECONDS", 2.0, 300.0)?,
        circuit_enabled: source.boolean("DB_CIRCUIT_ENABLED", true)?,
        circuit_failure_threshold: source.ranged("DB_CIRCUIT_FAILURE_THRESHOLD", 5u32, 1..=1000)?,
        circuit_reset: source.seconds("DB_CIRCUIT_RESET_SECONDS", 10.0, 3600.0)?,
    })
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
