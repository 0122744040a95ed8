//! The AuthActor: answers "who is this request" and signs users in.
//!
//! A bearer token is verified with the keys this actor owns (signature, expiry, issuer,
//! audience); what the user may do comes from the ScopingActor's cache, so a request with a
//! warm cache touches no database. A sign-in reads the account through the DbActor (one short
//! unit), checks the password on a blocking thread (argon2id), and records the attempt
//! (failures lock the account after `MAX_FAILED_LOGIN_ATTEMPTS`).
//!
//! The actor also keeps the list of revoked token ids: loaded at start, refreshed from the
//! database every `TOKEN_REVOCATION_REFRESH_SECONDS` (so a token revoked on another replica
//! stops working here within that time), and updated at once for revocations made here.
//!
//! Verifying a bearer token needs no message: the keys are immutable and the revocation list
//! is published in a concurrent set the actor alone writes, so [`Auth::authenticate`] runs on
//! the caller's thread (with the ScopingActor's published grants, no thread is crossed for a
//! user whose grants are cached). The actor still owns everything that changes: sign-ins,
//! their limits, the revocation list's loading.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;

mod external;
mod revocations;

pub use self::revocations::{RefreshRevocations, Revoked};
mod upkeep;

use self::upkeep::{OAUTH_PURGE_EVERY, USAGE_FLUSH_EVERY};

use super::db::Db;
use super::scoping::Scoping;
use crate::auth::jwt::JwtKeys;
use crate::auth::{AuthError, Principal, password};
use crate::config::IdentitySettings;
use crate::db::bootstrap::UserRow;
use crate::db::identity::{ClaimLogin, LoginClaim, LoginRecord, RecordLogin};

/// How long a handler waits for the actor before answering 503.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// The actor; owns the JWT keys.
pub struct AuthActor {
    keys: Arc<JwtKeys>,
    scoping: Scoping,
    db: Db,
    identity: IdentitySettings,
    revoked: Arc<dashmap::DashSet<String>>,
    /// Set once the first load of the revocation list has finished.
    revocations_known: Arc<std::sync::atomic::AtomicBool>,
    /// The newest revocation seen (the next refresh asks from a little before it).
    watermark: Option<chrono::NaiveDateTime>,
    refreshing: bool,
    /// Sign-in attempts per address in the current minute.
    attempts: HashMap<IpAddr, (Instant, u32)>,
    /// Accounts with a sign-in being checked: one at a time per account.
    in_flight: HashSet<String>,
    /// Password verifications in flight at most.
    verifying: Arc<tokio::sync::Semaphore>,
    /// Password verifications done (for `/metrics`).
    verifications: Arc<AtomicU64>,
    /// When API tokens were used, to be written.
    usage: Arc<crate::auth::usage::TokenUse>,
}

impl Actor for AuthActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        // No token is checked before the revocation list is known.
        ctx.wait(self.load_revocations());
        ctx.run_interval(self.identity.revocation_refresh, |actor, ctx| {
            if !actor.refreshing {
                ctx.spawn(actor.load_revocations());
            }
        });
        ctx.run_interval(USAGE_FLUSH_EVERY, |actor, ctx| actor.write_usage(ctx));
        ctx.run_interval(OAUTH_PURGE_EVERY, |actor, ctx| actor.purge_oauth(ctx));
    }
}

impl Supervised for AuthActor {}

/// Answered once the revocation list has been loaded (the actor handles no message before).
pub struct RevocationsKnown;

impl Message for RevocationsKnown {
    type Result = ();
}

impl Handler<RevocationsKnown> for AuthActor {
    type Result = ();

    fn handle(&mut self, _message: RevocationsKnown, _ctx: &mut Context<Self>) {}
}

/// Sign in with email and password.
pub struct Login {
    /// The email (compared case-insensitively).
    pub email: String,
    /// The password.
    pub password: String,
    /// The address it came from (for the per-address limit).
    pub client: Option<IpAddr>,
}

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct Session {
    /// The signed token.
    pub access_token: String,
    /// Its lifetime.
    pub expires_in: Duration,
    /// The account.
    pub user: UserRow,
}

impl Message for Login {
    type Result = Result<Session, AuthError>;
}

/// A hash to check passwords of unknown accounts against, so that an unknown email takes as
/// long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| password::hash(&password::generate(24)).unwrap_or_default())
}

