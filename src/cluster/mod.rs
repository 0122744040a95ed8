//! Replicas of one gateway: what one changes, the others apply at once.
//!
//! Every replica keeps in memory what the hot path reads (the catalog snapshot, the revoked
//! token ids, accounts' grants), so a change stored by one replica must reach the others'
//! memory. A change is published as an [`Event`] on a bus — Redis pub/sub when `REDIS_URL` is
//! set, else PostgreSQL `LISTEN`/`NOTIFY` on the gateway's own database — and every other
//! replica applies it (`crate::actors::cluster`). A message can be lost while a replica is
//! disconnected from the bus: after every (re)connection a replica [`Received::Resync`]s
//! (reloads what it caches), and the periodic refreshes stay as a backstop.
//!
//! Publishing never waits: an event goes to a bounded outbox the bus task drains, so a slow or
//! absent bus never delays a request.

mod postgres_bus;
mod redis_bus;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::config::{Bus, ClusterSettings, DatabaseUrl};
use crate::secrets::SecretBox;

/// The PostgreSQL notification channel every replica listens on (in Redis, the channel is
/// `REDIS_KEY_PREFIX` + `events`).
const CHANNEL: &str = "mcpgate_events";

/// Events waiting for the bus; more are dropped (and logged), the refresh catches up.
const OUTBOX: usize = 4096;

/// The largest catalog or grants event: a longer one becomes a reload (PostgreSQL refuses a
/// notification payload of 8000 bytes or more; its bus sends other events in parts of this
/// size).
const MAX_EVENT_BYTES: usize = 7000;

/// The largest event on the bus (a result for a stream another replica holds, say); larger
/// ones are dropped and logged.
const MAX_BUS_BYTES: usize = 4 * 1024 * 1024;

/// How old (or how far ahead, clocks differ) an event may be: an older one is a replay.
const MAX_EVENT_AGE_MS: i64 = 60_000;

/// How often a replica says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// Replicas remembered at most (each restart is a new id; the gone ones are forgotten first).
const MAX_PEERS: usize = 1024;

/// How long a replica not heard from counts as gone (its streams, its questions).
const GONE_AFTER: Duration = Duration::from_secs(7);

/// How long a bus waits before connecting again, at first and at most.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MOST: Duration = Duration::from_secs(5);

/// What kind of registry item a catalog event names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A tool.
    Tool,
    /// A resource or resource template.
    Resource,
    /// A prompt.
    Prompt,
    /// A virtual server.
    Server,
    /// An upstream.
    Gateway,
    /// Something deleted (an upstream with its items).
    Deleted,
}

/// A change one replica made that the others apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// These registry items changed: read them back and apply them to the catalog.
    Catalog {
        /// The items, in the order they were applied.
        items: Vec<(ItemKind, String)>,
    },
    /// Too much changed to name: reload the catalog.
    CatalogReload,
    /// A token id was revoked.
    Revoked {
        /// The token's `jti`.
        jti: String,
    },
    /// An account's grants (roles, teams, active) changed; `None`: everyone's.
    Grants {
        /// The account's email.
        email: Option<String>,
    },
    /// The sender is alive (sent every [`HEARTBEAT_EVERY`]; any event says as much), and
    /// where the others reach it (`CLUSTER_ADVERTISE_URL`; none: requests are not forwarded to it).
    Heartbeat {
        /// Its base URL for forwarded requests.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// Calls or health checks showed an upstream went down or came back.
    UpstreamHealth {
        /// The upstream.
        gateway_id: String,
        /// Whether it answers.
        reachable: bool,
    },
    /// Something about a session-era MCP session, which any replica may serve.
    Session {
        /// The session's id.
        id: String,
        /// What happened.
        change: SessionChange,
    },
}

/// What one replica tells the others about a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum SessionChange {
    /// A message for the session's stream, from a replica that does not hold it.
    Deliver(serde_json::Value),
    /// The client's answer to a request the gateway sent it (to whichever replica waits).
    Answer(serde_json::Value),
    /// The client cancelled one of its requests (`notifications/cancelled`), by request id.
    Cancel(serde_json::Value),
    /// The client's capabilities (a legacy SSE session learns them after its id is made).
    Capabilities(serde_json::Value),
    /// `logging/setLevel`.
    Level(String),
    /// `resources/subscribe`.
    Subscribe(String),
    /// `resources/unsubscribe`.
    Unsubscribe(String),
    /// A replica opened (`true`) or lost (`false`) the session's stream.
    Stream {
        /// That replica.
        holder: String,
        /// Whether it holds it now.
        open: bool,
    },
    /// The session ended (`DELETE`, its SSE stream closed).
    Ended,
}

