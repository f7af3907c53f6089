//! JIT behaviour: what writing a policy, deleting it and initiating a request do to the
//! NSGs and the Azure Firewall, and how requests move through their statuses on the
//! virtual clock.
//!
//! This follows what the live service shows (`azure-contract.md` §1.8–1.9):
//! - PUT replaces the policy's VM list and keeps one deny rule per VM per associated NSG,
//!   `SecurityCenter-JITRule_<int>_<GUID>`, at a low priority (4096 in an NSG without
//!   other inbound rules, else just after them), destination the VM's private IP, ports
//!   the VM's policy ports. A VM removed from the policy loses its rules.
//! - `initiate` validates against the policy (the "not a subset of policy" error), records
//!   the request as `Initiating`, and after the initiating delay applies it: allow rules
//!   `SecurityCenter-JITRule-<int>-<GUID>` from priority 100 up (same `<int>` as the VM's
//!   deny rule), DNAT rules on the firewall for VMs behind one, and `Initiated`. Applying
//!   revokes older requests for the same VM and port (`NewerRequestInitiated`).
//! - At `endTimeUtc` a port becomes `Revoked`/`Expired` and its rules go.
//! - Requests stay in the policy as history (the newest [`HISTORY_LIMIT`]).
//!
//! Time only moves when someone looks: [`Resources::settle`] replays every transition due
//! up to "now" in time order, and the state calls it before every read, every gate
//! decision and on a timer. A jump of the virtual clock therefore lands in a consistent
//! state, as if the time had passed.

use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};

use super::ids::{ResourceId, key};
use super::model::{
    FirewallRule, JitPolicy, JitRequest, PORT_OPENINGS_KEPT, Placement, PolicyVirtualMachine,
    PortOpening, PortStatus, RequestPort, RequestVirtualMachine, Resources, RuleLocation,
    SecurityRule, SourcePrefixes, StatusReason, VmRules,
};
use crate::world::{RuleAccess, RuleDirection};

/// How many requests a policy keeps as history.
pub(crate) const HISTORY_LIMIT: usize = 50;

/// How far past `maxRequestAccessDuration` an end time may be, for clocks that differ a
/// little between client and service (inferred: the live tolerance is unknown).
pub(crate) const CLOCK_SKEW_TOLERANCE: SignedDuration = SignedDuration::from_secs(60);

/// The highest priority number a security rule may have.
const LOWEST_PRIORITY: u32 = 4096;
/// Where JIT's allow rules start.
const ALLOW_RULES_FROM: u32 = 100;

/// Why a JIT operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JitError {
    /// The body is wrong; the message says how.
    Invalid(String),
    /// The request asks for more than the policy allows.
    NotSubset,
}

/// A validated initiate body.
#[derive(Debug, Clone)]
pub(crate) struct InitiateInput {
    pub virtual_machines: Vec<InitiateVirtualMachine>,
    pub justification: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct InitiateVirtualMachine {
    pub id: String,
    pub ports: Vec<InitiatePort>,
}

#[derive(Debug, Clone)]
pub(crate) struct InitiatePort {
    pub number: u16,
    /// `None`: the caller's address.
    pub sources: Option<SourcePrefixes>,
    pub end: RequestedEnd,
}

/// `endTimeUtc` or `duration`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RequestedEnd {
    At(Timestamp),
    After(SignedDuration),
}

/// The deny rule description JIT writes.
fn deny_description(policy: &str, vm: &str) -> String {
    format!("ASC JIT Network Access rule for policy '{policy}' of VM '{vm}'.")
}

/// The allow rule description JIT writes.
fn allow_description(policy: &str, vm: &str) -> String {
    format!(
        "ASC JIT Network Access rule created by an initiation request for policy '{policy}' of VM '{vm}'."
    )
}

fn upper_guid() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase()
}

/// The NSG spelling of a JIT protocol.
fn nsg_protocol(protocols: &[&str]) -> String {
    let all = |wanted: &str| {
        !protocols.is_empty() && protocols.iter().all(|p| p.eq_ignore_ascii_case(wanted))
    };
    if all("TCP") {
        "Tcp".to_owned()
    } else if all("UDP") {
        "Udp".to_owned()
    } else {
        "*".to_owned()
    }
}

