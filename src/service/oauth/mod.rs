//! The built-in OAuth 2.1 authorization server, so spec-following MCP clients can connect:
//! RFC 8414 metadata, RFC 7591 dynamic client registration (public clients, PKCE), the
//! authorization code flow with S256 PKCE only, refresh tokens rotated on every use (a reused
//! one revokes its grant) and RFC 8707 resource indicators — a token is for one MCP endpoint of
//! this gateway and is refused on any other. Codes and refresh tokens are stored as SHA-256
//! hashes; nothing about a token or secret is logged. Every refusal is an OAuth error a client
//! can act on (`error` and `error_description`).

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Services;
use crate::auth::Principal;
use crate::db::oauth::{ClientRow, Disconnect, ListGrants, RegisterClient};

mod authorize;
mod documents;
mod token;

pub use self::authorize::{
    Authorization, AuthorizeQuery, AuthorizeRefusal, approve, check, consented, declined,
};
pub use self::documents::Fetched;
pub use self::token::{TokenRequest, token};

/// How long an access token works.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Dynamic registrations one address may make in an hour (registration is anonymous, so this
/// is what keeps one caller from filling the clients table).
pub const REGISTRATIONS_PER_HOUR: u32 = 20;

/// Registrations per client address in the current hour.
#[derive(Debug, Default)]
pub struct Registrations {
    counts: dashmap::DashMap<Option<std::net::IpAddr>, (i64, u32)>,
}

impl Registrations {
    /// Counts one registration from `address`; `false` when its hour's allowance is used up.
    fn admit(&self, address: Option<std::net::IpAddr>, now: chrono::DateTime<chrono::Utc>) -> bool {
        let hour = now.timestamp().div_euclid(3600);
        // Last hour's addresses are forgotten, so the map holds this hour's callers only.
        if self.counts.len() > 10_000 {
            self.counts.retain(|_, (seen, _)| *seen == hour);
        }
        let mut entry = self.counts.entry(address).or_insert((hour, 0));
        if entry.0 != hour {
            *entry = (hour, 0);
        }
        if entry.1 >= REGISTRATIONS_PER_HOUR {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// Redirect URIs a client may register.
const MAX_REDIRECT_URIS: usize = 10;

/// An OAuth error response (RFC 6749 §5.2, RFC 7591 §3.2.2).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }

    fn grant(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_grant", description)
    }

    fn request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }

    fn unavailable() -> Self {
        Self::new(
            503,
            "temporarily_unavailable",
            "the gateway cannot reach its database; try again",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": self.error, "error_description": self.description})
    }
}

/// The SHA-256 of a secret, hex: how codes and refresh tokens are stored.
fn hashed(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A new secret: 256 random bits, URL-safe.
fn secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The authorization server's metadata (RFC 8414) for a gateway reached at `base`.
pub fn metadata(base: &str, registration: bool) -> Value {
    let mut document = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/admin/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["mcp"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
        "service_documentation": format!("{base}/openapi.json"),
    });
    if registration {
        document["registration_endpoint"] = json!(format!("{base}/oauth/register"));
    }
    document
}

/// Whether `host` is this machine's loopback interface.
fn loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// A redirect URI a client may register: HTTPS, HTTP on the loopback interface (RFC 8252
/// §7.3), or a private-use scheme in reverse-domain form (§7.1); never with a fragment.
fn acceptable_redirect(uri: &str) -> Result<(), String> {
    let parsed = url::Url::parse(uri).map_err(|error| format!("{uri:?} is not a URL ({error})"))?;
    if parsed.fragment().is_some() {
        return Err(format!("{uri:?} has a fragment"));
    }
    let host = parsed.host_str().unwrap_or_default();
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if loopback(host) => Ok(()),
        "http" => Err(format!(
            "{uri:?}: plain http is allowed only on the loopback interface (127.0.0.1, [::1], localhost)"
        )),
        scheme if scheme.contains('.') => Ok(()),
        scheme => Err(format!(
            "{uri:?}: use https, http on the loopback interface, or a private-use scheme like com.example.app (not {scheme})"
        )),
    }
}

/// Whether `given` is the registered redirect URI `registered`: exactly, except that the port
/// of a loopback HTTP redirect may differ (RFC 8252 §7.3: native apps pick a free port).
fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let (Ok(mut registered), Ok(mut given)) = (url::Url::parse(registered), url::Url::parse(given))
    else {
        return false;
    };
    let loopback_http =
        |url: &url::Url| url.scheme() == "http" && loopback(url.host_str().unwrap_or_default());
    if !(loopback_http(&registered) && loopback_http(&given)) {
        return false;
    }
    let _ = registered.set_port(None);
    let _ = given.set_port(None);
    registered == given
}

