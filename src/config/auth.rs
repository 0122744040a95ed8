//! Token signing, secrets, sign-in and the bootstrap platform admin (`JWT_*`, `AUTH_*`,
//! `SECRETS_FILE`, `PLATFORM_ADMIN_*`, sign-in and password settings).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, DatabaseUrl, Source, invalid, looks_like_email};

/// Token signing and the bootstrap platform admin.
#[derive(Clone)]
pub struct AuthSettings {
    /// `JWT_SECRET_KEY`: the HS256 signing secret (at least 32 characters). When unset, it is
    /// read from the key file (`SECRETS_FILE`), which is created on first start.
    pub jwt_secret: Option<String>,
    /// `JWT_SECRET_KEY_PREVIOUS`: the secret being rotated away from; tokens it signed still
    /// verify (new ones are signed with `JWT_SECRET_KEY`).
    pub jwt_secret_previous: Option<String>,
    /// `JWT_AUDIENCE`: the `aud` claim tokens are issued for and checked against
    /// (default `mcpgate-api`).
    pub jwt_audience: String,
    /// `JWT_ISSUER`: the `iss` claim (default `mcpgate`).
    pub jwt_issuer: String,
    /// `PLATFORM_ADMIN_EMAIL`: the platform admin created at first start
    /// (default `admin@example.com`).
    pub platform_admin_email: String,
    /// `PLATFORM_ADMIN_PASSWORD`: that admin's password. When unset, one is generated on first
    /// start and printed once. When set, it is applied at every start.
    pub platform_admin_password: Option<String>,
    /// `AUTH_ENCRYPTION_SECRET`: the secret upstream credentials and REST tool headers are
    /// encrypted with at rest. When unset, it is read from the key file (`SECRETS_FILE`).
    pub encryption_secret: Option<String>,
    /// `AUTH_ENCRYPTION_SECRET_PREVIOUS`: the secret being rotated away from; what it sealed
    /// still opens and is sealed again with the current secret at start.
    pub encryption_secret_previous: Option<String>,
    /// `SECRETS_FILE`: a JSON key file (mode 0600) holding the secrets not given by settings.
    /// Default on SQLite: beside the database (`mcpgate.db` → `mcpgate.secrets`), created on
    /// first start. On PostgreSQL there is no default: give the secrets as settings (every
    /// replica the same) or name a file.
    pub secrets_file: Option<PathBuf>,
    /// Sign-in, passwords and the identity cache.
    pub identity: IdentitySettings,
    /// `JWT_ALGORITHM` with `JWT_PRIVATE_KEY_PATH` and `JWT_PUBLIC_KEY_PATH`: sign and verify
    /// with RS256 or ES256 and this PEM key pair instead of the HS256 secret.
    pub jwt_key_pair: Option<JwtKeyPair>,
    /// `MCP_AUTHORIZATION_SERVERS`: comma-separated URLs of the authorization servers the MCP
    /// endpoints' protected resource metadata names (default: this gateway).
    pub authorization_servers: Vec<String>,
}

/// An asymmetric signing key pair, read from PEM files at start.
#[derive(Clone)]
pub struct JwtKeyPair {
    /// `RS256` or `ES256`.
    pub algorithm: jsonwebtoken::Algorithm,
    /// The private key (PEM).
    pub private_pem: Vec<u8>,
    /// The public key (PEM).
    pub public_pem: Vec<u8>,
}

