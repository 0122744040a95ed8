//! Call history for operators (`admin.system`): the chart over a range and the per-tool,
//! per-server and per-upstream tables of the last day, as the metrics page and
//! `GET /metrics/calls` show them.

use serde::Deserialize;

use super::{Outcome, Services};
use crate::actors::metrics::{HistoryView, Range};
use crate::auth::{On, Principal};
use crate::error::ApiError;

/// `GET /metrics/calls`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The chart's range: `1h` (default, per minute), `6h` (per 5 minutes), `24h` (per 15
    /// minutes) or `7d` (per hour).
    #[serde(default)]
    #[param(inline)]
    pub range: Range,
}

/// The history over `range`, servers and upstreams named as the catalog knows them.
pub async fn history(
    services: &Services,
    principal: &Principal,
    range: Range,
) -> Outcome<HistoryView> {
    principal
        .authorize("admin.system", On::Platform)
        .map_err(|denied| ApiError::from_auth(denied.into()))?;
    let mut view = services
        .metrics
        .history(range)
        .await
        .ok_or(ApiError::Unavailable {
            retry_after: std::time::Duration::from_secs(1),
        })?;
    let catalog = services.catalog.current();
    for row in &mut view.servers {
        if let Some(server) = catalog.server(&row.key) {
            row.name = server.name.clone();
        }
    }
    let gateways = catalog.gateways();
    for row in &mut view.upstreams {
        if let Some(gateway) = gateways.iter().find(|gateway| gateway.id == row.key) {
            row.name = gateway.name.clone();
        }
    }
    Ok(view)
}
