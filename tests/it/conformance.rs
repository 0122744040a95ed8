//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned) through the
//! gateway: a fixture upstream (`tests/conformance/fixture-server.mjs`, a real Node process on
//! loopback) offers every tool, resource, template and prompt the server scenarios call; it is
//! registered with `"prefix_tool_names": false`, all of it is curated into one virtual server,
//! and every active server scenario runs against that server's Streamable HTTP endpoint, one
//! process per scenario. Every check of every scenario must pass — and again with the fixture
//! registered over the legacy HTTP+SSE transport, and with the fixture sending its questions
//! and notifications on its standalone GET stream.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::sdk::{ConformanceFixture, deps_dir, setup};
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Scenarios 0.1.16 lists but keeps out of its active suite (`--suite pending`).
const PENDING: [&str; 2] = ["json-schema-2020-12", "server-sse-polling"];
/// How long one scenario may run before it counts as hung.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

fn node_dir() -> String {
    format!("{}/node", deps_dir())
}

fn conformance_cli() -> String {
    format!(
        "{}/node_modules/@modelcontextprotocol/conformance/dist/index.js",
        node_dir()
    )
}

/// The gateway as the conformance CLI reaches it.
#[derive(Clone)]
struct Target {
    /// `http://127.0.0.1:PORT`.
    origin: String,
    /// A bearer token the gateway accepts.
    token: String,
    /// The virtual server's Streamable HTTP endpoint.
    endpoint: String,
}

impl Target {
    /// The Streamable HTTP endpoint of the virtual server `server` (as created) on `gateway`.
    fn of(gateway: &TestServer, server: &Value) -> Self {
        Target {
            origin: gateway.base.clone(),
            token: gateway.admin_token.clone(),
            endpoint: format!(
                "{}/servers/{}/mcp",
                gateway.base,
                server["id"].as_str().unwrap()
            ),
        }
    }
}

/// Runs the conformance CLI with the preload that adds `globSync` on Node 20 and the bearer
/// token for the gateway's origin; kills it after `SCENARIO_TIMEOUT`.
fn conformance(target: &Target, args: &[&str]) -> std::process::Output {
    let mut child = Command::new("node")
        .arg("--import")
        .arg(format!("{}/conformance/preload.mjs", node_dir()))
        .arg(conformance_cli())
        .args(args)
        .env("MCPGATE_ORIGIN", &target.origin)
        .env("MCPGATE_TOKEN", &target.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the conformance CLI (node)");
    let started = std::time::Instant::now();
    while child
        .try_wait()
        .expect("poll the conformance CLI")
        .is_none()
    {
        if started.elapsed() > SCENARIO_TIMEOUT {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect the CLI's output");
            panic!(
                "conformance {args:?} hung for {SCENARIO_TIMEOUT:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect the CLI's output")
}

/// The active server scenarios: every scenario `conformance list --server` names, minus the
/// pending ones.
fn active_scenarios(target: &Target) -> Vec<String> {
    let output = conformance(target, &["list", "--server"]);
    assert!(output.status.success(), "conformance list --server failed");
    let listed: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .filter_map(|entry| entry.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    for pending in PENDING {
        assert!(
            listed.iter().any(|name| name == pending),
            "{pending} is no longer listed: revisit PENDING for this conformance version"
        );
    }
    listed
        .into_iter()
        .filter(|name| !PENDING.contains(&name.as_str()))
        .collect()
}

/// Every id of a registry list.
async fn ids(gateway: &TestServer, kind: &str) -> Vec<Value> {
    let listed = gateway
        .admin(Method::GET, &format!("/{kind}?limit=500"), None)
        .await;
    listed.expect(StatusCode::OK)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].clone())
        .collect()
}

/// Runs one scenario; returns its checks that did not pass (with their messages).
fn failed_checks(target: &Target, scenario: &str) -> Vec<String> {
    let results = tempfile::tempdir().expect("results dir");
    let output = conformance(
        target,
        &[
            "server",
            "--url",
            &target.endpoint,
            "--scenario",
            scenario,
            "-o",
            results.path().to_str().unwrap(),
        ],
    );
    let checks_file = std::fs::read_dir(results.path())
        .expect("results dir")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("checks.json"))
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "{scenario} wrote no checks.json (exit {})\nstdout: {}\nstderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let checks: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(checks_file).expect("read checks.json"))
            .expect("checks.json is JSON");
    assert!(!checks.is_empty(), "{scenario} made no checks");
    let failed: Vec<String> = checks
        .iter()
        .filter(|check| matches!(check["status"].as_str(), Some("FAILURE" | "WARNING")))
        .map(|check| {
            format!(
                "{scenario}/{} {}: {} {}",
                check["id"].as_str().unwrap_or("?"),
                check["status"],
                check["errorMessage"].as_str().unwrap_or_default(),
                check["details"]
            )
        })
        .collect();
    assert!(
        !failed.is_empty() || output.status.success(),
        "{scenario}: every check passed but the CLI exited with {}",
        output.status
    );
    failed
}

async fn the_official_suite_passes_through_the_gateway(backend: Backend) {
    setup();
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let fixture = ConformanceFixture::start();

    let registered = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({
                "name": "Conformance fixture",
                "url": fixture.url,
                "transport": "streamablehttp",
                "prefix_tool_names": false,
            })),
        )
        .await;
    let registered = registered.expect(StatusCode::CREATED);
    assert_eq!(
        registered["discovered"],
        json!({"tools": 13, "resources": 4, "prompts": 4}),
        "{registered}"
    );
    let server = gateway
        .admin(
            Method::POST,
            "/servers",
            Some(json!({
                "name": "Conformance",
                "description": "Everything the conformance fixture offers",
                "tool_ids": ids(&gateway, "tools").await,
                "resource_ids": ids(&gateway, "resources").await,
                "prompt_ids": ids(&gateway, "prompts").await,
            })),
        )
        .await;
    let target = Target::of(&gateway, server.expect(StatusCode::CREATED));

    // The CLI blocks: run it off the runtime that serves the gateway.
    let (scenarios, failures) = tokio::task::spawn_blocking(move || {
        let scenarios = active_scenarios(&target);
        let failures: Vec<String> = scenarios
            .iter()
            .flat_map(|scenario| failed_checks(&target, scenario))
            .collect();
        (scenarios, failures)
    })
    .await
    .expect("the conformance run");
    assert!(
        scenarios.len() >= 30,
        "the active suite of 0.1.16 has 30 scenarios, listed: {scenarios:?}"
    );
    assert!(
        failures.is_empty(),
        "{} conformance checks failed through the gateway:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "conformance through the gateway ({backend:?}): all {} active scenarios passed",
        scenarios.len()
    );

    // A result the gateway does not change is passed on as the upstream wrote it (the SDK
    // writes `type` first; a result parsed and encoded again would have its keys reordered).
    let passed_on = gateway
        .client
        .post(format!("{}/rpc", gateway.base))
        .bearer_auth(&gateway.admin_token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "test_image_content", "arguments": {}}}))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("a body");
    assert!(
        passed_on.contains(r#"{"content":[{"type":"image","data":"iVBOR"#),
        "{passed_on}"
    );
    drop(fixture);
    gateway.stop().await;
}

