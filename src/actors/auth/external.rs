//! Tokens of external identity providers: whose keys verify them, and the account they
//! name — created just in time when the provider allows it, its teams following the user's
//! groups.

use std::sync::Arc;

use actix::prelude::*;

use super::{Auth, AuthActor, REPLY_TIMEOUT, Session};
use crate::auth::AuthError;
use crate::auth::jwt::Claims;
use crate::auth::oidc::{Expect, ExternalIdentity};
use crate::auth::rbac::Grants;

impl Auth {
    /// Signs in through provider `index` with the ID token of a console sign-in that sent
    /// `nonce`: the token verified, the account admitted (created, its teams synced), a session
    /// token signed.
    pub async fn sign_in_external(
        &self,
        index: usize,
        id_token: &str,
        nonce: &str,
    ) -> Result<Session, AuthError> {
        let provider = &self.idps.provider(index).settings;
        let client_id = provider.client_id.as_deref().ok_or_else(|| {
            AuthError::Forbidden(format!("{} is not set up for sign-in", provider.issuer))
        })?;
        let (claims, identity) = self
            .idps
            .verify(index, id_token, Expect::IdToken { client_id, nonce })
            .await?;
        let grants = self.scoping.grants(&claims.sub).await?;
        if self
            .admit_external(&claims.sub, &identity, grants)
            .await?
            .is_none()
        {
            return Err(AuthError::Forbidden(
                "the account is disabled or no longer exists".into(),
            ));
        }
        self.addr
            .send(SignInExternal { email: claims.sub })
            .timeout(REPLY_TIMEOUT)
            .await
            .map_err(|_| AuthError::Unavailable)?
    }

    /// Verifies a token's signature with this gateway's keys or, when its issuer is an external
    /// provider's, with that provider's (then with what provisioning needs).
    pub(super) async fn verify_signature(
        &self,
        bearer: &str,
    ) -> Result<(Claims, Option<ExternalIdentity>), AuthError> {
        match crate::auth::oidc::issuer_of(bearer) {
            Some(issuer) if issuer != self.keys.issuer() => {
                let index = self.idps.find(&issuer).ok_or_else(|| {
                    AuthError::InvalidToken(format!(
                        "tokens from the issuer {issuer:?} are not accepted here"
                    ))
                })?;
                let (claims, identity) = self.idps.verify(index, bearer, Expect::Access).await?;
                Ok((claims, Some(identity)))
            }
            _ => Ok((self.keys.verify(bearer)?, None)),
        }
    }

    /// The account of an external provider's user: refused if it is a platform admin's and
    /// the provider may not sign admins in; created when the provider provisions accounts and
    /// there is none; its teams and roles made to follow the user's groups when a token newer
    /// than the last one says they changed (a database write only then).
    pub(super) async fn admit_external(
        &self,
        email: &str,
        external: &ExternalIdentity,
        grants: Option<Arc<Grants>>,
    ) -> Result<Option<Arc<Grants>>, AuthError> {
        let provider = &self.idps.provider(external.provider).settings;
        if grants.as_ref().is_some_and(|grants| grants.is_admin) && !provider.allow_admins {
            return Err(AuthError::Forbidden(format!(
                "{email} is a platform admin here, and {} may not sign in platform admins (allow_admins is off)",
                provider.issuer
            )));
        }
        let create = grants.is_none() && provider.provision;
        // Groups as the newest token says: an older token still in use does not undo a change.
        let key = (external.provider, email.to_owned());
        let sync = (!provider.teams.is_empty() || !provider.roles.is_empty())
            && self.synced.get(&key).is_none_or(|synced| {
                let (issued_at, groups) = &*synced;
                external.issued_at >= *issued_at && *groups != external.groups
            });
        if grants.is_none() && !provider.provision {
            return Err(AuthError::InvalidToken(format!(
                "{} signed in {email}, who has no account here; an admin creates accounts (just-in-time provisioning is off for this provider)",
                provider.issuer
            )));
        }
        if !create && !sync {
            return Ok(grants);
        }
        let mapped = |map: &std::collections::BTreeMap<String, String>| -> Vec<String> {
            external
                .groups
                .iter()
                .filter_map(|group| map.get(group).cloned())
                .collect()
        };
        let wanted = mapped(&provider.teams);
        let wanted_roles = mapped(&provider.roles);
        self.addr
            .send(Provision {
                email: email.to_owned(),
                name: external.name.clone(),
                create,
                wanted,
                managed: provider.teams.values().cloned().collect(),
                wanted_roles,
                managed_roles: provider.roles.values().cloned().collect(),
                granted_by: format!("oidc:{}", provider.issuer),
            })
            .timeout(REPLY_TIMEOUT)
            .await
            .map_err(|_| AuthError::Unavailable)??;
        if self.synced.len() > 100_000 {
            self.synced.clear();
        }
        self.synced
            .insert(key, (external.issued_at, external.groups.clone()));
        self.scoping.grants(email).await
    }
}

