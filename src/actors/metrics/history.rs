//! Call history that survives a restart: all calls per minute (the last day) and per hour (the
//! last week), and per hour for each tool, virtual server and upstream (the last day) with a
//! latency sketch (DDSketch, 1 % relative error) for p50/p95/p99.
//!
//! This process's own tallies are written to `metric_rollups` with each batch of call records,
//! overwriting its own rows as they grow; what other processes wrote (earlier runs, other
//! replicas) is read once at start and kept apart, so nothing is counted twice.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};
use utoipa::ToSchema;

use crate::db::metrics::{RollupRow, RollupWindow, ToolMetricRow};

/// A minute, in seconds: the width of the per-minute rows.
pub const MINUTE: i32 = 60;
/// An hour, in seconds.
pub const HOUR: i32 = 3600;
/// Minutes of all calls kept: a day.
const MINUTES_KEPT: i64 = 24 * 60;
/// Hours of all calls kept: a week.
const HOURS_KEPT: i64 = 7 * 24;
/// Hours kept per tool, server and upstream: a day.
pub const KEYED_HOURS_KEPT: i64 = 24;
/// Relative accuracy of the latency quantiles.
const SKETCH_ACCURACY: f64 = 0.01;

/// What a keyed tally counts calls of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A tool, by its name in the gateway.
    Tool,
    /// A virtual server, by id.
    Server,
    /// An upstream, by id.
    Upstream,
}

impl Scope {
    const EVERY: [Scope; 3] = [Scope::Tool, Scope::Server, Scope::Upstream];

    fn as_str(self) -> &'static str {
        match self {
            Scope::Tool => "tool",
            Scope::Server => "server",
            Scope::Upstream => "upstream",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Durations in milliseconds, as a sketch answering quantiles within 1 %.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Latency(DDSketch);

impl Default for Latency {
    fn default() -> Self {
        Latency(DDSketch::new(Config::new(SKETCH_ACCURACY, 2048, 0.001)))
    }
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latency")
            .field("count", &self.0.count())
            .finish()
    }
}

impl Latency {
    /// Counts one duration.
    pub fn add(&mut self, ms: f64) {
        self.0.add(ms.max(0.0));
    }

    /// The `q`-quantile (0–1); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q).ok().flatten()
    }

    /// Adds `other`'s durations. Sketches made here share one configuration; a stored one
    /// that does not is left out.
    fn merge(&mut self, other: &Latency) {
        let _ = self.0.merge(&other.0);
    }
}

/// The calls of one interval.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub calls: u64,
    pub failures: u64,
    pub duration_ms_sum: f64,
    /// Durations in milliseconds (per tool, server and upstream only).
    pub latency: Option<Latency>,
    pub last_call_at: Option<NaiveDateTime>,
    pub last_error: Option<(NaiveDateTime, String)>,
    /// Changed since it was last written (own tallies only).
    dirty: bool,
}

impl Tally {
    fn count(&mut self, row: &ToolMetricRow, with_latency: bool) {
        self.calls += 1;
        self.duration_ms_sum += row.duration_ms;
        if with_latency {
            self.latency
                .get_or_insert_with(Latency::default)
                .add(row.duration_ms);
        }
        self.last_call_at = self.last_call_at.max(Some(row.started_at));
        if !row.success {
            self.failures += 1;
            if self
                .last_error
                .as_ref()
                .is_none_or(|(at, _)| *at <= row.started_at)
            {
                let why = row.error.clone().unwrap_or_else(|| "failed".into());
                self.last_error = Some((row.started_at, why));
            }
        }
        self.dirty = true;
    }

    /// Adds `other`'s calls to these.
    pub fn merge(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.failures += other.failures;
        self.duration_ms_sum += other.duration_ms_sum;
        if let Some(theirs) = &other.latency {
            self.latency
                .get_or_insert_with(Latency::default)
                .merge(theirs);
        }
        self.last_call_at = self.last_call_at.max(other.last_call_at);
        if let Some((at, why)) = &other.last_error
            && self.last_error.as_ref().is_none_or(|(ours, _)| ours <= at)
        {
            self.last_error = Some((*at, why.clone()));
        }
    }

