//! `Microsoft.Compute` (2024-07-01): virtual machines, their instance view, and `start`
//! as a long-running operation.
//!
//! `start` answers 202 with `Azure-AsyncOperation` and `Location`, as Compute does; the
//! operation reports `InProgress` until a short virtual delay has passed, then
//! `Succeeded`, and the VM is running from then on. Clients built on azure_core's poller
//! or on hand-written polling both see the sequence the service shows.

use http::{Method, StatusCode};
use serde_json::json;

use super::{Call, ResourceScope, method_not_allowed, paged_list, resource_not_found};
use crate::arm_http::ArmResponse;
use crate::state::render::timestamp;

const VIRTUAL_MACHINES: &str = "Microsoft.Compute/virtualMachines";

fn expands_instance_view(call: &Call<'_>) -> bool {
    call.request
        .query_value("$expand")
        .is_some_and(|expand| expand.eq_ignore_ascii_case("instanceView"))
        || call
            .request
            .query_value("statusOnly")
            .is_some_and(|status| status.eq_ignore_ascii_case("true"))
}

/// Which VMs a list covers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope<'a> {
    /// `VirtualMachines_ListAll`.
    Subscription,
    /// `VirtualMachines_List`.
    Group(&'a str),
    /// `VirtualMachines_ListByLocation`.
    Location(&'a str),
}

/// `$filter` on a VM list: the spec allows only `'virtualMachineScaleSet/id' eq …`. No
/// emulated VM belongs to a scale set, so that filter matches nothing (`Ok(false)`);
/// anything else is refused rather than ignored.
fn scale_set_filter(call: &Call<'_>) -> Result<bool, ArmResponse> {
    let Some(filter) = call.request.query_value("$filter") else {
        return Ok(true);
    };
    let normalised = filter.trim().trim_start_matches('\'');
    let is_scale_set = normalised
        .to_ascii_lowercase()
        .strip_prefix("virtualmachinescaleset/id")
        .map(|rest| rest.trim_start_matches('\'').trim_start())
        .is_some_and(|rest| rest.starts_with("eq "));
    if is_scale_set {
        Ok(false)
    } else {
        Err(ArmResponse::error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!(
                "The value '{filter}' of parameter '$filter' is not supported: the only allowed \
                 filter is 'virtualMachineScaleSet/id' eq '<scale set id>'."
            ),
        ))
    }
}

/// `GET …/virtualMachines` in a subscription, a resource group or a location.
pub(super) fn list(call: &Call<'_>, subscription: &str, scope: Scope<'_>) -> ArmResponse {
    let any = match scale_set_filter(call) {
        Ok(any) => any,
        Err(response) => return response,
    };
    let resources = call.resources();
    let client_key = call.inner.client_public_key.as_deref();
    let with_view = expands_instance_view(call);
    let items: Vec<serde_json::Value> = resources
        .virtual_machines
        .values()
        .filter(|_| any)
        .filter(|vm| {
            vm.placement
                .subscription_id
                .eq_ignore_ascii_case(subscription)
        })
        .filter(|vm| match scope {
            Scope::Subscription => true,
            Scope::Group(group) => vm.placement.resource_group.eq_ignore_ascii_case(group),
            Scope::Location(location) => vm.placement.location.eq_ignore_ascii_case(location),
        })
        .map(|vm| resources.render_virtual_machine(vm, client_key, with_view, call.now))
        .collect();
    paged_list(call, &items)
}

/// Routes under `…/virtualMachines/{name}`.
pub(super) fn virtual_machine(
    call: &mut Call<'_>,
    scope: &ResourceScope<'_>,
    name: &str,
    action: &[&str],
) -> ArmResponse {
    let vm_key = scope.key(VIRTUAL_MACHINES, name);
    if !call.resources().virtual_machines.contains_key(&vm_key) {
        return resource_not_found(VIRTUAL_MACHINES, name, scope.group);
    }
    let method = call.request.method.clone();
    match (action, method) {
        ([], Method::GET) => {
            let with_view = expands_instance_view(call);
            let resources = call.resources();
            match resources.virtual_machines.get(&vm_key) {
                Some(vm) => ArmResponse::ok(resources.render_virtual_machine(
                    vm,
                    call.inner.client_public_key.as_deref(),
                    with_view,
                    call.now,
                )),
                None => resource_not_found(VIRTUAL_MACHINES, name, scope.group),
            }
        }
        (["instanceview"], Method::GET) => {
            let resources = call.resources();
            match resources.virtual_machines.get(&vm_key) {
                Some(vm) => ArmResponse::ok(resources.render_instance_view(vm, call.now)),
                None => resource_not_found(VIRTUAL_MACHINES, name, scope.group),
            }
        }
        (["start"], Method::POST) => start(call, scope, &vm_key),
        ([] | ["instanceview"] | ["start"], method) => method_not_allowed(&method),
        _ => super::unknown_route(call.request),
    }
}

fn start(call: &mut Call<'_>, scope: &ResourceScope<'_>, vm_key: &str) -> ArmResponse {
    let location = call
        .resources()
        .virtual_machines
        .get(vm_key)
        .map(|vm| vm.placement.location.clone())
        .unwrap_or_default();
    let operation = call.inner.resources.start_virtual_machine(vm_key, call.now);
    let base = format!(
        "{}/subscriptions/{}/providers/Microsoft.Compute/locations/{location}/operations/{operation}",
        call.request.base_url.trim_end_matches('/'),
        scope.subscription
    );
    tracing::info!(vm = vm_key, operation, "VM start requested");
    ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header(
            "Azure-AsyncOperation",
            format!("{base}?api-version={}", call.api_version),
        )
        .with_header(
            "Location",
            format!("{base}?monitor=true&api-version={}", call.api_version),
        )
        .with_header("Retry-After", "1")
}

/// `GET …/locations/{location}/operations/{id}`: the operation status, or with
/// `monitor=true` (the `Location` URL) 202 until done and then 200.
pub(super) fn operation(
    call: &Call<'_>,
    subscription: &str,
    location: &str,
    name: &str,
) -> ArmResponse {
    let resources = call.resources();
    let found = resources
        .operations
        .get(&name.to_ascii_lowercase())
        .filter(|operation| {
            resources
                .virtual_machines
                .get(&operation.virtual_machine)
                .is_some_and(|vm| {
                    vm.placement
                        .subscription_id
                        .eq_ignore_ascii_case(subscription)
                        && vm.placement.location.eq_ignore_ascii_case(location)
                })
        });
    let Some(operation) = found else {
        return ArmResponse::error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("The operation '{name}' was not found."),
        );
    };
    let done = operation.completes_at <= call.now;
    let monitor = call
        .request
        .query_value("monitor")
        .is_some_and(|monitor| monitor.eq_ignore_ascii_case("true"));
    if monitor {
        return if done {
            ArmResponse::empty(StatusCode::OK)
        } else {
            ArmResponse::empty(StatusCode::ACCEPTED).with_header("Retry-After", "1")
        };
    }
    let mut body = json!({
        "startTime": timestamp(operation.start_time),
        "status": if done { "Succeeded" } else { "InProgress" },
        "name": operation.name,
    });
    if done {
        body["endTime"] = json!(timestamp(operation.completes_at));
    }
    let response = ArmResponse::ok(body);
    if done {
        response
    } else {
        response.with_header("Retry-After", "1")
    }
}
