//! Interop with the official MCP SDKs: Python `mcp` 1.x and 2.x and the TypeScript SDK connect
//! to a virtual server over Streamable HTTP and over the legacy SSE transport, list and call a
//! REST-backed tool (served by a loopback fixture), list/read resources and list/get prompts.
//! The SDKs are pinned and installed by `tests/interop/setup.sh` into a git-ignored folder.

use crate::common;

use std::process::Command;

use common::mcp::{McpClient, assert_schema};
use common::sdk::{
    ConformanceFixture, Upstream, deps_dir, everything_through_every_sdk, free_port, run_client,
    run_client_with, spawn_listening, start_mrtr_server,
};
use common::world::World;
use common::{Backend, TestDb, TestServer, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The standard exercise's outcome, spoken in `protocol` (None: the SDK does not report it).
pub(crate) fn assert_session(outcome: &Value, protocol: Option<&str>) {
    if let Some(protocol) = protocol {
        assert_eq!(outcome["protocol"], protocol, "{outcome}");
    }
    assert_eq!(
        outcome["tools"],
        json!(["get_weather", "echo"]),
        "{outcome}"
    );
    assert_eq!(outcome["call"]["is_error"], false, "{outcome}");
    assert_eq!(outcome["call"]["structured"]["city"], "Paris", "{outcome}");
    assert!(
        outcome["call"]["text"][0]
            .as_str()
            .unwrap()
            .contains("Paris")
    );
    assert_eq!(outcome["resources"], json!(["docs://guide"]));
    assert_eq!(outcome["read"], json!(["Read the guide"]));
    assert_eq!(outcome["prompts"], json!(["summarise"]));
    assert_eq!(
        outcome["prompt"],
        json!(["Summarise the news in formal style"])
    );
}

/// Every official SDK client in every mode, over both transports: (sdk, transport, the
/// protocol it negotiates with the gateway; None where the SDK does not report it).
const SDK_MATRIX: &[(&str, &str, Option<&str>)] = &[
    ("python-1", "streamable", Some("2025-11-25")),
    ("python-1", "sse", Some("2025-11-25")),
    ("python-2", "streamable", Some("2026-07-28")),
    ("python-2", "sse", Some("2025-11-25")),
    ("python-2-legacy", "streamable", Some("2025-11-25")),
    ("python-2-legacy", "sse", Some("2025-11-25")),
    ("typescript", "streamable", Some("2025-11-25")),
    ("typescript", "sse", None),
];

async fn official_sdks_connect(backend: Backend) {
    let world = World::new(backend).await;
    let streamable = format!("{}{}", world.server.base, world.server_path());
    let sse = format!("{}/servers/{}/sse", world.server.base, world.server_id);

    // (sdk, transport, the protocol it ends up speaking; None: the SDK does not say). Python 1.x
    // speaks the session era; 2.x in its default auto mode probes server/discover and stays
    // modern over Streamable HTTP (its ping, removed in 2026-07-28 but still sent, is answered)
    // and, over HTTP+SSE, is told no (2026-07-28 is not carried there) and falls back to a
    // session; 2.x in legacy mode shakes hands; pinned to 2026-07-28 it never does.
    for (sdk, transport, protocol) in SDK_MATRIX {
        let url = if *transport == "sse" {
            &sse
        } else {
            &streamable
        };
        let outcome = run_client(sdk, url, transport).await;
        assert_session(&outcome, *protocol);
    }
    let pinned = run_client("python-2-modern", &streamable, "streamable").await;
    assert_session(&pinned, Some("2026-07-28"));
    world.stop().await;
}

/// `@modelcontextprotocol/server-everything` (pinned, a real process on loopback), serving
/// `transport` (`streamableHttp` or `sse`) at the returned base URL.
async fn start_everything(transport: &str) -> Upstream {
    let port = free_port();
    let mut command = Command::new("node");
    command
        .arg(format!(
            "{}/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
            deps_dir()
        ))
        .arg(transport)
        .env("PORT", port.to_string());
    spawn_listening(command, port, "").await
}

/// The reference server as an upstream, over Streamable HTTP and over SSE; its `echo` and
/// `get-sum` tools called through the gateway by every SDK client.
async fn server_everything_through_the_gateway(backend: Backend) {
    let db = common::TestDb::new(backend).await;
    let gateway = common::TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let endpoint = format!("{}/mcp", gateway.base);
    for (transport, path) in [("streamableHttp", "/mcp"), ("sse", "/sse")] {
        let everything = start_everything(transport).await;
        let registered = gateway
            .admin(
                reqwest::Method::POST,
                "/gateways",
                Some(json!({
                    "name": "Everything",
                    "url": format!("{}{path}", everything.url),
                    "transport": if transport == "sse" { "sse" } else { "streamablehttp" },
                })),
            )
            .await;
        assert_eq!(
            registered.status,
            reqwest::StatusCode::CREATED,
            "{}",
            registered.body
        );
        assert_eq!(
            registered.body["protocol_version"], "2025-11-25",
            "{}",
            registered.body
        );
        assert!(registered.body["discovered"]["tools"].as_u64().unwrap() >= 2);
        // The upstream asks the client for an LLM completion mid-call (on the call's stream,
        // or on the old transport's one SSE stream); the gateway relays the request to a
        // client that declared sampling (on its session, or through input_required) and the
        // answer back.
        everything_through_every_sdk(&endpoint, transport).await;
        let id = registered.body["id"].as_str().unwrap();
        gateway
            .admin(reqwest::Method::DELETE, &format!("/gateways/{id}"), None)
            .await;
        drop(everything);
    }
    gateway.stop().await;
}

/// Registers an upstream MCP server (loopback) under `name`.
async fn register_upstream(gateway: &TestServer, name: &str, url: &str) {
    common::register_gateway(gateway, name, url).await;
}

/// The message of a JSON-RPC error reply.
fn error_message(reply: &common::Reply) -> String {
    reply.body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("an error reply, got {}", reply.body))
        .to_owned()
}

