//! Local MCP servers run as child processes (stdio upstreams). [`Processes`] starts each one
//! from the command an operator registered, with a clean environment, in a process group of its
//! own, with the resource limits asked for, and supervises it: one task per process owns the
//! child, logs its stderr under the upstream's name, reaps it when it exits, and stops it on
//! request (SIGTERM to the group, SIGKILL after the grace period, so no orphan is left and no
//! zombie stays). The table of running processes answers operators (`GET
//! /gateways/{id}/processes`) and the stop at shutdown.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use super::CallError;
use crate::config::StdioSettings;

/// Environment variables a process inherits from the gateway (everything else it is given is
/// its registration's own: the gateway's secrets never reach it).
const INHERITED: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"];

/// The longest stderr line logged (longer lines are cut).
const MAX_LOG_LINE: usize = 4096;

/// Stderr lines of one process logged per second, after a burst (the rest are counted).
const LOG_LINES_PER_SECOND: u32 = 50;

/// How a stdio upstream's process is run, as stored (`gateways.command`): everything but the
/// environment's values, which are sealed with the credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredCommand {
    /// The program (a name looked up in PATH, or an absolute path).
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its working directory (default: the gateway's).
    #[serde(default)]
    pub cwd: Option<String>,
    /// The names of the environment variables it is given (their values are secret).
    #[serde(default)]
    pub env: Vec<String>,
    /// How it is run.
    #[serde(default)]
    pub process: ProcessOptions,
}

/// When a process runs and what it may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessOptions {
    /// Start the shared process when the gateway starts (default: on first use).
    #[serde(default)]
    pub start_at_launch: bool,
    /// Stop a process nobody has called for this many seconds (it starts again when next
    /// used); none by default.
    #[serde(default)]
    pub idle_stop_seconds: Option<u64>,
    /// Address space the process may use, in MiB (RLIMIT_AS). Runtimes that reserve much
    /// virtual memory up front (Node.js, the JVM) need several GiB here.
    #[serde(default)]
    pub max_memory_mb: Option<u64>,
    /// Files the process may have open at once (RLIMIT_NOFILE).
    #[serde(default)]
    pub max_open_files: Option<u64>,
}

/// What starting a stdio upstream's process takes: its command with the environment's values,
/// and the upstream it belongs to.
#[derive(Debug, Clone)]
pub struct StdioCommand {
    /// The upstream's id (processes are counted and stopped by it).
    pub gateway_id: String,
    /// The upstream's name, in logs (not part of what the process is: a rename keeps it).
    pub label: String,
    /// The command.
    pub stored: StoredCommand,
    /// The environment variables it is given.
    pub env: BTreeMap<String, String>,
}

impl PartialEq for StdioCommand {
    fn eq(&self, other: &Self) -> bool {
        self.gateway_id == other.gateway_id && self.stored == other.stored && self.env == other.env
    }
}

/// Which of an upstream's processes this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The one shared by every client that needs no session of its own.
    Shared,
    /// One client's own (an affine session).
    Client,
    /// Started for a discovery, ended after it.
    Discovery,
}

/// A running process, as operators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProcessView {
    /// Its process id.
    pub pid: u32,
    /// Whose it is.
    pub role: Role,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The gateway stopped it (deleted, idle, shut down, replaced).
    Stopped,
    /// It exited or was killed by someone else; how.
    Died(String),
}

/// One running process in the table.
struct Entry {
    gateway_id: String,
    view: ProcessView,
    stop: CancellationToken,
    exited: watch::Receiver<Option<Exit>>,
}

/// Every running stdio process of this gateway.
pub struct Processes {
    settings: StdioSettings,
    running: Mutex<HashMap<u64, Entry>>,
    serial: AtomicU64,
    /// The gateway is stopping: nothing more is started.
    closed: std::sync::atomic::AtomicBool,
}

/// A started process: its pipes and its handle.
pub struct Started {
    /// Its stdin.
    pub stdin: ChildStdin,
    /// Its stdout.
    pub stdout: ChildStdout,
    /// Stops it and tells how it ended.
    pub handle: ProcessHandle,
}

/// A process's handle: stopping it, and learning how it ended. Dropping the handle stops it.
pub struct ProcessHandle {
    pid: u32,
    stop: CancellationToken,
    exited: watch::Receiver<Option<Exit>>,
}

impl ProcessHandle {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What stops it, for a task that decides when.
    pub fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Asks it to stop (SIGTERM, then SIGKILL after the grace period).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// How it ended, once it has.
    pub fn exit(&self) -> Option<Exit> {
        self.exited.borrow().clone()
    }

    /// Ends once the process has exited (and was reaped), with how.
    pub fn exited(&self) -> impl std::future::Future<Output = Exit> + Send + 'static {
        let mut exited = self.exited.clone();
        async move {
            match exited.wait_for(Option::is_some).await {
                Ok(exit) => exit.clone().unwrap_or(Exit::Stopped),
                Err(_) => Exit::Stopped,
            }
        }
    }
}

