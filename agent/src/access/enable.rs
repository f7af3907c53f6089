//! Turning JIT on or off for one VM without touching any other VM.
//!
//! A JIT policy covers every VM of a resource group and region, and a PUT replaces the
//! whole policy: a client that writes only "its" VM silently removes everyone else's
//! (MicrosoftDocs/azure-docs#36343). So every change here is a read-merge-write-verify:
//! read the policy as it is now, replace or add (or remove) this VM's entry only, write
//! the policy back whole (request history and fields this version does not model
//! included), then read it again and check that this VM has what was asked and every
//! other VM still has exactly the ports it had. If the check fails (someone else edited
//! the policy at the same moment), the merge is redone from the fresh copy, a few times,
//! before giving up with an error that says so. Policies have no ETag, so a write that
//! lands between our read and our write cannot be prevented, only made unlikely by
//! keeping that gap to one round trip and detected afterwards.

use serde::Serialize;

use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::clients::JitNetworkAccessPoliciesClient;
use crate::azure::models::{
    IsoDuration, JitNetworkAccessPolicy, JitNetworkAccessPolicyProperties,
    JitNetworkAccessPolicyVirtualMachine, JitNetworkAccessPortRule, JitProtocol,
    OperatingSystemTypes,
};
use crate::azure::resource_id::{ResourceId, same_resource_id};

/// The name the portal gives the policy it creates.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// How many times a merge is redone when the policy changed underneath it.
const ATTEMPTS: usize = 3;

/// What enabling did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOutcome {
    /// A new policy was created for the VM.
    Created,
    /// The VM was added to an existing policy.
    Added,
    /// The VM's ports in an existing policy were replaced.
    Updated,
    /// The VM was removed from a policy that still covers other VMs.
    Removed,
    /// The VM was the policy's last, so the policy was deleted.
    Deleted,
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
    /// How many other VMs the policy covers (checked unchanged).
    pub other_virtual_machines: usize,
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
    /// The policy did not read back as written, even after retrying the merge.
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
    /// Nothing to disable.
    #[error("JIT is not enabled for this VM")]
    NotEnabled,
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
    let (single, several) = match sources {
        [] => (Some("*".to_owned()), None),
        [one] => (Some(one.clone()), None),
        many => (None, Some(many.to_vec())),
    };
    JitNetworkAccessPortRule {
        number,
        protocol,
        allowed_source_address_prefix: single,
        allowed_source_address_prefixes: several,
        max_request_access_duration: IsoDuration(max_duration.to_owned()),
        additional_properties: serde_json::Map::new(),
    }
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
        let valid = source == "*"
            || source.parse::<ipnet::Ipv4Net>().is_ok()
            || source.parse::<std::net::Ipv4Addr>().is_ok();
        if !valid {
            return Err(RuleError::BadSource(source.clone()));
        }
    }
    if !(SHORTEST_MAXIMUM..=LONGEST_MAXIMUM).contains(&maximum) {
        return Err(RuleError::BadMaximum(maximum));
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
}

/// Turns JIT on for the VM with `ports` (replacing its ports if it already has some),
/// merging into the policy of its resource group and region.
pub async fn enable(
    arm: &ArmClient,
    placement: &VmPlacement,
    ports: Vec<JitNetworkAccessPortRule>,
) -> Result<PolicyChange, ChangeError> {
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    let target = choose_policy(&client, placement).await?;
    let mut last_problem = String::new();
    for attempt in 1..=ATTEMPTS {
        let current = match &target {
            Target::Existing { id } => match client.get_by_id(id).await {
                Ok(policy) => Some(policy),
                Err(error) if error.is_not_found() => None,
                Err(error) => return Err(error.into()),
            },
            Target::New => None,
        };
        let mut desired = current
            .clone()
            .unwrap_or_else(|| new_policy(&placement.location));
        let others = other_entries(&desired, &placement.vm_id);
        let existing_entry = desired
            .properties
            .virtual_machines
            .iter()
            .find(|entry| same_resource_id(&entry.id, &placement.vm_id))
            .cloned();
        let outcome = match (&current, &existing_entry) {
            (None, _) => ChangeOutcome::Created,
            (Some(_), None) => ChangeOutcome::Added,
            (Some(_), Some(entry)) if entry.ports == ports => {
                return Ok(PolicyChange {
                    outcome: ChangeOutcome::Unchanged,
                    policy_id: current
                        .as_ref()
                        .and_then(|policy| policy.id.clone())
                        .unwrap_or_default(),
                    other_virtual_machines: others.len(),
                    policy: current,
                });
            }
            (Some(_), Some(_)) => ChangeOutcome::Updated,
        };
        let entry = JitNetworkAccessPolicyVirtualMachine {
            id: existing_entry
                .as_ref()
                .map_or_else(|| placement.vm_id.clone(), |entry| entry.id.clone()),
            ports: ports.clone(),
            public_ip_address: existing_entry
                .as_ref()
                .and_then(|entry| entry.public_ip_address.clone()),
            additional_properties: existing_entry
                .map(|entry| entry.additional_properties)
                .unwrap_or_default(),
        };
        desired
            .properties
            .virtual_machines
            .retain(|candidate| !same_resource_id(&candidate.id, &placement.vm_id));
        desired.properties.virtual_machines.push(entry.clone());
        desired.properties.provisioning_state = None;

        let written = write(&client, placement, &target, &desired).await?;
        let policy_id = written
            .id
            .clone()
            .unwrap_or_else(|| policy_id_for(placement, DEFAULT_POLICY_NAME));
        let read_back = client.get_by_id(&policy_id).await?;
        match verify(&read_back, &placement.vm_id, Some(&entry.ports), &others) {
            Ok(()) => {
                return Ok(PolicyChange {
                    outcome,
                    policy_id,
                    other_virtual_machines: others.len(),
                    policy: Some(read_back),
                });
            }
            Err(problem) => {
                tracing::warn!(attempt, %problem, "policy did not read back as written; merging again");
                last_problem = problem;
            }
        }
    }
    Err(ChangeError::NotVerified {
        policy_id: match &target {
            Target::Existing { id } => id.clone(),
            Target::New => policy_id_for(placement, DEFAULT_POLICY_NAME),
        },
        detail: last_problem,
    })
}

