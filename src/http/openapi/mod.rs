//! The OpenAPI 3 document at `GET /openapi.json`, built from the code: schemas are derived
//! from the request and response types, and the registry paths are generated from the same
//! [`Entity`] list the routes are.

mod identity;

use self::identity::add_identity;
use actix_web::HttpResponse;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema};
use utoipa::{OpenApi, PartialSchema};

use super::error::ErrorBody;
use super::health::{DatabaseSummary, McpStats, Readiness};
use super::oauth::ResourceMetadata;
use crate::actors::db::PoolStats;
use crate::auth::scope::{TimeWindow, TokenScope};
use crate::registry::gateways::{
    GatewayAuth, GatewayCreate, GatewayUpdate, GatewayView, Gateways, Transport,
};
use crate::registry::prompts::{PromptArgument, PromptCreate, PromptUpdate, PromptView, Prompts};
use crate::registry::resources::{ResourceCreate, ResourceUpdate, ResourceView, Resources};
use crate::registry::servers::{ServerCreate, ServerUpdate, ServerView, Servers};
use crate::registry::tools::{
    IntegrationType, RequestType, ToolAnnotations, ToolCreate, ToolUpdate, ToolView, Tools,
};
use crate::registry::{Entity, Visibility};
use crate::service::gateways::{GatewayDiscovered, SyncCounts};
use crate::service::identity::{
    LoginRequest, LoginResponse, MemberAdd, MemberRemove, MemberView, MyPermissions,
    PasswordChange, RoleAssignment, TeamCreate, TeamView, UserCreate, UserPage, UserUpdate,
    UserView,
};
use crate::service::tokens::{TokenCreate, TokenCreated, TokenView};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mcpgate",
        description = "The mcpgate REST API: registry, identity and access, health and pool statistics."
    ),
    components(schemas(
        ErrorBody,
        Readiness,
        DatabaseSummary,
        PoolStats,
        McpStats,
        Visibility,
        ToolCreate,
        ToolUpdate,
        ToolView,
        ToolAnnotations,
        IntegrationType,
        RequestType,
        ResourceCreate,
        ResourceUpdate,
        ResourceView,
        PromptCreate,
        PromptUpdate,
        PromptView,
        PromptArgument,
        GatewayCreate,
        GatewayUpdate,
        GatewayView,
        Transport,
        GatewayAuth,
        GatewayDiscovered,
        SyncCounts,
        ServerCreate,
        ServerUpdate,
        ServerView,
        LoginRequest,
        LoginResponse,
        PasswordChange,
        UserView,
        UserCreate,
        UserUpdate,
        UserPage,
        RoleAssignment,
        MyPermissions,
        TeamCreate,
        TeamView,
        MemberView,
        MemberAdd,
        MemberRemove,
        TokenCreate,
        TokenCreated,
        TokenView,
        TokenScope,
        TimeWindow,
        ResourceMetadata,
    ))
)]
struct ApiDoc;

fn json_ref(name: &str) -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(name)))
        .build()
}

fn response(description: &str, schema: Option<&str>) -> utoipa::openapi::Response {
    let builder = ResponseBuilder::new().description(description);
    match schema {
        Some(name) => builder.content("application/json", json_ref(name)).build(),
        None => builder.build(),
    }
}

fn error(description: &str) -> utoipa::openapi::Response {
    response(description, Some("ErrorBody"))
}

fn path_id() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(String::schema()))
        .build()
}

