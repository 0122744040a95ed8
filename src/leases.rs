//! Concurrency quotas shared by every replica, through Redis (`REDIS_URL`). A long-lived
//! resource a principal holds (a stream, a session, a parked call, an upstream session of their
//! own) is a lease in a sorted set per principal and kind: the member names the resource, its
//! score is when the lease runs out. Taking one is one atomic script (drop the run-out leases,
//! count, add if below the limit) on Redis's clock; the replica that holds a lease renews it
//! every few seconds and removes it when the resource goes. A replica that dies stops renewing:
//! its leases run out within [`LEASE_TTL`], so a crash cannot keep a principal's places taken.
//!
//! Redis is the second line: each replica first counts in its own process (`crate::quota`),
//! and while Redis cannot answer (not connected yet, slow past [`SHARED_TIMEOUT`]) only that
//! count applies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::config::ClusterSettings;

/// How long a lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// How often held leases are renewed.
const RENEW_EVERY: Duration = Duration::from_secs(10);

/// How long taking a lease waits for Redis before the local count alone decides.
const SHARED_TIMEOUT: Duration = Duration::from_millis(250);

/// Takes a lease: KEYS[1] the principal's set of this kind; ARGV: member, limit (0: no limit,
/// the resource exists already), lease milliseconds, then members given back here whose
/// removal may not have arrived yet (removed first). Answers -1 when taken (or renewed), else
/// how many leases the principal holds.
const TAKE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for i = 4, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[2])
if limit > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local held = redis.call('ZCARD', KEYS[1])
  if held >= limit then return held end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return -1
";

/// Renews leases this replica holds: KEYS their sets, ARGV (member, …) then the lease
/// milliseconds last. A lease Redis lost (a restart without persistence) is added back: what
/// is held here counts again. (A session another replica ended is ended here too, which stops
/// the renewal and removes it again.)
const RENEW: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[#ARGV])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i])
  redis.call('PEXPIRE', key, ttl)
end
return 0
";

/// What Redis said.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The lease is held (renewed until dropped).
    Yes(Lease),
    /// The principal holds this many already (at the limit).
    Refused(u64),
    /// Redis did not answer: the local count alone decides.
    Unknown,
}

