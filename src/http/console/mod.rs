//! The admin console: server-rendered pages (tera templates compiled into the binary), the
//! session cookie set by sign-in, CSRF protection on every form, and a live dashboard fed over
//! SSE. Pages are rendered only after their data has come back from the actors; no handler
//! holds a database connection.

mod access;
mod account;
mod audit;
mod connect;
mod gateways;
mod logs;
mod manage;
mod metrics;
mod oauth;
mod pages;
mod registry;
mod run;
mod sso;
mod transfer;
mod upstream_oauth;

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
        tera.register_filter("when", When);
        tera.add_raw_templates([
            ("base.html", include_str!("../../../templates/base.html")),
            ("login.html", include_str!("../../../templates/login.html")),
            (
                "signed_in.html",
                include_str!("../../../templates/signed_in.html"),
            ),
            (
                "moving_on.html",
                include_str!("../../../templates/moving_on.html"),
            ),
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
            ("logs.html", include_str!("../../../templates/logs.html")),
            (
                "consent.html",
                include_str!("../../../templates/consent.html"),
            ),
            (
                "transfer.html",
                include_str!("../../../templates/transfer.html"),
            ),
            (
                "metrics.html",
                include_str!("../../../templates/metrics.html"),
            ),
            (
                "not_found.html",
                include_str!("../../../templates/not_found.html"),
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

    /// The console's 404 page (a path under `/admin` that is no page).
    pub fn not_found(&self, path: &str) -> HttpResponse {
        let mut context = tera::Context::new();
        context.insert("user", &serde_json::Value::Null);
        context.insert("page", "not-found");
        context.insert("path", path);
        context.insert("flash", &serde_json::Value::Null);
        context.insert("error", &serde_json::Value::Null);
        self.page(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found.html",
            &context,
        )
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
        // Signed-in pages show the version and uptime in the footer (not told to strangers).
        let signed_in = context.get("user").is_some_and(tera::Value::is_map);
        let footed;
        let context = if signed_in {
            let mut with_footer = context.clone();
            footer(&mut with_footer);
            footed = with_footer;
            &footed
        } else {
            context
        };
        match self.tera.render(name, context) {
            Ok(html) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header(("X-Frame-Options", "DENY"))
                .insert_header((
                    "Content-Security-Policy",
                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
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
        .service(web::resource("/admin/sso/callback").route(web::get().to(sso::callback)))
        .service(
            web::resource(crate::service::upstream_oauth::CALLBACK_PATH)
                .route(web::get().to(upstream_oauth::callback)),
        )
        .service(
            web::resource(upstream_oauth::FINISH_PATH).route(web::get().to(upstream_oauth::finish)),
        )
        .service(
            web::resource("/admin/upstreams/{id}/connect")
                .route(web::get().to(upstream_oauth::connect)),
        )
        .service(
            web::resource("/admin/upstreams/{id}/disconnect")
                .route(web::post().to(upstream_oauth::disconnect)),
        )
        .service(web::resource("/admin/sso/{provider}").route(web::get().to(sso::start)))
        .service(web::resource("/admin").route(web::get().to(pages::dashboard)))
        .service(web::resource("/admin/events").route(web::get().to(pages::events)))
        .service(
            web::resource("/admin/tools")
                .route(web::get().to(pages::tools))
                .route(web::post().to(pages::create_tool)),
        )
        .service(
            web::resource("/admin/tools/{name}/run")
                .route(web::get().to(run::run_form))
                .route(web::post().to(run::run)),
        )
        .service(
            web::resource("/admin/tokens")
                .route(web::get().to(manage::tokens))
                .route(web::post().to(manage::create_token)),
        )
        .service(web::resource("/admin/tokens/{id}/revoke").route(web::post().to(manage::revoke)))
        .service(
            web::resource("/admin/gateways")
                .route(web::get().to(gateways::gateways))
                .route(web::post().to(gateways::register_gateway)),
        )
        .service(
            web::resource("/admin/gateways/{id}/refresh")
                .route(web::post().to(gateways::refresh_gateway)),
        )
        .service(
            web::resource("/admin/gateways/{id}/test")
                .route(web::post().to(gateways::test_gateway)),
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
        .service(web::resource("/admin/logs").route(web::get().to(logs::page)))
        .service(web::resource("/admin/metrics").route(web::get().to(metrics::page)))
        .service(web::resource("/admin/transfer").route(web::get().to(transfer::page)))
        .service(
            web::resource("/admin/account/apps/{client_id}/disconnect")
                .route(web::post().to(account::disconnect)),
        )
        .service(
            web::resource("/admin/oauth/authorize")
                .route(web::get().to(oauth::authorize_form))
                .route(web::post().to(oauth::authorize)),
        )
        .service(web::resource("/admin/export").route(web::post().to(transfer::export)))
        .service(
            // A document is larger than a form usually is.
            web::resource("/admin/import")
                .app_data(web::FormConfig::default().limit(transfer::FORM_LIMIT))
                .route(web::post().to(transfer::import)),
        )
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

/// What every page's footer shows: the version and how long the process has run.
fn footer(context: &mut tera::Context) {
    context.insert("version", env!("CARGO_PKG_VERSION"));
    context.insert("uptime", &uptime(crate::app::started().elapsed()));
}

/// A duration in the largest two units that matter (`3 d 4 h`, `5 min`, `12 s`).
fn uptime(elapsed: std::time::Duration) -> String {
    let seconds = elapsed.as_secs();
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds} s"),
        (0, 0, minutes) => format!("{minutes} min"),
        (0, hours, minutes) => format!("{hours} h {minutes} min"),
        (days, hours, _) => format!("{days} d {hours} h"),
    }
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

/// The `when` filter: a stored moment (`2026-12-04T10:00:00.123456`, with or without `Z`) as
/// every console page shows it: `2026-12-04 10:00:00 UTC` in a `<time>` element, then how long
/// ago (`3 min ago`).
struct When;

impl tera::Filter<String, String> for When {
    fn call(&self, value: String, _kwargs: tera::Kwargs, _state: &tera::State) -> String {
        when_html(&value, chrono::Utc::now().naive_utc())
    }

    fn is_safe(&self) -> bool {
        true
    }
}

fn when_html(value: &str, now: chrono::NaiveDateTime) -> String {
    let trimmed = value.trim_end_matches('Z');
    let parsed = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(trimmed, format).ok());
    let Some(at) = parsed else {
        // Not a moment: shown as it is, escaped (the filter's output is trusted as HTML).
        return value
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
    };
    let seconds = (now - at).num_seconds();
    let ago = match seconds {
        ..-60 => match -seconds {
            60..3600 => format!("in {} min", -seconds / 60),
            3600..86_400 => format!("in {} h", -seconds / 3600),
            _ => format!("in {} days", -seconds / 86_400),
        },
        -60..60 => "just now".to_owned(),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86_400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    };
    format!(
        r#"<time datetime="{}Z">{}</time> <small class="ago">{ago}</small>"#,
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.format("%Y-%m-%d %H:%M:%S UTC"),
    )
}

#[cfg(test)]
mod tests;
