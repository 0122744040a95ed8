//! Units of work on role assignments.

use super::*;

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

unit_of_work! {
    /// Every role assignment, by email (for a configuration export).
    ListRoleAssignments {} -> Vec<RoleRow>,
    "roles.list", Read, transactional = false,
    |_this, conn| {
        let rows = crate::on_backend!(conn, c => {
            role_assignments::table
                .select(RoleRow::as_select())
                .order((role_assignments::email.asc(), role_assignments::role.asc()))
                .load(c)
                .await
        })?;
        Ok(rows)
    }
}

unit_of_work! {
    /// Gives `email` the global roles in `wanted` and takes away those of `managed` not in it —
    /// only assignments `granted_by` made (an external provider's groups mapped to roles), so
    /// a role an admin assigned by hand stays.
    SyncGrantedRoles { email: String, wanted: Vec<String>, managed: Vec<String>, granted_by: String } -> (),
    "roles.sync_granted", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let gone: Vec<&String> = this
            .managed
            .iter()
            .filter(|role| !this.wanted.contains(role))
            .collect();
        let take = diesel::delete(
            role_assignments::table
                .filter(role_assignments::email.eq(&this.email))
                .filter(role_assignments::scope.eq("*"))
                .filter(role_assignments::granted_by.eq(&this.granted_by))
                .filter(role_assignments::role.eq_any(gone)),
        );
        crate::on_backend!(conn.reborrow(), c => take.execute(c).await)?;
        let at = now();
        for role in &this.wanted {
            let give = diesel::insert_into(role_assignments::table)
                .values(RoleRow {
                    email: this.email.clone(),
                    role: role.clone(),
                    scope: "*".into(),
                    granted_by: Some(this.granted_by.clone()),
                    created_at: at,
                })
                .on_conflict_do_nothing();
            crate::on_backend!(conn.reborrow(), c => give.execute(c).await)?;
        }
        Ok(())
    }
}