/// Parked upstream calls, from `/admin/mcp-stats`.
async fn parked_calls(gateway: &TestServer) -> u64 {
    let stats = gateway.admin(Method::GET, "/admin/mcp-stats", None).await;
    stats.expect(StatusCode::OK)["parked_calls"]
        .as_u64()
        .unwrap()
}

/// Upstream questions (sampling, elicitation) reach every SDK client of the matrix, in its own
/// era and over its own transport, and are answered by its callbacks: a session-era upstream's
/// mid-call requests reach a 2026-07-28 client (Python SDK 2.x, auto mode) as `input_required`
/// and a session-era client on its call's stream (Streamable HTTP) or its SSE stream; a
/// 2026-07-28 upstream's `input_required` passes through to the modern client and is asked of
/// the session-era ones, the gateway retrying with the answer.
async fn upstream_questions_reach_clients_in_their_era(backend: Backend) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let fixture = ConformanceFixture::start();
    let asker = start_mrtr_server().await;
    register_upstream(&gateway, "Fixture", &fixture.url).await;
    register_upstream(&gateway, "Asker", &asker.url).await;
    for (sdk, transport, protocol) in SDK_MATRIX {
        let endpoint = match *transport {
            "sse" => format!("{}/sse", gateway.base),
            _ => format!("{}/mcp", gateway.base),
        };
        let call = |tool: &str, arguments: Value| {
            let extra = vec!["sample".to_owned(), tool.to_owned(), arguments.to_string()];
            let endpoint = endpoint.clone();
            async move { run_client_with(sdk, &endpoint, transport, &extra).await }
        };
        let sdk = format!("{sdk} over {transport}");
        let sampled = call("fixture-test_sampling", json!({"prompt": "hello"})).await;
        if let Some(protocol) = protocol {
            assert_eq!(sampled["protocol"], *protocol, "{sdk}: {sampled}");
        }
        assert_eq!(sampled["asked"], json!(["sampling"]), "{sdk}: {sampled}");
        assert_eq!(
            sampled["text"],
            json!(["LLM response: canned reply from the client"]),
            "{sdk}: {sampled}"
        );
        let elicited = call("fixture-test_elicitation", json!({"message": "who?"})).await;
        assert_eq!(
            elicited["asked"],
            json!(["elicitation"]),
            "{sdk}: {elicited}"
        );
        assert!(
            elicited["text"][0]
                .as_str()
                .unwrap()
                .contains("\"username\":\"octocat\""),
            "{sdk}: {elicited}"
        );
        let confirmed = call("asker-confirm", json!({"action": "deploy"})).await;
        assert_eq!(confirmed["is_error"], false, "{sdk}: {confirmed}");
        assert_eq!(
            confirmed["asked"],
            json!(["elicitation"]),
            "{sdk}: {confirmed}"
        );
        assert_eq!(
            confirmed["text"],
            json!(["deploy accept by octocat (state confirm:deploy)"]),
            "{sdk}: {confirmed}"
        );
    }
    assert_eq!(
        parked_calls(&gateway).await,
        0,
        "every parked call was resumed"
    );

    // The 2026-07-28 upstream announces a new tool on subscriptions/listen: the gateway follows.
    let client = McpClient::new(&gateway, "/mcp");
    let grown = client
        .modern(
            "tools/call",
            json!({"name": "asker-grow", "arguments": {"name": "fresh"}}),
        )
        .await;
    assert_eq!(grown.expect(StatusCode::OK)["result"]["isError"], false);
    eventually(
        "the upstream's new tool appears to MCP clients",
        std::time::Duration::from_secs(20),
        || async {
            // What MCP clients see (the in-memory catalog), not only the registry.
            let tools = client.modern("tools/list", json!({})).await;
            tools.body.to_string().contains("asker-fresh").then_some(())
        },
    )
    .await;
    let fresh = client
        .modern(
            "tools/call",
            json!({"name": "asker-fresh", "arguments": {}}),
        )
        .await;
    assert_eq!(
        fresh.expect(StatusCode::OK)["result"]["content"][0]["text"],
        "fresh is here"
    );
    gateway.stop().await;
}

