//! Registering an upstream MCP server and discovering again what it offers, as a principal:
//! the authorization decision here, the work in [`crate::federation::Federation`]. An upstream
//! that cannot be reached is a 502 and nothing is stored.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Services;
use super::registry::{allowed, authorized, map_db, may_create};
pub use crate::db::federation::SyncCounts;
use crate::db::now;
use crate::error::ApiError;
use crate::federation::FederationError;
use crate::registry::gateways::{GatewayCreate, GatewayView, Gateways};
use crate::registry::{Change, Entity};

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
pub async fn register(
    services: &Services,
    principal: &crate::auth::Principal,
    input: GatewayCreate,
) -> Result<GatewayDiscovered, ApiError> {
    allowed::<Gateways>(principal, "create")?;
    let auth = input.auth.clone();
    let change = Change {
        actor_email: &principal.email,
        now: now(),
        secrets: &services.secrets,
    };
    let mut row = Gateways::create(input, &change)?;
    may_create::<Gateways>(principal, &row)?;
    let headers = match &auth {
        Some(auth) => auth.headers()?,
        None => BTreeMap::new(),
    };
    if let Some(auth) = &auth {
        row.auth_type = Some(auth.kind().to_owned());
        row.auth_secret = Some(services.federation.seal(&headers));
    }
    let (gateway, counts) = services
        .federation
        .register(row, headers)
        .await
        .map_err(|error| map_federation(error, None))?;
    tracing::info!(gateway = %gateway.name, tools = counts.tools, "upstream registered");
    Ok(GatewayDiscovered {
        gateway: Gateways::view(gateway),
        discovered: counts,
    })
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
    Ok(GatewayDiscovered {
        gateway: Gateways::view(gateway),
        discovered: counts,
    })
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
