//! NSG security rules written through `Microsoft.Network`, as deployments (Terraform,
//! Bicep, the portal) write them: `PUT` and `DELETE`
//! `…/networkSecurityGroups/{nsg}/securityRules/{rule}`, and the status URLs of those
//! long-running operations.
//!
//! The spec marks both operations long-running (`SecurityRules_CreateOrUpdate`: 200/201,
//! final state via `azure-async-operation`; `SecurityRules_Delete`: 200/202/204, final
//! state via `location`). The emulator applies the change at once and answers as Network
//! does for a change it accepted: PUT 201 (new) or 200 (replaced) with the rule and an
//! `Azure-AsyncOperation` URL; DELETE 202 with `Location` and `Azure-AsyncOperation`
//! URLs, or 204 when there was no such rule; both with `Retry-After: 1` (without it,
//! Microsoft's SDK pollers wait 30 s before they look). The operation URLs answer `Succeeded` (and
//! 204 for `Location`) at once. The rules take part in everything at once: the port
//! gate evaluates them, JIT places its rules around them, and a deleted JIT deny rule is
//! no longer enforced (JIT writes it anew on the next PUT of its policy).
//!
//! The body is checked as the spec describes it (required `protocol`, `access`,
//! `priority` 100–4096 unique per direction, `direction`; single and plural address and
//! port fields, one of each pair). Application security groups are not emulated: a rule
//! naming one is refused rather than evaluated approximately. Error codes are Network's
//! names where known, otherwise `InvalidRequestFormat` (inferred; the service's wording
//! is not in the specs).

use std::net::IpAddr;

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::{Call, ResourceScope, json_body, resource_not_found};
use crate::arm_http::ArmResponse;
use crate::state::gate::PortRange;
use crate::state::model::{NetworkOperation, SecurityRule};
use crate::world::{self, RuleAccess, RuleDirection};

/// How many finished operations are remembered.
const OPERATION_HISTORY: usize = 200;
/// `SecurityRule.description` is "restricted to 140 chars".
const MAX_DESCRIPTION: usize = 140;
/// The spec's priority range.
const PRIORITIES: std::ops::RangeInclusive<i64> = 100..=4096;

fn invalid(code: &str, message: impl Into<String>) -> ArmResponse {
    ArmResponse::error(StatusCode::BAD_REQUEST, code, message)
}

fn format_error(message: impl Into<String>) -> ArmResponse {
    invalid("InvalidRequestFormat", message)
}

/// A required string property, one of `allowed` (compared case-insensitively), returned
/// in the spec's spelling.
fn one_of(
    properties: &Map<String, Value>,
    name: &str,
    allowed: &[&'static str],
) -> Result<&'static str, ArmResponse> {
    let Some(value) = properties.get(name).and_then(Value::as_str) else {
        return Err(format_error(format!(
            "The property 'properties.{name}' is required and must be one of {}.",
            allowed.join(", ")
        )));
    };
    allowed
        .iter()
        .find(|known| known.eq_ignore_ascii_case(value))
        .copied()
        .ok_or_else(|| {
            format_error(format!(
                "'properties.{name}' ('{value}') must be one of {}.",
                allowed.join(", ")
            ))
        })
}

/// A single/plural pair such as `sourcePortRange`/`sourcePortRanges`: exactly one of
/// them must carry a value (an empty plural counts as absent, as clients send both).
fn pair(
    properties: &Map<String, Value>,
    single: &str,
    plural: &str,
) -> Result<(Option<String>, Vec<String>), ArmResponse> {
    let one = match properties.get(single) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.is_empty() => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(format_error(format!(
                "'properties.{single}' must be a string."
            )));
        }
    };
    let many = match properties.get(plural) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let texts: Option<Vec<String>> = items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect();
            texts.ok_or_else(|| {
                format_error(format!(
                    "'properties.{plural}' must be an array of strings."
                ))
            })?
        }
        Some(_) => {
            return Err(format_error(format!(
                "'properties.{plural}' must be an array of strings."
            )));
        }
    };
    match (&one, many.is_empty()) {
        (Some(_), false) => Err(format_error(format!(
            "Only one of 'properties.{single}' and 'properties.{plural}' may be given."
        ))),
        (None, true) => Err(format_error(format!(
            "One of 'properties.{single}' and 'properties.{plural}' is required."
        ))),
        _ => Ok((one, many)),
    }
}