fn vm_name(id: &str) -> String {
    ResourceId::parse(id)
        .and_then(|parsed| parsed.names.last().cloned())
        .unwrap_or_else(|| id.to_owned())
}

/// A request port that is still open or about to be.
fn is_live(port: &RequestPort) -> bool {
    matches!(port.status, PortStatus::Initiating | PortStatus::Initiated)
}

/// One transition due at a time: a port to apply or to expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct DueTransition {
    at: Timestamp,
    request: usize,
    virtual_machine: usize,
    port: usize,
}

impl Resources {
    /// Writes a policy (PUT): replaces its VM list and brings the deny rules in line.
    /// The caller has checked the body's shape; this checks it against the world.
    pub(crate) fn put_policy(
        &mut self,
        placement: Placement,
        kind: Option<String>,
        virtual_machines: Vec<PolicyVirtualMachine>,
        now: Timestamp,
    ) -> Result<String, JitError> {
        for entry in &virtual_machines {
            let vm_key = key(&entry.id);
            let Some(vm) = self.virtual_machines.get(&vm_key) else {
                return Err(JitError::Invalid(format!(
                    "Virtual machine '{}' was not found.",
                    entry.id
                )));
            };
            if !vm
                .placement
                .subscription_id
                .eq_ignore_ascii_case(&placement.subscription_id)
                || !vm
                    .placement
                    .resource_group
                    .eq_ignore_ascii_case(&placement.resource_group)
            {
                return Err(JitError::Invalid(format!(
                    "Virtual machine '{}' is not in resource group '{}' of subscription '{}', \
                     where the policy is.",
                    entry.id, placement.resource_group, placement.subscription_id
                )));
            }
            if !vm
                .placement
                .location
                .eq_ignore_ascii_case(&placement.location)
            {
                return Err(JitError::Invalid(format!(
                    "Virtual machine '{}' is in location '{}', but the policy is in '{}'. \
                     A JIT policy must be in its virtual machines' location.",
                    entry.id, vm.placement.location, placement.location
                )));
            }
        }
        let policy_key = key(&placement.id);
        let mut policy = self.jit_policies.remove(&policy_key).unwrap_or(JitPolicy {
            placement,
            kind: None,
            virtual_machines: Vec::new(),
            requests: Vec::new(),
            vm_rules: Default::default(),
        });
        policy.kind = kind;
        policy.virtual_machines = virtual_machines;
        self.revoke_outside_policy(&mut policy);
        self.sync_deny_rules(&mut policy);
        self.jit_policies.insert(policy_key.clone(), policy);
        self.settle(now);
        Ok(policy_key)
    }

    /// Deletes a policy and every rule it wrote; `false` when there was none.
    pub(crate) fn delete_policy(&mut self, policy_key: &str) -> bool {
        let Some(mut policy) = self.jit_policies.remove(policy_key) else {
            return false;
        };
        policy.virtual_machines.clear();
        self.revoke_outside_policy(&mut policy);
        self.sync_deny_rules(&mut policy);
        true
    }

