//! Per-principal quotas on long-lived resources, with a global cap as the last line.
//!
//! A long-lived resource (an SSE stream, a legacy MCP session) is held by a [`Permit`]; the
//! permit gives its place back when dropped (the stream's body is dropped when the client goes
//! away). A principal past their quota gets a refusal that names the setting, while every other
//! principal still gets in.
//!
//! With `REDIS_URL` a quota is also shared: past the count in this process, a lease in Redis
//! ([`crate::leases`]) counts what the principal holds on every replica
//! ([`Quota::acquire_shared`]). Tool calls in flight are counted per replica only: taking a
//! lease would put a Redis round trip on every call (rate limits share the call budget).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::leases::{Lease, Leases, Taken};

/// One kind of long-lived resource and its limits.
#[derive(Debug)]
pub struct Quota {
    /// What is limited, for messages (`concurrent streams`).
    what: &'static str,
    /// The per-principal setting's name and value.
    per_principal: (&'static str, usize),
    /// The global setting's name and value.
    global: (&'static str, usize),
    held: Mutex<Held>,
    /// Where every replica counts (with `REDIS_URL`).
    leases: Option<Arc<Leases>>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_principal: HashMap<String, usize>,
}

/// A refusal: which limit, for a 429 (or 503 for the global cap) with `Retry-After`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaExceeded {
    /// What to tell the client.
    pub message: String,
    /// Whether it was the global cap (everyone is refused) rather than the principal's own.
    pub global: bool,
    /// When to try again.
    pub retry_after: Duration,
}

impl Quota {
    /// A quota of `per_principal` at once for each principal and `global` in all.
    pub fn new(
        what: &'static str,
        per_principal: (&'static str, usize),
        global: (&'static str, usize),
    ) -> Arc<Self> {
        Self::shared(what, per_principal, global, None)
    }

    /// A quota whose per-principal limit is also counted across replicas through `leases`.
    pub fn shared(
        what: &'static str,
        per_principal: (&'static str, usize),
        global: (&'static str, usize),
        leases: Option<Arc<Leases>>,
    ) -> Arc<Self> {
        Arc::new(Quota {
            what,
            per_principal,
            global,
            held: Mutex::default(),
            leases,
        })
    }

    /// Takes one place for `principal` here and, when the quota is shared, on every replica
    /// (a lease in Redis; while Redis cannot answer, this replica's count alone decides).
    pub async fn acquire_shared(
        self: &Arc<Self>,
        principal: &str,
    ) -> Result<Permit, QuotaExceeded> {
        let mut permit = self.acquire(principal)?;
        let Some(leases) = &self.leases else {
            return Ok(permit);
        };
        let (setting, limit) = self.per_principal;
        let member = uuid::Uuid::new_v4().simple().to_string();
        match leases
            .take(setting, principal, &member, Some(limit), true)
            .await
        {
            Taken::Yes(lease) => permit.lease = Some(lease),
            Taken::Refused(held) => {
                return Err(QuotaExceeded {
                    message: format!(
                        "quota exceeded: you hold {held} {} across the gateway's replicas (the most per principal, {setting} = {limit}); close one first",
                        self.what
                    ),
                    global: false,
                    retry_after: Duration::from_secs(5),
                });
            }
            Taken::Unknown => {}
        }
        Ok(permit)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one place for `principal`, or says which limit is reached.
    pub fn acquire(self: &Arc<Self>, principal: &str) -> Result<Permit, QuotaExceeded> {
        let mut held = self.held();
        let mine = held.by_principal.get(principal).copied().unwrap_or(0);
        let (setting, limit) = self.per_principal;
        if mine >= limit {
            return Err(QuotaExceeded {
                message: format!(
                    "quota exceeded: you hold {mine} {} (the most per principal, {setting} = {limit}); close one first",
                    self.what
                ),
                global: false,
                retry_after: Duration::from_secs(5),
            });
        }
        let (setting, limit) = self.global;
        if held.total >= limit {
            return Err(QuotaExceeded {
                message: format!(
                    "the gateway holds its most {} ({setting} = {limit}); try again shortly",
                    self.what
                ),
                global: true,
                retry_after: Duration::from_secs(5),
            });
        }
        held.total += 1;
        *held.by_principal.entry(principal.to_owned()).or_default() += 1;
        Ok(Permit {
            quota: self.clone(),
            principal: principal.to_owned(),
            lease: None,
        })
    }

    /// How many places `principal` holds, and how many are held in all.
    pub fn usage(&self, principal: &str) -> (usize, usize) {
        let held = self.held();
        (
            held.by_principal.get(principal).copied().unwrap_or(0),
            held.total,
        )
    }

    /// How many places are held in all.
    pub fn total(&self) -> usize {
        self.held().total
    }

    fn release(&self, principal: &str) {
        let mut held = self.held();
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_principal.get_mut(principal) {
            *count -= 1;
            if *count == 0 {
                held.by_principal.remove(principal);
            }
        }
    }
}

/// One place in a [`Quota`], given back when dropped.
#[derive(Debug)]
pub struct Permit {
    quota: Arc<Quota>,
    principal: String,
    /// Its lease on every replica's count, when shared.
    lease: Option<Lease>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.quota.release(&self.principal);
    }
}

/// Raises the open-file soft limit to the hard limit and returns the usable limit: streams and
/// connections are capped below it, so a flood of them cannot take the descriptors `/health`,
/// `/ready`, the admin API and the database need.
pub fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_principal_has_their_own_share_and_places_come_back() {
        let quota = Quota::new("streams", ("PER", 2), ("ALL", 3));
        let a1 = quota.acquire("a").unwrap();
        let _a2 = quota.acquire("a").unwrap();
        let refused = quota.acquire("a").unwrap_err();
        assert!(!refused.global && refused.message.contains("PER = 2"));
        let _b1 = quota.acquire("b").unwrap();
        let full = quota.acquire("c").unwrap_err();
        assert!(full.global && full.message.contains("ALL = 3"));
        drop(a1);
        assert_eq!(quota.usage("a"), (1, 2));
        let _c1 = quota.acquire("c").unwrap();
    }
}
