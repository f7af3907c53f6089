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
//! - a newer request of ours (another `jit` of this user on this machine, see
//!   [`crate::access::ownership`]) that holds any of the ports open supersedes the window:
//!   the agent tracks that one instead. A newer request of someone else's (a colleague,
//!   the portal, a script) is never adopted: it revoked our ports, so the window ends;
//! - the window's own request with every port `Revoked` (expired, superseded, revoked),
//!   or a policy or VM entry that is gone, ends the window;
//! - otherwise the window is refreshed from its request (end time, port statuses).
//!
//! Every ARM response updates the client's clock offset (`Date` header), which is
//! handed to the agent with each refresh.
//!
//! For `OpenWindow` (many `jit proxy` processes asking for the same VM at once) the
//! backend runs the same access flow as `jit` itself ([`AccessFlow::open_or_reuse`]),
//! through a front end that cannot ask anything ([`Unattended`]): a VM that is stopped
//! or not covered by JIT is an error unless the client said to start or enable it.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::backend::{AccessBackend, BackendError, Granted, Refreshed, WindowUpdate};
use super::protocol::{AccessToken, AccessWindow, ExtendLength, OpenAsk, PortStatus, RememberedVm};
use crate::access::extend::{ExtendError, extend_window};
use crate::access::flow::{
    AccessAsk, AccessFlow, Answer, EnableDefaults, FlowError, FlowEvent, FlowOptions, Interaction,
    Question, VmPreferences, Wait,
};
use crate::access::locate::VmQuery;
use crate::access::ownership::{ClientTag, Ownership};
use crate::access::plan::{PortPreference, SourceRequest};
use crate::access::window::{is_open, request_ports};
use crate::azure::arm::ArmClient;
use crate::azure::clients::JitNetworkAccessPoliciesClient;
use crate::azure::models::{JitNetworkAccessPolicy, JitNetworkAccessRequest};
use crate::azure::resource_id::same_resource_id;

/// Reaches Azure through an [`ArmClient`] (which carries the credential and the clock).
#[derive(Debug, Clone)]
pub struct AzureBackend {
    arm: ArmClient,
    description: String,
    tag: Option<ClientTag>,
    http: Option<reqwest::Client>,
}

impl AzureBackend {
    /// A backend over `arm`; `description` names the cloud or endpoint for the status.
    pub fn new(arm: ArmClient, description: impl Into<String>) -> Self {
        Self {
            arm,
            description: description.into(),
            tag: None,
            http: None,
        }
    }

    /// The same backend, able to open access ([`AccessBackend::open`]): `http` reaches
    /// the "what is my IP" services.
    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// The same backend, telling our requests apart by `tag` (see
    /// [`crate::access::ownership`]); without one, no newer request is ever adopted.
    pub fn with_tag(mut self, tag: Option<ClientTag>) -> Self {
        self.tag = tag;
        self
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
                    updates.extend(in_policy.map(|window| {
                        update_from_policy(window, &policy, self.tag.as_ref(), offset)
                    }));
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
        extend_window(&self.arm, window, length, self.tag.as_ref(), None)
            .await
            .map_err(|error| match error {
                ExtendError::Azure(_) | ExtendError::Request(_) => {
                    BackendError::Azure(error.to_string())
                }
                _ => BackendError::Invalid(error.to_string()),
            })
    }

    async fn open(
        &self,
        ask: &OpenAsk,
        remembered: Option<RememberedVm>,
    ) -> Result<Granted, BackendError> {
        let Some(http) = &self.http else {
            return Err(BackendError::Unavailable(
                "this agent was started without a way to learn the caller's address".to_owned(),
            ));
        };
        let invalid = |error: &dyn std::fmt::Display| BackendError::Invalid(error.to_string());
        let access_ask = AccessAsk {
            vm: VmQuery::parse(&ask.vm).map_err(|error| invalid(&error))?,
            ports: match ask.port {
                None => PortPreference::Ssh,
                Some(number) => PortPreference::Number(number),
            },
            source: ask
                .source
                .as_deref()
                .map(SourceRequest::parse)
                .transpose()
                .map_err(|error| invalid(&error))?,
            duration: ask.duration,
            start: ask.start,
            enable: ask.enable,
        };
        let defaults = EnableDefaults::default();
        let options = FlowOptions {
            subscriptions: ask.subscriptions.clone(),
            my_ip_urls: ask.my_ip_urls.clone(),
            enable_defaults: EnableDefaults {
                allowed_sources: if ask.enable_allowed_sources.is_empty() {
                    defaults.allowed_sources
                } else {
                    ask.enable_allowed_sources.clone()
                },
                max_duration: ask.enable_max_duration.unwrap_or(defaults.max_duration),
            },
            tag: self.tag.clone(),
            preferences: ask
                .preferences
                .iter()
                .map(|(key, preference)| {
                    (
                        key.clone(),
                        VmPreferences {
                            port: preference.port,
                            source: preference.source.clone(),
                        },
                    )
                })
                .collect(),
            ..FlowOptions::default()
        };
        let front = Unattended;
        let flow = AccessFlow::new(&self.arm, http.clone(), &front, options)
            .with_remembered(remembered.into_iter().collect());
        let timeout = Duration::try_from(ask.timeout).unwrap_or(Duration::from_secs(180));
        let grant = flow
            .open_or_reuse(
                &access_ask,
                ask.reuse_margin,
                ask.justification.as_deref(),
                Wait::UntilAnswering(timeout),
            )
            .await
            .map_err(|error| flow_error(&error))?;
        let remember = flow.to_remember(&access_ask, &grant);
        Ok(Granted {
            window: grant.window,
            ports: grant.open,
            remember,
        })
    }