impl AuthActor {
    /// Counts an attempt from `client`; refuses past `LOGIN_RATE_LIMIT_PER_MINUTE`.
    fn admit_attempt(&mut self, client: Option<IpAddr>) -> Result<(), AuthError> {
        const WINDOW: Duration = Duration::from_secs(60);
        let Some(client) = client else {
            return Ok(());
        };
        let now = Instant::now();
        if self.attempts.len() > 100_000 {
            self.attempts
                .retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
        }
        let (since, count) = self.attempts.entry(client).or_insert((now, 0));
        if now.duration_since(*since) >= WINDOW {
            *since = now;
            *count = 0;
        }
        *count += 1;
        if *count > self.identity.login_rate_per_minute {
            return Err(AuthError::Locked {
                retry_after: WINDOW.saturating_sub(now.duration_since(*since)),
            });
        }
        Ok(())
    }
}

impl Handler<Login> for AuthActor {
    type Result = ResponseActFuture<Self, Result<Session, AuthError>>;

    fn handle(&mut self, message: Login, _ctx: &mut Context<Self>) -> Self::Result {
        if !self.identity.password_sign_in {
            return Box::pin(actix::fut::ready(Err(AuthError::Forbidden(
                "password sign-in is switched off on this gateway: sign in through your identity provider".into(),
            ))));
        }
        let email = message.email.trim().to_ascii_lowercase();
        let admitted = self.admit_attempt(message.client).and_then(|()| {
            // One check at a time per account: concurrent guesses wait for none.
            if self.in_flight.insert(email.clone()) {
                Ok(())
            } else {
                Err(AuthError::Locked {
                    retry_after: Duration::from_secs(1),
                })
            }
        });
        if let Err(refused) = admitted {
            return Box::pin(actix::fut::ready(Err(refused)));
        }
        let db = self.db.clone();
        let keys = self.keys.clone();
        let settings = self.identity.clone();
        let scoping = self.scoping.clone();
        let verifying = self.verifying.clone();
        let verifications = self.verifications.clone();
        let account = email.clone();
        let work = async move {
            let unavailable = |error: crate::actors::db::DbError| {
                tracing::warn!(%error, "sign-in could not read the account");
                AuthError::Unavailable
            };
            let lockout = chrono::TimeDelta::from_std(settings.lockout)
                .unwrap_or(chrono::TimeDelta::minutes(5));
            let claim = db
                .run(ClaimLogin {
                    email: email.clone(),
                    max_failures: settings.max_failed_logins,
                    lockout,
                })
                .await
                .map_err(unavailable)?;
            // Unknown accounts take as long as known ones; locked ones are not checked.
            let (user, stored) = match claim {
                LoginClaim::Proceed(user) => {
                    let stored = user.password_hash.clone();
                    (Some(user), stored)
                }
                LoginClaim::Unknown => (None, decoy_hash().to_owned()),
                LoginClaim::Locked => {
                    tracing::info!(%email, "sign-in refused: the account is locked");
                    return Err(AuthError::BadCredentials);
                }
            };
            let permit = tokio::time::timeout(REPLY_TIMEOUT / 2, verifying.acquire_owned())
                .await
                .map_err(|_| AuthError::Unavailable)?
                .map_err(|_| AuthError::Unavailable)?;
            let candidate = message.password;
            let matches = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                password::verify(&candidate, &stored)
            })
            .await
            .map_err(|_| AuthError::Unavailable)?;
            verifications.fetch_add(1, Ordering::Relaxed);
            let Some(user) = user else {
                return Err(AuthError::BadCredentials);
            };
            if !matches {
                let locked = db
                    .run(RecordLogin {
                        email: email.clone(),
                        record: LoginRecord::Failure {
                            max_failures: settings.max_failed_logins,
                            lockout,
                        },
                    })
                    .await
                    .map_err(unavailable)?;
                if let Some(until) = locked {
                    tracing::warn!(%email, %until, "account locked after repeated failed sign-ins");
                }
                return Err(AuthError::BadCredentials);
            }
            db.run(RecordLogin {
                email: email.clone(),
                record: LoginRecord::Success,
            })
            .await
            .map_err(unavailable)?;
            if !user.is_active {
                return Err(AuthError::BadCredentials);
            }
            // The account may have changed since it was cached (a new password, say).
            scoping.invalidate(Some(email.clone())).await;
            let access_token = keys
                .issue_for(
                    &email,
                    user.id.as_deref(),
                    user.is_admin,
                    settings.token_expiry,
                )
                .map_err(|error| {
                    tracing::error!(%error, "cannot sign a token");
                    AuthError::Unavailable
                })?;
            Ok(Session {
                access_token,
                expires_in: settings.token_expiry,
                user,
            })
        };
        Box::pin(work.into_actor(self).map(move |outcome, actor, _ctx| {
            actor.in_flight.remove(&account);
            outcome
        }))
    }
}

