//! Registering an upstream MCP server (`POST /gateways`) and refreshing what it offers
//! (`POST /gateways/{id}/refresh`): connect, discover every tool, resource, template and
//! prompt, and store them in one transaction. An upstream that cannot be reached is a 502 and
//! nothing is stored.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated};
use super::registry::map_db;
use crate::actors::db::DbError;
use crate::actors::upstream::Discovery;
use crate::db::federation::{
    DiscoveredPrompt, DiscoveredResource, DiscoveredTool, SyncCounts, SyncGateway,
};
use crate::db::now;
use crate::db::registry::{GatewayRow, GetRecord};
use crate::registry::gateways::{GatewayCreate, GatewayView, Gateways};
use crate::registry::{Change, Entity};
use crate::upstream::{Target, TransportKind, ssrf};

/// The answer to a registration or refresh.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GatewayDiscovered {
    /// The gateway.
    #[serde(flatten)]
    pub gateway: GatewayView,
    /// What is now federated from it.
    pub discovered: SyncCounts,
}

/// `POST /gateways`.
pub async fn register(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(input): ApiJson<GatewayCreate>,
) -> Result<HttpResponse, ApiError> {
    let auth = input.auth.clone();
    let change = Change {
        actor_email: &principal.email,
        now: now(),
    };
    let mut row = Gateways::create(input, &change)?;
    let headers = match &auth {
        Some(auth) => auth.headers()?,
        None => BTreeMap::new(),
    };
    if let Some(auth) = &auth {
        row.auth_type = Some(auth.kind().to_owned());
        row.auth_secret = Some(
            state
                .secrets
                .seal(&serde_json::to_string(&headers).unwrap_or_default()),
        );
    }
    check_ssrf(&state, &row.url).await?;
    let discovery = discover(&state, &row, headers).await?;
    let sync = build_sync(&state, row, &discovery, true);
    let gateway = sync.gateway.clone();
    let counts = state
        .db
        .run(sync)
        .await
        .map_err(|error| map_sync_error(error, None))?;
    state.catalog.refresh().await;
    tracing::info!(gateway = %gateway.name, tools = counts.tools, "upstream registered");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/gateways/{}", gateway.id)))
        .json(GatewayDiscovered {
            gateway: Gateways::view(gateway),
            discovered: counts,
        }))
}

/// `POST /gateways/{id}/refresh`: discover again and update what is federated.
pub async fn refresh(
    state: web::Data<AppState>,
    _principal: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let row = state
        .db
        .run(GetRecord::<GatewayRow>::new(id.clone()))
        .await
        .map_err(|error| map_db::<Gateways>(error, Some(&id)))?;
    let headers = stored_headers(&state, &row)?;
    let discovery = discover(&state, &row, headers).await?;
    let sync = build_sync(&state, row, &discovery, false);
    let gateway = sync.gateway.clone();
    let counts = state
        .db
        .run(sync)
        .await
        .map_err(|error| map_sync_error(error, Some(&id)))?;
    state.catalog.refresh().await;
    Ok(HttpResponse::Ok().json(GatewayDiscovered {
        gateway: Gateways::view(gateway),
        discovered: counts,
    }))
}

/// A clash of federated names is reported as the sync phrased it; a clash of the gateway's own
/// name or slug as the gateway entity phrases it.
fn map_sync_error(error: DbError, id: Option<&str>) -> ApiError {
    match error {
        DbError::Conflict { constraint } if !constraint.contains("gateways") => {
            ApiError::Conflict(constraint)
        }
        other => map_db::<Gateways>(other, id),
    }
}

async fn check_ssrf(state: &AppState, url: &str) -> Result<(), ApiError> {
    let policy = ssrf::Policy {
        allow_localhost: state.settings.federation.ssrf_allow_localhost,
        allow_private_networks: state.settings.federation.ssrf_allow_private_networks,
    };
    ssrf::check(url, policy)
        .await
        .map_err(|message| ApiError::InvalidField {
            field: "url".into(),
            message,
        })
}

