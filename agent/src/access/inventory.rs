//! Every VM in scope, sorted into the portal's three tabs, in a handful of calls.
//!
//! The portal's JIT page answers "which of my VMs have JIT, which could, which can't and
//! why". Answering it VM by VM (GET the VM, its NICs, their subnets, then the policies)
//! costs several ARM calls per VM, so a tenant with hundreds of VMs would wait minutes
//! and be throttled. Instead the whole picture comes from a fixed number of calls,
//! whatever the number of VMs, all sent at once:
//!
//! - Resource Graph, one paged query per resource type: VMs (classic ones included),
//!   NICs (their NSG and subnets), virtual networks (each subnet's NSG and route table)
//!   and Azure Firewalls (which virtual network they sit in);
//! - the JIT policies of each subscription (one list per subscription, a few at a time).
//!
//! What is given up: Resource Graph lags ARM by seconds to minutes, so a VM or NIC
//! created a moment ago may be missing or show stale data (a VM whose NICs are not in
//! Resource Graph yet looks like it has no NSG). A VM counts as behind an Azure Firewall
//! when its subnet has a route table and a firewall sits in the same virtual network;
//! a firewall in a peered hub network is only known once a JIT policy names its address.
//! [`crate::access::details`] reads one VM from ARM itself when exact data matters.

use std::collections::HashMap;

use futures::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use serde::Deserialize;

use crate::access::details::VmDetails;
use crate::access::locate::{self, Scope, VmSummary};
use crate::access::status::{self, ActivePort, JitState, UnsupportedReason};
use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::clients::{
    KqlColumn, KqlCondition, ResourceGraphClient, ResourcesQuery, SortOrder, SubscriptionsClient,
};
use crate::azure::models::{
    JitNetworkAccessPolicy, JitNetworkAccessPortRule, NetworkInterfaceReference, PowerState,
    SubResource, Subnet, normalize_location,
};
use crate::azure::resource_id::ResourceId;

/// Resource Graph's type for NICs.
pub const NETWORK_INTERFACE_TYPE: &str = "microsoft.network/networkinterfaces";
/// Resource Graph's type for virtual networks.
pub const VIRTUAL_NETWORK_TYPE: &str = "microsoft.network/virtualnetworks";
/// Resource Graph's type for Azure Firewalls.
pub const AZURE_FIREWALL_TYPE: &str = "microsoft.network/azurefirewalls";

/// How many subscriptions' policies are listed at the same time. ARM throttles per
/// subscription, so more would not be throttled, but a tenant with hundreds of
/// subscriptions should not open hundreds of connections at once.
const POLICY_LISTS_AT_ONCE: usize = 8;

/// Every VM in scope, classified.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The VMs, in Resource Graph's order (by id).
    pub vms: Vec<InventoryVm>,
    /// Azure's clock when the listing finished; "time left" is measured from it.
    pub as_of: Timestamp,
}

impl Inventory {
    /// How many VMs are in `state`.
    pub fn count(&self, state: JitState) -> usize {
        self.vms.iter().filter(|vm| vm.state == state).count()
    }
}

/// One VM as the portal's JIT page shows it.
#[derive(Debug, Clone)]
pub struct InventoryVm {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Resource group, spelled as in the id.
    pub resource_group: String,
    /// Subscription id.
    pub subscription_id: String,
    /// Region (short form: `westeurope`).
    pub location: String,
    /// `Linux` or `Windows`, when known.
    pub os: Option<String>,
    /// Power state (`running`, `deallocated`…), when known.
    pub power_state: Option<String>,
    /// A classic (Azure Service Manager) VM.
    pub classic: bool,
    /// What guards the VM's network.
    pub network: NetworkProtection,
    /// The portal's tab.
    pub state: JitState,
    /// Why JIT cannot protect it, for [`JitState::Unsupported`].
    pub unsupported_reason: Option<UnsupportedReason>,
    /// The policy entry, for [`JitState::Configured`].
    pub jit: Option<JitConfiguration>,
}

