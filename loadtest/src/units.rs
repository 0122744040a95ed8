//! Small value types shared by the CLI, the fixture and the reports: a delay range and
//! durations written as `500ms`, `15s` or `10m`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use serde::{Serialize, Serializer};

/// How long the fixture's tool takes: fixed (`min_ms == max_ms`) or uniform in a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DelayRange {
    /// The shortest delay, in milliseconds.
    pub min_ms: u64,
    /// The longest delay, in milliseconds.
    pub max_ms: u64,
}

impl DelayRange {
    /// No delay at all (the fast path).
    pub const ZERO: DelayRange = DelayRange {
        min_ms: 0,
        max_ms: 0,
    };

    /// A range; `min_ms` must not exceed `max_ms`.
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        debug_assert!(min_ms <= max_ms);
        DelayRange { min_ms, max_ms }
    }

    /// One delay drawn uniformly from the range.
    pub fn sample(&self) -> Duration {
        if self.min_ms == self.max_ms {
            return Duration::from_millis(self.min_ms);
        }
        Duration::from_millis(rand::rng().random_range(self.min_ms..=self.max_ms))
    }
}

impl fmt::Display for DelayRange {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min_ms == self.max_ms {
            write!(formatter, "{}", self.min_ms)
        } else {
            write!(formatter, "{}..{}", self.min_ms, self.max_ms)
        }
    }
}

impl FromStr for DelayRange {
    type Err = String;

    /// `250` (fixed) or `1000..5000` (uniform), in milliseconds.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let number = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|_| format!("{text:?} is not `MS` or `MIN..MAX` in milliseconds"))
        };
        let (min_ms, max_ms) = match text.split_once("..") {
            Some((min, max)) => (number(min)?, number(max)?),
            None => {
                let fixed = number(text)?;
                (fixed, fixed)
            }
        };
        if min_ms > max_ms {
            return Err(format!("{text:?}: the minimum is larger than the maximum"));
        }
        Ok(DelayRange { min_ms, max_ms })
    }
}

/// Parses `500ms`, `15s`, `2.5s`, `10m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(number) = text.strip_suffix("ms") {
        (number, 0.001)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60.0)
    } else if let Some(number) = text.strip_suffix('h') {
        (number, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 15s or 10m"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "{text:?} is not a duration such as 500ms, 15s or 10m"
        ));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// Serializes a duration as seconds (for `#[serde(serialize_with)]`).
pub fn as_seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// Rounds to three decimals, for readable reports.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
