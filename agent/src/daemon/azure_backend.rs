//! The agent's backend on Azure Resource Manager: windows are read back from the JIT
//! policy's request history, extended with a new `initiate`, and tokens come from the
//! ARM client's token cache.
//!
//! JIT has no "get my request" call: a policy keeps its recent requests in
//! `properties.requests`, each with per-port `status`, `statusReason` and `endTimeUtc`.
//! So a window is re-read by fetching its policy (one GET per policy, however many
//! windows it holds) and finding, for the window's VM and ports, the request it came
//! from and any newer one:
//!
//! - a newer request that holds any of the ports open supersedes the window (made by
//!   another `jit`, the portal, a script): the agent tracks that one instead;
//! - the window's own request with every port `Revoked` (expired, superseded, revoked),
//!   or a policy or VM entry that is gone, ends the window;
//! - otherwise the window is refreshed from its request (end time, port statuses).
//!
//! Every ARM response updates the client's clock offset (`Date` header), which is
//! handed to the agent with each refresh.

use jiff::{SignedDuration, Timestamp};

use super::backend::{AccessBackend, BackendError, Refreshed, WindowUpdate};
use super::protocol::{AccessToken, AccessWindow, ExtendLength, PortStatus, WindowPort};
use crate::access::plan::choose_duration;
use crate::azure::arm::ArmClient;
use crate::azure::clients::JitNetworkAccessPoliciesClient;
use crate::azure::models::{
    JitNetworkAccessPolicy, JitNetworkAccessPolicyInitiatePort,
    JitNetworkAccessPolicyInitiateRequest, JitNetworkAccessPolicyInitiateVirtualMachine,
    JitNetworkAccessPortRule, JitNetworkAccessRequest, JitNetworkAccessRequestPort, JitPortStatus,
};
use crate::azure::resource_id::same_resource_id;

/// Reaches Azure through an [`ArmClient`] (which carries the credential and the clock).
#[derive(Debug, Clone)]
pub struct AzureBackend {
    arm: ArmClient,
    description: String,
}

impl AzureBackend {
    /// A backend over `arm`; `description` names the cloud or endpoint for the status.
    pub fn new(arm: ArmClient, description: impl Into<String>) -> Self {
        Self {
            arm,
            description: description.into(),
        }
    }

    fn policies(&self) -> JitNetworkAccessPoliciesClient {
        JitNetworkAccessPoliciesClient::new(self.arm.clone())
    }
}

impl AccessBackend for AzureBackend {
    fn describe(&self) -> String {
        format!("azure ({})", self.description)
    }

    async fn refresh(&self, windows: &[AccessWindow]) -> Result<Refreshed, BackendError> {
        let policies = self.policies();
        let mut updates = Vec::with_capacity(windows.len());
        let mut policy_ids: Vec<&str> = Vec::new();
        for window in windows {
            if !policy_ids
                .iter()
                .any(|id| same_resource_id(id, &window.policy_id))
            {
                policy_ids.push(&window.policy_id);
            }
        }
        for policy_id in policy_ids {
            let in_policy = windows
                .iter()
                .filter(|window| same_resource_id(&window.policy_id, policy_id));
            match policies.get_by_id(policy_id).await {
                Ok(policy) => {
                    let offset = self
                        .arm
                        .server_time_offset()
                        .unwrap_or(SignedDuration::ZERO);
                    updates.extend(
                        in_policy.map(|window| update_from_policy(window, &policy, offset)),
                    );
                }
                Err(error) if error.is_not_found() => {
                    updates.extend(in_policy.map(|window| WindowUpdate::Revoked {
                        vm_id: window.vm_id.clone(),
                    }));
                }
                Err(error) => return Err(BackendError::Azure(error.to_string())),
            }
        }
        Ok(Refreshed {
            updates,
            server_clock_offset: self.arm.server_time_offset(),
        })
    }