/// What guards a VM's network, which decides whether JIT can protect it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkProtection {
    /// NSGs on the VM's NICs (ids).
    pub interface_security_groups: Vec<String>,
    /// NSGs on the subnets of the VM's NICs (ids).
    pub subnet_security_groups: Vec<String>,
    /// The Azure Firewall traffic to the VM goes through (id), when one was found.
    pub firewall: Option<String>,
}

impl NetworkProtection {
    /// Whether an NSG sits on a NIC or a subnet of the VM.
    pub fn has_security_group(&self) -> bool {
        !self.interface_security_groups.is_empty() || !self.subnet_security_groups.is_empty()
    }

    /// The protection of a VM read from ARM ([`crate::access::details::read_vm`]): its
    /// NSGs as ARM reports them, and the firewall `topology` places in front of its
    /// subnets. `jit show` uses this so it agrees with the listing on the verdict.
    pub fn of_details(details: &VmDetails, topology: &NetworkTopology) -> Self {
        let mut protection = Self::default();
        for interface in &details.interfaces {
            push_unique(
                &mut protection.interface_security_groups,
                interface.network_security_group_id.as_deref(),
            );
            push_unique(
                &mut protection.subnet_security_groups,
                interface.subnet_network_security_group_id.as_deref(),
            );
            if protection.firewall.is_none()
                && let Some(subnet_id) = &interface.subnet_id
            {
                protection.firewall = topology.firewall_for_subnet(subnet_id).map(str::to_owned);
            }
        }
        protection
    }
}

/// Where JIT opens and closes access for a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enforcement {
    /// JIT writes rules into the VM's NSGs.
    pub network_security_group: bool,
    /// JIT writes DNAT rules into an Azure Firewall.
    pub firewall: bool,
}

impl Enforcement {
    /// Where JIT acts for a VM with this network and (for a configured VM) this firewall
    /// address from its policy entry.
    pub fn of(network: &NetworkProtection, firewall_public_ip: Option<&str>) -> Self {
        Self {
            network_security_group: network.has_security_group(),
            firewall: network.firewall.is_some() || firewall_public_ip.is_some(),
        }
    }
}

/// A configured VM's entry in its JIT policy, with the access open now.
#[derive(Debug, Clone)]
pub struct JitConfiguration {
    /// The policy's resource id (requests go to `{policy_id}/initiate`).
    pub policy_id: String,
    /// The policy's name (not always `default`).
    pub policy_name: String,
    /// The policy's region.
    pub policy_location: Option<String>,
    /// The ports JIT manages, as the policy lists them.
    pub ports: Vec<JitNetworkAccessPortRule>,
    /// The Azure Firewall's public address, when the policy routes through one.
    pub firewall_public_ip: Option<String>,
    /// Where JIT acts.
    pub enforcement: Enforcement,
    /// Ports open (or opening) now, one per port.
    pub active: Vec<ActivePort>,
}

impl JitConfiguration {
    /// The configuration `policy` holds for `vm_id`, if it lists the VM.
    pub fn from_policy(
        policy: &JitNetworkAccessPolicy,
        vm_id: &str,
        network: &NetworkProtection,
        now: Timestamp,
    ) -> Option<Self> {
        let entry = policy
            .properties
            .virtual_machines
            .iter()
            .find(|entry| id_key(&entry.id) == id_key(vm_id))?;
        let policy_id = policy.id.clone().unwrap_or_default();
        let policy_name = policy
            .name
            .clone()
            .or_else(|| {
                ResourceId::parse(&policy_id)
                    .ok()
                    .and_then(|id| id.name().map(str::to_owned))
            })
            .unwrap_or_default();
        Some(Self {
            policy_location: policy.location.clone(),
            ports: entry.ports.clone(),
            firewall_public_ip: entry.public_ip_address.clone(),
            enforcement: Enforcement::of(network, entry.public_ip_address.as_deref()),
            active: status::active_ports(policy, vm_id, now),
            policy_id,
            policy_name,
        })
    }
}

