//! The DbActor under failure, over HTTP against the real server: a database outage (503 with
//! Retry-After, breaker, recovery without restart, no acknowledged write lost), transient
//! failures retried invisibly, deadlines that detach instead of cancelling, panics contained,
//! and the one rule (no connection held while a handler waits).

use crate::common;

use std::time::Duration;

use common::proxy::Proxy;
use common::{Backend, TestDb, TestServer, eventually, pg_connect};
use mcpgate::actors::db::DbError;
use mcpgate::db::testing::{Explodes, Sleeps};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tool(name: &str) -> serde_json::Value {
    json!({"name": name, "url": "https://api.example.com/x"})
}

#[actix_rt::test]
async fn postgres_outage_gives_503_then_recovers_without_losing_writes() {
    let db = TestDb::new(Backend::Postgres).await;
    let proxy = Proxy::start(format!("{}:{}", common::PG_HOST, common::PG_PORT)).await;
    let server = TestServer::start_on_url(
        &db.url_via_port(proxy.port),
        &[
            ("DB_POOL_TIMEOUT", "1"),
            ("DB_MAX_RETRIES", "1"),
            ("DB_RETRY_INTERVAL_MS", "50"),
            ("DB_MAX_BACKOFF_SECONDS", "0.2"),
            ("DB_CIRCUIT_FAILURE_THRESHOLD", "3"),
            ("DB_CIRCUIT_RESET_SECONDS", "1"),
        ],
    )
    .await;

    let mut acknowledged = Vec::new();
    for index in 0..3 {
        let created = server
            .admin(
                Method::POST,
                "/tools",
                Some(tool(&format!("before_{index}"))),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        acknowledged.push(created.body["id"].as_str().unwrap().to_owned());
    }

    proxy.cut();
    for index in 0..6 {
        let write = server
            .admin(
                Method::POST,
                "/tools",
                Some(tool(&format!("during_{index}"))),
            )
            .await;
        match write.status {
            StatusCode::CREATED => acknowledged.push(write.body["id"].as_str().unwrap().to_owned()),
            StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after: u64 = write.headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry_after >= 1);
                assert_eq!(write.code(), "unavailable");
            }
            other => panic!(
                "a write during the outage must get 201 or 503, got {other}: {}",
                write.body
            ),
        }
        let read = server.admin(Method::GET, "/tools", None).await;
        assert_eq!(
            read.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            read.body
        );
        assert!(read.headers.contains_key("retry-after"));
    }
    let stats = server.pool_stats().await;
    assert!(
        stats["breaker"]["times_opened"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        stats["breaker_rejections"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    let ready = server.send(Method::GET, "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "not_ready");
    assert!(ready.body["reason"].as_str().unwrap().contains("database"));

    proxy.restore();
    eventually(
        "the gateway recovers by itself",
        Duration::from_secs(30),
        || async {
            let reply = server.admin(Method::GET, "/tools?limit=500", None).await;
            (reply.status == StatusCode::OK).then_some(())
        },
    )
    .await;
    let listed = server.admin(Method::GET, "/tools?limit=500", None).await;
    let stored: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    for id in &acknowledged {
        assert!(
            stored.contains(&id.as_str()),
            "acknowledged write {id} was lost"
        );
    }
    let after = server
        .admin(Method::POST, "/tools", Some(tool("after")))
        .await;
    assert_eq!(after.status, StatusCode::CREATED);
    let stats = server.pool_stats().await;
    assert_eq!(stats["breaker"]["state"], "closed", "{stats}");
    let ready = server.send(Method::GET, "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    server.stop().await;
}

#[actix_rt::test]
async fn killed_connections_are_retried_invisibly() {
    let db = TestDb::new(Backend::Postgres).await;
    let server = TestServer::start(&db, &[("DB_MAX_RETRIES", "3")]).await;
    let created = server
        .admin(Method::POST, "/tools", Some(tool("warm")))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);

    let admin = pg_connect("postgres").await;
    let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = $1 AND application_name = 'mcpgate'";
    let killed: i64 = admin
        .query_one(terminate, &[&db.name])
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1, "the pool had a connection to kill");

    let read = server.admin(Method::GET, "/tools", None).await;
    assert_eq!(
        read.status,
        StatusCode::OK,
        "a read after a killed connection succeeds"
    );
    assert_eq!(read.body["items"].as_array().unwrap().len(), 1);
    let retries_after_read = server.pool_stats().await["retries"].as_u64().unwrap();
    assert!(retries_after_read >= 1, "the read was retried");

    let killed: i64 = admin
        .query_one(terminate, &[&db.name])
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1);
    let write = server
        .admin(Method::POST, "/tools", Some(tool("after_kill")))
        .await;
    assert_eq!(
        write.status,
        StatusCode::CREATED,
        "a write whose connection died before BEGIN is retried"
    );
    let stats = server.pool_stats().await;
    assert!(
        stats["retries"].as_u64().unwrap() > retries_after_read,
        "{stats}"
    );
    assert_eq!(stats["breaker"]["state"], "closed");
    let listed = server.admin(Method::GET, "/tools", None).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        2,
        "written exactly once"
    );

    // The whole pool killed under concurrent load: each dead connection is discarded as it is
    // found and the work moves to another; the breaker does not open (the database is fine).
    let burst = |round: usize| {
        let server = &server;
        futures_util::future::join_all((0..30).map(move |n| async move {
            if n % 3 == 0 {
                server
                    .admin(
                        Method::POST,
                        "/tools",
                        Some(tool(&format!("burst_{round}_{n}"))),
                    )
                    .await
                    .status
            } else {
                server.admin(Method::GET, "/tools", None).await.status
            }
        }))
    };
    let warmed = burst(0).await;
    assert!(
        warmed.iter().all(|status| status.is_success()),
        "{warmed:?}"
    );
    assert!(server.pool_stats().await["connections"].as_u64().unwrap() > 1);
    let killed: i64 = admin
        .query_one(terminate, &[&db.name])
        .await
        .unwrap()
        .get(0);
    assert!(killed > 1, "several pooled connections were killed");
    let after = burst(1).await;
    assert!(
        after.iter().all(|status| status.is_success()),
        "every request after the kill succeeds: {after:?}"
    );
    let stats = server.pool_stats().await;
    assert_eq!(stats["breaker"]["times_opened"], 0, "{stats}");
    server.stop().await;
}