/// Turns JIT off for the VM: removes its entry from the policy that lists it (deleting
/// the policy when no VM is left), leaving every other VM as it was.
pub async fn disable(
    arm: &ArmClient,
    placement: &VmPlacement,
) -> Result<PolicyChange, ChangeError> {
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    let policies = client.list(&placement.subscription_id).await?;
    let Some(policy_id) = policies
        .iter()
        .find(|policy| {
            policy
                .properties
                .virtual_machines
                .iter()
                .any(|entry| same_resource_id(&entry.id, &placement.vm_id))
        })
        .and_then(|policy| policy.id.clone())
    else {
        return Err(ChangeError::NotEnabled);
    };
    let mut last_problem = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut policy = client.get_by_id(&policy_id).await?;
        let others = other_entries(&policy, &placement.vm_id);
        if others.len() == policy.properties.virtual_machines.len() {
            return Err(ChangeError::NotEnabled);
        }
        if others.is_empty() {
            let id = ResourceId::parse(&policy_id).map_err(|error| ArmError::InvalidResponse {
                detail: error.to_string(),
            })?;
            client
                .delete(
                    id.subscription_id(),
                    id.resource_group().unwrap_or_default(),
                    id.name_of("locations").unwrap_or_default(),
                    id.name().unwrap_or_default(),
                )
                .await?;
            // Another VM may have been added meanwhile; then the delete removed it too,
            // which must not go unnoticed.
            match client.get_by_id(&policy_id).await {
                Err(error) if error.is_not_found() => {
                    return Ok(PolicyChange {
                        outcome: ChangeOutcome::Deleted,
                        policy_id,
                        other_virtual_machines: 0,
                        policy: None,
                    });
                }
                Err(error) => return Err(error.into()),
                Ok(_) => {
                    last_problem = "the policy still exists after it was deleted".to_owned();
                    continue;
                }
            }
        }
        policy
            .properties
            .virtual_machines
            .retain(|entry| !same_resource_id(&entry.id, &placement.vm_id));
        policy.properties.provisioning_state = None;
        client.create_or_update_by_id(&policy_id, &policy).await?;
        let read_back = client.get_by_id(&policy_id).await?;
        match verify(&read_back, &placement.vm_id, None, &others) {
            Ok(()) => {
                return Ok(PolicyChange {
                    outcome: ChangeOutcome::Removed,
                    policy_id,
                    other_virtual_machines: others.len(),
                    policy: Some(read_back),
                });
            }
            Err(problem) => {
                tracing::warn!(attempt, %problem, "policy did not read back as written; merging again");
                last_problem = problem;
            }
        }
    }
    Err(ChangeError::NotVerified {
        policy_id,
        detail: last_problem,
    })
}

enum Target {
    Existing { id: String },
    New,
}

