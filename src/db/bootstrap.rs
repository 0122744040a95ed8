//! Units of work for first-start bootstrap: generated secrets and the platform admin.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::{bootstrap_secrets, users};
use crate::unit_of_work;

/// A user row.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct UserRow {
    pub email: String,
    pub password_hash: String,
    pub full_name: Option<String>,
    pub is_admin: bool,
    pub is_active: bool,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    /// Failed sign-ins since the last success or lockout.
    pub failed_logins: i32,
    /// Sign-in is refused until then.
    pub locked_until: Option<chrono::NaiveDateTime>,
    /// When the password was last set.
    pub password_changed_at: Option<chrono::NaiveDateTime>,
    /// The account's immutable id (tokens carry it; a re-created email is another account).
    pub id: Option<String>,
    /// Sign-in tokens issued before this instant are refused (set by a password change, an
    /// admin reset, a disable).
    pub tokens_valid_after: Option<chrono::NaiveDateTime>,
}

unit_of_work! {
    /// Stores `candidate` under `name` unless a value is already stored; returns the stored
    /// value and whether it was the candidate. Safe when replicas start together.
    EnsureSecret { name: String, candidate: String } -> (String, bool),
    "bootstrap.ensure_secret", Write, transactional = true,
    |this, conn| {
        let mut conn = conn;
        let insert = diesel::insert_into(bootstrap_secrets::table)
            .values((
                bootstrap_secrets::name.eq(&this.name),
                bootstrap_secrets::value.eq(&this.candidate),
                bootstrap_secrets::created_at.eq(crate::db::now()),
            ))
            .on_conflict_do_nothing();
        let inserted = crate::on_backend!(conn.reborrow(), c => insert.execute(c).await)?;
        let query = bootstrap_secrets::table
            .find(&this.name)
            .select(bootstrap_secrets::value);
        let value: String = crate::on_backend!(conn, c => query.get_result(c).await)?;
        Ok((value, inserted == 1))
    }
}

unit_of_work! {
    /// Loads a user by email.
    FindUser { email: String } -> Option<UserRow>,
    "users.find", Read, transactional = false,
    |this, conn| {
        let user = crate::on_backend!(conn, c => {
            users::table
                .find(&this.email)
                .select(UserRow::as_select())
                .get_result(c)
                .await
                .optional()
        })?;
        Ok(user)
    }
}

unit_of_work! {
    /// Sets a user's password hash and makes sure they are an active platform admin.
    SetAdminPassword { email: String, password_hash: String } -> (),
    "users.set_admin_password", Write, transactional = true,
    |this, conn| {
        let update = diesel::update(users::table.find(&this.email)).set((
            users::password_hash.eq(&this.password_hash),
            users::is_admin.eq(true),
            users::is_active.eq(true),
            users::updated_at.eq(crate::db::now()),
        ));
        crate::on_backend!(conn, c => update.execute(c).await)?;
        Ok(())
    }
}