    async fn extend(
        &self,
        window: &AccessWindow,
        length: &ExtendLength,
    ) -> Result<AccessWindow, BackendError> {
        let policies = self.policies();
        let policy = policies
            .get_by_id(&window.policy_id)
            .await
            .map_err(|error| BackendError::Azure(error.to_string()))?;
        let rules = window_rules(&policy, window)?;
        let now = self.arm.server_now();
        let requested = match length {
            ExtendLength::PolicyMaximum => None,
            ExtendLength::Duration { duration } => Some(*duration),
            ExtendLength::Until { until } => Some(until.duration_since(now)),
        };
        // The same rule as a first request: at most the smallest maximum of the ports.
        let duration = choose_duration(requested, &rules.iter().collect::<Vec<_>>())
            .map_err(|error| BackendError::Invalid(error.to_string()))?;
        let ends_at = match length {
            ExtendLength::Until { until } => *until,
            _ => now.checked_add(duration).unwrap_or(Timestamp::MAX),
        };
        if ends_at <= now {
            return Err(BackendError::Invalid(
                "the new end time is not in the future".to_owned(),
            ));
        }
        let body = JitNetworkAccessPolicyInitiateRequest {
            virtual_machines: vec![JitNetworkAccessPolicyInitiateVirtualMachine {
                id: window.vm_id.clone(),
                ports: window
                    .ports
                    .iter()
                    .map(|port| JitNetworkAccessPolicyInitiatePort {
                        number: port.number,
                        allowed_source_address_prefix: Some(window.source_address_prefix.clone()),
                        end_time_utc: ends_at,
                        duration: None,
                    })
                    .collect(),
            }],
            justification: window.justification.clone(),
        };
        let request = policies
            .initiate_by_id(&window.policy_id, &body)
            .await
            .map_err(|error| BackendError::Azure(error.to_string()))?;
        let offset = self
            .arm
            .server_time_offset()
            .unwrap_or(SignedDuration::ZERO);
        window_from_request(window, &request, offset).ok_or_else(|| {
            BackendError::Azure(format!(
                "Azure's answer to the request did not mention {}",
                window.vm_name
            ))
        })
    }

    async fn token(&self, scope: &str) -> Result<AccessToken, BackendError> {
        let token = self
            .arm
            .credential()
            .token(&[scope])
            .await
            .map_err(|error| BackendError::Unavailable(error.to_string()))?;
        let expires_on =
            Timestamp::from_second(token.expires_on.unix_timestamp()).map_err(|error| {
                BackendError::Azure(format!("the token's expiry is out of range: {error}"))
            })?;
        Ok(AccessToken {
            secret: token.token.secret().to_owned(),
            expires_on,
        })
    }
}

/// The policy's rules for `window`'s ports, as the policy holds them now.
fn window_rules(
    policy: &JitNetworkAccessPolicy,
    window: &AccessWindow,
) -> Result<Vec<JitNetworkAccessPortRule>, BackendError> {
    let entry = policy
        .properties
        .virtual_machines
        .iter()
        .find(|entry| same_resource_id(&entry.id, &window.vm_id))
        .ok_or_else(|| {
            BackendError::Invalid(format!(
                "{} is no longer in its JIT policy; enable JIT for it again",
                window.vm_name
            ))
        })?;
    if window.ports.is_empty() {
        return Err(BackendError::Invalid("the window has no ports".to_owned()));
    }
    window
        .ports
        .iter()
        .map(|port| {
            entry
                .ports
                .iter()
                .find(|rule| rule.number == port.number)
                .cloned()
                .ok_or_else(|| {
                    BackendError::Invalid(format!(
                        "port {} of {} is no longer in its JIT policy",
                        port.number, window.vm_name
                    ))
                })
        })
        .collect()
}