fn query(name: &str, description: &str, schema: RefOr<Schema>) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn add_entity<E: Entity>(
    doc: &mut utoipa::openapi::OpenApi,
    create: &str,
    update: &str,
    view: &str,
) {
    let tag = E::PATH;
    let collection = format!("/{}", E::PATH);
    let item = format!("/{}/{{id}}", E::PATH);
    let toggle = format!("/{}/{{id}}/toggle", E::PATH);
    let bearer = || SecurityRequirement::new("bearer", Vec::<String>::new());
    let body = |schema: &str| {
        Some(
            RequestBodyBuilder::new()
                .content("application/json", json_ref(schema))
                .required(Some(Required::True))
                .build(),
        )
    };
    let noun = E::NOUN;
    let paths = &mut doc.paths;
    paths.add_path_operation(
        &collection,
        vec![HttpMethod::Post],
        OperationBuilder::new()
            .tag(tag)
            .operation_id(Some(format!("create_{noun}")))
            .summary(Some(format!("Create a {noun}")))
            .security(bearer())
            .request_body(body(create))
            .response("201", response(&format!("the created {noun}"), Some(view)))
            .response("400", error("malformed JSON"))
            .response("401", error("no or invalid token"))
            .response("409", error("the name (or URI) is taken"))
            .response("413", error("body too large"))
            .response("422", error("a field is missing or invalid"))
            .response("503", error("database unavailable; see Retry-After")),
    );
    let page_schema = utoipa::openapi::ObjectBuilder::new()
        .property(
            "items",
            utoipa::openapi::ArrayBuilder::new().items(Ref::from_schema_name(view)),
        )
        .required("items")
        .property("next_cursor", Option::<String>::schema())
        .build();
    paths.add_path_operation(
        &collection,
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .tag(tag)
            .operation_id(Some(format!("list_{}", E::PATH)))
            .summary(Some(format!("List {} in creation order", E::PATH)))
            .security(bearer())
            .parameter(query(
                "limit",
                "items per page, 1-500 (default 50)",
                u32::schema(),
            ))
            .parameter(query(
                "cursor",
                "next_cursor of the previous page",
                String::schema(),
            ))
            .parameter(query(
                "include_inactive",
                "include disabled items",
                bool::schema(),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("one page")
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(page_schema)).build(),
                    )
                    .build(),
            )
            .response("400", error("bad limit or cursor"))
            .response("401", error("no or invalid token")),
    );
    paths.add_path_operation(
        &item,
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .tag(tag)
            .operation_id(Some(format!("get_{noun}")))
            .summary(Some(format!("Get a {noun}")))
            .security(bearer())
            .parameter(path_id())
            .response("200", response(noun, Some(view)))
            .response("404", error("no such id")),
    );
    paths.add_path_operation(
        &item,
        vec![HttpMethod::Put],
        OperationBuilder::new()
            .tag(tag)
            .operation_id(Some(format!("update_{noun}")))
            .summary(Some(format!("Update a {noun} (absent fields unchanged)")))
            .security(bearer())
            .parameter(path_id())
            .request_body(body(update))
            .response("200", response(&format!("the updated {noun}"), Some(view)))
            .response("404", error("no such id"))
            .response("409", error("the new name is taken"))
            .response("422", error("a field is invalid")),
    );
    paths.add_path_operation(
        &item,
        vec![HttpMethod::Delete],
        OperationBuilder::new()
            .tag(tag)
            .operation_id(Some(format!("delete_{noun}")))
            .summary(Some(format!("Delete a {noun}")))
            .security(bearer())
            .parameter(path_id())
            .response("204", response("deleted", None))
            .response("404", error("no such id")),
    );
    paths.add_path_operation(
        &toggle,
        vec![HttpMethod::Post],
        OperationBuilder::new()
            .tag(tag)
            .operation_id(Some(format!("toggle_{noun}")))
            .summary(Some(format!("Enable or disable a {noun}")))
            .security(bearer())
            .parameter(path_id())
            .parameter(query(
                "activate",
                "true enables, false disables; absent flips",
                bool::schema(),
            ))
            .response("200", response(&format!("the {noun}"), Some(view)))
            .response("404", error("no such id")),
    );
}