/// The portal's verdict for a VM: listed by a policy, else protectable (an NSG or a
/// firewall), else unsupported with the reason. A classic VM is unsupported whatever
/// else is true.
pub fn classify(
    classic: bool,
    listed_by_policy: bool,
    network: &NetworkProtection,
) -> (JitState, Option<UnsupportedReason>) {
    if classic {
        (JitState::Unsupported, Some(UnsupportedReason::ClassicVm))
    } else if listed_by_policy {
        (JitState::Configured, None)
    } else if network.has_security_group() || network.firewall.is_some() {
        (JitState::NotConfigured, None)
    } else {
        (
            JitState::Unsupported,
            Some(UnsupportedReason::NoNetworkSecurityGroup),
        )
    }
}

/// Lists and classifies every VM in `scope` (every enabled subscription the identity
/// can see when the scope names none).
pub async fn inventory(arm: &ArmClient, scope: &Scope) -> Result<Inventory, ArmError> {
    let subscription_ids = if scope.subscription_ids.is_empty() {
        visible_subscriptions(arm).await?
    } else {
        scope.subscription_ids.clone()
    };
    let scope = Scope {
        subscription_ids,
        resource_group: scope.resource_group.clone(),
    };
    let (vm_rows, interfaces, topology, policies) = futures::try_join!(
        virtual_machine_rows(arm, &scope),
        load_interfaces(arm, &scope.subscription_ids),
        NetworkTopology::load(arm, &scope.subscription_ids),
        policies_of(arm, &scope.subscription_ids),
    )?;
    let now = arm.server_now();
    let policy_index = index_policies(&policies);
    let vms = vm_rows
        .into_iter()
        .map(|row| {
            let network = row.network_protection(&interfaces, &topology);
            let classic = row.summary.is_classic();
            let jit = if classic {
                None
            } else {
                policy_index
                    .get(&id_key(&row.summary.id))
                    .and_then(|&index| policies.get(index))
                    .and_then(|policy| {
                        JitConfiguration::from_policy(policy, &row.summary.id, &network, now)
                    })
            };
            let (state, unsupported_reason) = classify(classic, jit.is_some(), &network);
            row.into_vm(network, state, unsupported_reason, jit)
        })
        .collect();
    Ok(Inventory { vms, as_of: now })
}

async fn visible_subscriptions(arm: &ArmClient) -> Result<Vec<String>, ArmError> {
    Ok(SubscriptionsClient::new(arm.clone())
        .list()
        .await?
        .into_iter()
        .filter(|subscription| {
            subscription
                .state
                .as_ref()
                .is_none_or(|state| state.is_active())
        })
        .filter_map(|subscription| subscription.subscription_id)
        .collect())
}

