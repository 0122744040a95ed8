//! The OpenAPI 3 document at `GET /openapi.json`, collected from the routes themselves: every
//! documented operation carries `#[utoipa::path]` beside its route attribute and is registered
//! through `utoipa-actix-web`, so what is served and what is described cannot drift apart.
//! Schemas are derived from the request and response types.

use std::sync::LazyLock;

use actix_web::http::Method;
use actix_web::{App, HttpResponse, web};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_actix_web::AppExt;

/// The document's title and description; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(info(
    title = "mcpgate",
    description = "The mcpgate REST API: registry, identity and access, health and pool statistics."
))]
struct ApiDoc;

/// The document, collected once from a route table built for the purpose.
static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
    let (_, collected) = App::new()
        .into_utoipa_app()
        .configure(super::routes)
        .split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(collected);
    add_common_errors(&mut doc);
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    doc
});

/// The document as served.
static DOCUMENT_JSON: LazyLock<web::Bytes> = LazyLock::new(|| {
    web::Bytes::from(serde_json::to_vec(&*DOCUMENT).unwrap_or_else(|_| b"{}".to_vec()))
});

/// The whole document.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    &DOCUMENT
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT_JSON.clone())
}

/// The methods the document lists for a concrete request path, when some documented path
/// template matches it (`/tools/abc` matches `/tools/{id}`): an unknown method there is a 405,
/// not a 404.
pub fn allowed_methods(path: &str) -> Vec<Method> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut allowed = Vec::new();
    for (template, item) in &DOCUMENT.paths.paths {
        let pattern: Vec<&str> = template.split('/').collect();
        let matches = pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(want, got)| (want.starts_with('{') && !got.is_empty()) || want == got);
        if !matches {
            continue;
        }
        let operations = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ];
        for (method, operation) in operations {
            if operation.is_some() && !allowed.contains(&method) {
                allowed.push(method);
            }
        }
    }
    allowed
}

fn error(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// Documents the errors any secured operation can answer: bad query or path (400), missing or
/// invalid token (401), a role that does not grant it (403) and an unavailable or slow database
/// (503, 504).
fn add_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations: [&mut Option<Operation>; 4] = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            if !secured {
                continue;
            }
            let responses = &mut operation.responses.responses;
            for (status, description) in [
                ("400", "bad query parameters or path"),
                ("401", "no or invalid token"),
                ("403", "your roles do not grant this"),
                ("503", "database unavailable; see Retry-After"),
                ("504", "database work exceeded its deadline"),
            ] {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::T(error(description)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document names a schema the document defines.
    #[test]
    fn every_reference_resolves() {
        let json = serde_json::to_value(document()).unwrap();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        let mut missing = Vec::new();
        let mut stack = vec![&json];
        while let Some(value) = stack.pop() {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(reference) = map.get("$ref").and_then(|r| r.as_str()) {
                        let name = reference.trim_start_matches("#/components/schemas/");
                        if !schemas.contains_key(name) {
                            missing.push(name.to_owned());
                        }
                    }
                    stack.extend(map.values());
                }
                serde_json::Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        assert!(missing.is_empty(), "unresolved: {missing:?}");
    }

    /// Operation ids are unique, and every registry entity has its six operations.
    #[test]
    fn operations_are_complete() {
        let json = serde_json::to_value(document()).unwrap();
        let mut ids = Vec::new();
        for item in json["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                ids.push(operation["operationId"].as_str().unwrap().to_owned());
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate operation ids");
        for noun in ["tool", "resource", "prompt", "gateway", "server"] {
            for verb in ["create", "get", "update", "delete", "toggle"] {
                let id = format!("{verb}_{noun}");
                assert!(ids.contains(&id), "{id} documented");
            }
        }
        assert!(ids.contains(&"login".to_owned()));
        assert!(ids.contains(&"refresh_gateway".to_owned()));
    }

    #[test]
    fn unknown_methods_on_documented_paths_are_known() {
        assert_eq!(
            allowed_methods("/tools/abc"),
            vec![Method::GET, Method::PUT, Method::DELETE]
        );
        assert_eq!(allowed_methods("/tools/abc/toggle"), vec![Method::POST]);
        assert!(allowed_methods("/nowhere").is_empty());
        assert!(allowed_methods("/tools//toggle").is_empty());
    }
}