impl fmt::Debug for JwtKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeyPair")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Sign-in, password policy and the identity cache.
#[derive(Clone, Debug)]
pub struct IdentitySettings {
    /// `TOKEN_EXPIRY`: minutes a token from `POST /auth/login` is valid (default 1440).
    pub token_expiry: Duration,
    /// `PASSWORD_MIN_LENGTH`: the shortest accepted password (default 12).
    pub password_min_length: usize,
    /// `MAX_FAILED_LOGIN_ATTEMPTS`: failed sign-ins in a row that lock an account (default 5).
    pub max_failed_logins: i32,
    /// `ACCOUNT_LOCKOUT_DURATION_MINUTES`: how long a locked account stays locked (default 5:
    /// short, so a lockout cannot keep an account out for long; the per-address limit below
    /// slows guessing).
    pub lockout: Duration,
    /// `LOGIN_RATE_LIMIT_PER_MINUTE`: sign-in attempts one address may make per minute, on the
    /// REST API and the console together (default 10); beyond it, 429 with `Retry-After`.
    pub login_rate_per_minute: u32,
    /// `LOGIN_CONCURRENCY`: password verifications (argon2id) in flight at once (default 4), so
    /// a flood of sign-ins cannot take the gateway's CPU.
    pub login_concurrency: usize,
    /// `AUTH_CACHE_TTL_SECONDS`: how long a user's roles and teams are served from the cache
    /// before they are read again (default 30); changes made on this replica apply at once.
    pub cache_ttl: Duration,
    /// `DEFAULT_USER_ROLE`: the global role a new user gets unless one is given (default
    /// `developer`).
    pub default_role: String,
    /// `TOKEN_REVOCATION_REFRESH_SECONDS`: how often the revocation list is read again (default
    /// 5): a token revoked on another replica stops working here within this time.
    pub revocation_refresh: Duration,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("platform_admin_email", &self.platform_admin_email)
            .field(
                "platform_admin_password",
                &self.platform_admin_password.as_ref().map(|_| "<set>"),
            )
            .field(
                "jwt_secret_previous",
                &self.jwt_secret_previous.as_ref().map(|_| "<set>"),
            )
            .field(
                "encryption_secret",
                &self.encryption_secret.as_ref().map(|_| "<set>"),
            )
            .field(
                "encryption_secret_previous",
                &self.encryption_secret_previous.as_ref().map(|_| "<set>"),
            )
            .field("secrets_file", &self.secrets_file)
            .field("jwt_key_pair", &self.jwt_key_pair)
            .field("authorization_servers", &self.authorization_servers)
            .field("identity", &self.identity)
            .finish()
    }
}

/// `JWT_ALGORITHM` (`HS256` by default) and, for RS256/ES256, the key files; the keys are
/// checked to load and to match here, so a bad key stops the start with the variable named.
fn jwt_key_pair(source: &Source<'_>) -> Result<Option<JwtKeyPair>, ConfigError> {
    let algorithm = match source
        .string("JWT_ALGORITHM", "HS256")
        .to_ascii_uppercase()
        .as_str()
    {
        "HS256" => return Ok(None),
        "RS256" => jsonwebtoken::Algorithm::RS256,
        "ES256" => jsonwebtoken::Algorithm::ES256,
        other => {
            return Err(invalid(
                "JWT_ALGORITHM",
                format!("{other:?} is not HS256, RS256 or ES256"),
            ));
        }
    };
    let read = |variable: &'static str| -> Result<Vec<u8>, ConfigError> {
        let path = source.raw(variable).ok_or_else(|| {
            invalid(
                variable,
                "required with JWT_ALGORITHM RS256 or ES256 (a PEM file)",
            )
        })?;
        std::fs::read(&path)
            .map_err(|error| invalid(variable, format!("cannot read {path}: {error}")))
    };
    let pair = JwtKeyPair {
        algorithm,
        private_pem: read("JWT_PRIVATE_KEY_PATH")?,
        public_pem: read("JWT_PUBLIC_KEY_PATH")?,
    };
    crate::auth::jwt::JwtKeys::asymmetric(
        algorithm,
        &pair.private_pem,
        &pair.public_pem,
        "check",
        "check",
    )
    .map_err(|reason| invalid("JWT_PRIVATE_KEY_PATH", reason))?;
    Ok(Some(pair))
}