    /// The `q`-quantile (0–1) of durations in milliseconds; `None` without a sketch or calls.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.latency.as_ref()?.quantile(q)
    }

    fn to_row(&self, instance: &str, width: i32, bucket: i64, scope: &str, key: &str) -> RollupRow {
        RollupRow {
            instance: instance.to_owned(),
            width,
            bucket,
            scope: scope.to_owned(),
            key: key.to_owned(),
            calls: i64::try_from(self.calls).unwrap_or(i64::MAX),
            failures: i64::try_from(self.failures).unwrap_or(i64::MAX),
            duration_ms_sum: self.duration_ms_sum,
            latency: self
                .latency
                .as_ref()
                .and_then(|sketch| serde_json::to_string(sketch).ok()),
            last_call_at: self.last_call_at,
            last_error: self.last_error.as_ref().map(|(_, why)| why.clone()),
            last_error_at: self.last_error.as_ref().map(|(at, _)| *at),
        }
    }

    fn from_row(row: &RollupRow) -> Tally {
        Tally {
            calls: u64::try_from(row.calls).unwrap_or_default(),
            failures: u64::try_from(row.failures).unwrap_or_default(),
            duration_ms_sum: row.duration_ms_sum,
            latency: row
                .latency
                .as_deref()
                .and_then(|json| serde_json::from_str(json).ok()),
            last_call_at: row.last_call_at,
            last_error: row.last_error_at.zip(row.last_error.clone()),
            dirty: false,
        }
    }
}

/// Tallies per interval index, oldest first.
type Buckets = BTreeMap<i64, Tally>;

/// Counts one call in interval `index`, forgetting intervals before `index - kept + 1`.
fn count_in(buckets: &mut Buckets, index: i64, kept: i64, row: &ToolMetricRow, latency: bool) {
    buckets.entry(index).or_default().count(row, latency);
    while buckets
        .first_key_value()
        .is_some_and(|(first, _)| *first <= index - kept)
    {
        buckets.pop_first();
    }
}

/// One set of tallies: all calls per minute and per hour, and per hour for each key.
#[derive(Debug, Clone, Default)]
struct Tallies {
    minutes: Buckets,
    hours: Buckets,
    keyed: [HashMap<String, Buckets>; 3],
}

impl Tallies {
    fn count(&mut self, row: &ToolMetricRow, server: Option<&str>) {
        let seconds = row.started_at.and_utc().timestamp();
        let minute = seconds.div_euclid(i64::from(MINUTE));
        let hour = seconds.div_euclid(i64::from(HOUR));
        count_in(&mut self.minutes, minute, MINUTES_KEPT, row, false);
        count_in(&mut self.hours, hour, HOURS_KEPT, row, false);
        let keys = [
            (Scope::Tool, Some(row.tool_name.as_str())),
            (Scope::Server, server),
            (Scope::Upstream, row.gateway_id.as_deref()),
        ];
        for (scope, key) in keys {
            let Some(key) = key else { continue };
            let map = &mut self.keyed[scope.index()];
            let buckets = match map.get_mut(key) {
                Some(buckets) => buckets,
                None => map.entry(key.to_owned()).or_default(),
            };
            count_in(buckets, hour, KEYED_HOURS_KEPT, row, true);
        }
    }

    /// Takes a stored row in.
    fn absorb(&mut self, row: &RollupRow) {
        let buckets = match (row.width, row.scope.as_str()) {
            (MINUTE, "all") => &mut self.minutes,
            (HOUR, "all") => &mut self.hours,
            (HOUR, scope) => match Scope::EVERY.iter().find(|known| known.as_str() == scope) {
                Some(scope) => self.keyed[scope.index()]
                    .entry(row.key.clone())
                    .or_default(),
                None => return,
            },
            _ => return,
        };
        buckets
            .entry(row.bucket)
            .or_default()
            .merge(&Tally::from_row(row));
    }