/// What the policy says about `window` now. Pure, so it is tested on policy documents.
pub fn update_from_policy(
    window: &AccessWindow,
    policy: &JitNetworkAccessPolicy,
    offset: SignedDuration,
) -> WindowUpdate {
    let revoked = || WindowUpdate::Revoked {
        vm_id: window.vm_id.clone(),
    };
    let vm_in_policy = policy
        .properties
        .virtual_machines
        .iter()
        .any(|entry| same_resource_id(&entry.id, &window.vm_id));
    if !vm_in_policy {
        return revoked();
    }
    let numbers = window.port_numbers();
    // Requests that touch this VM and at least one of the window's ports.
    let mut relevant: Vec<&JitNetworkAccessRequest> = policy
        .properties
        .requests
        .iter()
        .filter(|request| {
            request.virtual_machines.iter().any(|vm| {
                same_resource_id(&vm.id, &window.vm_id)
                    && vm.ports.iter().any(|port| numbers.contains(&port.number))
            })
        })
        .collect();
    relevant.sort_by_key(|request| request.start_time_utc);

    if let Some(newest) = relevant.last()
        && newest.start_time_utc > window.requested_at
        && request_ports(newest, &window.vm_id).any(|port| is_open(&port.status))
    {
        return match window_from_request(window, newest, offset) {
            Some(newer) => WindowUpdate::Changed(Box::new(newer)),
            None => revoked(),
        };
    }
    let own = relevant
        .iter()
        .rev()
        .find(|request| request.start_time_utc == window.requested_at)
        .or_else(|| {
            relevant
                .iter()
                .rev()
                .find(|request| request.start_time_utc <= window.requested_at)
        });
    let Some(own) = own else {
        return revoked();
    };
    let Some(current) = window_from_request(window, own, offset) else {
        return revoked();
    };
    if current
        .ports
        .iter()
        .all(|port| port.status == PortStatus::Revoked)
    {
        return revoked();
    }
    if current.ends_at == window.ends_at && current.ports == window.ports {
        WindowUpdate::Unchanged {
            vm_id: window.vm_id.clone(),
        }
    } else {
        WindowUpdate::Changed(Box::new(current))
    }
}

/// The window a JIT request opened for the VM of `template` (whose names, addresses and
/// justification are kept): its ports, source, start, and the earliest end among the
/// ports still open (or among all ports if none is). `None` when the request does not
/// mention the VM.
pub fn window_from_request(
    template: &AccessWindow,
    request: &JitNetworkAccessRequest,
    server_clock_offset: SignedDuration,
) -> Option<AccessWindow> {
    let ports: Vec<&JitNetworkAccessRequestPort> =
        request_ports(request, &template.vm_id).collect();
    if ports.is_empty() {
        return None;
    }
    let open_ends = ports
        .iter()
        .filter(|port| is_open(&port.status))
        .map(|port| port.end_time_utc)
        .min();
    let ends_at = open_ends.or_else(|| ports.iter().map(|port| port.end_time_utc).min())?;
    let source = ports
        .iter()
        .find_map(|port| {
            port.allowed_source_address_prefix.clone().or_else(|| {
                port.allowed_source_address_prefixes
                    .as_ref()
                    .map(|prefixes| prefixes.join(","))
            })
        })
        .unwrap_or_else(|| template.source_address_prefix.clone());
    Some(AccessWindow {
        ports: ports
            .iter()
            .map(|port| WindowPort {
                number: port.number,
                mapped_port: port.mapped_port,
                status: PortStatus::from(port.status.as_str().to_owned()),
            })
            .collect(),
        source_address_prefix: source,
        requested_at: request.start_time_utc,
        ends_at,
        server_clock_offset_at_registration: server_clock_offset,
        justification: request
            .justification
            .clone()
            .or_else(|| template.justification.clone()),
        ..template.clone()
    })
}

fn request_ports<'a>(
    request: &'a JitNetworkAccessRequest,
    vm_id: &'a str,
) -> impl Iterator<Item = &'a JitNetworkAccessRequestPort> + 'a {
    request
        .virtual_machines
        .iter()
        .filter(move |vm| same_resource_id(&vm.id, vm_id))
        .flat_map(|vm| vm.ports.iter())
}

