//! Upstreams protected by OAuth, as operations of a principal: the configuration an upstream
//! is registered with (discovered from its 401 and its authorization server's metadata, and
//! the gateway registered there as a client, when not given), and a user connecting their own
//! account for an upstream that authenticates each user (the authorization code flow with S256
//! PKCE; the console carries the browser there and back) or disconnecting it.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::Services;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::registry::gateways::{GatewayAuth, Gateways};
use crate::registry::validate::http_url;
use crate::upstream::oauth::{self, Flow, OAuthConfig};

/// Where an upstream's authorization server sends users back: `<origin>` + this.
pub const CALLBACK_PATH: &str = "/admin/upstream-oauth/callback";

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

/// An optional URL given for `field`, checked.
fn given_url(field: &str, value: Option<&String>) -> Result<Option<String>, ApiError> {
    value
        .map(|value| http_url(field, value).map_err(ApiError::from))
        .transpose()
}

/// The OAuth configuration of a new upstream at `url` from what was given, the rest discovered
/// the way a spec-following MCP client does (the upstream's 401, its protected resource
/// metadata, its authorization server's metadata), and, for the user flow without a client id,
/// the gateway registered as a client with `origin`'s callback.
pub async fn configure(
    services: &Services,
    principal: &Principal,
    url: &str,
    auth: &GatewayAuth,
    origin: Option<&str>,
) -> Result<OAuthConfig, ApiError> {
    let http = services.federation.oauth_tokens().http();
    let (flow, authorization_url, token_url, client_id, client_secret, scope, resource) = match auth
    {
        GatewayAuth::OAuthClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
            resource,
        } => (
            Flow::ClientCredentials,
            None,
            given_url("auth.token_url", token_url.as_ref())?,
            Some(client_id.trim().to_owned()).filter(|id| !id.is_empty()),
            Some(client_secret.clone()),
            scope.clone(),
            resource.clone(),
        ),
        GatewayAuth::OAuthUser {
            authorization_url,
            token_url,
            client_id,
            client_secret,
            scope,
            resource,
        } => (
            Flow::User,
            given_url("auth.authorization_url", authorization_url.as_ref())?,
            given_url("auth.token_url", token_url.as_ref())?,
            client_id
                .as_ref()
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty()),
            client_secret.clone(),
            scope.clone(),
            resource.clone(),
        ),
        GatewayAuth::OAuthTokenExchange {
            token_url,
            client_id,
            client_secret,
            scope,
            resource,
            ..
        } => (
            Flow::TokenExchange,
            None,
            given_url("auth.token_url", token_url.as_ref())?,
            Some(client_id.trim().to_owned()).filter(|id| !id.is_empty()),
            client_secret.clone(),
            scope.clone(),
            resource.clone(),
        ),
        _ => return Err(invalid("auth.type", "not an OAuth method")),
    };
    // The gateway asserting its users' identities to another party is a platform decision.
    if flow == Flow::TokenExchange {
        principal
            .authorize("admin.system", crate::auth::On::Platform)
            .map_err(|denied| ApiError::from_auth(denied.into()))?;
    }
    if flow != Flow::User && client_id.is_none() {
        return Err(invalid("auth.client_id", "is required"));
    }
    if flow == Flow::TokenExchange && !services.federation.oauth_tokens().can_assert() {
        return Err(invalid(
            "auth.type",
            "token exchange needs JWT_ALGORITHM RS256 or ES256: the authorization server verifies the gateway's assertions with its public key",
        ));
    }
    let audience = match auth {
        GatewayAuth::OAuthTokenExchange { audience, .. } => audience.clone(),
        _ => None,
    };
    let complete = token_url.is_some()
        && (flow != Flow::User || (authorization_url.is_some() && client_id.is_some()));
    let discovered = if complete {
        oauth::Discovered::default()
    } else {
        oauth::discover(http, url).await.map_err(|error| {
            ApiError::BadGateway(format!(
                "the upstream's authorization server could not be discovered ({error}); give its endpoints in auth"
            ))
        })?
    };
    let token_endpoint = token_url
        .or(discovered.token_endpoint.clone())
        .ok_or_else(|| {
            invalid(
                "auth.token_url",
                "is required: the authorization server names no token endpoint",
            )
        })?;
    let authorization_endpoint = authorization_url.or(discovered.authorization_endpoint.clone());
    if flow == Flow::User && authorization_endpoint.is_none() {
        return Err(invalid(
            "auth.authorization_url",
            "is required: the authorization server names no authorization endpoint",
        ));
    }
    let (client_id, client_secret) = match client_id {
        Some(client_id) => (client_id, client_secret),
        None => {
            let endpoint = discovered.registration_endpoint.as_deref().ok_or_else(|| {
                invalid(
                    "auth.client_id",
                    "is required: the authorization server does not register clients itself",
                )
            })?;
            let origin = origin.ok_or_else(|| {
                invalid("auth.client_id", "is required here (the gateway registers itself only when registered through its API or console)")
            })?;
            let callback = format!("{}{CALLBACK_PATH}", origin.trim_end_matches('/'));
            oauth::register(http, endpoint, &callback, scope.as_deref())
                .await
                .map_err(|error| {
                    ApiError::BadGateway(format!(
                        "the gateway could not register at the authorization server: {error}"
                    ))
                })?
        }
    };
    // Users' tokens are for this upstream only: the resource names it (RFC 9728 §3.3), and
    // one authorization server both authorizes and issues (no mix-up of endpoints).
    let resource = resource
        .or(discovered.resource)
        .unwrap_or_else(|| url.to_owned());
    if !same_origin(&resource, url) {
        return Err(invalid(
            "auth.resource",
            format!("{resource} is not the upstream's own ({url})"),
        ));
    }
    if let Some(authorization) = &authorization_endpoint
        && !same_origin(authorization, &token_endpoint)
    {
        return Err(invalid(
            "auth.token_url",
            "the authorization and token endpoints must be on one origin (one authorization server)",
        ));
    }
    http_url("auth.token_url", &token_endpoint)?;
    if let Some(authorization) = &authorization_endpoint {
        http_url("auth.authorization_url", authorization)?;
    }
    Ok(OAuthConfig {
        flow,
        issuer: discovered.issuer,
        authorization_endpoint,
        token_endpoint,
        client_id,
        client_secret,
        scope,
        resource: Some(resource),
        audience,
    })
}