impl Drop for ProcessHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Processes {
    /// No process yet.
    pub fn new(settings: StdioSettings) -> Arc<Self> {
        Arc::new(Processes {
            settings,
            running: Mutex::default(),
            serial: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Starts `command`'s process in `role`: refused when the command is not (or no longer)
    /// allowed, or as many processes as allowed run already.
    pub fn spawn(
        self: &Arc<Self>,
        command: &StdioCommand,
        role: Role,
    ) -> Result<Started, CallError> {
        let stored = &command.stored;
        if self.closed.load(Ordering::Acquire) {
            return Err(CallError::Transport("the gateway is stopping".into()));
        }
        if !self.settings.allows(&stored.command) {
            return Err(CallError::Transport(format!(
                "the command {:?} is not in STDIO_COMMANDS",
                stored.command
            )));
        }
        // Counted and entered under one lock; clients' own processes may take only three
        // quarters of the places, so shared processes can always start again.
        let mut running = lock(&self.running);
        let limit = match role {
            Role::Client => self.settings.max_processes * 3 / 4,
            Role::Shared | Role::Discovery => self.settings.max_processes,
        };
        if running.len() >= limit {
            return Err(CallError::Transport(format!(
                "{} stdio processes run already (STDIO_MAX_PROCESSES = {})",
                running.len(),
                self.settings.max_processes
            )));
        }
        let mut child = build(stored, &command.env).spawn().map_err(|error| {
            CallError::Transport(format!("could not start {:?}: {error}", stored.command))
        })?;
        let Some(pid) = child.id().filter(|pid| *pid > 0) else {
            return Err(CallError::Transport("the process has no id".into()));
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(CallError::Transport("the process has no pipes".into()));
        };
        tracing::info!(upstream = %command.label, pid, ?role, "stdio upstream process started");
        let stop = CancellationToken::new();
        let (told, exited) = watch::channel(None);
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        running.insert(
            serial,
            Entry {
                gateway_id: command.gateway_id.clone(),
                view: ProcessView {
                    pid,
                    role,
                    started_at: chrono::Utc::now(),
                },
                stop: stop.clone(),
                exited: exited.clone(),
            },
        );
        drop(running);
        let last_words: LastWords = Arc::default();
        let logging = tokio::spawn(log_stderr(
            stderr,
            command.label.clone(),
            pid,
            last_words.clone(),
        ));
        let processes = self.clone();
        let label = command.label.clone();
        let stopping = stop.clone();
        tokio::spawn(async move {
            let exit = supervise(child, pid, stopping, processes.settings.stop_grace).await;
            match &exit {
                Exit::Stopped => {
                    tracing::info!(upstream = %label, pid, "stdio upstream process stopped")
                }
                Exit::Died(how) => {
                    // What it last wrote to stderr says why, more often than not; it goes to
                    // the log only (callers see how it ended: stderr may hold secrets).
                    let _ = tokio::time::timeout(Duration::from_millis(500), logging).await;
                    let said = telling(&lock(&last_words)).unwrap_or_default().to_owned();
                    tracing::warn!(upstream = %label, pid, how, said, "stdio upstream process exited")
                }
            }
            lock(&processes.running).remove(&serial);
            let _ = told.send(Some(exit));
        });
        Ok(Started {
            stdin,
            stdout,
            handle: ProcessHandle { pid, stop, exited },
        })
    }

    /// The running processes of an upstream.
    pub fn of(&self, gateway_id: &str) -> Vec<ProcessView> {
        let mut views: Vec<ProcessView> = lock(&self.running)
            .values()
            .filter(|entry| entry.gateway_id == gateway_id)
            .map(|entry| entry.view.clone())
            .collect();
        views.sort_by_key(|view| view.started_at);
        views
    }

    /// Stops every process of an upstream (or, with `None`, every one) and waits until they
    /// have exited.
    pub async fn stop(&self, gateway_id: Option<&str>) {
        if gateway_id.is_none() {
            self.closed.store(true, Ordering::Release);
        }
        let waiting: Vec<watch::Receiver<Option<Exit>>> = lock(&self.running)
            .values()
            .filter(|entry| gateway_id.is_none_or(|id| entry.gateway_id == id))
            .map(|entry| {
                entry.stop.cancel();
                entry.exited.clone()
            })
            .collect();
        for mut exited in waiting {
            let _ = exited.wait_for(Option::is_some).await;
        }
    }
}

/// The command for a process: a clean environment (a few inherited variables and its own), its
/// working directory, piped stdio, a process group of its own (so stopping it reaches whatever
/// it started), its resource limits, and death with the gateway.
fn build(stored: &StoredCommand, env: &BTreeMap<String, String>) -> Command {
    let mut command = Command::new(&stored.command);
    command
        .args(&stored.args)
        .env_clear()
        .envs(
            INHERITED
                .iter()
                .filter_map(|name| std::env::var_os(name).map(|value| (*name, value))),
        )
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // The last resort (the supervising task gone without stopping it): SIGKILL.
        .kill_on_drop(true);
    if let Some(cwd) = &stored.cwd {
        command.current_dir(cwd);
    }
    let limits = (stored.process.max_memory_mb, stored.process.max_open_files);
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (prctl and setrlimit are system calls) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            use nix::sys::resource::{Resource, setrlimit};
            // The gateway dying (even by SIGKILL) takes the process with it.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            if let Some(mb) = limits.0 {
                let bytes = mb.saturating_mul(1024 * 1024);
                setrlimit(Resource::RLIMIT_AS, bytes, bytes)?;
            }
            if let Some(files) = limits.1 {
                setrlimit(Resource::RLIMIT_NOFILE, files, files)?;
            }
            Ok(())
        });
    }
    command
}

