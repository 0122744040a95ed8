//! Liveness, readiness and pool statistics.

use actix_web::{HttpResponse, get, post, web};
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::Admin;
use crate::actors::db::{BreakerState, DbError, PoolStats};

/// Registers the routes.
pub fn routes(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config
        .service(health)
        .service(ready)
        .service(pool_stats)
        .service(mcp_stats)
        .service(replica)
        .service(identity_providers)
        .service(refresh_identity_providers);
}

/// `GET /health`: the process is up. Touches no database.
#[utoipa::path(
    tag = "health",
    operation_id = "health",
    summary = "Liveness (no database)",
    responses(
        (status = 200, description = "the process is up"),
    ),
)]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The body of `GET /ready`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A summary of the database pool.
    pub database: DatabaseSummary,
}

/// The pool summary in `/ready`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DatabaseSummary {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    /// Connections checked out.
    pub in_use: u32,
    /// Idle connections.
    pub idle: u32,
    /// Units waiting for a connection.
    pub waiting: u64,
}

/// `GET /ready`: 200 when the database answers and the breaker is closed, else 503.
#[utoipa::path(
    tag = "health",
    operation_id = "ready",
    summary = "Readiness: the database answers and the breaker is closed",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "not ready, with a reason", body = Readiness),
    ),
)]
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ping = state.db.ping().await;
    let stats = state
        .db
        .stats()
        .await
        .map_err(|error| ApiError::from_db(error, "database", None))?;
    let breaker = stats.breaker.state;
    let reason = match (&ping, breaker) {
        (Err(DbError::Unavailable { reason, .. }), _) => {
            Some(format!("database unavailable: {reason}"))
        }
        (Err(DbError::Timeout(_)), _) => Some("database did not answer in time".into()),
        (Err(other), _) => Some(format!("database check failed: {other}")),
        (Ok(()), BreakerState::Closed) => None,
        (Ok(()), other) => Some(format!("database circuit breaker is {}", other.as_str())),
    };
    let body = Readiness {
        status: if reason.is_none() {
            "ready"
        } else {
            "not_ready"
        },
        database: DatabaseSummary {
            backend: stats.backend,
            breaker: breaker.as_str().to_owned(),
            in_use: stats.in_use,
            idle: stats.idle,
            waiting: stats.waiting,
        },
        reason,
    };
    Ok(match body.reason {
        None => HttpResponse::Ok().json(body),
        Some(_) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(body),
    })
}

/// `GET /admin/pool-stats`: the DbActor's pool and breaker statistics (admins only).
#[utoipa::path(
    tag = "admin",
    operation_id = "pool_stats",
    summary = "Database pool and circuit breaker statistics (admins)",
    responses(
        (status = 200, description = "statistics", body = PoolStats),
        (status = 403, description = "not an admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/admin/pool-stats")]
pub async fn pool_stats(
    state: web::Data<AppState>,
    _admin: Admin,
) -> Result<HttpResponse, ApiError> {
    let stats = state
        .db
        .stats()
        .await
        .map_err(|error| ApiError::from_db(error, "database", None))?;
    Ok(HttpResponse::Ok().json(stats))
}

/// The body of `GET /admin/mcp-stats`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct McpStats {
    /// Live legacy (2025-11-25 and older) sessions.
    pub sessions: usize,
    /// `MCP_MAX_SESSIONS`.
    pub max_sessions: usize,
    /// Upstream calls parked until a 2026-07-28 client retries with `inputResponses`.
    pub parked_calls: usize,
}

/// `GET /admin/mcp-stats`: MCP session figures (admins only).
#[utoipa::path(
    tag = "admin",
    operation_id = "mcp_stats",
    summary = "Live MCP sessions (admins)",
    responses(
        (status = 200, description = "statistics", body = McpStats),
        (status = 403, description = "not an admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/admin/mcp-stats")]
pub async fn mcp_stats(state: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(McpStats {
        sessions: state.sessions.len(),
        max_sessions: state.mcp_settings.max_sessions,
        parked_calls: state.parked.len(),
    })
}

