//! Each upstream's link: its pooled (shared) connection, breaker and concurrency limit. For a
//! stdio upstream the shared connection is its shared process: made again when it exited (after
//! a backoff that grows while it keeps dying soon after starting), restarted at once when it
//! died, and stopped when the upstream is deleted or disabled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::federation::HealthReport;
use crate::breaker::Breaker;
use crate::upstream::process::{Exit, Processes, Role};
use crate::upstream::{CallError, ClientEnd, Connection, Target};

/// The longest a new connection waits for its upstream's notification stream to open.
const STREAM_OPENING: Duration = Duration::from_secs(2);

/// The first wait before a process that died is started again; it doubles with each death
/// soon after a start, up to [`MAX_RESTART_DELAY`].
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(250);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// A process that ran this long before dying starts its backoff afresh.
const STABLE_RUN: Duration = Duration::from_secs(60);
/// Deaths in a row after which a process is no longer restarted at once, only when next used.
const EAGER_RESTARTS: u32 = 5;

/// How a stdio upstream's process has been dying.
#[derive(Default)]
struct Restarts {
    /// Deaths in a row, each soon after its start.
    deaths: u32,
    /// When the last process started.
    started: Option<Instant>,
}

impl Restarts {
    /// Counts a death; how long to wait before the next start.
    fn died(&mut self) -> Duration {
        if self
            .started
            .is_some_and(|started| started.elapsed() >= STABLE_RUN)
        {
            self.deaths = 0;
        }
        self.deaths += 1;
        FIRST_RESTART_DELAY
            .saturating_mul(1 << (self.deaths - 1).min(16))
            .min(MAX_RESTART_DELAY)
    }
}

/// Users' own connections kept per upstream at most; past it, another's is let go (it is made
/// again when that user calls).
const USER_CONNECTIONS: usize = 256;

/// One user's connection with an upstream.
type UserSlot = Arc<tokio::sync::Mutex<Option<(Arc<Target>, Arc<Connection>)>>>;

/// One upstream's pooled connection, breaker and concurrency limit.
pub(super) struct Link {
    gateway_id: String,
    changes: Option<tokio::sync::mpsc::Sender<String>>,
    health: Option<tokio::sync::mpsc::Sender<HealthReport>>,
    processes: Arc<Processes>,
    /// Whether its calls reported it down (and no answer since).
    down: AtomicBool,
    /// The upstream was deleted or disabled: nothing is started for it any more.
    forgotten: AtomicBool,
    pub(super) unhealthy_threshold: u32,
    connection: tokio::sync::Mutex<Option<(Arc<Target>, Arc<Connection>)>>,
    /// Users' own connections, for an upstream that authenticates each user (by email).
    users: dashmap::DashMap<String, UserSlot>,
    restarts: Mutex<Restarts>,
    breaker: Mutex<Breaker>,
    pub(super) limit: tokio::sync::Semaphore,
}

impl Link {
    /// The live connection, made again when there is none, the target changed or (a stdio
    /// upstream's process) it ended. A new connection follows the upstream's change
    /// notifications.
    pub(super) async fn connection(
        self: &Arc<Self>,
        client: &crate::egress::HttpClient,
        target: &Arc<Target>,
    ) -> Result<Arc<Connection>, CallError> {
        let mut slot = self.connection.lock().await;
        if let Some((known, connection)) = slot.as_ref()
            && (Arc::ptr_eq(known, target) || known == target)
            && connection.ended().is_none()
        {
            return Ok(connection.clone());
        }
        if self.forgotten.load(Ordering::Acquire) {
            return Err(CallError::Transport("the upstream was removed".into()));
        }
        let died = slot
            .as_ref()
            .is_some_and(|(_, old)| matches!(old.ended(), Some(Exit::Died(_))));
        if died {
            let delay = lock(&self.restarts).died();
            tracing::info!(gateway.id = %self.gateway_id, delay_ms = delay.as_millis() as u64, "restarting a stdio upstream's process");
            tokio::time::sleep(delay).await;
        }
        // Whatever the old connection was, it ends here (a replaced process stops).
        if let Some((_, old)) = slot.take() {
            old.close().await;
        }
        let connection = Arc::new(self.open(client, target, None).await?);
        if let Some(exited) = connection.exited() {
            lock(&self.restarts).started = Some(Instant::now());
            self.restart_when_dead(exited, client, target);
        }
        *slot = Some((target.clone(), connection.clone()));
        Ok(connection)
    }

