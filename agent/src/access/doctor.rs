//! `jit doctor`: why access to a VM fails, or would, each cause with its one-line fix.
//!
//! When a request fails, Azure rarely says why: the Defender plan is missing, the VM has
//! no NSG, an NSG rule with a higher priority than JIT's decides the port anyway, the
//! caller's address does not match an explicit source range (JIT compares them as
//! strings), the caller has only IPv6 or a split-tunnel VPN, the policy and VM names are
//! too long together, or a permission is missing. And a protection that *reverted* says
//! nothing at all: a Terraform or Bicep deployment that rewrites an NSG's rules removes
//! JIT's deny rule (hashicorp/terraform#24516, terraform-provider-azurerm#3661) while
//! Defender still lists the VM as protected.
//!
//! Each [`Check`] reads what it needs from ARM and states one finding with a status
//! ([`CheckStatus`]) and, unless all is well, a fix. Checks never stop at the first
//! problem: a diagnosis is the whole list. Two modes ([`VmChecks`]):
//!
//! - **connect** (`jit doctor VM`): everything between the caller and the port —
//!   permissions at the VM's scope (`Microsoft.Authorization/permissions`), power,
//!   address, NSG, policy, the NSG rules against the policy, the caller's address
//!   against the allowed sources;
//! - **protection** (`jit doctor --all`, for a CI job): for each configured VM, whether
//!   JIT's deny rules are still in place and nothing outranks them.
//!
//! What is given up: effective rules are not computed (application security groups and
//! service tags other than `*`, `Internet`, `VirtualNetwork` are not matched), Azure
//! Firewall rules are not read, and deny assignments are not part of the permissions
//! answer.

use std::net::IpAddr;

use futures::future::join_all;
use ipnet::IpNet;
use serde::Serialize;

use super::details::{VmDetails, read_vm};
use super::enable::{DEFAULT_POLICY_NAME, MAX_POLICY_AND_VM_NAME};
use super::inventory::{NetworkTopology, name_of_id};
use super::my_ip::PublicAddress;
use super::status::{PolicyEntry, entries_for_vm};
use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::clients::{NetworkSecurityGroupsClient, PermissionsClient, PricingsClient};
use crate::azure::models::{
    DEFENDER_FOR_SERVERS, JIT_SUB_PLAN, JitNetworkAccessPolicy, JitNetworkAccessPortRule,
    JitProtocol, NetworkSecurityGroup, Permission, PowerState, PricingTier, SecurityRule,
    SecurityRuleAccess, SecurityRuleDirection, SecurityRuleProtocol, Subscription, permits,
};
use crate::azure::resource_id::ResourceId;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Nothing wrong.
    Ok,
    /// Works, but something may bite (a wider source than expected, a private address).
    Warn,
    /// This stops access (or protection).
    Fail,
}

impl CheckStatus {
    /// `ok`, `warn`, `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// What was checked: stable names, as `-o json` carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A credential signs in and sees subscriptions.
    SignIn,
    /// Defender for Servers Plan 2 on the subscription.
    DefenderPlan,
    /// The actions `jit` needs, at the VM's (or subscription's) scope.
    Permissions,
    /// The VM exists and JIT can cover its kind.
    Vm,
    /// The VM runs.
    Power,
    /// Where to connect: a public IP, an Azure Firewall, or only a private address.
    Address,
    /// An NSG on the NIC or subnet (or an Azure Firewall).
    NetworkSecurityGroup,
    /// A policy lists the VM, with which ports.
    Policy,
    /// Policy name and VM name within 56 characters.
    NameLength,
    /// JIT's deny rule is in each NSG, for every policy port.
    DenyRule,
    /// No other NSG rule outranks JIT's for a policy port.
    RulePrecedence,
    /// The caller's address against the policy's allowed sources.
    Source,
}

impl CheckKind {
    /// The name in words, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::SignIn => "sign-in",
            Self::DefenderPlan => "defender plan",
            Self::Permissions => "permissions",
            Self::Vm => "vm",
            Self::Power => "power",
            Self::Address => "address",
            Self::NetworkSecurityGroup => "nsg",
            Self::Policy => "policy",
            Self::NameLength => "name length",
            Self::DenyRule => "deny rule",
            Self::RulePrecedence => "rule precedence",
            Self::Source => "source",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: CheckKind,
    /// What it was checked for: a tenant, a subscription or a VM, by name.
    pub subject: String,
    /// How it came out.
    pub status: CheckStatus,
    /// What was found, in one line.
    pub finding: String,
    /// What to do about it, in one line (`None` when nothing needs doing).
    pub fix: Option<String>,
}

impl Check {
    fn new(
        check: CheckKind,
        subject: &str,
        status: CheckStatus,
        finding: impl Into<String>,
    ) -> Self {
        Self {
            check,
            subject: subject.to_owned(),
            status,
            finding: finding.into(),
            fix: None,
        }
    }

    fn ok(check: CheckKind, subject: &str, finding: impl Into<String>) -> Self {
        Self::new(check, subject, CheckStatus::Ok, finding)
    }

