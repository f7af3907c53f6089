//! Everything about one VM that JIT decisions depend on: its OS, power state, admin user
//! and network.
//!
//! Whether JIT can protect a VM depends on its network: JIT needs a network security
//! group on the NIC or on the subnet (or an Azure Firewall). Where to connect depends on
//! it too: the NIC's public IP (address or DNS name), else the private address for
//! people on a VPN.
//!
//! Every ARM call from a laptop costs 100–300 ms and counts against the subscription's
//! read budget, and reading a VM from ARM is four of them (the VM, its NIC, the public
//! IP, the subnet). So the facts come from **one Resource Graph query** instead
//! ([`network_query`]), the same query that finds the VM by name: the VM row, its NICs
//! (`mv-expand`), and `join`s to the NICs, public IPs and virtual networks' subnets, the
//! way the portal's own queries do, within Resource Graph's limits (three `join`s, two
//! `mv-expand`s). [`VmDetails::from_graph`] assembles the rows.
//!
//! Resource Graph lags ARM by seconds to minutes, so what it says is checked where it
//! matters: a VM it reports as not running, or whose network it does not fully know (a
//! NIC, public IP or subnet missing from its rows, a first IP configuration that is not
//! the primary one), is read from ARM ([`read_vm`]) before anything is decided; an
//! address it reports is checked by the probe that waits for the port.

use futures::future::try_join_all;
use serde::{Deserialize, Deserializer, Serialize};

use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::clients::{
    InstanceViewTypes, KqlCondition, NetworkInterfacesClient, PublicIpAddressesClient,
    ResourcesQuery, SortOrder, SubnetsClient, VirtualMachinesClient, VirtualMachinesGetOptions,
};
use crate::azure::models::{OperatingSystemTypes, PowerState, VirtualMachine, normalize_location};
use crate::azure::resource_id::{ResourceId, same_resource_id};

/// A public IP address resource attached to a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAddressDetails {
    /// Resource id.
    pub id: String,
    /// The address, when allocated.
    pub address: Option<String>,
    /// The DNS name, when one is set.
    pub fqdn: Option<String>,
}

/// A NIC of the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceDetails {
    /// Resource id.
    pub id: String,
    /// The primary IP configuration's private address.
    pub private_ip: Option<String>,
    /// The primary IP configuration's public IP, if any.
    pub public_ip: Option<PublicAddressDetails>,
    /// NSG on the NIC.
    pub network_security_group_id: Option<String>,
    /// Subnet of the primary IP configuration.
    pub subnet_id: Option<String>,
    /// NSG on that subnet.
    pub subnet_network_security_group_id: Option<String>,
}

/// A VM with its network.
#[derive(Debug, Clone, Serialize)]
pub struct VmDetails {
    /// Resource id as ARM returned it.
    pub id: String,
    /// Name.
    pub name: String,
    /// Resource group.
    pub resource_group: String,
    /// Subscription id.
    pub subscription_id: String,
    /// Region, short form.
    pub location: String,
    /// OS family.
    pub os: Option<OperatingSystemTypes>,
    /// Power state, from the instance view.
    pub power_state: Option<PowerState>,
    /// `osProfile.adminUsername`: the default user to sign in as.
    pub admin_username: Option<String>,
    /// `osProfile.computerName`.
    pub computer_name: Option<String>,
    /// NICs, the primary first.
    pub interfaces: Vec<InterfaceDetails>,
    /// The VM as ARM returned it, when it was read from ARM (`None` when the details
    /// came from Resource Graph or from what the agent remembered).
    #[serde(skip)]
    pub virtual_machine: Option<VirtualMachine>,
}

/// What kind of address [`VmDetails::connect_address`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// The NIC's public IP address.
    Public,
    /// The public IP's DNS name (no address allocated).
    Fqdn,
    /// The private address (reachable over a VPN or peering only).
    Private,
}

impl VmDetails {
    /// Whether the VM runs (unknown counts as running: the API may not say).
    pub fn is_running(&self) -> bool {
        matches!(self.power_state, None | Some(PowerState::Running))
    }

    /// Whether an NSG guards the VM on a NIC or a subnet.
    pub fn has_network_security_group(&self) -> bool {
        self.interfaces.iter().any(|interface| {
            interface.network_security_group_id.is_some()
                || interface.subnet_network_security_group_id.is_some()
        })
    }

    /// Where to connect to the VM directly: the primary NIC's public address, else its
    /// DNS name, else the private address.
    pub fn connect_address(&self) -> Option<(String, AddressKind)> {
        let public = self.interfaces.iter().find_map(|interface| {
            let public = interface.public_ip.as_ref()?;
            public
                .address
                .clone()
                .map(|address| (address, AddressKind::Public))
                .or_else(|| public.fqdn.clone().map(|fqdn| (fqdn, AddressKind::Fqdn)))
        });
        public.or_else(|| {
            self.interfaces.iter().find_map(|interface| {
                interface
                    .private_ip
                    .clone()
                    .map(|address| (address, AddressKind::Private))
            })
        })
    }
}

