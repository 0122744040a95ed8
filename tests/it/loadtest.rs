//! The load-test harness (`loadtest/`) cannot rot: each scenario runs in its smoke version
//! against the real `mcpgate` binary on a fresh PostgreSQL database, and its JSON report must
//! be complete. Speed and timing are never asserted here; that is what the reports are for.
//! PostgreSQL must run on 127.0.0.1:5432 (trust auth): without it these tests fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpgate_loadtest::client::{Failure, Kind};
use mcpgate_loadtest::recorder::Event;
use mcpgate_loadtest::recovery::kind_recovery;
use mcpgate_loadtest::scenario::fastpath::{self, ClientEra, FastpathConfig};
use mcpgate_loadtest::scenario::faults::{self, FaultsConfig};
use mcpgate_loadtest::scenario::instructions::{self, InstructionsConfig};
use mcpgate_loadtest::scenario::registry::{self, RegistryConfig};
use mcpgate_loadtest::scenario::replicas::{self, ReplicasConfig};
use mcpgate_loadtest::scenario::soak::{self, SoakConfig};
use mcpgate_loadtest::scenario::storm::{self, StormConfig};
use mcpgate_loadtest::scenario::{Harness, Outcome, ScenarioConfig};
use mcpgate_loadtest::units::DelayRange;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_mcpgate");

fn harness(reports: &Path) -> Harness {
    let mut harness = Harness::new(PathBuf::from(BINARY), reports.to_owned());
    harness.request_timeout = Duration::from_secs(30);
    harness.http_workers = Some(2);
    harness
}

/// The report as written to disk.
fn written(outcome: &Outcome, reports: &Path) -> Value {
    assert!(
        outcome.path.starts_with(reports),
        "the report goes to the chosen folder: {}",
        outcome.path.display()
    );
    let name = outcome.path.file_name().unwrap().to_string_lossy();
    assert!(
        name.starts_with(&format!("{}-", outcome.report.scenario)) && name.ends_with("Z.json"),
        "named <scenario>-<UTC timestamp>.json: {name}"
    );
    let text = std::fs::read_to_string(&outcome.path).expect("the report file exists");
    serde_json::from_str(&text).expect("the report is JSON")
}

fn number(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is a number in the report"))
}

