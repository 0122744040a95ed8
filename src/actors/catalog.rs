//! The CatalogActor: rebuilds the in-memory [`Catalog`] from the database and publishes it.
//!
//! Readers never message the actor on the hot path: they read the latest published snapshot
//! from a `watch` channel (an `Arc` clone). A registry write sends its [`CatalogDelta`], which
//! the actor applies to the current snapshot in O(log n) and publishes before answering
//! (read-your-writes, at a cost that does not grow with the registry); a write that touches
//! many items (an upstream's discovery, an upstream disabled or served again) sends them all,
//! applied and published as one snapshot. A timer reloads periodically so replicas converge. A delta applied while a reload runs is
//! applied again on top of the reloaded snapshot, which may predate it. Each publish that
//! changes something is broadcast as a [`CatalogChange`] for list_changed and resource update
//! notifications.
//!
//! Other replicas learn of a write from the replica bus ([`crate::cluster`]): the writer
//! publishes the ids it applied, the others read those rows back and apply them the same way.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{broadcast, oneshot, watch};

use crate::actors::db::{Db, DbError};
use crate::catalog::{Catalog, CatalogChange, CatalogDelta};
use crate::cluster::{Cluster, Event, ItemKind};
use crate::db::catalog::{LoadCatalog, LoadCatalogItems};
use crate::secrets::SecretBox;

/// How long a registry write waits for the catalog to include it.
const REFRESH_WAIT: Duration = Duration::from_secs(5);

/// A handle to the catalog: the published snapshot, change events and refresh requests.
#[derive(Clone)]
pub struct Catalogs {
    addr: Addr<CatalogActor>,
    snapshot: watch::Receiver<Arc<Catalog>>,
    changes: broadcast::Sender<CatalogChange>,
    db: Db,
    cluster: Cluster,
}

impl Catalogs {
    /// Loads the first snapshot (the gateway does not serve before it has one) and starts the
    /// actor.
    pub async fn start(
        db: Db,
        secrets: SecretBox,
        refresh_every: Duration,
        cluster: Cluster,
    ) -> Result<Self, String> {
        let rows = db
            .run(LoadCatalog::all())
            .await
            .map_err(|error| format!("cannot load the catalog: {error}"))?;
        let first_secrets = secrets.clone();
        let first = actix_web::web::block(move || Catalog::build(rows, &first_secrets))
            .await
            .map_err(|error| format!("cannot build the catalog: {error}"))?;
        let (publish, snapshot) = watch::channel(Arc::new(first));
        let (changes, _) = broadcast::channel(256);
        let actor = CatalogActor {
            db: db.clone(),
            secrets,
            publish,
            changes: changes.clone(),
            refresh_every,
            requested: 0,
            published: 0,
            loading: false,
            waiters: Vec::new(),
            replay: Vec::new(),
        };
        let addr = actor.start();
        Ok(Catalogs {
            addr,
            snapshot,
            changes,
            db,
            cluster,
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

    /// Applies one registry write to the catalog and waits (bounded) until the snapshot with it
    /// is published.
    pub async fn apply(&self, delta: CatalogDelta) {
        self.apply_all(vec![delta]).await;
    }

    /// Applies several registry writes in order, published as one snapshot (a gateway's sync),
    /// and waits (bounded) until it is. Other replicas are told which items changed.
    pub async fn apply_all(&self, deltas: Vec<CatalogDelta>) {
        self.cluster.publish(Event::Catalog {
            items: deltas.iter().map(named).collect(),
        });
        self.apply_here(deltas).await;
    }

    /// Applies what another replica changed: reads the items it names back from the database
    /// (an absent one was deleted or disabled) and applies them in the order it did. When they
    /// cannot be read, the whole catalog is reloaded.
    pub async fn apply_remote(&self, items: Vec<(ItemKind, String)>) {
        let mut unit = LoadCatalogItems::default();
        for (kind, id) in &items {
            let ids = match kind {
                ItemKind::Tool => &mut unit.tools,
                ItemKind::Resource => &mut unit.resources,
                ItemKind::Prompt => &mut unit.prompts,
                ItemKind::Server => &mut unit.servers,
                ItemKind::Gateway => &mut unit.gateways,
                ItemKind::Deleted => continue,
            };
            ids.push(id.clone());
        }
        let rows = match self.db.run(unit).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "cannot read another replica's change; reloading the catalog");
                self.reload().await;
                return;
            }
        };
        let tools = by_id(rows.tools, |row| &row.id);
        let resources = by_id(rows.resources, |row| &row.id);
        let prompts = by_id(rows.prompts, |row| &row.id);
        let servers = by_id(rows.servers, |record| &record.row.id);
        let gateways = by_id(rows.gateways, |row| &row.id);
        let deltas = items
            .into_iter()
            .map(|(kind, id)| {
                let found = match kind {
                    ItemKind::Tool => tools.get(&id).cloned().map(CatalogDelta::Tool),
                    ItemKind::Resource => resources.get(&id).cloned().map(CatalogDelta::Resource),
                    ItemKind::Prompt => prompts.get(&id).cloned().map(CatalogDelta::Prompt),
                    ItemKind::Server => servers.get(&id).cloned().map(CatalogDelta::Server),
                    ItemKind::Gateway => gateways.get(&id).cloned().map(CatalogDelta::Gateway),
                    ItemKind::Deleted => None,
                };
                found.unwrap_or(CatalogDelta::Deleted(id))
            })
            .collect();
        self.apply_here(deltas).await;
    }

