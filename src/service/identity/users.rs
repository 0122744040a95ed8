//! Users: create, read, change, delete, and the caller's own password.

use super::{
    PasswordChange, UserCreate, UserPage, UserUpdate, UserView, db_error, email_field, hash,
    invalidate, policy, require, role_field,
};
use crate::auth::{AuthError, Principal};
use crate::db::bootstrap::UserRow;
use crate::db::identity::{DeleteUser, InsertUser, ListUsers, UpdateUser, UserChanges, new_user};
use crate::error::ApiError;
use crate::registry::validate::{invalid, optional_text};
use crate::service::Services;
use crate::service::audit::Entry;

/// The caller changes their own password (the current one is checked as a sign-in is).
pub async fn change_password(
    services: &Services,
    principal: &Principal,
    input: PasswordChange,
) -> Result<(), ApiError> {
    services
        .auth
        .login(principal.email.clone(), input.current_password, None)
        .await
        .map_err(|error| match error {
            AuthError::BadCredentials => ApiError::InvalidField {
                field: "current_password".into(),
                message: "is not the account's password".into(),
            },
            other => ApiError::from_auth(other),
        })?;
    policy(
        services,
        "new_password",
        &input.new_password,
        &principal.email,
    )?;
    let changes = UserChanges {
        password_hash: Some(hash(input.new_password).await?),
        ..UserChanges::default()
    };
    services
        .db
        .run(UpdateUser {
            email: principal.email.clone(),
            changes,
        })
        .await
        .map_err(db_error("user", &principal.email))?;
    services.audit(
        principal,
        Entry::new("users.change_password", "user")
            .id(&principal.email)
            .detail("their own password"),
    );
    Ok(())
}

/// How many accounts there are (`users.manage`).
pub async fn count(services: &Services, principal: &Principal) -> Result<i64, ApiError> {
    require(principal, "users.manage")?;
    services
        .db
        .run(crate::db::identity::CountUsers {})
        .await
        .map_err(|error| ApiError::from_db(error, "user", None))
}

/// One page of users in email order (`users.manage`): `limit` from 1 to 500, after `cursor`.
pub async fn list(
    services: &Services,
    principal: &Principal,
    limit: Option<i64>,
    cursor: Option<String>,
) -> Result<UserPage, ApiError> {
    require(principal, "users.manage")?;
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(invalid("limit", "must be from 1 to 500").into());
    }
    let mut rows = services
        .db
        .run(ListUsers {
            after: cursor.filter(|cursor| !cursor.is_empty()),
            limit: limit + 1,
        })
        .await
        .map_err(|error| ApiError::from_db(error, "user", None))?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|row| row.email.clone())
    } else {
        None
    };
    Ok(UserPage {
        items: rows.into_iter().map(UserView::from).collect(),
        next_cursor,
    })
}

/// Creates a user (`users.manage`) with a personal team and a global role.
pub async fn create(
    services: &Services,
    principal: &Principal,
    input: UserCreate,
) -> Result<UserView, ApiError> {
    require(principal, "users.manage")?;
    let email = email_field("email", &input.email)?;
    let full_name = optional_text("full_name", input.full_name.as_deref(), 200)?;
    let role = match &input.role {
        Some(role) => role_field(role)?,
        None => services.settings.auth.identity.default_role.clone(),
    };
    policy(services, "password", &input.password, &email)?;
    let (user, personal_team) = new_user(
        &email,
        hash(input.password).await?,
        full_name,
        input.is_admin || role == "platform_admin",
    );
    let view = UserView::from(user.clone());
    services
        .db
        .run(InsertUser {
            user,
            personal_team,
            role,
            if_absent: false,
        })
        .await
        .map_err(db_error("user", &email))?;
    // A cached "no such account" from before must not outlive the new account.
    invalidate(services, [email.clone()]).await;
    services.audit(
        principal,
        Entry::new("users.create", "user").id(email).after(&view),
    );
    Ok(view)
}

async fn find(services: &Services, email: &str) -> Result<UserRow, ApiError> {
    services
        .db
        .run(crate::db::bootstrap::FindUser {
            email: email.to_owned(),
        })
        .await
        .map_err(db_error("user", email))?
        .ok_or_else(|| ApiError::NotFound(format!("no user with email {email:?}")))
}

/// A user: yourself, or anyone with `users.manage`.
pub async fn get(
    services: &Services,
    principal: &Principal,
    email: &str,
) -> Result<UserView, ApiError> {
    let email = email.to_ascii_lowercase();
    if email != principal.email {
        require(principal, "users.manage")?;
    }
    Ok(UserView::from(find(services, &email).await?))
}

/// Changes a user (`users.manage`; a user may change their own display name).
pub async fn update(
    services: &Services,
    principal: &Principal,
    email: &str,
    input: UserUpdate,
) -> Result<UserView, ApiError> {
    let email = email.to_ascii_lowercase();
    let only_name = input.is_active.is_none()
        && input.is_admin.is_none()
        && input.password.is_none()
        && !input.unlock;
    if !(email == principal.email && only_name) {
        require(principal, "users.manage")?;
    }
    if email == principal.email && (input.is_active == Some(false) || input.is_admin == Some(false))
    {
        return Err(ApiError::Conflict(
            "you cannot disable yourself or take away your own admin rights".into(),
        ));
    }
    let full_name = match &input.full_name {
        Some(name) => Some(optional_text("full_name", name.as_deref(), 200)?),
        None => None,
    };
    let password_hash = match input.password {
        Some(password) => {
            policy(services, "password", &password, &email)?;
            Some(hash(password).await?)
        }
        None => None,
    };
    let before = UserView::from(find(services, &email).await?);
    let password_changed = password_hash.is_some();
    let changes = UserChanges {
        full_name,
        is_active: input.is_active,
        is_admin: input.is_admin,
        password_hash,
        unlock: input.unlock,
    };
    let updated = services
        .db
        .run(UpdateUser {
            email: email.clone(),
            changes,
        })
        .await
        .map_err(db_error("user", &email))?
        .ok_or_else(|| ApiError::NotFound(format!("no user with email {email:?}")))?;
    invalidate(services, [email.clone()]).await;
    let after = UserView::from(updated);
    let mut entry = Entry::new("users.update", "user")
        .id(email)
        .before(&before)
        .after(&after);
    match (password_changed, input.unlock) {
        (true, _) => entry = entry.detail("password reset"),
        (false, true) => entry = entry.detail("unlocked"),
        (false, false) => {}
    }
    services.audit(principal, entry);
    Ok(after)
}

/// Deletes a user (`users.manage`; not yourself).
pub async fn delete(
    services: &Services,
    principal: &Principal,
    email: &str,
) -> Result<(), ApiError> {
    require(principal, "users.manage")?;
    let email = email.to_ascii_lowercase();
    if email == principal.email {
        return Err(ApiError::Conflict("you cannot delete yourself".into()));
    }
    let before = UserView::from(find(services, &email).await?);
    let deleted = services
        .db
        .run(DeleteUser {
            email: email.clone(),
        })
        .await
        .map_err(db_error("user", &email))?;
    if !deleted {
        return Err(ApiError::NotFound(format!("no user with email {email:?}")));
    }
    invalidate(services, [email.clone()]).await;
    // Their upstream tokens went with the account; none stays cached for a new one.
    services.federation.oauth_tokens().forget_user(&email);
    services.audit(
        principal,
        Entry::new("users.delete", "user").id(email).before(&before),
    );
    Ok(())
}
