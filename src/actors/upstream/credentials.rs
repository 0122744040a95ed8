//! Tokens for upstreams protected by OAuth: the gateway's own (client credentials), fetched on
//! first use, kept in memory and renewed before they expire; and each user's own (the
//! authorization code flow the user went through in the console), sealed in the database,
//! cached, and refreshed before they expire. A client's own token is never what goes upstream.
//! One renewal at a time per token: concurrent calls wait for it rather than each asking.

use std::sync::Arc;

use dashmap::DashMap;

use crate::actors::db::Db;
use crate::db::upstream_tokens::{DeleteUpstreamToken, GetUpstreamToken, PutUpstreamToken};
use crate::secrets::SecretBox;
use crate::upstream::oauth::{self, Flow, OAuthConfig, OAuthError, Tokens};

/// How long an assertion of a user's identity is valid (it is spent at once).
const ASSERTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

/// Users' tokens kept in memory at most (the database holds them all).
const CACHED_USERS: usize = 10_000;

/// One token and the lock its renewal takes.
type Slot = Arc<tokio::sync::Mutex<Option<Tokens>>>;

/// Why no token could be presented.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// The upstream authenticates each user and this one has not connected (or their
    /// connection ended): where to connect.
    #[error(
        "{upstream} needs your own authorization: connect your account in the console at /admin/upstreams/{gateway_id}/connect{why}"
    )]
    NotConnected {
        /// The upstream's name.
        upstream: String,
        /// Its id.
        gateway_id: String,
        /// Why again, when a connection ended.
        why: String,
    },
    /// The authorization server refused or could not be reached.
    #[error("{upstream}'s authorization server: {error}")]
    Server {
        /// The upstream's name.
        upstream: String,
        /// What happened.
        error: OAuthError,
    },
}

/// Tokens for OAuth-protected upstreams.
pub struct Credentials {
    http: crate::egress::HttpClient,
    /// Signs the gateway's assertions of who a user is (token exchange).
    keys: Arc<crate::auth::jwt::JwtKeys>,
    db: Db,
    secrets: SecretBox,
    own: DashMap<String, Slot>,
    users: DashMap<(String, String), Slot>,
}

impl Credentials {
    /// Nothing fetched yet.
    pub fn new(
        http: crate::egress::HttpClient,
        keys: Arc<crate::auth::jwt::JwtKeys>,
        db: Db,
        secrets: SecretBox,
    ) -> Self {
        Credentials {
            http,
            keys,
            db,
            secrets,
            own: DashMap::new(),
            users: DashMap::new(),
        }
    }

    /// The access token to present to `gateway_id` for `user` (the gateway's own, or the
    /// user's), renewed first when it is about to expire.
    pub async fn bearer(
        &self,
        gateway_id: &str,
        upstream: &str,
        config: &OAuthConfig,
        user: Option<&str>,
    ) -> Result<String, CredentialError> {
        let server = |error| CredentialError::Server {
            upstream: upstream.to_owned(),
            error,
        };
        let now = chrono::Utc::now().timestamp();
        match config.flow {
            Flow::ClientCredentials => {
                let slot = self.own.entry(gateway_id.to_owned()).or_default().clone();
                let mut held = slot.lock().await;
                if let Some(tokens) = held.as_ref().filter(|tokens| !tokens.due(now)) {
                    return Ok(tokens.access_token.clone());
                }
                let tokens = oauth::client_credentials(&self.http, config)
                    .await
                    .map_err(server)?;
                let token = tokens.access_token.clone();
                *held = Some(tokens);
                Ok(token)
            }
            Flow::TokenExchange => {
                let user = user.ok_or_else(|| CredentialError::NotConnected {
                    upstream: upstream.to_owned(),
                    gateway_id: gateway_id.to_owned(),
                    why: " (calls without a user cannot be exchanged)".into(),
                })?;
                let slot = self.user_slot(gateway_id, user);
                let mut held = slot.lock().await;
                if let Some(tokens) = held.as_ref().filter(|tokens| !tokens.due(now)) {
                    return Ok(tokens.access_token.clone());
                }
                let audience = config
                    .audience
                    .as_deref()
                    .or(config.issuer.as_deref())
                    .unwrap_or(&config.token_endpoint);
                // Never an audience the gateway itself answers to.
                if audience == self.keys.audience() || audience == self.keys.issuer() {
                    return Err(server(OAuthError::Failed(
                        "the assertion's audience is the gateway's own".into(),
                    )));
                }
                let assertion = self
                    .keys
                    .issue_assertion(user, audience, ASSERTION_LIFETIME)
                    .map_err(|why| server(OAuthError::Failed(why)))?;
                let tokens = oauth::exchange_assertion(&self.http, config, &assertion)
                    .await
                    .map_err(server)?;
                let token = tokens.access_token.clone();
                *held = Some(tokens);
                Ok(token)
            }
            Flow::User => {
                let not_connected = |why: &str| CredentialError::NotConnected {
                    upstream: upstream.to_owned(),
                    gateway_id: gateway_id.to_owned(),
                    why: why.to_owned(),
                };
                let user = user.ok_or_else(|| not_connected(""))?;
                let slot = self.user_slot(gateway_id, user);
                let mut held = slot.lock().await;
                if held.is_none() {
                    *held = self.stored(gateway_id, user).await;
                }
                let tokens = held.as_ref().ok_or_else(|| not_connected(""))?;
                if !tokens.due(now) {
                    return Ok(tokens.access_token.clone());
                }
                let Some(refresh_token) = tokens.refresh_token.clone() else {
                    *held = None;
                    self.forget(gateway_id, user).await;
                    return Err(not_connected(" (your authorization expired)"));
                };
                match oauth::refresh(&self.http, config, &refresh_token).await {
                    Ok(tokens) => {
                        self.store(gateway_id, user, &tokens).await;
                        let token = tokens.access_token.clone();
                        *held = Some(tokens);
                        Ok(token)
                    }
                    Err(OAuthError::Refused(why)) => {
                        *held = None;
                        self.forget(gateway_id, user).await;
                        Err(not_connected(&format!(
                            " (the authorization server no longer renews it: {why})"
                        )))
                    }
                    Err(error) => Err(server(error)),
                }
            }
        }
    }

