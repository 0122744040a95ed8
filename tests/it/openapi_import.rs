//! OpenAPI documents imported as REST tools against the real server, on SQLite and
//! PostgreSQL: the gateway's own `/openapi.json` (fetched by URL) becomes tools, and an MCP
//! client lists the registry's tools by calling the generated `list_tools`; a second import
//! updates the same tools; a small document given inline for the REST fixture gives a tool an
//! MCP client calls with a path parameter; a published description (the Swagger Petstore, YAML)
//! fetched from a stand-in that answers its operations; broken documents are refused with the
//! problem and nothing stored.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use common::fixture::RestFixture;
use common::mcp::McpClient;
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn tool_count(server: &TestServer) -> usize {
    let page = server.admin(Method::GET, "/tools?limit=500", None).await;
    page.body["items"].as_array().map_or(0, Vec::len)
}

async fn call(server: &TestServer, name: &str, arguments: Value) -> Value {
    let mcp = McpClient::new(server, "/mcp");
    let reply = mcp
        .modern("tools/call", json!({"name": name, "arguments": arguments}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["result"].clone()
}

async fn openapi_documents_become_tools(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let fixture = RestFixture::start().await;

    // The gateway's own document, by URL: its tool operations become tools calling the
    // gateway with the admin's token.
    let operations = ["list_tools", "get_tool", "create_tool"];
    let import = json!({
        "url": format!("{}/openapi.json", server.base),
        "base_url": server.base,
        "headers": {"Authorization": format!("Bearer {}", server.admin_token)},
        "operations": operations,
        "prefix": "gw_",
    });
    let report = server
        .admin(Method::POST, "/tools/import/openapi", Some(import.clone()))
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let mut created: Vec<&str> = report.body["created"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", report.body))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    created.sort_unstable();
    assert_eq!(
        created,
        ["gw_create_tool", "gw_get_tool", "gw_list_tools"],
        "{}",
        report.body
    );
    let listed = call(&server, "gw_list_tools", json!({"limit": 50})).await;
    assert_eq!(listed["isError"], false, "{listed}");
    let names: Vec<&str> = listed["structuredContent"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    for name in ["gw_list_tools", "gw_get_tool", "gw_create_tool"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let created = server.admin(Method::GET, "/tools?limit=500", None).await;
    let list_tool = created.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == "gw_list_tools")
        .unwrap()
        .clone();
    assert_eq!(list_tool["request_type"], "GET", "{list_tool}");
    assert!(
        list_tool["tags"].to_string().contains("openapi"),
        "{list_tool}"
    );

    // Again: the same tools, updated.
    let before = tool_count(&server).await;
    let again = server
        .admin(Method::POST, "/tools/import/openapi", Some(import))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["created"], json!([]), "{}", again.body);
    assert_eq!(again.body["updated"].as_array().map(Vec::len), Some(3));
    assert_eq!(tool_count(&server).await, before);

    // A document given inline for the fixture's weather endpoint.
    let weather = json!({
        "openapi": "3.1.0",
        "info": {"title": "Weather", "version": "1"},
        "paths": {"/weather/{city}": {"get": {
            "operationId": "cityWeather",
            "summary": "The weather in a city",
            "parameters": [
                {"name": "city", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "units", "in": "query", "schema": {"type": "string", "enum": ["metric", "imperial"]}}
            ],
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"city": {"type": "string"}}}}}}}
        }}}
    });
    let report = server
        .admin(
            Method::POST,
            "/tools/import/openapi",
            Some(json!({"document": weather, "base_url": fixture.base})),
        )
        .await;
    assert_eq!(
        report.body["created"],
        json!(["cityWeather"]),
        "{}",
        report.body
    );
    let answer = call(
        &server,
        "cityWeather",
        json!({"city": "Paris", "units": "metric"}),
    )
    .await;
    assert_eq!(answer["structuredContent"]["city"], "Paris", "{answer}");

    // Header parameters become arguments sent as headers; a header no argument may set (Host)
    // keeps its operation out, with the reason.
    let with_headers = json!({
        "openapi": "3.0.3",
        "info": {"title": "Headers", "version": "1"},
        "paths": {
            "/headers": {"get": {
                "operationId": "seeHeaders",
                "parameters": [
                    {"name": "X-Tenant", "in": "header", "required": true, "schema": {"type": "string"}},
                    {"name": "Authorization", "in": "header", "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "ok"}}
            }},
            "/text": {"get": {
                "operationId": "hostBound",
                "parameters": [{"name": "Host", "in": "header", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok"}}
            }}
        }
    });
    let report = server
        .admin(
            Method::POST,
            "/tools/import/openapi",
            Some(json!({"document": with_headers, "base_url": fixture.base})),
        )
        .await;
    assert_eq!(
        report.body["created"],
        json!(["seeHeaders"]),
        "{}",
        report.body
    );
    assert!(
        report.body["skipped"].to_string().contains("Host"),
        "{}",
        report.body
    );
    let seen = call(
        &server,
        "seeHeaders",
        json!({"X-Tenant": "blue", "Authorization": "Bearer from-the-argument"}),
    )
    .await;
    assert_eq!(
        seen["structuredContent"]["authorization"], "Bearer from-the-argument",
        "{seen}"
    );
    assert!(seen.to_string().contains("x-tenant"), "{seen}");

    // Broken documents: the problem named, nothing stored.
    let before = tool_count(&server).await;
    for (body, why) in [
        (
            json!({"document": {"swagger": "2.0"}, "base_url": fixture.base}),
            "openapi",
        ),
        (
            json!({"document": {"openapi": "3.1.0"}, "base_url": fixture.base}),
            "paths",
        ),
        (
            json!({"base_url": fixture.base}),
            "document itself or its url",
        ),
        (
            json!({"document": weather, "base_url": fixture.base, "operations": ["nope"]}),
            "no operation \\\"nope\\\"",
        ),
        (
            json!({"document": weather, "base_url": "ftp://x"}),
            "base_url",
        ),
        (
            json!({"url": format!("{}/missing.json", fixture.base), "base_url": fixture.base}),
            "answered 404",
        ),
        (
            json!({"document": "openapi: [3.1", "base_url": fixture.base}),
            "neither JSON nor YAML",
        ),
    ] {
        let refused = server
            .admin(Method::POST, "/tools/import/openapi", Some(body.clone()))
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            refused.body
        );
        assert!(
            refused.body.to_string().contains(why),
            "{why}: {}",
            refused.body
        );
    }
    assert_eq!(tool_count(&server).await, before);
    server.stop().await;
    fixture.stop().await;
}

/// A published API description, the Swagger Petstore as shipped in `@readme/oas-examples`
/// (YAML), fetched by URL from a local stand-in that answers its operations: the operations a
/// tool can call become tools (the rest reported skipped with why), and an MCP client calls
/// them with path, query and body arguments and the imported credential header.
async fn a_published_description_becomes_tools(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    common::sdk::setup();
    let mut command = std::process::Command::new("node");
    command.arg(format!("{}/node/petstore.mjs", common::sdk::deps_dir()));
    let petstore = common::sdk::spawn_announcing(command);
    let base = petstore.url.trim_end_matches("/mcp").to_owned();

    let report = server
        .admin(
            Method::POST,
            "/tools/import/openapi",
            Some(json!({
                "url": format!("{base}/openapi.yaml"),
                "base_url": format!("{base}/v2"),
                "headers": {"api_key": "special-key"},
                "prefix": "petstore_",
            })),
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let created: Vec<&str> = report.body["created"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in [
        "petstore_addPet",
        "petstore_getPetById",
        "petstore_findPetsByStatus",
        "petstore_deletePet",
        "petstore_getInventory",
        "petstore_placeOrder",
        "petstore_getOrderById",
        "petstore_loginUser",
    ] {
        assert!(created.contains(&name), "{name} in {}", report.body);
    }
    // What a JSON tool cannot send is skipped with the reason: a form body, a file upload, an
    // array body.
    let skipped = report.body["skipped"].to_string();
    for operation in [
        "updatePetWithForm",
        "uploadFile",
        "createUsersWithArrayInput",
    ] {
        assert!(skipped.contains(operation), "{operation} in {skipped}");
    }

    let added = call(
        &server,
        "petstore_addPet",
        json!({"id": 7, "name": "Rex", "photoUrls": ["https://img.example/rex.jpg"], "status": "available"}),
    )
    .await;
    assert_eq!(added["isError"], false, "{added}");
    let fetched = call(&server, "petstore_getPetById", json!({"petId": 7})).await;
    assert_eq!(fetched["structuredContent"]["name"], "Rex", "{fetched}");
    let found = call(
        &server,
        "petstore_findPetsByStatus",
        json!({"status": ["available"]}),
    )
    .await;
    assert!(found.to_string().contains("Rex"), "{found}");
    let inventory = call(&server, "petstore_getInventory", json!({})).await;
    assert!(inventory.to_string().contains("available"), "{inventory}");
    let order = call(
        &server,
        "petstore_placeOrder",
        json!({"id": 3, "petId": 7, "quantity": 1}),
    )
    .await;
    assert_eq!(order["isError"], false, "{order}");
    let again = call(&server, "petstore_getOrderById", json!({"orderId": 3})).await;
    assert!(again.to_string().contains("placed"), "{again}");
    let login = call(
        &server,
        "petstore_loginUser",
        json!({"username": "ana", "password": "secret"}),
    )
    .await;
    assert!(
        login.to_string().contains("logged in user session:ana"),
        "{login}"
    );
    // The stand-in got what the document describes: the body, the path and query values, and
    // the imported header.
    let seen: Value = reqwest::get(format!("{base}/_seen"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests: Vec<String> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|request| {
            format!(
                "{} {}{}",
                request["method"].as_str().unwrap(),
                request["path"].as_str().unwrap(),
                request["query"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "POST /v2/pet",
        "GET /v2/pet/7",
        "GET /v2/pet/findByStatus?status=available",
        "GET /v2/user/login?username=ana&password=secret",
    ] {
        assert!(
            requests.iter().any(|request| request == expected),
            "{expected} in {requests:?}"
        );
    }
    assert!(
        seen.as_array()
            .unwrap()
            .iter()
            .filter(|request| request["path"] != "/openapi.yaml")
            .all(|request| request["api_key"] == "special-key"),
        "{seen}"
    );
    server.stop().await;
}

both_backends!(
    openapi_documents_become_tools,
    a_published_description_becomes_tools
);
