//! `Microsoft.Network` (2024-05-01): NICs, public IPs, virtual networks and subnets, NSGs
//! with their security rules, and Azure Firewalls. Reads only; security rules are
//! written by JIT and by [`super::security_rules`] (a deployment's PUT and DELETE).

use http::Method;
use serde_json::Value;

use super::{
    Call, ResourceScope, child_not_found, method_not_allowed, paged_list, resource_not_found,
};
use crate::arm_http::ArmResponse;
use crate::world;

/// `GET /subscriptions/{s}[/resourceGroups/{group}]/providers/Microsoft.Network/{type}`:
/// every resource of that type in the subscription (`ListAll`) or the resource group
/// (`List`), in id order.
pub(super) fn list(
    call: &Call<'_>,
    subscription: &str,
    group: Option<&str>,
    resource_type: &str,
) -> ArmResponse {
    let resources = call.resources();
    let associations = resources.associations();
    let in_scope = |placement: &crate::state::model::Placement| {
        placement.subscription_id.eq_ignore_ascii_case(subscription)
            && group.is_none_or(|group| placement.resource_group.eq_ignore_ascii_case(group))
    };
    let items: Vec<Value> = match resource_type {
        "networkinterfaces" => resources
            .network_interfaces
            .values()
            .filter(|nic| in_scope(&nic.placement))
            .map(|nic| resources.render_network_interface(nic))
            .collect(),
        "publicipaddresses" => resources
            .public_ip_addresses
            .values()
            .filter(|ip| in_scope(&ip.placement))
            .map(|ip| resources.render_public_ip_address(ip))
            .collect(),
        "virtualnetworks" => resources
            .virtual_networks
            .values()
            .filter(|network| in_scope(&network.placement))
            .map(|network| resources.render_virtual_network_with(network, &associations))
            .collect(),
        "networksecuritygroups" => resources
            .network_security_groups
            .values()
            .filter(|nsg| in_scope(&nsg.placement))
            .map(|nsg| resources.render_network_security_group_with(nsg, &associations))
            .collect(),
        "azurefirewalls" => resources
            .azure_firewalls
            .values()
            .filter(|firewall| in_scope(&firewall.placement))
            .map(|firewall| resources.render_azure_firewall(firewall))
            .collect(),
        _ => return super::unknown_route(call.request),
    };
    paged_list(call, &items)
}

/// Routes under `…/providers/Microsoft.Network/{type}/{name}[/…]`.
pub(super) fn resource(
    call: &Call<'_>,
    scope: &ResourceScope<'_>,
    resource_type: &str,
    name: &str,
    child_names: &[String],
    child_lower: &[&str],
) -> ArmResponse {
    let resources = call.resources();
    let found: Option<(&str, Option<Value>)> = match resource_type {
        "networkinterfaces" => Some((
            "Microsoft.Network/networkInterfaces",
            resources
                .network_interfaces
                .get(&scope.key(world::NICS, name))
                .map(|nic| resources.render_network_interface(nic)),
        )),
        "publicipaddresses" => Some((
            "Microsoft.Network/publicIPAddresses",
            resources
                .public_ip_addresses
                .get(&scope.key(world::PUBLIC_IPS, name))
                .map(|ip| resources.render_public_ip_address(ip)),
        )),
        "virtualnetworks" => Some((
            "Microsoft.Network/virtualNetworks",
            resources
                .virtual_networks
                .get(&scope.key(world::VIRTUAL_NETWORKS, name))
                .map(|network| resources.render_virtual_network(network)),
        )),
        "networksecuritygroups" => Some((
            "Microsoft.Network/networkSecurityGroups",
            resources
                .network_security_groups
                .get(&scope.key(world::NSGS, name))
                .map(|nsg| resources.render_network_security_group(nsg)),
        )),
        "azurefirewalls" => Some((
            "Microsoft.Network/azureFirewalls",
            resources
                .azure_firewalls
                .get(&scope.key(world::FIREWALLS, name))
                .map(|firewall| resources.render_azure_firewall(firewall)),
        )),
        _ => None,
    };
    let Some((provider_type, rendered)) = found else {
        return super::unknown_route(call.request);
    };
    let Some(rendered) = rendered else {
        return resource_not_found(provider_type, name, scope.group);
    };
    let method = &call.request.method;
    match (resource_type, child_lower) {
        (_, []) => match *method {
            Method::GET => ArmResponse::ok(rendered),
            _ => method_not_allowed(method),
        },
        ("virtualnetworks", ["subnets"]) => match *method {
            Method::GET => paged_list(call, &array(&rendered, "subnets")),
            _ => method_not_allowed(method),
        },
        ("virtualnetworks", ["subnets", _]) => match *method {
            Method::GET => child(&rendered, "subnets", &child_names[1])
                .map(ArmResponse::ok)
                .unwrap_or_else(|| child_not_found(&call.request.path)),
            _ => method_not_allowed(method),
        },
        ("networksecuritygroups", [collection @ ("securityrules" | "defaultsecurityrules")]) => {
            match *method {
                Method::GET => paged_list(call, &array(&rendered, json_collection(collection))),
                _ => method_not_allowed(method),
            }
        }
        ("networksecuritygroups", [collection @ ("securityrules" | "defaultsecurityrules"), _]) => {
            match *method {
                Method::GET => child(&rendered, json_collection(collection), &child_names[1])
                    .map(ArmResponse::ok)
                    .unwrap_or_else(|| child_not_found(&call.request.path)),
                _ => method_not_allowed(method),
            }
        }
        _ => super::unknown_route(call.request),
    }
}

fn json_collection(collection: &str) -> &'static str {
    if collection == "defaultsecurityrules" {
        "defaultSecurityRules"
    } else {
        "securityRules"
    }
}

/// `properties.{collection}` of a rendered resource.
fn array(rendered: &Value, collection: &str) -> Vec<Value> {
    rendered["properties"][collection]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The element of `properties.{collection}` named `name` (case-insensitively).
fn child(rendered: &Value, collection: &str, name: &str) -> Option<Value> {
    array(rendered, collection).into_iter().find(|item| {
        item["name"]
            .as_str()
            .is_some_and(|item_name| item_name.eq_ignore_ascii_case(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::gate::default_security_rules;

    #[test]
    fn there_are_six_default_rules_three_each_way() {
        let rules = default_security_rules();
        assert_eq!(rules.len(), 6);
        let inbound = rules
            .iter()
            .filter(|rule| rule.direction == world::RuleDirection::Inbound)
            .count();
        assert_eq!(inbound, 3);
    }
}
