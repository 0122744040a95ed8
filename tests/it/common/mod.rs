//! Test support: fresh databases (SQLite file or PostgreSQL database per test), the real
//! server started on 127.0.0.1:0, an HTTP client, and a TCP proxy that can cut the database.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients and look at its database from outside"
)]

pub mod balancer;
pub mod fixture;
pub mod mcp;
pub mod proxy;
pub mod replicas;
pub mod sdk;
pub mod world;

use std::collections::HashMap;
use std::time::Duration;

use mcpgate::app::{self, RunningServer};
use mcpgate::auth::jwt::JwtKeys;
use mcpgate::config::Settings;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;

/// The JWT secret every test server uses, so tests can mint tokens.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// The `AUTH_ENCRYPTION_SECRET` of test servers.
pub const ENCRYPTION_SECRET: &str = "test-encryption-secret-0123456789";
/// The PostgreSQL server every machine runs (trust auth).
pub const PG_HOST: &str = "127.0.0.1";
/// Its port.
pub const PG_PORT: u16 = 5432;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database, removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    /// For PostgreSQL: the database name.
    pub name: String,
    dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Creates a database: an empty SQLite file (the server migrates it), or a PostgreSQL
    /// database cloned from the migrated template. A PostgreSQL server that cannot be reached
    /// fails the test.
    pub async fn new(backend: Backend) -> Self {
        let name = format!("mcpgate_t_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => TestDb {
                backend,
                name,
                dir: Some(tempfile::tempdir().expect("temp dir")),
            },
            Backend::Postgres => {
                let template = migrated_template().await;
                let admin = pg_admin().await;
                retry_while_busy(
                    &admin,
                    &format!("CREATE DATABASE {name} TEMPLATE {template}"),
                )
                .await;
                TestDb {
                    backend,
                    name,
                    dir: None,
                }
            }
        }
    }

    /// The `DATABASE_URL` reaching this database directly.
    pub fn url(&self) -> String {
        self.url_via_port(PG_PORT)
    }

    /// The `DATABASE_URL` reaching this database through another port (a proxy).
    pub fn url_via_port(&self, port: u16) -> String {
        match (&self.backend, &self.dir) {
            (Backend::Sqlite, Some(dir)) => {
                format!("sqlite://{}", dir.path().join("mcpgate.db").display())
            }
            _ => format!("postgres://postgres@{PG_HOST}:{port}/{}", self.name),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let admin = pg_admin().await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// A PostgreSQL database with every migration applied, made once per set of migrations (its
/// name carries their fingerprint) and cloned by each test: `CREATE DATABASE … TEMPLATE` copies
/// files instead of replaying the migrations. Test processes that start together agree through
/// an advisory lock; a template is renamed into place only once it is complete.
async fn migrated_template() -> String {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("mcpgate_template_{}", migrations_fingerprint());
            let admin = pg_admin().await;
            admin
                .batch_execute("SELECT pg_advisory_lock(727274)")
                .await
                .expect("lock the template");
            let exists = admin
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .expect("look for the template")
                .is_some();
            if !exists {
                let building = format!("{name}_building_{}", uuid::Uuid::new_v4().simple());
                admin
                    .batch_execute(&format!("CREATE DATABASE {building}"))
                    .await
                    .expect("create the template");
                let url = format!("postgres://postgres@{PG_HOST}:{PG_PORT}/{building}");
                mcpgate::actors::db::migrate(&settings(&url, &[]).database)
                    .await
                    .expect("migrate the template");
                retry_while_busy(
                    &admin,
                    &format!("ALTER DATABASE {building} RENAME TO {name}"),
                )
                .await;
            }
            admin
                .batch_execute("SELECT pg_advisory_unlock(727274)")
                .await
                .expect("unlock the template");
            name
        })
        .await
        .clone()
}

