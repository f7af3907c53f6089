//! Turns a validated world into resources: ARM ids, GUIDs, addresses, bound ports, and
//! the JIT rules the world's policies imply.
//!
//! The world file says little on purpose; everything ARM would have made up (a `vmId`, a
//! MAC address, the deny rules a policy writes) is made up here, the same way it would be
//! at run time, so a world's policies look exactly like policies a client wrote.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use jiff::{SignedDuration, Timestamp};

use super::ids::{key, resource_id};
use super::jit::JitError;
use super::model::{
    AzureFirewall, BoundPort, ClassicVirtualMachine, NetworkInterface, NetworkSecurityGroup,
    Placement, PolicyPort, PolicyVirtualMachine, Power, Pricing, PublicIpAddress, ResourceGroup,
    Resources, SecurityRule, SourcePrefixes, Subnet, Subscription, VirtualMachine, VirtualNetwork,
};
use crate::world::{
    self, JitPolicySpec, PowerState, PricingTier, ResourceGroupSpec, World, WorldError,
    parse_iso_duration, reference_key, subnet_reference_key,
};

/// The address every allocated public IP has: VM ports are loopback listeners.
pub(crate) const PUBLIC_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What start-up learned before materialising: the port each VM port is bound to and
/// each VM's SSH host key, by VM key.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    /// `(vm key, logical number)` → bound number.
    pub ports: BTreeMap<(String, u16), u16>,
    /// vm key → host public key (`ssh-ed25519 AAAA…`).
    pub host_keys: BTreeMap<String, String>,
}

fn placement(
    subscription_id: &str,
    group: &ResourceGroupSpec,
    provider_type: &str,
    name: &str,
    location: Option<&String>,
) -> Placement {
    Placement {
        id: resource_id(subscription_id, &group.name, provider_type, name),
        subscription_id: subscription_id.to_owned(),
        resource_group: group.name.clone(),
        name: name.to_owned(),
        location: location.unwrap_or(&group.location).clone(),
    }
}

fn mac_address() -> String {
    let bytes: [u8; 3] = rand::random();
    format!(
        "00-0D-3A-{:02X}-{:02X}-{:02X}",
        bytes[0], bytes[1], bytes[2]
    )
}

fn missing(what: &str, reference: &str) -> WorldError {
    WorldError::Invalid(format!("{what} '{reference}' is not defined"))
}

/// Builds the resources of a validated world.
pub(crate) fn materialise(
    world: &World,
    bindings: &Bindings,
    now: Timestamp,
) -> Result<Resources, WorldError> {
    let mut resources = Resources {
        tenant_id: world.tenant_id.clone(),
        security_home_region: world.security_home_region.clone(),
        subscriptions: Vec::new(),
        resource_groups: BTreeMap::new(),
        virtual_machines: BTreeMap::new(),
        classic_virtual_machines: BTreeMap::new(),
        network_interfaces: BTreeMap::new(),
        public_ip_addresses: BTreeMap::new(),
        virtual_networks: BTreeMap::new(),
        network_security_groups: BTreeMap::new(),
        azure_firewalls: BTreeMap::new(),
        jit_policies: BTreeMap::new(),
        operations: BTreeMap::new(),
        network_operations: BTreeMap::new(),
        port_openings: Vec::new(),
    };
    let created = now
        .checked_sub(SignedDuration::from_hours(24 * 30))
        .unwrap_or(now);
    let mut policies = Vec::new();
    for subscription in &world.subscriptions {
        let subscription_id = subscription.id.as_str();
        let pricings = world::DEFENDER_PLANS
            .iter()
            .map(|plan| {
                let given = subscription
                    .pricings
                    .iter()
                    .find(|pricing| pricing.name.eq_ignore_ascii_case(plan));
                let (tier, sub_plan) = match given {
                    Some(pricing) => (pricing.pricing_tier, pricing.sub_plan.clone()),
                    None if *plan == "VirtualMachines" => {
                        (PricingTier::Standard, Some("P2".to_owned()))
                    }
                    None => (PricingTier::Free, None),
                };
                Pricing {
                    name: plan,
                    tier,
                    sub_plan,
                    enabled_since: (tier == PricingTier::Standard).then_some(created),
                }
            })
            .collect();
        resources.subscriptions.push(Subscription {
            id: subscription.id.clone(),
            display_name: subscription.display_name.clone(),
            state: subscription.state,
            pricings,
        });
        for group in &subscription.resource_groups {
            resources.resource_groups.insert(
                key(&super::ids::resource_group_id(subscription_id, &group.name)),
                ResourceGroup {
                    subscription_id: subscription.id.clone(),
                    name: group.name.clone(),
                    location: group.location.clone(),
                },
            );
            add_group(&mut resources, subscription_id, group, bindings, created)?;
            for policy in &group.jit_policies {
                policies.push((subscription_id, group, policy));
            }
        }
    }
    rewrite_logical_ports(&mut resources);
    for (subscription_id, group, policy) in policies {
        install_policy(&mut resources, subscription_id, group, policy, now)?;
    }
    Ok(resources)
}