once_on_sqlite!(the_official_suite_passes_through_the_gateway);

/// Registers the upstream at `url` (`transport`), curates everything it offers into a virtual
/// server and runs every active scenario against it; every check must pass. What the upstream
/// sends about a call (logs, progress, questions) arrives on a stream that does not name the
/// call, and must still reach the client whose call it is.
async fn the_suite_passes_through(
    backend: Backend,
    (url, transport): (&str, &str),
    upstream: &str,
) {
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    let registered = gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({
                "name": format!("Conformance fixture, {upstream}"),
                "url": url,
                "transport": transport,
                "prefix_tool_names": false,
            })),
        )
        .await;
    registered.expect(StatusCode::CREATED);
    let server = gateway
        .admin(
            Method::POST,
            "/servers",
            Some(json!({
                "name": format!("Conformance, {upstream}"),
                "tool_ids": ids(&gateway, "tools").await,
                "resource_ids": ids(&gateway, "resources").await,
                "prompt_ids": ids(&gateway, "prompts").await,
            })),
        )
        .await;
    let target = Target::of(&gateway, server.expect(StatusCode::CREATED));
    let failures = tokio::task::spawn_blocking(move || {
        active_scenarios(&target)
            .iter()
            .flat_map(|scenario| failed_checks(&target, scenario))
            .collect::<Vec<String>>()
    })
    .await
    .expect("the conformance run");
    assert!(
        failures.is_empty(),
        "{} checks failed through {upstream}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    gateway.stop().await;
}

/// The suite against the same fixture registered over the legacy HTTP+SSE transport, where
/// every message arrives on the one stream.
async fn a_legacy_sse_upstream_reaches_the_client(backend: Backend) {
    setup();
    let fixture = ConformanceFixture::start();
    let sse_url = fixture.url.replace("/mcp", "/sse");
    the_suite_passes_through(backend, (&sse_url, "sse"), "a legacy SSE upstream").await;
}

once_on_sqlite!(a_legacy_sse_upstream_reaches_the_client);

/// The suite against an upstream that sends its questions and notifications on its
/// standalone GET stream (as the TypeScript SDK's `server.createMessage()` and
/// `server.elicitInput()` do): they must reach the client whose call is in flight.
async fn questions_on_the_upstreams_get_stream_reach_the_client(backend: Backend) {
    setup();
    let fixture = ConformanceFixture::start_asking_on_get_stream();
    the_suite_passes_through(
        backend,
        (&fixture.url, "streamablehttp"),
        "an upstream asking on its GET stream",
    )
    .await;
}

once_on_sqlite!(questions_on_the_upstreams_get_stream_reach_the_client);
