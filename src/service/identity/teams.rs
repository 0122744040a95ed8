//! Teams and their members.

use super::{
    MemberAdd, TeamCreate, TeamView, db_error, email_field, forbidden, invalidate, require,
    team_view,
};
use crate::actors::db::DbError;
use crate::auth::{AuthError, On, Principal};
use crate::db::identity::{
    AddMember, CreateTeam, DeleteTeam, GetTeam, ListTeams, MemberRow, RemoveMember, TeamRow,
};
use crate::error::ApiError;
use crate::registry::validate::{invalid, optional_text, required_text};
use crate::service::Services;
use crate::service::audit::Entry;

/// Every team for a platform admin, the principal's teams otherwise.
pub async fn list(services: &Services, principal: &Principal) -> Result<Vec<TeamView>, ApiError> {
    let member = (!principal.sees_every_item()).then(|| principal.email.clone());
    let teams = services
        .db
        .run(ListTeams { member })
        .await
        .map_err(|error| ApiError::from_db(error, "team", None))?;
    Ok(teams.into_iter().map(team_view).collect())
}

/// Creates a team the principal owns (`teams.create`).
pub async fn create(
    services: &Services,
    principal: &Principal,
    input: TeamCreate,
) -> Result<TeamView, ApiError> {
    require(principal, "teams.create")?;
    let name = required_text("name", &input.name, 200)?;
    let description = optional_text("description", input.description.as_deref(), 2000)?;
    let slug = crate::registry::gateways::slugify(&name);
    if slug.is_empty() {
        return Err(invalid("name", "needs at least one letter or digit").into());
    }
    let at = crate::db::now();
    let team = TeamRow {
        id: crate::registry::new_id(),
        name,
        slug,
        description,
        is_personal: false,
        owner_email: principal.email.clone(),
        created_at: at,
        updated_at: at,
    };
    let created = services
        .db
        .run(CreateTeam { team })
        .await
        .map_err(|error| match error {
            DbError::Conflict { .. } => ApiError::Conflict("a team with this name exists".into()),
            other => ApiError::from_db(other, "team", None),
        })?;
    invalidate(services, [principal.email.clone()]).await;
    let owner = MemberRow {
        team_id: created.id.clone(),
        email: principal.email.clone(),
        role: "owner".into(),
        joined_at: created.created_at,
    };
    let view = team_view((created, vec![owner]));
    services.audit(
        principal,
        Entry::new("teams.create", "team").id(&view.id).after(&view),
    );
    Ok(view)
}

async fn visible_team(
    services: &Services,
    principal: &Principal,
    id: &str,
) -> Result<(TeamRow, Vec<MemberRow>), ApiError> {
    let not_found = || ApiError::NotFound(format!("no team with id {id:?}"));
    let team = services
        .db
        .run(GetTeam { id: id.to_owned() })
        .await
        .map_err(db_error("team", id))?
        .ok_or_else(not_found)?;
    // A team you do not belong to does not exist for you.
    if principal.sees_every_item() || principal.team_ids().any(|team| team == id) {
        Ok(team)
    } else {
        Err(not_found())
    }
}

/// A team: for its members and platform admins.
pub async fn get(
    services: &Services,
    principal: &Principal,
    id: &str,
) -> Result<TeamView, ApiError> {
    visible_team(services, principal, id).await.map(team_view)
}

/// Deletes a team: by its owners or a platform admin.
pub async fn delete(services: &Services, principal: &Principal, id: &str) -> Result<(), ApiError> {
    let id = id.to_owned();
    let before = team_view(visible_team(services, principal, &id).await?);
    if !principal.permits("teams.manage_members", On::Team(&id)) {
        return Err(forbidden(AuthError::Forbidden(
            "only the team's owners or a platform admin may delete it".into(),
        )));
    }
    let members = services
        .db
        .run(DeleteTeam { id: id.clone() })
        .await
        .map_err(db_error("team", &id))?
        .ok_or_else(|| ApiError::NotFound(format!("no team with id {id:?}")))?;
    invalidate(services, members).await;
    services.audit(
        principal,
        Entry::new("teams.delete", "team").id(&id).before(&before),
    );
    Ok(())
}

/// Adds a member to a team the principal manages; returns the team.
pub async fn join(
    services: &Services,
    principal: &Principal,
    id: &str,
    input: MemberAdd,
) -> Result<TeamView, ApiError> {
    let id = id.to_owned();
    visible_team(services, principal, &id).await?;
    if !principal.permits("teams.manage_members", On::Team(&id)) {
        return Err(forbidden(AuthError::Forbidden(
            "only the team's owners, its team admins or a platform admin may add members".into(),
        )));
    }
    let email = email_field("email", &input.email)?;
    let role = match input.role.as_deref() {
        None | Some("member") => "member",
        Some("owner") => "owner",
        Some(_) => return Err(invalid("role", "use member or owner").into()),
    };
    services
        .db
        .run(AddMember {
            member: MemberRow {
                team_id: id.clone(),
                email: email.clone(),
                role: role.into(),
                joined_at: crate::db::now(),
            },
        })
        .await
        .map_err(db_error("team", &id))?;
    invalidate(services, [email.clone()]).await;
    let team = team_view(visible_team(services, principal, &id).await?);
    services.audit(
        principal,
        Entry::new("teams.add_member", "team")
            .id(&id)
            .name(&team.name)
            .detail(format!("{email} added as {role}")),
    );
    Ok(team)
}

/// Removes a member (by the team's managers, or the member leaving).
pub async fn remove(
    services: &Services,
    principal: &Principal,
    id: &str,
    email: &str,
) -> Result<(), ApiError> {
    let id = id.to_owned();
    let (team, _) = visible_team(services, principal, &id).await?;
    let email = email.trim().to_ascii_lowercase();
    if email != principal.email && !principal.permits("teams.manage_members", On::Team(&id)) {
        return Err(forbidden(AuthError::Forbidden(
            "only the team's owners, its team admins or a platform admin may remove members".into(),
        )));
    }
    let removed = services
        .db
        .run(RemoveMember {
            team_id: id.clone(),
            email: email.clone(),
        })
        .await
        .map_err(db_error("team", &id))?;
    if !removed {
        return Err(ApiError::NotFound(format!("{email} is not a member")));
    }
    invalidate(services, [email.clone()]).await;
    services.audit(
        principal,
        Entry::new("teams.remove_member", "team")
            .id(&id)
            .name(team.name)
            .detail(format!("{email} removed")),
    );
    Ok(())
}