/// Sign an API token.
pub struct IssueApiToken {
    /// Its owner.
    pub email: String,
    /// Its owner's account id.
    pub uid: Option<String>,
    /// Its id.
    pub jti: String,
    /// When it expires.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Its restrictions.
    pub scope: crate::auth::scope::TokenScope,
}

impl Message for IssueApiToken {
    type Result = Result<String, AuthError>;
}

impl Handler<IssueApiToken> for AuthActor {
    type Result = Result<String, AuthError>;

    fn handle(&mut self, message: IssueApiToken, _ctx: &mut Context<Self>) -> Self::Result {
        self.keys
            .issue_api(
                &message.email,
                message.uid.as_deref(),
                &message.jti,
                message.expires_at,
                message.scope,
            )
            .map_err(|error| {
                tracing::error!(%error, "cannot sign a token");
                AuthError::Unavailable
            })
    }
}

/// The groups an external user's teams and roles last followed, and when the token that said
/// so was issued.
type SyncedGroups = (i64, Vec<String>);

/// A handle to the AuthActor.
#[derive(Clone)]
pub struct Auth {
    addr: Addr<AuthActor>,
    scoping: Scoping,
    verifications: Arc<AtomicU64>,
    keys: Arc<JwtKeys>,
    revoked: Arc<dashmap::DashSet<String>>,
    revocations_known: Arc<std::sync::atomic::AtomicBool>,
    /// Signatures verified in the last seconds (revocation and grants are still checked).
    verified: Arc<crate::auth::verified::VerifiedTokens>,
    /// When API tokens were used, noted here and written by the actor.
    usage: Arc<crate::auth::usage::TokenUse>,
    /// The external identity providers whose tokens are accepted.
    idps: super::idp::IdentityProviders,
    /// The groups each externally signed-in user's teams were last made to follow.
    /// Keyed by (provider, email); with the issue time of the token that said so.
    synced: Arc<dashmap::DashMap<(usize, String), SyncedGroups>>,
    /// Other replicas, told of revocations.
    cluster: crate::cluster::Cluster,
}

impl Auth {
    /// Starts the supervised actor with these keys.
    pub fn start(
        keys: Arc<JwtKeys>,
        scoping: Scoping,
        db: Db,
        identity: IdentitySettings,
        idps: super::idp::IdentityProviders,
        cluster: crate::cluster::Cluster,
    ) -> Self {
        let actor_scoping = scoping.clone();
        let login_concurrency = identity.login_concurrency;
        let verifications = Arc::new(AtomicU64::new(0));
        let actor_verifications = verifications.clone();
        let revoked = Arc::new(dashmap::DashSet::new());
        let actor_revoked = revoked.clone();
        let revocations_known = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let actor_known = revocations_known.clone();
        let actor_keys = keys.clone();
        let usage = Arc::new(crate::auth::usage::TokenUse::default());
        let actor_usage = usage.clone();
        let addr = Supervisor::start(move |_| AuthActor {
            keys: actor_keys.clone(),
            scoping: actor_scoping,
            db,
            identity,
            revoked: actor_revoked.clone(),
            revocations_known: actor_known.clone(),
            watermark: None,
            refreshing: false,
            attempts: HashMap::new(),
            in_flight: HashSet::new(),
            verifying: Arc::new(tokio::sync::Semaphore::new(login_concurrency)),
            verifications: actor_verifications.clone(),
            usage: actor_usage.clone(),
        });
        Auth {
            addr,
            scoping,
            verifications,
            keys,
            revoked,
            revocations_known,
            verified: Arc::default(),
            usage,
            idps,
            synced: Arc::default(),
            cluster,
        }
    }

