//! The console's export and import page (`config.export`, `config.import`): download the
//! configuration (credentials left out, or sealed for a passphrase), and import a document —
//! a dry run first by default — with the report shown on the page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConsoleRefusal, ConsoleUser};
use crate::auth::On;
use crate::http::AppState;
use crate::service::transfer::{self, ImportOptions, SecretsMode};

/// The largest import form (the pasted document): 8 MiB; `POST /import` takes up to
/// `MAX_REQUEST_BODY_BYTES`.
pub const FORM_LIMIT: usize = 8 * 1024 * 1024;

fn page_with(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    extra: impl FnOnce(&mut tera::Context),
) -> HttpResponse {
    let mut context = user.context("transfer");
    context.insert(
        "may_export",
        &user.principal.permits("config.export", On::Platform),
    );
    context.insert(
        "may_import",
        &user.principal.permits("config.import", On::Platform),
    );
    context.insert("errors", &json!({}));
    context.insert("report", &Value::Null);
    context.insert(
        "transfer_form",
        &json!({"conflict": "skip", "dry_run": true, "document": ""}),
    );
    extra(&mut context);
    state.console.page(status, "transfer.html", &context)
}

/// `GET /admin/transfer`.
pub async fn page(state: web::Data<AppState>, user: ConsoleUser) -> HttpResponse {
    page_with(&state, &user, StatusCode::OK, |_| {})
}

/// The export form.
#[derive(Deserialize)]
pub struct ExportForm {
    csrf: Option<String>,
    #[serde(default)]
    secrets: String,
    #[serde(default)]
    passphrase: String,
}

/// `POST /admin/export`: the document as a download (a POST, so the passphrase never appears
/// in a URL).
pub async fn export(
    state: web::Data<AppState>,
    user: ConsoleUser,
    form: web::Form<ExportForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let mode = match form.secrets.as_str() {
        "encrypt" => SecretsMode::Encrypt(form.passphrase),
        _ => SecretsMode::Omit,
    };
    Ok(
        match transfer::export(&state.services, &user.principal, mode).await {
            Ok(document) => crate::http::transfer::download(&document),
            Err(error) => {
                let errors = field_errors("export_", &error);
                page_with(&state, &user, error.status_code(), |context| {
                    context.insert("errors", &errors);
                })
            }
        },
    )
}

/// The import form.
#[derive(Deserialize)]
pub struct ImportForm {
    csrf: Option<String>,
    #[serde(default)]
    document: String,
    #[serde(default)]
    conflict: String,
    #[serde(default)]
    dry_run: Option<String>,
    #[serde(default)]
    passphrase: String,
}

/// `POST /admin/import`: a dry run or the import itself; the report (or the document's first
/// problem, at its field) is shown with the form filled in again.
pub async fn import(
    state: web::Data<AppState>,
    user: ConsoleUser,
    form: web::Form<ImportForm>,
) -> Result<HttpResponse, ConsoleRefusal> {
    let form = form.into_inner();
    user.check_csrf(form.csrf.as_deref())?;
    let dry_run = form.dry_run.is_some();
    let filled = json!({"conflict": form.conflict, "dry_run": dry_run, "document": form.document});
    let conflict = serde_json::from_value(json!(form.conflict)).unwrap_or_default();
    let outcome = match serde_json::from_str::<Value>(&form.document) {
        Ok(body) => {
            let options = ImportOptions {
                dry_run,
                conflict,
                passphrase: Some(form.passphrase).filter(|text| !text.is_empty()),
            };
            transfer::import(&state.services, &user.principal, body, options).await
        }
        Err(error) => Err(crate::registry::validate::invalid(
            "document",
            format!("is not JSON: {error}"),
        )
        .into()),
    };
    let (status, errors, report) = match outcome {
        Ok(report) => (StatusCode::OK, json!({}), json!(report)),
        Err(error) => (
            error.status_code(),
            field_errors("import_", &error),
            Value::Null,
        ),
    };
    Ok(page_with(&state, &user, status, |context| {
        context.insert("transfer_form", &filled);
        context.insert("errors", &errors);
        context.insert("report", &report);
    }))
}

/// An error shown at its form: a document problem at the document (naming its field), a
/// passphrase problem at the passphrase, anything else at the top.
fn field_errors(form: &str, error: &crate::http::error::ApiError) -> Value {
    use crate::http::error::ApiError;
    match error {
        ApiError::InvalidField { field, message } if field == "passphrase" => {
            json!({ format!("{form}passphrase"): message })
        }
        ApiError::InvalidField { field, message } => {
            let at = if field.is_empty() {
                "the file".to_owned()
            } else {
                field.clone()
            };
            json!({ format!("{form}document"): format!("{at}: {message}") })
        }
        other => json!({ "_": other.to_string() }),
    }
}