/// `*`, an address, a CIDR, or a service tag (`VirtualNetwork`, `Internet`,
/// `AzureLoadBalancer`, `Storage.WestEurope`…).
fn is_address_prefix(text: &str) -> bool {
    text == "*"
        || text.parse::<IpAddr>().is_ok()
        || text.parse::<ipnet::IpNet>().is_ok()
        || (text.starts_with(|c: char| c.is_ascii_alphabetic())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
}

/// Reads a `SecurityRule` body into the emulator's rule named `name`.
fn parse_rule(body: &Value, name: &str) -> Result<SecurityRule, ArmResponse> {
    let Some(properties) = body.get("properties").and_then(Value::as_object) else {
        return Err(format_error(
            "The property 'properties' is required and must be an object.",
        ));
    };
    for field in [
        "sourceApplicationSecurityGroups",
        "destinationApplicationSecurityGroups",
    ] {
        if properties
            .get(field)
            .and_then(Value::as_array)
            .is_some_and(|groups| !groups.is_empty())
        {
            return Err(invalid(
                "UnsupportedByEmulator",
                format!(
                    "'properties.{field}': application security groups are not emulated \
                     (use address prefixes)."
                ),
            ));
        }
    }
    let protocol = one_of(
        properties,
        "protocol",
        &["Tcp", "Udp", "Icmp", "Esp", "*", "Ah"],
    )?;
    let access = match one_of(properties, "access", &["Allow", "Deny"])? {
        "Allow" => RuleAccess::Allow,
        _ => RuleAccess::Deny,
    };
    let direction = match one_of(properties, "direction", &["Inbound", "Outbound"])? {
        "Inbound" => RuleDirection::Inbound,
        _ => RuleDirection::Outbound,
    };
    let priority = match properties.get("priority").and_then(Value::as_i64) {
        Some(priority) if PRIORITIES.contains(&priority) => {
            u32::try_from(priority).unwrap_or_default()
        }
        Some(priority) => {
            return Err(invalid(
                "SecurityRuleInvalidPriority",
                format!(
                    "Security rule {name} has invalid Priority. Value provided: {priority}. \
                     Allowed range 100-4096."
                ),
            ));
        }
        None => {
            return Err(format_error(
                "The property 'properties.priority' is required and must be an integer.",
            ));
        }
    };
    let description = match properties.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.chars().count() > MAX_DESCRIPTION => {
            return Err(format_error(format!(
                "'properties.description' is longer than {MAX_DESCRIPTION} characters."
            )));
        }
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => return Err(format_error("'properties.description' must be a string.")),
    };
    let (source_port_range, source_port_ranges) =
        pair(properties, "sourcePortRange", "sourcePortRanges")?;
    let (destination_port_range, destination_port_ranges) =
        pair(properties, "destinationPortRange", "destinationPortRanges")?;
    let (source_address_prefix, source_address_prefixes) =
        pair(properties, "sourceAddressPrefix", "sourceAddressPrefixes")?;
    let (destination_address_prefix, destination_address_prefixes) = pair(
        properties,
        "destinationAddressPrefix",
        "destinationAddressPrefixes",
    )?;
    if let Some(bad) = source_port_range
        .iter()
        .chain(&source_port_ranges)
        .chain(&destination_port_range)
        .chain(&destination_port_ranges)
        .find(|range| PortRange::parse(range).is_none())
    {
        return Err(invalid(
            "SecurityRuleInvalidPortRange",
            format!(
                "Security rule {name} has invalid port range '{bad}'. Value must be '*', a port \
                 or a range between 0 and 65535."
            ),
        ));
    }
    if let Some(bad) = source_address_prefix
        .iter()
        .chain(&source_address_prefixes)
        .chain(&destination_address_prefix)
        .chain(&destination_address_prefixes)
        .find(|prefix| !is_address_prefix(prefix))
    {
        return Err(invalid(
            "SecurityRuleInvalidAddressPrefix",
            format!(
                "Security rule {name} has invalid address prefix '{bad}'. Value must be '*', \
                 an IP address, a CIDR or a service tag."
            ),
        ));
    }
    Ok(SecurityRule {
        name: name.to_owned(),
        description,
        protocol: protocol.to_owned(),
        source_port_range,
        source_port_ranges,
        source_address_prefix,
        source_address_prefixes,
        destination_address_prefix,
        destination_address_prefixes,
        destination_port_range,
        destination_port_ranges,
        access,
        priority,
        direction,
        etag: uuid::Uuid::new_v4().to_string(),
    })
}

