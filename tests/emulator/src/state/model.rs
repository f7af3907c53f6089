//! The emulated resources as the state holds them.
//!
//! These are the emulator's own records, not ARM's JSON: they keep what behaviour needs
//! (addresses, references, rules, request history) in typed form, and [`super::render`]
//! turns them into the JSON the specs describe. Every map is keyed by the lower-cased
//! ARM id ([`super::ids::key`]), so lookups are case-insensitive as in ARM, and ordered,
//! so lists and pages are stable.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use jiff::{SignedDuration, Timestamp};

use crate::world::{
    OsType, PortServiceKind, PricingTier, RuleAccess, RuleDirection, SubscriptionState,
};

/// Everything the emulated Azure holds.
#[derive(Debug)]
pub(crate) struct Resources {
    pub tenant_id: String,
    pub security_home_region: String,
    pub subscriptions: Vec<Subscription>,
    pub resource_groups: BTreeMap<String, ResourceGroup>,
    pub virtual_machines: BTreeMap<String, VirtualMachine>,
    pub classic_virtual_machines: BTreeMap<String, ClassicVirtualMachine>,
    pub network_interfaces: BTreeMap<String, NetworkInterface>,
    pub public_ip_addresses: BTreeMap<String, PublicIpAddress>,
    pub virtual_networks: BTreeMap<String, VirtualNetwork>,
    pub network_security_groups: BTreeMap<String, NetworkSecurityGroup>,
    pub azure_firewalls: BTreeMap<String, AzureFirewall>,
    pub jit_policies: BTreeMap<String, JitPolicy>,
    pub operations: BTreeMap<String, VmOperation>,
    /// Network's asynchronous operations (security rule writes), by lower-cased id.
    pub network_operations: BTreeMap<String, NetworkOperation>,
    /// When requested ports opened (their allow rules were written), oldest first, the
    /// newest [`PORT_OPENINGS_KEPT`]: what a client's "the port answers" is measured
    /// against.
    pub port_openings: Vec<PortOpening>,
}

/// How many [`PortOpening`]s are kept.
pub(crate) const PORT_OPENINGS_KEPT: usize = 1000;

/// A requested port that opened: from `at` on (virtual clock), the gate admits
/// connections from the request's source.
#[derive(Debug, Clone)]
pub(crate) struct PortOpening {
    pub vm_id: String,
    pub port: u16,
    pub at: Timestamp,
}

impl Resources {
    /// A subscription by id (compared case-insensitively).
    pub(crate) fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|subscription| subscription.id.eq_ignore_ascii_case(id))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: String,
    pub display_name: String,
    pub state: SubscriptionState,
    /// Every Defender plan, in [`crate::world::DEFENDER_PLANS`] order.
    pub pricings: Vec<Pricing>,
}

/// A Defender plan of a subscription (`Microsoft.Security/pricings`).
#[derive(Debug, Clone)]
pub(crate) struct Pricing {
    pub name: &'static str,
    pub tier: PricingTier,
    pub sub_plan: Option<String>,
    /// When it was last set to Standard (`enablementTime`).
    pub enabled_since: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub(crate) struct ResourceGroup {
    pub subscription_id: String,
    pub name: String,
    pub location: String,
}

/// Where a resource lives: its id as the world spells it, and its parts.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Power {
    Running,
    /// Started by a `start` operation that has not completed yet.
    Starting,
    Deallocated,
}

