//! `jit extend VM [--duration D] [--justification T]`: a new request for the same ports
//! and source as the VM's open window, so the old one is superseded and the end moves.
//!
//! JIT has no "extend": Azure marks the older request `NewerRequestInitiated` when a
//! newer one covers its ports. There are two ways to make that request:
//!
//! - **through the agent** when one runs for this Azure: it knows the window (ports,
//!   source, justification), asks Azure with its own warm sign-in, and starts tracking
//!   the new window at once;
//! - **directly** otherwise: the VM's open ports are read back from its JIT policy (so a
//!   window opened with `--no-agent`, by the portal or by a script is extended too), the
//!   duration is checked against the policy exactly as `jit connect` checks it, the same
//!   `initiate` as `connect` is posted, and the new window is handed to the agent.
//!
//! `--justification` always goes the direct way (the agent's extension keeps the
//! window's justification), and so does a window the agent does not track or an agent
//! that cannot reach Azure. A failure anywhere else is reported, never retried: the
//! request may have reached Azure.

use anyhow::Context as _;
use jiff::SignedDuration;
use jit_agent::access::plan::{PlanError, choose_duration};
use jit_agent::access::request::{Initiated, PortRequest, VmRequest, initiate};
use jit_agent::access::status::{ActivePort, PolicyEntry, active_ports, find_entry};
use jit_agent::azure::models::JitNetworkAccessPortRule;
use jit_agent::daemon::azure_backend::window_from_request;
use jit_agent::daemon::protocol::{ErrorKind, PROTOCOL_VERSION, WindowView};
use jit_agent::daemon::{AccessWindow, ClientError, ExtendLength, PortStatus, WindowPort};

use super::access_flow::describe_end;
use super::agent::{connect_if_running, welcome_text};
use super::agent_link::{self, agent_profile};
use super::common;
use super::status::{WindowDocument, table};
use crate::args::ExtendArgs;
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::settings::{GlobalSettings, parse_duration};

pub(crate) async fn run(
    arguments: ExtendArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let requested = arguments
        .duration
        .as_deref()
        .map(|text| parse_duration(text, "--duration"))
        .transpose()?;
    if settings.agent.enabled && arguments.justification.is_none() {
        match through_agent(&arguments.vm, requested, settings, printer).await? {
            ThroughAgent::Extended(view) => {
                let offset = view.window.server_clock_offset_at_registration;
                let document = WindowDocument::new(
                    &view.window,
                    view.time_left,
                    view.ends_soon_notified,
                    offset,
                );
                report(printer, &document, &view.window, view.time_left);
                return Ok(ExitStatus::Success);
            }
            ThroughAgent::GoDirect => {}
        }
    }
    directly(&arguments, requested, settings, printer).await
}

/// What asking the agent came to.
enum ThroughAgent {
    Extended(Box<WindowView>),
    /// No agent for this Azure, or one that does not track the window or cannot reach
    /// Azure: make the request here.
    GoDirect,
}

async fn through_agent(
    vm: &str,
    requested: Option<SignedDuration>,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ThroughAgent> {
    let Some(mut client) = connect_if_running(settings).await? else {
        return Ok(ThroughAgent::GoDirect);
    };
    let welcome = client.welcome();
    if welcome.protocol_version != PROTOCOL_VERSION
        || welcome.profile.as_deref() != Some(agent_profile(settings).as_str())
    {
        printer.detail(format!(
            "the running agent ({}) is not set up for this Azure; extending directly",
            welcome_text(welcome)
        ));
        return Ok(ThroughAgent::GoDirect);
    }
    let length = match requested {
        Some(duration) => ExtendLength::Duration { duration },
        None => ExtendLength::PolicyMaximum,
    };
    let progress = printer.progress(format!("Asking the agent to extend the window on {vm}"));
    let answer = client.extend_window(vm, length).await;
    drop(progress);
    let error = match answer {
        Ok(view) => return Ok(ThroughAgent::Extended(Box::new(view))),
        Err(ClientError::Agent(error)) => error,
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!(
                "the agent did not answer the request to extend the window on {vm} (check `jit status` before trying again)"
            )));
        }
    };
    match error.kind {
        ErrorKind::NotFound => {
            printer.detail(format!(
                "the agent tracks no window for {vm}; looking in Azure"
            ));
            Ok(ThroughAgent::GoDirect)
        }
        ErrorKind::Unavailable => {
            printer.detail(format!(
                "the agent cannot reach Azure ({}); extending directly",
                error.message
            ));
            Ok(ThroughAgent::GoDirect)
        }
        ErrorKind::Ambiguous => Err(CliError::Usage {
            message: error.message,
            hint: Some("name the VM as resource-group/name or by its resource id".to_owned()),
        }
        .into()),
        ErrorKind::InvalidRequest => Err(CliError::Usage {
            message: error.message,
            hint: Some(if requested.is_some() {
                "ask for less with --duration, or raise the maximum with `jit enable --max-duration`"
                    .to_owned()
            } else {
                format!("open a new window with `jit connect {vm}`")
            }),
        }
        .into()),
        _ => Err(anyhow::Error::new(error)
            .context(format!("the agent could not extend the window on {vm}"))),
    }
}

