//! Asking for access, and waiting until it is really there.
//!
//! `initiate` answers 202 before anything is open: Azure reports the request's ports as
//! `Initiating` while it writes NSG (or firewall) rules, then `Initiated`. Even then the
//! port may take a moment to answer. People work around this with fixed sleeps (12 s,
//! 45 s); `jit` instead polls the policy until its request's ports leave `Initiating`
//! *and* probes the port until the service answers at the protocol level (an SSH banner,
//! an RDP X.224 confirm), with an interval that grows from half a second to three, and a
//! hard deadline that ends in a clear error saying which of the two never happened.
//!
//! Initiate is not idempotent (a second request supersedes the first), so it is never
//! repeated blindly: if the connection fails or Azure answers with a server error after
//! the request may have reached Azure, the policy is read to see whether the request was
//! recorded, and that answer is used. The request is recognised by the marker in its
//! justification (see [`super::ownership`]), never by timing: a colleague's request for
//! the same ports a second later is not ours.

use std::net::SocketAddr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::ownership::{RequestMarker, is_request};
use super::plan::Service;
use crate::azure::arm::{ArmClient, ArmError, ArmErrorKind};
use crate::azure::clients::JitNetworkAccessPoliciesClient;
use crate::azure::models::{
    JitNetworkAccessPolicy, JitNetworkAccessPolicyInitiatePort,
    JitNetworkAccessPolicyInitiateRequest, JitNetworkAccessPolicyInitiateVirtualMachine,
    JitNetworkAccessRequest, JitNetworkAccessRequestPort, JitPortStatus,
};
use crate::azure::resource_id::same_resource_id;
use crate::probe::{self, Identified, ProbeOutcome};

/// One port to open, with the source to open it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    /// The port as the policy lists it.
    pub number: u16,
    /// `allowedSourceAddressPrefix`; `None` lets Azure use the caller's address.
    pub source_prefix: Option<String>,
}

/// The ports of one VM to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRequest {
    /// The VM's id (as the policy lists it).
    pub vm_id: String,
    /// Its ports.
    pub ports: Vec<PortRequest>,
}

/// A request Azure accepted.
#[derive(Debug, Clone)]
pub struct Initiated {
    /// The policy it was posted to.
    pub policy_id: String,
    /// The request as Azure answered (or, after an ambiguous failure, as recorded).
    pub request: JitNetworkAccessRequest,
    /// When the ports close, on Azure's clock.
    pub end_time: Timestamp,
    /// Azure's clock minus ours at the time of the request.
    pub server_offset: SignedDuration,
    /// The marker the request carried in its justification.
    pub marker: RequestMarker,
}

