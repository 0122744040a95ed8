//! Client ID Metadata Documents: a client whose `client_id` is an HTTPS URL publishes its
//! metadata there, and the authorization server fetches it instead of asking the client to
//! register. The gateway fetches it through the egress policy (never following a redirect),
//! at most [`MAX_DOCUMENT_BYTES`] within [`FETCH_TIMEOUT`], checks it as it checks a dynamic
//! registration (plus: its `client_id` is its own URL), and stores it as the client's record
//! (so consents and grants refer to it), fetched again after [`FRESH_FOR`].
//!
//! A document is fetched only for a signed-in user's authorization request (the token
//! endpoint uses the stored record), so an anonymous caller cannot make the gateway fetch, and
//! a signed-in one only so often. The fetch follows the egress policy without its allow list
//! (which names internal upstreams, not clients' sites); documents no consent or grant uses
//! are purged after 30 days.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{OAuthError, client_metadata};
use crate::db::oauth::{ClientRow, GetClient, StoreDocumentClient};
use crate::service::Services;

/// The largest document read.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched document is used before it is fetched again.
const FRESH_FOR: Duration = Duration::from_secs(600);
/// Documents remembered as fresh at most (past it, the memory starts over).
const REMEMBERED: usize = 10_000;

/// When each document was last fetched, by client id (per process).
#[derive(Debug, Default)]
pub struct Fetched {
    at: dashmap::DashMap<String, Instant>,
}

/// Whether `client_id` names a metadata document (an HTTPS URL; plain HTTP is taken only on
/// loopback, where the egress policy must also allow it — a development set-up).
pub fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Checks the form of a metadata document URL: HTTPS (HTTP on loopback), a path, no
/// fragment, no credentials, no dot segments.
fn check_url(client_id: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(client_id)
        .map_err(|error| format!("the client id {client_id:?} is not a URL ({error})"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(format!(
            "a client ID metadata document must be served over HTTPS: {client_id:?}"
        ));
    }
    if url.path() == "/" || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "a client ID metadata document URL needs a path and no fragment or credentials: {client_id:?}"
        ));
    }
    if client_id.contains("/./") || client_id.contains("/../") || url.as_str() != client_id {
        return Err(format!(
            "the client ID metadata document URL {client_id:?} is not in its normal form"
        ));
    }
    Ok(url)
}

/// Fetches and checks the document at `url`.
async fn fetch(services: &Services, url: &url::Url) -> Result<ClientRow, String> {
    let client_id = url.as_str();
    let request = services
        .http
        .request_to(reqwest::Method::GET, url)
        .map_err(|denied| format!("the gateway may not fetch {client_id:?}: {denied}"))?;
    let response = request
        .timeout(FETCH_TIMEOUT)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|error| {
            format!(
                "{client_id} could not be fetched: {}",
                crate::upstream::transport::describe(&error)
            )
        })?;
    if !response.status().is_success() {
        return Err(format!("{client_id} answered {}", response.status()));
    }
    let body = crate::egress::body_within(response, MAX_DOCUMENT_BYTES)
        .await
        .map_err(|why| format!("{client_id} could not be read: {why}"))?;
    let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(&body) else {
        return Err(format!("{client_id} is not a JSON object"));
    };
    if document.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(format!(
            "the document at {client_id} names another client_id than its own URL"
        ));
    }
    if document.contains_key("client_secret") || document.contains_key("client_secret_expires_at") {
        return Err(format!(
            "the document at {client_id} carries a client secret, which a published document must not"
        ));
    }
    let (uris, name) = client_metadata(&document).map_err(|refusal| refusal.description)?;
    Ok(ClientRow {
        client_id: client_id.to_owned(),
        client_name: name,
        redirect_uris: serde_json::json!(uris).to_string(),
        metadata: Value::Object(document).to_string(),
        source: "metadata_document".into(),
        created_at: crate::db::now(),
    })
}

/// The client `client_id` (a metadata document URL) for an authorization request from
/// `address`: the stored record while fresh, else the document fetched (counted against the
/// address's hourly allowance, shared with dynamic registration), checked and stored again.
pub async fn resolve(
    services: &Services,
    client_id: &str,
    address: Option<std::net::IpAddr>,
) -> Result<ClientRow, OAuthError> {
    let refused = |why: String| OAuthError::new(400, "invalid_client", why);
    let url = check_url(client_id).map_err(refused)?;
    let fresh = services
        .client_documents
        .at
        .get(client_id)
        .is_some_and(|at| at.elapsed() < FRESH_FOR);
    if fresh
        && let Some(row) = services
            .db
            .run(GetClient {
                client_id: client_id.to_owned(),
            })
            .await
            .map_err(|_| OAuthError::unavailable())?
    {
        return Ok(row);
    }
    if !services.registrations.admit(address, chrono::Utc::now()) {
        return Err(OAuthError::new(
            429,
            "temporarily_unavailable",
            format!(
                "at most {} clients may be registered or fetched from one address in an hour; try again later",
                super::REGISTRATIONS_PER_HOUR
            ),
        ));
    }
    let row = fetch(services, &url).await.map_err(refused)?;
    services
        .db
        .run(StoreDocumentClient { row: row.clone() })
        .await
        .map_err(|_| OAuthError::unavailable())?;
    let fetched = &services.client_documents.at;
    if fetched.len() >= REMEMBERED {
        fetched.clear();
    }
    fetched.insert(client_id.to_owned(), Instant::now());
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_urls_are_checked() {
        assert!(check_url("https://app.example/oauth/client.json").is_ok());
        assert!(check_url("http://127.0.0.1:8080/client.json").is_ok());
        for bad in [
            "http://app.example/client.json",
            "https://app.example/",
            "https://app.example/c.json#x",
            "https://user@app.example/c.json",
            "https://app.example/a/../c.json",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
