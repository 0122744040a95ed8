//! First-start bootstrap: the secrets and the platform admin.
//!
//! Explicit settings always win. A secret not given by a setting (`JWT_SECRET_KEY`,
//! `AUTH_ENCRYPTION_SECRET`) is read from the key file (`SECRETS_FILE`; on SQLite by default
//! beside the database), which the first start creates with mode 0600 and fresh 64-character
//! secrets. Secrets never sit in the database next to what they protect: the ones an earlier
//! version generated and kept there (`bootstrap_secrets`) are moved into the key file and
//! deleted. Without `PLATFORM_ADMIN_PASSWORD`, the admin is created with a generated password
//! that is returned once, for printing, and only its argon2id hash is kept.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::actors::db::Db;
use crate::auth::jwt::JwtKeys;
use crate::auth::password;
use crate::config::AuthSettings;
use crate::db::bootstrap::{FindUser, ForgetStoredSecrets, SetAdminPassword, StoredSecrets};
use crate::db::identity::InsertUser;
use crate::secrets::SecretBox;

/// The name under which an earlier version stored the generated JWT secret.
const JWT_SECRET_NAME: &str = "jwt_secret";

/// The name under which an earlier version stored the generated encryption secret.
const ENCRYPTION_SECRET_NAME: &str = "encryption_secret";

/// The key file: the secrets not given by settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwt_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwt_secret_previous: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption_secret_previous: Option<String>,
}

/// The secrets a gateway runs with, resolved once at start.
#[derive(Clone)]
pub struct Secrets {
    jwt: Option<String>,
    jwt_previous: Option<String>,
    encryption: String,
    encryption_previous: Option<String>,
}

impl Secrets {
    /// The box credentials at rest are sealed with (and, during a rotation, opened with).
    pub fn secret_box(&self) -> SecretBox {
        let secrets = SecretBox::new(&self.encryption);
        match &self.encryption_previous {
            Some(previous) => secrets.with_previous(previous),
            None => secrets,
        }
    }

    /// The JWT signing keys: the configured key pair, or the HS256 secret (with the previous
    /// one during a rotation).
    pub fn jwt_keys(&self, settings: &AuthSettings) -> Result<Arc<JwtKeys>, String> {
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
        let secret = self
            .jwt
            .as_deref()
            .ok_or("no JWT signing secret was resolved")?;
        let keys = JwtKeys::hs256(secret, &settings.jwt_issuer, &settings.jwt_audience);
        Ok(Arc::new(match &self.jwt_previous {
            Some(previous) => keys.with_previous_secret(previous),
            None => keys,
        }))
    }
}

/// Resolves the secrets: settings first, then the key file (created on first start, from the
/// secrets an earlier version kept in the database if there are any, else freshly generated).
pub async fn secrets(db: &Db, settings: &AuthSettings) -> Result<Secrets, String> {
    let needs_jwt = settings.jwt_key_pair.is_none() && settings.jwt_secret.is_none();
    let needs_encryption = settings.encryption_secret.is_none();
    let stored = db
        .run(StoredSecrets {})
        .await
        .map_err(|error| format!("cannot read the stored secrets: {error}"))?;
    let stored_value = |name: &str| {
        stored
            .iter()
            .find(|(stored, _)| stored == name)
            .map(|(_, value)| value.clone())
    };
    let file = match &settings.secrets_file {
        Some(path) if needs_jwt || needs_encryption || !stored.is_empty() => {
            let from_database = KeyFile {
                jwt_secret: stored_value(JWT_SECRET_NAME),
                encryption_secret: stored_value(ENCRYPTION_SECRET_NAME),
                ..KeyFile::default()
            };
            let path = path.clone();
            let file = tokio::task::spawn_blocking(move || load_or_create(&path, from_database))
                .await
                .map_err(|error| format!("reading the key file failed: {error}"))??;
            Some(file)
        }
        Some(_) => None,
        None if needs_jwt || needs_encryption => {
            let missing = [
                (needs_jwt, "JWT_SECRET_KEY"),
                (needs_encryption, "AUTH_ENCRYPTION_SECRET"),
            ]
            .iter()
            .filter(|(needed, _)| *needed)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(" and ");
            let earlier = if stored.is_empty() {
                String::new()
            } else {
                " This database holds secrets an earlier version generated (table \
                 bootstrap_secrets): set SECRETS_FILE once to move them into that file."
                    .to_owned()
            };
            return Err(format!(
                "set {missing} (the same on every replica), or SECRETS_FILE to a key file \
                 with mode 0600: on PostgreSQL no secret is generated, so replicas cannot \
                 disagree.{earlier}"
            ));
        }
        None => {
            if !stored.is_empty() {
                tracing::warn!(
                    "table bootstrap_secrets holds secrets an earlier version generated; they \
                     are unused (settings give every secret): set SECRETS_FILE once to move \
                     them out of the database"
                );
            }
            None
        }
    };
    if let Some((file, path)) = &file {
        let moved = [
            (JWT_SECRET_NAME, &file.jwt_secret),
            (ENCRYPTION_SECRET_NAME, &file.encryption_secret),
        ];
        for (name, value) in moved {
            if let Some(stored) = stored_value(name)
                && Some(&stored) != value.as_ref()
            {
                return Err(format!(
                    "the key file {} and the database (table bootstrap_secrets) hold different \
                     values of {name}; keep the one that protects your data and delete the other",
                    path.display()
                ));
            }
        }
        if !stored.is_empty() {
            db.run(ForgetStoredSecrets {})
                .await
                .map_err(|error| format!("cannot delete the stored secrets: {error}"))?;
            tracing::info!(
                file = %path.display(),
                "moved the secrets stored in the database into the key file"
            );
        }
    }
    let file = file.map(|(file, _)| file).unwrap_or_default();
    let encryption = settings
        .encryption_secret
        .clone()
        .or(file.encryption_secret)
        .ok_or("the key file has no encryption_secret")?;
    let jwt = match settings.jwt_key_pair {
        Some(_) => None,
        None => Some(
            settings
                .jwt_secret
                .clone()
                .or(file.jwt_secret)
                .ok_or("the key file has no jwt_secret")?,
        ),
    };
    Ok(Secrets {
        jwt,
        jwt_previous: settings
            .jwt_secret_previous
            .clone()
            .or(file.jwt_secret_previous),
        encryption,
        encryption_previous: settings
            .encryption_secret_previous
            .clone()
            .or(file.encryption_secret_previous),
    })
}