/// Every JIT policy of the subscriptions, in the subscriptions' order.
async fn policies_of(
    arm: &ArmClient,
    subscription_ids: &[String],
) -> Result<Vec<JitNetworkAccessPolicy>, ArmError> {
    let lists: Vec<Vec<JitNetworkAccessPolicy>> = futures::stream::iter(subscription_ids)
        .map(|subscription_id| status::subscription_policies(arm, subscription_id))
        .buffered(POLICY_LISTS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(lists.into_iter().flatten().collect())
}

/// VM id (normalised) → index of the first policy that lists it.
fn index_policies(policies: &[JitNetworkAccessPolicy]) -> HashMap<String, usize> {
    let mut index = HashMap::new();
    for (position, policy) in policies.iter().enumerate() {
        for entry in &policy.properties.virtual_machines {
            index.entry(id_key(&entry.id)).or_insert(position);
        }
    }
    index
}

/// ARM ids compare ASCII case-insensitively, ignoring a trailing `/`
/// (as [`crate::azure::resource_id::same_resource_id`]); this is that as a map key.
fn id_key(id: &str) -> String {
    id.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The name at the end of an id (`api-01-nsg`), or the id itself if it does not parse.
pub fn name_of_id(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// A VM row: the summary `locate` uses, plus what only the listing needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VmRow {
    #[serde(flatten)]
    summary: VmSummary,
    /// A classic VM's OS (`properties.storageProfile.operatingSystemDisk.operatingSystem`).
    #[serde(default)]
    classic_os_type: Option<String>,
    /// A classic VM's power state (`Started`, `Stopped`, …).
    #[serde(default)]
    classic_power_state: Option<String>,
    /// `properties.networkProfile.networkInterfaces`.
    #[serde(default)]
    network_interfaces: Option<Vec<NetworkInterfaceReference>>,
}

async fn virtual_machine_rows(arm: &ArmClient, scope: &Scope) -> Result<Vec<VmRow>, ArmError> {
    let query = locate::vm_query(scope, None)
        .project_as(
            "classicOsType",
            "properties.storageProfile.operatingSystemDisk.operatingSystem",
        )
        .project_as("classicPowerState", "properties.instanceView.powerState")
        .project_as(
            "networkInterfaces",
            "properties.networkProfile.networkInterfaces",
        );
    ResourceGraphClient::new(arm.clone())
        .resources_as(&query, &scope.subscription_ids, None)
        .await
}

impl VmRow {
    /// NIC ids, the primary first: from the VM's network profile, else from the NICs
    /// that say they belong to this VM.
    fn interface_ids(&self, interfaces: &HashMap<String, InterfaceFacts>) -> Vec<String> {
        let mut references: Vec<&NetworkInterfaceReference> =
            self.network_interfaces.iter().flatten().collect();
        references.sort_by_key(|reference| {
            !reference
                .properties
                .as_ref()
                .and_then(|properties| properties.primary)
                .unwrap_or(false)
        });
        let listed: Vec<String> = references
            .iter()
            .filter_map(|reference| reference.id.clone())
            .collect();
        if !listed.is_empty() {
            return listed;
        }
        let vm_key = id_key(&self.summary.id);
        let mut attached: Vec<(&String, &InterfaceFacts)> = interfaces
            .iter()
            .filter(|(_, facts)| {
                facts
                    .virtual_machine_id
                    .as_deref()
                    .is_some_and(|id| id_key(id) == vm_key)
            })
            .collect();
        attached.sort_by(|left, right| left.0.cmp(right.0));
        attached
            .into_iter()
            .map(|(_, facts)| facts.id.clone())
            .collect()
    }

    fn network_protection(
        &self,
        interfaces: &HashMap<String, InterfaceFacts>,
        topology: &NetworkTopology,
    ) -> NetworkProtection {
        let mut protection = NetworkProtection::default();
        if self.summary.is_classic() {
            return protection;
        }
        for interface_id in self.interface_ids(interfaces) {
            let Some(facts) = interfaces.get(&id_key(&interface_id)) else {
                continue;
            };
            push_unique(
                &mut protection.interface_security_groups,
                facts.network_security_group_id.as_deref(),
            );
            if let Some(subnet_id) = &facts.subnet_id {
                push_unique(
                    &mut protection.subnet_security_groups,
                    topology.subnet_security_group(subnet_id),
                );
                if protection.firewall.is_none() {
                    protection.firewall =
                        topology.firewall_for_subnet(subnet_id).map(str::to_owned);
                }
            }
        }
        protection
    }

    fn into_vm(
        self,
        network: NetworkProtection,
        state: JitState,
        unsupported_reason: Option<UnsupportedReason>,
        jit: Option<JitConfiguration>,
    ) -> InventoryVm {
        let classic = self.summary.is_classic();
        let resource_group = ResourceId::parse(&self.summary.id)
            .ok()
            .and_then(|id| id.resource_group().map(str::to_owned))
            .unwrap_or_else(|| self.summary.resource_group.clone());
        let os = self
            .summary
            .os_type
            .clone()
            .or(self.classic_os_type)
            .filter(|os| !os.is_empty());
        let power_state = match (&self.summary.power_state, &self.classic_power_state) {
            (Some(code), _) => PowerState::from_code(code).map(|state| state.to_string()),
            (None, Some(classic_state)) => Some(classic_power_state(classic_state)),
            (None, None) => None,
        };
        InventoryVm {
            id: self.summary.id,
            name: self.summary.name,
            resource_group,
            subscription_id: self.summary.subscription_id,
            location: normalize_location(&self.summary.location),
            os,
            power_state,
            classic,
            network,
            state,
            unsupported_reason,
            jit,
        }
    }
}

/// A classic VM's power state in the words ARM VMs use.
fn classic_power_state(state: &str) -> String {
    match state.to_ascii_lowercase().as_str() {
        "started" => "running".to_owned(),
        "starting" => "starting".to_owned(),
        "stopping" => "stopping".to_owned(),
        "stopped" => "stopped".to_owned(),
        "stoppeddeallocated" => "deallocated".to_owned(),
        other => other.to_owned(),
    }
}

fn push_unique(list: &mut Vec<String>, id: Option<&str>) {
    if let Some(id) = id
        && !list.iter().any(|known| id_key(known) == id_key(id))
    {
        list.push(id.to_owned());
    }
}

/// What the listing needs of a NIC.
#[derive(Debug, Clone)]
struct InterfaceFacts {
    id: String,
    network_security_group_id: Option<String>,
    virtual_machine_id: Option<String>,
    /// The primary IP configuration's subnet.
    subnet_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InterfaceRow {
    id: String,
    #[serde(default)]
    network_security_group_id: Option<String>,
    #[serde(default)]
    virtual_machine_id: Option<String>,
    #[serde(default)]
    ip_configurations: Option<Vec<InterfaceIpConfigurationRow>>,
}

/// Of a NIC's IP configuration, only what the listing reads. The full model
/// ([`crate::azure::models::NetworkInterfaceIpConfiguration`]) takes about 2 KiB a NIC
/// even when nearly empty; thousands of NICs are read at once here.
#[derive(Debug, Deserialize)]
struct InterfaceIpConfigurationRow {
    #[serde(default)]
    properties: Option<InterfaceIpConfigurationFacts>,
}

#[derive(Debug, Deserialize)]
struct InterfaceIpConfigurationFacts {
    #[serde(default)]
    primary: Option<bool>,
    #[serde(default)]
    subnet: Option<SubResource>,
}

/// Every NIC of the subscriptions, keyed by normalised id.
async fn load_interfaces(
    arm: &ArmClient,
    subscription_ids: &[String],
) -> Result<HashMap<String, InterfaceFacts>, ArmError> {
    let query = ResourcesQuery::new()
        .filter([KqlCondition::equals_ignore_case(
            KqlColumn::Type,
            NETWORK_INTERFACE_TYPE,
        )])
        .project("id")
        .project_as(
            "networkSecurityGroupId",
            "properties.networkSecurityGroup.id",
        )
        .project_as("virtualMachineId", "properties.virtualMachine.id")
        .project_as("ipConfigurations", "properties.ipConfigurations")
        .order_by("id", SortOrder::Ascending);
    let rows: Vec<InterfaceRow> = ResourceGraphClient::new(arm.clone())
        .resources_as(&query, subscription_ids, None)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut configurations = row.ip_configurations.unwrap_or_default();
            configurations.sort_by_key(|configuration| {
                !configuration
                    .properties
                    .as_ref()
                    .and_then(|properties| properties.primary)
                    .unwrap_or(false)
            });
            let subnet_id = configurations.iter().find_map(|configuration| {
                configuration
                    .properties
                    .as_ref()?
                    .subnet
                    .as_ref()?
                    .id
                    .clone()
            });
            (
                id_key(&row.id),
                InterfaceFacts {
                    id: row.id,
                    network_security_group_id: row.network_security_group_id,
                    virtual_machine_id: row.virtual_machine_id,
                    subnet_id,
                },
            )
        })
        .collect())
}