    fn warn(
        check: CheckKind,
        subject: &str,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(check, subject, CheckStatus::Warn, finding).with_fix(fix)
    }

    fn fail(
        check: CheckKind,
        subject: &str,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(check, subject, CheckStatus::Fail, finding).with_fix(fix)
    }

    fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// A check that could not be made because Azure failed.
    pub fn from_error(check: CheckKind, subject: &str, what: &str, error: &ArmError) -> Self {
        let status = if matches!(error, ArmError::Forbidden { .. }) {
            CheckStatus::Warn
        } else {
            CheckStatus::Fail
        };
        Self::new(check, subject, status, format!("could not {what}: {error}"))
            .with_fix(error.hint())
    }
}

/// The actions `jit` needs, grouped as the doctor reports them.
pub mod actions {
    /// Read (and list) JIT policies.
    pub const READ_POLICIES: &str = "Microsoft.Security/locations/jitNetworkAccessPolicies/read";
    /// Request access.
    pub const INITIATE: &str =
        "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action";
    /// Enable or edit JIT.
    pub const WRITE_POLICIES: &str = "Microsoft.Security/locations/jitNetworkAccessPolicies/write";
    /// Defender for Cloud checks it on the VM when a policy covering it is written.
    pub const WRITE_VM: &str = "Microsoft.Compute/virtualMachines/write";
    /// Read the VM.
    pub const READ_VM: &str = "Microsoft.Compute/virtualMachines/read";
    /// Read its NICs.
    pub const READ_NIC: &str = "Microsoft.Network/networkInterfaces/read";
    /// Read its public IPs.
    pub const READ_PUBLIC_IP: &str = "Microsoft.Network/publicIPAddresses/read";
}

/// What the permissions at a scope allow, as one check.
pub fn permissions_check(subject: &str, permissions: &[Permission]) -> Check {
    let missing = |wanted: &[&'static str]| -> Vec<&'static str> {
        wanted
            .iter()
            .copied()
            .filter(|action| !permits(permissions, action))
            .collect()
    };
    let read = missing(&[
        actions::READ_POLICIES,
        actions::READ_VM,
        actions::READ_NIC,
        actions::READ_PUBLIC_IP,
    ]);
    let initiate = missing(&[actions::INITIATE]);
    let write = missing(&[actions::WRITE_POLICIES, actions::WRITE_VM]);
    let docs = "docs/rbac.md has the JIT requester and JIT administrator roles";
    if !read.is_empty() || !initiate.is_empty() {
        let mut lacking = read.clone();
        lacking.extend(&initiate);
        let what = match (read.is_empty(), initiate.is_empty()) {
            (false, false) => "may neither read what jit needs nor request access",
            (false, true) => "may not read what jit needs",
            _ => "may read but not request access",
        };
        return Check::fail(
            CheckKind::Permissions,
            subject,
            format!("{what}: missing {}", lacking.join(", ")),
            format!(
                "ask an administrator to grant {}; {docs}",
                lacking.join(", ")
            ),
        );
    }
    if !write.is_empty() {
        return Check::warn(
            CheckKind::Permissions,
            subject,
            format!(
                "may read and request access, but not enable or edit JIT: missing {}",
                write.join(", ")
            ),
            format!("only needed to change policies; {docs}"),
        );
    }
    Check::ok(
        CheckKind::Permissions,
        subject,
        "may read, request access, and enable or edit JIT",
    )
}

/// Defender for Servers on a subscription: JIT comes with Plan 2.
pub async fn defender_plan_check(arm: &ArmClient, subscription_id: &str, subject: &str) -> Check {
    let pricing = match PricingsClient::new(arm.clone())
        .get(subscription_id, DEFENDER_FOR_SERVERS)
        .await
    {
        Ok(pricing) => pricing,
        Err(error) => {
            return Check::from_error(
                CheckKind::DefenderPlan,
                subject,
                "read the Defender for Servers plan",
                &error,
            );
        }
    };
    let fix = "turn on Defender for Servers Plan 2 for the subscription (Defender for Cloud → Environment settings → Defender plans), or ask its owner";
    match (pricing.tier(), pricing.sub_plan()) {
        (Some(PricingTier::Standard), Some(plan)) if plan.eq_ignore_ascii_case(JIT_SUB_PLAN) => {
            Check::ok(
                CheckKind::DefenderPlan,
                subject,
                "Defender for Servers Plan 2 is on",
            )
        }
        (Some(PricingTier::Standard), None) => Check::ok(
            CheckKind::DefenderPlan,
            subject,
            "Defender for Servers is on (no sub-plan named: the full plan)",
        ),
        (Some(PricingTier::Standard), Some(plan)) => Check::fail(
            CheckKind::DefenderPlan,
            subject,
            format!("Defender for Servers is on with sub-plan {plan}; JIT needs Plan 2"),
            fix,
        ),
        (Some(PricingTier::Free), _) => Check::fail(
            CheckKind::DefenderPlan,
            subject,
            "Defender for Servers is off (Free); JIT needs Plan 2",
            fix,
        ),
        (tier, _) => Check::warn(
            CheckKind::DefenderPlan,
            subject,
            format!(
                "Defender for Servers reports tier {}",
                tier.map_or("nothing", PricingTier::as_str)
            ),
            fix,
        ),
    }
}

/// Signing in, seen through the subscriptions the identity can list.
pub fn sign_in_check(result: &Result<Vec<Subscription>, ArmError>) -> Check {
    match result {
        Err(error) => Check::fail(
            CheckKind::SignIn,
            "Azure",
            format!("cannot list subscriptions: {error}"),
            error.hint(),
        ),
        Ok(subscriptions) if subscriptions.is_empty() => Check::fail(
            CheckKind::SignIn,
            "Azure",
            "signed in, but no subscription is visible",
            "check the tenant (--tenant) and that your identity has a role in a subscription",
        ),
        Ok(subscriptions) => {
            let mut tenants: Vec<&str> = subscriptions
                .iter()
                .filter_map(|subscription| subscription.tenant_id.as_deref())
                .collect();
            tenants.sort_unstable();
            tenants.dedup();
            let tenants = match tenants.as_slice() {
                [] => String::new(),
                [one] => format!(" in tenant {one}"),
                many => format!(" in tenants {}", many.join(", ")),
            };
            Check::ok(
                CheckKind::SignIn,
                "Azure",
                format!(
                    "signed in; {} subscription{} visible{tenants}",
                    subscriptions.len(),
                    if subscriptions.len() == 1 { "" } else { "s" }
                ),
            )
        }
    }
}

/// What to check about a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmChecks {
    /// Everything between the caller and the port (`jit doctor VM`).
    Connect,
    /// Whether JIT still protects the VM (`jit doctor --all`).
    Protection,
}

