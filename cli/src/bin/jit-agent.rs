//! `jit-agent`: the background agent, as its own small, windowless program.
//!
//! `jit` starts it on demand (detached, in its own process group) and login entries run
//! it as `jit-agent run`. It is a separate binary rather than `jit agent run` alone so
//! that on Windows it can be built for the GUI subsystem (no console window pops up at
//! login or when `jit` starts it) while `jit` stays a console program.
//!
//! Everything it does lives in `jit_agent::daemon`; this file only resolves settings
//! (the same flags, environment variables and config file as `jit`), opens the log file
//! in the state dir, picks the notifier and backend, and runs the agent until it is told
//! to stop (a client's `Shutdown`, SIGTERM/SIGINT, Ctrl-C on Windows).

#![cfg_attr(windows, windows_subsystem = "windows")]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use jit::args::Cli;
use jit::commands::agent_link::{agent_paths, agent_profile};
use jit::connection::AzureConnection;
use jit::printer::{Printer, Verbosity};
use jit::settings::{Environment, GlobalSettings, OutputFormat};
use jit_agent::daemon::notifier::LogNotifier;
use jit_agent::daemon::{
    AccessBackend, Agent, AgentConfig, AgentPaths, AzureBackend, DesktopNotifier, Notifier,
    OfflineBackend, ServerError,
};
use tracing_subscriber::EnvFilter;

/// The agent's log is started afresh (the old one kept as `agent.log.old`) past this size.
const MAX_LOG_BYTES: u64 = 5 * 1024 * 1024;

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = arguments.iter().map(String::as_str).collect();
    if matches!(words.as_slice(), ["--version" | "-V"]) {
        let _ = writeln!(std::io::stdout(), "jit-agent {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let cli = match parse_arguments(&words) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(2);
        }
    };
    let settings = match GlobalSettings::resolve(&cli.global, &Environment::from_process()) {
        Ok(settings) => settings,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "jit-agent: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            let _ = writeln!(std::io::stderr(), "jit-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `jit-agent [run] [global flags]`, read as `jit agent run [global flags]`: the agent
/// takes the same global flags as `jit` (`--config`, `--cloud`, …).
fn parse_arguments(words: &[&str]) -> Result<Cli, clap::Error> {
    let rest = match words {
        ["run", rest @ ..] => rest,
        rest => rest,
    };
    Cli::try_parse_from(["jit", "agent", "run"].iter().chain(rest))
}

/// The agent's behaviour from the `[agent]` settings.
pub fn agent_config(settings: &GlobalSettings, paths: AgentPaths) -> AgentConfig {
    let mut config = AgentConfig::new(paths, env!("CARGO_PKG_VERSION"));
    config.profile = Some(agent_profile(settings));
    config.notify_before = settings.agent.notify_before;
    config.refresh_interval = Duration::try_from(settings.agent.refresh_interval)
        .unwrap_or(Duration::from_secs(60))
        .max(Duration::from_secs(1));
    config
}

fn run(settings: &GlobalSettings) -> anyhow::Result<()> {
    let paths = agent_paths(settings)?;
    std::fs::create_dir_all(paths.state_dir())
        .with_context(|| format!("cannot create {}", paths.state_dir().display()))?;
    init_logging(&paths.log_file())?;
    let config = agent_config(settings, paths);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let notifications = settings.agent.notifications;
    let backend = {
        let _runtime_context = runtime.enter();
        azure_backend(settings)
    };
    let result = match backend {
        Ok(backend) => runtime.block_on(serve_with(config, backend, notifications)),
        Err(reason) => {
            tracing::warn!(%reason, "the agent runs without Azure: it cannot refresh, extend or hand out tokens");
            let backend = OfflineBackend::new(reason);
            runtime.block_on(serve_with(config, backend, notifications))
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The agent's way to Azure: the same ARM client (cloud, CA files, credential, retry
/// limits) that `jit`'s commands build from the settings. When it cannot be built (no
/// usable credential configured) the agent runs offline and says why in its status.
pub fn azure_backend(settings: &GlobalSettings) -> Result<AzureBackend, String> {
    // Retry waits are announced through the printer; the agent has no one to tell.
    let quiet = Printer::new(OutputFormat::Table, Verbosity::Quiet, false);
    let connection =
        AzureConnection::new(&settings.azure, &quiet).map_err(|error| format!("{error:#}"))?;
    Ok(AzureBackend::new(connection.arm, agent_profile(settings)))
}

async fn serve_with<B: AccessBackend>(
    config: AgentConfig,
    backend: B,
    notifications: bool,
) -> anyhow::Result<()> {
    if notifications {
        serve(config, backend, DesktopNotifier::default()).await
    } else {
        serve(config, backend, LogNotifier).await
    }
}

async fn serve<B: AccessBackend, N: Notifier>(
    config: AgentConfig,
    backend: B,
    notifier: N,
) -> anyhow::Result<()> {
    let agent = match Agent::bind(config, backend, notifier).await {
        Ok(agent) => agent,
        Err(error @ ServerError::AlreadyRunning { .. }) => {
            // Not a failure: a login entry and an on-demand start may race. Exiting 0
            // also keeps systemd and launchd from restarting this copy in a loop.
            tracing::info!("{error}; this copy exits");
            let _ = writeln!(std::io::stderr(), "jit-agent: {error}");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    if let Some(problem) = agent.load_problem() {
        let _ = writeln!(std::io::stderr(), "jit-agent: {problem}");
    }
    agent.serve(stop_signal()).await?;
    Ok(())
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
fn init_logging(log_file: &Path) -> anyhow::Result<()> {
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
    let filter = std::env::var(jit::env_vars::JIT_LOG)
        .ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_is_optional_and_global_flags_are_accepted() {
        assert!(parse_arguments(&[]).is_ok());
        assert!(parse_arguments(&["run"]).is_ok());
        let with_config = parse_arguments(&["run", "--config", "/tmp/jit.toml"]);
        assert_eq!(
            with_config.ok().and_then(|cli| cli.global.config),
            Some(PathBuf::from("/tmp/jit.toml"))
        );
        assert!(parse_arguments(&["stop"]).is_err());
    }
}
