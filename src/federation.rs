//! Federation as a service: registering an upstream, refreshing what it offers, and the
//! maintenance loop (health checks, periodic refresh). The HTTP handlers and the background
//! loop both use it; it talks to the actors only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::actors::catalog::Catalogs;
use crate::actors::db::{Db, DbError};
use crate::actors::upstream::{Discovery, Forward, ForwardError, Upstream};
use crate::catalog::Gateway;
use crate::config::Settings;
use crate::db::federation::{
    DiscoveredPrompt, DiscoveredResource, DiscoveredTool, SetGatewayHealth, SyncCounts, SyncGateway,
};
use crate::db::now;
use crate::db::registry::{GatewayRow, GetRecord};
use crate::secrets::SecretBox;
use crate::upstream::{CallError, Target};

/// How long a health check may take.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why registering or refreshing an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The URL is refused by the SSRF guard.
    #[error("url: {0}")]
    Refused(String),
    /// The upstream could not be reached or refused the handshake.
    #[error("could not connect to the upstream at {url}: {cause}")]
    Unreachable {
        /// Its URL.
        url: String,
        /// What happened.
        cause: CallError,
    },
    /// The upstream offers something the gateway refuses to serve (a look-alike name).
    #[error("the upstream at {url} offers {what}; nothing was stored")]
    Offered {
        /// Its URL.
        url: String,
        /// What it offers and why that is refused.
        what: String,
    },
    /// Stored credentials do not decrypt (the encryption secret changed).
    #[error("the stored credentials of gateway {0:?} do not decrypt")]
    Credentials(String),
    /// The database refused or failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The federation service.
#[derive(Clone)]
pub struct Federation {
    db: Db,
    upstream: Upstream,
    secrets: SecretBox,
    catalog: Catalogs,
    settings: Arc<Settings>,
}

impl Federation {
    /// A service over these actors.
    pub fn new(
        db: Db,
        upstream: Upstream,
        secrets: SecretBox,
        catalog: Catalogs,
        settings: Arc<Settings>,
    ) -> Self {
        Federation {
            db,
            upstream,
            secrets,
            catalog,
            settings,
        }
    }

    /// Seals credentials for storage.
    pub fn seal(&self, headers: &BTreeMap<String, String>) -> String {
        self.secrets
            .seal(&serde_json::to_string(headers).unwrap_or_default())
    }

    /// Checks the URL, discovers the upstream and stores the gateway with everything it offers.
    pub async fn register(
        &self,
        row: GatewayRow,
        headers: BTreeMap<String, String>,
    ) -> Result<(GatewayRow, SyncCounts), FederationError> {
        self.check_address(&row.url).await?;
        let discovery = self.discover(&row, headers).await?;
        self.store(row, &discovery, true).await
    }

    /// The egress policy, checked at registration for a clear refusal (every connection is
    /// checked again when it is made).
    async fn check_address(&self, url: &str) -> Result<(), FederationError> {
        self.settings
            .federation
            .egress
            .check_url_now(url)
            .await
            .map_err(|denied| FederationError::Refused(denied.0))
    }

    /// Discovers a stored gateway again and updates what it offers.
    pub async fn refresh(
        &self,
        gateway_id: &str,
    ) -> Result<(GatewayRow, SyncCounts), FederationError> {
        let row = self
            .db
            .run(GetRecord::<GatewayRow>::new(gateway_id))
            .await?;
        // The address was checked at registration; check again, as DNS may have moved it.
        self.check_address(&row.url).await?;
        let headers = self.stored_headers(&row)?;
        let discovery = match self.discover(&row, headers).await {
            Ok(discovery) => discovery,
            Err(error) => {
                let _ = self.set_health(&row.id, false, None).await;
                return Err(error);
            }
        };
        self.store(row, &discovery, false).await
    }

    async fn store(
        &self,
        row: GatewayRow,
        discovery: &Discovery,
        is_new: bool,
    ) -> Result<(GatewayRow, SyncCounts), FederationError> {
        let url = row.url.clone();
        let sync = build_sync(
            &self.settings.federation.tool_name_separator,
            row,
            discovery,
            is_new,
        )
        .map_err(|what| FederationError::Offered { url, what })?;
        let gateway = sync.gateway.clone();
        let synced = self.db.run(sync).await?;
        // Only what the sync changed reaches the catalog.
        self.catalog.apply_all(synced.changes).await;
        Ok((gateway, synced.counts))
    }

