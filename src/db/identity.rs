//! Units of work for identity and access: users, teams and members, role assignments,
//! sign-in bookkeeping. Each is one short transaction run by the DbActor.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::bootstrap::UserRow;
use super::schema::{role_assignments, team_members, teams, users};
use super::{WorkError, now};
use crate::unit_of_work;

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

unit_of_work! {
    /// How many users there are.
    CountUsers { } -> i64,
    "users.count", Read, transactional = false,
    |_this, conn| {
        let count = crate::on_backend!(conn, c => users::table.count().get_result::<i64>(c).await)?;
        Ok(count)
    }
}

unit_of_work! {
    /// Users in email order after `after`, at most `limit`.
    ListUsers { after: Option<String>, limit: i64 } -> Vec<UserRow>,
    "users.list", Read, transactional = false,
    |this, conn| {
        let rows = crate::on_backend!(conn, c => {
            let mut query = users::table
                .select(UserRow::as_select())
                .order(users::email.asc())
                .limit(this.limit)
                .into_boxed();
            if let Some(after) = &this.after {
                query = query.filter(users::email.gt(after));
            }
            query.load(c).await
        })?;
        Ok(rows)
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserChanges {
    pub full_name: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub password_hash: Option<String>,
}

unit_of_work! {
    /// Updates a user; `None` when there is no such user.
    UpdateUser { email: String, changes: UserChanges } -> Option<UserRow>,
    "users.update", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let at = now();
        let changes = &this.changes;
        let target = users::table.find(&this.email);
        if let Some(full_name) = &changes.full_name {
            let update = diesel::update(target).set(users::full_name.eq(full_name));
            crate::on_backend!(conn.reborrow(), c => update.execute(c).await)?;
        }
        if let Some(is_active) = changes.is_active {
            let update = diesel::update(target).set(users::is_active.eq(is_active));
            crate::on_backend!(conn.reborrow(), c => update.execute(c).await)?;
        }
        // A new password or a disable ends every sign-in made before.
        if changes.password_hash.is_some() || changes.is_active == Some(false) {
            let update = diesel::update(target).set(users::tokens_valid_after.eq(Some(at)));
            crate::on_backend!(conn.reborrow(), c => update.execute(c).await)?;
        }
        if let Some(is_admin) = changes.is_admin {
            let update = diesel::update(target).set(users::is_admin.eq(is_admin));
            crate::on_backend!(conn.reborrow(), c => update.execute(c).await)?;
        }
        if let Some(hash) = &changes.password_hash {
            let update = diesel::update(target).set((
                users::password_hash.eq(hash),
                users::password_changed_at.eq(Some(at)),
                users::failed_logins.eq(0),
                users::locked_until.eq(None::<chrono::NaiveDateTime>),
            ));
            crate::on_backend!(conn.reborrow(), c => update.execute(c).await)?;
        }
        let touched = diesel::update(target).set(users::updated_at.eq(at));
        let updated = crate::on_backend!(conn.reborrow(), c => touched.execute(c).await)?;
        if updated == 0 {
            return Ok(None);
        }
        let row = crate::on_backend!(conn, c => {
            target.select(UserRow::as_select()).get_result(c).await
        })?;
        Ok(Some(row))
    }
}

unit_of_work! {
    /// Deletes a user (their personal team, memberships, roles and tokens go with them);
    /// whether one was deleted. The last active platform admin cannot be deleted.
    DeleteUser { email: String } -> bool,
    "users.delete", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let other_admins = crate::on_backend!(conn.reborrow(), c => {
            users::table
                .filter(users::is_admin.eq(true))
                .filter(users::is_active.eq(true))
                .filter(users::email.ne(&this.email))
                .count()
                .get_result::<i64>(c)
                .await
        })?;
        let is_admin = crate::on_backend!(conn.reborrow(), c => {
            users::table
                .find(&this.email)
                .select(users::is_admin)
                .get_result::<bool>(c)
                .await
                .optional()
        })?;
        match is_admin {
            None => return Ok(false),
            Some(true) if other_admins == 0 => {
                return Err(WorkError::Conflict(
                    "the last active platform admin cannot be deleted".into(),
                ));
            }
            Some(_) => {}
        }
        let roles = diesel::delete(role_assignments::table.filter(role_assignments::email.eq(&this.email)));
        crate::on_backend!(conn.reborrow(), c => roles.execute(c).await)?;
        let deleted = diesel::delete(users::table.find(&this.email));
        let deleted = crate::on_backend!(conn, c => deleted.execute(c).await)?;
        Ok(deleted == 1)
    }
}

