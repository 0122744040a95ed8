//! The gateway as an OAuth 2.1 client of the authorization servers that protect upstreams: the
//! configuration an upstream is registered with, discovery the way a spec-following MCP client
//! does it (the upstream's 401 names its protected resource metadata, which names the
//! authorization server, whose metadata names the endpoints; a client is registered
//! dynamically when none is given), and the token requests (client credentials, an
//! authorization code with PKCE, a refresh). Every request goes through the egress policy.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::egress::HttpClient;

/// The most bytes of a metadata document or token response read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// How long one request to an authorization server may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whose token the gateway presents to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// The gateway's own (client credentials): one token for every caller.
    ClientCredentials,
    /// Each user's own (the authorization code flow, once, in the console).
    User,
    /// Each user's own, exchanged (RFC 8693) for the gateway's assertion of who they are, at
    /// an authorization server that trusts the gateway's keys.
    TokenExchange,
}

/// How an upstream's tokens are obtained (stored sealed: it holds the client secret, which its
/// `Debug` leaves out).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthConfig {
    /// Whose token.
    pub flow: Flow,
    /// The authorization server's issuer, when known.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Where users are sent to authorize (the user flow).
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Where tokens are asked for.
    pub token_endpoint: String,
    /// The gateway's client id there.
    pub client_id: String,
    /// Its secret (none: a public client).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The scope asked for.
    #[serde(default)]
    pub scope: Option<String>,
    /// The resource the tokens are for (RFC 8707): the upstream's own identifier.
    #[serde(default)]
    pub resource: Option<String>,
    /// Token exchange: who the gateway's assertions are for (the authorization server's
    /// issuer, by default).
    #[serde(default)]
    pub audience: Option<String>,
}

/// What a token endpoint answered (its `Debug` shows no token).
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if one was issued.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the access token expires (Unix seconds), if the server said.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// When it was issued (Unix seconds).
    #[serde(default)]
    pub issued_at: i64,
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("flow", &self.flow)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "(redacted)"),
            )
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Whether the access token should be renewed now: within a fifth of its lifetime (at most
    /// a minute) of its expiry, so no request carries one that expires on the way.
    pub fn due(&self, now: i64) -> bool {
        let Some(expires_at) = self.expires_at else {
            return false;
        };
        let lifetime = (expires_at - self.issued_at).max(1);
        now >= expires_at - (lifetime / 5).clamp(1, 60)
    }
}

/// Why OAuth with an upstream's authorization server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// The server refused (its `error` and `error_description`).
    #[error("the authorization server refused: {0}")]
    Refused(String),
    /// It could not be reached, or answered what cannot be read.
    #[error("{0}")]
    Failed(String),
}

/// What registration-time discovery found out about an upstream's authorization server.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// The issuer.
    pub issuer: Option<String>,
    /// The authorization endpoint.
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    pub token_endpoint: Option<String>,
    /// The registration endpoint (RFC 7591), if it has one.
    pub registration_endpoint: Option<String>,
    /// The resource the upstream says it is.
    pub resource: Option<String>,
}

/// Asks the upstream at `url` with no token and follows what its 401 says: its protected
/// resource metadata (RFC 9728, from `WWW-Authenticate`'s `resource_metadata`, else the
/// well-known address), then its authorization server's metadata (RFC 8414, else OpenID
/// discovery).
pub async fn discover(http: &HttpClient, url: &str) -> Result<Discovered, OAuthError> {
    let probe = http
        .post(url)
        .map_err(|denied| OAuthError::Failed(denied.to_string()))?
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "ping"}))
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|error| OAuthError::Failed(format!("{url}: {}", super::describe(&error))))?;
    let named = probe
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| parameter(value, "resource_metadata"));
    let metadata_url = match named {
        Some(named) => named,
        None => {
            let parsed =
                url::Url::parse(url).map_err(|error| OAuthError::Failed(error.to_string()))?;
            let path = parsed.path().trim_end_matches('/');
            format!(
                "{}/.well-known/oauth-protected-resource{path}",
                parsed.origin().ascii_serialization()
            )
        }
    };
    let resource = fetch_json(http, &metadata_url).await?;
    let server = resource["authorization_servers"][0]
        .as_str()
        .ok_or_else(|| {
            OAuthError::Failed(format!(
                "{metadata_url} names no authorization server (authorization_servers)"
            ))
        })?
        .trim_end_matches('/')
        .to_owned();
    let issuer = url::Url::parse(&server)
        .map_err(|error| OAuthError::Failed(format!("{server}: {error}")))?;
    let path = issuer.path().trim_end_matches('/');
    let origin = issuer.origin().ascii_serialization();
    let mut metadata = None;
    for candidate in [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{server}/.well-known/openid-configuration"),
    ] {
        if let Ok(document) = fetch_json(http, &candidate).await {
            metadata = Some(document);
            break;
        }
    }
    let metadata = metadata.ok_or_else(|| {
        OAuthError::Failed(format!(
            "{server} publishes no authorization server metadata"
        ))
    })?;
    // RFC 8414 §3.3: the metadata is the named server's own, not another's.
    let named = metadata["issuer"]
        .as_str()
        .map(|issuer| issuer.trim_end_matches('/'));
    if named != Some(server.as_str()) {
        return Err(OAuthError::Failed(format!(
            "{server}'s metadata names another issuer ({})",
            named.unwrap_or("none")
        )));
    }
    let text = |name: &str| metadata[name].as_str().map(str::to_owned);
    Ok(Discovered {
        issuer: text("issuer"),
        authorization_endpoint: text("authorization_endpoint"),
        token_endpoint: text("token_endpoint"),
        registration_endpoint: text("registration_endpoint"),
        resource: resource["resource"].as_str().map(str::to_owned),
    })
}

