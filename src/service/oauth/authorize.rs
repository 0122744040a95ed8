//! The authorization endpoint's decisions: which requests are acceptable (a registered client
//! and redirect URI, S256 PKCE, an MCP endpoint of this gateway the user may use), and the
//! code issued once the user consents.

use serde::Deserialize;

use super::{OAuthError, Services, hashed, redirect_matches, secret};
use crate::auth::Principal;
use crate::db::oauth::{CodeRow, GetClient, HasConsent, IssueCode};

/// How long an authorization code may wait for its exchange.
const CODE_TTL_SECONDS: i64 = 120;

/// `GET /admin/oauth/authorize`'s query.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthorizeQuery {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub state: Option<String>,
    pub resource: Option<String>,
    pub scope: Option<String>,
}

/// An authorization request found acceptable.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub state: Option<String>,
    pub scope: Option<String>,
}

/// Why an authorization request is refused: on a page (the client or its redirect URI is
/// unknown, so nothing is sent there), or back to the client.
#[derive(Debug, Clone)]
pub enum AuthorizeRefusal {
    /// Shown to the user.
    Page(String),
    /// Sent to the client's redirect URI.
    Redirect(String),
}

/// `redirect_uri` with `pairs` added to its query.
pub fn with_query(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.to_string()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

/// The MCP endpoints a token may be for at `base`: `/mcp`, and `/servers/<id>/mcp` of a
/// virtual server `principal` may see. Answers the server's id, if it is one's.
fn endpoint_of(
    services: &Services,
    principal: &Principal,
    base: &str,
    resource: &str,
) -> Result<Option<String>, String> {
    let path = resource.strip_prefix(base).ok_or_else(|| {
        format!("the resource {resource:?} is not an MCP endpoint of this gateway ({base})")
    })?;
    if path == "/mcp" {
        return principal
            .authorize("servers.use", crate::auth::On::Platform)
            .map(|()| None)
            .map_err(|denied| denied.to_string());
    }
    let server = path
        .strip_prefix("/servers/")
        .and_then(|rest| rest.strip_suffix("/mcp"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| format!("the resource {resource:?} is not an MCP endpoint of this gateway (use {base}/mcp or {base}/servers/<id>/mcp)"))?;
    let catalog = services.catalog.current();
    let seen = catalog.server(server).is_some_and(|record| {
        principal
            .authorize("servers.use", crate::auth::On::Item(&record.access))
            .is_ok()
    });
    if seen {
        Ok(Some(server.to_owned()))
    } else {
        Err(format!("there is no virtual server {server:?} you may use"))
    }
}

/// Checks an authorization request of `principal` (signed in) at a gateway reached at `base`.
pub async fn check(
    services: &Services,
    principal: &Principal,
    base: &str,
    query: &AuthorizeQuery,
) -> Result<Authorization, AuthorizeRefusal> {
    let client_id = query
        .client_id
        .as_deref()
        .ok_or_else(|| AuthorizeRefusal::Page("The request names no client (client_id).".into()))?;
    let client = if super::documents::is_document_url(client_id) {
        super::documents::resolve(services, client_id, principal.origin.client)
            .await
            .map_err(|refusal| AuthorizeRefusal::Page(refusal.description))?
    } else {
        services
            .db
            .run(GetClient {
                client_id: client_id.to_owned(),
            })
            .await
            .map_err(|_| {
                AuthorizeRefusal::Page("The gateway cannot reach its database; try again.".into())
            })?
            .ok_or_else(|| {
                AuthorizeRefusal::Page(format!(
                    "The client {client_id:?} is not registered with this gateway."
                ))
            })?
    };
    let registered: Vec<String> = serde_json::from_str(&client.redirect_uris).unwrap_or_default();
    let redirect_uri = match query.redirect_uri.as_deref() {
        Some(given) if registered.iter().any(|uri| redirect_matches(uri, given)) => {
            given.to_owned()
        }
        Some(given) => {
            return Err(AuthorizeRefusal::Page(format!(
                "The redirect URI {given:?} is not one the client registered; nothing was sent to it."
            )));
        }
        None if registered.len() == 1 => registered[0].clone(),
        None => {
            return Err(AuthorizeRefusal::Page(
                "The request names no redirect_uri and the client registered several.".into(),
            ));
        }
    };
    let back = |error: &str, description: &str| {
        let mut pairs = vec![
            ("error", error),
            ("error_description", description),
            ("iss", base),
        ];
        if let Some(state) = query.state.as_deref() {
            pairs.push(("state", state));
        }
        AuthorizeRefusal::Redirect(with_query(&redirect_uri, &pairs))
    };
    if query.response_type.as_deref() != Some("code") {
        return Err(back(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    let challenge = match (
        query.code_challenge.as_deref(),
        query.code_challenge_method.as_deref(),
    ) {
        (Some(challenge), Some("S256")) if challenge.len() >= 43 && challenge.len() <= 128 => {
            challenge
        }
        (Some(_), Some("S256")) => {
            return Err(back(
                "invalid_request",
                "code_challenge must be 43 to 128 characters",
            ));
        }
        _ => {
            return Err(back(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ));
        }
    };
    let resource = query
        .resource
        .clone()
        .unwrap_or_else(|| format!("{base}/mcp"));
    if let Err(why) = endpoint_of(services, principal, base, &resource) {
        return Err(back("invalid_target", &why));
    }
    Ok(Authorization {
        client_id: client.client_id.clone(),
        // A metadata document names itself: the user sees where it is published too.
        client_name: match (&client.client_name, client.source.as_str()) {
            (Some(name), "metadata_document") => {
                let host = url::Url::parse(&client.client_id)
                    .ok()
                    .and_then(|url| url.host_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("{name} (from {host})")
            }
            (Some(name), _) => name.clone(),
            (None, _) => client.client_id.clone(),
        },
        redirect_uri,
        code_challenge: challenge.to_owned(),
        resource,
        state: query.state.clone(),
        scope: query.scope.clone(),
    })
}

/// Whether `email` consented to `client_id` before.
pub async fn consented(services: &Services, email: &str, client_id: &str) -> bool {
    services
        .db
        .run(HasConsent {
            email: email.to_owned(),
            client_id: client_id.to_owned(),
        })
        .await
        .unwrap_or(false)
}

/// Issues a code for an accepted authorization (remembering the consent if this request gave
/// it); answers where to send the user.
pub async fn approve(
    services: &Services,
    principal: &Principal,
    base: &str,
    authorization: &Authorization,
    consent: bool,
) -> Result<String, OAuthError> {
    let code = secret();
    let row = CodeRow {
        code_hash: hashed(&code),
        client_id: authorization.client_id.clone(),
        user_email: principal.email.clone(),
        redirect_uri: authorization.redirect_uri.clone(),
        code_challenge: authorization.code_challenge.clone(),
        resource: authorization.resource.clone(),
        scope: authorization.scope.clone(),
        expires_at: crate::db::now() + chrono::Duration::seconds(CODE_TTL_SECONDS),
        used_at: None,
        grant_id: None,
    };
    services
        .db
        .run(IssueCode { consent, code: row })
        .await
        .map_err(|_| OAuthError::unavailable())?;
    let mut pairs = vec![("code", code.as_str()), ("iss", base)];
    if let Some(state) = authorization.state.as_deref() {
        pairs.push(("state", state));
    }
    Ok(with_query(&authorization.redirect_uri, &pairs))
}

/// Where the user is sent on declining.
pub fn declined(base: &str, authorization: &Authorization) -> String {
    let mut pairs = vec![
        ("error", "access_denied"),
        ("error_description", "the user declined"),
        ("iss", base),
    ];
    if let Some(state) = authorization.state.as_deref() {
        pairs.push(("state", state));
    }
    with_query(&authorization.redirect_uri, &pairs)
}