/// Whether two URLs share scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => crate::egress::same_origin(&a, &b),
        _ => false,
    }
}

/// A connection under way: what the callback needs back (kept by the console in a cookie).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    /// The upstream.
    pub gateway_id: String,
    /// The CSRF check.
    pub state: String,
    /// The PKCE verifier.
    pub verifier: String,
}

/// The per-user OAuth configuration of an upstream `principal` may use.
async fn per_user_config(
    services: &Services,
    principal: &Principal,
    gateway_id: &str,
) -> Result<(String, std::sync::Arc<OAuthConfig>), ApiError> {
    let row =
        super::registry::authorized::<Gateways>(services, principal, gateway_id, "read").await?;
    let gateway = services
        .catalog
        .current()
        .gateway(gateway_id)
        .ok_or_else(|| ApiError::Conflict(format!("{} is disabled", row.name)))?;
    let config = gateway
        .target
        .oauth
        .clone()
        .filter(|config| config.flow == Flow::User)
        .ok_or_else(|| {
            ApiError::Conflict(format!("{} does not authenticate each user", row.name))
        })?;
    Ok((row.name, config))
}

fn random() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts connecting `principal`'s account for an upstream: where to send them, and what the
/// callback needs back.
pub async fn begin(
    services: &Services,
    principal: &Principal,
    gateway_id: &str,
    redirect_uri: &str,
) -> Result<(String, Pending), ApiError> {
    let (_, config) = per_user_config(services, principal, gateway_id).await?;
    let pending = Pending {
        gateway_id: gateway_id.to_owned(),
        state: random(),
        verifier: random(),
    };
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(pending.verifier.as_bytes()));
    let url = oauth::authorization_url(&config, redirect_uri, &pending.state, &challenge)
        .map_err(|error| ApiError::BadGateway(error.to_string()))?;
    Ok((url, pending))
}

/// Finishes connecting: the code exchanged for `principal`'s tokens, kept sealed. An upstream
/// still awaiting its first discovery is discovered once its owner has connected. Answers the
/// upstream's name.
pub async fn complete(
    services: &Services,
    principal: &Principal,
    pending: &Pending,
    code: &str,
    iss: Option<&str>,
    redirect_uri: &str,
) -> Result<String, ApiError> {
    let (name, config) = per_user_config(services, principal, &pending.gateway_id).await?;
    // RFC 9207: the answer comes from the server this upstream sends users to, not another
    // that shares the callback (a mix-up).
    if let (Some(said), Some(expected)) = (iss, config.issuer.as_deref())
        && said.trim_end_matches('/') != expected.trim_end_matches('/')
    {
        return Err(ApiError::InvalidField {
            field: "iss".into(),
            message: format!("the answer came from {said}, not {name}'s authorization server"),
        });
    }
    let credentials = services.federation.oauth_tokens();
    let tokens = oauth::exchange_code(
        credentials.http(),
        &config,
        code,
        &pending.verifier,
        redirect_uri,
    )
    .await
    .map_err(|error| ApiError::BadGateway(format!("{name}'s authorization server: {error}")))?;
    credentials
        .connected(&pending.gateway_id, &principal.email, tokens)
        .await;
    tracing::info!(gateway = %name, user = %principal.email, "a user connected their account for an upstream");
    let row = services.federation.row(&pending.gateway_id).await.ok();
    let awaiting = row.as_ref().is_some_and(|row| {
        row.owner_email.as_deref() == Some(principal.email.as_str())
            && row.protocol_version.as_deref() == Some("(awaiting connection)")
    });
    if awaiting && let Err(error) = services.federation.refresh(&pending.gateway_id).await {
        tracing::warn!(gateway = %name, %error, "the first discovery after the owner connected failed");
    }
    Ok(name)
}

/// Disconnects `principal`'s account from an upstream; whether it was connected.
pub async fn disconnect(
    services: &Services,
    principal: &Principal,
    gateway_id: &str,
) -> Result<bool, ApiError> {
    per_user_config(services, principal, gateway_id).await?;
    Ok(services
        .federation
        .oauth_tokens()
        .disconnect(gateway_id, &principal.email)
        .await)
}