/// The policy to merge into: the one of the VM's resource group and region that already
/// lists the VM, else the one named `default`, else the first; else a new `default`.
async fn choose_policy(
    client: &JitNetworkAccessPoliciesClient,
    placement: &VmPlacement,
) -> Result<Target, ArmError> {
    let policies = client
        .list_by_resource_group_and_region(
            &placement.subscription_id,
            &placement.resource_group,
            &placement.location,
        )
        .await?;
    let listing_vm = policies.iter().find(|policy| {
        policy
            .properties
            .virtual_machines
            .iter()
            .any(|entry| same_resource_id(&entry.id, &placement.vm_id))
    });
    let named_default = policies.iter().find(|policy| {
        policy
            .name
            .as_deref()
            .is_some_and(|name| name.eq_ignore_ascii_case(DEFAULT_POLICY_NAME))
    });
    Ok(
        match listing_vm
            .or(named_default)
            .or(policies.first())
            .and_then(|policy| policy.id.clone())
        {
            Some(id) => Target::Existing { id },
            None => Target::New,
        },
    )
}

async fn write(
    client: &JitNetworkAccessPoliciesClient,
    placement: &VmPlacement,
    target: &Target,
    policy: &JitNetworkAccessPolicy,
) -> Result<JitNetworkAccessPolicy, ArmError> {
    match target {
        Target::Existing { id } => client.create_or_update_by_id(id, policy).await,
        Target::New => {
            client
                .create_or_update(
                    &placement.subscription_id,
                    &placement.resource_group,
                    &placement.location,
                    DEFAULT_POLICY_NAME,
                    policy,
                )
                .await
        }
    }
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

fn policy_id_for(placement: &VmPlacement, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Security/locations/{}/jitNetworkAccessPolicies/{name}",
        placement.subscription_id, placement.resource_group, placement.location
    )
}

fn other_entries(
    policy: &JitNetworkAccessPolicy,
    vm_id: &str,
) -> Vec<JitNetworkAccessPolicyVirtualMachine> {
    policy
        .properties
        .virtual_machines
        .iter()
        .filter(|entry| !same_resource_id(&entry.id, vm_id))
        .cloned()
        .collect()
}

/// Checks a policy read back after a write: the VM has `ports` (or is absent when
/// `None`), and every other VM is present with exactly the ports it had before.
pub fn verify(
    policy: &JitNetworkAccessPolicy,
    vm_id: &str,
    ports: Option<&[JitNetworkAccessPortRule]>,
    others_before: &[JitNetworkAccessPolicyVirtualMachine],
) -> Result<(), String> {
    let entries = &policy.properties.virtual_machines;
    let ours = entries
        .iter()
        .find(|entry| same_resource_id(&entry.id, vm_id));
    match (ports, ours) {
        (Some(_), None) => return Err("the VM is missing from the policy".to_owned()),
        (Some(wanted), Some(entry)) if !same_ports(&entry.ports, wanted) => {
            return Err("the VM's ports differ from what was written".to_owned());
        }
        (None, Some(_)) => return Err("the VM is still in the policy".to_owned()),
        _ => {}
    }
    for before in others_before {
        match entries
            .iter()
            .find(|entry| same_resource_id(&entry.id, &before.id))
        {
            None => return Err(format!("VM {} disappeared from the policy", before.id)),
            Some(after) if !same_ports(&after.ports, &before.ports) => {
                return Err(format!("the ports of VM {} changed", before.id));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Port lists compare by number, protocol, sources and maximum, ignoring order.
fn same_ports(left: &[JitNetworkAccessPortRule], right: &[JitNetworkAccessPortRule]) -> bool {
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

    #[test]
    fn verification_catches_a_lost_or_changed_neighbour() {
        let before = vec![entry("/vm/a", 22), entry("/vm/b", 3389)];
        let ours = vec![port_rule(22, JitProtocol::All, &[], "PT3H")];
        let good = policy(vec![
            entry("/vm/a", 22),
            entry("/vm/b", 3389),
            entry("/vm/me", 22),
        ]);
        assert_eq!(verify(&good, "/VM/ME", Some(&ours), &before), Ok(()));

        let lost = policy(vec![entry("/vm/a", 22), entry("/vm/me", 22)]);
        assert!(
            verify(&lost, "/vm/me", Some(&ours), &before)
                .expect_err("lost")
                .contains("/vm/b")
        );

        let changed = policy(vec![
            entry("/vm/a", 2222),
            entry("/vm/b", 3389),
            entry("/vm/me", 22),
        ]);
        assert!(
            verify(&changed, "/vm/me", Some(&ours), &before)
                .expect_err("changed")
                .contains("ports of VM /vm/a")
        );

        let removed = policy(vec![entry("/vm/a", 22), entry("/vm/b", 3389)]);
        assert_eq!(verify(&removed, "/vm/me", None, &before), Ok(()));
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
