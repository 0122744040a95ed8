//! MCP Apps through the gateway: an MCP App server (`@modelcontextprotocol/server-basic-vanillajs`
//! from npm, built on `@modelcontextprotocol/ext-apps`) federated as an upstream; its tool keeps
//! the `_meta.ui` reference to its UI resource (and its `title`), and the `ui://` HTML resource
//! is listed and read through the gateway with its MIME type, in both protocol eras.

use crate::common;

use std::process::Command;

use common::mcp::{McpClient, assert_schema};
use common::sdk::{Upstream, deps_dir, free_port, spawn_listening};
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const UI_URI: &str = "ui://get-time/mcp-app.html";
const UI_MIME: &str = "text/html;profile=mcp-app";

/// The ext-apps basic example (vanilla JS) over Streamable HTTP on a free port.
async fn start_app_server() -> Upstream {
    let port = free_port();
    let mut command = Command::new("node");
    command
        .arg(format!(
            "{}/node/node_modules/@modelcontextprotocol/server-basic-vanillajs/dist/index.js",
            deps_dir()
        ))
        .env("PORT", port.to_string());
    spawn_listening(command, port, "/mcp").await
}

/// The one tool of a `tools/list` result named `name`.
fn tool_named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|tool| tool["name"] == name))
        .unwrap_or_else(|| panic!("{name} is listed: {list}"))
}

fn assert_app_tool(tool: &Value) {
    assert_eq!(tool["_meta"]["ui"]["resourceUri"], UI_URI, "{tool}");
    assert_eq!(tool["_meta"]["ui/resourceUri"], UI_URI, "{tool}");
    assert_eq!(tool["title"], "Get Time", "{tool}");
    assert_eq!(tool["outputSchema"]["required"], json!(["time"]), "{tool}");
}

fn assert_app_resource(list: &Value, read: &Value) {
    let listed = list["resources"]
        .as_array()
        .and_then(|resources| resources.iter().find(|r| r["uri"] == UI_URI))
        .unwrap_or_else(|| panic!("the UI resource is listed: {list}"));
    assert_eq!(listed["mimeType"], UI_MIME, "{listed}");
    let content = &read["contents"][0];
    assert_eq!(content["uri"], UI_URI, "{read}");
    assert_eq!(content["mimeType"], UI_MIME, "{read}");
    assert!(
        content["text"]
            .as_str()
            .is_some_and(|html| html.starts_with("<!DOCTYPE html>") && html.contains("</html>")),
        "the whole HTML page: {read}"
    );
}

async fn an_mcp_app_passes_through(backend: Backend) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let app = start_app_server().await;
    let registered = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Clock", "url": app.url})),
        )
        .await
        .expect(StatusCode::CREATED)
        .clone();
    let client = McpClient::new(&gateway, "/mcp");

    // 2026-07-28.
    let tools = client
        .modern("tools/list", json!({}))
        .await
        .expect(StatusCode::OK)
        .clone();
    assert_schema("2026-07-28", "ListToolsResultResponse", &tools);
    assert_app_tool(tool_named(&tools["result"], "clock-get-time"));
    let resources = client
        .modern("resources/list", json!({}))
        .await
        .expect(StatusCode::OK)
        .clone();
    let read = client
        .modern("resources/read", json!({"uri": UI_URI}))
        .await
        .expect(StatusCode::OK)
        .clone();
    assert_schema("2026-07-28", "ReadResourceResultResponse", &read);
    assert_app_resource(&resources["result"], &read["result"]);
    let call = client
        .modern(
            "tools/call",
            json!({"name": "clock-get-time", "arguments": {}}),
        )
        .await
        .expect(StatusCode::OK)
        .clone();
    assert_ne!(call["result"]["isError"], true, "{call}");
    assert!(
        call["result"]["structuredContent"]["time"].is_string(),
        "{call}"
    );

    // The session era.
    let (session, _) = client.initialize("2025-11-25").await;
    let tools = client
        .legacy(&session, "tools/list", json!({}))
        .await
        .expect(StatusCode::OK)
        .clone();
    assert_schema("2025-11-25", "ListToolsResult", &tools["result"]);
    assert_app_tool(tool_named(&tools["result"], "clock-get-time"));
    let resources = client
        .legacy(&session, "resources/list", json!({}))
        .await
        .expect(StatusCode::OK)
        .clone();
    let read = client
        .legacy(&session, "resources/read", json!({"uri": UI_URI}))
        .await
        .expect(StatusCode::OK)
        .clone();
    assert_app_resource(&resources["result"], &read["result"]);

    // A refresh that finds nothing new keeps what was passed through.
    let id = registered["id"].as_str().expect("the gateway's id");
    gateway
        .admin(Method::POST, &format!("/gateways/{id}/refresh"), None)
        .await
        .expect(StatusCode::OK);
    let tools = client
        .modern("tools/list", json!({}))
        .await
        .expect(StatusCode::OK)
        .clone();
    assert_app_tool(tool_named(&tools["result"], "clock-get-time"));
    gateway.stop().await;
}

both_backends!(an_mcp_app_passes_through);
