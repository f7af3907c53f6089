//! Concurrent writers on demand: another admin's change to a JIT policy, applied at a
//! chosen point of a client's read-merge-write.
//!
//! JIT policies have no ETag, so a client that edits one (read it, merge its VM in, write
//! the whole policy back, read it again to verify) can lose or undo another writer's
//! change. Whether it notices must be tested for real, not by racing two clients and
//! hoping the timing lands: a [`HookSpec`] says "when policy P is next read / written /
//! written and failed, apply change C right there", and the emulator does it under the
//! same lock that serves the request. The points are:
//!
//! - [`HookPoint::AfterGet`]: after the next successful GET of P is answered (the body the
//!   client gets is the state before the change);
//! - [`HookPoint::FailedPut`]: the next PUT of P is not applied and answered with an
//!   injected failure (503 by default), and C lands at that moment;
//! - [`HookPoint::BeforeWrite`]: C lands just before the next PUT or DELETE of P is
//!   applied.
//!
//! A [`PolicyChange`] goes through the same validation and NSG-rule effects as a real PUT
//! or DELETE: a whole policy body, one VM entry added or replaced, one VM entry removed,
//! or the policy deleted. Each hook fires once (the oldest pending hook for a point and
//! policy first); the admin API and [`crate::Emulator::hooks`] report when and on which
//! request it fired and whether its change applied, and the request log lists the hooks
//! each request fired.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::ids::{ResourceId, key};
use crate::state::model::{Placement, PolicyVirtualMachine, Resources};

/// One hook: at `when` on policy `policy_id`, apply `change`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    /// The JIT policy whose requests trigger the hook (compared case-insensitively), and
    /// the policy the change applies to:
    /// `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Security/locations/{l}/jitNetworkAccessPolicies/{name}`.
    pub policy_id: String,
    /// When it fires.
    pub when: HookPoint,
    /// What the other writer does.
    pub change: PolicyChange,
    /// With [`HookPoint::FailedPut`]: how the PUT fails (default 503 `ServiceUnavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<InjectedFailure>,
}

impl HookSpec {
    /// A hook without a custom failure.
    pub fn new(policy_id: impl Into<String>, when: HookPoint, change: PolicyChange) -> Self {
        Self {
            policy_id: policy_id.into(),
            when,
            change,
            failure: None,
        }
    }
}

/// Where in a client's read-merge-write a hook fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPoint {
    /// After the next successful GET of the policy has been answered.
    AfterGet,
    /// On the next PUT of the policy: the PUT is answered with an injected failure and
    /// not applied; the change is applied instead.
    FailedPut,
    /// Just before the next PUT or DELETE of the policy is applied.
    BeforeWrite,
}

/// Another writer's change to a JIT policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyChange {
    /// PUT a whole policy (create or replace): `body` is a `JitNetworkAccessPolicy` as a
    /// client sends it (`kind`, `properties.virtualMachines`).
    PutPolicy {
        /// The policy body.
        body: Value,
    },
    /// Add one VM entry to the policy, or replace the entry with the same VM id.
    UpsertVm {
        /// An entry of `properties.virtualMachines` (`id`, `ports`, optional
        /// `publicIpAddress`).
        virtual_machine: Value,
    },
    /// Remove the entry of one VM from the policy.
    RemoveVm {
        /// The VM's resource id (compared case-insensitively).
        vm_id: String,
    },
    /// DELETE the policy (and the rules it wrote).
    DeletePolicy,
}

/// How a [`HookPoint::FailedPut`] hook answers the PUT it swallows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectedFailure {
    /// The HTTP status, 400 to 599 (default 503).
    #[serde(default = "service_unavailable")]
    pub status: u16,
    /// `error.code` of the CloudError body; required unless the status is 500
    /// (`InternalServerError`) or 503 (`ServiceUnavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `error.message`; a generic message by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Seconds in a `Retry-After` header, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

impl Default for InjectedFailure {
    fn default() -> Self {
        Self {
            status: service_unavailable(),
            code: None,
            message: None,
            retry_after_seconds: None,
        }
    }
}

fn service_unavailable() -> u16 {
    503
}

impl InjectedFailure {
    /// `error.code`: the given one, or the one ARM uses for 500 and 503.
    pub fn error_code(&self) -> &str {
        match (&self.code, self.status) {
            (Some(code), _) => code,
            (None, 500) => "InternalServerError",
            _ => "ServiceUnavailable",
        }
    }

