//! The CLI's side of the background agent: where it lives, which one is ours, how to
//! start it with this command's sign-in, and handing it a window.
//!
//! The agent is a convenience, never a requirement: when it cannot run (a headless
//! server, no session bus, `--no-agent`), commands say so once and carry on.
//!
//! **Which agent is ours.** An agent hands its Azure tokens to `jit` commands, so it must
//! sign in as the same identity a command would: its *profile* names the cloud (ARM
//! endpoint and authority host) and the identity the sign-in settings actually resolve
//! to (the credential kind `auto` settles on, tenant, client id, and for the Azure CLI
//! the account `az` is signed in to, read from its profile file without running `az`).
//! A command that finds an agent with another profile neither uses its tokens nor
//! registers with it; starting one replaces it. An agent the CLI starts receives the
//! command's sign-in settings as flags, so the same settings find the same agent.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Child;

use anyhow::Context as _;
use jit_agent::azure::credential::CredentialPlan;
use jit_agent::daemon::client::background_command;
use jit_agent::daemon::protocol::{PROTOCOL_VERSION, RememberedVm, Welcome};
use jit_agent::daemon::{AccessWindow, AgentClient, AgentPaths, StartOptions, ensure_running};

use crate::connection::credential_options;
use crate::printer::Printer;
use crate::settings::{AuthMethod, CloudSettings, GlobalSettings};

/// The agent's directories for these settings.
pub fn agent_paths(settings: &GlobalSettings) -> io::Result<AgentPaths> {
    AgentPaths::resolve(
        settings.agent.runtime_dir.clone(),
        settings.agent.state_dir.clone(),
    )
    .map_err(io::Error::other)
}

/// What identifies the Azure sign-in an agent serves (never a secret).
pub fn agent_profile(settings: &GlobalSettings) -> String {
    let azure = &settings.azure;
    let cloud = match &azure.cloud {
        CloudSettings::Named(name) => name.clone(),
        CloudSettings::Custom {
            arm_endpoint,
            authority_host,
            audience,
        } => {
            let mut text = format!("{arm_endpoint} authority={authority_host}");
            if let Some(audience) = audience {
                text.push_str(&format!(" audience={audience}"));
            }
            text
        }
    };
    let mut profile = format!("{cloud} sign-in={}", identity(settings));
    if let Some(tenant) = &azure.tenant {
        profile.push_str(&format!(" tenant={tenant}"));
    }
    profile
}

/// The identity the sign-in settings resolve to, in words.
fn identity(settings: &GlobalSettings) -> String {
    let azure = &settings.azure;
    let client = azure.client_id.as_deref().unwrap_or("-");
    match credential_options(azure).plan() {
        Ok(CredentialPlan::AzureCli { .. }) => {
            match azure_cli_account(azure.azure_cli_dir.as_deref()) {
                Some((user, tenant)) => format!("az:{user}@{tenant}"),
                None => "az".to_owned(),
            }
        }
        Ok(CredentialPlan::ServicePrincipal | CredentialPlan::ServicePrincipalFromKeychain) => {
            format!("service-principal:{client}")
        }
        Ok(CredentialPlan::WorkloadIdentity) => format!("workload-identity:{client}"),
        Ok(CredentialPlan::ManagedIdentity) => format!("managed-identity:{client}"),
        // The command itself will report the problem; the agent cannot match it.
        Err(_) => format!("unresolved:{}", auth_word(azure.auth)),
    }
}

fn auth_word(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::Auto => "auto",
        AuthMethod::Cli => "cli",
        AuthMethod::ServicePrincipal => "service-principal",
        AuthMethod::ManagedIdentity => "managed-identity",
        AuthMethod::WorkloadIdentity => "workload-identity",
    }
}

