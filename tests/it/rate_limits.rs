//! Request rate limits per principal, per team and per tool: counted in Redis, so two replicas
//! on one database share one budget, or in each process without Redis.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::mcp::{McpClient, expect_error};
use crate::common::{self, Backend, TestDb, TestServer};

/// 12 a minute: a burst of two, then one every five seconds (the test ends well before).
const TWELVE: &str = "12";

async fn listed(client: &McpClient<'_>) -> common::Reply {
    client.modern("tools/list", json!({})).await
}

/// The request is refused by the limit named, with a Retry-After.
fn refused_by(reply: &common::Reply, setting: &str) {
    let message = expect_error(reply, StatusCode::TOO_MANY_REQUESTS, -32000);
    assert!(message.contains(setting), "{message}");
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "within one interval: {retry}");
}

#[actix_rt::test]
async fn two_replicas_share_one_budget_through_redis() {
    let db = TestDb::new(Backend::Postgres).await;
    let prefix = format!("mcpgate-test-{}:", uuid::Uuid::new_v4().simple());
    let settings = [
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("RATE_LIMIT_PRINCIPAL_PER_MINUTE", TWELVE),
        ("RATE_LIMIT_TOOL_PER_MINUTE", "6"),
        ("RATE_LIMIT_TEAM_PER_MINUTE", "6"),
    ];
    let a = TestServer::start(&db, &settings).await;
    let b = TestServer::start(&db, &settings).await;
    // Both count in Redis once connected (until then each counts alone): wait for a key there.
    let redis = redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the machine's Redis");
    let (on_a, on_b) = (McpClient::new(&a, "/mcp"), McpClient::new(&b, "/mcp"));
    let key = format!("{prefix}rate:principal:admin@example.com");
    for replica in [&on_a, &on_b] {
        common::eventually(
            "the replica counts in Redis",
            std::time::Duration::from_secs(10),
            || {
                let (mut redis, key) = (redis.clone(), key.clone());
                async move {
                    let _ = listed(replica).await;
                    let exists: bool = redis::cmd("EXISTS")
                        .arg(&key)
                        .query_async(&mut redis)
                        .await
                        .unwrap();
                    // The budget the test counts from is a fresh one.
                    let _: () = redis::cmd("DEL")
                        .arg(&key)
                        .query_async(&mut redis)
                        .await
                        .unwrap();
                    exists.then_some(())
                }
            },
        )
        .await;
    }

    // The admin's burst of two is spent on A and B together; the third is refused on A.
    listed(&on_a).await.expect(StatusCode::OK);
    listed(&on_b).await.expect(StatusCode::OK);
    refused_by(&listed(&on_a).await, "RATE_LIMIT_PRINCIPAL_PER_MINUTE");
    // Another principal has a budget of their own.
    let dev = common::create_user(&a, "dev@example.com", "developer").await;
    let mut as_dev = McpClient::new(&b, "/mcp");
    as_dev.token = dev.clone();
    listed(&as_dev).await.expect(StatusCode::OK);

    // Teams: two members share their team's budget (6 a minute: one at a time).
    let team = a
        .send(
            reqwest::Method::POST,
            "/teams",
            Some(&dev),
            Some(json!({"name": "Pair"})),
        )
        .await;
    let team_id = team.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let eve = common::create_user(&a, "eve@example.com", "developer").await;
    a.send(
        reqwest::Method::POST,
        &format!("/teams/{team_id}/members"),
        Some(&dev),
        Some(json!({"email": "eve@example.com"})),
    )
    .await
    .expect(StatusCode::OK);
    // Asked where the team changed (another replica learns of it over the bus a moment later).
    let mut as_eve = McpClient::new(&a, "/mcp");
    as_eve.token = eve;
    listed(&as_eve).await.expect(StatusCode::OK);
    let mut dev_on_a = McpClient::new(&a, "/mcp");
    dev_on_a.token = dev;
    refused_by(&listed(&dev_on_a).await, "RATE_LIMIT_TEAM_PER_MINUTE");

    // A tool's calls are counted for everyone together, on every replica.
    let tool = json!({"name": "slow_down", "url": "http://127.0.0.1:9/text"});
    a.admin(reqwest::Method::POST, "/tools", Some(tool))
        .await
        .expect(StatusCode::CREATED);
    let mut caller = McpClient::new(&a, "/mcp");
    caller.token = common::create_user(&a, "carol@example.com", "developer").await;
    let call = json!({"name": "slow_down", "arguments": {}});
    // The first call reaches the tool (whose service is not there: a tool error, not a limit).
    let first = caller.modern("tools/call", call.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let mut other = McpClient::new(&b, "/mcp");
    other.token = common::create_user(&a, "dan@example.com", "developer").await;
    let mut watcher = McpClient::new(&b, "/mcp");
    watcher.token = common::create_user(&a, "walt@example.com", "developer").await;
    common::eventually(
        "B serves the tool made on A",
        // The watcher's own budget allows a poll every five seconds after two.
        std::time::Duration::from_secs(15),
        || async {
            let tools = listed(&watcher).await;
            tools.body["result"]["tools"]
                .as_array()
                .is_some_and(|tools| tools.iter().any(|tool| tool["name"] == "slow_down"))
                .then_some(())
        },
    )
    .await;
    // A call's answer is an event stream, begun before the tool is looked up: the refusal
    // is its JSON-RPC error.
    let refused = other.modern("tools/call", call).await;
    let message = expect_error(&refused, StatusCode::OK, -32000);
    assert!(message.contains("RATE_LIMIT_TOOL_PER_MINUTE"), "{message}");
    a.stop().await;
    b.stop().await;
}

#[actix_rt::test]
async fn without_redis_each_replica_counts_its_own() {
    let db = TestDb::new(Backend::Sqlite).await;
    let settings = [("RATE_LIMIT_PRINCIPAL_PER_MINUTE", TWELVE)];
    let a = TestServer::start(&db, &settings).await;
    let b = TestServer::start(&db, &settings).await;
    let (on_a, on_b) = (McpClient::new(&a, "/mcp"), McpClient::new(&b, "/mcp"));
    for _ in 0..2 {
        listed(&on_a).await.expect(StatusCode::OK);
    }
    refused_by(&listed(&on_a).await, "RATE_LIMIT_PRINCIPAL_PER_MINUTE");
    listed(&on_b).await.expect(StatusCode::OK);
    a.stop().await;
    b.stop().await;
}