/// Extends from the VM's JIT policy, without the agent's knowledge of the window.
async fn directly(
    arguments: &ExtendArgs,
    requested: Option<SignedDuration>,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let (connection, summary) = common::connect_to_vm(settings, printer, &arguments.vm).await?;
    let no_window = |why: &str| CliError::NotFound {
        message: format!("{} has no open access window{why}", summary.name),
        hint: Some(format!("open one with `jit connect {}`", arguments.vm)),
    };
    let entry = find_entry(&connection.arm, &summary.subscription_id, &summary.id)
        .await
        .with_context(|| format!("could not read the JIT policy of {}", summary.name))?
        .ok_or_else(|| no_window(" (JIT is not enabled for it)"))?;
    let open = active_ports(
        &entry.policy,
        &entry.virtual_machine.id,
        connection.arm.server_now(),
    );
    if open.is_empty() {
        return Err(no_window("").into());
    }
    let rules = policy_rules(&entry, &open)?;
    let duration = choose_duration(requested, &rules)?;
    let ports = open
        .iter()
        .map(|port| port_request(port, &summary.name))
        .collect::<Result<Vec<_>, _>>()?;
    let justification = arguments
        .justification
        .clone()
        .or_else(|| open.iter().find_map(|port| port.justification.clone()))
        .or_else(|| settings.access.justification.clone());
    let progress = printer.progress(format!("Extending the window on {}", summary.name));
    let initiated = initiate(
        &connection.arm,
        entry.policy_id(),
        &[VmRequest {
            vm_id: entry.virtual_machine.id.clone(),
            ports,
        }],
        duration,
        justification.as_deref(),
    )
    .await
    .with_context(|| format!("Azure refused to extend the window on {}", summary.name))?;
    drop(progress);
    let offset = connection
        .arm
        .server_time_offset()
        .unwrap_or(initiated.server_offset);
    let template = AccessWindow {
        vm_id: summary.id.clone(),
        vm_name: summary.name.clone(),
        resource_group: summary.resource_group.clone(),
        subscription_id: summary.subscription_id.clone(),
        policy_id: initiated.policy_id.clone(),
        ports: open
            .iter()
            .map(|port| WindowPort {
                number: port.number,
                mapped_port: port.mapped_port,
                status: PortStatus::Initiating,
            })
            .collect(),
        source_address_prefix: open
            .iter()
            .find_map(|port| port.source.clone())
            .unwrap_or_default(),
        requested_at: initiated.request.start_time_utc,
        ends_at: initiated.end_time,
        server_clock_offset_at_registration: offset,
        justification: justification.clone(),
        connect_address: entry.virtual_machine.public_ip_address.clone(),
    };
    let window = extended_window(template, &initiated, offset);
    agent_link::register_window(settings, printer, &window).await;
    let time_left = window.ends_at.duration_since(connection.arm.server_now());
    let document = WindowDocument::new(&window, time_left, false, offset);
    report(printer, &document, &window, time_left);
    Ok(ExitStatus::Success)
}

/// The window Azure's answer describes (the template's when it does not mention the VM).
fn extended_window(
    template: AccessWindow,
    initiated: &Initiated,
    offset: SignedDuration,
) -> AccessWindow {
    window_from_request(&template, &initiated.request, offset).unwrap_or(template)
}

/// The policy's rules for the open ports: they bound the new request's length.
fn policy_rules<'a>(
    entry: &'a PolicyEntry,
    open: &[ActivePort],
) -> Result<Vec<&'a JitNetworkAccessPortRule>, PlanError> {
    open.iter()
        .map(|port| {
            entry
                .virtual_machine
                .ports
                .iter()
                .find(|rule| rule.number == port.number)
                .ok_or_else(|| PlanError::PortNotInPolicy {
                    requested: port.number,
                    available: entry
                        .virtual_machine
                        .ports
                        .iter()
                        .map(|rule| rule.number)
                        .collect(),
                })
        })
        .collect()
}

/// The same port for the same source. A request can name one source per port, so a
/// port opened for several ranges (by the portal or a script) cannot be repeated as is.
fn port_request(port: &ActivePort, vm_name: &str) -> Result<PortRequest, CliError> {
    match &port.source {
        Some(source) if source.contains(',') => Err(CliError::Usage {
            message: format!(
                "port {} of {vm_name} is open for several sources ({source}); a request names one",
                port.number
            ),
            hint: Some(format!(
                "request the source you need with `jit request {vm_name} --port {} --source …`",
                port.number
            )),
        }),
        source => Ok(PortRequest {
            number: port.number,
            source_prefix: source.clone(),
        }),
    }
}

/// Says what the new window is: one line on stderr, the window on stdout.
fn report(
    printer: &Printer,
    document: &WindowDocument,
    window: &AccessWindow,
    time_left: SignedDuration,
) {
    let ports: Vec<String> = window.port_numbers().iter().map(u16::to_string).collect();
    let azure_now = window
        .ends_at
        .checked_sub(time_left)
        .unwrap_or(window.ends_at);
    printer.success(format!(
        "Extended {}: port {} for {} until {}",
        document.vm_reference(),
        ports.join(", "),
        window.source_address_prefix,
        describe_end(window.ends_at, azure_now)
    ));
    if printer.is_json() {
        printer.json(document);
    } else {
        printer.data(table(std::slice::from_ref(document)));
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;

    fn open_port(source: Option<&str>) -> ActivePort {
        ActivePort {
            number: 22,
            status: "Initiated".to_owned(),
            source: source.map(str::to_owned),
            end_time_utc: Timestamp::UNIX_EPOCH,
            mapped_port: None,
            requestor: None,
            justification: None,
            start_time_utc: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_same_source_is_asked_for_again() {
        let request = port_request(&open_port(Some("198.51.100.7")), "api-01");
        assert_eq!(
            request.ok(),
            Some(PortRequest {
                number: 22,
                source_prefix: Some("198.51.100.7".to_owned())
            })
        );
        assert!(matches!(
            port_request(&open_port(Some("10.0.0.0/8,192.168.0.0/16")), "api-01"),
            Err(CliError::Usage { .. })
        ));
    }
}