/// This replica and its bus to the others.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReplicaStatus {
    /// This replica's id (random at each start; other replicas log it with its events).
    pub replica: String,
    /// What carries changes between replicas: `redis`, `postgres` or `none` (`CLUSTER_BUS`).
    pub bus: &'static str,
    /// Whether the bus is connected now (while it is not, other replicas' changes reach this
    /// one only at its periodic refresh; it reloads what it caches when it connects again).
    pub connected: bool,
    /// The other replicas heard from lately (every replica says it is alive every 2 s; one
    /// silent for 7 s counts as gone: streams it held are not relayed to).
    pub peers: Vec<Peer>,
}

/// Another replica as this one hears it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Peer {
    /// Its id.
    pub replica: String,
    /// Seconds since it was last heard from.
    pub heard_seconds_ago: f64,
}

/// `GET /admin/replica`: this replica and its bus (admins only).
#[utoipa::path(
    tag = "admin",
    operation_id = "replica",
    summary = "This replica and its bus to the others (admins)",
    responses(
        (status = 200, description = "the replica", body = ReplicaStatus),
        (status = 403, description = "not an admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/admin/replica")]
pub async fn replica(state: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    let cluster = &state.services.cluster;
    HttpResponse::Ok().json(ReplicaStatus {
        replica: cluster.replica().to_owned(),
        bus: cluster.transport(),
        connected: cluster.connected(),
        peers: cluster
            .peers()
            .into_iter()
            .map(|(replica, ago)| Peer {
                replica,
                heard_seconds_ago: ago.as_secs_f64(),
            })
            .collect(),
    })
}

/// One external identity provider as the gateway sees it now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderStatus {
    /// Its issuer.
    pub issuer: String,
    /// Its sign-in button's label.
    pub name: String,
    /// The audiences accepted from it.
    pub audiences: Vec<String>,
    /// The ids of its published signing keys the gateway holds.
    pub key_ids: Vec<String>,
    /// Seconds since its keys were fetched (null: never).
    pub fetched_seconds_ago: Option<u64>,
    /// Why the last fetch failed, if it did.
    pub error: Option<String>,
    /// Whether unknown emails get an account.
    pub provision: bool,
    /// Whether the console offers sign-in through it.
    pub single_sign_on: bool,
}

/// `GET /admin/identity-providers`: the external providers of `OIDC_ISSUERS` and their keys.
#[utoipa::path(
    tag = "admin",
    operation_id = "identity_providers",
    summary = "External identity providers and their signing keys (admins)",
    responses(
        (status = 200, description = "the providers", body = [ProviderStatus]),
        (status = 403, description = "not an admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/admin/identity-providers")]
pub async fn identity_providers(state: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(provider_statuses(&state))
}

/// `POST /admin/identity-providers/refresh`: fetch every provider's keys now (after a key was
/// withdrawn at the provider, say), whatever the minimum interval; answers the providers.
#[utoipa::path(
    tag = "admin",
    operation_id = "refresh_identity_providers",
    summary = "Fetch the external identity providers' signing keys now (admins)",
    responses(
        (status = 200, description = "the providers, fetched again (a failure is in its error)", body = [ProviderStatus]),
        (status = 403, description = "not an admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/admin/identity-providers/refresh")]
pub async fn refresh_identity_providers(state: web::Data<AppState>, admin: Admin) -> HttpResponse {
    let providers = state.auth.identity_providers();
    for index in 0..providers.all().len() {
        // A failure is reported in the provider's status.
        let _ = providers.refresh_now(index).await;
    }
    tracing::info!(by = %admin.0.email, "identity provider keys fetched on request");
    HttpResponse::Ok().json(provider_statuses(&state))
}

fn provider_statuses(state: &AppState) -> Vec<ProviderStatus> {
    state
        .auth
        .identity_providers()
        .all()
        .iter()
        .map(|provider| {
            let published = provider.current();
            let settings = &provider.settings;
            ProviderStatus {
                issuer: settings.issuer.clone(),
                name: settings.label(),
                audiences: settings.audiences.clone(),
                key_ids: published.key_ids(),
                fetched_seconds_ago: published.fetched_at.map(|at| at.elapsed().as_secs()),
                error: published.error.clone(),
                provision: settings.provision,
                single_sign_on: settings.client_id.is_some(),
            }
        })
        .collect()
}
