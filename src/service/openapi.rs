//! Importing an OpenAPI document as REST tools (`POST /tools/import/openapi`): the document is
//! read whole first ([`crate::registry::openapi`]) — a broken one is refused with what is
//! wrong and nothing is stored — then each operation becomes a tool through the same checks as
//! `POST /tools` (permissions, egress policy, validation). A tool of the same name that the
//! caller may change is updated instead, so importing again follows the document.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Outcome, Services, registry};
use crate::auth::{On, Principal};
use crate::db::stored::{IntegrationType, RequestType};
use crate::error::ApiError;
use crate::registry::Visibility;
use crate::registry::openapi::{self, Operation};
use crate::registry::tools::{ToolCreate, ToolUpdate, Tools};

/// The largest document fetched from a URL.
const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// How long the fetch may take.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// `POST /tools/import/openapi`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenApiImport {
    /// The OpenAPI 3.0 or 3.1 document: a JSON object, or its text (YAML or JSON); or:
    #[serde(default)]
    pub document: Option<Value>,
    /// Where to fetch it (through the egress policy, without its allow list).
    #[serde(default)]
    pub url: Option<String>,
    /// Where its paths are served: `https://api.example/v1`.
    pub base_url: String,
    /// Headers every tool sends (credentials, usually; encrypted at rest).
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// The operation ids to import (default: all).
    #[serde(default)]
    pub operations: Option<Vec<String>>,
    /// Put before every tool name (`github_`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Labels every tool gets (besides `openapi`).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Who may see the tools (default `public`).
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Their team (one of yours).
    #[serde(default)]
    pub team_id: Option<String>,
}

/// An operation left out.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Skipped {
    /// Its operation id.
    pub operation: String,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Tools created, by name.
    pub created: Vec<String>,
    /// Tools of the same name updated.
    pub updated: Vec<String>,
    /// Operations left out, with why.
    pub skipped: Vec<Skipped>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The document, given or fetched.
async fn document(services: &Services, input: &OpenApiImport) -> Outcome<Value> {
    match (&input.document, &input.url) {
        // A document given as text (YAML, or JSON in a string) is read like a fetched one.
        (Some(Value::String(text)), None) => {
            openapi::parse(text.as_bytes()).map_err(|why| invalid("document", why))
        }
        (Some(document), None) => Ok(document.clone()),
        (None, Some(url)) => {
            let request = services
                .http
                .get(url)
                .map_err(|denied| invalid("url", denied.to_string()))?;
            let response = request
                .timeout(FETCH_TIMEOUT)
                .header(
                    "accept",
                    "application/json, application/yaml;q=0.9, text/yaml;q=0.9, */*;q=0.1",
                )
                .send()
                .await
                .map_err(|error| {
                    invalid(
                        "url",
                        format!(
                            "{url} could not be fetched: {}",
                            crate::upstream::transport::describe(&error)
                        ),
                    )
                })?;
            if !response.status().is_success() {
                return Err(invalid(
                    "url",
                    format!("{url} answered {}", response.status()),
                ));
            }
            let body = crate::egress::body_within(response, MAX_DOCUMENT_BYTES)
                .await
                .map_err(|why| invalid("url", format!("{url}: {why}")))?;
            openapi::parse(&body).map_err(|why| invalid("url", format!("{url} {why}")))
        }
        _ => Err(invalid(
            "document",
            "give the document itself or its url (one of the two)",
        )),
    }
}

/// Imports `input` as `principal`.
pub async fn import(
    services: &Services,
    principal: &Principal,
    input: OpenApiImport,
) -> Outcome<ImportReport> {
    // Nothing is fetched for someone who could not create a tool anyway.
    principal
        .authorize("tools.create", On::NewItem(input.team_id.as_deref()))
        .map_err(|denied| ApiError::from_auth(denied.into()))?;
    let base = url::Url::parse(&input.base_url)
        .map_err(|error| invalid("base_url", format!("is not a URL ({error})")))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(invalid("base_url", "must be an http or https URL"));
    }
    let document = document(services, &input).await?;
    let imported = openapi::read(&document, &input.base_url, input.operations.as_deref())
        .map_err(|why| invalid("document", why))?;
    let mut existing: HashMap<String, String> =
        registry::visible::<Tools>(services, principal, 100_000)
            .await?
            .into_iter()
            .filter(|row| row.integration_type == IntegrationType::Rest)
            .map(|row| (row.name, row.id))
            .collect();
    let mut report = ImportReport {
        skipped: imported
            .skipped
            .into_iter()
            .map(|(operation, reason)| Skipped { operation, reason })
            .collect(),
        ..ImportReport::default()
    };
    let mut tags = vec!["openapi".to_owned()];
    tags.extend(input.tags.clone().unwrap_or_default());
    for operation in imported.operations {
        let name = format!(
            "{}{}",
            input.prefix.as_deref().unwrap_or_default(),
            operation.name
        );
        let id = operation.operation_id.clone();
        let outcome = match existing.remove(&name) {
            Some(tool) => registry::update::<Tools>(
                services,
                principal,
                &tool,
                update_of(&operation, &name, &input, &tags),
            )
            .await
            .map(|_| true),
            None => registry::create::<Tools>(
                services,
                principal,
                create_of(&operation, &name, &input, &tags),
            )
            .await
            .map(|_| false),
        };
        match outcome {
            Ok(true) => report.updated.push(name),
            Ok(false) => report.created.push(name),
            Err(error) => report.skipped.push(Skipped {
                operation: id,
                reason: error.to_string(),
            }),
        }
    }
    Ok(report)
}

fn method(operation: &Operation) -> RequestType {
    match operation.method.as_str() {
        "GET" => RequestType::Get,
        "PUT" => RequestType::Put,
        "PATCH" => RequestType::Patch,
        "DELETE" => RequestType::Delete,
        _ => RequestType::Post,
    }
}

fn create_of(
    operation: &Operation,
    name: &str,
    input: &OpenApiImport,
    tags: &[String],
) -> ToolCreate {
    ToolCreate {
        name: name.to_owned(),
        description: operation.description.clone(),
        integration_type: Some(IntegrationType::Rest),
        url: Some(operation.url.clone()),
        request_type: Some(method(operation)),
        headers: input.headers.clone(),
        input_schema: Some(operation.input_schema.clone()),
        output_schema: operation.output_schema.clone(),
        annotations: None,
        tags: Some(tags.to_vec()),
        visibility: input.visibility,
        team_id: input.team_id.clone(),
    }
}

fn update_of(
    operation: &Operation,
    name: &str,
    input: &OpenApiImport,
    tags: &[String],
) -> ToolUpdate {
    ToolUpdate {
        name: Some(name.to_owned()),
        description: Some(operation.description.clone()),
        url: Some(operation.url.clone()),
        request_type: Some(method(operation)),
        headers: input.headers.clone(),
        input_schema: Some(operation.input_schema.clone()),
        output_schema: Some(operation.output_schema.clone()),
        annotations: None,
        tags: Some(tags.to_vec()),
        visibility: input.visibility,
        team_id: input.team_id.clone().map(Some),
    }
}
