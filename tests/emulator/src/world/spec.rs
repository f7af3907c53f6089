//! The types a world file reads into: the tenant's principals, subscriptions, resource
//! groups and the resources in them, with the defaults a hand-written file leaves out.
//! Serde does the reading (unknown keys are errors); [`super::World::validate`] checks
//! what the types cannot say.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

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