/// Records an operation and returns the URLs of its status: (`Azure-AsyncOperation`,
/// `Location`).
fn start_operation(call: &mut Call<'_>, subscription: &str, location: &str) -> (String, String) {
    let id = uuid::Uuid::new_v4().to_string();
    let operations = &mut call.inner.resources.network_operations;
    operations.insert(
        id.clone(),
        NetworkOperation {
            id: id.clone(),
            subscription_id: subscription.to_owned(),
            location: location.to_owned(),
            started: call.now,
        },
    );
    while operations.len() > OPERATION_HISTORY {
        let oldest = operations
            .values()
            .min_by_key(|operation| operation.started)
            .map(|operation| operation.id.clone());
        match oldest {
            Some(oldest) => operations.remove(&oldest),
            None => break,
        };
    }
    let base = format!(
        "{}/subscriptions/{subscription}/providers/Microsoft.Network/locations/{location}",
        call.request.base_url.trim_end_matches('/')
    );
    let version = call.api_version;
    (
        format!("{base}/operations/{id}?api-version={version}"),
        format!("{base}/operationResults/{id}?api-version={version}"),
    )
}

/// `PUT …/networkSecurityGroups/{nsg}/securityRules/{rule}`.
pub(super) fn put(
    call: &mut Call<'_>,
    scope: &ResourceScope<'_>,
    nsg_name: &str,
    rule_name: &str,
) -> ArmResponse {
    let nsg_key = scope.key(world::NSGS, nsg_name);
    let Some(location) = call
        .resources()
        .network_security_groups
        .get(&nsg_key)
        .map(|nsg| nsg.placement.location.clone())
    else {
        return resource_not_found(
            "Microsoft.Network/networkSecurityGroups",
            nsg_name,
            scope.group,
        );
    };
    if rule_name.is_empty() || rule_name.chars().count() > 80 {
        return format_error("A security rule name has 1 to 80 characters.");
    }
    let body = match json_body(call.request) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let rule = match parse_rule(&body, rule_name) {
        Ok(rule) => rule,
        Err(response) => return response,
    };
    let Some(nsg) = call
        .inner
        .resources
        .network_security_groups
        .get_mut(&nsg_key)
    else {
        return resource_not_found(
            "Microsoft.Network/networkSecurityGroups",
            nsg_name,
            scope.group,
        );
    };
    if let Some(other) = nsg.rules.iter().find(|other| {
        !other.name.eq_ignore_ascii_case(rule_name)
            && other.direction == rule.direction
            && other.priority == rule.priority
    }) {
        return invalid(
            "SecurityRuleConflict",
            format!(
                "Security rule {rule_name} conflicts with rule {}. Rules cannot have the same \
                 Priority and Direction.",
                other.name
            ),
        );
    }
    let created = match nsg
        .rules
        .iter_mut()
        .find(|existing| existing.name.eq_ignore_ascii_case(rule_name))
    {
        Some(existing) => {
            *existing = rule.clone();
            false
        }
        None => {
            nsg.rules.push(rule.clone());
            true
        }
    };
    tracing::info!(
        nsg = nsg_key,
        rule = rule_name,
        created,
        "security rule written"
    );
    let rendered = {
        let resources = call.resources();
        resources
            .network_security_groups
            .get(&nsg_key)
            .map(|nsg| resources.render_security_rule(nsg, &rule, false))
    };
    let (async_operation, _) = start_operation(call, scope.subscription, &location);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    ArmResponse::json(status, rendered.unwrap_or(Value::Null))
        .with_header("Azure-AsyncOperation", async_operation)
        .with_header("Retry-After", "1")
}

/// `DELETE …/networkSecurityGroups/{nsg}/securityRules/{rule}`.
pub(super) fn delete(
    call: &mut Call<'_>,
    scope: &ResourceScope<'_>,
    nsg_name: &str,
    rule_name: &str,
) -> ArmResponse {
    let nsg_key = scope.key(world::NSGS, nsg_name);
    let Some(nsg) = call
        .inner
        .resources
        .network_security_groups
        .get_mut(&nsg_key)
    else {
        return resource_not_found(
            "Microsoft.Network/networkSecurityGroups",
            nsg_name,
            scope.group,
        );
    };
    let before = nsg.rules.len();
    nsg.rules
        .retain(|rule| !rule.name.eq_ignore_ascii_case(rule_name));
    if nsg.rules.len() == before {
        return ArmResponse::empty(StatusCode::NO_CONTENT);
    }
    let location = nsg.placement.location.clone();
    tracing::info!(nsg = nsg_key, rule = rule_name, "security rule deleted");
    let (async_operation, result) = start_operation(call, scope.subscription, &location);
    ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header("Azure-AsyncOperation", async_operation)
        .with_header("Location", result)
        .with_header("Retry-After", "1")
}