    fn stored_headers(
        &self,
        row: &GatewayRow,
    ) -> Result<BTreeMap<String, String>, FederationError> {
        match &row.auth_secret {
            None => Ok(BTreeMap::new()),
            Some(sealed) => self
                .secrets
                .open(sealed)
                .ok()
                .and_then(|plain| serde_json::from_str(&plain).ok())
                .ok_or_else(|| FederationError::Credentials(row.name.clone())),
        }
    }

    async fn discover(
        &self,
        row: &GatewayRow,
        headers: BTreeMap<String, String>,
    ) -> Result<Discovery, FederationError> {
        let target = Target {
            url: row.url.clone(),
            transport: row.transport.into(),
            headers,
        };
        self.upstream.discover(target).await.map_err(|cause| {
            tracing::warn!(gateway = %row.name, %cause, "upstream discovery failed");
            FederationError::Unreachable {
                url: row.url.clone(),
                cause,
            }
        })
    }

    async fn set_health(
        &self,
        gateway_id: &str,
        reachable: bool,
        seen_at: Option<chrono::NaiveDateTime>,
    ) -> Result<(), DbError> {
        self.db
            .run(SetGatewayHealth {
                gateway_id: gateway_id.to_owned(),
                reachable,
                seen_at,
            })
            .await
    }

    /// Whether the upstream answers (any JSON-RPC answer, even an error, counts).
    async fn ping(&self, gateway: &Gateway) -> bool {
        let outcome = self
            .upstream
            .forward(Forward {
                gateway_id: gateway.id.clone(),
                gateway_name: gateway.name.clone(),
                target: gateway.target.clone(),
                method: "ping".into(),
                params: Map::new(),
                notifications: crate::upstream::Notifications::none(),
                cancel: CancellationToken::new(),
                timeout: HEALTH_CHECK_TIMEOUT,
                affinity: None,
            })
            .await;
        matches!(
            outcome,
            Ok(_)
                | Err(ForwardError::Call {
                    error: CallError::Rpc { .. },
                    ..
                })
        )
    }

    /// Health checks every `HEALTH_CHECK_INTERVAL` (offline after `UNHEALTHY_THRESHOLD`
    /// failures in a row, online at the next answer), a refresh of every reachable upstream
    /// every `GATEWAY_REFRESH_SECONDS`, and a refresh of an upstream as soon as it announces a
    /// list change. Runs until `shutdown`.
    pub fn spawn_maintenance(
        self,
        mut changed: tokio::sync::mpsc::Receiver<String>,
        shutdown: CancellationToken,
    ) {
        // Upstreams that announced a change are discovered again at once.
        let follower = self.clone();
        let follower_shutdown = shutdown.clone();
        actix_web::rt::spawn(async move {
            loop {
                let gateway_id = tokio::select! {
                    _ = follower_shutdown.cancelled() => return,
                    next = changed.recv() => match next {
                        Some(id) => id,
                        None => return,
                    },
                };
                // Coalesce a burst of notifications into one refresh.
                while changed.try_recv().is_ok() {}
                match follower.refresh(&gateway_id).await {
                    Ok((gateway, counts)) => {
                        tracing::info!(gateway = %gateway.name, tools = counts.tools, "upstream changed; refreshed")
                    }
                    Err(error) => {
                        tracing::warn!(gateway.id = %gateway_id, %error, "refresh after an upstream change failed")
                    }
                }
            }
        });
        actix_web::rt::spawn(async move {
            let settings = self.settings.federation.clone();
            let mut every = actix_web::rt::time::interval(settings.health_check_interval);
            every.tick().await;
            let mut failures: HashMap<String, u32> = HashMap::new();
            let mut last_refresh = std::time::Instant::now();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {}
                }
                let gateways = self.catalog.current().gateways();
                // All upstreams at once: a slow one does not delay the others' checks.
                let answers = futures_util::future::join_all(
                    gateways.iter().map(|gateway| self.ping(gateway)),
                )
                .await;
                for (gateway, alive) in gateways.iter().zip(answers) {
                    let count = failures.entry(gateway.id.clone()).or_default();
                    if alive {
                        if *count >= settings.unhealthy_threshold {
                            tracing::info!(gateway = %gateway.name, "upstream back online");
                        }
                        *count = 0;
                        let _ = self.set_health(&gateway.id, true, Some(now())).await;
                    } else {
                        *count += 1;
                        if *count == settings.unhealthy_threshold {
                            tracing::warn!(gateway = %gateway.name, failures = *count, "upstream offline");
                            let _ = self.set_health(&gateway.id, false, None).await;
                        }
                    }
                }
                if last_refresh.elapsed() >= settings.refresh_interval {
                    last_refresh = std::time::Instant::now();
                    for gateway in &gateways {
                        if failures.get(&gateway.id).copied().unwrap_or(0) == 0
                            && let Err(error) = self.refresh(&gateway.id).await
                        {
                            tracing::warn!(gateway = %gateway.name, %error, "periodic refresh failed");
                        }
                    }
                }
            }
        });
    }
}

