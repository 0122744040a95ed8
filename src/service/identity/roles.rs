//! Role assignments: who may grant which role where, and what a principal may do.

use super::{MyPermissions, RoleAssignment, db_error, forbidden, invalidate, role_field};
use crate::auth::rbac::{self, RoleScope};
use crate::auth::{AuthError, On, Principal};
use crate::db::identity::{AssignRole, RoleRow, UnassignRole, UpdateUser, UserChanges};
use crate::error::ApiError;
use crate::registry::validate::{invalid, required_text};
use crate::service::Services;
use crate::service::audit::Entry;

/// Who may assign `role` in `scope`: `users.manage` anywhere; a team's managers for
/// team-scoped roles other than `platform_admin`.
fn may_assign(principal: &Principal, role: &str, scope: &RoleScope) -> Result<(), ApiError> {
    let Err(denied) = principal.authorize("users.manage", On::Platform) else {
        return Ok(());
    };
    match scope {
        RoleScope::Team(team)
            if role != "platform_admin"
                && principal.permits("teams.manage_members", On::Team(team)) =>
        {
            Ok(())
        }
        _ => Err(forbidden(AuthError::Forbidden(format!(
            "{denied}: assigning this role needs users.manage (or managing the team, for a team role)"
        )))),
    }
}

/// Assigns a role to `email`; returns their grants now.
pub async fn grant(
    services: &Services,
    principal: &Principal,
    email: &str,
    input: RoleAssignment,
) -> Result<std::sync::Arc<rbac::Grants>, ApiError> {
    let email = email.to_ascii_lowercase();
    let role = role_field(&input.role)?;
    let scope = match &input.team_id {
        Some(team) => RoleScope::Team(required_text("team_id", team, 64)?),
        None => RoleScope::Global,
    };
    may_assign(principal, &role, &scope)?;
    // A team role is for the team's members only (it would grant nothing to anyone else).
    if let RoleScope::Team(team) = &scope {
        let member = services
            .auth
            .scoping()
            .grants(&email)
            .await
            .map_err(forbidden)?
            .ok_or_else(|| ApiError::NotFound(format!("no active user with email {email:?}")))?
            .is_member(team);
        if !member {
            return Err(invalid("team_id", format!("{email} is not a member of this team")).into());
        }
    }
    if role == "platform_admin" {
        if scope != RoleScope::Global {
            return Err(invalid("team_id", "platform_admin is always global").into());
        }
        services
            .db
            .run(UpdateUser {
                email: email.clone(),
                changes: UserChanges {
                    is_admin: Some(true),
                    ..UserChanges::default()
                },
            })
            .await
            .map_err(db_error("user", &email))?
            .ok_or_else(|| ApiError::NotFound(format!("no user with email {email:?}")))?;
    }
    services
        .db
        .run(AssignRole {
            row: RoleRow {
                email: email.clone(),
                role,
                scope: scope.as_stored().to_owned(),
                granted_by: Some(principal.email.clone()),
                created_at: crate::db::now(),
            },
        })
        .await
        .map_err(db_error("user", &email))?;
    invalidate(services, [email.clone()]).await;
    services.audit(
        principal,
        Entry::new("roles.grant", "user").id(&email).detail(format!(
            "{} {}",
            input.role,
            where_(&scope)
        )),
    );
    services
        .auth
        .scoping()
        .grants(&email)
        .await
        .map_err(forbidden)?
        .ok_or_else(|| ApiError::NotFound(format!("no active user with email {email:?}")))
}

/// Removes an assignment of `role` (globally, or in team `team_id`).
pub async fn revoke(
    services: &Services,
    principal: &Principal,
    email: &str,
    role: &str,
    team_id: Option<&str>,
) -> Result<(), ApiError> {
    let email = email.to_ascii_lowercase();
    let role = role_field(role)?;
    let scope = match team_id {
        Some(team) => RoleScope::Team(team.to_owned()),
        None => RoleScope::Global,
    };
    may_assign(principal, &role, &scope)?;
    let removed = services
        .db
        .run(UnassignRole {
            email: email.clone(),
            role: role.clone(),
            scope: scope.as_stored().to_owned(),
        })
        .await
        .map_err(db_error("user", &email))?;
    if !removed {
        return Err(ApiError::NotFound(format!(
            "{email} has no {role} assignment there"
        )));
    }
    invalidate(services, [email.clone()]).await;
    services.audit(
        principal,
        Entry::new("roles.revoke", "user")
            .id(&email)
            .detail(format!("{role} {}", where_(&scope))),
    );
    Ok(())
}

/// Where a role applies, in words.
fn where_(scope: &RoleScope) -> String {
    match scope {
        RoleScope::Global => "globally".to_owned(),
        RoleScope::Team(team) => format!("in team {team}"),
    }
}

/// What `email` may do, from their grants.
pub fn permissions_view(email: &str, grants: &rbac::Grants) -> MyPermissions {
    MyPermissions {
        email: email.to_owned(),
        is_admin: grants.is_admin,
        personal_team: grants.personal_team.clone(),
        teams: grants.teams.clone(),
        permissions: grants.global.iter().copied().collect(),
        team_permissions: grants
            .per_team
            .iter()
            .map(|(team, permissions)| (team.clone(), permissions.iter().copied().collect()))
            .collect(),
    }
}
