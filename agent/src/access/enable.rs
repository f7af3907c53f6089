//! Changing JIT policies without losing anyone else's change: enable, edit, disable and
//! apply all come down to [`plan`] and [`commit`].
//!
//! A JIT policy covers every VM of a resource group and region, a PUT replaces the whole
//! policy, and policies have **no ETag**: Azure cannot refuse a write built from a stale
//! read. A client that writes only "its" VM silently removes everyone else's
//! (MicrosoftDocs/azure-docs#36343), and one that writes back what it read a while ago
//! undoes what another admin changed meanwhile. So every change here is described by
//! what it *names* ([`VmEdit`]: whole VM entries, or some ports of one VM) and applied as
//! read-merge-write-verify, with the read as close to the write as the API allows:
//!
//! 1. [`plan`] reads the policy once to show what would change (a diff, a question);
//!    nothing written depends on this read.
//! 2. [`commit`] reads the policy **again, immediately before each write** (nothing slow,
//!    no prompt in between), merges the named edits into that read, and PUTs the result
//!    (or DELETEs the policy when its last VM goes, or creates it when a fresh read
//!    still finds none). Before writing it checks its own merge: everything the edits do
//!    not name is exactly as read.
//! 3. It reads the policy back and checks that what it named landed. What it did not
//!    name and differs now was changed by someone else *after* the write, and is left
//!    as it is.
//!
//! A write that fails (5xx, 408, 429, 409, a dropped connection) is **never resent as
//! it was**: the ARM pipeline does not repeat policy writes
//! ([`Idempotency::RebuiltByCaller`]),
//! and [`commit`] goes back to step 2 after the wait the server asked for (or a
//! backoff), within the client's retry budget. A write that may or may not have landed
//! is simply re-read: if the fresh copy already has what was named, nothing more is
//! written. When the edit names a VM that another writer's change undid after our
//! write (read back without it), the merge is redone from the fresh copy.
//!
//! What remains racy without an ETag, and how small it is: a change another writer
//! makes **between our last read and our write** (one round trip, the PUT's own
//! latency) is overwritten by our PUT and cannot be detected afterwards, because the
//! read-back shows our write. Two clients creating the same policy at the same moment
//! are the likeliest case (both read "no policy", both PUT), so after creating a
//! policy [`commit`] reads it once more after [`WriteOptions::creation_settle`] and
//! merges again if its VM was erased by the other creation. `docs/rbac.md` says the
//! same for people.

use std::time::Duration;

use serde::Serialize;

use crate::azure::arm::retry::{AttemptOutcome, RetryDecision, RetryReason, decide};
use crate::azure::arm::{ArmClient, ArmError, Idempotency, RetryEvent};
use crate::azure::clients::JitNetworkAccessPoliciesClient;
use crate::azure::models::{
    IsoDuration, JitNetworkAccessPolicy, JitNetworkAccessPolicyProperties,
    JitNetworkAccessPolicyVirtualMachine, JitNetworkAccessPortRule, JitProtocol,
    OperatingSystemTypes,
};
use crate::azure::resource_id::{ResourceId, same_resource_id};

/// The name the portal gives the policy it creates.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// The longest a policy's name and a VM's name may be together: "the policy name,
/// together with the targeted VM name, must not exceed a total of 56 characters"
/// (Microsoft's JIT documentation).
pub const MAX_POLICY_AND_VM_NAME: usize = 56;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOutcome {
    /// A new policy was created.
    Created,
    /// A VM was added to an existing policy.
    Added,
    /// A VM's ports in an existing policy were changed (or several VMs' entries).
    Updated,
    /// A VM was removed from a policy that still covers other VMs.
    Removed,
    /// The policy's last VM went, so the policy was deleted.
    Deleted,
    /// Nothing changed, but the policy was written again as it was (asked for with
    /// [`WriteOptions::rewrite_unchanged`]): JIT writes its NSG rules anew, which
    /// restores a deny rule a deployment removed.
    Reapplied,
    /// Nothing to change.
    Unchanged,
}

/// The result of a change, after verification.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyChange {
    /// What happened.
    pub outcome: ChangeOutcome,
    /// The policy's id.
    pub policy_id: String,
    /// How many VMs the policy covers that the change did not name (checked unchanged by
    /// our write).
    pub other_virtual_machines: usize,
    /// How many writes (PUT or DELETE) were sent; more than one after a failed or undone
    /// write, each built from a fresh read.
    pub writes: u32,
    /// Changes to VMs this change did not name that another writer made after our write,
    /// seen in the read-back and left as they are (one line each).
    pub concurrent_changes: Vec<String>,
    /// The policy as read back after the change (`None` when it was deleted).
    #[serde(skip)]
    pub policy: Option<JitNetworkAccessPolicy>,
}

/// Why a change could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Azure failed.
    #[error(transparent)]
    Azure(#[from] ArmError),
    /// What the change named did not stay in the policy, even after merging again.
    #[error(
        "the JIT policy {policy_id} changed while it was being edited and could not be verified: {detail}"
    )]
    NotVerified {
        /// The policy.
        policy_id: String,
        /// What differed.
        detail: String,
    },
    /// The VM's id cannot be taken apart.
    #[error("'{0}' is not a VM id")]
    BadVmId(String),
    /// Nothing to disable or edit.
    #[error("JIT is not enabled for this VM")]
    NotEnabled,
    /// An edit names a port the VM's policy entry does not have.
    #[error("port {port} is not in the JIT policy of {vm}")]
    PortNotInPolicy {
        /// The VM's name.
        vm: String,
        /// The port.
        port: u16,
    },
    /// The policy name and the VM name are too long together.
    #[error(
        "policy '{policy}' and VM '{vm}' are {length} characters together; JIT allows at most {MAX_POLICY_AND_VM_NAME}"
    )]
    NameTooLong {
        /// The policy's name.
        policy: String,
        /// The VM's name.
        vm: String,
        /// Their combined length.
        length: usize,
    },
    /// Our own merge touched something it does not name (a bug; nothing was written).
    #[error("refusing to write the JIT policy {policy_id}: {detail}")]
    UnsafeMerge {
        /// The policy.
        policy_id: String,
        /// What the merge changed without naming it.
        detail: String,
    },
    /// The port rules are not valid.
    #[error(transparent)]
    Rule(#[from] RuleError),
}

/// The port the portal protects by default: 3389 on Windows, 22 otherwise (the rest of
/// the portal's defaults, any source and 3 hours, are the CLI's configurable defaults).
pub fn default_port(os: Option<&OperatingSystemTypes>) -> u16 {
    match os {
        Some(OperatingSystemTypes::Windows) => 3389,
        _ => 22,
    }
}

