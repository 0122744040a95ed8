//! Interop with the official MCP SDKs: Python `mcp` 1.x and 2.x and the TypeScript SDK connect
//! to a virtual server over Streamable HTTP and over the legacy SSE transport, list and call a
//! REST-backed tool (served by a loopback fixture), list/read resources and list/get prompts.
//! The SDKs are pinned and installed by `tests/interop/setup.sh` into a git-ignored folder.

mod common;

use std::process::Command;

use common::sdk::{deps_dir, interop_dir, setup};
use common::world::World;
use common::{Backend, token};
use serde_json::{Value, json};

/// Runs one SDK client against `url`; returns what it printed.
async fn run_client(sdk: &str, url: &str, transport: &str) -> Value {
    run_client_with(sdk, url, transport, &[]).await
}

/// Runs one SDK client with extra arguments (a tool name and JSON arguments to call only it).
async fn run_client_with(sdk: &str, url: &str, transport: &str, extra: &[String]) -> Value {
    setup();
    let deps = deps_dir();
    let (program, args) = match sdk {
        "python-1" => (
            format!("{deps}/mcp1/bin/python"),
            vec![format!("{}/client.py", interop_dir())],
        ),
        "python-2" => (
            format!("{deps}/mcp2/bin/python"),
            vec![format!("{}/client.py", interop_dir())],
        ),
        "typescript" => ("node".to_owned(), vec![format!("{deps}/node/client.mjs")]),
        other => panic!("unknown sdk {other}"),
    };
    let url = url.to_owned();
    let transport = transport.to_owned();
    let shown_transport = transport.clone();
    let extra = extra.to_vec();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .arg(&url)
            .arg(token("admin@example.com", true))
            .arg(&transport)
            .args(&extra)
            .output()
            .expect("run the SDK client")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{sdk} over {}: exit {}\nstdout: {stdout}\nstderr: {}",
        "the client",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .expect("the client prints JSON");
    eprintln!("{sdk} over {shown_transport}: {outcome}");
    outcome
}

fn assert_session(outcome: &Value, protocol: &str) {
    assert_eq!(outcome["protocol"], protocol, "{outcome}");
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

async fn official_sdks_connect(backend: Backend) {
    let world = World::new(backend).await;
    let streamable = format!("{}{}", world.server.base, world.server_path());
    let sse = format!("{}/servers/{}/sse", world.server.base, world.server_id);

    // Python 1.x speaks the session era; 2.x probes server/discover and stays modern.
    assert_session(
        &run_client("python-1", &streamable, "streamable").await,
        "2025-11-25",
    );
    assert_session(&run_client("python-1", &sse, "sse").await, "2025-11-25");
    assert_session(
        &run_client("python-2", &streamable, "streamable").await,
        "2026-07-28",
    );
    let python2_sse = run_client("python-2", &sse, "sse").await;
    assert_eq!(
        python2_sse["tools"],
        json!(["get_weather", "echo"]),
        "{python2_sse}"
    );
    assert_session(&python2_sse, python2_sse["protocol"].as_str().unwrap());
    let typescript = run_client("typescript", &streamable, "streamable").await;
    assert_session(
        &typescript,
        typescript["protocol"].as_str().unwrap_or("2025-11-25"),
    );
    let typescript_sse = run_client("typescript", &sse, "sse").await;
    assert_eq!(
        typescript_sse["tools"],
        json!(["get_weather", "echo"]),
        "{typescript_sse}"
    );
    assert_eq!(typescript_sse["call"]["structured"]["city"], "Paris");
    world.stop().await;
}

/// `@modelcontextprotocol/server-everything` (pinned, a real process on loopback).
struct Everything {
    child: std::process::Child,
    base: String,
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_everything(transport: &str) -> Everything {
    setup();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "{}/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        deps_dir()
    );
    let child = Command::new("node")
        .arg(script)
        .arg(transport)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start server-everything");
    let everything = Everything {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    common::eventually(
        "server-everything listens",
        std::time::Duration::from_secs(30),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    everything
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
                    "url": format!("{}{path}", everything.base),
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
        for sdk in ["python-1", "python-2", "typescript"] {
            let echo = run_client_with(
                sdk,
                &endpoint,
                "streamable",
                &[
                    "everything-echo".into(),
                    json!({"message": "through the gateway"}).to_string(),
                ],
            )
            .await;
            assert_eq!(echo["is_error"], false, "{sdk}: {echo}");
            assert!(
                echo["text"][0]
                    .as_str()
                    .unwrap()
                    .contains("through the gateway"),
                "{sdk}: {echo}"
            );
            let sum = run_client_with(
                sdk,
                &endpoint,
                "streamable",
                &[
                    "everything-get-sum".into(),
                    json!({"a": 2, "b": 3}).to_string(),
                ],
            )
            .await;
            assert!(
                sum["text"][0].as_str().unwrap().contains('5'),
                "{sdk} over {transport}: {sum}"
            );
        }
        if transport == "streamableHttp" {
            // The upstream asks the client for an LLM completion mid-call; the gateway relays the
            // request to a client that declared sampling and the answer back.
            let sampled = run_client_with(
                "python-1",
                &endpoint,
                "streamable",
                &[
                    "sample".into(),
                    "everything-trigger-sampling-request".into(),
                    json!({"prompt": "say hello"}).to_string(),
                ],
            )
            .await;
            assert_eq!(sampled["is_error"], false, "{sampled}");
            assert!(
                sampled["text"][0]
                    .as_str()
                    .unwrap()
                    .contains("canned reply from the client"),
                "{sampled}"
            );
        }
        let id = registered.body["id"].as_str().unwrap();
        gateway
            .admin(reqwest::Method::DELETE, &format!("/gateways/{id}"), None)
            .await;
        drop(everything);
    }
    gateway.stop().await;
}

both_backends!(official_sdks_connect, server_everything_through_the_gateway);
