//! The gateway under test: the real `mcpgate` binary as a child process, started on an
//! ephemeral port with the run's settings, its admin token minted with `mcpgate token`, and
//! the fixture upstream registered and curated into a virtual server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::{Api, McpTarget};

/// The platform admin the gateway creates at first start.
pub const ADMIN_EMAIL: &str = "admin@example.com";
/// How long the gateway may take to print its listening line.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// How long a newly federated tool may take to become callable.
const PROVISION_DEADLINE: Duration = Duration::from_secs(30);
/// Settings whose values never appear in a report.
const SECRET_SETTINGS: [&str; 3] = [
    "JWT_SECRET_KEY",
    "AUTH_ENCRYPTION_SECRET",
    "PLATFORM_ADMIN_PASSWORD",
];

/// The default gateway binary: `mcpgate` next to the running executable (so
/// `cargo run --release -p mcpgate-loadtest` uses `target/release/mcpgate`).
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("mcpgate")))
        .unwrap_or_else(|| PathBuf::from("mcpgate"))
}

/// How to start the gateway.
#[derive(Clone, Debug)]
pub struct GatewaySpec {
    /// The `mcpgate` binary.
    pub binary: PathBuf,
    /// `DATABASE_URL` for the server (possibly through a proxy).
    pub database_url: String,
    /// `DATABASE_URL` for `mcpgate token` (direct).
    pub direct_database_url: String,
    /// Settings on top of the harness's base settings (they win).
    pub settings: BTreeMap<String, String>,
    /// Where its stdout and stderr go.
    pub log_path: PathBuf,
    /// How long the admin token must stay valid.
    pub token_lifetime: Duration,
    /// A command `mcpgate serve` runs under (`valgrind --tool=callgrind …`), if any.
    pub wrapper: Vec<String>,
}

/// The running gateway.
pub struct Gateway {
    child: Child,
    pid: u32,
    base: String,
    token: String,
    settings: BTreeMap<String, String>,
    binary: PathBuf,
    log_path: PathBuf,
    workdir: PathBuf,
}

/// How the gateway ended, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayExit {
    /// Whether it was still running when the harness stopped it.
    pub running_at_stop: bool,
    /// Its exit status as the OS reports it.
    pub status: String,
    /// Whether it exited successfully (0) after SIGTERM.
    pub clean: bool,
}

impl Gateway {
    /// Starts `mcpgate serve`, waits until it listens and is ready, and mints an admin token.
    pub async fn start(spec: GatewaySpec) -> anyhow::Result<Gateway> {
        let settings = base_settings(&spec);
        let workdir = std::env::temp_dir().join(format!(
            "mcpgate-loadtest-{}",
            uuid::Uuid::new_v4().simple()
        ));
        // A working directory of its own: no stray `.env` is read.
        std::fs::create_dir_all(&workdir)
            .with_context(|| format!("cannot create {}", workdir.display()))?;
        if let Some(dir) = spec.log_path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let log = std::fs::File::create(&spec.log_path)
            .with_context(|| format!("cannot create {}", spec.log_path.display()))?;
        let mut serve = match spec.wrapper.split_first() {
            Some((program, arguments)) => {
                let mut serve = command(Path::new(program), &settings, &workdir);
                serve.args(arguments).arg(&spec.binary);
                serve
            }
            None => command(&spec.binary, &settings, &workdir),
        };
        let mut child = serve
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.try_clone()?))
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start the gateway {} (build it first: cargo build --release)",
                    spec.binary.display()
                )
            })?;
        let pid = child.id().context("the gateway exited at once")?;
        let stdout = child.stdout.take().context("the gateway's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut log = tokio::fs::File::from_std(log);
        let listening = tokio::time::timeout(START_DEADLINE, async {
            while let Some(line) = lines.next_line().await? {
                log.write_all(format!("{line}\n").as_bytes()).await?;
                if let Some(address) = line.strip_prefix("mcpgate listening on ") {
                    return Ok(Some(address.trim().to_owned()));
                }
            }
            anyhow::Ok(None)
        })
        .await;
        let base = match listening {
            Ok(Ok(Some(base))) => base,
            Ok(Ok(None)) | Ok(Err(_)) => bail!(
                "the gateway exited before listening; its output: {}",
                log_tail(&spec.log_path)
            ),
            Err(_) => bail!(
                "the gateway did not listen within {START_DEADLINE:?}; its output: {}",
                log_tail(&spec.log_path)
            ),
        };
        // Keep draining stdout into the log so the pipe never fills.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if log.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let token = mint_token(&spec, &settings, &workdir).await?;
        let gateway = Gateway {
            child,
            pid,
            base,
            token,
            settings,
            binary: spec.binary.clone(),
            log_path: spec.log_path.clone(),
            workdir,
        };
        gateway.wait_ready().await?;
        Ok(gateway)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            let ready = http.get(format!("{}/ready", self.base)).send().await;
            if ready.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the gateway at {} never became ready", self.base);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its base URL (`http://127.0.0.1:PORT`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A platform admin's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.token
    }

    /// The binary it runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The settings it runs with, secrets hidden.
    pub fn reported_settings(&self) -> BTreeMap<String, String> {
        self.settings
            .iter()
            .map(|(name, value)| {
                let shown = if SECRET_SETTINGS.contains(&name.as_str()) {
                    "(set, hidden)".to_owned()
                } else {
                    value.clone()
                };
                (name.clone(), shown)
            })
            .collect()
    }

    /// Stops it: SIGTERM, then a kill if it has not stopped within 30 s.
    pub async fn stop(mut self) -> GatewayExit {
        let exit = match self.child.try_wait() {
            Ok(Some(status)) => GatewayExit {
                running_at_stop: false,
                status: status.to_string(),
                clean: false,
            },
            _ => {
                let signalled = std::process::Command::new("kill")
                    .args(["-TERM", &self.pid.to_string()])
                    .status();
                if !signalled.is_ok_and(|status| status.success()) {
                    tracing::warn!(pid = self.pid, "could not send SIGTERM to the gateway");
                }
                match tokio::time::timeout(STOP_DEADLINE, self.child.wait()).await {
                    Ok(Ok(status)) => GatewayExit {
                        running_at_stop: true,
                        status: status.to_string(),
                        clean: status.success(),
                    },
                    _ => {
                        let _ = self.child.kill().await;
                        GatewayExit {
                            running_at_stop: true,
                            status: format!("killed: not stopped {STOP_DEADLINE:?} after SIGTERM"),
                            clean: false,
                        }
                    }
                }
            }
        };
        let _ = std::fs::remove_dir_all(&self.workdir);
        exit
    }
}