fn is_open(status: &JitPortStatus) -> bool {
    matches!(status, JitPortStatus::Initiated | JitPortStatus::Initiating)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM: &str =
        "/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/api-01";

    fn policy(requests: &[serde_json::Value]) -> JitNetworkAccessPolicy {
        let document = serde_json::json!({
            "id": "/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
            "name": "default",
            "properties": {
                "virtualMachines": [{
                    "id": VM.to_uppercase(),
                    "ports": [{"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]
                }],
                "requests": requests,
                "provisioningState": "Succeeded"
            }
        });
        serde_json::from_value(document).unwrap_or_else(|error| panic!("fixture: {error}"))
    }

    fn request(start: &str, end: &str, status: &str, reason: &str) -> serde_json::Value {
        serde_json::json!({
            "virtualMachines": [{"id": VM, "ports": [{
                "number": 22, "allowedSourceAddressPrefix": "198.51.100.7",
                "endTimeUtc": end, "status": status, "statusReason": reason
            }]}],
            "startTimeUtc": start,
            "requestor": "azureuser@contoso.com"
        })
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn window() -> AccessWindow {
        AccessWindow {
            vm_id: VM.to_owned(),
            vm_name: "api-01".into(),
            resource_group: "rg-web".into(),
            subscription_id: "s".into(),
            policy_id: "p".into(),
            ports: vec![WindowPort {
                number: 22,
                mapped_port: None,
                status: PortStatus::Initiated,
            }],
            source_address_prefix: "198.51.100.7".into(),
            requested_at: at("2026-11-28T14:00:00Z"),
            ends_at: at("2026-11-28T17:00:00Z"),
            server_clock_offset_at_registration: SignedDuration::ZERO,
            justification: None,
            connect_address: Some("203.0.113.10".into()),
        }
    }

    #[test]
    fn an_unchanged_request_is_unchanged() {
        let policy = policy(&[request(
            "2026-11-28T14:00:00Z",
            "2026-11-28T17:00:00Z",
            "Initiated",
            "UserRequested",
        )]);
        assert_eq!(
            update_from_policy(&window(), &policy, SignedDuration::ZERO),
            WindowUpdate::Unchanged { vm_id: VM.into() }
        );
    }

    #[test]
    fn a_newer_open_request_supersedes_the_window() {
        let policy = policy(&[
            request(
                "2026-11-28T14:00:00Z",
                "2026-11-28T15:00:00Z",
                "Revoked",
                "NewerRequestInitiated",
            ),
            request(
                "2026-11-28T15:00:00Z",
                "2026-11-28T18:00:00Z",
                "Initiated",
                "UserRequested",
            ),
        ]);
        let offset = SignedDuration::from_secs(3);
        let WindowUpdate::Changed(newer) = update_from_policy(&window(), &policy, offset) else {
            panic!("expected the newer window");
        };
        assert_eq!(newer.requested_at, at("2026-11-28T15:00:00Z"));
        assert_eq!(newer.ends_at, at("2026-11-28T18:00:00Z"));
        assert_eq!(newer.server_clock_offset_at_registration, offset);
        assert_eq!(newer.connect_address.as_deref(), Some("203.0.113.10"));
    }

    #[test]
    fn revoked_expired_or_missing_windows_end() {
        let expired = policy(&[request(
            "2026-11-28T14:00:00Z",
            "2026-11-28T17:00:00Z",
            "Revoked",
            "Expired",
        )]);
        let revoked = WindowUpdate::Revoked { vm_id: VM.into() };
        assert_eq!(
            update_from_policy(&window(), &expired, SignedDuration::ZERO),
            revoked
        );
        let empty = policy(&[]);
        assert_eq!(
            update_from_policy(&window(), &empty, SignedDuration::ZERO),
            revoked
        );
        let mut elsewhere = window();
        elsewhere.vm_id = elsewhere.vm_id.replace("api-01", "web-01");
        assert_eq!(
            update_from_policy(&elsewhere, &empty, SignedDuration::ZERO),
            WindowUpdate::Revoked {
                vm_id: elsewhere.vm_id.clone()
            }
        );
    }

    #[test]
    fn extensions_use_the_rules_of_the_windows_ports() {
        let policy = policy(&[]);
        let rules = window_rules(&policy, &window()).expect("rules");
        assert_eq!(
            choose_duration(None, &rules.iter().collect::<Vec<_>>()).ok(),
            Some(SignedDuration::from_hours(3))
        );
        let mut other_port = window();
        other_port.ports[0].number = 3389;
        assert!(matches!(
            window_rules(&policy, &other_port),
            Err(BackendError::Invalid(_))
        ));
    }
}
