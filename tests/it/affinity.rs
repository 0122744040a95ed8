//! Upstream session affinity: a session-era client that can be asked something (or subscribes)
//! gets its own upstream session for each upstream it uses, so whatever that upstream sends on
//! any of its streams reaches that client and no other. Driven with the official TypeScript SDK's client
//! (`tests/interop/node/affinity.mjs`, several clients at once) against the conformance fixture
//! sending its questions on its standalone GET stream, where nothing names the call.

use crate::common;

use std::process::Command;

use common::sdk::{ConformanceFixture, deps_dir};
use common::{Backend, TestDb, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn each_client_is_asked_only_its_own_questions(backend: Backend) {
    let fixture = ConformanceFixture::start_asking_on_get_stream();
    let db = TestDb::new(backend).await;
    let gateway = TestServer::start(&db, &[("SSRF_ALLOW_LOCALHOST", "true")]).await;
    gateway
        .admin(
            Method::POST,
            "/gateways",
            Some(json!({"name": "Asking fixture", "url": fixture.url, "prefix_tool_names": false})),
        )
        .await
        .expect(StatusCode::CREATED);
    let endpoint = format!("{}/mcp", gateway.base);
    let fixture_base = fixture.url.trim_end_matches("/mcp").to_owned();
    let token = gateway.admin_token.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(format!("{}/node/affinity.mjs", deps_dir()))
            .args([&endpoint, &token, &fixture_base])
            .output()
            .expect("run the SDK clients")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("the clients print JSON");

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
        json!(["for alpha", "for alpha again"]),
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
