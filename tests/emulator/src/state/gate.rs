//! Whether a new connection to a VM port gets through: the emulated NSGs and Azure
//! Firewall, evaluated as Azure does.
//!
//! This is what makes JIT observable over TCP: a VM port's listener asks the gate at
//! accept time, and the gate answers from the rules the JIT provider wrote. The rules are
//! the ones ARM shows (GET NSG), so what a client reads and what its connection meets
//! never disagree.
//!
//! Evaluation, per Azure's documentation for inbound traffic:
//! - the VM must be running;
//! - behind an Azure Firewall (its subnet routes through one), a DNAT rule must map the
//!   port for the caller's address (Azure Firewall denies everything else);
//! - every NSG associated with the VM's primary NIC (on the NIC and on its subnet) must
//!   allow it: in each, the inbound rule with the lowest priority number that matches
//!   source (the caller's address), destination (the NIC's private IP), destination port
//!   and protocol (TCP) decides; the default rules end with `DenyAllInBound` (65500);
//! - with neither NSG nor firewall, the port is open (why JIT calls such a VM
//!   Unsupported).
//!
//! What it gives up: source ports, application security groups, service tags other than
//! `*`, `Internet`, `VirtualNetwork` and `AzureLoadBalancer`, peered networks, and
//! secondary NICs.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use super::ids::key;
use super::model::{AzureFirewall, NetworkSecurityGroup, Power, Resources, SecurityRule};
use crate::world::{RuleAccess, RuleDirection};

/// A destination port range of a security rule: `*`, `22` or `1000-2000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    low: u16,
    high: u16,
}

impl PortRange {
    /// Parses `*`, a port or `low-high`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text == "*" {
            return Some(Self {
                low: 0,
                high: u16::MAX,
            });
        }
        let (low, high) = match text.split_once('-') {
            Some((low, high)) => (low.trim().parse().ok()?, high.trim().parse().ok()?),
            None => {
                let port = text.parse().ok()?;
                (port, port)
            }
        };
        (low <= high).then_some(Self { low, high })
    }

    /// Whether `port` is in the range.
    pub fn contains(self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

/// What a connection looks like to the NSG: who sends it, where to, on which port.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow<'a> {
    pub source: IpAddr,
    pub destination: Ipv4Addr,
    pub port: u16,
    /// The address space of the VM's virtual network (the `VirtualNetwork` tag).
    pub virtual_network: &'a [Ipv4Net],
}

impl Flow<'_> {
    fn source_in_virtual_network(&self) -> bool {
        match self.source {
            IpAddr::V4(source) => self.virtual_network.iter().any(|net| net.contains(&source)),
            IpAddr::V6(_) => false,
        }
    }
}

/// Whether an address prefix of a rule (`*`, a service tag, a CIDR or an address) covers
/// `address`.
fn prefix_covers(prefix: &str, address: IpAddr, in_virtual_network: bool) -> bool {
    let prefix = prefix.trim();
    if prefix == "*" {
        return true;
    }
    if prefix.eq_ignore_ascii_case("VirtualNetwork") {
        return in_virtual_network;
    }
    if prefix.eq_ignore_ascii_case("Internet") {
        return !in_virtual_network;
    }
    if let Ok(net) = prefix.parse::<ipnet::IpNet>() {
        return net.contains(&address);
    }
    if let Ok(single) = prefix.parse::<IpAddr>() {
        return single == address;
    }
    // AzureLoadBalancer and other service tags never describe the caller.
    false
}

/// Whether an access-source prefix string (as JIT stores it) covers `address`.
pub(crate) fn source_prefix_covers(prefix: &str, address: IpAddr) -> bool {
    prefix_covers(prefix, address, false)
}

fn protocol_carries_tcp(protocol: &str) -> bool {
    protocol == "*" || protocol.eq_ignore_ascii_case("tcp")
}

fn rule_matches(rule: &SecurityRule, flow: &Flow<'_>) -> bool {
    rule.direction == RuleDirection::Inbound
        && protocol_carries_tcp(&rule.protocol)
        && rule
            .source_prefixes()
            .any(|prefix| prefix_covers(prefix, flow.source, flow.source_in_virtual_network()))
        && rule
            .destination_prefixes()
            .any(|prefix| prefix_covers(prefix, IpAddr::V4(flow.destination), true))
        && rule
            .destination_ports()
            .filter_map(|range| PortRange::parse(range))
            .any(|range| range.contains(flow.port))
}

