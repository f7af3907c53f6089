//! The world file: what the emulated Azure holds when it starts.
//!
//! A world is a tenant with subscriptions, resource groups and the resources a JIT
//! client meets on its way to a VM (VMs, NICs, public IPs, virtual networks and subnets,
//! NSGs, Azure Firewalls, JIT policies), plus the principals that may get a token. It is
//! written by hand (TOML or JSON; `docs/world-file.md` describes every field), so it says
//! only what matters and the emulator derives the rest: ARM ids, `vmId` GUIDs, default
//! NSG rules, FQDNs, host keys and the loopback port each VM port is bound to.
//!
//! Resources refer to each other by name within their resource group (`"api-01-nsg"`,
//! a subnet as `"vnet-web/default"`), or by full ARM id across resource groups.
//! [`World::validate`] resolves every reference before anything starts, so a typo is a
//! [`WorldError`] naming the item instead of a half-working emulator.
//!
//! The built-in default world (`default-world.toml`, next to this file) is the one every
//! test and `jit demo` stand on; its names are fixed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The built-in default world, as a world file.
pub const DEFAULT_WORLD_TOML: &str = include_str!("default-world.toml");

/// Everything the emulator holds at start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// The Entra tenant every subscription belongs to.
    pub tenant_id: String,
    /// The Defender for Cloud home region (`Microsoft.Security/locations`), the same for
    /// every subscription. It differs from the VM regions on purpose: JIT policies live
    /// in the VM's region.
    #[serde(default = "default_security_home_region")]
    pub security_home_region: String,
    /// Page every list (`nextLink`, Resource Graph `$skipToken`) at this many items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<usize>,
    /// Faults injected from the start (the admin endpoint's fault format).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::faults::FaultSpec>,
    /// Who can get a token.
    #[serde(default)]
    pub principals: Vec<PrincipalSpec>,
    /// The subscriptions of the tenant.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSpec>,
}

fn default_security_home_region() -> String {
    "centralus".to_owned()
}

/// A principal the token endpoint knows.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    /// What kind of principal it is.
    pub kind: PrincipalKind,
    /// UPN for users, display name otherwise (JIT records it as `requestor`).
    pub name: String,
    /// Application id (service principals, managed identities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Service principal secret; `None` = generated at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The principal's object id.
    pub object_id: String,
    /// Allowed ARM actions, with `*` wildcards (`"*"`, `"*/read"`, `"Microsoft.Security/*"`).
    #[serde(default = "all_actions")]
    pub actions: Vec<String>,
    /// Actions taken out of `actions` again (a role's `notActions`), with `*` wildcards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_actions: Vec<String>,
}

impl std::fmt::Debug for PrincipalSpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PrincipalSpec")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("object_id", &self.object_id)
            .field("actions", &self.actions)
            .field("not_actions", &self.not_actions)
            .finish()
    }
}

fn all_actions() -> Vec<String> {
    vec!["*".to_owned()]
}

/// The kinds of principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// An application with a client secret.
    ServicePrincipal,
    /// A user (what the fake `az` signs in as).
    User,
    /// A managed identity (the managed-identity endpoint).
    ManagedIdentity,
}

/// A subscription and what it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// The subscription id (a GUID).
    pub id: String,
    /// `displayName`.
    pub display_name: String,
    /// `state`.
    #[serde(default)]
    pub state: SubscriptionState,
    /// The resource groups.
    #[serde(default)]
    pub resource_groups: Vec<ResourceGroupSpec>,
    /// Defender for Cloud plans (`Microsoft.Security/pricings`) that differ from the
    /// default: `VirtualMachines` Standard with sub-plan P2 (what JIT needs), every other
    /// plan Free.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pricings: Vec<PricingSpec>,
}

/// The Defender for Cloud plans the emulator knows, as `Microsoft.Security/pricings`
/// names them (the 2024-01-01 example's list, without the deprecated ones).
pub const DEFENDER_PLANS: &[&str] = &[
    "VirtualMachines",
    "SqlServers",
    "AppServices",
    "StorageAccounts",
    "SqlServerVirtualMachines",
    "KeyVaults",
    "Dns",
    "Arm",
    "OpenSourceRelationalDatabases",
    "Containers",
    "CloudPosture",
];

/// One Defender plan of a subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingSpec {
    /// The plan, one of [`DEFENDER_PLANS`] (`VirtualMachines` is Defender for Servers).
    pub name: String,
    /// `Free` or `Standard`.
    pub pricing_tier: PricingTier,
    /// The sub-plan of a Standard plan (`P1`, `P2` for `VirtualMachines`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_plan: Option<String>,
}

/// `pricingTier`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PricingTier {
    /// The plan is off.
    Free,
    /// The plan is on.
    Standard,
}

impl PricingTier {
    /// The name ARM uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "Free",
            Self::Standard => "Standard",
        }
    }
}

/// A subscription's `state`, as ARM spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionState {
    /// Usable.
    #[default]
    Enabled,
    /// Usable, with a warning.
    Warned,
    /// Payment overdue.
    PastDue,
    /// Read-only.
    Disabled,
    /// Deleted.
    Deleted,
}

impl SubscriptionState {
    /// The name ARM uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Warned => "Warned",
            Self::PastDue => "PastDue",
            Self::Disabled => "Disabled",
            Self::Deleted => "Deleted",
        }
    }
}

