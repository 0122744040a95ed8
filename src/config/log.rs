//! Log output (`LOG_LEVEL`, `LOG_FORMAT`).

use super::{ConfigError, Source, invalid};

/// Log output.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// `LOG_LEVEL`: a level (`info`) or a full filter (`info,mcpgate=debug`); default `info`.
    pub level: String,
    /// `LOG_FORMAT`: `text` (default) or `json`.
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

/// Reads the log settings.
pub(super) fn read(source: &Source<'_>) -> Result<LogSettings, ConfigError> {
    let level = source.string("LOG_LEVEL", "info");
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(invalid(
            "LOG_LEVEL",
            format!("{level:?} is not a level (error, warn, info, debug, trace) or filter"),
        ));
    }
    let format = match source
        .string("LOG_FORMAT", "text")
        .to_ascii_lowercase()
        .as_str()
    {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "LOG_FORMAT",
                format!("{other:?} is not one of text, json"),
            ));
        }
    };
    Ok(LogSettings { level, format })
}