    /// A user's own connection (an upstream that authenticates each user: their token on a
    /// session of theirs), made again when their token changed.
    pub(super) async fn user_connection(
        &self,
        client: &crate::egress::HttpClient,
        target: &Arc<Target>,
        user: &str,
    ) -> Result<Arc<Connection>, CallError> {
        let slot = match self.users.get(user) {
            Some(slot) => slot.clone(),
            None => {
                if self.users.len() >= USER_CONNECTIONS
                    && let Some(other) = self.users.iter().next().map(|entry| entry.key().clone())
                {
                    self.users.remove(&other);
                }
                self.users.entry(user.to_owned()).or_default().clone()
            }
        };
        let mut held = slot.lock().await;
        if let Some((known, connection)) = held.as_ref()
            && known == target
        {
            return Ok(connection.clone());
        }
        if let Some((_, old)) = held.take() {
            old.close().await;
        }
        let connection = Arc::new(self.open(client, target, None).await?);
        *held = Some((target.clone(), connection.clone()));
        Ok(connection)
    }

    /// Forgets a user's connection if it is still `stale`.
    pub(super) async fn reset_user(&self, user: &str, stale: &Arc<Connection>) {
        let Some(slot) = self.users.get(user).map(|slot| slot.clone()) else {
            return;
        };
        let mut held = slot.lock().await;
        if held
            .as_ref()
            .is_some_and(|(_, current)| Arc::ptr_eq(current, stale))
        {
            *held = None;
        }
    }

    /// Starts the shared process again (after its backoff) when it dies, unless it keeps dying.
    fn restart_when_dead(
        self: &Arc<Self>,
        exited: futures_util::future::BoxFuture<'static, Exit>,
        client: &crate::egress::HttpClient,
        target: &Arc<Target>,
    ) {
        let link = Arc::downgrade(self);
        let (client, target) = (client.clone(), target.clone());
        tokio::spawn(async move {
            let Exit::Died(_) = exited.await else {
                return;
            };
            let Some(link) = link.upgrade() else {
                return;
            };
            if link.forgotten.load(Ordering::Acquire)
                || lock(&link.restarts).deaths >= EAGER_RESTARTS
            {
                return;
            }
            if let Err(error) = link.connection(&client, &target).await {
                tracing::warn!(gateway.id = %link.gateway_id, %error, "a stdio upstream's process could not be restarted");
            }
        });
    }

    /// A new connection to the upstream (for `client` alone, when given), following the
    /// upstream's change notifications.
    pub(super) async fn open(
        &self,
        client: &crate::egress::HttpClient,
        target: &Arc<Target>,
        owner: Option<Arc<dyn ClientEnd>>,
    ) -> Result<Connection, CallError> {
        let role = if owner.is_some() {
            Role::Client
        } else {
            Role::Shared
        };
        let mut connection =
            Connection::connect(client.clone(), &self.processes, Target::clone(target), role)
                .await?;
        if let Some(owner) = owner {
            connection.dedicate(owner);
        }
        if let Some(changes) = &self.changes {
            let changes = changes.clone();
            let gateway_id = self.gateway_id.clone();
            let opened = connection.watch(Arc::new(move || {
                let _ = changes.try_send(gateway_id.clone());
            }));
            // What a session-era upstream says on its GET stream about the first call must not
            // be lost to a stream still opening (bounded: a slow stream delays one call only).
            let _ = tokio::time::timeout(STREAM_OPENING, opened).await;
        }
        Ok(connection)
    }

    /// The upstream's id.
    pub(super) fn gateway_id(&self) -> &str {
        &self.gateway_id
    }

    /// Forgets the connection if it is still `stale` (so the next call reconnects). One that
    /// ended (a process that exited) stays until it is replaced: how it ended sets the wait.
    pub(super) async fn reset(&self, stale: &Arc<Connection>) {
        let mut slot = self.connection.lock().await;
        if stale.ended().is_none()
            && slot
                .as_ref()
                .is_some_and(|(_, current)| Arc::ptr_eq(current, stale))
        {
            *slot = None;
        }
    }