/// A port rule; one source goes in `allowedSourceAddressPrefix`, several in
/// `allowedSourceAddressPrefixes` (the two are exclusive).
pub fn port_rule(
    number: u16,
    protocol: JitProtocol,
    sources: &[String],
    max_duration: &str,
) -> JitNetworkAccessPortRule {
    let mut rule = JitNetworkAccessPortRule {
        number,
        protocol,
        allowed_source_address_prefix: None,
        allowed_source_address_prefixes: None,
        max_request_access_duration: IsoDuration(max_duration.to_owned()),
        additional_properties: serde_json::Map::new(),
    };
    set_sources(&mut rule, sources);
    rule
}

/// Puts `sources` in the one field JIT expects for their count.
fn set_sources(rule: &mut JitNetworkAccessPortRule, sources: &[String]) {
    let (single, several) = match sources {
        [] => (Some("*".to_owned()), None),
        [one] => (Some(one.clone()), None),
        many => (None, Some(many.to_vec())),
    };
    rule.allowed_source_address_prefix = single;
    rule.allowed_source_address_prefixes = several;
}

/// The shortest maximum JIT accepts for a port.
pub const SHORTEST_MAXIMUM: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
/// The longest maximum JIT accepts for a port.
pub const LONGEST_MAXIMUM: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Why port rules cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A source JIT does not accept.
    #[error("allowed source '{0}' is not *, an IPv4 address or an IPv4 range")]
    BadSource(String),
    /// A maximum outside what JIT accepts.
    #[error("a maximum request length of {} is outside what JIT allows (5 minutes to 24 hours)", IsoDuration::from_duration(*.0).as_str())]
    BadMaximum(jiff::SignedDuration),
    /// Port 0.
    #[error("port 0 cannot be protected")]
    PortZero,
}

/// Checks a source as JIT checks it: `*`, an IPv4 address or an IPv4 range.
pub fn check_source(source: &str) -> Result<(), RuleError> {
    let valid = source == "*"
        || source.parse::<ipnet::Ipv4Net>().is_ok()
        || source.parse::<std::net::Ipv4Addr>().is_ok();
    if valid {
        Ok(())
    } else {
        Err(RuleError::BadSource(source.to_owned()))
    }
}

/// Checks a maximum as JIT checks it: between 5 minutes and a day.
pub fn check_maximum(maximum: jiff::SignedDuration) -> Result<(), RuleError> {
    if (SHORTEST_MAXIMUM..=LONGEST_MAXIMUM).contains(&maximum) {
        Ok(())
    } else {
        Err(RuleError::BadMaximum(maximum))
    }
}

/// Port rules for `numbers`, each with the same protocol, sources and maximum, checked
/// as JIT checks them (IPv4 sources or `*`, a maximum between 5 minutes and a day).
pub fn port_rules(
    numbers: &[u16],
    protocol: &JitProtocol,
    sources: &[String],
    maximum: jiff::SignedDuration,
) -> Result<Vec<JitNetworkAccessPortRule>, RuleError> {
    for source in sources {
        check_source(source)?;
    }
    check_maximum(maximum)?;
    if numbers.contains(&0) {
        return Err(RuleError::PortZero);
    }
    let maximum = IsoDuration::from_duration(maximum);
    Ok(numbers
        .iter()
        .map(|&number| port_rule(number, protocol.clone(), sources, maximum.as_str()))
        .collect())
}

/// Where a VM's policy lives: its subscription, resource group and region.
#[derive(Debug, Clone)]
pub struct VmPlacement {
    /// The VM's id.
    pub vm_id: String,
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group.
    pub resource_group: String,
    /// Region (short form).
    pub location: String,
}

impl VmPlacement {
    /// Takes the placement from a VM id and its region.
    pub fn new(vm_id: &str, location: &str) -> Result<Self, ChangeError> {
        let id = ResourceId::parse(vm_id).map_err(|_| ChangeError::BadVmId(vm_id.to_owned()))?;
        Ok(Self {
            vm_id: vm_id.to_owned(),
            subscription_id: id.subscription_id().to_owned(),
            resource_group: id
                .resource_group()
                .ok_or_else(|| ChangeError::BadVmId(vm_id.to_owned()))?
                .to_owned(),
            location: location.to_owned(),
        })
    }

    /// The VM's name (the last segment of its id).
    pub fn vm_name(&self) -> &str {
        vm_name_of(&self.vm_id)
    }
}

/// The name at the end of a VM id.
fn vm_name_of(vm_id: &str) -> &str {
    vm_id
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(vm_id)
}

/// The id of policy `name` in a resource group and region.
pub fn policy_id_for(
    subscription_id: &str,
    resource_group: &str,
    location: &str,
    name: &str,
) -> String {
    format!(
        "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies/{name}"
    )
}

/// One port of a VM, changed by an edit.
#[derive(Debug, Clone, PartialEq)]
pub enum PortEdit {
    /// Add the port, or replace every rule of that number with this one.
    Put(JitNetworkAccessPortRule),
    /// Change some fields of the port's rules (the port must be in the entry).
    Change {
        /// The port.
        number: u16,
        /// New allowed sources, if they change.
        allowed_sources: Option<Vec<String>>,
        /// New maximum, if it changes.
        max_duration: Option<IsoDuration>,
    },
    /// Remove the port (nothing to do when it is already gone).
    Remove(u16),
}

impl PortEdit {
    /// The port this edit names.
    pub fn number(&self) -> u16 {
        match self {
            PortEdit::Put(rule) => rule.number,
            PortEdit::Change { number, .. } | PortEdit::Remove(number) => *number,
        }
    }
}

/// What a change names in one policy.
#[derive(Debug, Clone, PartialEq)]
pub enum VmEdit {
    /// Give the VM exactly these ports, adding it to the policy when it is absent.
    /// `firewall_public_ip`: set the Azure Firewall address when `Some`, keep the
    /// entry's otherwise.
    SetPorts {
        /// The VM's id.
        vm_id: String,
        /// Its ports.
        ports: Vec<JitNetworkAccessPortRule>,
        /// The Azure Firewall's public address to set, if any.
        firewall_public_ip: Option<String>,
    },
    /// Take the VM out of the policy (nothing to do when it is already out).
    Remove {
        /// The VM's id.
        vm_id: String,
    },
    /// Change some ports of a VM the policy lists; when its last port goes, the VM
    /// leaves the policy. Ports not named are left as they are.
    EditPorts {
        /// The VM's id.
        vm_id: String,
        /// The ports it names.
        edits: Vec<PortEdit>,
    },
}

impl VmEdit {
    /// The VM this edit names.
    pub fn vm_id(&self) -> &str {
        match self {
            VmEdit::SetPorts { vm_id, .. }
            | VmEdit::Remove { vm_id }
            | VmEdit::EditPorts { vm_id, .. } => vm_id,
        }
    }

