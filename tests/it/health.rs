//! Honest upstream health: calls that fail mark an upstream offline at once (not after
//! `HEALTH_CHECK_INTERVAL` x `UNHEALTHY_THRESHOLD`), with the reason and its time, in the REST
//! API and on the console's dashboard; an answer marks it online again.

use crate::common;
use crate::federation::{register, rpc_call};

use common::world::World;
use common::{Backend, TestDb, TestServer, eventually};
use reqwest::Method;
use serde_json::json;

async fn failed_calls_mark_an_upstream_offline_at_once(backend: Backend) {
    let upstream = World::new(backend).await;
    let proxy = common::proxy::Proxy::before(&upstream).await;
    let db = TestDb::new(backend).await;
    // The periodic health check is out of the picture: only calls can tell.
    let gateway = TestServer::start(
        &db,
        &[
            ("HEALTH_CHECK_INTERVAL", "3600"),
            ("UPSTREAM_CIRCUIT_RESET_SECONDS", "1"),
        ],
    )
    .await;
    let id = register(&gateway, &upstream, "Desk", Some(proxy.port)).await;
    let path = format!("/gateways/{id}");
    let weather = json!({"city": "Paris"});
    let answered = rpc_call(&gateway, 1, "desk-get_weather", weather.clone()).await;
    assert_eq!(answered["result"]["isError"], false, "{answered}");

    proxy.cut();
    for attempt in 0..3 {
        let failed = rpc_call(&gateway, 2 + attempt, "desk-get_weather", weather.clone()).await;
        assert_eq!(failed["result"]["isError"], true, "{failed}");
    }
    let wait = std::time::Duration::from_secs(10);
    let down = eventually(
        "the failed calls mark the upstream offline",
        wait,
        || async {
            let view = gateway.admin(Method::GET, &path, None).await.body;
            (view["reachable"] == false).then_some(view)
        },
    )
    .await;
    let reason = down["last_error"].as_str().expect("the reason is recorded");
    assert!(
        !reason.is_empty() && down["last_error_at"].is_string(),
        "{down}"
    );
    let dashboard = crate::console::admin_page(&gateway, "/admin").await;
    assert!(
        dashboard.contains("offline") && dashboard.contains(&tera_escaped(reason)),
        "the dashboard shows the upstream offline with the reason: {dashboard}"
    );

    proxy.restore();
    eventually("an answer marks it online again", wait, || async {
        let call = rpc_call(&gateway, 9, "desk-get_weather", weather.clone()).await;
        let view = gateway.admin(Method::GET, &path, None).await.body;
        (call["result"]["isError"] == false && view["reachable"] == true).then_some(())
    })
    .await;
    gateway.stop().await;
    upstream.stop().await;
}

/// `text` as the console's templates write it into HTML.
fn tera_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2F;")
}

both_backends!(failed_calls_mark_an_upstream_offline_at_once);
