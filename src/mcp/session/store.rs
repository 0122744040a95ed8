//! The sessions this replica serves, and their self-contained ids.
//!
//! A session id is the session's claims — principal, endpoint (all, or one virtual server),
//! negotiated version, the client's capabilities, expiry — sealed with AES-256-GCM under the
//! encryption secret every replica shares (`AUTH_ENCRYPTION_SECRET`; the purpose is
//! authenticated with it). A replica that has never seen a session opens its id and serves it:
//! no shared store is read on the request path, and a restart keeps sessions. Only the
//! principal the id names may use it, on the endpoint it names, until it expires
//! (`MCP_SESSION_MAX_AGE_SECONDS`) or ends: an end is told to every replica, which refuses
//! the id from then on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Session, SessionState, UpstreamSessions, lock};
use crate::catalog::Scope;
use crate::cluster::{Cluster, Event, SessionChange};
use crate::mcp::error::McpError;
use crate::secrets::SecretBox;

/// What a session id is sealed for.
const PURPOSE: &str = "mcpgate session id v1";

/// Ended sessions remembered at most (a client ending sessions in a loop must not grow every
/// replica's memory). Past it the oldest are forgotten: such an id opens again, for its own
/// principal only, until it expires — nothing another principal can use.
const MAX_ENDED: usize = 65_536;

/// The most bytes of client capabilities an id carries as they are.
const MAX_CARRIED_CAPABILITIES: usize = 2048;

/// The key an ended id is remembered by (ids are a few hundred bytes).
fn ended_key(id: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes()).into()
}

/// What a session id holds.
#[derive(Serialize, Deserialize)]
struct Claims {
    /// The principal.
    o: String,
    /// The virtual server (none: everything).
    s: Option<String>,
    /// The negotiated protocol version.
    v: String,
    /// The client's capabilities.
    c: Value,
    /// Expiry, in seconds since the epoch.
    e: i64,
    /// A legacy HTTP+SSE session: its stream is open somewhere for as long as it lives.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    t: bool,
    /// The replica that made it: its own upstream sessions live there.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    h: String,
    /// Makes every id unique.
    n: u64,
}

/// How session ids are made and read.
pub struct SessionIds {
    /// Seals and opens them (the encryption secret every replica shares).
    pub secrets: SecretBox,
    /// How long a session may live (`MCP_SESSION_MAX_AGE_SECONDS`).
    pub max_age: Duration,
    /// The other replicas.
    pub cluster: Cluster,
    /// Where every replica counts a principal's sessions (with `REDIS_URL`).
    pub leases: Option<Arc<crate::leases::Leases>>,
}

/// The kind of lease a session holds on every replica's count.
const LEASE_KIND: &str = "MCP_MAX_SESSIONS_PER_PRINCIPAL";

impl SessionIds {
    fn mint(
        &self,
        scope: &Scope,
        owner: &str,
        version: &str,
        capabilities: Value,
        sse: bool,
    ) -> (String, Claims) {
        let expires = chrono::Utc::now()
            + chrono::TimeDelta::from_std(self.max_age).unwrap_or(chrono::TimeDelta::days(1));
        let claims = Claims {
            o: owner.to_owned(),
            s: match scope {
                Scope::All => None,
                Scope::Server(id) => Some(id.clone()),
            },
            v: version.to_owned(),
            c: Self::carried(capabilities),
            e: expires.timestamp(),
            t: sse,
            h: self.cluster.replica().to_owned(),
            n: rand::rng().random(),
        };
        let plain = serde_json::to_string(&claims).unwrap_or_default();
        (self.secrets.seal_token(PURPOSE, &plain), claims)
    }

