//! Prompt templates are user input: they are rendered in a sandbox with a budget.
//!
//! Templates are Jinja (rendered by minijinja, so prompts imported from gateways whose
//! templates are Jinja2 render unchanged). A render runs in a short-lived child process — the
//! gateway's own binary, `mcpgate render-prompt` — never on an HTTP worker, with:
//! - a step budget (minijinja fuel, `PROMPT_RENDER_FUEL`);
//! - an output budget (`PROMPT_RENDER_MAX_OUTPUT_BYTES`);
//! - a memory budget (the child's address-space limit, `PROMPT_RENDER_MEMORY_MB`): a template
//!   that doubles a string in a loop exhausts the child, not the gateway;
//! - a wall-time budget (`PROMPT_RENDER_TIMEOUT_MS`; the child is killed past it) and a CPU
//!   limit;
//! - a cap on renders in flight (`PROMPT_RENDER_CONCURRENCY`); callers past it wait their turn
//!   within their own wall time.
//!
//! A render past a budget is an error that names the budget; the gateway is unaffected.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::config::parse;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The subcommand the child runs.
pub const SUBCOMMAND: &str = "render-prompt";

/// The budget of one render.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct RenderLimits {
    /// minijinja fuel of one prompt render: roughly, instructions executed.
    #[arg(id = "PROMPT_RENDER_FUEL", long = "prompt-render-fuel", env = "PROMPT_RENDER_FUEL", default_value = "100000", value_parser = parse::whole::<u64>(100, 100_000_000))]
    pub fuel: u64,
    /// The largest rendered prompt, in bytes.
    #[arg(id = "PROMPT_RENDER_MAX_OUTPUT_BYTES", long = "prompt-render-max-output-bytes", env = "PROMPT_RENDER_MAX_OUTPUT_BYTES", default_value = "1048576", value_parser = parse::whole::<usize>(1024, 64 * 1024 * 1024))]
    pub max_output_bytes: usize,
    /// The renderer process's address-space limit, in MiB.
    #[arg(id = "PROMPT_RENDER_MEMORY_MB", long = "prompt-render-memory-mb", env = "PROMPT_RENDER_MEMORY_MB", default_value = "256", value_parser = parse::whole::<u64>(64, 16 * 1024))]
    pub memory_mb: u64,
    /// How long a render may take, from start to answer, in milliseconds.
    #[arg(id = "PROMPT_RENDER_TIMEOUT_MS", long = "prompt-render-timeout-ms", env = "PROMPT_RENDER_TIMEOUT_MS", default_value = "2000", value_parser = parse::millis(100, 60_000))]
    pub timeout: Duration,
    /// Renders in flight at once.
    #[arg(id = "PROMPT_RENDER_CONCURRENCY", long = "prompt-render-concurrency", env = "PROMPT_RENDER_CONCURRENCY", default_value = "4", value_parser = parse::whole::<usize>(1, 256))]
    pub concurrency: usize,
    /// The program run as the renderer (an mcpgate binary; default: this process's own).
    #[arg(
        id = "PROMPT_RENDERER",
        long = "prompt-renderer",
        env = "PROMPT_RENDERER"
    )]
    pub program: Option<PathBuf>,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            fuel: 100_000,
            max_output_bytes: 1024 * 1024,
            memory_mb: 256,
            timeout: Duration::from_secs(2),
            concurrency: 4,
            program: None,
        }
    }
}

/// Why a template did not render.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template is not valid, or failed while rendering (an undefined filter, a type
    /// error…).
    #[error("the template failed: {0}")]
    Template(String),
    /// The step budget ran out.
    #[error("the template ran out of its step budget (PROMPT_RENDER_FUEL = {0})")]
    Fuel(u64),
    /// The output grew past its budget.
    #[error("the rendered text is larger than PROMPT_RENDER_MAX_OUTPUT_BYTES = {0}")]
    Output(usize),
    /// The renderer ran out of memory.
    #[error("the template used more memory than PROMPT_RENDER_MEMORY_MB = {0}")]
    Memory(u64),
    /// The render took too long.
    #[error("the template took longer than PROMPT_RENDER_TIMEOUT_MS = {0}")]
    Time(u128),
    /// The renderer could not be run.
    #[error("the prompt renderer is unavailable: {0}")]
    Unavailable(String),
}

