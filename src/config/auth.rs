//! Token signing, secrets, sign-in and the bootstrap platform admin (`JWT_*`, `AUTH_*`,
//! `SECRETS_FILE`, `PLATFORM_ADMIN_*`, sign-in and password settings).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, DatabaseUrl, invalid, looks_like_email, parse};

/// Token signing and the bootstrap platform admin.
#[derive(clap::Args, Clone)]
pub struct AuthSettings {
    /// The HS256 signing secret (at least 32 characters). When unset, it is read from the key
    /// file (SECRETS_FILE), which is created on first start.
    #[arg(id = "JWT_SECRET_KEY", long = "jwt-secret-key", env = "JWT_SECRET_KEY", hide_env_values = true, value_parser = secret(32))]
    pub jwt_secret: Option<String>,
    /// The signing secret being rotated away from: tokens it signed still verify (new ones are
    /// signed with JWT_SECRET_KEY).
    #[arg(id = "JWT_SECRET_KEY_PREVIOUS", long = "jwt-secret-key-previous", env = "JWT_SECRET_KEY_PREVIOUS", hide_env_values = true, value_parser = secret(32))]
    pub jwt_secret_previous: Option<String>,
    /// The aud claim tokens are issued for and checked against.
    #[arg(
        id = "JWT_AUDIENCE",
        long = "jwt-audience",
        env = "JWT_AUDIENCE",
        default_value = "mcpgate-api"
    )]
    pub jwt_audience: String,
    /// The iss claim.
    #[arg(
        id = "JWT_ISSUER",
        long = "jwt-issuer",
        env = "JWT_ISSUER",
        default_value = "mcpgate"
    )]
    pub jwt_issuer: String,
    /// The platform admin created at first start.
    #[arg(id = "PLATFORM_ADMIN_EMAIL", long = "platform-admin-email", env = "PLATFORM_ADMIN_EMAIL", default_value = "admin@example.com", value_parser = email)]
    pub platform_admin_email: String,
    /// That admin's password (at least 12 characters). When unset, one is generated on first
    /// start and printed once; when set, it is applied at every start.
    #[arg(id = "PLATFORM_ADMIN_PASSWORD", long = "platform-admin-password", env = "PLATFORM_ADMIN_PASSWORD", hide_env_values = true, value_parser = admin_password)]
    pub platform_admin_password: Option<String>,
    /// The secret upstream credentials and REST tool headers are encrypted with at rest (at
    /// least 16 characters). When unset, it is read from the key file (SECRETS_FILE).
    #[arg(id = "AUTH_ENCRYPTION_SECRET", long = "auth-encryption-secret", env = "AUTH_ENCRYPTION_SECRET", hide_env_values = true, value_parser = secret(16))]
    pub encryption_secret: Option<String>,
    /// The encryption secret being rotated away from: what it sealed still opens and is sealed
    /// again with the current secret at start.
    #[arg(id = "AUTH_ENCRYPTION_SECRET_PREVIOUS", long = "auth-encryption-secret-previous", env = "AUTH_ENCRYPTION_SECRET_PREVIOUS", hide_env_values = true, value_parser = secret(16))]
    pub encryption_secret_previous: Option<String>,
    /// A JSON key file (mode 0600) holding the secrets not given by settings. Default on
    /// SQLite: beside the database (mcpgate.db -> mcpgate.secrets), created on first start. On
    /// PostgreSQL there is no default: give the secrets as settings (every replica the same)
    /// or name a file.
    #[arg(id = "SECRETS_FILE", long = "secrets-file", env = "SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Sign-in, passwords and the identity cache.
    #[command(flatten)]
    pub identity: IdentitySettings,
    /// The asymmetric signing algorithm and its key files, as given.
    #[command(flatten)]
    pub jwt_key_files: JwtKeyFiles,
    /// `JWT_ALGORITHM` with `JWT_PRIVATE_KEY_PATH` and `JWT_PUBLIC_KEY_PATH`: sign and verify
    /// with RS256 or ES256 and this PEM key pair instead of the HS256 secret (read at start).
    #[arg(skip)]
    pub jwt_key_pair: Option<JwtKeyPair>,
    /// Comma-separated URLs of the authorization servers the MCP endpoints' protected resource
    /// metadata names (default: this gateway).
    #[arg(id = "MCP_AUTHORIZATION_SERVERS", long = "mcp-authorization-servers", env = "MCP_AUTHORIZATION_SERVERS", default_value = "", value_parser = parse::list(authorization_server))]
    pub authorization_servers: std::vec::Vec<String>,
    /// Whether the built-in authorization server accepts dynamic client registration (RFC
    /// 7591) at `/register`; client ID metadata documents work either way.
    #[arg(id = "OAUTH_DYNAMIC_REGISTRATION", long = "oauth-dynamic-registration", env = "OAUTH_DYNAMIC_REGISTRATION", default_value = "true", value_parser = parse::boolean(), action = clap::ArgAction::Set)]
    pub oauth_dynamic_registration: bool,
    /// External OpenID Connect providers.
    #[command(flatten)]
    pub oidc: super::OidcSettings,
}

