//! Extending an access window: one implementation for the agent, the tray and `jit extend`.
//!
//! JIT has no "extend": a new request for the same ports supersedes the older one (Azure
//! marks it `NewerRequestInitiated`) and the end moves. Because a new request on a port
//! also revokes *other people's* requests on that port, an extension is only ever made
//! for a window that is ours (see [`super::ownership`]), with the source that window was
//! opened for: never whatever happens to be open on the port, and never `*` unless our
//! own request asked for it.
//!
//! The new request's length follows the same rule as a first request: at most the
//! smallest maximum of the window's ports in the policy as it is now.

use jiff::{SignedDuration, Timestamp};

use super::ownership::{ClientTag, Ownership, RequestMarker, readable_justification};
use super::plan::{PlanError, choose_duration};
use super::request::{PortRequest, RequestError, VmRequest, initiate};
use super::status::{ActivePort, active_ports};
use super::window::{AccessWindow, ExtendLength, is_open, request_ports};
use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::clients::JitNetworkAccessPoliciesClient;
use crate::azure::models::{JitNetworkAccessPolicy, JitNetworkAccessPortRule};
use crate::azure::resource_id::same_resource_id;

/// Why a window could not be extended.
#[derive(Debug, thiserror::Error)]
pub enum ExtendError {
    /// Azure failed or refused.
    #[error(transparent)]
    Azure(#[from] ArmError),
    /// The new request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The length asked for is not allowed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The VM left its policy.
    #[error("{vm} is no longer in its JIT policy")]
    NotInPolicy {
        /// The VM's name.
        vm: String,
    },
    /// A port of the window left the policy.
    #[error("port {port} of {vm} is no longer in its JIT policy")]
    PortNotInPolicy {
        /// The VM's name.
        vm: String,
        /// The port.
        port: u16,
    },
    /// The window names several sources for a port; a request names one.
    #[error("port {port} of {vm} is open for several sources ({sources}); a request names one")]
    SeveralSources {
        /// The VM's name.
        vm: String,
        /// The port.
        port: u16,
        /// The sources.
        sources: String,
    },
    /// The new end would not be in the future.
    #[error("the new end time is not in the future")]
    EndInPast,
    /// No window of ours is open on the VM; others' are listed.
    #[error(
        "{vm} has no open access window requested by you{}",
        others_text(others)
    )]
    NoOwnWindow {
        /// The VM's name.
        vm: String,
        /// The VM as `resource-group/name`.
        reference: String,
        /// Ports open for other people (or by other means), never extended by us.
        others: Vec<ActivePort>,
    },
}

fn others_text(others: &[ActivePort]) -> String {
    if others.is_empty() {
        return String::new();
    }
    let described: Vec<String> = others
        .iter()
        .map(|port| {
            format!(
                "port {} for {} by {} until {}",
                port.number,
                port.source.as_deref().unwrap_or("the requester's address"),
                port.requestor
                    .as_deref()
                    .filter(|requestor| !requestor.is_empty())
                    .unwrap_or("someone else"),
                port.end_time_utc.strftime("%H:%M UTC")
            )
        })
        .collect();
    format!(
        " (open, and left alone: {}; a new request on those ports would replace it)",
        described.join("; ")
    )
}

/// The policy's rules for `window`'s ports, as the policy holds them now.
pub fn window_rules(
    policy: &JitNetworkAccessPolicy,
    window: &AccessWindow,
) -> Result<Vec<JitNetworkAccessPortRule>, ExtendError> {
    let entry = policy
        .properties
        .virtual_machines
        .iter()
        .find(|entry| same_resource_id(&entry.id, &window.vm_id))
        .ok_or_else(|| ExtendError::NotInPolicy {
            vm: window.vm_name.clone(),
        })?;
    window
        .ports
        .iter()
        .map(|port| {
            entry
                .ports
                .iter()
                .find(|rule| rule.number == port.number)
                .cloned()
                .ok_or_else(|| ExtendError::PortNotInPolicy {
                    vm: window.vm_name.clone(),
                    port: port.number,
                })
        })
        .collect()
}

/// The newest window of ours on the VM of `template` that is still open at `now`, as the
/// policy records it; else the ports others hold open, for the error.
pub fn own_window(
    policy: &JitNetworkAccessPolicy,
    template: &AccessWindow,
    ownership: &Ownership,
    now: Timestamp,
    server_clock_offset: SignedDuration,
) -> Result<AccessWindow, ExtendError> {
    let mut requests: Vec<_> = policy.properties.requests.iter().collect();
    requests.sort_by_key(|request| std::cmp::Reverse(request.start_time_utc));
    let ours = requests.into_iter().find(|request| {
        ownership.owns(request)
            && request_ports(request, &template.vm_id)
                .any(|port| is_open(&port.status) && port.end_time_utc > now)
    });
    if let Some(request) = ours
        && let Some(window) = AccessWindow::from_request(template, request, server_clock_offset)
    {
        return Ok(window);
    }
    Err(ExtendError::NoOwnWindow {
        vm: template.vm_name.clone(),
        reference: template.vm_reference(),
        others: active_ports(policy, &template.vm_id, now),
    })
}