/// The decision of one NSG: its own rules and the default rules, lowest priority number
/// first; the first match decides.
pub(crate) fn nsg_allows(nsg: &NetworkSecurityGroup, flow: &Flow<'_>) -> bool {
    let defaults = default_security_rules();
    let mut rules: Vec<&SecurityRule> = nsg.rules.iter().chain(&defaults).collect();
    rules.sort_by_key(|rule| rule.priority);
    rules
        .into_iter()
        .find(|rule| rule_matches(rule, flow))
        .is_some_and(|rule| rule.access == RuleAccess::Allow)
}

/// Whether a JIT DNAT rule of the firewall maps `port` to the VM for the caller.
fn firewall_allows(
    firewall: &AzureFirewall,
    virtual_machine: &str,
    port: u16,
    source: IpAddr,
) -> bool {
    firewall.jit_rules.iter().any(|rule| {
        rule.virtual_machine == virtual_machine
            && rule.mapped_port == port
            && protocol_carries_tcp(&rule.protocol)
            && rule
                .source_prefixes
                .iter()
                .any(|prefix| source_prefix_covers(prefix, source))
    })
}

/// The six rules every NSG has (`defaultSecurityRules`).
pub(crate) fn default_security_rules() -> Vec<SecurityRule> {
    let rule = |name: &str,
                description: &str,
                source: &str,
                destination: &str,
                access: RuleAccess,
                priority: u32,
                direction: RuleDirection| SecurityRule {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        protocol: "*".to_owned(),
        source_port_range: Some("*".to_owned()),
        source_port_ranges: Vec::new(),
        source_address_prefix: Some(source.to_owned()),
        source_address_prefixes: Vec::new(),
        destination_address_prefix: Some(destination.to_owned()),
        destination_address_prefixes: Vec::new(),
        destination_port_range: Some("*".to_owned()),
        destination_port_ranges: Vec::new(),
        access,
        priority,
        direction,
        etag: String::new(),
    };
    use RuleAccess::{Allow, Deny};
    use RuleDirection::{Inbound, Outbound};
    vec![
        rule(
            "AllowVnetInBound",
            "Allow inbound traffic from all VMs in VNET",
            "VirtualNetwork",
            "VirtualNetwork",
            Allow,
            65000,
            Inbound,
        ),
        rule(
            "AllowAzureLoadBalancerInBound",
            "Allow inbound traffic from azure load balancer",
            "AzureLoadBalancer",
            "*",
            Allow,
            65001,
            Inbound,
        ),
        rule(
            "DenyAllInBound",
            "Deny all inbound traffic",
            "*",
            "*",
            Deny,
            65500,
            Inbound,
        ),
        rule(
            "AllowVnetOutBound",
            "Allow outbound traffic from all VMs to all VMs in VNET",
            "VirtualNetwork",
            "VirtualNetwork",
            Allow,
            65000,
            Outbound,
        ),
        rule(
            "AllowInternetOutBound",
            "Allow outbound traffic from all VMs to Internet",
            "*",
            "Internet",
            Allow,
            65001,
            Outbound,
        ),
        rule(
            "DenyAllOutBound",
            "Deny all outbound traffic",
            "*",
            "*",
            Deny,
            65500,
            Outbound,
        ),
    ]
}

/// How a VM is attached to the network, as the gate and JIT see it.
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub private_ip: Ipv4Addr,
    /// Keys of the NSGs on the primary NIC and on its subnet (no duplicates).
    pub network_security_groups: Vec<String>,
    /// Key of the Azure Firewall the subnet routes through.
    pub firewall: Option<String>,
    pub virtual_network: Vec<Ipv4Net>,
}