    /// Whether the edit names port `number` of its VM (whole-entry edits name them all).
    fn names_port(&self, number: u16) -> bool {
        match self {
            VmEdit::SetPorts { .. } | VmEdit::Remove { .. } => true,
            VmEdit::EditPorts { edits, .. } => edits.iter().any(|edit| edit.number() == number),
        }
    }
}

/// How one VM's entry differs between two versions of a policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmDiff {
    /// The VM's id.
    pub vm_id: String,
    /// Its ports before (`None`: not in the policy).
    pub before: Option<Vec<JitNetworkAccessPortRule>>,
    /// Its ports after (`None`: not in the policy).
    pub after: Option<Vec<JitNetworkAccessPortRule>>,
}

impl VmDiff {
    /// The VM's name.
    pub fn vm_name(&self) -> &str {
        vm_name_of(&self.vm_id)
    }
}

/// The VMs whose entries differ between `before` and `after` (ports compared as
/// [`same_ports`] does, and the firewall address), in the order of `before`, then the
/// VMs new in `after`.
pub fn diff_policies(
    before: Option<&JitNetworkAccessPolicy>,
    after: Option<&JitNetworkAccessPolicy>,
) -> Vec<VmDiff> {
    let entries = |policy: Option<&JitNetworkAccessPolicy>| {
        policy
            .map(|policy| policy.properties.virtual_machines.clone())
            .unwrap_or_default()
    };
    let before = entries(before);
    let after = entries(after);
    let mut diffs = Vec::new();
    for old in &before {
        let new = after
            .iter()
            .find(|entry| same_resource_id(&entry.id, &old.id));
        if new.is_none_or(|new| !same_entry(old, new)) {
            diffs.push(VmDiff {
                vm_id: old.id.clone(),
                before: Some(old.ports.clone()),
                after: new.map(|new| new.ports.clone()),
            });
        }
    }
    for new in &after {
        if !before
            .iter()
            .any(|entry| same_resource_id(&entry.id, &new.id))
        {
            diffs.push(VmDiff {
                vm_id: new.id.clone(),
                before: None,
                after: Some(new.ports.clone()),
            });
        }
    }
    diffs
}

fn same_entry(
    left: &JitNetworkAccessPolicyVirtualMachine,
    right: &JitNetworkAccessPolicyVirtualMachine,
) -> bool {
    same_ports(&left.ports, &right.ports) && left.public_ip_address == right.public_ip_address
}

/// A change worked out against the policy as it was read.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The policy to write (its VM list may be empty: then it is deleted).
    pub policy: JitNetworkAccessPolicy,
    /// Whether it differs from what was read.
    pub changed: bool,
    /// What writing it does.
    pub outcome: ChangeOutcome,
    /// The entries that change.
    pub diff: Vec<VmDiff>,
}

impl Merged {
    /// Whether writing means deleting the policy.
    pub fn deletes(&self) -> bool {
        self.policy.properties.virtual_machines.is_empty()
    }
}

/// Merges `edits` into `current` (`None`: no policy yet, one would be created in
/// `location`). Pure: the same inputs always give the same policy.
pub fn merge(
    current: Option<&JitNetworkAccessPolicy>,
    policy_name: &str,
    location: &str,
    edits: &[VmEdit],
) -> Result<Merged, ChangeError> {
    let mut policy = current.cloned().unwrap_or_else(|| new_policy(location));
    policy.properties.provisioning_state = None;
    for edit in edits {
        let entries = &mut policy.properties.virtual_machines;
        let position = entries
            .iter()
            .position(|entry| same_resource_id(&entry.id, edit.vm_id()));
        match edit {
            VmEdit::SetPorts {
                vm_id,
                ports,
                firewall_public_ip,
            } => match position {
                Some(index) => {
                    entries[index].ports = ports.clone();
                    if let Some(address) = firewall_public_ip {
                        entries[index].public_ip_address = Some(address.clone());
                    }
                }
                None => {
                    let vm = vm_name_of(vm_id);
                    let length = policy_name.chars().count() + vm.chars().count();
                    if length > MAX_POLICY_AND_VM_NAME {
                        return Err(ChangeError::NameTooLong {
                            policy: policy_name.to_owned(),
                            vm: vm.to_owned(),
                            length,
                        });
                    }
                    entries.push(JitNetworkAccessPolicyVirtualMachine {
                        id: vm_id.clone(),
                        ports: ports.clone(),
                        public_ip_address: firewall_public_ip.clone(),
                        additional_properties: serde_json::Map::new(),
                    });
                }
            },
            VmEdit::Remove { .. } => {
                if let Some(index) = position {
                    entries.remove(index);
                }
            }
            VmEdit::EditPorts { vm_id, edits } => {
                let Some(index) = position else {
                    return Err(ChangeError::NotEnabled);
                };
                let ports = &mut entries[index].ports;
                for port_edit in edits {
                    apply_port_edit(ports, port_edit, vm_name_of(vm_id))?;
                }
                if ports.is_empty() {
                    entries.remove(index);
                }
            }
        }
    }
    let diff = diff_policies(current, Some(&policy));
    let changed = match current {
        None => !policy.properties.virtual_machines.is_empty(),
        Some(_) => !diff.is_empty(),
    };
    let outcome = if !changed {
        ChangeOutcome::Unchanged
    } else if current.is_none() {
        ChangeOutcome::Created
    } else if policy.properties.virtual_machines.is_empty() {
        ChangeOutcome::Deleted
    } else {
        match diff.as_slice() {
            [one] if one.before.is_none() => ChangeOutcome::Added,
            [one] if one.after.is_none() => ChangeOutcome::Removed,
            _ => ChangeOutcome::Updated,
        }
    };
    Ok(Merged {
        policy,
        changed,
        outcome,
        diff,
    })
}

fn apply_port_edit(
    ports: &mut Vec<JitNetworkAccessPortRule>,
    edit: &PortEdit,
    vm: &str,
) -> Result<(), ChangeError> {
    match edit {
        PortEdit::Put(rule) => match ports.iter().position(|port| port.number == rule.number) {
            Some(first) => {
                ports[first] = rule.clone();
                let mut index = 0;
                ports.retain(|port| {
                    let keep = index == first || port.number != rule.number;
                    index += 1;
                    keep
                });
            }
            None => ports.push(rule.clone()),
        },
        PortEdit::Change {
            number,
            allowed_sources,
            max_duration,
        } => {
            let mut found = false;
            for port in ports.iter_mut().filter(|port| port.number == *number) {
                found = true;
                if let Some(sources) = allowed_sources {
                    set_sources(port, sources);
                }
                if let Some(maximum) = max_duration {
                    port.max_request_access_duration = maximum.clone();
                }
            }
            if !found {
                return Err(ChangeError::PortNotInPolicy {
                    vm: vm.to_owned(),
                    port: *number,
                });
            }
        }
        PortEdit::Remove(number) => ports.retain(|port| port.number != *number),
    }
    Ok(())
}

