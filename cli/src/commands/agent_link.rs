//! Handing access windows to the background agent.
//!
//! After `connect` or `request`, the window is registered with the agent, starting it if
//! needed, so the desktop warns before and when the window ends. The agent is a
//! convenience, never a requirement: when it cannot run (a headless server, no session
//! bus, `--no-agent`), the command says so once and carries on.

use std::io;
use std::path::PathBuf;
use std::process::Child;

use jit_agent::access::request::{Initiated, OpenPort};
use jit_agent::daemon::client::background_command;
use jit_agent::daemon::{
    AccessWindow, AgentPaths, PortStatus, StartOptions, WindowPort, ensure_running,
};

use super::access_flow::Prepared;
use crate::connection::AzureConnection;
use crate::printer::Printer;
use crate::settings::{CloudSettings, GlobalSettings};

/// The agent's directories for these settings.
pub fn agent_paths(settings: &GlobalSettings) -> io::Result<AgentPaths> {
    AgentPaths::resolve(
        settings.agent.runtime_dir.clone(),
        settings.agent.state_dir.clone(),
    )
    .map_err(io::Error::other)
}

/// What identifies the Azure the agent talks to; an agent with another profile is
/// replaced (say, one started for the emulator).
///
/// The sign-in identity is part of it (method, tenant, client id; never a secret): the
/// agent hands its tokens to `jit`, and a token of another identity must not be used.
pub fn agent_profile(settings: &GlobalSettings) -> String {
    let azure = &settings.azure;
    let cloud = match &azure.cloud {
        CloudSettings::Named(name) => name.clone(),
        CloudSettings::Custom { arm_endpoint, .. } => arm_endpoint.clone(),
    };
    let auth = serde_json::to_value(azure.auth)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut profile = format!("{cloud} auth={auth}");
    if let Some(tenant) = &azure.tenant {
        profile.push_str(&format!(" tenant={tenant}"));
    }
    if let Some(client_id) = &azure.client_id {
        profile.push_str(&format!(" client={client_id}"));
    }
    profile
}

/// The `jit-agent` program installed next to this `jit`.
pub fn agent_program() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let name = if cfg!(windows) {
        "jit-agent.exe"
    } else {
        "jit-agent"
    };
    Ok(exe.with_file_name(name))
}

/// The options to find or start the agent with.
pub fn start_options(settings: &GlobalSettings) -> io::Result<StartOptions> {
    let mut options = StartOptions::new(agent_paths(settings)?, env!("CARGO_PKG_VERSION"));
    options.profile = Some(agent_profile(settings));
    Ok(options)
}

/// Starts the agent detached.
pub fn spawn_agent() -> io::Result<Child> {
    background_command(agent_program()?).arg("run").spawn()
}

/// The window for an opened request.
pub(crate) fn window(
    connection: &AzureConnection,
    prepared: &Prepared,
    initiated: &Initiated,
    open: &[OpenPort],
) -> AccessWindow {
    AccessWindow {
        vm_id: prepared.details.id.clone(),
        vm_name: prepared.details.name.clone(),
        resource_group: prepared.details.resource_group.clone(),
        subscription_id: prepared.details.subscription_id.clone(),
        policy_id: initiated.policy_id.clone(),
        ports: prepared
            .plan
            .rules()
            .iter()
            .filter(|rule| open.is_empty() || open.iter().any(|port| port.number == rule.number))
            .map(|rule| WindowPort {
                number: rule.number,
                mapped_port: open
                    .iter()
                    .find(|port| port.number == rule.number)
                    .and_then(|port| port.mapped_port),
                status: if open.is_empty() {
                    PortStatus::Initiating
                } else {
                    PortStatus::Initiated
                },
            })
            .collect(),
        // What Azure recorded (the caller's address when none was sent), not a description.
        source_address_prefix: initiated
            .request
            .virtual_machines
            .iter()
            .flat_map(|vm| vm.ports.iter())
            .find_map(|port| port.allowed_source_address_prefix.clone())
            .unwrap_or_else(|| prepared.source_text()),
        requested_at: initiated.request.start_time_utc,
        ends_at: initiated.end_time,
        server_clock_offset_at_registration: connection
            .arm
            .server_time_offset()
            .unwrap_or(initiated.server_offset),
        justification: initiated.request.justification.clone(),
        connect_address: open.first().map(|port| port.host.clone()),
    }
}

/// Registers the window with the agent, starting it if needed; on failure, says once why
/// there will be no reminders and carries on.
pub(crate) async fn register(
    settings: &GlobalSettings,
    printer: &Printer,
    connection: &AzureConnection,
    prepared: &Prepared,
    initiated: &Initiated,
    open: &[OpenPort],
) {
    let window = window(connection, prepared, initiated, open);
    register_window(settings, printer, &window).await;
}

/// Registers `window` with the agent, starting it if needed (and allowed); on failure,
/// says once why there will be no reminders and carries on.
pub(crate) async fn register_window(
    settings: &GlobalSettings,
    printer: &Printer,
    window: &AccessWindow,
) {
    if !settings.agent.enabled {
        return;
    }
    let outcome = async {
        let options = start_options(settings).map_err(|error| error.to_string())?;
        let (mut client, _) = if settings.agent.autostart {
            ensure_running(&options, spawn_agent)
                .await
                .map_err(|error| error.to_string())?
        } else {
            let client = jit_agent::daemon::client::connect_if_running(&options)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| "it is not running and autostart is off".to_owned())?;
            (client, jit_agent::daemon::Started::AlreadyRunning)
        };
        client
            .register_window(window)
            .await
            .map_err(|error| error.to_string())
    }
    .await;
    match outcome {
        Ok(_) => printer.detail("the agent will warn before the window ends"),
        Err(reason) => printer.warn(format!(
            "no reminders for this window: the background agent is not available ({reason})"
        )),
    }
}
