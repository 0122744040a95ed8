//! The DbActor: sole owner of the database pool.
//!
//! Work arrives as [`Execute`] messages carrying a [`UnitOfWork`]. Each attempt runs as one
//! bounded unit on the actor's own multi-threaded runtime: check a connection out, run the work
//! (in one transaction when it writes), put the connection back, and only then answer. The
//! deadline is applied to the spawned task's handle, so a slow query is *detached* (and on
//! PostgreSQL cancelled with its cancel token), never dropped mid-flight — dropping an
//! in-flight diesel-async query panics on SQLite and leaves PostgreSQL backends idle in
//! transaction (see `../shared/STACK-NOTES.md`).
//!
//! Transient failures are retried with capped exponential backoff and ±25 % jitter; consecutive
//! transient failures open a circuit breaker so callers get [`DbError::Unavailable`] at once.

mod error;
mod pool;
mod retry;
mod stats;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

pub use self::error::DbError;
use self::pool::Pool;
use self::retry::{Failure, Phase, backoff, classify};
use self::stats::Counters;
pub use self::stats::PoolStats;
use crate::breaker::Breaker;
pub use crate::breaker::{BreakerSnapshot, BreakerState};
use crate::config::DatabaseSettings;
use crate::db::{DbConn, Ping, UnitOfWork, WorkError};

/// How many messages may wait in the actor's mailbox before senders wait.
const MAILBOX_CAPACITY: usize = 4096;

/// Worker threads of the runtime that runs database work.
const DB_RUNTIME_THREADS: usize = 2;

/// How much longer than the pool's own checkout timeout a unit may take to get a connection
/// (scheduling on a busy runtime) before it counts as past its deadline.
const CHECKOUT_SLACK: Duration = Duration::from_millis(500);

/// Extra time the caller allows beyond the actor's own deadlines before giving up on a reply.
const REPLY_MARGIN: Duration = Duration::from_secs(2);

/// A handle to the DbActor; cheap to clone, the only way to reach the database.
#[derive(Clone)]
pub struct Db {
    addr: Addr<DbActor>,
    reply_timeout: Duration,
    arbiter: ArbiterHandle,
}

impl Db {
    /// Runs one unit of work and returns its owned result.
    pub async fn run<W: UnitOfWork>(&self, work: W) -> Result<W::Output, DbError> {
        match self
            .addr
            .send(Execute(work))
            .timeout(self.reply_timeout)
            .await
        {
            Ok(result) => result,
            Err(MailboxError::Closed) => Err(DbError::Unavailable {
                reason: "the database actor is not running".into(),
                retry_after: Duration::from_secs(1),
            }),
            Err(MailboxError::Timeout) => Err(DbError::Timeout(self.reply_timeout)),
        }
    }

    /// The pool and breaker statistics (no database round trip).
    pub async fn stats(&self) -> Result<PoolStats, DbError> {
        self.addr
            .send(GetPoolStats)
            .timeout(REPLY_MARGIN)
            .await
            .map_err(|_| DbError::Unavailable {
                reason: "the database actor did not answer".into(),
                retry_after: Duration::from_secs(1),
            })
    }

    /// Checks the database answers (`SELECT 1` through the normal path, breaker included).
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(Ping).await
    }

    /// Stops the actor; in-flight work finishes on the runtime, which is then shut down.
    pub fn shutdown(&self) {
        self.arbiter.stop();
    }
}

