//! The MCP endpoints over HTTP, both protocol eras, on SQLite and PostgreSQL: every method,
//! every transport, the bad inputs, and the messages checked against the MCP JSON schemas.

use crate::common;

use common::mcp::{LEGACY, MODERN, McpClient, assert_schema, expect_error, read_events};
use common::world::World;
use common::{Backend, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn names(items: &Value, field: &str) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

async fn modern_era_serves_every_method(backend: Backend) {
    let world = World::new(backend).await;
    let client = McpClient::new(&world.server, &world.server_path());

    let discover = client.modern("server/discover", json!({})).await;
    assert_eq!(discover.status, StatusCode::OK, "{}", discover.body);
    assert_schema(MODERN, "DiscoverResultResponse", &discover.body);
    assert!(
        discover.body["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN))
    );
    assert!(
        discover.body["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(LEGACY))
    );
    assert_eq!(
        discover.body["result"]["instructions"],
        "Weather tools and docs"
    );
    assert_eq!(
        discover.body["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcpgate"
    );

    let tools = client.modern("tools/list", json!({})).await;
    assert_schema(MODERN, "ListToolsResultResponse", &tools.body);
    let result = &tools.body["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["cacheScope"], "private");
    assert!(result["ttlMs"].as_u64().is_some());
    assert_eq!(
        names(&result["tools"], "name"),
        ["get_weather", "echo"],
        "members only, in member order"
    );

    let call = client
        .modern(
            "tools/call",
            json!({"name": "get_weather", "arguments": {"city": "New York", "units": "imperial"}}),
        )
        .await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.body);
    assert_schema(MODERN, "CallToolResultResponse", &call.body);
    let result = &call.body["result"];
    assert_eq!(result["isError"], false);
    assert_eq!(
        result["structuredContent"],
        json!({"city": "New York", "temperature": 21, "units": "imperial"})
    );
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["city"], "New York");

    let echo = client
        .modern(
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "hi"}}),
        )
        .await;
    assert_eq!(
        echo.body["result"]["structuredContent"],
        json!({"received": {"message": "hi"}})
    );

    let invalid = client
        .modern(
            "tools/call",
            json!({"name": "get_weather", "arguments": {"units": "kelvin"}}),
        )
        .await;
    let message = expect_error(&invalid, StatusCode::OK, -32602);
    assert!(
        message.contains("city") && message.contains("kelvin"),
        "{message}"
    );
    assert_schema(MODERN, "JSONRPCErrorResponse", &invalid.body);
    let unknown = client
        .modern(
            "tools/call",
            json!({"name": "always_fails", "arguments": {}}),
        )
        .await;
    assert!(
        expect_error(&unknown, StatusCode::OK, -32602).contains("unknown tool"),
        "not a member here"
    );

    let resources = client.modern("resources/list", json!({})).await;
    assert_schema(MODERN, "ListResourcesResultResponse", &resources.body);
    assert_eq!(
        names(&resources.body["result"]["resources"], "uri"),
        ["docs://guide"]
    );
    let templates = client.modern("resources/templates/list", json!({})).await;
    assert_schema(
        MODERN,
        "ListResourceTemplatesResultResponse",
        &templates.body,
    );
    assert_eq!(
        names(
            &templates.body["result"]["resourceTemplates"],
            "uriTemplate"
        ),
        ["docs://sections/{section}"]
    );
    let read = client
        .modern("resources/read", json!({"uri": "docs://guide"}))
        .await;
    assert_schema(MODERN, "ReadResourceResultResponse", &read.body);
    assert_eq!(read.body["result"]["contents"][0]["text"], "Read the guide");
    assert_eq!(
        read.body["result"]["contents"][0]["mimeType"],
        "text/markdown"
    );
    let from_template = client
        .modern("resources/read", json!({"uri": "docs://sections/intro"}))
        .await;
    assert_eq!(
        from_template.body["result"]["contents"][0]["text"],
        "Section intro"
    );
    let missing = client
        .modern("resources/read", json!({"uri": "docs://nowhere"}))
        .await;
    expect_error(&missing, StatusCode::OK, -32602);
    assert_eq!(missing.body["error"]["data"]["uri"], "docs://nowhere");

    let prompts = client.modern("prompts/list", json!({})).await;
    assert_schema(MODERN, "ListPromptsResultResponse", &prompts.body);
    let got = client
        .modern(
            "prompts/get",
            json!({"name": "summarise", "arguments": {"text": "the news", "style": "formal"}}),
        )
        .await;
    assert_schema(MODERN, "GetPromptResultResponse", &got.body);
    assert_eq!(
        got.body["result"]["messages"][0]["content"]["text"],
        "Summarise the news in formal style"
    );
    let missing_argument = client
        .modern("prompts/get", json!({"name": "summarise", "arguments": {}}))
        .await;
    assert!(expect_error(&missing_argument, StatusCode::OK, -32602).contains("text"));

    let completion = client
        .modern("completion/complete", json!({"ref": {"type": "ref/prompt", "name": "summarise"}, "argument": {"name": "style", "value": "f"}}))
        .await;
    assert_schema(MODERN, "CompleteResultResponse", &completion.body);
    assert_eq!(
        completion.body["result"]["completion"]["values"],
        json!(["formal", "friendly", "fun"])
    );

    // Per-request log level: log notifications arrive on an SSE response before the result.
    let body = client.modern_body(
        "tools/call",
        json!({"name": "get_weather", "arguments": {"city": "Oslo"}, "_meta": {"io.modelcontextprotocol/logLevel": "info", "progressToken": "p1"}}),
    );
    let mut response = client.modern_stream(&body).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = read_events(&mut response, 4).await;
    let messages: Vec<Value> = events
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    let methods: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["method"].as_str())
        .collect();
    assert!(
        methods.contains(&"notifications/message") && methods.contains(&"notifications/progress"),
        "{messages:?}"
    );
    for message in &messages {
        match message["method"].as_str() {
            Some("notifications/message") => {
                assert_schema(MODERN, "LoggingMessageNotification", message)
            }
            Some("notifications/progress") => {
                assert_schema(MODERN, "ProgressNotification", message)
            }
            _ => assert_schema(MODERN, "CallToolResultResponse", message),
        }
    }
    assert_eq!(
        messages.last().unwrap()["id"],
        body["id"],
        "the response comes last"
    );

    // Without a log level, no log notifications: the answer is plain JSON.
    let quiet = client
        .modern(
            "tools/call",
            json!({"name": "get_weather", "arguments": {"city": "Oslo"}}),
        )
        .await;
    assert!(quiet.body["result"].is_object());
    world.stop().await;
}

