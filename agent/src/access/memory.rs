//! What is remembered about a VM once access to it was granted, so that asking again
//! costs one ARM call before the `initiate` instead of three.
//!
//! A cold request has to list the subscriptions, find the VM with its network (one
//! Resource Graph query) and list its subscription's JIT policies to find the one that
//! covers it. The last two answers barely change between two connections to the same VM,
//! so the agent keeps, per VM name as typed, the VM's id and its policy entry
//! ([`RememberedVm`]). A warm request then reads only the VM's current network and power
//! state (Resource Graph, by id, in its own subscription) and posts the `initiate` to
//! the remembered policy.
//!
//! Nothing remembered is trusted blindly:
//!
//! - the address to connect to is never remembered: it comes from the fresh Resource
//!   Graph rows (and the probe checks it answers);
//! - the policy entry (ports, longest duration, the firewall address) is checked by the
//!   `initiate` itself: Azure refuses a request for a VM, port or duration its policy no
//!   longer allows (4xx, nothing applied), and the flow then forgets the entry and takes
//!   the cold path, once;
//! - a VM that Resource Graph no longer finds by id is looked for by name again.
//!
//! The memory lives in the agent (see `daemon::protocol::Request::RecallVm`), which
//! serves one sign-in; without an agent every request is cold.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::locate::VmQuery;
use super::status::PolicyEntry;
use crate::azure::models::{
    JitNetworkAccessPolicy, JitNetworkAccessPolicyProperties, JitNetworkAccessPolicyVirtualMachine,
};

/// How many VMs the agent remembers; the least recently used are forgotten first.
pub const REMEMBERED_VMS: usize = 256;

/// What is remembered about one VM, keyed by how it was named and where it was looked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RememberedVm {
    /// How the VM was named ([`memory_key`]).
    pub query: String,
    /// The subscriptions the search was narrowed to (lower-cased, sorted; empty: every
    /// visible one).
    pub subscriptions: Vec<String>,
    /// The VM's resource id.
    pub vm_id: String,
    /// The VM's name.
    pub vm_name: String,
    /// The JIT policy that covers it.
    pub policy_id: String,
    /// The policy's name.
    #[serde(default)]
    pub policy_name: Option<String>,
    /// The policy's location.
    #[serde(default)]
    pub policy_location: Option<String>,
    /// The VM's entry in that policy (ports, longest durations, firewall address).
    pub entry: JitNetworkAccessPolicyVirtualMachine,
    /// When access was last granted through it (local clock).
    pub seen_at: Timestamp,
}

impl RememberedVm {
    /// What to remember after access to the VM in `entry` was granted.
    pub fn new(
        query: &VmQuery,
        subscriptions: &[String],
        vm_name: &str,
        entry: &PolicyEntry,
    ) -> Self {
        Self {
            query: memory_key(query),
            subscriptions: scope_key(subscriptions),
            vm_id: entry.virtual_machine.id.clone(),
            vm_name: vm_name.to_owned(),
            policy_id: entry.policy_id().to_owned(),
            policy_name: entry.policy.name.clone(),
            policy_location: entry.policy.location.clone(),
            entry: entry.virtual_machine.clone(),
            seen_at: Timestamp::now(),
        }
    }

    /// Whether this is what is remembered for `query` searched in `subscriptions`.
    pub fn is_for(&self, query: &VmQuery, subscriptions: &[String]) -> bool {
        self.query == memory_key(query) && self.subscriptions == scope_key(subscriptions)
    }

    /// Whether two memories are about the same name in the same scope.
    pub fn same_key(&self, other: &RememberedVm) -> bool {
        self.query == other.query && self.subscriptions == other.subscriptions
    }

    /// The policy entry as remembered: the policy holds only this VM and no requests
    /// (read the policy for those).
    pub fn policy_entry(&self) -> PolicyEntry {
        PolicyEntry {
            policy: JitNetworkAccessPolicy {
                id: Some(self.policy_id.clone()),
                name: self.policy_name.clone(),
                resource_type: None,
                kind: None,
                location: self.policy_location.clone(),
                properties: JitNetworkAccessPolicyProperties {
                    virtual_machines: vec![self.entry.clone()],
                    ..JitNetworkAccessPolicyProperties::default()
                },
                additional_properties: serde_json::Map::new(),
            },
            virtual_machine: self.entry.clone(),
        }
    }
}