/// Checks that a policy about to be written leaves everything the edits do not name
/// exactly as read: a guard against our own merge, before anything is sent.
pub fn check_unnamed_untouched(
    read: Option<&JitNetworkAccessPolicy>,
    written: &JitNetworkAccessPolicy,
    edits: &[VmEdit],
) -> Result<(), String> {
    match unnamed_differences(read, Some(written), edits)
        .into_iter()
        .next()
    {
        Some(difference) => Err(difference),
        None => Ok(()),
    }
}

/// What differs between two versions of a policy in VMs and ports that `edits` do not
/// name, one line per difference.
pub fn unnamed_differences(
    before: Option<&JitNetworkAccessPolicy>,
    after: Option<&JitNetworkAccessPolicy>,
    edits: &[VmEdit],
) -> Vec<String> {
    let mut differences = Vec::new();
    for diff in diff_policies(before, after) {
        let edit = edits
            .iter()
            .find(|edit| same_resource_id(edit.vm_id(), &diff.vm_id));
        match edit {
            None => differences.push(describe_unnamed(&diff)),
            Some(VmEdit::EditPorts {
                edits: port_edits, ..
            }) => {
                let unnamed = |ports: &Option<Vec<JitNetworkAccessPortRule>>| {
                    ports
                        .iter()
                        .flatten()
                        .filter(|port| !port_edits.iter().any(|edit| edit.number() == port.number))
                        .cloned()
                        .collect::<Vec<_>>()
                };
                let (old, new) = (unnamed(&diff.before), unnamed(&diff.after));
                // A VM that left because its last named port went keeps nothing to compare.
                if diff.after.is_some() && !same_ports(&old, &new) {
                    differences.push(format!(
                        "ports of {} that the change does not name differ",
                        diff.vm_name()
                    ));
                }
            }
            Some(_) => {}
        }
    }
    differences
}

fn describe_unnamed(diff: &VmDiff) -> String {
    match (&diff.before, &diff.after) {
        (Some(_), None) => format!("VM {} left the policy", diff.vm_name()),
        (None, Some(_)) => format!("VM {} joined the policy", diff.vm_name()),
        _ => format!("the ports of VM {} changed", diff.vm_name()),
    }
}

/// Checks that what `edits` name reads back as `written` has it (`read_back` `None`:
/// the policy is gone).
pub fn check_landed(
    written: &JitNetworkAccessPolicy,
    read_back: Option<&JitNetworkAccessPolicy>,
    edits: &[VmEdit],
) -> Result<(), String> {
    let find = |policy: Option<&JitNetworkAccessPolicy>, vm_id: &str| {
        policy.and_then(|policy| {
            policy
                .properties
                .virtual_machines
                .iter()
                .find(|entry| same_resource_id(&entry.id, vm_id))
                .cloned()
        })
    };
    for edit in edits {
        let wanted = find(Some(written), edit.vm_id());
        let found = find(read_back, edit.vm_id());
        let name = vm_name_of(edit.vm_id());
        match (&wanted, &found) {
            (None, None) => {}
            (None, Some(_)) => return Err(format!("VM {name} is still in the policy")),
            (Some(_), None) => return Err(format!("VM {name} is missing from the policy")),
            (Some(wanted), Some(found)) => {
                let named = |ports: &[JitNetworkAccessPortRule]| {
                    ports
                        .iter()
                        .filter(|port| edit.names_port(port.number))
                        .cloned()
                        .collect::<Vec<_>>()
                };
                if !same_ports(&named(&wanted.ports), &named(&found.ports)) {
                    return Err(format!(
                        "the ports of VM {name} differ from what was written"
                    ));
                }
                if let VmEdit::SetPorts {
                    firewall_public_ip: Some(address),
                    ..
                } = edit
                    && found.public_ip_address.as_deref() != Some(address.as_str())
                {
                    return Err(format!("the firewall address of VM {name} differs"));
                }
            }
        }
    }
    Ok(())
}

/// How [`commit`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// How many times at most the policy is read, merged and written (failed or undone
    /// writes count).
    pub max_rounds: u32,
    /// After creating a policy, how long to wait before reading it once more: another
    /// client that also read "no policy" writes within one round trip, and its creation
    /// erases ours. Zero skips the check.
    pub creation_settle: Duration,
    /// Write the policy even when the edits change nothing in it (once, from a fresh
    /// read), so that JIT re-creates NSG rules someone removed (`jit enable` does).
    pub rewrite_unchanged: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            max_rounds: 6,
            creation_settle: Duration::from_secs(2),
            rewrite_unchanged: false,
        }
    }
}

/// A change worked out against the policy as it is now, for a preview; [`commit`]
/// writes it.
#[derive(Debug, Clone)]
pub struct PolicyPlan {
    /// The policy's id (it may not exist yet).
    pub policy_id: String,
    /// The policy's name.
    pub policy_name: String,
    /// Its region (for a policy that has to be created).
    pub location: String,
    /// The policy as read while planning (`None`: there is none).
    pub current: Option<JitNetworkAccessPolicy>,
    /// What the change names.
    pub edits: Vec<VmEdit>,
    /// What writing it would do to the policy as read.
    pub preview: Merged,
}

impl PolicyPlan {
    /// Works out what `edits` would do to `current`, the policy `policy_id` as just read.
    pub fn new(
        policy_id: &str,
        location: &str,
        current: Option<JitNetworkAccessPolicy>,
        edits: Vec<VmEdit>,
    ) -> Result<Self, ChangeError> {
        let policy_name = name_of_policy(policy_id);
        let preview = merge(current.as_ref(), &policy_name, location, &edits)?;
        Ok(Self {
            policy_id: policy_id.to_owned(),
            policy_name,
            location: location.to_owned(),
            current,
            edits,
            preview,
        })
    }

    /// Whether the change would write anything.
    pub fn changes_anything(&self) -> bool {
        self.preview.changed
    }
}

/// Reads the policy `policy_id` and works out what `edits` would do to it.
pub async fn plan(
    arm: &ArmClient,
    policy_id: &str,
    location: &str,
    edits: Vec<VmEdit>,
) -> Result<PolicyPlan, ChangeError> {
    let current = read_policy(arm, policy_id).await?;
    PolicyPlan::new(policy_id, location, current, edits)
}

/// Reads one policy by id; `None` when there is none.
pub async fn read_policy(
    arm: &ArmClient,
    policy_id: &str,
) -> Result<Option<JitNetworkAccessPolicy>, ChangeError> {
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    Ok(read_optional(&client, policy_id).await?)
}