/// A resource group and its resources. Resources default to the group's location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceGroupSpec {
    /// The resource group name.
    pub name: String,
    /// Its region (`westeurope`).
    pub location: String,
    /// Virtual networks with their subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_networks: Vec<VirtualNetworkSpec>,
    /// Network security groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_security_groups: Vec<NetworkSecurityGroupSpec>,
    /// Public IP addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_ip_addresses: Vec<PublicIpAddressSpec>,
    /// Azure Firewalls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub azure_firewalls: Vec<AzureFirewallSpec>,
    /// Network interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterfaceSpec>,
    /// Virtual machines (`Microsoft.Compute`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_machines: Vec<VirtualMachineSpec>,
    /// Classic VMs (`Microsoft.ClassicCompute`): visible in Resource Graph only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classic_virtual_machines: Vec<ClassicVirtualMachineSpec>,
    /// JIT network access policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jit_policies: Vec<JitPolicySpec>,
}

/// A virtual network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualNetworkSpec {
    /// The name.
    pub name: String,
    /// The region; defaults to the resource group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `addressSpace.addressPrefixes` (CIDRs).
    pub address_space: Vec<String>,
    /// The subnets.
    #[serde(default)]
    pub subnets: Vec<SubnetSpec>,
}

/// A subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    /// The name.
    pub name: String,
    /// `addressPrefix` (a CIDR inside the network's address space).
    pub address_prefix: String,
    /// The NSG associated with the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_security_group: Option<String>,
    /// The Azure Firewall inbound traffic to this subnet goes through (its route table's
    /// next hop): VMs here are reached through the firewall's DNAT, not directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<String>,
}

/// A network security group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSecurityGroupSpec {
    /// The name.
    pub name: String,
    /// The region; defaults to the resource group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Rules present before any JIT policy (the six default rules are always added).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_rules: Vec<SecurityRuleSpec>,
}

/// A security rule, in ARM's terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityRuleSpec {
    /// The name.
    pub name: String,
    /// `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// 100 to 4096, unique per direction within the NSG.
    pub priority: u32,
    /// `Allow` or `Deny`.
    pub access: RuleAccess,
    /// `Inbound` (default) or `Outbound`.
    #[serde(default)]
    pub direction: RuleDirection,
    /// `Tcp`, `Udp`, `Icmp` or `*` (default).
    #[serde(default = "any")]
    pub protocol: String,
    /// `sourceAddressPrefix` (`*`, `Internet`, a CIDR or an IP); default `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address_prefix: Option<String>,
    /// `sourceAddressPrefixes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_address_prefixes: Vec<String>,
    /// `destinationAddressPrefix`; default `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_address_prefix: Option<String>,
    /// `destinationAddressPrefixes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_address_prefixes: Vec<String>,
    /// `destinationPortRange` (`"22"`, `"1000-2000"`, `"*"`). A single port equal to the
    /// logical number of a port of a VM behind this NSG is rewritten to its bound number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port_range: Option<String>,
    /// `destinationPortRanges`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_port_ranges: Vec<String>,
}

fn any() -> String {
    "*".to_owned()
}

/// `access` of a security rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleAccess {
    /// Let the traffic through.
    Allow,
    /// Drop it.
    Deny,
}

/// `direction` of a security rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleDirection {
    /// Towards the VM.
    #[default]
    Inbound,
    /// From the VM.
    Outbound,
}

/// A public IP address. When allocated, its address is always `127.0.0.1`: every
/// emulated VM port is a loopback listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicIpAddressSpec {
    /// The name.
    pub name: String,
    /// The region; defaults to the resource group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Whether an address is allocated (`false`: a Dynamic IP of a stopped VM, without
    /// `ipAddress`).
    #[serde(default = "yes")]
    pub allocated: bool,
    /// `dnsSettings.domainNameLabel`; the FQDN is `{label}.{location}.cloudapp.azure.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name_label: Option<String>,
}

fn yes() -> bool {
    true
}

/// An Azure Firewall (classic rules) that JIT opens with DNAT rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureFirewallSpec {
    /// The name.
    pub name: String,
    /// The region; defaults to the resource group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Its public IP address (reference).
    pub public_ip_address: String,
    /// Its private address in `AzureFirewallSubnet`.
    pub private_ip_address: Ipv4Addr,
    /// The subnet it sits in (`AzureFirewallSubnet`), as a reference.
    pub subnet: String,
}

/// A network interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterfaceSpec {
    /// The name.
    pub name: String,
    /// The region; defaults to the resource group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `privateIPAddress`, inside the subnet.
    pub private_ip_address: Ipv4Addr,
    /// The subnet (`"vnet/subnet"` or an id).
    pub subnet: String,
    /// The public IP address (reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<String>,
    /// The NSG on the NIC (reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_security_group: Option<String>,
}

/// A virtual machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualMachineSpec {
    /// The name.
    pub name: String,
    /// The region; defaults to the resource group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `Linux` or `Windows`.
    pub os: OsType,
    /// `running` (default) or `deallocated`.
    #[serde(default)]
    pub power_state: PowerState,
    /// `hardwareProfile.vmSize`.
    #[serde(default = "default_size")]
    pub size: String,
    /// `osProfile.adminUsername`: the user SSH accepts.
    #[serde(default = "default_admin")]
    pub admin_username: String,
    /// `osProfile.computerName`; defaults to the VM name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_name: Option<String>,
    /// NIC references; the first is primary.
    pub network_interfaces: Vec<String>,
    /// The management ports this VM answers on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<VmPortSpec>,
}