/// Asks Azure for a new request with `window`'s ports and source, `length` long; returns
/// the window Azure's answer describes. `justification` replaces the window's own.
pub async fn extend_window(
    arm: &ArmClient,
    window: &AccessWindow,
    length: &ExtendLength,
    tag: Option<&ClientTag>,
    justification: Option<&str>,
) -> Result<AccessWindow, ExtendError> {
    let policies = JitNetworkAccessPoliciesClient::new(arm.clone());
    let policy = policies.get_by_id(&window.policy_id).await?;
    let rules = window_rules(&policy, window)?;
    let now = arm.server_now();
    let requested = match length {
        ExtendLength::PolicyMaximum => None,
        ExtendLength::Duration { duration } => Some(*duration),
        ExtendLength::Until { until } => Some(until.duration_since(now)),
    };
    if requested.is_some_and(|duration| !duration.is_positive()) {
        return Err(ExtendError::EndInPast);
    }
    let duration = choose_duration(requested, &rules.iter().collect::<Vec<_>>())?;
    if window.source_address_prefix.contains(',') {
        return Err(ExtendError::SeveralSources {
            vm: window.vm_name.clone(),
            port: window.ports.first().map_or(0, |port| port.number),
            sources: window.source_address_prefix.clone(),
        });
    }
    let source = Some(window.source_address_prefix.clone()).filter(|source| !source.is_empty());
    let ports = window
        .ports
        .iter()
        .map(|port| PortRequest {
            number: port.number,
            source_prefix: source.clone(),
        })
        .collect();
    let text = justification
        .map(str::to_owned)
        .or_else(|| {
            window
                .justification
                .as_deref()
                .map(|text| readable_justification(text).to_owned())
        })
        .filter(|text| !text.trim().is_empty());
    let marker = RequestMarker::new(tag);
    let initiated = initiate(
        arm,
        &window.policy_id,
        &[VmRequest {
            vm_id: window.vm_id.clone(),
            ports,
        }],
        duration,
        text.as_deref(),
        &marker,
    )
    .await?;
    let offset = arm.server_time_offset().unwrap_or(initiated.server_offset);
    AccessWindow::from_request(window, &initiated.request, offset)
        .ok_or_else(|| ExtendError::Request(RequestError::NotRecorded(window.policy_id.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::window::{PortStatus, WindowPort};

    const VM: &str =
        "/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/api-01";

    fn template() -> AccessWindow {
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
            source_address_prefix: String::new(),
            requested_at: Timestamp::UNIX_EPOCH,
            ends_at: Timestamp::UNIX_EPOCH,
            server_clock_offset_at_registration: SignedDuration::ZERO,
            justification: None,
            connect_address: None,
            requestor: None,
        }
    }

    fn policy(requests: &serde_json::Value) -> JitNetworkAccessPolicy {
        serde_json::from_value(serde_json::json!({
            "id": "p",
            "properties": {
                "virtualMachines": [{"id": VM, "ports": [
                    {"number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}]}],
                "requests": requests,
            }
        }))
        .expect("policy")
    }

    fn request(
        start: &str,
        source: &str,
        requestor: &str,
        justification: &str,
    ) -> serde_json::Value {
        serde_json::json!({
            "startTimeUtc": start,
            "requestor": requestor,
            "justification": justification,
            "virtualMachines": [{"id": VM, "ports": [{
                "number": 22, "allowedSourceAddressPrefix": source,
                "endTimeUtc": "2026-11-28T17:00:00Z", "status": "Initiated", "statusReason": "UserRequested"}]}]
        })
    }

    #[test]
    fn only_our_own_window_is_extended_and_never_a_newer_one_of_someone_else() {
        let tag = ClientTag::parse("a1b2c3d4").expect("tag");
        let ours = RequestMarker::new(Some(&tag)).stamp(Some("deploy"));
        let theirs = RequestMarker::new(Some(&ClientTag::generate())).stamp(Some("debug"));
        let ownership = Ownership {
            tag: Some(tag),
            requestor: None,
        };
        let now: Timestamp = "2026-11-28T15:00:00Z".parse().expect("time");
        // Ours at 14:00, a colleague's `*` at 14:30 on another port is irrelevant; theirs
        // on the same port is newer but not ours.
        let both = policy(&serde_json::json!([
            request(
                "2026-11-28T14:00:00Z",
                "198.51.100.7",
                "me@contoso.com",
                &ours
            ),
            request("2026-11-28T14:30:00Z", "*", "bob@contoso.com", &theirs),
        ]));
        let window = own_window(&both, &template(), &ownership, now, SignedDuration::ZERO)
            .expect("ours is found");
        assert_eq!(window.source_address_prefix, "198.51.100.7");
        assert_eq!(window.requestor.as_deref(), Some("me@contoso.com"));

        let only_theirs = policy(&serde_json::json!([request(
            "2026-11-28T14:30:00Z",
            "*",
            "bob@contoso.com",
            "by hand in the portal"
        )]));
        let Err(ExtendError::NoOwnWindow { others, .. }) = own_window(
            &only_theirs,
            &template(),
            &ownership,
            now,
            SignedDuration::ZERO,
        ) else {
            panic!("someone else's window must not be adopted");
        };
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].source.as_deref(), Some("*"));
    }

    #[test]
    fn the_windows_rules_bound_the_extension() {
        let policy = policy(&serde_json::json!([]));
        let rules = window_rules(&policy, &template()).expect("rules");
        assert_eq!(
            choose_duration(None, &rules.iter().collect::<Vec<_>>()).ok(),
            Some(SignedDuration::from_hours(3))
        );
        let mut other_port = template();
        other_port.ports[0].number = 3389;
        assert!(matches!(
            window_rules(&policy, &other_port),
            Err(ExtendError::PortNotInPolicy { port: 3389, .. })
        ));
    }
}