/// Facts shared by the VMs of a diagnosis, read once.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The JIT policies of the VM's subscription.
    pub policies: &'a [JitNetworkAccessPolicy],
    /// Virtual networks and firewalls of the VM's subscription.
    pub topology: &'a NetworkTopology,
    /// The caller's public address ([`VmChecks::Connect`] only).
    pub caller: Option<&'a PublicAddress>,
}

/// Diagnoses one VM (by id) that is not a classic one.
pub async fn diagnose_vm(
    arm: &ArmClient,
    vm_id: &str,
    name: &str,
    context: Context<'_>,
    mode: VmChecks,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let permissions = async {
        match mode {
            VmChecks::Connect => Some(
                PermissionsClient::new(arm.clone())
                    .list_for_scope(vm_id)
                    .await,
            ),
            VmChecks::Protection => None,
        }
    };
    let (details, permissions) = futures::join!(read_vm(arm, vm_id), permissions);
    match permissions {
        Some(Ok(permissions)) => checks.push(permissions_check(name, &permissions)),
        Some(Err(error)) => checks.push(Check::from_error(
            CheckKind::Permissions,
            name,
            "read your permissions",
            &error,
        )),
        None => {}
    }
    let details = match details {
        Ok(details) => details,
        Err(error) => {
            checks.push(Check::from_error(
                CheckKind::Vm,
                name,
                "read the VM",
                &error,
            ));
            return checks;
        }
    };
    checks.push(Check::ok(
        CheckKind::Vm,
        name,
        format!(
            "{} in {} ({}), {}",
            details.name,
            details.resource_group,
            details.location,
            details
                .os
                .as_ref()
                .map_or_else(|| "OS unknown".to_owned(), ToString::to_string)
        ),
    ));
    let entry = entries_for_vm(context.policies, &details.id)
        .into_iter()
        .next();
    let firewall = firewall_of(&details, context.topology, entry.as_ref());
    if mode == VmChecks::Connect {
        checks.push(power_check(&details));
        checks.push(address_check(&details, firewall.as_ref()));
    }
    let security_groups = security_group_ids(&details);
    checks.push(security_group_check(
        &details,
        &security_groups,
        firewall.as_ref(),
    ));
    checks.push(policy_check(
        &details,
        entry.as_ref(),
        !security_groups.is_empty() || firewall.is_some(),
    ));
    checks.push(name_length_check(&details, entry.as_ref()));
    if let Some(entry) = &entry {
        let groups = read_security_groups(arm, &security_groups).await;
        checks.extend(rule_checks(&details, entry, &groups));
        if let (VmChecks::Connect, Some(caller)) = (mode, context.caller) {
            checks.push(source_check(
                &details.name,
                &entry.virtual_machine.ports,
                caller,
            ));
        }
    }
    checks
}

/// The NSG ids on the VM's NICs and their subnets, each once.
fn security_group_ids(details: &VmDetails) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for interface in &details.interfaces {
        for id in [
            interface.network_security_group_id.as_ref(),
            interface.subnet_network_security_group_id.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if !ids.iter().any(|known| known.eq_ignore_ascii_case(id)) {
                ids.push(id.clone());
            }
        }
    }
    ids
}

