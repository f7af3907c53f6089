//! `jit enable VM` and `jit disable VM`: turn JIT on (or change a VM's ports) and off,
//! merging into the VM's policy so that no other VM is touched.

use anyhow::Context as _;
use jit_agent::access::details::read_vm;
use jit_agent::access::enable::{
    ChangeOutcome, PolicyChange, VmPlacement, default_port, disable, enable, port_rule,
};
use jit_agent::azure::models::{IsoDuration, JitNetworkAccessPortRule, JitProtocol};

use super::access_flow::report_change;
use super::common;
use crate::args::{DisableArgs, EnableArgs, ProtocolArg};
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::settings::{GlobalSettings, parse_duration};

/// JIT allows request durations from 5 minutes to a day.
const SHORTEST_MAXIMUM: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
const LONGEST_MAXIMUM: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Port rules for `numbers`, each with the same protocol, sources and maximum.
pub(crate) fn port_rules(
    numbers: &[u16],
    protocol: &JitProtocol,
    sources: &[String],
    maximum: jiff::SignedDuration,
) -> Result<Vec<JitNetworkAccessPortRule>, CliError> {
    for source in sources {
        let valid = source == "*"
            || source.parse::<ipnet::Ipv4Net>().is_ok()
            || source.parse::<std::net::Ipv4Addr>().is_ok();
        if !valid {
            return Err(CliError::Usage {
                message: format!(
                    "allowed source '{source}' is not *, an IPv4 address or an IPv4 range"
                ),
                hint: Some("JIT accepts only IPv4 sources".to_owned()),
            });
        }
    }
    let maximum = IsoDuration::from_duration(maximum);
    Ok(numbers
        .iter()
        .map(|&number| port_rule(number, protocol.clone(), sources, maximum.as_str()))
        .collect())
}

pub(crate) async fn run_enable(
    arguments: EnableArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let maximum = match arguments.max_duration.as_deref() {
        Some(text) => {
            let duration = parse_duration(text, "--max-duration")?;
            if !(SHORTEST_MAXIMUM..=LONGEST_MAXIMUM).contains(&duration) {
                return Err(CliError::Usage {
                    message: format!("--max-duration {text} is outside what JIT allows"),
                    hint: Some("use between 5 minutes and 24 hours".to_owned()),
                }
                .into());
            }
            duration
        }
        None => settings.enable.max_duration,
    };
    let sources = if arguments.allowed_sources.is_empty() {
        settings.enable.allowed_sources.clone()
    } else {
        arguments.allowed_sources.clone()
    };
    let protocol = match arguments.protocol {
        ProtocolArg::Any => JitProtocol::All,
        ProtocolArg::Tcp => JitProtocol::Tcp,
        ProtocolArg::Udp => JitProtocol::Udp,
    };
    // Validated before any Azure call.
    port_rules(&[22], &protocol, &sources, maximum)?;
    let (connection, summary) = common::connect_to_vm(settings, printer, &arguments.vm).await?;
    let details = read_vm(&connection.arm, &summary.id)
        .await
        .with_context(|| format!("could not read {}", summary.name))?;
    if !details.has_network_security_group() {
        return Err(CliError::Unavailable {
            message: format!(
                "JIT cannot protect {}: it has no network security group on its network interface or subnet",
                details.name
            ),
            hint: Some("attach a network security group to the VM's NIC or subnet first".to_owned()),
        }
        .into());
    }
    let numbers: Vec<u16> = if arguments.ports.is_empty() {
        vec![default_port(details.os.as_ref())]
    } else {
        arguments.ports.clone()
    };
    let rules = port_rules(&numbers, &protocol, &sources, maximum)?;
    let placement = VmPlacement::new(&details.id, &details.location)?;
    let progress = printer.progress(format!("Updating the JIT policy of {}", details.name));
    let change = enable(&connection.arm, &placement, rules)
        .await
        .with_context(|| format!("could not enable JIT for {}", details.name))?;
    drop(progress);
    finish(printer, &details.name, &change);
    Ok(ExitStatus::Success)
}

pub(crate) async fn run_disable(
    arguments: DisableArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let (connection, summary) = common::connect_to_vm(settings, printer, &arguments.vm).await?;
    let placement = VmPlacement::new(&summary.id, &summary.location)?;
    let progress = printer.progress(format!("Updating the JIT policy of {}", summary.name));
    let change = disable(&connection.arm, &placement)
        .await
        .with_context(|| format!("could not disable JIT for {}", summary.name))?;
    drop(progress);
    finish(printer, &summary.name, &change);
    Ok(ExitStatus::Success)
}

fn finish(printer: &Printer, vm_name: &str, change: &PolicyChange) {
    report_change(
        printer,
        vm_name,
        &change.outcome,
        &change.policy_id,
        change.other_virtual_machines,
    );
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "vm": vm_name,
            "outcome": change.outcome,
            "policy_id": change.policy_id,
            "other_virtual_machines_unchanged": change.other_virtual_machines,
        }));
    } else if change.outcome != ChangeOutcome::Unchanged {
        printer.data(format!("policy: {}", change.policy_id));
    }
}