/// Reads a VM (with its instance view), its NICs, their public IPs and subnets.
pub async fn read_vm(arm: &ArmClient, vm_id: &str) -> Result<VmDetails, ArmError> {
    let virtual_machine = VirtualMachinesClient::new(arm.clone())
        .get_by_id(
            vm_id,
            Some(VirtualMachinesGetOptions {
                expand: Some(InstanceViewTypes::InstanceView),
            }),
        )
        .await?;
    let id = virtual_machine
        .id
        .clone()
        .unwrap_or_else(|| vm_id.to_owned());
    let parsed = ResourceId::parse(&id).map_err(|error| ArmError::InvalidResponse {
        detail: error.to_string(),
    })?;
    let nic_ids: Vec<String> = virtual_machine
        .network_interface_ids()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let interfaces = try_join_all(nic_ids.iter().map(|nic_id| read_interface(arm, nic_id))).await?;
    Ok(VmDetails {
        name: virtual_machine
            .name
            .clone()
            .or_else(|| parsed.name().map(str::to_owned))
            .unwrap_or_default(),
        resource_group: parsed.resource_group().unwrap_or_default().to_owned(),
        subscription_id: parsed.subscription_id().to_owned(),
        location: virtual_machine.normalized_location().unwrap_or_default(),
        os: virtual_machine.os_type().cloned(),
        power_state: virtual_machine.power_state(),
        admin_username: virtual_machine.admin_username().map(str::to_owned),
        computer_name: virtual_machine
            .properties
            .as_ref()
            .and_then(|properties| properties.os_profile.as_ref())
            .and_then(|profile| profile.computer_name.clone()),
        interfaces,
        id,
        virtual_machine: Some(virtual_machine),
    })
}

async fn read_interface(arm: &ArmClient, nic_id: &str) -> Result<InterfaceDetails, ArmError> {
    let nic = NetworkInterfacesClient::new(arm.clone())
        .get_by_id(nic_id, None)
        .await?;
    let primary = nic.ip_configurations().into_iter().next().cloned();
    let public_ip_id = primary
        .as_ref()
        .and_then(|configuration| configuration.public_ip_address.as_ref())
        .and_then(|public| public.id.clone());
    let subnet_id = primary
        .as_ref()
        .and_then(|configuration| configuration.subnet.as_ref())
        .and_then(|subnet| subnet.id.clone());
    let public_ip = async {
        match &public_ip_id {
            Some(id) => {
                let public = PublicIpAddressesClient::new(arm.clone())
                    .get_by_id(id, None)
                    .await?;
                Ok::<_, ArmError>(Some(PublicAddressDetails {
                    id: id.clone(),
                    address: public.ip_address().map(str::to_owned),
                    fqdn: public.fqdn().map(str::to_owned),
                }))
            }
            None => Ok(None),
        }
    };
    let subnet_nsg = async {
        match &subnet_id {
            Some(id) => Ok::<_, ArmError>(
                SubnetsClient::new(arm.clone())
                    .get_by_id(id, None)
                    .await?
                    .network_security_group_id()
                    .map(str::to_owned),
            ),
            None => Ok(None),
        }
    };
    let (public_ip, subnet_network_security_group_id) = futures::try_join!(public_ip, subnet_nsg)?;
    Ok(InterfaceDetails {
        id: nic.id.clone().unwrap_or_else(|| nic_id.to_owned()),
        private_ip: primary.and_then(|configuration| configuration.private_ip_address),
        public_ip,
        network_security_group_id: nic.network_security_group_id().map(str::to_owned),
        subnet_id,
        subnet_network_security_group_id,
    })
}

/// The VM's own facts, then one row per NIC (`mv-expand`, keeping the NIC's position and
/// whether the VM calls it primary).
const VM_STAGES: [&str; 3] = [
    "extend powerState = tostring(properties.extended.instanceView.powerState.code), \
     osType = tostring(properties.storageProfile.osDisk.osType), \
     adminUsername = tostring(properties.osProfile.adminUsername), \
     computerName = tostring(properties.osProfile.computerName)",
    "mv-expand with_itemindex = nicIndex nic = properties.networkProfile.networkInterfaces",
    "extend nicId = tolower(tostring(nic.id)), nicPrimary = tostring(nic.properties.primary)",
];

