//! Tokens, passwords and the one authorization decision point.
//!
//! Every REST, MCP, console and admin operation asks [`Principal::authorize`] (or its boolean
//! twin [`Principal::permits`]) with the permission and what it is about ([`On`]). The decision
//! combines the account's grants (global and per team) with an API token's scope (its
//! permission subset and server restriction; its address and time limits are checked when the
//! token is authenticated). No other code reads a principal's grants or scope: the fields are
//! private to this module.

pub mod jwt;
pub mod oidc;
pub mod password;
pub mod rbac;
pub mod scope;
pub mod usage;
pub mod verified;

use std::sync::Arc;

/// Who is making a request, once their credentials are verified, with what they may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user's email (the token's `sub`).
    pub email: String,
    /// The token's id (`jti`).
    pub token_id: String,
    /// When the token expires.
    pub token_expires_at: Option<chrono::NaiveDateTime>,
    /// Their teams and role grants (cached by the ScopingActor).
    grants: Arc<rbac::Grants>,
    /// For an API token, its restrictions.
    scope: Option<Arc<scope::TokenScope>>,
    /// Where the request came from (for the audit trail).
    pub origin: Origin,
    /// For an OAuth access token, the one MCP endpoint (URL) it is for (RFC 8707).
    pub resource: Option<String>,
}

/// Where a request came from: the client's address (as the trusted proxies report it) and the
/// request id echoed in `X-Request-Id`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address.
    pub client: Option<std::net::IpAddr>,
    /// The request id.
    pub request_id: Option<String>,
}

/// What an operation is about.
#[derive(Clone, Copy, Debug)]
pub enum On<'a> {
    /// The platform as a whole: users, tokens, teams, the admin API, MCP admission. Only a
    /// global grant counts; a team-scoped role never does.
    Platform,
    /// Listing: the permission granted anywhere (each listed item is then checked with
    /// [`On::Item`]).
    Anywhere,
    /// One team itself: its members and the roles given inside it.
    Team(&'a str),
    /// A new item, in a team (`Some`) or in none.
    NewItem(Option<&'a str>),
    /// An existing item: the principal must see it; `*.update` and `*.delete` also need to
    /// own it, be in its team, or be a platform admin.
    Item(&'a rbac::Ownership),
}

/// Why [`Principal::authorize`] said no.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The item is not visible to the principal: callers answer as if it did not exist.
    #[error("not found")]
    NotVisible,
    /// The account's roles do not grant the permission here.
    #[error("your roles do not grant {permission}{}", .team.as_ref().map(|team| format!(" in team {team}")).unwrap_or_default())]
    Role {
        /// The permission.
        permission: String,
        /// The team it was asked for.
        team: Option<String>,
    },
    /// The permission is granted only inside teams, and this operation needs a global grant.
    #[error("{permission} is granted to you only inside teams; this needs a global role")]
    NotGlobal {
        /// The permission.
        permission: String,
    },
    /// The API token's permission list leaves the permission out.
    #[error("this token's scope does not include {permission}")]
    TokenScope {
        /// The permission.
        permission: String,
    },
    /// The API token is for one virtual server's MCP endpoints only.
    #[error("this token is restricted to the MCP endpoints of server {server}")]
    ServerToken {
        /// The server.
        server: String,
    },
    /// The item is someone else's.
    #[error(
        "this item belongs to {owner}; only its owner, its team or a platform admin may change it"
    )]
    NotOwner {
        /// Its owner.
        owner: String,
    },
    /// The team is not one of the principal's.
    #[error("you are not a member of team {team}")]
    NotMember {
        /// The team.
        team: String,
    },
}

impl From<Denied> for AuthError {
    fn from(denied: Denied) -> Self {
        AuthError::Forbidden(denied.to_string())
    }
}

/// Whether a permission changes an item (as opposed to reading or using it).
fn changes(permission: &str) -> bool {
    permission.ends_with(".update") || permission.ends_with(".delete")
}

impl Principal {
    /// A principal with these grants; `scope` for an API token.
    pub fn new(
        email: String,
        token_id: String,
        token_expires_at: Option<chrono::NaiveDateTime>,
        grants: Arc<rbac::Grants>,
        scope: Option<Arc<scope::TokenScope>>,
    ) -> Self {
        Principal {
            email,
            token_id,
            token_expires_at,
            grants,
            scope,
            origin: Origin::default(),
            resource: None,
        }
    }

