//! PostgreSQL for a run: a fresh database (created by the harness, dropped when the run ends),
//! what `pg_stat_activity` says about the gateway's backends, and killing them.

use anyhow::Context;
use serde::Serialize;

/// Where PostgreSQL runs (trust authentication).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PgServer {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User (a superuser: it creates and drops databases and terminates backends).
    pub user: String,
}

impl Default for PgServer {
    fn default() -> Self {
        PgServer {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
        }
    }
}

impl PgServer {
    /// `host:port`, for a TCP proxy's target.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A connection to `database`; fails loudly when PostgreSQL is not there.
    pub async fn connect(&self, database: &str) -> anyhow::Result<tokio_postgres::Client> {
        let config = format!(
            "host={} port={} user={} dbname={database} application_name=mcpgate-loadtest",
            self.host, self.port, self.user
        );
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .with_context(|| {
                format!(
                    "PostgreSQL must run on {}:{} (user {}, trust auth) for the load tests",
                    self.host, self.port, self.user
                )
            })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a harness connection to PostgreSQL ended");
            }
        });
        Ok(client)
    }
}

/// A database created for one run, dropped (with its connections) when this is dropped.
pub struct TempDatabase {
    server: PgServer,
    name: String,
}

impl TempDatabase {
    /// Creates `mcpgate_lt_<uuid>`.
    pub async fn create(server: &PgServer) -> anyhow::Result<Self> {
        let name = format!("mcpgate_lt_{}", uuid::Uuid::new_v4().simple());
        let admin = server.connect("postgres").await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        Ok(TempDatabase {
            server: server.clone(),
            name,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server it lives on.
    pub fn server(&self) -> &PgServer {
        &self.server
    }

    /// The `DATABASE_URL` reaching it directly.
    pub fn url(&self) -> String {
        self.url_via(&self.server.host, self.server.port)
    }

    /// The `DATABASE_URL` reaching it through another address (a proxy).
    pub fn url_via(&self, host: &str, port: u16) -> String {
        format!(
            "postgres://{}@{host}:{port}/{}",
            self.server.user, self.name
        )
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let admin = server.connect("postgres").await?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            tracing::warn!(database = %self.name, "could not drop the run's database");
        }
    }
}

/// What `pg_stat_activity` shows for one database at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Activity {
    /// Backends connected to the database.
    pub backends: i64,
    /// Of those, `idle in transaction`.
    pub idle_in_transaction: i64,
    /// How long the oldest of those has been idle in its transaction, in seconds.
    pub idle_in_transaction_max_age_s: f64,
}

/// A harness connection to the `postgres` database for observing and killing a database's
/// backends; it is not counted among them.
pub struct Observer {
    server: PgServer,
    database: String,
    client: Option<tokio_postgres::Client>,
}

impl Observer {
    /// An observer of `database` (connects on first use).
    pub fn new(server: &PgServer, database: &str) -> Self {
        Observer {
            server: server.clone(),
            database: database.to_owned(),
            client: None,
        }
    }

    /// Runs `sql`, whose one parameter is the observed database's name, for its one row.
    async fn row_about_database(
        &mut self,
        sql: &str,
        what: &'static str,
    ) -> anyhow::Result<tokio_postgres::Row> {
        let usable = self
            .client
            .as_ref()
            .is_some_and(|client| !client.is_closed());
        if !usable {
            self.client = Some(self.server.connect("postgres").await?);
        }
        let client = self.client.as_ref().expect("just connected");
        client.query_one(sql, &[&self.database]).await.context(what)
    }

    /// The database's backends now.
    pub async fn activity(&mut self) -> anyhow::Result<Activity> {
        let row = self
            .row_about_database(
                "SELECT count(*)::int8, \
                        count(*) FILTER (WHERE state = 'idle in transaction')::int8, \
                        coalesce(max(extract(epoch FROM now() - state_change)) \
                                 FILTER (WHERE state = 'idle in transaction'), 0)::float8 \
                 FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                "cannot read pg_stat_activity",
            )
            .await?;
        Ok(Activity {
            backends: row.get(0),
            idle_in_transaction: row.get(1),
            idle_in_transaction_max_age_s: crate::units::round3(row.get(2)),
        })
    }

    /// Terminates every backend of the database; returns how many.
    pub async fn terminate_backends(&mut self) -> anyhow::Result<i64> {
        let row = self
            .row_about_database(
                "SELECT count(pg_terminate_backend(pid))::int8 FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                "cannot terminate the gateway's backends",
            )
            .await?;
        Ok(row.get(0))
    }
}