fn add_group(
    resources: &mut Resources,
    subscription_id: &str,
    group: &ResourceGroupSpec,
    bindings: &Bindings,
    created: Timestamp,
) -> Result<(), WorldError> {
    for network in &group.virtual_networks {
        let network_placement = placement(
            subscription_id,
            group,
            "Microsoft.Network/virtualNetworks",
            &network.name,
            network.location.as_ref(),
        );
        let mut subnets = Vec::new();
        for subnet in &network.subnets {
            let nsg = match &subnet.network_security_group {
                Some(reference) => Some(
                    reference_key(reference, subscription_id, &group.name, world::NSGS)
                        .ok_or_else(|| missing("network security group", reference))?,
                ),
                None => None,
            };
            let firewall = match &subnet.firewall {
                Some(reference) => Some(
                    reference_key(reference, subscription_id, &group.name, world::FIREWALLS)
                        .ok_or_else(|| missing("azure firewall", reference))?,
                ),
                None => None,
            };
            subnets.push(Subnet {
                id: format!("{}/subnets/{}", network_placement.id, subnet.name),
                name: subnet.name.clone(),
                address_prefix: subnet.address_prefix.clone(),
                network_security_group: nsg,
                firewall,
            });
        }
        resources.virtual_networks.insert(
            key(&network_placement.id),
            VirtualNetwork {
                placement: network_placement,
                address_space: network.address_space.clone(),
                subnets,
            },
        );
    }
    for nsg in &group.network_security_groups {
        let nsg_placement = placement(
            subscription_id,
            group,
            "Microsoft.Network/networkSecurityGroups",
            &nsg.name,
            nsg.location.as_ref(),
        );
        let rules = nsg
            .security_rules
            .iter()
            .map(|rule| SecurityRule {
                name: rule.name.clone(),
                description: rule.description.clone(),
                protocol: rule.protocol.clone(),
                source_port_range: Some("*".to_owned()),
                source_port_ranges: Vec::new(),
                source_address_prefix: match (
                    &rule.source_address_prefix,
                    rule.source_address_prefixes.is_empty(),
                ) {
                    (Some(prefix), _) => Some(prefix.clone()),
                    (None, true) => Some("*".to_owned()),
                    (None, false) => None,
                },
                source_address_prefixes: rule.source_address_prefixes.clone(),
                destination_address_prefix: match (
                    &rule.destination_address_prefix,
                    rule.destination_address_prefixes.is_empty(),
                ) {
                    (Some(prefix), _) => Some(prefix.clone()),
                    (None, true) => Some("*".to_owned()),
                    (None, false) => None,
                },
                destination_address_prefixes: rule.destination_address_prefixes.clone(),
                destination_port_range: rule.destination_port_range.clone(),
                destination_port_ranges: rule.destination_port_ranges.clone(),
                access: rule.access,
                priority: rule.priority,
                direction: rule.direction,
                etag: uuid::Uuid::new_v4().to_string(),
            })
            .collect();
        resources.network_security_groups.insert(
            key(&nsg_placement.id),
            NetworkSecurityGroup {
                placement: nsg_placement,
                rules,
            },
        );
    }
    for ip in &group.public_ip_addresses {
        let ip_placement = placement(
            subscription_id,
            group,
            "Microsoft.Network/publicIPAddresses",
            &ip.name,
            ip.location.as_ref(),
        );
        resources.public_ip_addresses.insert(
            key(&ip_placement.id),
            PublicIpAddress {
                placement: ip_placement,
                address: ip.allocated.then_some(PUBLIC_ADDRESS),
                dynamic: !ip.allocated,
                domain_name_label: ip.domain_name_label.clone(),
                ip_configuration: None,
            },
        );
    }
    for firewall in &group.azure_firewalls {
        let firewall_placement = placement(
            subscription_id,
            group,
            "Microsoft.Network/azureFirewalls",
            &firewall.name,
            firewall.location.as_ref(),
        );
        let public_ip = reference_key(
            &firewall.public_ip_address,
            subscription_id,
            &group.name,
            world::PUBLIC_IPS,
        )
        .ok_or_else(|| missing("public IP address", &firewall.public_ip_address))?;
        if let Some(ip) = resources.public_ip_addresses.get_mut(&public_ip) {
            ip.ip_configuration = Some(format!(
                "{}/azureFirewallIpConfigurations/ipconfig1",
                firewall_placement.id
            ));
        }
        let subnet = subnet_reference_key(&firewall.subnet, subscription_id, &group.name)
            .ok_or_else(|| missing("subnet", &firewall.subnet))?;
        resources.azure_firewalls.insert(
            key(&firewall_placement.id),
            AzureFirewall {
                placement: firewall_placement,
                public_ip,
                private_ip: firewall.private_ip_address,
                subnet,
                jit_rules: Vec::new(),
            },
        );
    }
    for nic in &group.network_interfaces {
        let nic_placement = placement(
            subscription_id,
            group,
            "Microsoft.Network/networkInterfaces",
            &nic.name,
            nic.location.as_ref(),
        );
        let public_ip = match &nic.public_ip_address {
            Some(reference) => {
                let ip_key =
                    reference_key(reference, subscription_id, &group.name, world::PUBLIC_IPS)
                        .ok_or_else(|| missing("public IP address", reference))?;
                if let Some(ip) = resources.public_ip_addresses.get_mut(&ip_key) {
                    ip.ip_configuration =
                        Some(format!("{}/ipConfigurations/ipconfig1", nic_placement.id));
                }
                Some(ip_key)
            }
            None => None,
        };
        let nsg = match &nic.network_security_group {
            Some(reference) => Some(
                reference_key(reference, subscription_id, &group.name, world::NSGS)
                    .ok_or_else(|| missing("network security group", reference))?,
            ),
            None => None,
        };
        resources.network_interfaces.insert(
            key(&nic_placement.id),
            NetworkInterface {
                placement: nic_placement,
                private_ip: nic.private_ip_address,
                subnet: subnet_reference_key(&nic.subnet, subscription_id, &group.name)
                    .ok_or_else(|| missing("subnet", &nic.subnet))?,
                public_ip,
                network_security_group: nsg,
                virtual_machine: None,
                mac_address: mac_address(),
            },
        );
    }
    for vm in &group.virtual_machines {
        let vm_placement = placement(
            subscription_id,
            group,
            "Microsoft.Compute/virtualMachines",
            &vm.name,
            vm.location.as_ref(),
        );
        let vm_key = key(&vm_placement.id);
        let mut network_interfaces = Vec::new();
        for reference in &vm.network_interfaces {
            let nic_key = reference_key(reference, subscription_id, &group.name, world::NICS)
                .ok_or_else(|| missing("network interface", reference))?;
            if let Some(nic) = resources.network_interfaces.get_mut(&nic_key) {
                nic.virtual_machine = Some(vm_key.clone());
            }
            network_interfaces.push(nic_key);
        }
        let ports = vm
            .ports
            .iter()
            .map(|port| BoundPort {
                service: port.service,
                logical: port.number,
                bound: bindings
                    .ports
                    .get(&(vm_key.clone(), port.number))
                    .copied()
                    .unwrap_or(port.number),
            })
            .collect();
        let power = match vm.power_state {
            PowerState::Running => Power::Running,
            PowerState::Deallocated => Power::Deallocated,
        };
        resources.virtual_machines.insert(
            vm_key.clone(),
            VirtualMachine {
                placement: vm_placement,
                os: vm.os,
                size: vm.size.clone(),
                admin_username: vm.admin_username.clone(),
                computer_name: vm.computer_name.clone().unwrap_or_else(|| vm.name.clone()),
                vm_uuid: uuid::Uuid::new_v4().to_string(),
                power,
                created,
                network_interfaces,
                ports,
                host_public_key: bindings.host_keys.get(&vm_key).cloned(),
            },
        );
    }
    for vm in &group.classic_virtual_machines {
        let vm_placement = placement(
            subscription_id,
            group,
            "Microsoft.ClassicCompute/virtualMachines",
            &vm.name,
            vm.location.as_ref(),
        );
        resources.classic_virtual_machines.insert(
            key(&vm_placement.id),
            ClassicVirtualMachine {
                placement: vm_placement,
                os: vm.os,
            },
        );
    }
    Ok(())
}

