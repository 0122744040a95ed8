//! The bus's own checks: events on the wire, who is alive.

use super::*;

#[test]
fn events_round_trip_and_large_catalog_events_become_a_reload() {
    let event = Event::Catalog {
        items: vec![
            (ItemKind::Tool, "t1".into()),
            (ItemKind::Deleted, "x".into()),
        ],
    };
    let text = serde_json::to_string(&event).unwrap();
    assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
    let (outbox, mut pending) = mpsc::channel(4);
    let (inbox, _) = broadcast::channel(4);
    let cluster = Cluster {
        inner: Arc::new(Inner {
            replica: "r1".into(),
            transport: "test",
            outbox: Some(outbox),
            inbox,
            secrets: Some(SecretBox::new("the shared secret, 16+")),
            first: std::sync::Mutex::new(None),
            connected: Arc::default(),
            late: Arc::default(),
            peers: Arc::default(),
            address: std::sync::RwLock::default(),
        }),
    };
    let many = (0..500)
        .map(|n| (ItemKind::Tool, format!("{n:032}")))
        .collect();
    cluster.publish(Event::Catalog { items: many });
    let secrets = SecretBox::new("the shared secret, 16+");
    let wire = pending.try_recv().unwrap();
    let sent = open(&secrets, &wire).unwrap();
    assert_eq!(sent.event, Event::CatalogReload);
    // Its own events are not handed back.
    let link = Link {
        replica: "r1".into(),
        secrets: secrets.clone(),
        inbox: cluster.inner.inbox.clone(),
        connected: Arc::default(),
        late: Arc::default(),
        connections: AtomicU64::new(0),
        peers: cluster.inner.peers.clone(),
    };
    let mut received = cluster.subscribe();
    link.received(&wire);
    assert!(received.try_recv().is_err());
    let other = Envelope {
        from: "r2".into(),
        at: chrono::Utc::now().timestamp_millis(),
        event: Event::Revoked { jti: "j".into() },
    };
    // Signed, but sent two minutes ago: a replay.
    let replayed = Envelope {
        from: "r2".into(),
        at: other.at - 120_000,
        event: Event::Revoked { jti: "old".into() },
    };
    link.received(&seal(&secrets, &replayed));
    // Unsigned, or signed with another secret: ignored.
    link.received(&serde_json::to_string(&other).unwrap());
    link.received(&seal(&SecretBox::new("another secret, 16+"), &other));
    assert!(received.try_recv().is_err());
    link.received(&seal(&secrets, &other));
    assert!(matches!(
        received.try_recv().unwrap(),
        Received::Event(Event::Revoked { .. })
    ));
    // Whoever sends is alive; a heartbeat says only that.
    assert!(cluster.alive("r2") && cluster.alive("r1") && !cluster.alive("r3"));
    let beat = Envelope {
        from: "r3".into(),
        at: chrono::Utc::now().timestamp_millis(),
        event: Event::Heartbeat {
            address: Some("http://10.0.0.3:4444".into()),
        },
    };
    link.received(&seal(&secrets, &beat));
    assert!(cluster.alive("r3"));
    assert!(received.try_recv().is_err(), "not handed on");
    assert_eq!(cluster.peers().len(), 2);
    assert_eq!(
        cluster.address_of("r3").as_deref(),
        Some("http://10.0.0.3:4444")
    );
    assert_eq!(cluster.address_of("r2"), None, "r2 never said where it is");
    // What a gone replica held goes to this one or r3 (r2 cannot be reached), the same one each
    // time for a key, and spread over both.
    let successors: std::collections::HashSet<String> = (0..64)
        .map(|n| {
            let key = format!("session-{n}");
            let successor = cluster.successor(&key);
            assert_eq!(successor, cluster.successor(&key));
            successor
        })
        .collect();
    assert_eq!(
        successors,
        ["r1".to_owned(), "r3".to_owned()].into_iter().collect()
    );
}