    /// `error.message`.
    pub fn error_message(&self) -> &str {
        self.message.as_deref().unwrap_or(match self.status {
            500 => "Encountered internal server error. Diagnostic information: an error was injected by the emulator.",
            _ => "The service is currently unavailable. Please try again later.",
        })
    }
}

/// Why a hook or a change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The hook or change is malformed (bad policy id, a body a PUT would refuse…).
    #[error("invalid hook or change: {0}")]
    Invalid(String),
    /// The change could not be applied to the current state (no such policy, a VM the
    /// world does not have, a VM not in the policy…).
    #[error("the change could not be applied: {0}")]
    NotApplied(String),
}

/// A hook as the admin API reports it.
#[derive(Clone, Debug, Serialize)]
pub struct HookStatus {
    /// Identifies the hook (`DELETE /_emulator/hooks/{id}`).
    pub id: u64,
    /// The hook as given.
    #[serde(flatten)]
    pub spec: HookSpec,
    /// When and where it fired; `None` while pending.
    pub fired: Option<HookFiring>,
}

/// When, on which request, and with what outcome a hook fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookFiring {
    /// On the virtual clock.
    pub time: Timestamp,
    /// The method of the request that fired it.
    pub method: String,
    /// The path of the request that fired it.
    pub path: String,
    /// Whether the change was applied.
    pub applied: bool,
    /// Why it was not, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A change checked and read into the emulator's terms.
#[derive(Clone, Debug)]
pub(crate) enum PreparedChange {
    Put {
        kind: Option<String>,
        virtual_machines: Vec<PolicyVirtualMachine>,
    },
    Upsert(PolicyVirtualMachine),
    Remove(String),
    Delete,
}

/// Where a policy is, from its id.
fn policy_placement(policy_id: &str) -> Result<Placement, HookError> {
    let parsed = ResourceId::parse(policy_id)
        .filter(|parsed| {
            parsed.namespace.eq_ignore_ascii_case("Microsoft.Security")
                && parsed.types.len() == 2
                && parsed.types[0].eq_ignore_ascii_case("locations")
                && parsed.types[1].eq_ignore_ascii_case("jitNetworkAccessPolicies")
        })
        .ok_or_else(|| {
            HookError::Invalid(format!(
                "'{policy_id}' is not a JIT policy id (/subscriptions/{{s}}/resourceGroups/{{g}}/\
                 providers/Microsoft.Security/locations/{{l}}/jitNetworkAccessPolicies/{{name}})"
            ))
        })?;
    Ok(Placement {
        id: policy_id.trim_end_matches('/').to_owned(),
        subscription_id: parsed.subscription_id.clone(),
        resource_group: parsed.resource_group.clone(),
        name: parsed.names[1].clone(),
        location: parsed.names[0].clone(),
    })
}

/// The message of a provider's CloudError answer.
fn refusal(response: &crate::arm_http::ArmResponse) -> String {
    response
        .body
        .as_ref()
        .and_then(|body| body["error"]["message"].as_str())
        .unwrap_or("refused")
        .to_owned()
}

/// Checks a change as a PUT would check its body.
pub(crate) fn prepare(change: &PolicyChange) -> Result<PreparedChange, HookError> {
    let parse = |body: &Value| {
        crate::providers::security::parse_policy(body)
            .map_err(|response| HookError::Invalid(refusal(&response)))
    };
    Ok(match change {
        PolicyChange::PutPolicy { body } => {
            let (kind, virtual_machines) = parse(body)?;
            PreparedChange::Put {
                kind,
                virtual_machines,
            }
        }
        PolicyChange::UpsertVm { virtual_machine } => {
            let (_, mut entries) =
                parse(&json!({ "properties": { "virtualMachines": [virtual_machine] } }))?;
            match entries.pop() {
                Some(entry) => PreparedChange::Upsert(entry),
                None => return Err(HookError::Invalid("no VM entry given".to_owned())),
            }
        }
        PolicyChange::RemoveVm { vm_id } if vm_id.trim().is_empty() => {
            return Err(HookError::Invalid("remove_vm needs a vm_id".to_owned()));
        }
        PolicyChange::RemoveVm { vm_id } => PreparedChange::Remove(vm_id.clone()),
        PolicyChange::DeletePolicy => PreparedChange::Delete,
    })
}

