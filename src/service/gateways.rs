//! Registering an upstream MCP server and discovering again what it offers, as a principal:
//! the authorization decision here, the work in [`crate::federation::Federation`]. An upstream
//! that cannot be reached is a 502 and nothing is stored.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Services;
use super::audit::Entry;
use super::registry::{allowed, authorized, map_db, may_create};
pub use crate::db::federation::SyncCounts;
use crate::db::now;
use crate::error::ApiError;
use crate::federation::FederationError;
use crate::registry::gateways::{GatewayAuth, GatewayCreate, GatewayView, Gateways, Transport};
use crate::registry::{Change, Entity};
use crate::upstream::process::StoredCommand;

/// The answer to a registration or refresh.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GatewayDiscovered {
    /// The gateway.
    #[serde(flatten)]
    pub gateway: GatewayView,
    /// What is now federated from it.
    pub discovered: SyncCounts,
}

/// Registers an upstream for `principal` (the REST API and the console).
/// `origin` is where users reach the gateway (its console's OAuth callback, registered with an
/// upstream's authorization server when the gateway registers itself there).
pub async fn register(
    services: &Services,
    principal: &crate::auth::Principal,
    input: GatewayCreate,
    origin: Option<&str>,
) -> Result<GatewayDiscovered, ApiError> {
    allowed::<Gateways>(principal, "create")?;
    let auth = input.auth.clone();
    let env = input.env.clone().unwrap_or_default();
    let change = Change {
        actor_email: &principal.email,
        now: now(),
        secrets: &services.secrets,
    };
    let mut row = Gateways::create(input, &change)?;
    may_create::<Gateways>(principal, &row)?;
    let secrets = if row.transport == Transport::Stdio {
        may_run(services, principal, &row, auth.is_some())?;
        env
    } else {
        match &auth {
            Some(
                auth @ (GatewayAuth::OAuthClientCredentials { .. }
                | GatewayAuth::OAuthUser { .. }
                | GatewayAuth::OAuthTokenExchange { .. }),
            ) => {
                let config =
                    super::upstream_oauth::configure(services, principal, &row.url, auth, origin)
                        .await?;
                BTreeMap::from([(
                    crate::federation::OAUTH_SECRET.to_owned(),
                    serde_json::to_string(&config).unwrap_or_default(),
                )])
            }
            Some(auth) => auth.headers()?,
            None => BTreeMap::new(),
        }
    };
    if let Some(auth) = &auth {
        row.auth_type = Some(auth.kind().to_owned());
    }
    if row.transport == Transport::Stdio && !secrets.is_empty() {
        row.auth_type = Some("env".to_owned());
    }
    if row.auth_type.is_some() {
        row.auth_secret = Some(services.federation.seal(&secrets));
    }
    let headers = secrets;
    let (gateway, counts) = services
        .federation
        .register(row, headers)
        .await
        .map_err(|error| map_federation(error, None))?;
    tracing::info!(gateway = %gateway.name, tools = counts.tools, "upstream registered");
    let view = Gateways::view(gateway);
    services.audit(
        principal,
        Entry::new("gateways.create", Gateways::NOUN)
            .id(&view.id)
            .detail(discovered(&counts))
            .after(&view),
    );
    Ok(GatewayDiscovered {
        gateway: view,
        discovered: counts,
    })
}

/// Whether `principal` may have the gateway run a stdio upstream's command: running a command
/// is running code on the gateway's machine, so only a platform admin may (`admin.system`, which
/// no other role has and a scoped token must carry), and only a command the operator listed in
/// `STDIO_COMMANDS`. Its secrets are its environment, not `auth`.
fn may_run(
    services: &Services,
    principal: &crate::auth::Principal,
    row: &crate::db::registry::GatewayRow,
    has_auth: bool,
) -> Result<(), ApiError> {
    principal
        .authorize("admin.system", crate::auth::On::Platform)
        .map_err(|denied| ApiError::from_auth(denied.into()))?;
    if has_auth {
        return Err(ApiError::InvalidField {
            field: "auth".into(),
            message: "a stdio upstream takes its secrets as env, not auth".into(),
        });
    }
    let command = row
        .command
        .as_deref()
        .and_then(|text| serde_json::from_str::<StoredCommand>(text).ok())
        .map(|command| command.command)
        .unwrap_or_default();
    let stdio = &services.settings.federation.stdio;
    if !stdio.allows(&command) {
        let allowed = if stdio.commands.is_empty() {
            "none: stdio upstreams are off".to_owned()
        } else {
            stdio.commands.join(", ")
        };
        return Err(ApiError::InvalidField {
            field: "command".into(),
            message: format!(
                "{command:?} is not a command stdio upstreams may run (STDIO_COMMANDS allows {allowed})"
            ),
        });
    }
    Ok(())
}

