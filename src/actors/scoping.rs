//! The ScopingActor: answers "what may this user do" — their platform-admin flag, teams and
//! role grants — from a cache with a time to live and explicit invalidation.
//!
//! A miss asks the DbActor for one short unit of work (`identity.load`), and concurrent
//! misses for the same user wait for that one load: a burst of requests from a user whose
//! entry expired costs one checkout, not one per request. When the database cannot answer, a
//! stale entry is served rather than failing the request. Nothing here holds a connection.
//!
//! The actor publishes its fresh entries in a concurrent map that the [`Scoping`] handle reads
//! on the caller's thread: a request whose user is cached sends no message at all. Only the
//! actor writes the map (loads, invalidations), so its rules — one load per user at a time, a
//! load that raced an invalidation is not cached — hold as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::db::Db;
use crate::auth::AuthError;
use crate::auth::rbac::Grants;
use crate::db::identity::{IdentityRows, LoadIdentity};

/// How long a caller waits for the actor before answering 503.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A user's grants, or `None` when the account does not exist or is disabled.
pub type GrantsLookup = Result<Option<Arc<Grants>>, AuthError>;

/// The entries the actor publishes, read by handlers without a message.
#[derive(Default)]
struct Published {
    cache: dashmap::DashMap<String, (Option<Arc<Grants>>, Instant)>,
    /// Answers from a fresh entry, counted where they are read.
    hits: AtomicU64,
}

impl Published {
    /// A fresh entry, if there is one.
    fn fresh(&self, email: &str, ttl: Duration) -> Option<Option<Arc<Grants>>> {
        let entry = self.cache.get(email)?;
        let (grants, at) = entry.value();
        (at.elapsed() < ttl).then(|| grants.clone())
    }
}

/// The actor.
pub struct ScopingActor {
    db: Db,
    ttl: Duration,
    cache: Arc<Published>,
    loading: HashMap<String, Vec<oneshot::Sender<GrantsLookup>>>,
    /// Bumped by every invalidation: a load that started before one is not cached.
    epoch: u64,
    stats: ScopingStats,
}

/// Cache figures, for tests and `/metrics`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct ScopingStats {
    /// Answers from a fresh cache entry.
    pub hits: u64,
    /// Lookups that found no fresh entry.
    pub misses: u64,
    /// Loads from the database (each one unit of work).
    pub loads: u64,
    /// Stale entries served because the database could not answer.
    pub stale_served: u64,
    /// Entries in the cache.
    pub entries: u64,
}

impl Actor for ScopingActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Supervised for ScopingActor {}

/// What may this user do?
pub struct GetGrants {
    /// The user's email.
    pub email: String,
}

impl Message for GetGrants {
    type Result = GrantsLookup;
}

/// Forget cached grants: of one user, or of everyone (`None`), after a change.
pub struct Invalidate(pub Option<String>);

impl Message for Invalidate {
    type Result = ();
}

/// The cache figures.
pub struct GetScopingStats;

impl Message for GetScopingStats {
    type Result = ScopingStats;
}

/// Builds a user's grants from the stored rows; a disabled account has none.
fn grants_of(rows: IdentityRows) -> Option<Arc<Grants>> {
    if !rows.user.is_active {
        return None;
    }
    let teams: BTreeMap<String, String> = rows
        .memberships
        .into_iter()
        .map(|member| (member.team_id, member.role))
        .collect();
    let assignments: Vec<(String, String)> = rows
        .roles
        .into_iter()
        .map(|row| (row.role, row.scope))
        .collect();
    let mut grants =
        Grants::from_assignments(rows.user.is_admin, rows.personal_team, teams, &assignments);
    grants.account = crate::auth::rbac::Account {
        id: rows.user.id,
        created_at: Some(rows.user.created_at),
        tokens_valid_after: rows.user.tokens_valid_after,
    };
    Some(Arc::new(grants))
}

impl Handler<GetGrants> for ScopingActor {
    type Result = ResponseFuture<GrantsLookup>;

