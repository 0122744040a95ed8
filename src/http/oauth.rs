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
                .wrap(public_cors())
                .route(web::get().to(document)),
        )
    });
}

/// CORS for what a browser-based MCP client reads and posts cross-origin on its way to a
/// token: the metadata documents, registration and the token endpoint. Any origin, never with
/// credentials (none of them reads a cookie).
pub fn public_cors() -> actix_cors::Cors {
    use actix_web::http::header;
    actix_cors::Cors::default()
        .allow_any_origin()
        .send_wildcard()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("mcp-protocol-version"),
        ])
        .max_age(86_400)
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
#[get("/.well-known/oauth-protected-resource", wrap = "public_cors()")]
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
    // Default: the external providers an operator advertises, then the built-in server.
    let authorization_servers = if state.settings.auth.authorization_servers.is_empty() {
        let providers = &state.settings.auth.oidc.issuers.0;
        providers
            .iter()
            .filter(|provider| provider.advertise)
            .map(|provider| provider.issuer.clone())
            .chain([base.clone()])
            .collect()
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

/// The built-in authorization server's endpoints (the consent page is the console's).
pub fn server_routes(config: &mut actix_web::web::ServiceConfig) {
    config
        .service(
            web::resource("/.well-known/oauth-authorization-server")
                .wrap(public_cors())
                .route(web::get().to(authorization_server)),
        )
        .service(
            web::resource("/oauth/register")
                .wrap(public_cors())
                .route(web::post().to(register)),
        )
        .service(
            web::resource("/oauth/token")
                .wrap(public_cors())
                .route(web::post().to(token)),
        );
}

/// An OAuth JSON answer: never cached.
fn oauth_json(status: u16, body: &serde_json::Value) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
    .json(body)
}

fn refused(error: &crate::service::oauth::OAuthError) -> HttpResponse {
    oauth_json(error.status, &error.body())
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
async fn authorization_server(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let (scheme, host) = super::public_origin(&request);
    let registration = state.settings.auth.oauth_dynamic_registration;
    HttpResponse::Ok().json(crate::service::oauth::metadata(
        &format!("{scheme}://{host}"),
        registration,
    ))
}

/// `POST /oauth/register` (RFC 7591).
async fn register(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let registration = match serde_json::from_slice(&body) {
        Ok(registration) => registration,
        Err(error) => {
            return oauth_json(
                400,
                &serde_json::json!({"error": "invalid_client_metadata",
                    "error_description": format!("the registration is not JSON ({error})")}),
            );
        }
    };
    let address = super::origin(&request).client;
    match crate::service::oauth::register(&state.services, address, registration).await {
        Ok(client) => oauth_json(201, &client),
        Err(error) => refused(&error),
    }
}

/// `POST /oauth/token` (form-encoded, RFC 6749 §4.1.3 and §6).
async fn token(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let form: crate::service::oauth::TokenRequest = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(error) => {
            return oauth_json(
                400,
                &serde_json::json!({"error": "invalid_request",
                    "error_description": format!("send the request as application/x-www-form-urlencoded ({error})")}),
            );
        }
    };
    match crate::service::oauth::token(&state.services, form).await {
        Ok(tokens) => oauth_json(200, &tokens),
        Err(error) => refused(&error),
    }
}