/// Every section every report must have, with real content.
fn assert_complete(report: &Value, kinds: &[&str]) {
    for field in [
        "scenario",
        "smoke",
        "started_at",
        "finished_at",
        "duration_s",
        "config",
        "gateway",
        "upstream",
        "requests",
        "totals",
        "pool",
        "idle_in_transaction",
        "rss",
        "targets",
        "samples",
    ] {
        assert!(report.get(field).is_some(), "the report has {field}");
    }
    assert_eq!(report["smoke"], true);
    assert!(number(report, "/duration_s") > 0.0);
    assert!(
        report["config"]
            .as_object()
            .is_some_and(|config| !config.is_empty()),
        "the scenario's parameters are reported"
    );
    let settings = &report["gateway"]["settings"];
    for setting in ["DATABASE_URL", "DB_POOL_SIZE", "UPSTREAM_MAX_CONCURRENCY"] {
        assert!(
            settings[setting].is_string(),
            "gateway setting {setting} is reported"
        );
    }
    assert!(
        settings["JWT_SECRET_KEY"]
            .as_str()
            .is_some_and(|shown| shown.contains("hidden")),
        "secrets are named but hidden"
    );
    assert!(report["gateway"]["exit"]["status"].is_string());
    assert!(number(report, "/upstream/counts/calls_served") > 0.0);

    for kind in kinds {
        let requests = &report["requests"][kind];
        assert!(
            number(requests, "/requests") > 0.0,
            "{kind} requests were sent: {requests}"
        );
        assert!(number(requests, "/requests_per_s") > 0.0);
        assert!(number(requests, "/failure_rate") >= 0.0);
        assert!(requests["failures_by_cause"].is_object());
        for percentile in ["p50_ms", "p95_ms", "p99_ms", "max_ms"] {
            assert!(
                number(requests, &format!("/latency/{percentile}")) > 0.0,
                "{kind} {percentile}"
            );
        }
    }
    assert!(number(report, "/totals/requests") > 0.0);
    assert!(report["totals"]["failures_by_cause"].is_object());
    assert!(number(report, "/totals/failure_rate") >= 0.0);

    let samples = report["samples"].as_array().expect("samples");
    assert!(!samples.is_empty(), "the sampler ran");
    assert!(
        samples
            .iter()
            .any(|sample| sample["pool"]["in_use"].is_number()),
        "pool statistics were sampled"
    );
    assert!(
        samples
            .iter()
            .any(|sample| sample["pg"]["idle_in_transaction"].is_number()),
        "pg_stat_activity was sampled"
    );
    assert!(
        samples.iter().all(|sample| sample["progress"].is_object()),
        "each sample has the load's progress"
    );
    for field in [
        "in_use",
        "waiting",
        "checkout_timeouts",
        "retries",
        "breaker",
    ] {
        assert!(
            report["pool"]["final_stats"].get(field).is_some(),
            "the final pool statistics have {field}: {}",
            report["pool"]["final_stats"]
        );
    }
    for field in [
        "max_in_use",
        "checkout_timeouts",
        "retries",
        "breaker_transitions",
    ] {
        assert!(report["pool"][field].is_number(), "pool.{field}");
    }
    assert!(number(report, "/idle_in_transaction/samples") > 0.0);
    assert!(number(report, "/idle_in_transaction/max_age_s") >= 0.0);
    assert!(report["idle_in_transaction"]["max_count"].is_number());
    for field in ["start_kib", "peak_kib", "end_kib"] {
        assert!(
            number(report, &format!("/rss/{field}")) > 0.0,
            "rss.{field}"
        );
    }
    let targets = report["targets"].as_array().expect("targets");
    assert!(!targets.is_empty(), "issue 7's targets are reported");
    for target in targets {
        assert!(target["name"].is_string() && target["target"].is_string());
        assert!(target["met"].is_boolean(), "{target}");
        assert!(target.get("measured").is_some() && target.get("missed_by").is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_smoke_writes_a_complete_report() {
    let reports = tempfile::tempdir().unwrap();
    let outcome = storm::run(&harness(reports.path()), &StormConfig::smoke())
        .await
        .expect("the storm runs");
    let report = written(&outcome, reports.path());
    assert_eq!(report["scenario"], "storm");
    assert_complete(&report, &["mcp_call", "rest_list"]);
    assert_eq!(report["config"]["clients"], 50);
    assert_eq!(report["config"]["upstream_max_concurrency"], 10_000);
    assert_eq!(report["gateway"]["settings"]["DB_POOL_SIZE"], "10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastpath_smoke_writes_a_complete_report() {
    let reports = tempfile::tempdir().unwrap();
    let outcome = fastpath::run(&harness(reports.path()), &FastpathConfig::smoke())
        .await
        .expect("the fast path runs");
    let report = written(&outcome, reports.path());
    assert_eq!(report["scenario"], "fastpath");
    assert_complete(&report, &["mcp_call", "direct_call"]);
    let comparison = &report["fastpath"];
    for field in ["throughput_ratio", "added_p50_ms", "added_p99_ms"] {
        assert!(comparison[field].is_number(), "fastpath.{field}");
    }
    assert!(number(&report, "/fastpath/direct/calls_per_s") > 0.0);
    assert!(number(&report, "/fastpath/gateway/calls_per_s") > 0.0);
    assert!(number(&report, "/fastpath/gateway_cpu_us_per_call") > 0.0);
}

/// A session-era client through the gateway is measured too (its calls counted as the
/// gateway's, not as direct ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastpath_smoke_measures_session_era_clients() {
    let reports = tempfile::tempdir().unwrap();
    let config = FastpathConfig {
        era: ClientEra::Session,
        ..FastpathConfig::smoke()
    };
    let outcome = fastpath::run(&harness(reports.path()), &config)
        .await
        .expect("the fast path runs");
    let report = written(&outcome, reports.path());
    assert_eq!(report["fastpath"]["era"], "session");
    assert!(number(&report, "/fastpath/gateway/calls_per_s") > 0.0);
    assert_eq!(number(&report, "/fastpath/gateway/failed"), 0.0);
}

/// The instruction count runs the real gateway under callgrind (valgrind is installed by
/// `loadtest/setup.sh` when missing) and reports a count per era.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instructions_smoke_counts_both_eras() {
    let setup = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/loadtest/setup.sh"))
        .status()
        .expect("bash runs");
    assert!(setup.success(), "loadtest/setup.sh installs valgrind");
    let reports = tempfile::tempdir().unwrap();
    let report = instructions::run(&harness(reports.path()), &InstructionsConfig::preset(true))
        .await
        .expect("the gateway runs under callgrind and is counted");
    assert_eq!(report.counts.len(), 2);
    for count in &report.counts {
        assert_eq!(count.calls, 20);
        assert!(
            count.per_call > 10_000,
            "a call through the gateway executes instructions: {count:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_smoke_writes_a_complete_report() {
    let reports = tempfile::tempdir().unwrap();
    let outcome = registry::run(&harness(reports.path()), &RegistryConfig::smoke())
        .await
        .expect("the registry sweep runs");
    let report = written(&outcome, reports.path());
    assert_eq!(report["scenario"], "registry");
    let steps = report["registry"]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[1]["tools"], 20);
    assert_eq!(steps[1]["created"], 20);
    assert!(number(&report, "/registry/steps/1/create_p50_ms") > 0.0);
    for step in 0..2 {
        assert!(number(&report, &format!("/registry/steps/{step}/busy/calls_per_s")) > 0.0);
        assert!(
            number(
                &report,
                &format!("/registry/steps/{step}/one_client/calls_per_s")
            ) > 0.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_smoke_writes_a_complete_report() {
    let reports = tempfile::tempdir().unwrap();
    let outcome = soak::run(&harness(reports.path()), &SoakConfig::smoke())
        .await
        .expect("the soak runs");
    let report = written(&outcome, reports.path());
    assert_eq!(report["scenario"], "soak");
    assert_complete(&report, &["mcp_call", "rest_list", "rest_write"]);
    let soak = &report["soak"];
    for field in [
        "rss_start_kib",
        "rss_after_warmup_kib",
        "rss_peak_kib",
        "rss_end_kib",
        "growth_after_warmup_pct",
    ] {
        assert!(soak[field].is_number(), "soak.{field}: {soak}");
    }
    assert!(number(&report, "/soak/writes_acknowledged") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_smoke_recovers_from_every_fault_without_losing_writes() {
    let reports = tempfile::tempdir().unwrap();
    let config = FaultsConfig::smoke();
    let outcome = faults::run(&harness(reports.path()), &config)
        .await
        .expect("the faults run");
    let report = written(&outcome, reports.path());
    assert_eq!(report["scenario"], "faults");
    assert_complete(&report, &["mcp_call", "rest_list", "rest_write"]);
    let faults = &report["faults"];
    assert_eq!(faults["db_circuit_reset_seconds"], 1);
    assert_eq!(faults["upstream_circuit_reset_seconds"], 1);
    assert_eq!(
        report["gateway"]["settings"]["DB_CIRCUIT_RESET_SECONDS"],
        "1"
    );
    let phases = faults["phases"].as_array().expect("phases");
    let names: Vec<&str> = phases
        .iter()
        .map(|phase| phase["fault"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "terminate_backends",
            "database_down",
            "database_stalled",
            "upstream_killed"
        ]
    );
    for phase in phases {
        assert_eq!(phase["recovered"], true, "the gateway recovered: {phase}");
        assert!(phase["time_to_first_success_s"].is_number(), "{phase}");
        assert!(phase["time_to_steady_success_s"].is_number(), "{phase}");
        assert!(phase["failures"].is_object());
        assert!(number(phase, "/requests") > 0.0);
    }
    assert!(number(&phases[0], "/backends_terminated") >= 1.0);
    let writes = &faults["writes"];
    assert!(number(writes, "/acknowledged") > 0.0, "{writes}");
    assert_eq!(writes["lost"], 0, "no acknowledged write is lost: {writes}");
    assert_eq!(
        writes["unverified"], 0,
        "every write was read back: {writes}"
    );
    assert_eq!(writes["present"], writes["acknowledged"]);
}

fn event(started_ms: u64, finished_ms: u64, failure: Option<Failure>) -> Event {
    Event {
        kind: Kind::RestWrite,
        started_ms,
        finished_ms,
        failure,
    }
}

#[test]
fn recovery_is_timed_from_the_fault_end_and_ignores_requests_sent_during_it() {
    let breaker = Some(Failure::Breaker503);
    // By finishing time; the fault ends at 2 000 ms.
    let events = [
        event(900, 1_000, breaker),
        event(2_100, 2_200, breaker),
        event(2_300, 2_500, None),
        // Sent during the fault, answered (failed) after it ended: does not delay recovery.
        event(1_900, 2_600, Some(Failure::Timeout)),
        event(2_400, 2_700, breaker),
        event(2_800, 3_000, None),
        event(3_100, 3_200, None),
        event(3_300, 3_400, None),
    ];
    let recovery = kind_recovery(Kind::RestWrite, &events, 2_000);
    assert_eq!(recovery.first_success_after_s, Some(0.5));
    assert_eq!(recovery.steady_success_after_s, Some(1.0));
    assert_eq!(recovery.failures, 4);
    assert!(recovery.recovered);

    let still_failing = kind_recovery(Kind::RestWrite, &events[..5], 2_000);
    assert_eq!(still_failing.steady_success_after_s, None);
    assert!(!still_failing.recovered);
}

#[test]
fn delays_parse_as_fixed_or_ranges() {
    assert_eq!("250".parse::<DelayRange>(), Ok(DelayRange::new(250, 250)));
    assert_eq!(
        "1000..5000".parse::<DelayRange>(),
        Ok(DelayRange::new(1000, 5000))
    );
    assert!("5..1".parse::<DelayRange>().is_err());
    assert!("fast".parse::<DelayRange>().is_err());
    let drawn = DelayRange::new(10, 20).sample();
    assert!((10..=20).contains(&(drawn.as_millis() as u64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_smoke_writes_a_complete_report() {
    let reports = tempfile::tempdir().unwrap();
    let outcome = replicas::run(&harness(reports.path()), &ReplicasConfig::smoke())
        .await
        .expect("the replicas scenario runs");
    let report = written(&outcome, reports.path());
    assert_eq!(report["scenario"], "replicas");
    assert_complete(&report, &["mcp_call"]);
    let section = &report["replicas"];
    let replicas = section["replicas"].as_array().expect("each replica");
    assert_eq!(replicas.len(), 3);
    // Round robin: every replica served its share of the steady phase.
    for replica in replicas {
        assert!(number(replica, "/steady_requests") > 0.0, "{replica}");
        assert!(number(replica, "/steady_share") > 0.0, "{replica}");
        assert!(replica["cpu_us_per_request"].is_number(), "{replica}");
        assert!(number(replica, "/rss_kib") > 0.0, "{replica}");
    }
    for era in ["modern", "session"] {
        assert!(
            number(section, &format!("/steady/{era}/requests")) > 0.0,
            "{era} clients called"
        );
        assert_eq!(
            number(section, &format!("/steady/{era}/failed")),
            0.0,
            "{section}"
        );
        assert!(number(section, &format!("/fault/{era}/requests")) > 0.0);
    }
    // The same load on one replica alone, measured in the same run, and the ratio.
    assert!(
        number(section, "/single/modern/requests") > 0.0,
        "{section}"
    );
    assert!(
        number(section, "/single/session/requests") > 0.0,
        "{section}"
    );
    assert!(number(section, "/throughput_ratio") > 0.0, "{section}");
    // One replica killed: the others went on serving.
    let killed: Vec<&Value> = replicas
        .iter()
        .filter(|replica| replica["killed"] == true)
        .collect();
    assert_eq!(killed.len(), 1);
    for survivor in replicas.iter().filter(|replica| replica["killed"] == false) {
        assert!(number(survivor, "/fault_requests") > 0.0, "{survivor}");
    }
}