/// Registers the gateway as a client (RFC 7591) for the user flow, returning its id and secret.
pub async fn register(
    http: &HttpClient,
    endpoint: &str,
    redirect_uri: &str,
    scope: Option<&str>,
) -> Result<(String, Option<String>), OAuthError> {
    let mut request = serde_json::json!({
        "client_name": "mcpgate",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_post",
    });
    if let Some(scope) = scope {
        request["scope"] = scope.into();
    }
    let (status, body) = exchange(
        http.post(endpoint).map(|post| post.json(&request)),
        endpoint,
    )
    .await?;
    if !status.is_success() {
        return Err(refusal(&body, status));
    }
    let client_id = body["client_id"]
        .as_str()
        .ok_or_else(|| OAuthError::Failed(format!("{endpoint} registered no client_id")))?;
    Ok((
        client_id.to_owned(),
        body["client_secret"].as_str().map(str::to_owned),
    ))
}

/// The URL a user is sent to, to authorize the gateway (S256 PKCE, the resource indicator).
pub fn authorization_url(
    config: &OAuthConfig,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Result<String, OAuthError> {
    let endpoint = config.authorization_endpoint.as_deref().ok_or_else(|| {
        OAuthError::Failed("the upstream's authorization endpoint is not known".into())
    })?;
    let mut url =
        url::Url::parse(endpoint).map_err(|error| OAuthError::Failed(error.to_string()))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(scope) = &config.scope {
            query.append_pair("scope", scope);
            // OpenID Connect grants offline access only with the user's consent asked for.
            if scope.split(' ').any(|asked| asked == "offline_access") {
                query.append_pair("prompt", "consent");
            }
        }
        if let Some(resource) = &config.resource {
            query.append_pair("resource", resource);
        }
    }
    Ok(url.into())
}

/// A token for the gateway itself (the client credentials grant).
pub async fn client_credentials(
    http: &HttpClient,
    config: &OAuthConfig,
) -> Result<Tokens, OAuthError> {
    let mut form = vec![("grant_type", "client_credentials".to_owned())];
    if let Some(scope) = &config.scope {
        form.push(("scope", scope.clone()));
    }
    token_request(http, config, form).await
}

/// The tokens an authorization code is exchanged for.
pub async fn exchange_code(
    http: &HttpClient,
    config: &OAuthConfig,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<Tokens, OAuthError> {
    let form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("code_verifier", verifier.to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
    ];
    token_request(http, config, form).await
}

/// A token for a user, exchanged for the gateway's `assertion` of who they are (RFC 8693).
pub async fn exchange_assertion(
    http: &HttpClient,
    config: &OAuthConfig,
    assertion: &str,
) -> Result<Tokens, OAuthError> {
    let form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
        ),
        ("subject_token", assertion.to_owned()),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:jwt".to_owned(),
        ),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token".to_owned(),
        ),
    ];
    token_request(http, config, form).await
}

/// New tokens for a refresh token (the refresh token is kept when no new one is issued).
pub async fn refresh(
    http: &HttpClient,
    config: &OAuthConfig,
    refresh_token: &str,
) -> Result<Tokens, OAuthError> {
    let form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.to_owned()),
    ];
    let mut tokens = token_request(http, config, form).await?;
    if tokens.refresh_token.is_none() {
        tokens.refresh_token = Some(refresh_token.to_owned());
    }
    Ok(tokens)
}

