//! Policy changes as people and scripts read them: the diff `jit edit`, `jit policy
//! diff` and `jit policy apply` print, and its JSON document.
//!
//! A diff lists, per policy, the VMs whose entries change (`+` joins, `-` leaves, `~`
//! changes) and under each the ports that change, with what changes about them:
//!
//! ```text
//! policy default (rg-web, westeurope)
//!   ~ api-01
//!       ~ port 22: maximum PT3H → PT1H
//!       + port 8080 (TCP) from any source, up to PT3H
//!   + cache-01
//!       + port 22 (*) from any source, up to PT3H
//! ```

use jit_agent::access::enable::{PolicyPlan, VmDiff};
use jit_agent::access::policy_file::{FilePolicy, PolicyFile};
use jit_agent::azure::models::JitNetworkAccessPortRule;
use jit_agent::azure::resource_id::ResourceId;
use serde::Serialize;

/// One port as the JSON documents show it.
#[derive(Debug, Clone, Serialize)]
pub struct PortView {
    /// The port.
    pub number: u16,
    /// `TCP`, `UDP` or `*`.
    pub protocol: String,
    /// Allowed sources (`*`: any).
    pub allowed_sources: Vec<String>,
    /// The longest request, as Azure writes it (`PT3H`).
    pub max_duration: String,
}

impl PortView {
    /// The view of a policy port.
    pub fn of(rule: &JitNetworkAccessPortRule) -> Self {
        Self {
            number: rule.number,
            protocol: rule.protocol.to_string(),
            allowed_sources: rule
                .allowed_sources()
                .iter()
                .map(|source| (*source).to_owned())
                .collect(),
            max_duration: rule.max_request_access_duration.to_string(),
        }
    }
}

/// How a VM's entry changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VmChangeKind {
    /// It joins the policy.
    Add,
    /// Its ports change.
    Change,
    /// It leaves the policy.
    Remove,
}

/// One VM's change, for JSON.
#[derive(Debug, Clone, Serialize)]
pub struct VmChangeView {
    /// The VM's id.
    pub vm_id: String,
    /// Its name.
    pub vm: String,
    /// What happens to it.
    pub change: VmChangeKind,
    /// Its ports before (`null`: not in the policy).
    pub before: Option<Vec<PortView>>,
    /// Its ports after (`null`: not in the policy).
    pub after: Option<Vec<PortView>>,
}

/// What happens to a policy as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// Nothing.
    None,
    /// It is created.
    Create,
    /// Some of its entries change.
    Update,
    /// Its last VM goes, so it is deleted.
    Delete,
}

/// One policy's change, for JSON.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyChangeView {
    /// The policy's id.
    pub policy_id: String,
    /// Its name.
    pub policy_name: String,
    /// What happens to it.
    pub action: PolicyAction,
    /// The VMs whose entries change.
    pub vms: Vec<VmChangeView>,
}

impl PolicyChangeView {
    /// The view of a plan.
    pub fn of(plan: &PolicyPlan) -> Self {
        let action = if !plan.changes_anything() {
            PolicyAction::None
        } else if plan.current.is_none() {
            PolicyAction::Create
        } else if plan.preview.deletes() {
            PolicyAction::Delete
        } else {
            PolicyAction::Update
        };
        Self {
            policy_id: plan.policy_id.clone(),
            policy_name: plan.policy_name.clone(),
            action,
            vms: plan.preview.diff.iter().map(vm_change).collect(),
        }
    }
}

fn vm_change(diff: &VmDiff) -> VmChangeView {
    let ports = |ports: &Option<Vec<JitNetworkAccessPortRule>>| {
        ports
            .as_ref()
            .map(|ports| ports.iter().map(PortView::of).collect())
    };
    VmChangeView {
        vm_id: diff.vm_id.clone(),
        vm: diff.vm_name().to_owned(),
        change: match (&diff.before, &diff.after) {
            (None, _) => VmChangeKind::Add,
            (_, None) => VmChangeKind::Remove,
            _ => VmChangeKind::Change,
        },
        before: ports(&diff.before),
        after: ports(&diff.after),
    }
}

/// `policy default (rg-web, westeurope)`.
fn policy_heading(plan: &PolicyPlan) -> String {
    let id = ResourceId::parse(&plan.policy_id).ok();
    let group = id
        .as_ref()
        .and_then(|id| id.resource_group().map(str::to_owned))
        .unwrap_or_default();
    let action = if plan.current.is_none() {
        ", new"
    } else if plan.preview.deletes() {
        ", deleted: no VM left"
    } else {
        ""
    };
    format!(
        "policy {} ({group}, {}{action})",
        plan.policy_name, plan.location
    )
}

/// `port 22 (*) from any source, up to PT3H`.
fn describe_port(rule: &JitNetworkAccessPortRule) -> String {
    format!(
        "port {} ({}) from {}, up to {}",
        rule.number,
        rule.protocol,
        describe_sources(rule),
        rule.max_request_access_duration
    )
}

fn describe_sources(rule: &JitNetworkAccessPortRule) -> String {
    let sources = rule.allowed_sources();
    if sources.is_empty() || sources.iter().any(|source| source.trim() == "*") {
        "any source".to_owned()
    } else {
        sources.join(", ")
    }
}