/// The decrypted credentials of a stored gateway.
fn stored_headers(
    state: &AppState,
    row: &GatewayRow,
) -> Result<BTreeMap<String, String>, ApiError> {
    match &row.auth_secret {
        None => Ok(BTreeMap::new()),
        Some(sealed) => {
            let plain = state.secrets.open(sealed).map_err(|cause| {
                tracing::error!(gateway = %row.name, %cause, "stored credentials do not decrypt");
                ApiError::Internal
            })?;
            serde_json::from_str(&plain).map_err(|_| ApiError::Internal)
        }
    }
}

async fn discover(
    state: &AppState,
    row: &GatewayRow,
    headers: BTreeMap<String, String>,
) -> Result<Discovery, ApiError> {
    let target = Target {
        url: row.url.clone(),
        transport: if row.transport == "sse" {
            TransportKind::Sse
        } else {
            TransportKind::StreamableHttp
        },
        headers,
    };
    state.upstream.discover(target).await.map_err(|error| {
        tracing::warn!(gateway = %row.name, %error, "upstream discovery failed");
        ApiError::BadGateway(format!(
            "could not connect to the upstream at {}: {error}",
            row.url
        ))
    })
}

fn text_field(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// Names, definitions and gateway columns from a discovery.
fn build_sync(
    state: &AppState,
    mut gateway: GatewayRow,
    discovery: &Discovery,
    is_new: bool,
) -> SyncGateway {
    let separator = &state.settings.federation.tool_name_separator;
    let local_name = |name: &str| {
        if gateway.prefix_tool_names {
            format!("{}{separator}{name}", gateway.slug)
        } else {
            name.to_owned()
        }
    };
    let tools = discovery
        .tools
        .iter()
        .filter_map(|tool| {
            let original_name = text_field(tool, "name")?;
            Some(DiscoveredTool {
                name: local_name(&original_name),
                original_name,
                description: text_field(tool, "description"),
                input_schema: tool
                    .get("inputSchema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object"}))
                    .to_string(),
                output_schema: tool.get("outputSchema").map(Value::to_string),
                annotations: tool
                    .get("annotations")
                    .cloned()
                    .unwrap_or_else(|| json!({}))
                    .to_string(),
            })
        })
        .collect();
    let resource = |value: &Value, template: bool| -> Option<DiscoveredResource> {
        let (uri, uri_template) = if template {
            (None, Some(text_field(value, "uriTemplate")?))
        } else {
            (Some(text_field(value, "uri")?), None)
        };
        Some(DiscoveredResource {
            name: text_field(value, "name")
                .unwrap_or_else(|| uri.clone().or(uri_template.clone()).unwrap_or_default()),
            uri,
            uri_template,
            description: text_field(value, "description"),
            mime_type: text_field(value, "mimeType"),
        })
    };
    let resources = discovery
        .resources
        .iter()
        .filter_map(|value| resource(value, false))
        .chain(
            discovery
                .templates
                .iter()
                .filter_map(|value| resource(value, true)),
        )
        .collect();
    let prompts = discovery
        .prompts
        .iter()
        .filter_map(|prompt| {
            let original_name = text_field(prompt, "name")?;
            Some(DiscoveredPrompt {
                name: local_name(&original_name),
                original_name,
                description: text_field(prompt, "description"),
                arguments: prompt
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| json!([]))
                    .to_string(),
            })
        })
        .collect();
    let seen = now();
    gateway.protocol_version = Some(discovery.protocol_version.clone());
    gateway.capabilities = discovery.capabilities.to_string();
    gateway.reachable = true;
    gateway.last_seen_at = Some(seen);
    gateway.updated_at = seen;
    SyncGateway {
        gateway,
        is_new,
        tools,
        resources,
        prompts,
    }
}