/// What the bus hands a replica.
#[derive(Clone, Debug)]
pub enum Received {
    /// Another replica's change.
    Event(Event),
    /// The bus (re)connected: changes may have been missed, reload what is cached.
    Resync,
}

/// An event on the wire: who sent it and what. It travels as `<HMAC-SHA256 hex>.<JSON>`,
/// the MAC keyed by the encryption secret every replica shares: whoever else can publish on the
/// channel (another program with access to Redis or the database) cannot make a replica apply
/// anything — a forged answer to a client's question, a message on its stream.
#[derive(Serialize, Deserialize)]
struct Envelope {
    from: String,
    /// When it was sent (milliseconds since the epoch).
    at: i64,
    event: Event,
}

/// What the MAC of an event is for.
const MAC_PURPOSE: &str = "mcpgate replica bus v1";

/// The wire form of an envelope.
fn seal(secrets: &SecretBox, envelope: &Envelope) -> String {
    let encoded = serde_json::to_string(envelope).unwrap_or_default();
    format!("{}.{encoded}", secrets.mac(MAC_PURPOSE, &encoded))
}

/// The envelope a wire form carries, if its MAC is right.
fn open(secrets: &SecretBox, payload: &str) -> Result<Envelope, String> {
    use subtle::ConstantTimeEq;
    let (mac, encoded) = payload.split_once('.').ok_or_else(|| "no MAC".to_owned())?;
    let expected = secrets.mac(MAC_PURPOSE, encoded);
    if !bool::from(mac.as_bytes().ct_eq(expected.as_bytes())) {
        return Err("a wrong MAC (another deployment on the same channel, or a forgery)".into());
    }
    let envelope: Envelope = serde_json::from_str(encoded).map_err(|error| error.to_string())?;
    let age = chrono::Utc::now().timestamp_millis() - envelope.at;
    if age.abs() > MAX_EVENT_AGE_MS {
        return Err(format!(
            "sent {age} ms ago (a replay, or clocks too far apart)"
        ));
    }
    Ok(envelope)
}

/// This replica's end of the bus.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    replica: String,
    transport: &'static str,
    outbox: Option<mpsc::Sender<String>>,
    inbox: broadcast::Sender<Received>,
    /// Authenticates what is sent and received.
    secrets: Option<SecretBox>,
    /// Subscribed at start, so nothing received before the applier starts is lost.
    first: std::sync::Mutex<Option<broadcast::Receiver<Received>>>,
    /// Whether the bus is connected now.
    connected: Arc<AtomicBool>,
    /// Whether the first connection must resync too (it came after the start had loaded).
    late: Arc<AtomicBool>,
    /// Other replicas, by when they were last heard from.
    peers: Peers,
    /// Where the others reach this replica (known once it listens).
    address: std::sync::RwLock<Option<String>>,
}

/// Other replicas: when each was last heard from, and where it is reached.
type Peers = Arc<dashmap::DashMap<String, Peer>>;

/// What a replica knows of another.
#[derive(Clone, Debug)]
struct Peer {
    seen: std::time::Instant,
    address: Option<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("replica", &self.inner.replica)
            .field("transport", &self.inner.transport)
            .finish()
    }
}

impl Cluster {
    /// A replica alone: publishing goes nowhere.
    pub fn single() -> Self {
        let (inbox, _) = broadcast::channel(1);
        Cluster {
            inner: Arc::new(Inner {
                replica: new_replica_id(),
                transport: "none",
                outbox: None,
                inbox,
                secrets: None,
                first: std::sync::Mutex::new(None),
                connected: Arc::default(),
                late: Arc::default(),
                peers: Arc::default(),
                address: std::sync::RwLock::default(),
            }),
        }
    }

