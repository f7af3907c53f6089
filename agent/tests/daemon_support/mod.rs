//! Shared pieces of the agent tests: temp directories, windows, a backend that records
//! what the agent asks of Azure, and an in-process agent handle.
//!
//! The backend here has no Azure on purpose: these tests are about the agent's IPC,
//! lifecycle, store and timers. The real backend is exercised end to end against the
//! emulator from `cli/tests`.

#![allow(dead_code)]

#[cfg(target_os = "linux")]
pub mod bus;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use jit_agent::daemon::protocol::{AccessToken, ExtendLength};
use jit_agent::daemon::{
    AccessBackend, AccessWindow, Agent, AgentConfig, AgentPaths, BackendError, Notifier,
    PortStatus, Refreshed, ServerError, WindowPort, WindowUpdate,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The version the in-process agents and clients claim.
pub const VERSION: &str = "0.1.0-test";

/// How long any single awaited event may take before the test fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A temp directory holding a runtime dir and a state dir.
pub struct Dirs {
    pub temp: tempfile::TempDir,
    pub paths: AgentPaths,
}

pub fn dirs() -> Dirs {
    let temp = tempfile::tempdir().expect("create a temp dir");
    let paths = AgentPaths::new(temp.path().join("run"), temp.path().join("state"));
    Dirs { temp, paths }
}

/// A window on `vm_name` (in `rg-web`) for port 22, ending `ends_in` from now on
/// Azure's clock, where Azure's clock runs `offset` ahead of ours.
pub fn window(vm_name: &str, ends_in: SignedDuration, offset: SignedDuration) -> AccessWindow {
    let azure_now = Timestamp::now() + offset;
    AccessWindow {
        vm_id: format!(
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/{vm_name}"
        ),
        vm_name: vm_name.to_owned(),
        resource_group: "rg-web".to_owned(),
        subscription_id: "00000000-0000-0000-0000-000000000001".to_owned(),
        policy_id: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default".to_owned(),
        ports: vec![WindowPort {
            number: 22,
            mapped_port: None,
            status: PortStatus::Initiated,
        }],
        source_address_prefix: "198.51.100.7".to_owned(),
        requested_at: azure_now,
        ends_at: azure_now + ends_in,
        server_clock_offset_at_registration: offset,
        justification: Some("tests".to_owned()),
        connect_address: Some("127.0.0.1".to_owned()),
        requestor: None,
    }
}

/// One call the agent made to the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendCall {
    Refresh(Vec<String>),
    Extend { vm_id: String, length: ExtendLength },
    Token(String),
}

/// A backend that records calls and answers from a script.
#[derive(Debug, Default)]
pub struct TestBackend {
    pub calls: Mutex<Vec<BackendCall>>,
    /// What the next refresh answers; `None`: everything unchanged.
    pub next_refresh: Mutex<Option<Refreshed>>,
    /// While set, every refresh fails with this error.
    pub refresh_failure: Mutex<Option<BackendError>>,
}

impl TestBackend {
    /// Makes the next refresh answer `answer`.
    pub fn script_refresh(&self, answer: Refreshed) {
        if let Ok(mut next) = self.next_refresh.lock() {
            *next = Some(answer);
        }
    }

    /// Makes every refresh fail with `error` (until called with `None`).
    pub fn fail_refreshes(&self, error: Option<BackendError>) {
        if let Ok(mut failure) = self.refresh_failure.lock() {
            *failure = error;
        }
    }

    pub fn calls(&self) -> Vec<BackendCall> {
        self.calls
            .lock()
            .map(|calls| calls.clone())
            .unwrap_or_default()
    }

    fn record(&self, call: BackendCall) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
    }
}

impl AccessBackend for TestBackend {
    fn describe(&self) -> String {
        "test".to_owned()
    }

    async fn refresh(&self, windows: &[AccessWindow]) -> Result<Refreshed, BackendError> {
        self.record(BackendCall::Refresh(
            windows.iter().map(|window| window.vm_id.clone()).collect(),
        ));
        if let Some(error) = self
            .refresh_failure
            .lock()
            .ok()
            .and_then(|failure| failure.clone())
        {
            return Err(error);
        }
        let scripted = self
            .next_refresh
            .lock()
            .ok()
            .and_then(|mut next| next.take());
        Ok(scripted.unwrap_or_else(|| Refreshed {
            updates: windows
                .iter()
                .map(|window| WindowUpdate::Unchanged {
                    vm_id: window.vm_id.clone(),
                })
                .collect(),
            server_clock_offset: None,
        }))
    }

    async fn extend(
        &self,
        window: &AccessWindow,
        length: &ExtendLength,
    ) -> Result<AccessWindow, BackendError> {
        self.record(BackendCall::Extend {
            vm_id: window.vm_id.clone(),
            length: length.clone(),
        });
        let duration = match length {
            ExtendLength::Duration { duration } => *duration,
            ExtendLength::PolicyMaximum => SignedDuration::from_hours(3),
            ExtendLength::Until { .. } => {
                return Err(BackendError::Azure(
                    "the test backend extends by duration".into(),
                ));
            }
        };
        let offset = window.server_clock_offset_at_registration;
        let azure_now = Timestamp::now() + offset;
        Ok(AccessWindow {
            requested_at: azure_now,
            ends_at: azure_now + duration,
            ..window.clone()
        })
    }

    async fn token(&self, scope: &str) -> Result<AccessToken, BackendError> {
        self.record(BackendCall::Token(scope.to_owned()));
        Ok(AccessToken {
            secret: format!("token-for-{scope}"),
            expires_on: Timestamp::now() + SignedDuration::from_hours(1),
        })
    }
}

/// An agent serving on its own task.
pub struct RunningAgent {
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), ServerError>>,
}

impl RunningAgent {
    /// Waits (bounded) until the agent has stopped by itself.
    pub async fn stopped(self) -> Result<(), ServerError> {
        let RunningAgent { stop, task } = self;
        let result = tokio::time::timeout(EVENT_TIMEOUT, task)
            .await
            .expect("the agent did not stop in time")
            .expect("the agent task panicked");
        drop(stop);
        result
    }

    /// Stops the agent from outside (as a signal would) and waits until it is gone.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.stopped().await
    }
}

/// A config for quick tests: short lead time, short refresh interval.
pub fn config(paths: &AgentPaths) -> AgentConfig {
    let mut config = AgentConfig::new(paths.clone(), VERSION);
    config.notify_before = SignedDuration::from_secs(3);
    config.refresh_interval = Duration::from_secs(3600);
    config
}

/// Binds an agent with `config`, `backend` and `notifier`, and serves it on a task.
pub async fn start<B: AccessBackend, N: Notifier>(
    config: AgentConfig,
    backend: B,
    notifier: N,
) -> RunningAgent {
    let agent = Agent::bind(config, backend, notifier)
        .await
        .expect("bind the agent");
    serve(agent)
}

/// Serves an already bound agent on a task.
pub fn serve<B: AccessBackend, N: Notifier>(agent: Agent<B, N>) -> RunningAgent {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(agent.serve(async move {
        let _ = stopped.await;
    }));
    RunningAgent {
        stop: Some(stop),
        task,
    }
}

/// The test binary itself, to run helpers as separate processes.
pub fn this_test_binary() -> PathBuf {
    std::env::current_exe().expect("the test binary's path")
}