/// What a sign-in attempt found.
#[derive(Clone, Debug)]
pub enum LoginRecord {
    /// The password matched: failures are forgotten.
    Success,
    /// It did not: one more failure, and a lockout of `lockout` after `max_failures`.
    Failure {
        max_failures: i32,
        lockout: chrono::TimeDelta,
    },
}

unit_of_work! {
    /// Records a sign-in attempt; returns the lock's end when this failure locked the account.
    RecordLogin { email: String, record: LoginRecord } -> Option<chrono::NaiveDateTime>,
    "users.record_login", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let target = users::table.find(&this.email);
        match &this.record {
            LoginRecord::Success => {
                let update = diesel::update(target).set((
                    users::failed_logins.eq(0),
                    users::locked_until.eq(None::<chrono::NaiveDateTime>),
                ));
                crate::on_backend!(conn, c => update.execute(c).await)?;
                Ok(None)
            }
            LoginRecord::Failure { max_failures, lockout } => {
                // The attempt was counted when it was claimed.
                let failures = crate::on_backend!(conn.reborrow(), c => {
                    target.select(users::failed_logins).get_result::<i32>(c).await.optional()
                })?;
                let Some(failures) = failures else {
                    return Ok(None);
                };
                if failures >= *max_failures {
                    let until = now() + *lockout;
                    let update = diesel::update(target).set((
                        users::failed_logins.eq(0),
                        users::locked_until.eq(Some(until)),
                    ));
                    crate::on_backend!(conn, c => update.execute(c).await)?;
                    Ok(Some(until))
                } else {
                    Ok(None)
                }
            }
        }
    }
}

/// What counting a sign-in attempt found.
#[derive(Clone, Debug)]
pub enum LoginClaim {
    /// Check the password of this account.
    Proceed(UserRow),
    /// The account is locked (or just became so): refuse without checking.
    Locked,
    /// No such account.
    Unknown,
}

unit_of_work! {
    /// Counts a sign-in attempt *before* its password is checked, with one atomic increment,
    /// so concurrent guesses (on any replica) are all counted: an account whose attempts since
    /// its last success pass `max_failures` is locked for `lockout` and the attempt is refused
    /// unchecked.
    ClaimLogin { email: String, max_failures: i32, lockout: chrono::TimeDelta } -> LoginClaim,
    "users.claim_login", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let at = now();
        let target = users::table.find(&this.email);
        let count = diesel::update(
            target.filter(users::locked_until.is_null().or(users::locked_until.le(at))),
        )
        .set(users::failed_logins.eq(users::failed_logins + 1));
        let counted = crate::on_backend!(conn.reborrow(), c => count.execute(c).await)?;
        let user = crate::on_backend!(conn.reborrow(), c => {
            target.select(UserRow::as_select()).get_result(c).await.optional()
        })?;
        let Some(user) = user else {
            return Ok(LoginClaim::Unknown);
        };
        if counted == 0 {
            return Ok(LoginClaim::Locked);
        }
        if user.failed_logins > this.max_failures {
            let lock = diesel::update(target).set((
                users::failed_logins.eq(0),
                users::locked_until.eq(Some(at + this.lockout)),
            ));
            crate::on_backend!(conn, c => lock.execute(c).await)?;
            return Ok(LoginClaim::Locked);
        }
        Ok(LoginClaim::Proceed(user))
    }
}

