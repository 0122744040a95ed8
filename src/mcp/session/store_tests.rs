//! The session store: ids any replica serves, views, ends.

use super::*;
use crate::mcp::session::capability_for;
use crate::protocol::LogLevel;
use crate::quota::Quota;

fn store(ttl: Duration, max: usize, secret: &str, max_age: Duration) -> SessionStore {
    let upstream = UpstreamSessions {
        quota: Quota::new("upstream sessions", ("PER", 1), ("ALL", 1)),
        answer_timeout: Duration::from_secs(1),
    };
    let ids = SessionIds {
        secrets: SecretBox::new(secret),
        max_age,
        cluster: Cluster::single(),
        leases: None,
    };
    SessionStore::new(ttl, max, 100, upstream, ids)
}

const SECRET: &str = "a shared secret of sixteen+";
const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn sessions_are_bounded_owned_and_expire() {
    let idle = store(Duration::from_millis(0), 2, SECRET, DAY);
    let a = idle
        .create(Scope::All, "a@example.com", "2025-11-25", Value::Null)
        .await
        .unwrap();
    assert!(
        idle.get(&a.id, "b@example.com", &Scope::All).is_none(),
        "owner checked"
    );
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(idle.sweep(), 1, "idle past the TTL: the view goes");
    assert!(idle.is_empty());
    assert!(
        idle.get(&a.id, "a@example.com", &Scope::All).is_some(),
        "and the id opens it again"
    );
    let kept = idle
        .create(Scope::All, "a@example.com", "2025-11-25", Value::Null)
        .await
        .unwrap();
    kept.subscribe("docs://a".into());
    std::thread::sleep(Duration::from_millis(2));
    idle.sweep();
    assert!(
        Arc::ptr_eq(
            &kept,
            &idle.get(&kept.id, "a@example.com", &Scope::All).unwrap()
        ),
        "a view that keeps a subscription stays"
    );
    let one = store(Duration::from_secs(60), 1, SECRET, DAY);
    one.create(Scope::All, "a@example.com", "2025-11-25", Value::Null)
        .await
        .unwrap();
    assert!(
        one.create(Scope::All, "a@example.com", "2025-11-25", Value::Null)
            .await
            .is_err(),
        "bounded"
    );
}

/// Another replica (a store with the same secret) serves a session from its id alone:
/// principal, endpoint, version and capabilities; not with another secret, not once ended,
/// not past its age.
#[tokio::test]
async fn any_replica_serves_a_session_from_its_id() {
    let here = store(Duration::from_secs(60), 10, SECRET, DAY);
    let scope = Scope::Server("srv".into());
    let made = here
        .create(
            scope.clone(),
            "a@example.com",
            "2025-06-18",
            serde_json::json!({"sampling": {}}),
        )
        .await
        .unwrap();
    let there = store(Duration::from_secs(60), 10, SECRET, DAY);
    assert!(there.get(&made.id, "b@example.com", &scope).is_none());
    assert!(there.get(&made.id, "a@example.com", &Scope::All).is_none());
    let served = there.get(&made.id, "a@example.com", &scope).unwrap();
    assert_eq!(served.version, "2025-06-18");
    assert!(served.client_supports("sampling"));
    assert!(!served.client_supports("roots"));
    assert!(!served.sse);
    let legacy = here
        .create_sse(Scope::All, "a@example.com", "2024-11-05")
        .await
        .unwrap();
    let opened = there.get(&legacy.id, "a@example.com", &Scope::All).unwrap();
    assert!(
        opened.sse,
        "a legacy SSE session is known as one everywhere"
    );
    let stranger = store(
        Duration::from_secs(60),
        10,
        "another secret of sixteen",
        DAY,
    );
    assert!(stranger.get(&made.id, "a@example.com", &scope).is_none());
    assert!(
        there
            .get("0123456789abcdef", "a@example.com", &scope)
            .is_none()
    );
    // Ended elsewhere: refused here from then on.
    there.apply(&made.id, SessionChange::Ended);
    assert!(there.get(&made.id, "a@example.com", &scope).is_none());
    let aged = store(Duration::from_secs(60), 10, SECRET, Duration::ZERO);
    let old = aged
        .create(Scope::All, "a@example.com", "2025-11-25", Value::Null)
        .await
        .unwrap();
    assert!(
        here.get(&old.id, "a@example.com", &Scope::All).is_none(),
        "expired"
    );
}

/// What another replica tells reaches the view here: made from the id when it is new.
#[tokio::test]
async fn other_replicas_changes_reach_the_view() {
    let here = store(Duration::from_secs(60), 10, SECRET, DAY);
    let made = here
        .create(Scope::All, "a@example.com", "2025-11-25", Value::Null)
        .await
        .unwrap();
    let there = store(Duration::from_secs(60), 10, SECRET, DAY);
    there.apply(&made.id, SessionChange::Level("debug".into()));
    there.apply(&made.id, SessionChange::Subscribe("docs://a".into()));
    there.apply(
        &made.id,
        SessionChange::Capabilities(serde_json::json!({"roots": {}})),
    );
    let view = there.get(&made.id, "a@example.com", &Scope::All).unwrap();
    assert_eq!(view.log_level(), Some(LogLevel::Debug));
    assert!(view.is_subscribed("docs://a"));
    assert!(view.client_supports("roots"));
    // A message for a session a replica does not serve is nobody's business there.
    let third = store(Duration::from_secs(60), 10, SECRET, DAY);
    third.apply(&made.id, SessionChange::Deliver(serde_json::json!({})));
    assert!(third.is_empty());
}

/// A session gets upstream sessions of its own only once it needs them: its client can be
/// asked something, or keeps a log level upstream.
#[tokio::test]
async fn only_a_client_that_can_be_asked_or_keeps_state_gets_its_own_upstream_sessions() {
    let store = store(Duration::from_secs(60), 10, SECRET, DAY);
    let plain = store
        .create(
            Scope::All,
            "a@example.com",
            "2025-11-25",
            serde_json::json!({"sampling": null}),
        )
        .await
        .unwrap();
    assert!(plain.affinity().is_none());
    plain.set_log_level(LogLevel::Debug);
    assert!(plain.affinity().is_some(), "a log level kept upstream");
    let asking = store
        .create(
            Scope::All,
            "a@example.com",
            "2025-11-25",
            serde_json::json!({"elicitation": {}}),
        )
        .await
        .unwrap();
    let first = asking.affinity().unwrap();
    assert!(
        Arc::ptr_eq(&first, &asking.affinity().unwrap()),
        "made once"
    );
    assert_eq!(capability_for("roots/list"), Some("roots"));
    assert_eq!(capability_for("tools/call"), None);
}
