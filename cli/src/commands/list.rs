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
//! The JSON view types live here and are shared with `jit show`, so a VM has the same
//! fields in both documents.

use std::collections::HashMap;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use jit_agent::access::inventory::{self, InventoryVm, JitConfiguration, NetworkProtection};
use jit_agent::access::status::{ActivePort, JitState, UnsupportedReason};
use jit_agent::azure::models::{JitNetworkAccessPortRule, JitProtocol, Subscription};
use serde::Serialize;

use super::common;
use crate::args::{JitStateFilter, ListArgs};
use crate::error::ExitStatus;
use crate::printer::Printer;
use crate::settings::{GlobalSettings, format_duration};

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
    let connection = common::connect(settings, printer).await?;
    let resource_group = arguments.scope.resource_group.as_deref();
    let (subscriptions, scope) = common::scope(&connection, settings, resource_group).await?;
    let progress = printer.progress(format!(
        "Listing VMs in {}",
        describe_scope(&subscriptions, resource_group)
    ));
    let inventory = inventory::inventory(&connection.arm, &scope)
        .await
        .context("could not list the VMs")?;
    drop(progress);

    let names = SubscriptionNames::new(&subscriptions);
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
            describe_scope(&subscriptions, resource_group)
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

/// The portal's tab title.
pub(super) fn tab_title(state: JitState) -> &'static str {
    match state {
        JitState::Configured => "Configured",
        JitState::NotConfigured => "Not configured",
        JitState::Unsupported => "Unsupported",
    }
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

/// Subscription id → display name.
pub(super) struct SubscriptionNames {
    names: HashMap<String, String>,
}

impl SubscriptionNames {
    pub(super) fn new(subscriptions: &[Subscription]) -> Self {
        Self {
            names: subscriptions
                .iter()
                .filter_map(|subscription| {
                    Some((
                        subscription.subscription_id.as_ref()?.to_ascii_lowercase(),
                        subscription.display_name.clone()?,
                    ))
                })
                .collect(),
        }
    }