impl Resources {
    /// The primary NIC's address, NSGs and firewall of a VM.
    pub(crate) fn attachment(&self, vm_key: &str) -> Option<Attachment> {
        let vm = self.virtual_machines.get(vm_key)?;
        let nic = self
            .network_interfaces
            .get(vm.network_interfaces.first()?)?;
        let (network, subnet) = self.subnet(&nic.subnet)?;
        let mut network_security_groups = Vec::new();
        for nsg in [&nic.network_security_group, &subnet.network_security_group]
            .into_iter()
            .flatten()
        {
            if !network_security_groups.contains(nsg) {
                network_security_groups.push(nsg.clone());
            }
        }
        Some(Attachment {
            private_ip: nic.private_ip,
            network_security_groups,
            firewall: subnet.firewall.clone(),
            virtual_network: network
                .address_space
                .iter()
                .filter_map(|space| space.parse().ok())
                .collect(),
        })
    }

    /// A subnet and its network, by the subnet's key.
    pub(crate) fn subnet(
        &self,
        subnet_key: &str,
    ) -> Option<(&super::model::VirtualNetwork, &super::model::Subnet)> {
        let (network_key, _) = subnet_key.rsplit_once("/subnets/")?;
        let network = self.virtual_networks.get(network_key)?;
        let subnet = network
            .subnets
            .iter()
            .find(|subnet| key(&subnet.id) == subnet_key)?;
        Some((network, subnet))
    }