/// `POST /oauth/register` (RFC 7591) from `address`: a public client that uses PKCE.
pub async fn register(
    services: &Services,
    address: Option<std::net::IpAddr>,
    request: Value,
) -> Result<Value, OAuthError> {
    let metadata_error =
        |description: String| OAuthError::new(400, "invalid_client_metadata", description);
    if !services.settings.auth.oauth_dynamic_registration {
        return Err(OAuthError::new(
            403,
            "access_denied",
            "dynamic client registration is switched off on this gateway (OAUTH_DYNAMIC_REGISTRATION=false)",
        ));
    }
    if !services.registrations.admit(address, chrono::Utc::now()) {
        return Err(OAuthError::new(
            429,
            "temporarily_unavailable",
            format!(
                "at most {REGISTRATIONS_PER_HOUR} clients may be registered from one address in an hour; try again later"
            ),
        ));
    }
    let Value::Object(request) = request else {
        return Err(metadata_error(
            "the registration must be a JSON object".into(),
        ));
    };
    let (uris, name) = client_metadata(&request)?;
    let client_id = format!("mcpgate-{}", secret());
    let issued = crate::db::now();
    let answer = json!({
        "client_id": client_id,
        "client_id_issued_at": issued.and_utc().timestamp(),
        "client_name": name,
        "redirect_uris": uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    let row = ClientRow {
        client_id: client_id.clone(),
        client_name: name,
        redirect_uris: json!(uris).to_string(),
        metadata: answer.to_string(),
        source: "dynamic".into(),
        created_at: issued,
    };
    services
        .db
        .run(RegisterClient { row })
        .await
        .map_err(|_| OAuthError::unavailable())?;
    Ok(answer)
}

/// The redirect URIs and name of a client's metadata (a registration or a client ID metadata
/// document), checked: public clients only (PKCE), the code flow and refresh tokens only,
/// acceptable redirect URIs.
fn client_metadata(
    request: &serde_json::Map<String, Value>,
) -> Result<(Vec<String>, Option<String>), OAuthError> {
    let metadata_error =
        |description: String| OAuthError::new(400, "invalid_client_metadata", description);
    let uris: Vec<String> = match request.get("redirect_uris") {
        Some(Value::Array(uris)) if !uris.is_empty() && uris.len() <= MAX_REDIRECT_URIS => uris
            .iter()
            .map(|uri| uri.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| metadata_error("redirect_uris must be strings".into()))?,
        _ => {
            return Err(OAuthError::new(
                400,
                "invalid_redirect_uri",
                format!("redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs"),
            ));
        }
    };
    for uri in &uris {
        acceptable_redirect(uri)
            .map_err(|why| OAuthError::new(400, "invalid_redirect_uri", why))?;
    }
    let method = request
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none");
    if method != "none" {
        return Err(metadata_error(format!(
            "token_endpoint_auth_method {method:?} is not offered: clients here are public and prove themselves with PKCE (use \"none\")"
        )));
    }
    let strings = |key: &str| -> Vec<String> {
        request
            .get(key)
            .and_then(Value::as_array)
            .map(|values| {
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(grant) = strings("grant_types")
        .into_iter()
        .find(|grant| grant != "authorization_code" && grant != "refresh_token")
    {
        return Err(metadata_error(format!(
            "grant type {grant:?} is not offered (authorization_code and refresh_token are)"
        )));
    }
    if let Some(kind) = strings("response_types")
        .into_iter()
        .find(|kind| kind != "code")
    {
        return Err(metadata_error(format!(
            "response type {kind:?} is not offered (code is)"
        )));
    }
    let name = request
        .get("client_name")
        .and_then(Value::as_str)
        .map(|name| name.chars().take(200).collect::<String>());
    Ok((uris, name))
}

/// A connected app as its user sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectedApp {
    pub client_id: String,
    /// The name it registered, else its id.
    pub client_name: String,
    pub resource: String,
    pub connected_at: chrono::NaiveDateTime,
    pub refreshed_at: chrono::NaiveDateTime,
}

/// The apps `principal` connected (grants in force), newest first.
pub async fn connected(services: &Services, principal: &Principal) -> Vec<ConnectedApp> {
    let grants = services
        .db
        .run(ListGrants {
            email: principal.email.clone(),
        })
        .await
        .unwrap_or_default();
    let mut apps = Vec::with_capacity(grants.len());
    for grant in grants {
        let client = services
            .db
            .run(crate::db::oauth::GetClient {
                client_id: grant.client_id.clone(),
            })
            .await
            .ok()
            .flatten();
        apps.push(ConnectedApp {
            client_name: client
                .and_then(|client| client.client_name)
                .unwrap_or_else(|| grant.client_id.clone()),
            client_id: grant.client_id,
            resource: grant.resource,
            connected_at: grant.created_at,
            refreshed_at: grant.refreshed_at,
        });
    }
    apps
}

/// Disconnects an app: its tokens stop working on every replica (through `revoked_tokens`)
/// and at once on this one.
pub async fn disconnect(
    services: &Services,
    principal: &Principal,
    client_id: &str,
) -> Result<usize, OAuthError> {
    let refused = services
        .db
        .run(Disconnect {
            email: principal.email.clone(),
            client_id: client_id.to_owned(),
        })
        .await
        .map_err(|_| OAuthError::unavailable())?;
    for jti in &refused {
        services.auth.revoked(jti.clone()).await;
    }
    Ok(refused.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_bounded_per_address_and_hour() {
        let limit = Registrations::default();
        let at = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let one = Some("203.0.113.7".parse().unwrap());
        for _ in 0..REGISTRATIONS_PER_HOUR {
            assert!(limit.admit(one, at("2026-12-05T10:00:00Z")));
        }
        assert!(!limit.admit(one, at("2026-12-05T10:59:59Z")));
        assert!(limit.admit(
            Some("203.0.113.8".parse().unwrap()),
            at("2026-12-05T10:59:59Z")
        ));
        assert!(limit.admit(one, at("2026-12-05T11:00:00Z")), "a new hour");
    }

    #[test]
    fn redirect_uris_follow_rfc_8252() {
        assert!(acceptable_redirect("https://app.example/cb").is_ok());
        assert!(acceptable_redirect("http://127.0.0.1:33418/callback").is_ok());
        assert!(acceptable_redirect("http://localhost/cb").is_ok());
        assert!(acceptable_redirect("com.example.app:/oauth").is_ok());
        assert!(acceptable_redirect("http://app.example/cb").is_err());
        assert!(acceptable_redirect("javascript:alert(1)").is_err());
        assert!(acceptable_redirect("https://app.example/cb#frag").is_err());
        assert!(redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5173/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5173/other"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example:444/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb?x=1"
        ));
    }
}
