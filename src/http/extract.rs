//! Extractors: a JSON body with errors that name the field, and the authenticated principal.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::auth::{AuthError, On, Principal};

/// A JSON request body. Malformed JSON is a 400; a well-formed body with a missing, unknown or
/// mistyped field is a 422 naming the field; a body over the limit is a 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.to_ascii_lowercase());
        let limit = request
            .app_data::<web::Data<AppState>>()
            .map(|state| state.settings.max_request_body_bytes)
            .unwrap_or(1024 * 1024);
        let body = web::Bytes::from_request(request, payload);
        Box::pin(async move {
            if let Some(content_type) = content_type
                && !(content_type.starts_with("application/json") || content_type.contains("+json"))
            {
                return Err(ApiError::UnsupportedMediaType);
            }
            let bytes = body.await.map_err(|error| body_error(error, limit))?;
            if bytes.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            parse_json(&bytes).map(ApiJson)
        })
    }
}

fn body_error(error: actix_web::Error, limit: usize) -> ApiError {
    match error.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::PayloadTooLarge(limit),
        _ => ApiError::BadRequest {
            code: "unreadable-body",
            message: format!("the request body could not be read: {error}"),
        },
    }
}

/// Parses JSON, reporting the path of the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest {
            code: "malformed-json",
            message: "the request body is empty; send a JSON object".into(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Io
            | serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof => ApiError::BadRequest {
                code: "malformed-json",
                message: format!("the request body is not valid JSON: {inner}"),
            },
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                let field = field_name(&path, &message);
                ApiError::InvalidField { field, message }
            }
        }
    })?;
    deserializer.end().map_err(|error| ApiError::BadRequest {
        code: "malformed-json",
        message: format!("the request body has trailing characters: {error}"),
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// The field a data error is about: the path, or for a missing or unknown field at the top
/// level, the name serde quotes in backticks.
fn field_name(path: &str, message: &str) -> String {
    let quoted = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field") || message.starts_with("unknown field"));
    match (path, quoted) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => "body".to_owned(),
        (path, Some(name)) if message.starts_with("missing field") => format!("{path}.{name}"),
        (path, _) => path.to_owned(),
    }
}

/// Verifies the bearer token of a request and the token scope's address and time limits.
fn principal_of(
    request: &HttpRequest,
) -> Pin<Box<dyn Future<Output = Result<Principal, ApiError>>>> {
    let bearer = bearer_token(request);
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let origin = super::origin(request);
    Box::pin(async move {
        let Some(state) = state else {
            tracing::error!("application state missing");
            return Err(ApiError::Internal);
        };
        let bearer = bearer.ok_or(ApiError::from_auth(AuthError::MissingCredentials))?;
        state
            .auth
            .authenticate(bearer, origin)
            .await
            .map_err(ApiError::from_auth)
    })
}

/// The authenticated principal of a REST request (bearer JWT). A token restricted to one
/// virtual server is for that server's MCP endpoints only: 403 here.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let principal = principal_of(request);
        Box::pin(async move {
            let principal = principal.await?;
            if let Some(resource) = &principal.resource {
                return Err(ApiError::Forbidden(format!(
                    "this OAuth access token is for the MCP endpoint {resource} only"
                )));
            }
            if let Some(server) = principal.server_restriction() {
                return Err(ApiError::from_auth(
                    crate::auth::Denied::ServerToken {
                        server: server.to_owned(),
                    }
                    .into(),
                ));
            }
            Ok(Authenticated(principal))
        })
    }
}

/// The authenticated principal of an MCP request; the endpoint checks a server restriction.
pub struct McpAuthenticated(pub Principal);

impl FromRequest for McpAuthenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let principal = principal_of(request);
        let (scheme, host) = super::public_origin(request);
        let resource_metadata = format!(
            "{scheme}://{host}/.well-known/oauth-protected-resource{}",
            request.path()
        );
        let endpoint = format!("{scheme}://{host}{}", endpoint_path(request.path()));
        Box::pin(async move {
            let unauthorized = |message| ApiError::McpUnauthorized {
                message,
                resource_metadata: resource_metadata.clone(),
            };
            let principal = principal.await.map_err(|error| match error {
                ApiError::Unauthorized(message) => unauthorized(message),
                other => other,
            })?;
            // RFC 8707: an OAuth access token works on the endpoint it was issued for only.
            match &principal.resource {
                Some(resource) if *resource != endpoint => Err(unauthorized(format!(
                    "invalid token: it was issued for {resource}, not {endpoint} (ask for a token with resource={endpoint})"
                ))),
                _ => Ok(McpAuthenticated(principal)),
            }
        })
    }
}

/// The Streamable HTTP endpoint a request's path belongs to: a legacy SSE stream or message
/// path (`/servers/x/sse`, `/message`, `/rpc`) is its server's `…/mcp`.
pub fn endpoint_path(path: &str) -> String {
    for legacy in ["/sse", "/message", "/rpc"] {
        if let Some(base) = path.strip_suffix(legacy) {
            return format!("{base}/mcp");
        }
    }
    path.to_owned()
}

/// A principal allowed `admin.system` on the platform (a platform admin's sign-in, or an API
/// token that keeps it); anyone else gets 403.
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let authenticated = Authenticated::from_request(request, payload);
        Box::pin(async move {
            let Authenticated(principal) = authenticated.await?;
            principal
                .authorize("admin.system", On::Platform)
                .map_err(|denied| ApiError::from_auth(denied.into()))?;
            Ok(Admin(principal))
        })
    }
}

fn bearer_token(request: &HttpRequest) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are only deserialized")]
    struct Sample {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "fields are only deserialized")]
    struct Inner {
        count: u32,
    }

    fn field_of(body: &str) -> (String, String) {
        match parse_json::<Sample>(body.as_bytes()) {
            Err(ApiError::InvalidField { field, message }) => (field, message),
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of("{}").0, "name");
        assert_eq!(field_of(r#"{"name": 5}"#).0, "name");
        assert_eq!(field_of(r#"{"name": "a", "extra": 1}"#).0, "extra");
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"count": "x"}}"#).0,
            "inner.count"
        );
        assert!(matches!(
            parse_json::<Sample>(b"{not json"),
            Err(ApiError::BadRequest {
                code: "malformed-json",
                ..
            })
        ));
        assert!(matches!(
            parse_json::<Sample>(b""),
            Err(ApiError::BadRequest {
                code: "malformed-json",
                ..
            })
        ));
    }
}