/// The policy a VM's edits go to: the one of its resource group and region that lists
/// it, else the one named `default`, else the first; else a new `default`.
pub async fn policy_for_new_entry(
    arm: &ArmClient,
    placement: &VmPlacement,
) -> Result<String, ChangeError> {
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    let policies = client
        .list_by_resource_group_and_region(
            &placement.subscription_id,
            &placement.resource_group,
            &placement.location,
        )
        .await?;
    let listing_vm = policies
        .iter()
        .find(|policy| lists_vm(policy, &placement.vm_id));
    let named_default = policies.iter().find(|policy| {
        policy
            .name
            .as_deref()
            .is_some_and(|name| name.eq_ignore_ascii_case(DEFAULT_POLICY_NAME))
    });
    Ok(listing_vm
        .or(named_default)
        .or(policies.first())
        .and_then(|policy| policy.id.clone())
        .unwrap_or_else(|| {
            policy_id_for(
                &placement.subscription_id,
                &placement.resource_group,
                &placement.location,
                DEFAULT_POLICY_NAME,
            )
        }))
}

/// The policy of the VM's subscription that lists it, found by listing.
pub async fn policy_listing(
    arm: &ArmClient,
    placement: &VmPlacement,
) -> Result<Option<(String, String)>, ChangeError> {
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    let policies = client.list(&placement.subscription_id).await?;
    Ok(policies
        .iter()
        .find(|policy| lists_vm(policy, &placement.vm_id))
        .and_then(|policy| {
            let id = policy.id.clone()?;
            let location = policy
                .location
                .clone()
                .or_else(|| {
                    ResourceId::parse(&id)
                        .ok()
                        .and_then(|parsed| parsed.name_of("locations").map(str::to_owned))
                })
                .unwrap_or_else(|| placement.location.clone());
            Some((id, location))
        }))
}

fn lists_vm(policy: &JitNetworkAccessPolicy, vm_id: &str) -> bool {
    policy
        .properties
        .virtual_machines
        .iter()
        .any(|entry| same_resource_id(&entry.id, vm_id))
}

/// Plans turning JIT on for the VM with `ports` (replacing its ports if it has some).
pub async fn plan_enable(
    arm: &ArmClient,
    placement: &VmPlacement,
    ports: Vec<JitNetworkAccessPortRule>,
) -> Result<PolicyPlan, ChangeError> {
    let policy_id = policy_for_new_entry(arm, placement).await?;
    let location = location_of_policy(&policy_id).unwrap_or_else(|| placement.location.clone());
    plan(
        arm,
        &policy_id,
        &location,
        vec![VmEdit::SetPorts {
            vm_id: placement.vm_id.clone(),
            ports,
            firewall_public_ip: None,
        }],
    )
    .await
}

/// A value for every port, or for some ports by number (the number wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerPort<T> {
    /// For every port the change touches.
    pub every: Option<T>,
    /// For one port each.
    pub ports: Vec<(u16, T)>,
}

impl<T> Default for PerPort<T> {
    fn default() -> Self {
        Self {
            every: None,
            ports: Vec::new(),
        }
    }
}

impl<T: Clone> PerPort<T> {
    /// The value for `port`, if any.
    pub fn for_port(&self, port: u16) -> Option<T> {
        self.ports
            .iter()
            .find(|(number, _)| *number == port)
            .map(|(_, value)| value.clone())
            .or_else(|| self.every.clone())
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.every.is_none() && self.ports.is_empty()
    }
}

/// A change to the ports of one VM, as `jit edit` takes it: ports to add and remove, and
/// new maximums and allowed sources for every port or for some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortsChange {
    /// Ports to add (or to replace, when the VM has them already).
    pub add: Vec<u16>,
    /// The protocol of added ports.
    pub protocol: JitProtocol,
    /// Ports to remove.
    pub remove: Vec<u16>,
    /// New maximums.
    pub max_duration: PerPort<jiff::SignedDuration>,
    /// New allowed sources.
    pub allowed_sources: PerPort<Vec<String>>,
    /// Sources of added ports that get none above.
    pub default_sources: Vec<String>,
    /// Maximum of added ports that get none above.
    pub default_max_duration: jiff::SignedDuration,
}

impl PortsChange {
    /// Whether the change asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && self.max_duration.is_empty()
            && self.allowed_sources.is_empty()
    }

    /// The port edits this change makes to a VM whose entry has `current` ports: added
    /// ports get their values (else the defaults), every other port that a value applies
    /// to is changed. A port named by number must be in the entry or be added.
    pub fn port_edits(
        &self,
        vm: &str,
        current: &[JitNetworkAccessPortRule],
    ) -> Result<Vec<PortEdit>, ChangeError> {
        let present = |number: u16| current.iter().any(|port| port.number == number);
        let named = self
            .remove
            .iter()
            .copied()
            .chain(self.max_duration.ports.iter().map(|(number, _)| *number))
            .chain(self.allowed_sources.ports.iter().map(|(number, _)| *number));
        for number in named {
            if !present(number) && !self.add.contains(&number) {
                return Err(ChangeError::PortNotInPolicy {
                    vm: vm.to_owned(),
                    port: number,
                });
            }
        }
        let mut edits = Vec::new();
        for &number in &self.add {
            let sources = self
                .allowed_sources
                .for_port(number)
                .unwrap_or_else(|| self.default_sources.clone());
            let maximum = self
                .max_duration
                .for_port(number)
                .unwrap_or(self.default_max_duration);
            let mut rules = port_rules(&[number], &self.protocol, &sources, maximum)?;
            edits.extend(rules.pop().map(PortEdit::Put));
        }
        let mut changed: Vec<u16> = Vec::new();
        for port in current {
            let number = port.number;
            if self.add.contains(&number)
                || self.remove.contains(&number)
                || changed.contains(&number)
            {
                continue;
            }
            let sources = self.allowed_sources.for_port(number);
            let maximum = self.max_duration.for_port(number);
            if sources.is_none() && maximum.is_none() {
                continue;
            }
            for source in sources.iter().flatten() {
                check_source(source)?;
            }
            if let Some(maximum) = maximum {
                check_maximum(maximum)?;
            }
            changed.push(number);
            edits.push(PortEdit::Change {
                number,
                allowed_sources: sources,
                max_duration: maximum.map(IsoDuration::from_duration),
            });
        }
        edits.extend(self.remove.iter().map(|&number| PortEdit::Remove(number)));
        Ok(edits)
    }
}

