//! Replicas (`REDIS_URL`, `CLUSTER_BUS`): how what one replica changes reaches the others.

use super::{ConfigError, DatabaseUrl, invalid};

/// How replicas tell each other about changes.
#[derive(clap::Args, Clone, Debug)]
pub struct ClusterSettings {
    /// Redis (redis://[user:password@]host[:port][/db]): carries changes between replicas
    /// (pub/sub); shared quotas and rate limits live there. Unset: PostgreSQL LISTEN/NOTIFY
    /// carries the changes (on PostgreSQL), a single replica needs neither.
    #[arg(id = "REDIS_URL", long = "redis-url", env = "REDIS_URL", hide_env_values = true, value_parser = redis_url)]
    pub redis_url: Option<String>,
    /// What starts every key and channel this gateway uses in Redis: deployments (or
    /// environments) sharing one Redis keep apart by prefix (pub/sub ignores the /db number).
    #[arg(id = "REDIS_KEY_PREFIX", long = "redis-key-prefix", env = "REDIS_KEY_PREFIX", default_value = "mcpgate:", value_parser = key_prefix)]
    pub redis_key_prefix: String,
    /// What carries changes between replicas: auto (Redis when REDIS_URL is set, else
    /// PostgreSQL LISTEN/NOTIFY on PostgreSQL, else nothing: one replica), redis, postgres or
    /// none (each replica only sees others' changes at its periodic refresh).
    #[arg(id = "CLUSTER_BUS", long = "cluster-bus", env = "CLUSTER_BUS", default_value = "auto", value_parser = bus)]
    pub bus: Bus,
    /// Where the other replicas reach this one (http://gateway-1:4444): a request that
    /// belongs to a call parked here, or to a session whose upstream sessions are here, is
    /// forwarded to it. Unset: http://HOST:PORT when HOST is a specific address; with HOST
    /// 0.0.0.0 nothing (such requests are then served where they land).
    #[arg(id = "CLUSTER_ADVERTISE_URL", long = "cluster-advertise-url", env = "CLUSTER_ADVERTISE_URL", hide_env_values = true, value_parser = advertise_url)]
    pub advertise_url: Option<String>,
}

/// What carries changes between replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bus {
    /// Chosen from the other settings.
    Auto,
    /// Redis pub/sub (`REDIS_URL`).
    Redis,
    /// PostgreSQL `LISTEN`/`NOTIFY` on the gateway's own database.
    Postgres,
    /// Nothing: a single replica.
    None,
}

fn bus(value: &str) -> Result<Bus, String> {
    match value.to_ascii_lowercase().as_str() {
        "auto" => Ok(Bus::Auto),
        "redis" => Ok(Bus::Redis),
        "postgres" | "postgresql" => Ok(Bus::Postgres),
        "none" | "off" => Ok(Bus::None),
        _ => Err("not one of auto, redis, postgres, none".into()),
    }
}

fn redis_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|_| "not a URL (redis://host:6379)".to_owned())?;
    if url.scheme() != "redis" || url.host_str().is_none_or(str::is_empty) {
        return Err("not a redis:// URL with a host (redis://host:6379)".into());
    }
    Ok(value.to_owned())
}

fn advertise_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|_| "not a URL (http://gateway-1:4444)".to_owned())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(
            "an http(s) URL with a host and nothing after it (http://gateway-1:4444)".into(),
        );
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn key_prefix(value: &str) -> Result<String, String> {
    if value.len() <= 64 && value.chars().all(|c| c.is_ascii_graphic()) {
        Ok(value.to_owned())
    } else {
        Err("at most 64 printable ASCII characters, no spaces".into())
    }
}

impl ClusterSettings {
    /// Resolves `auto` against the database and checks what the choice needs.
    pub(super) fn settle(mut self, database: &DatabaseUrl) -> Result<Self, ConfigError> {
        let postgres = matches!(database, DatabaseUrl::Postgres(_));
        self.bus = match (self.bus, &self.redis_url) {
            (Bus::Auto, Some(_)) => Bus::Redis,
            (Bus::Auto, None) if postgres => Bus::Postgres,
            (Bus::Auto, None) => Bus::None,
            (Bus::Redis, None) => {
                return Err(invalid("CLUSTER_BUS", "redis needs REDIS_URL"));
            }
            (Bus::Postgres, _) if !postgres => {
                return Err(invalid(
                    "CLUSTER_BUS",
                    "postgres needs a PostgreSQL DATABASE_URL (SQLite serves one replica)",
                ));
            }
            (chosen, _) => chosen,
        };
        Ok(self)
    }
}
