//! The JSON views and text helpers `jit list` and `jit show` share, so a VM has the same
//! fields in both documents (schema in `docs/output-json.md`; fields are only added).

use std::collections::HashMap;

use jiff::Timestamp;
use jit_agent::access::inventory::{self, InventoryVm, JitConfiguration, NetworkProtection};
use jit_agent::access::status::{JitState, UnsupportedReason};
use jit_agent::azure::models::{JitNetworkAccessPortRule, JitProtocol, Subscription};
use serde::Serialize;

use super::format::{format_duration, format_time};

/// The portal's tab title.
pub fn tab_title(state: JitState) -> &'static str {
    match state {
        JitState::Configured => "Configured",
        JitState::NotConfigured => "Not configured",
        JitState::Unsupported => "Unsupported",
    }
}

/// Subscription id → display name.
#[derive(Debug)]
pub struct SubscriptionNames {
    names: HashMap<String, String>,
}

impl SubscriptionNames {
    pub fn new(subscriptions: &[Subscription]) -> Self {
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
    pub fn get(&self, subscription_id: &str) -> Option<&str> {
        self.names
            .get(&subscription_id.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The display name, else the id.
    pub fn name<'a>(&'a self, subscription_id: &'a str) -> &'a str {
        self.get(subscription_id).unwrap_or(subscription_id)
    }
}

pub fn or_dash(text: Option<&str>) -> String {
    text.filter(|text| !text.is_empty())
        .unwrap_or("-")
        .to_owned()
}

/// `22`, or `53/udp` when the policy restricts the protocol.
pub fn port_with_protocol(port: &JitNetworkAccessPortRule) -> String {
    match &port.protocol {
        JitProtocol::All => port.number.to_string(),
        other => format!("{}/{}", port.number, other.as_str().to_ascii_lowercase()),
    }
}

/// `3h`, or the ISO text when it cannot be read.
pub fn max_duration(port: &JitNetworkAccessPortRule) -> String {
    port.max_request_access_duration.to_duration().map_or_else(
        |_| port.max_request_access_duration.as_str().to_owned(),
        format_duration,
    )
}

/// `any`, or the allowed prefixes.
pub fn sources(port: &JitNetworkAccessPortRule) -> String {
    let sources = port.allowed_sources();
    if sources.is_empty() || sources.contains(&"*") {
        "any".to_owned()
    } else {
        sources.join(", ")
    }
}

/// Where JIT acts: `NSG`, `firewall` or both.
pub fn via(jit: &JitConfiguration) -> String {
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

pub fn names_of(ids: &[String]) -> String {
    ids.iter()
        .map(|id| inventory::name_of_id(id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A VM, as `jit list` and `jit show` print it in JSON.
#[derive(Debug, Serialize)]
pub struct VmView {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub subscription_id: String,
    pub subscription_name: Option<String>,
    pub location: String,
    pub os: Option<String>,
    pub power_state: Option<String>,
    pub classic: bool,
    pub state: JitState,
    pub unsupported_reason: Option<ReasonView>,
    pub network: NetworkView,
    pub jit: Option<JitView>,
}

impl VmView {
    pub fn new(vm: &InventoryVm, names: &SubscriptionNames, now: Timestamp) -> Self {
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
pub struct ReasonView {
    code: UnsupportedReason,
    description: &'static str,
}

impl ReasonView {
    pub fn new(reason: UnsupportedReason) -> Self {
        Self {
            code: reason,
            description: reason.describe(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct NetworkView {
    nic_network_security_groups: Vec<String>,
    subnet_network_security_groups: Vec<String>,
    firewall: Option<String>,
}

impl NetworkView {
    pub fn new(network: &NetworkProtection) -> Self {
        Self {
            nic_network_security_groups: network.interface_security_groups.clone(),
            subnet_network_security_groups: network.subnet_security_groups.clone(),
            firewall: network.firewall.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct JitView {
    policy_id: String,
    policy_name: String,
    policy_location: Option<String>,
    enforced_by: Vec<&'static str>,
    firewall_public_ip: Option<String>,
    ports: Vec<PortView>,
    active_requests: Vec<ActiveRequestView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_requests: Option<Vec<RequestView>>,
}

impl JitView {
    pub fn new(jit: &JitConfiguration, now: Timestamp) -> Self {
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
pub struct RequestView {
    pub requestor: Option<String>,
    pub justification: Option<String>,
    pub start_time: String,
    pub ports: Vec<RequestPortView>,
}

#[derive(Debug, Serialize)]
pub struct RequestPortView {
    pub number: u16,
    pub status: String,
    pub status_reason: String,
    pub source: Option<String>,
    pub end_time: String,
    pub mapped_port: Option<u16>,
}
