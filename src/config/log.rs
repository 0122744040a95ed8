//! Log output (`LOG_LEVEL`, `LOG_FORMAT`).

/// Log output.
#[derive(clap::Args, Clone, Debug)]
pub struct LogSettings {
    /// A level (error, warn, info, debug, trace) or a full filter (info,mcpgate=debug).
    #[arg(id = "LOG_LEVEL", long = "log-level", env = "LOG_LEVEL", default_value = "info", value_parser = level)]
    pub level: String,
    /// What the console's logs page keeps in memory: a level or filter like LOG_LEVEL (default:
    /// LOG_LEVEL's).
    #[arg(id = "LOG_RING_LEVEL", long = "log-ring-level", env = "LOG_RING_LEVEL", value_parser = level)]
    pub ring_level: Option<String>,
    /// text or json (one object per line).
    #[arg(id = "LOG_FORMAT", long = "log-format", env = "LOG_FORMAT", default_value = "text", value_parser = format)]
    pub format: LogFormat,
}

/// The log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn level(value: &str) -> Result<String, String> {
    match tracing_subscriber::EnvFilter::try_new(value) {
        Ok(_) => Ok(value.to_owned()),
        Err(_) => Err("not a level (error, warn, info, debug, trace) or filter".into()),
    }
}

fn format(value: &str) -> Result<LogFormat, String> {
    match value.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("not one of text, json".into()),
    }
}
