//! Tokens of external OpenID Connect providers (`OIDC_ISSUERS`).
//!
//! A token is matched to its provider by its `iss`; its signature is checked with the
//! provider's published keys (its JWKS, fetched by the identity provider actor and published
//! here, so a verification on a warm key set runs on the caller's thread); its algorithm must
//! be one the provider allows (never `none`, never a shared-secret one, and the key's own
//! `alg` when it names one); its `exp`, `nbf` and `iss` are checked; its `aud` must be one of
//! the provider's audiences, or this gateway's MCP endpoint URL — a token for one endpoint
//! then works on that endpoint only, like a token of the built-in authorization server. The
//! account is the one of the token's email.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::AuthError;
use super::jwt::Claims;
use crate::config::ProviderSettings;

/// A provider's discovery document, the parts the gateway uses.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Discovery {
    /// The issuer (must equal the configured one).
    pub issuer: String,
    /// Where its signing keys are.
    pub jwks_uri: String,
    /// Where console single sign-on sends the browser.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Where the console exchanges a code.
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

/// One signing key.
#[derive(Clone)]
struct Key {
    key: DecodingKey,
    /// The algorithm the key is for, when the JWKS names one.
    algorithm: Option<Algorithm>,
}

/// What the actor last fetched for a provider.
#[derive(Clone, Default)]
pub struct Published {
    /// The discovery document.
    pub discovery: Option<Discovery>,
    /// Keys by `kid`; keys without one under "".
    keys: HashMap<String, Vec<Key>>,
    /// When the keys were fetched.
    pub fetched_at: Option<Instant>,
    /// Why the last fetch failed, if it did (the keys fetched before stay in use).
    pub error: Option<String>,
}

impl Published {
    /// The keys of a JWKS document (keys this library cannot use, or not for signing, are
    /// skipped), with the discovery document they came with.
    pub fn from_jwks(discovery: Discovery, jwks: &JwkSet) -> Self {
        let mut keys: HashMap<String, Vec<Key>> = HashMap::new();
        for jwk in &jwks.keys {
            if let Some(key) = usable(jwk) {
                let kid = jwk.common.key_id.clone().unwrap_or_default();
                keys.entry(kid).or_default().push(key);
            }
        }
        Published {
            discovery: Some(discovery),
            keys,
            fetched_at: Some(Instant::now()),
            error: None,
        }
    }

    /// The ids of the published keys, sorted ("" for a key without one).
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .keys
            .iter()
            .flat_map(|(kid, keys)| keys.iter().map(move |_| kid.clone()))
            .collect();
        ids.sort();
        ids
    }

    /// How many keys are published.
    pub fn key_count(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }
}

fn usable(jwk: &Jwk) -> Option<Key> {
    use jsonwebtoken::jwk::PublicKeyUse;
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(named) => Some(named.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key { key, algorithm })
}

/// One trusted provider: its settings and what was last fetched for it.
pub struct Provider {
    /// Its settings.
    pub settings: ProviderSettings,
    /// Its discovery document and keys (written by the actor only).
    pub published: RwLock<Arc<Published>>,
}

impl Provider {
    /// A provider nothing has been fetched for yet.
    pub fn new(settings: ProviderSettings) -> Self {
        Provider {
            settings,
            published: RwLock::default(),
        }
    }

    /// What was last fetched.
    pub fn current(&self) -> Arc<Published> {
        self.published
            .read()
            .map(|published| published.clone())
            .unwrap_or_default()
    }
}

/// The unverified `iss` of a token (to pick the keys that verify it), if it has one.
pub fn issuer_of(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        iss: Option<String>,
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Peek>(token)
        .ok()
        .and_then(|peek| peek.iss)
}

/// What verifying a token with the keys at hand gave: its claims, or no key to check it with
/// (the caller fetches the keys again once, then refuses).
#[derive(Debug)]
pub enum Outcome {
    /// Verified: the claims mapped to the gateway's, with what provisioning needs.
    Verified(Box<Claims>, ExternalIdentity),
    /// No published key has the token's `kid` (or none was fetched yet).
    UnknownKey(String),
}

