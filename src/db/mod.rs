//! The database layer: schema, row types and query functions.
//!
//! Everything here runs *inside* the DbActor (`crate::actors::db`): a query function takes a
//! [`DbConn`] that only the actor can produce, and callers elsewhere describe the work as a
//! [`UnitOfWork`] value that they send to the actor. Queries are written once with the diesel DSL
//! and expanded per backend by [`on_backend!`](crate::on_backend).

pub mod audit;
pub mod bootstrap;
pub mod catalog;
pub mod federation;
pub mod identity;
pub mod metrics;
pub mod oauth;
pub mod registry;
pub mod schema;
pub mod stored;
#[doc(hidden)]
pub mod testing;
pub mod tokens;
pub mod upstream_tokens;

use diesel::SqliteConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use futures_util::future::BoxFuture;

/// The SQLite connection type used by the pool.
pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// A borrowed connection of either backend, handed to a unit of work by the DbActor. Its
/// backend is private to this module: only code in `src/db` can run a statement on it.
pub struct DbConn<'a> {
    inner: Conn<'a>,
}

/// The backend of a [`DbConn`] (matched by [`on_backend!`](crate::on_backend), which only `src/db` can expand).
enum Conn<'a> {
    Pg(&'a mut AsyncPgConnection),
    Sqlite(&'a mut SqliteConn),
}

impl<'a> DbConn<'a> {
    /// A PostgreSQL connection checked out of the pool (the DbActor's pool only).
    pub(crate) fn pg(conn: &'a mut AsyncPgConnection) -> Self {
        DbConn {
            inner: Conn::Pg(conn),
        }
    }

    /// An SQLite connection checked out of the pool (the DbActor's pool only).
    pub(crate) fn sqlite(conn: &'a mut SqliteConn) -> Self {
        DbConn {
            inner: Conn::Sqlite(conn),
        }
    }

    /// A shorter borrow of the same connection, for running several steps in sequence.
    pub fn reborrow(&mut self) -> DbConn<'_> {
        DbConn {
            inner: match &mut self.inner {
                Conn::Pg(conn) => Conn::Pg(conn),
                Conn::Sqlite(conn) => Conn::Sqlite(conn),
            },
        }
    }
}

/// Transactions, for the DbActor: it decides when a unit's work is one transaction.
pub(crate) mod transaction {
    use diesel_async::AsyncConnection;
    use diesel_async::TransactionManager;

    use super::{AsyncPgConnection, Conn, DbConn, SqliteConn};

    type PgTm = <AsyncPgConnection as AsyncConnection>::TransactionManager;
    type SqliteTm = <SqliteConn as AsyncConnection>::TransactionManager;

    /// Begins a transaction.
    pub(crate) async fn begin(conn: DbConn<'_>) -> diesel::QueryResult<()> {
        match conn.inner {
            Conn::Pg(c) => PgTm::begin_transaction(c).await,
            Conn::Sqlite(c) => SqliteTm::begin_transaction(c).await,
        }
    }

    /// Commits it.
    pub(crate) async fn commit(conn: DbConn<'_>) -> diesel::QueryResult<()> {
        match conn.inner {
            Conn::Pg(c) => PgTm::commit_transaction(c).await,
            Conn::Sqlite(c) => SqliteTm::commit_transaction(c).await,
        }
    }

    /// Rolls it back.
    pub(crate) async fn rollback(conn: DbConn<'_>) -> diesel::QueryResult<()> {
        match conn.inner {
            Conn::Pg(c) => PgTm::rollback_transaction(c).await,
            Conn::Sqlite(c) => SqliteTm::rollback_transaction(c).await,
        }
    }
}

/// Seals [`UnitOfWork`]: the trait below is nameable only inside `src/db`, so no other module
/// (and no other crate) can define a unit of work, and with it a place that holds a connection.
mod sealed {
    /// Implemented by every unit of work, in `src/db` only.
    pub trait Sealed {}
}

/// Expands one diesel DSL body once per backend: `on_backend!(conn, c => query.get_result(c).await)`.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn.inner {
            $crate::db::Conn::Pg($c) => $body,
            $crate::db::Conn::Sqlite($c) => $body,
        }
    };
}

/// Inserts `rows` into `table`: in one statement on PostgreSQL; a statement per row on SQLite,
/// where diesel-async cannot batch (and SQLite, in process, has no round trip to save).
#[macro_export]
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn.inner {
            $crate::db::Conn::Pg(c) => {
                diesel::insert_into($table).values($rows).execute(c).await?;
            }
            $crate::db::Conn::Sqlite(c) => {
                for row in $rows {
                    diesel::insert_into($table)
                        .values(row)
                        .execute(&mut *c)
                        .await?;
                }
            }
        }
    };
}

