//! Concurrency quotas shared by replicas through Redis: what a principal holds on one replica
//! (streams, sessions) counts on the others; a place comes back when the resource goes, and a
//! replica that dies gives its places back once its leases run out.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::mcp::{LEGACY, McpClient, expect_error};
use crate::common::{self, Backend, TestDb, TestServer};

/// The Redis every machine runs.
const REDIS_URL: &str = "redis://127.0.0.1:6379";

fn listen(client: &McpClient<'_>) -> Value {
    client.modern_body(
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    )
}

/// How many leases of `kind` the admin holds in Redis now.
async fn leases(redis: &redis::aio::MultiplexedConnection, prefix: &str, kind: &str) -> u64 {
    let key = format!("{prefix}quota:{kind}:admin@example.com");
    redis::cmd("ZCARD")
        .arg(&key)
        .query_async(&mut redis.clone())
        .await
        .expect("the machine's Redis")
}

#[actix_rt::test]
async fn replicas_count_a_principals_streams_and_sessions_together() {
    let db = TestDb::new(Backend::Postgres).await;
    let prefix = format!("mcpgate-test-{}:", uuid::Uuid::new_v4().simple());
    let settings = [
        ("REDIS_URL", REDIS_URL),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("MCP_MAX_STREAMS_PER_PRINCIPAL", "2"),
        ("MCP_MAX_SESSIONS_PER_PRINCIPAL", "2"),
    ];
    let a = TestServer::start(&db, &settings).await;
    let b = TestServer::start(&db, &settings).await;
    let redis = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the machine's Redis");
    let (on_a, on_b) = (McpClient::new(&a, "/mcp"), McpClient::new(&b, "/mcp"));

    // Each replica counts in Redis once connected: a stream opened on each shows as a lease.
    let mut held = Vec::new();
    for (replica, count) in [(&on_a, 1), (&on_b, 2)] {
        let stream = common::eventually(
            "the replica counts streams in Redis",
            Duration::from_secs(10),
            || async {
                let stream = replica.modern_stream(&listen(replica)).await;
                assert_eq!(stream.status(), StatusCode::OK);
                let counted = leases(&redis, &prefix, "MCP_MAX_STREAMS_PER_PRINCIPAL").await;
                (counted == count).then_some(stream)
            },
        )
        .await;
        held.push(stream);
    }
    // One on each: a third is refused on either, naming the setting.
    let refused = on_a.modern_stream(&listen(&on_a)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("MCP_MAX_STREAMS_PER_PRINCIPAL") && message.contains("replicas"),
        "{body}"
    );
    // The stream on B closes: its place comes back, on A too (once B notices: at the stream's
    // next keep-alive, every 15 s, at the latest).
    drop(held.pop());
    common::eventually(
        "a closed stream gives its place back",
        Duration::from_secs(40),
        || async {
            let stream = on_a.modern_stream(&listen(&on_a)).await;
            (stream.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
    drop(held);

    // Sessions: one made on A, one on B; a third is refused on A.
    let (first, made) = on_a.initialize(LEGACY).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let (_, made) = on_b.initialize(LEGACY).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert_eq!(
        leases(&redis, &prefix, "MCP_MAX_SESSIONS_PER_PRINCIPAL").await,
        2
    );
    let (_, refused) = on_a.initialize(LEGACY).await;
    let message = expect_error(&refused, StatusCode::TOO_MANY_REQUESTS, -32000);
    assert!(
        message.contains("MCP_MAX_SESSIONS_PER_PRINCIPAL") && message.contains("replicas"),
        "{message}"
    );
    // The one made on A ends on B (DELETE lands there): a new one is accepted on A.
    let ended = on_b
        .verb(Method::DELETE, &[("mcp-session-id", &first)])
        .await;
    assert!(ended.status().is_success(), "{}", ended.status());
    let (_, again) = on_a.initialize(LEGACY).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    a.stop().await;
    b.stop().await;
}
