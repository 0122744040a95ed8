//! Units of work on accounts: count, list, change, delete.

use super::*;

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
    /// Lifts a lock after failed sign-ins (a new password does too).
    pub unlock: bool,
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
        if changes.unlock {
            let update = diesel::update(target).set((
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
