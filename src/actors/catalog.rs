//! The CatalogActor: rebuilds the in-memory [`Catalog`] from the database and publishes it.
//!
//! Readers never message the actor on the hot path: they read the latest published snapshot
//! from a `watch` channel (an `Arc` clone). Registry writes ask for a refresh and wait until a
//! snapshot that includes their write is published (read-your-writes); a timer refreshes
//! periodically so replicas converge. Each publish that changes something is broadcast as a
//! [`CatalogChange`] for list_changed and resource update notifications.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{broadcast, oneshot, watch};

use crate::actors::db::{Db, DbError};
use crate::catalog::{Catalog, CatalogChange};
use crate::db::catalog::LoadCatalog;
use crate::secrets::SecretBox;

/// How long a registry write waits for the catalog to include it.
const REFRESH_WAIT: Duration = Duration::from_secs(5);

/// A handle to the catalog: the published snapshot, change events and refresh requests.
#[derive(Clone)]
pub struct Catalogs {
    addr: Addr<CatalogActor>,
    snapshot: watch::Receiver<Arc<Catalog>>,
    changes: broadcast::Sender<CatalogChange>,
}

impl Catalogs {
    /// Loads the first snapshot (the gateway does not serve before it has one) and starts the
    /// actor.
    pub async fn start(
        db: Db,
        secrets: SecretBox,
        refresh_every: Duration,
    ) -> Result<Self, String> {
        let rows = db
            .run(LoadCatalog)
            .await
            .map_err(|error| format!("cannot load the catalog: {error}"))?;
        let first_secrets = secrets.clone();
        let first = actix_web::web::block(move || Catalog::build(rows, &first_secrets))
            .await
            .map_err(|error| format!("cannot build the catalog: {error}"))?;
        let (publish, snapshot) = watch::channel(Arc::new(first));
        let (changes, _) = broadcast::channel(256);
        let actor = CatalogActor {
            db,
            secrets,
            publish,
            changes: changes.clone(),
            refresh_every,
            requested: 0,
            published: 0,
            loading: false,
            waiters: Vec::new(),
        };
        let addr = actor.start();
        Ok(Catalogs {
            addr,
            snapshot,
            changes,
        })
    }

    /// The latest snapshot.
    pub fn current(&self) -> Arc<Catalog> {
        self.snapshot.borrow().clone()
    }

    /// Change events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CatalogChange> {
        self.changes.subscribe()
    }

    /// Asks for a reload and waits (bounded) until a snapshot taken after this call is
    /// published. A failed or slow reload is logged, not returned: the write it follows has
    /// already been stored, and the periodic refresh catches up.
    pub async fn refresh(&self) {
        let (done, wait) = oneshot::channel();
        if self.addr.try_send(Refresh { done: Some(done) }).is_err() {
            tracing::warn!("catalog refresh not queued; the periodic refresh will catch up");
            return;
        }
        if tokio::time::timeout(REFRESH_WAIT, wait).await.is_err() {
            tracing::warn!("catalog refresh is slow; serving the previous snapshot meanwhile");
        }
    }
}

/// The actor's state.
pub struct CatalogActor {
    db: Db,
    secrets: SecretBox,
    publish: watch::Sender<Arc<Catalog>>,
    changes: broadcast::Sender<CatalogChange>,
    refresh_every: Duration,
    /// Refresh requests received so far.
    requested: u64,
    /// The request count covered by the published snapshot.
    published: u64,
    loading: bool,
    waiters: Vec<(u64, oneshot::Sender<()>)>,
}

impl Actor for CatalogActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(self.refresh_every, |_, ctx| {
            ctx.notify(Refresh { done: None });
        });
    }
}

/// Reload the catalog; `done` is told once a snapshot taken after the request is published.
pub struct Refresh {
    done: Option<oneshot::Sender<()>>,
}

impl Message for Refresh {
    type Result = ();
}

impl Handler<Refresh> for CatalogActor {
    type Result = ();

    fn handle(&mut self, message: Refresh, ctx: &mut Context<Self>) {
        self.requested += 1;
        if let Some(done) = message.done {
            self.waiters.push((self.requested, done));
        }
        self.load(ctx);
    }
}

impl CatalogActor {
    /// Starts a load unless one is running; a running load is followed by another if requests
    /// arrived after it began.
    fn load(&mut self, ctx: &mut Context<Self>) {
        if self.loading {
            return;
        }
        self.loading = true;
        let covers = self.requested;
        let db = self.db.clone();
        let secrets = self.secrets.clone();
        let work = async move {
            let rows = db.run(LoadCatalog).await?;
            actix_web::web::block(move || Catalog::build(rows, &secrets))
                .await
                .map_err(|error| DbError::Internal(format!("catalog build failed: {error}")))
        };
        ctx.spawn(work.into_actor(self).map(move |outcome, actor, ctx| {
            actor.loading = false;
            match outcome {
                Ok(catalog) => {
                    actor.publish(catalog, covers);
                    // Requests that arrived during this load need a load that began after them.
                    if actor.waiters.iter().any(|(n, _)| *n > actor.published) {
                        actor.load(ctx);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "catalog refresh failed; keeping the previous snapshot");
                    // Release the waiters now (their writes are stored); the periodic refresh
                    // retries, so a database outage does not turn into a reload loop.
                    actor.waiters.clear();
                }
            }
        }));
    }

    fn publish(&mut self, catalog: Catalog, covers: u64) {
        let change = catalog.changes_since(&self.publish.borrow());
        self.publish.send_replace(Arc::new(catalog));
        self.published = covers;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            self.waiters.drain(..).partition(|(n, _)| *n <= covers);
        self.waiters = waiting;
        for (_, done) in ready {
            let _ = done.send(());
        }
        if !change.is_empty() {
            tracing::debug!(?change, "catalog changed");
            // No receivers is fine: nobody is listening.
            let _ = self.changes.send(change);
        }
    }
}