    /// The display name, if the subscription list had one.
    pub(super) fn get(&self, subscription_id: &str) -> Option<&str> {
        self.names
            .get(&subscription_id.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The display name, else the id.
    pub(super) fn name<'a>(&'a self, subscription_id: &'a str) -> &'a str {
        self.get(subscription_id).unwrap_or(subscription_id)
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

fn or_dash(text: Option<&str>) -> String {
    text.filter(|text| !text.is_empty())
        .unwrap_or("-")
        .to_owned()
}

fn port_list(ports: &[JitNetworkAccessPortRule]) -> String {
    let list: Vec<String> = ports.iter().map(port_with_protocol).collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(", ")
    }
}

/// `22`, or `53/udp` when the policy restricts the protocol.
pub(super) fn port_with_protocol(port: &JitNetworkAccessPortRule) -> String {
    match &port.protocol {
        JitProtocol::All => port.number.to_string(),
        other => format!("{}/{}", port.number, other.as_str().to_ascii_lowercase()),
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

/// `3h`, or the ISO text when it cannot be read.
pub(super) fn max_duration(port: &JitNetworkAccessPortRule) -> String {
    port.max_request_access_duration.to_duration().map_or_else(
        |_| port.max_request_access_duration.as_str().to_owned(),
        format_duration,
    )
}

/// `any`, or the allowed prefixes.
pub(super) fn sources(port: &JitNetworkAccessPortRule) -> String {
    let sources = port.allowed_sources();
    if sources.is_empty() || sources.contains(&"*") {
        "any".to_owned()
    } else {
        sources.join(", ")
    }
}

/// Where JIT acts: `NSG`, `firewall` or both.
pub(super) fn via(jit: &JitConfiguration) -> String {
    match (
        jit.enforcement.network_security_group,
        jit.enforcement.firewall,
    ) {
        (true, true) => "NSG + firewall",
        (true, false) => "NSG",
        (false, true) => "firewall",
        (false, false) => "-",
    }
    .to_owned()
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

pub(super) fn names_of(ids: &[String]) -> String {
    ids.iter()
        .map(|id| inventory::name_of_id(id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Time left, to the minute (rounded down): `1h29m`, `45m`, `<1m`.
pub(super) fn format_time_left(left: SignedDuration) -> String {
    let minutes = left.as_secs().max(0) / 60;
    match (minutes / 60, minutes % 60) {
        (0, 0) => "<1m".to_owned(),
        (0, minutes) => format!("{minutes}m"),
        (hours, 0) => format!("{hours}h"),
        (hours, minutes) => format!("{hours}h{minutes}m"),
    }
}

/// A timestamp as RFC 3339 UTC, to the second: `2026-05-01T10:00:00Z`.
pub(super) fn format_time(timestamp: Timestamp) -> String {
    format!("{timestamp:.0}")
}

/// Aligned columns: every column but the last padded to its widest cell, two spaces
/// apart.
pub(super) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(headers: Vec<&'static str>) -> Self {
        Self {
            headers,
            rows: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub(super) fn render(&self) -> String {
        let header_row: Vec<String> = self.headers.iter().map(|&text| text.to_owned()).collect();
        let all: Vec<&Vec<String>> = std::iter::once(&header_row).chain(&self.rows).collect();
        let columns = all.iter().map(|row| row.len()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                all.iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        all.iter()
            .map(|row| {
                let mut line = String::new();
                for (column, cell) in row.iter().enumerate() {
                    if column > 0 {
                        line.push_str("  ");
                    }
                    line.push_str(cell);
                    let width = widths.get(column).copied().unwrap_or(0);
                    if column + 1 < row.len() {
                        line.extend(std::iter::repeat_n(
                            ' ',
                            width.saturating_sub(cell.chars().count()),
                        ));
                    }
                }
                line.trim_end().to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
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

/// A VM, as `jit list` and `jit show` print it in JSON.
#[derive(Debug, Serialize)]
pub(super) struct VmView {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) resource_group: String,
    pub(super) subscription_id: String,
    pub(super) subscription_name: Option<String>,
    pub(super) location: String,
    pub(super) os: Option<String>,
    pub(super) power_state: Option<String>,
    pub(super) classic: bool,
    pub(super) state: JitState,
    pub(super) unsupported_reason: Option<ReasonView>,
    pub(super) network: NetworkView,
    pub(super) jit: Option<JitView>,
}

impl VmView {
    pub(super) fn new(vm: &InventoryVm, names: &SubscriptionNames, now: Timestamp) -> Self {
        Self {
            id: vm.id.clone(),
            name: vm.name.clone(),
            resource_group: vm.resource_group.clone(),
            subscription_id: vm.subscription_id.clone(),
            subscription_name: names.get(&vm.subscription_id).map(str::to_owned),
            location: vm.location.clone(),
            os: vm.os.clone(),
            power_state: vm.power_state.clone(),
            classic: vm.classic,
            state: vm.state,
            unsupported_reason: vm.unsupported_reason.map(ReasonView::new),
            network: NetworkView::new(&vm.network),
            jit: vm.jit.as_ref().map(|jit| JitView::new(jit, now)),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct ReasonView {
    code: UnsupportedReason,
    description: &'static str,
}

impl ReasonView {
    pub(super) fn new(reason: UnsupportedReason) -> Self {
        Self {
            code: reason,
            description: reason.describe(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct NetworkView {
    nic_network_security_groups: Vec<String>,
    subnet_network_security_groups: Vec<String>,
    firewall: Option<String>,
}

impl NetworkView {
    pub(super) fn new(network: &NetworkProtection) -> Self {
        Self {
            nic_network_security_groups: network.interface_security_groups.clone(),
            subnet_network_security_groups: network.subnet_security_groups.clone(),
            firewall: network.firewall.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct JitView {
    policy_id: String,
    policy_name: String,
    policy_location: Option<String>,
    enforced_by: Vec<&'static str>,
    firewall_public_ip: Option<String>,
    ports: Vec<PortView>,
    active_requests: Vec<ActiveRequestView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) recent_requests: Option<Vec<RequestView>>,
}

impl JitView {
    pub(super) fn new(jit: &JitConfiguration, now: Timestamp) -> Self {
        let mut enforced_by = Vec::new();
        if jit.enforcement.network_security_group {
            enforced_by.push("network_security_group");
        }
        if jit.enforcement.firewall {
            enforced_by.push("firewall");
        }
        Self {
            policy_id: jit.policy_id.clone(),
            policy_name: jit.policy_name.clone(),
            policy_location: jit.policy_location.clone(),
            enforced_by,
            firewall_public_ip: jit.firewall_public_ip.clone(),
            ports: jit
                .ports
                .iter()
                .map(|port| PortView {
                    number: port.number,
                    protocol: port.protocol.as_str().to_owned(),
                    max_request_access_duration: port.max_request_access_duration.to_string(),
                    allowed_source_address_prefixes: port
                        .allowed_sources()
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                })
                .collect(),
            active_requests: jit
                .active
                .iter()
                .map(|port| ActiveRequestView {
                    port: port.number,
                    status: port.status.clone(),
                    source: port.source.clone(),
                    mapped_port: port.mapped_port,
                    requestor: port.requestor.clone(),
                    justification: port.justification.clone(),
                    start_time: format_time(port.start_time_utc),
                    end_time: format_time(port.end_time_utc),
                    seconds_left: port.end_time_utc.duration_since(now).as_secs().max(0),
                })
                .collect(),
            recent_requests: None,
        }
    }
}

#[derive(Debug, Serialize)]
struct PortView {
    number: u16,
    protocol: String,
    max_request_access_duration: String,
    allowed_source_address_prefixes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ActiveRequestView {
    port: u16,
    status: String,
    source: Option<String>,
    mapped_port: Option<u16>,
    requestor: Option<String>,
    justification: Option<String>,
    start_time: String,
    end_time: String,
    seconds_left: i64,
}

/// A request in a policy's history (`jit show`).
#[derive(Debug, Serialize)]
pub(super) struct RequestView {
    pub(super) requestor: Option<String>,
    pub(super) justification: Option<String>,
    pub(super) start_time: String,
    pub(super) ports: Vec<RequestPortView>,
}

#[derive(Debug, Serialize)]
pub(super) struct RequestPortView {
    pub(super) number: u16,
    pub(super) status: String,
    pub(super) status_reason: String,
    pub(super) source: Option<String>,
    pub(super) end_time: String,
    pub(super) mapped_port: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_the_last_is_not_padded() {
        let mut table = Table::new(vec!["NAME", "REASON"]);
        table.push(vec!["a".to_owned(), "long reason".to_owned()]);
        table.push(vec!["longer-name".to_owned(), "x".to_owned()]);
        assert_eq!(
            table.render(),
            "NAME         REASON\na            long reason\nlonger-name  x"
        );
    }

    #[test]
    fn time_left_is_rounded_down_to_the_minute() {
        assert_eq!(format_time_left(SignedDuration::from_secs(5399)), "1h29m");
        assert_eq!(format_time_left(SignedDuration::from_secs(7200)), "2h");
        assert_eq!(format_time_left(SignedDuration::from_secs(59)), "<1m");
        assert_eq!(format_time_left(SignedDuration::from_secs(-5)), "<1m");
        assert_eq!(format_time_left(SignedDuration::from_secs(600)), "10m");
    }

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
