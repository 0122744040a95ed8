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
use crate::auth::oidc::{self, Discovery, Expect, ExternalIdentity, Outcome, Provider, Published};
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
    let response = request
        .timeout(FETCH_TIMEOUT)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|error| format!("{url}: {}", crate::upstream::transport::describe(&error)))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let body = crate::egress::body_within(response, MAX_DOCUMENT_BYTES)
        .await
        .map_err(|why| format!("{url}: {why}"))?;
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
    /// For console sign-in's code exchange (the actor's client: the issuers' hosts allowed).
    http: Option<HttpClient>,
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
                http: None,
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
        let handle_http = http.clone();
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
            http: Some(handle_http),
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
        expect: Expect<'_>,
    ) -> Result<(Claims, ExternalIdentity), AuthError> {
        let provider = self.provider(index);
        let attempt = || {
            oidc::verify(
                index,
                &provider.settings,
                &provider.current(),
                token,
                expect,
            )
        };
        if let Outcome::Verified(claims, identity) = attempt()? {
            return Ok((*claims, identity));
        }
        // A key not seen yet (a rotation): fetch the keys again, once, then decide.
        let fetched = self.refresh(index).await;
        match (attempt()?, fetched) {
            (Outcome::Verified(claims, identity), _) => Ok((*claims, identity)),
            (Outcome::UnknownKey(_), Err(error)) => Err(AuthError::InvalidToken(format!(
                "the signing keys of {} cannot be fetched right now ({error})",
                provider.settings.issuer
            ))),
            (Outcome::UnknownKey(kid), Ok(())) => Err(AuthError::InvalidToken(format!(
                "the signing key {kid:?} is not (or no longer) published by {}",
                provider.settings.issuer
            ))),
        }
    }
}

/// A console sign-in's request to a provider: where the browser goes and what it must bring
/// back.
pub struct SignInRequest<'a> {
    /// The gateway's callback URL.
    pub redirect_uri: &'a str,
    /// The CSRF check of the callback.
    pub state: &'a str,
    /// The ID token's replay check.
    pub nonce: &'a str,
    /// The PKCE challenge (S256) of the verifier the exchange sends.
    pub challenge: &'a str,
}

impl IdentityProviders {
    /// The discovery document of provider `index`, fetched now if it never was.
    async fn discovery(&self, index: usize) -> Result<Discovery, String> {
        if let Some(discovery) = self.provider(index).current().discovery.clone() {
            return Ok(discovery);
        }
        self.refresh(index).await?;
        let published = self.provider(index).current();
        published.discovery.clone().ok_or_else(|| {
            format!(
                "its discovery document could not be fetched{}",
                published
                    .error
                    .as_ref()
                    .map(|error| format!(": {error}"))
                    .unwrap_or_default()
            )
        })
    }

    /// Where to send the browser to sign in through provider `index` (code flow with PKCE).
    pub async fn authorization_url(
        &self,
        index: usize,
        request: SignInRequest<'_>,
    ) -> Result<String, String> {
        let settings = &self.provider(index).settings;
        let client_id = settings
            .client_id
            .as_deref()
            .ok_or("this provider has no client_id for console sign-in")?;
        let discovery = self.discovery(index).await?;
        let endpoint = discovery
            .authorization_endpoint
            .ok_or("the provider publishes no authorization_endpoint")?;
        let mut url = url::Url::parse(&endpoint)
            .map_err(|error| format!("its authorization_endpoint is not a URL: {error}"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", request.redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", request.state)
            .append_pair("nonce", request.nonce)
            .append_pair("code_challenge", request.challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges a console sign-in's code at provider `index`; answers the ID token.
    pub async fn exchange_code(
        &self,
        index: usize,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<String, String> {
        let settings = &self.provider(index).settings;
        let (Some(http), Some(client_id)) = (&self.http, settings.client_id.as_deref()) else {
            return Err("this provider has no client_id for console sign-in".into());
        };
        let endpoint = self
            .discovery(index)
            .await?
            .token_endpoint
            .ok_or("the provider publishes no token_endpoint")?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", client_id),
        ];
        if let Some(secret) = settings.client_secret.as_deref() {
            form.push(("client_secret", secret));
        }
        let body = serde_urlencoded::to_string(&form).map_err(|error| error.to_string())?;
        let response = http
            .post(&endpoint)
            .map_err(|denied| denied.to_string())?
            .timeout(FETCH_TIMEOUT)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| {
                format!(
                    "{endpoint}: {}",
                    crate::upstream::transport::describe(&error)
                )
            })?;
        let status = response.status();
        let bytes = crate::egress::body_within(response, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|why| format!("{endpoint}: {why}"))?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            // The provider's own OAuth error, never the code or the secret.
            return Err(format!(
                "the provider refused the code ({status}: {} {})",
                answer["error"].as_str().unwrap_or("no error code"),
                answer["error_description"].as_str().unwrap_or_default()
            ));
        }
        answer["id_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "the provider answered no id_token".to_owned())
    }
}
