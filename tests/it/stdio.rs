//! Stdio upstreams: real MCP servers from the registries (`@modelcontextprotocol/server-everything`,
//! `server-memory` and `server-filesystem` from npm, `mcp-server-time` from PyPI) started by the
//! gateway as child processes, called through it by the official SDK clients and by raw MCP
//! requests; their processes supervised (killed mid-call → a clear error and a restart; deleted
//! → gone; stopped with the gateway), their environment clean, their limits applied, and who may
//! run what checked.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::mcp::{LEGACY, McpClient, read_events};
use crate::common::sdk::{deps_dir, everything_through_every_sdk, setup};
use crate::common::{Backend, TestDb, TestServer, create_user, eventually};

/// A package's entry point in the pinned npm install.
fn package(name: &str) -> String {
    format!(
        "{}/node/node_modules/@modelcontextprotocol/{name}/dist/index.js",
        deps_dir()
    )
}

/// The PyPI server's launcher in its own pinned virtual environment.
fn time_server() -> String {
    format!("{}/stdio/bin/mcp-server-time", deps_dir())
}

/// A gateway that may run `node` and the time server, stopping processes within 2 s.
async fn gateway(db: &TestDb, extra: &[(&str, &str)]) -> TestServer {
    setup();
    let commands = format!("node,{}", time_server());
    let mut overrides = vec![
        ("STDIO_COMMANDS", commands.as_str()),
        ("STDIO_STOP_GRACE_SECONDS", "2"),
    ];
    overrides.extend_from_slice(extra);
    TestServer::start(db, &overrides).await
}

/// Registers a stdio upstream; returns its view.
async fn register(server: &TestServer, body: Value) -> Value {
    let reply = server.admin(Method::POST, "/gateways", Some(body)).await;
    reply.expect(StatusCode::CREATED).clone()
}