    async fn token(&self, scope: &str) -> Result<AccessToken, BackendError> {
        // A warm token is a convenience for `jit` itself: the agent signs in for Azure
        // Resource Manager and hands out nothing else (not Graph, not Key Vault).
        if scope.trim_end_matches('/') != self.arm.token_scope().trim_end_matches('/') {
            return Err(BackendError::Invalid(format!(
                "the agent hands out tokens for {} only",
                self.arm.token_scope()
            )));
        }
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

/// The access flow's front end in the agent: progress goes to the log, and nobody can
/// be asked anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unattended;

impl Interaction for Unattended {
    fn event(&self, event: FlowEvent<'_>) {
        match event {
            FlowEvent::Warning(text) => tracing::warn!("{text}"),
            FlowEvent::Detail(text) => tracing::debug!("{text}"),
            other => tracing::info!(event = ?other, "access flow"),
        }
    }

    async fn ask(&self, _question: Question<'_>) -> Answer {
        Answer::CannotAsk
    }
}

/// A flow error as the backend reports it, with its causes.
fn flow_error(error: &FlowError) -> BackendError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    match error {
        FlowError::Azure(_) | FlowError::Initiate { .. } | FlowError::ReadVm { .. } => {
            BackendError::Azure(message)
        }
        _ => BackendError::Invalid(message),
    }
}

/// What the policy says about `window` now. Pure, so it is tested on policy documents.
pub fn update_from_policy(
    window: &AccessWindow,
    policy: &JitNetworkAccessPolicy,
    tag: Option<&ClientTag>,
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

    let ownership = Ownership {
        tag: tag.cloned(),
        requestor: window.requestor.clone(),
    };
    if let Some(newest) = relevant.last()
        && newest.start_time_utc > window.requested_at
        && request_ports(newest, &window.vm_id).any(|port| is_open(&port.status))
        && ownership.owns(newest)
    {
        return match AccessWindow::from_request(window, newest, offset) {
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
    let Some(current) = AccessWindow::from_request(window, own, offset) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::ownership::RequestMarker;
    use crate::access::window::WindowPort;

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
        request_by(start, end, status, reason, "azureuser@contoso.com", None)
    }

    fn request_by(
        start: &str,
        end: &str,
        status: &str,
        reason: &str,
        requestor: &str,
        justification: Option<&str>,
    ) -> serde_json::Value {
        serde_json::json!({
            "virtualMachines": [{"id": VM, "ports": [{
                "number": 22, "allowedSourceAddressPrefix": "198.51.100.7",
                "endTimeUtc": end, "status": status, "statusReason": reason
            }]}],
            "startTimeUtc": start,
            "requestor": requestor,
            "justification": justification,
        })
    }

    fn tag() -> ClientTag {
        ClientTag::parse("feedbeef").unwrap_or_else(ClientTag::generate)
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
            requestor: Some("azureuser@contoso.com".into()),
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
            update_from_policy(&window(), &policy, Some(&tag()), SignedDuration::ZERO),
            WindowUpdate::Unchanged { vm_id: VM.into() }
        );
    }

    #[test]
    fn a_newer_open_request_of_ours_supersedes_the_window() {
        let ours = RequestMarker::new(Some(&tag())).stamp(Some("deploy"));
        let policy = policy(&[
            request(
                "2026-11-28T14:00:00Z",
                "2026-11-28T15:00:00Z",
                "Revoked",
                "NewerRequestInitiated",
            ),
            request_by(
                "2026-11-28T15:00:00Z",
                "2026-11-28T18:00:00Z",
                "Initiated",
                "UserRequested",
                "azureuser@contoso.com",
                Some(&ours),
            ),
        ]);
        let offset = SignedDuration::from_secs(3);
        let WindowUpdate::Changed(newer) =
            update_from_policy(&window(), &policy, Some(&tag()), offset)
        else {
            panic!("expected the newer window");
        };
        assert_eq!(newer.requested_at, at("2026-11-28T15:00:00Z"));
        assert_eq!(newer.ends_at, at("2026-11-28T18:00:00Z"));
        assert_eq!(newer.server_clock_offset_at_registration, offset);
        assert_eq!(newer.connect_address.as_deref(), Some("203.0.113.10"));
    }

    #[test]
    fn a_newer_request_of_someone_else_ends_the_window_and_is_never_adopted() {
        let copied_marker = RequestMarker::new(Some(&tag())).stamp(Some("copied"));
        for (requestor, justification) in [
            ("bob@contoso.com", Some("portal")),
            ("bob@contoso.com", Some(copied_marker.as_str())),
        ] {
            let policy = policy(&[
                request(
                    "2026-11-28T14:00:00Z",
                    "2026-11-28T15:00:00Z",
                    "Revoked",
                    "NewerRequestInitiated",
                ),
                request_by(
                    "2026-11-28T15:00:00Z",
                    "2026-11-28T18:00:00Z",
                    "Initiated",
                    "UserRequested",
                    requestor,
                    justification,
                ),
            ]);
            assert_eq!(
                update_from_policy(&window(), &policy, Some(&tag()), SignedDuration::ZERO),
                WindowUpdate::Revoked { vm_id: VM.into() },
                "{justification:?}"
            );
        }
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
            update_from_policy(&window(), &expired, Some(&tag()), SignedDuration::ZERO),
            revoked
        );
        let empty = policy(&[]);
        assert_eq!(
            update_from_policy(&window(), &empty, Some(&tag()), SignedDuration::ZERO),
            revoked
        );
        let mut elsewhere = window();
        elsewhere.vm_id = elsewhere.vm_id.replace("api-01", "web-01");
        assert_eq!(
            update_from_policy(&elsewhere, &empty, Some(&tag()), SignedDuration::ZERO),
            WindowUpdate::Revoked {
                vm_id: elsewhere.vm_id.clone()
            }
        );
    }
}
