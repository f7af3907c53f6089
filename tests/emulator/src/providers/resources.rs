//! `Microsoft.Resources`: subscriptions and resource groups.
//!
//! A client starts here: `GET /subscriptions` is how it learns which subscriptions the
//! caller sees (only the token's tenant's, as ARM does).

use serde_json::json;

use super::{Call, paged_list, resource_group_not_found};
use crate::arm_http::ArmResponse;
use crate::state::ids::{key, resource_group_id};

/// `GET /subscriptions`.
pub(super) fn list_subscriptions(call: &Call<'_>) -> ArmResponse {
    let resources = call.resources();
    let visible = call
        .request
        .caller
        .tenant_id
        .eq_ignore_ascii_case(&resources.tenant_id);
    let items: Vec<serde_json::Value> = resources
        .subscriptions
        .iter()
        .filter(|_| visible)
        .map(|subscription| resources.render_subscription(subscription))
        .collect();
    paged_list(call, &items)
}

/// `GET /subscriptions/{id}`.
pub(super) fn get_subscription(call: &Call<'_>, subscription_id: &str) -> ArmResponse {
    let resources = call.resources();
    match resources
        .subscriptions
        .iter()
        .find(|subscription| subscription.id.eq_ignore_ascii_case(subscription_id))
    {
        Some(subscription) => ArmResponse::ok(resources.render_subscription(subscription)),
        None => ArmResponse::error(
            http::StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("The subscription '{subscription_id}' could not be found."),
        ),
    }
}

fn render_group(group: &crate::state::model::ResourceGroup) -> serde_json::Value {
    json!({
        "id": resource_group_id(&group.subscription_id, &group.name),
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "properties": { "provisioningState": "Succeeded" }
    })
}

/// `GET /subscriptions/{id}/resourcegroups`.
pub(super) fn list_resource_groups(call: &Call<'_>, subscription_id: &str) -> ArmResponse {
    let items: Vec<serde_json::Value> = call
        .resources()
        .resource_groups
        .values()
        .filter(|group| group.subscription_id.eq_ignore_ascii_case(subscription_id))
        .map(render_group)
        .collect();
    paged_list(call, &items)
}

/// `GET /subscriptions/{id}/resourcegroups/{name}`.
pub(super) fn get_resource_group(
    call: &Call<'_>,
    subscription_id: &str,
    group: &str,
) -> ArmResponse {
    match call
        .resources()
        .resource_groups
        .get(&key(&resource_group_id(subscription_id, group)))
    {
        Some(found) => ArmResponse::ok(render_group(found)),
        None => resource_group_not_found(group),
    }
}
