//! Requests forwarded between replicas: a call parked on one replica (a 2026-07-28 call waiting
//! for its client's answer) is resumed by a retry that lands on another; a session whose own
//! upstream sessions live on the replica that made it has its calls served there, wherever its
//! requests land; when that replica is gone, the client gets a clear error (a parked call) or
//! one of the others takes the session over (the same one whichever replica the call lands on),
//! never a hang.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::mcp::{LEGACY, McpClient, read_events};
use crate::common::replicas::{Bus, Replicas};
use crate::common::sdk::ConformanceFixture;
use crate::common::{self, TestServer};

/// Each replica's id, as it names itself.
async fn replica_id(server: &TestServer) -> String {
    let status = server.admin(Method::GET, "/admin/replica", None).await;
    status.expect(StatusCode::OK)["replica"]
        .as_str()
        .expect("a replica id")
        .to_owned()
}

/// The fixture's count of upstream sessions opened so far.
async fn sessions_opened(fixture_url: &str) -> u64 {
    let base = fixture_url.trim_end_matches("/mcp");
    let stats: Value = reqwest::get(format!("{base}/stats"))
        .await
        .expect("the fixture answers")
        .json()
        .await
        .expect("JSON");
    stats["opened"].as_u64().expect("a count")
}

/// A client's answer to the fixture's sampling question.
fn sampled(text: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": text}, "model": "test"})
}

/// A session-era `tools/call` of the fixture's sampling tool in `session`, POSTed to `server`:
/// the question it asks is answered through `answering` (another replica); returns the id the
/// question came with and the call's text.
async fn sampling_call(
    server: &TestServer,
    answering: &TestServer,
    session: &str,
    prompt: &str,
) -> (String, String) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "fixture-test_sampling", "arguments": {"prompt": prompt}}});
    let mut response = server
        .client
        .post(format!("{}/mcp", server.base))
        .bearer_auth(&server.admin_token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", LEGACY)
        .json(&body)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let asked = read_events(&mut response, 1).await;
    let question: Value = serde_json::from_str(&asked[0].1).expect("JSON");
    assert_eq!(question["method"], "sampling/createMessage", "{question}");
    let question_id = question["id"].as_str().expect("a gateway id").to_owned();
    let answer = json!({"jsonrpc": "2.0", "id": question_id, "result": sampled("from the client")});
    let answered = McpClient::new(answering, "/mcp")
        .post(
            answer,
            &[
                ("mcp-session-id", session),
                ("mcp-protocol-version", LEGACY),
            ],
        )
        .await;
    assert_eq!(answered.status, StatusCode::ACCEPTED, "{}", answered.body);
    let done = read_events(&mut response, 1).await;
    let done: Value = serde_json::from_str(&done[0].1).expect("JSON");
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a result: {done}"))
        .to_owned();
    (question_id, text)
}

/// A 2026-07-28 `tools/call` of the fixture's sampling tool, from a client that can sample.
fn modern_sampling(client: &McpClient<'_>, extra: Value) -> Value {
    let mut params = json!({"name": "fixture-test_sampling", "arguments": {"prompt": "hi"}});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        params[key] = value;
    }
    let mut body = client.modern_body("tools/call", params);
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({"sampling": {}});
    body
}