/// Each NIC's first IP configuration (ARM lists the primary first; a row that says
/// otherwise is read from ARM), its public IP and its subnet's NSG. Keys are compared
/// lower-cased: ids differ in case between the resources that hold them.
const NETWORK_STAGES: [&str; 3] = [
    "join kind=leftouter (Resources | where type =~ 'microsoft.network/networkinterfaces' \
     | extend ipConfiguration = properties.ipConfigurations[0] \
     | project nicId = tolower(id), nicResourceId = id, \
     ipConfigurationPrimary = tostring(ipConfiguration.properties.primary), \
     privateIp = tostring(ipConfiguration.properties.privateIPAddress), \
     publicIpId = tolower(tostring(ipConfiguration.properties.publicIPAddress.id)), \
     subnetId = tolower(tostring(ipConfiguration.properties.subnet.id)), \
     nicNsgId = tostring(properties.networkSecurityGroup.id)) on nicId",
    "join kind=leftouter (Resources | where type =~ 'microsoft.network/publicipaddresses' \
     | project publicIpId = tolower(id), publicIpResourceId = id, \
     publicIpAddress = tostring(properties.ipAddress), \
     publicIpFqdn = tostring(properties.dnsSettings.fqdn)) on publicIpId",
    "join kind=leftouter (Resources | where type =~ 'microsoft.network/virtualnetworks' \
     | mv-expand subnet = properties.subnets \
     | project subnetId = tolower(tostring(subnet.id)), subnetResourceId = tostring(subnet.id), \
     subnetNsgId = tostring(subnet.properties.networkSecurityGroup.id)) on subnetId",
];

/// The columns [`GraphRow`] reads.
const NETWORK_COLUMNS: [&str; 24] = [
    "id",
    "name",
    "type",
    "resourceGroup",
    "subscriptionId",
    "location",
    "osType",
    "powerState",
    "adminUsername",
    "computerName",
    "nicIndex",
    "nicPrimary",
    "nicId",
    "nicResourceId",
    "ipConfigurationPrimary",
    "privateIp",
    "publicIpId",
    "publicIpResourceId",
    "publicIpAddress",
    "publicIpFqdn",
    "subnetId",
    "subnetResourceId",
    "nicNsgId",
    "subnetNsgId",
];

/// One Resource Graph query that finds VMs (`conditions` on the VM rows, for example the
/// type and a name) and brings in everything [`VmDetails`] holds: power state, OS, admin
/// user, and for each NIC its private address, public IP (address and DNS name), NSG
/// and its subnet's NSG. One row per VM and NIC; classic VMs have one row without NIC.
pub fn network_query(conditions: Vec<KqlCondition>) -> ResourcesQuery {
    let mut query = ResourcesQuery::new().filter(conditions);
    for stage in VM_STAGES.into_iter().chain(NETWORK_STAGES) {
        query = query.stage(stage);
    }
    for column in NETWORK_COLUMNS {
        query = query.project(column);
    }
    query.order_by("id", SortOrder::Ascending)
}

/// A row of [`network_query`]. Resource Graph writes an absent value as `""` after
/// `tostring`, so empty texts read as `None`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphRow {
    /// The VM's resource id.
    pub id: String,
    /// The VM's name.
    pub name: String,
    /// Lower-case resource type.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Resource group (Resource Graph lower-cases it; the id keeps ARM's case).
    pub resource_group: String,
    /// Subscription id.
    pub subscription_id: String,
    /// Region.
    pub location: String,
    /// `Linux` or `Windows`.
    #[serde(default, deserialize_with = "text")]
    pub os_type: Option<String>,
    /// `PowerState/running` and so on.
    #[serde(default, deserialize_with = "text")]
    pub power_state: Option<String>,
    /// `osProfile.adminUsername`.
    #[serde(default, deserialize_with = "text")]
    pub admin_username: Option<String>,
    /// `osProfile.computerName`.
    #[serde(default, deserialize_with = "text")]
    pub computer_name: Option<String>,
    /// The NIC's position in the VM's list.
    #[serde(default)]
    pub nic_index: Option<i64>,
    /// `true` when the VM marks the NIC primary.
    #[serde(default, deserialize_with = "text")]
    pub nic_primary: Option<String>,
    /// The NIC's id as the VM lists it, lower-cased.
    #[serde(default, deserialize_with = "text")]
    pub nic_id: Option<String>,
    /// The NIC's id from its own row (empty when Resource Graph has no such row).
    #[serde(default, deserialize_with = "text")]
    pub nic_resource_id: Option<String>,
    /// Whether the NIC's first IP configuration is its primary one.
    #[serde(default, deserialize_with = "text")]
    pub ip_configuration_primary: Option<String>,
    /// The private address.
    #[serde(default, deserialize_with = "text")]
    pub private_ip: Option<String>,
    /// The public IP's id as the NIC lists it, lower-cased.
    #[serde(default, deserialize_with = "text")]
    pub public_ip_id: Option<String>,
    /// The public IP's id from its own row.
    #[serde(default, deserialize_with = "text")]
    pub public_ip_resource_id: Option<String>,
    /// The public address.
    #[serde(default, deserialize_with = "text")]
    pub public_ip_address: Option<String>,
    /// The public IP's DNS name.
    #[serde(default, deserialize_with = "text")]
    pub public_ip_fqdn: Option<String>,
    /// The subnet's id as the NIC lists it, lower-cased.
    #[serde(default, deserialize_with = "text")]
    pub subnet_id: Option<String>,
    /// The subnet's id from its virtual network's row.
    #[serde(default, deserialize_with = "text")]
    pub subnet_resource_id: Option<String>,
    /// The NIC's NSG.
    #[serde(default, deserialize_with = "text")]
    pub nic_nsg_id: Option<String>,
    /// The subnet's NSG.
    #[serde(default, deserialize_with = "text")]
    pub subnet_nsg_id: Option<String>,
}