/// Starts the DbActor: migrates the database (retrying while it is unreachable, within the
/// retry budget), builds the pool and starts the supervised actor on its own arbiter.
pub async fn start(settings: &DatabaseSettings) -> Result<Db, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(DB_RUNTIME_THREADS)
        .thread_name("mcpgate-db")
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the database runtime: {error}"))?;
    let owner = RuntimeOwner(Some(runtime));
    let handle = owner.handle();

    migrate_with_retries(&handle, settings).await?;

    let counters = Arc::new(Counters::default());
    let pool = {
        let _entered = handle.enter();
        Pool::build(settings, counters.clone())
    };
    let core = Arc::new(Core {
        backend: settings.url.backend_name(),
        pool,
        runtime: handle,
        counters,
        breaker: Mutex::new(Breaker::new(
            "database",
            settings.circuit_enabled,
            settings.circuit_failure_threshold,
            settings.circuit_reset,
        )),
        settings: settings.clone(),
    });

    let per_attempt =
        settings.pool_timeout + CHECKOUT_SLACK + settings.query_timeout + settings.max_backoff;
    let reply_timeout = per_attempt * (settings.max_retries + 1) + REPLY_MARGIN;
    let arbiter = Arbiter::new();
    let arbiter_handle = arbiter.handle();
    let addr = Supervisor::start_in_arbiter(&arbiter_handle, move |ctx| {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        DbActor {
            core,
            _runtime: owner,
        }
    });
    Ok(Db {
        addr,
        reply_timeout,
        arbiter: arbiter_handle,
    })
}

/// Applies pending migrations for the configured database. Used by `serve` and `migrate`.
pub async fn migrate(settings: &DatabaseSettings) -> Result<Vec<String>, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the database runtime: {error}"))?;
    let owner = RuntimeOwner(Some(runtime));
    migrate_with_retries(&owner.handle(), settings).await
}

async fn migrate_with_retries(
    runtime: &tokio::runtime::Handle,
    settings: &DatabaseSettings,
) -> Result<Vec<String>, String> {
    let mut retry = 0;
    loop {
        let url = settings.url.clone();
        let outcome = runtime
            .spawn_blocking(move || pool::migrate_blocking(&url))
            .await
            .map_err(|error| format!("migration task failed: {error}"))?;
        match outcome {
            Ok(applied) => {
                for name in &applied {
                    tracing::info!(migration = %name, "applied migration");
                }
                return Ok(applied);
            }
            Err(message)
                if retry < settings.max_retries && message.starts_with("cannot connect") =>
            {
                retry += 1;
                let wait = backoff(retry, settings.retry_interval, settings.max_backoff);
                tracing::warn!(error = %message, retry, "database not reachable at start; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(message) => return Err(message),
        }
    }
}

/// Owns the database runtime and shuts it down without blocking when the actor goes away.
struct RuntimeOwner(Option<tokio::runtime::Runtime>);

impl RuntimeOwner {
    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle().clone(),
            None => unreachable!("the runtime is only taken on drop"),
        }
    }
}

impl Drop for RuntimeOwner {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The actor. Its state lives in `Core`, shared with the tasks it spawns, so a supervised
/// restart keeps the pool, the breaker and the statistics.
pub struct DbActor {
    core: Arc<Core>,
    _runtime: RuntimeOwner,
}

impl Actor for DbActor {
    type Context = Context<Self>;
}

impl Supervised for DbActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("database actor restarting");
    }
}

/// Run one unit of work: the message every database use case travels in.
pub struct Execute<W: UnitOfWork>(pub W);

impl<W: UnitOfWork> Message for Execute<W> {
    type Result = Result<W::Output, DbError>;
}

impl<W: UnitOfWork> Handler<Execute<W>> for DbActor {
    type Result = ResponseFuture<Result<W::Output, DbError>>;

    fn handle(&mut self, message: Execute<W>, _ctx: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move { core.execute(message.0).await })
    }
}

/// Read the pool and breaker statistics.
pub struct GetPoolStats;

impl Message for GetPoolStats {
    type Result = PoolStats;
}

impl Handler<GetPoolStats> for DbActor {
    type Result = MessageResult<GetPoolStats>;

    fn handle(&mut self, _message: GetPoolStats, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.stats())
    }
}

/// State shared by the actor and the work it spawns.
struct Core {
    backend: &'static str,
    pool: Pool,
    runtime: tokio::runtime::Handle,
    counters: Arc<Counters>,
    breaker: Mutex<Breaker>,
    settings: DatabaseSettings,
}

impl Core {
    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stats(&self) -> PoolStats {
        let breaker = self.breaker().snapshot(Instant::now());
        PoolStats::collect(self.backend, &self.counters, self.pool.figures(), breaker)
    }