/// Discovers an upstream again for `principal` (the REST API and the console).
pub async fn refresh(
    services: &Services,
    principal: &crate::auth::Principal,
    id: &str,
) -> Result<GatewayDiscovered, ApiError> {
    authorized::<Gateways>(services, principal, id, "update").await?;
    let (gateway, counts) = services
        .federation
        .refresh(id)
        .await
        .map_err(|error| map_federation(error, Some(id)))?;
    let view = Gateways::view(gateway);
    services.audit(
        principal,
        Entry::new("gateways.refresh", Gateways::NOUN)
            .id(&view.id)
            .name(&view.name)
            .detail(discovered(&counts)),
    );
    Ok(GatewayDiscovered {
        gateway: view,
        discovered: counts,
    })
}

/// What a discovery found, for the audit trail.
fn discovered(counts: &SyncCounts) -> String {
    format!(
        "discovered {} tools, {} resources, {} prompts",
        counts.tools, counts.resources, counts.prompts
    )
}

/// The one mapping of federation errors to the API's. A clash of federated names is reported as
/// the sync phrased it; a clash of the gateway's own name or slug as the gateway entity does.
fn map_federation(error: FederationError, id: Option<&str>) -> ApiError {
    match error {
        FederationError::Refused(message) => ApiError::InvalidField {
            field: "url".into(),
            message,
        },
        FederationError::Unreachable { .. }
        | FederationError::Offered { .. }
        | FederationError::Bound { .. } => ApiError::BadGateway(error.to_string()),
        FederationError::Credentials(name) => {
            tracing::error!(gateway = %name, "stored credentials do not decrypt");
            ApiError::Internal
        }
        FederationError::Db(crate::actors::db::DbError::Conflict { constraint })
            if !constraint.contains("gateways") =>
        {
            ApiError::Conflict(constraint)
        }
        FederationError::Db(other) => map_db::<Gateways>(other, id),
    }
}

/// An upstream's health as calls, health checks and its breaker show it (`GET
/// /gateways/{id}/health`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayHealth {
    /// The gateway.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `online`, `offline`, `degraded` (answers, but its last refresh broke a bound) or
    /// `disabled`.
    pub state: &'static str,
    /// Whether it answered its last calls and health checks.
    pub reachable: bool,
    /// When it last answered.
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why it last failed, and when.
    pub last_error: Option<String>,
    /// When.
    pub last_error_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why it is degraded.
    pub degraded_reason: Option<String>,
    /// Its circuit breaker, once calls have gone through it.
    pub breaker: Option<BreakerView>,
    /// Calls through it since the gateway started.
    pub calls: CallSummary,
    /// The last 24 hours, one entry per hour, oldest first.
    pub hours: Vec<HourView>,
    /// A stdio upstream's running processes (its shared one, its clients' own).
    pub processes: Vec<crate::upstream::process::ProcessView>,
}

/// An upstream's circuit breaker.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BreakerView {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// Transient failures in a row.
    pub consecutive_failures: u32,
    /// Times it opened.
    pub times_opened: u64,
    /// Seconds until a probe is let through, while open.
    pub retry_after_seconds: Option<u64>,
}

/// Calls through an upstream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallSummary {
    /// Calls.
    pub total: u64,
    /// Of which failed.
    pub failures: u64,
    /// Latency quantiles: the upper bound of the histogram bucket, milliseconds (`null`
    /// without calls or past the last bucket).
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// When the last call started.
    pub last_call_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One hour of calls.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HourView {
    /// The hour's start.
    pub start: chrono::DateTime<chrono::Utc>,
    /// Calls.
    pub calls: u64,
    /// Of which failed.
    pub failures: u64,
}

/// The health of upstream `id` as `principal` may see it.
pub async fn health(
    services: &Services,
    principal: &crate::auth::Principal,
    id: &str,
) -> Result<GatewayHealth, ApiError> {
    let row = authorized::<Gateways>(services, principal, id, "read").await?;
    let view = Gateways::view(row);
    let breaker = services.federation.breaker(id).await;
    let stats = services
        .metrics
        .snapshot()
        .await
        .upstreams
        .remove(id)
        .unwrap_or_default();
    let mut health = health_of(view, breaker, &stats, chrono::Utc::now());
    health.processes = services.federation.processes(id);
    Ok(health)
}