unit_of_work! {
    /// Creates a team owned by its creator, who becomes its first member (`owner`).
    CreateTeam { team: TeamRow } -> TeamRow,
    "teams.create", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let insert = diesel::insert_into(teams::table).values(&this.team);
        crate::on_backend!(conn.reborrow(), c => insert.execute(c).await)?;
        let member = diesel::insert_into(team_members::table).values(MemberRow {
            team_id: this.team.id.clone(),
            email: this.team.owner_email.clone(),
            role: "owner".into(),
            joined_at: this.team.created_at,
        });
        crate::on_backend!(conn, c => member.execute(c).await)?;
        Ok(this.team.clone())
    }
}

unit_of_work! {
    /// Teams with their members: every team (`member: None`) or those `member` belongs to.
    ListTeams { member: Option<String> } -> Vec<(TeamRow, Vec<MemberRow>)>,
    "teams.list", Read, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let rows = crate::on_backend!(conn.reborrow(), c => {
            let mut query = teams::table
                .select(TeamRow::as_select())
                .order(teams::created_at.asc())
                .into_boxed();
            if let Some(member) = &this.member {
                let mine = team_members::table
                    .filter(team_members::email.eq(member.clone()))
                    .select(team_members::team_id);
                query = query.filter(teams::id.eq_any(mine));
            }
            query.load(c).await
        })?;
        let ids: Vec<String> = rows.iter().map(|team| team.id.clone()).collect();
        let members = crate::on_backend!(conn, c => {
            team_members::table
                .filter(team_members::team_id.eq_any(&ids))
                .select(MemberRow::as_select())
                .order((team_members::team_id.asc(), team_members::email.asc()))
                .load(c)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|team| {
                let of_team = members.iter().filter(|m| m.team_id == team.id).cloned().collect();
                (team, of_team)
            })
            .collect())
    }
}

unit_of_work! {
    /// One team with its members.
    GetTeam { id: String } -> Option<(TeamRow, Vec<MemberRow>)>,
    "teams.get", Read, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let team = crate::on_backend!(conn.reborrow(), c => {
            teams::table.find(&this.id).select(TeamRow::as_select()).get_result(c).await.optional()
        })?;
        let Some(team) = team else {
            return Ok(None);
        };
        let members = crate::on_backend!(conn, c => {
            team_members::table
                .filter(team_members::team_id.eq(&this.id))
                .select(MemberRow::as_select())
                .order(team_members::email.asc())
                .load(c)
                .await
        })?;
        Ok(Some((team, members)))
    }
}

unit_of_work! {
    /// Adds a member to an organisational team (or changes their membership role).
    AddMember { member: MemberRow } -> (),
    "teams.add_member", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let personal = crate::on_backend!(conn.reborrow(), c => {
            teams::table.find(&this.member.team_id).select(teams::is_personal).get_result::<bool>(c).await.optional()
        })?;
        match personal {
            None => return Err(WorkError::rejected("team_id", "no such team")),
            Some(true) => {
                return Err(WorkError::rejected("team_id", "a personal team has only its owner"));
            }
            Some(false) => {}
        }
        let exists = crate::on_backend!(conn.reborrow(), c => {
            users::table.find(&this.member.email).count().get_result::<i64>(c).await
        })?;
        if exists == 0 {
            return Err(WorkError::rejected("email", "no user with this email"));
        }
        let upsert = diesel::insert_into(team_members::table)
            .values(&this.member)
            .on_conflict((team_members::team_id, team_members::email))
            .do_update()
            .set(team_members::role.eq(&this.member.role));
        crate::on_backend!(conn, c => upsert.execute(c).await)?;
        Ok(())
    }
}