    /// What of the client's capabilities an id carries: all, unless that is large (the id
    /// travels in a header); then which ones it declared, which is what the gateway asks.
    fn carried(capabilities: Value) -> Value {
        if capabilities.to_string().len() <= MAX_CARRIED_CAPABILITIES {
            return capabilities;
        }
        let declared = capabilities
            .as_object()
            .map(|object| {
                object
                    .iter()
                    .filter(|(_, value)| !value.is_null())
                    .take(32)
                    .map(|(name, _)| (name.chars().take(64).collect(), serde_json::json!({})))
                    .collect()
            })
            .unwrap_or_default();
        Value::Object(declared)
    }

    /// The claims of an id this gateway made, while it has not expired.
    fn open(&self, id: &str) -> Option<Claims> {
        // Sealed ids are a few hundred characters; anything much longer is not one.
        if id.len() > 8192 {
            return None;
        }
        let claims: Claims = serde_json::from_str(&self.secrets.open_token(PURPOSE, id)?).ok()?;
        (claims.e > chrono::Utc::now().timestamp()).then_some(claims)
    }
}

/// The sessions this replica serves.
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Ended sessions, until they would have expired: refused here.
    ended: Mutex<HashMap<[u8; 32], i64>>,
    ttl: Duration,
    max: usize,
    per_principal: usize,
    upstream: UpstreamSessions,
    ids: SessionIds,
}

impl SessionStore {
    /// An empty store.
    pub fn new(
        ttl: Duration,
        max: usize,
        per_principal: usize,
        upstream: UpstreamSessions,
        ids: SessionIds,
    ) -> Self {
        SessionStore {
            sessions: Mutex::new(HashMap::new()),
            ended: Mutex::default(),
            ttl,
            max,
            per_principal,
            upstream,
            ids,
        }
    }

    /// Creates a session (Streamable HTTP), first dropping expired ones if the store is full.
    pub async fn create(
        &self,
        scope: Scope,
        owner: &str,
        version: &'static str,
        capabilities: Value,
    ) -> Result<Arc<Session>, McpError> {
        let session = self.make(scope, owner, version, capabilities, false)?;
        self.count_everywhere(session).await
    }

    /// Creates a legacy HTTP+SSE session (its stream is opened with it).
    pub async fn create_sse(
        &self,
        scope: Scope,
        owner: &str,
        version: &'static str,
    ) -> Result<Arc<Session>, McpError> {
        let session = self.make(scope, owner, version, Value::Null, true)?;
        self.count_everywhere(session).await
    }

    /// Counts a new session against its principal's quota on every replica (a lease in Redis):
    /// past it, the session is dropped unused.
    async fn count_everywhere(&self, session: Arc<Session>) -> Result<Arc<Session>, McpError> {
        let Some(leases) = &self.ids.leases else {
            return Ok(session);
        };
        let taken = leases
            .take(
                LEASE_KIND,
                &session.owner,
                &session.lease_member(),
                Some(self.per_principal),
                false,
            )
            .await;
        match taken {
            crate::leases::Taken::Yes(lease) => session.hold(lease),
            crate::leases::Taken::Refused(held) => {
                lock(&self.sessions).remove(&session.id);
                session.end();
                return Err(McpError::Quota {
                    message: format!(
                        "quota exceeded: you hold {held} MCP sessions across the gateway's replicas \
                         (the most per principal, {LEASE_KIND} = {}); end one with DELETE first",
                        self.per_principal
                    ),
                    retry_after: Duration::from_secs(5),
                });
            }
            crate::leases::Taken::Unknown => {}
        }
        Ok(session)
    }

