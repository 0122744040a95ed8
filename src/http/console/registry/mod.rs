//! What every registry page shares: list search, tag and team filters and paging; enable,
//! disable and delete; an edit form built from a field list; and the resources and prompts
//! pages, whose create forms are built the same way. Every change goes through the REST API's
//! operations (`crate::service::registry`), so the console applies the same checks and messages.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ConsoleRefusal, ConsoleUser, FLASH_COOKIE};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::registry::Entity;
use crate::registry::gateways::Gateways;
use crate::registry::prompts::Prompts;
use crate::registry::resources::Resources;
use crate::registry::servers::Servers;
use crate::registry::tools::Tools;
use crate::service::registry as ops;

mod forms;
mod kinds;
mod listing;

pub use self::forms::Refused;
use self::forms::*;
pub use self::kinds::Kind;
use self::listing::*;
pub use self::listing::{ListQuery, flash_redirect, list_into, team_names};

/// Items per page of a console list.
pub const PAGE_SIZE: usize = 25;

/// `POST /admin/{kind}/{id}/toggle` and `…/delete`: the REST API's checks (unseen is 404,
/// not allowed is 403); on success back to the list with a confirmation.
pub async fn action<K: Kind>(
    state: web::Data<AppState>,
    user: ConsoleUser,
    path: web::Path<(String, String)>,
    form: web::Form<Pairs>,
) -> Result<HttpResponse, ConsoleRefusal> {
    user.check_csrf(csrf_of_form(&form))?;
    let (id, action) = path.into_inner();
    let outcome = if action == "delete" {
        match confirmed::<K>(&state, &user, &id, &form).await {
            Ok(()) => K::remove(&state, &user, &id)
                .await
                .map(|view| format!("{} {} deleted.", K::SINGULAR, plain(&view["name"]))),
            Err(refused) => Err(refused),
        }
    } else {
        K::flip(&state, &user, &id).await.map(|view| {
            let now = if view["enabled"] == true {
                "enabled"
            } else {
                "disabled"
            };
            format!("{} {} {now}.", K::SINGULAR, plain(&view["name"]))
        })
    };
    Ok(match outcome {
        Ok(message) => flash_redirect(&format!("/admin/{}", K::PATH), &message),
        Err(error) => problem(&state, &user, K::PATH, &error),
    })
}

/// A gateway is deleted only with its name typed again (its federated tools, resources and
/// prompts go with it); other items need no more than the form.
async fn confirmed<K: Kind>(
    state: &AppState,
    user: &ConsoleUser,
    id: &str,
    form: &Pairs,
) -> Result<(), ApiError> {
    if K::PATH != "gateways" {
        return Ok(());
    }
    let view = K::read(state, user, id).await?;
    let name = plain(&view["name"]);
    match submitted(form, "confirm").next() {
        Some(typed) if typed.trim() == name => Ok(()),
        _ => Err(ApiError::InvalidField {
            field: "confirm".into(),
            message: format!("type {name} to confirm the deletion"),
        }),
    }
}

async fn edit_page<K: Kind>(
    state: &AppState,
    user: &ConsoleUser,
    id: &str,
    values: &Value,
    refused: Option<&Refused>,
) -> HttpResponse {
    let teams = team_names(state, user).await;
    let mut fields = form_fields(state, user, &teams, &K::fields(), values).await;
    mark(&mut fields, refused);
    let status = refused.map_or(StatusCode::OK, |refused| refused.status);
    let error = refused.map(Refused::summary);
    let mut context = user.context(K::PATH);
    context.insert("title", &format!("Edit {}", K::SINGULAR.to_lowercase()));
    context.insert("name", &plain(&values["name"]));
    context.insert("action", &format!("/admin/{}/{id}/edit", K::PATH));
    context.insert("back", &format!("/admin/{}", K::PATH));
    context.insert("fields", &fields);
    context.insert("error", &error);
    state.console.page(status, "edit.html", &context)
}

/// `GET /admin/{kind}/{id}/edit`: the edit form, filled with the record.
pub async fn edit_form<K: Kind>(
    state: web::Data<AppState>,
    user: ConsoleUser,
    id: web::Path<String>,
) -> HttpResponse {
    match K::read(&state, &user, &id).await {
        Ok(view) => edit_page::<K>(&state, &user, &id, &view, None).await,
        Err(error) => problem(&state, &user, K::PATH, &error),
    }
}

