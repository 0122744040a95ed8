//! Wiring: start the actors, bootstrap, and serve HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::actors::auth::Auth;
use crate::actors::catalog::Catalogs;
use crate::actors::db::{self, Db};
use crate::actors::upstream::Upstream;
use crate::bootstrap::{self, GeneratedAdmin};
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::mcp::session::SessionStore;

/// A running gateway.
pub struct RunningServer {
    /// The bound address (useful with `PORT=0`).
    pub addr: SocketAddr,
    /// The admin credentials generated at this start, if any (printed by the binary).
    pub generated_admin: Option<GeneratedAdmin>,
    stopper: Stopper,
    db: Db,
    /// Written before the database stops, so no recorded change is lost at a graceful stop.
    audit: crate::actors::audit::Audit,
    metrics: crate::actors::metrics::Metrics,
    /// Its stdio upstreams' processes are stopped after the server.
    upstream: Upstream,
    server: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The DbActor handle (for embedding and tests).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Waits until the server stops (by signal or [`RunningServer::stop`]).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self
            .server
            .await
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        self.upstream.stop_processes().await;
        self.audit.settle().await;
        self.metrics.settle().await;
        self.db.shutdown();
        // The spans of the last requests reach the collector.
        let _ = tokio::task::spawn_blocking(crate::telemetry::flush).await;
        result
    }

    /// Stops the server gracefully from elsewhere (a signal handler).
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Stops gracefully: long-lived streams end, in-flight requests finish, then the actors
    /// stop.
    pub async fn stop(self) {
        self.stopper.stop().await;
        let _ = self.server.await;
        self.upstream.stop_processes().await;
        self.audit.settle().await;
        self.metrics.settle().await;
        self.db.shutdown();
    }
}

/// Stops a running server gracefully.
#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    shutdown: tokio_util::sync::CancellationToken,
    sessions: Arc<SessionStore>,
    parked: Arc<crate::mcp::parked::ParkedCalls>,
}

impl Stopper {
    /// Ends subscription and session streams (they would otherwise hold the graceful stop),
    /// then stops accepting and waits for in-flight requests.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.sessions.end_all();
        self.parked.cancel_all();
        self.handle.stop(true).await;
    }
}

/// File descriptors kept free of streams: for `/health`, `/ready`, the admin API, the
/// database pool and upstream connections.
const FD_RESERVE: u64 = 256;

/// Ends idle legacy sessions every 30 seconds.
fn spawn_session_sweeper(sessions: Arc<SessionStore>) {
    actix_web::rt::spawn(async move {
        let mut every = actix_web::rt::time::interval(std::time::Duration::from_secs(30));
        loop {
            every.tick().await;
            let ended = sessions.sweep();
            if ended > 0 {
                tracing::debug!(ended, "idle MCP sessions ended");
            }
        }
    });
}

/// When the process started its first server (the console's footer shows the uptime).
pub fn started() -> std::time::Instant {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}

