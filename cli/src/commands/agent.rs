//! `jit agent start|stop|status|install|uninstall|run`: the background agent by hand.
//!
//! Normally nobody needs these: `jit connect` starts the agent when it registers a
//! window, and the agent runs until it is stopped or the session ends. They exist to
//! look at it (`status`: version, what it tracks, and every problem it knows of: a state
//! file set aside, notifications falling back to its log, no way to Azure), to restart
//! it after changing its settings (`stop`, `start`), to run it at login (`install`,
//! `uninstall`, through `jit_agent::daemon::autostart`) and to run it in the foreground
//! (`run`, the same code as the `jit-agent` program, see [`crate::agent_runner`]).
//!
//! These commands act even with `--no-agent`: asking for the agent by name is explicit.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use jit_agent::daemon::autostart::{self, Activation, Mechanism};
use jit_agent::daemon::client::wait_until_stopped;
use jit_agent::daemon::protocol::{AgentStatus, ErrorKind};
use jit_agent::daemon::{ClientError, Started, ensure_running};
use serde::Serialize;

use crate::agent_runner::{self, RunOutcome};
use crate::agent_support::{
    self, agent_program, connect_if_running, foreign_agent, spawn_agent, start_options,
    welcome_text,
};
use crate::args::AgentCommand;
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::printer::format::{format_duration, format_time};
use crate::settings::GlobalSettings;

/// How long `stop` waits for the agent to release its lock.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    command: AgentCommand,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    match command {
        AgentCommand::Start => start(settings, printer).await,
        AgentCommand::Stop => stop(settings, printer).await,
        AgentCommand::Status => status(settings, printer).await,
        AgentCommand::Install => install(printer).await,
        AgentCommand::Uninstall => uninstall(printer).await,
        AgentCommand::Run => run_in_foreground(settings, printer).await,
    }
}

#[derive(Debug, Serialize)]
struct StartDocument {
    /// `started`, `already_running` or `replaced`.
    outcome: &'static str,
    previous_version: Option<String>,
    version: String,
    pid: u32,
    endpoint: String,
}

async fn start(settings: &GlobalSettings, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let options = start_options(settings).context("cannot locate the agent's directories")?;
    let (mut client, started) = ensure_running(&options, || spawn_agent(settings))
        .await
        .context("could not start the agent")?;
    // A new agent has just read its state file; say at once if it had to set it aside.
    if let Ok(status) = client.status().await
        && let Some(problem) = status.store_problem
    {
        printer.warn(problem);
    }
    let welcome = client.welcome();
    let (outcome, previous_version) = match &started {
        Started::Spawned => {
            printer.success(format!("Started the agent ({})", welcome_text(welcome)));
            ("started", None)
        }
        Started::AlreadyRunning => {
            printer.info(format!(
                "The agent is already running ({})",
                welcome_text(welcome)
            ));
            ("already_running", None)
        }
        Started::Replaced { previous_version } => {
            printer.success(format!(
                "Replaced the agent of version {previous_version} ({})",
                welcome_text(welcome)
            ));
            ("replaced", Some(previous_version.clone()))
        }
    };
    if printer.is_json() {
        printer.json(&StartDocument {
            outcome,
            previous_version,
            version: welcome.agent_version.clone(),
            pid: welcome.pid,
            endpoint: options.paths.endpoint_display(),
        });
    }
    Ok(ExitStatus::Success)
}

#[derive(Debug, Serialize)]
struct StopDocument {
    /// Whether an agent was running (and is now stopped).
    stopped: bool,
    pid: Option<u32>,
}

async fn stop(settings: &GlobalSettings, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let options = start_options(settings).context("cannot locate the agent's directories")?;
    let Some(client) = connect_if_running(settings).await? else {
        printer.info("The agent is not running");
        if printer.is_json() {
            printer.json(&StopDocument {
                stopped: false,
                pid: None,
            });
        }
        return Ok(ExitStatus::Success);
    };
    let pid = client.welcome().pid;
    client
        .shutdown()
        .await
        .with_context(|| format!("the agent (process {pid}) did not take the request to stop"))?;
    if !wait_until_stopped(&options.paths, STOP_TIMEOUT).await {
        return Err(anyhow::anyhow!(
            "the agent (process {pid}) said it would stop but still runs after {} s; end process {pid}",
            STOP_TIMEOUT.as_secs()
        ));
    }
    printer.success(format!("Stopped the agent (process {pid})"));
    if printer.is_json() {
        printer.json(&StopDocument {
            stopped: true,
            pid: Some(pid),
        });
    }
    Ok(ExitStatus::Success)
}

