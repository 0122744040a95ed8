//! The history's unit tests.
use super::*;

fn call(at: &str, ms: f64, success: bool, tool: &str) -> ToolMetricRow {
    ToolMetricRow {
        id: "x".into(),
        tool_name: tool.into(),
        gateway_id: Some("g".into()),
        started_at: NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S").unwrap(),
        duration_ms: ms,
        success,
        error: (!success).then(|| "connection refused".into()),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[test]
fn quantiles_are_within_one_percent() {
    let mut history = History::new("a".into());
    // 1..=1000 ms: p50 ≈ 500, p95 ≈ 950, p99 ≈ 990.
    for ms in 1..=1000 {
        history.count(&call("2026-12-04 10:00:00", f64::from(ms), true, "t"), None);
    }
    let view = history.view(Range::Hour, at("2026-12-04T10:30:00Z"));
    let tool = &view.tools[0];
    assert_eq!(tool.calls, 1000);
    for (got, want) in [
        (tool.p50_ms, 500.0),
        (tool.p95_ms, 950.0),
        (tool.p99_ms, 990.0),
    ] {
        let got = got.unwrap();
        assert!((got - want).abs() <= want * 0.02, "{got} vs {want}");
    }
    assert_eq!(tool.mean_ms, Some(500.5));
}

#[test]
fn a_restart_reads_back_what_was_written_without_counting_twice() {
    let mut first = History::new("first".into());
    first.count(&call("2026-12-04 09:10:00", 10.0, true, "t"), Some("s"));
    first.count(&call("2026-12-04 10:05:00", 20.0, false, "t"), Some("s"));
    let written = first.take_dirty();
    // all/minute ×2, all/hour ×2, tool ×2, server ×2, upstream ×2.
    assert_eq!(written.len(), 10, "{written:#?}");
    assert!(first.take_dirty().is_empty(), "written once");
    first.count(&call("2026-12-04 10:06:00", 30.0, true, "t"), None);
    let again = first.take_dirty();
    assert_eq!(again.len(), 4, "only what changed: {again:#?}");

    // The stored state is the upsert of both batches.
    let mut stored: BTreeMap<(i32, i64, String, String), RollupRow> = BTreeMap::new();
    for row in written.into_iter().chain(again) {
        stored.insert(
            (row.width, row.bucket, row.scope.clone(), row.key.clone()),
            row,
        );
    }
    let stored: Vec<RollupRow> = stored.into_values().collect();
    let mut second = History::new("second".into());
    second.load(&stored);
    second.count(&call("2026-12-04 10:20:00", 40.0, true, "t"), None);
    let view = second.view(Range::Day, at("2026-12-04T10:30:00Z"));
    let tool = &view.tools[0];
    assert_eq!((tool.calls, tool.failures), (4, 1));
    assert_eq!(tool.last_error.as_deref(), Some("connection refused"));
    // Of 10, 20, 30 and 40 ms the p99 is the third (rank ⌊0.99 × 3⌋), within 1 %.
    assert!((tool.p99_ms.unwrap() - 30.0).abs() < 0.3, "{tool:?}");
    assert_eq!(view.servers[0].calls, 2);
    let total: u64 = view.points.iter().map(|point| point.calls).sum();
    assert_eq!(total, 4);
    assert_eq!(view.points.len(), 96);
    // Its own rows carry only its own call.
    let own = second.take_dirty();
    assert!(
        own.iter()
            .all(|row| row.instance == "second" && row.calls == 1)
    );
    // A process's own rows are not read back as another's.
    let mut same = History::new("second".into());
    same.load(&own);
    assert!(
        same.view(Range::Hour, at("2026-12-04T10:30:00Z"))
            .tools
            .is_empty()
    );
}

#[test]
fn ranges_have_their_points_and_old_intervals_are_forgotten() {
    let mut history = History::new("a".into());
    history.count(&call("2026-11-28 10:00:00", 1.0, true, "t"), None);
    history.count(&call("2026-12-04 09:59:00", 1.0, true, "t"), None);
    history.count(&call("2026-12-04 10:00:00", 1.0, false, "t"), None);
    let now = at("2026-12-04T10:00:30Z");
    let hour = history.view(Range::Hour, now);
    assert_eq!(hour.points.len(), 60);
    assert_eq!(hour.points[59].start, at("2026-12-04T10:00:00Z"));
    assert_eq!((hour.points[59].calls, hour.points[59].failures), (1, 1));
    assert_eq!(hour.points[58].calls, 1);
    let week = history.view(Range::Week, now);
    assert_eq!(week.points.len(), 168);
    assert_eq!(week.points.iter().map(|p| p.calls).sum::<u64>(), 3);
    assert_eq!(week.points[23].start, at("2026-11-28T10:00:00Z"));
    assert_eq!(week.points[23].calls, 1);
    // The tables cover the last day only.
    assert_eq!(week.tools[0].calls, 2);
    // A call a week later forgets the first day.
    history.count(&call("2026-12-05 10:00:00", 1.0, true, "t"), None);
    assert_eq!(history.own.hours.len(), 3);
    assert!(history.own.keyed[0]["t"].len() <= KEYED_HOURS_KEPT as usize);
}