fn default_size() -> String {
    "Standard_B2s".to_owned()
}

fn default_admin() -> String {
    "azureuser".to_owned()
}

/// `storageProfile.osDisk.osType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OsType {
    /// Linux.
    Linux,
    /// Windows.
    Windows,
}

impl OsType {
    /// The name ARM uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linux => "Linux",
            Self::Windows => "Windows",
        }
    }
}

/// Power state at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    /// `PowerState/running`.
    #[default]
    Running,
    /// `PowerState/deallocated`.
    Deallocated,
}

/// One management port of a VM: a loopback listener at run time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmPortSpec {
    /// What answers there.
    pub service: PortServiceKind,
    /// The port number the VM "really" uses (22, 3389, 2222): how policies in the world
    /// file refer to it. At run time the bound number replaces it everywhere.
    pub number: u16,
    /// Bind exactly this loopback port instead of a free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<u16>,
}

/// What a VM port serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortServiceKind {
    /// SSH (russh).
    Ssh,
    /// RDP (X.224 Connection Confirm).
    Rdp,
    /// Accepts and stays silent (WinRM, anything not modelled).
    Silent,
}

impl PortServiceKind {
    /// The name used in world files and the state dump.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ssh => "ssh",
            Self::Rdp => "rdp",
            Self::Silent => "silent",
        }
    }
}

/// A classic (`Microsoft.ClassicCompute`) VM: JIT does not support these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassicVirtualMachineSpec {
    /// The name.
    pub name: String,
    /// The region; defaults to the resource group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `Linux` or `Windows`.
    pub os: OsType,
}

/// A JIT network access policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitPolicySpec {
    /// The policy name (the portal always uses `default`).
    #[serde(default = "default_policy_name")]
    pub name: String,
    /// `{ascLocation}`: in practice the VMs' region; defaults to the resource group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The VMs and their ports.
    pub virtual_machines: Vec<JitPolicyVmSpec>,
}

fn default_policy_name() -> String {
    "default".to_owned()
}

/// A VM in a JIT policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitPolicyVmSpec {
    /// The VM (reference).
    pub virtual_machine: String,
    /// The ports.
    pub ports: Vec<JitPolicyPortSpec>,
}

/// A port rule of a JIT policy. It names a VM port by `number` (the VM port's logical
/// number) or by `service`; a number matching no VM port is kept as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitPolicyPortSpec {
    /// The logical port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u16>,
    /// Or the VM port serving this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<PortServiceKind>,
    /// `TCP`, `UDP` or `*` (default).
    #[serde(default = "any")]
    pub protocol: String,
    /// `allowedSourceAddressPrefix` (default `*` when neither is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefix: Option<String>,
    /// `allowedSourceAddressPrefixes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefixes: Option<Vec<String>>,
    /// `maxRequestAccessDuration` (ISO-8601, PT5M to PT24H); default `PT3H`.
    #[serde(default = "default_max_duration")]
    pub max_request_access_duration: String,
}

fn default_max_duration() -> String {
    "PT3H".to_owned()
}

/// Why a world could not be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The file could not be read.
    #[error("cannot read world file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or JSON for a world.
    #[error("cannot parse world file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The world refers to something it does not define, or holds an impossible value.
    #[error("invalid world: {0}")]
    Invalid(String),
    /// A VM port could not be bound or served.
    #[error("cannot listen for {what}: {source}")]
    Listen {
        /// The VM port.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl World {
    /// The built-in default world (see `docs/world-file.md` for its contents).
    #[allow(
        clippy::expect_used,
        reason = "a compile-time constant checked by the `default_world_is_valid` test"
    )]
    pub fn default_world() -> World {
        Self::from_toml(DEFAULT_WORLD_TOML).expect("the built-in default world is valid")
    }

    /// Loads and validates a world from a `.json` file, or TOML for any other extension.
    pub fn load(path: &Path) -> Result<World, WorldError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorldError::Read {
            path: path.to_owned(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
        let parsed = if is_json {
            serde_json::from_str(&text).map_err(|error| error.to_string())
        } else {
            toml::from_str(&text).map_err(|error| error.to_string())
        };
        let world: World = parsed.map_err(|message| WorldError::Parse {
            path: path.to_owned(),
            message,
        })?;
        world.validate()?;
        Ok(world)
    }

    /// Parses and validates a world from TOML text.
    pub fn from_toml(text: &str) -> Result<World, WorldError> {
        let world: World =
            toml::from_str(text).map_err(|error| WorldError::Invalid(error.to_string()))?;
        world.validate()?;
        Ok(world)
    }

    /// Checks every id, reference and value; the error names the offending item.
    pub fn validate(&self) -> Result<(), WorldError> {
        Validator::default().world(self)
    }
}

/// Whether `text` is a GUID (`8-4-4-4-12` hex digits), as ARM requires of subscription ids.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, length)| {
            group.len() == length && group.chars().all(|c| c.is_ascii_hexdigit())
        })
}

