//! Three `mcpgate serve` processes on one PostgreSQL database, telling each other of changes
//! over Redis pub/sub or PostgreSQL LISTEN/NOTIFY.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::process::Child;

use super::mcp::McpClient;
use super::{Backend, TestDb, TestServer};

/// The Redis every machine runs.
const REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Clone, Copy)]
pub(crate) enum Bus {
    /// Redis pub/sub.
    Redis,
    /// PostgreSQL LISTEN/NOTIFY.
    Postgres,
}

/// Three `mcpgate serve` processes on one database.
pub(crate) struct Replicas {
    pub(crate) children: Vec<Child>,
    pub(crate) servers: Vec<TestServer>,
    _workdirs: Vec<tempfile::TempDir>,
    _db: TestDb,
}

impl Replicas {
    pub(crate) async fn start(bus: Bus) -> Self {
        Self::start_with(bus, &[]).await
    }

    /// Three replicas with `extra` settings besides the usual ones.
    pub(crate) async fn start_with(bus: Bus, extra: &[(&str, &str)]) -> Self {
        let db = TestDb::new(Backend::Postgres).await;
        // Tests share the machine's Redis: each keeps to its own channel.
        let prefix = format!("mcpgate-test-{}:", uuid::Uuid::new_v4().simple());
        let mut env: Vec<(&str, &str)> = vec![
            ("JWT_SECRET_KEY", super::JWT_SECRET),
            ("AUTH_ENCRYPTION_SECRET", super::ENCRYPTION_SECRET),
            ("PLATFORM_ADMIN_PASSWORD", "admin-password-for-tests"),
            ("SSRF_ALLOW_LOCALHOST", "true"),
            ("LOGIN_RATE_LIMIT_PER_MINUTE", "100000"),
            ("DB_POOL_SIZE", "3"),
            // The backstops wait an hour: only the bus can explain a change seen at once.
            ("CATALOG_REFRESH_SECONDS", "3600"),
            ("TOKEN_REVOCATION_REFRESH_SECONDS", "3600"),
            ("AUTH_CACHE_TTL_SECONDS", "3600"),
            // One failed call marks an upstream down.
            ("UNHEALTHY_THRESHOLD", "1"),
        ];
        match bus {
            Bus::Redis => {
                env.push(("REDIS_URL", REDIS_URL));
                env.push(("REDIS_KEY_PREFIX", &prefix));
            }
            Bus::Postgres => env.push(("CLUSTER_BUS", "postgres")),
        }
        env.extend_from_slice(extra);
        let (mut children, mut servers, mut workdirs) = (Vec::new(), Vec::new(), Vec::new());
        // One at a time: the first start bootstraps the database.
        for _ in 0..3 {
            let workdir = tempfile::tempdir().expect("a workdir");
            let (child, base, _) = crate::cli::serve_with(&db.url(), workdir.path(), &env).await;
            children.push(child);
            servers.push(TestServer::remote(base));
            workdirs.push(workdir);
        }
        let replicas = Replicas {
            children,
            servers,
            _workdirs: workdirs,
            _db: db,
        };
        // Each replica's bus is up before anything changes.
        for server in &replicas.servers {
            super::eventually(
                "the replica bus connects",
                Duration::from_secs(20),
                || async {
                    let status = server.admin(Method::GET, "/admin/replica", None).await;
                    (status.expect(StatusCode::OK)["connected"] == true).then_some(())
                },
            )
            .await;
        }
        replicas
    }

    /// Waits until every replica lists these tools (registered on one of them).
    pub(crate) async fn serve_tools(&self, names: &[&str]) {
        for server in &self.servers {
            let client = McpClient::new(server, "/mcp");
            super::eventually(
                "every replica serves the registry",
                Duration::from_secs(10),
                || async {
                    let tools = client.modern("tools/list", json!({})).await.body;
                    let listed = tools["result"]["tools"].as_array().cloned()?;
                    names
                        .iter()
                        .all(|name| listed.iter().any(|tool| tool["name"] == *name))
                        .then_some(())
                },
            )
            .await;
        }
    }

    pub(crate) async fn stop(self) {
        for child in self.children {
            crate::cli::stop(child).await;
        }
    }
}