/// Reads the key file, or creates it (mode 0600, atomically: replicas starting together agree
/// on one) with `from_database`'s values where present and fresh secrets elsewhere.
fn load_or_create(path: &Path, from_database: KeyFile) -> Result<(KeyFile, PathBuf), String> {
    let shown = path.display();
    match std::fs::read(path) {
        Ok(bytes) => return parse_key_file(path, &bytes).map(|file| (file, path.to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("cannot read the key file {shown}: {error}")),
    }
    let file = KeyFile {
        jwt_secret: Some(
            from_database
                .jwt_secret
                .unwrap_or_else(|| password::generate(64)),
        ),
        encryption_secret: Some(
            from_database
                .encryption_secret
                .unwrap_or_else(|| password::generate(64)),
        ),
        ..KeyFile::default()
    };
    let mut text = serde_json::to_string_pretty(&file).map_err(|error| error.to_string())?;
    text.push('\n');
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()
    };
    let written = write().and_then(|()| std::fs::hard_link(&partial, path));
    let _ = std::fs::remove_file(&partial);
    match written {
        Ok(()) => {
            tracing::info!(file = %shown, "created the key file with generated secrets");
            Ok((file, path.to_owned()))
        }
        // Another replica created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes = std::fs::read(path)
                .map_err(|error| format!("cannot read the key file {shown}: {error}"))?;
            parse_key_file(path, &bytes).map(|file| (file, path.to_owned()))
        }
        Err(error) => Err(format!("cannot create the key file {shown}: {error}")),
    }
}

fn parse_key_file(path: &Path, bytes: &[u8]) -> Result<KeyFile, String> {
    let shown = path.display();
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %shown,
            mode = format!("{:o}", metadata.mode() & 0o777),
            "the key file can be read by other users: chmod 600 it"
        );
    }
    let file: KeyFile = serde_json::from_slice(bytes).map_err(|error| {
        format!(
            "the key file {shown} is not valid (a JSON object with jwt_secret, \
             encryption_secret and optionally their _previous values): {error}"
        )
    })?;
    let fields = [
        ("jwt_secret", &file.jwt_secret, 32),
        ("jwt_secret_previous", &file.jwt_secret_previous, 32),
        ("encryption_secret", &file.encryption_secret, 16),
        (
            "encryption_secret_previous",
            &file.encryption_secret_previous,
            16,
        ),
    ];
    for (name, value, minimum) in fields {
        if let Some(value) = value
            && value.len() < minimum
        {
            return Err(format!(
                "the key file {shown}: {name} has {} characters; use at least {minimum}",
                value.len()
            ));
        }
    }
    Ok(file)
}

/// The credentials of a platform admin created with a generated password, to print once.
pub struct GeneratedAdmin {
    /// The admin's email.
    pub email: String,
    /// The generated password (only its hash is stored).
    pub password: String,
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

/// Seals again whatever is not sealed with the current secret (after a rotation, or REST tool
/// headers an earlier version stored in plain text).
pub async fn reseal(db: &Db, secrets: &SecretBox) -> Result<(), String> {
    let (gateways, tools) = db
        .run(crate::db::bootstrap::ResealSecrets {
            secrets: secrets.clone(),
        })
        .await
        .map_err(|error| format!("cannot seal the stored credentials again: {error}"))?;
    if gateways + tools > 0 {
        tracing::info!(
            gateways,
            tools,
            "sealed stored credentials with the current encryption secret"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_key_file_is_created_private_read_back_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcpgate.secrets");
        let (created, _) = load_or_create(&path, KeyFile::default()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(created.jwt_secret.as_ref().map(String::len), Some(64));
        let (read, _) = load_or_create(&path, KeyFile::default()).unwrap();
        assert_eq!(read, created, "a second start reads the same secrets");

        let from_database = KeyFile {
            encryption_secret: Some("an-earlier-stored-secret".into()),
            ..KeyFile::default()
        };
        let moved = dir.path().join("moved.secrets");
        let (file, _) = load_or_create(&moved, from_database).unwrap();
        assert_eq!(
            file.encryption_secret.as_deref(),
            Some("an-earlier-stored-secret")
        );

        for (text, named) in [
            ("not json", "is not valid"),
            (r#"{"jwt_secret": "short"}"#, "jwt_secret has 5 characters"),
            (r#"{"unknown": "x"}"#, "is not valid"),
        ] {
            let bad = dir.path().join("bad.secrets");
            std::fs::write(&bad, text).unwrap();
            let error = load_or_create(&bad, KeyFile::default()).unwrap_err();
            assert!(error.contains(named), "{text}: {error}");
        }
    }
}