/// Whether a unit of work changes data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only.
    Read,
    /// Writes; always runs in one transaction.
    Write,
}

/// Why a unit of work stopped, before the DbActor classifies it.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The database refused or failed a statement.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// The unit found that the input clashes with stored data (a federated tool name that is
    /// taken, say); the message names what clashes.
    #[error("{0}")]
    Conflict(String),
    /// The unit found the input inconsistent with stored data (an unknown member id, say).
    #[error("{field}: {message}")]
    Rejected {
        /// The input field at fault, as the client named it.
        field: String,
        /// What is wrong, in words a user can act on.
        message: String,
    },
}

impl WorkError {
    /// A rejection naming the input field at fault.
    pub fn rejected(field: impl Into<String>, message: impl Into<String>) -> Self {
        WorkError::Rejected {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The result type of query functions.
pub type WorkResult<T> = Result<T, WorkError>;

/// One bounded piece of database work, sent to the DbActor as a message.
///
/// `run` may be called more than once (the actor retries transient failures), so it takes
/// `&self` and must not have effects outside the database. The trait is sealed: units are
/// defined in `src/db` (with [`unit_of_work!`](crate::unit_of_work)) and nowhere else.
pub trait UnitOfWork: sealed::Sealed + Send + Sync + 'static {
    /// What the work returns once the connection is back in the pool.
    type Output: Send + 'static;

    /// A short name for logs and statistics (`tools.create`).
    fn name(&self) -> &'static str;

    /// Whether the work writes.
    fn access(&self) -> Access;

    /// Whether the work runs in a transaction. Writes always do; a read that makes several
    /// queries may ask for one to see a consistent snapshot.
    fn transactional(&self) -> bool {
        self.access() == Access::Write
    }

    /// Whether running it twice has the same effect as once, so a failure whose outcome is
    /// unknown (a lost connection during COMMIT, a serialization failure) may be retried.
    fn idempotent(&self) -> bool {
        self.access() == Access::Read
    }

    /// Runs the work on a checked-out connection.
    fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<Self::Output>>;
}

/// Declares a unit of work: `unit_of_work!(Name { fields } -> Output, "name", Access, |self, conn| body)`.
///
/// The body is an async block that may use `self` and `conn` (a [`DbConn`]).
#[macro_export]
macro_rules! unit_of_work {
    (
        $(#[$meta:meta])*
        $name:ident { $($field:ident : $ty:ty),* $(,)? } -> $output:ty,
        $label:literal, $access:ident, transactional = $tx:expr,
        |$self_:ident, $conn:ident| $body:expr
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name { $(pub $field: $ty),* }

        impl $crate::db::sealed::Sealed for $name {}

        impl $crate::db::UnitOfWork for $name {
            type Output = $output;
            fn name(&self) -> &'static str { $label }
            fn access(&self) -> $crate::db::Access { $crate::db::Access::$access }
            fn transactional(&self) -> bool { $tx || self.access() == $crate::db::Access::Write }
            fn run<'a>(
                &'a self,
                $conn: $crate::db::DbConn<'a>,
            ) -> ::futures_util::future::BoxFuture<'a, $crate::db::WorkResult<$output>> {
                let $self_ = self;
                Box::pin(async move { $body })
            }
        }
    };
}

/// A no-op unit used by readiness checks: `SELECT 1`.
#[derive(Debug, Clone, Copy)]
pub struct Ping;

impl sealed::Sealed for Ping {}

impl UnitOfWork for Ping {
    type Output = ();
    fn name(&self) -> &'static str {
        "ping"
    }
    fn access(&self) -> Access {
        Access::Read
    }
    fn run<'a>(&'a self, conn: DbConn<'a>) -> BoxFuture<'a, WorkResult<()>> {
        Box::pin(async move {
            use diesel::IntoSql;
            use diesel_async::RunQueryDsl;
            let query = diesel::select(1_i32.into_sql::<diesel::sql_types::Integer>());
            on_backend!(conn, c => query.get_result::<i32>(c).await)?;
            Ok(())
        })
    }
}

/// The current time, truncated to microseconds so SQLite and PostgreSQL store equal values.
pub fn now() -> chrono::NaiveDateTime {
    now_from(chrono::Utc::now())
}

/// A time as stored: naive UTC, truncated to microseconds.
pub fn now_from(at: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    let at = at.naive_utc();
    chrono::DurationRound::duration_trunc(at, chrono::TimeDelta::microseconds(1)).unwrap_or(at)
}