/// The settings every run uses, then the scenario's.
fn base_settings(spec: &GatewaySpec) -> BTreeMap<String, String> {
    let secret = || uuid::Uuid::new_v4().simple().to_string();
    let mut settings: BTreeMap<String, String> = [
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("DATABASE_URL", spec.database_url.clone()),
        ("JWT_SECRET_KEY", format!("{}{}", secret(), secret())),
        (
            "AUTH_ENCRYPTION_SECRET",
            format!("{}{}", secret(), secret()),
        ),
        ("PLATFORM_ADMIN_PASSWORD", secret()),
        ("SSRF_ALLOW_LOCALHOST", "true".to_owned()),
        ("LOG_LEVEL", "warn".to_owned()),
        // The load is one principal (the admin's token) standing for many clients: its
        // per-principal quotas are lifted so the gateway, not the quota, is measured.
        ("MCP_MAX_TOOL_CALLS_PER_PRINCIPAL", "1000000".to_owned()),
        ("MCP_MAX_TOOL_CALLS", "1000000".to_owned()),
        ("MCP_MAX_SESSIONS_PER_PRINCIPAL", "10000000".to_owned()),
        ("MCP_MAX_STREAMS_PER_PRINCIPAL", "1000000".to_owned()),
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "1000000".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    settings.extend(spec.settings.clone());
    settings
}

fn command(binary: &Path, settings: &BTreeMap<String, String>, workdir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(settings)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn mint_token(
    spec: &GatewaySpec,
    settings: &BTreeMap<String, String>,
    workdir: &Path,
) -> anyhow::Result<String> {
    let mut settings = settings.clone();
    settings.insert("DATABASE_URL".into(), spec.direct_database_url.clone());
    let minutes = (spec.token_lifetime.as_secs() / 60 + 60).to_string();
    let output = command(&spec.binary, &settings, workdir)
        .args(["token", "--email", ADMIN_EMAIL, "--exp-minutes", &minutes])
        .output()
        .await
        .context("cannot run `mcpgate token`")?;
    if !output.status.success() {
        bail!(
            "`mcpgate token` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if token.is_empty() {
        bail!("`mcpgate token` printed no token");
    }
    Ok(token)
}

/// The last lines of the gateway's output, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Registers `upstream_url` as a gateway named `name`, puts its federated tools in a new
/// virtual server, and waits until `tool` can be called there; returns the `tools/call` target.
pub async fn provision(
    api: &Api,
    http: &reqwest::Client,
    name: &str,
    upstream_url: &str,
    tool: &str,
) -> anyhow::Result<McpTarget> {
    let gateway_id = api
        .create(
            "/gateways",
            &json!({ "name": name, "url": upstream_url, "transport": "streamablehttp" }),
        )
        .await
        .context("cannot register the fixture upstream")?;
    let listed = api.get("/tools?limit=500").await?;
    let tools: Vec<(String, String)> = listed.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|item| item["gateway_id"].as_str() == Some(&gateway_id))
                .filter_map(|item| {
                    Some((
                        item["id"].as_str()?.to_owned(),
                        item["name"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let federated = tools
        .iter()
        .find(|(_, name)| name.ends_with(tool))
        .map(|(_, name)| name.clone())
        .with_context(|| format!("the gateway federated no tool {tool:?}: {}", listed.body))?;
    let tool_ids: Vec<&str> = tools.iter().map(|(id, _)| id.as_str()).collect();
    let server_id = api
        .create(
            "/servers",
            &json!({ "name": format!("{name} server"), "tool_ids": tool_ids }),
        )
        .await
        .context("cannot create the virtual server")?;
    let target = McpTarget::gateway(
        format!("{}/servers/{server_id}/mcp", api.base()),
        federated,
        api.token().to_owned(),
    );
    // The catalog MCP clients see is rebuilt shortly after the registry changes.
    let deadline = tokio::time::Instant::now() + PROVISION_DEADLINE;
    loop {
        match target.call(http, 0, 0).await {
            Ok(()) => return Ok(target),
            Err(failure) if tokio::time::Instant::now() > deadline => {
                bail!(
                    "{} never became callable at {}: {}",
                    target.tool,
                    target.url,
                    failure.cause()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