    fn make(
        &self,
        scope: Scope,
        owner: &str,
        version: &'static str,
        capabilities: Value,
        sse: bool,
    ) -> Result<Arc<Session>, McpError> {
        let mut sessions = lock(&self.sessions);
        // One principal's share first: another principal still gets in.
        let owned = |sessions: &HashMap<String, Arc<Session>>| {
            sessions
                .values()
                .filter(|session| session.owner == owner)
                .count()
        };
        if owned(&sessions) >= self.per_principal {
            sessions.retain(|_, session| !session.expired(self.ttl));
            let held = owned(&sessions);
            if held >= self.per_principal {
                return Err(McpError::Quota {
                    message: format!(
                        "quota exceeded: you hold {held} MCP sessions (the most per principal, \
                         MCP_MAX_SESSIONS_PER_PRINCIPAL = {}); end one with DELETE first",
                        self.per_principal
                    ),
                    retry_after: Duration::from_secs(5),
                });
            }
        }
        if sessions.len() >= self.max {
            sessions.retain(|_, session| !session.expired(self.ttl));
            if sessions.len() >= self.max {
                tracing::warn!(
                    sessions = sessions.len(),
                    "session limit reached; refusing a new session"
                );
                return Err(McpError::Unavailable {
                    retry_after: Duration::from_secs(5),
                });
            }
        }
        let (id, claims) = self.ids.mint(&scope, owner, version, capabilities, sse);
        let session = self.view(id.clone(), claims, scope, version);
        sessions.insert(id, session.clone());
        Ok(session)
    }

    /// A view of a session, live from now.
    fn view(
        &self,
        id: String,
        claims: Claims,
        scope: Scope,
        version: &'static str,
    ) -> Arc<Session> {
        let session = Arc::new_cyclic(|me| Session {
            id,
            scope,
            owner: claims.o,
            version,
            state: Mutex::new(SessionState {
                client_capabilities: claims.c,
                ..SessionState::default()
            }),
            me: me.clone(),
            affinity: std::sync::OnceLock::new(),
            upstream: self.upstream.clone(),
            cluster: self.ids.cluster.clone(),
            expires_at: claims.e,
            sse: claims.t,
            home: claims.h,
            nonce: claims.n,
            lease: Mutex::default(),
            forgotten: std::sync::atomic::AtomicBool::new(false),
        });
        session.touch();
        session
    }

    /// The view of a session this replica has not served yet, made from its id (none for an
    /// id it did not make, one expired, ended, or of a version it no longer speaks).
    fn open(&self, id: &str) -> Option<Arc<Session>> {
        if lock(&self.ended).contains_key(&ended_key(id)) {
            return None;
        }
        let claims = self.ids.open(id)?;
        let version = crate::protocol::legacy_version(&claims.v)?;
        let scope = match &claims.s {
            None => Scope::All,
            Some(server) => Scope::Server(server.clone()),
        };
        let mut sessions = lock(&self.sessions);
        if let Some(session) = sessions.get(id) {
            return Some(session.clone());
        }
        // Views made from ids are bounded like the sessions made here.
        if sessions.len() >= self.max {
            sessions.retain(|_, session| !session.expired(self.ttl));
            if sessions.len() >= self.max {
                tracing::warn!(
                    sessions = sessions.len(),
                    "session limit reached; a session made elsewhere is not served here"
                );
                return None;
            }
        }
        let session = self.view(id.to_owned(), claims, scope, version);
        sessions.insert(id.to_owned(), session.clone());
        drop(sessions);
        // Held here too: its lease lives while some replica serves it.
        if let Some(leases) = self.ids.leases.clone() {
            let held = Arc::downgrade(&session);
            tokio::spawn(async move {
                let Some(session) = held.upgrade() else {
                    return;
                };
                let member = session.lease_member();
                let taken = leases
                    .take(LEASE_KIND, &session.owner, &member, None, false)
                    .await;
                if let crate::leases::Taken::Yes(lease) = taken {
                    // Ended meanwhile: its place, just taken again, goes too.
                    if session.forgotten.load(std::sync::atomic::Ordering::Acquire) {
                        drop(lease);
                        leases.end(LEASE_KIND, &session.owner, &member);
                    } else {
                        session.hold(lease);
                    }
                }
            });
        }
        Some(session)
    }

