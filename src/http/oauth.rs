//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for the MCP endpoints, at
//! `/.well-known/oauth-protected-resource` and, per endpoint,
//! `/.well-known/oauth-protected-resource/<endpoint path>` (the URL the 401 challenge of an
//! MCP endpoint names). Tokens are checked for this gateway's audience (`JWT_AUDIENCE`).

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;

/// Registers the routes: the per-endpoint documents are the same operation, documented once.
pub fn routes(config: &mut ServiceConfig) {
    config.service(metadata).map(|config| {
        config.service(
            web::resource("/.well-known/oauth-protected-resource/{endpoint:.*}")
                .route(web::get().to(document)),
        )
    });
}

/// The metadata document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResourceMetadata {
    /// The protected resource: the MCP endpoint's URL.
    pub resource: String,
    /// Where tokens for it are issued (`MCP_AUTHORIZATION_SERVERS`, default this gateway).
    pub authorization_servers: Vec<String>,
    /// Tokens go in the `Authorization` header.
    pub bearer_methods_supported: Vec<&'static str>,
    /// A readable name.
    pub resource_name: &'static str,
    /// Where the API is described.
    pub resource_documentation: String,
}

/// `GET /.well-known/oauth-protected-resource[/<endpoint>]`.
#[utoipa::path(
    tag = "oauth",
    operation_id = "protected_resource_metadata",
    summary = "OAuth protected resource metadata (RFC 9728) of the MCP endpoints; /.well-known/oauth-protected-resource/<endpoint path> for one endpoint",
    responses(
        (status = 200, description = "the metadata", body = ResourceMetadata),
    ),
)]
#[get("/.well-known/oauth-protected-resource")]
pub async fn metadata(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    document(state, request).await
}

/// The metadata of the endpoint the path names (`/mcp` when it names none).
async fn document(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let (scheme, host) = super::public_origin(&request);
    let base = format!("{scheme}://{host}");
    let endpoint = request
        .match_info()
        .get("endpoint")
        .filter(|endpoint| !endpoint.is_empty())
        .map(|endpoint| format!("/{}", endpoint.trim_start_matches('/')))
        .unwrap_or_else(|| "/mcp".to_owned());
    let authorization_servers = if state.settings.auth.authorization_servers.is_empty() {
        vec![base.clone()]
    } else {
        state.settings.auth.authorization_servers.clone()
    };
    HttpResponse::Ok().json(ResourceMetadata {
        resource: format!("{base}{endpoint}"),
        authorization_servers,
        bearer_methods_supported: vec!["header"],
        resource_name: "mcpgate",
        resource_documentation: format!("{base}/openapi.json"),
    })
}