/// The key a VM is remembered under: the name as typed, lower-cased (Azure names are
/// case-insensitive), `group/name`, or the resource id.
pub fn memory_key(query: &VmQuery) -> String {
    query.to_string().to_ascii_lowercase()
}

fn scope_key(subscriptions: &[String]) -> Vec<String> {
    let mut scope: Vec<String> = subscriptions
        .iter()
        .map(|subscription| subscription.to_ascii_lowercase())
        .collect();
    scope.sort();
    scope.dedup();
    scope
}

/// Puts `vm` into `memory` (replacing what was remembered under the same key), keeping
/// at most [`REMEMBERED_VMS`] entries, the most recent ones.
pub fn remember(memory: &mut Vec<RememberedVm>, vm: RememberedVm) {
    memory.retain(|known| !known.same_key(&vm));
    memory.push(vm);
    if memory.len() > REMEMBERED_VMS {
        memory.sort_by_key(|known| std::cmp::Reverse(known.seen_at));
        memory.truncate(REMEMBERED_VMS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(vm: &str) -> PolicyEntry {
        let virtual_machine: JitNetworkAccessPolicyVirtualMachine = serde_json::from_value(
            serde_json::json!({"id": vm, "ports": [{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]}),
        )
        .expect("entry");
        PolicyEntry {
            policy: JitNetworkAccessPolicy {
                id: Some("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default".to_owned()),
                name: Some("default".to_owned()),
                resource_type: None,
                kind: None,
                location: Some("westeurope".to_owned()),
                properties: JitNetworkAccessPolicyProperties::default(),
                additional_properties: serde_json::Map::new(),
            },
            virtual_machine,
        }
    }

    #[test]
    fn names_are_remembered_case_insensitively_per_scope() {
        let vm =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-01";
        let query = VmQuery::parse("Web-01").expect("name");
        let remembered = RememberedVm::new(
            &query,
            &["S2".to_owned(), "s1".to_owned()],
            "web-01",
            &entry(vm),
        );
        assert!(remembered.is_for(
            &VmQuery::parse("WEB-01").expect("name"),
            &["s1".to_owned(), "s2".to_owned()]
        ));
        assert!(!remembered.is_for(&VmQuery::parse("web-01").expect("name"), &[]));
        assert!(!remembered.is_for(
            &VmQuery::parse("rg/web-01").expect("name"),
            &["s1".to_owned(), "s2".to_owned()]
        ));
        let policy = remembered.policy_entry();
        assert_eq!(policy.policy_id(), entry(vm).policy_id());
        assert_eq!(policy.virtual_machine.ports.len(), 1);
        assert!(policy.policy.properties.requests.is_empty());
    }

    #[test]
    fn memory_keeps_one_entry_per_key_and_the_most_recent_ones() {
        let mut memory = Vec::new();
        for index in 0..REMEMBERED_VMS + 10 {
            let vm = format!(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-{index}"
            );
            let mut remembered = RememberedVm::new(
                &VmQuery::parse(&format!("vm-{index}")).expect("name"),
                &[],
                "vm",
                &entry(&vm),
            );
            remembered.seen_at =
                Timestamp::from_second(1_700_000_000 + i64::try_from(index).unwrap_or(0))
                    .expect("time");
            remember(&mut memory, remembered);
        }
        assert_eq!(memory.len(), REMEMBERED_VMS);
        assert!(
            !memory.iter().any(|known| known.query == "vm-0"),
            "the oldest went first"
        );
        let again = RememberedVm::new(
            &VmQuery::parse("VM-300").expect("name"),
            &[],
            "vm",
            &entry("/x"),
        );
        remember(&mut memory, again);
        assert_eq!(
            memory
                .iter()
                .filter(|known| known.query == "vm-300")
                .count(),
            1
        );
        assert!(
            memory
                .iter()
                .any(|known| known.query == "vm-300" && known.vm_id == "/x")
        );
    }
}