/// Reads a text column: `""`, null and non-text values count as absent.
fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(match value {
        Some(serde_json::Value::String(text)) if !text.is_empty() => Some(text),
        _ => None,
    })
}

impl GraphRow {
    /// Whether this row is about the VM `id`.
    pub fn is_vm(&self, id: &str) -> bool {
        same_resource_id(&self.id, id)
    }
}

/// What Resource Graph's rows tell about one VM.
#[derive(Debug, Clone)]
pub enum GraphDetails {
    /// Everything [`VmDetails`] holds.
    Complete(Box<VmDetails>),
    /// Some of the network is missing from the rows (Resource Graph lags, or a NIC's
    /// first IP configuration is not its primary one): read the VM from ARM.
    Incomplete(String),
}

impl VmDetails {
    /// The details from the rows of one VM ([`network_query`]), or why they are not
    /// enough. `rows` must all be about the same VM.
    pub fn from_graph(rows: &[GraphRow]) -> GraphDetails {
        let Some(first) = rows.first() else {
            return GraphDetails::Incomplete("Resource Graph returned no row".to_owned());
        };
        let parsed = match ResourceId::parse(&first.id) {
            Ok(parsed) => parsed,
            Err(error) => return GraphDetails::Incomplete(error.to_string()),
        };
        let mut nics: Vec<&GraphRow> = rows.iter().filter(|row| row.nic_id.is_some()).collect();
        // The primary NIC first, then the VM's order (as `network_interface_ids`).
        nics.sort_by_key(|row| {
            (
                row.nic_primary.as_deref() != Some("true"),
                row.nic_index.unwrap_or(i64::MAX),
            )
        });
        let mut interfaces = Vec::with_capacity(nics.len());
        for row in nics {
            let Some(nic_id) = row.nic_resource_id.clone() else {
                return GraphDetails::Incomplete(format!(
                    "Resource Graph does not know the NIC {}",
                    row.nic_id.as_deref().unwrap_or_default()
                ));
            };
            if row.ip_configuration_primary.as_deref() == Some("false") {
                return GraphDetails::Incomplete(format!(
                    "the first IP configuration of {nic_id} is not its primary one"
                ));
            }
            if row.public_ip_id.is_some() && row.public_ip_resource_id.is_none() {
                return GraphDetails::Incomplete(format!(
                    "Resource Graph does not know the public IP of {nic_id}"
                ));
            }
            if row.subnet_id.is_some() && row.subnet_resource_id.is_none() {
                return GraphDetails::Incomplete(format!(
                    "Resource Graph does not know the subnet of {nic_id}"
                ));
            }
            interfaces.push(InterfaceDetails {
                id: nic_id,
                private_ip: row.private_ip.clone(),
                public_ip: row
                    .public_ip_resource_id
                    .clone()
                    .map(|id| PublicAddressDetails {
                        id,
                        address: row.public_ip_address.clone(),
                        fqdn: row.public_ip_fqdn.clone(),
                    }),
                network_security_group_id: row.nic_nsg_id.clone(),
                subnet_id: row.subnet_resource_id.clone(),
                subnet_network_security_group_id: row.subnet_nsg_id.clone(),
            });
        }
        if interfaces.is_empty() {
            return GraphDetails::Incomplete("Resource Graph lists no NIC for the VM".to_owned());
        }
        GraphDetails::Complete(Box::new(VmDetails {
            id: first.id.clone(),
            name: first.name.clone(),
            resource_group: parsed
                .resource_group()
                .unwrap_or(&first.resource_group)
                .to_owned(),
            subscription_id: parsed.subscription_id().to_owned(),
            location: normalize_location(&first.location),
            os: first.os_type.as_deref().map(OperatingSystemTypes::from),
            power_state: first.power_state.as_deref().and_then(PowerState::from_code),
            admin_username: first.admin_username.clone(),
            computer_name: first.computer_name.clone(),
            interfaces,
            virtual_machine: None,
        }))
    }
}
