//! Requests forwarded between replicas. A call parked on one replica (a 2026-07-28 call waiting
//! for its client's answer), or a session whose own upstream sessions live on one replica, is
//! served there: a request for it that lands on another replica is forwarded, whole, to the one
//! that holds it, which serves it as if it had come straight from the client (it checks the
//! client's own credentials again) and streams its answer back through.
//!
//! The forwarding replica stamps the request with `X-Mcpgate-Forwarded`: who forwards, to
//! which replica, when, the client's address, the scheme and host the client used and a hash of
//! the body, under an HMAC keyed by the encryption secret every replica shares and bound to the
//! request's method, path and credentials. Only a verified stamp is believed (for the client's
//! address, the public origin an OAuth token's audience is checked against, and "do not forward
//! again"); a stamp that does not verify is refused with 403, one older than a minute too, and
//! one meant for another replica with 421 (two replicas advertising one address: the forwarding
//! replica then says so in its log and serves or refuses as if the other were gone).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::mcp::error::McpError;
use crate::mcp::parked::ParkedCalls;
use crate::mcp::session::Session;
use crate::secrets::SecretBox;

/// The header a forwarded request carries.
pub const HEADER: &str = "x-mcpgate-forwarded";

/// What the stamp's MAC is for.
const PURPOSE: &str = "mcpgate replica forward v1";

/// How old a stamp may be (or how far ahead: clocks differ).
const MAX_AGE_MS: i64 = 60_000;

/// The client's headers a forwarded request keeps (the rest are the connection's own).
const KEPT: [&str; 13] = [
    "authorization",
    "accept",
    "content-type",
    "origin",
    "host",
    "user-agent",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "x-request-id",
    "traceparent",
    "tracestate",
];

/// The owner's headers a forwarded answer keeps.
const RETURNED: [&str; 6] = [
    "content-type",
    "x-accel-buffering",
    "mcp-session-id",
    "retry-after",
    "www-authenticate",
    "cache-control",
];

/// What the forwarding replica says of the request (believed once its MAC verifies).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Forwarded {
    /// The replica that forwarded it.
    pub from: String,
    /// The replica it is meant for.
    pub to: String,
    /// When (milliseconds since the epoch).
    pub at: i64,
    /// The client's address as that replica saw it.
    pub client: Option<std::net::IpAddr>,
    /// The scheme the client used.
    pub scheme: String,
    /// The host the client used.
    pub host: String,
    /// SHA-256 of the body (URL-safe base64).
    pub body: String,
}

/// The body's hash as a stamp carries it.
fn body_hash(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(body))
}

/// Why a stamp is not believed.
#[derive(Debug, PartialEq, Eq)]
enum Disbelieved {
    /// Forged, replayed, altered or from another deployment: 403.
    Forged(String),
    /// Meant for another replica (an address two replicas advertise): 421.
    Misdirected(String),
}

/// What the MAC covers besides the stamp: the request's method, path and credentials, so a
/// stamp cannot be moved to another request or another client's.
fn bound_to(method: &str, path: &str, headers: &actix_web::http::header::HeaderMap) -> String {
    let mut credentials = Sha256::new();
    for name in ["authorization", "mcp-session-id"] {
        for value in headers.get_all(name) {
            credentials.update(value.as_bytes());
            credentials.update(b"\n");
        }
        credentials.update(b"\0");
    }
    format!(
        "{method}\n{path}\n{}",
        URL_SAFE_NO_PAD.encode(credentials.finalize())
    )
}

/// The header value stamping a request.
fn stamp(
    secrets: &SecretBox,
    forwarded: &Forwarded,
    method: &str,
    path: &str,
    headers: &actix_web::http::header::HeaderMap,
) -> String {
    let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(forwarded).unwrap_or_default());
    let mac = secrets.mac(
        PURPOSE,
        &format!("{encoded}\n{}", bound_to(method, path, headers)),
    );
    format!("{mac}.{encoded}")
}

/// The stamp of a request (whose body is `body`) on replica `me`, if it verifies.
fn verify(
    secrets: &SecretBox,
    me: &str,
    request: &ServiceRequest,
    body: &[u8],
    value: &str,
) -> Result<Forwarded, Disbelieved> {
    use subtle::ConstantTimeEq;
    let forged = |reason: &str| Disbelieved::Forged(reason.to_owned());
    let (mac, encoded) = value.split_once('.').ok_or_else(|| forged("no MAC"))?;
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let expected = secrets.mac(
        PURPOSE,
        &format!(
            "{encoded}\n{}",
            bound_to(request.method().as_str(), path, request.headers())
        ),
    );
    if !bool::from(mac.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(forged(
            "a wrong MAC (a replica with another AUTH_ENCRYPTION_SECRET, or a forgery)",
        ));
    }
    let forwarded: Forwarded = URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| forged("an unreadable stamp"))?;
    let age = chrono::Utc::now().timestamp_millis() - forwarded.at;
    if age.abs() > MAX_AGE_MS {
        return Err(Disbelieved::Forged(format!(
            "stamped {age} ms ago (a replay, or clocks too far apart)"
        )));
    }
    if forwarded.body != body_hash(body) {
        return Err(forged("the body is not the one stamped"));
    }
    if forwarded.to != me {
        return Err(Disbelieved::Misdirected(format!(
            "meant for replica {}, this is {me}: two replicas advertise one address (set CLUSTER_ADVERTISE_URL on each)",
            forwarded.to
        )));
    }
    Ok(forwarded)
}

