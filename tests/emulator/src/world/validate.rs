//! Checks a whole world before anything starts: ids, unique names, references, address
//! ranges, priorities, ports, policies. Each error names the offending item.

use std::collections::{BTreeMap, BTreeSet};

use super::references::*;
use super::spec::*;
use super::values::*;
use super::{World, WorldError};

/// Collects the ids a world defines, then checks references against them.
#[derive(Default)]
pub(super) struct Validator {
    defined: BTreeMap<&'static str, BTreeSet<String>>,
    pinned: BTreeSet<u16>,
    nic_owner: BTreeMap<String, String>,
}

fn invalid(message: impl Into<String>) -> WorldError {
    WorldError::Invalid(message.into())
}

impl Validator {
    pub(super) fn world(mut self, world: &World) -> Result<(), WorldError> {
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
                std::net::Ipv4Addr::new(192, 168, 1, 1);
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
}