    fn unavailable(&self, reason: String) -> DbError {
        DbError::Unavailable {
            reason,
            retry_after: self.breaker().retry_after(Instant::now()),
        }
    }

    /// Runs a unit with retries and the breaker; the reply is sent only after the connection
    /// has gone back to the pool.
    async fn execute<W: UnitOfWork>(self: Arc<Self>, work: W) -> Result<W::Output, DbError> {
        let work = Arc::new(work);
        let mut retry = 0;
        // Dead pooled connections met so far (after `pg_terminate_backend`, a failover or a
        // network reset the whole pool may be dead; each is discarded as it is found).
        let mut lost_connections = 0;
        let outcome = loop {
            let admission = match self.breaker().admit(Instant::now()) {
                Ok(admission) => admission,
                Err(retry_after) => {
                    Counters::bump(&self.counters.breaker_rejections);
                    break Err(DbError::Unavailable {
                        reason: "the database circuit breaker is open".into(),
                        retry_after: retry_after.max(Duration::from_secs(1)),
                    });
                }
            };
            match self.clone().attempt(work.clone()).await {
                Ok(output) => {
                    self.breaker().record_success(admission);
                    break Ok(output);
                }
                Err(Failure::Final(error)) => {
                    // The database answered: it is up, whatever it said.
                    self.breaker().record_success(admission);
                    break Err(error);
                }
                Err(Failure::Panicked) => {
                    self.breaker().record_neutral(admission);
                    break Err(self.unavailable(format!("unit of work {} panicked", work.name())));
                }
                Err(Failure::ConnectionLost { reason })
                    if lost_connections <= self.settings.pool_size =>
                {
                    // That connection is gone (and discarded); the database may be fine. Try
                    // again at once on another one, without counting it against the database.
                    self.breaker().record_neutral(admission);
                    lost_connections += 1;
                    Counters::bump(&self.counters.retries);
                    tracing::debug!(db.work = work.name(), error = %reason, "retrying on another connection");
                }
                Err(Failure::ConnectionLost { reason }) => {
                    // Every connection tried was dead: now it says something about the database.
                    self.breaker().record_failure(admission, Instant::now());
                    tracing::warn!(db.work = work.name(), error = %reason, lost_connections, "database work failed");
                    break Err(self.unavailable(reason));
                }
                Err(Failure::Deadline(deadline)) => {
                    self.breaker().record_failure(admission, Instant::now());
                    tracing::warn!(db.work = work.name(), "database work exceeded its deadline");
                    // A server-side statement timeout reports no duration of its own.
                    let deadline = if deadline.is_zero() {
                        self.settings.query_timeout
                    } else {
                        deadline
                    };
                    break Err(DbError::Timeout(deadline));
                }
                Err(Failure::Transient {
                    reason,
                    safe_to_retry,
                }) => {
                    self.breaker().record_failure(admission, Instant::now());
                    let may_retry = safe_to_retry || work.idempotent();
                    if !may_retry || retry >= self.settings.max_retries {
                        tracing::warn!(
                            db.work = work.name(),
                            error = %reason,
                            retries = retry,
                            "database work failed"
                        );
                        break Err(self.unavailable(reason));
                    }
                    retry += 1;
                    Counters::bump(&self.counters.retries);
                    let wait = backoff(
                        retry,
                        self.settings.retry_interval,
                        self.settings.max_backoff,
                    );
                    tracing::debug!(db.work = work.name(), error = %reason, retry, "retrying database work");
                    tokio::time::sleep(wait).await;
                }
            }
        };
        match &outcome {
            Ok(_) => Counters::bump(&self.counters.units_ok),
            Err(_) => Counters::bump(&self.counters.units_failed),
        }
        self.counters.count_unit(work.name());
        outcome
    }

