//! Request rate limits per principal, per team and per tool, by the generic cell rate
//! algorithm (GCRA): a key is allowed a burst, then one request per interval. With `REDIS_URL`
//! every replica counts in Redis (one atomic script per check: the same budget whichever
//! replica a request lands on); otherwise, or while Redis cannot answer, in this process.
//! Every limit is off by default, and a limit that is off costs nothing.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{ClusterSettings, McpSettings};

/// How long a check waits for Redis before counting in this process instead.
const SHARED_TIMEOUT: Duration = Duration::from_millis(250);

/// How often the local counters forget keys that are back to a full allowance (in checks).
const SWEEP_EVERY: u64 = 4096;

/// GCRA in one atomic step, on Redis's clock (every replica agrees): the key holds the
/// theoretical arrival time in microseconds; answers 0 (allowed, counted) or how many
/// microseconds until the next request would be.
const SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local allowance = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local excess = next_tat - now - allowance
if excess > 0 then return math.ceil(excess) end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
";

/// What a limit applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// One principal's MCP requests.
    Principal,
    /// The MCP requests of one team's members together.
    Team,
    /// Calls of one tool, everyone together.
    Tool,
}

impl Limit {
    fn setting(self) -> &'static str {
        match self {
            Limit::Principal => "RATE_LIMIT_PRINCIPAL_PER_MINUTE",
            Limit::Team => "RATE_LIMIT_TEAM_PER_MINUTE",
            Limit::Tool => "RATE_LIMIT_TOOL_PER_MINUTE",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Limit::Principal => "principal",
            Limit::Team => "team",
            Limit::Tool => "tool",
        }
    }

    fn whose(self) -> &'static str {
        match self {
            Limit::Principal => "you",
            Limit::Team => "your team",
            Limit::Tool => "this tool",
        }
    }
}

/// A request over its rate: what to tell the client and when to try again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Which limit, naming its setting.
    pub message: String,
    /// When the next request would be allowed.
    pub retry_after: Duration,
}

/// One configured limit.
struct Rate {
    per_minute: u32,
    /// Microseconds between requests.
    interval_us: u64,
    /// Microseconds of credit a burst may use (the burst times the interval).
    allowance_us: u64,
    local: DefaultKeyedRateLimiter<String>,
}

impl Rate {
    fn new(per_minute: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_minute)?;
        // Ten seconds' worth at once.
        let burst = NonZeroU32::new(per_minute.div_ceil(6)).unwrap_or(NonZeroU32::MIN);
        let interval_us = 60_000_000 / u64::from(per_minute);
        Some(Rate {
            per_minute,
            interval_us,
            allowance_us: interval_us * u64::from(burst.get()),
            local: RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)),
        })
    }
}

/// Redis, once connected.
struct Shared {
    prefix: String,
    connection: Arc<tokio::sync::OnceCell<redis::aio::ConnectionManager>>,
    script: redis::Script,
}

/// The configured limits.
pub struct RateLimits {
    principal: Option<Rate>,
    team: Option<Rate>,
    tool: Option<Rate>,
    shared: Option<Shared>,
    checks: AtomicU64,
}

impl RateLimits {
    /// The limits the settings configure; with `REDIS_URL` (and any limit on), a task connects
    /// to Redis and keeps trying until it can (counting here meanwhile). Must run inside a
    /// Tokio runtime.
    pub fn new(mcp: &McpSettings, cluster: &ClusterSettings) -> Arc<Self> {
        let principal = Rate::new(mcp.rate_principal);
        let team = Rate::new(mcp.rate_team);
        let tool = Rate::new(mcp.rate_tool);
        let any = principal.is_some() || team.is_some() || tool.is_some();
        let shared = cluster.redis_url.as_ref().filter(|_| any).map(|url| {
            let connection = connect_later(url, "rate limits");
            Shared {
                prefix: format!("{}rate:", cluster.redis_key_prefix),
                connection,
                script: redis::Script::new(SCRIPT),
            }
        });
        Arc::new(RateLimits {
            principal,
            team,
            tool,
            shared,
            checks: AtomicU64::new(0),
        })
    }