/// What an external token says about its user beyond the claims the gateway keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The provider's index in `OIDC_ISSUERS`.
    pub provider: usize,
    /// The user's name, if the token carries one.
    pub name: Option<String>,
    /// The user's groups (the provider's `groups_claim`), sorted.
    pub groups: Vec<String>,
    /// When the token saying so was issued (seconds since the epoch).
    pub issued_at: i64,
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidToken(reason.into())
}

/// What kind of token is expected.
#[derive(Clone, Copy, Debug)]
pub enum Expect<'a> {
    /// An access token for this gateway (its audience checked against the provider's).
    Access,
    /// The ID token of a console sign-in: for the gateway's client, with the sign-in's nonce.
    IdToken {
        /// The gateway's client id at the provider.
        client_id: &'a str,
        /// The nonce the sign-in sent.
        nonce: &'a str,
    },
}

/// Verifies `token` from provider `index` against `published`.
pub fn verify(
    index: usize,
    provider: &ProviderSettings,
    published: &Published,
    token: &str,
    expect: Expect<'_>,
) -> Result<Outcome, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        invalid("the token's header is malformed or names an algorithm that is not accepted (never \"none\")")
    })?;
    if !provider.algorithms.contains(&header.alg) {
        return Err(invalid(format!(
            "the token is signed with {:?}, which {} does not accept here (accepted: {:?})",
            header.alg, provider.issuer, provider.algorithms
        )));
    }
    // A token that names no key is tried with every published key.
    let kid = header.kid.clone().unwrap_or_default();
    let candidates: Vec<&Key> = match &header.kid {
        Some(kid) => published.keys.get(kid).into_iter().flatten().collect(),
        None => published.keys.values().flatten().collect(),
    };
    if candidates.is_empty() {
        return Ok(Outcome::UnknownKey(kid));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&provider.issuer]);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss"]);
    let mut last = None;
    for candidate in candidates {
        if candidate.algorithm.is_some_and(|named| named != header.alg) {
            continue;
        }
        match jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &candidate.key,
            &validation,
        ) {
            Ok(data) => return claims(index, provider, data.claims, token, expect),
            Err(error) => last = Some(error),
        }
    }
    Err(match last {
        None => invalid(format!(
            "the key {kid:?} of {} is not for {:?}",
            provider.issuer, header.alg
        )),
        Some(error) => {
            use jsonwebtoken::errors::ErrorKind;
            invalid(match error.kind() {
                ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                ErrorKind::ImmatureSignature => "the token is not valid yet".to_owned(),
                ErrorKind::InvalidIssuer => format!("the token is not from {}", provider.issuer),
                ErrorKind::InvalidSignature => "the signature does not match".to_owned(),
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("the token has no {claim:?} claim")
                }
                _ => "the token is malformed".to_owned(),
            })
        }
    })
}

/// The origin of `aud` when it names an MCP endpoint (`…/mcp` or `…/servers/{id}/mcp`): a
/// token for it is bound to that endpoint, and accepted only when that origin is one of the
/// provider's audiences (this gateway's public origin, as the operator gave it — never one
/// taken from a request).
fn mcp_endpoint_origin(aud: &str) -> Option<String> {
    let url = url::Url::parse(aud).ok()?;
    let segments: Vec<&str> = url.path().trim_start_matches('/').split('/').collect();
    (matches!(url.scheme(), "http" | "https")
        && url.query().is_none()
        && url.fragment().is_none()
        && matches!(segments.as_slice(), ["mcp"] | ["servers", _, "mcp"]))
    .then(|| url.origin().ascii_serialization())
}