/// `JWT_ALGORITHM` and the PEM files of RS256/ES256.
#[derive(clap::Args, Clone, Debug)]
pub struct JwtKeyFiles {
    /// HS256 (with JWT_SECRET_KEY), RS256 or ES256 (with the two key files).
    #[arg(id = "JWT_ALGORITHM", long = "jwt-algorithm", env = "JWT_ALGORITHM", default_value = "HS256", value_parser = algorithm)]
    pub algorithm: std::option::Option<jsonwebtoken::Algorithm>,
    /// The PEM private key of RS256/ES256.
    #[arg(
        id = "JWT_PRIVATE_KEY_PATH",
        long = "jwt-private-key-path",
        env = "JWT_PRIVATE_KEY_PATH"
    )]
    pub private_key_path: Option<PathBuf>,
    /// The PEM public key of RS256/ES256.
    #[arg(
        id = "JWT_PUBLIC_KEY_PATH",
        long = "jwt-public-key-path",
        env = "JWT_PUBLIC_KEY_PATH"
    )]
    pub public_key_path: Option<PathBuf>,
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
#[derive(clap::Args, Clone, Debug)]
pub struct IdentitySettings {
    /// Minutes a token from POST /auth/login is valid.
    #[arg(id = "TOKEN_EXPIRY", long = "token-expiry", env = "TOKEN_EXPIRY", default_value = "1440", value_parser = parse::minutes(1, 525_600))]
    pub token_expiry: Duration,
    /// The shortest accepted password.
    #[arg(id = "PASSWORD_MIN_LENGTH", long = "password-min-length", env = "PASSWORD_MIN_LENGTH", default_value = "12", value_parser = parse::whole::<usize>(8, 128))]
    pub password_min_length: usize,
    /// Failed sign-ins in a row that lock an account.
    #[arg(id = "MAX_FAILED_LOGIN_ATTEMPTS", long = "max-failed-login-attempts", env = "MAX_FAILED_LOGIN_ATTEMPTS", default_value = "5", value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub max_failed_logins: i32,
    /// Minutes a locked account stays locked (short, so a lockout cannot keep an account out
    /// for long; the per-address limit slows guessing).
    #[arg(id = "ACCOUNT_LOCKOUT_DURATION_MINUTES", long = "account-lockout-duration-minutes", env = "ACCOUNT_LOCKOUT_DURATION_MINUTES", default_value = "5", value_parser = parse::minutes(1, 10_080))]
    pub lockout: Duration,
    /// Sign-in attempts one address may make per minute, on the REST API and the console
    /// together; beyond it, 429 with Retry-After.
    #[arg(id = "LOGIN_RATE_LIMIT_PER_MINUTE", long = "login-rate-limit-per-minute", env = "LOGIN_RATE_LIMIT_PER_MINUTE", default_value = "10", value_parser = parse::whole::<u32>(1, 1_000_000))]
    pub login_rate_per_minute: u32,
    /// Password verifications (argon2id) in flight at once, so a flood of sign-ins cannot take
    /// the gateway's CPU.
    #[arg(id = "LOGIN_CONCURRENCY", long = "login-concurrency", env = "LOGIN_CONCURRENCY", default_value = "4", value_parser = parse::whole::<usize>(1, 256))]
    pub login_concurrency: usize,
    /// Seconds a user's roles and teams are served from the cache before they are read again
    /// (changes made on this replica apply at once, on others as soon as the replica bus
    /// carries them: see CLUSTER_BUS).
    #[arg(id = "AUTH_CACHE_TTL_SECONDS", long = "auth-cache-ttl-seconds", env = "AUTH_CACHE_TTL_SECONDS", default_value = "30", value_parser = parse::seconds(3600.0))]
    pub cache_ttl: Duration,
    /// The global role a new user gets unless one is given.
    #[arg(id = "DEFAULT_USER_ROLE", long = "default-user-role", env = "DEFAULT_USER_ROLE", default_value = "developer", value_parser = role)]
    pub default_role: String,
    /// How often, in seconds, the revocation list is read again: the backstop for a token
    /// revoked on another replica whose event this one missed (the replica bus carries it at
    /// once).
    #[arg(id = "TOKEN_REVOCATION_REFRESH_SECONDS", long = "token-revocation-refresh-seconds", env = "TOKEN_REVOCATION_REFRESH_SECONDS", default_value = "5", value_parser = parse::seconds(3600.0))]
    pub revocation_refresh: Duration,
    /// Whether accounts may sign in with a password (console and POST /auth/login). Off, they
    /// sign in through the providers of OIDC_ISSUERS that have a client_id.
    #[arg(id = "PASSWORD_SIGN_IN", long = "password-sign-in", env = "PASSWORD_SIGN_IN", default_value = "true", value_parser = parse::boolean(), action = clap::ArgAction::Set)]
    pub password_sign_in: bool,
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
            .field(
                "oauth_dynamic_registration",
                &self.oauth_dynamic_registration,
            )
            .field("identity", &self.identity)
            .field("oidc", &self.oidc)
            .finish()
    }
}