    fn rate(&self, limit: Limit) -> Option<&Rate> {
        match limit {
            Limit::Principal => self.principal.as_ref(),
            Limit::Team => self.team.as_ref(),
            Limit::Tool => self.tool.as_ref(),
        }
    }

    /// Whether this limit is on.
    pub fn limits(&self, limit: Limit) -> bool {
        self.rate(limit).is_some()
    }

    /// Counts one request against `key` under `limit` (nothing when the limit is off).
    pub async fn check(&self, limit: Limit, key: &str) -> Result<(), Limited> {
        let Some(rate) = self.rate(limit) else {
            return Ok(());
        };
        let refused = |wait: Duration| Limited {
            message: format!(
                "rate limit: more than {} requests a minute for {} ({}); retry in {} s",
                rate.per_minute,
                limit.whose(),
                limit.setting(),
                wait.as_secs().max(1)
            ),
            retry_after: wait,
        };
        if let Some(shared) = &self.shared
            && let Some(connection) = shared.connection.get()
        {
            let mut connection = connection.clone();
            let key = format!("{}{}:{key}", shared.prefix, limit.label());
            let mut invocation = shared.script.key(key);
            invocation.arg(rate.interval_us).arg(rate.allowance_us);
            let counted = tokio::time::timeout(
                SHARED_TIMEOUT,
                invocation.invoke_async::<u64>(&mut connection),
            )
            .await;
            match counted {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(wait_us)) => return Err(refused(Duration::from_micros(wait_us))),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "rate limit not checked in Redis; counting here");
                }
                Err(_) => tracing::warn!("Redis slow to answer a rate check; counting here"),
            }
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            rate.local.retain_recent();
        }
        rate.local
            .check_key(&key.to_owned())
            .map_err(|not_until| refused(not_until.wait_time_from(DefaultClock::default().now())))
    }
}

/// A Redis connection for `what`, made by a task that tries again every few seconds until it
/// can (empty until then). Must run inside a Tokio runtime.
pub(crate) fn connect_later(
    url: &str,
    what: &'static str,
) -> Arc<tokio::sync::OnceCell<redis::aio::ConnectionManager>> {
    let cell = Arc::new(tokio::sync::OnceCell::new());
    tokio::spawn(connect(url.to_owned(), cell.clone(), what));
    cell
}

/// Connects to Redis, trying again every few seconds until it can.
async fn connect(
    url: String,
    cell: Arc<tokio::sync::OnceCell<redis::aio::ConnectionManager>>,
    what: &'static str,
) {
    let mut delay = Duration::from_millis(250);
    loop {
        let attempt = async {
            let client = redis::Client::open(url.as_str())?;
            redis::aio::ConnectionManager::new(client).await
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(connection)) => {
                let _ = cell.set(connection);
                tracing::info!(what, "counted in Redis");
                return;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, what, "cannot reach Redis; counting here")
            }
            Err(_) => tracing::warn!(what, "Redis did not answer; counting here"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_then_the_rate_and_each_key_on_its_own() {
        let rate = Rate::new(60).unwrap();
        assert_eq!(rate.interval_us, 1_000_000);
        assert_eq!(rate.allowance_us, 10_000_000, "ten seconds' worth");
        let limits = RateLimits {
            principal: Rate::new(12),
            team: None,
            tool: None,
            shared: None,
            checks: AtomicU64::new(0),
        };
        assert!(limits.limits(Limit::Principal) && !limits.limits(Limit::Tool));
        for _ in 0..2 {
            limits.check(Limit::Principal, "a").await.unwrap();
        }
        let refused = limits.check(Limit::Principal, "a").await.unwrap_err();
        assert!(
            refused.message.contains("RATE_LIMIT_PRINCIPAL_PER_MINUTE"),
            "{refused:?}"
        );
        assert!(refused.retry_after <= Duration::from_secs(5));
        limits.check(Limit::Principal, "b").await.unwrap();
        limits.check(Limit::Tool, "anything").await.unwrap();
    }
}