/// Plans a change to the ports of a VM its policy already lists (`jit edit`).
pub async fn plan_ports_change(
    arm: &ArmClient,
    placement: &VmPlacement,
    change: &PortsChange,
) -> Result<PolicyPlan, ChangeError> {
    let (policy_id, location) = policy_listing(arm, placement)
        .await?
        .ok_or(ChangeError::NotEnabled)?;
    let current = read_policy(arm, &policy_id).await?;
    let ports = current
        .as_ref()
        .and_then(|policy| {
            policy
                .properties
                .virtual_machines
                .iter()
                .find(|entry| same_resource_id(&entry.id, &placement.vm_id))
        })
        .map(|entry| entry.ports.clone())
        .ok_or(ChangeError::NotEnabled)?;
    let edits = change.port_edits(placement.vm_name(), &ports)?;
    PolicyPlan::new(
        &policy_id,
        &location,
        current,
        vec![VmEdit::EditPorts {
            vm_id: placement.vm_id.clone(),
            edits,
        }],
    )
}

/// Plans turning JIT off for the VM.
pub async fn plan_disable(
    arm: &ArmClient,
    placement: &VmPlacement,
) -> Result<PolicyPlan, ChangeError> {
    let (policy_id, location) = policy_listing(arm, placement)
        .await?
        .ok_or(ChangeError::NotEnabled)?;
    let planned = plan(
        arm,
        &policy_id,
        &location,
        vec![VmEdit::Remove {
            vm_id: placement.vm_id.clone(),
        }],
    )
    .await?;
    if !planned.changes_anything() {
        return Err(ChangeError::NotEnabled);
    }
    Ok(planned)
}

/// Turns JIT on for the VM with `ports` (replacing its ports if it already has some),
/// merging into the policy of its resource group and region.
pub async fn enable(
    arm: &ArmClient,
    placement: &VmPlacement,
    ports: Vec<JitNetworkAccessPortRule>,
) -> Result<PolicyChange, ChangeError> {
    enable_with(arm, placement, ports, &WriteOptions::default()).await
}

/// [`enable`] with explicit [`WriteOptions`].
pub async fn enable_with(
    arm: &ArmClient,
    placement: &VmPlacement,
    ports: Vec<JitNetworkAccessPortRule>,
    options: &WriteOptions,
) -> Result<PolicyChange, ChangeError> {
    let planned = plan_enable(arm, placement, ports).await?;
    commit(arm, &planned, options).await
}

/// Turns JIT off for the VM: removes its entry from the policy that lists it (deleting
/// the policy when no VM is left), leaving every other VM as it was.
pub async fn disable(
    arm: &ArmClient,
    placement: &VmPlacement,
) -> Result<PolicyChange, ChangeError> {
    disable_with(arm, placement, &WriteOptions::default()).await
}

/// [`disable`] with explicit [`WriteOptions`].
pub async fn disable_with(
    arm: &ArmClient,
    placement: &VmPlacement,
    options: &WriteOptions,
) -> Result<PolicyChange, ChangeError> {
    let planned = plan_disable(arm, placement).await?;
    let change = commit(arm, &planned, options).await?;
    if change.outcome == ChangeOutcome::Unchanged {
        // Someone else removed it between our two reads.
        return Err(ChangeError::NotEnabled);
    }
    Ok(change)
}

/// Writes a planned change: reads the policy again, merges the plan's edits into that
/// read, writes, reads back and verifies, as the module documentation describes.
pub async fn commit(
    arm: &ArmClient,
    planned: &PolicyPlan,
    options: &WriteOptions,
) -> Result<PolicyChange, ChangeError> {
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    let policy_id = planned.policy_id.as_str();
    let budget = arm.retry_options().clone();
    let mut failures = 0u32;
    let mut waited = Duration::ZERO;
    let mut first_outcome: Option<ChangeOutcome> = None;
    let mut last_problem = String::from("no attempt was made");
    for round in 1..=options.max_rounds.max(1) {
        // The read the write is built from: nothing may come between it and the write.
        let fresh = read_optional(&client, policy_id).await?;
        let merged = merge(
            fresh.as_ref(),
            &planned.policy_name,
            &planned.location,
            &planned.edits,
        )?;
        let others = fresh.as_ref().map_or(0, |policy| {
            policy
                .properties
                .virtual_machines
                .iter()
                .filter(|entry| {
                    !planned
                        .edits
                        .iter()
                        .any(|edit| same_resource_id(edit.vm_id(), &entry.id))
                })
                .count()
        });
        let rewrite = !merged.changed
            && options.rewrite_unchanged
            && first_outcome.is_none()
            && fresh.is_some();
        if !merged.changed && !rewrite {
            // Nothing (left) to write: the change was there already, or an earlier
            // attempt that failed ambiguously did land.
            return Ok(PolicyChange {
                outcome: first_outcome.unwrap_or(ChangeOutcome::Unchanged),
                policy_id: fresh
                    .as_ref()
                    .and_then(|policy| policy.id.clone())
                    .unwrap_or_else(|| policy_id.to_owned()),
                other_virtual_machines: others,
                // Every earlier round wrote (or tried to).
                writes: round - 1,
                concurrent_changes: Vec::new(),
                policy: fresh,
            });
        }
        check_unnamed_untouched(fresh.as_ref(), &merged.policy, &planned.edits).map_err(
            |detail| ChangeError::UnsafeMerge {
                policy_id: policy_id.to_owned(),
                detail,
            },
        )?;
        first_outcome.get_or_insert(if rewrite {
            ChangeOutcome::Reapplied
        } else {
            merged.outcome
        });
        let written = if merged.deletes() {
            client.delete_by_id(policy_id).await.map(|_| ())
        } else {
            client
                .create_or_update_by_id(policy_id, &merged.policy)
                .await
                .map(|_| ())
        };
        if let Err(error) = written {
            let Some((reason, delay)) = retry_after_failure(&error, &budget, failures, waited)
            else {
                return Err(error.into());
            };
            failures += 1;
            waited += delay;
            arm.report_retry(&RetryEvent {
                reason,
                retry: failures,
                delay,
                method: if merged.deletes() { "DELETE" } else { "PUT" }.to_owned(),
                path: policy_id.to_owned(),
            });
            last_problem = error.to_string();
            tokio::time::sleep(delay).await;
            continue;
        }
        let mut read_back = read_optional(&client, policy_id).await?;
        if let Err(problem) = check_landed(&merged.policy, read_back.as_ref(), &planned.edits) {
            tracing::warn!(round, %problem, "the policy did not read back as written; merging again");
            last_problem = problem;
            continue;
        }
        if fresh.is_none() && !options.creation_settle.is_zero() {
            tokio::time::sleep(options.creation_settle).await;
            read_back = read_optional(&client, policy_id).await?;
            if let Err(problem) = check_landed(&merged.policy, read_back.as_ref(), &planned.edits) {
                tracing::warn!(round, %problem, "another client created the policy at the same time; merging again");
                last_problem = format!("{problem} after another client created the policy");
                continue;
            }
        }
        let concurrent_changes = if merged.deletes() && read_back.is_none() {
            Vec::new()
        } else {
            unnamed_differences(Some(&merged.policy), read_back.as_ref(), &planned.edits)
        };
        for change in &concurrent_changes {
            tracing::info!(%change, "another writer changed the policy after our write; kept");
        }
        return Ok(PolicyChange {
            outcome: first_outcome.unwrap_or(merged.outcome),
            policy_id: read_back
                .as_ref()
                .and_then(|policy| policy.id.clone())
                .unwrap_or_else(|| policy_id.to_owned()),
            other_virtual_machines: others,
            writes: round,
            concurrent_changes,
            policy: read_back,
        });
    }
    Err(ChangeError::NotVerified {
        policy_id: policy_id.to_owned(),
        detail: last_problem,
    })
}

