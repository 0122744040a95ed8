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

/// Items per page of a console list.
pub const PAGE_SIZE: usize = 25;

/// How a form field is entered.
#[derive(Clone, Copy)]
pub enum Input {
    /// One line of text.
    Text,
    /// A URL.
    Url,
    /// Several lines of text.
    Area,
    /// JSON, checked in the browser before sending and parsed here.
    Json,
    /// Comma-separated labels.
    Tags,
    /// One of fixed values.
    Choice(&'static [&'static str]),
    /// One of the user's teams, or none.
    Team,
    /// Checkboxes of visible items of a kind (`tools`, `resources`, `prompts`).
    Members(&'static str),
}

/// One field of a create or edit form: `name` is the REST API's field.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub input: Input,
    pub required: bool,
}

const fn field(name: &'static str, label: &'static str, input: Input) -> Field {
    Field {
        name,
        label,
        input,
        required: false,
    }
}

const fn required(name: &'static str, label: &'static str, input: Input) -> Field {
    Field {
        name,
        label,
        input,
        required: true,
    }
}

/// The fields every item has: tags, visibility and team.
const SHARING: [Field; 3] = [
    field("tags", "Tags (comma-separated)", Input::Tags),
    field(
        "visibility",
        "Visibility",
        Input::Choice(&["public", "team", "private"]),
    ),
    field("team_id", "Team", Input::Team),
];

/// A registry kind as the console shows it. The operations are the REST API's, bound to the
/// kind's record type.
pub trait Kind: Entity {
    /// The page title (`Resources`).
    const TITLE: &'static str;
    /// The singular, capitalised (`Resource`).
    const SINGULAR: &'static str;

    /// The fields of the edit form (and of the create form, where the console offers one).
    fn fields() -> Vec<Field>;