/// Builds the whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    add_entity::<Tools>(&mut doc, "ToolCreate", "ToolUpdate", "ToolView");
    add_entity::<Resources>(&mut doc, "ResourceCreate", "ResourceUpdate", "ResourceView");
    add_entity::<Prompts>(&mut doc, "PromptCreate", "PromptUpdate", "PromptView");
    add_entity::<Gateways>(&mut doc, "GatewayCreate", "GatewayUpdate", "GatewayView");
    add_entity::<Servers>(&mut doc, "ServerCreate", "ServerUpdate", "ServerView");
    let paths = &mut doc.paths;
    paths.add_path_operation(
        "/health",
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .tag("health")
            .operation_id(Some("health"))
            .summary(Some("Liveness (no database)"))
            .response("200", response("the process is up", None)),
    );
    paths.add_path_operation(
        "/ready",
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .tag("health")
            .operation_id(Some("ready"))
            .summary(Some(
                "Readiness: the database answers and the breaker is closed",
            ))
            .response("200", response("ready", Some("Readiness")))
            .response(
                "503",
                response("not ready, with a reason", Some("Readiness")),
            ),
    );
    paths.add_path_operation(
        "/admin/pool-stats",
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .tag("admin")
            .operation_id(Some("pool_stats"))
            .summary(Some(
                "Database pool and circuit breaker statistics (admins)",
            ))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .response("200", response("statistics", Some("PoolStats")))
            .response("401", error("no or invalid token"))
            .response("403", error("not an admin")),
    );
    doc.paths.add_path_operation(
        "/gateways/{id}/refresh",
        vec![HttpMethod::Post],
        OperationBuilder::new()
            .tag("gateways")
            .operation_id(Some("refresh_gateway"))
            .summary(Some(
                "Discover the upstream again and update what is federated",
            ))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .parameter(path_id())
            .response(
                "200",
                response(
                    "the gateway and what it now offers",
                    Some("GatewayDiscovered"),
                ),
            )
            .response("404", error("no such id"))
            .response("409", error("a discovered name clashes"))
            .response("502", error("the upstream could not be reached")),
    );
    doc.paths.add_path_operation(
        "/metrics",
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .tag("admin")
            .operation_id(Some("metrics"))
            .summary(Some(
                "Prometheus text metrics (admin token unless METRICS_PUBLIC)",
            ))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .response("200", response("text/plain; version=0.0.4", None)),
    );
    doc.paths.add_path_operation(
        "/admin/mcp-stats",
        vec![HttpMethod::Get],
        OperationBuilder::new()
            .tag("admin")
            .operation_id(Some("mcp_stats"))
            .summary(Some("Live MCP sessions (admins)"))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .response("200", response("statistics", Some("McpStats")))
            .response("403", error("not an admin")),
    );
    add_identity(&mut doc);
    add_common_errors(&mut doc);
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
    doc
}

/// One documented operation of the identity API.
struct Op<'a> {
    path: &'a str,
    method: HttpMethod,
    id: &'a str,
    summary: &'a str,
    /// The request body's schema.
    body: Option<&'a str>,
    /// The success status, its description and schema.
    ok: (&'a str, &'a str, Option<&'a str>),
    /// Other answers worth naming.
    errors: &'a [(&'a str, &'a str)],
    /// Whether a bearer token is needed.
    secured: bool,
}

fn add_op(doc: &mut utoipa::openapi::OpenApi, op: Op<'_>) {
    let mut builder = OperationBuilder::new()
        .tag(
            op.path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("identity"),
        )
        .operation_id(Some(op.id))
        .summary(Some(op.summary))
        .response(op.ok.0, response(op.ok.1, op.ok.2));
    if op.secured {
        builder = builder.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    }
    if let Some(schema) = op.body {
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_ref(schema))
                .required(Some(Required::True))
                .build(),
        ));
    }
    for segment in op.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(String::schema()))
                    .build(),
            );
        }
    }
    for (status, description) in op.errors {
        builder = builder.response(*status, error(description));
    }
    doc.paths
        .add_path_operation(op.path, vec![op.method], builder);
}

/// Documents the errors any operation can answer: bad query or path (400), missing or invalid
/// token (401, where a token is required) and an unavailable database (503).
fn add_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::T(error(description)));
            };
            if secured {
                add("400", "bad query parameters or path");
                add("401", "no or invalid token");
                add("403", "your roles do not grant this");
                add("503", "database unavailable; see Retry-After");
                add("504", "database work exceeded its deadline");
            }
        }
    }
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