/// Owns a child until it exits: waits for it, or, when asked to stop, sends SIGTERM to its
/// group and SIGKILL after `grace`. Whatever is left of its group is killed after (a program it
/// started must not outlive it), and the child is always reaped.
async fn supervise(mut child: Child, pid: u32, stop: CancellationToken, grace: Duration) -> Exit {
    let group = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    let signal = |signal| {
        let _ = nix::sys::signal::killpg(group, signal);
    };
    // Waits for the leader to exit without reaping it: while it is a zombie its id (the
    // group's) cannot be taken by another process, so its group can still be signalled safely.
    let mut leader = tokio::task::spawn_blocking(move || {
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        let _ = waitid(Id::Pid(group), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
    });
    let exit = tokio::select! {
        _ = &mut leader => None,
        _ = stop.cancelled() => {
            signal(nix::sys::signal::Signal::SIGTERM);
            if tokio::time::timeout(grace, &mut leader).await.is_err() {
                signal(nix::sys::signal::Signal::SIGKILL);
                let _ = (&mut leader).await;
            }
            Some(Exit::Stopped)
        }
    };
    // Whatever is left of its group goes with it, then the leader is reaped.
    signal(nix::sys::signal::Signal::SIGKILL);
    let status = child.wait().await;
    exit.unwrap_or_else(|| Exit::Died(describe(status)))
}

/// How a process ended, in words.
fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended".to_owned(),
        },
        Err(error) => format!("could not be waited for: {error}"),
    }
}

/// Logs a process's stderr under its upstream's name, a line at a time (cut at
/// [`MAX_LOG_LINE`], at most [`LOG_LINES_PER_SECOND`] a second); what cannot be read as lines
/// is drained unlogged, so the process never blocks on a full pipe.
async fn log_stderr(
    stderr: tokio::process::ChildStderr,
    label: String,
    pid: u32,
    last_words: LastWords,
) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(64 * 1024));
    let mut second = tokio::time::Instant::now();
    let (mut logged, mut dropped) = (0u32, 0u64);
    while let Some(line) = lines.next().await {
        let Ok(mut line) = line else {
            break;
        };
        if second.elapsed() >= Duration::from_secs(1) {
            if dropped > 0 {
                tracing::warn!(upstream = %label, pid, dropped, "stderr lines not logged (too many)");
            }
            second = tokio::time::Instant::now();
            (logged, dropped) = (0, 0);
        }
        if logged >= LOG_LINES_PER_SECOND {
            dropped += 1;
            continue;
        }
        logged += 1;
        cut(&mut line, MAX_LOG_LINE);
        let said = line.trim();
        if !said.is_empty() {
            let mut said = said.to_owned();
            cut(&mut said, MAX_LAST_WORDS);
            let mut last = lock(&last_words);
            if last.len() == LAST_LINES {
                last.pop_front();
            }
            last.push_back(said);
        }
        tracing::info!(target: "mcpgate::stdio", upstream = %label, pid, "{line}");
    }
    let mut rest = lines.into_inner();
    let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
}

/// The last lines a process wrote to stderr (each cut), one of which is told with how it died.
type LastWords = Arc<Mutex<std::collections::VecDeque<String>>>;

/// Lines kept, and the most of one told.
const LAST_LINES: usize = 32;
const MAX_LAST_WORDS: usize = 300;

/// The line of a process's last words that says most: the last naming an error (a runtime's
/// version banner often comes after the error), else the last.
fn telling(lines: &std::collections::VecDeque<String>) -> Option<&str> {
    lines
        .iter()
        .rev()
        .find(|line| line.contains("Error") || line.contains("error"))
        .or_else(|| lines.back())
        .map(String::as_str)
}

/// Cuts `text` to at most `limit` bytes, at a character boundary.
fn cut(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut at = limit;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