/// Middleware: a request stamped by another replica is believed (its [`Forwarded`] is put in
/// the request's extensions) or refused.
pub async fn believe_stamp(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let Some(value) = request.headers().get(HEADER).cloned() else {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    // The body is read here (within the body limit) to check its hash, then handed on.
    let body = match request.extract::<web::Bytes>().await {
        Ok(body) => body,
        Err(error) => return Ok(request.error_response(error)),
    };
    let cluster = request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.services.cluster.clone());
    let verified = match (&cluster, value.to_str()) {
        (Some(cluster), Ok(value)) => match cluster.secrets() {
            Some(secrets) => verify(secrets, cluster.replica(), &request, &body, value),
            None => Err(Disbelieved::Forged(
                "this gateway runs alone (no replica bus)".into(),
            )),
        },
        (None, _) => Err(Disbelieved::Forged("no gateway state".into())),
        (_, Err(_)) => Err(Disbelieved::Forged("not text".into())),
    };
    request.set_payload(body.into());
    let (status, reason) = match verified {
        Ok(forwarded) => {
            request.extensions_mut().insert(forwarded);
            return next
                .call(request)
                .await
                .map(ServiceResponse::map_into_boxed_body);
        }
        Err(Disbelieved::Forged(reason)) => (StatusCode::FORBIDDEN, reason),
        Err(Disbelieved::Misdirected(reason)) => (StatusCode::MISDIRECTED_REQUEST, reason),
    };
    // Anyone can send the header: not worth a warning each time.
    tracing::debug!(%reason, "a request claiming to come from another replica was refused");
    let refusal = HttpResponse::build(status).json(serde_json::json!({
        "error": "forbidden",
        "message": format!("the {HEADER} header is not believed: {reason}"),
    }));
    Ok(request.into_response(refusal))
}

/// What a verified stamp says of `request` (none: it came straight from its client).
pub fn forwarded(request: &HttpRequest) -> Option<Forwarded> {
    request.extensions().get::<Forwarded>().cloned()
}

/// Why a request could not be forwarded.
#[derive(Debug)]
pub struct Unreached {
    /// The replica is gone (not heard from lately, or nothing listens at its address).
    pub gone: bool,
    /// What happened, for the client.
    pub reason: String,
}

impl Unreached {
    /// What a client retrying a call parked on that replica is told.
    pub fn for_parked_call(self) -> McpError {
        if self.gone {
            McpError::InvalidParams(format!(
                "{}: the call waiting there is lost; send the request again without inputResponses and requestState",
                self.reason
            ))
        } else {
            self.into()
        }
    }
}

impl From<Unreached> for McpError {
    fn from(unreached: Unreached) -> Self {
        McpError::Upstream(format!("{}; try again", unreached.reason))
    }
}

/// The replica holding the call a 2026-07-28 retry's `requestState` names, when that is
/// another one and the request came straight from its client (a forwarded one is served here,
/// whatever it names). Only the methods that park calls, with their answers, are forwarded.
pub fn parked_elsewhere(
    state: &AppState,
    request: &HttpRequest,
    method: &str,
    params: &serde_json::Map<String, serde_json::Value>,
) -> Option<String> {
    if !["tools/call", "prompts/get", "resources/read"].contains(&method)
        || !params.contains_key("inputResponses")
        || !crate::mcp::protocol::has_modern_meta(params)
    {
        return None;
    }
    let holder = ParkedCalls::holder(params.get("requestState")?.as_str()?)?;
    (holder != state.services.cluster.replica() && forwarded(request).is_none())
        .then(|| holder.to_owned())
}

/// The replica a session's request is served on, when it reaches upstreams, the session's own
/// upstream sessions live on another replica, and the request came straight from its client.
pub fn home_elsewhere(request: &HttpRequest, session: &Session, method: &str) -> Option<String> {
    const REACHING_UPSTREAMS: [&str; 6] = [
        "tools/call",
        "prompts/get",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
    ];
    if !REACHING_UPSTREAMS.contains(&method) || forwarded(request).is_some() {
        return None;
    }
    session.home_elsewhere()
}