/// Subnets (their NSG and route table) and where Azure Firewalls sit, for the
/// subscriptions in scope.
#[derive(Debug, Clone, Default)]
pub struct NetworkTopology {
    /// Subnet id (normalised) → what guards it.
    subnets: HashMap<String, SubnetFacts>,
    /// Virtual network id (normalised) → Azure Firewalls in it.
    firewalls_by_network: HashMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default)]
struct SubnetFacts {
    network_security_group_id: Option<String>,
    routed: bool,
}

#[derive(Debug, Deserialize)]
struct VirtualNetworkRow {
    #[serde(default)]
    subnets: Option<Vec<Subnet>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FirewallRow {
    id: String,
    #[serde(default)]
    ip_configurations: Option<Vec<FirewallIpConfiguration>>,
}

#[derive(Debug, Deserialize)]
struct FirewallIpConfiguration {
    #[serde(default)]
    properties: Option<FirewallIpConfigurationProperties>,
}

#[derive(Debug, Deserialize)]
struct FirewallIpConfigurationProperties {
    #[serde(default)]
    subnet: Option<SubResource>,
}

impl NetworkTopology {
    /// Reads the virtual networks and Azure Firewalls of the subscriptions from Resource
    /// Graph (two queries, sent together).
    pub async fn load(arm: &ArmClient, subscription_ids: &[String]) -> Result<Self, ArmError> {
        let graph = ResourceGraphClient::new(arm.clone());
        let networks_query = ResourcesQuery::new()
            .filter([KqlCondition::equals_ignore_case(
                KqlColumn::Type,
                VIRTUAL_NETWORK_TYPE,
            )])
            .project("id")
            .project_as("subnets", "properties.subnets")
            .order_by("id", SortOrder::Ascending);
        let firewalls_query = ResourcesQuery::new()
            .filter([KqlCondition::equals_ignore_case(
                KqlColumn::Type,
                AZURE_FIREWALL_TYPE,
            )])
            .project("id")
            .project_as("ipConfigurations", "properties.ipConfigurations")
            .order_by("id", SortOrder::Ascending);
        let (networks, firewalls) = futures::try_join!(
            graph.resources_as::<VirtualNetworkRow>(&networks_query, subscription_ids, None),
            graph.resources_as::<FirewallRow>(&firewalls_query, subscription_ids, None),
        )?;
        Ok(Self::from_rows(networks, firewalls))
    }

