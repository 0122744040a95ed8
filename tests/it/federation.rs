//! Federation: one gateway registers another (a real MCP server on loopback) as an upstream,
//! over Streamable HTTP and over the legacy SSE transport, and forwards calls to it.

use crate::common;

use common::mcp::{LEGACY, McpClient};
use common::world::World;
use common::{Backend, TestDb, TestServer, eventually};
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
    // What did not change upstream is not written again: only the new tool is.
    let stamps = "SELECT original_name || ' ' || CAST(updated_at AS TEXT) AS value FROM tools \
                  WHERE gateway_id IS NOT NULL ORDER BY original_name";
    let before = common::sql_texts(&db, stamps).await;
    assert_eq!(before.len(), 2, "{before:?}");
    let refreshed = gateway
        .admin(
            Method::POST,
            &format!("/gateways/{gateway_id}/refresh"),
            None,
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(refreshed.body["discovered"]["tools"], 3);
    let after = common::sql_texts(&db, stamps).await;
    assert_eq!(after.len(), 3, "{after:?}");
    for stamp in &before {
        assert!(after.contains(stamp), "{stamp} unchanged in {after:?}");
    }
    let plain = client
        .modern("tools/call", json!({"name": "weather-desk-plain"}))
        .await;
    assert_eq!(
        plain.body["result"]["content"][0]["text"], "plain text answer",
        "{}",
        plain.body
    );

    // Disabling the gateway takes what it federated out of the lists; enabling brings it back.
    for (activate, listed_now) in [(false, false), (true, true)] {
        let toggled = gateway
            .admin(
                Method::POST,
                &format!("/gateways/{gateway_id}/toggle?activate={activate}"),
                None,
            )
            .await;
        assert_eq!(toggled.status, StatusCode::OK, "{}", toggled.body);
        let listed = client.modern("tools/list", json!({})).await;
        assert_eq!(
            listed.body.to_string().contains("weather-desk-plain"),
            listed_now,
            "activate={activate}: {}",
            listed.body
        );
    }

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

    // An upstream's address cannot be changed in place (it would skip the SSRF guard).
    let registered = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Movable", "url": upstream_url, "auth": bearer})),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let id = registered.body["id"].as_str().unwrap();
    let moved = gateway
        .admin(
            Method::PUT,
            &format!("/gateways/{id}"),
            Some(json!({"url": "http://169.254.169.254/latest"})),
        )
        .await;
    assert_eq!(
        moved.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        moved.body
    );
    assert_eq!(moved.body["field"], "url");
    let same = gateway
        .admin(
            Method::PUT,
            &format!("/gateways/{id}"),
            Some(json!({"url": upstream_url, "description": "d"})),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);

    // The SSRF guard: loopback needs SSRF_ALLOW_LOCALHOST.
    let guarded_db = TestDb::new(backend).await;
    let guarded = TestServer::start(&guarded_db, &[("SSRF_ALLOW_LOCALHOST", "false")]).await;
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

/// Registers `upstream`'s virtual server in `gateway` under `name`, through `proxy_port` when
/// given (to count or cut connections).
pub(crate) async fn register(
    gateway: &TestServer,
    upstream: &World,
    name: &str,
    proxy_port: Option<u16>,
) -> String {
    let base = match proxy_port {
        Some(port) => format!("http://127.0.0.1:{port}"),
        None => upstream.server.base.clone(),
    };
    let registered = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({
                "name": name,
                "url": format!("{base}{}", upstream.server_path()),
                "auth": {"type": "bearer", "token": upstream.server.admin_token},
            })),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    registered.body["id"].as_str().unwrap().to_owned()
}

/// Adds a REST tool that takes one second to the upstream's virtual server.
async fn add_nap_tool(upstream: &World) {
    let nap = upstream
        .server
        .admin(
            Method::POST,
            "/tools",
            Some(json!({"name": "nap", "url": format!("{}/nap", upstream.fixture.base), "request_type": "GET"})),
        )
        .await;
    add_member(upstream, nap.expect(StatusCode::CREATED)["id"].clone()).await;
}

/// Adds the world's `slow` tool (it answers over 30 s) to its virtual server.
async fn add_slow_tool(upstream: &World) {
    let tools = upstream
        .server
        .admin(Method::GET, "/tools?limit=500", None)
        .await;
    let slow = tools.expect(StatusCode::OK)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == "slow")
        .expect("the world has a slow tool")["id"]
        .clone();
    add_member(upstream, slow).await;
}