/// Forwards `request` (whose body was `body`) to `replica`, streaming its answer back; says
/// why not when that replica is gone or cannot be reached.
pub async fn to_replica(
    state: &AppState,
    request: &HttpRequest,
    body: web::Bytes,
    replica: &str,
) -> Result<HttpResponse, Unreached> {
    let cluster = &state.services.cluster;
    let gone = |reason: String| Unreached { gone: true, reason };
    if !cluster.alive(replica) {
        return Err(gone(format!(
            "the gateway replica {replica} is gone (not heard from lately)"
        )));
    }
    let (Some(address), Some(secrets)) = (cluster.address_of(replica), cluster.secrets()) else {
        return Err(gone(format!(
            "the gateway replica {replica} does not say where it is reached (its CLUSTER_ADVERTISE_URL)"
        )));
    };
    let original = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    // The URL as it will be sent (re-encoded): the stamp is bound to what the replica receives.
    let url = url::Url::parse(&format!("{address}{original}")).map_err(|error| Unreached {
        gone: false,
        reason: format!("the gateway replica {replica}'s address does not make a URL: {error}"),
    })?;
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let (scheme, host) = super::public_origin(request);
    let forwarded = Forwarded {
        from: cluster.replica().to_owned(),
        to: replica.to_owned(),
        at: chrono::Utc::now().timestamp_millis(),
        client: super::client_ip(request),
        scheme,
        host,
        body: body_hash(&body),
    };
    let method = request.method().as_str();
    let mut outgoing = state
        .replica_http
        .request_to(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST),
            &url,
        )
        .map_err(|denied| Unreached {
            gone: false,
            reason: format!(
                "the gateway replica {replica} cannot be reached: {}",
                denied.0
            ),
        })?
        .timeout(state.mcp_settings.tool_timeout * 2 + std::time::Duration::from_secs(10))
        .header(
            HEADER,
            stamp(secrets, &forwarded, method, path, request.headers()),
        )
        .body(body);
    for name in KEPT {
        for value in request.headers().get_all(name) {
            outgoing = outgoing.header(name, value.as_bytes());
        }
    }
    let answer = outgoing.send().await.map_err(|error| {
        tracing::warn!(%replica, %error, "a forwarded request did not reach its replica");
        if error.is_connect() {
            Unreached {
                gone: true,
                reason: format!(
                    "the gateway replica {replica} is gone (nothing answers at its address)"
                ),
            }
        } else {
            Unreached {
                gone: false,
                reason: format!("the gateway replica {replica} did not answer ({error})"),
            }
        }
    })?;
    if answer.status() == reqwest::StatusCode::MISDIRECTED_REQUEST {
        tracing::error!(%replica, %address, "this address reaches another replica: set CLUSTER_ADVERTISE_URL on each replica to its own address");
        return Err(gone(format!(
            "the gateway replica {replica} cannot be reached at its advertised address (it reaches another replica)"
        )));
    }
    let mut response = HttpResponse::build(
        StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
    );
    for name in RETURNED {
        if let Some(value) = answer.headers().get(name) {
            response.insert_header((name, value.as_bytes()));
        }
    }
    Ok(response.streaming(answer.bytes_stream()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(authorization: &str) -> ServiceRequest {
        TestRequest::post()
            .uri("/mcp")
            .insert_header(("authorization", authorization))
            .to_srv_request()
    }

    #[test]
    fn a_stamp_verifies_for_its_own_request_and_secret_only() {
        let secrets = SecretBox::new("the shared secret, 16+");
        let forwarded = Forwarded {
            from: "r1".into(),
            to: "r2".into(),
            at: chrono::Utc::now().timestamp_millis(),
            client: Some("10.1.2.3".parse().unwrap()),
            scheme: "https".into(),
            host: "gw.example".into(),
            body: body_hash(b"{}"),
        };
        let original = request("Bearer alice");
        let value = stamp(&secrets, &forwarded, "POST", "/mcp", original.headers());
        assert_eq!(
            verify(&secrets, "r2", &original, b"{}", &value),
            Ok(forwarded.clone())
        );
        // Another client's request, another body, another secret: refused.
        let forged = |outcome| matches!(outcome, Err(Disbelieved::Forged(_)));
        assert!(forged(verify(
            &secrets,
            "r2",
            &request("Bearer mallory"),
            b"{}",
            &value
        )));
        assert!(forged(verify(&secrets, "r2", &original, b"[]", &value)));
        let other = SecretBox::new("another secret, 16+");
        assert!(forged(verify(&other, "r2", &original, b"{}", &value)));
        // Meant for another replica: misdirected.
        assert!(matches!(
            verify(&secrets, "r3", &original, b"{}", &value),
            Err(Disbelieved::Misdirected(_))
        ));
        // Too old: a replay.
        let old = Forwarded {
            at: forwarded.at - 120_000,
            ..forwarded
        };
        let value = stamp(&secrets, &old, "POST", "/mcp", original.headers());
        assert!(matches!(
            verify(&secrets, "r2", &original, b"{}", &value),
            Err(Disbelieved::Forged(reason)) if reason.contains("replay")
        ));
    }
}