/// Applies a prepared change to the policy at `placement`, as the PUT or DELETE a real
/// writer would send.
pub(crate) fn apply(
    resources: &mut Resources,
    placement: &Placement,
    change: &PreparedChange,
    now: Timestamp,
) -> Result<(), HookError> {
    let policy_key = key(&placement.id);
    let existing = resources.jit_policies.get(&policy_key);
    let not_found = || {
        HookError::NotApplied(format!(
            "the policy '{}' does not exist (now)",
            placement.id
        ))
    };
    let (kind, virtual_machines) = match change {
        PreparedChange::Delete => {
            return if resources.delete_policy(&policy_key) {
                Ok(())
            } else {
                Err(not_found())
            };
        }
        PreparedChange::Put {
            kind,
            virtual_machines,
        } => (kind.clone(), virtual_machines.clone()),
        PreparedChange::Upsert(entry) => {
            let policy = existing.ok_or_else(not_found)?;
            let mut virtual_machines = policy.virtual_machines.clone();
            match virtual_machines
                .iter_mut()
                .find(|known| key(&known.id) == key(&entry.id))
            {
                Some(known) => *known = entry.clone(),
                None => virtual_machines.push(entry.clone()),
            }
            (policy.kind.clone(), virtual_machines)
        }
        PreparedChange::Remove(vm_id) => {
            let policy = existing.ok_or_else(not_found)?;
            let before = policy.virtual_machines.len();
            let virtual_machines: Vec<PolicyVirtualMachine> = policy
                .virtual_machines
                .iter()
                .filter(|known| key(&known.id) != key(vm_id))
                .cloned()
                .collect();
            if virtual_machines.len() == before {
                return Err(HookError::NotApplied(format!(
                    "the VM '{vm_id}' is not in the policy '{}'",
                    placement.id
                )));
            }
            (policy.kind.clone(), virtual_machines)
        }
    };
    let placement = existing.map_or_else(|| placement.clone(), |policy| policy.placement.clone());
    resources
        .put_policy(placement, kind, virtual_machines, now)
        .map(|_| ())
        .map_err(|error| {
            HookError::NotApplied(match error {
                crate::state::jit::JitError::Invalid(message) => message,
                crate::state::jit::JitError::NotSubset => "not a subset".to_owned(),
            })
        })
}

/// A registered hook.
#[derive(Clone, Debug)]
struct Entry {
    id: u64,
    spec: HookSpec,
    policy_key: String,
    placement: Placement,
    change: PreparedChange,
    fired: Option<HookFiring>,
}

/// The hooks of one emulator, pending and fired.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    next_id: u64,
    entries: Vec<Entry>,
}

/// A hook that just fired: its id, and the failure to answer with (for
/// [`HookPoint::FailedPut`]).
#[derive(Clone, Debug)]
pub(crate) struct Fired {
    pub id: u64,
    pub failure: Option<InjectedFailure>,
}

/// The request a hook fires on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trigger<'a> {
    pub point: HookPoint,
    pub policy_key: &'a str,
    pub method: &'a str,
    pub path: &'a str,
}

