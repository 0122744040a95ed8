//! Upstreams are untrusted input: a hostile upstream (`tests/interop/hostile-server.mjs`, one
//! misbehaviour per mode) can neither break the gateway nor poison its catalog. Oversized
//! discoveries are refused naming the bound, with nothing stored and memory bounded; invalid
//! names and schemas are skipped and reported (strict mode refuses); endless pagination,
//! oversized, deeply nested and never-ending answers become clean errors; a notification flood
//! is paced and starves no other upstream.

use crate::common;

use common::mcp::McpClient;
use common::sdk::start_hostile;
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn register(gateway: &TestServer, name: &str, url: &str) -> common::Reply {
    gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": name, "url": url})),
        )
        .await
}

/// The gateways and the tools MCP clients see: what a refused registration must leave as it was.
async fn stored(gateway: &TestServer) -> (Value, Value) {
    let gateways = gateway.admin(Method::GET, "/gateways", None).await;
    let tools = McpClient::new(gateway, "/mcp")
        .modern("tools/list", json!({}))
        .await;
    (
        gateways.expect(StatusCode::OK).clone(),
        tools.expect(StatusCode::OK)["result"]["tools"].clone(),
    )
}

/// This process's resident memory, in bytes (the gateway under test runs in it).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmRSS")
        * 1024
}

/// A registration or refresh refused with 502, the message naming `bound`.
fn assert_refused(refused: &common::Reply, bound: &str) {
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY, "{}", refused.body);
    assert!(
        refused.message().contains(bound),
        "names {bound}: {}",
        refused.body
    );
}