impl Power {
    pub fn code(self) -> &'static str {
        match self {
            Self::Running => "PowerState/running",
            Self::Starting => "PowerState/starting",
            Self::Deallocated => "PowerState/deallocated",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::Running => "VM running",
            Self::Starting => "VM starting",
            Self::Deallocated => "VM deallocated",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct VirtualMachine {
    pub placement: Placement,
    pub os: OsType,
    pub size: String,
    pub admin_username: String,
    pub computer_name: String,
    /// `properties.vmId`.
    pub vm_uuid: String,
    pub power: Power,
    pub created: Timestamp,
    /// Keys of the NICs; the first is primary.
    pub network_interfaces: Vec<String>,
    pub ports: Vec<BoundPort>,
    /// The SSH host key in OpenSSH `authorized_keys` form, when the VM serves SSH.
    pub host_public_key: Option<String>,
}

/// A VM port and the loopback port it is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoundPort {
    pub service: PortServiceKind,
    pub logical: u16,
    pub bound: u16,
}

#[derive(Debug, Clone)]
pub(crate) struct ClassicVirtualMachine {
    pub placement: Placement,
    pub os: OsType,
}

#[derive(Debug, Clone)]
pub(crate) struct NetworkInterface {
    pub placement: Placement,
    pub private_ip: Ipv4Addr,
    /// Key of the subnet (`…/virtualnetworks/{vnet}/subnets/{subnet}`).
    pub subnet: String,
    pub public_ip: Option<String>,
    pub network_security_group: Option<String>,
    pub virtual_machine: Option<String>,
    pub mac_address: String,
}

#[derive(Debug, Clone)]
pub(crate) struct PublicIpAddress {
    pub placement: Placement,
    pub address: Option<IpAddr>,
    /// `Static` when allocated from the start, `Dynamic` otherwise (allocated when its
    /// VM starts).
    pub dynamic: bool,
    pub domain_name_label: Option<String>,
    /// What it is attached to: an ipConfiguration id.
    pub ip_configuration: Option<String>,
}

impl PublicIpAddress {
    pub fn fqdn(&self) -> Option<String> {
        self.domain_name_label
            .as_ref()
            .map(|label| format!("{label}.{}.cloudapp.azure.com", self.placement.location))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct VirtualNetwork {
    pub placement: Placement,
    pub address_space: Vec<String>,
    pub subnets: Vec<Subnet>,
}

#[derive(Debug, Clone)]
pub(crate) struct Subnet {
    pub id: String,
    pub name: String,
    pub address_prefix: String,
    pub network_security_group: Option<String>,
    pub firewall: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct NetworkSecurityGroup {
    pub placement: Placement,
    pub rules: Vec<SecurityRule>,
}

/// One security rule, with ARM's fields. Single and plural forms are kept apart because
/// ARM returns them as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SecurityRule {
    pub name: String,
    pub description: Option<String>,
    pub protocol: String,
    pub source_port_range: Option<String>,
    pub source_port_ranges: Vec<String>,
    pub source_address_prefix: Option<String>,
    pub source_address_prefixes: Vec<String>,
    pub destination_address_prefix: Option<String>,
    pub destination_address_prefixes: Vec<String>,
    pub destination_port_range: Option<String>,
    pub destination_port_ranges: Vec<String>,
    pub access: RuleAccess,
    pub priority: u32,
    pub direction: RuleDirection,
    pub etag: String,
}

impl SecurityRule {
    pub fn source_prefixes(&self) -> impl Iterator<Item = &String> {
        self.source_address_prefix
            .iter()
            .chain(&self.source_address_prefixes)
    }

    pub fn destination_prefixes(&self) -> impl Iterator<Item = &String> {
        self.destination_address_prefix
            .iter()
            .chain(&self.destination_address_prefixes)
    }

    pub fn destination_ports(&self) -> impl Iterator<Item = &String> {
        self.destination_port_range
            .iter()
            .chain(&self.destination_port_ranges)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AzureFirewall {
    pub placement: Placement,
    pub public_ip: String,
    pub private_ip: Ipv4Addr,
    pub subnet: String,
    /// DNAT rules JIT writes while a request is open.
    pub jit_rules: Vec<FirewallRule>,
}

#[derive(Debug, Clone)]
pub(crate) struct FirewallRule {
    pub name: String,
    pub virtual_machine: String,
    pub source_prefixes: Vec<String>,
    /// The DNAT port on the firewall's public address (`mappedPort`).
    pub mapped_port: u16,
    pub translated_address: Ipv4Addr,
    pub translated_port: u16,
    pub protocol: String,
}

/// `allowedSourceAddressPrefix` or `allowedSourceAddressPrefixes`, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourcePrefixes {
    Single(String),
    Many(Vec<String>),
}

impl SourcePrefixes {
    pub fn all(&self) -> &[String] {
        match self {
            Self::Single(prefix) => std::slice::from_ref(prefix),
            Self::Many(prefixes) => prefixes,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct JitPolicy {
    pub placement: Placement,
    pub kind: Option<String>,
    pub virtual_machines: Vec<PolicyVirtualMachine>,
    pub requests: Vec<JitRequest>,
    /// Per VM key: the rule number and the deny rules written for it.
    pub vm_rules: BTreeMap<String, VmRules>,
}

#[derive(Debug, Clone)]
pub(crate) struct PolicyVirtualMachine {
    /// The VM id as the client wrote it.
    pub id: String,
    pub ports: Vec<PolicyPort>,
    pub public_ip_address: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct PolicyPort {
    pub number: u16,
    pub protocol: String,
    pub allowed_sources: SourcePrefixes,
    /// As written (`PT3H`), returned verbatim.
    pub max_request_access_duration: String,
    pub max_duration: SignedDuration,
}

/// The JIT rules of one VM of one policy.
#[derive(Debug, Clone)]
pub(crate) struct VmRules {
    /// The `<int>` in `SecurityCenter-JITRule_<int>_<GUID>`, shared with allow rules.
    pub number: i32,
    pub deny_rules: Vec<RuleLocation>,
}

/// Where a rule JIT wrote lives: an NSG (or firewall) key and the rule name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleLocation {
    pub container: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct JitRequest {
    pub virtual_machines: Vec<RequestVirtualMachine>,
    pub start_time: Timestamp,
    pub requestor: String,
    pub justification: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct RequestVirtualMachine {
    pub id: String,
    pub ports: Vec<RequestPort>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortStatus {
    Initiating,
    Initiated,
    Revoked,
}

impl PortStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiating => "Initiating",
            Self::Initiated => "Initiated",
            Self::Revoked => "Revoked",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusReason {
    UserRequested,
    NewerRequestInitiated,
    Expired,
}

impl StatusReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRequested => "UserRequested",
            Self::NewerRequestInitiated => "NewerRequestInitiated",
            Self::Expired => "Expired",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RequestPort {
    pub number: u16,
    /// What the client asked for; when it sent no prefix, the caller's address (shown
    /// as `allowedSourceAddressPrefix`).
    pub sources: SourcePrefixes,
    pub end_time: Timestamp,
    pub status: PortStatus,
    pub status_reason: StatusReason,
    pub mapped_port: Option<u16>,
    /// When the rules are applied and the status becomes `Initiated`.
    pub activates_at: Timestamp,
    /// Allow rules (NSGs) and DNAT rules (firewalls) written for this port.
    pub rules: Vec<RuleLocation>,
}

/// A long-running VM operation (`start`).
#[derive(Debug, Clone)]
pub(crate) struct VmOperation {
    pub name: String,
    pub virtual_machine: String,
    pub start_time: Timestamp,
    pub completes_at: Timestamp,
    /// Whether completion has been applied to the VM.
    pub applied: bool,
}

/// A `Microsoft.Network` long-running operation (a security rule PUT or DELETE). The
/// emulator applies the change at once, so every operation has succeeded; it is kept so
/// that the `Azure-AsyncOperation` and `Location` URLs it handed out answer.
#[derive(Debug, Clone)]
pub(crate) struct NetworkOperation {
    pub id: String,
    pub subscription_id: String,
    pub location: String,
    pub started: Timestamp,
}