/// Starts the database actor (migrating), bootstraps secrets and the admin, and binds the HTTP
/// server. Must run inside an actix system. Process signals are left to the caller (the binary
/// installs its handlers before starting, so no signal can arrive unhandled).
pub async fn start(settings: Settings) -> Result<RunningServer, String> {
    started();
    let settings = Arc::new(settings);
    let db = db::start(&settings.database).await?;
    let resolved = bootstrap::secrets(&db, &settings.auth).await?;
    let keys = resolved.jwt_keys(&settings.auth)?;
    let generated_admin = bootstrap::platform_admin(&db, &settings.auth).await?;
    let cluster = crate::cluster::Cluster::start(
        &settings.cluster,
        &settings.database.url,
        resolved.secret_box(),
    );
    cluster
        .wait_connected(std::time::Duration::from_secs(3))
        .await;
    let scoping = crate::actors::scoping::Scoping::start(
        db.clone(),
        settings.auth.identity.cache_ttl,
        cluster.clone(),
    );
    let idps = crate::actors::idp::IdentityProviders::start(
        &settings.auth.oidc,
        &settings.federation.egress,
    )?;
    let auth = Auth::start(
        keys.clone(),
        scoping,
        db.clone(),
        settings.auth.identity.clone(),
        idps,
        cluster.clone(),
    );
    let secrets = resolved.secret_box();
    bootstrap::reseal(&db, &secrets).await?;
    let catalog = Catalogs::start(
        db.clone(),
        secrets.clone(),
        settings.mcp.catalog_refresh,
        cluster.clone(),
    )
    .await?;
    let (upstream_changes, changed_gateways) = tokio::sync::mpsc::channel(256);
    let (health_sender, health_reports) = tokio::sync::mpsc::channel(256);
    let upstream = Upstream::start(
        settings.federation.clone(),
        Some(upstream_changes),
        Some(health_sender),
        keys.clone(),
        db.clone(),
        secrets.clone(),
    )?;
    // Concurrency quotas every replica counts together (with REDIS_URL).
    let leases = crate::leases::Leases::start(&settings.cluster);
    let sessions = Arc::new(SessionStore::new(
        settings.mcp.session_ttl,
        settings.mcp.max_sessions,
        settings.mcp.max_sessions_per_principal,
        crate::mcp::session::UpstreamSessions {
            quota: crate::quota::Quota::shared(
                "upstream sessions of your own",
                (
                    "MCP_MAX_UPSTREAM_SESSIONS_PER_PRINCIPAL",
                    settings.mcp.max_upstream_sessions_per_principal,
                ),
                (
                    "MCP_MAX_UPSTREAM_SESSIONS",
                    settings.mcp.max_upstream_sessions,
                ),
                leases.clone(),
            ),
            answer_timeout: settings.mcp.tool_timeout,
        },
        crate::mcp::session::SessionIds {
            secrets: resolved.secret_box(),
            max_age: settings.mcp.session_max_age,
            cluster: cluster.clone(),
            leases: leases.clone(),
        },
    ));
    // Streams hold a descriptor each: keep them below the open-file limit with a reserve.
    let open_files = crate::quota::raise_open_files_limit();
    let stream_cap = settings
        .mcp
        .max_streams
        .min(usize::try_from(open_files.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX) / 2)
        .max(1);
    if stream_cap < settings.mcp.max_streams {
        tracing::warn!(
            open_files,
            stream_cap,
            "MCP_MAX_STREAMS lowered to leave file descriptors for health checks and the admin API"
        );
    }
    let streams = crate::quota::Quota::shared(
        "concurrent streams",
        (
            "MCP_MAX_STREAMS_PER_PRINCIPAL",
            settings.mcp.max_streams_per_principal,
        ),
        ("MCP_MAX_STREAMS", stream_cap),
        leases.clone(),
    );
    spawn_session_sweeper(sessions.clone());
    let parked = crate::mcp::parked::ParkedCalls::new(
        settings.mcp.tool_timeout,
        (
            settings.mcp.max_parked_calls_per_principal,
            settings.mcp.max_parked_calls,
        ),
        cluster.replica(),
        leases.clone(),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let federation = crate::federation::Federation::new(
        db.clone(),
        upstream.clone(),
        secrets.clone(),
        catalog.clone(),
        settings.clone(),
        cluster.clone(),
    );
    federation
        .clone()
        .spawn_maintenance(changed_gateways, health_reports, shutdown.clone());
    crate::replicas::spawn(
        &cluster,
        crate::replicas::Appliers {
            sessions: sessions.clone(),
            catalog: catalog.clone(),
            auth: auth.clone(),
            federation: federation.clone(),
        },
        shutdown.clone(),
    );
    let metrics =
        crate::actors::metrics::Metrics::start(db.clone(), settings.metrics_retention_days);
    let audit = crate::actors::audit::Audit::start(db.clone(), settings.audit_retention_days);
    let services = crate::service::Services {
        db: db.clone(),
        auth: auth.clone(),
        catalog: catalog.clone(),
        secrets: secrets.clone(),
        federation: federation.clone(),
        settings: settings.clone(),
        audit: audit.clone(),
        metrics: metrics.clone(),
        registrations: Arc::default(),
        client_documents: Arc::default(),
        cluster: cluster.clone(),
        // Client sites, never internal upstreams: the policy without its allow list.
        http: crate::egress::HttpClient::new(crate::egress::EgressPolicy {
            allow: Vec::new(),
            ..settings.federation.egress.clone()
        })?,
    };
    let state = web::Data::new(AppState {
        db: db.clone(),
        auth,
        catalog,
        upstream: upstream.clone(),
        sessions: sessions.clone(),
        parked: parked.clone(),
        prompts: crate::prompt_render::PromptRenderer::new(settings.mcp.prompt_render.clone())?,
        streams,
        tool_calls: crate::quota::Quota::new(
            "tool calls in flight",
            (
                "MCP_MAX_TOOL_CALLS_PER_PRINCIPAL",
                settings.mcp.max_tool_calls_per_principal,
            ),
            ("MCP_MAX_TOOL_CALLS", settings.mcp.max_tool_calls),
        ),
        rate_limits: crate::ratelimit::RateLimits::new(&settings.mcp, &settings.cluster),
        console: Arc::new(crate::http::console::Console::new(secrets.clone())?),
        services,
        secrets,
        mcp_settings: Arc::new(settings.mcp.clone()),
        settings: settings.clone(),
        shutdown: shutdown.clone(),
        federation: federation.clone(),
        metrics: metrics.clone(),
        // The other replicas: the operator's own addresses, private or local.
        replica_http: crate::egress::HttpClient::new(crate::egress::EgressPolicy {
            allow_localhost: true,
            allow_private_networks: true,
            allow: Vec::new(),
        })?,
    });
    let body_limit = settings.max_request_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .wrap(from_fn(http::forward::believe_stamp))
            .wrap(from_fn(http::request_log::log_requests))
            // Responses are never sniffed into another type, and are not cached unless they
            // say so themselves (the console's assets do).
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add((actix_web::http::header::CACHE_CONTROL, "no-store")),
            )
            .configure(|config| http::routes(&mut ServiceConfig::new(config)))
            .default_service(web::to(http::not_found))
    })
    .shutdown_timeout(10)
    // Small responses (an SSE event after its headers) must not wait for the client's delayed
    // ACK: without this, Nagle's algorithm added about 40 ms to every streamed tools/call on a
    // kept-alive connection (found by loadtest's fastpath scenario).
    .tcp_nodelay(true)
    .disable_signals();
    let workers = settings.http_workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    server = server
        .workers(workers)
        // Client connections stay below the open-file limit, with the reserve kept free.
        .max_connections(
            (usize::try_from(open_files.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX)
                / workers.max(1))
            .clamp(64, 25_000),
        );
    let server = server
        .bind((settings.host, settings.port))
        .map_err(|error| {
            format!(
                "cannot listen on {}:{}: {error}",
                settings.host, settings.port
            )
        })?;
    let addr = *server
        .addrs()
        .first()
        .ok_or_else(|| "the server bound no address".to_owned())?;
    cluster.set_address(
        settings
            .cluster
            .advertise_url
            .clone()
            .or_else(|| (!addr.ip().is_unspecified()).then(|| format!("http://{addr}"))),
    );
    let server = server.run();
    let handle = server.handle();
    let server = actix_web::rt::spawn(server);
    // Stdio upstreams that run from the start are started now (each under its own backoff).
    actix_web::rt::spawn(async move { federation.start_processes().await });
    tracing::info!(%addr, database = settings.database.url.backend_name(), "mcpgate listening");
    Ok(RunningServer {
        addr,
        generated_admin,
        stopper: Stopper {
            handle,
            shutdown,
            sessions,
            parked,
        },
        db,
        audit,
        metrics,
        upstream,
        server,
    })
}