async fn upstream_failures_are_tool_errors(backend: Backend) {
    let world = World::new(backend).await;
    let client = McpClient::new(&world.server, "/mcp");
    let failed = client
        .modern("tools/call", json!({"name": "always_fails"}))
        .await;
    assert_eq!(failed.status, StatusCode::OK);
    assert_schema(MODERN, "CallToolResultResponse", &failed.body);
    assert_eq!(failed.body["result"]["isError"], true);
    let text = failed.body["result"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("500") && text.contains("failed on purpose"),
        "{text}"
    );
    let plain = client
        .modern("tools/call", json!({"name": "plain_text"}))
        .await;
    assert_eq!(
        plain.body["result"]["content"][0]["text"],
        "plain text answer"
    );
    assert!(plain.body["result"].get("structuredContent").is_none());

    // An unreachable endpoint is a tool error naming the cause, not a protocol error.
    let dead = world
        .server
        .admin(Method::POST, "/tools", Some(json!({"name": "dead_end", "url": "http://127.0.0.1:9/nothing", "request_type": "GET"})))
        .await;
    assert_eq!(dead.status, StatusCode::CREATED);
    let unreachable = client
        .modern("tools/call", json!({"name": "dead_end"}))
        .await;
    assert_eq!(
        unreachable.body["result"]["isError"], true,
        "{}",
        unreachable.body
    );
    assert!(
        unreachable.body["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("could not reach")
    );
    world.stop().await;
}

async fn modern_era_rejects_bad_requests(backend: Backend) {
    let world = World::new(backend).await;
    let client = McpClient::new(&world.server, "/mcp");

    let body = client.modern_body("tools/call", json!({"name": "echo"}));
    let mismatch = client
        .post(
            body.clone(),
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_weather"),
            ],
        )
        .await;
    expect_error(&mismatch, StatusCode::BAD_REQUEST, -32020);
    assert_schema(MODERN, "JSONRPCErrorResponse", &mismatch.body);
    let encoded = client
        .post(
            body.clone(),
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?ZWNobw==?="),
            ],
        )
        .await;
    assert_eq!(
        encoded.status,
        StatusCode::OK,
        "a base64-encoded Mcp-Name is decoded: {}",
        encoded.body
    );
    let no_headers = client.post(body.clone(), &[]).await;
    expect_error(&no_headers, StatusCode::BAD_REQUEST, -32020);
    let wrong_method = client
        .post(
            body,
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/list"),
                ("mcp-name", "echo"),
            ],
        )
        .await;
    expect_error(&wrong_method, StatusCode::BAD_REQUEST, -32020);

    let mut no_capabilities = client.modern_body("tools/list", json!({}));
    no_capabilities["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let reply = client
        .post(
            no_capabilities,
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/list"),
            ],
        )
        .await;
    expect_error(&reply, StatusCode::BAD_REQUEST, -32602);

    let mut old = client.modern_body("tools/list", json!({}));
    old["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("1900-01-01");
    let reply = client
        .post(
            old,
            &[
                ("mcp-protocol-version", "1900-01-01"),
                ("mcp-method", "tools/list"),
            ],
        )
        .await;
    expect_error(&reply, StatusCode::BAD_REQUEST, -32022);
    assert_eq!(reply.body["error"]["data"]["requested"], "1900-01-01");
    assert!(
        reply.body["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!(MODERN))
    );
    assert_schema(MODERN, "UnsupportedProtocolVersionError", &reply.body);

    let unknown = client.modern("tools/teleport", json!({})).await;
    expect_error(&unknown, StatusCode::NOT_FOUND, -32601);
    // `ping` left the protocol in 2026-07-28, but the official clients still send it: answered.
    let ping = client.modern("ping", json!({})).await;
    assert_eq!(ping.status, StatusCode::OK, "{}", ping.body);
    assert_eq!(
        ping.body["result"]["resultType"], "complete",
        "{}",
        ping.body
    );
    let bad_cursor = client
        .modern("tools/list", json!({"cursor": "not-a-cursor"}))
        .await;
    expect_error(&bad_cursor, StatusCode::OK, -32602);
    let bad_level = client
        .modern(
            "tools/list",
            json!({"_meta": {"io.modelcontextprotocol/logLevel": "loud"}}),
        )
        .await;
    expect_error(&bad_level, StatusCode::OK, -32602);
    world.stop().await;
}

async fn pagination_walks_every_tool(backend: Backend) {
    let world = World::new(backend).await;
    let client = McpClient::new(&world.server, "/mcp");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = match &cursor {
            Some(cursor) => json!({"cursor": cursor}),
            None => json!({}),
        };
        let page = client.modern("tools/list", params).await;
        assert_schema(MODERN, "ListToolsResultResponse", &page.body);
        seen.extend(names(&page.body["result"]["tools"], "name"));
        match page.body["result"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["always_fails", "echo", "get_weather", "plain_text", "slow"],
        "all, once, by name"
    );

    // A virtual server lists its members in its own order, page by page (3 per page here).
    let listed = world
        .server
        .admin(Method::GET, "/tools?limit=50", None)
        .await;
    let mut ids: Vec<(String, Value)> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| {
            (
                tool["name"].as_str().unwrap().to_owned(),
                tool["id"].clone(),
            )
        })
        .collect();
    ids.reverse();
    let order: Vec<String> = ids.iter().map(|(name, _)| name.clone()).collect();
    let all = world
        .server
        .admin(
            Method::POST,
            "/servers",
            Some(json!({"name": "Everything, backwards",
                        "tool_ids": ids.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>()})),
        )
        .await;
    assert_eq!(all.status, StatusCode::CREATED, "{}", all.body);
    let client = McpClient::new(
        &world.server,
        &format!("/servers/{}/mcp", all.body["id"].as_str().unwrap()),
    );
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
        let page = client.modern("tools/list", params).await;
        seen.extend(names(&page.body["result"]["tools"], "name"));
        match page.body["result"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, order, "all members, once, in the server's order");
    world.stop().await;
}

