//! JSON Web Tokens issued and verified by this gateway: HS256 with a shared secret by default,
//! RS256 or ES256 with a configured key pair.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::AuthError;

/// The claims mcpgate puts in and expects from its tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's email.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Issued at, in milliseconds: orders a sign-in against a password change or a disable in
    /// the same second (`iat` alone cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
    /// Token id, for revocation.
    pub jti: String,
    /// Audience.
    pub aud: String,
    /// Issuer.
    pub iss: String,
    /// Whether the user was a platform admin when the token was issued (informational: the
    /// stored account decides).
    #[serde(default)]
    pub is_admin: bool,
    /// `api` for an API token (`POST /tokens`); absent for a sign-in token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    /// An API token's restrictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<super::scope::TokenScope>,
    /// The account's immutable id: a token never works for another account of the same email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// An OAuth access token's resource (RFC 8707): the one MCP endpoint it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The OAuth client it was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// What an OAuth access token is issued for.
#[derive(Clone, Copy, Debug)]
pub struct OAuthGrant<'a> {
    pub email: &'a str,
    pub uid: Option<&'a str>,
    pub jti: &'a str,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub client_id: &'a str,
    /// The MCP endpoint's URL.
    pub resource: &'a str,
    /// The virtual server of that endpoint, if it is one's.
    pub server_id: Option<&'a str>,
}

