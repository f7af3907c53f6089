//! The JSON ARM returns for each emulated resource.
//!
//! Shapes follow the specs and Microsoft's examples in `../shared/azure-rest/` (key
//! names, nesting, which fields are strings or numbers), with the values the world gives.
//! The same JSON serves the resource providers, Resource Graph rows and the admin state
//! dump, so a client sees one resource one way wherever it looks.

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::gate::default_security_rules;
use super::ids::key;
use super::model::{
    AzureFirewall, ClassicVirtualMachine, JitPolicy, JitRequest, NetworkInterface,
    NetworkSecurityGroup, Pricing, PublicIpAddress, RequestPort, Resources, SecurityRule,
    SourcePrefixes, Subnet, Subscription, VirtualMachine, VirtualNetwork,
};
use crate::world::{OsType, PricingTier, RuleAccess, RuleDirection};

/// Timestamps as ARM writes them: RFC 3339 with seven fractional digits.
pub(crate) fn timestamp(at: Timestamp) -> String {
    format!("{at:.7}")
}

fn reference(id: &str) -> Value {
    json!({ "id": id })
}

/// The id as the world spells it, for a key (falls back to the key).
fn display_id<'a>(resources: &'a Resources, resource_key: &'a str) -> &'a str {
    resources
        .network_interfaces
        .get(resource_key)
        .map(|nic| nic.placement.id.as_str())
        .or_else(|| {
            resources
                .public_ip_addresses
                .get(resource_key)
                .map(|ip| ip.placement.id.as_str())
        })
        .or_else(|| {
            resources
                .network_security_groups
                .get(resource_key)
                .map(|nsg| nsg.placement.id.as_str())
        })
        .or_else(|| {
            resources
                .virtual_machines
                .get(resource_key)
                .map(|vm| vm.placement.id.as_str())
        })
        .or_else(|| {
            resources
                .azure_firewalls
                .get(resource_key)
                .map(|firewall| firewall.placement.id.as_str())
        })
        .or_else(|| {
            resources
                .subnet(resource_key)
                .map(|(_, subnet)| subnet.id.as_str())
        })
        .unwrap_or(resource_key)
}

/// What points at what, the other way round: the NICs in each subnet and the NICs and
/// subnets an NSG is associated with (ids as the world spells them, in id order). ARM
/// shows these on the subnet and the NSG; computing them once per batch keeps rendering
/// many resources linear.
#[derive(Debug, Default)]
pub(crate) struct Associations {
    /// Subnet key → NIC ids.
    pub subnet_nics: HashMap<String, Vec<String>>,
    /// NSG key → NIC ids.
    pub nsg_nics: HashMap<String, Vec<String>>,
    /// NSG key → subnet ids.
    pub nsg_subnets: HashMap<String, Vec<String>>,
}

impl Resources {
    /// Every association, in one pass over NICs and subnets.
    pub(crate) fn associations(&self) -> Associations {
        let mut associations = Associations::default();
        for nic in self.network_interfaces.values() {
            associations
                .subnet_nics
                .entry(nic.subnet.clone())
                .or_default()
                .push(nic.placement.id.clone());
            if let Some(nsg) = &nic.network_security_group {
                associations
                    .nsg_nics
                    .entry(nsg.clone())
                    .or_default()
                    .push(nic.placement.id.clone());
            }
        }
        for subnet in self
            .virtual_networks
            .values()
            .flat_map(|network| &network.subnets)
        {
            if let Some(nsg) = &subnet.network_security_group {
                associations
                    .nsg_subnets
                    .entry(nsg.clone())
                    .or_default()
                    .push(subnet.id.clone());
            }
        }
        associations
    }

    /// The associations of one NSG only.
    fn associations_of_nsg(&self, nsg: &NetworkSecurityGroup) -> Associations {
        let nsg_key = key(&nsg.placement.id);
        let mut associations = Associations::default();
        let nics = self
            .network_interfaces
            .values()
            .filter(|nic| nic.network_security_group.as_deref() == Some(nsg_key.as_str()))
            .map(|nic| nic.placement.id.clone())
            .collect();
        let subnets = self
            .virtual_networks
            .values()
            .flat_map(|network| &network.subnets)
            .filter(|subnet| subnet.network_security_group.as_deref() == Some(nsg_key.as_str()))
            .map(|subnet| subnet.id.clone())
            .collect();
        associations.nsg_nics.insert(nsg_key.clone(), nics);
        associations.nsg_subnets.insert(nsg_key, subnets);
        associations
    }