    /// THE authorization decision: may this principal use `permission` on `on`?
    pub fn authorize(&self, permission: &str, on: On<'_>) -> Result<(), Denied> {
        let role = |team: Option<&str>| Denied::Role {
            permission: permission.to_owned(),
            team: team.map(str::to_owned),
        };
        match on {
            On::Platform => {
                if let Some(server) = self.server_restriction() {
                    return Err(Denied::ServerToken {
                        server: server.to_owned(),
                    });
                }
                if !self.grants.allows(permission, None) {
                    return Err(if self.grants.allows_somewhere(permission) {
                        Denied::NotGlobal {
                            permission: permission.to_owned(),
                        }
                    } else {
                        role(None)
                    });
                }
            }
            On::Anywhere => {
                if !self.grants.allows_somewhere(permission) {
                    return Err(role(None));
                }
            }
            On::Team(team) => {
                if !self.grants.is_admin && !self.grants.is_member(team) {
                    return Err(Denied::NotMember {
                        team: team.to_owned(),
                    });
                }
                if !self.grants.manages(team) {
                    return Err(role(Some(team)));
                }
            }
            On::NewItem(team) => {
                if let Some(team) = team
                    && !self.grants.is_admin
                    && !self.grants.is_member(team)
                {
                    return Err(Denied::NotMember {
                        team: team.to_owned(),
                    });
                }
                if !self.grants.allows(permission, team) {
                    return Err(role(team));
                }
            }
            On::Item(item) => {
                if !self.grants.sees(&self.email, item) {
                    return Err(Denied::NotVisible);
                }
                let team = item.team_id.as_deref();
                if !self.grants.allows(permission, team) {
                    return Err(role(team));
                }
                if changes(permission) && !self.grants.may_change(&self.email, item) {
                    return Err(Denied::NotOwner {
                        owner: item
                            .owner_email
                            .clone()
                            .unwrap_or_else(|| "someone else".into()),
                    });
                }
            }
        }
        if self
            .scope
            .as_ref()
            .is_some_and(|scope| !scope.keeps(permission))
        {
            return Err(Denied::TokenScope {
                permission: permission.to_owned(),
            });
        }
        Ok(())
    }

    /// Whether the principal may see an item at all (looking it up by name before the operation
    /// on it is authorized).
    pub fn sees(&self, item: &rbac::Ownership) -> bool {
        self.grants.sees(&self.email, item)
    }

    /// [`Principal::authorize`] as a yes or no.
    pub fn permits(&self, permission: &str, on: On<'_>) -> bool {
        self.authorize(permission, on).is_ok()
    }

    /// Whether this principal sees every item (a platform admin's account), for list queries
    /// that filter in the database; each item is still subject to [`Principal::authorize`].
    pub fn sees_every_item(&self) -> bool {
        self.grants.is_admin
    }

    /// The teams the account belongs to (for list queries that filter in the database).
    pub fn team_ids(&self) -> impl Iterator<Item = &str> {
        self.grants.teams.keys().map(String::as_str)
    }

    /// The teams the account shares with others (every team but its personal one).
    pub fn shared_team_ids(&self) -> impl Iterator<Item = &str> {
        let personal = self.grants.personal_team.as_deref();
        self.team_ids().filter(move |team| Some(*team) != personal)
    }

    /// The account's grants, for showing them (`GET /rbac/my/permissions`); decisions go
    /// through [`Principal::authorize`].
    pub fn grants_for_display(&self) -> &rbac::Grants {
        &self.grants
    }

    /// The same principal with its account's grants read again (after a change to them).
    pub fn with_grants(mut self, grants: Arc<rbac::Grants>) -> Self {
        self.grants = grants;
        self
    }

    /// The account's immutable id (tokens issued for it carry it).
    pub fn account_id(&self) -> Option<&str> {
        self.grants.account.id.as_deref()
    }

    /// Whether this is an API token (`POST /tokens`) rather than an interactive sign-in.
    pub fn is_api_token(&self) -> bool {
        self.scope.is_some()
    }