/// Parses an ISO-8601 duration (`PT3H`, `PT0.5H`, `P1D`, days counted as 24 hours).
pub fn parse_iso_duration(text: &str) -> Option<jiff::SignedDuration> {
    if !text.starts_with(['P', 'p']) {
        return None;
    }
    let span: jiff::Span = text.parse().ok()?;
    span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()
}

/// The shortest and longest `maxRequestAccessDuration` JIT accepts.
pub const MIN_MAX_DURATION: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
/// See [`MIN_MAX_DURATION`].
pub const MAX_MAX_DURATION: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Whether `text` is `*`, an IPv4 address or an IPv4 CIDR: what JIT accepts as a source.
pub fn is_source_prefix(text: &str) -> bool {
    text == "*" || text.parse::<Ipv4Addr>().is_ok() || text.parse::<ipnet::Ipv4Net>().is_ok()
}

/// Resolves a reference in the world file (a name in the same resource group, or a full
/// ARM id in the same subscription) to the lower-case ARM id of a top-level resource of
/// `provider_type` (`microsoft.network/networksecuritygroups`).
pub(crate) fn reference_key(
    reference: &str,
    subscription_id: &str,
    resource_group: &str,
    provider_type: &str,
) -> Option<String> {
    let (group, name) = if reference.starts_with('/') {
        let parsed = crate::state::ids::ResourceId::parse(reference)?;
        if !parsed.subscription_id.eq_ignore_ascii_case(subscription_id)
            || !parsed.provider_type().eq_ignore_ascii_case(provider_type)
            || parsed.names.len() != 1
        {
            return None;
        }
        (parsed.resource_group, parsed.names[0].clone())
    } else if reference.is_empty() || reference.contains('/') {
        return None;
    } else {
        (resource_group.to_owned(), reference.to_owned())
    };
    Some(arm_key(subscription_id, &group, provider_type, &name))
}

/// Resolves a subnet reference (`"vnet/subnet"` in the same resource group, or a full
/// subnet id in the same subscription) to the lower-case subnet id.
pub(crate) fn subnet_reference_key(
    reference: &str,
    subscription_id: &str,
    resource_group: &str,
) -> Option<String> {
    let (group, network, subnet) = if reference.starts_with('/') {
        let parsed = crate::state::ids::ResourceId::parse(reference)?;
        if !parsed.subscription_id.eq_ignore_ascii_case(subscription_id)
            || !parsed.provider_type().eq_ignore_ascii_case(SUBNETS)
        {
            return None;
        }
        let [network, subnet] = parsed.names.as_slice() else {
            return None;
        };
        (
            parsed.resource_group.clone(),
            network.clone(),
            subnet.clone(),
        )
    } else {
        let (network, subnet) = reference.split_once('/')?;
        if network.is_empty() || subnet.is_empty() || subnet.contains('/') {
            return None;
        }
        (
            resource_group.to_owned(),
            network.to_owned(),
            subnet.to_owned(),
        )
    };
    Some(format!(
        "{}/subnets/{}",
        arm_key(subscription_id, &group, VIRTUAL_NETWORKS, &network),
        subnet.to_ascii_lowercase()
    ))
}

/// The lower-case ARM id of a top-level resource: how the emulator keys its state.
pub(crate) fn arm_key(
    subscription_id: &str,
    group: &str,
    provider_type: &str,
    name: &str,
) -> String {
    format!(
        "/subscriptions/{subscription_id}/resourcegroups/{group}/providers/{provider_type}/{name}"
    )
    .to_ascii_lowercase()
}

/// Collects the ids a world defines, then checks references against them.
#[derive(Default)]
struct Validator {
    defined: BTreeMap<&'static str, BTreeSet<String>>,
    pinned: BTreeSet<u16>,
    nic_owner: BTreeMap<String, String>,
}

pub(crate) const VIRTUAL_NETWORKS: &str = "microsoft.network/virtualnetworks";
pub(crate) const NSGS: &str = "microsoft.network/networksecuritygroups";
pub(crate) const PUBLIC_IPS: &str = "microsoft.network/publicipaddresses";
pub(crate) const FIREWALLS: &str = "microsoft.network/azurefirewalls";
pub(crate) const NICS: &str = "microsoft.network/networkinterfaces";
pub(crate) const VMS: &str = "microsoft.compute/virtualmachines";
pub(crate) const CLASSIC_VMS: &str = "microsoft.classiccompute/virtualmachines";
pub(crate) const SUBNETS: &str = "microsoft.network/virtualnetworks/subnets";

fn invalid(message: impl Into<String>) -> WorldError {
    WorldError::Invalid(message.into())
}

