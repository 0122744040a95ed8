//! OpenAPI documents imported as REST tools against the real server, on SQLite and
//! PostgreSQL: the gateway's own `/openapi.json` (fetched by URL) becomes tools, and an MCP
//! client lists the registry's tools by calling the generated `list_tools`; a second import
//! updates the same tools; a small document given inline for the REST fixture gives a tool an
//! MCP client calls with a path parameter; broken documents are refused with the problem and
//! nothing stored.

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

both_backends!(openapi_documents_become_tools);