/// What the parent sends the child.
#[derive(Serialize, Deserialize)]
struct Job {
    template: String,
    arguments: BTreeMap<String, String>,
    fuel: u64,
    max_output_bytes: usize,
}

/// What the child answers.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Text(String),
    Template(String),
    Fuel,
    Output,
}

/// The environment templates are compiled in: Jinja's builtins, nothing that reaches outside.
fn environment(fuel: Option<u64>) -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_fuel(fuel);
    env.set_recursion_limit(64);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
}

/// Checks that `source` compiles as a template (for validation when a prompt is stored).
pub fn check_syntax(source: &str) -> Result<(), String> {
    let env = environment(None);
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// A writer that refuses to grow past its budget.
struct Bounded {
    text: String,
    limit: usize,
    over: bool,
}

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len() + s.len() > self.limit {
            self.over = true;
            return Err(std::fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// Renders in this process under the step and output budgets (the child's work).
fn render_here(job: &Job) -> Answer {
    let env = environment(Some(job.fuel));
    let template = match env.template_from_str(&job.template) {
        Ok(template) => template,
        Err(error) => return Answer::Template(error.to_string()),
    };
    let mut out = Bounded {
        text: String::new(),
        limit: job.max_output_bytes,
        over: false,
    };
    match template.render_captured_to(&job.arguments, FmtWriter(&mut out)) {
        Ok(_) => Answer::Text(out.text),
        Err(_) if out.over => Answer::Output,
        Err(error) if error.kind() == minijinja::ErrorKind::OutOfFuel => Answer::Fuel,
        Err(error) => Answer::Template(error.to_string()),
    }
}

/// `io::Write` over the bounded `fmt::Write` (minijinja renders into an `io::Write`).
struct FmtWriter<'a>(&'a mut Bounded);

impl Write for FmtWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(buf)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
        std::fmt::Write::write_str(self.0, text)
            .map_err(|_| std::io::Error::other("output budget exceeded"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The child: `mcpgate render-prompt MEMORY_MB CPU_SECONDS`, a job on stdin, an answer on
/// stdout. Its memory and CPU are limited before it reads anything.
pub fn child_main(arguments: &[String]) -> ExitCode {
    let number = |index: usize, default: u64| {
        arguments
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let memory = number(0, 256).saturating_mul(1024 * 1024);
    let cpu_seconds = number(1, 2).max(1);
    if rlimit::setrlimit(rlimit::Resource::AS, memory, memory).is_err()
        || rlimit::setrlimit(rlimit::Resource::CPU, cpu_seconds, cpu_seconds + 1).is_err()
    {
        return ExitCode::from(3);
    }
    let mut input = Vec::new();
    if std::io::stdin()
        .take(16 * 1024 * 1024)
        .read_to_end(&mut input)
        .is_err()
    {
        return ExitCode::from(4);
    }
    let Ok(job) = serde_json::from_slice::<Job>(&input) else {
        return ExitCode::from(4);
    };
    let answer = render_here(&job);
    let Ok(bytes) = serde_json::to_vec(&answer) else {
        return ExitCode::from(5);
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(&bytes)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(5);
    }
    ExitCode::SUCCESS
}

/// Renders templates in child processes under a budget.
#[derive(Clone, Debug)]
pub struct PromptRenderer {
    limits: Arc<RenderLimits>,
    program: PathBuf,
    permits: Arc<tokio::sync::Semaphore>,
}

impl PromptRenderer {
    /// A renderer with these limits.
    pub fn new(limits: RenderLimits) -> Result<Self, String> {
        let program = match &limits.program {
            Some(program) => program.clone(),
            None => std::env::current_exe()
                .map_err(|error| format!("cannot find the gateway's own executable: {error}"))?,
        };
        Ok(PromptRenderer {
            permits: Arc::new(tokio::sync::Semaphore::new(limits.concurrency.max(1))),
            limits: Arc::new(limits),
            program,
        })
    }

    /// Renders `template` with `arguments`, within the budget.
    pub async fn render(
        &self,
        template: &str,
        arguments: BTreeMap<String, String>,
    ) -> Result<String, RenderError> {
        let limits = &self.limits;
        let timeout = limits.timeout;
        let job = Job {
            template: template.to_owned(),
            arguments,
            fuel: limits.fuel,
            max_output_bytes: limits.max_output_bytes,
        };
        let work = async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| RenderError::Unavailable("the renderer is closed".into()))?;
            self.run_child(&job).await
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(RenderError::Time(timeout.as_millis())))
    }

    async fn run_child(&self, job: &Job) -> Result<String, RenderError> {
        let limits = &self.limits;
        let unavailable = |error: std::io::Error| RenderError::Unavailable(error.to_string());
        let input =
            serde_json::to_vec(job).map_err(|error| RenderError::Unavailable(error.to_string()))?;
        let mut child = tokio::process::Command::new(&self.program)
            .arg(SUBCOMMAND)
            .arg(limits.memory_mb.to_string())
            .arg(limits.timeout.as_secs().max(1).to_string())
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Dropped (on timeout), the child is killed.
            .kill_on_drop(true)
            .spawn()
            .map_err(unavailable)?;
        let mut stdin = child.stdin.take().ok_or_else(|| {
            RenderError::Unavailable("the renderer's input is not available".into())
        })?;
        let mut stdout = child.stdout.take().ok_or_else(|| {
            RenderError::Unavailable("the renderer's output is not available".into())
        })?;
        let write = async move {
            // A child that died early closes its input: its exit status tells why.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let read = async move {
            let mut output = Vec::new();
            let limit = (limits.max_output_bytes as u64) * 6 + 4096;
            let _ = (&mut stdout).take(limit).read_to_end(&mut output).await;
            output
        };
        let ((), output) = tokio::join!(write, read);
        let status = child.wait().await.map_err(unavailable)?;
        if let Ok(answer) = serde_json::from_slice::<Answer>(&output) {
            return match answer {
                Answer::Text(text) => Ok(text),
                Answer::Template(message) => Err(RenderError::Template(message)),
                Answer::Fuel => Err(RenderError::Fuel(limits.fuel)),
                Answer::Output => Err(RenderError::Output(limits.max_output_bytes)),
            };
        }
        use std::os::unix::process::ExitStatusExt;
        match status.signal() {
            // SIGXCPU: the CPU limit.
            Some(24) | Some(9) => Err(RenderError::Time(limits.timeout.as_millis())),
            // An allocation the address-space limit refused aborts the child.
            Some(6) | Some(11) => Err(RenderError::Memory(limits.memory_mb)),
            _ => Err(RenderError::Unavailable(format!(
                "the renderer ({}) ended with {status} and no answer",
                self.program.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(template: &str, fuel: u64, max_output_bytes: usize) -> Job {
        Job {
            template: template.into(),
            arguments: BTreeMap::from([("text".to_owned(), "hello".to_owned())]),
            fuel,
            max_output_bytes,
        }
    }

    fn text(answer: Answer) -> String {
        match answer {
            Answer::Text(text) => text,
            _ => panic!("expected text"),
        }
    }

    #[test]
    fn jinja_templates_render_within_budget() {
        assert_eq!(
            text(render_here(&job(
                "Summarise {{ text | upper }}{% if missing %}!{% endif %}",
                1000,
                100
            ))),
            "Summarise HELLO"
        );
        assert!(matches!(
            render_here(&job(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                10_000,
                1 << 30
            )),
            Answer::Fuel
        ));
        assert!(matches!(
            render_here(&job(
                "{% for i in range(1000) %}{{ text }}{% endfor %}",
                100_000,
                100
            )),
            Answer::Output
        ));
        assert!(matches!(
            render_here(&job("{{ text | no_such_filter }}", 1000, 100)),
            Answer::Template(_)
        ));
        assert!(check_syntax("{{ unclosed").is_err());
        assert!(check_syntax("Hello {{ name }}").is_ok());
    }
}