    /// Whether a new connection from `source` to `port` of the VM gets through now.
    /// The caller settles the state to the current time first.
    pub(crate) fn admits(&self, vm_id: &str, port: u16, source: IpAddr) -> bool {
        let vm_key = key(vm_id);
        let Some(vm) = self.virtual_machines.get(&vm_key) else {
            return false;
        };
        if vm.power != Power::Running {
            return false;
        }
        let Some(attachment) = self.attachment(&vm_key) else {
            return false;
        };
        if let Some(firewall_key) = &attachment.firewall {
            let allowed = self
                .azure_firewalls
                .get(firewall_key)
                .is_some_and(|firewall| firewall_allows(firewall, &vm_key, port, source));
            if !allowed {
                return false;
            }
        }
        let flow = Flow {
            source,
            destination: attachment.private_ip,
            port,
            virtual_network: &attachment.virtual_network,
        };
        attachment.network_security_groups.iter().all(|nsg_key| {
            self.network_security_groups
                .get(nsg_key)
                .is_some_and(|nsg| nsg_allows(nsg, &flow))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::Placement;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    const VM: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 4);

    fn rule(
        priority: u32,
        access: RuleAccess,
        edit: impl FnOnce(&mut SecurityRule),
    ) -> SecurityRule {
        let mut rule = SecurityRule {
            name: format!("rule-{priority}"),
            description: None,
            protocol: "*".to_owned(),
            source_port_range: Some("*".to_owned()),
            source_port_ranges: Vec::new(),
            source_address_prefix: Some("*".to_owned()),
            source_address_prefixes: Vec::new(),
            destination_address_prefix: Some("*".to_owned()),
            destination_address_prefixes: Vec::new(),
            destination_port_range: Some("22".to_owned()),
            destination_port_ranges: Vec::new(),
            access,
            priority,
            direction: RuleDirection::Inbound,
            etag: String::new(),
        };
        edit(&mut rule);
        rule
    }

    fn nsg(rules: Vec<SecurityRule>) -> NetworkSecurityGroup {
        NetworkSecurityGroup {
            placement: Placement {
                id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n"
                    .to_owned(),
                subscription_id: "s".to_owned(),
                resource_group: "g".to_owned(),
                name: "n".to_owned(),
                location: "westeurope".to_owned(),
            },
            rules,
        }
    }

    fn allows(nsg: &NetworkSecurityGroup, source: IpAddr, port: u16) -> bool {
        let network = ["10.1.0.0/16".parse().unwrap_or_default()];
        nsg_allows(
            nsg,
            &Flow {
                source,
                destination: VM,
                port,
                virtual_network: &network,
            },
        )
    }

    #[test]
    fn port_ranges_parse_star_single_and_ranges() {
        assert!(PortRange::parse("*").is_some_and(|range| range.contains(65535)));
        assert!(PortRange::parse("22").is_some_and(|range| range.contains(22)));
        assert!(PortRange::parse("22").is_some_and(|range| !range.contains(23)));
        assert!(PortRange::parse("1000-2000").is_some_and(|range| range.contains(1500)));
        assert!(PortRange::parse("1000-2000").is_some_and(|range| !range.contains(2001)));
        assert_eq!(PortRange::parse("2000-1000"), None);
        assert_eq!(PortRange::parse("ssh"), None);
        assert_eq!(PortRange::parse("70000"), None);
    }

    #[test]
    fn an_empty_nsg_denies_internet_traffic_by_default() {
        assert!(!allows(&nsg(Vec::new()), CLIENT, 22));
    }

    #[test]
    fn the_default_rules_allow_traffic_from_the_virtual_network() {
        assert!(allows(
            &nsg(Vec::new()),
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            22
        ));
    }

    #[test]
    fn the_lowest_priority_number_wins() {
        let open = nsg(vec![
            rule(100, RuleAccess::Allow, |_| {}),
            rule(4096, RuleAccess::Deny, |_| {}),
        ]);
        assert!(allows(&open, CLIENT, 22));
        let closed = nsg(vec![
            rule(4096, RuleAccess::Allow, |_| {}),
            rule(1000, RuleAccess::Deny, |_| {}),
        ]);
        assert!(!allows(&closed, CLIENT, 22));
    }

    #[test]
    fn a_rule_for_another_port_does_not_match() {
        let other_port = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.destination_port_range = Some("443".to_owned());
        })]);
        assert!(!allows(&other_port, CLIENT, 22));
    }

    #[test]
    fn port_range_lists_and_ranges_match() {
        let ranges = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.destination_port_range = None;
            rule.destination_port_ranges = vec!["443".to_owned(), "40000-50000".to_owned()];
        })]);
        assert!(allows(&ranges, CLIENT, 45000));
        assert!(!allows(&ranges, CLIENT, 22));
        let any = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.destination_port_range = Some("*".to_owned());
        })]);
        assert!(allows(&any, CLIENT, 12345));
    }

    #[test]
    fn sources_match_by_cidr_address_and_tag() {
        let by_cidr = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.source_address_prefix = Some("198.51.100.0/24".to_owned());
        })]);
        assert!(allows(&by_cidr, CLIENT, 22));
        assert!(!allows(
            &by_cidr,
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
            22
        ));
        let by_address = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.source_address_prefix = None;
            rule.source_address_prefixes =
                vec!["203.0.113.9".to_owned(), "198.51.100.7".to_owned()];
        })]);
        assert!(allows(&by_address, CLIENT, 22));
        let internet = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.source_address_prefix = Some("Internet".to_owned());
        })]);
        assert!(allows(&internet, CLIENT, 22));
        let load_balancer = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.source_address_prefix = Some("AzureLoadBalancer".to_owned());
        })]);
        assert!(!allows(&load_balancer, CLIENT, 22));
    }

    #[test]
    fn destinations_match_the_private_ip() {
        let this_vm = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.destination_address_prefix = Some("10.1.0.4".to_owned());
        })]);
        assert!(allows(&this_vm, CLIENT, 22));
        let other_vm = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.destination_address_prefix = Some("10.1.0.5".to_owned());
        })]);
        assert!(!allows(&other_vm, CLIENT, 22));
        let network = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.destination_address_prefix = Some("VirtualNetwork".to_owned());
        })]);
        assert!(allows(&network, CLIENT, 22));
    }

    #[test]
    fn udp_and_outbound_rules_do_not_open_a_tcp_port() {
        let udp = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.protocol = "Udp".to_owned();
        })]);
        assert!(!allows(&udp, CLIENT, 22));
        let outbound = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.direction = RuleDirection::Outbound;
        })]);
        assert!(!allows(&outbound, CLIENT, 22));
        let tcp = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.protocol = "Tcp".to_owned();
        })]);
        assert!(allows(&tcp, CLIENT, 22));
    }

    #[test]
    fn an_ipv6_caller_matches_only_star() {
        let v6: IpAddr = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        let by_cidr = nsg(vec![rule(100, RuleAccess::Allow, |rule| {
            rule.source_address_prefix = Some("198.51.100.0/24".to_owned());
        })]);
        assert!(!allows(&by_cidr, v6, 22));
        assert!(allows(
            &nsg(vec![rule(100, RuleAccess::Allow, |_| {})]),
            v6,
            22
        ));
    }
}