impl Validator {
    fn world(mut self, world: &World) -> Result<(), WorldError> {
        if !is_guid(&world.tenant_id) {
            return Err(invalid(format!(
                "tenant_id '{}' is not a GUID",
                world.tenant_id
            )));
        }
        if world.page_size == Some(0) {
            return Err(invalid("page_size must be at least 1"));
        }
        self.principals(&world.principals)?;
        let faults = crate::faults::Faults::new();
        for (index, fault) in world.faults.iter().enumerate() {
            faults
                .add(fault.clone())
                .map_err(|error| invalid(format!("fault {}: {error}", index + 1)))?;
        }
        if world.subscriptions.is_empty() {
            return Err(invalid("the world has no subscription"));
        }
        let mut subscription_ids = BTreeSet::new();
        for subscription in &world.subscriptions {
            if !is_guid(&subscription.id) {
                return Err(invalid(format!(
                    "subscription '{}' ({}): id is not a GUID",
                    subscription.display_name, subscription.id
                )));
            }
            if !subscription_ids.insert(subscription.id.to_ascii_lowercase()) {
                return Err(invalid(format!(
                    "subscription {} is defined twice",
                    subscription.id
                )));
            }
            let mut plans = BTreeSet::new();
            for pricing in &subscription.pricings {
                let Some(plan) = DEFENDER_PLANS
                    .iter()
                    .find(|plan| plan.eq_ignore_ascii_case(&pricing.name))
                else {
                    return Err(invalid(format!(
                        "subscription {}: pricing '{}' is not a Defender plan the emulator knows ({})",
                        subscription.id,
                        pricing.name,
                        DEFENDER_PLANS.join(", ")
                    )));
                };
                if !plans.insert(*plan) {
                    return Err(invalid(format!(
                        "subscription {}: pricing '{plan}' is given twice",
                        subscription.id
                    )));
                }
                if pricing.sub_plan.is_some() && pricing.pricing_tier == PricingTier::Free {
                    return Err(invalid(format!(
                        "subscription {}: pricing '{plan}' is Free, so it has no sub_plan",
                        subscription.id
                    )));
                }
            }
            let mut group_names = BTreeSet::new();
            for group in &subscription.resource_groups {
                if !is_resource_group_name(&group.name) {
                    return Err(invalid(format!(
                        "resource group '{}' in subscription {}: invalid name",
                        group.name, subscription.id
                    )));
                }
                if !group_names.insert(group.name.to_ascii_lowercase()) {
                    return Err(invalid(format!(
                        "resource group '{}' is defined twice in subscription {}",
                        group.name, subscription.id
                    )));
                }
                self.define_group(&subscription.id, group)?;
            }
        }
        for subscription in &world.subscriptions {
            for group in &subscription.resource_groups {
                self.check_group(&subscription.id, group)?;
            }
        }
        Ok(())
    }

    fn principals(&self, principals: &[PrincipalSpec]) -> Result<(), WorldError> {
        let mut client_ids = BTreeSet::new();
        for principal in principals {
            if principal.name.is_empty() {
                return Err(invalid("a principal has an empty name"));
            }
            if !is_guid(&principal.object_id) {
                return Err(invalid(format!(
                    "principal '{}': object_id is not a GUID",
                    principal.name
                )));
            }
            match (&principal.kind, &principal.client_id) {
                (PrincipalKind::ServicePrincipal | PrincipalKind::ManagedIdentity, None) => {
                    return Err(invalid(format!(
                        "principal '{}': a {:?} needs a client_id",
                        principal.name, principal.kind
                    )));
                }
                (_, Some(client_id)) => {
                    if !is_guid(client_id) {
                        return Err(invalid(format!(
                            "principal '{}': client_id is not a GUID",
                            principal.name
                        )));
                    }
                    if !client_ids.insert(client_id.to_ascii_lowercase()) {
                        return Err(invalid(format!(
                            "principal '{}': client_id {client_id} is used twice",
                            principal.name
                        )));
                    }
                }
                (_, None) => {}
            }
        }
        Ok(())
    }

    fn define(
        &mut self,
        kind: &'static str,
        subscription_id: &str,
        group: &str,
        name: &str,
    ) -> Result<(), WorldError> {
        if name.is_empty() || name.contains('/') {
            return Err(invalid(format!(
                "{kind} '{name}' in resource group '{group}': invalid name"
            )));
        }
        let id = arm_key(subscription_id, group, kind, name);
        if !self.defined.entry(kind).or_default().insert(id) {
            return Err(invalid(format!(
                "{kind} '{name}' is defined twice in resource group '{group}'"
            )));
        }
        Ok(())
    }

    fn define_group(
        &mut self,
        subscription_id: &str,
        group: &ResourceGroupSpec,
    ) -> Result<(), WorldError> {
        let name = group.name.as_str();
        for network in &group.virtual_networks {
            self.define(VIRTUAL_NETWORKS, subscription_id, name, &network.name)?;
            for subnet in &network.subnets {
                if subnet.name.is_empty() || subnet.name.contains('/') {
                    return Err(invalid(format!(
                        "subnet '{}' of virtual network '{}': invalid name",
                        subnet.name, network.name
                    )));
                }
                let key = format!(
                    "{}/subnets/{}",
                    arm_key(subscription_id, name, VIRTUAL_NETWORKS, &network.name),
                    subnet.name.to_ascii_lowercase()
                );
                if !self.defined.entry(SUBNETS).or_default().insert(key) {
                    return Err(invalid(format!(
                        "subnet '{}' is defined twice in virtual network '{}'",
                        subnet.name, network.name
                    )));
                }
            }
        }
        for nsg in &group.network_security_groups {
            self.define(NSGS, subscription_id, name, &nsg.name)?;
        }
        for ip in &group.public_ip_addresses {
            self.define(PUBLIC_IPS, subscription_id, name, &ip.name)?;
        }
        for firewall in &group.azure_firewalls {
            self.define(FIREWALLS, subscription_id, name, &firewall.name)?;
        }
        for nic in &group.network_interfaces {
            self.define(NICS, subscription_id, name, &nic.name)?;
        }
        for vm in &group.virtual_machines {
            self.define(VMS, subscription_id, name, &vm.name)?;
        }
        for vm in &group.classic_virtual_machines {
            self.define(CLASSIC_VMS, subscription_id, name, &vm.name)?;
        }
        Ok(())
    }