async fn panic_fails_one_request_and_the_actor_keeps_serving(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[]).await;
    let outcome = server.running().db().run(Explodes {}).await;
    assert!(
        matches!(outcome, Err(DbError::Unavailable { .. })),
        "{outcome:?}"
    );
    server
        .running()
        .db()
        .ping()
        .await
        .expect("the actor still serves");
    let created = server
        .admin(Method::POST, "/tools", Some(tool("after_panic")))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let stats = server.pool_stats().await;
    assert_eq!(stats["panics"], 1);
    assert_eq!(
        stats["breaker"]["state"], "closed",
        "a bug is not an outage"
    );
    server.stop().await;
}

async fn deadline_detaches_without_leaking_a_transaction(backend: Backend) {
    let db = TestDb::new(backend).await;
    // The unit's time on its connection is counted from checkout: a long pool timeout does not
    // lengthen it (the unit is cut at DB_QUERY_TIMEOUT_MS, not at pool timeout + that).
    let server = TestServer::start(
        &db,
        &[("DB_QUERY_TIMEOUT_MS", "300"), ("DB_POOL_TIMEOUT", "60")],
    )
    .await;
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        server.running().db().run(Sleeps {}),
    )
    .await
    .expect("the unit is cut at its query deadline, long before the pool timeout");
    assert!(matches!(outcome, Err(DbError::Timeout(_))), "{outcome:?}");
    // Other work goes on while the detached unit finishes or is cancelled.
    let created = server
        .admin(Method::POST, "/tools", Some(tool("after_deadline")))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(
        server.pool_stats().await["deadlines_exceeded"]
            .as_u64()
            .unwrap()
            >= 1
    );
    if backend == Backend::Postgres {
        let client = pg_connect("postgres").await;
        eventually("the cancelled query leaves no backend busy or idle in transaction", Duration::from_secs(20), || async {
            let busy: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND (query LIKE '%pg_sleep(60)%' AND state = 'active' OR state LIKE 'idle in transaction%')",
                    &[&db.name],
                )
                .await
                .unwrap()
                .get(0);
            (busy == 0).then_some(())
        })
        .await;
    }
    server.stop().await;
}

/// Sends the headers and half the body of a POST, leaving the handler waiting for the rest.
async fn start_slow_post(addr: &str, token: &str, body: &[u8]) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /tools HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream
}

async fn no_connection_is_held_while_a_handler_waits(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = TestServer::start(&db, &[("DB_POOL_SIZE", "2")]).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let baseline = server.pool_stats().await;

    let mut streams = Vec::new();
    let mut bodies = Vec::new();
    for index in 0..20 {
        let body = serde_json::to_vec(&tool(&format!("slow_{index}"))).unwrap();
        streams.push(start_slow_post(&addr, &server.admin_token, &body).await);
        bodies.push(body);
    }
    // Twenty requests are in flight, ten times the pool size; sample the pool meanwhile.
    for _ in 0..10 {
        let stats = server.pool_stats().await;
        assert_eq!(
            stats["in_use"], 0,
            "a connection is held while handlers wait: {stats}"
        );
        assert_eq!(stats["waiting"], 0, "{stats}");
        assert_eq!(
            stats["units_ok"], baseline["units_ok"],
            "no database work started: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (stream, body) in streams.iter_mut().zip(&bodies) {
        stream.write_all(&body[body.len() / 2..]).await.unwrap();
    }
    for mut stream in streams {
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    }
    let stats = server.pool_stats().await;
    assert_eq!(stats["in_use"], 0);
    assert_eq!(stats["checkout_timeouts"], 0);
    let listed = server.admin(Method::GET, "/tools?limit=100", None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 20);
    server.stop().await;
}

both_backends!(
    panic_fails_one_request_and_the_actor_keeps_serving,
    deadline_detaches_without_leaking_a_transaction,
    no_connection_is_held_while_a_handler_waits,
);