/// Why access could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Azure failed or refused.
    #[error(transparent)]
    Azure(#[from] ArmError),
    /// The request ended before it could be used.
    #[error("the access request for port {port} was revoked ({reason}) before the port opened")]
    Revoked {
        /// The port.
        port: u16,
        /// `statusReason`.
        reason: String,
    },
    /// Azure never reported the rules applied.
    #[error("Azure did not finish applying the request within {}: port {port} is still {status}", human(*waited))]
    NotApplied {
        /// The port.
        port: u16,
        /// The last status seen.
        status: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The rules were applied but the service never answered.
    #[error("port {port} at {address} did not answer as {service} within {}: {last}", human(*waited))]
    NeverAnswered {
        /// The policy port.
        port: u16,
        /// Where it was probed.
        address: String,
        /// The protocol expected.
        service: String,
        /// The last probe's outcome.
        last: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The request could not be found in the policy after Azure accepted it.
    #[error("the access request is missing from the JIT policy {0}")]
    NotRecorded(String),
    /// `initiate` failed in a way that may or may not have reached Azure, and the
    /// policy, read back, does not hold the request: it was not applied.
    #[error("{error}; the JIT policy does not hold the request, so it was not applied")]
    NotRecordedAfterFailure {
        /// The failure.
        error: ArmError,
    },
    /// The port answers, but with another protocol than the one asked for.
    #[error("port {port} at {address} answers, but not as {expected}: {got}")]
    WrongService {
        /// The policy port.
        port: u16,
        /// Where it was probed.
        address: String,
        /// The protocol expected.
        expected: String,
        /// What answered.
        got: String,
    },
    /// The address to connect to could not be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
}

fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

/// Posts one initiate for the VMs' ports, to close `duration` from now on Azure's clock.
/// `justification` is the person's text; the request carries `marker` after it.
pub async fn initiate(
    arm: &ArmClient,
    policy_id: &str,
    vms: &[VmRequest],
    duration: SignedDuration,
    justification: Option<&str>,
    marker: &RequestMarker,
) -> Result<Initiated, RequestError> {
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    let server_offset = arm.server_time_offset().unwrap_or_default();
    let now = arm.server_now();
    let end_time = now.checked_add(duration).unwrap_or(Timestamp::MAX);
    let body = JitNetworkAccessPolicyInitiateRequest {
        virtual_machines: vms
            .iter()
            .map(|vm| JitNetworkAccessPolicyInitiateVirtualMachine {
                id: vm.vm_id.clone(),
                ports: vm
                    .ports
                    .iter()
                    .map(|port| JitNetworkAccessPolicyInitiatePort {
                        number: port.number,
                        allowed_source_address_prefix: port.source_prefix.clone(),
                        end_time_utc: end_time,
                        duration: None,
                    })
                    .collect(),
            })
            .collect(),
        justification: Some(marker.stamp(justification)),
    };
    let request = match client.initiate_by_id(policy_id, &body).await {
        Ok(request) => request,
        Err(error) if may_have_reached_azure(&error) => {
            // The request may or may not have been applied; the policy knows.
            tracing::warn!(%error, "initiate failed; checking whether Azure recorded the request");
            let policy = client.get_by_id(policy_id).await?;
            match recorded_request(&policy, marker) {
                Some(request) => request,
                None => return Err(RequestError::NotRecordedAfterFailure { error }),
            }
        }
        Err(error) => return Err(error.into()),
    };
    let end_time = request
        .virtual_machines
        .iter()
        .flat_map(|vm| vm.ports.iter())
        .map(|port| port.end_time_utc)
        .min()
        .unwrap_or(end_time);
    Ok(Initiated {
        policy_id: policy_id.to_owned(),
        request,
        end_time,
        server_offset,
        marker: marker.clone(),
    })
}

/// Whether a failed `initiate` may have been applied all the same: the connection broke
/// or Azure failed (5xx) after receiving it. A 4xx, 401 or 429 was refused before anything
/// happened.
fn may_have_reached_azure(error: &ArmError) -> bool {
    matches!(error.kind(), ArmErrorKind::Transport | ArmErrorKind::Server)
}

/// The request in the policy that carries `marker`, if Azure recorded it.
fn recorded_request(
    policy: &JitNetworkAccessPolicy,
    marker: &RequestMarker,
) -> Option<JitNetworkAccessRequest> {
    policy
        .properties
        .requests
        .iter()
        .find(|request| is_request(request, marker))
        .cloned()
}

fn request_port<'a>(
    request: &'a JitNetworkAccessRequest,
    vm_id: &str,
    number: u16,
) -> Option<&'a JitNetworkAccessRequestPort> {
    request
        .virtual_machines
        .iter()
        .filter(|vm| same_resource_id(&vm.id, vm_id))
        .flat_map(|vm| vm.ports.iter())
        .find(|port| port.number == number)
}

/// Finds our request in a policy read later: the one carrying our marker, else (a
/// policy that drops justifications) the one with exactly our start time.
fn find_our_request<'a>(
    policy: &'a JitNetworkAccessPolicy,
    initiated: &Initiated,
    vm_id: &str,
    number: u16,
) -> Option<&'a JitNetworkAccessRequestPort> {
    let ours = policy
        .properties
        .requests
        .iter()
        .find(|request| is_request(request, &initiated.marker))
        .or_else(|| {
            policy
                .properties
                .requests
                .iter()
                .find(|request| request.start_time_utc == initiated.request.start_time_utc)
        })?;
    request_port(ours, vm_id, number)
}