/// Rewrites single-port destinations of the world's NSG rules from a VM port's logical
/// number to its bound number, for the VMs behind each NSG.
fn rewrite_logical_ports(resources: &mut Resources) {
    let mut by_nsg: BTreeMap<String, BTreeMap<u16, Vec<u16>>> = BTreeMap::new();
    for (vm_key, vm) in &resources.virtual_machines {
        let Some(attachment) = resources.attachment(vm_key) else {
            continue;
        };
        for nsg in attachment.network_security_groups {
            let numbers = by_nsg.entry(nsg).or_default();
            for port in &vm.ports {
                let bound = numbers.entry(port.logical).or_default();
                if !bound.contains(&port.bound) {
                    bound.push(port.bound);
                }
            }
        }
    }
    for (nsg_key, numbers) in by_nsg {
        let Some(nsg) = resources.network_security_groups.get_mut(&nsg_key) else {
            continue;
        };
        for rule in &mut nsg.rules {
            let ranges: Vec<String> = rule.destination_ports().cloned().collect();
            let mut rewritten = Vec::new();
            for range in &ranges {
                match range
                    .parse::<u16>()
                    .ok()
                    .and_then(|port| numbers.get(&port))
                {
                    Some(bound) => rewritten.extend(bound.iter().map(u16::to_string)),
                    None => rewritten.push(range.clone()),
                }
            }
            if rewritten != ranges {
                if rewritten.len() == 1 {
                    rule.destination_port_range = rewritten.pop();
                    rule.destination_port_ranges = Vec::new();
                } else {
                    rule.destination_port_range = None;
                    rule.destination_port_ranges = rewritten;
                }
            }
        }
    }
}