    /// Starts the bus the settings choose (its task connects, and connects again, on its own:
    /// the gateway serves while the bus is away).
    pub fn start(settings: &ClusterSettings, database: &DatabaseUrl, secrets: SecretBox) -> Self {
        let transport = match settings.bus {
            Bus::Redis => "redis",
            Bus::Postgres => "postgres",
            Bus::None | Bus::Auto => return Self::single(),
        };
        let (outbox, pending) = mpsc::channel(OUTBOX);
        let (inbox, first) = broadcast::channel(1024);
        let cluster = Cluster {
            inner: Arc::new(Inner {
                replica: new_replica_id(),
                transport,
                outbox: Some(outbox),
                inbox,
                secrets: Some(secrets.clone()),
                first: std::sync::Mutex::new(Some(first)),
                connected: Arc::default(),
                late: Arc::default(),
                peers: Arc::default(),
                address: std::sync::RwLock::default(),
            }),
        };
        let link = Link {
            replica: cluster.inner.replica.clone(),
            secrets,
            inbox: cluster.inner.inbox.clone(),
            connected: cluster.inner.connected.clone(),
            late: cluster.inner.late.clone(),
            connections: AtomicU64::new(0),
            peers: cluster.inner.peers.clone(),
        };
        // Alive, every few seconds, for as long as the cluster handle lives.
        let beating = Arc::downgrade(&cluster.inner);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT_EVERY);
            loop {
                every.tick().await;
                let Some(inner) = beating.upgrade() else {
                    return;
                };
                let address = inner
                    .address
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                Cluster { inner }.publish(Event::Heartbeat { address });
            }
        });
        match (settings.bus, &settings.redis_url, database) {
            (Bus::Redis, Some(url), _) => {
                let channel = format!("{}events", settings.redis_key_prefix);
                tokio::spawn(redis_bus::run(url.clone(), channel, link, pending));
            }
            (_, _, DatabaseUrl::Postgres(url)) => {
                tokio::spawn(postgres_bus::run(url.clone(), link, pending));
            }
            _ => tracing::error!("the cluster bus has nothing to connect to"),
        }
        tracing::info!(replica = %cluster.inner.replica, transport, "replica bus starting");
        cluster
    }

    /// This replica's id (random at each start).
    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// What carries events: `redis`, `postgres` or `none`.
    pub fn transport(&self) -> &'static str {
        self.inner.transport
    }

    /// Whether replica `id` has been heard from lately (this replica always is).
    pub fn alive(&self, id: &str) -> bool {
        id == self.inner.replica
            || self
                .inner
                .peers
                .get(id)
                .is_some_and(|peer| peer.seen.elapsed() < GONE_AFTER)
    }

    /// Says where the others reach this replica (from its next heartbeat on).
    pub fn set_address(&self, address: Option<String>) {
        *self
            .inner
            .address
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = address;
    }

    /// Where replica `id` is reached, while it is alive and said so.
    pub fn address_of(&self, id: &str) -> Option<String> {
        self.inner
            .peers
            .get(id)
            .filter(|peer| peer.seen.elapsed() < GONE_AFTER)
            .and_then(|peer| peer.address.clone())
    }

    /// The replica that takes over what `key` names (a session whose replica is gone): of this
    /// one and the live replicas that say where they are reached, the one ranked first for
    /// `key` (rendezvous hashing: every replica with the same view picks the same one, and the
    /// sessions of a gone replica spread evenly over the others).
    pub fn successor(&self, key: &str) -> String {
        use sha2::{Digest, Sha256};
        let rank = |replica: &str| {
            let mut hash = Sha256::new();
            hash.update(key.as_bytes());
            hash.update(b"\0");
            hash.update(replica.as_bytes());
            hash.finalize()
        };
        let me = self.inner.replica.clone();
        self.inner
            .peers
            .iter()
            .filter(|peer| peer.seen.elapsed() < GONE_AFTER && peer.address.is_some())
            .map(|peer| peer.key().clone())
            .chain(std::iter::once(me))
            .max_by_key(|replica| rank(replica))
            .unwrap_or_else(|| self.inner.replica.clone())
    }

    /// Signs and checks requests forwarded between replicas (none: a replica alone).
    pub fn secrets(&self) -> Option<&SecretBox> {
        self.inner.secrets.as_ref()
    }

    /// The other replicas heard from lately, with how long ago.
    pub fn peers(&self) -> Vec<(String, Duration)> {
        let mut peers: Vec<(String, Duration)> = self
            .inner
            .peers
            .iter()
            .map(|peer| (peer.key().clone(), peer.value().seen.elapsed()))
            .filter(|(_, ago)| *ago < GONE_AFTER)
            .collect();
        peers.sort();
        peers
    }

    /// Whether the bus is connected (a replica alone: never).
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Waits (at most `limit`) for the bus's first connection, so what the start loads next
    /// cannot miss an event; connected later, the bus has the replica reload what it cached.
    pub async fn wait_connected(&self, limit: Duration) {
        if self.inner.outbox.is_none() {
            return;
        }
        let started = tokio::time::Instant::now();
        while !self.connected() {
            if started.elapsed() >= limit {
                tracing::warn!(
                    ?limit,
                    "the replica bus is not connected yet; starting without it"
                );
                self.inner.late.store(true, Ordering::Release);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tells the other replicas (never waits; without a bus, nothing happens).
    pub fn publish(&self, event: Event) {
        let (Some(outbox), Some(secrets)) = (&self.inner.outbox, &self.inner.secrets) else {
            return;
        };
        let mut envelope = Envelope {
            from: self.inner.replica.clone(),
            at: chrono::Utc::now().timestamp_millis(),
            event,
        };
        let encoded = serde_json::to_string(&envelope).unwrap_or_default();
        // A long list of names is better sent as "everything"; other events go whole (the
        // PostgreSQL bus sends a large one in parts).
        if encoded.len() > MAX_EVENT_BYTES {
            let shorter = match &envelope.event {
                Event::Catalog { .. } => Some(Event::CatalogReload),
                Event::Grants { .. } => Some(Event::Grants { email: None }),
                _ => None,
            };
            if let Some(shorter) = shorter {
                envelope.event = shorter;
            }
        }
        let sealed = seal(secrets, &envelope);
        if sealed.len() > MAX_BUS_BYTES {
            tracing::warn!(
                bytes = sealed.len(),
                "replica event too large for the bus; dropped"
            );
            return;
        }
        if outbox.try_send(sealed).is_err() {
            tracing::warn!("replica bus outbox full; other replicas catch up at their refresh");
        }
    }

    /// What other replicas publish: the first caller gets everything since the start, later
    /// ones from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Received> {
        let first = self
            .inner
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        first.unwrap_or_else(|| self.inner.inbox.subscribe())
    }
}

fn new_replica_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// What a bus task needs: who it is (to skip its own events) and where events go.
struct Link {
    replica: String,
    secrets: SecretBox,
    inbox: broadcast::Sender<Received>,
    connected: Arc<AtomicBool>,
    late: Arc<AtomicBool>,
    connections: AtomicU64,
    peers: Peers,
}

impl Link {
    /// Hands on an event received from the bus, unless this replica sent it.
    fn received(&self, payload: &str) {
        match open(&self.secrets, payload) {
            Ok(envelope) if envelope.from == self.replica => {}
            Ok(envelope) => {
                if self.peers.len() >= MAX_PEERS {
                    self.peers
                        .retain(|_, peer| peer.seen.elapsed() < GONE_AFTER);
                }
                if self.peers.len() < MAX_PEERS || self.peers.contains_key(&envelope.from) {
                    let now = std::time::Instant::now();
                    let mut peer = self.peers.entry(envelope.from.clone()).or_insert(Peer {
                        seen: now,
                        address: None,
                    });
                    peer.seen = now;
                    if let Event::Heartbeat { address } = &envelope.event {
                        peer.address.clone_from(address);
                    }
                }
                if !matches!(envelope.event, Event::Heartbeat { .. }) {
                    let _ = self.inbox.send(Received::Event(envelope.event));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "replica event ignored")
            }
        }
    }

    /// The bus is (again) connected.
    /// After a reconnection (or a first connection the start did not wait for) what is
    /// cached is read again: events sent meanwhile were lost.
    fn connected(&self, transport: &str) {
        tracing::info!(transport, "replica bus connected");
        let first = self.connections.fetch_add(1, Ordering::AcqRel) == 0;
        if !first || self.late.load(Ordering::Acquire) {
            let _ = self.inbox.send(Received::Resync);
        }
        self.connected.store(true, Ordering::Release);
    }

    /// The bus connection was lost.
    fn disconnected(&self) {
        self.connected.store(false, Ordering::Release);
    }
}

/// The delay before the next connection attempt: doubling up to a ceiling.
fn next_delay(delay: Duration) -> Duration {
    (delay * 2).min(RECONNECT_MOST)
}

#[cfg(test)]
mod tests;