/// One port to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortTarget {
    /// The VM.
    pub vm_id: String,
    /// The port as the policy lists it.
    pub number: u16,
    /// Where to connect: the VM's address, or the firewall's.
    pub host: String,
    /// Whether the VM is reached through an Azure Firewall (then the request's
    /// `mappedPort` is the port to connect to).
    pub through_firewall: bool,
    /// The protocol expected (for probing among several ports, the one looked for).
    pub service: Service,
}

/// A port that answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenPort {
    /// The port as the policy lists it.
    pub number: u16,
    /// The host to connect to.
    pub host: String,
    /// The port to connect to (the firewall's mapped port, or `number`).
    pub connect_port: u16,
    /// The firewall's mapped port, if any.
    pub mapped_port: Option<u16>,
    /// The protocol that answered.
    pub service: Service,
    /// What answered (banner, RDP protocol).
    pub detail: String,
}

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Every target answers with its service.
    All,
    /// The first target that answers as this service (probing among candidates).
    FirstAnswering(Service),
    /// Only that Azure applied the request (`--no-wait` does not even wait for this).
    Applied,
}

/// Progress reports while waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitProgress {
    /// Azure still reports `Initiating`.
    Applying,
    /// Azure reports `Initiated`; probing the port(s).
    Probing {
        /// What is probed, e.g. `SSH on 20.1.2.3:22`.
        what: String,
    },
}