    /// Records an access request (`initiate`) after checking it against the policy.
    /// Returns the request as the 202 response shows it.
    pub(crate) fn initiate(
        &mut self,
        policy_key: &str,
        input: InitiateInput,
        requestor: &str,
        client_ip: IpAddr,
        now: Timestamp,
        initiating_delay: SignedDuration,
    ) -> Result<JitRequest, JitError> {
        self.settle(now);
        let Some(policy) = self.jit_policies.get(policy_key) else {
            return Err(JitError::Invalid("The policy does not exist.".to_owned()));
        };
        if input.virtual_machines.is_empty() {
            return Err(JitError::Invalid(
                "The request must name at least one virtual machine.".to_owned(),
            ));
        }
        let activates_at = now.saturating_add(initiating_delay).unwrap_or(now);
        let mut virtual_machines = Vec::new();
        for requested in input.virtual_machines {
            let Some(entry) = policy
                .virtual_machines
                .iter()
                .find(|entry| key(&entry.id) == key(&requested.id))
            else {
                return Err(JitError::NotSubset);
            };
            if requested.ports.is_empty() {
                return Err(JitError::Invalid(format!(
                    "The request for virtual machine '{}' names no port.",
                    requested.id
                )));
            }
            let behind_firewall = self
                .attachment(&key(&requested.id))
                .is_some_and(|attachment| attachment.firewall.is_some());
            let mut ports = Vec::new();
            for port in requested.ports {
                let Some(rule) = entry.ports.iter().find(|rule| rule.number == port.number) else {
                    return Err(JitError::NotSubset);
                };
                let end_time = match port.end {
                    RequestedEnd::At(end) => end,
                    RequestedEnd::After(duration) => now.saturating_add(duration).unwrap_or(now),
                };
                if end_time <= now {
                    return Err(JitError::Invalid(format!(
                        "The end time of port {} must be in the future.",
                        port.number
                    )));
                }
                if end_time.duration_since(now) > rule.max_duration + CLOCK_SKEW_TOLERANCE {
                    return Err(JitError::NotSubset);
                }
                let sources = port
                    .sources
                    .unwrap_or_else(|| SourcePrefixes::Single(client_ip.to_string()));
                let allowed = rule.allowed_sources.all();
                let any_source = allowed.iter().any(|prefix| prefix == "*");
                if !any_source
                    && !sources
                        .all()
                        .iter()
                        .all(|requested| allowed.iter().any(|prefix| prefix == requested))
                {
                    return Err(JitError::NotSubset);
                }
                ports.push(RequestPort {
                    number: port.number,
                    sources,
                    end_time,
                    status: PortStatus::Initiating,
                    status_reason: StatusReason::UserRequested,
                    mapped_port: behind_firewall.then_some(port.number),
                    activates_at,
                    rules: Vec::new(),
                });
            }
            virtual_machines.push(RequestVirtualMachine {
                id: requested.id,
                ports,
            });
        }
        let request = JitRequest {
            virtual_machines,
            start_time: now,
            requestor: requestor.to_owned(),
            justification: input.justification,
        };
        if let Some(policy) = self.jit_policies.get_mut(policy_key) {
            policy.requests.push(request.clone());
            trim_history(policy);
        }
        self.settle(now);
        Ok(request)
    }

    /// Whether a transition is due at `now` (a request to apply or expire, a VM start to
    /// complete).
    pub(crate) fn has_due(&self, now: Timestamp) -> bool {
        self.jit_policies
            .values()
            .any(|policy| next_due(policy, now).is_some())
            || self
                .operations
                .values()
                .any(|operation| !operation.applied && operation.completes_at <= now)
    }

    /// Applies every transition due up to `now`, oldest first.
    pub(crate) fn settle(&mut self, now: Timestamp) {
        let policy_keys: Vec<String> = self
            .jit_policies
            .iter()
            .filter(|(_, policy)| next_due(policy, now).is_some())
            .map(|(policy_key, _)| policy_key.clone())
            .collect();
        for policy_key in policy_keys {
            let Some(mut policy) = self.jit_policies.remove(&policy_key) else {
                continue;
            };
            while let Some(due) = next_due(&policy, now) {
                self.apply_transition(&mut policy, due);
            }
            self.jit_policies.insert(policy_key, policy);
        }
        self.complete_operations(now);
    }