/// Members of a discovered definition the gateway does not interpret but serves as the upstream
/// sent them: display names and icons, `_meta` (where extensions live, e.g. an MCP App's `ui`
/// resource reference), a tool's `execution` and a resource's `annotations` and `size`.
const TOOL_PASSTHROUGH: &[&str] = &["title", "icons", "_meta", "execution"];
const RESOURCE_PASSTHROUGH: &[&str] = &["title", "icons", "_meta", "annotations", "size"];
const PROMPT_PASSTHROUGH: &[&str] = &["title", "icons", "_meta"];

/// The `members` present in `item`, as JSON object text.
fn passthrough(item: &Value, members: &[&str]) -> String {
    let kept: serde_json::Map<String, Value> = members
        .iter()
        .filter_map(|member| Some(((*member).to_owned(), item.get(*member)?.clone())))
        .collect();
    Value::Object(kept).to_string()
}

fn text_field(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// Names, definitions and gateway columns from a discovery. Tool and prompt names are served
/// NFC-normalised (calls upstream use the original); a look-alike name refuses the discovery.
fn build_sync<'a>(
    separator: &str,
    mut gateway: GatewayRow,
    discovery: &'a Discovery,
    is_new: bool,
) -> Result<SyncGateway, String> {
    let local_name = |kind: &str, name: &str| {
        let name = crate::registry::validate::federated_name(name)
            .map_err(|why| format!("a {kind} named {name:?} that {why}"))?;
        Ok::<_, String>(if gateway.prefix_tool_names {
            format!("{}{separator}{name}", gateway.slug)
        } else {
            name
        })
    };
    // (the item, its name in the gateway, its name upstream) of every item with a name.
    let named = |kind: &'static str, items: &'a [Value]| {
        items.iter().filter_map(move |item| {
            let original = text_field(item, "name")?;
            Some(local_name(kind, &original).map(|name| (item, name, original)))
        })
    };
    let tools = named("tool", &discovery.tools)
        .map(|named| {
            let (tool, name, original_name) = named?;
            Ok::<_, String>(DiscoveredTool {
                name,
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
                passthrough: passthrough(tool, TOOL_PASSTHROUGH),
            })
        })
        .collect::<Result<_, _>>()?;
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
            passthrough: passthrough(value, RESOURCE_PASSTHROUGH),
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
    let prompts = named("prompt", &discovery.prompts)
        .map(|named| {
            let (prompt, name, original_name) = named?;
            Ok::<_, String>(DiscoveredPrompt {
                name,
                original_name,
                description: text_field(prompt, "description"),
                arguments: prompt
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| json!([]))
                    .to_string(),
                passthrough: passthrough(prompt, PROMPT_PASSTHROUGH),
            })
        })
        .collect::<Result<_, _>>()?;
    let seen = now();
    gateway.protocol_version = Some(discovery.protocol_version.clone());
    gateway.capabilities = discovery.capabilities.to_string();
    gateway.reachable = true;
    gateway.last_seen_at = Some(seen);
    gateway.updated_at = seen;
    Ok(SyncGateway {
        gateway,
        is_new,
        tools,
        resources,
        prompts,
    })
}
