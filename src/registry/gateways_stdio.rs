//! A stdio upstream's command as registered: checked (whether it may run is the service's
//! decision) and shown where a URL would be.

use super::GatewayCreate;
use crate::registry::Invalid;
use crate::registry::validate::{invalid, optional_text, required_text};
use crate::upstream::process::StoredCommand;

/// Arguments, environment variables and their sizes a stdio upstream may have.
const MAX_ARGS: usize = 64;
const MAX_ENV: usize = 64;

/// A stdio upstream's command, checked (whether it may run is the service's decision).
pub(super) fn stdio_command(input: &GatewayCreate) -> Result<StoredCommand, Invalid> {
    let no_nul = |field: &str, value: &str| {
        if value.contains('\0') {
            Err(invalid(field, "must not contain NUL"))
        } else {
            Ok(())
        }
    };
    if let Some(url) = &input.url
        && !url.starts_with("stdio:")
    {
        return Err(invalid(
            "url",
            "a stdio upstream has no URL: give command (and args)",
        ));
    }
    let command = required_text(
        "command",
        input.command.as_deref().unwrap_or_default(),
        1024,
    )?;
    no_nul("command", &command)?;
    if command.contains('/') && !command.starts_with('/') {
        return Err(invalid(
            "command",
            "give a name looked up in PATH or an absolute path",
        ));
    }
    let args = input.args.clone().unwrap_or_default();
    if args.len() > MAX_ARGS {
        return Err(invalid("args", format!("at most {MAX_ARGS} arguments")));
    }
    for (at, arg) in args.iter().enumerate() {
        no_nul(&format!("args[{at}]"), arg)?;
        if arg.len() > 4096 {
            return Err(invalid(format!("args[{at}]"), "at most 4096 bytes"));
        }
    }
    let env = input.env.clone().unwrap_or_default();
    if env.len() > MAX_ENV {
        return Err(invalid("env", format!("at most {MAX_ENV} variables")));
    }
    for (name, value) in &env {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= 128;
        if !valid {
            return Err(invalid(
                format!("env.{name}"),
                "a variable name is letters, digits and _, not starting with a digit",
            ));
        }
        if steers_the_runtime(name) {
            return Err(invalid(
                format!("env.{name}"),
                "may not be set: it changes what the allowed command runs (PATH, loader and interpreter options)",
            ));
        }
        no_nul(&format!("env.{name}"), value)?;
        if value.len() > 8192 {
            return Err(invalid(format!("env.{name}"), "at most 8192 bytes"));
        }
    }
    let cwd = optional_text("cwd", input.cwd.as_deref(), 4096)?;
    if let Some(cwd) = &cwd {
        no_nul("cwd", cwd)?;
        if !cwd.starts_with('/') {
            return Err(invalid("cwd", "must be an absolute path"));
        }
    }
    let process = input.process.clone().unwrap_or_default();
    if process
        .max_memory_mb
        .is_some_and(|mb| !(16..=1_048_576).contains(&mb))
    {
        return Err(invalid("process.max_memory_mb", "must be 16 to 1048576"));
    }
    if process
        .max_open_files
        .is_some_and(|files| !(16..=1_048_576).contains(&files))
    {
        return Err(invalid("process.max_open_files", "must be 16 to 1048576"));
    }
    if process
        .idle_stop_seconds
        .is_some_and(|seconds| !(1..=7 * 86_400).contains(&seconds))
    {
        return Err(invalid("process.idle_stop_seconds", "must be 1 to 604800"));
    }
    Ok(StoredCommand {
        command,
        args,
        cwd,
        env: env.keys().cloned().collect(),
        process,
    })
}

/// Whether an environment variable would change what runs rather than configure it: where
/// programs are found, what the dynamic loader injects, what an interpreter loads first. The
/// allow list names commands; these would get past it.
fn steers_the_runtime(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    name.starts_with("LD_")
        || name.starts_with("DYLD_")
        || matches!(
            name.as_str(),
            "PATH"
                | "NODE_OPTIONS"
                | "NODE_PATH"
                | "PYTHONPATH"
                | "PYTHONHOME"
                | "PYTHONSTARTUP"
                | "PYTHONINSPECT"
                | "BASH_ENV"
                | "ENV"
                | "PERL5OPT"
                | "PERL5LIB"
                | "RUBYOPT"
                | "RUBYLIB"
                | "JAVA_TOOL_OPTIONS"
                | "_JAVA_OPTIONS"
                | "JDK_JAVA_OPTIONS"
        )
}

/// How a stdio upstream is shown where a URL would be: `stdio:` and its command line.
pub(super) fn command_line(command: &StoredCommand) -> String {
    let mut line = format!("stdio:{}", command.command);
    for arg in &command.args {
        line.push(' ');
        line.push_str(arg);
    }
    if line.len() > 2048 {
        let mut cut = 2045;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line
}