async fn requests_are_served_where_their_state_lives(bus: Bus) {
    // Health checks would open upstream sessions of their own: only calls do here.
    let mut replicas = Replicas::start_with(bus, &[("HEALTH_CHECK_INTERVAL", "3600")]).await;
    let asking = ConformanceFixture::start();
    common::register_gateway(&replicas.servers[0], "Fixture", &asking.url).await;
    replicas
        .serve_tools(&["fixture-test_sampling", "fixture-test_simple_text"])
        .await;
    let [a, b, c] = &replicas.servers[..] else {
        unreachable!("three replicas")
    };
    let (id_a, id_b) = (replica_id(a).await, replica_id(b).await);
    for server in [a, b, c] {
        // Each replica has heard the others say where they are, and has its shared session
        // with the upstream.
        common::eventually(
            "the replicas hear each other",
            Duration::from_secs(20),
            || async {
                let status = server.admin(Method::GET, "/admin/replica", None).await;
                (status.body["peers"].as_array().map(Vec::len) == Some(2)).then_some(())
            },
        )
        .await;
        let warm = McpClient::new(server, "/mcp")
            .modern(
                "tools/call",
                json!({"name": "fixture-test_simple_text", "arguments": {}}),
            )
            .await;
        let warm = warm.expect(StatusCode::OK);
        assert_eq!(warm["result"]["content"][0]["type"], "text", "{warm}");
    }

    // A session made on A by a client that can be asked: its calls run on A, whichever
    // replica they land on, over the one upstream session of its own A made.
    let on_a = McpClient::new(a, "/mcp");
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": LEGACY, "capabilities": {"sampling": {}},
        "clientInfo": {"name": "mcpgate-tests", "version": "1"}}});
    let made = on_a.post(initialize, &[]).await;
    let session = made.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let opened = sessions_opened(&asking.url).await;
    for (server, answering, prompt) in [(b, c, "via B"), (c, a, "via C"), (a, b, "on A")] {
        let (question, text) = sampling_call(server, answering, &session, prompt).await;
        assert!(
            question.starts_with(&format!("mcpgate-{id_a}-")),
            "the question was asked on A ({id_a}): {question}"
        );
        assert_eq!(text, "LLM response: from the client");
    }
    assert_eq!(
        sessions_opened(&asking.url).await,
        opened + 1,
        "one upstream session of its own, on A"
    );

    // A legacy HTTP+SSE session whose stream is on A: a call POSTed to B runs on A, its
    // question and its result reach the stream, the answer comes through C.
    let mut sse = a
        .client
        .get(format!("{}/sse", a.base))
        .bearer_auth(&a.admin_token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("a stream");
    let endpoint = read_events(&mut sse, 1).await.remove(0).1;
    let post_to = |server: &TestServer, body: Value| {
        server
            .client
            .post(format!("{}{endpoint}", server.base))
            .bearer_auth(&server.admin_token)
            .json(&body)
            .send()
    };
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {"sampling": {}},
        "clientInfo": {"name": "mcpgate-tests", "version": "1"}}});
    assert_eq!(
        post_to(a, initialize).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    read_events(&mut sse, 1).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "fixture-test_sampling", "arguments": {"prompt": "over SSE"}}});
    assert_eq!(
        post_to(b, call).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let asked: Value = serde_json::from_str(&read_events(&mut sse, 1).await[0].1).unwrap();
    let question = asked["id"].as_str().expect("a gateway id").to_owned();
    assert!(question.starts_with(&format!("mcpgate-{id_a}-")), "{asked}");
    let answer = json!({"jsonrpc": "2.0", "id": question, "result": sampled("over SSE too")});
    assert_eq!(
        post_to(c, answer).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let done: Value = serde_json::from_str(&read_events(&mut sse, 1).await[0].1).unwrap();
    assert_eq!(done["id"], 2, "{done}");
    assert_eq!(
        done["result"]["content"][0]["text"],
        "LLM response: over SSE too"
    );
    drop(sse);

    // A 2026-07-28 call parked on B is resumed by a retry that lands on C.
    let on_b = McpClient::new(b, "/mcp");
    let on_c = McpClient::new(c, "/mcp");
    let interim = on_b.send_modern(modern_sampling(&on_b, json!({}))).await;
    let interim = interim.expect(StatusCode::OK)["result"].clone();
    assert_eq!(interim["resultType"], "input_required", "{interim}");
    let state = interim["requestState"]
        .as_str()
        .expect("a state")
        .to_owned();
    assert!(state.contains(&id_b), "issued by B ({id_b}): {state}");
    let key = interim["inputRequests"]
        .as_object()
        .and_then(|requests| requests.keys().next().cloned())
        .expect("a question");
    let retry = json!({"inputResponses": {key.clone(): sampled("resumed elsewhere")}, "requestState": state});
    let done = on_c.send_modern(modern_sampling(&on_c, retry)).await;
    let done = done.expect(StatusCode::OK);
    assert_eq!(
        done["result"]["content"][0]["text"], "LLM response: resumed elsewhere",
        "{done}"
    );
    // A stamp that does not verify is refused.
    let forged = on_c
        .post(
            modern_sampling(&on_c, json!({})),
            &[("x-mcpgate-forwarded", "00.e30")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);

    // A dies: once B and C count it gone, one of them takes the session over — the same one
    // whichever the call lands on (with an upstream session of its own there).
    let mut home = replicas.children.remove(0);
    home.start_kill().expect("SIGKILL");
    home.wait().await.expect("the killed replica is reaped");
    let id_c = replica_id(c).await;
    for server in [b, c] {
        common::eventually("A is counted gone", Duration::from_secs(30), || async {
            let status = server.admin(Method::GET, "/admin/replica", None).await;
            let peers = status.body["peers"].as_array().cloned().unwrap_or_default();
            let gone = !peers.iter().any(|peer| peer["replica"] == id_a.as_str());
            gone.then_some(())
        })
        .await;
    }
    let taken_over_by = |question: &str| {
        question
            .strip_prefix("mcpgate-")
            .and_then(|rest| rest.rsplit_once('-'))
            .map(|(replica, _)| replica.to_owned())
            .unwrap_or_default()
    };
    let (via_b, text) = sampling_call(b, c, &session, "after A, via B").await;
    assert_eq!(text, "LLM response: from the client");
    let (via_c, text) = sampling_call(c, b, &session, "after A, via C").await;
    assert_eq!(text, "LLM response: from the client");
    let successor = taken_over_by(&via_b);
    assert!(successor == id_b || successor == id_c, "{via_b}");
    assert_eq!(
        taken_over_by(&via_c),
        successor,
        "the same replica: {via_c}"
    );

    // B parks another call, then dies: a retry on C is told at once that the call is lost.
    let interim = on_b.send_modern(modern_sampling(&on_b, json!({}))).await;
    let state = interim.expect(StatusCode::OK)["result"]["requestState"].clone();
    let mut victim = replicas.children.remove(0);
    victim.start_kill().expect("SIGKILL");
    victim.wait().await.expect("the killed replica is reaped");
    let retry = json!({"inputResponses": {key: sampled("too late")}, "requestState": state});
    let started = Instant::now();
    let lost = on_c.send_modern(modern_sampling(&on_c, retry)).await;
    let message = lost.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("is gone") && message.contains("without inputResponses"),
        "{}",
        lost.body
    );
    assert!(started.elapsed() < Duration::from_secs(15), "never a hang");
    replicas.servers.drain(..2);
    replicas.stop().await;
}

mod redis {
    use super::*;

    #[actix_rt::test]
    async fn requests_are_served_where_their_state_lives() {
        super::requests_are_served_where_their_state_lives(Bus::Redis).await;
    }
}

mod postgres_notify {
    use super::*;

    #[actix_rt::test]
    async fn requests_are_served_where_their_state_lives() {
        super::requests_are_served_where_their_state_lives(Bus::Postgres).await;
    }
}
