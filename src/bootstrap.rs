//! First-start bootstrap: the JWT signing secret and the platform admin.
//!
//! Explicit settings always win. Without `JWT_SECRET_KEY`, a 64-character secret is generated
//! once and kept in the database (so every replica and the `token` command agree); without
//! `PLATFORM_ADMIN_PASSWORD`, the admin is created with a generated password that is returned
//! once, for printing, and only its argon2id hash is kept.

use std::sync::Arc;

use crate::actors::db::Db;
use crate::auth::jwt::JwtKeys;
use crate::auth::password;
use crate::config::AuthSettings;
use crate::db::bootstrap::{EnsureSecret, FindUser, SetAdminPassword};
use crate::db::identity::InsertUser;

/// The name under which the generated JWT secret is stored.
const JWT_SECRET_NAME: &str = "jwt_secret";

/// The name under which the generated credential encryption secret is stored.
const ENCRYPTION_SECRET_NAME: &str = "encryption_secret";

/// The box upstream credentials are sealed with: `AUTH_ENCRYPTION_SECRET`, or a secret
/// generated once and kept in the database.
pub async fn secret_box(
    db: &Db,
    settings: &AuthSettings,
) -> Result<crate::secrets::SecretBox, String> {
    let secret = match &settings.encryption_secret {
        Some(secret) => secret.clone(),
        None => {
            db.run(EnsureSecret {
                name: ENCRYPTION_SECRET_NAME.into(),
                candidate: password::generate(64),
            })
            .await
            .map_err(|error| format!("cannot load the encryption secret: {error}"))?
            .0
        }
    };
    Ok(crate::secrets::SecretBox::new(&secret))
}

/// The credentials of a platform admin created with a generated password, to print once.
pub struct GeneratedAdmin {
    /// The admin's email.
    pub email: String,
    /// The generated password (only its hash is stored).
    pub password: String,
}

/// Resolves the JWT signing keys: the explicit secret, or the stored (or newly generated) one.
pub async fn jwt_keys(db: &Db, settings: &AuthSettings) -> Result<Arc<JwtKeys>, String> {
    if let Some(pair) = &settings.jwt_key_pair {
        return JwtKeys::asymmetric(
            pair.algorithm,
            &pair.private_pem,
            &pair.public_pem,
            &settings.jwt_issuer,
            &settings.jwt_audience,
        )
        .map(Arc::new);
    }
    let secret = match &settings.jwt_secret {
        Some(secret) => secret.clone(),
        None => {
            let (secret, created) = db
                .run(EnsureSecret {
                    name: JWT_SECRET_NAME.into(),
                    candidate: password::generate(64),
                })
                .await
                .map_err(|error| format!("cannot load the JWT secret: {error}"))?;
            if created {
                tracing::info!("generated a JWT signing secret and stored it in the database");
            }
            secret
        }
    };
    Ok(Arc::new(JwtKeys::hs256(
        &secret,
        &settings.jwt_issuer,
        &settings.jwt_audience,
    )))
}

/// Makes sure the platform admin exists (and, when the password is set explicitly, has it).
/// Returns the credentials when a password was generated now.
pub async fn platform_admin(
    db: &Db,
    settings: &AuthSettings,
) -> Result<Option<GeneratedAdmin>, String> {
    let email = settings.platform_admin_email.clone();
    let explicit = settings.platform_admin_password.clone();
    let stored = db
        .run(FindUser {
            email: email.clone(),
        })
        .await
        .map_err(|error| format!("cannot look up the platform admin: {error}"))?;
    match (stored, explicit) {
        (None, explicit) => {
            let generated = explicit.is_none();
            let password = explicit.unwrap_or_else(|| password::generate(20));
            let password_hash = hash_blocking(password.clone()).await?;
            let (user, personal_team) = crate::db::identity::new_user(
                &email,
                password_hash,
                Some("Platform Administrator".into()),
                true,
            );
            let created = db
                .run(InsertUser {
                    user,
                    personal_team,
                    role: "platform_admin".into(),
                    if_absent: true,
                })
                .await
                .map_err(|error| format!("cannot create the platform admin: {error}"))?;
            Ok((created && generated).then_some(GeneratedAdmin { email, password }))
        }
        (Some(user), Some(explicit)) => {
            let stored_hash = user.password_hash.clone();
            let candidate = explicit.clone();
            let matches = actix_web::web::block(move || password::verify(&candidate, &stored_hash))
                .await
                .map_err(|error| format!("password check failed: {error}"))?;
            if !matches || !user.is_admin || !user.is_active {
                let password_hash = hash_blocking(explicit).await?;
                db.run(SetAdminPassword {
                    email,
                    password_hash,
                })
                .await
                .map_err(|error| format!("cannot update the platform admin: {error}"))?;
                tracing::info!("applied PLATFORM_ADMIN_PASSWORD to the platform admin");
            }
            Ok(None)
        }
        (Some(_), None) => Ok(None),
    }
}

async fn hash_blocking(password: String) -> Result<String, String> {
    actix_web::web::block(move || password::hash(&password))
        .await
        .map_err(|error| format!("password hashing failed: {error}"))?
}