/// No wait lasts longer than the longest window JIT grants.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Waits until the request is applied and the targets answer, or `timeout` passes.
pub async fn wait_until_open(
    arm: &ArmClient,
    initiated: &Initiated,
    targets: &[PortTarget],
    wait_for: WaitFor,
    timeout: Duration,
    mut on_progress: impl FnMut(&WaitProgress),
) -> Result<Vec<OpenPort>, RequestError> {
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    let started = tokio::time::Instant::now();
    // A timeout longer than any window (`--timeout 100000d`) must not overflow the clock.
    let deadline = started + timeout.min(LONGEST_WAIT);
    let mut interval = Duration::from_millis(500);
    let mut mapped: Vec<Option<u16>> = vec![None; targets.len()];
    let mut applied = false;
    let mut last_status = String::from("Initiating");
    let mut last_probe: Vec<String> = vec!["not probed yet".to_owned(); targets.len()];
    let mut open: Vec<Option<OpenPort>> = vec![None; targets.len()];
    let mut reported_applying = false;
    let mut reported_probing = false;

    loop {
        if !applied {
            let policy = client.get_by_id(&initiated.policy_id).await?;
            let mut all_initiated = true;
            for (index, target) in targets.iter().enumerate() {
                let Some(port) = find_our_request(&policy, initiated, &target.vm_id, target.number)
                else {
                    return Err(RequestError::NotRecorded(initiated.policy_id.clone()));
                };
                mapped[index] = port.mapped_port;
                match &port.status {
                    JitPortStatus::Initiated => {}
                    JitPortStatus::Revoked => {
                        return Err(RequestError::Revoked {
                            port: target.number,
                            reason: port.status_reason.to_string(),
                        });
                    }
                    other => {
                        all_initiated = false;
                        last_status = other.to_string();
                    }
                }
            }
            applied = all_initiated;
            if !applied && !reported_applying {
                on_progress(&WaitProgress::Applying);
                reported_applying = true;
            }
        }
        if applied {
            if wait_for == WaitFor::Applied {
                return Ok(Vec::new());
            }
            if !reported_probing {
                on_progress(&WaitProgress::Probing {
                    what: describe_targets(targets, &mapped, wait_for),
                });
                reported_probing = true;
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let probe_timeout = remaining
                .min(Duration::from_secs(2))
                .max(Duration::from_millis(200));
            let probes = targets.iter().enumerate().map(|(index, target)| {
                let connect_port = connect_port(target, mapped[index]);
                let already = open[index].is_some();
                async move {
                    if already {
                        return (index, None);
                    }
                    (
                        index,
                        Some(probe_target(target, connect_port, wait_for, probe_timeout).await),
                    )
                }
            });
            for (index, result) in futures::future::join_all(probes).await {
                match result {
                    Some(Probed::Open(port)) => {
                        let mut port = port;
                        port.mapped_port = mapped[index];
                        open[index] = Some(port);
                    }
                    Some(Probed::Waiting(outcome)) => last_probe[index] = outcome,
                    // Waiting longer will not change which service listens there.
                    Some(Probed::OtherService(got)) if wait_for != WaitFor::Applied => {
                        let target = &targets[index];
                        if matches!(wait_for, WaitFor::All) {
                            return Err(RequestError::WrongService {
                                port: target.number,
                                address: format!(
                                    "{}:{}",
                                    target.host,
                                    connect_port(target, mapped[index])
                                ),
                                expected: service_name(target.service).to_owned(),
                                got,
                            });
                        }
                        last_probe[index] = got;
                    }
                    Some(Probed::OtherService(got)) => last_probe[index] = got,
                    None => {}
                }
            }
            match wait_for {
                WaitFor::All if open.iter().all(Option::is_some) => {
                    return Ok(open.into_iter().flatten().collect());
                }
                WaitFor::FirstAnswering(_) => {
                    if let Some(port) = open.iter().flatten().next() {
                        return Ok(vec![port.clone()]);
                    }
                }
                _ => {}
            }
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let waited = now.duration_since(started);
            if !applied {
                let port = targets.first().map_or(0, |target| target.number);
                return Err(RequestError::NotApplied {
                    port,
                    status: last_status,
                    waited,
                });
            }
            let index = open.iter().position(Option::is_none).unwrap_or(0);
            let target = &targets[index];
            return Err(RequestError::NeverAnswered {
                port: target.number,
                address: format!("{}:{}", target.host, connect_port(target, mapped[index])),
                service: match wait_for {
                    WaitFor::FirstAnswering(service) => service_name(service).to_owned(),
                    _ => service_name(target.service).to_owned(),
                },
                last: last_probe[index].clone(),
                waited,
            });
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 3 / 2).min(Duration::from_secs(3));
    }
}

fn connect_port(target: &PortTarget, mapped: Option<u16>) -> u16 {
    if target.through_firewall {
        mapped.unwrap_or(target.number)
    } else {
        target.number
    }
}

fn service_name(service: Service) -> &'static str {
    match service {
        Service::Ssh => "SSH",
        Service::Rdp => "RDP",
        Service::Other => "TCP",
    }
}