async fn legacy_era_sessions(backend: Backend) {
    let world = World::new(backend).await;
    let client = McpClient::new(&world.server, &world.server_path());

    let (session, init) = client.initialize(LEGACY).await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.body);
    assert!(!session.is_empty(), "Mcp-Session-Id is set");
    assert_schema(LEGACY, "JSONRPCResultResponse", &init.body);
    assert_schema(LEGACY, "InitializeResult", &init.body["result"]);
    assert_eq!(init.body["result"]["protocolVersion"], LEGACY);
    assert_eq!(init.body["result"]["serverInfo"]["title"], "Weather desk");
    assert!(
        init.body["result"].get("resultType").is_none(),
        "no modern fields in the legacy era"
    );

    let (older, older_init) = client.initialize("2025-03-26").await;
    assert_eq!(older_init.body["result"]["protocolVersion"], "2025-03-26");
    let (_, future) = client.initialize("2099-01-01").await;
    assert_eq!(
        future.body["result"]["protocolVersion"], LEGACY,
        "an unknown version gets the newest legacy one"
    );

    let initialized = client
        .post(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            &[("mcp-session-id", &session)],
        )
        .await;
    assert_eq!(initialized.status, StatusCode::ACCEPTED);

    for (method, params, definition) in [
        ("ping", json!({}), "EmptyResult"),
        ("tools/list", json!({}), "ListToolsResult"),
        ("resources/list", json!({}), "ListResourcesResult"),
        (
            "resources/templates/list",
            json!({}),
            "ListResourceTemplatesResult",
        ),
        (
            "resources/read",
            json!({"uri": "docs://guide"}),
            "ReadResourceResult",
        ),
        ("prompts/list", json!({}), "ListPromptsResult"),
        (
            "prompts/get",
            json!({"name": "summarise", "arguments": {"text": "t"}}),
            "GetPromptResult",
        ),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "summarise"}, "argument": {"name": "style", "value": "fr"}}),
            "CompleteResult",
        ),
        ("logging/setLevel", json!({"level": "debug"}), "EmptyResult"),
        (
            "tools/call",
            json!({"name": "get_weather", "arguments": {"city": "Lima"}}),
            "CallToolResult",
        ),
        (
            "resources/subscribe",
            json!({"uri": "docs://guide"}),
            "EmptyResult",
        ),
        (
            "resources/unsubscribe",
            json!({"uri": "docs://guide"}),
            "EmptyResult",
        ),
    ] {
        let reply = client.legacy(&session, method, params).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.body);
        assert_schema(LEGACY, "JSONRPCResultResponse", &reply.body);
        assert_schema(LEGACY, definition, &reply.body["result"]);
        assert!(reply.body["result"].get("resultType").is_none(), "{method}");
    }
    // After logging/setLevel(debug), a tools/call answers as a stream: log, then the result.
    let call = client
        .legacy(
            &session,
            "tools/call",
            json!({"name": "get_weather", "arguments": {"city": "Lima"}}),
        )
        .await;
    assert_eq!(call.headers["content-type"], "text/event-stream");
    assert_eq!(call.body["result"]["structuredContent"]["city"], "Lima");
    assert_eq!(call.events[0]["method"], "notifications/message");
    assert_schema(LEGACY, "LoggingMessageNotification", &call.events[0]);

    let missing = client
        .legacy(&session, "resources/read", json!({"uri": "docs://nowhere"}))
        .await;
    expect_error(&missing, StatusCode::OK, -32002);
    let unknown_method = client.legacy(&session, "tools/teleport", json!({})).await;
    expect_error(&unknown_method, StatusCode::OK, -32601);
    let unknown_tool = client
        .legacy(&session, "tools/call", json!({"name": "nope"}))
        .await;
    expect_error(&unknown_tool, StatusCode::OK, -32602);

    let without_session = client
        .post(
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
            &[],
        )
        .await;
    expect_error(&without_session, StatusCode::BAD_REQUEST, -32600);
    let unknown_session = client
        .legacy("0123456789abcdef", "tools/list", json!({}))
        .await;
    expect_error(&unknown_session, StatusCode::NOT_FOUND, -32600);

    // Sessions belong to the principal that made them and to their endpoint.
    let mut stranger = McpClient::new(&world.server, &world.server_path());
    stranger.token = common::create_user(&world.server, "stranger@example.com", "developer").await;
    let hijack = stranger.legacy(&session, "tools/list", json!({})).await;
    assert_eq!(hijack.status, StatusCode::NOT_FOUND);
    let elsewhere = McpClient::new(&world.server, "/mcp");
    assert_eq!(
        elsewhere
            .legacy(&session, "tools/list", json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let deleted = client
        .verb(Method::DELETE, &[("mcp-session-id", &session)])
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let after = client.legacy(&session, "tools/list", json!({})).await;
    assert_eq!(
        after.status,
        StatusCode::NOT_FOUND,
        "a deleted session is gone"
    );
    let still = client.legacy(&older, "ping", json!({})).await;
    assert_eq!(still.status, StatusCode::OK, "other sessions go on");

    let get_without = client.verb(Method::GET, &[]).await;
    assert_eq!(get_without.status(), StatusCode::METHOD_NOT_ALLOWED);
    let delete_without = client.verb(Method::DELETE, &[]).await;
    assert_eq!(delete_without.status(), StatusCode::METHOD_NOT_ALLOWED);
    world.stop().await;
}

async fn list_changes_reach_both_eras(backend: Backend) {
    let world = World::new(backend).await;
    let client = McpClient::new(&world.server, "/mcp");

    // Modern: subscriptions/listen.
    let body = client.modern_body(
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["docs://guide"]}}),
    );
    let mut listen = client.modern_stream(&body).await;
    assert_eq!(listen.status(), StatusCode::OK);
    let ack: Value = serde_json::from_str(&read_events(&mut listen, 1).await[0].1).unwrap();
    assert_schema(MODERN, "SubscriptionsAcknowledgedNotification", &ack);
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        body["id"]
    );
    assert_eq!(ack["params"]["notifications"]["toolsListChanged"], true);

    // Legacy: the session's GET stream.
    let (session, _) = client.initialize(LEGACY).await;
    let mut stream = client.session_stream(&session).await;
    assert_eq!(stream.status(), StatusCode::OK);
    client
        .legacy(
            &session,
            "resources/subscribe",
            json!({"uri": "docs://guide"}),
        )
        .await;

    let created = world
        .server
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "new_tool", "url": format!("{}/text", world.fixture.base)})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let changed: Value = serde_json::from_str(&read_events(&mut listen, 1).await[0].1).unwrap();
    assert_schema(MODERN, "ToolListChangedNotification", &changed);
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        body["id"]
    );
    let legacy_changed: Value =
        serde_json::from_str(&read_events(&mut stream, 1).await[0].1).unwrap();
    assert_schema(LEGACY, "ToolListChangedNotification", &legacy_changed);

    // A resource update reaches both subscribers.
    let guide_id = world
        .server
        .admin(Method::GET, "/resources", None)
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["uri"] == "docs://guide")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .server
        .admin(
            Method::PUT,
            &format!("/resources/{guide_id}"),
            Some(json!({"content": "New guide"})),
        )
        .await;
    let updated: Value = serde_json::from_str(&read_events(&mut listen, 1).await[0].1).unwrap();
    assert_eq!(
        updated["method"], "notifications/resources/updated",
        "{updated}"
    );
    assert_schema(MODERN, "ResourceUpdatedNotification", &updated);
    // The legacy stream hears every list change (the resource's size changed too) and the
    // update of the subscribed resource.
    let legacy_events: Vec<Value> = read_events(&mut stream, 2)
        .await
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    let legacy_updated = legacy_events
        .iter()
        .find(|event| event["method"] == "notifications/resources/updated")
        .unwrap_or_else(|| panic!("no resources/updated in {legacy_events:?}"));
    assert_eq!(legacy_updated["params"]["uri"], "docs://guide");
    assert_schema(LEGACY, "ResourceUpdatedNotification", legacy_updated);

    // A stopping server ends the subscription gracefully with its completion result.
    let stopping = actix_rt::spawn(world.stop());
    let closing: Value = serde_json::from_str(&read_events(&mut listen, 1).await[0].1).unwrap();
    assert_eq!(closing["id"], body["id"]);
    assert_eq!(closing["result"]["resultType"], "complete");
    assert_schema(MODERN, "SubscriptionsListenResultResponse", &closing);
    stopping.await.unwrap();
}