async fn read_security_groups(
    arm: &ArmClient,
    ids: &[String],
) -> Vec<(String, Result<NetworkSecurityGroup, ArmError>)> {
    let client = NetworkSecurityGroupsClient::new(arm.clone());
    let reads = ids.iter().map(|id| {
        let client = client.clone();
        async move { (id.clone(), client.get_by_id(id, None).await) }
    });
    join_all(reads).await
}

/// Where an Azure Firewall fronts the VM: the policy's address, else the topology's.
fn firewall_of(
    details: &VmDetails,
    topology: &NetworkTopology,
    entry: Option<&PolicyEntry>,
) -> Option<String> {
    if let Some(address) = entry.and_then(|entry| entry.virtual_machine.public_ip_address.clone()) {
        return Some(address);
    }
    details
        .interfaces
        .iter()
        .filter_map(|interface| interface.subnet_id.as_deref())
        .find_map(|subnet| topology.firewall_for_subnet(subnet))
        .map(|id| name_of_id(id).to_owned())
}

fn power_check(details: &VmDetails) -> Check {
    let name = details.name.as_str();
    match &details.power_state {
        None | Some(PowerState::Running) => Check::ok(CheckKind::Power, name, "running"),
        Some(PowerState::Starting) => Check::warn(
            CheckKind::Power,
            name,
            "starting",
            "wait a moment; its ports answer once it runs",
        ),
        Some(state) => Check::fail(
            CheckKind::Power,
            name,
            format!("{state}: its ports cannot answer"),
            format!("start it: `jit connect {name} --start`"),
        ),
    }
}

fn address_check(details: &VmDetails, firewall: Option<&String>) -> Check {
    let name = details.name.as_str();
    if let Some(firewall) = firewall {
        return Check::ok(
            CheckKind::Address,
            name,
            format!("behind an Azure Firewall ({firewall}); JIT opens the port there"),
        );
    }
    let public = details
        .interfaces
        .iter()
        .find_map(|interface| interface.public_ip.as_ref());
    match public {
        Some(public) => match (&public.address, &public.fqdn) {
            (Some(address), _) => {
                Check::ok(CheckKind::Address, name, format!("public IP {address}"))
            }
            (None, Some(fqdn)) => {
                Check::ok(CheckKind::Address, name, format!("public DNS name {fqdn}"))
            }
            (None, None) => Check::warn(
                CheckKind::Address,
                name,
                "its public IP has no address allocated yet (a stopped VM with a dynamic IP)",
                format!("start it (`jit connect {name} --start`) to get an address"),
            ),
        },
        None => Check::warn(
            CheckKind::Address,
            name,
            format!(
                "no public IP: only its private address {} is reachable, over a VPN or peering",
                details
                    .interfaces
                    .iter()
                    .find_map(|interface| interface.private_ip.clone())
                    .unwrap_or_else(|| "(none)".to_owned())
            ),
            "connect from a network that reaches the VM's virtual network, or give it a public IP",
        ),
    }
}

fn security_group_check(details: &VmDetails, ids: &[String], firewall: Option<&String>) -> Check {
    let name = details.name.as_str();
    if !ids.is_empty() {
        let names: Vec<&str> = ids.iter().map(|id| name_of_id(id)).collect();
        return Check::ok(
            CheckKind::NetworkSecurityGroup,
            name,
            format!("NSG {}", names.join(", ")),
        );
    }
    if firewall.is_some() {
        return Check::ok(
            CheckKind::NetworkSecurityGroup,
            name,
            "no NSG; JIT acts on the Azure Firewall",
        );
    }
    Check::fail(
        CheckKind::NetworkSecurityGroup,
        name,
        "no NSG on its network interface or subnet, and no Azure Firewall: JIT cannot protect it",
        "attach a network security group to the VM's NIC or subnet, then `jit enable`",
    )
}

fn policy_check(details: &VmDetails, entry: Option<&PolicyEntry>, supported: bool) -> Check {
    let name = details.name.as_str();
    match entry {
        Some(entry) => {
            let ports: Vec<String> = entry
                .virtual_machine
                .ports
                .iter()
                .map(describe_rule)
                .collect();
            Check::ok(
                CheckKind::Policy,
                name,
                format!(
                    "policy '{}': {}",
                    policy_name(&entry.policy),
                    ports.join("; ")
                ),
            )
        }
        None if supported => Check::fail(
            CheckKind::Policy,
            name,
            "no JIT policy covers it",
            format!(
                "an admin can enable it: `jit enable {name}` (or `jit connect {name} --enable`)"
            ),
        ),
        None => Check::fail(
            CheckKind::Policy,
            name,
            "no JIT policy covers it (and none can until it has an NSG)",
            "attach a network security group first",
        ),
    }
}

fn policy_name(policy: &JitNetworkAccessPolicy) -> String {
    policy
        .name
        .clone()
        .or_else(|| policy.id.as_deref().map(|id| name_of_id(id).to_owned()))
        .unwrap_or_else(|| DEFAULT_POLICY_NAME.to_owned())
}

