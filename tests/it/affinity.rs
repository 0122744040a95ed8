//! Upstream session affinity: a session-era client that can be asked something (or subscribes)
//! gets its own upstream session for each upstream it uses, so whatever that upstream sends on
//! any of its streams reaches that client and no other. Driven with the official TypeScript SDK's client
//! (`tests/interop/node/affinity.mjs`, several clients at once) against the conformance fixture
//! sending its questions on its standalone GET stream, where nothing names the call.

use crate::common;

use std::process::Command;

use common::mcp::{LEGACY, McpClient};
use common::sdk::{ConformanceFixture, deps_dir, run_json};
use common::{Backend, TestDb, TestServer, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Registers the fixture at `url` with its tools' own names.
async fn register(gateway: &TestServer, url: &str) {
    gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Fixture", "url": url, "prefix_tool_names": false})),
        )
        .await
        .expect(StatusCode::CREATED);
}

/// Runs `tests/interop/node/affinity.mjs` against the gateway's `/mcp`; what it printed.
async fn run_clients(gateway: &TestServer, fixture_url: &str, extra: &[&str]) -> Value {
    let endpoint = format!("{}/mcp", gateway.base);
    let fixture_base = fixture_url.trim_end_matches("/mcp").to_owned();
    let token = gateway.admin_token.clone();
    let extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
    let mut command = Command::new("node");
    command
        .arg(format!("{}/node/affinity.mjs", deps_dir()))
        .args([&endpoint, &token, &fixture_base])
        .args(&extra);
    run_json(command, "affinity.mjs").await
}

async fn each_client_is_asked_only_its_own_questions(backend: Backend) {
    let fixture = ConformanceFixture::start_asking_on_get_stream();
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    register(&gateway, &fixture.url).await;
    let seen = run_clients(&gateway, &fixture.url, &[]).await;

    // Two clients asked at once, each answered only its own question.
    for name in ["alpha", "beta"] {
        assert_eq!(seen[name]["is_error"], false, "{seen}");
        assert_eq!(
            seen[name]["text"],
            format!("LLM response: from {name}"),
            "{seen}"
        );
    }
    assert_eq!(seen["beta"]["asked"], json!(["for beta"]), "{seen}");
    assert_eq!(
        seen["alpha"]["asked"],
        json!(["for alpha", "withdrawn soon", "for alpha again"]),
        "{seen}"
    );
    // A client that declared nothing is never asked; the upstream hears why, and its tool
    // fails for it alone.
    assert_eq!(seen["gamma"]["received"], json!([]), "{seen}");
    assert_eq!(seen["gamma"]["is_error"], true, "{seen}");
    assert!(
        seen["upstream_sessions_opened_by_calls"].as_u64() >= Some(2),
        "an upstream session of their own for each asking client: {seen}"
    );
    // A resource update the upstream sends on the subscriber's own session reaches it alone.
    assert_eq!(
        seen["alpha"]["updated"],
        json!(["test://watched-resource"]),
        "{seen}"
    );
    assert_eq!(seen["beta"]["updated"], json!([]), "{seen}");
    assert_eq!(seen["gamma"]["updated"], json!([]), "{seen}");
    // A question the upstream withdraws is withdrawn from the client too.
    assert_eq!(
        seen["alpha"]["withdrawn"],
        json!(["withdrawn soon"]),
        "{seen}"
    );
    assert_eq!(seen["alpha"]["withdrawn_call"], "withdrawn", "{seen}");
    // A client's upstream session ends with its session...
    assert_eq!(seen["beta_upstream_session_ended"], true, "{seen}");
    // ...and is made again when the upstream forgets it.
    assert_eq!(
        seen["alpha"]["again"]["text"], "LLM response: from alpha",
        "{seen}"
    );
    assert!(seen["opened_after_expiry"].as_u64() >= Some(1), "{seen}");
    assert_eq!(seen["alpha_upstream_session_ended"], true, "{seen}");
    gateway.stop().await;
}

once_on_sqlite!(each_client_is_asked_only_its_own_questions);

/// The fixture's session counts (`opened`, `deleted`, `open`).
async fn fixture_stats(base: &str) -> Value {
    reqwest::get(format!("{base}/stats"))
        .await
        .expect("the fixture answers")
        .json()
        .await
        .expect("JSON")
}

