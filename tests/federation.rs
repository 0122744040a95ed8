//! Federation: one gateway registers another (a real MCP server on loopback) as an upstream,
//! over Streamable HTTP and over the legacy SSE transport, and forwards calls to it.

mod common;

use common::mcp::{LEGACY, McpClient};
use common::world::World;
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn names(items: &Value, field: &str) -> Vec<String> {
    let mut names: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn federates_an_upstream(backend: Backend) {
    let upstream = World::new(backend).await;
    let upstream_url = format!("{}{}", upstream.server.base, upstream.server_path());
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;

    let registered = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Weather Desk", "url": upstream_url, "auth": {"type": "bearer", "token": upstream.server.admin_token}})),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    assert_eq!(
        registered.body["discovered"],
        json!({"tools": 2, "resources": 2, "prompts": 1})
    );
    assert_eq!(
        registered.body["protocol_version"], "2026-07-28",
        "the upstream answered server/discover"
    );
    assert_eq!(registered.body["auth_type"], "bearer");
    assert!(
        !registered
            .body
            .to_string()
            .contains(&upstream.server.admin_token),
        "credentials are never shown"
    );
    let gateway_id = registered.body["id"].as_str().unwrap().to_owned();

    let tools = gateway.admin(Method::GET, "/tools", None).await;
    assert_eq!(
        names(&tools.body["items"], "name"),
        ["weather-desk-echo", "weather-desk-get_weather"]
    );
    assert_eq!(tools.body["items"][0]["integration_type"], "MCP");

    // Modern client of the gateway → upstream.
    let client = McpClient::new(&gateway, "/mcp");
    let listed = client.modern("tools/list", json!({})).await;
    assert_eq!(
        names(&listed.body["result"]["tools"], "name"),
        ["weather-desk-echo", "weather-desk-get_weather"]
    );
    let call = client
        .modern(
            "tools/call",
            json!({"name": "weather-desk-get_weather", "arguments": {"city": "Rome"}}),
        )
        .await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.body);
    assert_eq!(
        call.body["result"]["structuredContent"]["city"], "Rome",
        "{}",
        call.body
    );
    assert_eq!(call.body["result"]["resultType"], "complete");
    let invalid = client
        .modern(
            "tools/call",
            json!({"name": "weather-desk-get_weather", "arguments": {"units": "kelvin"}}),
        )
        .await;
    assert_eq!(invalid.body["error"]["code"], -32602, "{}", invalid.body);
    let read = client
        .modern("resources/read", json!({"uri": "docs://guide"}))
        .await;
    assert_eq!(
        read.body["result"]["contents"][0]["text"], "Read the guide",
        "{}",
        read.body
    );
    let template = client
        .modern("resources/read", json!({"uri": "docs://sections/intro"}))
        .await;
    assert_eq!(
        template.body["result"]["contents"][0]["text"], "Section intro",
        "{}",
        template.body
    );
    let prompt = client
        .modern(
            "prompts/get",
            json!({"name": "weather-desk-summarise", "arguments": {"text": "t", "style": "dry"}}),
        )
        .await;
    assert_eq!(
        prompt.body["result"]["messages"][0]["content"]["text"], "Summarise t in dry style",
        "{}",
        prompt.body
    );
    let completion = client
        .modern(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "weather-desk-summarise"}, "argument": {"name": "style", "value": "fo"}}),
        )
        .await;
    assert_eq!(
        completion.body["result"]["completion"]["values"],
        json!(["formal"]),
        "{}",
        completion.body
    );

    // Legacy client of the gateway → modern upstream.
    let (session, _) = client.initialize(LEGACY).await;
    let legacy = client
        .legacy(
            &session,
            "tools/call",
            json!({"name": "weather-desk-echo", "arguments": {"message": "hi"}}),
        )
        .await;
    assert_eq!(
        legacy.body["result"]["structuredContent"]["received"]["message"], "hi",
        "{}",
        legacy.body
    );
    assert!(legacy.body["result"].get("resultType").is_none());

    // Refresh picks up a change upstream.
    let new_tool = upstream
        .server
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "plain", "url": format!("{}/text", upstream.fixture.base), "request_type": "GET"})),
        )
        .await;
    let server = upstream
        .server
        .admin(
            Method::GET,
            &format!("/servers/{}", upstream.server_id),
            None,
        )
        .await;
    let mut members: Vec<Value> = server.body["tool_ids"].as_array().unwrap().clone();
    members.push(new_tool.body["id"].clone());
    upstream
        .server
        .admin(
            Method::PUT,
            &format!("/servers/{}", upstream.server_id),
            Some(json!({"tool_ids": members})),
        )
        .await;
    let refreshed = gateway
        .admin(
            Method::POST,
            &format!("/gateways/{gateway_id}/refresh"),
            None,
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(refreshed.body["discovered"]["tools"], 3);
    let plain = client
        .modern("tools/call", json!({"name": "weather-desk-plain"}))
        .await;
    assert_eq!(
        plain.body["result"]["content"][0]["text"], "plain text answer",
        "{}",
        plain.body
    );

    // Deleting the gateway removes what it federated.
    let deleted = gateway
        .admin(Method::DELETE, &format!("/gateways/{gateway_id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let listed = client.modern("tools/list", json!({})).await;
    assert!(
        !listed.body.to_string().contains("weather-desk-"),
        "{}",
        listed.body
    );

    // The legacy SSE transport as an upstream (resource URIs are unique in a gateway, so the
    // same upstream is registered again only after the first registration is gone).
    let sse = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({
                "name": "Desk over SSE", "transport": "sse",
                "url": format!("{}/servers/{}/sse", upstream.server.base, upstream.server_id),
                "auth": {"type": "headers", "headers": {"Authorization": format!("Bearer {}", upstream.server.admin_token)}}
            })),
        )
        .await;
    assert_eq!(sse.status, StatusCode::CREATED, "{}", sse.body);
    assert_eq!(sse.body["protocol_version"], "2025-11-25");
    let via_sse = client
        .modern(
            "tools/call",
            json!({"name": "desk-over-sse-get_weather", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert_eq!(
        via_sse.body["result"]["structuredContent"]["city"], "Oslo",
        "{}",
        via_sse.body
    );

    gateway.stop().await;
    upstream.stop().await;
}

async fn registration_errors_store_nothing(backend: Backend) {
    let upstream = World::new(backend).await;
    let upstream_url = format!("{}{}", upstream.server.base, upstream.server_path());
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let bearer = json!({"type": "bearer", "token": upstream.server.admin_token});

    let unreachable = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Nowhere", "url": "http://127.0.0.1:9/mcp"})),
        )
        .await;
    assert_eq!(
        unreachable.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        unreachable.body
    );
    assert!(
        unreachable.body["message"]
            .as_str()
            .unwrap()
            .contains("could not connect")
    );
    let wrong_token = gateway
        .admin(Method::POST, "/gateways", Some(json!({"name": "Wrong", "url": upstream_url, "auth": {"type": "bearer", "token": "nope"}})))
        .await;
    assert_eq!(
        wrong_token.status,
        StatusCode::BAD_GATEWAY,
        "{}",
        wrong_token.body
    );

    // Without prefixes, a name clash with a local tool is a 409 and nothing is stored.
    gateway
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "echo", "url": "https://api.example.com/echo"})),
        )
        .await;
    let clash = gateway
        .admin(Method::POST, "/gateways", Some(json!({"name": "Plain", "url": upstream_url, "auth": bearer, "prefix_tool_names": false})))
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.body);
    assert!(clash.body["message"].as_str().unwrap().contains("echo"));
    let stored = gateway
        .admin(Method::GET, "/gateways?include_inactive=true", None)
        .await;
    assert_eq!(stored.body["items"], json!([]), "nothing half-stored");
    let tools = gateway.admin(Method::GET, "/tools", None).await;
    assert_eq!(tools.body["items"].as_array().unwrap().len(), 1);

    let invalid = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Bad auth", "url": upstream_url, "auth": {"type": "magic"}})),
        )
        .await;
    assert_eq!(
        invalid.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        invalid.body
    );

    // The SSRF guard: loopback needs SSRF_ALLOW_LOCALHOST.
    let guarded_db = TestDb::new(backend).await;
    let guarded = TestServer::start(&guarded_db, &[]).await;
    let refused = guarded
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Local", "url": upstream_url, "auth": bearer})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["field"], "url");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("SSRF_ALLOW_LOCALHOST")
    );
    guarded.stop().await;
    gateway.stop().await;
    upstream.stop().await;
}

both_backends!(federates_an_upstream, registration_errors_store_nothing);
