//! Federation as a service: registering an upstream, refreshing what it offers, and the
//! maintenance loop (health checks, periodic refresh). The HTTP handlers and the background
//! loop both use it; it talks to the actors only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Map;
use tokio_util::sync::CancellationToken;

mod discovered;
mod health;

use crate::actors::catalog::Catalogs;
use crate::actors::db::{Db, DbError};
use crate::actors::upstream::{Discovery, Forward, ForwardError, HealthReport, Upstream};
use crate::catalog::Gateway;
use crate::config::Settings;
use crate::db::federation::{MarkDegraded, SetGatewayHealth, SyncCounts};
use crate::db::now;
use crate::db::registry::{GatewayRow, GetRecord};
use crate::secrets::SecretBox;
use crate::upstream::{Budget, CallError, Target};

/// The least time between two rounds of refreshes caused by upstreams' change notifications.
const CHANGE_REFRESH_PACE: Duration = Duration::from_secs(1);

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
    /// What the upstream sent breaks a bound the gateway keeps (too many items, pages or bytes).
    #[error("the upstream at {url} sent more than the gateway accepts: {what}; nothing was stored")]
    Bound {
        /// Its URL.
        url: String,
        /// Which bound, and by how much.
        what: String,
    },
    /// The upstream offers something the gateway refuses to serve (strict mode).
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

/// The member of an OAuth-protected upstream's sealed secrets that holds its OAuth
/// configuration (JSON).
pub const OAUTH_SECRET: &str = "oauth";

/// Where an upstream is, from its record and its opened secrets: the headers sent to an HTTP
/// upstream, or a stdio upstream's environment variables. `None` when a stdio upstream's
/// stored command cannot be read.
pub fn target_of(row: &GatewayRow, secrets: BTreeMap<String, String>) -> Option<Target> {
    if row.transport != crate::db::stored::Transport::Stdio {
        // An OAuth-protected upstream's secret is its OAuth configuration (the tokens are
        // fetched when calls need them).
        if row
            .auth_type
            .as_deref()
            .is_some_and(|kind| kind.starts_with("oauth2"))
        {
            let config = serde_json::from_str(secrets.get(OAUTH_SECRET)?).ok()?;
            return Some(Target {
                url: row.url.clone(),
                transport: row.transport.into(),
                headers: BTreeMap::new(),
                command: None,
                oauth: Some(Arc::new(config)),
            });
        }
        return Some(Target {
            url: row.url.clone(),
            transport: row.transport.into(),
            headers: secrets,
            command: None,
            oauth: None,
        });
    }
    let stored = serde_json::from_str(row.command.as_deref()?).ok()?;
    Some(Target {
        url: row.url.clone(),
        transport: crate::upstream::TransportKind::Stdio,
        headers: BTreeMap::new(),
        oauth: None,
        command: Some(Arc::new(crate::upstream::process::StdioCommand {
            gateway_id: row.id.clone(),
            label: row.name.clone(),
            stored,
            env: secrets,
        })),
    })
}

/// The federation service.
#[derive(Clone)]
pub struct Federation {
    db: Db,
    upstream: Upstream,
    secrets: SecretBox,
    catalog: Catalogs,
    settings: Arc<Settings>,
    /// Other replicas, told when an upstream goes down or comes back.
    cluster: crate::cluster::Cluster,
}

