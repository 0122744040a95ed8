//! Virtual users: tokio tasks over one shared HTTP client, each sending one kind of request in
//! a closed loop (the next request when the last is answered, after an optional think time)
//! until the run is stopped, recording every outcome.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{Api, Failure, Kind, McpTarget};
use crate::recorder::Recorder;

/// The pause after a failed request, so a user facing fast failures does not spin the CPU the
/// gateway needs to recover.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(20);

/// What a virtual user does, again and again.
#[derive(Clone, Debug)]
pub enum Action {
    /// `tools/call` at the target (through the gateway, or direct with a session).
    CallTool(Arc<McpTarget>),
    /// REST list requests, taking the paths in turn.
    List {
        /// The API.
        api: Api,
        /// Paths such as `/tools?limit=50`.
        paths: Arc<[String]>,
    },
    /// `POST /resources` with a unique URI; acknowledged ids are kept.
    Write {
        /// The API.
        api: Api,
        /// Makes URIs unique to the run.
        run_tag: Arc<str>,
        /// Every id the gateway acknowledged with 201.
        acknowledged: Arc<Mutex<Vec<String>>>,
        /// Delete each resource once created (`DELETE /resources/{id}`, in the same timed
        /// request), so the registry keeps its size: steady state for a soak.
        churn: bool,
    },
}

impl Action {
    /// The kind of request it sends.
    pub fn kind(&self) -> Kind {
        match self {
            Action::CallTool(target) if target.token.is_none() => Kind::DirectCall,
            Action::CallTool(_) => Kind::McpCall,
            Action::List { .. } => Kind::RestList,
            Action::Write { .. } => Kind::RestWrite,
        }
    }

    async fn perform(
        &self,
        http: &reqwest::Client,
        user: usize,
        sequence: u64,
    ) -> Result<(), Failure> {
        match self {
            Action::CallTool(target) => target.call(http, sequence, user as u64).await,
            Action::List { api, paths } => {
                let path = &paths[(user + sequence as usize) % paths.len()];
                api.list(path).await
            }
            Action::Write {
                api,
                run_tag,
                acknowledged,
                churn,
            } => {
                let uri = format!("loadtest://{run_tag}/{user}/{sequence}");
                let id = api.write_resource(&uri).await?;
                if *churn {
                    api.delete_resource(&id).await?;
                }
                acknowledged
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(id);
                Ok(())
            }
        }
    }
}

/// A group of identical virtual users.
#[derive(Clone, Debug)]
pub struct Workload {
    /// What each does.
    pub action: Action,
    /// How many.
    pub users: usize,
    /// A pause after each answer.
    pub think: Duration,
}

/// Virtual users running until stopped.
pub struct LoadRun {
    stop: CancellationToken,
    users: JoinSet<()>,
}

impl LoadRun {
    /// Starts every workload's users, spreading their first requests over `ramp_up`.
    pub fn start(
        http: &reqwest::Client,
        recorder: &Arc<Recorder>,
        workloads: &[Workload],
        ramp_up: Duration,
    ) -> Self {
        let stop = CancellationToken::new();
        let mut users = JoinSet::new();
        let total: usize = workloads.iter().map(|workload| workload.users).sum();
        let mut user = 0usize;
        for workload in workloads {
            for _ in 0..workload.users {
                let offset = ramp_up.mul_f64(user as f64 / total.max(1) as f64);
                users.spawn(virtual_user(
                    http.clone(),
                    recorder.clone(),
                    workload.action.clone(),
                    workload.think,
                    user,
                    offset,
                    stop.clone(),
                ));
                user += 1;
            }
        }
        LoadRun { stop, users }
    }

    /// Stops: no new request is sent; requests in flight finish (within the client's timeout).
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.users.join_next().await.is_some() {}
    }
}

/// Runs `workloads` for `duration`, then stops.
pub async fn run_for(
    http: &reqwest::Client,
    recorder: &Arc<Recorder>,
    workloads: &[Workload],
    ramp_up: Duration,
    duration: Duration,
) {
    let run = LoadRun::start(http, recorder, workloads, ramp_up);
    tokio::time::sleep(duration).await;
    run.stop().await;
}

async fn virtual_user(
    http: reqwest::Client,
    recorder: Arc<Recorder>,
    action: Action,
    think: Duration,
    user: usize,
    start_after: Duration,
    stop: CancellationToken,
) {
    tokio::select! {
        _ = tokio::time::sleep(start_after) => {}
        _ = stop.cancelled() => return,
    }
    let kind = action.kind();
    let mut sequence = 0u64;
    while !stop.is_cancelled() {
        let started = Instant::now();
        let outcome = action.perform(&http, user, sequence).await;
        let pause = if outcome.is_err() {
            think.max(PAUSE_AFTER_FAILURE)
        } else {
            think
        };
        recorder.record(user, kind, started, outcome);
        sequence += 1;
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