    /// The virtual server an API token is restricted to, if any.
    pub fn server_restriction(&self) -> Option<&str> {
        self.scope
            .as_ref()
            .and_then(|scope| scope.server_id.as_deref())
    }
}

/// Why a request could not be authenticated or authorised.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No credentials were sent.
    #[error("authentication required: send Authorization: Bearer <token>")]
    MissingCredentials,
    /// The credentials were sent but are not valid (bad signature, expired, wrong audience…).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A sign-in that failed: unknown email, wrong password, locked or disabled account — one
    /// answer for all, so it tells an attacker nothing.
    #[error(
        "sign-in failed: the email or password is not correct, or the account is locked or disabled"
    )]
    BadCredentials,
    /// Too many sign-in attempts from one address (or for one account at once): wait.
    #[error("too many sign-in attempts; try again in {} seconds", .retry_after.as_secs().max(1))]
    Locked {
        /// When to try again.
        retry_after: std::time::Duration,
    },
    /// The principal is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The auth actor could not answer.
    #[error("authentication is unavailable right now")]
    Unavailable,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use rbac::{Grants, Ownership};

    fn principal(grants: Grants, scope: Option<scope::TokenScope>) -> Principal {
        Principal::new(
            "dev@example.com".into(),
            "jti".into(),
            None,
            Arc::new(grants),
            scope.map(Arc::new),
        )
    }

    fn developer_in(team: &str, role_team: &str) -> Grants {
        Grants::from_assignments(
            false,
            None,
            BTreeMap::from([(team.to_owned(), "member".to_owned())]),
            &[
                ("viewer".into(), "*".into()),
                ("developer".into(), role_team.into()),
            ],
        )
    }

    #[test]
    fn team_roles_grant_only_inside_their_team() {
        let member = principal(developer_in("t1", "t1"), None);
        assert!(member.permits("tools.create", On::NewItem(Some("t1"))));
        assert!(!member.permits("tools.create", On::NewItem(None)));
        // A team role never counts for platform operations.
        assert_eq!(
            member.authorize("tokens.create", On::Platform),
            Err(Denied::NotGlobal {
                permission: "tokens.create".into()
            })
        );
        // A role in a team the account is not a member of grants nothing.
        let outsider = principal(developer_in("t1", "t2"), None);
        assert!(!outsider.permits("tools.create", On::NewItem(Some("t2"))));
        assert!(!outsider.permits("tools.create", On::Anywhere));
    }

    #[test]
    fn token_scope_limits_every_kind_of_operation() {
        let admin = Grants::from_assignments(true, None, BTreeMap::new(), &[]);
        let scoped = principal(
            admin.clone(),
            Some(scope::TokenScope {
                permissions: Some(vec!["tools.read".into()]),
                ..Default::default()
            }),
        );
        assert!(scoped.permits("tools.read", On::Anywhere));
        for permission in ["users.manage", "admin.system", "tokens.revoke"] {
            assert_eq!(
                scoped.authorize(permission, On::Platform),
                Err(Denied::TokenScope {
                    permission: permission.into()
                })
            );
        }
        assert!(!scoped.permits("teams.manage_members", On::Team("t9")));
        let for_server = principal(
            admin,
            Some(scope::TokenScope {
                server_id: Some("s1".into()),
                ..Default::default()
            }),
        );
        assert!(matches!(
            for_server.authorize("users.manage", On::Platform),
            Err(Denied::ServerToken { .. })
        ));
    }

    #[test]
    fn items_need_visibility_and_ownership_to_change() {
        let viewer = principal(developer_in("t1", "t1"), None);
        let foreign_public = Ownership {
            owner_email: Some("other@example.com".into()),
            team_id: None,
            visibility: rbac::Visibility::Public,
        };
        let foreign_private = Ownership {
            visibility: rbac::Visibility::Private,
            ..foreign_public.clone()
        };
        assert!(viewer.permits("tools.read", On::Item(&foreign_public)));
        assert_eq!(
            viewer.authorize("tools.read", On::Item(&foreign_private)),
            Err(Denied::NotVisible)
        );
        let team_item = Ownership {
            team_id: Some("t1".into()),
            visibility: rbac::Visibility::Team,
            ..foreign_public.clone()
        };
        assert!(viewer.permits("tools.update", On::Item(&team_item)));
    }
}