    fn apply_transition(&mut self, policy: &mut JitPolicy, due: DueTransition) {
        let Some((vm_id, port)) = policy
            .requests
            .get(due.request)
            .and_then(|request| request.virtual_machines.get(due.virtual_machine))
            .and_then(|vm| Some((vm.id.clone(), vm.ports.get(due.port)?.clone())))
        else {
            return;
        };
        match port.status {
            PortStatus::Initiated => {
                self.revoke(policy, due, StatusReason::Expired);
            }
            PortStatus::Initiating => {
                // A newer request replaces older ones for the same VM and port.
                for older in 0..due.request {
                    let Some(request) = policy.requests.get(older) else {
                        continue;
                    };
                    let mut superseded = Vec::new();
                    for (vm_index, vm) in request.virtual_machines.iter().enumerate() {
                        if key(&vm.id) != key(&vm_id) {
                            continue;
                        }
                        for (port_index, old) in vm.ports.iter().enumerate() {
                            if old.number == port.number && is_live(old) {
                                superseded.push((vm_index, port_index));
                            }
                        }
                    }
                    for (vm_index, port_index) in superseded {
                        let target = DueTransition {
                            at: due.at,
                            request: older,
                            virtual_machine: vm_index,
                            port: port_index,
                        };
                        self.revoke(policy, target, StatusReason::NewerRequestInitiated);
                    }
                }
                let still_in_policy = policy.virtual_machines.iter().any(|entry| {
                    key(&entry.id) == key(&vm_id)
                        && entry.ports.iter().any(|rule| rule.number == port.number)
                });
                if !still_in_policy {
                    self.revoke(policy, due, StatusReason::UserRequested);
                } else if port.end_time <= due.at {
                    self.revoke(policy, due, StatusReason::Expired);
                } else {
                    let rules = self.write_allow_rules(policy, &vm_id, &port);
                    if let Some(target) = port_mut(policy, due) {
                        target.status = PortStatus::Initiated;
                        target.status_reason = StatusReason::UserRequested;
                        target.rules = rules;
                    }
                    self.port_openings.push(PortOpening {
                        vm_id: vm_id.clone(),
                        port: port.number,
                        at: due.at,
                    });
                    if self.port_openings.len() > PORT_OPENINGS_KEPT {
                        self.port_openings.remove(0);
                    }
                }
            }
            PortStatus::Revoked => {}
        }
    }

    /// Marks a port revoked for `reason` and removes the rules written for it.
    fn revoke(&mut self, policy: &mut JitPolicy, at: DueTransition, reason: StatusReason) {
        let Some(port) = port_mut(policy, at) else {
            return;
        };
        port.status = PortStatus::Revoked;
        port.status_reason = reason;
        let rules = std::mem::take(&mut port.rules);
        for rule in rules {
            self.remove_rule(&rule);
        }
    }

    fn remove_rule(&mut self, location: &RuleLocation) {
        if let Some(nsg) = self.network_security_groups.get_mut(&location.container) {
            nsg.rules.retain(|rule| rule.name != location.name);
        }
        if let Some(firewall) = self.azure_firewalls.get_mut(&location.container) {
            firewall.jit_rules.retain(|rule| rule.name != location.name);
        }
    }

    /// Revokes live request ports whose VM or port the policy no longer holds.
    fn revoke_outside_policy(&mut self, policy: &mut JitPolicy) {
        let mut outside = Vec::new();
        for (request_index, request) in policy.requests.iter().enumerate() {
            for (vm_index, vm) in request.virtual_machines.iter().enumerate() {
                for (port_index, port) in vm.ports.iter().enumerate() {
                    let kept = policy.virtual_machines.iter().any(|entry| {
                        key(&entry.id) == key(&vm.id)
                            && entry.ports.iter().any(|rule| rule.number == port.number)
                    });
                    if is_live(port) && !kept {
                        outside.push(DueTransition {
                            at: port.activates_at,
                            request: request_index,
                            virtual_machine: vm_index,
                            port: port_index,
                        });
                    }
                }
            }
        }
        for target in outside {
            self.revoke(policy, target, StatusReason::UserRequested);
        }
    }

