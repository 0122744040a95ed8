//! HTTP: the route table, shared state and request plumbing. Handlers are thin: extract,
//! send one or two actor messages, map the result.

pub mod console;
pub mod error;
pub mod extract;
pub mod gateways;
pub mod health;
pub mod identity;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod registry;
pub mod request_log;
pub mod tokens;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};

use self::error::ApiError;
use crate::actors::auth::Auth;
use crate::actors::catalog::Catalogs;
use crate::actors::db::Db;
use crate::actors::upstream::Upstream;
use crate::config::{McpSettings, Settings};
use crate::mcp::session::SessionStore;
use crate::registry::gateways::Gateways;
use crate::registry::prompts::Prompts;
use crate::registry::resources::Resources;
use crate::registry::servers::Servers;
use crate::registry::tools::Tools;

/// What every handler can reach: actor handles and settings, never a connection.
pub struct AppState {
    /// The DbActor.
    pub db: Db,
    /// The AuthActor.
    pub auth: Auth,
    /// The catalog (published snapshots and change events).
    pub catalog: Catalogs,
    /// The UpstreamActor.
    pub upstream: Upstream,
    /// Legacy MCP sessions.
    pub sessions: Arc<SessionStore>,
    /// The admin console's compiled templates.
    pub console: Arc<console::Console>,
    /// Upstream calls waiting for a 2026-07-28 client's answers.
    pub parked: Arc<crate::mcp::parked::ParkedCalls>,
    /// Renders prompt templates in the sandbox.
    pub prompts: crate::prompt_render::PromptRenderer,
    /// Long-lived streams (subscriptions/listen, session GET streams, legacy SSE, console
    /// events), per principal and in all.
    pub streams: std::sync::Arc<crate::quota::Quota>,
    /// The settings the process started with.
    pub settings: Arc<Settings>,
    /// The MCP part of the settings.
    pub mcp_settings: Arc<McpSettings>,
    /// Per-call metrics.
    pub metrics: crate::actors::metrics::Metrics,
    /// Registering and refreshing upstreams.
    pub federation: crate::federation::Federation,
    /// Cancelled when the server begins to stop: long-lived streams end gracefully.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The route table: every endpoint of the gateway.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .app_data(
            web::QueryConfig::default().error_handler(|error, _request| {
                ApiError::BadRequest {
                    code: "invalid-query",
                    message: format!("invalid query parameters: {error}"),
                }
                .into()
            }),
        )
        .app_data(web::PathConfig::default().error_handler(|error, _request| {
            ApiError::BadRequest {
                code: "invalid-path",
                message: format!("invalid path: {error}"),
            }
            .into()
        }))
        .service(web::resource("/health").get(health::health))
        .service(web::resource("/ready").get(health::ready))
        .service(web::resource("/admin/pool-stats").get(health::pool_stats))
        .service(web::resource("/admin/mcp-stats").get(health::mcp_stats))
        .service(web::resource("/metrics").get(metrics::prometheus))
        .service(web::resource("/openapi.json").get(openapi::openapi_json));
    mcp::routes(config);
    identity::routes(config);
    tokens::routes(config);
    oauth::routes(config);
    console::routes(config);
    registry::routes::<Tools>(config);
    registry::routes::<Resources>(config);
    registry::routes::<Prompts>(config);
    config
        .service(web::resource("/gateways/{id}/refresh").route(web::post().to(gateways::refresh)));
    registry::routes_with_create::<Gateways>(config, web::post().to(gateways::register));
    registry::routes::<Servers>(config);
}

/// Unknown paths get a JSON 404; known paths with another method get 405 from their resource.
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::NotFound(format!(
        "no endpoint at {} {}",
        request.method(),
        request.path()
    )))
}