/// The wait before merging and writing again after a failed write, with the same rules
/// and budget as the ARM pipeline's own retries ([`decide`]), or `None` when the failure
/// is not worth another round. 409 (another change in progress) counts as transient.
fn retry_after_failure(
    error: &ArmError,
    budget: &crate::azure::arm::RetryOptions,
    failures: u32,
    waited: Duration,
) -> Option<(RetryReason, Duration)> {
    let outcome = match error {
        ArmError::Throttled { retry_after, .. } => AttemptOutcome::Response {
            status: 429,
            retry_after: *retry_after,
        },
        ArmError::Server {
            status,
            retry_after,
            ..
        } => AttemptOutcome::Response {
            status: *status,
            retry_after: *retry_after,
        },
        // Another change in progress: as transient as a 503 without a wait.
        ArmError::Conflict { .. } => AttemptOutcome::Response {
            status: 503,
            retry_after: None,
        },
        ArmError::Transport { detail, .. }
            if !detail.to_ascii_lowercase().contains("certificate") =>
        {
            AttemptOutcome::NoResponse
        }
        _ => return None,
    };
    let jitter = rand::random::<f64>();
    match decide(
        budget,
        Idempotency::Idempotent,
        outcome,
        failures,
        waited,
        jitter,
    ) {
        RetryDecision::Retry { delay, reason } => {
            let reason = match error {
                ArmError::Conflict { .. } => RetryReason::ServerError { status: 409 },
                _ => reason,
            };
            Some((reason, delay))
        }
        RetryDecision::Stop => None,
    }
}