/// The shared leases of this replica.
pub struct Leases {
    prefix: String,
    connection: Arc<tokio::sync::OnceCell<redis::aio::ConnectionManager>>,
    take: redis::Script,
    renew: redis::Script,
    /// The leases held here, renewed until dropped: (key, member).
    held: Mutex<HashMap<u64, (String, String)>>,
    /// Leases given back here whose removal is on its way: (key, member).
    releasing: Mutex<Vec<(String, String)>>,
    next: AtomicU64,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// One lease held by this replica: renewed while it lives; removed from Redis when dropped if
/// it was the resource's only holder (else it runs out once no replica renews it).
#[derive(Debug)]
pub struct Lease {
    leases: Weak<Leases>,
    slot: u64,
    release: bool,
}

impl PartialEq for Lease {
    fn eq(&self, other: &Self) -> bool {
        self.slot == other.slot && Weak::ptr_eq(&self.leases, &other.leases)
    }
}

impl Eq for Lease {}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(leases) = self.leases.upgrade() else {
            return;
        };
        let Some((key, member)) = lock(&leases.held).remove(&self.slot) else {
            return;
        };
        if self.release {
            leases.remove(key, member);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Leases {
    /// Shared leases when `REDIS_URL` is set (a task connects, and keeps trying until it can;
    /// another renews what is held). Must run inside a Tokio runtime.
    pub fn start(cluster: &ClusterSettings) -> Option<Arc<Self>> {
        let url = cluster.redis_url.as_ref()?;
        let leases = Arc::new(Leases {
            prefix: format!("{}quota:", cluster.redis_key_prefix),
            connection: crate::ratelimit::connect_later(url, "concurrency quotas"),
            take: redis::Script::new(TAKE),
            renew: redis::Script::new(RENEW),
            held: Mutex::default(),
            releasing: Mutex::default(),
            next: AtomicU64::new(0),
        });
        let renewing = Arc::downgrade(&leases);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RENEW_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(leases) = renewing.upgrade() else {
                    return;
                };
                leases.renew_all().await;
            }
        });
        Some(leases)
    }

    fn key(&self, kind: &str, principal: &str) -> String {
        format!("{}{kind}:{principal}", self.prefix)
    }

    /// Takes a lease on `member` of `principal`'s `kind`, refused past `limit` (`None`: the
    /// resource exists already and is only held here too).
    pub async fn take(
        self: &Arc<Self>,
        kind: &str,
        principal: &str,
        member: &str,
        limit: Option<usize>,
        release_on_drop: bool,
    ) -> Taken {
        let Some(connection) = self.connection.get() else {
            return Taken::Unknown;
        };
        let key = self.key(kind, principal);
        let mut invocation = self.take.key(&key);
        invocation
            .arg(member)
            .arg(limit.unwrap_or(0))
            .arg(LEASE_TTL.as_millis().to_string());
        // A place given back a moment ago is free, whether or not its removal arrived.
        for (_, releasing) in lock(&self.releasing)
            .iter()
            .filter(|(releasing_key, _)| *releasing_key == key)
        {
            invocation.arg(releasing);
        }
        let mut connection = connection.clone();
        let answer = tokio::time::timeout(
            SHARED_TIMEOUT,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok(-1)) => {
                let slot = self.next.fetch_add(1, Ordering::Relaxed);
                lock(&self.held).insert(slot, (key, member.to_owned()));
                Taken::Yes(Lease {
                    leases: Arc::downgrade(self),
                    slot,
                    release: release_on_drop,
                })
            }
            Ok(Ok(held)) => Taken::Refused(u64::try_from(held).unwrap_or(0)),
            // Each take would say so while Redis is away: the connection's own task warns.
            Ok(Err(error)) => {
                tracing::debug!(%error, "a shared quota not checked in Redis; counted here only");
                Taken::Unknown
            }
            Err(_) => {
                tracing::debug!("Redis slow to answer a shared quota; counted here only");
                Taken::Unknown
            }
        }
    }

    /// Removes `principal`'s lease on `member` (the resource ended, whoever holds it).
    pub fn end(self: &Arc<Self>, kind: &str, principal: &str, member: &str) {
        self.remove(self.key(kind, principal), member.to_owned());
    }

    fn remove(self: &Arc<Self>, key: String, member: String) {
        let Some(connection) = self.connection.get() else {
            return;
        };
        let mut connection = connection.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut releasing = lock(&self.releasing);
            // Bounded: past this, a removal still on its way is only a lease that runs out.
            if releasing.len() < 4096 {
                releasing.push((key.clone(), member.clone()));
            }
        }
        let leases = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut command = redis::cmd("ZREM");
            command.arg(&key).arg(&member);
            let removed = command.query_async::<i64>(&mut connection);
            if let Ok(Err(error)) = tokio::time::timeout(SHARED_TIMEOUT * 4, removed).await {
                tracing::debug!(%error, "a shared lease not removed (it runs out)");
            }
            if let Some(leases) = leases.upgrade() {
                lock(&leases.releasing).retain(|entry| *entry != (key.clone(), member.clone()));
            }
        });
    }

    /// Renews every lease held here, in batches.
    async fn renew_all(&self) {
        let Some(connection) = self.connection.get() else {
            return;
        };
        let held: Vec<(String, String)> = lock(&self.held).values().cloned().collect();
        for batch in held.chunks(500) {
            let mut invocation = self.renew.prepare_invoke();
            for (key, _) in batch {
                invocation.key(key);
            }
            for (_, member) in batch {
                invocation.arg(member);
            }
            invocation.arg(LEASE_TTL.as_millis().to_string());
            let mut connection = connection.clone();
            if let Err(error) = invocation.invoke_async::<i64>(&mut connection).await {
                tracing::warn!(%error, "shared leases not renewed; they run out unless renewed next time");
            }
        }
    }
}
