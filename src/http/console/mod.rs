//! The admin console: server-rendered pages (tera templates compiled into the binary), the
//! session cookie set by sign-in, CSRF protection on every form, and a live dashboard fed over
//! SSE. Pages are rendered only after their data has come back from the actors; no handler
//! holds a database connection.

mod access;
mod account;
mod audit;
mod connect;
mod manage;
mod pages;
mod registry;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::identity::SESSION_COOKIE;
use crate::auth::Principal;

/// The cookie holding the sign-in form's CSRF token (before there is a session).
const LOGIN_CSRF_COOKIE: &str = "mcpgate_login_csrf";
/// The cookie carrying a confirmation across a redirect (shown once, then cleared).
const FLASH_COOKIE: &str = "mcpgate_flash";

/// The most registry items of one kind a console page reads (search narrows within them).
pub const VISIBLE_MAX: usize = 10_000;

/// The compiled templates, and the key that binds CSRF tokens to sessions.
pub struct Console {
    tera: tera::Tera,
    keys: crate::secrets::SecretBox,
}

impl Console {
    /// Compiles the templates shipped in `templates/`; CSRF tokens are MACs under `keys`.
    pub fn new(keys: crate::secrets::SecretBox) -> Result<Self, String> {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates([
            ("base.html", include_str!("../../../templates/base.html")),
            ("login.html", include_str!("../../../templates/login.html")),
            (
                "dashboard.html",
                include_str!("../../../templates/dashboard.html"),
            ),
            ("tools.html", include_str!("../../../templates/tools.html")),
            ("run.html", include_str!("../../../templates/run.html")),
            (
                "tokens.html",
                include_str!("../../../templates/tokens.html"),
            ),
            (
                "gateways.html",
                include_str!("../../../templates/gateways.html"),
            ),
            ("users.html", include_str!("../../../templates/users.html")),
            ("audit.html", include_str!("../../../templates/audit.html")),
            (
                "account.html",
                include_str!("../../../templates/account.html"),
            ),
            (
                "connect.html",
                include_str!("../../../templates/connect.html"),
            ),
            ("teams.html", include_str!("../../../templates/teams.html")),
            (
                "registry.html",
                include_str!("../../../templates/registry.html"),
            ),
            ("edit.html", include_str!("../../../templates/edit.html")),
            (
                "problem.html",
                include_str!("../../../templates/problem.html"),
            ),
            ("_list.html", include_str!("../../../templates/_list.html")),
            (
                "_pager.html",
                include_str!("../../../templates/_pager.html"),
            ),
            (
                "_actions.html",
                include_str!("../../../templates/_actions.html"),
            ),
            (
                "_fields.html",
                include_str!("../../../templates/_fields.html"),
            ),
        ])
        .map_err(|error| format!("the console templates do not compile: {error}"))?;
        Ok(Console { tera, keys })
    }

    /// The CSRF token of a session: an HMAC of its token id under a server-side key, which
    /// neither another site nor the session's own holder can compute.
    fn csrf_of(&self, token_id: &str) -> String {
        self.keys.mac("console-csrf", token_id)
    }

    /// Renders a page with `status`; a template error is logged and shown as a plain page.
    fn page(
        &self,
        status: actix_web::http::StatusCode,
        name: &str,
        context: &tera::Context,
    ) -> HttpResponse {
        match self.tera.render(name, context) {
            Ok(html) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header(("X-Frame-Options", "DENY"))
                .insert_header((
                    "Content-Security-Policy",
                    "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
                ))
                // A confirmation carried across a redirect is shown once.
                .cookie(
                    actix_web::cookie::Cookie::build(FLASH_COOKIE, "")
                        .path("/admin")
                        .max_age(actix_web::cookie::time::Duration::ZERO)
                        .finish(),
                )
                .body(html),
            Err(error) => {
                tracing::error!(template = name, %error, "console page did not render");
                HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body("This page could not be shown; the error is in the gateway's log.")
            }
        }
    }
}