/// A call parked for a 2026-07-28 client's answer is bound to its principal, method and item,
/// is resumed once, is asked again when the retry lacks the answer, and is cancelled when not
/// resumed in time. A client that did not declare elicitation is never asked.
async fn parked_calls_are_bound_single_use_and_expire(backend: Backend) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(
        &db,
        &[("SSRF_ALLOW_LOCALHOST", "true"), ("TOOL_TIMEOUT", "3")],
    )
    .await;
    let fixture = ConformanceFixture::start();
    register_upstream(&gateway, "Fixture", &fixture.url).await;
    let client = McpClient::new(&gateway, "/mcp");
    let ask =
        |tool: &str, arguments: Value, extra: Value| client.eliciting_call(tool, arguments, extra);
    let elicit = "fixture-test_elicitation";
    let who = json!({"message": "who?"});

    let first = client
        .send_modern(ask(elicit, who.clone(), json!({})))
        .await;
    let interim = first.expect(StatusCode::OK)["result"].clone();
    assert_schema("2026-07-28", "InputRequiredResult", &interim);
    assert_eq!(interim["resultType"], "input_required", "{interim}");
    assert_eq!(
        interim["inputRequests"]["q1"]["method"],
        "elicitation/create"
    );
    assert_eq!(interim["inputRequests"]["q1"]["params"]["message"], "who?");
    assert!(
        interim.get("ttlMs").is_none(),
        "no cache hints on an interim result"
    );
    let state = interim["requestState"].as_str().unwrap().to_owned();
    assert_eq!(parked_calls(&gateway).await, 1);

    // Another principal, or another tool, cannot resume it.
    let mut stranger = McpClient::new(&gateway, "/mcp");
    stranger.token = common::create_user(&gateway, "someone@example.com", "developer").await;
    let answer = json!({"q1": {"action": "accept", "content": {"username": "eve"}}});
    let retry = json!({"inputResponses": answer, "requestState": state});
    let refused = stranger
        .send_modern(ask(elicit, who.clone(), retry.clone()))
        .await;
    assert!(error_message(&refused).contains("belongs to another request"));
    let refused = client
        .send_modern(ask(
            "fixture-test_sampling",
            json!({"prompt": "x"}),
            retry.clone(),
        ))
        .await;
    assert!(error_message(&refused).contains("belongs to another request"));

    // A retry without the answer is asked again, under a new state.
    let again = client
        .send_modern(ask(
            elicit,
            who.clone(),
            json!({"inputResponses": {}, "requestState": state}),
        ))
        .await;
    let again = again.expect(StatusCode::OK)["result"].clone();
    assert_eq!(again["resultType"], "input_required", "{again}");
    let new_state = again["requestState"].as_str().unwrap().to_owned();
    assert_ne!(new_state, state);
    let stale = client
        .send_modern(ask(elicit, who.clone(), retry.clone()))
        .await;
    assert!(error_message(&stale).contains("names no waiting call"));

    // The answer completes the call.
    let done = client.send_modern(ask(
            elicit,
            who.clone(),
            json!({"inputResponses": {"q1": {"action": "accept", "content": {"username": "alice", "email": "a@example.com"}}}, "requestState": new_state}),
        ),
    )
    .await;
    let done = done.expect(StatusCode::OK)["result"].clone();
    assert_schema("2026-07-28", "CallToolResult", &done);
    assert_eq!(done["resultType"], "complete");
    assert!(
        done["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("alice"),
        "{done}"
    );
    assert_eq!(parked_calls(&gateway).await, 0);

    // Not declaring elicitation: the upstream's question is declined, nothing is parked.
    let mut undeclared =
        client.modern_body("tools/call", json!({"name": elicit, "arguments": who}));
    undeclared["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let declined = client.send_modern(undeclared).await;
    assert!(
        declined
            .body
            .to_string()
            .contains("does not support elicitation/create"),
        "{}",
        declined.body
    );
    assert_eq!(parked_calls(&gateway).await, 0);

    // A parked call nobody resumes is cancelled after TOOL_TIMEOUT.
    let abandoned = client
        .send_modern(ask(elicit, who.clone(), json!({})))
        .await;
    let abandoned_state = abandoned.body["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(parked_calls(&gateway).await, 1);
    eventually(
        "the abandoned call expires",
        std::time::Duration::from_secs(20),
        || async { (parked_calls(&gateway).await == 0).then_some(()) },
    )
    .await;
    let expired = client
        .send_modern(ask(
            elicit,
            who,
            json!({"inputResponses": answer, "requestState": abandoned_state}),
        ))
        .await;
    assert!(error_message(&expired).contains("names no waiting call"));
    gateway.stop().await;
}

/// A session-era upstream that restarts forgets the gateway's pooled session: the next call
/// gets 404 for it, and the gateway opens a new session and retries, transparently.
async fn an_expired_upstream_session_is_reestablished(backend: Backend) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let fixture = ConformanceFixture::start();
    register_upstream(&gateway, "Fixture", &fixture.url).await;
    let client = McpClient::new(&gateway, "/mcp");
    let call = || async {
        let reply = client
            .modern(
                "tools/call",
                json!({"name": "fixture-test_simple_text", "arguments": {}}),
            )
            .await;
        reply.expect(StatusCode::OK)["result"]["content"][0]["text"].clone()
    };
    let expected = json!("This is a simple text response for testing.");
    assert_eq!(call().await, expected);

    let port = url::Url::parse(&fixture.url).unwrap().port().unwrap();
    drop(fixture);
    let restarted = ConformanceFixture::start_on(port);
    assert_eq!(call().await, expected, "the first call after the restart");
    assert_eq!(call().await, expected);
    drop(restarted);
    gateway.stop().await;
}

once_on_sqlite!(
    an_expired_upstream_session_is_reestablished,
    official_sdks_connect,
    server_everything_through_the_gateway,
    upstream_questions_reach_clients_in_their_era,
    parked_calls_are_bound_single_use_and_expire
);
