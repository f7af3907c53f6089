//! `jit enable VM` and `jit disable VM`: turn JIT on (or change a VM's ports) and off,
//! merging into the VM's policy so that no other VM is touched.

use anyhow::Context as _;
use jit_agent::access::details::read_vm;
use jit_agent::access::enable::{
    ChangeOutcome, PolicyChange, VmPlacement, WriteOptions, commit, default_port, disable,
    plan_enable, port_rules,
};
use jit_agent::access::flow::FlowError;

use crate::args::{DisableArgs, EnableArgs};
use crate::error::{CliError, ExitStatus};
use crate::interaction::describe_change;
use crate::interruption::{self, Entry};
use crate::printer::Printer;
use crate::session::Session;
use crate::settings::{GlobalSettings, jit_protocol, parse_duration, parse_vm};

pub(crate) async fn run_enable(
    arguments: EnableArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    interruption::keep_complete_journal();
    let query = parse_vm(&arguments.vm)?;
    let maximum = match arguments.max_duration.as_deref() {
        Some(text) => parse_duration(text, "--max-duration")?,
        None => settings.enable.max_duration,
    };
    let sources = if arguments.allowed_sources.is_empty() {
        settings.enable.allowed_sources.clone()
    } else {
        arguments.allowed_sources.clone()
    };
    let protocol = jit_protocol(arguments.protocol);
    // Validated before any Azure call.
    port_rules(&[22], &protocol, &sources, maximum).map_err(|error| CliError::Usage {
        message: error.to_string(),
        hint: Some("JIT accepts IPv4 sources or *, and maximums from 5m to 24h".to_owned()),
    })?;
    let session = Session::open(settings, printer)?;
    let flow = session.flow();
    let summary = flow.locate_supported(&query).await?;
    let details = read_vm(&session.connection.arm, &summary.id)
        .await
        .with_context(|| format!("could not read {}", summary.name))?;
    if !details.has_network_security_group() {
        return Err(FlowError::NoNetworkSecurityGroup { vm: details.name }.into());
    }
    let numbers: Vec<u16> = if arguments.ports.is_empty() {
        vec![default_port(details.os.as_ref())]
    } else {
        arguments.ports.clone()
    };
    let rules =
        port_rules(&numbers, &protocol, &sources, maximum).map_err(|error| CliError::Usage {
            message: error.to_string(),
            hint: None,
        })?;
    let placement = VmPlacement::new(&details.id, &details.location)?;
    let progress = printer.progress(format!("Updating the JIT policy of {}", details.name));
    // An unchanged policy is written again: JIT then restores NSG rules a deployment
    // removed (the fix `jit doctor` gives for a protection that reverted).
    let options = WriteOptions {
        rewrite_unchanged: true,
        ..WriteOptions::default()
    };
    let arm = &session.connection.arm;
    let change = async {
        let planned = plan_enable(arm, &placement, rules).await?;
        interruption::under_way(
            policy_write_entry(&details.name, &format!("jit enable {}", details.name)),
            commit(arm, &planned, &options),
        )
        .await
    }
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
    interruption::keep_complete_journal();
    let query = parse_vm(&arguments.vm)?;
    let session = Session::open(settings, printer)?;
    let summary = session.flow().locate_supported(&query).await?;
    let placement = VmPlacement::new(&summary.id, &summary.location)?;
    let progress = printer.progress(format!("Updating the JIT policy of {}", summary.name));
    let change = interruption::under_way(
        policy_write_entry(&summary.name, &format!("jit disable {}", summary.name)),
        disable(&session.connection.arm, &placement),
    )
    .await
    .with_context(|| format!("could not disable JIT for {}", summary.name))?;
    drop(progress);
    finish(printer, &summary.name, &change);
    Ok(ExitStatus::Success)
}

/// What a stop while the policy is written reports: the write may or may not have landed.
fn policy_write_entry(vm_name: &str, again: &str) -> Entry {
    Entry::new(
        format!("the JIT policy of {vm_name} was being written, and Azure may have applied it"),
        format!(
            "`jit show {vm_name}` shows the policy as it is; `{again}` again changes only what is missing"
        ),
    )
}

fn finish(printer: &Printer, vm_name: &str, change: &PolicyChange) {
    printer.success(describe_change(vm_name, change));
    for concurrent in &change.concurrent_changes {
        printer.info(format!(
            "note: another writer changed the policy meanwhile ({concurrent}); kept"
        ));
    }
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "vm": vm_name,
            "outcome": change.outcome,
            "policy_id": change.policy_id,
            "other_virtual_machines_unchanged": change.other_virtual_machines,
            "writes": change.writes,
            "concurrent_changes": change.concurrent_changes,
        }));
    } else if change.outcome != ChangeOutcome::Unchanged {
        printer.data(format!("policy: {}", change.policy_id));
    }
}