    /// Password verifications done since start.
    pub fn password_verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verifies a bearer token used from `origin` (an API token's address and time limits
    /// apply).
    pub async fn authenticate(
        &self,
        bearer: String,
        origin: crate::auth::Origin,
    ) -> Result<Principal, AuthError> {
        let span = crate::otel_span!("authorize", otel.name = "authorize");
        tracing::Instrument::instrument(self.verify(bearer, origin), span).await
    }

    async fn verify(
        &self,
        bearer: String,
        origin: crate::auth::Origin,
    ) -> Result<Principal, AuthError> {
        let client = origin.client;
        if !self.revocations_known.load(Ordering::Acquire) {
            // No token is checked before the revocation list is known.
            self.addr
                .send(RevocationsKnown)
                .timeout(REPLY_TIMEOUT)
                .await
                .map_err(|_| AuthError::Unavailable)?;
        }
        let now = chrono::Utc::now();
        let (claims, external) = match self.verified.get(&bearer, now.timestamp()) {
            Some(claims) => (claims, None),
            None => {
                let (claims, external) = self.verify_signature(&bearer).await?;
                self.verified.insert(&bearer, &claims, now.timestamp());
                (claims, external)
            }
        };
        if self.revoked.contains(&claims.jti) {
            return Err(AuthError::InvalidToken("the token has been revoked".into()));
        }
        // An API token's address and time limits: checked here, for every entry point.
        if let Some(scope) = &claims.scope {
            scope.admits(client, now).map_err(AuthError::Forbidden)?;
        }
        let mut grants = self.scoping.grants(&claims.sub).await?;
        if let Some(external) = &external {
            grants = self.admit_external(&claims.sub, external, grants).await?;
        }
        let grants = grants.ok_or_else(|| {
            AuthError::InvalidToken("the account is disabled or no longer exists".into())
        })?;
        // An external provider's token is for whoever has its email now.
        if claims.token_use.as_deref() != Some("external") {
            grants
                .account
                .admits(
                    claims.uid.as_deref(),
                    claims.iat,
                    claims.iat_ms,
                    // A password change or a disable ends sign-ins and OAuth grants alike.
                    matches!(claims.token_use.as_deref(), None | Some("oauth")),
                )
                .map_err(AuthError::InvalidToken)?;
        }
        if claims.token_use.as_deref() == Some("api") {
            self.usage.touch(&claims.jti, now);
        }
        let resource = claims.resource.clone();
        let mut principal = Principal::new(
            claims.sub,
            claims.jti,
            chrono::DateTime::from_timestamp(claims.exp, 0).map(|at| at.naive_utc()),
            grants,
            claims.scope.map(Arc::new),
        );
        principal.origin = origin;
        principal.resource = resource;
        Ok(principal)
    }

    /// Signs a user in from `client`.
    pub async fn login(
        &self,
        email: String,
        password: String,
        client: Option<IpAddr>,
    ) -> Result<Session, AuthError> {
        self.addr
            .send(Login {
                email,
                password,
                client,
            })
            .timeout(REPLY_TIMEOUT)
            .await
            .map_err(|_| AuthError::Unavailable)?
    }

    /// Signs an API token.
    pub async fn issue_api_token(
        &self,
        email: &str,
        uid: Option<&str>,
        jti: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
        scope: crate::auth::scope::TokenScope,
    ) -> Result<String, AuthError> {
        self.addr
            .send(IssueApiToken {
                email: email.to_owned(),
                uid: uid.map(str::to_owned),
                jti: jti.to_owned(),
                expires_at,
                scope,
            })
            .timeout(REPLY_TIMEOUT)
            .await
            .map_err(|_| AuthError::Unavailable)?
    }

    /// Signs an OAuth access token (no database work: the grant is stored by the caller).
    pub fn sign_oauth(&self, grant: crate::auth::jwt::OAuthGrant<'_>) -> Result<String, AuthError> {
        self.keys.issue_oauth(grant).map_err(|error| {
            tracing::error!(%error, "cannot sign a token");
            AuthError::Unavailable
        })
    }

    /// Refuses a token id from now on, here and (over the replica bus) on every other replica;
    /// a replica that misses the event reads it from the database at its next refresh.
    pub async fn revoked(&self, jti: String) {
        self.cluster
            .publish(crate::cluster::Event::Revoked { jti: jti.clone() });
        self.revoked_here(jti).await;
    }

    /// Refuses a token id from now on, on this replica (another replica revoked it).
    pub async fn revoked_here(&self, jti: String) {
        let _ = self.addr.send(Revoked(jti)).await;
    }

    /// Reads the revocation list again.
    pub async fn refresh_revocations(&self) {
        let _ = self.addr.send(RefreshRevocations).await;
    }

    /// The external identity providers.
    pub fn identity_providers(&self) -> &super::idp::IdentityProviders {
        &self.idps
    }

    /// The ScopingActor this one asks (for invalidation after changes).
    pub fn scoping(&self) -> &Scoping {
        &self.scoping
    }
}