unit_of_work! {
    /// Removes a member; the last owner cannot leave. Whether a member was removed.
    RemoveMember { team_id: String, email: String } -> bool,
    "teams.remove_member", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let owners: Vec<String> = crate::on_backend!(conn.reborrow(), c => {
            team_members::table
                .filter(team_members::team_id.eq(&this.team_id))
                .filter(team_members::role.eq("owner"))
                .select(team_members::email)
                .load(c)
                .await
        })?;
        if owners.len() == 1 && owners[0] == this.email {
            return Err(WorkError::Conflict("the last owner of a team cannot leave it".into()));
        }
        let delete = diesel::delete(
            team_members::table
                .filter(team_members::team_id.eq(&this.team_id))
                .filter(team_members::email.eq(&this.email)),
        );
        let deleted = crate::on_backend!(conn.reborrow(), c => delete.execute(c).await)?;
        let roles = diesel::delete(
            role_assignments::table
                .filter(role_assignments::email.eq(&this.email))
                .filter(role_assignments::scope.eq(&this.team_id)),
        );
        crate::on_backend!(conn, c => roles.execute(c).await)?;
        Ok(deleted == 1)
    }
}

unit_of_work! {
    /// Deletes an organisational team (personal teams go with their user); the emails of its
    /// members (whose grants changed), or `None` when there is no such team.
    DeleteTeam { id: String } -> Option<Vec<String>>,
    "teams.delete", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let personal = crate::on_backend!(conn.reborrow(), c => {
            teams::table.find(&this.id).select(teams::is_personal).get_result::<bool>(c).await.optional()
        })?;
        match personal {
            None => return Ok(None),
            Some(true) => {
                return Err(WorkError::Conflict("a personal team is deleted with its user".into()));
            }
            Some(false) => {}
        }
        let members: Vec<String> = crate::on_backend!(conn.reborrow(), c => {
            team_members::table
                .filter(team_members::team_id.eq(&this.id))
                .select(team_members::email)
                .load(c)
                .await
        })?;
        let roles = diesel::delete(role_assignments::table.filter(role_assignments::scope.eq(&this.id)));
        crate::on_backend!(conn.reborrow(), c => roles.execute(c).await)?;
        let delete = diesel::delete(teams::table.find(&this.id));
        crate::on_backend!(conn, c => delete.execute(c).await)?;
        Ok(Some(members))
    }
}

unit_of_work! {
    /// Assigns a role (idempotent). The user must exist, and a team scope must name a team.
    AssignRole { row: RoleRow } -> (),
    "roles.assign", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let exists = crate::on_backend!(conn.reborrow(), c => {
            users::table.find(&this.row.email).count().get_result::<i64>(c).await
        })?;
        if exists == 0 {
            return Err(WorkError::rejected("email", "no user with this email"));
        }
        if this.row.scope != "*" {
            let team = crate::on_backend!(conn.reborrow(), c => {
                teams::table.find(&this.row.scope).count().get_result::<i64>(c).await
            })?;
            if team == 0 {
                return Err(WorkError::rejected("team_id", "no such team"));
            }
        }
        let insert = diesel::insert_into(role_assignments::table)
            .values(&this.row)
            .on_conflict_do_nothing();
        crate::on_backend!(conn, c => insert.execute(c).await)?;
        Ok(())
    }
}

unit_of_work! {
    /// Removes a role assignment; whether one was removed.
    UnassignRole { email: String, role: String, scope: String } -> bool,
    "roles.unassign", Write, transactional = true,
    |this, conn| {
        let delete = diesel::delete(
            role_assignments::table
                .filter(role_assignments::email.eq(&this.email))
                .filter(role_assignments::role.eq(&this.role))
                .filter(role_assignments::scope.eq(&this.scope)),
        );
        let deleted = crate::on_backend!(conn, c => delete.execute(c).await)?;
        Ok(deleted == 1)
    }
}