async fn legacy_sse_transport(backend: Backend) {
    let world = World::new(backend).await;
    let base = &world.server.base;
    let mut stream = world
        .server
        .client
        .get(format!("{base}/servers/{}/sse", world.server_id))
        .bearer_auth(&world.server.admin_token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let endpoint = read_events(&mut stream, 1).await.remove(0);
    assert_eq!(endpoint.0, "endpoint");
    assert!(
        endpoint
            .1
            .starts_with(&format!("/servers/{}/message?session_id=", world.server_id))
    );
    let post = |body: Value| {
        world
            .server
            .client
            .post(format!("{base}{}", endpoint.1))
            .bearer_auth(&world.server.admin_token)
            .json(&body)
            .send()
    };
    let accepted = post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let init: Value = serde_json::from_str(&read_events(&mut stream, 1).await[0].1).unwrap();
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await
        .unwrap();
    let tools: Value = serde_json::from_str(&read_events(&mut stream, 1).await[0].1).unwrap();
    assert_eq!(
        names(&tools["result"]["tools"], "name"),
        ["get_weather", "echo"]
    );
    assert_schema(LEGACY, "ListToolsResult", &tools["result"]);
    post(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "via sse"}}}))
        .await
        .unwrap();
    let call: Value = serde_json::from_str(&read_events(&mut stream, 1).await[0].1).unwrap();
    assert_eq!(
        call["result"]["structuredContent"]["received"]["message"],
        "via sse"
    );

    let malformed = world
        .server
        .client
        .post(format!("{base}{}", endpoint.1))
        .bearer_auth(&world.server.admin_token)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let unknown = world
        .server
        .client
        .post(format!(
            "{base}/servers/{}/message?session_id=ffff",
            world.server_id
        ))
        .bearer_auth(&world.server.admin_token)
        .json(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // Closing the stream ends the session: its message URL stops working.
    drop(stream);
    let url = format!("{base}{}", endpoint.1);
    eventually(
        "the closed stream's session is gone",
        std::time::Duration::from_secs(10),
        || {
            let request = world
                .server
                .client
                .post(&url)
                .bearer_auth(&world.server.admin_token)
                .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}))
                .send();
            async move { (request.await.unwrap().status() == StatusCode::NOT_FOUND).then_some(()) }
        },
    )
    .await;
    world.stop().await;
}