/// The lines of one port's change, or none when it does not change.
fn port_lines(
    before: &[JitNetworkAccessPortRule],
    after: &[JitNetworkAccessPortRule],
) -> Vec<String> {
    let mut lines = Vec::new();
    for old in before {
        match after.iter().find(|new| new.number == old.number) {
            None => lines.push(format!("- {}", describe_port(old))),
            Some(new) => {
                let mut changes = Vec::new();
                if !old
                    .protocol
                    .as_str()
                    .eq_ignore_ascii_case(new.protocol.as_str())
                {
                    changes.push(format!("protocol {} → {}", old.protocol, new.protocol));
                }
                if source_set(old) != source_set(new) {
                    changes.push(format!(
                        "sources {} → {}",
                        describe_sources(old),
                        describe_sources(new)
                    ));
                }
                let seconds = |rule: &JitNetworkAccessPortRule| {
                    rule.max_request_access_duration
                        .to_duration()
                        .map(|duration| duration.as_secs())
                        .ok()
                };
                if seconds(old) != seconds(new) {
                    changes.push(format!(
                        "maximum {} → {}",
                        old.max_request_access_duration, new.max_request_access_duration
                    ));
                }
                if !changes.is_empty() {
                    lines.push(format!("~ port {}: {}", old.number, changes.join(", ")));
                }
            }
        }
    }
    for new in after {
        if !before.iter().any(|old| old.number == new.number) {
            lines.push(format!("+ {}", describe_port(new)));
        }
    }
    lines
}

/// A rule's sources as a sorted set, whichever field holds them.
fn source_set(rule: &JitNetworkAccessPortRule) -> Vec<String> {
    let mut sources: Vec<String> = rule
        .allowed_sources()
        .iter()
        .map(|source| source.trim().to_owned())
        .collect();
    sources.sort();
    sources.dedup();
    sources
}

/// The diff of the plans that change something, as text (empty when none does).
pub fn render_diff(plans: &[PolicyPlan]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for plan in plans.iter().filter(|plan| plan.changes_anything()) {
        if !lines.is_empty() {
            lines.push(String::new());
        }
        lines.push(policy_heading(plan));
        for diff in &plan.preview.diff {
            let (sign, ports) = match (&diff.before, &diff.after) {
                (None, Some(after)) => ('+', port_lines(&[], after)),
                (Some(before), None) => ('-', port_lines(before, &[])),
                (Some(before), Some(after)) => ('~', port_lines(before, after)),
                (None, None) => continue,
            };
            lines.push(format!("  {sign} {}", diff.vm_name()));
            for line in ports {
                lines.push(format!("      {line}"));
            }
            if ports_unchanged_but_entry_differs(diff) {
                lines.push("      ~ firewall address".to_owned());
            }
        }
    }
    lines.join("\n")
}

fn ports_unchanged_but_entry_differs(diff: &VmDiff) -> bool {
    matches!((&diff.before, &diff.after), (Some(before), Some(after)) if port_lines(before, after).is_empty())
}

/// `3 VMs in 2 policies`.
pub fn summarise(plans: &[PolicyPlan]) -> String {
    let changing: Vec<&PolicyPlan> = plans
        .iter()
        .filter(|plan| plan.changes_anything())
        .collect();
    let vms: usize = changing.iter().map(|plan| plan.preview.diff.len()).sum();
    let count = |count: usize, one: &str, many: &str| {
        format!("{count} {}", if count == 1 { one } else { many })
    };
    format!(
        "{} in {}",
        count(vms, "VM", "VMs"),
        count(changing.len(), "policy", "policies")
    )
}

/// A policy file as JSON (`jit policy export -o json`).
#[derive(Debug, Serialize)]
pub struct PolicyFileView {
    /// The policies.
    pub policies: Vec<FilePolicyView>,
}

/// One policy of a file, for JSON.
#[derive(Debug, Serialize)]
pub struct FilePolicyView {
    /// The policy's id.
    pub policy_id: String,
    /// Subscription id.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Region.
    pub location: String,
    /// Name.
    pub name: String,
    /// Its VMs.
    pub vms: Vec<FileVmView>,
}

/// One VM of a file, for JSON.
#[derive(Debug, Serialize)]
pub struct FileVmView {
    /// Its name.
    pub name: String,
    /// Its id.
    pub vm_id: String,
    /// The Azure Firewall address, if any.
    pub firewall_ip: Option<String>,
    /// Its ports.
    pub ports: Vec<PortView>,
}

impl PolicyFileView {
    /// The view of a file.
    pub fn of(file: &PolicyFile) -> Self {
        Self {
            policies: file.policies.iter().map(file_policy).collect(),
        }
    }
}

fn file_policy(policy: &FilePolicy) -> FilePolicyView {
    FilePolicyView {
        policy_id: policy.policy_id(),
        subscription: policy.subscription_id.clone(),
        resource_group: policy.resource_group.clone(),
        location: policy.location.clone(),
        name: policy.name.clone(),
        vms: policy
            .vms
            .iter()
            .map(|vm| FileVmView {
                name: vm.name.clone(),
                vm_id: policy.vm_id(vm),
                firewall_ip: vm.firewall_public_ip.clone(),
                ports: vm.ports.iter().map(PortView::of).collect(),
            })
            .collect(),
    }
}
