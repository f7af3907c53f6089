//! Microsoft.Network (api-version 2024-05-01): NICs, public IPs, subnets, NSGs and their
//! rules, as far as `jit` reads them (addresses to connect to, and where JIT's NSG
//! rules live).

use serde::{Deserialize, Serialize};

use super::common::SubResource;

/// The api-version of every network call.
pub const NETWORK_API_VERSION: &str = "2024-05-01";

/// A network interface (`NetworkInterface`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<NetworkInterfacePropertiesFormat>,
}

/// `NetworkInterfacePropertiesFormat`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfacePropertiesFormat {
    /// IP configurations (private address, public IP, subnet).
    #[serde(default, rename = "ipConfigurations")]
    pub ip_configurations: Vec<NetworkInterfaceIpConfiguration>,
    /// The NSG on the NIC itself, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_security_group: Option<SubResource>,
    /// The VM the NIC is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine: Option<SubResource>,
    /// Whether this is the VM's primary NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// Provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
}

/// `NetworkInterfaceIPConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceIpConfiguration {
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<NetworkInterfaceIpConfigurationPropertiesFormat>,
}

string_enum! {
    /// `IPAllocationMethod` (`modelAsString`).
    IpAllocationMethod {
        /// Fixed address.
        Static => "Static",
        /// Assigned at allocation.
        Dynamic => "Dynamic",
    }
}

string_enum! {
    /// `IPVersion` (`modelAsString`).
    IpVersion {
        /// IPv4.
        IPv4 => "IPv4",
        /// IPv6.
        IPv6 => "IPv6",
    }
}

/// `NetworkInterfaceIPConfigurationPropertiesFormat`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceIpConfigurationPropertiesFormat {
    /// The private address (the destination of JIT's NSG rules).
    #[serde(
        default,
        rename = "privateIPAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_ip_address: Option<String>,
    /// How the private address is assigned.
    #[serde(
        default,
        rename = "privateIPAllocationMethod",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_ip_allocation_method: Option<IpAllocationMethod>,
    /// IPv4 or IPv6.
    #[serde(
        default,
        rename = "privateIPAddressVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_ip_address_version: Option<IpVersion>,
    /// The public IP (usually only its id; expanded with `$expand`).
    #[serde(
        default,
        rename = "publicIPAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_ip_address: Option<PublicIpAddress>,
    /// The subnet (usually only its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Subnet>,
    /// Whether this is the NIC's primary IP configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

impl NetworkInterface {
    /// The IP configurations, the primary first.
    pub fn ip_configurations(&self) -> Vec<&NetworkInterfaceIpConfigurationPropertiesFormat> {
        let mut configurations: Vec<&NetworkInterfaceIpConfigurationPropertiesFormat> = self
            .properties
            .iter()
            .flat_map(|properties| properties.ip_configurations.iter())
            .filter_map(|configuration| configuration.properties.as_ref())
            .collect();
        configurations.sort_by_key(|configuration| !configuration.primary.unwrap_or(false));
        configurations
    }

    /// The id of the NSG on the NIC, if any.
    pub fn network_security_group_id(&self) -> Option<&str> {
        self.properties
            .as_ref()?
            .network_security_group
            .as_ref()?
            .id
            .as_deref()
    }
}

/// A public IP address (`PublicIPAddress`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpAddress {
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<PublicIpAddressPropertiesFormat>,
}

/// `PublicIPAddressPropertiesFormat`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpAddressPropertiesFormat {
    /// The address; absent for a Dynamic IP that is not allocated.
    #[serde(default, rename = "ipAddress", skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// How the address is assigned.
    #[serde(
        default,
        rename = "publicIPAllocationMethod",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_ip_allocation_method: Option<IpAllocationMethod>,
    /// IPv4 or IPv6.
    #[serde(
        default,
        rename = "publicIPAddressVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_ip_address_version: Option<IpVersion>,
    /// DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_settings: Option<PublicIpAddressDnsSettings>,
    /// What the address is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_configuration: Option<SubResource>,
    /// Provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
}

