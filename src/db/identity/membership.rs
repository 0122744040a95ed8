//! Units of work on teams and their members.

use super::*;

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
    /// Makes `email` a member of the teams whose slugs are in `wanted`, and of none of the
    /// other teams in `managed` (an external provider's groups mapped to teams). Teams not in
    /// `managed` are left alone, and so is an owner's membership.
    SyncTeams { email: String, wanted: Vec<String>, managed: Vec<String> } -> (),
    "teams.sync_members", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let teams: Vec<(String, String)> = crate::on_backend!(conn.reborrow(), c => {
            teams::table
                .filter(teams::slug.eq_any(&this.managed))
                .select((teams::id, teams::slug))
                .load(c)
                .await
        })?;
        let at = now();
        for (id, slug) in teams {
            if this.wanted.contains(&slug) {
                let join = diesel::insert_into(team_members::table)
                    .values(MemberRow {
                        team_id: id,
                        email: this.email.clone(),
                        role: "member".into(),
                        joined_at: at,
                    })
                    .on_conflict_do_nothing();
                crate::on_backend!(conn.reborrow(), c => join.execute(c).await)?;
            } else {
                let leave = diesel::delete(
                    team_members::table
                        .filter(team_members::team_id.eq(id))
                        .filter(team_members::email.eq(&this.email))
                        .filter(team_members::role.eq("member")),
                );
                crate::on_backend!(conn.reborrow(), c => leave.execute(c).await)?;
            }
        }
        Ok(())
    }
}
