//! The identity provider actor: fetches each external OpenID Connect provider's discovery
//! document and signing keys (JWKS) through the egress policy and publishes them for
//! [`crate::auth::oidc`] to verify tokens with on the caller's thread.
//!
//! Keys are fetched at start (a provider that cannot be reached is retried on the next token
//! that needs it), every `OIDC_JWKS_REFRESH_SECONDS` (a key the provider stopped publishing is
//! refused from then on), and when a token names a key not yet known (a rotation) — but
//! then at most once per `OIDC_JWKS_MIN_REFRESH_SECONDS` per provider, so tokens with made-up
//! key ids cannot make the gateway hammer the provider. Fetches are bounded in size and time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;

use crate::auth::AuthError;
use crate::auth::jwt::Claims;
use crate::auth::oidc::{self, Discovery, ExternalIdentity, Outcome, Provider, Published};
use crate::config::OidcSettings;
use crate::egress::{AllowEntry, EgressPolicy, HttpClient};

/// The largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The actor; the sole writer of the providers' published keys.
pub struct IdpActor {
    providers: Arc<Vec<Provider>>,
    http: HttpClient,
    min_refresh: Duration,
    /// How often every provider's keys are fetched again.
    refresh_every: Duration,
    /// When each provider's keys were last asked for.
    attempted: Vec<Option<Instant>>,
}

impl Actor for IdpActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for index in 0..self.providers.len() {
            ctx.notify(Refresh {
                index,
                periodic: true,
            });
        }
        ctx.run_interval(self.refresh_every, |actor, ctx| {
            for index in 0..actor.providers.len() {
                ctx.notify(Refresh {
                    index,
                    periodic: true,
                });
            }
        });
    }
}

impl Supervised for IdpActor {}

/// Fetch a provider's discovery document and keys again.
struct Refresh {
    index: usize,
    /// The periodic (or first, or an admin's) fetch, which the minimum interval does not hold
    /// back.
    periodic: bool,
}

impl Message for Refresh {
    type Result = Result<(), String>;
}

impl Handler<Refresh> for IdpActor {
    // One fetch at a time: a burst of tokens with a new key waits for one fetch, then finds it.
    type Result = AtomicResponse<Self, Result<(), String>>;

    fn handle(&mut self, message: Refresh, _ctx: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        let recent = self.attempted[message.index]
            .is_some_and(|at| now.duration_since(at) < self.min_refresh);
        if recent && !message.periodic {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(()))));
        }
        self.attempted[message.index] = Some(now);
        let providers = self.providers.clone();
        let http = self.http.clone();
        let index = message.index;
        AtomicResponse::new(Box::pin(
            async move {
                let provider = &providers[index];
                let fetched = fetch(&http, &provider.settings.issuer).await;
                match fetched {
                    Ok(published) => {
                        tracing::info!(
                            issuer = %provider.settings.issuer,
                            keys = published.key_count(),
                            "identity provider keys fetched"
                        );
                        if let Ok(mut slot) = provider.published.write() {
                            *slot = Arc::new(published);
                        }
                        Ok(())
                    }
                    Err(error) => {
                        tracing::warn!(issuer = %provider.settings.issuer, %error, "identity provider keys could not be fetched");
                        let mut kept = (*provider.current()).clone();
                        kept.error = Some(error.clone());
                        if let Ok(mut slot) = provider.published.write() {
                            *slot = Arc::new(kept);
                        }
                        Err(error)
                    }
                }
            }
            .into_actor(self),
        ))
    }
}

/// Reads a JSON document of at most [`MAX_DOCUMENT_BYTES`].
async fn document(http: &HttpClient, url: &str) -> Result<Value, String> {
    let request = http.get(url).map_err(|denied| denied.to_string())?;
    let mut response = request
        .timeout(FETCH_TIMEOUT)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|error| format!("{url}: {}", crate::upstream::transport::describe(&error)))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("{url}: {}", crate::upstream::transport::describe(&error)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{url} is larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|error| format!("{url} is not JSON: {error}"))
}