/// Signing and verification keys with the expected issuer and audience.
pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The HS256 secret being rotated away from: verifies, never signs.
    previous: Option<DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl JwtKeys {
    /// Keys for an HS256 shared secret.
    pub fn hs256(secret: &str, issuer: &str, audience: &str) -> Self {
        Self::with(
            Algorithm::HS256,
            EncodingKey::from_secret(secret.as_bytes()),
            DecodingKey::from_secret(secret.as_bytes()),
            issuer,
            audience,
        )
    }

    /// Keys for RS256 or ES256 from PEM: a PKCS#8 (or PKCS#1 for RSA) private key and its
    /// public key (SubjectPublicKeyInfo). The pair is checked by signing and verifying once.
    pub fn asymmetric(
        algorithm: Algorithm,
        private_pem: &[u8],
        public_pem: &[u8],
        issuer: &str,
        audience: &str,
    ) -> Result<Self, String> {
        let (encoding, decoding) = match algorithm {
            Algorithm::RS256 => (
                EncodingKey::from_rsa_pem(private_pem),
                DecodingKey::from_rsa_pem(public_pem),
            ),
            Algorithm::ES256 => (
                EncodingKey::from_ec_pem(private_pem),
                DecodingKey::from_ec_pem(public_pem),
            ),
            other => return Err(format!("{other:?} is not RS256 or ES256")),
        };
        let encoding =
            encoding.map_err(|error| format!("the private key does not load: {error}"))?;
        let decoding =
            decoding.map_err(|error| format!("the public key does not load: {error}"))?;
        let keys = Self::with(algorithm, encoding, decoding, issuer, audience);
        let probe = keys.issue("probe@example.com", false, Duration::from_secs(60))?;
        keys.verify(&probe)
            .map_err(|_| "the public key does not verify what the private key signs".to_owned())?;
        Ok(keys)
    }

    fn with(
        algorithm: Algorithm,
        encoding: EncodingKey,
        decoding: DecodingKey,
        issuer: &str,
        audience: &str,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss", "jti"]);
        validation.leeway = 30;
        // A token that says it is not valid yet is refused until then.
        validation.validate_nbf = true;
        JwtKeys {
            algorithm,
            encoding,
            decoding,
            previous: None,
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// The same keys, also accepting tokens signed with `previous` (an HS256 secret rotation in
    /// progress).
    pub fn with_previous_secret(mut self, previous: &str) -> Self {
        self.previous = Some(DecodingKey::from_secret(previous.as_bytes()));
        self
    }

    /// Issues a token for `email` valid for `lifetime`, not bound to an account id (it works
    /// for an account created before it was issued).
    pub fn issue(&self, email: &str, is_admin: bool, lifetime: Duration) -> Result<String, String> {
        self.issue_for(email, None, is_admin, lifetime)
    }

    /// Issues a sign-in token for the account `uid` (`email`) valid for `lifetime`.
    pub fn issue_for(
        &self,
        email: &str,
        uid: Option<&str>,
        is_admin: bool,
        lifetime: Duration,
    ) -> Result<String, String> {
        let issued = chrono::Utc::now();
        let now = issued.timestamp();
        let claims = Claims {
            sub: email.to_owned(),
            exp: now + lifetime.as_secs() as i64,
            iat: now,
            iat_ms: Some(issued.timestamp_millis()),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            is_admin,
            token_use: None,
            scope: None,
            uid: uid.map(str::to_owned),
            resource: None,
            client_id: None,
        };
        self.sign(&claims)
    }

    /// Issues an API token with id `jti`, expiring at `expires_at`, restricted by `scope`.
    pub fn issue_api(
        &self,
        email: &str,
        uid: Option<&str>,
        jti: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
        scope: super::scope::TokenScope,
    ) -> Result<String, String> {
        let claims = Claims {
            sub: email.to_owned(),
            exp: expires_at.timestamp(),
            iat: chrono::Utc::now().timestamp(),
            iat_ms: None,
            jti: jti.to_owned(),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            is_admin: false,
            token_use: Some("api".into()),
            scope: Some(scope),
            uid: uid.map(str::to_owned),
            resource: None,
            client_id: None,
        };
        self.sign(&claims)
    }

    /// Issues an OAuth access token with id `jti` to `client_id` for the MCP endpoint
    /// `resource` (and, for a virtual server's endpoint, restricted to that server).
    pub fn issue_oauth(&self, grant: OAuthGrant<'_>) -> Result<String, String> {
        let now = chrono::Utc::now();
        let claims = Claims {
            sub: grant.email.to_owned(),
            exp: grant.expires_at.timestamp(),
            iat: now.timestamp(),
            iat_ms: Some(now.timestamp_millis()),
            jti: grant.jti.to_owned(),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            is_admin: false,
            token_use: Some("oauth".into()),
            scope: Some(super::scope::TokenScope {
                server_id: grant.server_id.map(str::to_owned),
                ..super::scope::TokenScope::default()
            }),
            uid: grant.uid.map(str::to_owned),
            resource: Some(grant.resource.to_owned()),
            client_id: Some(grant.client_id.to_owned()),
        };
        self.sign(&claims)
    }

    /// Issues an assertion of `email`'s identity for another party (`audience`: an
    /// authorization server that trusts this gateway's keys), valid for `lifetime`: the
    /// subject token of an RFC 8693 exchange. Its audience is not this gateway's, so the
    /// gateway itself never accepts it.
    pub fn issue_assertion(
        &self,
        email: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Result<String, String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: email.to_owned(),
            exp: now + lifetime.as_secs() as i64,
            iat: now,
            iat_ms: None,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            aud: audience.to_owned(),
            iss: self.issuer.clone(),
            is_admin: false,
            token_use: Some("assertion".into()),
            scope: None,
            uid: None,
            resource: None,
            client_id: None,
        };
        self.sign(&claims)
    }

    /// Whether tokens are signed with a key pair (others can verify them with the public key).
    pub fn is_asymmetric(&self) -> bool {
        self.algorithm != Algorithm::HS256
    }

    fn sign(&self, claims: &Claims) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.encoding)
            .map_err(|error| format!("cannot sign the token: {error}"))
    }

    /// The `iss` of the tokens this gateway signs.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies signature, expiry, issuer and audience of a token this gateway signed; returns
    /// the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut decoded = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation);
        if let (Err(error), Some(previous)) = (&decoded, &self.previous)
            && matches!(
                error.kind(),
                jsonwebtoken::errors::ErrorKind::InvalidSignature
            )
        {
            decoded = jsonwebtoken::decode::<Claims>(token, previous, &self.validation);
        }
        let data = decoded.map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            let reason = match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::InvalidAudience => "the token is for another audience",
                ErrorKind::InvalidIssuer => "the token is from another issuer",
                ErrorKind::InvalidSignature => "the signature does not match",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                ErrorKind::InvalidAlgorithm => "the token uses another algorithm",
                _ => "the token is malformed",
            };
            AuthError::InvalidToken(reason.into())
        })?;
        // Only the kinds of token the gateway issues for itself: an assertion it signed for
        // another party (token exchange) is never a key to the gateway.
        if !matches!(
            data.claims.token_use.as_deref(),
            None | Some("api" | "oauth")
        ) {
            return Err(AuthError::InvalidToken(
                "the token is not for this gateway".into(),
            ));
        }
        Ok(data.claims)
    }

    /// The `aud` of the tokens this gateway signs for itself.
    pub fn audience(&self) -> &str {
        &self.audience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_rejections() {
        let keys = JwtKeys::hs256(SECRET, "mcpgate", "mcpgate-api");
        let token = keys
            .issue("a@example.com", true, Duration::from_secs(60))
            .unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, "a@example.com");
        assert!(claims.is_admin);

        let other_audience = JwtKeys::hs256(SECRET, "mcpgate", "elsewhere");
        assert!(other_audience.verify(&token).is_err());
        let other_secret =
            JwtKeys::hs256("another-secret-another-secret-xx", "mcpgate", "mcpgate-api");
        assert!(other_secret.verify(&token).is_err());
        assert!(keys.verify("not.a.token").is_err());
    }

    #[test]
    fn a_rotation_verifies_tokens_of_the_previous_secret() {
        let old = JwtKeys::hs256(SECRET, "mcpgate", "mcpgate-api");
        let old_token = old
            .issue("a@example.com", false, Duration::from_secs(60))
            .unwrap();
        let new_secret = "another-secret-another-secret-xx";
        let rotated =
            JwtKeys::hs256(new_secret, "mcpgate", "mcpgate-api").with_previous_secret(SECRET);
        assert_eq!(rotated.verify(&old_token).unwrap().sub, "a@example.com");
        let new_token = rotated
            .issue("b@example.com", false, Duration::from_secs(60))
            .unwrap();
        assert!(
            old.verify(&new_token).is_err(),
            "new tokens use the new secret"
        );
        let finished = JwtKeys::hs256(new_secret, "mcpgate", "mcpgate-api");
        assert!(finished.verify(&old_token).is_err());
        assert!(finished.verify(&new_token).is_ok());
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let keys = JwtKeys::hs256(SECRET, "mcpgate", "mcpgate-api");
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "sub": "a@example.com", "exp": now + 3600, "iat": now, "nbf": now + 600,
            "jti": "j", "aud": "mcpgate-api", "iss": "mcpgate",
        });
        let early = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(keys.verify(&early).is_err());
    }
}
