//! `jit list`: every VM in scope, grouped as the portal's JIT page groups them.
//!
//! The portal shows three tabs (Configured, Not configured, Unsupported) one
//! subscription at a time; the Azure CLI lists only configured policies. `jit list`
//! shows all three for every subscription at once, from
//! [`jit_agent::access::inventory`] (a fixed number of calls, whatever the number of
//! VMs). As a table, each tab is a block of aligned columns; with `--output json` it is
//! one document whose schema is documented in `docs/output-json.md` and kept stable:
//! fields are only ever added.
//!
//! The JSON view types are shared with `jit show` (`crate::printer::inventory`), so a VM
//! has the same fields in both documents.

use anyhow::Context as _;
use jiff::Timestamp;
use jit_agent::access::inventory::{self, InventoryVm, NetworkProtection};
use jit_agent::access::locate;
use jit_agent::access::status::{ActivePort, JitState};
use jit_agent::azure::models::{JitNetworkAccessPortRule, Subscription};
use serde::Serialize;

use crate::args::{JitStateFilter, ListArgs};
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::printer::format::{format_time, format_time_left};
use crate::printer::inventory::{
    SubscriptionNames, VmView, max_duration, names_of, or_dash, port_with_protocol, sources,
    tab_title, via,
};
use crate::printer::table::Table;
use crate::session::Session;
use crate::settings::GlobalSettings;

/// The tabs, in the portal's order.
const TABS: [JitState; 3] = [
    JitState::Configured,
    JitState::NotConfigured,
    JitState::Unsupported,
];

pub(crate) async fn run(
    arguments: ListArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    // Reads only: a stop changes nothing in Azure.
    crate::interruption::keep_complete_journal();
    let session = Session::open(settings, printer)?;
    let flow = session.flow();
    let connection = &session.connection;
    let resource_group = arguments.scope.resource_group.as_deref();
    let scope = flow.search_scope(resource_group).await?;
    let subscriptions = flow.subscriptions().await?;
    let progress = printer.progress(format!(
        "Listing VMs in {}",
        describe_scope(subscriptions, resource_group)
    ));
    let inventory = inventory::inventory(&connection.arm, &scope)
        .await
        .context("could not list the VMs")?;
    drop(progress);
    if let Some(group) = resource_group
        && inventory.vms.is_empty()
        && !locate::resource_group_exists(&connection.arm, &scope.subscription_ids, group)
            .await
            .context("could not look for the resource group")?
    {
        return Err(CliError::NotFound {
            message: format!(
                "no resource group '{group}' in {}",
                describe_scope(subscriptions, None)
            ),
            hint: Some(
                "check the name (`jit list` shows every VM's resource group) and --subscription"
                    .to_owned(),
            ),
        }
        .into());
    }

    let names = SubscriptionNames::new(subscriptions);
    let wanted = arguments.state.map(state_of_filter);
    let mut vms: Vec<&InventoryVm> = inventory
        .vms
        .iter()
        .filter(|vm| wanted.is_none_or(|state| vm.state == state))
        .collect();
    vms.sort_by_cached_key(|vm| {
        (
            TABS.iter().position(|tab| *tab == vm.state),
            names.name(&vm.subscription_id).to_lowercase(),
            vm.resource_group.to_lowercase(),
            vm.name.to_lowercase(),
            vm.id.to_lowercase(),
        )
    });

    if printer.is_json() {
        let document = ListDocument {
            as_of: format_time(inventory.as_of),
            subscriptions: subscriptions
                .iter()
                .map(|subscription| SubscriptionView {
                    id: subscription.subscription_id.clone().unwrap_or_default(),
                    name: subscription.display_name.clone(),
                })
                .collect(),
            resource_group: resource_group.map(str::to_owned),
            state: wanted,
            counts: Counts {
                configured: count(&vms, JitState::Configured),
                not_configured: count(&vms, JitState::NotConfigured),
                unsupported: count(&vms, JitState::Unsupported),
            },
            vms: vms
                .iter()
                .map(|vm| VmView::new(vm, &names, inventory.as_of))
                .collect(),
        };
        printer.json(&document);
        return Ok(ExitStatus::Success);
    }

    if vms.is_empty() {
        printer.info(format!(
            "no {}VMs in {}",
            wanted.map_or(String::new(), |state| format!("{} ", state_label(state))),
            describe_scope(subscriptions, resource_group)
        ));
        return Ok(ExitStatus::Success);
    }
    let tabs: Vec<JitState> = match wanted {
        Some(state) => vec![state],
        None => TABS.to_vec(),
    };
    let mut blocks = Vec::new();
    for tab in tabs {
        let members: Vec<&InventoryVm> = vms.iter().copied().filter(|vm| vm.state == tab).collect();
        let mut block = format!("{} ({})", tab_title(tab), members.len());
        if !members.is_empty() {
            block.push('\n');
            block.push_str(&tab_table(tab, &members, &names, inventory.as_of).render());
        }
        blocks.push(block);
    }
    printer.data(blocks.join("\n\n"));
    Ok(ExitStatus::Success)
}

fn state_of_filter(filter: JitStateFilter) -> JitState {
    match filter {
        JitStateFilter::Configured => JitState::Configured,
        JitStateFilter::NotConfigured => JitState::NotConfigured,
        JitStateFilter::Unsupported => JitState::Unsupported,
    }
}