/// Registers the console's routes and its static assets.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/admin/login")
                .route(web::get().to(pages::login_form))
                .route(web::post().to(pages::login)),
        )
        .service(web::resource("/admin/logout").route(web::post().to(pages::logout)))
        .service(web::resource("/admin").route(web::get().to(pages::dashboard)))
        .service(web::resource("/admin/events").route(web::get().to(pages::events)))
        .service(
            web::resource("/admin/tools")
                .route(web::get().to(pages::tools))
                .route(web::post().to(pages::create_tool)),
        )
        .service(
            web::resource("/admin/tools/{name}/run")
                .route(web::get().to(manage::run_form))
                .route(web::post().to(manage::run)),
        )
        .service(
            web::resource("/admin/tokens")
                .route(web::get().to(manage::tokens))
                .route(web::post().to(manage::create_token)),
        )
        .service(web::resource("/admin/tokens/{id}/revoke").route(web::post().to(manage::revoke)))
        .service(
            web::resource("/admin/gateways")
                .route(web::get().to(manage::gateways))
                .route(web::post().to(manage::register_gateway)),
        )
        .service(
            web::resource("/admin/gateways/{id}/refresh")
                .route(web::post().to(manage::refresh_gateway)),
        )
        .service(
            web::resource("/admin/gateways/{id}/test").route(web::post().to(manage::test_gateway)),
        )
        .service(
            web::resource("/admin/users")
                .route(web::get().to(access::users))
                .route(web::post().to(access::create_user)),
        )
        .service(web::resource("/admin/users/roles").route(web::post().to(access::assign_role)))
        .service(
            web::resource("/admin/users/{email}/{action:state|unlock|password|delete}")
                .route(web::post().to(access::user_action)),
        )
        .service(
            web::resource("/admin/account")
                .route(web::get().to(account::page))
                .route(web::post().to(account::change_password)),
        )
        .service(web::resource("/admin/audit").route(web::get().to(audit::page)))
        .service(
            web::resource("/admin/servers/{id}/connect")
                .route(web::get().to(connect::page))
                .route(web::post().to(connect::create_token)),
        )
        .service(
            web::resource("/admin/teams")
                .route(web::get().to(access::teams))
                .route(web::post().to(access::create_team)),
        )
        .service(
            web::resource("/admin/teams/{id}/members").route(web::post().to(access::add_member)),
        )
        .service(
            web::resource("/admin/teams/{id}/members/remove")
                .route(web::post().to(access::remove_member)),
        )
        .configure(|config| {
            use crate::registry::{gateways, prompts, resources, servers, tools};
            registry::routes::<tools::Tools>(config, false);
            registry::routes::<servers::Servers>(config, true);
            registry::routes::<gateways::Gateways>(config, false);
            registry::routes::<resources::Resources>(config, true);
            registry::routes::<prompts::Prompts>(config, true);
        })
        .service(web::resource("/static/admin.css").route(web::get().to(css)))
        .service(web::resource("/static/admin.js").route(web::get().to(js)));
}

async fn css() -> HttpResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../../static/admin.css"),
    )
}

async fn js() -> HttpResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../static/admin.js"),
    )
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(body)
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A signed-in console user: the principal of the session cookie, and the session's CSRF
/// token. Without a valid session, pages redirect to the sign-in page.
pub struct ConsoleUser {
    /// Who.
    pub principal: Principal,
    /// The CSRF token forms must carry.
    pub csrf: String,
    /// A confirmation carried across a redirect, shown once.
    pub flash: Option<String>,
}

/// Why a console request is turned away.
#[derive(Debug)]
pub enum ConsoleRefusal {
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    /// A form without the session's CSRF token.
    Csrf,
    /// The gateway could not check the session right now.
    Unavailable,
}

impl std::fmt::Display for ConsoleRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConsoleRefusal::SignIn => "sign in first",
            ConsoleRefusal::Csrf => "the form is missing its security token",
            ConsoleRefusal::Unavailable => "the console is unavailable; try again shortly",
        })
    }
}

impl actix_web::ResponseError for ConsoleRefusal {
    fn error_response(&self) -> HttpResponse {
        match self {
            ConsoleRefusal::SignIn => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/login"))
                .finish(),
            ConsoleRefusal::Csrf => HttpResponse::Forbidden()
                .content_type("text/plain; charset=utf-8")
                .body("This form was refused: it did not carry this session's security token. Reload the page and try again."),
            ConsoleRefusal::Unavailable => HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "1"))
                .content_type("text/plain; charset=utf-8")
                .body("The console is unavailable right now; try again shortly."),
        }
    }
}