    /// Makes the deny rules match the policy: one per VM per associated NSG, covering
    /// the VM's policy ports; none for VMs no longer in it.
    fn sync_deny_rules(&mut self, policy: &mut JitPolicy) {
        let wanted: Vec<String> = policy
            .virtual_machines
            .iter()
            .map(|entry| key(&entry.id))
            .collect();
        let gone: Vec<String> = policy
            .vm_rules
            .keys()
            .filter(|vm_key| !wanted.contains(vm_key))
            .cloned()
            .collect();
        for vm_key in gone {
            if let Some(rules) = policy.vm_rules.remove(&vm_key) {
                for rule in &rules.deny_rules {
                    self.remove_rule(rule);
                }
            }
        }
        let policy_name = policy.placement.name.clone();
        for entry in &policy.virtual_machines {
            let vm_key = key(&entry.id);
            let attachment = self.attachment(&vm_key);
            let rules = policy.vm_rules.entry(vm_key).or_insert_with(|| VmRules {
                number: rand::random(),
                deny_rules: Vec::new(),
            });
            // Deny rules someone deleted through the NSG API are written anew.
            let network_security_groups = &self.network_security_groups;
            rules.deny_rules.retain(|location| {
                network_security_groups
                    .get(&location.container)
                    .is_some_and(|nsg| nsg.rules.iter().any(|rule| rule.name == location.name))
            });
            let (nsgs, private_ip) = match &attachment {
                Some(attachment) => (
                    attachment.network_security_groups.clone(),
                    attachment.private_ip.to_string(),
                ),
                None => (Vec::new(), String::new()),
            };
            // Rules in NSGs no longer associated with the VM go.
            let stale: Vec<RuleLocation> = rules
                .deny_rules
                .iter()
                .filter(|rule| !nsgs.contains(&rule.container))
                .cloned()
                .collect();
            for rule in &stale {
                self.remove_rule(rule);
            }
            rules.deny_rules.retain(|rule| !stale.contains(rule));
            let mut numbers: Vec<String> = entry
                .ports
                .iter()
                .map(|port| port.number.to_string())
                .collect();
            numbers.dedup();
            let protocols: Vec<&str> = entry
                .ports
                .iter()
                .map(|port| port.protocol.as_str())
                .collect();
            let (port_range, port_ranges) = if numbers.len() == 1 {
                (numbers.pop(), Vec::new())
            } else {
                (None, numbers)
            };
            let vm = vm_name(&entry.id);
            for nsg_key in nsgs {
                let Some(nsg) = self.network_security_groups.get_mut(&nsg_key) else {
                    continue;
                };
                let existing = rules
                    .deny_rules
                    .iter()
                    .find(|rule| rule.container == nsg_key)
                    .and_then(|location| {
                        nsg.rules.iter_mut().find(|rule| rule.name == location.name)
                    });
                let mut rule = SecurityRule {
                    name: format!("SecurityCenter-JITRule_{}_{}", rules.number, upper_guid()),
                    description: Some(deny_description(&policy_name, &vm)),
                    protocol: nsg_protocol(&protocols),
                    source_port_range: Some("*".to_owned()),
                    source_port_ranges: Vec::new(),
                    source_address_prefix: Some("*".to_owned()),
                    source_address_prefixes: Vec::new(),
                    destination_address_prefix: Some(private_ip.clone()),
                    destination_address_prefixes: Vec::new(),
                    destination_port_range: port_range.clone(),
                    destination_port_ranges: port_ranges.clone(),
                    access: RuleAccess::Deny,
                    priority: 0,
                    direction: RuleDirection::Inbound,
                    etag: upper_guid(),
                };
                match existing {
                    Some(current) => {
                        rule.name = current.name.clone();
                        rule.priority = current.priority;
                        let unchanged = SecurityRule {
                            etag: current.etag.clone(),
                            ..rule.clone()
                        };
                        if *current != unchanged {
                            *current = rule;
                        }
                    }
                    None => {
                        rule.priority = deny_priority(&nsg.rules);
                        rules.deny_rules.push(RuleLocation {
                            container: nsg_key.clone(),
                            name: rule.name.clone(),
                        });
                        nsg.rules.push(rule);
                    }
                }
            }
        }
    }