    fn from_rows(networks: Vec<VirtualNetworkRow>, firewalls: Vec<FirewallRow>) -> Self {
        let mut topology = Self::default();
        for subnet in networks
            .into_iter()
            .flat_map(|row| row.subnets.unwrap_or_default())
        {
            let Some(id) = subnet.id.clone() else {
                continue;
            };
            let routed = subnet
                .properties
                .as_ref()
                .and_then(|properties| properties.route_table.as_ref())
                .is_some_and(|table| table.id.is_some());
            topology.subnets.insert(
                id_key(&id),
                SubnetFacts {
                    network_security_group_id: subnet
                        .network_security_group_id()
                        .map(str::to_owned),
                    routed,
                },
            );
        }
        for firewall in firewalls {
            let networks = firewall
                .ip_configurations
                .iter()
                .flatten()
                .filter_map(|configuration| {
                    configuration
                        .properties
                        .as_ref()?
                        .subnet
                        .as_ref()?
                        .id
                        .as_deref()
                })
                .filter_map(virtual_network_of);
            for network in networks {
                let entry = topology.firewalls_by_network.entry(network).or_default();
                if !entry.contains(&firewall.id) {
                    entry.push(firewall.id.clone());
                }
            }
        }
        topology
    }

    /// The NSG on a subnet, if any.
    pub fn subnet_security_group(&self, subnet_id: &str) -> Option<&str> {
        self.subnets
            .get(&id_key(subnet_id))?
            .network_security_group_id
            .as_deref()
    }