impl FromRequest for ConsoleUser {
    type Error = ConsoleRefusal;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ConsoleRefusal>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let token = request
            .cookie(SESSION_COOKIE)
            .map(|cookie| cookie.value().to_owned())
            .filter(|token| !token.is_empty());
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let origin = super::origin(request);
        let flash = request
            .cookie(FLASH_COOKIE)
            .and_then(|cookie| {
                url::form_urlencoded::parse(format!("m={}", cookie.value()).as_bytes())
                    .next()
                    .map(|(_, message)| message.into_owned())
            })
            .filter(|message| !message.is_empty());
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(ConsoleRefusal::SignIn);
            };
            match state.auth.authenticate(token, origin).await {
                // An API token is never a console session, whatever cookie it is put in.
                Ok(principal) if principal.is_api_token() => Err(ConsoleRefusal::SignIn),
                Ok(principal) => Ok(ConsoleUser {
                    csrf: state.console.csrf_of(&principal.token_id),
                    principal,
                    flash,
                }),
                Err(crate::auth::AuthError::Unavailable) => Err(ConsoleRefusal::Unavailable),
                Err(_) => Err(ConsoleRefusal::SignIn),
            }
        })
    }
}

impl ConsoleUser {
    /// Refuses a form whose `csrf` field is not this session's token.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), ConsoleRefusal> {
        match submitted {
            Some(token) if same(token, &self.csrf) => Ok(()),
            _ => Err(ConsoleRefusal::Csrf),
        }
    }

    /// Adds what a page's outcome shows: whether its create form is offered (the principal
    /// holds `create_permission`), a confirmation and an error.
    pub fn outcome(
        &self,
        context: &mut tera::Context,
        create_permission: &str,
        flash: Option<&str>,
        error: Option<&str>,
    ) {
        context.insert(
            "may_create",
            &self
                .principal
                .permits(create_permission, crate::auth::On::Anywhere),
        );
        context.insert("flash", &flash.or(self.flash.as_deref()));
        context.insert("error", &error);
    }

    /// The context every signed-in page starts from.
    pub fn context(&self, page: &str) -> tera::Context {
        let mut context = tera::Context::new();
        context.insert(
            "user",
            &json!({
                "email": self.principal.email,
                "is_admin": self.principal.permits("admin.system", crate::auth::On::Platform),
                "manages_users": self.principal.permits("users.manage", crate::auth::On::Platform),
                "reads_audit": self.principal.permits("audit.read", crate::auth::On::Platform),
            }),
        );
        context.insert("csrf", &self.csrf);
        context.insert("page", page);
        context.insert("flash", &self.flash);
        context.insert("error", &serde_json::Value::Null);
        context
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page renders with the data its handler gives it (an empty list where it has none).
    #[test]
    fn pages_render() {
        let console = Console::new(crate::secrets::SecretBox::new("test-secret")).unwrap();
        let mut context = tera::Context::new();
        context.insert(
            "user",
            &json!({"email": "a@example.com", "is_admin": true, "manages_users": true}),
        );
        for (key, value) in [
            ("csrf", json!("x")),
            ("page", json!("users")),
            ("flash", json!(null)),
            ("error", json!("something")),
            (
                "users",
                json!([{"email": "a@example.com", "full_name": "", "is_admin": true, "is_active": true, "locked": false}]),
            ),
            ("roles", json!(["viewer"])),
            ("default_role", json!("viewer")),
            (
                "teams",
                json!([{"id": "t", "name": "T", "is_personal": false, "manageable": true, "description": null, "members": [{"email": "a@example.com", "role": "owner"}]}]),
            ),
            ("may_create", json!(true)),
            ("email", json!("a@example.com")),
            (
                "counts",
                json!([{"key": "tools", "label": "Tools", "value": 1}]),
            ),
            (
                "calls",
                json!({"per_minute": "0.0", "total": 0, "error_rate": "–", "latency": "–"}),
            ),
            (
                "pool",
                json!({"backend": "sqlite", "in_use": 0, "idle": 1, "waiting": 0, "checkout_timeouts": 0, "retries": 0, "breaker": "closed"}),
            ),
            (
                "upstreams",
                json!([{"name": "u", "url": "http://u", "reachable": true, "last_seen": "never"}]),
            ),
            (
                "tools",
                json!([{"id": "1", "name": "t", "kind": "REST", "description": "", "visibility": "public"}]),
            ),
            ("q", json!("")),
            (
                "form",
                json!({"name": "", "url": "", "request_type": "GET", "description": "", "input_schema": ""}),
            ),
            ("methods", json!(["GET"])),
            ("tool", json!({"name": "t", "description": ""})),
            (
                "fields",
                json!([{"name": "a", "kind": "string", "required": true, "description": "", "value": "", "label": "A", "options": null},
                              {"name": "m", "kind": "members", "label": "M", "required": false, "value": "", "options": [{"value": "t", "label": "T", "checked": true}]},
                              {"name": "v", "kind": "choice", "label": "V", "required": false, "value": "team", "options": ["public", "team"]},
                              {"name": "t", "kind": "team", "label": "T", "required": false, "value": "", "options": [{"value": "t", "label": "T"}]},
                              {"name": "j", "kind": "json", "label": "J", "required": false, "value": "{}", "options": null},
                              {"name": "b", "kind": "boolean", "required": false, "description": "", "value": "", "label": "B", "options": null},
                              {"name": "c", "kind": "integer", "required": false, "description": "", "value": "", "label": "C", "options": null},
                              {"name": "d", "kind": "object", "required": false, "description": "", "value": "", "label": "D", "options": null}]),
            ),
            ("result", json!("{}")),
            ("is_error", json!(false)),
            ("elapsed_ms", json!("1.0")),
            ("servers", json!([{"id": "s", "name": "S"}])),
            (
                "items",
                json!([{"id": "i", "name": "I", "enabled": false, "tags": ["a"], "visibility": "team",
                        "description": null, "uri": "docs://x", "gateway_id": "g", "url": "http://g",
                        "transport": "sse", "reachable": true, "last_seen_at": null,
                        "tool_ids": ["t"], "resource_ids": [], "prompt_ids": []}]),
            ),
            (
                "filters",
                json!({"path": "servers", "q": "", "tag": "a", "team": "", "tags": ["a"],
                       "teams": [{"id": "t", "name": "T"}], "active": true,
                       "actor": "", "action": "", "target": "", "outcome": ""}),
            ),
            (
                "pager",
                json!({"page": 1, "pages": 2, "total": 30, "prev": null, "next": "/admin/x?page=2"}),
            ),
            ("federated", json!({"i": ["g-t"]})),
            ("next", json!("/admin/audit?cursor=x")),
            (
                "activity",
                json!({"g": {"breaker": "open", "consecutive_failures": 3, "calls": 4, "failures": 3,
                             "p50": "≤ 5 ms", "p95": "–", "hours": [{"level": "bad", "label": "10:00 UTC: 4 calls, 3 failed"}]}}),
            ),
            (
                "account",
                json!({"email": "a@example.com", "full_name": "A", "is_admin": true, "password_changed_at": "never"}),
            ),
            ("errors", json!({"confirm_password": "does not match"})),
            (
                "server",
                json!({"id": "s", "name": "S", "mcp": "http://x/servers/s/mcp", "sse": "http://x/servers/s/sse"}),
            ),
            ("token", json!("tok")),
            ("may_create_token", json!(true)),
            (
                "clients",
                json!([{"id": "vscode", "title": "VS Code", "hint": "h", "text": "{}", "rows": 2}]),
            ),
            (
                "entries",
                json!([{"at": "2026-12-04 10:00:00 UTC", "at_iso": "2026-12-04T10:00:00Z", "actor": "a@example.com",
                        "action": "tools.update", "kind": "tool", "target": "t", "outcome": "ok", "detail": "",
                        "client_ip": "127.0.0.1", "request_id": "r", "changes": [{"field": "url", "before": "a", "after": "b"}]}]),
            ),
            ("load_error", json!("The list could not be read")),
            ("title", json!("Things")),
            ("singular", json!("Thing")),
            ("path", json!("servers")),
            ("name", json!("I")),
            ("action", json!("/admin/servers/i/edit")),
            ("back", json!("/admin/servers")),
            (
                "tokens",
                json!([{"id": "k", "name": "ci", "server": "any", "expires_at": "2027-01-01", "revoked": false}]),
            ),
            ("created", json!({"name": "ci", "access_token": "secret"})),
            (
                "gateways",
                json!([{"id": "g", "name": "G", "url": "http://g", "transport": "sse", "reachable": false, "last_seen": "never", "tools": ["g-t"]}]),
            ),
        ] {
            context.insert(key, &value);
        }
        let pages = [
            "gateways.html",
            "login.html",
            "dashboard.html",
            "tools.html",
            "run.html",
            "registry.html",
            "edit.html",
            "problem.html",
            "tokens.html",
            "users.html",
            "teams.html",
            "audit.html",
            "account.html",
            "connect.html",
        ];
        for page in pages {
            if let Err(error) = console.tera.render(page, &context) {
                panic!("{page}: {error:?}");
            }
        }
    }
}