/// `POST /admin/{kind}/{id}/edit`: saves the form through the REST API's update; a problem is
/// shown in the form with what was typed kept.
pub async fn edit<K: Kind>(
    state: web::Data<AppState>,
    user: ConsoleUser,
    id: web::Path<String>,
    form: web::Form<Pairs>,
) -> Result<HttpResponse, ConsoleRefusal> {
    user.check_csrf(csrf_of_form(&form))?;
    let fields = K::fields();
    let outcome = submit(parse::<K::Update>(&fields, &form, false), |input| {
        K::change(&state, &user, &id, input)
    })
    .await;
    Ok(match outcome {
        Ok(view) => done::<K>(&view, "saved"),
        Err(refused) => {
            let values = values_of(&fields, &form);
            edit_page::<K>(&state, &user, &id, &values, Some(&refused)).await
        }
    })
}

/// Runs `operation` on a parsed form; a parse failure is 422, an operation's error keeps its
/// status, both with a message for the page and the field it concerns.
async fn submit<T, F, Fut>(parsed: Result<T, Refused>, operation: F) -> Result<Value, Refused>
where
    F: FnOnce(T) -> Fut,
    Fut: std::future::Future<Output = Result<Value, ApiError>>,
{
    operation(parsed?).await.map_err(Refused::from)
}

/// Back to the kind's list, confirming what was `done` to the item.
fn done<K: Kind>(view: &Value, what: &str) -> HttpResponse {
    flash_redirect(
        &format!("/admin/{}", K::PATH),
        &format!("{} {} {what}.", K::SINGULAR, plain(&view["name"])),
    )
}

async fn kind_page<K: Kind>(
    state: &AppState,
    user: &ConsoleUser,
    query: &ListQuery,
    values: &Value,
    refused: Option<&Refused>,
) -> HttpResponse {
    let status = refused.map_or(StatusCode::OK, |refused| refused.status);
    let mut context = user.context(K::PATH);
    let views = K::views(state, user).await;
    let teams = team_names(state, user).await;
    list_into(&mut context, &user.principal, &teams, K::PATH, query, views);
    context.insert("title", K::TITLE);
    context.insert("singular", K::SINGULAR);
    context.insert("path", K::PATH);
    let mut fields = form_fields(state, user, &teams, &K::fields(), values).await;
    mark(&mut fields, refused);
    context.insert("fields", &fields);
    let error = refused.map(Refused::summary);
    user.outcome(
        &mut context,
        &format!("{}.create", K::PATH),
        None,
        error.as_deref(),
    );
    state.console.page(status, "registry.html", &context)
}

/// `GET /admin/resources` and `/admin/prompts`: the list and the create form.
pub async fn list<K: Kind>(
    state: web::Data<AppState>,
    user: ConsoleUser,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let defaults = json!({"visibility": "public"});
    kind_page::<K>(&state, &user, &query, &defaults, None).await
}

/// `POST /admin/resources` and `/admin/prompts`: creates through the REST API's checks.
pub async fn create<K: Kind>(
    state: web::Data<AppState>,
    user: ConsoleUser,
    form: web::Form<Pairs>,
) -> Result<HttpResponse, ConsoleRefusal> {
    user.check_csrf(csrf_of_form(&form))?;
    let fields = K::fields();
    let outcome = submit(parse::<K::Create>(&fields, &form, true), |input| {
        K::add(&state, &user, input)
    })
    .await;
    Ok(match outcome {
        Ok(view) => done::<K>(&view, "created"),
        Err(refused) => {
            let values = values_of(&fields, &form);
            let query = ListQuery::default();
            kind_page::<K>(&state, &user, &query, &values, Some(&refused)).await
        }
    })
}

/// Registers the shared routes of one kind (and its list and create, when `with_pages`).
pub fn routes<K: Kind>(config: &mut web::ServiceConfig, with_pages: bool) {
    let path = K::PATH;
    if with_pages {
        config.service(
            web::resource(format!("/admin/{path}"))
                .route(web::get().to(list::<K>))
                .route(web::post().to(create::<K>)),
        );
    }
    config
        .service(
            web::resource(format!("/admin/{path}/{{id}}/{{action:toggle|delete}}"))
                .route(web::post().to(action::<K>)),
        )
        .service(
            web::resource(format!("/admin/{path}/{{id}}/edit"))
                .route(web::get().to(edit_form::<K>))
                .route(web::post().to(edit::<K>)),
        );
}