    /// Writes the allow rules (and firewall DNAT rules) for an applied request port.
    fn write_allow_rules(
        &mut self,
        policy: &JitPolicy,
        vm_id: &str,
        port: &RequestPort,
    ) -> Vec<RuleLocation> {
        let vm_key = key(vm_id);
        let Some(attachment) = self.attachment(&vm_key) else {
            return Vec::new();
        };
        let Some(rules) = policy.vm_rules.get(&vm_key) else {
            return Vec::new();
        };
        let protocol = policy
            .virtual_machines
            .iter()
            .find(|entry| key(&entry.id) == vm_key)
            .and_then(|entry| entry.ports.iter().find(|rule| rule.number == port.number))
            .map(|rule| rule.protocol.clone())
            .unwrap_or_else(|| "*".to_owned());
        let vm = vm_name(vm_id);
        let mut written = Vec::new();
        for nsg_key in &attachment.network_security_groups {
            let Some(nsg) = self.network_security_groups.get_mut(nsg_key) else {
                continue;
            };
            let deny_priority = rules
                .deny_rules
                .iter()
                .filter(|location| &location.container == nsg_key)
                .filter_map(|location| nsg.rules.iter().find(|rule| rule.name == location.name))
                .map(|rule| rule.priority)
                .min();
            let (source_address_prefix, source_address_prefixes) = match &port.sources {
                SourcePrefixes::Single(prefix) => (Some(prefix.clone()), Vec::new()),
                SourcePrefixes::Many(prefixes) => (None, prefixes.clone()),
            };
            let rule = SecurityRule {
                name: format!("SecurityCenter-JITRule-{}-{}", rules.number, upper_guid()),
                description: Some(allow_description(&policy.placement.name, &vm)),
                protocol: nsg_protocol(&[protocol.as_str()]),
                source_port_range: Some("*".to_owned()),
                source_port_ranges: Vec::new(),
                source_address_prefix,
                source_address_prefixes,
                destination_address_prefix: Some(attachment.private_ip.to_string()),
                destination_address_prefixes: Vec::new(),
                destination_port_range: Some(port.number.to_string()),
                destination_port_ranges: Vec::new(),
                access: RuleAccess::Allow,
                priority: allow_priority(&nsg.rules, deny_priority),
                direction: RuleDirection::Inbound,
                etag: upper_guid(),
            };
            written.push(RuleLocation {
                container: nsg_key.clone(),
                name: rule.name.clone(),
            });
            nsg.rules.push(rule);
        }
        if let Some(firewall_key) = &attachment.firewall
            && let Some(firewall) = self.azure_firewalls.get_mut(firewall_key)
        {
            let name = format!("SecurityCenter-JITRule-{}-{}", rules.number, upper_guid());
            firewall.jit_rules.push(FirewallRule {
                name: name.clone(),
                virtual_machine: vm_key.clone(),
                source_prefixes: port.sources.all().to_vec(),
                mapped_port: port.mapped_port.unwrap_or(port.number),
                translated_address: attachment.private_ip,
                translated_port: port.number,
                protocol: if protocol == "*" {
                    "TCP".to_owned()
                } else {
                    protocol.to_ascii_uppercase()
                },
            });
            written.push(RuleLocation {
                container: firewall_key.clone(),
                name,
            });
        }
        written
    }
}

fn port_mut(policy: &mut JitPolicy, at: DueTransition) -> Option<&mut RequestPort> {
    policy
        .requests
        .get_mut(at.request)?
        .virtual_machines
        .get_mut(at.virtual_machine)?
        .ports
        .get_mut(at.port)
}

/// The earliest transition due at or before `now`.
fn next_due(policy: &JitPolicy, now: Timestamp) -> Option<DueTransition> {
    let mut earliest: Option<DueTransition> = None;
    for (request_index, request) in policy.requests.iter().enumerate() {
        for (vm_index, vm) in request.virtual_machines.iter().enumerate() {
            for (port_index, port) in vm.ports.iter().enumerate() {
                let at = match port.status {
                    PortStatus::Initiating => port.activates_at,
                    PortStatus::Initiated => port.end_time,
                    PortStatus::Revoked => continue,
                };
                if at > now {
                    continue;
                }
                let candidate = DueTransition {
                    at,
                    request: request_index,
                    virtual_machine: vm_index,
                    port: port_index,
                };
                if earliest.is_none_or(|current| candidate < current) {
                    earliest = Some(candidate);
                }
            }
        }
    }
    earliest
}

/// Drops the oldest finished requests beyond [`HISTORY_LIMIT`].
fn trim_history(policy: &mut JitPolicy) {
    while policy.requests.len() > HISTORY_LIMIT {
        let finished = policy.requests.iter().position(|request| {
            request
                .virtual_machines
                .iter()
                .flat_map(|vm| &vm.ports)
                .all(|port| !is_live(port))
        });
        match finished {
            Some(index) => {
                policy.requests.remove(index);
            }
            None => break,
        }
    }
}

