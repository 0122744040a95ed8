//! The pinned official MCP SDKs, the reference server and the conformance suite, installed by
//! `tests/interop/setup.sh` into a git-ignored folder on first use.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// `tests/interop`.
pub fn interop_dir() -> String {
    format!("{}/tests/interop", env!("CARGO_MANIFEST_DIR"))
}

/// Where the installed packages live (`node/`, `mcp1/`, `mcp2/`).
pub fn deps_dir() -> String {
    format!("{}/.deps", interop_dir())
}

/// Installs everything once per process (the script itself serialises across processes).
pub fn setup() {
    static DONE: OnceLock<()> = OnceLock::new();
    install(
        &DONE,
        &format!("{}/setup.sh", interop_dir()),
        "installing the MCP SDKs failed (python3 -m venv, pip and npm are needed)",
    );
}

/// Runs a set-up script once per process; a failure fails the test with `failure`.
pub fn install(done: &OnceLock<()>, script: &str, failure: &str) {
    done.get_or_init(|| {
        let status = Command::new("bash")
            .arg(script)
            .status()
            .unwrap_or_else(|error| panic!("run {script}: {error}"));
        assert!(status.success(), "{failure}");
    });
}

/// A real process on loopback, killed when dropped.
pub struct Upstream {
    child: Child,
    /// Its MCP endpoint.
    pub url: String,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The conformance fixture (`tests/conformance/fixture-server.mjs`): a session-era upstream
/// on the TypeScript SDK with every `test_*` tool, resource and prompt of the conformance
/// suite, among them `test_sampling` and `test_elicitation`, which ask mid-call.
pub struct ConformanceFixture;

impl ConformanceFixture {
    /// Starts it on a free port; it prints `{"port": N}` once it listens.
    pub fn start() -> Upstream {
        Self::start_on(0)
    }

    /// Starts it on `port` (0: a free one).
    pub fn start_on(port: u16) -> Upstream {
        Self::start_with(port, &[])
    }

    /// Starts it on `port` offering, besides its own, tools named `extra_tools`.
    pub fn start_with(port: u16, extra_tools: &[&str]) -> Upstream {
        Self::start_configured(port, extra_tools, false)
    }

    /// Starts it with its tools' questions and notifications sent on its standalone GET stream
    /// (as the server's own messages) instead of the call's POST stream.
    pub fn start_asking_on_get_stream() -> Upstream {
        Self::start_configured(0, &[], true)
    }

    fn start_configured(port: u16, extra_tools: &[&str], on_get_stream: bool) -> Upstream {
        setup();
        let mut command = Command::new("node");
        command
            .arg(format!(
                "{}/node/conformance/fixture-server.mjs",
                deps_dir()
            ))
            .env("PORT", port.to_string())
            .env(
                "EXTRA_TOOL_NAMES",
                serde_json::to_string(extra_tools).expect("names as JSON"),
            )
            .env(
                "QUESTIONS_ON_GET_STREAM",
                if on_get_stream { "1" } else { "0" },
            );
        spawn_announcing(command)
    }
}

/// Starts a fixture that prints `{"port": N}` once it listens; its MCP endpoint is
/// `http://127.0.0.1:N/mcp`.
pub fn spawn_announcing(mut command: Command) -> Upstream {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|error| panic!("start {command:?}: {error}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the fixture's port");
    let port = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|ready| ready["port"].as_u64())
        .unwrap_or_else(|| panic!("the fixture prints its port, got {line:?}"));
    Upstream {
        child,
        url: format!("http://127.0.0.1:{port}/mcp"),
    }
}

/// `tests/interop/hostile-server.mjs` misbehaving in `mode` (see the script), with `env`.
pub fn start_hostile(mode: &str, env: &[(&str, &str)]) -> Upstream {
    let mut command = Command::new("node");
    command
        .arg(format!("{}/hostile-server.mjs", interop_dir()))
        .env("PORT", "0")
        .env("MODE", mode)
        .envs(env.iter().copied());
    spawn_announcing(command)
}