/// The provider's discovery document (its issuer checked) and its keys.
async fn fetch(http: &HttpClient, issuer: &str) -> Result<Published, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let discovery: Discovery = serde_json::from_value(document(http, &url).await?)
        .map_err(|error| format!("{url} is not a discovery document: {error}"))?;
    if discovery.issuer != issuer {
        return Err(format!(
            "{url} names the issuer {:?}, not {issuer:?}",
            discovery.issuer
        ));
    }
    let jwks = document(http, &discovery.jwks_uri).await?;
    // Keys of a type this gateway cannot use are skipped, not a reason to refuse the rest.
    let keys = jwks["keys"]
        .as_array()
        .ok_or_else(|| format!("{} has no \"keys\"", discovery.jwks_uri))?
        .iter()
        .filter_map(|key| serde_json::from_value(key.clone()).ok())
        .collect();
    Ok(Published::from_jwks(
        discovery,
        &jsonwebtoken::jwk::JwkSet { keys },
    ))
}

/// A handle to the identity provider actor and the providers it publishes.
#[derive(Clone)]
pub struct IdentityProviders {
    providers: Arc<Vec<Provider>>,
    addr: Option<Addr<IdpActor>>,
}

impl IdentityProviders {
    /// Starts the actor for `OIDC_ISSUERS` (none: no actor). The providers' hosts are reachable
    /// by this actor's client whatever `egress` says of them: an operator named them.
    pub fn start(settings: &OidcSettings, egress: &EgressPolicy) -> Result<Self, String> {
        let providers: Arc<Vec<Provider>> = Arc::new(
            settings
                .issuers
                .0
                .iter()
                .cloned()
                .map(Provider::new)
                .collect(),
        );
        if providers.is_empty() {
            return Ok(IdentityProviders {
                providers,
                addr: None,
            });
        }
        let mut policy = egress.clone();
        for provider in providers.iter() {
            if let Some(host) = url::Url::parse(&provider.settings.issuer)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
            {
                policy.allow.push(AllowEntry::parse(&host)?);
            }
        }
        let http = HttpClient::new(policy)?;
        let min_refresh = settings.jwks_min_refresh;
        let refresh_every = settings.jwks_refresh;
        let actor_providers = providers.clone();
        let addr = Supervisor::start(move |_| IdpActor {
            attempted: vec![None; actor_providers.len()],
            providers: actor_providers.clone(),
            http: http.clone(),
            min_refresh,
            refresh_every,
        });
        Ok(IdentityProviders {
            providers,
            addr: Some(addr),
        })
    }

    /// The provider whose issuer is `issuer`, with its index.
    pub fn find(&self, issuer: &str) -> Option<usize> {
        self.providers
            .iter()
            .position(|provider| provider.settings.issuer == issuer)
    }

    /// Provider `index`.
    pub fn provider(&self, index: usize) -> &Provider {
        &self.providers[index]
    }

    /// Every provider, in the order configured.
    pub fn all(&self) -> &[Provider] {
        &self.providers
    }

    /// Fetches provider `index`'s keys again (at most once per minimum interval), waiting for it.
    pub async fn refresh(&self, index: usize) -> Result<(), String> {
        self.ask(index, false).await
    }

    /// Fetches provider `index`'s keys now, whatever the minimum interval (an admin asked).
    pub async fn refresh_now(&self, index: usize) -> Result<(), String> {
        self.ask(index, true).await
    }

    async fn ask(&self, index: usize, periodic: bool) -> Result<(), String> {
        let Some(addr) = &self.addr else {
            return Err("no identity providers are configured".into());
        };
        addr.send(Refresh { index, periodic })
            .timeout(FETCH_TIMEOUT * 3)
            .await
            .map_err(|_| "the identity provider actor did not answer".to_owned())?
    }

    /// Verifies a token of provider `index`: with the published keys, and once more after
    /// fetching them again if it names a key not published yet.
    pub async fn verify(
        &self,
        index: usize,
        token: &str,
    ) -> Result<(Claims, ExternalIdentity), AuthError> {
        let provider = self.provider(index);
        let mut fetched_error = None;
        for attempt in 0..2 {
            match oidc::verify(index, &provider.settings, &provider.current(), token)? {
                Outcome::Verified(claims, identity) => return Ok((*claims, identity)),
                Outcome::UnknownKey(kid) if attempt == 1 => {
                    return Err(AuthError::InvalidToken(match fetched_error {
                        Some(error) => format!(
                            "the signing keys of {} cannot be fetched right now ({error})",
                            provider.settings.issuer
                        ),
                        None => format!(
                            "the signing key {kid:?} is not (or no longer) published by {}",
                            provider.settings.issuer
                        ),
                    }));
                }
                Outcome::UnknownKey(_) => fetched_error = self.refresh(index).await.err(),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}