    /// Every record the user may see, disabled ones included, as the REST API shows them.
    async fn views(state: &AppState, user: &ConsoleUser) -> Result<Vec<Value>, ApiError>;
    /// One record the user may see (else not found).
    async fn read(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError>;
    /// Creates a record.
    async fn add(
        state: &AppState,
        user: &ConsoleUser,
        input: Self::Create,
    ) -> Result<Value, ApiError>;
    /// Updates a record.
    async fn change(
        state: &AppState,
        user: &ConsoleUser,
        id: &str,
        input: Self::Update,
    ) -> Result<Value, ApiError>;
    /// Deletes a record; returns what it was.
    async fn remove(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError>;
    /// Flips whether a record is enabled.
    async fn flip(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError>;
}

fn view_json<E: Entity>(record: E::Record) -> Value {
    serde_json::to_value(E::view(record)).unwrap_or_default()
}

macro_rules! console_kind {
    ($entity:ty, $title:literal, $singular:literal, [$($field:expr),* $(,)?]) => {
        impl Kind for $entity {
            const TITLE: &'static str = $title;
            const SINGULAR: &'static str = $singular;

            fn fields() -> Vec<Field> {
                let mut fields = vec![$($field),*];
                fields.extend(SHARING);
                fields
            }

            async fn views(state: &AppState, user: &ConsoleUser) -> Result<Vec<Value>, ApiError> {
                Ok(ops::visible::<$entity>(&state.services, &user.principal, super::VISIBLE_MAX)
                    .await?
                    .into_iter()
                    .map(view_json::<$entity>)
                    .collect())
            }

            async fn read(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError> {
                ops::get::<$entity>(&state.services, &user.principal, id)
                    .await
                    .map(view_json::<$entity>)
            }

            async fn add(
                state: &AppState,
                user: &ConsoleUser,
                input: Self::Create,
            ) -> Result<Value, ApiError> {
                ops::create::<$entity>(&state.services, &user.principal, input)
                    .await
                    .map(view_json::<$entity>)
            }

            async fn change(
                state: &AppState,
                user: &ConsoleUser,
                id: &str,
                input: Self::Update,
            ) -> Result<Value, ApiError> {
                ops::update::<$entity>(&state.services, &user.principal, id, input)
                    .await
                    .map(view_json::<$entity>)
            }

            async fn remove(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError> {
                ops::delete::<$entity>(&state.services, &user.principal, id)
                    .await
                    .map(view_json::<$entity>)
            }

            async fn flip(state: &AppState, user: &ConsoleUser, id: &str) -> Result<Value, ApiError> {
                ops::set_enabled::<$entity>(&state.services, &user.principal, id, None)
                    .await
                    .map(view_json::<$entity>)
            }
        }
    };
}

console_kind!(
    Tools,
    "Tools",
    "Tool",
    [
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
        field("url", "URL (REST tools)", Input::Url),
        field(
            "request_type",
            "Method (REST tools)",
            Input::Choice(&["GET", "POST", "PUT", "PATCH", "DELETE"])
        ),
        field("input_schema", "Input schema (JSON Schema)", Input::Json),
    ]
);
console_kind!(
    Resources,
    "Resources",
    "Resource",
    [
        field("uri", "URI", Input::Text),
        field(
            "uri_template",
            "URI template (instead of a URI, e.g. docs://{section})",
            Input::Text
        ),
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
        field("mime_type", "MIME type", Input::Text),
        field("content", "Content", Input::Area),
    ]
);
console_kind!(
    Prompts,
    "Prompts",
    "Prompt",
    [
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
        required(
            "template",
            "Template (tera, e.g. Summarise {{ text }})",
            Input::Area
        ),
        field(
            "arguments",
            "Arguments (JSON list of {\"name\", \"description\", \"required\"})",
            Input::Json
        ),
    ]
);
console_kind!(
    Servers,
    "Virtual servers",
    "Virtual server",
    [
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
        field("tool_ids", "Tools", Input::Members("tools")),
        field("resource_ids", "Resources", Input::Members("resources")),
        field("prompt_ids", "Prompts", Input::Members("prompts")),
    ]
);
console_kind!(
    Gateways,
    "Gateways",
    "Gateway",
    [
        required("name", "Name", Input::Text),
        field("description", "Description", Input::Area),
    ]
);

/// `?q=&tag=&team=&page=` of a list page.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub team: String,
    pub page: Option<usize>,
}

/// One page of a filtered list, with what the filter form and the pager show.
pub struct Listing {
    pub items: Vec<Value>,
    pub filters: Value,
    pub pager: Value,
}

fn text_of(view: &Value, key: &str) -> String {
    view.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

impl ListQuery {
    /// Filters `views` (search in name, description, URI and URL; exact tag; team) and cuts
    /// out the page asked for. `teams` names the user's teams for the team filter.
    pub fn apply(&self, path: &str, views: Vec<Value>, teams: &[(String, String)]) -> Listing {
        let mut tags: Vec<String> = views
            .iter()
            .filter_map(|view| view["tags"].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        tags.sort();
        tags.dedup();
        let needle = self.q.trim().to_lowercase();
        let matching: Vec<Value> = views
            .into_iter()
            .filter(|view| {
                needle.is_empty()
                    || ["name", "description", "uri", "uri_template", "url"]
                        .iter()
                        .any(|key| text_of(view, key).contains(&needle))
            })
            .filter(|view| {
                self.tag.is_empty()
                    || view["tags"]
                        .as_array()
                        .is_some_and(|tags| tags.iter().any(|t| t == self.tag.as_str()))
            })
            .filter(|view| self.team.is_empty() || view["team_id"] == self.team.as_str())
            .collect();
        let total = matching.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = self.page.unwrap_or(1).clamp(1, pages);
        let items = matching
            .into_iter()
            .skip((page - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .collect();
        let href = |page: usize| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in [("q", &self.q), ("tag", &self.tag), ("team", &self.team)] {
                if !value.is_empty() {
                    query.append_pair(key, value);
                }
            }
            query.append_pair("page", &page.to_string());
            format!("/admin/{path}?{}", query.finish())
        };
        let teams: Vec<Value> = teams
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect();
        Listing {
            items,
            filters: json!({
                "path": path, "q": self.q, "tag": self.tag, "team": self.team,
                "tags": tags, "teams": teams,
                "active": !(self.q.is_empty() && self.tag.is_empty() && self.team.is_empty()),
            }),
            pager: json!({
                "page": page, "pages": pages, "total": total,
                "prev": (page > 1).then(|| href(page - 1)),
                "next": (page < pages).then(|| href(page + 1)),
            }),
        }
    }
}

/// The user's teams as `(id, name)`.
pub async fn team_names(state: &AppState, user: &ConsoleUser) -> Vec<(String, String)> {
    crate::service::identity::teams::list(&state.services, &user.principal)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|team| (team.id, team.name))
        .collect()
}

/// Puts a filtered page of `views` into a list page's context (`items`, `filters`, `pager`,
/// and `load_error` when the list could not be read: the page says so rather than showing an
/// empty list). `teams` are the user's teams, offered by the team filter.
pub fn list_into(
    context: &mut tera::Context,
    teams: &[(String, String)],
    path: &str,
    query: &ListQuery,
    views: Result<Vec<Value>, ApiError>,
) {
    let (views, load_error) = match views {
        Ok(views) => (views, None),
        Err(error) => (
            Vec::new(),
            Some(format!("The list could not be read: {error}")),
        ),
    };
    context.insert("load_error", &load_error);
    let listing = query.apply(path, views, teams);
    context.insert("items", &listing.items);
    context.insert("filters", &listing.filters);
    context.insert("pager", &listing.pager);
}

/// A redirect to `location` that shows `message` once on the next page (the flash cookie).
pub fn flash_redirect(location: &str, message: &str) -> HttpResponse {
    let cookie = super::pages::cookie(FLASH_COOKIE, urlencode(message), 60, false);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_owned()))
        .cookie(cookie)
        .finish()
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A page saying why an action was refused, with the status it deserves and a way back.
fn problem(state: &AppState, user: &ConsoleUser, back: &str, error: &ApiError) -> HttpResponse {
    let mut context = user.context(back);
    context.insert("error", &error.to_string());
    context.insert("back", &format!("/admin/{back}"));
    state.console.page(
        actix_web::ResponseError::status_code(error),
        "problem.html",
        &context,
    )
}

/// A submitted form: its pairs in order (checkbox groups repeat a name).
pub type Pairs = Vec<(String, String)>;

fn submitted<'a>(pairs: &'a Pairs, name: &str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn csrf_of_form(pairs: &Pairs) -> Option<&str> {
    submitted(pairs, "csrf").next()
}

/// Builds the REST body from a form: an empty field is `null` (on an update: a clearable
/// field is cleared, another is left as it is), JSON fields are parsed, tags split.
fn body_from(
    fields: &[Field],
    pairs: &Pairs,
    creating: bool,
) -> Result<Map<String, Value>, String> {
    let mut body = Map::new();
    for field in fields {
        let text = submitted(pairs, field.name)
            .next()
            .map(str::trim)
            .unwrap_or_default();
        let value = match field.input {
            Input::Members(_) => json!(submitted(pairs, field.name).collect::<Vec<_>>()),
            Input::Tags => json!(
                text.split(',')
                    .map(str::trim)
                    .filter(|tag| !tag.is_empty())
                    .collect::<Vec<_>>()
            ),
            _ if text.is_empty() => {
                if field.required {
                    return Err(format!("{}: this field is required", field.name));
                }
                Value::Null
            }
            Input::Json => serde_json::from_str(text)
                .map_err(|error| format!("{}: not valid JSON ({error})", field.name))?,
            _ => json!(text),
        };
        if creating && value.is_null() {
            continue;
        }
        body.insert(field.name.to_owned(), value);
    }
    Ok(body)
}

/// Parses a form into a create or update body, naming the field a problem is in.
fn parse<T: serde::de::DeserializeOwned>(
    fields: &[Field],
    pairs: &Pairs,
    creating: bool,
) -> Result<T, String> {
    let body = body_from(fields, pairs, creating)?;
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|error| {
        let path = error.path().to_string();
        format!("{path}: {}", error.into_inner())
    })
}

/// The form's fields as the template draws them, with values (from a record or the submitted
/// form) and the options of choices, teams and member lists.
async fn form_fields(
    state: &AppState,
    user: &ConsoleUser,
    teams: &[(String, String)],
    fields: &[Field],
    values: &Value,
) -> Vec<Value> {
    let mut drawn = Vec::new();
    for field in fields {
        let current = &values[field.name];
        let mut value = json!({
            "name": field.name, "label": field.label, "required": field.required,
        });
        let (kind, text, options) = match field.input {
            Input::Text => ("text", plain(current), Value::Null),
            Input::Url => ("url", plain(current), Value::Null),
            Input::Area => ("area", plain(current), Value::Null),
            Input::Json => (
                "json",
                if current.is_null() || current.is_string() {
                    plain(current)
                } else {
                    serde_json::to_string_pretty(current).unwrap_or_default()
                },
                Value::Null,
            ),
            Input::Tags => (
                "text",
                match current {
                    Value::Array(tags) => tags
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => plain(other),
                },
                Value::Null,
            ),
            Input::Choice(choices) => ("choice", plain(current), json!(choices)),
            Input::Team => {
                let teams: Vec<Value> = teams
                    .iter()
                    .map(|(id, name)| json!({"value": id, "label": name}))
                    .collect();
                ("team", plain(current), json!(teams))
            }
            Input::Members(kind) => {
                let chosen: Vec<&str> = current
                    .as_array()
                    .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let items = match kind {
                    "tools" => Tools::views(state, user).await,
                    "resources" => Resources::views(state, user).await,
                    _ => Prompts::views(state, user).await,
                }
                .unwrap_or_default();
                let options: Vec<Value> = items
                    .iter()
                    .map(|item| {
                        let id = item["id"].as_str().unwrap_or_default();
                        json!({
                            "value": id,
                            "label": item["name"].as_str().or(item["uri"].as_str()).unwrap_or(id),
                            "checked": chosen.contains(&id),
                        })
                    })
                    .collect();
                ("members", String::new(), json!(options))
            }
        };
        value["kind"] = json!(kind);
        value["value"] = json!(text);
        value["options"] = options;
        drawn.push(value);
    }
    drawn
}

fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What a submitted form says, as values to draw it again with (after an error).
fn values_of(fields: &[Field], pairs: &Pairs) -> Value {
    let mut values = Map::new();
    for field in fields {
        let value = match field.input {
            Input::Members(_) => json!(submitted(pairs, field.name).collect::<Vec<_>>()),
            _ => json!(submitted(pairs, field.name).next().unwrap_or_default()),
        };
        values.insert(field.name.to_owned(), value);
    }
    Value::Object(values)
}

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
        K::remove(&state, &user, &id)
            .await
            .map(|view| format!("{} {} deleted.", K::SINGULAR, plain(&view["name"])))
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

async fn edit_page<K: Kind>(
    state: &AppState,
    user: &ConsoleUser,
    status: StatusCode,
    id: &str,
    values: &Value,
    error: Option<&str>,
) -> HttpResponse {
    let teams = team_names(state, user).await;
    let fields = form_fields(state, user, &teams, &K::fields(), values).await;
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
        Ok(view) => edit_page::<K>(&state, &user, StatusCode::OK, &id, &view, None).await,
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
        Err((status, message)) => {
            let values = values_of(&fields, &form);
            edit_page::<K>(&state, &user, status, &id, &values, Some(&message)).await
        }
    })
}

/// Runs `operation` on a parsed form; a parse failure is 422, an operation's error keeps its
/// status, both with a message for the page.
async fn submit<T, F, Fut>(
    parsed: Result<T, String>,
    operation: F,
) -> Result<Value, (StatusCode, String)>
where
    F: FnOnce(T) -> Fut,
    Fut: std::future::Future<Output = Result<Value, ApiError>>,
{
    match parsed {
        Ok(input) => operation(input).await.map_err(|error| {
            (
                actix_web::ResponseError::status_code(&error),
                error.to_string(),
            )
        }),
        Err(message) => Err((StatusCode::UNPROCESSABLE_ENTITY, message)),
    }
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
    status: StatusCode,
    query: &ListQuery,
    values: &Value,
    error: Option<&str>,
) -> HttpResponse {
    let mut context = user.context(K::PATH);
    let views = K::views(state, user).await;
    let teams = team_names(state, user).await;
    list_into(&mut context, &teams, K::PATH, query, views);
    context.insert("title", K::TITLE);
    context.insert("singular", K::SINGULAR);
    context.insert("path", K::PATH);
    let fields = form_fields(state, user, &teams, &K::fields(), values).await;
    context.insert("fields", &fields);
    user.outcome(&mut context, &format!("{}.create", K::PATH), None, error);
    state.console.page(status, "registry.html", &context)
}

/// `GET /admin/resources` and `/admin/prompts`: the list and the create form.
pub async fn list<K: Kind>(
    state: web::Data<AppState>,
    user: ConsoleUser,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let defaults = json!({"visibility": "public"});
    kind_page::<K>(&state, &user, StatusCode::OK, &query, &defaults, None).await
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
        Err((status, message)) => {
            let values = values_of(&fields, &form);
            let query = ListQuery::default();
            kind_page::<K>(&state, &user, status, &query, &values, Some(&message)).await
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