fn count(vms: &[&InventoryVm], state: JitState) -> usize {
    vms.iter().filter(|vm| vm.state == state).count()
}

fn state_label(state: JitState) -> &'static str {
    match state {
        JitState::Configured => "configured",
        JitState::NotConfigured => "not configured",
        JitState::Unsupported => "unsupported",
    }
}

fn describe_scope(subscriptions: &[Subscription], resource_group: Option<&str>) -> String {
    let subscriptions = match subscriptions {
        [only] => only
            .display_name
            .clone()
            .or_else(|| only.subscription_id.clone())
            .unwrap_or_else(|| "1 subscription".to_owned()),
        many => format!("{} subscriptions", many.len()),
    };
    match resource_group {
        Some(resource_group) => format!("resource group {resource_group} of {subscriptions}"),
        None => subscriptions,
    }
}

fn tab_table(
    tab: JitState,
    vms: &[&InventoryVm],
    names: &SubscriptionNames,
    now: Timestamp,
) -> Table {
    let mut headers = vec![
        "NAME",
        "RESOURCE GROUP",
        "SUBSCRIPTION",
        "REGION",
        "OS",
        "POWER",
    ];
    headers.extend_from_slice(match tab {
        JitState::Configured => &["PORTS", "MAX", "SOURCES", "VIA", "ACTIVE"][..],
        JitState::NotConfigured => &["PROTECTION"][..],
        JitState::Unsupported => &["REASON"][..],
    });
    let mut table = Table::new(headers);
    for vm in vms {
        let mut row = vec![
            vm.name.clone(),
            vm.resource_group.clone(),
            names.name(&vm.subscription_id).to_owned(),
            vm.location.clone(),
            or_dash(vm.os.as_deref()),
            or_dash(vm.power_state.as_deref()),
        ];
        match (tab, &vm.jit) {
            (JitState::Configured, Some(jit)) => {
                row.push(port_list(&jit.ports));
                row.push(per_port(&jit.ports, max_duration));
                row.push(per_port(&jit.ports, sources));
                row.push(via(jit));
                row.push(active_summary(&jit.active, now));
            }
            (JitState::Configured, None) => row.extend(["-"; 5].map(str::to_owned)),
            (JitState::NotConfigured, _) => row.push(protection(&vm.network)),
            (JitState::Unsupported, _) => row.push(
                vm.unsupported_reason
                    .map_or_else(|| "-".to_owned(), |reason| reason.describe().to_owned()),
            ),
        }
        table.push(row);
    }
    table
}

fn port_list(ports: &[JitNetworkAccessPortRule]) -> String {
    let list: Vec<String> = ports.iter().map(port_with_protocol).collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(", ")
    }
}

/// One value when every port agrees, else `port: value` for each.
fn per_port(
    ports: &[JitNetworkAccessPortRule],
    value: impl Fn(&JitNetworkAccessPortRule) -> String,
) -> String {
    let values: Vec<String> = ports.iter().map(&value).collect();
    match values.first() {
        None => "-".to_owned(),
        Some(first) if values.iter().all(|other| other == first) => first.clone(),
        Some(_) => ports
            .iter()
            .zip(&values)
            .map(|(port, value)| format!("{}: {value}", port.number))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn active_summary(active: &[ActivePort], now: Timestamp) -> String {
    if active.is_empty() {
        return "-".to_owned();
    }
    active
        .iter()
        .map(|port| {
            format!(
                "{} for {} ({} left)",
                port.number,
                port.source.as_deref().unwrap_or("?"),
                format_time_left(port.end_time_utc.duration_since(now))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What makes a not-configured VM protectable.
fn protection(network: &NetworkProtection) -> String {
    let mut parts = Vec::new();
    if !network.interface_security_groups.is_empty() {
        parts.push(format!(
            "NSG on NIC ({})",
            names_of(&network.interface_security_groups)
        ));
    }
    if !network.subnet_security_groups.is_empty() {
        parts.push(format!(
            "NSG on subnet ({})",
            names_of(&network.subnet_security_groups)
        ));
    }
    if let Some(firewall) = &network.firewall {
        parts.push(format!(
            "Azure Firewall ({})",
            inventory::name_of_id(firewall)
        ));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

// ---- JSON (docs/output-json.md) ----------------------------------------------------

#[derive(Debug, Serialize)]
struct ListDocument {
    as_of: String,
    subscriptions: Vec<SubscriptionView>,
    resource_group: Option<String>,
    state: Option<JitState>,
    counts: Counts,
    vms: Vec<VmView>,
}

#[derive(Debug, Serialize)]
struct SubscriptionView {
    id: String,
    name: Option<String>,
}

#[derive(Debug, Serialize)]
struct Counts {
    configured: usize,
    not_configured: usize,
    unsupported: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_that_disagree_are_listed_one_by_one() {
        let ports: Vec<JitNetworkAccessPortRule> = serde_json::from_value(serde_json::json!([
            {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
            {"number": 53, "protocol": "UDP", "allowedSourceAddressPrefixes": ["192.0.2.0/24"], "maxRequestAccessDuration": "PT1H"}
        ]))
        .expect("ports");
        assert_eq!(port_list(&ports), "22, 53/udp");
        assert_eq!(per_port(&ports, max_duration), "22: 3h, 53: 1h");
        assert_eq!(per_port(&ports, sources), "22: any, 53: 192.0.2.0/24");
        assert_eq!(per_port(&ports[..1], max_duration), "3h");
    }
}