/// `jit agent status -o json`: every field is present; those an agent that is not
/// running cannot tell are `null`.
#[derive(Debug, Default, Serialize)]
struct AgentStatusDocument {
    running: bool,
    version: Option<String>,
    protocol_version: Option<u32>,
    pid: Option<u32>,
    profile: Option<String>,
    started_at: Option<String>,
    endpoint: String,
    state_file: PathBuf,
    log_file: PathBuf,
    open_windows: Option<usize>,
    /// Azure's clock minus this machine's, in seconds.
    clock_offset_seconds: Option<i64>,
    notify_before_seconds: Option<i64>,
    refresh_interval_seconds: Option<i64>,
    backend: Option<String>,
    last_refresh: Option<String>,
    /// Everything the agent knows is wrong (also printed as warnings).
    problems: Vec<String>,
}

async fn status(settings: &GlobalSettings, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let options = start_options(settings).context("cannot locate the agent's directories")?;
    let mut document = AgentStatusDocument {
        endpoint: options.paths.endpoint_display(),
        state_file: options.paths.state_file(),
        log_file: options.paths.log_file(),
        ..AgentStatusDocument::default()
    };
    if let Some(mut client) = connect_if_running(settings).await? {
        let welcome = client.welcome().clone();
        document.running = true;
        document.version = Some(welcome.agent_version.clone());
        document.protocol_version = Some(welcome.protocol_version);
        document.pid = Some(welcome.pid);
        document.profile.clone_from(&welcome.profile);
        document.problems.extend(foreign_agent(&welcome, settings));
        match client.status().await {
            Ok(status) => fill_from_status(&mut document, &status),
            // An agent of another protocol only accepts `shutdown`; the handshake says
            // enough, and `foreign_agent` said what to do.
            Err(ClientError::Agent(error)) if error.kind == ErrorKind::VersionMismatch => {}
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!(
                    "the agent ({}) did not report its status",
                    welcome_text(&welcome)
                )));
            }
        }
    }
    for problem in &document.problems {
        printer.warn(problem);
    }
    if printer.is_json() {
        printer.json(&document);
    } else {
        printer.data(status_lines(&document));
    }
    Ok(ExitStatus::Success)
}

fn fill_from_status(document: &mut AgentStatusDocument, status: &AgentStatus) {
    document.version = Some(status.agent_version.clone());
    document.protocol_version = Some(status.protocol_version);
    document.pid = Some(status.pid);
    document.profile.clone_from(&status.profile);
    document.started_at = Some(format_time(status.started_at));
    document.endpoint.clone_from(&status.endpoint);
    document.state_file.clone_from(&status.state_file);
    document.open_windows = Some(status.open_windows);
    document.clock_offset_seconds = Some(status.server_clock_offset.as_secs());
    document.notify_before_seconds = Some(status.notify_before.as_secs());
    document.refresh_interval_seconds = Some(status.refresh_interval.as_secs());
    document.backend = Some(status.backend.clone());
    document.last_refresh = status.last_refresh.map(format_time);
    if let Some(problem) = &status.store_problem {
        document.problems.push(problem.clone());
    }
    if let Some(problem) = &status.notifier_problem {
        document.problems.push(format!(
            "desktop notifications fall back to the agent's log: {problem}"
        ));
    }
    if let Some(reason) = status.backend.strip_prefix("offline") {
        document.problems.push(format!(
            "the agent cannot reach Azure {}: it cannot re-read or extend windows, nor hand out tokens",
            reason.trim()
        ));
    }
    if let Some(error) = &status.last_refresh_error {
        document
            .problems
            .push(format!("re-reading the windows from Azure failed: {error}"));
    }
}

