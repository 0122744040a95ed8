//! HTTP: the route table, shared state and request plumbing. Handlers are thin: extract,
//! send one or two actor messages, map the result.

pub mod audit;
pub mod console;
pub mod error;
pub mod extract;
pub mod forward;
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
pub mod transfer;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa_actix_web::service_config::ServiceConfig;

use self::error::ApiError;
use crate::actors::auth::Auth;
use crate::actors::catalog::Catalogs;
use crate::actors::db::Db;
use crate::actors::upstream::Upstream;
use crate::config::{McpSettings, Settings};
use crate::mcp::session::SessionStore;

/// A list answered whole (`{"items": [...]}`), for collections too small to page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    /// The items.
    pub items: Vec<T>,
}

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
    /// Tool calls in flight, per principal and in all.
    pub tool_calls: std::sync::Arc<crate::quota::Quota>,
    /// Request rates per principal, team and tool (shared through Redis when configured).
    pub rate_limits: Arc<crate::ratelimit::RateLimits>,
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
    /// Seals credentials at rest (REST tool headers, upstream credentials).
    pub secrets: crate::secrets::SecretBox,
    /// The service layer every handler and console page calls.
    pub services: crate::service::Services,
    /// Forwards requests to the other replicas.
    pub replica_http: crate::egress::HttpClient,
}

/// Whether `ip` is a configured reverse proxy (`TRUSTED_PROXIES`).
fn is_trusted_proxy(request: &HttpRequest, ip: &std::net::IpAddr) -> bool {
    request
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| {
            state
                .settings
                .trusted_proxies
                .iter()
                .any(|net| net.contains(ip))
        })
}

/// Whether the request came straight from a configured reverse proxy.
fn from_trusted_proxy(request: &HttpRequest) -> bool {
    request
        .peer_addr()
        .is_some_and(|peer| is_trusted_proxy(request, &peer.ip()))
}

/// The scheme and host clients reach the gateway by: from `Forwarded`/`X-Forwarded-*` only when
/// the request came through a trusted proxy, else from the connection and its `Host`.
pub(crate) fn public_origin(request: &HttpRequest) -> (String, String) {
    if let Some(forwarded) = forward::forwarded(request) {
        return (forwarded.scheme, forwarded.host);
    }
    if from_trusted_proxy(request) {
        let info = request.connection_info();
        return (info.scheme().to_owned(), info.host().to_owned());
    }
    let scheme = if request.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let host = request
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| request.app_config().host());
    (scheme.to_owned(), host.to_owned())
}

/// The client's address: the peer, or behind trusted proxies the nearest `X-Forwarded-For`
/// entry that is not one of them (entries further left are the client's own claims).
pub(crate) fn client_ip(request: &HttpRequest) -> Option<std::net::IpAddr> {
    if let Some(forwarded) = forward::forwarded(request) {
        return forwarded.client;
    }
    let peer = request.peer_addr()?.ip();
    if !from_trusted_proxy(request) {
        return Some(peer);
    }
    let forwarded: Vec<std::net::IpAddr> = request
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| entry.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted_proxy(request, ip))
            .unwrap_or(peer),
    )
}

/// Where a request came from: its client's address and its request id.
pub(crate) fn origin(request: &HttpRequest) -> crate::auth::Origin {
    crate::auth::Origin {
        client: client_ip(request),
        request_id: actix_web::HttpMessage::extensions(request)
            .get::<request_log::RequestId>()
            .map(|id| id.0.clone()),
    }
}

/// The route table: every endpoint of the gateway. The REST API's operations are registered
/// with their OpenAPI description ([`openapi`]); the MCP transports and the console, which
/// the document does not describe, through the plain actix-web configuration.
pub fn routes(config: &mut ServiceConfig) {
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
        // The MCP endpoints first: the router tries resources in order.
        .map(|config| {
            mcp::routes(config);
            config.service(web::resource("/openapi.json").get(openapi::openapi_json))
        })
        .service(metrics::calls)
        .service(metrics::prometheus)
        .service(gateways::refresh)
        .service(gateways::health)
        .service(gateways::test);
    health::routes(config);
    identity::routes(config);
    tokens::routes(config);
    audit::routes(config);
    transfer::routes(config);
    oauth::routes(config);
    registry::routes(config);
    config.map(|config| {
        oauth::server_routes(config);
        console::routes(config);
        // A browser pointed at the gateway finds its console.
        config.service(web::resource("/").get(|| async {
            HttpResponse::Found()
                .insert_header((actix_web::http::header::LOCATION, "/admin"))
                .finish()
        }))
    });
}

/// Unknown paths get a JSON 404; a documented path with another method gets 405 with `Allow`
/// (the MCP and console resources answer 405 themselves).
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    // A browser lost in the console gets a page, not JSON.
    let wants_page = request.path().starts_with("/admin/")
        && request
            .headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    if wants_page && let Some(state) = request.app_data::<web::Data<AppState>>() {
        return state.console.not_found(request.path());
    }
    let allowed = openapi::allowed_methods(request.path());
    if !allowed.is_empty() {
        let allow = allowed
            .iter()
            .map(actix_web::http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        return actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed {
            message: format!(
                "{} is not allowed on {}; allowed: {allow}",
                request.method(),
                request.path()
            ),
            allow,
        });
    }
    actix_web::ResponseError::error_response(&ApiError::NotFound(format!(
        "no endpoint at {} {}",
        request.method(),
        request.path()
    )))
}