fn names(tools: &Value) -> Vec<String> {
    let mut names: Vec<String> = tools
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn oversized_discoveries_are_refused_and_store_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[]).await;
    let kept = start_hostile("bad-items", &[]);
    register(&gateway, "Kept", &kept.url)
        .await
        .expect(StatusCode::CREATED);
    let before = stored(&gateway).await;

    // 200 000 tools in one 16 MB page: refused (past UPSTREAM_MAX_PAGE_BYTES), never a 500,
    // and the page costs no more than a bounded amount of memory.
    let huge = start_hostile("many-tools", &[]);
    let rss_before = rss();
    let refused = register(&gateway, "Huge", &huge.url).await;
    let grown = rss().saturating_sub(rss_before);
    eprintln!(
        "refusing 200 000 tools (16 MB) grew RSS by {} MiB",
        grown / (1024 * 1024)
    );
    assert_refused(&refused, "UPSTREAM_MAX_PAGE_BYTES");
    assert!(
        refused.message().contains(&huge.url),
        "names the upstream: {}",
        refused.body
    );
    assert!(
        grown < 150 * 1024 * 1024,
        "a refused 16 MB discovery grew the gateway's memory by {} MiB (bound: 150 MiB)",
        grown / (1024 * 1024)
    );
    // Past UPSTREAM_MAX_ITEMS, and past the page limit: refused with the same care.
    let endless = start_hostile("endless-pages", &[]);
    let refused = register(&gateway, "Endless", &endless.url).await;
    assert_refused(&refused, "more than 1000 pages");
    assert_eq!(stored(&gateway).await, before, "nothing stored changed");

    // Within every bound, a large discovery is stored in chunks sized for the backend.
    let many = start_hostile("many-tools", &[("COUNT", "3000")]);
    let registered = register(&gateway, "Many", &many.url).await;
    assert_eq!(
        registered.expect(StatusCode::CREATED)["discovered"]["tools"],
        3001
    );
    gateway.stop().await;

    // UPSTREAM_MAX_ITEMS, set lower.
    let gateway = TestServer::start(&db, &[("UPSTREAM_MAX_ITEMS", "100")]).await;
    let before = stored(&gateway).await;
    let over = start_hostile("many-tools", &[("COUNT", "150")]);
    let refused = register(&gateway, "Over", &over.url).await;
    assert_refused(&refused, "UPSTREAM_MAX_ITEMS");
    assert_eq!(stored(&gateway).await, before, "nothing stored changed");
    gateway.stop().await;

    // At refresh, a bound broken keeps what was served and marks the upstream degraded.
    let gateway = TestServer::start(&db, &[("UPSTREAM_MAX_ITEMS", "3")]).await;
    let id = before.0["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["name"] == "Kept"))
        .and_then(|item| item["id"].as_str())
        .expect("Kept is registered")
        .to_owned();
    let refused = gateway
        .admin(Method::POST, &format!("/gateways/{id}/refresh"), None)
        .await;
    assert_refused(&refused, "UPSTREAM_MAX_ITEMS");
    let record = gateway
        .admin(Method::GET, &format!("/gateways/{id}"), None)
        .await;
    assert!(
        record.expect(StatusCode::OK)["degraded_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("UPSTREAM_MAX_ITEMS")),
        "{}",
        record.body
    );
    echo_works(&McpClient::new(&gateway, "/mcp"), "kept-echo").await;
    gateway.stop().await;
}

async fn invalid_items_are_skipped_and_reported(backend: Backend) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[]).await;
    let upstream = start_hostile("bad-items", &[]);
    let registered = register(&gateway, "Sloppy", &upstream.url).await;
    let registered = registered.expect(StatusCode::CREATED).clone();
    assert_eq!(
        registered["discovered"],
        json!({"tools": 4, "resources": 1, "prompts": 1})
    );
    let skipped: Vec<(String, String, String)> = registered["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|item| {
            (
                item["kind"].as_str().unwrap().to_owned(),
                item["name"].as_str().unwrap().chars().take(20).collect(),
                item["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let reason = |name: &str| {
        skipped
            .iter()
            .find(|(_, skipped, _)| skipped == name)
            .map(|(_, _, reason)| reason.as_str())
            .unwrap_or_else(|| panic!("{name} is reported skipped: {skipped:?}"))
    };
    assert!(reason(&"x".repeat(20)).contains("10013 characters"));
    assert!(reason("zero\u{200B}width").contains("U+200B"));
    assert!(reason("p\u{0430}ypal").contains("scripts"));
    assert!(reason("nonsense_schema").contains("not valid JSON Schema"));
    assert!(reason("string_root").contains("root"));
    assert!(reason("dangling_ref").contains("compile"));
    assert!(reason("long_description").contains("UPSTREAM_MAX_DESCRIPTION_CHARS"));
    // 400 levels of objects: deeper than any parser of the gateway (or a client) goes.
    assert!(reason("deep_schema").contains("recursion limit"));
    assert!(reason("bad prompt!").contains("' '"));
    assert_eq!(skipped.len(), 9, "{skipped:?}");
    // The gateway's record says the same; clients see only what passed.
    let id = registered["id"].as_str().unwrap();
    let record = gateway
        .admin(Method::GET, &format!("/gateways/{id}"), None)
        .await;
    assert_eq!(
        record.expect(StatusCode::OK)["skipped"],
        registered["skipped"]
    );
    let (_, tools) = stored(&gateway).await;
    assert_eq!(
        names(&tools),
        [
            "sloppy-draft7_tool",
            "sloppy-echo",
            "sloppy-good_tool",
            "sloppy-no_schema"
        ]
    );
    // The console shows the report.
    let page = crate::console::admin_page(&gateway, "/admin/gateways").await;
    assert!(
        page.contains("9 discovered item(s) skipped")
            && page.contains("UPSTREAM_MAX_DESCRIPTION_CHARS"),
        "{page}"
    );
    gateway.stop().await;

    // Strict mode: any failure refuses the whole registration.
    let gateway = TestServer::start(&db, &[("UPSTREAM_DISCOVERY_STRICT", "true")]).await;
    let before = stored(&gateway).await;
    let refused = register(&gateway, "Strict", &upstream.url).await;
    assert_refused(&refused, "UPSTREAM_DISCOVERY_STRICT");
    assert_refused(&refused, "9 item(s)");
    assert_eq!(stored(&gateway).await, before, "nothing stored changed");
    gateway.stop().await;
}

/// `tools/call` of `tool` through the gateway (2026-07-28), with `meta` added to `_meta`.
async fn call(client: &McpClient<'_>, tool: &str, meta: Value) -> common::Reply {
    let mut body = client.modern_body("tools/call", json!({"name": tool, "arguments": {}}));
    for (key, value) in meta.as_object().cloned().unwrap_or_default() {
        body["params"]["_meta"][key] = value;
    }
    client.send_modern(body).await
}

/// A `tools/call` answered with a tool error whose text says `why`.
fn assert_tool_error(reply: &common::Reply, why: &str) {
    let result = &reply.expect(StatusCode::OK)["result"];
    assert_eq!(result["isError"], true, "{result}");
    assert!(
        result["content"][0]["text"]
            .as_str()
            .is_some_and(|text| text.contains(why)),
        "{why}: {result}"
    );
}

async fn echo_works(client: &McpClient<'_>, tool: &str) {
    let mut body = client.modern_body(
        "tools/call",
        json!({"name": tool, "arguments": {"text": "still here"}}),
    );
    body["id"] = json!(9);
    let reply = client.send_modern(body).await;
    assert_eq!(
        reply.expect(StatusCode::OK)["result"]["content"][0]["text"],
        "still here",
        "{}",
        reply.body
    );
}

async fn oversized_deep_and_endless_answers_are_clean_errors(backend: Backend) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("TOOL_TIMEOUT", "2")]).await;
    let huge = start_hostile("huge", &[]);
    let deep = start_hostile("deep", &[]);
    let slow = start_hostile("slow", &[]);
    for (name, upstream) in [("Huge", &huge), ("Deep", &deep), ("Slow", &slow)] {
        register(&gateway, name, &upstream.url)
            .await
            .expect(StatusCode::CREATED);
    }
    let client = McpClient::new(&gateway, "/mcp");
    // A 40 MB result, by each method that forwards: refused past the message bound.
    let result = call(&client, "huge-huge_result", json!({})).await;
    assert_tool_error(&result, "larger than 16 MiB");
    for (method, params) in [
        ("resources/read", json!({"uri": "test://huge"})),
        ("prompts/get", json!({"name": "huge-huge_prompt"})),
    ] {
        let reply = client.modern(method, params).await;
        assert!(
            reply.status.is_success() || reply.status.is_client_error(),
            "{method}: {}",
            reply.status
        );
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("larger than 16 MiB")),
            "{method}: {}",
            reply.body
        );
    }
    echo_works(&client, "huge-echo").await;
    // A result nested 100 000 levels deep: an error, the gateway unaffected.
    let result = call(&client, "deep-deep_result", json!({})).await;
    assert_tool_error(&result, "nests more than 128 levels deep");
    echo_works(&client, "deep-echo").await;
    // An answer stream that never sends an event: TOOL_TIMEOUT ends it.
    let result = call(&client, "slow-slow_tool", json!({})).await;
    assert_tool_error(&result, "no answer within 2 s");
    echo_works(&client, "slow-echo").await;
    gateway.stop().await;
}