impl Hooks {
    /// Checks and registers a hook; returns its id.
    pub(crate) fn add(&mut self, spec: HookSpec) -> Result<u64, HookError> {
        let placement = policy_placement(&spec.policy_id)?;
        let change = prepare(&spec.change)?;
        if let Some(failure) = &spec.failure {
            if spec.when != HookPoint::FailedPut {
                return Err(HookError::Invalid(
                    "`failure` goes only with `\"when\": \"failed_put\"`".to_owned(),
                ));
            }
            if !(400..=599).contains(&failure.status) {
                return Err(HookError::Invalid(format!(
                    "failure.status must be 400 to 599, not {}",
                    failure.status
                )));
            }
            if failure.code.is_none() && !matches!(failure.status, 500 | 503) {
                return Err(HookError::Invalid(format!(
                    "failure.code is required for status {} (only 500 and 503 have a default)",
                    failure.status
                )));
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        self.entries.push(Entry {
            id,
            policy_key: key(&placement.id),
            placement,
            change,
            spec,
            fired: None,
        });
        Ok(id)
    }

    /// Every hook, oldest first.
    pub(crate) fn list(&self) -> Vec<HookStatus> {
        self.entries
            .iter()
            .map(|entry| HookStatus {
                id: entry.id,
                spec: entry.spec.clone(),
                fired: entry.fired.clone(),
            })
            .collect()
    }

    /// Removes one hook; `false` when there is none with that id.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.id != id);
        self.entries.len() != before
    }

    /// Removes every hook.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Whether a hook waits for this point and policy.
    pub(crate) fn has_pending(&self, point: HookPoint, policy_key: &str) -> bool {
        self.entries.iter().any(|entry| {
            entry.fired.is_none() && entry.spec.when == point && entry.policy_key == policy_key
        })
    }

    /// Fires the oldest pending hook for this point and policy, if any: applies its
    /// change and records the outcome.
    pub(crate) fn fire(
        &mut self,
        resources: &mut Resources,
        trigger: Trigger<'_>,
        now: Timestamp,
    ) -> Option<Fired> {
        let entry = self.entries.iter_mut().find(|entry| {
            entry.fired.is_none()
                && entry.spec.when == trigger.point
                && entry.policy_key == trigger.policy_key
        })?;
        let outcome = apply(resources, &entry.placement, &entry.change, now);
        tracing::info!(
            hook = entry.id,
            policy = entry.spec.policy_id,
            applied = outcome.is_ok(),
            "a concurrent-writer hook fired"
        );
        entry.fired = Some(HookFiring {
            time: now,
            method: trigger.method.to_owned(),
            path: trigger.path.to_owned(),
            applied: outcome.is_ok(),
            error: outcome.err().map(|error| error.to_string()),
        });
        Some(Fired {
            id: entry.id,
            failure: (entry.spec.when == HookPoint::FailedPut)
                .then(|| entry.spec.failure.clone().unwrap_or_default()),
        })
    }
}

/// Applies a change now (the admin API's `POST changes`).
pub(crate) fn apply_now(
    resources: &mut Resources,
    policy_id: &str,
    change: &PolicyChange,
    now: Timestamp,
) -> Result<(), HookError> {
    let placement = policy_placement(policy_id)?;
    let prepared = prepare(change)?;
    apply(resources, &placement, &prepared, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_read_from_json_as_documented() {
        let spec: HookSpec = serde_json::from_value(json!({
            "policy_id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
            "when": "failed_put",
            "change": { "kind": "remove_vm", "vm_id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v" },
            "failure": { "status": 503, "retry_after_seconds": 2 }
        }))
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(spec.when, HookPoint::FailedPut);
        assert!(matches!(spec.change, PolicyChange::RemoveVm { .. }));
        let unknown = serde_json::from_value::<HookSpec>(json!({
            "policy_id": "x", "when": "after_get", "change": { "kind": "remove_vm", "vm_id": "v", "extra": 1 }
        }));
        assert!(unknown.is_err());
        let point = serde_json::from_value::<HookSpec>(json!({
            "policy_id": "x", "when": "sometime", "change": { "kind": "delete_policy" }
        }));
        assert!(point.is_err());
    }

    #[test]
    fn bad_hooks_are_refused_when_added() {
        let policy = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Security/locations/l/jitNetworkAccessPolicies/p";
        let mut hooks = Hooks::default();
        let not_a_policy = HookSpec::new(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v",
            HookPoint::AfterGet,
            PolicyChange::DeletePolicy,
        );
        assert!(matches!(
            hooks.add(not_a_policy),
            Err(HookError::Invalid(_))
        ));
        let bad_body = HookSpec::new(
            policy,
            HookPoint::AfterGet,
            PolicyChange::PutPolicy {
                body: json!({ "properties": {} }),
            },
        );
        assert!(matches!(hooks.add(bad_body), Err(HookError::Invalid(_))));
        let failure_elsewhere = HookSpec {
            failure: Some(InjectedFailure::default()),
            ..HookSpec::new(policy, HookPoint::AfterGet, PolicyChange::DeletePolicy)
        };
        assert!(hooks.add(failure_elsewhere).is_err());
        let no_code = HookSpec {
            failure: Some(InjectedFailure {
                status: 409,
                ..InjectedFailure::default()
            }),
            ..HookSpec::new(policy, HookPoint::FailedPut, PolicyChange::DeletePolicy)
        };
        assert!(hooks.add(no_code).is_err());
        assert_eq!(
            hooks.add(HookSpec::new(
                policy,
                HookPoint::FailedPut,
                PolicyChange::DeletePolicy
            )),
            Ok(1)
        );
    }

    #[test]
    fn default_failures_say_what_arm_says() {
        let failure = InjectedFailure::default();
        assert_eq!(failure.status, 503);
        assert_eq!(failure.error_code(), "ServiceUnavailable");
        let internal = InjectedFailure {
            status: 500,
            ..InjectedFailure::default()
        };
        assert_eq!(internal.error_code(), "InternalServerError");
    }
}