    fn handle(&mut self, message: GetGrants, ctx: &mut Context<Self>) -> Self::Result {
        let email = message.email;
        // Loaded while the message waited.
        if let Some(grants) = self.cache.fresh(&email, self.ttl) {
            self.cache.hits.fetch_add(1, Ordering::Relaxed);
            return Box::pin(async move { Ok(grants) });
        }
        self.stats.misses += 1;
        let (sender, receiver) = oneshot::channel();
        match self.loading.get_mut(&email) {
            Some(waiters) => waiters.push(sender),
            None => {
                self.loading.insert(email.clone(), vec![sender]);
                self.stats.loads += 1;
                let db = self.db.clone();
                let started_epoch = self.epoch;
                let unit = LoadIdentity {
                    email: email.clone(),
                };
                let load = async move { db.run(unit).await };
                ctx.spawn(load.into_actor(self).map(move |outcome, actor, _ctx| {
                    let answer: GrantsLookup = match outcome {
                        Ok(rows) => {
                            let grants = rows.and_then(grants_of);
                            if actor.epoch == started_epoch {
                                actor
                                    .cache
                                    .cache
                                    .insert(email.clone(), (grants.clone(), Instant::now()));
                            }
                            Ok(grants)
                        }
                        Err(error) => match actor.cache.cache.get(&email) {
                            Some(entry) => {
                                tracing::warn!(%error, "identity load failed; serving cached grants");
                                actor.stats.stale_served += 1;
                                Ok(entry.value().0.clone())
                            }
                            None => {
                                tracing::warn!(%error, "identity load failed");
                                Err(AuthError::Unavailable)
                            }
                        },
                    };
                    for waiter in actor.loading.remove(&email).unwrap_or_default() {
                        let _ = waiter.send(answer.clone());
                    }
                }));
            }
        }
        Box::pin(async move { receiver.await.unwrap_or(Err(AuthError::Unavailable)) })
    }
}

impl Handler<Invalidate> for ScopingActor {
    type Result = ();

    fn handle(&mut self, message: Invalidate, _ctx: &mut Context<Self>) {
        self.epoch += 1;
        match message.0 {
            Some(email) => {
                self.cache.cache.remove(&email);
            }
            None => self.cache.cache.clear(),
        }
    }
}

impl Handler<GetScopingStats> for ScopingActor {
    type Result = MessageResult<GetScopingStats>;

    fn handle(&mut self, _message: GetScopingStats, _ctx: &mut Context<Self>) -> Self::Result {
        let mut stats = self.stats;
        stats.hits = self.cache.hits.load(Ordering::Relaxed);
        stats.entries = self.cache.cache.len() as u64;
        MessageResult(stats)
    }
}

/// A handle to the ScopingActor.
#[derive(Clone)]
pub struct Scoping {
    addr: Addr<ScopingActor>,
    published: Arc<Published>,
    ttl: Duration,
    /// Other replicas, told whose grants changed.
    cluster: crate::cluster::Cluster,
}

impl Scoping {
    /// Starts the supervised actor; cached grants live for `ttl`.
    pub fn start(db: Db, ttl: Duration, cluster: crate::cluster::Cluster) -> Self {
        let published = Arc::new(Published::default());
        let cache = published.clone();
        let addr = Supervisor::start(move |_| ScopingActor {
            db,
            ttl,
            cache: cache.clone(),
            loading: HashMap::new(),
            epoch: 0,
            stats: ScopingStats::default(),
        });
        Scoping {
            addr,
            published,
            ttl,
            cluster,
        }
    }

    /// A user's grants (`None`: no such user, or disabled): from the published cache on this
    /// thread, or from the actor, which loads them.
    pub async fn grants(&self, email: &str) -> GrantsLookup {
        if let Some(grants) = self.published.fresh(email, self.ttl) {
            self.published.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(grants);
        }
        self.addr
            .send(GetGrants {
                email: email.to_owned(),
            })
            .timeout(REPLY_TIMEOUT)
            .await
            .map_err(|_| AuthError::Unavailable)?
    }

    /// Forgets a user's cached grants (`None`: everyone's) after a change made here, here and
    /// on every other replica.
    pub async fn invalidate(&self, email: Option<String>) {
        self.cluster.publish(crate::cluster::Event::Grants {
            email: email.clone(),
        });
        self.invalidate_here(email).await;
    }

    /// Forgets cached grants on this replica only (another replica changed them).
    pub async fn invalidate_here(&self, email: Option<String>) {
        let _ = self.addr.send(Invalidate(email)).await;
    }

    /// The cache figures.
    pub async fn stats(&self) -> ScopingStats {
        self.addr.send(GetScopingStats).await.unwrap_or_default()
    }
}