/// The process ids an upstream runs, from its health.
async fn pids(server: &TestServer, id: &str) -> Vec<u64> {
    let health = server
        .admin(Method::GET, &format!("/gateways/{id}/health"), None)
        .await;
    health.expect(StatusCode::OK)["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|process| process["pid"].as_u64().unwrap())
        .collect()
}

/// Whether a process exists (a zombie would still have its /proc entry).
fn exists(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A tool's result over MCP (2026-07-28, the gateway's /mcp endpoint).
async fn call(client: &McpClient<'_>, tool: &str, arguments: Value) -> Value {
    let reply = client
        .modern("tools/call", json!({"name": tool, "arguments": arguments}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["result"].clone()
}

/// The text of a tool result's first content item.
fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a text result, got {result}"))
        .to_owned()
}

/// The reference servers, run by the gateway over stdio: discovered, called (by raw requests
/// and by every official SDK client), their questions relayed and answered, their progress
/// notifications relayed; their process supervised from start to delete.
async fn official_servers_over_stdio(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = gateway(&db, &[]).await;
    let client = McpClient::new(&server, "/mcp");

    // server-everything, with one environment variable of its own.
    let everything = register(
        &server,
        json!({
            "name": "Everything",
            "transport": "stdio",
            "command": "node",
            "args": [package("server-everything"), "stdio"],
            "env": {"GREETING": "hello from the registration"},
        }),
    )
    .await;
    let id = everything["id"].as_str().unwrap().to_owned();
    assert_eq!(everything["transport"], "stdio", "{everything}");
    assert_eq!(everything["command"], "node");
    assert_eq!(everything["env_names"], json!(["GREETING"]));
    assert_eq!(everything["auth_type"], "env");
    assert!(
        everything["url"]
            .as_str()
            .unwrap()
            .starts_with("stdio:node ")
    );
    assert!(everything["discovered"]["tools"].as_u64().unwrap() >= 10);
    let shared = pids(&server, &id).await;
    assert_eq!(shared.len(), 1, "one shared process after discovery");
    assert!(exists(shared[0]));

    // Its environment is its own: the variable it was given and a few inherited ones, nothing
    // else of the gateway's.
    let env: Value =
        serde_json::from_str(&text(&call(&client, "everything-get-env", json!({})).await)).unwrap();
    assert_eq!(env["GREETING"], "hello from the registration");
    for name in env.as_object().unwrap().keys() {
        assert!(
            [
                "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "GREETING"
            ]
            .contains(&name.as_str()),
            "the process inherited {name}"
        );
    }
    let sum = call(&client, "everything-get-sum", json!({"a": 2, "b": 3})).await;
    assert!(text(&sum).contains('5'), "{sum}");

    // Progress notifications travel from the process's stdout to the client's stream.
    let body = client.modern_body(
        "tools/call",
        json!({"name": "everything-trigger-long-running-operation", "arguments": {"duration": 0.2, "steps": 2}, "_meta": {"progressToken": "p"}}),
    );
    let mut stream = client.modern_stream(&body).await;
    let events = read_events(&mut stream, 3).await;
    let messages: Vec<Value> = events
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(
        messages[0]["method"], "notifications/progress",
        "{messages:?}"
    );
    assert_eq!(messages[0]["params"]["progressToken"], "p");
    assert_eq!(messages[1]["params"]["progress"], 2);
    assert!(
        text(&messages[2]["result"]).contains("completed"),
        "{messages:?}"
    );

    if backend == Backend::Sqlite {
        // Every official SDK client calls it; the Python ones answer its sampling request.
        everything_through_every_sdk(&format!("{}/mcp", server.base), "stdio").await;
    }

    // The process is killed mid-call: the call ends with an error saying so, the process is
    // started again, and the next call works.
    let before = pids(&server, &id).await;
    let body = client.modern_body(
        "tools/call",
        json!({"name": "everything-trigger-long-running-operation", "arguments": {"duration": 30, "steps": 30}, "_meta": {"progressToken": "k"}}),
    );
    let mut stream = client.modern_stream(&body).await;
    let first = read_events(&mut stream, 1).await;
    assert!(first[0].1.contains("notifications/progress"), "{first:?}");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &before[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest = stream.text().await.unwrap();
    let outcome = rest
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|message| message.get("id").is_some())
        .unwrap_or_else(|| panic!("a response after the kill, got {rest}"));
    let said = outcome.to_string();
    assert!(said.contains("killed by signal 9"), "{said}");
    let restarted = eventually(
        "the process is started again",
        Duration::from_secs(20),
        || async {
            let now = pids(&server, &id).await;
            (now.len() == 1 && now != before).then_some(now)
        },
    )
    .await;
    assert!(!exists(before[0]) && exists(restarted[0]));
    let echo = call(
        &client,
        "everything-echo",
        json!({"message": "after the restart"}),
    )
    .await;
    assert!(text(&echo).contains("after the restart"), "{echo}");

    // Deleted: its process is gone (reaped, no zombie).
    server
        .admin(Method::DELETE, &format!("/gateways/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    eventually("the process is gone", Duration::from_secs(10), || async {
        (!exists(restarted[0])).then_some(())
    })
    .await;
    server
        .admin(Method::GET, &format!("/gateways/{id}/health"), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    server.stop().await;
}

/// server-memory keeps its graph in the one shared process (and the file its environment
/// names); server-filesystem serves the directory it was given; the PyPI time server answers.
/// Resource limits are applied; the gateway's stop ends every process.
async fn more_servers_over_stdio(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = gateway(&db, &[("MCP_MAX_UPSTREAM_SESSIONS_PER_PRINCIPAL", "1")]).await;
    let client = McpClient::new(&server, "/mcp");
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("note.txt"), "a note on disk").unwrap();

    let memory = register(
        &server,
        json!({
            "name": "Memory",
            "transport": "stdio",
            "command": "node",
            "args": [package("server-memory")],
            "env": {"MEMORY_FILE_PATH": dir.path().join("memory.jsonl").to_str().unwrap()},
            "process": {"max_open_files": 256, "max_memory_mb": 2048},
        }),
    )
    .await;
    let created = call(
        &client,
        "memory-create_entities",
        json!({"entities": [{"name": "mcpgate", "entityType": "gateway", "observations": ["runs stdio servers"]}]}),
    )
    .await;
    assert_ne!(created["isError"], true, "{created}");
    let graph = call(&client, "memory-read_graph", json!({})).await;
    assert!(graph.to_string().contains("runs stdio servers"), "{graph}");
    assert!(
        std::fs::read_to_string(dir.path().join("memory.jsonl"))
            .unwrap()
            .contains("mcpgate")
    );
    let memory_pid = pids(&server, memory["id"].as_str().unwrap()).await[0];
    let limits = std::fs::read_to_string(format!("/proc/{memory_pid}/limits")).unwrap();
    let limit = |name: &str| {
        limits
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {limits}"))
            .split_whitespace()
            .skip(name.split_whitespace().count())
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(limit("Max open files"), "256 256");
    assert_eq!(
        limit("Max address space"),
        format!("{0} {0}", 2048u64 * 1024 * 1024)
    );

    // A session-era client that keeps state upstream (a log level) gets a process of its own,
    // within its principal's quota of upstream sessions (1 here: the next such client shares);
    // the process ends with the client's session.
    let memory_id = memory["id"].as_str().unwrap();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let (session, _) = client.initialize(LEGACY).await;
        let set = client
            .legacy(&session, "logging/setLevel", json!({"level": "info"}))
            .await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.body);
        let graph = client
            .legacy(
                &session,
                "tools/call",
                json!({"name": "memory-read_graph", "arguments": {}}),
            )
            .await;
        assert!(
            graph.body.to_string().contains("runs stdio servers"),
            "{}",
            graph.body
        );
        sessions.push(session);
    }
    let health = server
        .admin(Method::GET, &format!("/gateways/{memory_id}/health"), None)
        .await;
    let roles: Vec<&str> = health.expect(StatusCode::OK)["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|process| process["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["shared", "client"], "{}", health.body);
    let own = pids(&server, memory_id).await[1];
    let ended = client
        .verb(
            Method::DELETE,
            &[
                ("mcp-session-id", &sessions[0]),
                ("mcp-protocol-version", LEGACY),
            ],
        )
        .await;
    assert!(ended.status().is_success(), "{}", ended.status());
    eventually(
        "the client's process ends with its session",
        Duration::from_secs(10),
        || async { (!exists(own) && pids(&server, memory_id).await == [memory_pid]).then_some(()) },
    )
    .await;

    let filesystem = register(
        &server,
        json!({
            "name": "Files",
            "transport": "stdio",
            "command": "node",
            "args": [package("server-filesystem"), files.to_str().unwrap()],
            "cwd": dir.path().to_str().unwrap(),
        }),
    )
    .await;
    assert!(filesystem["discovered"]["tools"].as_u64().unwrap() >= 5);
    let read = call(
        &client,
        "files-read_text_file",
        json!({"path": files.join("note.txt").to_str().unwrap()}),
    )
    .await;
    assert!(text(&read).contains("a note on disk"), "{read}");
    let outside = call(
        &client,
        "files-read_text_file",
        json!({"path": "/etc/hostname"}),
    )
    .await;
    assert_eq!(outside["isError"], true, "{outside}");

    let time = register(
        &server,
        json!({"name": "Time", "transport": "stdio", "command": time_server(), "args": ["--local-timezone", "UTC"]}),
    )
    .await;
    let now = call(
        &client,
        "time-get_current_time",
        json!({"timezone": "Europe/Paris"}),
    )
    .await;
    assert!(text(&now).contains("Europe/Paris"), "{now}");

    // An export carries a stdio upstream as `POST /gateways` takes it, its environment sealed
    // with the passphrase; a dry-run import of it reads back.
    let passphrase = "a passphrase of some length";
    let exported: Value = server
        .client
        .get(format!("{}/export?secrets=encrypt", server.base))
        .bearer_auth(&server.admin_token)
        .header("x-export-passphrase", passphrase)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = exported["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .find(|gateway| gateway["name"] == "Memory")
        .unwrap()
        .clone();
    assert_eq!(entry["transport"], "stdio", "{entry}");
    assert_eq!(entry["command"], "node");
    assert_eq!(entry["process"]["max_open_files"], 256);
    let sealed = entry["env"]["MEMORY_FILE_PATH"].as_str().unwrap();
    assert!(!sealed.contains("memory.jsonl"), "sealed: {sealed}");
    let checked = server
        .client
        .post(format!(
            "{}/import?dry_run=true&conflict=rename",
            server.base
        ))
        .bearer_auth(&server.admin_token)
        .header("x-import-passphrase", passphrase)
        .json(&exported)
        .send()
        .await
        .unwrap();
    let status = checked.status();
    let report: Value = checked.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["summary"]["failed"].as_u64().unwrap_or(0),
        0,
        "{report}"
    );

    // Stopping the gateway stops every process.
    let mut running = Vec::new();
    for view in [&memory, &filesystem, &time] {
        running.extend(pids(&server, view["id"].as_str().unwrap()).await);
    }
    assert_eq!(running.len(), 3, "{running:?}");
    server.stop().await;
    for pid in running {
        assert!(!exists(pid), "process {pid} outlived the gateway");
    }
}

/// Who may have the gateway run what: only platform admins, only listed commands; bad
/// registrations are refused with the field and the reason, and nothing is stored.
async fn who_may_run_what(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = gateway(&db, &[]).await;
    let refused = |body: Value, status: StatusCode, field: &'static str| {
        let server = &server;
        async move {
            let reply = server.admin(Method::POST, "/gateways", Some(body)).await;
            assert_eq!(reply.status, status, "{}", reply.body);
            if !field.is_empty() {
                assert!(reply.body.to_string().contains(field), "{}", reply.body);
            }
            reply.body
        }
    };
    let bash = refused(
        json!({"name": "Shell", "transport": "stdio", "command": "bash", "args": ["-c", "id"]}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "STDIO_COMMANDS",
    )
    .await;
    assert!(bash.to_string().contains("command"), "{bash}");
    for (body, field) in [
        (json!({"name": "A", "transport": "stdio"}), "command"),
        (
            json!({"name": "B", "transport": "stdio", "command": "./node"}),
            "command",
        ),
        (
            json!({"name": "C", "transport": "stdio", "command": "node", "cwd": "relative"}),
            "cwd",
        ),
        (
            json!({"name": "D", "transport": "stdio", "command": "node", "env": {"1X": "y"}}),
            "env",
        ),
        (
            json!({"name": "D2", "transport": "stdio", "command": "node", "env": {"NODE_OPTIONS": "--require /tmp/x.js"}}),
            "NODE_OPTIONS",
        ),
        (
            json!({"name": "D3", "transport": "stdio", "command": "node", "env": {"PATH": "/tmp"}}),
            "PATH",
        ),
        (
            json!({"name": "E", "transport": "stdio", "command": "node", "process": {"max_open_files": 1}}),
            "max_open_files",
        ),
        (
            json!({"name": "F", "transport": "stdio", "command": "node", "auth": {"type": "bearer", "token": "secret-token"}}),
            "auth",
        ),
        (
            json!({"name": "G", "command": "node", "url": "http://127.0.0.1:1/mcp"}),
            "command",
        ),
    ] {
        refused(body, StatusCode::UNPROCESSABLE_ENTITY, field).await;
    }
    // A process that cannot start is a 502 naming why.
    let missing = refused(
        json!({"name": "Gone", "transport": "stdio", "command": "node", "args": ["/nonexistent/server.js"]}),
        StatusCode::BAD_GATEWAY,
        "",
    )
    .await;
    assert!(
        missing.to_string().contains("exited with status 1"),
        "{missing}"
    );
    // What it wrote to stderr goes to the log, not to callers (it may hold secrets).
    assert!(
        !missing.to_string().contains("Cannot find module"),
        "{missing}"
    );
    // A developer may register HTTP upstreams, never a command.
    let developer = create_user(&server, "dev@example.com", "developer").await;
    let reply = server
        .send(
            Method::POST,
            "/gateways",
            Some(&developer),
            Some(json!({"name": "Mine", "transport": "stdio", "command": "node", "args": [package("server-everything")]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let listed = server.admin(Method::GET, "/gateways", None).await;
    assert_eq!(
        listed.expect(StatusCode::OK)["items"],
        json!([]),
        "nothing stored"
    );
    server.stop().await;
}

crate::both_backends!(official_servers_over_stdio, more_servers_over_stdio);
once_on_sqlite!(who_may_run_what);

/// A process's life as its options say: stopped when idle and started again by the next call
/// (not by health checks), started with the gateway when asked, stopped when its upstream is
/// disabled.
async fn processes_follow_their_options(backend: Backend) {
    let db = TestDb::new(backend).await;
    let fast_checks = [("HEALTH_CHECK_INTERVAL", "1")];
    let server = gateway(&db, &fast_checks).await;
    let client = McpClient::new(&server, "/mcp");
    let idle = register(
        &server,
        json!({"name": "Idle", "transport": "stdio", "command": "node", "args": [package("server-memory")],
               "env": {"MEMORY_FILE_PATH": "/dev/null"}, "process": {"idle_stop_seconds": 1}}),
    )
    .await;
    let idle_id = idle["id"].as_str().unwrap();
    let first = pids(&server, idle_id).await;
    assert_eq!(first.len(), 1);
    eventually(
        "the idle process stops",
        Duration::from_secs(15),
        || async { pids(&server, idle_id).await.is_empty().then_some(()) },
    )
    .await;
    assert!(!exists(first[0]));
    // Health checks (every second here) leave it resting, and report it healthy.
    let health = server
        .admin(Method::GET, &format!("/gateways/{idle_id}/health"), None)
        .await;
    assert_eq!(
        health.expect(StatusCode::OK)["state"],
        "online",
        "{}",
        health.body
    );
    let graph = call(&client, "idle-read_graph", json!({})).await;
    assert_ne!(graph["isError"], true, "{graph}");
    assert_eq!(
        pids(&server, idle_id).await.len(),
        1,
        "started again by the call"
    );

    let eager = register(
        &server,
        json!({"name": "Eager", "transport": "stdio", "command": time_server(), "process": {"start_at_launch": true}}),
    )
    .await;
    let eager_id = eager["id"].as_str().unwrap().to_owned();
    server.stop().await;

    // A new start of the gateway starts it without any call.
    let server = gateway(&db, &fast_checks).await;
    let started = eventually(
        "started with the gateway",
        Duration::from_secs(15),
        || async {
            let now = pids(&server, &eager_id).await;
            (now.len() == 1).then_some(now)
        },
    )
    .await;
    assert!(
        pids(&server, idle_id).await.is_empty(),
        "the other waits for a call"
    );
    // Disabled: its process stops.
    server
        .admin(
            Method::POST,
            &format!("/gateways/{eager_id}/toggle?activate=false"),
            None,
        )
        .await
        .expect(StatusCode::OK);
    eventually(
        "the disabled upstream's process stops",
        Duration::from_secs(10),
        || async { (!exists(started[0])).then_some(()) },
    )
    .await;
    server.stop().await;
}

once_on_sqlite!(processes_follow_their_options);