/// `22/* from any, up to PT3H`.
pub fn describe_rule(rule: &JitNetworkAccessPortRule) -> String {
    let sources = rule.allowed_sources();
    let sources = if sources.iter().any(|source| source.trim() == "*") || sources.is_empty() {
        "any source".to_owned()
    } else {
        sources.join(", ")
    };
    format!(
        "port {} ({}) from {sources}, up to {}",
        rule.number, rule.protocol, rule.max_request_access_duration
    )
}

fn name_length_check(details: &VmDetails, entry: Option<&PolicyEntry>) -> Check {
    let vm = details.name.as_str();
    let (policy, assumed) = match entry {
        Some(entry) => (policy_name(&entry.policy), ""),
        None => (
            DEFAULT_POLICY_NAME.to_owned(),
            " (the portal's policy name)",
        ),
    };
    let length = policy.chars().count() + vm.chars().count();
    if length > MAX_POLICY_AND_VM_NAME {
        Check::fail(
            CheckKind::NameLength,
            vm,
            format!(
                "policy '{policy}'{assumed} and VM '{vm}' are {length} characters together; JIT allows {MAX_POLICY_AND_VM_NAME}"
            ),
            "JIT cannot cover this VM in that policy; a shorter VM name (or policy name) is the only way",
        )
    } else {
        Check::ok(
            CheckKind::NameLength,
            vm,
            format!(
                "policy '{policy}'{assumed} and VM name: {length} of {MAX_POLICY_AND_VM_NAME} characters"
            ),
        )
    }
}

/// The fix for a protection that reverted.
fn reapply_fix(vm: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(|port| format!("--port {port}")).collect();
    format!(
        "re-apply the policy: `jit enable {vm} {}` (JIT writes its rules again); keep deployments from removing them: Terraform `lifecycle {{ ignore_changes = [security_rule] }}` on the NSG (or separate azurerm_network_security_rule resources), Bicep/ARM: declare rules as child resources, never a full securityRules list; never name your rules SecurityCenter-JITRule*",
        ports.join(" ")
    )
}

/// The deny-rule and precedence checks of a configured VM, per NSG.
fn rule_checks(
    details: &VmDetails,
    entry: &PolicyEntry,
    groups: &[(String, Result<NetworkSecurityGroup, ArmError>)],
) -> Vec<Check> {
    let vm = details.name.as_str();
    let ports = &entry.virtual_machine.ports;
    let numbers: Vec<u16> = ports.iter().map(|port| port.number).collect();
    if groups.is_empty() {
        return vec![Check::ok(
            CheckKind::DenyRule,
            vm,
            "no NSG: JIT acts on the Azure Firewall (its rules are not checked)",
        )];
    }
    let destination: Option<IpAddr> = details
        .interfaces
        .first()
        .and_then(|interface| interface.private_ip.as_deref())
        .and_then(|address| address.parse().ok());
    let mut missing: Vec<String> = Vec::new();
    let mut covered: Vec<String> = Vec::new();
    let mut outranking_fail: Vec<String> = Vec::new();
    let mut outranking_warn: Vec<String> = Vec::new();
    let mut checks = Vec::new();
    for (id, group) in groups {
        let group_name = name_of_id(id);
        let group = match group {
            Ok(group) => group,
            Err(error) => {
                checks.push(Check::from_error(
                    CheckKind::DenyRule,
                    vm,
                    &format!("read NSG {group_name}"),
                    error,
                ));
                continue;
            }
        };
        let rules: Vec<RuleView<'_>> = group
            .properties
            .iter()
            .flat_map(|properties| &properties.security_rules)
            .filter_map(RuleView::of)
            .filter(|rule| rule.inbound && rule.reaches(destination))
            .collect();
        for port in ports {
            let deny = rules
                .iter()
                .filter(|rule| rule.is_jit_deny() && rule.covers(port.number, &port.protocol))
                .min_by_key(|rule| rule.priority);
            match deny {
                Some(deny) => covered.push(format!(
                    "{} in {group_name} (priority {})",
                    port.number, deny.priority
                )),
                None => missing.push(format!("port {} in NSG {group_name}", port.number)),
            }
            for rule in rules.iter().filter(|rule| {
                !rule.is_jit()
                    && rule.covers(port.number, &port.protocol)
                    && deny.is_none_or(|deny| rule.priority < deny.priority)
            }) {
                let rank = match deny {
                    Some(deny) => format!(
                        "priority {}, ahead of JIT's {}",
                        rule.priority, deny.priority
                    ),
                    None => format!("priority {}, and JIT's deny rule is gone", rule.priority),
                };
                let line = match rule.access {
                    SecurityRuleAccess::Allow if rule.open_to_anyone() => {
                        outranking_fail.push(format!(
                            "rule '{}' in {group_name} ({rank}) allows port {} from any source: the port is open whatever JIT says",
                            rule.name, port.number
                        ));
                        continue;
                    }
                    SecurityRuleAccess::Allow => format!(
                        "rule '{}' in {group_name} ({rank}) allows port {} from {} without a JIT request",
                        rule.name,
                        port.number,
                        rule.sources.join(", ")
                    ),
                    _ => format!(
                        "rule '{}' in {group_name} ({rank}) denies port {}: if it also outranks JIT's allow rules (priority 100 and up), requests will not open the port",
                        rule.name, port.number
                    ),
                };
                outranking_warn.push(line);
            }
        }
    }
    if missing.is_empty() {
        if !covered.is_empty() {
            checks.push(Check::ok(
                CheckKind::DenyRule,
                vm,
                format!("JIT's deny rule covers port {}", covered.join(", port ")),
            ));
        }
    } else {
        checks.push(Check::fail(
            CheckKind::DenyRule,
            vm,
            format!(
                "protection reverted: JIT's deny rule is missing for {}, though the policy still lists the VM (a deployment that rewrote the NSG's rules?)",
                missing.join(", ")
            ),
            reapply_fix(vm, &numbers),
        ));
    }
    if !outranking_fail.is_empty() {
        let mut finding = outranking_fail;
        finding.extend(outranking_warn);
        checks.push(Check::fail(
            CheckKind::RulePrecedence,
            vm,
            finding.join("; "),
            "remove or narrow the rule (JIT opens the port on request), then check that no deployment re-creates it",
        ));
    } else if !outranking_warn.is_empty() {
        checks.push(Check::warn(
            CheckKind::RulePrecedence,
            vm,
            outranking_warn.join("; "),
            "give the rule a priority number above JIT's deny rule, or remove it, unless it is meant to bypass JIT",
        ));
    } else if !covered.is_empty() {
        checks.push(Check::ok(
            CheckKind::RulePrecedence,
            vm,
            "no other rule outranks JIT's for the policy's ports",
        ));
    }
    checks
}

