//! Access windows: the ports of one VM opened for one source until a time.
//!
//! A window is what every front end shows and what the agent tracks, so it is built in
//! one place: [`AccessWindow::from_request`] makes one from the request Azure answered or
//! recorded (ports, source, start, end, requestor), keeping the VM's names and addresses
//! from what the caller already knew. The agent's protocol carries the same type.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::azure::models::{JitNetworkAccessRequest, JitNetworkAccessRequestPort, JitPortStatus};
use crate::azure::resource_id::same_resource_id;

/// An access window: ports of one VM opened for one source until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessWindow {
    /// The VM's ARM resource id.
    pub vm_id: String,
    /// The VM's name.
    pub vm_name: String,
    /// The VM's resource group.
    pub resource_group: String,
    /// The VM's subscription id.
    pub subscription_id: String,
    /// The JIT policy's ARM resource id (what `initiate` was posted to).
    pub policy_id: String,
    /// The ports opened.
    pub ports: Vec<WindowPort>,
    /// The source the ports are open for (IP, CIDR or `*`).
    pub source_address_prefix: String,
    /// When the request was made, on Azure's clock (`startTimeUtc`).
    pub requested_at: Timestamp,
    /// When the window closes, on Azure's clock (`endTimeUtc`).
    pub ends_at: Timestamp,
    /// Azure's clock minus the local clock when the window was requested, from ARM's
    /// `Date` header.
    pub server_clock_offset_at_registration: SignedDuration,
    /// The justification sent with the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Where to connect (a public IP or FQDN, or an Azure Firewall's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_address: Option<String>,
    /// Who Azure recorded as making the request (`requestor`: a UPN; empty for some
    /// service principals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requestor: Option<String>,
}

impl AccessWindow {
    /// Whether `reference` names this window's VM: its id, `resource-group/name`, or its
    /// name (case-insensitive, as Azure names are).
    pub fn matches(&self, reference: &str) -> bool {
        self.vm_id.eq_ignore_ascii_case(reference)
            || self.vm_name.eq_ignore_ascii_case(reference)
            || reference.split_once('/').is_some_and(|(group, name)| {
                group.eq_ignore_ascii_case(&self.resource_group)
                    && name.eq_ignore_ascii_case(&self.vm_name)
            })
    }

    /// Whether both windows are for the same VM.
    pub fn same_vm(&self, other: &AccessWindow) -> bool {
        self.vm_id.eq_ignore_ascii_case(&other.vm_id)
    }

    /// The port numbers, in order.
    pub fn port_numbers(&self) -> Vec<u16> {
        self.ports.iter().map(|port| port.number).collect()
    }

    /// `resource-group/name`: how to name the VM unambiguously in a command.
    pub fn vm_reference(&self) -> String {
        format!("{}/{}", self.resource_group, self.vm_name)
    }

    /// The window a JIT request opened for the VM of `template` (whose names, policy,
    /// addresses and justification are kept): its ports, source, start, requestor, and
    /// the earliest end among the ports still open (or among all ports if none is).
    /// `None` when the request does not mention the VM.
    pub fn from_request(
        template: &AccessWindow,
        request: &JitNetworkAccessRequest,
        server_clock_offset: SignedDuration,
    ) -> Option<AccessWindow> {
        let ports: Vec<&JitNetworkAccessRequestPort> =
            request_ports(request, &template.vm_id).collect();
        if ports.is_empty() {
            return None;
        }
        let open_ends = ports
            .iter()
            .filter(|port| is_open(&port.status))
            .map(|port| port.end_time_utc)
            .min();
        let ends_at = open_ends.or_else(|| ports.iter().map(|port| port.end_time_utc).min())?;
        let source = ports
            .iter()
            .find_map(|port| port_source(port))
            .unwrap_or_else(|| template.source_address_prefix.clone());
        Some(AccessWindow {
            ports: ports
                .iter()
                .map(|port| WindowPort {
                    number: port.number,
                    mapped_port: port.mapped_port,
                    status: PortStatus::from(port.status.as_str().to_owned()),
                })
                .collect(),
            source_address_prefix: source,
            requested_at: request.start_time_utc,
            ends_at,
            server_clock_offset_at_registration: server_clock_offset,
            justification: request
                .justification
                .clone()
                .or_else(|| template.justification.clone()),
            requestor: request
                .requestor
                .clone()
                .filter(|requestor| !requestor.is_empty())
                .or_else(|| template.requestor.clone()),
            ..template.clone()
        })
    }
}

/// The source a request port is open for, as one string (several ranges joined by `,`).
pub fn port_source(port: &JitNetworkAccessRequestPort) -> Option<String> {
    port.allowed_source_address_prefix.clone().or_else(|| {
        port.allowed_source_address_prefixes
            .as_ref()
            .map(|prefixes| prefixes.join(","))
    })
}

/// The ports a request holds for one VM.
pub fn request_ports<'a>(
    request: &'a JitNetworkAccessRequest,
    vm_id: &'a str,
) -> impl Iterator<Item = &'a JitNetworkAccessRequestPort> + 'a {
    request
        .virtual_machines
        .iter()
        .filter(move |vm| same_resource_id(&vm.id, vm_id))
        .flat_map(|vm| vm.ports.iter())
}

/// Whether a request port holds (or is about to hold) the port open.
pub fn is_open(status: &JitPortStatus) -> bool {
    matches!(status, JitPortStatus::Initiated | JitPortStatus::Initiating)
}

/// How long an extended window lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExtendLength {
    /// The policy's maximum for the window's ports.
    PolicyMaximum,
    /// This long from now.
    Duration {
        /// The length of the new window.
        duration: SignedDuration,
    },
    /// Until this time on Azure's clock.
    Until {
        /// The end of the new window.
        until: Timestamp,
    },
}

/// One port of a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPort {
    /// The VM's port.
    pub number: u16,
    /// The Azure Firewall's DNAT port that reaches it, when the VM is behind one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_port: Option<u16>,
    /// The request port's status as Azure reports it.
    pub status: PortStatus,
}

/// A JIT request port's status. Azure models it as an open string, so unknown values
/// are kept rather than rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum PortStatus {
    /// The NSG rules are being written.
    Initiating,
    /// The port is open.
    Initiated,
    /// The port is closed (expired, superseded or revoked).
    Revoked,
    /// A status this version does not know.
    Other(String),
}

impl From<String> for PortStatus {
    fn from(value: String) -> Self {
        match value.to_ascii_lowercase().as_str() {
            "initiating" => PortStatus::Initiating,
            "initiated" => PortStatus::Initiated,
            "revoked" => PortStatus::Revoked,
            _ => PortStatus::Other(value),
        }
    }
}

impl From<PortStatus> for String {
    fn from(value: PortStatus) -> Self {
        value.to_string()
    }
}

impl fmt::Display for PortStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            PortStatus::Initiating => "Initiating",
            PortStatus::Initiated => "Initiated",
            PortStatus::Revoked => "Revoked",
            PortStatus::Other(other) => other,
        })
    }
}