    /// The tallies changed since the last call, as rows of `instance`; marks them written.
    fn take_dirty(&mut self, instance: &str) -> Vec<RollupRow> {
        let mut rows = Vec::new();
        let mut take = |buckets: &mut Buckets, width: i32, scope: &str, key: &str| {
            for (bucket, tally) in buckets.iter_mut().filter(|(_, tally)| tally.dirty) {
                tally.dirty = false;
                rows.push(tally.to_row(instance, width, *bucket, scope, key));
            }
        };
        take(&mut self.minutes, MINUTE, "all", "");
        take(&mut self.hours, HOUR, "all", "");
        for scope in Scope::EVERY {
            for (key, buckets) in &mut self.keyed[scope.index()] {
                take(buckets, HOUR, scope.as_str(), key);
            }
        }
        rows
    }

    /// Marks rows that could not be written as changed again.
    fn mark_dirty(&mut self, rows: &[RollupRow]) {
        for row in rows {
            let buckets = match (row.width, row.scope.as_str()) {
                (MINUTE, _) => Some(&mut self.minutes),
                (_, "all") => Some(&mut self.hours),
                (_, scope) => Scope::EVERY
                    .iter()
                    .find(|known| known.as_str() == scope)
                    .and_then(|scope| self.keyed[scope.index()].get_mut(&row.key)),
            };
            if let Some(tally) = buckets.and_then(|buckets| buckets.get_mut(&row.bucket)) {
                tally.dirty = true;
            }
        }
    }
}

/// The chart's range on the metrics page and `GET /metrics/calls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Range {
    /// The last hour, per minute.
    #[default]
    #[serde(rename = "1h")]
    Hour,
    /// The last 6 hours, per 5 minutes.
    #[serde(rename = "6h")]
    SixHours,
    /// The last 24 hours, per 15 minutes.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days, per hour.
    #[serde(rename = "7d")]
    Week,
}

impl Range {
    /// Every range, as the page offers them.
    pub const EVERY: [Range; 4] = [Range::Hour, Range::SixHours, Range::Day, Range::Week];

    /// As written in a query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::SixHours => "6h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    /// The seconds one point covers, and how many points.
    fn points(self) -> (i64, i64) {
        match self {
            Range::Hour => (60, 60),
            Range::SixHours => (300, 72),
            Range::Day => (900, 96),
            Range::Week => (3600, 168),
        }
    }
}

/// One point of the chart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Point {
    /// When the interval starts.
    pub start: DateTime<Utc>,
    pub calls: u64,
    pub failures: u64,
}

/// One row of a table: a tool, server or upstream over the last 24 hours.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    /// The tool's name, or the server's or upstream's id.
    pub key: String,
    /// What to call it: the tool's name, the server's or upstream's name where known.
    pub name: String,
    pub calls: u64,
    pub failures: u64,
    /// Mean duration.
    pub mean_ms: Option<f64>,
    /// Quantiles of the duration (within 1 %).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub last_call_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

impl Summary {
    fn of(key: &str, tally: &Tally) -> Summary {
        Summary {
            key: key.to_owned(),
            name: key.to_owned(),
            calls: tally.calls,
            failures: tally.failures,
            mean_ms: (tally.calls > 0).then(|| tally.duration_ms_sum / tally.calls as f64),
            p50_ms: tally.quantile_ms(0.5),
            p95_ms: tally.quantile_ms(0.95),
            p99_ms: tally.quantile_ms(0.99),
            last_call_at: tally.last_call_at.map(|at| at.and_utc()),
            last_error: tally.last_error.as_ref().map(|(_, why)| why.clone()),
            last_error_at: tally.last_error.as_ref().map(|(at, _)| at.and_utc()),
        }
    }
}

/// What the metrics page shows: the chart over a range, and the tables of the last 24 hours.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryView {
    pub range: Range,
    /// Seconds per point.
    pub step_seconds: i64,
    /// Oldest first, one per step, zeros where there were no calls.
    pub points: Vec<Point>,
    /// Per tool, most calls first.
    pub tools: Vec<Summary>,
    /// Per virtual server.
    pub servers: Vec<Summary>,
    /// Per upstream.
    pub upstreams: Vec<Summary>,
}

/// This process's tallies and the ones read at start.
#[derive(Debug)]
pub struct History {
    /// Names this process's rows.
    instance: String,
    own: Tallies,
    loaded: Tallies,
}

impl History {
    /// Empty, for a process named `instance`.
    pub fn new(instance: String) -> Self {
        History {
            instance,
            own: Tallies::default(),
            loaded: Tallies::default(),
        }
    }

