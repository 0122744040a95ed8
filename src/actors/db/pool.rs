//! The bb8 pool of either backend, its connection setup, and migrations.
//!
//! Private to the DbActor: nothing outside `crate::actors::db` can name these types, and
//! `clippy.toml` refuses the pool and connection constructors anywhere but here.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the one module that owns the pool and opens connections"
)]

use std::sync::Arc;
use std::time::Duration;

use diesel::{Connection, ConnectionError, SqliteConnection};
use diesel_async::pooled_connection::bb8::PooledConnection;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures_util::FutureExt;

use super::stats::{Counters, PoolFigures};
use crate::config::{DatabaseSettings, DatabaseUrl};
use crate::db::{DbConn, SqliteConn};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The PostgreSQL advisory lock replicas take in turn to migrate ("mcpgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x006d_6370_6761_7465;

/// How long SQLite waits on a locked database before reporting it busy.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;

type PgManager = AsyncDieselConnectionManager<AsyncPgConnection>;
type SqliteManager = AsyncDieselConnectionManager<SqliteConn>;

/// The pool of one backend.
pub(super) enum Pool {
    Pg(bb8::Pool<PgManager>),
    Sqlite(bb8::Pool<SqliteManager>),
}

/// A checked-out connection; back in the pool when dropped.
#[expect(
    clippy::large_enum_variant,
    reason = "lives briefly on one task's stack; boxing would add an allocation per unit of work"
)]
pub(super) enum Checkout<'a> {
    Pg(PooledConnection<'a, AsyncPgConnection>),
    Sqlite(PooledConnection<'a, SqliteConn>),
}

impl Checkout<'_> {
    pub fn conn(&mut self) -> DbConn<'_> {
        match self {
            Checkout::Pg(conn) => DbConn::pg(conn),
            Checkout::Sqlite(conn) => DbConn::sqlite(conn),
        }
    }

    /// The token that cancels the running statement (PostgreSQL only).
    pub fn cancel_token(&self) -> Option<tokio_postgres::CancelToken> {
        match self {
            Checkout::Pg(conn) => Some(conn.cancel_token()),
            Checkout::Sqlite(_) => None,
        }
    }
}

/// Sends bb8's background connection errors to the statistics and the log.
#[derive(Clone)]
struct ConnectionErrorSink {
    counters: Arc<Counters>,
}

impl std::fmt::Debug for ConnectionErrorSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionErrorSink")
    }
}

impl<E: std::fmt::Display> bb8::ErrorSink<E> for ConnectionErrorSink {
    fn sink(&self, error: E) {
        let message = error.to_string();
        tracing::debug!(error = %message, "database connection attempt failed");
        self.counters.set_last_connection_error(message);
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<E>> {
        Box::new(self.clone())
    }
}

/// Asks PostgreSQL for untranslated messages. diesel-async 0.9 passes on the SQLSTATE of
/// only nine error kinds (unique, foreign key, not null, check, serialization …); deadlocks,
/// statement timeouts and shutdowns arrive as `Unknown` with the server's message, which the
/// retry classification then reads. `lc_messages` may be set by superusers and roles granted
/// `SET` on it; for others the server's own language stays, and a warning says so once.
async fn english_messages(conn: &mut AsyncPgConnection) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Err(error) = conn.batch_execute("SET lc_messages = 'C'").await
        && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            %error,
            "cannot set lc_messages; unless the server's messages are in English, deadlocks, \
             statement timeouts and server shutdowns are not recognised as transient \
             (grant SET ON PARAMETER lc_messages to this role, or set it in postgresql.conf)"
        );
    }
}