/// Adds a tool to the upstream's virtual server.
async fn add_member(upstream: &World, tool_id: Value) {
    let server = upstream
        .server
        .admin(
            Method::GET,
            &format!("/servers/{}", upstream.server_id),
            None,
        )
        .await;
    let mut members: Vec<Value> = server.body["tool_ids"].as_array().unwrap().clone();
    members.push(tool_id);
    upstream
        .server
        .admin(
            Method::PUT,
            &format!("/servers/{}", upstream.server_id),
            Some(json!({"tool_ids": members})),
        )
        .await
        .expect(StatusCode::OK);
}

pub(crate) async fn rpc_call(
    gateway: &TestServer,
    id: usize,
    tool: &str,
    arguments: Value,
) -> Value {
    let response = gateway
        .client
        .post(format!("{}/rpc", gateway.base))
        .bearer_auth(&gateway.admin_token)
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("JSON")
}

/// The seed scenario: with DB_POOL_SIZE=2, 200 concurrent calls to an upstream tool that takes
/// 1 s all succeed, and the database is not involved per call.
async fn slow_upstream_storm_leaves_the_pool_alone(backend: Backend) {
    let upstream = World::new(backend).await;
    add_nap_tool(&upstream).await;
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(
        &db,
        &[("SSRF_ALLOW_LOCALHOST", "true"), ("DB_POOL_SIZE", "2")],
    )
    .await;
    register(&gateway, &upstream, "Desk", None).await;
    let before = gateway.pool_stats().await;

    let calls = (0..200).map(|id| rpc_call(&gateway, id, "desk-nap", json!({})));
    let (results, samples) =
        futures_util::future::join(futures_util::future::join_all(calls), async {
            let mut samples = Vec::new();
            for _ in 0..10 {
                samples.push(gateway.pool_stats().await);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            samples
        })
        .await;
    for result in &results {
        assert_eq!(result["result"]["isError"], false, "{result}");
        assert_eq!(result["result"]["structuredContent"]["slept_ms"], 1000);
    }
    let after = gateway.pool_stats().await;
    assert_eq!(after["checkout_timeouts"], 0, "{after}");
    for sample in &samples {
        assert_eq!(
            sample["waiting"], 0,
            "nobody waits for a connection during the storm: {sample}"
        );
    }
    // 200 calls, and only metrics flushes (a handful of units) touched the database.
    let units = after["units_ok"].as_u64().unwrap() - before["units_ok"].as_u64().unwrap();
    assert!(units < 20, "{units} units of database work for 200 calls");
    gateway.stop().await;
    upstream.stop().await;
}

/// One shared client: upstream connections are reused across calls.
async fn upstream_connections_are_reused(backend: Backend) {
    let upstream = World::new(backend).await;
    let address = upstream
        .server
        .base
        .trim_start_matches("http://")
        .to_owned();
    let proxy = common::proxy::Proxy::start(address).await;
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    register(&gateway, &upstream, "Desk", Some(proxy.port)).await;
    let after_registration = proxy.connections();
    for id in 0..50 {
        let result = rpc_call(
            &gateway,
            id,
            "desk-echo",
            json!({"message": id.to_string()}),
        )
        .await;
        assert_eq!(
            result["result"]["structuredContent"]["received"]["message"],
            id.to_string(),
            "{result}"
        );
    }
    let used = proxy.connections() - after_registration;
    assert!(used <= 4, "50 calls opened {used} new upstream connections");
    gateway.stop().await;
    upstream.stop().await;
}

/// An upstream that goes away mid-call gives error results and opens its breaker; another
/// upstream is unaffected; when it comes back, calls succeed again without operator action.
async fn a_failing_upstream_is_isolated(backend: Backend) {
    let flaky = World::new(backend).await;
    // `slow` answers over 30 s: the call that is in flight when the upstream dies.
    add_slow_tool(&flaky).await;
    let steady = World::new(backend).await;
    let proxy =
        common::proxy::Proxy::start(flaky.server.base.trim_start_matches("http://").to_owned())
            .await;
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(
        &db,
        &[
            ("SSRF_ALLOW_LOCALHOST", "true"),
            ("UPSTREAM_CIRCUIT_FAILURE_THRESHOLD", "2"),
            ("UPSTREAM_CIRCUIT_RESET_SECONDS", "1"),
        ],
    )
    .await;
    register(&gateway, &flaky, "Flaky", Some(proxy.port)).await;
    // Resource URIs are unique in a gateway: the second world offers only its tools.
    let resources = steady.server.admin(Method::GET, "/resources", None).await;
    for resource in resources.body["items"].as_array().unwrap() {
        let id = resource["id"].as_str().unwrap();
        steady
            .server
            .admin(Method::DELETE, &format!("/resources/{id}"), None)
            .await;
    }
    register(&gateway, &steady, "Steady", None).await;
    assert_eq!(
        rpc_call(&gateway, 1, "flaky-echo", json!({"message": "up"})).await["result"]["isError"],
        false
    );

    // The upstream dies while a call is in flight: that call ends at once with an error result.
    let in_flight = rpc_call(&gateway, 2, "flaky-slow", json!({}));
    let kill = async {
        eventually(
            "the slow call reaches the upstream",
            std::time::Duration::from_secs(15),
            || async { (flaky.fixture.slow_calls() > 0).then_some(()) },
        )
        .await;
        proxy.cut();
    };
    let (cut_short, ()) = tokio::join!(in_flight, kill);
    assert_eq!(cut_short["result"]["isError"], true, "{cut_short}");
    assert!(
        cut_short["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Flaky"),
        "{cut_short}"
    );
    for id in 0..4 {
        let result = rpc_call(&gateway, id, "flaky-echo", json!({"message": "down"})).await;
        assert_eq!(result["result"]["isError"], true, "{result}");
        let text = result["result"]["content"][0]["text"].as_str().unwrap();
        assert!(
            text.contains("Flaky"),
            "the error names the upstream: {text}"
        );
        let steady_result = rpc_call(
            &gateway,
            100 + id,
            "steady-echo",
            json!({"message": "fine"}),
        )
        .await;
        assert_eq!(steady_result["result"]["isError"], false, "{steady_result}");
    }
    let metrics = common::metrics_text(&gateway).await;
    assert!(
        metrics.contains("mcpgate_upstream_breaker_opened_total"),
        "{metrics}"
    );
    let open_now = rpc_call(&gateway, 9, "flaky-echo", json!({"message": "down"})).await;
    assert!(
        open_now["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("circuit open"),
        "{open_now}"
    );

    proxy.restore();
    eventually(
        "calls to the upstream succeed again",
        std::time::Duration::from_secs(20),
        || async {
            let result = rpc_call(&gateway, 10, "flaky-echo", json!({"message": "back"})).await;
            (result["result"]["isError"] == false).then_some(())
        },
    )
    .await;
    gateway.stop().await;
    flaky.stop().await;
    steady.stop().await;
}

/// `/metrics`: Prometheus text with per-tool counters; records reach the database in batches.
async fn metrics_are_exposed_and_stored(backend: Backend) {
    let upstream = World::new(backend).await;
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    register(&gateway, &upstream, "Desk", None).await;
    for id in 0..5 {
        rpc_call(&gateway, id, "desk-echo", json!({"message": "m"})).await;
    }
    rpc_call(&gateway, 6, "desk-get_weather", json!({"units": "kelvin"})).await;
    let anonymous = gateway
        .client
        .get(format!("{}/metrics", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let text = eventually(
        "the records are written",
        std::time::Duration::from_secs(20),
        || async {
            let text = common::metrics_text(&gateway).await;
            text.contains("mcpgate_call_records_written_total 6")
                .then_some(text)
        },
    )
    .await;
    assert!(
        text.contains("mcpgate_tool_calls_total{tool=\"desk-echo\",outcome=\"success\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("mcpgate_tool_calls_total{tool=\"desk-get_weather\",outcome=\"failure\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("mcpgate_tool_call_duration_seconds_count{tool=\"desk-echo\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("mcpgate_db_pool_connections{state=\"in_use\"}"),
        "{text}"
    );
    assert!(text.contains("# TYPE mcpgate_tool_call_duration_seconds histogram"));
    gateway.stop().await;
    upstream.stop().await;
}

/// Health checks mark an upstream offline after failures and online again when it answers.
async fn health_checks_follow_the_upstream(backend: Backend) {
    let upstream = World::new(backend).await;
    let proxy = common::proxy::Proxy::before(&upstream).await;
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(
        &db,
        &[
            ("SSRF_ALLOW_LOCALHOST", "true"),
            ("HEALTH_CHECK_INTERVAL", "0.2"),
            ("UNHEALTHY_THRESHOLD", "2"),
        ],
    )
    .await;
    let id = register(&gateway, &upstream, "Desk", Some(proxy.port)).await;
    let path = format!("/gateways/{id}");
    let wait = std::time::Duration::from_secs(20);
    proxy.cut();
    eventually("the upstream is marked offline", wait, || async {
        (gateway.admin(Method::GET, &path, None).await.body["reachable"] == false).then_some(())
    })
    .await;
    proxy.restore();
    let back = eventually("the upstream is marked online again", wait, || async {
        let view = gateway.admin(Method::GET, &path, None).await.body;
        (view["reachable"] == true).then_some(view)
    })
    .await;
    assert!(back["last_seen_at"].is_string(), "{back}");
    gateway.stop().await;
    upstream.stop().await;
}

/// A client that cancels a federated call (closing its stream) cancels it upstream too, down to
/// the upstream's own REST call; over the legacy SSE transport by `notifications/cancelled`.
async fn cancellation_reaches_the_upstream(backend: Backend) {
    let upstream = World::new(backend).await;
    let slow = upstream
        .server
        .admin(Method::GET, "/tools?limit=100", None)
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == "slow")
        .unwrap()["id"]
        .clone();
    let server = upstream
        .server
        .admin(
            Method::GET,
            &format!("/servers/{}", upstream.server_id),
            None,
        )
        .await;
    let mut members: Vec<Value> = server.body["tool_ids"].as_array().unwrap().clone();
    members.push(slow);
    upstream
        .server
        .admin(
            Method::PUT,
            &format!("/servers/{}", upstream.server_id),
            Some(json!({"tool_ids": members})),
        )
        .await;
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let registered = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({
                "name": "Desk", "transport": "sse",
                "url": format!("{}/servers/{}/sse", upstream.server.base, upstream.server_id),
                "auth": {"type": "bearer", "token": upstream.server.admin_token},
            })),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let client = McpClient::new(&gateway, "/mcp");
    let body = client.modern_body("tools/call", json!({"name": "desk-slow"}));
    let response = client.modern_stream(&body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let wait = std::time::Duration::from_secs(20);
    let fixture = &upstream.fixture;
    eventually(
        "the slow call reaches the upstream's REST endpoint",
        wait,
        || async { (fixture.slow_calls() == 1).then_some(()) },
    )
    .await;
    drop(response);
    eventually(
        "cancelling reaches the upstream's REST call",
        wait,
        || async { (fixture.slow_calls() == 0).then_some(()) },
    )
    .await;
    gateway.stop().await;
    upstream.stop().await;
}

/// An upstream that announces a list change is discovered again by itself: over a modern
/// `subscriptions/listen` stream and over the legacy SSE stream.
async fn upstream_changes_are_followed(backend: Backend) {
    let upstream = World::new(backend).await;
    let db = TestDb::new(backend).await;
    let modern = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    register(&modern, &upstream, "Desk", None).await;
    let sse_db = TestDb::new(backend).await;
    let legacy = TestServer::start(&sse_db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let sse = legacy
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({
                "name": "Desk", "transport": "sse",
                "url": format!("{}/servers/{}/sse", upstream.server.base, upstream.server_id),
                "auth": {"type": "bearer", "token": upstream.server.admin_token},
            })),
        )
        .await;
    assert_eq!(sse.status, StatusCode::CREATED, "{}", sse.body);
    // A first call opens each gateway's pooled connection, which follows the upstream.
    for gateway in [&modern, &legacy] {
        let result = rpc_call(gateway, 1, "desk-echo", json!({"message": "hello"})).await;
        assert_eq!(result["result"]["isError"], false, "{result}");
    }
    add_nap_tool(&upstream).await;
    for gateway in [&modern, &legacy] {
        eventually(
            "the new upstream tool appears to MCP clients",
            std::time::Duration::from_secs(20),
            || async {
                // What MCP clients see (the in-memory catalog), not only the registry.
                let listed = gateway
                    .client
                    .post(format!("{}/rpc", gateway.base))
                    .bearer_auth(&gateway.admin_token)
                    .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                listed.contains("desk-nap").then_some(())
            },
        )
        .await;
        let nap = rpc_call(gateway, 2, "desk-nap", json!({})).await;
        assert_eq!(
            nap["result"]["structuredContent"]["slept_ms"], 1000,
            "{nap}"
        );
    }
    modern.stop().await;
    legacy.stop().await;
    upstream.stop().await;
}

both_backends!(
    upstream_changes_are_followed,
    cancellation_reaches_the_upstream,
    health_checks_follow_the_upstream,
    federates_an_upstream,
    registration_errors_store_nothing,
    slow_upstream_storm_leaves_the_pool_alone,
    upstream_connections_are_reused,
    a_failing_upstream_is_isolated,
    metrics_are_exposed_and_stored,
);