async fn plain_rpc(backend: Backend) {
    let world = World::new(backend).await;
    let client = McpClient::new(&world.server, "/rpc");
    let plain = client
        .post(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[],
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.body);
    assert_schema(LEGACY, "ListToolsResult", &plain.body["result"]);
    assert_eq!(
        plain.body["result"]["tools"].as_array().unwrap().len(),
        3,
        "page size 3"
    );
    let call = client
        .post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "rpc"}}}), &[])
        .await;
    assert_eq!(
        call.body["result"]["structuredContent"]["received"]["message"],
        "rpc"
    );
    let modern = client
        .post(client.modern_body("tools/list", json!({})), &[])
        .await;
    assert_schema(MODERN, "ListToolsResultResponse", &modern.body);
    let notification = client
        .post(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            &[],
        )
        .await;
    assert_eq!(notification.status, StatusCode::ACCEPTED);
    let init = client
        .post(json!({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}), &[])
        .await;
    assert_eq!(init.body["result"]["protocolVersion"], LEGACY);
    assert!(
        init.headers.get("mcp-session-id").is_none(),
        "/rpc keeps no session"
    );
    world.stop().await;
}

async fn transport_errors(backend: Backend) {
    let world = World::new(backend).await;
    let server = &world.server;
    let raw = |path: &str, body: &'static str| {
        server
            .client
            .post(format!("{}{path}", server.base))
            .bearer_auth(&server.admin_token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    for path in ["/mcp", "/rpc"] {
        let reply = common::reply(raw(path, "{not json").await.unwrap()).await;
        expect_error(&reply, StatusCode::BAD_REQUEST, -32700);
        assert!(reply.body.get("id").is_none());
        let batch = common::reply(
            raw(path, r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#)
                .await
                .unwrap(),
        )
        .await;
        expect_error(&batch, StatusCode::BAD_REQUEST, -32600);
        let shape = common::reply(raw(path, r#"{"jsonrpc":"2.0","id":1}"#).await.unwrap()).await;
        expect_error(&shape, StatusCode::BAD_REQUEST, -32600);
        let version = common::reply(
            raw(path, r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#)
                .await
                .unwrap(),
        )
        .await;
        expect_error(&version, StatusCode::BAD_REQUEST, -32600);
        let null_id = common::reply(
            raw(path, r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#)
                .await
                .unwrap(),
        )
        .await;
        expect_error(&null_id, StatusCode::BAD_REQUEST, -32600);
    }
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let oversized = common::reply(
        server
            .client
            .post(format!("{}/mcp", server.base))
            .bearer_auth(&server.admin_token)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect_error(&oversized, StatusCode::PAYLOAD_TOO_LARGE, -32600);

    let client = McpClient::new(server, "/mcp");
    let evil_origin = client
        .post(
            client.modern_body("tools/list", json!({})),
            &[
                ("origin", "https://evil.example"),
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/list"),
            ],
        )
        .await;
    expect_error(&evil_origin, StatusCode::FORBIDDEN, -32600);
    let local_origin = client
        .post(
            client.modern_body("tools/list", json!({})),
            &[
                ("origin", "http://localhost:3000"),
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/list"),
            ],
        )
        .await;
    assert_eq!(local_origin.status, StatusCode::OK);
    let rebound = client
        .post(
            client.modern_body("tools/list", json!({})),
            &[
                ("host", "rebind.evil.example"),
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/list"),
            ],
        )
        .await;
    expect_error(&rebound, StatusCode::FORBIDDEN, -32600);
    // The rebinding check comes before authentication: a rebound page without a token learns
    // nothing more than one with a token, on every MCP endpoint.
    for path in ["/mcp", "/rpc", "/sse", "/message"] {
        let method = if path == "/sse" {
            Method::GET
        } else {
            Method::POST
        };
        let anonymous_rebound = server
            .client
            .request(method, format!("{}{path}", server.base))
            .header("host", "rebind.evil.example")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous_rebound.status(), StatusCode::FORBIDDEN, "{path}");
    }

    let mut anonymous = McpClient::new(server, "/mcp");
    anonymous.token = "garbage".into();
    let unauthorized = anonymous.modern("tools/list", json!({})).await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    let missing_server = McpClient::new(server, "/servers/no-such-server/mcp")
        .modern("tools/list", json!({}))
        .await;
    assert_eq!(missing_server.status, StatusCode::NOT_FOUND);
    // A disabled server is not found either.
    server
        .admin(
            Method::POST,
            &format!("/servers/{}/toggle?activate=false", world.server_id),
            None,
        )
        .await;
    let disabled = McpClient::new(server, &world.server_path())
        .modern("tools/list", json!({}))
        .await;
    assert_eq!(disabled.status, StatusCode::NOT_FOUND);
    world.stop().await;
}

async fn disconnects_and_cancellation_stop_upstream_calls(backend: Backend) {
    let world = World::new(backend).await;
    let client = McpClient::new(&world.server, "/mcp");
    let fixture = &world.fixture;
    let no_slow_calls = || async { (fixture.slow_calls() == 0).then_some(()) };
    let wait = std::time::Duration::from_secs(15);

    // 1. A streamed (SSE) call whose client goes away mid-stream.
    let body = client.modern_body(
        "tools/call",
        json!({"name": "slow", "_meta": {"progressToken": 7}}),
    );
    let mut response = client.modern_stream(&body).await;
    let first: Value = serde_json::from_str(&read_events(&mut response, 1).await[0].1).unwrap();
    assert_eq!(first["method"], "notifications/progress");
    eventually("the slow call reaches the fixture", wait, || async {
        (fixture.slow_calls() == 1).then_some(())
    })
    .await;
    drop(response);
    eventually(
        "closing the stream cancels the upstream call",
        wait,
        no_slow_calls,
    )
    .await;

    // 2. Legacy notifications/cancelled.
    let (session, _) = client.initialize(LEGACY).await;
    let call = {
        let server = &world.server;
        let session = session.clone();
        let token = client.token.clone();
        let url = format!("{}/mcp", server.base);
        let http = server.client.clone();
        actix_rt::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("mcp-session-id", session)
                .header("accept", "application/json")
                .json(&json!({"jsonrpc": "2.0", "id": "slow-1", "method": "tools/call", "params": {"name": "slow"}}))
                .send()
                .await
                .map(|response| response.status())
        })
    };
    eventually("the legacy slow call reaches the fixture", wait, || async {
        (fixture.slow_calls() == 1).then_some(())
    })
    .await;
    let cancelled = client
        .post(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow-1", "reason": "user"}}),
            &[("mcp-session-id", &session)],
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED);
    eventually(
        "notifications/cancelled stops the upstream call",
        wait,
        no_slow_calls,
    )
    .await;
    assert_eq!(
        call.await.unwrap().unwrap(),
        StatusCode::NO_CONTENT,
        "no response is due for a cancelled request"
    );
    world.stop().await;
}

async fn sessions_expire_and_are_bounded(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let server = common::TestServer::start(
        &db,
        &[
            ("MCP_SESSION_TTL_SECONDS", "0.3"),
            ("MCP_MAX_SESSIONS", "2"),
        ],
    )
    .await;
    let client = McpClient::new(&server, "/mcp");
    let (first, _) = client.initialize(LEGACY).await;
    assert_eq!(
        client.legacy(&first, "ping", json!({})).await.status,
        StatusCode::OK
    );
    // Watch the live count: using the session would keep it alive.
    eventually(
        "an idle session expires",
        std::time::Duration::from_secs(10),
        || async {
            let stats = server.admin(Method::GET, "/admin/mcp-stats", None).await;
            (stats.body["sessions"] == 0).then_some(())
        },
    )
    .await;
    // Its view went; the id opens it again (any replica could).
    assert_eq!(
        client.legacy(&first, "ping", json!({})).await.status,
        StatusCode::OK
    );
    server.stop().await;

    // Past its age it is gone for good.
    let aged = common::TestServer::start(&db, &[("MCP_SESSION_MAX_AGE_SECONDS", "1")]).await;
    let client = McpClient::new(&aged, "/mcp");
    let (old, _) = client.initialize(LEGACY).await;
    eventually(
        "a session past its age ends",
        std::time::Duration::from_secs(10),
        || async {
            let status = client.legacy(&old, "ping", json!({})).await.status;
            (status == StatusCode::NOT_FOUND).then_some(())
        },
    )
    .await;
    aged.stop().await;

    let long = common::TestServer::start(&db, &[("MCP_MAX_SESSIONS", "2")]).await;
    let client = McpClient::new(&long, "/mcp");
    let (a, _) = client.initialize(LEGACY).await;
    let (b, _) = client.initialize(LEGACY).await;
    let (_, refused) = client.initialize(LEGACY).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert!(refused.headers.contains_key("retry-after"));
    expect_error(&refused, StatusCode::SERVICE_UNAVAILABLE, -32603);
    client.verb(Method::DELETE, &[("mcp-session-id", &a)]).await;
    let (c, again) = client.initialize(LEGACY).await;
    assert_eq!(again.status, StatusCode::OK, "a freed slot can be used");
    assert_ne!(c, b);
    long.stop().await;
}

both_backends!(
    disconnects_and_cancellation_stop_upstream_calls,
    sessions_expire_and_are_bounded,
    modern_era_serves_every_method,
    upstream_failures_are_tool_errors,
    modern_era_rejects_bad_requests,
    pagination_walks_every_tool,
    legacy_era_sessions,
    list_changes_reach_both_eras,
    legacy_sse_transport,
    plain_rpc,
    transport_errors,
);