    /// The live session with this id, if it belongs to `owner` and `scope`; touches it.
    pub fn get(&self, id: &str, owner: &str, scope: &Scope) -> Option<Arc<Session>> {
        let known = lock(&self.sessions).get(id).cloned();
        let session = match known {
            Some(session) if session.past_max_age() => {
                self.forget(id);
                return None;
            }
            // Idle with nothing kept: a fresh view from the id.
            Some(session) if session.expired(self.ttl) => {
                self.let_go(id);
                self.open(id)?
            }
            Some(session) => session,
            None => self.open(id)?,
        };
        // Another principal's (or another server's) session is "not found", not "forbidden".
        if session.owner != owner || session.scope != *scope {
            return None;
        }
        session.touch();
        Some(session)
    }

    /// Ends a session here and on every other replica.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.forget(id)?;
        self.ids.cluster.publish(Event::Session {
            id: id.to_owned(),
            change: SessionChange::Ended,
        });
        Some(session)
    }

    /// Lets an idle view go (the id opens again on the next request).
    fn let_go(&self, id: &str) {
        if let Some(session) = lock(&self.sessions).remove(id) {
            session.end();
        }
    }

    /// Ends the view here and refuses the id from now on (on this replica).
    fn forget(&self, id: &str) -> Option<Arc<Session>> {
        if let Some(claims) = self.ids.open(id) {
            let mut ended = lock(&self.ended);
            if ended.len() >= MAX_ENDED {
                let now = chrono::Utc::now().timestamp();
                ended.retain(|_, expires| *expires > now);
                if ended.len() >= MAX_ENDED {
                    // The soonest to expire go first.
                    let mut expiries: Vec<i64> = ended.values().copied().collect();
                    let (_, median, _) = expiries.select_nth_unstable(MAX_ENDED / 2);
                    let median = *median;
                    ended.retain(|_, expires| *expires > median);
                }
            }
            ended.insert(ended_key(id), claims.e);
        }
        let session = lock(&self.sessions).remove(id)?;
        session
            .forgotten
            .store(true, std::sync::atomic::Ordering::Release);
        session.end();
        // Its place in the shared count goes, whoever holds it.
        if let Some(leases) = &self.ids.leases {
            leases.end(LEASE_KIND, &session.owner, &session.lease_member());
        }
        Some(session)
    }

    /// Applies what another replica told about a session: an end, or a change to the view
    /// (made from the id if this replica has none yet).
    pub fn apply(&self, id: &str, change: SessionChange) {
        if change == SessionChange::Ended {
            self.forget(id);
            return;
        }
        // Messages for a stream or a waiting request matter only where the view exists.
        let only_if_known = matches!(
            change,
            SessionChange::Deliver(_) | SessionChange::Answer(_) | SessionChange::Cancel(_)
        );
        let known = lock(&self.sessions).get(id).cloned();
        let session = match known {
            Some(session) => session,
            None if only_if_known => return,
            None => match self.open(id) {
                Some(session) => session,
                None => return,
            },
        };
        session.apply(change);
    }

    /// Lets idle views go and ends sessions past their age (here only: an idle view says
    /// nothing of other replicas'); returns how many views went.
    pub fn sweep(&self) -> usize {
        let now = chrono::Utc::now().timestamp();
        lock(&self.ended).retain(|_, expires| *expires > now);
        let expired: Vec<(String, bool)> = lock(&self.sessions)
            .iter()
            .filter(|(_, session)| session.expired(self.ttl))
            .map(|(id, session)| (id.clone(), session.past_max_age()))
            .collect();
        for (id, aged) in &expired {
            if *aged {
                self.forget(id);
            } else {
                self.let_go(id);
            }
        }
        expired.len()
    }

    /// Ends every view (at shutdown), closing their streams. The sessions live on: another
    /// replica, or this one started again, serves them.
    pub fn end_all(&self) {
        for (_, session) in lock(&self.sessions).drain() {
            session.end();
        }
    }

    /// Live (not expired) sessions, for statistics.
    pub fn len(&self) -> usize {
        lock(&self.sessions)
            .values()
            .filter(|session| !session.expired(self.ttl))
            .count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live session (for fan-out of notifications).
    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