/// A security rule, reduced to what decides whether it matches a JIT port.
#[derive(Debug, Clone)]
struct RuleView<'a> {
    name: &'a str,
    priority: i32,
    access: SecurityRuleAccess,
    inbound: bool,
    protocol: SecurityRuleProtocol,
    sources: Vec<&'a str>,
    destinations: Vec<&'a str>,
    ports: Vec<&'a str>,
}

impl<'a> RuleView<'a> {
    fn of(rule: &'a SecurityRule) -> Option<Self> {
        let properties = rule.properties.as_ref()?;
        let both = |single: &'a Option<String>, several: &'a Vec<String>| -> Vec<&'a str> {
            single
                .iter()
                .map(String::as_str)
                .chain(several.iter().map(String::as_str))
                .collect()
        };
        Some(Self {
            name: rule.name.as_deref().unwrap_or_default(),
            priority: properties.priority?,
            access: properties.access.clone()?,
            inbound: properties.direction.as_ref() != Some(&SecurityRuleDirection::Outbound),
            protocol: properties
                .protocol
                .clone()
                .unwrap_or(SecurityRuleProtocol::Any),
            sources: both(
                &properties.source_address_prefix,
                &properties.source_address_prefixes,
            ),
            destinations: both(
                &properties.destination_address_prefix,
                &properties.destination_address_prefixes,
            ),
            ports: both(
                &properties.destination_port_range,
                &properties.destination_port_ranges,
            ),
        })
    }

    /// One of the rules JIT writes (deny `SecurityCenter-JITRule_…`, allow
    /// `SecurityCenter-JITRule-…`).
    fn is_jit(&self) -> bool {
        self.name
            .get(..22)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("SecurityCenter-JITRule"))
    }

    fn is_jit_deny(&self) -> bool {
        self.is_jit() && self.access == SecurityRuleAccess::Deny
    }

    /// Whether traffic to `port` over the policy's protocol meets this rule.
    fn covers(&self, port: u16, protocol: &JitProtocol) -> bool {
        let protocol_matches = match (&self.protocol, protocol) {
            (SecurityRuleProtocol::Any, _) | (_, JitProtocol::All) => {
                matches!(
                    self.protocol,
                    SecurityRuleProtocol::Any
                        | SecurityRuleProtocol::Tcp
                        | SecurityRuleProtocol::Udp
                )
            }
            (SecurityRuleProtocol::Tcp, JitProtocol::Tcp)
            | (SecurityRuleProtocol::Udp, JitProtocol::Udp) => true,
            _ => false,
        };
        protocol_matches && self.ports.iter().any(|range| port_in_range(range, port))
    }

    /// Whether the rule's destination includes the VM's private address (`None`:
    /// unknown, so only rules for any destination count).
    fn reaches(&self, destination: Option<IpAddr>) -> bool {
        self.destinations.iter().any(|prefix| {
            let prefix = prefix.trim();
            if prefix == "*"
                || prefix.eq_ignore_ascii_case("any")
                || prefix.eq_ignore_ascii_case("VirtualNetwork")
            {
                return true;
            }
            let Some(destination) = destination else {
                return false;
            };
            prefix
                .parse::<IpNet>()
                .map(|network| network.contains(&destination))
                .or_else(|_| {
                    prefix
                        .parse::<IpAddr>()
                        .map(|address| address == destination)
                })
                .unwrap_or(false)
        })
    }

    /// Whether the rule lets every address in.
    fn open_to_anyone(&self) -> bool {
        self.sources.iter().any(|source| {
            let source = source.trim();
            source == "*"
                || source.eq_ignore_ascii_case("Internet")
                || source.eq_ignore_ascii_case("Any")
                || source
                    .parse::<IpNet>()
                    .is_ok_and(|network| network.prefix_len() == 0)
        })
    }
}

