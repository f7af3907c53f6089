//! Running the background agent: what `jit-agent run` and `jit agent run` share.
//!
//! The agent is started two ways: detached, as the windowless `jit-agent` program (by
//! `jit` on demand and by login entries), and in the foreground as `jit agent run` (to
//! watch it, or under a supervisor of one's own). Both resolve the same settings and run
//! [`run_agent`]; they differ only in where the log goes (`jit-agent` writes
//! `agent.log` in the state dir, see [`init_file_logging`]; `jit agent run` logs like
//! every `jit` command, on stderr with `-v` or `JIT_LOG`) and in who owns the async
//! runtime.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use jit_agent::access::ownership::ClientTag;
use jit_agent::daemon::notifier::LogNotifier;
use jit_agent::daemon::{
    AccessBackend, Agent, AgentConfig, AgentPaths, AzureBackend, DesktopNotifier, Notifier,
    OfflineBackend, ServerError,
};
use tracing_subscriber::EnvFilter;

use crate::agent_support::agent_profile;
use crate::connection::AzureConnection;
use crate::printer::{Printer, Verbosity};
use crate::settings::{GlobalSettings, OutputFormat};

/// The agent's log is started afresh (the old one kept as `agent.log.old`) past this size.
const MAX_LOG_BYTES: u64 = 5 * 1024 * 1024;

/// How a run of the agent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// It served until told to stop.
    Stopped,
    /// Another agent already runs for this user (not a failure: a login entry and an
    /// on-demand start may race); the message says which.
    AlreadyRunning(String),
}

/// The agent's behaviour from the `[agent]` settings.
pub fn agent_config(settings: &GlobalSettings, paths: AgentPaths) -> AgentConfig {
    let mut config = AgentConfig::new(paths, env!("CARGO_PKG_VERSION"));
    config.profile = Some(agent_profile(settings));
    config.notify_before = settings.agent.notify_before;
    config.tray = settings.agent.tray;
    config.refresh_interval = Duration::try_from(settings.agent.refresh_interval)
        .unwrap_or(Duration::from_secs(60))
        .max(Duration::from_secs(1));
    config
}

/// The agent's way to Azure: the same ARM client (cloud, CA files, credential, retry
/// limits) that `jit`'s commands build from the settings. When it cannot be built (no
/// usable credential configured) the agent runs offline and says why in its status.
///
/// Must be called within a tokio runtime.
pub fn azure_backend(settings: &GlobalSettings) -> Result<AzureBackend, String> {
    // Retry waits are announced through the printer; the agent has no one to tell.
    let quiet = Printer::new(OutputFormat::Table, Verbosity::Quiet, false);
    let connection =
        AzureConnection::new(&settings.azure, &quiet).map_err(|error| format!("{error:#}"))?;
    // The agent tells its user's requests from others' by the tag `jit` requests carry.
    let tag = crate::agent_support::agent_paths(settings)
        .and_then(|paths| ClientTag::load_or_create(paths.state_dir()))
        .map_err(|error| tracing::warn!(%error, "no client tag: newer requests are never adopted"))
        .ok();
    let http = connection.transport.client().clone();
    Ok(AzureBackend::new(connection.arm, agent_profile(settings))
        .with_tag(tag)
        .with_http(http))
}

/// Runs the agent for `settings` at `paths` until a client asks it to shut down or the
/// process gets SIGTERM/SIGINT (Ctrl-C on Windows). `tell` receives what a person
/// running it in a terminal should see (a state file set aside, another agent running).
pub async fn run_agent(
    settings: &GlobalSettings,
    paths: AgentPaths,
    tell: impl Fn(&str) + Send,
) -> anyhow::Result<RunOutcome> {
    let config = agent_config(settings, paths);
    let notifications = settings.agent.notifications;
    match azure_backend(settings) {
        Ok(backend) => serve_with(config, backend, notifications, tell).await,
        Err(reason) => {
            tracing::warn!(%reason, "the agent runs without Azure: it cannot refresh, extend or hand out tokens");
            let backend = OfflineBackend::new(reason);
            serve_with(config, backend, notifications, tell).await
        }
    }
}

async fn serve_with<B: AccessBackend>(
    config: AgentConfig,
    backend: B,
    notifications: bool,
    tell: impl Fn(&str) + Send,
) -> anyhow::Result<RunOutcome> {
    if notifications {
        serve(config, backend, DesktopNotifier::default(), tell).await
    } else {
        serve(config, backend, LogNotifier, tell).await
    }
}

async fn serve<B: AccessBackend, N: Notifier>(
    config: AgentConfig,
    backend: B,
    notifier: N,
    tell: impl Fn(&str) + Send,
) -> anyhow::Result<RunOutcome> {
    let agent = match Agent::bind(config, backend, notifier).await {
        Ok(agent) => agent,
        Err(error @ ServerError::AlreadyRunning { .. }) => {
            tracing::info!("{error}; this copy exits");
            return Ok(RunOutcome::AlreadyRunning(error.to_string()));
        }
        Err(error) => return Err(error.into()),
    };
    if let Some(problem) = agent.load_problem() {
        tell(&problem);
    }
    agent.serve(stop_signal()).await?;
    Ok(RunOutcome::Stopped)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C on Windows).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => tracing::info!("SIGTERM received"),
                    _ = interrupt.recv() => tracing::info!("SIGINT received"),
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "cannot listen for signals; stop the agent with `jit agent stop`");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C; stop the agent with `jit agent stop`");
            std::future::pending::<()>().await;
        }
    }
}

/// Logs to `log_file` (private to the user), filtered by `JIT_LOG` (default `info`).
/// Tokens never reach the log: nothing in the agent logs one.
pub fn init_file_logging(log_file: &Path, filter: Option<&str>) -> anyhow::Result<()> {
    rotate_if_large(log_file);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(log_file)
        .with_context(|| format!("cannot open the log file {}", log_file.display()))?;
    let filter = filter
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .try_init();
    Ok(())
}

fn rotate_if_large(log_file: &Path) {
    let large = std::fs::metadata(log_file).is_ok_and(|metadata| metadata.len() > MAX_LOG_BYTES);
    if large {
        let mut old = PathBuf::from(log_file);
        old.set_extension("log.old");
        let _ = std::fs::rename(log_file, old);
    }
}