/// Upstream sessions of one's own count against the principal's quota: past it the shared
/// session serves; a place comes back when a session that held one ends.
async fn upstream_sessions_of_ones_own_are_bounded(backend: Backend) {
    let fixture = ConformanceFixture::start();
    let base = fixture.url.trim_end_matches("/mcp").to_owned();
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(
        &db,
        &[
            ("SSRF_ALLOW_LOCALHOST", "true"),
            ("MCP_MAX_UPSTREAM_SESSIONS_PER_PRINCIPAL", "1"),
        ],
    )
    .await;
    register(&gateway, &fixture.url).await;
    let client = McpClient::new(&gateway, "/mcp");
    // A session that keeps a log level upstream needs a session of its own there.
    let keeping_a_level = || async {
        let (session, _) = client.initialize(LEGACY).await;
        let set = client
            .legacy(&session, "logging/setLevel", json!({"level": "info"}))
            .await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.body);
        session
    };
    let call = |session: String| {
        let client = &client;
        async move {
            let called = client
                .legacy(&session, "tools/call", json!({"name": "test_simple_text"}))
                .await;
            assert_eq!(
                called.body["result"]["content"][0]["text"],
                "This is a simple text response for testing.",
                "{}",
                called.body
            );
        }
    };
    let before = fixture_stats(&base).await;
    let first = keeping_a_level().await;
    call(first.clone()).await;
    let second = keeping_a_level().await;
    call(second.clone()).await;
    let third = keeping_a_level().await;
    call(third.clone()).await;
    let after = fixture_stats(&base).await;
    assert_eq!(
        after["opened"].as_u64().unwrap() - before["opened"].as_u64().unwrap(),
        2,
        "the first session's own, and the shared one for the other two: {after}"
    );

    // The first session ends: its upstream session too, and its place is free again.
    let ended = client
        .verb(
            Method::DELETE,
            &[("mcp-session-id", &first), ("mcp-protocol-version", LEGACY)],
        )
        .await;
    assert!(ended.status().is_success(), "{}", ended.status());
    let deleted = after["deleted"].as_u64().unwrap() + 1;
    eventually(
        "the upstream sees the DELETE",
        std::time::Duration::from_secs(10),
        || {
            let base = base.clone();
            async move {
                (fixture_stats(&base).await["deleted"].as_u64() >= Some(deleted)).then_some(())
            }
        },
    )
    .await;
    // A session that had to share asks again at each call: with a place free, its next call
    // gets a session of its own.
    call(third).await;
    let last = fixture_stats(&base).await;
    assert_eq!(
        last["opened"].as_u64().unwrap() - after["opened"].as_u64().unwrap(),
        1,
        "the freed place serves the next session that needs one: {last}"
    );
    drop(second);
    gateway.stop().await;
}

once_on_sqlite!(upstream_sessions_of_ones_own_are_bounded);

/// A question the upstream asks on the call's own (POST) stream and then withdraws there is
/// withdrawn from the client too, while the gateway goes on reading that stream.
async fn a_question_withdrawn_on_the_call_stream_is_withdrawn_from_the_client(backend: Backend) {
    let fixture = ConformanceFixture::start();
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    register(&gateway, &fixture.url).await;
    let seen = run_clients(&gateway, &fixture.url, &["withdrawn"]).await;
    assert_eq!(seen["withdrawn"], json!(["withdrawn soon"]), "{seen}");
    assert_eq!(seen["withdrawn_call"], "withdrawn", "{seen}");

    // A 2026-07-28 client was shown the question as input_required, the call parked: once the
    // upstream withdraws it, a retry without the answer is not asked it again but gets what the
    // upstream did next.
    let client = McpClient::new(&gateway, "/mcp");
    let mut body = client.modern_body(
        "tools/call",
        json!({"name": "test_sampling_withdrawn", "arguments": {}}),
    );
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({"sampling": {}});
    let interim = client.send_modern(body.clone()).await;
    let interim = interim.expect(StatusCode::OK)["result"].clone();
    assert_eq!(interim["resultType"], "input_required", "{interim}");
    let mut state = interim["requestState"].clone();
    let mut done = Value::Null;
    for _ in 0..100 {
        let mut retry = body.clone();
        retry["params"]["requestState"] = state.clone();
        retry["params"]["inputResponses"] = json!({});
        let result = client.send_modern(retry).await.expect(StatusCode::OK)["result"].clone();
        if result["resultType"] != "input_required" {
            done = result;
            break;
        }
        // Not withdrawn yet: asked again, under a new state.
        state = result["requestState"].clone();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(done["content"][0]["text"], "withdrawn", "{done}");
    gateway.stop().await;
}

once_on_sqlite!(a_question_withdrawn_on_the_call_stream_is_withdrawn_from_the_client);