async fn a_notification_flood_is_paced_and_starves_no_one(backend: Backend) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[]).await;
    let flood = start_hostile("flood", &[]);
    let calm = start_hostile("deep", &[]);
    register(&gateway, "Flood", &flood.url)
        .await
        .expect(StatusCode::CREATED);
    register(&gateway, "Calm", &calm.url)
        .await
        .expect(StatusCode::CREATED);
    let client = McpClient::new(&gateway, "/mcp");
    let flooding = call(
        &client,
        "flood-flood_tool",
        json!({"io.modelcontextprotocol/logLevel": "info"}),
    );
    // Another upstream's calls go on being answered while the flood runs (their latency is
    // printed, for the record, not asserted).
    let calm_calls = async {
        let mut took = Vec::new();
        for _ in 0..20 {
            let started = std::time::Instant::now();
            echo_works(&client, "calm-echo").await;
            took.push(started.elapsed());
        }
        took
    };
    let (flooded, mut took) = tokio::join!(flooding, calm_calls);
    took.sort();
    eprintln!(
        "another upstream's calls during the flood: median {:?}, slowest {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert_eq!(
        flooded.expect(StatusCode::OK)["result"]["content"][0]["text"],
        "flooded"
    );
    let relayed = flooded
        .events
        .iter()
        .filter(|event| event["method"] == "notifications/message")
        .count();
    eprintln!("of 100 000 log messages, {relayed} were relayed");
    assert!(
        relayed > 0 && relayed < 20_000,
        "100 000 log messages are paced, not all relayed: {relayed} were"
    );
    gateway.stop().await;
}

both_backends!(
    oversized_discoveries_are_refused_and_store_nothing,
    invalid_items_are_skipped_and_reported,
    oversized_deep_and_endless_answers_are_clean_errors,
    a_notification_flood_is_paced_and_starves_no_one,
);
