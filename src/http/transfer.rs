//! Configuration export and import over HTTP: `GET /export` and `POST /import`, thin handlers
//! over [`crate::service::transfer`]. Passphrases travel in headers, never in a URL (URLs are
//! logged).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Authenticated};
use crate::registry::validate::invalid;
use crate::service::transfer::{self, Document, ImportOptions, ImportReport, SecretsMode};

/// Registers the routes.
pub fn routes(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    config.service(export).service(import);
}

/// The header carrying an export's passphrase.
pub const EXPORT_PASSPHRASE: &str = "x-export-passphrase";
/// The header carrying an import's passphrase.
pub const IMPORT_PASSPHRASE: &str = "x-import-passphrase";

/// `GET /export`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `omit` (default: credentials left out and listed) or `encrypt` (sealed for the
    /// passphrase in `X-Export-Passphrase`, at least 12 characters).
    #[serde(default)]
    pub secrets: Option<String>,
}

/// `GET /export`: the configuration as a versioned JSON document.
#[utoipa::path(
    tag = "export",
    operation_id = "export_configuration",
    summary = "Export gateways, REST tools, resources, prompts, virtual servers, teams and role assignments (config.export, platform admins)",
    params(ExportQuery),
    responses(
        (status = 200, description = "the document (a download)", body = Document),
        (status = 403, description = "your roles do not grant config.export", body = ErrorBody),
        (status = 422, description = "secrets=encrypt without a passphrase of 12 characters or more", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/export")]
pub async fn export(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    request: HttpRequest,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let mode = match query.secrets.as_deref() {
        None | Some("omit") => SecretsMode::Omit,
        Some("encrypt") => {
            SecretsMode::Encrypt(passphrase(&request, EXPORT_PASSPHRASE).ok_or_else(|| {
                invalid(
                    "passphrase",
                    "secrets=encrypt needs the passphrase in the X-Export-Passphrase header",
                )
            })?)
        }
        Some(_) => return Err(invalid("secrets", "use omit or encrypt").into()),
    };
    let document = transfer::export(&state.services, &principal, mode).await?;
    Ok(download(&document))
}

/// The document as a JSON download named after the day.
pub fn download(document: &Document) -> HttpResponse {
    let name = format!(
        "mcpgate-export-{}.json",
        document.exported_at.format("%Y-%m-%d")
    );
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(document)
}

/// `POST /import`: applies a document (or reports what it would change).
#[utoipa::path(
    tag = "export",
    operation_id = "import_configuration",
    summary = "Import a document written by GET /export (or the peer gateway's export): dry run, conflict handling (config.import, platform admins)",
    params(ImportOptions),
    request_body(content = Object, description = "the document"),
    responses(
        (status = 200, description = "what was (dry run: would be) created, updated, renamed, skipped or failed", body = ImportReport),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 403, description = "your roles do not grant config.import", body = ErrorBody),
        (status = 413, description = "larger than MAX_REQUEST_BODY_BYTES", body = ErrorBody),
        (status = 422, description = "the document is malformed or partial (the first problem is named; nothing stored), or its passphrase is missing or wrong", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/import")]
pub async fn import(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    request: HttpRequest,
    query: web::Query<ImportOptions>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let mut options = query.into_inner();
    options.passphrase = passphrase(&request, IMPORT_PASSPHRASE);
    let report = transfer::import(&state.services, &principal, body, options).await?;
    Ok(HttpResponse::Ok().json(report))
}

fn passphrase(request: &HttpRequest, name: &str) -> Option<String> {
    let value = request.headers().get(name)?.to_str().ok()?;
    (!value.is_empty()).then(|| value.to_owned())
}
