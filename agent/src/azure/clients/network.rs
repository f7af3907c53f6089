//! Microsoft.Network reads (2024-05-01): NICs, public IPs, subnets, NSGs and rules.

use super::{id_of_type, resource_group_path, segment};
use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::models::{
    NETWORK_API_VERSION, NetworkInterface, NetworkSecurityGroup, PublicIpAddress, SecurityRule,
    Subnet,
};

/// Options of [`NetworkInterfacesClient::get`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkInterfacesGetOptions {
    /// `$expand`: referenced resources to expand (e.g. `ipConfigurations/publicIPAddress`).
    pub expand: Option<String>,
}

/// Options of [`PublicIpAddressesClient::get`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublicIpAddressesGetOptions {
    /// `$expand`.
    pub expand: Option<String>,
}

/// Options of [`SubnetsClient::get`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetsGetOptions {
    /// `$expand`.
    pub expand: Option<String>,
}

/// Options of [`NetworkSecurityGroupsClient::get`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkSecurityGroupsGetOptions {
    /// `$expand`.
    pub expand: Option<String>,
}

/// GET a Network resource, with `$expand` when given: every read here is this call.
async fn get_expanded<T: serde::de::DeserializeOwned>(
    arm: &ArmClient,
    path: &str,
    expand: Option<String>,
) -> Result<T, ArmError> {
    let query: Vec<(&str, &str)> = expand
        .as_deref()
        .map(|expand| ("$expand", expand))
        .into_iter()
        .collect();
    arm.get_json(path, NETWORK_API_VERSION, &query).await
}

/// Network interfaces.
#[derive(Clone, Debug)]
pub struct NetworkInterfacesClient {
    arm: ArmClient,
}

impl NetworkInterfacesClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// One NIC (`NetworkInterfaces_Get`).
    pub async fn get(
        &self,
        subscription_id: &str,
        resource_group: &str,
        name: &str,
        options: Option<NetworkInterfacesGetOptions>,
    ) -> Result<NetworkInterface, ArmError> {
        segment("network interface name", name)?;
        let path = format!(
            "{}/providers/Microsoft.Network/networkInterfaces/{name}",
            resource_group_path(subscription_id, resource_group)?
        );
        get_expanded(&self.arm, &path, options.and_then(|options| options.expand)).await
    }

    /// One NIC by id (as referenced from a VM).
    pub async fn get_by_id(
        &self,
        id: &str,
        options: Option<NetworkInterfacesGetOptions>,
    ) -> Result<NetworkInterface, ArmError> {
        let id = id_of_type(id, "Microsoft.Network/networkInterfaces")?;
        get_expanded(
            &self.arm,
            id.as_str(),
            options.and_then(|options| options.expand),
        )
        .await
    }
}

/// Public IP addresses.
#[derive(Clone, Debug)]
pub struct PublicIpAddressesClient {
    arm: ArmClient,
}

impl PublicIpAddressesClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// One public IP (`PublicIPAddresses_Get`).
    pub async fn get(
        &self,
        subscription_id: &str,
        resource_group: &str,
        name: &str,
        options: Option<PublicIpAddressesGetOptions>,
    ) -> Result<PublicIpAddress, ArmError> {
        segment("public IP name", name)?;
        let path = format!(
            "{}/providers/Microsoft.Network/publicIPAddresses/{name}",
            resource_group_path(subscription_id, resource_group)?
        );
        get_expanded(&self.arm, &path, options.and_then(|options| options.expand)).await
    }

    /// One public IP by id (as referenced from a NIC).
    pub async fn get_by_id(
        &self,
        id: &str,
        options: Option<PublicIpAddressesGetOptions>,
    ) -> Result<PublicIpAddress, ArmError> {
        let id = id_of_type(id, "Microsoft.Network/publicIPAddresses")?;
        get_expanded(
            &self.arm,
            id.as_str(),
            options.and_then(|options| options.expand),
        )
        .await
    }
}

/// Subnets of virtual networks.
#[derive(Clone, Debug)]
pub struct SubnetsClient {
    arm: ArmClient,
}

impl SubnetsClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// One subnet (`Subnets_Get`).
    pub async fn get(
        &self,
        subscription_id: &str,
        resource_group: &str,
        virtual_network: &str,
        subnet: &str,
        options: Option<SubnetsGetOptions>,
    ) -> Result<Subnet, ArmError> {
        segment("virtual network name", virtual_network)?;
        segment("subnet name", subnet)?;
        let path = format!(
            "{}/providers/Microsoft.Network/virtualNetworks/{virtual_network}/subnets/{subnet}",
            resource_group_path(subscription_id, resource_group)?
        );
        get_expanded(&self.arm, &path, options.and_then(|options| options.expand)).await
    }

    /// One subnet by id (as referenced from a NIC's IP configuration).
    pub async fn get_by_id(
        &self,
        id: &str,
        options: Option<SubnetsGetOptions>,
    ) -> Result<Subnet, ArmError> {
        let id = id_of_type(id, "Microsoft.Network/virtualNetworks/subnets")?;
        get_expanded(
            &self.arm,
            id.as_str(),
            options.and_then(|options| options.expand),
        )
        .await
    }
}

/// Network security groups.
#[derive(Clone, Debug)]
pub struct NetworkSecurityGroupsClient {
    arm: ArmClient,
}

impl NetworkSecurityGroupsClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// One NSG with its rules (`NetworkSecurityGroups_Get`).
    pub async fn get(
        &self,
        subscription_id: &str,
        resource_group: &str,
        name: &str,
        options: Option<NetworkSecurityGroupsGetOptions>,
    ) -> Result<NetworkSecurityGroup, ArmError> {
        let path = nsg_path(subscription_id, resource_group, name)?;
        get_expanded(&self.arm, &path, options.and_then(|options| options.expand)).await
    }

    /// One NSG by id (as referenced from a NIC or subnet).
    pub async fn get_by_id(
        &self,
        id: &str,
        options: Option<NetworkSecurityGroupsGetOptions>,
    ) -> Result<NetworkSecurityGroup, ArmError> {
        let id = id_of_type(id, "Microsoft.Network/networkSecurityGroups")?;
        get_expanded(
            &self.arm,
            id.as_str(),
            options.and_then(|options| options.expand),
        )
        .await
    }

    /// The NSG's own rules, without the defaults (`SecurityRules_List`).
    pub async fn list_security_rules(
        &self,
        subscription_id: &str,
        resource_group: &str,
        name: &str,
    ) -> Result<Vec<SecurityRule>, ArmError> {
        let path = format!(
            "{}/securityRules",
            nsg_path(subscription_id, resource_group, name)?
        );
        self.arm.list_all(&path, NETWORK_API_VERSION, &[]).await
    }
}

fn nsg_path(subscription_id: &str, resource_group: &str, name: &str) -> Result<String, ArmError> {
    segment("network security group name", name)?;
    Ok(format!(
        "{}/providers/Microsoft.Network/networkSecurityGroups/{name}",
        resource_group_path(subscription_id, resource_group)?
    ))
}