impl Federation {
    /// A service over these actors.
    pub fn new(
        db: Db,
        upstream: Upstream,
        secrets: SecretBox,
        catalog: Catalogs,
        settings: Arc<Settings>,
        cluster: crate::cluster::Cluster,
    ) -> Self {
        Federation {
            db,
            upstream,
            secrets,
            catalog,
            settings,
            cluster,
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
        if row.transport != crate::db::stored::Transport::Stdio {
            self.check_address(&row.url).await?;
        }
        let id = row.id.clone();
        let registered = async {
            // An upstream that authenticates each user is discovered once its owner has
            // connected their account (the connection's callback refreshes it).
            let discovery = if row.auth_type.as_deref() == Some("oauth2_user") {
                Discovery::awaiting_connection()
            } else {
                self.discover(&row, headers).await?
            };
            self.store(row, &discovery, true).await
        };
        let registered = registered.await;
        if registered.is_err() {
            // A stdio upstream's process started for the discovery ends with the registration.
            self.upstream.forget(&id).await;
        }
        registered
    }

    /// Tokens for OAuth-protected upstreams.
    pub fn oauth_tokens(&self) -> &Arc<crate::actors::upstream::Credentials> {
        self.upstream.credentials()
    }

    /// A stored upstream's record.
    pub async fn row(&self, gateway_id: &str) -> Result<GatewayRow, DbError> {
        self.db.run(GetRecord::<GatewayRow>::new(gateway_id)).await
    }

    /// Ends what the gateway holds open for an upstream that is no longer served (deleted or
    /// disabled): its shared connection and its processes.
    pub async fn release(&self, gateway_id: &str) {
        if self.catalog.current().gateway(gateway_id).is_none() {
            self.upstream.forget(gateway_id).await;
        }
    }

    /// The processes running for a stdio upstream.
    pub fn processes(&self, gateway_id: &str) -> Vec<crate::upstream::process::ProcessView> {
        self.upstream.processes(gateway_id)
    }

    /// Starts the shared process of every stdio upstream that asks to run from the start.
    pub async fn start_processes(&self) {
        for gateway in self.catalog.current().gateways() {
            let at_launch = gateway
                .target
                .command
                .as_ref()
                .is_some_and(|command| command.stored.process.start_at_launch);
            if at_launch && let Err(error) = self.ping_now(&gateway).await {
                tracing::warn!(gateway = %gateway.name, %error, "a stdio upstream could not be started");
            }
        }
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
        if row.transport != crate::db::stored::Transport::Stdio {
            self.check_address(&row.url).await?;
        }
        let headers = self.stored_headers(&row)?;
        let discovery = match self.discover(&row, headers).await {
            Ok(discovery) => discovery,
            Err(FederationError::Bound { url, what }) => {
                // Reachable but past a bound: what it offered before is still served.
                self.degraded(&row.id, &what).await;
                return Err(FederationError::Bound { url, what });
            }
            Err(error) => {
                let _ = self
                    .set_health(&row.id, false, None, Some(error.to_string()))
                    .await;
                return Err(error);
            }
        };
        let id = row.id.clone();
        match self.store(row, &discovery, false).await {
            Err(FederationError::Offered { url, what }) => {
                self.degraded(&id, &what).await;
                Err(FederationError::Offered { url, what })
            }
            stored => stored,
        }
    }

    /// Marks an upstream degraded for `reason` (best effort: the refresh's error is reported
    /// either way).
    async fn degraded(&self, gateway_id: &str, reason: &str) {
        let marked = self.db.run(MarkDegraded {
            gateway_id: gateway_id.to_owned(),
            reason: reason.to_owned(),
        });
        if let Err(error) = marked.await {
            tracing::warn!(gateway = %gateway_id, %error, "could not mark the upstream degraded");
        }
    }

    async fn store(
        &self,
        row: GatewayRow,
        discovery: &Discovery,
        is_new: bool,
    ) -> Result<(GatewayRow, SyncCounts), FederationError> {
        let url = row.url.clone();
        let sync = discovered::build_sync(
            &self.settings.federation.tool_name_separator,
            &self.settings.federation.discovery,
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

    /// The credentials an upstream is called with, opened (a configuration export).
    pub fn credentials(
        &self,
        row: &GatewayRow,
    ) -> Result<BTreeMap<String, String>, FederationError> {
        self.stored_headers(row)
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
        let mut target = target_of(row, headers).ok_or_else(|| FederationError::Unreachable {
            url: row.url.clone(),
            cause: CallError::Transport("its stored configuration cannot be read".into()),
        })?;
        if let Some(config) = target.oauth.clone() {
            // The gateway's own token, or (each user presents their own) its owner's.
            let bearer = self
                .upstream
                .credentials()
                .bearer(&row.id, &row.name, &config, row.owner_email.as_deref())
                .await
                .map_err(|error| FederationError::Unreachable {
                    url: row.url.clone(),
                    cause: CallError::Transport(error.to_string()),
                })?;
            target = target.with_bearer(&bearer);
        }
        let limits = &self.settings.federation.discovery;
        let budget = Budget {
            max_items: limits.max_items,
            max_page_bytes: limits.max_page_bytes,
            bytes_left: limits.max_discovery_bytes,
        };
        self.upstream
            .discover(target, budget)
            .await
            .map_err(|cause| {
                tracing::warn!(gateway = %row.name, %cause, "upstream discovery failed");
                match cause {
                    CallError::Bound(what) => FederationError::Bound {
                        url: row.url.clone(),
                        what,
                    },
                    cause => FederationError::Unreachable {
                        url: row.url.clone(),
                        cause,
                    },
                }
            })
    }

    async fn set_health(
        &self,
        gateway_id: &str,
        reachable: bool,
        seen_at: Option<chrono::NaiveDateTime>,
        error: Option<String>,
    ) -> Result<(), DbError> {
        self.db
            .run(SetGatewayHealth {
                gateway_id: gateway_id.to_owned(),
                reachable,
                seen_at,
                error,
            })
            .await
    }

    /// The circuit breaker of upstream `id`, once calls have gone through it.
    pub async fn breaker(&self, id: &str) -> Option<crate::breaker::BreakerSnapshot> {
        self.upstream
            .breakers()
            .await
            .into_iter()
            .find_map(|(gateway, snapshot)| (gateway == id).then_some(snapshot))
    }

    /// Pings upstream `id` now (no discovery). An answer is recorded as one (online, seen
    /// now); a failure is only answered: one failed ping does not mark it offline.
    pub async fn test(&self, id: &str) -> Result<(), String> {
        let gateway = self
            .catalog
            .current()
            .gateways()
            .into_iter()
            .find(|gateway| gateway.id == id)
            .ok_or_else(|| {
                "the gateway is not served (disabled, or not yet discovered)".to_owned()
            })?;
        self.ping(&gateway).await?;
        if let Err(error) = self.set_health(id, true, Some(now()), None).await {
            tracing::warn!(gateway.id = %id, %error, "could not record the upstream's health");
        }
        Ok(())
    }

    /// Whether the upstream answers (any JSON-RPC answer, even an error, counts); why not.
    async fn ping(&self, gateway: &Gateway) -> Result<(), String> {
        // A stdio upstream's process that is resting (not used yet, stopped as idle) is not
        // started by a health check: it starts when used. One that died is started again.
        if gateway.target.command.is_some() && self.upstream.resting(&gateway.id) {
            return Ok(());
        }
        // An upstream that authenticates each user has no token of the gateway's to be pinged
        // with: its users' calls tell its health.
        if gateway.target.per_user() {
            return Ok(());
        }
        self.ping_now(gateway).await
    }

    /// Pings an upstream over its shared connection (making it, or starting its process).
    async fn ping_now(&self, gateway: &Gateway) -> Result<(), String> {
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
                user: None,
            })
            .await;
        match outcome {
            Ok(_)
            | Err(ForwardError::Call {
                error: CallError::Rpc { .. },
                ..
            }) => Ok(()),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Health checks every `HEALTH_CHECK_INTERVAL` (offline after `UNHEALTHY_THRESHOLD`
    /// failures in a row, online at the next answer), a refresh of every reachable upstream
    /// every `GATEWAY_REFRESH_SECONDS`, and a refresh of an upstream as soon as it announces a
    /// list change. Runs until `shutdown`.
    pub fn spawn_maintenance(
        self,
        mut changed: tokio::sync::mpsc::Receiver<String>,
        mut health: tokio::sync::mpsc::Receiver<HealthReport>,
        shutdown: CancellationToken,
    ) {
        // What calls show about an upstream's health is recorded at once (the health check
        // would take HEALTH_CHECK_INTERVAL x UNHEALTHY_THRESHOLD to see a dead upstream).
        let recorder = self.clone();
        let recorder_shutdown = shutdown.clone();
        actix_web::rt::spawn(async move {
            loop {
                let report = tokio::select! {
                    _ = recorder_shutdown.cancelled() => return,
                    next = health.recv() => match next {
                        Some(report) => report,
                        None => return,
                    },
                };
                if report.reachable {
                    tracing::info!(gateway.id = %report.gateway_id, "upstream answers again");
                } else {
                    tracing::warn!(gateway.id = %report.gateway_id, error = ?report.error, "upstream calls fail: marked offline");
                }
                recorder.announce_health(&report.gateway_id, report.reachable);
                let seen_at = report.reachable.then(now);
                if let Err(error) = recorder
                    .set_health(&report.gateway_id, report.reachable, seen_at, report.error)
                    .await
                {
                    tracing::warn!(gateway.id = %report.gateway_id, %error, "could not record the upstream's health");
                }
            }
        });
        // Upstreams that announced a change are discovered again at once.
        let follower = self.clone();
        let follower_shutdown = shutdown.clone();
        actix_web::rt::spawn(async move {
            loop {
                let first = tokio::select! {
                    _ = follower_shutdown.cancelled() => return,
                    next = changed.recv() => match next {
                        Some(id) => id,
                        None => return,
                    },
                };
                // A burst of notifications is one refresh per upstream that sent any (an
                // upstream's flood never hides another's change).
                let mut pending = std::collections::BTreeSet::from([first]);
                while let Ok(id) = changed.try_recv() {
                    pending.insert(id);
                }
                for gateway_id in pending {
                    match follower.refresh(&gateway_id).await {
                        Ok((gateway, counts)) => {
                            tracing::info!(gateway = %gateway.name, tools = counts.tools, "upstream changed; refreshed")
                        }
                        Err(error) => {
                            tracing::warn!(gateway.id = %gateway_id, %error, "refresh after an upstream change failed")
                        }
                    }
                }
                // At most one round of change refreshes per second: what arrives meanwhile
                // waits in the channel and is coalesced into the next round.
                tokio::select! {
                    _ = follower_shutdown.cancelled() => return,
                    _ = tokio::time::sleep(CHANGE_REFRESH_PACE) => {}
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
                for (gateway, answer) in gateways.iter().zip(answers) {
                    let count = failures.entry(gateway.id.clone()).or_default();
                    match answer {
                        Ok(()) => {
                            if *count >= settings.unhealthy_threshold {
                                tracing::info!(gateway = %gateway.name, "upstream back online");
                                self.announce_health(&gateway.id, true);
                            }
                            *count = 0;
                            let _ = self.set_health(&gateway.id, true, Some(now()), None).await;
                        }
                        Err(error) => {
                            *count += 1;
                            if *count == settings.unhealthy_threshold {
                                tracing::warn!(gateway = %gateway.name, failures = *count, "upstream offline");
                                self.announce_health(&gateway.id, false);
                                let _ =
                                    self.set_health(&gateway.id, false, None, Some(error)).await;
                            }
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