    /// `Microsoft.Resources` subscription.
    pub(crate) fn render_subscription(&self, subscription: &Subscription) -> Value {
        json!({
            "id": format!("/subscriptions/{}", subscription.id),
            "subscriptionId": subscription.id,
            "tenantId": self.tenant_id,
            "displayName": subscription.display_name,
            "state": subscription.state.as_str(),
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off"
            },
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "tags": {}
        })
    }

    /// `Microsoft.Security/locations` (the home region).
    pub(crate) fn render_security_location(&self, subscription_id: &str) -> Value {
        json!({
            "id": format!(
                "/subscriptions/{subscription_id}/providers/Microsoft.Security/locations/{}",
                self.security_home_region
            ),
            "name": self.security_home_region,
            "type": "Microsoft.Security/locations",
            "properties": { "homeRegionName": self.security_home_region }
        })
    }

    /// A Defender plan of a subscription (`Pricing`, 2024-01-01). A subscription-level
    /// plan is never inherited and not enforced; its coverage is full when on.
    pub(crate) fn render_pricing(&self, subscription_id: &str, pricing: &Pricing) -> Value {
        let mut properties = json!({
            "pricingTier": pricing.tier.as_str(),
            "freeTrialRemainingTime": "PT0S",
            "enforce": "False",
            "resourcesCoverageStatus": match pricing.tier {
                PricingTier::Standard => "FullyCovered",
                PricingTier::Free => "NotCovered",
            }
        });
        if let Some(sub_plan) = &pricing.sub_plan {
            properties["subPlan"] = json!(sub_plan);
        }
        if let Some(since) = pricing.enabled_since {
            properties["enablementTime"] = json!(timestamp(since));
        }
        json!({
            "id": format!(
                "/subscriptions/{subscription_id}/providers/Microsoft.Security/pricings/{}",
                pricing.name
            ),
            "name": pricing.name,
            "type": "Microsoft.Security/pricings",
            "properties": properties
        })
    }

    /// A VM, optionally with `properties.instanceView`.
    pub(crate) fn render_virtual_machine(
        &self,
        vm: &VirtualMachine,
        client_public_key: Option<&str>,
        with_instance_view: bool,
        now: Timestamp,
    ) -> Value {
        let placement = &vm.placement;
        let resource_group_id =
            super::ids::resource_group_id(&placement.subscription_id, &placement.resource_group);
        let os_disk = format!(
            "{}_OsDisk_1_{}",
            placement.name,
            vm.vm_uuid.replace('-', "")
        );
        let image = match vm.os {
            OsType::Linux => json!({
                "publisher": "Canonical",
                "offer": "ubuntu-24_04-lts",
                "sku": "server",
                "version": "latest"
            }),
            OsType::Windows => json!({
                "publisher": "MicrosoftWindowsServer",
                "offer": "WindowsServer",
                "sku": "2022-datacenter-azure-edition",
                "version": "latest"
            }),
        };
        let mut os_profile = json!({
            "computerName": vm.computer_name,
            "adminUsername": vm.admin_username,
            "secrets": []
        });
        match vm.os {
            OsType::Linux => {
                let public_keys: Vec<Value> = client_public_key
                    .map(|key_data| {
                        json!({
                            "path": format!("/home/{}/.ssh/authorized_keys", vm.admin_username),
                            "keyData": key_data
                        })
                    })
                    .into_iter()
                    .collect();
                os_profile["linuxConfiguration"] = json!({
                    "disablePasswordAuthentication": true,
                    "ssh": { "publicKeys": public_keys },
                    "provisionVMAgent": true
                });
            }
            OsType::Windows => {
                os_profile["windowsConfiguration"] = json!({
                    "provisionVMAgent": true,
                    "enableAutomaticUpdates": true
                });
            }
        }
        let network_interfaces: Vec<Value> = vm
            .network_interfaces
            .iter()
            .enumerate()
            .map(|(index, nic)| {
                json!({
                    "id": display_id(self, nic),
                    "properties": { "primary": index == 0 }
                })
            })
            .collect();
        let mut properties = json!({
            "vmId": vm.vm_uuid,
            "hardwareProfile": { "vmSize": vm.size },
            "storageProfile": {
                "imageReference": image,
                "osDisk": {
                    "osType": vm.os.as_str(),
                    "name": os_disk,
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "managedDisk": {
                        "storageAccountType": "Premium_LRS",
                        "id": format!("{resource_group_id}/providers/Microsoft.Compute/disks/{os_disk}")
                    },
                    "diskSizeGB": 30
                },
                "dataDisks": []
            },
            "osProfile": os_profile,
            "networkProfile": { "networkInterfaces": network_interfaces },
            "diagnosticsProfile": { "bootDiagnostics": { "enabled": true } },
            "provisioningState": "Succeeded",
            "timeCreated": timestamp(vm.created)
        });
        if with_instance_view {
            properties["instanceView"] = self.render_instance_view(vm, now);
        }
        json!({
            "name": placement.name,
            "id": placement.id,
            "type": "Microsoft.Compute/virtualMachines",
            "location": placement.location,
            "tags": {},
            "etag": "\"1\"",
            "properties": properties
        })
    }

    /// `VirtualMachineInstanceView`.
    pub(crate) fn render_instance_view(&self, vm: &VirtualMachine, now: Timestamp) -> Value {
        let (os_name, os_version) = match vm.os {
            OsType::Linux => ("ubuntu", "24.04"),
            OsType::Windows => ("Windows Server 2022 Datacenter Azure Edition", "10.0.20348"),
        };
        let mut view = json!({
            "computerName": vm.computer_name,
            "osName": os_name,
            "osVersion": os_version,
            "hyperVGeneration": "V2",
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Provisioning succeeded",
                    "time": timestamp(vm.created)
                },
                {
                    "code": vm.power.code(),
                    "level": "Info",
                    "displayStatus": vm.power.display()
                }
            ]
        });
        if vm.power == super::model::Power::Running {
            view["vmAgent"] = json!({
                "vmAgentVersion": "2.11.1.12",
                "statuses": [{
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Ready",
                    "message": "Guest Agent is running",
                    "time": timestamp(now)
                }]
            });
        }
        view
    }

    /// A network interface.
    pub(crate) fn render_network_interface(&self, nic: &NetworkInterface) -> Value {
        let placement = &nic.placement;
        let mut ip_properties = json!({
            "provisioningState": "Succeeded",
            "privateIPAddress": nic.private_ip.to_string(),
            "privateIPAllocationMethod": "Dynamic",
            "subnet": reference(display_id(self, &nic.subnet)),
            "primary": true,
            "privateIPAddressVersion": "IPv4"
        });
        if let Some(public_ip) = &nic.public_ip {
            ip_properties["publicIPAddress"] = reference(display_id(self, public_ip));
        }
        let mut properties = json!({
            "provisioningState": "Succeeded",
            "ipConfigurations": [{
                "name": "ipconfig1",
                "id": format!("{}/ipConfigurations/ipconfig1", placement.id),
                "properties": ip_properties
            }],
            "dnsSettings": {
                "dnsServers": [],
                "appliedDnsServers": [],
                "internalDomainNameSuffix": "emulated.internal.cloudapp.net"
            },
            "macAddress": nic.mac_address,
            "enableAcceleratedNetworking": false,
            "disableTcpStateTracking": false,
            "enableIPForwarding": false,
            "primary": true,
            "vnetEncryptionSupported": false
        });
        if let Some(nsg) = &nic.network_security_group {
            properties["networkSecurityGroup"] = reference(display_id(self, nsg));
        }
        if let Some(vm) = &nic.virtual_machine {
            properties["virtualMachine"] = reference(display_id(self, vm));
        }
        json!({
            "name": placement.name,
            "id": placement.id,
            "location": placement.location,
            "properties": properties,
            "type": "Microsoft.Network/networkInterfaces"
        })
    }

    /// A public IP address.
    pub(crate) fn render_public_ip_address(&self, ip: &PublicIpAddress) -> Value {
        let placement = &ip.placement;
        let mut properties = json!({
            "provisioningState": "Succeeded",
            "publicIPAddressVersion": "IPv4",
            "publicIPAllocationMethod": if ip.dynamic { "Dynamic" } else { "Static" },
            "idleTimeoutInMinutes": 4,
            "ddosSettings": { "protectionMode": "VirtualNetworkInherited" },
            "ipTags": []
        });
        if let Some(address) = ip.address {
            properties["ipAddress"] = json!(address.to_string());
        }
        if let (Some(label), Some(fqdn)) = (&ip.domain_name_label, ip.fqdn()) {
            properties["dnsSettings"] = json!({ "domainNameLabel": label, "fqdn": fqdn });
        }
        if let Some(configuration) = &ip.ip_configuration {
            properties["ipConfiguration"] = reference(configuration);
        }
        json!({
            "name": placement.name,
            "id": placement.id,
            "location": placement.location,
            "properties": properties,
            "type": "Microsoft.Network/publicIPAddresses"
        })
    }

    /// A subnet, its NICs taken from `associations`.
    fn render_subnet_with(
        &self,
        network: &VirtualNetwork,
        subnet: &Subnet,
        associations: &Associations,
    ) -> Value {
        let subnet_key = key(&subnet.id);
        let mut properties = json!({
            "provisioningState": "Succeeded",
            "addressPrefix": subnet.address_prefix,
            "privateEndpointNetworkPolicies": "Disabled",
            "privateLinkServiceNetworkPolicies": "Enabled"
        });
        if let Some(nsg) = &subnet.network_security_group {
            properties["networkSecurityGroup"] = reference(display_id(self, nsg));
        }
        if subnet.firewall.is_some() {
            // Traffic reaches this subnet through the firewall: a route table sends it there.
            properties["routeTable"] = reference(&format!(
                "{}/providers/Microsoft.Network/routeTables/rt-{}-{}",
                super::ids::resource_group_id(
                    &network.placement.subscription_id,
                    &network.placement.resource_group
                ),
                network.placement.name,
                subnet.name
            ));
        }
        let configurations: Vec<Value> = associations
            .subnet_nics
            .get(&subnet_key)
            .into_iter()
            .flatten()
            .map(|nic_id| reference(&format!("{nic_id}/ipConfigurations/ipconfig1")))
            .collect();
        if !configurations.is_empty() {
            properties["ipConfigurations"] = Value::Array(configurations);
        }
        json!({
            "name": subnet.name,
            "id": subnet.id,
            "type": "Microsoft.Network/virtualNetworks/subnets",
            "properties": properties
        })
    }

    /// A virtual network with its subnets.
    pub(crate) fn render_virtual_network(&self, network: &VirtualNetwork) -> Value {
        self.render_virtual_network_with(network, &self.associations())
    }

    /// A virtual network, its subnets' NICs taken from `associations` (for rendering
    /// many networks without scanning every NIC for each).
    pub(crate) fn render_virtual_network_with(
        &self,
        network: &VirtualNetwork,
        associations: &Associations,
    ) -> Value {
        let placement = &network.placement;
        let subnets: Vec<Value> = network
            .subnets
            .iter()
            .map(|subnet| self.render_subnet_with(network, subnet, associations))
            .collect();
        json!({
            "name": placement.name,
            "id": placement.id,
            "type": "Microsoft.Network/virtualNetworks",
            "location": placement.location,
            "properties": {
                "provisioningState": "Succeeded",
                "addressSpace": { "addressPrefixes": network.address_space },
                "subnets": subnets
            }
        })
    }

    /// A security rule (`default` for the six default rules).
    pub(crate) fn render_security_rule(
        &self,
        nsg: &NetworkSecurityGroup,
        rule: &SecurityRule,
        default: bool,
    ) -> Value {
        let collection = if default {
            "defaultSecurityRules"
        } else {
            "securityRules"
        };
        let mut properties = Map::new();
        properties.insert("provisioningState".into(), json!("Succeeded"));
        if let Some(description) = &rule.description {
            properties.insert("description".into(), json!(description));
        }
        properties.insert("protocol".into(), json!(rule.protocol));
        if let Some(range) = &rule.source_port_range {
            properties.insert("sourcePortRange".into(), json!(range));
        }
        properties.insert("sourcePortRanges".into(), json!(rule.source_port_ranges));
        if let Some(range) = &rule.destination_port_range {
            properties.insert("destinationPortRange".into(), json!(range));
        }
        properties.insert(
            "destinationPortRanges".into(),
            json!(rule.destination_port_ranges),
        );
        if let Some(prefix) = &rule.source_address_prefix {
            properties.insert("sourceAddressPrefix".into(), json!(prefix));
        }
        properties.insert(
            "sourceAddressPrefixes".into(),
            json!(rule.source_address_prefixes),
        );
        if let Some(prefix) = &rule.destination_address_prefix {
            properties.insert("destinationAddressPrefix".into(), json!(prefix));
        }
        properties.insert(
            "destinationAddressPrefixes".into(),
            json!(rule.destination_address_prefixes),
        );
        properties.insert(
            "access".into(),
            json!(match rule.access {
                RuleAccess::Allow => "Allow",
                RuleAccess::Deny => "Deny",
            }),
        );
        properties.insert("priority".into(), json!(rule.priority));
        properties.insert(
            "direction".into(),
            json!(match rule.direction {
                RuleDirection::Inbound => "Inbound",
                RuleDirection::Outbound => "Outbound",
            }),
        );
        let mut rendered = json!({
            "name": rule.name,
            "id": format!("{}/{collection}/{}", nsg.placement.id, rule.name),
            "type": format!("Microsoft.Network/networkSecurityGroups/{collection}"),
            "properties": Value::Object(properties)
        });
        if !rule.etag.is_empty() {
            rendered["etag"] = json!(format!("W/\"{}\"", rule.etag.to_ascii_lowercase()));
        }
        rendered
    }

    /// An NSG with its rules, default rules and associations.
    pub(crate) fn render_network_security_group(&self, nsg: &NetworkSecurityGroup) -> Value {
        self.render_network_security_group_with(nsg, &self.associations_of_nsg(nsg))
    }

    /// An NSG, its NICs and subnets taken from `associations` (for rendering many NSGs
    /// without scanning every NIC and subnet for each).
    pub(crate) fn render_network_security_group_with(
        &self,
        nsg: &NetworkSecurityGroup,
        associations: &Associations,
    ) -> Value {
        let nsg_key = key(&nsg.placement.id);
        let mut rules: Vec<&SecurityRule> = nsg.rules.iter().collect();
        rules.sort_by_key(|rule| (rule.direction == RuleDirection::Outbound, rule.priority));
        let security_rules: Vec<Value> = rules
            .into_iter()
            .map(|rule| self.render_security_rule(nsg, rule, false))
            .collect();
        let default_rules: Vec<Value> = default_security_rules()
            .iter()
            .map(|rule| self.render_security_rule(nsg, rule, true))
            .collect();
        let mut properties = json!({
            "provisioningState": "Succeeded",
            "securityRules": security_rules,
            "defaultSecurityRules": default_rules
        });
        let nics: Vec<Value> = associations
            .nsg_nics
            .get(&nsg_key)
            .into_iter()
            .flatten()
            .map(|id| reference(id))
            .collect();
        if !nics.is_empty() {
            properties["networkInterfaces"] = Value::Array(nics);
        }
        let subnets: Vec<Value> = associations
            .nsg_subnets
            .get(&nsg_key)
            .into_iter()
            .flatten()
            .map(|id| reference(id))
            .collect();
        if !subnets.is_empty() {
            properties["subnets"] = Value::Array(subnets);
        }
        json!({
            "name": nsg.placement.name,
            "id": nsg.placement.id,
            "type": "Microsoft.Network/networkSecurityGroups",
            "location": nsg.placement.location,
            "properties": properties
        })
    }

    /// An Azure Firewall with the DNAT rules JIT wrote.
    pub(crate) fn render_azure_firewall(&self, firewall: &AzureFirewall) -> Value {
        let placement = &firewall.placement;
        let public_address = self
            .public_ip_addresses
            .get(&firewall.public_ip)
            .and_then(|ip| ip.address)
            .map(|address| address.to_string());
        let rules: Vec<Value> = firewall
            .jit_rules
            .iter()
            .map(|rule| {
                json!({
                    "name": rule.name,
                    "sourceAddresses": rule.source_prefixes,
                    "destinationAddresses": public_address.iter().collect::<Vec<_>>(),
                    "destinationPorts": [rule.mapped_port.to_string()],
                    "protocols": [rule.protocol],
                    "translatedAddress": rule.translated_address.to_string(),
                    "translatedPort": rule.translated_port.to_string()
                })
            })
            .collect();
        let collections = if rules.is_empty() {
            Vec::new()
        } else {
            vec![json!({
                "name": "SecurityCenter-JIT",
                "id": format!("{}/natRuleCollections/SecurityCenter-JIT", placement.id),
                "properties": {
                    "priority": 100,
                    "action": { "type": "Dnat" },
                    "rules": rules,
                    "provisioningState": "Succeeded"
                }
            })]
        };
        json!({
            "name": placement.name,
            "id": placement.id,
            "type": "Microsoft.Network/azureFirewalls",
            "location": placement.location,
            "properties": {
                "provisioningState": "Succeeded",
                "sku": { "name": "AZFW_VNet", "tier": "Standard" },
                "threatIntelMode": "Alert",
                "ipConfigurations": [{
                    "name": "ipconfig1",
                    "id": format!("{}/azureFirewallIpConfigurations/ipconfig1", placement.id),
                    "properties": {
                        "provisioningState": "Succeeded",
                        "privateIPAddress": firewall.private_ip.to_string(),
                        "publicIPAddress": reference(display_id(self, &firewall.public_ip)),
                        "subnet": reference(display_id(self, &firewall.subnet))
                    }
                }],
                "natRuleCollections": collections,
                "networkRuleCollections": [],
                "applicationRuleCollections": []
            }
        })
    }

    /// A classic VM, as Resource Graph shows it.
    pub(crate) fn render_classic_virtual_machine(&self, vm: &ClassicVirtualMachine) -> Value {
        let placement = &vm.placement;
        json!({
            "name": placement.name,
            "id": placement.id,
            "type": "Microsoft.ClassicCompute/virtualMachines",
            "location": placement.location,
            "properties": {
                "provisioningState": "Succeeded",
                "instanceView": { "status": "ReadyRole", "powerState": "Started" },
                "hardwareProfile": { "size": "Small", "platformGuestAgent": true },
                "storageProfile": { "operatingSystemDisk": { "operatingSystem": vm.os.as_str() } }
            }
        })
    }

    /// A JIT policy with its request history.
    pub(crate) fn render_jit_policy(&self, policy: &JitPolicy) -> Value {
        let placement = &policy.placement;
        let virtual_machines: Vec<Value> = policy
            .virtual_machines
            .iter()
            .map(|entry| {
                let ports: Vec<Value> = entry
                    .ports
                    .iter()
                    .map(|port| {
                        let mut rendered = json!({
                            "number": port.number,
                            "protocol": port.protocol,
                        });
                        insert_sources(&mut rendered, &port.allowed_sources);
                        rendered["maxRequestAccessDuration"] =
                            json!(port.max_request_access_duration);
                        rendered
                    })
                    .collect();
                let mut rendered = json!({ "id": entry.id, "ports": ports });
                if let Some(address) = &entry.public_ip_address {
                    rendered["publicIpAddress"] = json!(address);
                }
                rendered
            })
            .collect();
        let requests: Vec<Value> = policy.requests.iter().map(render_jit_request).collect();
        json!({
            "kind": policy.kind.as_deref().unwrap_or("Basic"),
            "properties": {
                "virtualMachines": virtual_machines,
                "requests": requests,
                "provisioningState": "Succeeded"
            },
            "id": placement.id,
            "name": placement.name,
            "type": "Microsoft.Security/locations/jitNetworkAccessPolicies",
            "location": placement.location
        })
    }
}