    /// One attempt, spawned on the database runtime with a deadline on its handle.
    async fn attempt<W: UnitOfWork>(self: Arc<Self>, work: Arc<W>) -> Result<W::Output, Failure> {
        let cancel_slot: Arc<Mutex<Option<tokio_postgres::CancelToken>>> = Arc::default();
        let (checked_out, on_checkout) = tokio::sync::oneshot::channel::<()>();
        let mut task = {
            let core = self.clone();
            let cancel_slot = cancel_slot.clone();
            self.runtime.spawn(async move {
                core.run_on_connection(&*work, &cancel_slot, checked_out)
                    .await
            })
        };
        // Two clocks: the checkout is bounded by the pool's own timeout (plus a little for
        // scheduling); the unit's time on its connection by `DB_QUERY_TIMEOUT_MS` from the
        // moment it holds one.
        let checkout_limit = self.settings.pool_timeout + CHECKOUT_SLACK;
        let deadline = self.settings.pool_timeout + self.settings.query_timeout;
        let outcome = match tokio::time::timeout(checkout_limit, async {
            tokio::select! {
                biased;
                joined = &mut task => Some(joined),
                _ = on_checkout => None,
            }
        })
        .await
        {
            Ok(Some(joined)) => Ok(joined),
            Ok(None) => tokio::time::timeout(self.settings.query_timeout, &mut task).await,
            Err(elapsed) => Err(elapsed),
        };
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) if join_error.is_panic() => {
                Counters::bump(&self.counters.panics);
                tracing::error!("database unit of work panicked; the connection was discarded");
                Err(Failure::Panicked)
            }
            Ok(Err(_cancelled)) => Err(Failure::Transient {
                reason: "the database runtime is shutting down".into(),
                safe_to_retry: false,
            }),
            Err(_elapsed) => {
                // The task is detached, not dropped: it finishes (or is cancelled server-side)
                // and returns its connection by itself.
                Counters::bump(&self.counters.deadlines_exceeded);
                let token = cancel_slot
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take();
                if let Some(token) = token {
                    self.runtime.spawn(async move {
                        if let Err(error) = token.cancel_query(tokio_postgres::NoTls).await {
                            tracing::warn!(%error, "could not cancel a timed-out query");
                        }
                    });
                }
                Err(Failure::Deadline(deadline))
            }
        }
    }

    async fn run_on_connection<W: UnitOfWork>(
        &self,
        work: &W,
        cancel_slot: &Mutex<Option<tokio_postgres::CancelToken>>,
        checked_out: tokio::sync::oneshot::Sender<()>,
    ) -> Result<W::Output, Failure> {
        self.counters
            .waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let checkout = self.pool.checkout().await;
        self.counters
            .waiting
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(mut checkout) = checkout else {
            Counters::bump(&self.counters.checkout_timeouts);
            let cause = self
                .counters
                .last_connection_error()
                .map(|error| format!(" (last connection error: {error})"))
                .unwrap_or_default();
            return Err(Failure::Transient {
                reason: format!(
                    "no connection available within {:?}{cause}",
                    self.settings.pool_timeout
                ),
                safe_to_retry: true,
            });
        };
        *cancel_slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = checkout.cancel_token();
        // The caller's second clock starts now (it may have stopped waiting; then no one hears).
        let _ = checked_out.send(());
        let hold = self.counters.hold();
        let result = run_unit(checkout.conn(), work).await;
        drop(checkout);
        drop(hold);
        result.map_err(|(phase, error)| classify(phase, error))
    }
}

/// Runs the work, in one transaction when it asks for one.
async fn run_unit<W: UnitOfWork>(
    mut conn: DbConn<'_>,
    work: &W,
) -> Result<W::Output, (Phase, WorkError)> {
    if !work.transactional() {
        return work.run(conn).await.map_err(|error| (Phase::Work, error));
    }
    begin(conn.reborrow())
        .await
        .map_err(|error| (Phase::Begin, error.into()))?;
    match work.run(conn.reborrow()).await {
        Ok(output) => {
            commit(conn)
                .await
                .map_err(|error| (Phase::Commit, error.into()))?;
            Ok(output)
        }
        Err(error) => {
            // A failed rollback marks the connection broken; bb8 then discards it.
            if let Err(rollback_error) = rollback(conn).await {
                tracing::debug!(error = %rollback_error, "rollback failed");
            }
            Err((Phase::Work, error))
        }
    }
}

use crate::db::transaction::{begin, commit, rollback};