/// `GET /subscriptions/{s}/providers/Microsoft.Network/locations/{l}/operations/{id}`
/// (`{"status":"Succeeded"}`) and `…/operationResults/{id}` (204: done, nothing to
/// return).
pub(super) fn operation(
    call: &Call<'_>,
    subscription: &str,
    location: &str,
    id: &str,
    result: bool,
) -> ArmResponse {
    let found = call
        .resources()
        .network_operations
        .get(&id.to_ascii_lowercase())
        .filter(|operation| {
            operation.subscription_id.eq_ignore_ascii_case(subscription)
                && operation.location.eq_ignore_ascii_case(location)
        });
    match (found, result) {
        (None, _) => ArmResponse::error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("The operation '{id}' was not found."),
        ),
        (Some(_), true) => ArmResponse::empty(StatusCode::NO_CONTENT),
        (Some(_), false) => ArmResponse::ok(json!({ "status": "Succeeded" })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(edit: impl FnOnce(&mut Value)) -> Result<SecurityRule, ArmResponse> {
        let mut body = json!({ "properties": {
            "protocol": "tcp",
            "access": "allow",
            "direction": "Inbound",
            "priority": 200,
            "sourcePortRange": "*",
            "sourcePortRanges": [],
            "destinationPortRange": "22",
            "sourceAddressPrefix": "198.51.100.0/24",
            "destinationAddressPrefixes": ["10.1.0.4", "10.1.0.5"],
        }});
        edit(&mut body["properties"]);
        parse_rule(&body, "AllowSsh")
    }

    fn code(result: Result<SecurityRule, ArmResponse>) -> String {
        match result {
            Ok(_) => "ok".to_owned(),
            Err(response) => response
                .body
                .and_then(|body| body["error"]["code"].as_str().map(str::to_owned))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn a_terraform_style_body_parses_in_the_specs_spelling() {
        let parsed = rule(|_| {});
        let Ok(parsed) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(parsed.protocol, "Tcp");
        assert_eq!(parsed.access, RuleAccess::Allow);
        assert_eq!(parsed.priority, 200);
        assert_eq!(parsed.source_port_range.as_deref(), Some("*"));
        assert_eq!(parsed.destination_address_prefix, None);
        assert_eq!(parsed.destination_address_prefixes.len(), 2);
    }

    #[test]
    fn what_the_spec_requires_is_required() {
        for field in ["protocol", "access", "priority", "direction"] {
            let result = rule(|properties| {
                properties
                    .as_object_mut()
                    .map(|object| object.remove(field));
            });
            assert_eq!(code(result), "InvalidRequestFormat", "{field}");
        }
        assert_eq!(
            code(rule(|p| p["priority"] = json!(99))),
            "SecurityRuleInvalidPriority"
        );
        assert_eq!(
            code(rule(|p| p["priority"] = json!(4097))),
            "SecurityRuleInvalidPriority"
        );
        assert_eq!(
            code(rule(|p| p["protocol"] = json!("Sctp"))),
            "InvalidRequestFormat"
        );
    }

    #[test]
    fn pairs_need_exactly_one_value() {
        assert_eq!(
            code(rule(|p| p["destinationAddressPrefix"] = json!("*"))),
            "InvalidRequestFormat"
        );
        assert_eq!(
            code(rule(|p| {
                p.as_object_mut()
                    .map(|object| object.remove("destinationPortRange"));
            })),
            "InvalidRequestFormat"
        );
        assert_eq!(
            code(rule(|p| p["destinationPortRange"] = json!("70000"))),
            "SecurityRuleInvalidPortRange"
        );
        assert_eq!(
            code(rule(|p| p["sourceAddressPrefix"] = json!("not a prefix"))),
            "SecurityRuleInvalidAddressPrefix"
        );
        assert_eq!(
            code(rule(|p| p["sourceAddressPrefix"] = json!("Internet"))),
            "ok"
        );
    }

    #[test]
    fn application_security_groups_are_refused_not_ignored() {
        assert_eq!(
            code(rule(
                |p| p["sourceApplicationSecurityGroups"] = json!([{ "id": "x" }])
            )),
            "UnsupportedByEmulator"
        );
        assert_eq!(
            code(rule(|p| p["sourceApplicationSecurityGroups"] = json!([]))),
            "ok"
        );
    }
}