/// Puts the pieces together.
pub fn health_of(
    view: GatewayView,
    breaker: Option<crate::breaker::BreakerSnapshot>,
    stats: &crate::actors::metrics::UpstreamStats,
    now: chrono::DateTime<chrono::Utc>,
) -> GatewayHealth {
    let state = if !view.meta.enabled {
        "disabled"
    } else if !view.reachable {
        "offline"
    } else if view.degraded_reason.is_some() {
        "degraded"
    } else {
        "online"
    };
    let activity = Activity::of(breaker, stats, now);
    GatewayHealth {
        processes: Vec::new(),
        state,
        reachable: view.reachable,
        last_seen_at: view.last_seen_at,
        last_error: view.last_error,
        last_error_at: view.last_error_at,
        degraded_reason: view.degraded_reason,
        breaker: activity.breaker,
        calls: activity.calls,
        hours: activity.hours,
        id: view.id,
        name: view.name,
    }
}

/// What an upstream's breaker and its calls show (the in-memory part of its health).
#[derive(Debug, Serialize)]
pub struct Activity {
    /// Its breaker.
    pub breaker: Option<BreakerView>,
    /// Its calls.
    pub calls: CallSummary,
    /// The last 24 hours.
    pub hours: Vec<HourView>,
}

impl Activity {
    /// From a breaker snapshot and the call statistics, as of `now`.
    pub fn of(
        breaker: Option<crate::breaker::BreakerSnapshot>,
        stats: &crate::actors::metrics::UpstreamStats,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let ms = |q: f64| stats.calls.quantile_ms(q);
        Activity {
            breaker: breaker.map(|snapshot| BreakerView {
                state: snapshot.state.as_str(),
                consecutive_failures: snapshot.consecutive_failures,
                times_opened: snapshot.times_opened,
                retry_after_seconds: snapshot.retry_after_seconds,
            }),
            calls: CallSummary {
                total: stats.calls.successes + stats.calls.failures,
                failures: stats.calls.failures,
                p50_ms: ms(0.5),
                p95_ms: ms(0.95),
                p99_ms: ms(0.99),
                last_call_at: stats.calls.last_call_at.map(|at| at.and_utc()),
            },
            hours: stats
                .strip(now)
                .into_iter()
                .map(|hour| HourView {
                    start: chrono::DateTime::from_timestamp(hour.index * 3600, 0)
                        .unwrap_or_default(),
                    calls: hour.calls,
                    failures: hour.failures,
                })
                .collect(),
        }
    }
}

/// The outcome of a connection test.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionTest {
    /// Whether the upstream answered a `ping`.
    pub reachable: bool,
    /// How long the answer took, milliseconds.
    pub latency_ms: f64,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// Sends the upstream a `ping` now, without discovering it again (`gateways.update`: it makes
/// the gateway connect out). An answer marks it online at once; a failure is reported, and
/// marks it offline only as calls and health checks do (`UNHEALTHY_THRESHOLD` in a row).
pub async fn test_connection(
    services: &Services,
    principal: &crate::auth::Principal,
    id: &str,
) -> Result<ConnectionTest, ApiError> {
    let row = authorized::<Gateways>(services, principal, id, "update").await?;
    if !row.enabled {
        return Err(ApiError::Conflict(
            "the gateway is disabled; enable it to test its connection".into(),
        ));
    }
    let started = std::time::Instant::now();
    let outcome = services.federation.test(id).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(ConnectionTest {
        reachable: outcome.is_ok(),
        latency_ms,
        error: outcome.err(),
    })
}

/// Every enabled upstream's id and whether it answers, for `/metrics` (whose access its own
/// setting decides).
pub async fn up(services: &Services) -> Vec<(String, bool)> {
    use super::registry::Managed;
    const PAGE: i64 = 500;
    let mut up = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let Ok(page) = Gateways::page(&services.db, after.take(), PAGE, false, None).await else {
            return up;
        };
        let full = page.len() as i64 == PAGE;
        after = page.last().map(|row| row.id.clone());
        up.extend(page.into_iter().map(|row| (row.id, row.reachable)));
        if !full {
            return up;
        }
    }
}
