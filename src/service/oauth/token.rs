//! The token endpoint: an authorization code with its PKCE verifier, or a refresh token
//! (rotated; a reused one revokes its grant), for a signed access token bound to one MCP
//! endpoint.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ACCESS_TOKEN_TTL, OAuthError, Services, hashed, secret};
use crate::db::oauth::{Exchange, GetClient, RedeemCode, Redeemed, Refreshed, RotateRefresh};

/// How long a refresh token works (each use gives a new one with the grant's lifetime).
const REFRESH_TOKEN_DAYS: i64 = 30;

/// `POST /oauth/token`'s form.
#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
}

/// The S256 challenge of a verifier.
fn challenge_of(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `POST /oauth/token`: an authorization code (with its PKCE verifier) or a refresh token for
/// an access token and a new refresh token.
pub async fn token(services: &Services, request: TokenRequest) -> Result<Value, OAuthError> {
    let client_id = request.client_id.clone().ok_or_else(|| {
        OAuthError::new(
            401,
            "invalid_client",
            "client_id is required (public clients send it in the form)",
        )
    })?;
    match request.grant_type.as_deref() {
        Some("authorization_code") => by_code(services, client_id, request).await,
        Some("refresh_token") => by_refresh(services, client_id, request).await,
        Some(other) => Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            format!(
                "grant_type {other:?} is not offered (authorization_code and refresh_token are)"
            ),
        )),
        None => Err(OAuthError::request("grant_type is required")),
    }
}

async fn by_code(
    services: &Services,
    client_id: String,
    request: TokenRequest,
) -> Result<Value, OAuthError> {
    let code = request
        .code
        .ok_or_else(|| OAuthError::request("code is required"))?;
    let verifier = request
        .code_verifier
        .ok_or_else(|| OAuthError::request("code_verifier is required (PKCE)"))?;
    let redirect_uri = request
        .redirect_uri
        .ok_or_else(|| OAuthError::request("redirect_uri is required"))?;
    let known = services
        .db
        .run(GetClient {
            client_id: client_id.clone(),
        })
        .await
        .map_err(|_| OAuthError::unavailable())?;
    if known.is_none() {
        return Err(OAuthError::new(
            401,
            "invalid_client",
            "the client is not registered with this gateway",
        ));
    }
    let refresh = secret();
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let exchange = Exchange {
        client_id: client_id.clone(),
        redirect_uri,
        challenge: challenge_of(&verifier),
        resource: request.resource,
        grant_id: crate::registry::new_id(),
        refresh_hash: hashed(&refresh),
        access_jti: jti.clone(),
        refresh_expires_at: crate::db::now() + chrono::Duration::days(REFRESH_TOKEN_DAYS),
    };
    let redeemed = services
        .db
        .run(RedeemCode {
            code_hash: hashed(&code),
            exchange,
        })
        .await
        .map_err(|_| OAuthError::unavailable())?;
    match redeemed {
        Redeemed::Unknown => Err(OAuthError::grant("the code is not valid")),
        Redeemed::Replayed(jti) => {
            if let Some(jti) = jti {
                services.auth.revoked(jti).await;
            }
            Err(OAuthError::grant(
                "the code was used before; the tokens issued for it are revoked",
            ))
        }
        Redeemed::Refused(problem) => Err(OAuthError::grant(problem)),
        Redeemed::Granted(grant) => issue(services, &grant, &jti, &refresh).await,
    }
}

async fn by_refresh(
    services: &Services,
    client_id: String,
    request: TokenRequest,
) -> Result<Value, OAuthError> {
    let presented = request
        .refresh_token
        .ok_or_else(|| OAuthError::request("refresh_token is required"))?;
    let refresh = secret();
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let outcome = services
        .db
        .run(RotateRefresh {
            client_id: client_id.clone(),
            refresh_hash: hashed(&presented),
            new_refresh_hash: hashed(&refresh),
            new_access_jti: jti.clone(),
        })
        .await
        .map_err(|_| OAuthError::unavailable())?;
    match outcome {
        Refreshed::Unknown => Err(OAuthError::grant(
            "the refresh token is not valid for this client",
        )),
        Refreshed::Ended => Err(OAuthError::grant(
            "the grant has ended (revoked, expired, or the account was disabled or its password changed); authorize again",
        )),
        Refreshed::Reused(jti) => {
            services.auth.revoked(jti).await;
            Err(OAuthError::grant(
                "the refresh token was used before; every token of this grant is now revoked",
            ))
        }
        Refreshed::Rotated(grant) => {
            if let Some(resource) = request.resource
                && resource != grant.resource
            {
                return Err(OAuthError::new(
                    400,
                    "invalid_target",
                    format!("this grant is for {}, not {resource}", grant.resource),
                ));
            }
            issue(services, &grant, &jti, &refresh).await
        }
    }
}

/// Signs the access token of a stored grant and answers the token response.
async fn issue(
    services: &Services,
    grant: &crate::db::oauth::GrantRow,
    jti: &str,
    refresh: &str,
) -> Result<Value, OAuthError> {
    let (email, client_id, resource) = (
        grant.user_email.as_str(),
        grant.client_id.as_str(),
        grant.resource.as_str(),
    );
    let server_id = resource
        .rsplit_once("/servers/")
        .and_then(|(_, rest)| rest.strip_suffix("/mcp"))
        .map(str::to_owned);
    let uid = services
        .auth
        .scoping()
        .grants(email)
        .await
        .ok()
        .flatten()
        .and_then(|grants| grants.account.id.clone());
    let expires_at = chrono::Utc::now()
        + chrono::Duration::from_std(ACCESS_TOKEN_TTL).unwrap_or(chrono::Duration::hours(1));
    let access = services
        .auth
        .sign_oauth(crate::auth::jwt::OAuthGrant {
            email,
            uid: uid.as_deref(),
            jti,
            expires_at,
            client_id,
            resource,
            server_id: server_id.as_deref(),
        })
        .map_err(|_| OAuthError::unavailable())?;
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL.as_secs(),
        "refresh_token": refresh,
        "scope": "mcp",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