    /// Keeps a user's new tokens (after the code flow).
    pub async fn connected(&self, gateway_id: &str, user: &str, tokens: Tokens) {
        self.store(gateway_id, user, &tokens).await;
        *self.user_slot(gateway_id, user).lock().await = Some(tokens);
    }

    /// Forgets a user's tokens for an upstream (they disconnected); whether they had any.
    pub async fn disconnect(&self, gateway_id: &str, user: &str) -> bool {
        *self.user_slot(gateway_id, user).lock().await = None;
        self.forget(gateway_id, user).await
    }

    /// Forgets the gateway's own token for an upstream (its configuration changed).
    pub fn reset(&self, gateway_id: &str) {
        self.own.remove(gateway_id);
        self.users.retain(|(gateway, _), _| gateway != gateway_id);
    }

    fn user_slot(&self, gateway_id: &str, user: &str) -> Slot {
        let key = (gateway_id.to_owned(), user.to_owned());
        if let Some(slot) = self.users.get(&key) {
            return slot.clone();
        }
        if self.users.len() >= CACHED_USERS {
            // A cache: the database has them all. Entries being renewed stay (their lock is
            // held), so no two renewals of one refresh token race.
            self.users.retain(|_, slot| slot.try_lock().is_err());
        }
        self.users.entry(key).or_default().clone()
    }

    /// A user's stored tokens, opened.
    async fn stored(&self, gateway_id: &str, user: &str) -> Option<Tokens> {
        let sealed = self
            .db
            .run(GetUpstreamToken {
                gateway_id: gateway_id.to_owned(),
                user_email: user.to_owned(),
            })
            .await
            .map_err(|error| tracing::warn!(%error, "could not read a user's upstream token"))
            .ok()??;
        let plain = self
            .secrets
            .open(&sealed)
            .map_err(|_| tracing::warn!(gateway.id = %gateway_id, "a user's upstream token does not decrypt"))
            .ok()?;
        serde_json::from_str(&plain).ok()
    }

    async fn store(&self, gateway_id: &str, user: &str, tokens: &Tokens) {
        let sealed = self
            .secrets
            .seal(&serde_json::to_string(tokens).unwrap_or_default());
        let stored = self
            .db
            .run(PutUpstreamToken {
                gateway_id: gateway_id.to_owned(),
                user_email: user.to_owned(),
                sealed,
            })
            .await;
        if let Err(error) = stored {
            tracing::warn!(gateway.id = %gateway_id, %error, "could not store a user's upstream token");
        }
    }

    async fn forget(&self, gateway_id: &str, user: &str) -> bool {
        self.db
            .run(DeleteUpstreamToken {
                gateway_id: gateway_id.to_owned(),
                user_email: user.to_owned(),
            })
            .await
            .unwrap_or(false)
    }

    /// Forgets every cached token of a user (their account was deleted or disabled: a new
    /// account of the same email inherits nothing).
    pub fn forget_user(&self, user: &str) {
        self.users.retain(|(_, email), _| email != user);
    }

    /// Whether the gateway can assert who a user is to another party (its tokens are signed
    /// with a key pair).
    pub fn can_assert(&self) -> bool {
        self.keys.is_asymmetric()
    }

    /// The HTTP client (the egress policy) the authorization servers are reached with.
    pub fn http(&self) -> &crate::egress::HttpClient {
        &self.http
    }
}
