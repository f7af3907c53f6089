//! Is JIT on for a VM? The portal's three answers, and the requests in force.
//!
//! A VM is *Configured* when some JIT policy lists it. Policies are found by listing
//! every policy of the subscription and comparing VM ids case-insensitively: the policy
//! name is not always `default`, and its region is not always the one a client would
//! guess. A VM that no policy lists is *Not configured* when JIT could protect it (an NSG
//! on its NIC or subnet), and *Unsupported* otherwise (no NSG, or a classic VM), with the
//! reason, as the portal's third tab shows.

use jiff::Timestamp;
use serde::Serialize;

use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::clients::JitNetworkAccessPoliciesClient;
use crate::azure::models::{
    JitNetworkAccessPolicy, JitNetworkAccessPolicyVirtualMachine, JitNetworkAccessRequest,
    JitPortStatus,
};
use crate::azure::resource_id::same_resource_id;

/// Why JIT cannot protect a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsupportedReason {
    /// Neither the NIC nor its subnet has a network security group (and no firewall
    /// policy lists the VM).
    NoNetworkSecurityGroup,
    /// A classic (Azure Service Manager) VM.
    ClassicVm,
}

impl UnsupportedReason {
    /// The reason in words, as the portal puts it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NoNetworkSecurityGroup => {
                "no network security group on its network interface or subnet"
            }
            Self::ClassicVm => "classic VMs are not supported by JIT",
        }
    }
}

/// The portal's three tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JitState {
    /// A JIT policy lists the VM.
    Configured,
    /// JIT could protect the VM but no policy lists it.
    NotConfigured,
    /// JIT cannot protect the VM.
    Unsupported,
}

/// A VM's entry in a policy, with the policy.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    /// The whole policy (its `id` is where requests go).
    pub policy: JitNetworkAccessPolicy,
    /// The VM's entry (ports, firewall address).
    pub virtual_machine: JitNetworkAccessPolicyVirtualMachine,
}

impl PolicyEntry {
    /// The policy's resource id.
    pub fn policy_id(&self) -> &str {
        self.policy.id.as_deref().unwrap_or_default()
    }
}

/// The entries of every policy that lists `vm_id` (usually one).
pub fn entries_for_vm(policies: &[JitNetworkAccessPolicy], vm_id: &str) -> Vec<PolicyEntry> {
    policies
        .iter()
        .filter_map(|policy| {
            policy
                .properties
                .virtual_machines
                .iter()
                .find(|entry| same_resource_id(&entry.id, vm_id))
                .map(|entry| PolicyEntry {
                    policy: policy.clone(),
                    virtual_machine: entry.clone(),
                })
        })
        .collect()
}

/// Every JIT policy of a subscription.
pub async fn subscription_policies(
    arm: &ArmClient,
    subscription_id: &str,
) -> Result<Vec<JitNetworkAccessPolicy>, ArmError> {
    JitNetworkAccessPoliciesClient::new(arm.clone())
        .list(subscription_id)
        .await
}

/// The policy entry for a VM, found by listing its subscription's policies.
pub async fn find_entry(
    arm: &ArmClient,
    subscription_id: &str,
    vm_id: &str,
) -> Result<Option<PolicyEntry>, ArmError> {
    let policies = subscription_policies(arm, subscription_id).await?;
    Ok(entries_for_vm(&policies, vm_id).into_iter().next())
}

/// One port of a request that is (or is becoming) open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivePort {
    /// Port number as the policy lists it.
    pub number: u16,
    /// `Initiating` or `Initiated`.
    pub status: String,
    /// The source it is open for.
    pub source: Option<String>,
    /// When it closes.
    pub end_time_utc: Timestamp,
    /// The Azure Firewall port that maps to it, if any.
    pub mapped_port: Option<u16>,
    /// Who asked.
    pub requestor: Option<String>,
    /// Why.
    pub justification: Option<String>,
    /// When it was asked.
    pub start_time_utc: Timestamp,
}

