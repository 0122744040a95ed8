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
    /// The secrets an earlier version generated and kept in the database: (name, value).
    StoredSecrets {} -> Vec<(String, String)>,
    "bootstrap.stored_secrets", Read, transactional = false,
    |_this, conn| {
        let query = bootstrap_secrets::table
            .select((bootstrap_secrets::name, bootstrap_secrets::value))
            .order(bootstrap_secrets::name);
        Ok(crate::on_backend!(conn, c => query.load(c).await)?)
    }
}

unit_of_work! {
    /// Deletes the secrets kept in the database (once they are in the key file).
    ForgetStoredSecrets {} -> (),
    "bootstrap.forget_stored_secrets", Write, transactional = true,
    |_this, conn| {
        let delete = diesel::delete(bootstrap_secrets::table);
        crate::on_backend!(conn, c => delete.execute(c).await)?;
        Ok(())
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

unit_of_work! {
    /// Seals again, with the current secret, every credential at rest that is not sealed with
    /// it: upstream credentials sealed with the previous secret of a rotation, and REST tool
    /// header values sealed with it or stored in plain text by an earlier version. Returns how
    /// many gateways and tools were rewritten.
    ResealSecrets { secrets: crate::secrets::SecretBox } -> (usize, usize),
    "bootstrap.reseal_secrets", Write, transactional = true,
    |this, conn| {
        use crate::db::schema::{gateways, tools};
        let mut conn = conn;
        let query = gateways::table
            .filter(gateways::auth_secret.is_not_null())
            .select((gateways::id, gateways::auth_secret.assume_not_null()));
        let sealed: Vec<(String, String)> =
            crate::on_backend!(conn.reborrow(), c => query.load(c).await)?;
        let mut gateways_resealed = 0;
        for (id, value) in sealed {
            match this.secrets.open_current(&value) {
                Ok((_, true)) => {}
                Ok((plain, false)) => {
                    let update = diesel::update(gateways::table.find(&id))
                        .set(gateways::auth_secret.eq(this.secrets.seal(&plain)));
                    crate::on_backend!(conn.reborrow(), c => update.execute(c).await)?;
                    gateways_resealed += 1;
                }
                Err(error) => tracing::error!(gateway = %id, %error, "stored credentials do not open"),
            }
        }
        let query = tools::table
            .filter(tools::integration_type.eq(crate::db::stored::IntegrationType::Rest))
            .filter(tools::headers.ne("{}"))
            .select((tools::id, tools::headers));
        let stored: Vec<(String, String)> =
            crate::on_backend!(conn.reborrow(), c => query.load(c).await)?;
        let mut tools_resealed = 0;
        for (id, text) in stored {
            let Ok(mut headers) =
                serde_json::from_str::<std::collections::BTreeMap<String, String>>(&text)
            else {
                continue;
            };
            let mut changed = false;
            for value in headers.values_mut() {
                match this.secrets.open_header(value) {
                    Ok((_, true)) => {}
                    Ok((plain, false)) => {
                        *value = this.secrets.seal_header(&plain);
                        changed = true;
                    }
                    Err(error) => tracing::error!(tool = %id, %error, "a stored header does not open"),
                }
            }
            if changed {
                let text = serde_json::to_string(&headers).unwrap_or_default();
                let update = diesel::update(tools::table.find(&id)).set(tools::headers.eq(text));
                crate::on_backend!(conn.reborrow(), c => update.execute(c).await)?;
                tools_resealed += 1;
            }
        }
        Ok((gateways_resealed, tools_resealed))
    }
}
