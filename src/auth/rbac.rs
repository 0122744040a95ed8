//! Roles and permissions: the built-in roles, each a fixed set of fine-grained permissions, and
//! what a principal's assignments (global or per team) grant.

use std::collections::{BTreeMap, BTreeSet};

/// Every permission the gateway checks.
pub const PERMISSIONS: &[&str] = &[
    "tools.read",
    "tools.execute",
    "tools.create",
    "tools.update",
    "tools.delete",
    "resources.read",
    "resources.create",
    "resources.update",
    "resources.delete",
    "prompts.read",
    "prompts.create",
    "prompts.update",
    "prompts.delete",
    "servers.read",
    "servers.use",
    "servers.create",
    "servers.update",
    "servers.delete",
    "gateways.read",
    "gateways.create",
    "gateways.update",
    "gateways.delete",
    "teams.create",
    "teams.manage_members",
    "tokens.create",
    "tokens.read",
    "tokens.revoke",
    "users.manage",
    "admin.system",
    "audit.read",
    "config.export",
    "config.import",
];

/// The built-in roles.
pub const ROLES: &[&str] = &["platform_admin", "team_admin", "developer", "viewer"];

/// What `role` grants, or `None` for an unknown role.
pub fn role_permissions(role: &str) -> Option<BTreeSet<&'static str>> {
    let pick = |wanted: &dyn Fn(&str) -> bool| -> BTreeSet<&'static str> {
        PERMISSIONS.iter().copied().filter(|p| wanted(p)).collect()
    };
    // The audit trail names every account and what they did: platform admins only.
    let everyday = |p: &str| {
        (p.ends_with(".read") && p != "audit.read")
            || matches!(
                p,
                "tools.execute" | "servers.use" | "tokens.create" | "tokens.revoke"
            )
    };
    let authoring = |p: &str| {
        ["tools.", "resources.", "prompts.", "servers.", "gateways."]
            .iter()
            .any(|family| p.starts_with(family))
    };
    match role {
        "platform_admin" => Some(pick(&|_| true)),
        "team_admin" => Some(pick(&|p| {
            everyday(p) || authoring(p) || matches!(p, "teams.create" | "teams.manage_members")
        })),
        "developer" => Some(pick(&|p| {
            everyday(p) || authoring(p) || p == "teams.create"
        })),
        "viewer" => Some(pick(&|p| {
            p.ends_with(".read") && !matches!(p, "tokens.read" | "audit.read")
        })),
        _ => None,
    }
}

/// Who owns an item and who may see it: every tool, resource, prompt, gateway and virtual
/// server carries these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Who created it.
    pub owner_email: Option<String>,
    /// Its team.
    pub team_id: Option<String>,
    /// Who can see it.
    pub visibility: Visibility,
}

/// Who can see an item: its owner, its team's members, or everyone allowed to use the gateway.
/// Stored as `TEXT` (`crate::db::stored`); a stored value the gateway does not know fails when
/// it is read rather than falling back to some visibility.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only the owner.
    Private,
    /// The owner's team.
    Team,
    /// Everyone allowed to use the gateway.
    #[default]
    Public,
}

/// Where an assignment applies: everywhere, or to one team's items.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoleScope {
    /// Everywhere.
    Global,
    /// Items of this team.
    Team(String),
}

impl RoleScope {
    /// The stored form: `*` or the team id.
    pub fn as_stored(&self) -> &str {
        match self {
            RoleScope::Global => "*",
            RoleScope::Team(id) => id,
        }
    }

    /// From the stored form.
    pub fn from_stored(stored: &str) -> Self {
        if stored == "*" {
            RoleScope::Global
        } else {
            RoleScope::Team(stored.to_owned())
        }
    }
}

/// What a user may do: their platform-admin flag, the teams they belong to, and the
/// permissions their role assignments grant, globally and per team.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// A platform admin may do everything and sees everything.
    pub is_admin: bool,
    /// The user's personal team.
    pub personal_team: Option<String>,
    /// Teams the user belongs to, with their membership role (`owner` or `member`).
    pub teams: BTreeMap<String, String>,
    /// Permissions that apply everywhere.
    pub global: BTreeSet<&'static str>,
    /// Permissions that apply to one team's items.
    pub per_team: BTreeMap<String, BTreeSet<&'static str>>,
    /// Which account these are, for binding tokens to it.
    pub account: Account,
}

/// What a token must agree with about its account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// The account's immutable id.
    pub id: Option<String>,
    /// When it was created (a token without an id must be younger).
    pub created_at: Option<chrono::NaiveDateTime>,
    /// Sign-in tokens issued before this are refused.
    pub tokens_valid_after: Option<chrono::NaiveDateTime>,
}