async fn read_optional(
    client: &JitNetworkAccessPoliciesClient,
    policy_id: &str,
) -> Result<Option<JitNetworkAccessPolicy>, ArmError> {
    match client.get_by_id(policy_id).await {
        Ok(policy) => Ok(Some(policy)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// The name at the end of a policy id.
pub fn name_of_policy(policy_id: &str) -> String {
    ResourceId::parse(policy_id)
        .ok()
        .and_then(|id| id.name().map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_POLICY_NAME.to_owned())
}

fn location_of_policy(policy_id: &str) -> Option<String> {
    ResourceId::parse(policy_id)
        .ok()
        .and_then(|id| id.name_of("locations").map(str::to_owned))
}

fn new_policy(location: &str) -> JitNetworkAccessPolicy {
    JitNetworkAccessPolicy {
        id: None,
        name: None,
        resource_type: None,
        kind: Some("Basic".to_owned()),
        location: Some(location.to_owned()),
        properties: JitNetworkAccessPolicyProperties::default(),
        additional_properties: serde_json::Map::new(),
    }
}

/// Port lists compare by number, protocol, sources and maximum, ignoring order.
pub fn same_ports(left: &[JitNetworkAccessPortRule], right: &[JitNetworkAccessPortRule]) -> bool {
    let key = |rule: &JitNetworkAccessPortRule| {
        let mut sources: Vec<String> = rule
            .allowed_sources()
            .iter()
            .map(|source| source.trim().to_owned())
            .collect();
        sources.sort();
        let maximum = rule
            .max_request_access_duration
            .to_duration()
            .map(|duration| duration.as_secs())
            .unwrap_or(-1);
        (
            rule.number,
            rule.protocol.as_str().to_ascii_uppercase(),
            sources,
            maximum,
        )
    };
    let mut left: Vec<_> = left.iter().map(key).collect();
    let mut right: Vec<_> = right.iter().map(key).collect();
    left.sort();
    right.sort();
    left == right
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, port: u16) -> JitNetworkAccessPolicyVirtualMachine {
        JitNetworkAccessPolicyVirtualMachine {
            id: id.to_owned(),
            ports: vec![port_rule(port, JitProtocol::All, &[], "PT3H")],
            public_ip_address: None,
            additional_properties: serde_json::Map::new(),
        }
    }

    fn policy(entries: Vec<JitNetworkAccessPolicyVirtualMachine>) -> JitNetworkAccessPolicy {
        let mut policy = new_policy("westeurope");
        policy.properties.virtual_machines = entries;
        policy
    }

    fn set(vm: &str, port: u16) -> VmEdit {
        VmEdit::SetPorts {
            vm_id: vm.to_owned(),
            ports: vec![port_rule(port, JitProtocol::All, &[], "PT3H")],
            firewall_public_ip: None,
        }
    }

    #[test]
    fn merging_touches_only_what_is_named() {
        let read = policy(vec![entry("/vm/a", 22), entry("/vm/b", 3389)]);
        let merged =
            merge(Some(&read), "default", "westeurope", &[set("/VM/C", 22)]).expect("merges");
        assert_eq!(merged.outcome, ChangeOutcome::Added);
        assert_eq!(merged.policy.properties.virtual_machines.len(), 3);
        assert_eq!(
            check_unnamed_untouched(Some(&read), &merged.policy, &[set("/vm/c", 22)]),
            Ok(())
        );

        let removed = merge(
            Some(&read),
            "default",
            "westeurope",
            &[VmEdit::Remove {
                vm_id: "/vm/a".to_owned(),
            }],
        )
        .expect("merges");
        assert_eq!(removed.outcome, ChangeOutcome::Removed);

        let last = merge(
            Some(&policy(vec![entry("/vm/a", 22)])),
            "default",
            "westeurope",
            &[VmEdit::Remove {
                vm_id: "/vm/a".to_owned(),
            }],
        )
        .expect("merges");
        assert_eq!(last.outcome, ChangeOutcome::Deleted);
        assert!(last.deletes());

        let created = merge(None, "default", "westeurope", &[set("/vm/a", 22)]).expect("merges");
        assert_eq!(created.outcome, ChangeOutcome::Created);
        let same =
            merge(Some(&read), "default", "westeurope", &[set("/vm/a", 22)]).expect("merges");
        assert!(!same.changed);
    }

    #[test]
    fn port_edits_change_only_the_named_ports_and_the_last_one_takes_the_vm_out() {
        let mut two = entry("/vm/a", 22);
        two.ports
            .push(port_rule(8080, JitProtocol::Tcp, &[], "PT1H"));
        let read = policy(vec![two, entry("/vm/b", 22)]);
        let edits = vec![VmEdit::EditPorts {
            vm_id: "/vm/a".to_owned(),
            edits: vec![
                PortEdit::Change {
                    number: 22,
                    allowed_sources: Some(vec!["10.0.0.0/8".to_owned(), "192.0.2.1".to_owned()]),
                    max_duration: Some(IsoDuration("PT1H".to_owned())),
                },
                PortEdit::Put(port_rule(9000, JitProtocol::Udp, &[], "PT2H")),
            ],
        }];
        let merged = merge(Some(&read), "default", "westeurope", &edits).expect("merges");
        assert_eq!(merged.outcome, ChangeOutcome::Updated);
        let ports = &merged.policy.properties.virtual_machines[0].ports;
        assert_eq!(ports.len(), 3);
        assert_eq!(ports[0].allowed_sources(), ["10.0.0.0/8", "192.0.2.1"]);
        assert_eq!(ports[0].allowed_source_address_prefix, None);
        assert_eq!(ports[1].max_request_access_duration.as_str(), "PT1H");
        assert_eq!(
            check_unnamed_untouched(Some(&read), &merged.policy, &edits),
            Ok(())
        );

        let missing = merge(
            Some(&read),
            "default",
            "westeurope",
            &[VmEdit::EditPorts {
                vm_id: "/vm/b".to_owned(),
                edits: vec![PortEdit::Change {
                    number: 443,
                    allowed_sources: None,
                    max_duration: None,
                }],
            }],
        );
        assert!(matches!(
            missing,
            Err(ChangeError::PortNotInPolicy { port: 443, .. })
        ));

        let gone = merge(
            Some(&read),
            "default",
            "westeurope",
            &[VmEdit::EditPorts {
                vm_id: "/vm/b".to_owned(),
                edits: vec![PortEdit::Remove(22)],
            }],
        )
        .expect("merges");
        assert_eq!(gone.outcome, ChangeOutcome::Removed);
        assert_eq!(gone.policy.properties.virtual_machines.len(), 1);
    }

    #[test]
    fn a_merge_that_touches_an_unnamed_vm_is_caught_before_writing() {
        let read = policy(vec![entry("/vm/a", 22), entry("/vm/b", 3389)]);
        let mut written = read.clone();
        written.properties.virtual_machines[1].ports[0].number = 3390;
        let problem = check_unnamed_untouched(Some(&read), &written, &[set("/vm/a", 22)])
            .expect_err("b changed");
        assert!(problem.contains("VM b"), "{problem}");
        written.properties.virtual_machines.remove(1);
        assert!(check_unnamed_untouched(Some(&read), &written, &[set("/vm/a", 22)]).is_err());
    }

    #[test]
    fn landing_is_checked_for_named_things_only() {
        let written = policy(vec![entry("/vm/a", 22), entry("/vm/me", 22)]);
        let edits = [set("/vm/me", 22)];
        let with_other_change = policy(vec![entry("/vm/a", 2222), entry("/vm/me", 22)]);
        assert_eq!(
            check_landed(&written, Some(&with_other_change), &edits),
            Ok(())
        );
        assert_eq!(
            unnamed_differences(Some(&written), Some(&with_other_change), &edits),
            ["the ports of VM a changed"]
        );
        let erased = policy(vec![entry("/vm/a", 22)]);
        assert!(
            check_landed(&written, Some(&erased), &edits)
                .expect_err("ours is gone")
                .contains("missing")
        );
        assert!(check_landed(&written, None, &edits).is_err());
    }

    #[test]
    fn the_policy_and_vm_names_may_not_exceed_56_characters() {
        let long_vm = format!("/vm/{}", "v".repeat(50));
        let error =
            merge(None, "default", "westeurope", &[set(&long_vm, 22)]).expect_err("57 characters");
        assert!(matches!(error, ChangeError::NameTooLong { length: 57, .. }));
        let fits = format!("/vm/{}", "v".repeat(49));
        assert!(merge(None, "default", "westeurope", &[set(&fits, 22)]).is_ok());
    }

    #[test]
    fn failed_writes_are_retried_within_the_budget_and_only_when_transient() {
        let budget = crate::azure::arm::RetryOptions::default();
        let unavailable = ArmError::Server {
            status: 503,
            code: None,
            message: "busy".to_owned(),
            not_retried: false,
            retry_after: Some(Duration::from_secs(2)),
        };
        assert_eq!(
            retry_after_failure(&unavailable, &budget, 0, Duration::ZERO),
            Some((
                RetryReason::Throttled { status: 503 },
                Duration::from_secs(2)
            ))
        );
        assert_eq!(
            retry_after_failure(&unavailable, &budget, 0, Duration::from_secs(59)),
            None,
            "the wait does not fit the budget"
        );
        let refused = ArmError::BadRequest {
            code: "InvalidInput".to_owned(),
            message: "no".to_owned(),
        };
        assert_eq!(
            retry_after_failure(&refused, &budget, 0, Duration::ZERO),
            None
        );
        let conflict = ArmError::Conflict {
            code: "Conflict".to_owned(),
            message: "busy".to_owned(),
        };
        assert!(matches!(
            retry_after_failure(&conflict, &budget, 0, Duration::ZERO),
            Some((RetryReason::ServerError { status: 409 }, _))
        ));
    }

    #[test]
    fn port_comparison_ignores_order_case_and_duration_spelling() {
        let left = vec![
            port_rule(
                22,
                JitProtocol::Tcp,
                &["10.0.0.0/8".to_owned(), "*".to_owned()],
                "PT3H",
            ),
            port_rule(3389, JitProtocol::All, &[], "PT180M"),
        ];
        let right = vec![
            port_rule(3389, JitProtocol::All, &["*".to_owned()], "PT3H"),
            port_rule(
                22,
                JitProtocol::Other("tcp".to_owned()),
                &["*".to_owned(), "10.0.0.0/8".to_owned()],
                "PT3H",
            ),
        ];
        assert!(same_ports(&left, &right));
        assert!(!same_ports(&left, &right[..1]));
    }

    #[test]
    fn portal_defaults_follow_the_os() {
        assert_eq!(default_port(Some(&OperatingSystemTypes::Windows)), 3389);
        assert_eq!(default_port(Some(&OperatingSystemTypes::Linux)), 22);
        assert_eq!(default_port(None), 22);
        let rule = port_rule(22, JitProtocol::All, &[], "PT3H");
        assert_eq!(rule.allowed_source_address_prefix.as_deref(), Some("*"));
    }
}