/// The verified claims, checked for audience and mapped to the gateway's.
fn claims(
    index: usize,
    provider: &ProviderSettings,
    mut claims: serde_json::Map<String, Value>,
    token: &str,
    expect: Expect<'_>,
) -> Result<Outcome, AuthError> {
    let audiences: Vec<String> = match claims.remove("aud") {
        Some(Value::String(one)) => vec![one],
        Some(Value::Array(many)) => many
            .into_iter()
            .filter_map(|aud| aud.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let resource = if let Expect::IdToken { client_id, nonce } = expect {
        let azp = claims.get("azp").and_then(Value::as_str);
        if !audiences.iter().any(|aud| aud == client_id)
            || (audiences.len() > 1 && azp != Some(client_id))
        {
            return Err(invalid(format!(
                "the ID token is for {audiences:?}, not this gateway's client {client_id:?}"
            )));
        }
        let sent = claims
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            sent.as_bytes(),
            nonce.as_bytes(),
        )) {
            return Err(invalid("the ID token's nonce is not this sign-in's"));
        }
        None
    } else if audiences.iter().any(|aud| provider.audiences.contains(aud)) {
        None
    } else if let [aud] = audiences.as_slice()
        && mcp_endpoint_origin(aud).is_some_and(|origin| provider.audiences.contains(&origin))
    {
        Some(aud.clone())
    } else {
        return Err(invalid(format!(
            "the token is for audience {audiences:?}, which this gateway does not accept from {} (accepted: {:?}, or an MCP endpoint URL under one of them)",
            provider.issuer, provider.audiences
        )));
    };
    let email = claims
        .get(&provider.email_claim)
        .and_then(Value::as_str)
        .map(|email| email.trim().to_ascii_lowercase())
        .filter(|email| crate::config::looks_like_email(email))
        .ok_or_else(|| {
            invalid(format!(
                "the token has no email in its {:?} claim, so it names no account here",
                provider.email_claim
            ))
        })?;
    match claims.get("email_verified") {
        Some(Value::Bool(true)) => {}
        Some(Value::String(verified)) if verified == "true" => {}
        None if !provider.require_verified_email => {}
        None => {
            return Err(invalid(format!(
                "the token does not say that {email} is verified (email_verified), so it names no account here"
            )));
        }
        Some(_) => {
            return Err(invalid(format!(
                "{} says the email {email} is not verified",
                provider.issuer
            )));
        }
    }
    if !provider.email_domains.is_empty()
        && !email
            .rsplit_once('@')
            .is_some_and(|(_, domain)| provider.email_domains.iter().any(|d| d == domain))
    {
        return Err(invalid(format!(
            "{email} is not in a domain {} may sign in for ({:?})",
            provider.issuer, provider.email_domains
        )));
    }
    let mut groups: Vec<String> = provider
        .groups_claim
        .as_ref()
        .and_then(|claim| claims.get(claim))
        .and_then(Value::as_array)
        .map(|groups| {
            groups
                .iter()
                .filter_map(|group| group.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    groups.sort();
    groups.dedup();
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let exp = number("exp").unwrap_or_default();
    // A token without an id is revocable by its hash.
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .map(|jti| format!("{}#{jti}", provider.issuer))
        .unwrap_or_else(|| {
            use sha2::{Digest, Sha256};
            format!("sha256:{:x}", Sha256::digest(token.as_bytes()))
        });
    let mapped = Claims {
        sub: email,
        exp,
        iat: number("iat").unwrap_or(exp),
        iat_ms: None,
        jti,
        aud: audiences.first().cloned().unwrap_or_default(),
        iss: provider.issuer.clone(),
        is_admin: false,
        token_use: Some("external".into()),
        scope: None,
        uid: None,
        resource,
        client_id: claims
            .get("client_id")
            .or_else(|| claims.get("azp"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let identity = ExternalIdentity {
        provider: index,
        name: claims
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        groups,
        issued_at: mapped.iat,
    };
    Ok(Outcome::Verified(Box::new(mapped), identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_endpoints_are_recognised() {
        let origin = mcp_endpoint_origin;
        assert_eq!(
            origin("https://gw.example/mcp").as_deref(),
            Some("https://gw.example")
        );
        assert_eq!(
            origin("http://127.0.0.1:4444/servers/abc/mcp").as_deref(),
            Some("http://127.0.0.1:4444")
        );
        assert_eq!(origin("https://gw.example/tools"), None);
        assert_eq!(origin("https://gw.example/servers/abc/sse"), None);
        assert_eq!(origin("urn:mcpgate"), None);
        assert_eq!(origin("https://gw.example/mcp?x=1"), None);
    }

    #[test]
    fn the_issuer_is_peeked_without_trusting_it() {
        use base64::Engine;
        let part =
            |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.as_bytes());
        let token = format!(
            "{}.{}.{}",
            part(r#"{"alg":"none"}"#),
            part(r#"{"iss":"https://idp.example","sub":"x"}"#),
            ""
        );
        assert_eq!(issuer_of(&token).as_deref(), Some("https://idp.example"));
        assert_eq!(issuer_of("garbage"), None);
    }
}