    /// This process's name in `metric_rollups`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Counts one call.
    pub fn count(&mut self, row: &ToolMetricRow, server: Option<&str>) {
        self.own.count(row, server);
    }

    /// Takes what other processes stored.
    pub fn load(&mut self, rows: &[RollupRow]) {
        for row in rows.iter().filter(|row| row.instance != self.instance) {
            self.loaded.absorb(row);
        }
    }

    /// This process's tallies changed since the last call, to be written.
    pub fn take_dirty(&mut self) -> Vec<RollupRow> {
        self.own.take_dirty(&self.instance)
    }

    /// Rows that could not be written: written again with the next batch.
    pub fn unwritten(&mut self, rows: &[RollupRow]) {
        self.own.mark_dirty(rows);
    }

    /// What is kept (and read at start) as of `now`: a day of minutes, a week of hours, a
    /// day of hours per key.
    pub fn window(now: DateTime<Utc>) -> RollupWindow {
        let seconds = now.timestamp();
        let hour = seconds.div_euclid(i64::from(HOUR));
        RollupWindow {
            minutes: seconds.div_euclid(i64::from(MINUTE)) - MINUTES_KEPT + 1,
            hours: hour - HOURS_KEPT + 1,
            keyed: hour - KEYED_HOURS_KEPT + 1,
        }
    }

    /// The hours of one key within the last day, own and loaded together, as `(hour, tally)`.
    pub fn hours(&self, scope: Scope, key: &str, now: DateTime<Utc>) -> BTreeMap<i64, Tally> {
        let first = now.timestamp().div_euclid(i64::from(HOUR)) - KEYED_HOURS_KEPT + 1;
        let mut merged: BTreeMap<i64, Tally> = BTreeMap::new();
        for tallies in [&self.own, &self.loaded] {
            if let Some(buckets) = tallies.keyed[scope.index()].get(key) {
                for (hour, tally) in buckets.range(first..) {
                    merged.entry(*hour).or_default().merge(tally);
                }
            }
        }
        merged
    }

    /// Every key of `scope` with calls in the last day.
    pub fn keys(&self, scope: Scope) -> Vec<&str> {
        let mut keys: Vec<&str> = self.own.keyed[scope.index()]
            .keys()
            .chain(self.loaded.keys_of(scope))
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The chart over `range` and the tables of the last day, as of `now`.
    pub fn view(&self, range: Range, now: DateTime<Utc>) -> HistoryView {
        let (step, count) = range.points();
        let (width, source_own, source_loaded) = if step % i64::from(HOUR) == 0 {
            (i64::from(HOUR), &self.own.hours, &self.loaded.hours)
        } else {
            (i64::from(MINUTE), &self.own.minutes, &self.loaded.minutes)
        };
        let last = now.timestamp().div_euclid(step);
        let first = last - count + 1;
        let mut points: Vec<Point> = (first..=last)
            .map(|index| Point {
                start: DateTime::from_timestamp(index * step, 0).unwrap_or_default(),
                calls: 0,
                failures: 0,
            })
            .collect();
        for buckets in [source_own, source_loaded] {
            for (index, tally) in buckets.range((first * step / width)..) {
                let point = (index * width).div_euclid(step) - first;
                if let Some(point) = usize::try_from(point)
                    .ok()
                    .and_then(|point| points.get_mut(point))
                {
                    point.calls += tally.calls;
                    point.failures += tally.failures;
                }
            }
        }
        let table = |scope: Scope| {
            let mut rows: Vec<Summary> = self
                .keys(scope)
                .into_iter()
                .map(|key| {
                    let mut total = Tally::default();
                    for tally in self.hours(scope, key, now).values() {
                        total.merge(tally);
                    }
                    Summary::of(key, &total)
                })
                .filter(|summary| summary.calls > 0)
                .collect();
            rows.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.key.cmp(&b.key)));
            rows
        };
        HistoryView {
            range,
            step_seconds: step,
            points,
            tools: table(Scope::Tool),
            servers: table(Scope::Server),
            upstreams: table(Scope::Upstream),
        }
    }
}

impl Tallies {
    fn keys_of(&self, scope: Scope) -> impl Iterator<Item = &String> {
        self.keyed[scope.index()].keys()
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