/// Whether `port` is in a rule's port range (`*`, `22`, `1000-2000`).
fn port_in_range(range: &str, port: u16) -> bool {
    let range = range.trim();
    if range == "*" {
        return true;
    }
    match range.split_once('-') {
        Some((low, high)) => match (low.trim().parse::<u16>(), high.trim().parse::<u16>()) {
            (Ok(low), Ok(high)) => (low..=high).contains(&port),
            _ => false,
        },
        None => range.parse::<u16>() == Ok(port),
    }
}

/// The caller's address against a VM's allowed sources: JIT compares a requested source
/// with the policy's ranges as strings, so an address inside a range is refused unless
/// the range itself is requested.
pub fn source_check(vm: &str, ports: &[JitNetworkAccessPortRule], caller: &PublicAddress) -> Check {
    let ipv4 = caller.ipv4();
    let answers: Vec<String> = caller
        .answers
        .iter()
        .filter_map(|answer| {
            answer
                .result
                .as_ref()
                .ok()
                .map(|address| format!("{} says {address}", answer.url))
        })
        .collect();
    let mut warnings: Vec<String> = Vec::new();
    if caller.disagrees() {
        warnings.push(format!(
            "\"what is my IP\" services disagree ({}): a split-tunnel VPN or several exits; Azure sees the one your connection to ARM uses",
            answers.join(", ")
        ));
    }
    let Some(IpAddr::V4(address)) = ipv4 else {
        let ipv6 = caller.ipv6();
        let any_everywhere = ports.iter().all(allows_any);
        let finding = if ipv6.is_empty() {
            caller
                .why_no_ipv4()
                .unwrap_or_else(|| "your public address is unknown".to_owned())
        } else {
            format!(
                "you have only an IPv6 address ({}); JIT rules are IPv4",
                ipv6.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let fix = "connect over IPv4 (another network or a VPN with an IPv4 exit), or pass --source with your IPv4 exit address";
        return if any_everywhere {
            Check::warn(
                CheckKind::Source,
                vm,
                format!("{finding}; the policy allows any source, so `--source any` works"),
                fix,
            )
        } else {
            Check::fail(CheckKind::Source, vm, finding, fix)
        };
    };
    let address_text = address.to_string();
    let mut fails: Vec<String> = Vec::new();
    for port in ports {
        if allows_any(port) {
            continue;
        }
        let allowed = port.allowed_sources();
        let exact = allowed.iter().any(|source| {
            let source = source.trim();
            source == address_text || source == format!("{address_text}/32")
        });
        if exact {
            continue;
        }
        let containing = allowed.iter().find(|source| {
            source
                .trim()
                .parse::<IpNet>()
                .is_ok_and(|network| network.contains(&IpAddr::V4(address)))
        });
        match containing {
            Some(range) => warnings.push(format!(
                "port {}: your address {address} is inside the allowed range {range}, and JIT matches sources as strings: a request for {address} is refused, so jit requests {range} itself (the whole range opens)",
                port.number
            )),
            None => fails.push(format!(
                "port {}: your address {address} is not among the allowed sources ({}); requests for it are refused",
                port.number,
                allowed.join(", ")
            )),
        }
    }
    if !fails.is_empty() {
        let ports_named: Vec<String> = ports
            .iter()
            .filter(|port| !allows_any(port))
            .map(|port| port.number.to_string())
            .collect();
        let mut finding = fails;
        finding.extend(warnings);
        return Check::fail(
            CheckKind::Source,
            vm,
            finding.join("; "),
            format!(
                "connect from an allowed network, or ask an admin to add yours: `jit edit {vm} --allowed-source {}={address}`",
                ports_named.first().map_or("PORT", String::as_str)
            ),
        );
    }
    if !warnings.is_empty() {
        return Check::warn(
            CheckKind::Source,
            vm,
            warnings.join("; "),
            "nothing to do: jit requests the allowed range itself; for requests that open only your address, ask an admin to add it as an entry of its own",
        );
    }
    let any = ports.iter().all(allows_any);
    Check::ok(
        CheckKind::Source,
        vm,
        if any {
            format!("any source allowed; requests open the port for {address} only")
        } else {
            format!("your address {address} is an allowed source")
        },
    )
}

fn allows_any(port: &JitNetworkAccessPortRule) -> bool {
    let sources = port.allowed_sources();
    sources.is_empty() || sources.iter().any(|source| source.trim() == "*")
}

/// The subscription of a resource id.
pub fn subscription_of(id: &str) -> Option<String> {
    ResourceId::parse(id)
        .ok()
        .map(|parsed| parsed.subscription_id().to_owned())
}

/// Whether a diagnosis passed: no check failed.
pub fn passed(checks: &[Check]) -> bool {
    checks.iter().all(|check| check.status != CheckStatus::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::enable::port_rule;
    use crate::access::my_ip::SourceAnswer;
    use crate::azure::models::SecurityRulePropertiesFormat;

    fn rule(
        name: &str,
        priority: i32,
        access: &str,
        ports: &str,
        source: &str,
        destination: &str,
    ) -> SecurityRule {
        SecurityRule {
            name: Some(name.to_owned()),
            properties: Some(SecurityRulePropertiesFormat {
                protocol: Some(SecurityRuleProtocol::Tcp),
                destination_port_range: Some(ports.to_owned()),
                source_address_prefix: Some(source.to_owned()),
                destination_address_prefix: Some(destination.to_owned()),
                access: Some(SecurityRuleAccess::from(access)),
                priority: Some(priority),
                direction: Some(SecurityRuleDirection::Inbound),
                ..SecurityRulePropertiesFormat::default()
            }),
            ..SecurityRule::default()
        }
    }

    #[test]
    fn rules_match_ports_destinations_and_protocols_as_nsgs_do() {
        let allow = rule("AllowSsh", 100, "Allow", "20-30", "Internet", "10.1.0.0/24");
        let view = RuleView::of(&allow).expect("complete");
        assert!(view.covers(22, &JitProtocol::All));
        assert!(view.covers(22, &JitProtocol::Tcp));
        assert!(!view.covers(22, &JitProtocol::Udp));
        assert!(!view.covers(3389, &JitProtocol::All));
        assert!(view.reaches("10.1.0.5".parse().ok()));
        assert!(!view.reaches("10.2.0.5".parse().ok()));
        assert!(view.open_to_anyone());
        assert!(!view.is_jit());
        let deny = rule(
            "SecurityCenter-JITRule_-1105480617_9EF6",
            4096,
            "Deny",
            "22",
            "*",
            "10.1.0.5",
        );
        assert!(RuleView::of(&deny).expect("complete").is_jit_deny());
        assert!(port_in_range("*", 1));
        assert!(!port_in_range("x-y", 1));
    }

    fn public(answers: &[(&str, &str)]) -> PublicAddress {
        PublicAddress {
            answers: answers
                .iter()
                .map(|(url, address)| SourceAnswer {
                    url: (*url).to_owned(),
                    result: address.parse().map_err(|_| "no answer".to_owned()),
                })
                .collect(),
        }
    }

    #[test]
    fn sources_are_judged_by_the_exact_string_rule() {
        let ranges = vec![port_rule(
            22,
            JitProtocol::All,
            &["198.51.100.0/24".to_owned(), "203.0.113.0/24".to_owned()],
            "PT1H",
        )];
        let inside = source_check("web-01", &ranges, &public(&[("https://a", "198.51.100.7")]));
        assert_eq!(inside.status, CheckStatus::Warn, "{inside:?}");
        assert!(inside.finding.contains("as strings"), "{}", inside.finding);
        let outside = source_check("web-01", &ranges, &public(&[("https://a", "192.0.2.9")]));
        assert_eq!(outside.status, CheckStatus::Fail);
        assert!(
            outside
                .fix
                .as_deref()
                .unwrap_or_default()
                .contains("--allowed-source 22=192.0.2.9")
        );
        let exact = vec![port_rule(
            22,
            JitProtocol::All,
            &["192.0.2.9".to_owned()],
            "PT1H",
        )];
        assert_eq!(
            source_check("web-01", &exact, &public(&[("https://a", "192.0.2.9")])).status,
            CheckStatus::Ok
        );
        let any = vec![port_rule(22, JitProtocol::All, &[], "PT1H")];
        let ipv6 = source_check("web-01", &any, &public(&[("https://a", "2001:db8::7")]));
        assert_eq!(ipv6.status, CheckStatus::Warn);
        assert_eq!(
            source_check("web-01", &ranges, &public(&[("https://a", "2001:db8::7")])).status,
            CheckStatus::Fail
        );
        let split = source_check(
            "web-01",
            &any,
            &public(&[("https://a", "192.0.2.9"), ("https://b", "203.0.113.50")]),
        );
        assert_eq!(split.status, CheckStatus::Warn);
        assert!(split.finding.contains("disagree"), "{}", split.finding);
    }

    #[test]
    fn permissions_say_what_is_missing() {
        let reader = Permission {
            actions: vec!["*/read".to_owned()],
            ..Permission::default()
        };
        let check = permissions_check("web-01", &[reader]);
        assert_eq!(check.status, CheckStatus::Fail);
        assert!(
            check.finding.contains("may read but not request access"),
            "{}",
            check.finding
        );
        assert!(check.finding.contains(actions::INITIATE));
        let owner = Permission {
            actions: vec!["*".to_owned()],
            ..Permission::default()
        };
        assert_eq!(
            permissions_check("web-01", &[owner]).status,
            CheckStatus::Ok
        );
    }
}