/// `PublicIPAddressDnsSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpAddressDnsSettings {
    /// The label (`myvm` in `myvm.westus.cloudapp.azure.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name_label: Option<String>,
    /// The full DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
}

impl PublicIpAddress {
    /// The address, if allocated.
    pub fn ip_address(&self) -> Option<&str> {
        self.properties.as_ref()?.ip_address.as_deref()
    }

    /// The DNS name, if one is set.
    pub fn fqdn(&self) -> Option<&str> {
        self.properties
            .as_ref()?
            .dns_settings
            .as_ref()?
            .fqdn
            .as_deref()
    }
}

/// A subnet (`Subnet`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<SubnetPropertiesFormat>,
}

/// `SubnetPropertiesFormat`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubnetPropertiesFormat {
    /// Address range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_prefix: Option<String>,
    /// Address ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address_prefixes: Vec<String>,
    /// The NSG on the subnet, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_security_group: Option<SubResource>,
    /// The route table (a route to an Azure Firewall shows up here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table: Option<SubResource>,
    /// Provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
}

impl Subnet {
    /// The id of the NSG on the subnet, if any.
    pub fn network_security_group_id(&self) -> Option<&str> {
        self.properties
            .as_ref()?
            .network_security_group
            .as_ref()?
            .id
            .as_deref()
    }
}

/// A network security group (`NetworkSecurityGroup`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSecurityGroup {
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<NetworkSecurityGroupPropertiesFormat>,
}

/// `NetworkSecurityGroupPropertiesFormat`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSecurityGroupPropertiesFormat {
    /// Rules set by people and by JIT.
    #[serde(default)]
    pub security_rules: Vec<SecurityRule>,
    /// The six default rules (AllowVnetInBound … DenyAllOutBound).
    #[serde(default)]
    pub default_security_rules: Vec<SecurityRule>,
    /// NICs the NSG is attached to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<SubResource>,
    /// Subnets the NSG is attached to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<SubResource>,
    /// Provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
}

/// A security rule (`SecurityRule`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityRule {
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name (JIT's are `SecurityCenter-JITRule…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<SecurityRulePropertiesFormat>,
}

string_enum! {
    /// `SecurityRuleProtocol` (`modelAsString`).
    SecurityRuleProtocol {
        /// TCP.
        Tcp => "Tcp",
        /// UDP.
        Udp => "Udp",
        /// ICMP.
        Icmp => "Icmp",
        /// ESP.
        Esp => "Esp",
        /// Any.
        Any => "*",
        /// AH.
        Ah => "Ah",
    }
}

string_enum! {
    /// `SecurityRuleAccess` (`modelAsString`).
    SecurityRuleAccess {
        /// Allow.
        Allow => "Allow",
        /// Deny.
        Deny => "Deny",
    }
}

string_enum! {
    /// `SecurityRuleDirection` (`modelAsString`).
    SecurityRuleDirection {
        /// Inbound.
        Inbound => "Inbound",
        /// Outbound.
        Outbound => "Outbound",
    }
}

/// `SecurityRulePropertiesFormat`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityRulePropertiesFormat {
    /// Free text (JIT writes `ASC JIT Network Access rule …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<SecurityRuleProtocol>,
    /// Source port or range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port_range: Option<String>,
    /// Source ports or ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_port_ranges: Vec<String>,
    /// Destination port or range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port_range: Option<String>,
    /// Destination ports or ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_port_ranges: Vec<String>,
    /// Source address, CIDR, tag or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address_prefix: Option<String>,
    /// Source addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_address_prefixes: Vec<String>,
    /// Destination address, CIDR, tag or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_address_prefix: Option<String>,
    /// Destination addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_address_prefixes: Vec<String>,
    /// Allow or deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<SecurityRuleAccess>,
    /// 100–4096 for rules people write; 65000+ for default rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Inbound or outbound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<SecurityRuleDirection>,
    /// Provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
}

/// A page of security rules (`SecurityRuleListResult`).
pub type SecurityRuleListResult = super::Page<SecurityRule>;