/// Installs a world policy as a PUT would, with its VM ports' bound numbers.
fn install_policy(
    resources: &mut Resources,
    subscription_id: &str,
    group: &ResourceGroupSpec,
    policy: &JitPolicySpec,
    now: Timestamp,
) -> Result<(), WorldError> {
    let location = policy.location.as_ref().unwrap_or(&group.location);
    let owner = format!("JIT policy '{}' in '{}'", policy.name, group.name);
    let policy_placement = Placement {
        id: resource_id(
            subscription_id,
            &group.name,
            &format!("Microsoft.Security/locations/{location}/jitNetworkAccessPolicies"),
            &policy.name,
        ),
        subscription_id: subscription_id.to_owned(),
        resource_group: group.name.clone(),
        name: policy.name.clone(),
        location: location.clone(),
    };
    let mut virtual_machines = Vec::new();
    for entry in &policy.virtual_machines {
        let vm_key = reference_key(
            &entry.virtual_machine,
            subscription_id,
            &group.name,
            world::VMS,
        )
        .ok_or_else(|| missing("virtual machine", &entry.virtual_machine))?;
        let vm = resources
            .virtual_machines
            .get(&vm_key)
            .ok_or_else(|| missing("virtual machine", &entry.virtual_machine))?;
        let mut ports = Vec::new();
        for port in &entry.ports {
            let number = match (port.number, port.service) {
                (Some(logical), _) => vm
                    .ports
                    .iter()
                    .find(|bound| bound.logical == logical)
                    .map_or(logical, |bound| bound.bound),
                (None, Some(service)) => vm
                    .ports
                    .iter()
                    .find(|bound| bound.service == service)
                    .map(|bound| bound.bound)
                    .ok_or_else(|| {
                        WorldError::Invalid(format!(
                            "{owner}: VM '{}' has no {} port",
                            entry.virtual_machine,
                            service.as_str()
                        ))
                    })?,
                (None, None) => {
                    return Err(WorldError::Invalid(format!(
                        "{owner}: a port of VM '{}' names neither number nor service",
                        entry.virtual_machine
                    )));
                }
            };
            let allowed_sources = match (
                &port.allowed_source_address_prefix,
                &port.allowed_source_address_prefixes,
            ) {
                (_, Some(prefixes)) => SourcePrefixes::Many(prefixes.clone()),
                (Some(prefix), None) => SourcePrefixes::Single(prefix.clone()),
                (None, None) => SourcePrefixes::Single("*".to_owned()),
            };
            let max_duration =
                parse_iso_duration(&port.max_request_access_duration).ok_or_else(|| {
                    WorldError::Invalid(format!(
                        "{owner}: bad duration '{}'",
                        port.max_request_access_duration
                    ))
                })?;
            ports.push(PolicyPort {
                number,
                protocol: port.protocol.clone(),
                allowed_sources,
                max_request_access_duration: port.max_request_access_duration.clone(),
                max_duration,
            });
        }
        let public_ip_address = resources
            .attachment(&vm_key)
            .and_then(|attachment| attachment.firewall)
            .and_then(|firewall| resources.azure_firewalls.get(&firewall))
            .and_then(|firewall| resources.public_ip_addresses.get(&firewall.public_ip))
            .and_then(|ip| ip.address)
            .map(|address| address.to_string());
        virtual_machines.push(PolicyVirtualMachine {
            id: vm.placement.id.clone(),
            ports,
            public_ip_address,
        });
    }
    resources
        .put_policy(
            policy_placement,
            Some("Basic".to_owned()),
            virtual_machines,
            now,
        )
        .map(|_| ())
        .map_err(|error| {
            let reason = match error {
                JitError::Invalid(message) => message,
                JitError::NotSubset => "not a subset".to_owned(),
            };
            WorldError::Invalid(format!("{owner}: {reason}"))
        })
}