/// A fingerprint of the PostgreSQL migrations (names and contents).
fn migrations_fingerprint() -> String {
    use sha2::Digest;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<std::path::PathBuf> = walk(&dir);
    files.sort();
    let mut hash = sha2::Sha256::new();
    for file in files {
        hash.update(
            file.strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .as_bytes(),
        );
        hash.update(std::fs::read(&file).expect("read a migration"));
    }
    hash.finalize()
        .iter()
        .take(6)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the migrations") {
        let path = entry.expect("a migration entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Runs a statement that needs the databases it names to have no connections, retrying while
/// the connections of a pool that was just dropped are still closing.
async fn retry_while_busy(admin: &tokio_postgres::Client, statement: &str) {
    for attempt in 0.. {
        match admin.batch_execute(statement).await {
            Ok(()) => return,
            Err(error)
                if attempt < 100
                    && error.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("{statement}: {error}"),
        }
    }
}

/// A connection to the `postgres` maintenance database.
pub async fn pg_admin() -> tokio_postgres::Client {
    pg_connect("postgres").await
}

/// A connection to a database on the test PostgreSQL server.
pub async fn pg_connect(database: &str) -> tokio_postgres::Client {
    let config = format!("host={PG_HOST} port={PG_PORT} user=postgres dbname={database}");
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "PostgreSQL must run on {PG_HOST}:{PG_PORT} (user postgres, trust auth): {error}"
            )
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A direct connection to an SQLite test database.
fn sqlite_connect(path: &std::path::Path) -> diesel::SqliteConnection {
    use diesel::connection::SimpleConnection;
    let mut conn =
        <diesel::SqliteConnection as diesel::Connection>::establish(&path.display().to_string())
            .expect("open the SQLite test database");
    // A stopped server's pool may still be closing its connections.
    conn.batch_execute("PRAGMA busy_timeout = 10000")
        .expect("busy timeout");
    conn
}

/// Runs SQL statements on a test database directly: what an earlier version wrote, or what a
/// thief with a copy of the database sees.
pub async fn sql_execute(db: &TestDb, statements: &str) {
    if let Err(error) = sql_try(db, statements).await {
        panic!("SQL runs: {error}");
    }
}

/// Runs SQL statements on a test database directly; the database's refusal, if it refuses.
pub async fn sql_try(db: &TestDb, statements: &str) -> Result<(), String> {
    match (&db.backend, &db.dir) {
        (Backend::Sqlite, Some(dir)) => {
            use diesel::connection::SimpleConnection;
            let path = dir.path().join("mcpgate.db");
            let statements = statements.to_owned();
            tokio::task::spawn_blocking(move || {
                sqlite_connect(&path)
                    .batch_execute(&statements)
                    .map_err(|error| error.to_string())
            })
            .await
            .unwrap()
        }
        _ => pg_connect(&db.name)
            .await
            .batch_execute(statements)
            .await
            .map_err(|error| format!("{error}: {error:?}")),
    }
}

/// The text column `value` of every row `query` returns, read from the database directly.
pub async fn sql_texts(db: &TestDb, query: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    match (&db.backend, &db.dir) {
        (Backend::Sqlite, Some(dir)) => {
            use diesel::RunQueryDsl;
            let path = dir.path().join("mcpgate.db");
            let query = query.to_owned();
            tokio::task::spawn_blocking(move || {
                diesel::sql_query(query)
                    .load::<Row>(&mut sqlite_connect(&path))
                    .expect("SQL runs")
                    .into_iter()
                    .map(|row| row.value)
                    .collect()
            })
            .await
            .unwrap()
        }
        _ => pg_connect(&db.name)
            .await
            .query(query, &[])
            .await
            .expect("SQL runs")
            .iter()
            .map(|row| row.get::<_, String>("value"))
            .collect(),
    }
}

/// Settings for a test server on `database_url`, with overrides.
pub fn settings(database_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut values: HashMap<String, String> = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("HTTP_WORKERS", "2"),
        ("JWT_SECRET_KEY", JWT_SECRET),
        ("AUTH_ENCRYPTION_SECRET", ENCRYPTION_SECRET),
        ("PLATFORM_ADMIN_PASSWORD", "admin-password-for-tests"),
        ("LOG_LEVEL", "warn"),
        // The console's logs page keeps info lines (the first server of a process installs it).
        ("LOG_RING_LEVEL", "info"),
        ("DB_POOL_SIZE", "5"),
        // Every upstream and REST service a test starts is on loopback; the security tests
        // turn this off to prove the egress policy.
        ("SSRF_ALLOW_LOCALHOST", "true"),
        // Every test client signs in from 127.0.0.1; the security tests set a real limit.
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "100000"),
        // The server runs inside the test binary: prompts render in the real gateway binary.
        ("PROMPT_RENDERER", env!("CARGO_BIN_EXE_mcpgate")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    values.insert("DATABASE_URL".into(), database_url.to_owned());
    for (key, value) in overrides {
        values.insert((*key).to_owned(), (*value).to_owned());
    }
    Settings::from_lookup(&|name| values.get(name).cloned()).expect("valid test settings")
}

/// A response: status, headers and the JSON body (`Null` when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    /// For an SSE response, the messages before the last one (which is `body`).
    pub events: Vec<Value>,
}

impl Reply {
    /// The `code` of an error body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// The `message` of an error body.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    /// The body, after asserting the status (the body is the failure message).
    pub fn expect(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }
}

/// The real gateway, started in-process on an ephemeral port.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    running: Option<RunningServer>,
}

impl TestServer {
    /// Starts a server on `db` with the given setting overrides.
    pub async fn start(db: &TestDb, overrides: &[(&str, &str)]) -> Self {
        Self::start_on_url(&db.url(), overrides).await
    }