    /// Whether its shared connection is resting: none made yet, or ended by the gateway (a
    /// stdio upstream's process stopped as idle), rather than running, being made, or dead.
    fn resting(&self) -> bool {
        match self.connection.try_lock() {
            Ok(slot) => match slot.as_ref() {
                None => true,
                Some((_, connection)) => connection.ended() == Some(Exit::Stopped),
            },
            Err(_) => false,
        }
    }

    /// Tells the federation service when calls show the upstream went down or came back
    /// (only transitions: a call that agrees with what was last told tells nothing).
    pub(super) fn report(&self, reachable: bool, error: Option<String>) {
        let changed = self.down.swap(!reachable, Ordering::AcqRel) == reachable;
        if let (true, Some(health)) = (changed, &self.health) {
            let _ = health.try_send(HealthReport {
                gateway_id: self.gateway_id.clone(),
                reachable,
                error,
            });
        }
    }

    pub(super) fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        lock(&self.breaker)
    }

    /// Another replica's calls showed the upstream went down (its breaker opens here: calls
    /// fail at once until a probe after the reset time) or came back (it closes). Nothing is
    /// reported again.
    fn heard(&self, reachable: bool) {
        self.down.store(!reachable, Ordering::Release);
        let mut breaker = self.breaker();
        if reachable {
            breaker.close_now();
        } else {
            breaker.open_now(std::time::Instant::now());
        }
    }
}

/// Every upstream's link, shared by the actor (which reports their breakers) and the
/// [`super::Upstream`] handles that forward calls on their own threads.
pub(super) struct Links {
    settings: crate::config::FederationSettings,
    changes: Option<tokio::sync::mpsc::Sender<String>>,
    health: Option<tokio::sync::mpsc::Sender<HealthReport>>,
    pub(super) processes: Arc<Processes>,
    pub(super) links: dashmap::DashMap<String, Arc<Link>>,
}

impl Links {
    pub(super) fn new(
        settings: crate::config::FederationSettings,
        changes: Option<tokio::sync::mpsc::Sender<String>>,
        health: Option<tokio::sync::mpsc::Sender<HealthReport>>,
    ) -> Self {
        Links {
            processes: Processes::new(settings.stdio.clone()),
            settings,
            changes,
            health,
            links: dashmap::DashMap::new(),
        }
    }

    /// The link of an upstream, made on first use.
    pub(super) fn link(&self, gateway_id: &str, name: &str) -> Arc<Link> {
        if let Some(link) = self.links.get(gateway_id) {
            return link.value().clone();
        }
        let settings = &self.settings;
        self.links
            .entry(gateway_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Link {
                    gateway_id: gateway_id.to_owned(),
                    changes: self.changes.clone(),
                    health: self.health.clone(),
                    processes: self.processes.clone(),
                    down: AtomicBool::new(false),
                    forgotten: AtomicBool::new(false),
                    unhealthy_threshold: settings.unhealthy_threshold,
                    connection: tokio::sync::Mutex::new(None),
                    users: dashmap::DashMap::new(),
                    restarts: Mutex::default(),
                    breaker: Mutex::new(Breaker::new(
                        format!("upstream {name}"),
                        true,
                        settings.circuit_failure_threshold,
                        settings.circuit_reset,
                    )),
                    limit: tokio::sync::Semaphore::new(settings.max_concurrency),
                })
            })
            .clone()
    }

    /// Applies another replica's news of an upstream's health (see [`Link::heard`]).
    pub(super) fn heard(&self, gateway_id: &str, name: &str, reachable: bool) {
        self.link(gateway_id, name).heard(reachable);
    }

    /// Whether an upstream's shared connection is resting (see [`Link::resting`]).
    pub(super) fn resting(&self, gateway_id: &str) -> bool {
        self.links.get(gateway_id).is_none_or(|link| link.resting())
    }

    /// Forgets an upstream that was deleted or disabled: its shared connection ends (a
    /// session's DELETE, a process stopped), as does every process of its clients; nothing is
    /// started for it again until it is used anew.
    pub(super) async fn forget(&self, gateway_id: &str) {
        if let Some((_, link)) = self.links.remove(gateway_id) {
            link.forgotten.store(true, Ordering::Release);
            let shared = link.connection.lock().await.take();
            if let Some((_, connection)) = shared {
                connection.close().await;
            }
        }
        self.processes.stop(Some(gateway_id)).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