/// The account `az` is signed in to (user name, tenant), from its profile file; `None`
/// when there is no such file or no default subscription in it.
fn azure_cli_account(directory: Option<&Path>) -> Option<(String, String)> {
    let text = std::fs::read_to_string(directory?.join("azureProfile.json")).ok()?;
    // The Azure CLI writes this file with a byte-order mark.
    let value: serde_json::Value =
        serde_json::from_str(text.trim_start_matches('\u{feff}')).ok()?;
    let default = value
        .get("subscriptions")?
        .as_array()?
        .iter()
        .find(|subscription| {
            subscription
                .get("isDefault")
                .and_then(serde_json::Value::as_bool)
                == Some(true)
        })?;
    let user = default.get("user")?.get("name")?.as_str()?.to_owned();
    let tenant = default
        .get("tenantId")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("-")
        .to_owned();
    Some((user, tenant))
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

/// The flags that give an agent this command's sign-in settings (flags win over the
/// environment and the config file the agent inherits, so it resolves what we did).
pub fn agent_arguments(settings: &GlobalSettings) -> Vec<String> {
    let mut arguments = vec!["run".to_owned()];
    if let Some(path) = &settings.config_path
        && path.is_file()
    {
        arguments.push("--config".to_owned());
        arguments.push(path.display().to_string());
    }
    arguments.push("--auth".to_owned());
    arguments.push(auth_word(settings.azure.auth).to_owned());
    if let Some(tenant) = &settings.azure.tenant {
        arguments.push("--tenant".to_owned());
        arguments.push(tenant.clone());
    }
    if let CloudSettings::Named(name) = &settings.azure.cloud {
        arguments.push("--cloud".to_owned());
        arguments.push(name.clone());
    }
    arguments
}

/// Starts the agent detached, with this command's sign-in settings.
pub fn spawn_agent(settings: &GlobalSettings) -> io::Result<Child> {
    background_command(agent_program()?)
        .args(agent_arguments(settings))
        .spawn()
}

/// Connects to a running agent without starting one; `None` when none runs.
pub async fn connect_if_running(settings: &GlobalSettings) -> anyhow::Result<Option<AgentClient>> {
    let options = start_options(settings).context("cannot locate the agent's directories")?;
    jit_agent::daemon::client::connect_if_running(&options)
        .await
        .with_context(|| {
            format!(
                "the agent at {} did not answer",
                options.paths.endpoint_display()
            )
        })
}

/// `version 0.1.0, process 4242`.
pub fn welcome_text(welcome: &Welcome) -> String {
    format!("version {}, process {}", welcome.agent_version, welcome.pid)
}

/// Why the running agent is not the one this `jit` would start, if it is not.
pub fn foreign_agent(welcome: &Welcome, settings: &GlobalSettings) -> Option<String> {
    let profile = agent_profile(settings);
    if welcome.protocol_version != PROTOCOL_VERSION {
        Some(format!(
            "the running agent ({}) speaks protocol {} and this jit {PROTOCOL_VERSION}; `jit agent start` replaces it",
            welcome_text(welcome),
            welcome.protocol_version
        ))
    } else if welcome.agent_version != env!("CARGO_PKG_VERSION") {
        Some(format!(
            "the running agent is version {} and this jit {}; `jit agent start` (or the next `jit connect`) replaces it",
            welcome.agent_version,
            env!("CARGO_PKG_VERSION")
        ))
    } else if welcome.profile.as_deref() != Some(profile.as_str()) {
        Some(format!(
            "the running agent serves {} and this jit {profile}; `jit agent start` (or the next `jit connect`) replaces it",
            welcome.profile.as_deref().unwrap_or("an unnamed profile")
        ))
    } else {
        None
    }
}

/// What the running agent remembers about the VMs named `vms` (see
/// `jit_agent::access::memory`), for the flow's `with_remembered`. No agent is started
/// for this: without one (or with one of another sign-in) the answer is empty and the
/// request takes the cold path.
pub async fn recall(settings: &GlobalSettings, vms: &[&str]) -> Vec<RememberedVm> {
    if !settings.agent.enabled {
        return Vec::new();
    }
    let Ok(options) = start_options(settings) else {
        return Vec::new();
    };
    let client = match jit_agent::daemon::client::connect_if_running(&options).await {
        Ok(Some(client))
            if client.is_same_version(&options.client_version, options.profile.as_deref()) =>
        {
            client
        }
        Ok(_) => return Vec::new(),
        Err(error) => {
            tracing::debug!(%error, "the agent did not answer; nothing remembered");
            return Vec::new();
        }
    };
    let mut client = client;
    let mut remembered = Vec::new();
    for vm in vms {
        match client.recall_vm(vm, &settings.azure.subscriptions).await {
            Ok(Some(known)) => remembered.push(known),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "the agent could not say what it remembers");
                break;
            }
        }
    }
    remembered
}

/// Registers `window` with the agent, starting it if needed (and allowed); on failure,
/// says once why there will be no reminders and carries on.
pub async fn register_window(settings: &GlobalSettings, printer: &Printer, window: &AccessWindow) {
    register_grant(settings, printer, window, None).await;
}

/// [`register_window`], and has the agent remember the VM (`remember`) for the next
/// request.
pub async fn register_grant(
    settings: &GlobalSettings,
    printer: &Printer,
    window: &AccessWindow,
    remember: Option<RememberedVm>,
) {
    if !settings.agent.enabled {
        return;
    }
    let outcome = async {
        let options = start_options(settings).map_err(|error| error.to_string())?;
        let mut client = if settings.agent.autostart {
            ensure_running(&options, || spawn_agent(settings))
                .await
                .map_err(|error| error.to_string())?
                .0
        } else {
            jit_agent::daemon::client::connect_if_running(&options)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| "it is not running and autostart is off".to_owned())?
        };
        let view = client
            .register_window(window)
            .await
            .map_err(|error| error.to_string())?;
        if let Some(vm) = remember
            && let Err(error) = client.remember_vm(vm).await
        {
            tracing::debug!(%error, "the agent could not remember the VM");
        }
        Ok::<_, String>(view)
    }
    .await;
    match outcome {
        Ok(_) => printer.detail("the agent will warn before the window ends"),
        Err(reason) => printer.warn(format!(
            "no reminders for this window: the background agent is not available ({reason})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_azure_cli_account_is_read_from_its_profile_file() {
        let temp = tempfile::tempdir().expect("temp dir");
        assert_eq!(azure_cli_account(Some(temp.path())), None);
        std::fs::write(
            temp.path().join("azureProfile.json"),
            "\u{feff}{\"subscriptions\":[{\"id\":\"a\",\"isDefault\":false,\"user\":{\"name\":\"old@contoso.com\"},\"tenantId\":\"t0\"},{\"id\":\"b\",\"isDefault\":true,\"user\":{\"name\":\"me@contoso.com\",\"type\":\"user\"},\"tenantId\":\"t1\"}]}",
        )
        .expect("write");
        assert_eq!(
            azure_cli_account(Some(temp.path())),
            Some(("me@contoso.com".to_owned(), "t1".to_owned()))
        );
    }
}