fn describe_targets(targets: &[PortTarget], mapped: &[Option<u16>], wait_for: WaitFor) -> String {
    let places: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(index, target)| format!("{}:{}", target.host, connect_port(target, mapped[index])))
        .collect();
    match wait_for {
        WaitFor::FirstAnswering(service) => {
            format!("{} on one of {}", service_name(service), places.join(", "))
        }
        _ => targets
            .iter()
            .zip(places)
            .map(|(target, place)| format!("{} on {place}", service_name(target.service)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| error.to_string())?
        .collect();
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or_else(|| addresses.first())
        .copied()
        .ok_or_else(|| "no address".to_owned())
}

/// What probing one target found.
enum Probed {
    /// The wanted service answered.
    Open(OpenPort),
    /// Nothing usable yet; the outcome in words.
    Waiting(String),
    /// Another service answers there, in words.
    OtherService(String),
}

/// Probes one target.
async fn probe_target(
    target: &PortTarget,
    connect_port: u16,
    wait_for: WaitFor,
    timeout: Duration,
) -> Probed {
    let address = match resolve(&target.host, connect_port).await {
        Ok(address) => address,
        Err(reason) => return Probed::Waiting(format!("cannot resolve {}: {reason}", target.host)),
    };
    let open = |service: Service, detail: String| {
        Probed::Open(OpenPort {
            number: target.number,
            host: target.host.clone(),
            connect_port,
            mapped_port: None,
            service,
            detail,
        })
    };
    let wanted = match wait_for {
        WaitFor::FirstAnswering(service) => service,
        _ => target.service,
    };
    if wanted == Service::Other {
        return match probe::identify(address, timeout).await {
            Identified::Ssh { banner } => open(Service::Ssh, banner),
            Identified::Rdp { detail } => open(Service::Rdp, detail),
            // Something accepted the connection but speaks neither SSH nor RDP first; for
            // an unknown protocol that is as much as can be checked.
            Identified::Neither(ProbeOutcome::Silent { connected: true }) => {
                open(Service::Other, format!("TCP connection to {address}"))
            }
            Identified::Neither(outcome) => Probed::Waiting(outcome.to_string()),
        };
    }
    match probe::identify(address, timeout).await {
        Identified::Ssh { banner } if wanted == Service::Ssh => open(Service::Ssh, banner),
        Identified::Rdp { detail } if wanted == Service::Rdp => open(Service::Rdp, detail),
        Identified::Ssh { banner } => Probed::OtherService(format!("SSH answered ({banner})")),
        Identified::Rdp { .. } => Probed::OtherService("RDP answered".to_owned()),
        Identified::Neither(ProbeOutcome::WrongProtocol { got }) => {
            Probed::OtherService(format!("an unexpected service answered: {got:?}"))
        }
        Identified::Neither(outcome) => Probed::Waiting(outcome.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::ownership::{ClientTag, readable_justification};

    fn policy(json: serde_json::Value) -> JitNetworkAccessPolicy {
        serde_json::from_value(json).expect("policy")
    }

    #[test]
    fn our_request_is_found_by_its_marker_not_by_timing() {
        let vm =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-01";
        let tag = ClientTag::parse("abcdef01").expect("tag");
        let ours = RequestMarker::new(Some(&tag));
        let colleague = RequestMarker::new(None);
        // A colleague asked for the same port with the same end time, a moment later.
        let recorded = policy(serde_json::json!({
            "id": "/p",
            "properties": {
                "virtualMachines": [],
                "requests": [
                    {"startTimeUtc": "2026-01-01T10:30:00.123Z", "justification": ours.stamp(Some("mine")),
                     "virtualMachines": [{"id": vm.to_uppercase(), "ports": [
                        {"number": 22, "endTimeUtc": "2026-01-01T11:30:00Z", "status": "Revoked", "statusReason": "NewerRequestInitiated", "mappedPort": 50022}]}]},
                    {"startTimeUtc": "2026-01-01T10:30:01Z", "justification": colleague.stamp(Some("theirs")),
                     "virtualMachines": [{"id": vm, "ports": [
                        {"number": 22, "endTimeUtc": "2026-01-01T11:30:00Z", "status": "Initiated", "statusReason": "UserRequested"}]}]}
                ]
            }
        }));
        let found = recorded_request(&recorded, &ours).expect("ours is recorded");
        assert_eq!(
            found.justification.as_deref().map(readable_justification),
            Some("mine")
        );
        assert!(recorded_request(&recorded, &RequestMarker::new(Some(&tag))).is_none());

        let initiated = Initiated {
            policy_id: "/p".to_owned(),
            request: found,
            end_time: "2026-01-01T11:30:00Z".parse().expect("time"),
            server_offset: SignedDuration::ZERO,
            marker: ours,
        };
        let port = find_our_request(&recorded, &initiated, vm, 22).expect("found");
        assert_eq!(port.mapped_port, Some(50022));
        assert_eq!(port.status, JitPortStatus::Revoked);
    }

    #[test]
    fn only_failures_after_sending_are_checked_in_the_policy() {
        let server = ArmError::Server {
            status: 504,
            code: None,
            message: "gateway timeout".to_owned(),
            not_retried: true,
            retry_after: None,
        };
        assert!(may_have_reached_azure(&server));
        let throttled = ArmError::Throttled {
            retry_after: None,
            message: "slow down".to_owned(),
        };
        assert!(!may_have_reached_azure(&throttled));
    }
}