fn status_lines(document: &AgentStatusDocument) -> String {
    let mut lines: Vec<(&str, String)> = Vec::new();
    match (document.running, document.pid) {
        (true, Some(pid)) => lines.push(("running", format!("yes (process {pid})"))),
        _ => lines.push(("running", "no".to_owned())),
    }
    if let (Some(version), Some(protocol)) = (&document.version, document.protocol_version) {
        lines.push(("version", format!("{version} (protocol {protocol})")));
    }
    if let Some(profile) = &document.profile {
        lines.push(("profile", profile.clone()));
    }
    if let Some(started_at) = &document.started_at {
        lines.push(("started", started_at.clone()));
    }
    lines.push(("endpoint", document.endpoint.clone()));
    lines.push(("state file", document.state_file.display().to_string()));
    lines.push(("log file", document.log_file.display().to_string()));
    if let Some(count) = document.open_windows {
        lines.push(("windows", count.to_string()));
    }
    if let Some(offset) = document.clock_offset_seconds {
        lines.push(("azure clock", clock_offset_text(offset)));
    }
    if let Some(seconds) = document.notify_before_seconds {
        lines.push((
            "notify before",
            format_duration(SignedDuration::from_secs(seconds)),
        ));
    }
    if let Some(seconds) = document.refresh_interval_seconds {
        lines.push((
            "refresh every",
            format_duration(SignedDuration::from_secs(seconds)),
        ));
    }
    if let Some(backend) = &document.backend {
        lines.push(("backend", backend.clone()));
    }
    if document.running {
        lines.push((
            "last refresh",
            document
                .last_refresh
                .clone()
                .unwrap_or_else(|| "not yet".to_owned()),
        ));
    }
    let width = lines.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    lines
        .iter()
        .map(|(key, value)| format!("{:width$} {value}", format!("{key}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `same as this machine`, `2s ahead of this machine`, `1m30s behind this machine`.
fn clock_offset_text(seconds: i64) -> String {
    let magnitude = format_duration(SignedDuration::from_secs(seconds.abs()));
    match seconds {
        0 => "same as this machine".to_owned(),
        ahead if ahead > 0 => format!("{magnitude} ahead of this machine"),
        _ => format!("{magnitude} behind this machine"),
    }
}

#[derive(Debug, Serialize)]
struct InstallDocument {
    location: String,
    program: PathBuf,
    previous_program: Option<PathBuf>,
    /// `done`, `skipped` or `failed`: whether the session manager was told.
    activation: &'static str,
    activation_detail: Option<String>,
}

async fn install(printer: &Printer) -> anyhow::Result<ExitStatus> {
    let program = agent_program().context("cannot tell where this jit is installed")?;
    if !program.is_file() {
        return Err(CliError::Unavailable {
            message: format!("{} does not exist", program.display()),
            hint: Some(
                "jit-agent is installed next to jit; reinstall jit to get it back".to_owned(),
            ),
        }
        .into());
    }
    let mechanism = Mechanism::for_this_os()?;
    let arguments = vec!["run".to_owned()];
    let entry_program = program.clone();
    let report = tokio::task::spawn_blocking(move || {
        autostart::install(&mechanism, &entry_program, &arguments, true)
    })
    .await
    .context("the login entry could not be written")??;
    if report.pointed_elsewhere
        && let Some(previous) = &report.previous_program
    {
        printer.warn(format!(
            "the login entry ran {}; it now runs {}",
            previous.display(),
            program.display()
        ));
    }
    printer.success(format!(
        "Installed {}: the agent starts at login",
        report.location
    ));
    let (activation, activation_detail) = describe_activation(&report.activation);
    match &report.activation {
        Activation::Done => printer.info("The session manager started it now"),
        Activation::Skipped(reason) => printer.detail(format!("not started now: {reason}")),
        Activation::Failed(reason) => printer.warn(format!(
            "the session manager did not take the entry ({reason}); it takes effect at the next login"
        )),
    }
    if printer.is_json() {
        printer.json(&InstallDocument {
            location: report.location,
            program,
            previous_program: report.previous_program,
            activation,
            activation_detail,
        });
    }
    Ok(ExitStatus::Success)
}

#[derive(Debug, Serialize)]
struct UninstallDocument {
    removed: Option<String>,
    activation: &'static str,
    activation_detail: Option<String>,
}

async fn uninstall(printer: &Printer) -> anyhow::Result<ExitStatus> {
    let mechanism = Mechanism::for_this_os()?;
    let report = tokio::task::spawn_blocking(move || autostart::uninstall(&mechanism, true))
        .await
        .context("the login entry could not be removed")??;
    match &report.removed {
        Some(location) => printer.success(format!("Removed {location}")),
        None => printer.info("There was no login entry to remove"),
    }
    if let Activation::Failed(reason) = &report.activation {
        printer.warn(format!(
            "the session manager was not told ({reason}); the agent it started keeps running until `jit agent stop`"
        ));
    }
    let (activation, activation_detail) = describe_activation(&report.activation);
    if printer.is_json() {
        printer.json(&UninstallDocument {
            removed: report.removed,
            activation,
            activation_detail,
        });
    }
    Ok(ExitStatus::Success)
}

fn describe_activation(activation: &Activation) -> (&'static str, Option<String>) {
    match activation {
        Activation::Done => ("done", None),
        Activation::Skipped(reason) => ("skipped", Some(reason.clone())),
        Activation::Failed(reason) => ("failed", Some(reason.clone())),
    }
}

async fn run_in_foreground(
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    // The agent stops on SIGINT and SIGTERM by itself, saving its windows.
    let _taken_over = crate::interruption::TakeOver::new();
    let paths =
        agent_support::agent_paths(settings).context("cannot locate the agent's directories")?;
    printer.info(format!(
        "Running the agent at {}; stop it with Ctrl-C or `jit agent stop` (logs: -v or JIT_LOG)",
        paths.endpoint_display()
    ));
    let teller = printer.clone();
    let outcome = agent_runner::run_agent(settings, paths, move |message| teller.warn(message))
        .await
        .context("the agent stopped with an error")?;
    match outcome {
        RunOutcome::Stopped => printer.info(format!(
            "The agent stopped at {}",
            format_time(Timestamp::now())
        )),
        RunOutcome::AlreadyRunning(message) => printer.warn(message),
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use jit_agent::daemon::protocol::PROTOCOL_VERSION;

    use super::*;

    #[test]
    fn clock_offsets_read_as_words() {
        assert_eq!(clock_offset_text(0), "same as this machine");
        assert_eq!(clock_offset_text(2), "2s ahead of this machine");
        assert_eq!(clock_offset_text(-90), "1m30s behind this machine");
    }

    #[test]
    fn an_offline_backend_and_other_troubles_are_problems() {
        let status = AgentStatus {
            agent_version: "0.1.0".to_owned(),
            protocol_version: PROTOCOL_VERSION,
            pid: 7,
            profile: Some("AzureCloud".to_owned()),
            started_at: Timestamp::UNIX_EPOCH,
            endpoint: "/run/jit/agent.sock".to_owned(),
            state_file: PathBuf::from("/state/windows.json"),
            open_windows: 2,
            server_clock_offset: SignedDuration::from_secs(3),
            notify_before: SignedDuration::from_mins(5),
            refresh_interval: SignedDuration::from_mins(1),
            backend: "offline (no Azure CLI)".to_owned(),
            last_refresh: None,
            last_refresh_error: None,
            store_problem: Some("the state file was unreadable".to_owned()),
            notifier_problem: Some("no session bus".to_owned()),
        };
        let mut document = AgentStatusDocument::default();
        fill_from_status(&mut document, &status);
        assert_eq!(document.problems.len(), 3, "{:?}", document.problems);
        assert!(document.problems[0].contains("unreadable"));
        assert!(document.problems[1].contains("no session bus"));
        assert!(document.problems[2].contains("(no Azure CLI)"));
        let lines = status_lines(&document);
        assert!(lines.contains("windows:       2"), "{lines}");
        assert!(lines.contains("3s ahead"), "{lines}");
    }
}
