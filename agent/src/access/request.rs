//! Asking for access, and waiting until it is really there.
//!
//! `initiate` answers 202 before anything is open: Azure reports the request's ports as
//! `Initiating` while it writes NSG (or firewall) rules, then `Initiated`. Even then the
//! port may take a moment to answer. People work around this with fixed sleeps (12 s,
//! 45 s), or poll the policy every second or two for as long as Azure takes.
//!
//! `jit` lets **the probe drive the wait**: right after the 202 it starts probing the
//! port at the protocol level (an SSH banner, an RDP X.224 confirm) every
//! [`PROBE_INTERVAL`], each probe with its own short timeout and a bounded number in
//! flight (a dropped SYN never answers, so a probe that started before the rule was
//! written is not waited for). The port answering is noticed within about one interval.
//! The policy is read only to learn what the probe cannot: once when the port first
//! answers (our request, not revoked), and when the port has not answered by the time
//! Azure usually has applied a request ([`EXPECTED_APPLY`], then once more after
//! [`POLICY_READ_BACKOFF`] times as long), and at the deadline, to say whether Azure never
//! applied the request or the service never answered. So a request costs at most three
//! policy reads however long Azure takes. Behind an Azure Firewall the port to probe is
//! the request's `mappedPort`, which only the policy tells: there the policy is polled
//! (every half second, growing to three) until the request is applied.
//!
//! Initiate is not idempotent (a second request supersedes the first), so it is never
//! repeated blindly: if the connection fails or Azure answers with a server error after
//! the request may have reached Azure, the policy is read to see whether the request was
//! recorded, and that answer is used. The request is recognised by the marker in its
//! justification (see [`super::ownership`]), never by timing: a colleague's request for
//! the same ports a second later is not ours.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

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
    /// policy, read back, does not hold the request: it was not applied (after it was
    /// sent again, each time only once the policy showed it absent).
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
    // A failure that may have reached Azure is never resent blindly: the policy is read
    // first, and only a request it does not hold is sent again (same marker), after a
    // pause, at most RESENDS_AFTER_ABSENCE times.
    let mut resends = 0;
    let request = loop {
        match client.initiate_by_id(policy_id, &body).await {
            Ok(request) => break request,
            Err(error) if may_have_reached_azure(&error) => {
                tracing::warn!(%error, "initiate failed; checking whether Azure recorded the request");
                let policy = client.get_by_id(policy_id).await?;
                if let Some(request) = recorded_request(&policy, marker) {
                    break request;
                }
                if resends == RESENDS_AFTER_ABSENCE {
                    return Err(RequestError::NotRecordedAfterFailure { error });
                }
                resends += 1;
                tracing::info!(
                    attempt = resends,
                    "the policy does not hold the request: it was not applied; sending it again"
                );
                tokio::time::sleep(PAUSE_BEFORE_RESEND * resends).await;
            }
            Err(error) => return Err(error.into()),
        }
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

/// How many times an `initiate` that failed, and that the policy read back shows was not
/// applied, is sent again.
const RESENDS_AFTER_ABSENCE: u32 = 2;

/// The pause before the first such resend (then twice as long).
const PAUSE_BEFORE_RESEND: Duration = Duration::from_secs(1);

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When `jit` noticed the port answering (local clock; `None` for a window that was
    /// already open and only checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<Timestamp>,
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

/// How often a new probe of a port that has not answered yet starts.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(150);
/// How long one probe may take (connect and the service's first answer).
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Probes of one port in flight at once, at most (a silent port holds each until its
/// timeout).
const PROBES_IN_FLIGHT: usize = 10;
/// When Azure has usually applied a request: the policy is read if the port has not
/// answered by then.
pub const EXPECTED_APPLY: Duration = Duration::from_secs(5);
/// How much longer the second read waits than the first.
pub const POLICY_READ_BACKOFF: u32 = 3;
/// Reads of the policy while the port has not answered and Azure says `Initiating`,
/// at most (then only when the port answers, or at the deadline).
const READS_WHILE_SILENT: u32 = 2;
/// The first interval of policy polling behind a firewall (growing by half to three
/// seconds).
const POLL_START: Duration = Duration::from_millis(500);
const POLL_LONGEST: Duration = Duration::from_secs(3);

/// What the wait knows about each target.
struct WaitState {
    mapped: Vec<Option<u16>>,
    open: Vec<Option<OpenPort>>,
    last_probe: Vec<String>,
    /// The last status Azure reported that was not `Initiated`.
    last_status: String,
}

impl WaitState {
    /// Takes in what a policy (or the initiate's own answer) says about our request:
    /// `Ok(true)` when every target is `Initiated`.
    fn read_request(
        &mut self,
        policy: Option<&JitNetworkAccessPolicy>,
        initiated: &Initiated,
        targets: &[PortTarget],
    ) -> Result<bool, RequestError> {
        let mut all_initiated = true;
        for (index, target) in targets.iter().enumerate() {
            let port = match policy {
                Some(policy) => find_our_request(policy, initiated, &target.vm_id, target.number),
                None => request_port(&initiated.request, &target.vm_id, target.number),
            };
            let Some(port) = port else {
                if policy.is_none() {
                    // The 202 did not echo the port: the policy will say.
                    all_initiated = false;
                    continue;
                }
                return Err(RequestError::NotRecorded(initiated.policy_id.clone()));
            };
            if port.mapped_port.is_some() {
                self.mapped[index] = port.mapped_port;
            }
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
                    self.last_status = other.to_string();
                }
            }
        }
        Ok(all_initiated)
    }
}

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
    let started = Instant::now();
    // A timeout longer than any window (`--timeout 100000d`) must not overflow the clock.
    let deadline = started + timeout.min(LONGEST_WAIT);
    let mut state = WaitState {
        mapped: vec![None; targets.len()],
        open: vec![None; targets.len()],
        last_probe: vec!["not probed yet".to_owned(); targets.len()],
        last_status: String::from("Initiating"),
    };
    // The initiate's own answer is the first reading.
    let mut confirmed = state.read_request(None, initiated, targets)?;
    if wait_for == WaitFor::Applied && confirmed {
        return Ok(Vec::new());
    }
    let mut reported_probing = false;
    if !confirmed {
        on_progress(&WaitProgress::Applying);
    }
    // Probing needs the port to probe: behind a firewall that is the mapped port, which
    // only the policy tells; `Applied` probes nothing.
    let probing_possible = |state: &WaitState| {
        wait_for != WaitFor::Applied
            && targets
                .iter()
                .enumerate()
                .all(|(index, target)| !target.through_firewall || state.mapped[index].is_some())
    };
    let polling = wait_for == WaitFor::Applied || !probing_possible(&state);
    let mut poll_interval = POLL_START;
    let mut silent_reads = 0;
    let mut next_read: Option<Instant> = match (confirmed, polling) {
        (true, _) => None,
        (false, true) => Some(started + POLL_START),
        (false, false) => Some(started + EXPECTED_APPLY),
    };
    let mut probes = FuturesUnordered::new();
    let mut in_flight = vec![0_usize; targets.len()];
    let mut next_probe = started;

    loop {
        let now = Instant::now();
        if confirmed && !reported_probing && probing_possible(&state) {
            on_progress(&WaitProgress::Probing {
                what: describe_targets(targets, &state.mapped, wait_for),
            });
            reported_probing = true;
        }
        if probing_possible(&state) && now >= next_probe {
            let remaining = deadline.saturating_duration_since(now);
            let probe_timeout = PROBE_TIMEOUT.min(remaining).max(Duration::from_millis(200));
            for (index, target) in targets.iter().enumerate() {
                if state.open[index].is_some() || in_flight[index] >= PROBES_IN_FLIGHT {
                    continue;
                }
                in_flight[index] += 1;
                let connect_port = connect_port(target, state.mapped[index]);
                probes.push(async move {
                    (
                        index,
                        probe_target(target, connect_port, wait_for, probe_timeout).await,
                    )
                });
            }
            next_probe = now + PROBE_INTERVAL;
        }

        let mut wake = deadline;
        if probing_possible(&state) {
            wake = wake.min(next_probe);
        }
        if let Some(read_at) = next_read {
            wake = wake.min(read_at);
        }
        tokio::select! {
            Some((index, probed)) = probes.next(), if !probes.is_empty() => {
                in_flight[index] = in_flight[index].saturating_sub(1);
                match probed {
                    Probed::Open(mut port) => {
                        if state.open[index].is_none() {
                            port.mapped_port = state.mapped[index];
                            port.answered_at = Some(Timestamp::now());
                            state.open[index] = Some(port);
                        }
                    }
                    Probed::Waiting(outcome) => state.last_probe[index] = outcome,
                    // Waiting longer will not change which service listens there.
                    Probed::OtherService(got) if matches!(wait_for, WaitFor::All) => {
                        let target = &targets[index];
                        return Err(RequestError::WrongService {
                            port: target.number,
                            address: format!(
                                "{}:{}",
                                target.host,
                                connect_port(target, state.mapped[index])
                            ),
                            expected: service_name(target.service).to_owned(),
                            got,
                        });
                    }
                    Probed::OtherService(got) => state.last_probe[index] = got,
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }

        let answered = match wait_for {
            WaitFor::All => state.open.iter().all(Option::is_some),
            WaitFor::FirstAnswering(_) => state.open.iter().any(Option::is_some),
            WaitFor::Applied => false,
        };
        if answered {
            if !confirmed {
                // Once: the port answers, but is it for our request? (A revoked request
                // or one Azure never recorded must not pass for access.)
                let policy = client.get_by_id(&initiated.policy_id).await?;
                state.read_request(Some(&policy), initiated, targets)?;
            }
            if !reported_probing {
                on_progress(&WaitProgress::Probing {
                    what: describe_targets(targets, &state.mapped, wait_for),
                });
            }
            let open: Vec<OpenPort> = state.open.into_iter().flatten().collect();
            return Ok(match wait_for {
                WaitFor::FirstAnswering(_) => open.into_iter().take(1).collect(),
                _ => open,
            });
        }

        let now = Instant::now();
        if let Some(read_at) = next_read
            && now >= read_at
            && now < deadline
        {
            let policy = client.get_by_id(&initiated.policy_id).await?;
            confirmed = state.read_request(Some(&policy), initiated, targets)?;
            next_read = if confirmed {
                None
            } else if polling && !probing_possible(&state) || wait_for == WaitFor::Applied {
                let at = Instant::now() + poll_interval;
                poll_interval = (poll_interval * 3 / 2).min(POLL_LONGEST);
                Some(at)
            } else {
                silent_reads += 1;
                (silent_reads < READS_WHILE_SILENT)
                    .then(|| Instant::now() + EXPECTED_APPLY * POLICY_READ_BACKOFF)
            };
            if confirmed && wait_for == WaitFor::Applied {
                return Ok(Vec::new());
            }
            continue;
        }

        if now >= deadline {
            let waited = now.duration_since(started);
            if !confirmed {
                // Which of the two never happened?
                let policy = client.get_by_id(&initiated.policy_id).await?;
                confirmed = state.read_request(Some(&policy), initiated, targets)?;
            }
            if !confirmed || wait_for == WaitFor::Applied {
                let port = targets.first().map_or(0, |target| target.number);
                return Err(RequestError::NotApplied {
                    port,
                    status: state.last_status,
                    waited,
                });
            }
            let index = state.open.iter().position(Option::is_none).unwrap_or(0);
            let target = &targets[index];
            return Err(RequestError::NeverAnswered {
                port: target.number,
                address: format!(
                    "{}:{}",
                    target.host,
                    connect_port(target, state.mapped[index])
                ),
                service: match wait_for {
                    WaitFor::FirstAnswering(service) => service_name(service).to_owned(),
                    _ => service_name(target.service).to_owned(),
                },
                last: state.last_probe[index].clone(),
                waited,
            });
        }
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

/// Whether a port that answered before still answers as its service, within `timeout`
/// (for reusing a window without asking Azure).
pub async fn answers_now(port: &OpenPort, timeout: Duration) -> bool {
    let Ok(address) = resolve(&port.host, port.connect_port).await else {
        return false;
    };
    let outcome = match port.service {
        Service::Ssh => probe::probe_ssh(address, timeout).await,
        Service::Rdp => probe::probe_rdp(address, timeout).await,
        Service::Other => probe::probe_tcp(address, timeout).await,
    };
    outcome.is_ready()
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
            answered_at: None,
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
    if wanted == Service::Rdp {
        // RDP servers wait for the client: ask at once (an SSH server answers the same
        // connection with its banner, which is as telling).
        return match probe::probe_rdp(address, timeout).await {
            ProbeOutcome::Ready { detail } => open(Service::Rdp, detail),
            ProbeOutcome::WrongProtocol { got } if got.starts_with("SSH-") => {
                Probed::OtherService(format!("SSH answered ({got})"))
            }
            ProbeOutcome::WrongProtocol { got } => {
                Probed::OtherService(format!("an unexpected service answered: {got:?}"))
            }
            outcome => Probed::Waiting(outcome.to_string()),
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