    /// Checks that `reference` (from `owner`) names a defined resource of `kind`.
    fn reference(
        &self,
        kind: &'static str,
        reference: &str,
        subscription_id: &str,
        group: &str,
        owner: &str,
    ) -> Result<String, WorldError> {
        let key = if kind == SUBNETS {
            subnet_reference_key(reference, subscription_id, group)
        } else {
            reference_key(reference, subscription_id, group, kind)
        }
        .unwrap_or_default();
        let found = self
            .defined
            .get(kind)
            .is_some_and(|defined| defined.contains(&key));
        if found {
            Ok(key)
        } else {
            let what = kind.rsplit('/').next().unwrap_or(kind);
            Err(invalid(format!(
                "{owner} refers to {what} '{reference}', which the world does not define \
                 (references are names in the same resource group, \"vnet/subnet\" for subnets, \
                 or full ARM ids in the same subscription)"
            )))
        }
    }

    fn check_group(
        &mut self,
        subscription_id: &str,
        group: &ResourceGroupSpec,
    ) -> Result<(), WorldError> {
        let group_name = group.name.as_str();
        let mut subnet_prefixes: BTreeMap<String, ipnet::Ipv4Net> = BTreeMap::new();
        for network in &group.virtual_networks {
            let owner = format!("virtual network '{}'", network.name);
            let mut spaces = Vec::new();
            for space in &network.address_space {
                let parsed: ipnet::Ipv4Net = space.parse().map_err(|_| {
                    invalid(format!(
                        "{owner}: address space '{space}' is not an IPv4 CIDR"
                    ))
                })?;
                spaces.push(parsed);
            }
            if spaces.is_empty() {
                return Err(invalid(format!("{owner}: address_space is empty")));
            }
            for subnet in &network.subnets {
                let owner = format!("subnet '{}/{}'", network.name, subnet.name);
                let prefix: ipnet::Ipv4Net = subnet.address_prefix.parse().map_err(|_| {
                    invalid(format!(
                        "{owner}: address prefix '{}' is not an IPv4 CIDR",
                        subnet.address_prefix
                    ))
                })?;
                if !spaces.iter().any(|space| space.contains(&prefix)) {
                    return Err(invalid(format!(
                        "{owner}: {prefix} is outside the network's address space"
                    )));
                }
                if let Some(nsg) = &subnet.network_security_group {
                    self.reference(NSGS, nsg, subscription_id, group_name, &owner)?;
                }
                if let Some(firewall) = &subnet.firewall {
                    self.reference(FIREWALLS, firewall, subscription_id, group_name, &owner)?;
                }
                subnet_prefixes.insert(
                    format!(
                        "{}/subnets/{}",
                        arm_key(subscription_id, group_name, VIRTUAL_NETWORKS, &network.name),
                        subnet.name.to_ascii_lowercase()
                    ),
                    prefix,
                );
            }
        }
        for nsg in &group.network_security_groups {
            check_rules(nsg)?;
        }
        for firewall in &group.azure_firewalls {
            let owner = format!("azure firewall '{}'", firewall.name);
            self.reference(
                PUBLIC_IPS,
                &firewall.public_ip_address,
                subscription_id,
                group_name,
                &owner,
            )?;
            self.reference(
                SUBNETS,
                &firewall.subnet,
                subscription_id,
                group_name,
                &owner,
            )?;
        }
        for nic in &group.network_interfaces {
            let owner = format!("network interface '{}'", nic.name);
            let subnet_key =
                self.reference(SUBNETS, &nic.subnet, subscription_id, group_name, &owner)?;
            if let Some(prefix) = subnet_prefixes.get(&subnet_key)
                && !prefix.contains(&nic.private_ip_address)
            {
                return Err(invalid(format!(
                    "{owner}: private IP {} is outside subnet {prefix}",
                    nic.private_ip_address
                )));
            }
            if let Some(ip) = &nic.public_ip_address {
                self.reference(PUBLIC_IPS, ip, subscription_id, group_name, &owner)?;
            }
            if let Some(nsg) = &nic.network_security_group {
                self.reference(NSGS, nsg, subscription_id, group_name, &owner)?;
            }
        }
        for vm in &group.virtual_machines {
            let owner = format!("virtual machine '{}' in '{group_name}'", vm.name);
            if vm.network_interfaces.is_empty() {
                return Err(invalid(format!("{owner}: has no network interface")));
            }
            for nic in &vm.network_interfaces {
                let key = self.reference(NICS, nic, subscription_id, group_name, &owner)?;
                if let Some(other) = self.nic_owner.insert(key, vm.name.clone()) {
                    return Err(invalid(format!(
                        "{owner}: network interface '{nic}' is already attached to '{other}'"
                    )));
                }
            }
            let mut numbers = BTreeSet::new();
            for port in &vm.ports {
                if !numbers.insert(port.number) {
                    return Err(invalid(format!(
                        "{owner}: port {} is declared twice",
                        port.number
                    )));
                }
                if let Some(pinned) = port.pinned {
                    if pinned == 0 {
                        return Err(invalid(format!("{owner}: pinned port 0 is not a port")));
                    }
                    if !self.pinned.insert(pinned) {
                        return Err(invalid(format!(
                            "{owner}: pinned port {pinned} is pinned twice in the world"
                        )));
                    }
                }
            }
        }
        let mut policy_names = BTreeSet::new();
        for policy in &group.jit_policies {
            let location = policy.location.as_deref().unwrap_or(&group.location);
            let owner = format!(
                "JIT policy '{}' ({location}) in '{group_name}'",
                policy.name
            );
            if !policy_names.insert(format!("{location}/{}", policy.name).to_ascii_lowercase()) {
                return Err(invalid(format!("{owner} is defined twice")));
            }
            let mut vms = BTreeSet::new();
            for entry in &policy.virtual_machines {
                let key = self.reference(
                    VMS,
                    &entry.virtual_machine,
                    subscription_id,
                    group_name,
                    &owner,
                )?;
                if !vms.insert(key) {
                    return Err(invalid(format!(
                        "{owner}: virtual machine '{}' is listed twice",
                        entry.virtual_machine
                    )));
                }
                let vm = find_vm(group, &entry.virtual_machine);
                check_policy_ports(&owner, entry, vm)?;
            }
        }
        Ok(())
    }
}

