//! The service layer: every operation the gateway offers — on the registry, upstreams, tokens
//! and identities — as a function of a principal and typed input. Each makes its authorization
//! decision through the one authorization point ([`crate::auth::Principal::authorize`]), sends
//! units of work to the DbActor, and answers with records or an [`ApiError`]. The REST handlers
//! (`crate::http`) and the console pages (`crate::http::console`) are thin adapters over it.

pub mod audit;
pub mod gateways;
pub mod identity;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod registry;
pub mod tokens;
pub mod transfer;
pub mod upstream_oauth;

use std::sync::Arc;

use crate::actors::auth::Auth;
use crate::actors::catalog::Catalogs;
use crate::actors::db::Db;
use crate::config::Settings;
use crate::error::ApiError;
use crate::federation::Federation;
use crate::secrets::SecretBox;

/// What the services need: the actors they send to and the settings they apply. Cheap to
/// clone (handles and `Arc`s).
#[derive(Clone)]
pub struct Services {
    /// The DbActor.
    pub db: Db,
    /// The AuthActor (issues tokens, learns of revocations).
    pub auth: Auth,
    /// The catalog (refreshed after a change).
    pub catalog: Catalogs,
    /// Seals credentials at rest.
    pub secrets: SecretBox,
    /// Registering and refreshing upstreams.
    pub federation: Federation,
    /// The settings the process started with (the egress policy among them).
    pub settings: Arc<Settings>,
    /// The audit trail's writer.
    pub audit: crate::actors::audit::Audit,
    /// Call counters and latency (per tool and per upstream).
    pub metrics: crate::actors::metrics::Metrics,
    /// Dynamic client registrations per address in the current hour.
    pub registrations: Arc<oauth::Registrations>,
    /// When each client ID metadata document was last fetched.
    pub client_documents: Arc<oauth::Fetched>,
    /// The services' own outbound client (client ID metadata documents), under the egress
    /// policy without its allow list.
    pub http: crate::egress::HttpClient,
    /// The other replicas (what changes here is published to them).
    pub cluster: crate::cluster::Cluster,
}

/// The result of a service operation.
pub type Outcome<T> = Result<T, ApiError>;