impl Account {
    /// Refuses a token issued at `issued_at` (seconds) with account id `uid` that is not for
    /// this account, or a sign-in token (`sign_in`) from before the account's last reset.
    pub fn admits(
        &self,
        uid: Option<&str>,
        issued_at: i64,
        issued_at_ms: Option<i64>,
        sign_in: bool,
    ) -> Result<(), String> {
        let gone = || "the token was issued to an account that no longer exists".to_owned();
        match uid {
            Some(uid) if self.id.as_deref() != Some(uid) => return Err(gone()),
            // A token from before ids: it must be younger than the account.
            None if self
                .created_at
                .is_some_and(|created| issued_at < created.and_utc().timestamp()) =>
            {
                return Err(gone());
            }
            _ => {}
        }
        // To the millisecond when the token says when it was issued so precisely: a sign-in in
        // the same second before a password change ends with it.
        let before = |after: chrono::NaiveDateTime| match issued_at_ms {
            Some(ms) => ms < after.and_utc().timestamp_millis(),
            None => issued_at < after.and_utc().timestamp(),
        };
        if sign_in && self.tokens_valid_after.is_some_and(before) {
            return Err(
                "the account's password was changed or it was disabled after this sign-in; sign in again"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Grants {
    /// Builds the grants from stored assignments `(role, scope)`; unknown roles grant nothing,
    /// and a team-scoped role grants nothing unless the user is a member of that team.
    pub fn from_assignments(
        is_admin: bool,
        personal_team: Option<String>,
        teams: BTreeMap<String, String>,
        assignments: &[(String, String)],
    ) -> Self {
        let mut grants = Grants {
            is_admin,
            personal_team,
            teams,
            ..Grants::default()
        };
        if is_admin {
            grants.global = role_permissions("platform_admin").unwrap_or_default();
        }
        for (role, scope) in assignments {
            let Some(permissions) = role_permissions(role) else {
                continue;
            };
            match RoleScope::from_stored(scope) {
                RoleScope::Global => grants.global.extend(permissions),
                RoleScope::Team(team) if grants.teams.contains_key(&team) => {
                    grants.per_team.entry(team).or_default().extend(permissions)
                }
                RoleScope::Team(_) => {}
            }
        }
        grants
    }

    /// Whether `permission` is granted for an item of `team` (or for something without a team).
    pub fn allows(&self, permission: &str, team: Option<&str>) -> bool {
        self.global.contains(permission)
            || team
                .and_then(|team| self.per_team.get(team))
                .is_some_and(|permissions| permissions.contains(permission))
    }

    /// Whether `permission` is granted anywhere (globally or in some team).
    pub fn allows_somewhere(&self, permission: &str) -> bool {
        self.global.contains(permission)
            || self
                .per_team
                .values()
                .any(|permissions| permissions.contains(permission))
    }

    /// Whether `email`, with these grants, may see an item: platform admins see everything;
    /// others see public items, their own, and team items of their teams.
    pub fn sees(&self, email: &str, item: &Ownership) -> bool {
        self.is_admin
            || item.visibility == Visibility::Public
            || item.owner_email.as_deref() == Some(email)
            || (item.visibility == Visibility::Team
                && item
                    .team_id
                    .as_deref()
                    .is_some_and(|team| self.is_member(team)))
    }

    /// Whether `email` may change or delete an item (given the permission for it): platform
    /// admins any item; others their own items and their teams' items — seeing another user's
    /// public item is not owning it.
    pub fn may_change(&self, email: &str, item: &Ownership) -> bool {
        self.is_admin
            || item.owner_email.as_deref() == Some(email)
            || item
                .team_id
                .as_deref()
                .is_some_and(|team| self.is_member(team))
    }

    /// Whether the user belongs to `team`.
    pub fn is_member(&self, team: &str) -> bool {
        self.teams.contains_key(team)
    }

    /// Whether the user owns `team` (or administers it through a team-scoped role).
    pub fn manages(&self, team: &str) -> bool {
        self.is_admin
            || self.teams.get(team).is_some_and(|role| role == "owner")
            || self.allows("teams.manage_members", Some(team))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_nested_sensibly() {
        let admin = role_permissions("platform_admin").unwrap();
        let team_admin = role_permissions("team_admin").unwrap();
        let developer = role_permissions("developer").unwrap();
        let viewer = role_permissions("viewer").unwrap();
        assert_eq!(admin.len(), PERMISSIONS.len());
        assert!(viewer.is_subset(&developer));
        assert!(developer.is_subset(&team_admin));
        assert!(team_admin.is_subset(&admin));
        assert!(!viewer.contains("tools.execute"));
        assert!(developer.contains("tools.execute") && developer.contains("tools.create"));
        assert!(!developer.contains("users.manage") && !team_admin.contains("users.manage"));
        assert!(admin.contains("audit.read") && !team_admin.contains("audit.read"));
        assert!(role_permissions("root").is_none());
    }

    #[test]
    fn team_scoped_roles_apply_to_that_team_only() {
        let grants = Grants::from_assignments(
            false,
            None,
            BTreeMap::from([("t1".to_owned(), "member".to_owned())]),
            &[
                ("viewer".into(), "*".into()),
                ("developer".into(), "t1".into()),
            ],
        );
        assert!(grants.allows("tools.read", None));
        assert!(grants.allows("tools.create", Some("t1")));
        assert!(!grants.allows("tools.create", Some("t2")));
        assert!(!grants.allows("tools.create", None));
        assert!(grants.allows_somewhere("tools.create"));
        assert!(!grants.manages("t1"));
    }
}