/// The VM a policy entry names, when it is in the same resource group.
fn find_vm<'a>(group: &'a ResourceGroupSpec, reference: &str) -> Option<&'a VirtualMachineSpec> {
    let name = reference.rsplit('/').next().unwrap_or(reference);
    group
        .virtual_machines
        .iter()
        .find(|vm| vm.name.eq_ignore_ascii_case(name))
}

fn check_policy_ports(
    owner: &str,
    entry: &JitPolicyVmSpec,
    vm: Option<&VirtualMachineSpec>,
) -> Result<(), WorldError> {
    let owner = format!("{owner}, virtual machine '{}'", entry.virtual_machine);
    if entry.ports.is_empty() {
        return Err(invalid(format!("{owner}: no ports")));
    }
    for port in &entry.ports {
        match (port.number, port.service) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid(format!(
                    "{owner}: a port needs exactly one of `number` and `service`"
                )));
            }
            (None, Some(service)) => {
                let matching = vm
                    .map(|vm| vm.ports.iter().filter(|p| p.service == service).count())
                    .unwrap_or(0);
                if matching != 1 {
                    return Err(invalid(format!(
                        "{owner}: service {} names {matching} ports of the VM (it must name one; \
                         the VM must be in the policy's resource group)",
                        service.as_str()
                    )));
                }
            }
            (Some(_), None) => {}
        }
        if !["TCP", "UDP", "*"].contains(&port.protocol.as_str()) {
            return Err(invalid(format!(
                "{owner}: protocol '{}' is not TCP, UDP or *",
                port.protocol
            )));
        }
        if let (Some(_), Some(_)) = (
            &port.allowed_source_address_prefix,
            &port.allowed_source_address_prefixes,
        ) {
            return Err(invalid(format!(
                "{owner}: allowed_source_address_prefix and allowed_source_address_prefixes \
                 are mutually exclusive"
            )));
        }
        let prefixes: Vec<&String> = port
            .allowed_source_address_prefix
            .iter()
            .chain(port.allowed_source_address_prefixes.iter().flatten())
            .collect();
        if port
            .allowed_source_address_prefixes
            .as_ref()
            .is_some_and(Vec::is_empty)
        {
            return Err(invalid(format!(
                "{owner}: allowed_source_address_prefixes is empty"
            )));
        }
        if let Some(bad) = prefixes.iter().find(|prefix| !is_source_prefix(prefix)) {
            return Err(invalid(format!(
                "{owner}: source prefix '{bad}' is not *, an IPv4 address or a CIDR"
            )));
        }
        match parse_iso_duration(&port.max_request_access_duration) {
            Some(duration) if (MIN_MAX_DURATION..=MAX_MAX_DURATION).contains(&duration) => {}
            _ => {
                return Err(invalid(format!(
                    "{owner}: max_request_access_duration '{}' is not an ISO-8601 duration \
                     between PT5M and PT24H",
                    port.max_request_access_duration
                )));
            }
        }
    }
    Ok(())
}

fn check_rules(nsg: &NetworkSecurityGroupSpec) -> Result<(), WorldError> {
    let mut priorities = BTreeSet::new();
    let mut names = BTreeSet::new();
    for rule in &nsg.security_rules {
        let owner = format!("security rule '{}' of NSG '{}'", rule.name, nsg.name);
        if !names.insert(rule.name.to_ascii_lowercase()) {
            return Err(invalid(format!("{owner} is defined twice")));
        }
        if !(100..=4096).contains(&rule.priority) {
            return Err(invalid(format!(
                "{owner}: priority {} is outside 100..4096",
                rule.priority
            )));
        }
        if !priorities.insert((rule.direction == RuleDirection::Inbound, rule.priority)) {
            return Err(invalid(format!(
                "{owner}: priority {} is already used in that direction",
                rule.priority
            )));
        }
        let ports: Vec<&String> = rule
            .destination_port_range
            .iter()
            .chain(&rule.destination_port_ranges)
            .collect();
        if ports.is_empty() {
            return Err(invalid(format!("{owner}: no destination port range")));
        }
        if let Some(bad) = ports
            .iter()
            .find(|range| crate::state::gate::PortRange::parse(range).is_none())
        {
            return Err(invalid(format!(
                "{owner}: destination port range '{bad}' is not *, a port or a range"
            )));
        }
    }
    Ok(())
}