fn insert_sources(target: &mut Value, sources: &SourcePrefixes) {
    match sources {
        SourcePrefixes::Single(prefix) => target["allowedSourceAddressPrefix"] = json!(prefix),
        SourcePrefixes::Many(prefixes) => target["allowedSourceAddressPrefixes"] = json!(prefixes),
    }
}

fn render_request_port(port: &RequestPort) -> Value {
    let mut rendered = json!({ "number": port.number });
    insert_sources(&mut rendered, &port.sources);
    rendered["endTimeUtc"] = json!(timestamp(port.end_time));
    rendered["status"] = json!(port.status.as_str());
    rendered["statusReason"] = json!(port.status_reason.as_str());
    if let Some(mapped) = port.mapped_port {
        rendered["mappedPort"] = json!(mapped);
    }
    rendered
}

/// A `JitNetworkAccessRequest`.
pub(crate) fn render_jit_request(request: &JitRequest) -> Value {
    let virtual_machines: Vec<Value> = request
        .virtual_machines
        .iter()
        .map(|vm| {
            let ports: Vec<Value> = vm.ports.iter().map(render_request_port).collect();
            json!({ "id": vm.id, "ports": ports })
        })
        .collect();
    let mut rendered = json!({
        "virtualMachines": virtual_machines,
        "startTimeUtc": timestamp(request.start_time),
        "requestor": request.requestor
    });
    if let Some(justification) = &request.justification {
        rendered["justification"] = json!(justification);
    }
    rendered
}