/// The ports of `vm_id` open (or opening) at `now`, newest request first, one per port.
pub fn active_ports(
    policy: &JitNetworkAccessPolicy,
    vm_id: &str,
    now: Timestamp,
) -> Vec<ActivePort> {
    let mut requests: Vec<&JitNetworkAccessRequest> = policy.properties.requests.iter().collect();
    requests.sort_by_key(|request| std::cmp::Reverse(request.start_time_utc));
    let mut active: Vec<ActivePort> = Vec::new();
    for request in requests {
        for virtual_machine in &request.virtual_machines {
            if !same_resource_id(&virtual_machine.id, vm_id) {
                continue;
            }
            for port in &virtual_machine.ports {
                let open = matches!(
                    port.status,
                    JitPortStatus::Initiated | JitPortStatus::Initiating
                );
                if !open
                    || port.end_time_utc <= now
                    || active.iter().any(|seen| seen.number == port.number)
                {
                    continue;
                }
                let source = port.allowed_source_address_prefix.clone().or_else(|| {
                    port.allowed_source_address_prefixes
                        .as_ref()
                        .map(|prefixes| prefixes.join(","))
                });
                active.push(ActivePort {
                    number: port.number,
                    status: port.status.to_string(),
                    source,
                    end_time_utc: port.end_time_utc,
                    mapped_port: port.mapped_port,
                    requestor: request.requestor.clone(),
                    justification: request.justification.clone(),
                    start_time_utc: request.start_time_utc,
                });
            }
        }
    }
    active.sort_by_key(|port| port.number);
    active
}

/// The requests of a policy that concern `vm_id`, newest first, at most `limit`.
pub fn recent_requests<'a>(
    policy: &'a JitNetworkAccessPolicy,
    vm_id: &str,
    limit: usize,
) -> Vec<&'a JitNetworkAccessRequest> {
    let mut requests: Vec<&JitNetworkAccessRequest> = policy
        .properties
        .requests
        .iter()
        .filter(|request| {
            request
                .virtual_machines
                .iter()
                .any(|virtual_machine| same_resource_id(&virtual_machine.id, vm_id))
        })
        .collect();
    requests.sort_by_key(|request| std::cmp::Reverse(request.start_time_utc));
    requests.truncate(limit);
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> JitNetworkAccessPolicy {
        serde_json::from_value(json).expect("a valid policy")
    }

    fn sample() -> JitNetworkAccessPolicy {
        policy(serde_json::json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/custom-name",
            "name": "custom-name",
            "properties": {
                "virtualMachines": [
                    {"id": "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/WEB-01",
                     "ports": [{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]}
                ],
                "requests": [
                    {"startTimeUtc": "2026-01-01T10:00:00Z", "requestor": "old@contoso.com",
                     "virtualMachines": [{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-01",
                        "ports": [{"number": 22, "endTimeUtc": "2026-01-01T13:00:00Z", "status": "Revoked", "statusReason": "NewerRequestInitiated", "allowedSourceAddressPrefix": "192.0.2.1"}]}]},
                    {"startTimeUtc": "2026-01-01T11:00:00Z", "requestor": "me@contoso.com", "justification": "deploy",
                     "virtualMachines": [{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-01",
                        "ports": [{"number": 22, "endTimeUtc": "2026-01-01T12:00:00Z", "status": "Initiated", "statusReason": "UserRequested", "allowedSourceAddressPrefix": "198.51.100.7"}]}]}
                ]
            }
        }))
    }

    #[test]
    fn vms_are_matched_ignoring_case_and_policy_name() {
        let entries = entries_for_vm(
            &[sample()],
            "/subscriptions/S/resourcegroups/rg/providers/microsoft.compute/virtualmachines/web-01",
        );
        assert_eq!(entries.len(), 1);
        assert!(entries[0].policy_id().ends_with("/custom-name"));
        assert!(entries_for_vm(&[sample()], "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-02").is_empty());
    }

    #[test]
    fn only_open_unexpired_ports_are_active() {
        let vm =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-01";
        let during: Timestamp = "2026-01-01T11:30:00Z".parse().expect("time");
        let active = active_ports(&sample(), vm, during);
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].source.as_deref(), Some("198.51.100.7"));
        assert_eq!(active[0].requestor.as_deref(), Some("me@contoso.com"));
        let after: Timestamp = "2026-01-01T12:00:01Z".parse().expect("time");
        assert!(active_ports(&sample(), vm, after).is_empty());
        assert_eq!(recent_requests(&sample(), vm, 10).len(), 2);
        assert_eq!(
            recent_requests(&sample(), vm, 1)[0].requestor.as_deref(),
            Some("me@contoso.com")
        );
    }
}