/// ARM's rule for resource group names: 1 to 90 of letters, digits, `-_.()`, not
/// ending in a period.
fn is_resource_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 90
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.()".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_world_is_valid() {
        let world = World::from_toml(DEFAULT_WORLD_TOML);
        assert!(world.is_ok(), "{world:?}");
    }

    #[test]
    fn iso_durations_parse_with_days_as_24_hours() {
        assert_eq!(
            parse_iso_duration("PT3H"),
            Some(jiff::SignedDuration::from_hours(3))
        );
        assert_eq!(
            parse_iso_duration("PT0.5H"),
            Some(jiff::SignedDuration::from_mins(30))
        );
        assert_eq!(
            parse_iso_duration("P1D"),
            Some(jiff::SignedDuration::from_hours(24))
        );
        assert_eq!(parse_iso_duration("3h"), None);
        assert_eq!(parse_iso_duration("PT"), None);
        assert_eq!(parse_iso_duration(""), None);
    }

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b34"));
        assert!(!is_guid("3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b3"));
        assert!(!is_guid("subscriptions"));
    }

    fn world_with(edit: impl FnOnce(&mut World)) -> Result<(), WorldError> {
        let mut world = World::default_world();
        edit(&mut world);
        world.validate()
    }

    #[test]
    fn an_unknown_nsg_reference_names_the_nic_and_the_nsg() {
        let result = world_with(|world| {
            world.subscriptions[0].resource_groups[0].network_interfaces[0]
                .network_security_group = Some("no-such-nsg".to_owned());
        });
        let message = result
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            message.contains("network interface 'api-01-nic'"),
            "{message}"
        );
        assert!(message.contains("no-such-nsg"), "{message}");
    }

    #[test]
    fn pricings_name_known_plans_once_and_free_plans_have_no_sub_plan() {
        let pricing = |name: &str, tier: PricingTier, sub_plan: Option<&str>| PricingSpec {
            name: name.to_owned(),
            pricing_tier: tier,
            sub_plan: sub_plan.map(str::to_owned),
        };
        let message = |pricings: Vec<PricingSpec>| {
            world_with(|world| world.subscriptions[1].pricings = pricings)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            message(vec![pricing("virtualmachines", PricingTier::Free, None)]),
            ""
        );
        assert!(message(vec![pricing("Servers", PricingTier::Free, None)]).contains("Servers"));
        assert!(
            message(vec![pricing(
                "VirtualMachines",
                PricingTier::Free,
                Some("P1")
            )])
            .contains("no sub_plan")
        );
        assert!(
            message(vec![
                pricing("VirtualMachines", PricingTier::Free, None),
                pricing("VIRTUALMACHINES", PricingTier::Standard, None),
            ])
            .contains("twice")
        );
    }

    #[test]
    fn an_unknown_vm_in_a_policy_is_refused() {
        let result = world_with(|world| {
            world.subscriptions[0].resource_groups[0].jit_policies[0].virtual_machines[0]
                .virtual_machine = "ghost-01".to_owned();
        });
        let message = result
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.contains("ghost-01"), "{message}");
    }

    #[test]
    fn a_policy_duration_longer_than_a_day_is_refused() {
        let result = world_with(|world| {
            world.subscriptions[0].resource_groups[0].jit_policies[0].virtual_machines[0].ports
                [0]
            .max_request_access_duration = "PT25H".to_owned();
        });
        let message = result
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.contains("PT25H"), "{message}");
    }

    #[test]
    fn a_nic_outside_its_subnet_is_refused() {
        let result = world_with(|world| {
            world.subscriptions[0].resource_groups[0].network_interfaces[0].private_ip_address =
                Ipv4Addr::new(192, 168, 1, 1);
        });
        let message = result
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.contains("outside subnet"), "{message}");
    }

    #[test]
    fn the_same_pinned_port_twice_is_refused() {
        let result = world_with(|world| {
            let group = &mut world.subscriptions[0].resource_groups[0];
            group.virtual_machines[0].ports[0].pinned = Some(40022);
            group.virtual_machines[1].ports[0].pinned = Some(40022);
        });
        let message = result
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.contains("pinned twice"), "{message}");
    }

    #[test]
    fn json_and_toml_worlds_load_alike() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let world = World::default_world();
        let json_path = directory.path().join("world.json");
        std::fs::write(&json_path, serde_json::to_string_pretty(&world)?)?;
        let toml_path = directory.path().join("world.toml");
        std::fs::write(&toml_path, toml::to_string(&world)?)?;
        assert_eq!(World::load(&json_path)?, world);
        assert_eq!(World::load(&toml_path)?, world);
        Ok(())
    }

    #[test]
    fn an_unknown_field_is_a_parse_error_naming_it() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("world.toml");
        std::fs::write(&path, "tenant_id = \"x\"\nsubscribtions = []\n")?;
        let message = World::load(&path)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.contains("subscribtions"), "{message}");
        Ok(())
    }
}