    /// Applies writes on this replica only.
    async fn apply_here(&self, deltas: Vec<CatalogDelta>) {
        let (done, wait) = oneshot::channel();
        if self.addr.try_send(Apply { deltas, done }).is_err() {
            tracing::warn!("catalog change not queued; the periodic refresh will catch up");
            return;
        }
        if tokio::time::timeout(REFRESH_WAIT, wait).await.is_err() {
            tracing::warn!("catalog change is slow; serving the previous snapshot meanwhile");
        }
    }

    /// Reloads here and on every other replica (after a write that cannot be named item by
    /// item).
    pub async fn refresh(&self) {
        self.cluster.publish(Event::CatalogReload);
        self.reload().await;
    }

    /// Asks for a reload and waits (bounded) until a snapshot taken after this call is
    /// published. A failed or slow reload is logged, not returned: the write it follows has
    /// already been stored, and the periodic refresh catches up.
    pub async fn reload(&self) {
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

/// Rows by their id.
fn by_id<R>(rows: Vec<R>, id: impl Fn(&R) -> &String) -> std::collections::HashMap<String, R> {
    rows.into_iter()
        .map(|row| (id(&row).clone(), row))
        .collect()
}

/// The item a write names, as other replicas are told of it.
fn named(delta: &CatalogDelta) -> (ItemKind, String) {
    match delta {
        CatalogDelta::Tool(row) => (ItemKind::Tool, row.id.clone()),
        CatalogDelta::Resource(row) => (ItemKind::Resource, row.id.clone()),
        CatalogDelta::Prompt(row) => (ItemKind::Prompt, row.id.clone()),
        CatalogDelta::Server(record) => (ItemKind::Server, record.row.id.clone()),
        CatalogDelta::Gateway(row) => (ItemKind::Gateway, row.id.clone()),
        CatalogDelta::Deleted(id) => (ItemKind::Deleted, id.clone()),
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
    /// Deltas applied while a reload runs: applied again to its snapshot.
    replay: Vec<CatalogDelta>,
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

/// Apply registry writes; `done` is told once the snapshot with them is published.
pub struct Apply {
    deltas: Vec<CatalogDelta>,
    done: oneshot::Sender<()>,
}

impl Message for Apply {
    type Result = ();
}

impl Handler<Apply> for CatalogActor {
    type Result = ();

    fn handle(&mut self, message: Apply, _ctx: &mut Context<Self>) {
        let current = self.publish.borrow().clone();
        if self.loading {
            self.replay.extend(message.deltas.iter().cloned());
        }
        let (next, change) = current.apply_all(message.deltas, &self.secrets);
        self.publish.send_replace(Arc::new(next));
        self.announce(change);
        let _ = message.done.send(());
    }
}

impl CatalogActor {
    fn announce(&self, change: CatalogChange) {
        if !change.is_empty() {
            tracing::debug!(?change, "catalog changed");
            // No receivers is fine: nobody is listening.
            let _ = self.changes.send(change);
        }
    }

    /// Starts a load unless one is running; a running load is followed by another if requests
    /// arrived after it began.
    fn load(&mut self, ctx: &mut Context<Self>) {
        if self.loading {
            return;
        }
        self.loading = true;
        self.replay.clear();
        let covers = self.requested;
        let db = self.db.clone();
        let secrets = self.secrets.clone();
        let work = async move {
            let rows = db.run(LoadCatalog::all()).await?;
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

    fn publish(&mut self, mut catalog: Catalog, covers: u64) {
        // Writes applied while the load ran may not be in what it read.
        for delta in self.replay.drain(..) {
            catalog = catalog.apply(delta, &self.secrets).0;
        }
        let change = catalog.changes_since(&self.publish.borrow());
        self.publish.send_replace(Arc::new(catalog));
        self.published = covers;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            self.waiters.drain(..).partition(|(n, _)| *n <= covers);
        self.waiters = waiting;
        for (_, done) in ready {
            let _ = done.send(());
        }
        self.announce(change);
    }
}