    /// The Azure Firewall traffic to a subnet goes through: the subnet is routed (has a
    /// route table) and a firewall sits in the same virtual network.
    pub fn firewall_for_subnet(&self, subnet_id: &str) -> Option<&str> {
        if !self.subnets.get(&id_key(subnet_id))?.routed {
            return None;
        }
        self.firewalls_by_network
            .get(&virtual_network_of(subnet_id)?)?
            .first()
            .map(String::as_str)
    }
}

/// The normalised id of the virtual network a subnet id belongs to.
fn virtual_network_of(subnet_id: &str) -> Option<String> {
    let subnet = ResourceId::parse(subnet_id).ok()?;
    if !subnet.is_type("Microsoft.Network/virtualNetworks/subnets") {
        return None;
    }
    subnet.parent().map(|network| id_key(network.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBSCRIPTION: &str = "/subscriptions/00000000-0000-0000-0000-000000000001";

    fn subnet_id(network: &str, subnet: &str) -> String {
        format!(
            "{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/{network}/subnets/{subnet}"
        )
    }

    fn topology() -> NetworkTopology {
        let networks: Vec<VirtualNetworkRow> = serde_json::from_value(serde_json::json!([
            {"id": "x", "subnets": [
                {"id": subnet_id("edge", "AzureFirewallSubnet"), "properties": {}},
                {"id": subnet_id("edge", "workload"), "properties": {"routeTable": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt"}}},
                {"id": subnet_id("edge", "plain"), "properties": {"networkSecurityGroup": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/plain-nsg"}}}
            ]},
            {"id": "y", "subnets": [
                {"id": subnet_id("spoke", "routed"), "properties": {"routeTable": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/routeTables/rt2"}}}
            ]}
        ]))
        .expect("rows");
        let firewalls: Vec<FirewallRow> = serde_json::from_value(serde_json::json!([
            {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/azureFirewalls/afw",
             "ipConfigurations": [{"properties": {"subnet": {"id": subnet_id("EDGE", "AzureFirewallSubnet")}}}]}
        ]))
        .expect("rows");
        NetworkTopology::from_rows(networks, firewalls)
    }

    #[test]
    fn a_routed_subnet_next_to_a_firewall_is_behind_it() {
        let topology = topology();
        assert_eq!(
            topology
                .firewall_for_subnet(&subnet_id("edge", "WORKLOAD"))
                .map(name_of_id),
            Some("afw")
        );
        // Not routed: traffic does not pass the firewall.
        assert_eq!(
            topology.firewall_for_subnet(&subnet_id("edge", "plain")),
            None
        );
        // Routed, but no firewall in that network (a peered hub is not recognised).
        assert_eq!(
            topology.firewall_for_subnet(&subnet_id("spoke", "routed")),
            None
        );
        assert_eq!(
            topology
                .subnet_security_group(&subnet_id("edge", "plain"))
                .map(name_of_id),
            Some("plain-nsg")
        );
    }

    #[test]
    fn classification_follows_the_portal() {
        let nsg = NetworkProtection {
            subnet_security_groups: vec!["nsg".to_owned()],
            ..NetworkProtection::default()
        };
        let firewall = NetworkProtection {
            firewall: Some("afw".to_owned()),
            ..NetworkProtection::default()
        };
        let bare = NetworkProtection::default();
        assert_eq!(classify(false, true, &bare), (JitState::Configured, None));
        assert_eq!(
            classify(false, false, &nsg),
            (JitState::NotConfigured, None)
        );
        assert_eq!(
            classify(false, false, &firewall),
            (JitState::NotConfigured, None)
        );
        assert_eq!(
            classify(false, false, &bare),
            (
                JitState::Unsupported,
                Some(UnsupportedReason::NoNetworkSecurityGroup)
            )
        );
        assert_eq!(
            classify(true, true, &nsg),
            (JitState::Unsupported, Some(UnsupportedReason::ClassicVm))
        );
    }

    #[test]
    fn enforcement_counts_the_policy_firewall_address() {
        let bare = NetworkProtection::default();
        assert_eq!(
            Enforcement::of(&bare, Some("203.0.113.4")),
            Enforcement {
                network_security_group: false,
                firewall: true
            }
        );
    }

    #[test]
    fn policies_are_matched_by_normalised_id() {
        let policy: JitNetworkAccessPolicy = serde_json::from_value(serde_json::json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/custom",
            "properties": {"virtualMachines": [
                {"id": "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM-1/",
                 "ports": [{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]}
            ]}
        }))
        .expect("policy");
        let index = index_policies(std::slice::from_ref(&policy));
        let vm =
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm-1";
        assert_eq!(index.get(&id_key(vm)), Some(&0));
        let configuration = JitConfiguration::from_policy(
            &policy,
            vm,
            &NetworkProtection::default(),
            Timestamp::UNIX_EPOCH,
        )
        .expect("listed");
        assert_eq!(configuration.policy_name, "custom");
        assert_eq!(configuration.ports.len(), 1);
    }

    #[test]
    fn classic_power_states_read_like_arm_ones() {
        assert_eq!(classic_power_state("Started"), "running");
        assert_eq!(classic_power_state("StoppedDeallocated"), "deallocated");
        assert_eq!(classic_power_state("Weird"), "weird");
    }
}