impl Pool {
    /// Builds the pool without connecting; must run inside the DbActor's runtime.
    pub fn build(settings: &DatabaseSettings, counters: Arc<Counters>) -> Pool {
        let sink = ConnectionErrorSink { counters };
        match &settings.url {
            DatabaseUrl::Postgres(url) => {
                let mut config = ManagerConfig::default();
                let statement_timeout_ms = settings.query_timeout.as_millis();
                config.custom_setup = Box::new(move |url| {
                    let url = url.to_owned();
                    async move {
                        let mut conn = AsyncPgConnection::establish(&url).await?;
                        conn.batch_execute(&format!(
                            "SET application_name = 'mcpgate'; \
                             SET statement_timeout = {statement_timeout_ms}; \
                             SET idle_in_transaction_session_timeout = {statement_timeout_ms}"
                        ))
                        .await
                        .map_err(ConnectionError::CouldntSetupConfiguration)?;
                        english_messages(&mut conn).await;
                        Ok(conn)
                    }
                    .boxed()
                });
                let manager = PgManager::new_with_config(url.clone(), config);
                Pool::Pg(builder(settings, sink).build_unchecked(manager))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut config = ManagerConfig::default();
                config.custom_setup = Box::new(|path| {
                    let path = path.to_owned();
                    async move {
                        let mut conn = SqliteConn::establish(&path).await?;
                        conn.batch_execute(&sqlite_pragmas())
                            .await
                            .map_err(ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    }
                    .boxed()
                });
                let manager =
                    SqliteManager::new_with_config(path.to_string_lossy().into_owned(), config);
                Pool::Sqlite(builder(settings, sink).build_unchecked(manager))
            }
        }
    }

    /// Checks out a connection within `DB_POOL_TIMEOUT`.
    pub async fn checkout(&self) -> Result<Checkout<'_>, ()> {
        match self {
            Pool::Pg(pool) => pool.get().await.map(Checkout::Pg).map_err(|_| ()),
            Pool::Sqlite(pool) => pool.get().await.map(Checkout::Sqlite).map_err(|_| ()),
        }
    }

    pub fn figures(&self) -> PoolFigures {
        let (state, max_size) = match self {
            Pool::Pg(pool) => (pool.state(), pool.max_size()),
            Pool::Sqlite(pool) => (pool.state(), pool.max_size()),
        };
        PoolFigures {
            max_size,
            connections: state.connections,
            idle: state.idle_connections,
            connections_created: state.statistics.connections_created,
            connections_closed_broken: state.statistics.connections_closed_broken,
            connections_closed_invalid: state.statistics.connections_closed_invalid,
            gets_waited: state.statistics.get_waited,
        }
    }
}

trait MaxSize {
    fn max_size(&self) -> u32;
}

impl<M: bb8::ManageConnection> MaxSize for bb8::Pool<M> {
    fn max_size(&self) -> u32 {
        self.config().max_size
    }
}

fn builder<M>(settings: &DatabaseSettings, sink: ConnectionErrorSink) -> bb8::Builder<M>
where
    M: bb8::ManageConnection,
    M::Error: std::fmt::Display,
{
    bb8::Pool::builder()
        .max_size(settings.pool_size)
        .min_idle(None)
        .connection_timeout(settings.pool_timeout)
        // No ping per checkout: a connection that died is found by its first statement, which
        // fails as "connection lost" before anything is written, and the DbActor retries.
        .test_on_check_out(false)
        .idle_timeout(Some(Duration::from_secs(300)))
        .max_lifetime(Some(Duration::from_secs(1800)))
        .error_sink(Box::new(sink))
}

fn sqlite_pragmas() -> String {
    format!(
        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; \
         PRAGMA synchronous = NORMAL;"
    )
}

/// Applies pending migrations with a blocking connection; call from a blocking thread of the
/// DbActor's runtime. Returns the names of the migrations applied.
pub(super) fn migrate_blocking(url: &DatabaseUrl) -> Result<Vec<String>, String> {
    match url {
        DatabaseUrl::Postgres(url) => {
            let mut conn = <diesel_async::async_connection_wrapper::AsyncConnectionWrapper<
                AsyncPgConnection,
            > as Connection>::establish(url)
            .map_err(|error| format!("cannot connect to PostgreSQL: {error}"))?;
            // Replicas starting together take turns: the first applies, the others find
            // nothing pending (the lock ends with the session if this process dies).
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                &format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"),
            )
            .map_err(|error| format!("cannot take the migration lock: {error}"))?;
            let applied = apply(&mut conn, POSTGRES_MIGRATIONS);
            let _ = diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                &format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"),
            );
            applied
        }
        DatabaseUrl::Sqlite(path) => {
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
                && !parent.exists()
            {
                return Err(format!(
                    "the directory of the SQLite database {} does not exist",
                    path.display()
                ));
            }
            let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                // busy_timeout first: another process (a running gateway, the token command)
                // may hold the file, and switching to WAL must wait for it, not fail.
                &format!("{} PRAGMA journal_mode = WAL;", sqlite_pragmas()),
            )
            .map_err(|error| format!("cannot configure SQLite: {error}"))?;
            apply(&mut conn, SQLITE_MIGRATIONS)
        }
    }
}

fn apply<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<Vec<String>, String>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|applied| applied.iter().map(ToString::to_string).collect())
        .map_err(|error| format!("migration failed: {error}"))
}