fn is_jit_rule(rule: &SecurityRule) -> bool {
    rule.name.starts_with("SecurityCenter-JITRule")
}

fn inbound_priorities(rules: &[SecurityRule]) -> Vec<u32> {
    rules
        .iter()
        .filter(|rule| rule.direction == RuleDirection::Inbound)
        .map(|rule| rule.priority)
        .collect()
}

/// A deny rule's priority: 4096 down in an NSG with no other inbound rules; otherwise
/// just after the last of them (so existing rules keep precedence, as the docs say).
fn deny_priority(rules: &[SecurityRule]) -> u32 {
    let used = inbound_priorities(rules);
    let free = |priority: &u32| !used.contains(priority);
    let others = rules
        .iter()
        .filter(|rule| rule.direction == RuleDirection::Inbound && !is_jit_rule(rule))
        .map(|rule| rule.priority)
        .max();
    let after_others = others.and_then(|last| (last + 1..=LOWEST_PRIORITY).find(free));
    after_others
        .or_else(|| (ALLOW_RULES_FROM..=LOWEST_PRIORITY).rev().find(free))
        .unwrap_or(LOWEST_PRIORITY)
}

/// An allow rule's priority: the first free one from 100, ahead of the VM's deny rule.
fn allow_priority(rules: &[SecurityRule], deny_priority: Option<u32>) -> u32 {
    let used = inbound_priorities(rules);
    let free = |priority: &u32| !used.contains(priority);
    let ahead = deny_priority.unwrap_or(LOWEST_PRIORITY + 1);
    (ALLOW_RULES_FROM..ahead)
        .find(free)
        .or_else(|| (ALLOW_RULES_FROM..=LOWEST_PRIORITY).find(free))
        .unwrap_or(ALLOW_RULES_FROM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, priority: u32) -> SecurityRule {
        SecurityRule {
            name: name.to_owned(),
            description: None,
            protocol: "*".to_owned(),
            source_port_range: Some("*".to_owned()),
            source_port_ranges: Vec::new(),
            source_address_prefix: Some("*".to_owned()),
            source_address_prefixes: Vec::new(),
            destination_address_prefix: Some("*".to_owned()),
            destination_address_prefixes: Vec::new(),
            destination_port_range: Some("*".to_owned()),
            destination_port_ranges: Vec::new(),
            access: RuleAccess::Allow,
            priority,
            direction: RuleDirection::Inbound,
            etag: String::new(),
        }
    }

    #[test]
    fn deny_rules_take_4096_and_down_in_an_otherwise_empty_nsg() {
        assert_eq!(deny_priority(&[]), 4096);
        assert_eq!(
            deny_priority(&[rule("SecurityCenter-JITRule_1_A", 4096)]),
            4095
        );
    }

    #[test]
    fn deny_rules_go_just_after_existing_rules() {
        assert_eq!(deny_priority(&[rule("AllowHttps", 300)]), 301);
        assert_eq!(
            deny_priority(&[
                rule("AllowHttps", 300),
                rule("SecurityCenter-JITRule_1_A", 301)
            ]),
            302
        );
    }

    #[test]
    fn allow_rules_start_at_100_ahead_of_the_deny_rule() {
        assert_eq!(allow_priority(&[], Some(4096)), 100);
        assert_eq!(allow_priority(&[rule("x", 100)], Some(4096)), 101);
        assert_eq!(
            allow_priority(&[rule("x", 100), rule("y", 101)], Some(4096)),
            102
        );
    }

    #[test]
    fn protocols_map_to_nsg_spelling() {
        assert_eq!(nsg_protocol(&["TCP"]), "Tcp");
        assert_eq!(nsg_protocol(&["UDP", "UDP"]), "Udp");
        assert_eq!(nsg_protocol(&["TCP", "UDP"]), "*");
        assert_eq!(nsg_protocol(&["*"]), "*");
    }
}