/// Reads the authentication settings; `database` decides the default key file.
pub(super) fn read(
    source: &Source<'_>,
    database: &DatabaseUrl,
) -> Result<AuthSettings, ConfigError> {
    let jwt_secret = source.raw("JWT_SECRET_KEY");
    let jwt_secret_previous = source.raw("JWT_SECRET_KEY_PREVIOUS");
    for (name, secret) in [
        ("JWT_SECRET_KEY", &jwt_secret),
        ("JWT_SECRET_KEY_PREVIOUS", &jwt_secret_previous),
    ] {
        if let Some(secret) = secret
            && secret.len() < 32
        {
            return Err(invalid(
                name,
                format!(
                    "the secret has {} characters; use at least 32 (or unset it to have one generated)",
                    secret.len()
                ),
            ));
        }
    }
    let secrets_file = match source.raw("SECRETS_FILE") {
        Some(path) => Some(PathBuf::from(path)),
        None => match database {
            DatabaseUrl::Sqlite(path) => Some(path.with_extension("secrets")),
            DatabaseUrl::Postgres(_) => None,
        },
    };
    let platform_admin_email = source.string("PLATFORM_ADMIN_EMAIL", "admin@example.com");
    if !looks_like_email(&platform_admin_email) {
        return Err(invalid(
            "PLATFORM_ADMIN_EMAIL",
            format!("{platform_admin_email:?} is not an email address"),
        ));
    }
    let platform_admin_password = source.raw("PLATFORM_ADMIN_PASSWORD");
    if let Some(password) = &platform_admin_password
        && password.chars().count() < 12
    {
        return Err(invalid(
            "PLATFORM_ADMIN_PASSWORD",
            "use at least 12 characters (or unset it to have one generated)",
        ));
    }
    let auth = AuthSettings {
        jwt_secret,
        jwt_secret_previous,
        secrets_file,
        encryption_secret_previous: source.raw("AUTH_ENCRYPTION_SECRET_PREVIOUS"),
        jwt_audience: source.string("JWT_AUDIENCE", "mcpgate-api"),
        jwt_issuer: source.string("JWT_ISSUER", "mcpgate"),
        platform_admin_email: platform_admin_email.to_ascii_lowercase(),
        platform_admin_password,
        encryption_secret: source.raw("AUTH_ENCRYPTION_SECRET"),
        jwt_key_pair: jwt_key_pair(source)?,
        authorization_servers: match source.raw("MCP_AUTHORIZATION_SERVERS") {
            None => Vec::new(),
            Some(value) => {
                let mut servers = Vec::new();
                for url in value.split(',').map(str::trim).filter(|u| !u.is_empty()) {
                    let parsed = url::Url::parse(url).map_err(|error| {
                        invalid("MCP_AUTHORIZATION_SERVERS", format!("{url:?}: {error}"))
                    })?;
                    if !matches!(parsed.scheme(), "https" | "http") {
                        return Err(invalid(
                            "MCP_AUTHORIZATION_SERVERS",
                            format!("{url:?} is not an http(s) URL"),
                        ));
                    }
                    servers.push(url.trim_end_matches('/').to_owned());
                }
                servers
            }
        },
        identity: IdentitySettings {
            token_expiry: Duration::from_secs(
                60 * source.ranged("TOKEN_EXPIRY", 1440u64, 1..=525_600)?,
            ),
            password_min_length: source.ranged("PASSWORD_MIN_LENGTH", 12usize, 8..=128)?,
            max_failed_logins: source.ranged("MAX_FAILED_LOGIN_ATTEMPTS", 5i32, 1..=1000)?,
            lockout: Duration::from_secs(
                60 * source.ranged("ACCOUNT_LOCKOUT_DURATION_MINUTES", 5u64, 1..=10_080)?,
            ),
            login_rate_per_minute: source.ranged(
                "LOGIN_RATE_LIMIT_PER_MINUTE",
                10u32,
                1..=1_000_000,
            )?,
            login_concurrency: source.ranged("LOGIN_CONCURRENCY", 4usize, 1..=256)?,
            cache_ttl: source.seconds("AUTH_CACHE_TTL_SECONDS", 30.0, 3600.0)?,
            revocation_refresh: source.seconds("TOKEN_REVOCATION_REFRESH_SECONDS", 5.0, 3600.0)?,
            default_role: {
                let role = source.string("DEFAULT_USER_ROLE", "developer");
                if !crate::auth::rbac::ROLES.contains(&role.as_str()) {
                    return Err(invalid(
                        "DEFAULT_USER_ROLE",
                        format!(
                            "{role:?} is not a role; use one of {}",
                            crate::auth::rbac::ROLES.join(", ")
                        ),
                    ));
                }
                role
            },
        },
    };
    for (name, secret) in [
        ("AUTH_ENCRYPTION_SECRET", &auth.encryption_secret),
        (
            "AUTH_ENCRYPTION_SECRET_PREVIOUS",
            &auth.encryption_secret_previous,
        ),
    ] {
        if let Some(secret) = secret
            && secret.len() < 16
        {
            return Err(invalid(
                name,
                "use at least 16 characters (or unset it to have one generated)",
            ));
        }
    }
    Ok(auth)
}
