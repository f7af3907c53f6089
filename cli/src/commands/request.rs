//! `jit request VM…`: open access without connecting, for one or several VMs.
//!
//! VMs that share a JIT policy are asked for in one initiate call (that is what the API
//! is shaped for, and it keeps one request record per policy); each VM's ports are then
//! waited for unless `--no-wait`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use jit_agent::access::my_ip::PublicAddress;
use jit_agent::access::request::{Initiated, VmRequest, initiate};

use super::access_flow::{self, AccessReport, Prepared};
use super::{agent_link, common, connect};
use crate::args::RequestArgs;
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::settings::GlobalSettings;

pub(crate) async fn run(
    arguments: RequestArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let connection = common::connect(settings, printer).await?;
    let (_, scope) = common::scope(&connection, settings, None).await?;
    let mut public_address: Option<PublicAddress> = None;
    let mut prepared_all: Vec<Prepared> = Vec::new();
    for vm in &arguments.vms {
        let prepared = access_flow::prepare(
            &connection,
            settings,
            printer,
            &scope,
            access_flow::Ask {
                vm,
                access: &arguments.access,
                ports: &arguments.port,
            },
            &mut public_address,
        )
        .await?;
        if prepared_all
            .iter()
            .any(|other| other.details.id.eq_ignore_ascii_case(&prepared.details.id))
        {
            return Err(CliError::Usage {
                message: format!("{} is named twice", prepared.details.name),
                hint: None,
            }
            .into());
        }
        prepared_all.push(prepared);
    }

    // One initiate per policy, for VMs that also ask for the same duration.
    let mut groups: BTreeMap<(String, i64), Vec<usize>> = BTreeMap::new();
    for (index, prepared) in prepared_all.iter().enumerate() {
        groups
            .entry((
                prepared.entry.policy_id().to_ascii_lowercase(),
                prepared.duration.as_secs(),
            ))
            .or_default()
            .push(index);
    }
    let justification = arguments
        .access
        .justification
        .clone()
        .or_else(|| settings.access.justification.clone());
    let mut reports = Vec::new();
    for indexes in groups.values() {
        let first = &prepared_all[indexes[0]];
        let vms: Vec<VmRequest> = indexes
            .iter()
            .map(|&index| VmRequest {
                vm_id: prepared_all[index].entry.virtual_machine.id.clone(),
                ports: prepared_all[index].port_requests(),
            })
            .collect();
        let initiated: Initiated = initiate(
            &connection.arm,
            first.entry.policy_id(),
            &vms,
            first.duration,
            justification.as_deref(),
        )
        .await
        .context("Azure refused the access request")?;
        for &index in indexes {
            let prepared = &prepared_all[index];
            printer.info(format!(
                "Requested {} for {} until {}",
                prepared.details.name,
                prepared.source_text(),
                access_flow::describe_end(initiated.end_time, connection.arm.server_now())
            ));
            let open = if arguments.no_wait {
                Vec::new()
            } else {
                access_flow::wait(
                    &connection,
                    settings,
                    printer,
                    prepared,
                    &initiated,
                    arguments.access.timeout.as_deref(),
                )
                .await?
            };
            agent_link::register(settings, printer, &connection, prepared, &initiated, &open).await;
            reports.push(AccessReport::new(
                prepared,
                &initiated,
                open,
                justification.clone(),
            ));
        }
    }
    if printer.is_json() {
        printer.json(&reports);
    } else {
        for (index, report) in reports.iter().enumerate() {
            if index > 0 {
                printer.data("");
            }
            connect::print_report(printer, report, None);
        }
    }
    Ok(ExitStatus::Success)
}