fn algorithm(value: &str) -> Result<Option<jsonwebtoken::Algorithm>, String> {
    match value.to_ascii_uppercase().as_str() {
        "HS256" => Ok(None),
        "RS256" => Ok(Some(jsonwebtoken::Algorithm::RS256)),
        "ES256" => Ok(Some(jsonwebtoken::Algorithm::ES256)),
        _ => Err("not HS256, RS256 or ES256".into()),
    }
}

/// A secret of at least `min` characters.
fn secret(min: usize) -> impl clap::builder::TypedValueParser<Value = String> {
    move |value: &str| -> Result<String, String> {
        if value.len() < min {
            return Err(format!(
                "the secret has {} characters; use at least {min} (or unset it to have one generated)",
                value.len()
            ));
        }
        Ok(value.to_owned())
    }
}

fn email(value: &str) -> Result<String, String> {
    if looks_like_email(value) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err("not an email address".into())
    }
}

fn admin_password(value: &str) -> Result<String, String> {
    if value.chars().count() < 12 {
        return Err("use at least 12 characters (or unset it to have one generated)".into());
    }
    Ok(value.to_owned())
}

fn authorization_server(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|error| format!("{url:?}: {error}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn role(value: &str) -> Result<String, String> {
    if crate::auth::rbac::ROLES.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "not a role; use one of {}",
            crate::auth::rbac::ROLES.join(", ")
        ))
    }
}

impl AuthSettings {
    /// Settles what depends on other settings or on files: the default key file beside an
    /// SQLite database, and the RS256/ES256 key pair, checked to load and to match, so a bad
    /// key stops the start with the variable named.
    pub(super) fn settle(mut self, database: &DatabaseUrl) -> Result<Self, ConfigError> {
        if !self.identity.password_sign_in
            && !self
                .oidc
                .issuers
                .0
                .iter()
                .any(|provider| provider.client_id.is_some() && provider.allow_admins)
        {
            return Err(invalid(
                "PASSWORD_SIGN_IN",
                "false needs another way in for admins: a provider in OIDC_ISSUERS with a client_id (console single sign-on) and allow_admins",
            ));
        }
        if self.secrets_file.is_none()
            && let DatabaseUrl::Sqlite(path) = database
        {
            self.secrets_file = Some(path.with_extension("secrets"));
        }
        let Some(algorithm) = self.jwt_key_files.algorithm else {
            return Ok(self);
        };
        let read = |variable: &str, path: &Option<PathBuf>| -> Result<Vec<u8>, ConfigError> {
            let path = path.as_ref().ok_or_else(|| {
                invalid(
                    variable,
                    "required with JWT_ALGORITHM RS256 or ES256 (a PEM file)",
                )
            })?;
            std::fs::read(path).map_err(|error| {
                invalid(variable, format!("cannot read {}: {error}", path.display()))
            })
        };
        let pair = JwtKeyPair {
            algorithm,
            private_pem: read("JWT_PRIVATE_KEY_PATH", &self.jwt_key_files.private_key_path)?,
            public_pem: read("JWT_PUBLIC_KEY_PATH", &self.jwt_key_files.public_key_path)?,
        };
        crate::auth::jwt::JwtKeys::asymmetric(
            algorithm,
            &pair.private_pem,
            &pair.public_pem,
            "check",
            "check",
        )
        .map_err(|reason| invalid("JWT_PRIVATE_KEY_PATH", reason))?;
        self.jwt_key_pair = Some(pair);
        Ok(self)
    }
}