/// Creates the account of an externally signed-in user (`create`) and makes their teams and
/// roles follow their groups.
pub struct Provision {
    /// The account's email.
    pub email: String,
    /// The user's name, for a new account.
    pub name: Option<String>,
    /// Whether to create the account if there is none.
    pub create: bool,
    /// The slugs of the teams the user's groups map to.
    pub wanted: Vec<String>,
    /// The slugs of every team the provider's groups map to.
    pub managed: Vec<String>,
    /// The global roles the user's groups map to.
    pub wanted_roles: Vec<String>,
    /// Every role the provider's groups map to.
    pub managed_roles: Vec<String>,
    /// Who gives those roles (`oidc:<issuer>`).
    pub granted_by: String,
}

impl Message for Provision {
    type Result = Result<(), AuthError>;
}

impl Handler<Provision> for AuthActor {
    type Result = ResponseFuture<Result<(), AuthError>>;

    fn handle(&mut self, message: Provision, _ctx: &mut Context<Self>) -> Self::Result {
        let db = self.db.clone();
        let scoping = self.scoping.clone();
        let role = self.identity.default_role.clone();
        Box::pin(async move {
            let unavailable = |error: crate::actors::db::DbError| {
                tracing::warn!(%error, "an external sign-in could not update the account");
                AuthError::Unavailable
            };
            if message.create {
                // No password: the account signs in through its provider (or after a reset).
                let (user, personal_team) = crate::db::identity::new_user(
                    &message.email,
                    "!external".into(),
                    message.name.clone(),
                    false,
                );
                let created = db
                    .run(crate::db::identity::InsertUser {
                        user,
                        personal_team,
                        role,
                        if_absent: true,
                    })
                    .await
                    .map_err(unavailable)?;
                if created {
                    tracing::info!(email = %message.email, "account created for an external sign-in");
                }
            }
            if !message.managed.is_empty() {
                db.run(crate::db::identity::SyncTeams {
                    email: message.email.clone(),
                    wanted: message.wanted,
                    managed: message.managed,
                })
                .await
                .map_err(unavailable)?;
            }
            if !message.managed_roles.is_empty() {
                db.run(crate::db::identity::SyncGrantedRoles {
                    email: message.email.clone(),
                    wanted: message.wanted_roles,
                    managed: message.managed_roles,
                    granted_by: message.granted_by,
                })
                .await
                .map_err(unavailable)?;
            }
            scoping.invalidate(Some(message.email)).await;
            Ok(())
        })
    }
}

/// A session for an account a provider signed in (its ID token verified by the caller).
struct SignInExternal {
    email: String,
}

impl Message for SignInExternal {
    type Result = Result<Session, AuthError>;
}

impl Handler<SignInExternal> for AuthActor {
    type Result = ResponseFuture<Result<Session, AuthError>>;

    fn handle(&mut self, message: SignInExternal, _ctx: &mut Context<Self>) -> Self::Result {
        let db = self.db.clone();
        let keys = self.keys.clone();
        let expiry = self.identity.token_expiry;
        Box::pin(async move {
            let user = db
                .run(crate::db::bootstrap::FindUser {
                    email: message.email.clone(),
                })
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "an external sign-in could not read the account");
                    AuthError::Unavailable
                })?
                .filter(|user| user.is_active)
                .ok_or_else(|| {
                    AuthError::Forbidden("the account is disabled or no longer exists".into())
                })?;
            let access_token = keys
                .issue_for(&user.email, user.id.as_deref(), user.is_admin, expiry)
                .map_err(|error| {
                    tracing::error!(%error, "cannot sign a token");
                    AuthError::Unavailable
                })?;
            tracing::info!(email = %user.email, "signed in through an identity provider");
            Ok(Session {
                access_token,
                expires_in: expiry,
                user,
            })
        })
    }
}