    /// Starts a server on a given `DATABASE_URL`.
    pub async fn start_on_url(database_url: &str, overrides: &[(&str, &str)]) -> Self {
        let settings = settings(database_url, overrides);
        // The binary's logging (the console's log page reads what it keeps); once a process.
        mcpgate::logs::install(&settings.log);
        let running = app::start(settings).await.expect("the server starts");
        TestServer {
            base: format!("http://{}", running.addr),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            admin_token: token("admin@example.com", true),
            running: Some(running),
        }
    }

    /// A gateway running elsewhere (another process) at `base`, as the admin.
    pub fn remote(base: String) -> Self {
        TestServer {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            admin_token: token("admin@example.com", true),
            running: None,
        }
    }

    /// The running server (for tests that reach the DbActor directly).
    pub fn running(&self) -> &RunningServer {
        self.running.as_ref().expect("running")
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Sends a request with the admin token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(method, path, Some(&self.admin_token.clone()), body)
            .await
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("the request is answered")).await
    }

    /// Sends a raw body with a content type and the admin token.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin_token)
            .header("content-type", content_type)
            .body(body);
        reply(request.send().await.expect("the request is answered")).await
    }

    /// The DbActor's statistics, as served to admins.
    pub async fn pool_stats(&self) -> Value {
        let reply = self.admin(Method::GET, "/admin/pool-stats", None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }
}

/// An empty gateway to register as an upstream (it offers nothing; discovery succeeds).
pub async fn empty_upstream() -> (TestDb, TestServer) {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db, &[]).await;
    (db, server)
}

/// The body of `POST /gateways` for `upstream`'s `/mcp` (or `/sse` with transport `SSE`).
pub fn gateway_body(name: &str, upstream: &TestServer, sse: bool) -> Value {
    let (path, transport) = if sse {
        ("/sse", "SSE")
    } else {
        ("/mcp", "streamablehttp")
    };
    serde_json::json!({
        "name": name,
        "url": format!("{}{path}", upstream.base),
        "transport": transport,
        "auth": {"type": "bearer", "token": upstream.admin_token},
    })
}

/// Registers the upstream MCP server at `url` as gateway `name` (as the admin).
pub async fn register_gateway(server: &TestServer, name: &str, url: &str) {
    server
        .admin(
            Method::POST,
            "/gateways",
            Some(serde_json::json!({"name": name, "url": url})),
        )
        .await
        .expect(StatusCode::CREATED);
}

/// Reads a response into a [`Reply`].
pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("the body is readable");
    let is_sse = headers.get("content-type").is_some_and(|value| {
        value
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    });
    if is_sse {
        let mut events: Vec<Value> = String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| serde_json::from_str(data).expect("SSE data is JSON"))
            .collect();
        let body = events.pop().unwrap_or(Value::Null);
        return Reply {
            status,
            headers,
            body,
            events,
        };
    }
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("a JSON body, got {:?}", String::from_utf8_lossy(&bytes)))
    };
    Reply {
        status,
        headers,
        body,
        events: Vec::new(),
    }
}

/// The password test users get.
pub const USER_PASSWORD: &str = "correct horse battery staple";

/// The `/metrics` text, as an admin scrapes it.
pub async fn metrics_text(server: &TestServer) -> String {
    server
        .client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(&server.admin_token)
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("a text body")
}

/// `POST /auth/login` with an email and a password.
pub async fn login(server: &TestServer, email: &str, password: &str) -> Reply {
    server
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(serde_json::json!({"email": email, "password": password})),
        )
        .await
}

/// Creates a user with a global `role` through the admin API; returns a token for them.
pub async fn create_user(server: &TestServer, email: &str, role: &str) -> String {
    server
        .admin(
            Method::POST,
            "/users",
            Some(serde_json::json!({"email": email, "password": USER_PASSWORD, "role": role})),
        )
        .await
        .expect(StatusCode::CREATED);
    token(email, false)
}

/// A token signed with the test secret.
pub fn token(email: &str, admin: bool) -> String {
    JwtKeys::hs256(JWT_SECRET, "mcpgate", "mcpgate-api")
        .issue(email, admin, Duration::from_secs(3600))
        .expect("token")
}

/// Polls `check` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a test body once, on SQLite: for suites whose subject is not the database (the official
/// conformance suite, the SDKs' interop, the browser); what they pass through is covered on both
/// backends by the other suites.
#[macro_export]
macro_rules! once_on_sqlite {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_rt::test]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
        }
    )*};
}

/// Runs a test body once per backend: `both_backends!(name, body_fn)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_rt::test]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
            #[actix_rt::test]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await;
            }
        }
    )*};
}