/// A request to the token endpoint, with the client's credentials in the form and the
/// resource indicator.
async fn token_request(
    http: &HttpClient,
    config: &OAuthConfig,
    mut form: Vec<(&'static str, String)>,
) -> Result<Tokens, OAuthError> {
    form.push(("client_id", config.client_id.clone()));
    if let Some(secret) = &config.client_secret {
        form.push(("client_secret", secret.clone()));
    }
    if let Some(resource) = &config.resource {
        form.push(("resource", resource.clone()));
    }
    let endpoint = &config.token_endpoint;
    let (status, body) =
        exchange(http.post(endpoint).map(|post| post.form(&form)), endpoint).await?;
    if !status.is_success() {
        return Err(refusal(&body, status));
    }
    let access_token = body["access_token"]
        .as_str()
        .filter(|token| !token.is_empty())
        .ok_or_else(|| OAuthError::Failed(format!("{endpoint} answered no access_token")))?;
    let now = chrono::Utc::now().timestamp();
    Ok(Tokens {
        access_token: access_token.to_owned(),
        refresh_token: body["refresh_token"].as_str().map(str::to_owned),
        expires_at: body["expires_in"]
            .as_i64()
            .map(|seconds| now + seconds.max(1)),
        issued_at: now,
    })
}

/// The authorization server's refusal, in its own words.
fn refusal(body: &Value, status: reqwest::StatusCode) -> OAuthError {
    let error = body["error"].as_str().unwrap_or("unknown_error");
    match body["error_description"].as_str() {
        Some(description) => OAuthError::Refused(format!("{error} ({description})")),
        None => OAuthError::Refused(format!("{error} (HTTP {status})")),
    }
}

async fn fetch_json(http: &HttpClient, url: &str) -> Result<Value, OAuthError> {
    let (status, body) = exchange(http.get(url), url).await?;
    if !status.is_success() {
        return Err(OAuthError::Failed(format!("{url} answered {status}")));
    }
    Ok(body)
}

/// Sends a request to an authorization server (or a metadata address) within the timeout;
/// its status and JSON body.
async fn exchange(
    request: Result<reqwest::RequestBuilder, crate::egress::EgressDenied>,
    url: &str,
) -> Result<(reqwest::StatusCode, Value), OAuthError> {
    let response = request
        .map_err(|denied| OAuthError::Failed(denied.to_string()))?
        .header("accept", "application/json")
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|error| OAuthError::Failed(format!("{url}: {}", super::describe(&error))))?;
    let status = response.status();
    match read_json(response, url).await {
        Ok(body) => Ok((status, body)),
        // A refusal need not be JSON; its status says enough.
        Err(_) if !status.is_success() => Ok((status, Value::Null)),
        Err(error) => Err(error),
    }
}

async fn read_json(response: reqwest::Response, url: &str) -> Result<Value, OAuthError> {
    let body = crate::egress::body_within(response, MAX_DOCUMENT)
        .await
        .map_err(|why| OAuthError::Failed(format!("{url}: {why}")))?;
    serde_json::from_slice(&body)
        .map_err(|_| OAuthError::Failed(format!("{url} did not answer JSON")))
}

/// A parameter of a `WWW-Authenticate` challenge (`name="value"` or `name=value`).
fn parameter(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}="))?;
    let rest = &challenge[at + name.len() + 1..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([',', ' ']).next()?,
    };
    Some(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_renewal() {
        let challenge = r#"Bearer error="invalid_token", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(
            parameter(challenge, "resource_metadata").as_deref(),
            Some("https://mcp.example/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            parameter(
                "Bearer resource_metadata=https://a.example/x, scope=y",
                "resource_metadata"
            )
            .as_deref(),
            Some("https://a.example/x")
        );
        assert_eq!(parameter("Bearer realm=x", "resource_metadata"), None);
        let tokens = |issued_at, expires_at| Tokens {
            access_token: "t".into(),
            refresh_token: None,
            expires_at,
            issued_at,
        };
        // A 5-second token is renewed in its last second; an hour-long one in its last minute.
        assert!(!tokens(100, Some(105)).due(103));
        assert!(tokens(100, Some(105)).due(104));
        assert!(!tokens(0, Some(3600)).due(3539));
        assert!(tokens(0, Some(3600)).due(3540));
        assert!(!tokens(0, None).due(i64::MAX));
    }
}
