//! Everything about one VM that JIT decisions depend on, read from ARM.
//!
//! Whether JIT can protect a VM depends on its network: JIT needs a network security
//! group on the NIC or on the subnet (or an Azure Firewall). Where to connect depends on
//! it too: the NIC's public IP (address or DNS name), else the private address for
//! people on a VPN. So a VM is read together with its NICs, their public IPs and
//! subnets; the reads of one level run concurrently.

use futures::future::try_join_all;
use serde::Serialize;

use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::clients::{
    InstanceViewTypes, NetworkInterfacesClient, PublicIpAddressesClient, SubnetsClient,
    VirtualMachinesClient, VirtualMachinesGetOptions,
};
use crate::azure::models::{OperatingSystemTypes, PowerState, VirtualMachine};
use crate::azure::resource_id::ResourceId;

/// A public IP address resource attached to a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicAddressDetails {
    /// Resource id.
    pub id: String,
    /// The address, when allocated.
    pub address: Option<String>,
    /// The DNS name, when one is set.
    pub fqdn: Option<String>,
}

/// A NIC of the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// The VM as ARM returned it.
    #[serde(skip)]
    pub virtual_machine: VirtualMachine,
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
        virtual_machine,
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
