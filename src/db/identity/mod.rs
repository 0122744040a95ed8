//! Units of work for identity and access: users, teams and members, role assignments,
//! sign-in bookkeeping. Each is one short transaction run by the DbActor.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::bootstrap::UserRow;
use super::schema::{role_assignments, team_members, teams, users};
use super::{WorkError, now};
use crate::unit_of_work;

mod accounts;
mod membership;
mod roles;
mod sign_in;

pub use self::accounts::*;
pub use self::membership::*;
pub use self::roles::*;
pub use self::sign_in::*;

/// A team row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = teams)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct TeamRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub is_personal: bool,
    pub owner_email: String,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

/// A team member row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = team_members)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct MemberRow {
    pub team_id: String,
    pub email: String,
    /// `owner` or `member`.
    pub role: String,
    pub joined_at: chrono::NaiveDateTime,
}

/// A role assignment row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = role_assignments)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct RoleRow {
    pub email: String,
    pub role: String,
    /// `*` (global) or a team id.
    pub scope: String,
    pub granted_by: Option<String>,
    pub created_at: chrono::NaiveDateTime,
}

/// Everything that decides what a user may do, loaded in one short unit.
#[derive(Clone, Debug)]
pub struct IdentityRows {
    pub user: UserRow,
    pub personal_team: Option<String>,
    pub memberships: Vec<MemberRow>,
    pub roles: Vec<RoleRow>,
}

/// The rows of a new user and their personal team.
pub fn new_user(
    email: &str,
    password_hash: String,
    full_name: Option<String>,
    is_admin: bool,
) -> (UserRow, TeamRow) {
    let at = now();
    let user = UserRow {
        email: email.to_owned(),
        password_hash,
        full_name,
        is_admin,
        is_active: true,
        created_at: at,
        updated_at: at,
        failed_logins: 0,
        locked_until: None,
        password_changed_at: Some(at),
        id: Some(uuid::Uuid::new_v4().simple().to_string()),
        tokens_valid_after: None,
    };
    let id = crate::registry::new_id();
    let team = TeamRow {
        slug: format!("personal-{id}"),
        id,
        name: format!("{email} (personal)"),
        description: Some("Personal team".into()),
        is_personal: true,
        owner_email: email.to_owned(),
        created_at: at,
        updated_at: at,
    };
    (user, team)
}

unit_of_work! {
    /// Creates a user with their personal team (they own it) and a global role. An existing
    /// email is a conflict, unless `if_absent` (then nothing happens and `false` is returned).
    InsertUser { user: UserRow, personal_team: TeamRow, role: String, if_absent: bool } -> bool,
    "users.insert", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let insert = diesel::insert_into(users::table)
            .values(&this.user)
            .on_conflict_do_nothing();
        let inserted = crate::on_backend!(conn.reborrow(), c => insert.execute(c).await)?;
        if inserted == 0 {
            return if this.if_absent {
                Ok(false)
            } else {
                Err(WorkError::Conflict(format!("a user with email {:?} exists", this.user.email)))
            };
        }
        let team = diesel::insert_into(teams::table).values(&this.personal_team);
        crate::on_backend!(conn.reborrow(), c => team.execute(c).await)?;
        let member = diesel::insert_into(team_members::table).values(MemberRow {
            team_id: this.personal_team.id.clone(),
            email: this.user.email.clone(),
            role: "owner".into(),
            joined_at: this.user.created_at,
        });
        crate::on_backend!(conn.reborrow(), c => member.execute(c).await)?;
        let role = diesel::insert_into(role_assignments::table).values(RoleRow {
            email: this.user.email.clone(),
            role: this.role.clone(),
            scope: "*".into(),
            granted_by: None,
            created_at: this.user.created_at,
        });
        crate::on_backend!(conn, c => role.execute(c).await)?;
        Ok(true)
    }
}

unit_of_work! {
    /// Loads a user with their memberships and role assignments (`None`: no such user).
    LoadIdentity { email: String } -> Option<IdentityRows>,
    "identity.load", Read, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let user = crate::on_backend!(conn.reborrow(), c => {
            users::table
                .find(&this.email)
                .select(UserRow::as_select())
                .get_result(c)
                .await
                .optional()
        })?;
        let Some(user) = user else {
            return Ok(None);
        };
        let memberships = crate::on_backend!(conn.reborrow(), c => {
            team_members::table
                .filter(team_members::email.eq(&this.email))
                .select(MemberRow::as_select())
                .load(c)
                .await
        })?;
        let roles = crate::on_backend!(conn.reborrow(), c => {
            role_assignments::table
                .filter(role_assignments::email.eq(&this.email))
                .select(RoleRow::as_select())
                .load(c)
                .await
        })?;
        let personal_team = crate::on_backend!(conn, c => {
            teams::table
                .filter(teams::owner_email.eq(&this.email))
                .filter(teams::is_personal.eq(true))
                .select(teams::id)
                .first::<String>(c)
                .await
                .optional()
        })?;
        Ok(Some(IdentityRows { user, personal_team, memberships, roles }))
    }
}