/// `tests/interop/mrtr_server.py`: a 2026-07-28 upstream on the Python SDK 2.x whose `confirm`
/// tool answers `input_required` (an elicitation) until the retry brings the answer.
pub async fn start_mrtr_server() -> Upstream {
    let port = free_port();
    let mut command = Command::new(format!("{}/mcp2/bin/python", deps_dir()));
    command
        .arg(format!("{}/mrtr_server.py", interop_dir()))
        .arg(port.to_string());
    spawn_listening(command, port, "/mcp").await
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Starts `command` (told to listen on `port`) with the packages installed, and waits until it
/// accepts connections; its URL is `http://127.0.0.1:{port}{path}`.
pub async fn spawn_listening(mut command: Command, port: u16, path: &str) -> Upstream {
    setup();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("start {command:?}: {error}"));
    let upstream = Upstream {
        child,
        url: format!("http://127.0.0.1:{port}{path}"),
    };
    super::eventually(
        &format!("{command:?} listens"),
        std::time::Duration::from_secs(30),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    upstream
}

/// Runs one official SDK client (`tests/interop/client.py` or `node/client.mjs`) against `url`
/// over `transport` (`streamable` or `sse`); returns the JSON it printed. `sdk` is `python-1`,
/// `python-2` (its default auto mode), `python-2-legacy` (its `initialize` mode),
/// `python-2-modern` (pinned to 2026-07-28) or `typescript`.
pub async fn run_client(sdk: &str, url: &str, transport: &str) -> serde_json::Value {
    run_client_with(sdk, url, transport, &[]).await
}

/// [`run_client`] with extra arguments: `TOOL ARGS` calls only that tool; `sample TOOL ARGS`
/// also declares sampling and elicitation and answers them with canned replies.
pub async fn run_client_with(
    sdk: &str,
    url: &str,
    transport: &str,
    extra: &[String],
) -> serde_json::Value {
    setup();
    let deps = deps_dir();
    let python = |venv: &str| {
        (
            format!("{deps}/{venv}/bin/python"),
            format!("{}/client.py", interop_dir()),
        )
    };
    let ((program, script), mode) = match sdk {
        "python-1" => (python("mcp1"), "auto"),
        "python-2" => (python("mcp2"), "auto"),
        "python-2-legacy" => (python("mcp2"), "legacy"),
        "python-2-modern" => (python("mcp2"), "2026-07-28"),
        "typescript" => (
            ("node".to_owned(), format!("{deps}/node/client.mjs")),
            "auto",
        ),
        other => panic!("unknown sdk {other}"),
    };
    let mut command = Command::new(&program);
    command
        .arg(&script)
        .arg(url)
        .arg(super::token("admin@example.com", true))
        .arg(transport)
        .args(extra)
        .env("MCP_CLIENT_MODE", mode);
    let outcome = run_json(command, &format!("{sdk} over {transport}")).await;
    eprintln!("{sdk} over {transport}: {outcome}");
    outcome
}

/// The longest a driver script may run.
const DRIVER_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `command` (a driver script) to its end off the test's thread; the JSON it printed last.
/// Fails the test, with its output, if it exits unsuccessfully or prints no JSON.
pub async fn run_json(command: Command, what: &str) -> serde_json::Value {
    setup();
    // A driver that hangs fails the test (and is killed) instead of holding the run.
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let output = tokio::time::timeout(DRIVER_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no end within {DRIVER_LIMIT:?}"))
        .unwrap_or_else(|error| panic!("run {what}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what}: exit {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|error| panic!("{what} prints JSON ({error}): {stdout}"))
}

/// `@modelcontextprotocol/server-everything`, registered as "Everything" behind the gateway's
/// `endpoint`, as every official SDK client sees it: its `echo` and `get-sum` tools called by
/// each, its progress notifications followed by each, and its sampling request (asked
/// mid-call) answered by the Python clients' callbacks.
/// `how` names the upstream's transport in failure messages.
pub async fn everything_through_every_sdk(endpoint: &str, how: &str) {
    use serde_json::json;
    for sdk in ["python-1", "python-2", "typescript"] {
        let echo = run_client_with(
            sdk,
            endpoint,
            "streamable",
            &[
                "everything-echo".into(),
                json!({"message": "through the gateway"}).to_string(),
            ],
        )
        .await;
        assert_eq!(echo["is_error"], false, "{sdk} over {how}: {echo}");
        assert!(
            echo["text"][0]
                .as_str()
                .unwrap()
                .contains("through the gateway"),
            "{sdk} over {how}: {echo}"
        );
        let sum = run_client_with(
            sdk,
            endpoint,
            "streamable",
            &[
                "everything-get-sum".into(),
                json!({"a": 2, "b": 3}).to_string(),
            ],
        )
        .await;
        assert!(
            sum["text"][0].as_str().unwrap().contains('5'),
            "{sdk} over {how}: {sum}"
        );
    }
    // Its progress notifications reach each SDK's callback.
    for sdk in ["python-1", "python-2", "typescript"] {
        let followed = run_client_with(
            sdk,
            endpoint,
            "streamable",
            &[
                "everything-trigger-long-running-operation".into(),
                json!({"duration": 0.3, "steps": 3}).to_string(),
            ],
        )
        .await;
        assert_eq!(followed["is_error"], false, "{sdk} over {how}: {followed}");
        assert_eq!(
            followed["progress"],
            json!([1, 2, 3]),
            "{sdk} over {how}: {followed}"
        );
    }
    for sdk in ["python-1", "python-2"] {
        let sampled = run_client_with(
            sdk,
            endpoint,
            "streamable",
            &[
                "sample".into(),
                "everything-trigger-sampling-request".into(),
                json!({"prompt": "say hello"}).to_string(),
            ],
        )
        .await;
        assert_eq!(sampled["is_error"], false, "{sdk} over {how}: {sampled}");
        assert_eq!(sampled["asked"], json!(["sampling"]), "{sdk}: {sampled}");
        assert!(
            sampled["text"][0]
                .as_str()
                .unwrap()
                .contains("canned reply from the client"),
            "{sdk} over {how}: {sampled}"
        );
    }
}
