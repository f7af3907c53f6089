//! `Microsoft.Security`: the Defender home region (`locations`, 2015-06-01-preview) and
//! JIT network access policies (2020-01-01, and 2015-06-01-preview which the portal and
//! many scripts still use).
//!
//! Bodies are read field by field rather than through serde structs so that every
//! refusal can say which field is wrong, as a CloudError message. The service's own
//! validation is not documented; what is checked here is what the spec requires and
//! what the service was observed to refuse (`azure-contract.md` §1.9), including its
//! quirk of answering `protocol: ""` with a bare 500.

use http::{Method, StatusCode};
use serde_json::Value;

use super::{Call, ResourceScope, json_body, method_not_allowed, paged_list, resource_not_found};
use crate::arm_http::ArmResponse;
use crate::hooks::{Fired, HookPoint, InjectedFailure};
use crate::state::ids::{ResourceId, key, resource_id};
use crate::state::jit::{
    InitiateInput, InitiatePort, InitiateVirtualMachine, JitError, RequestedEnd,
};
use crate::state::model::{Placement, PolicyPort, PolicyVirtualMachine, SourcePrefixes};
use crate::state::render::render_jit_request;
use crate::world::{MAX_MAX_DURATION, MIN_MAX_DURATION, is_source_prefix, parse_iso_duration};

/// `GET /subscriptions/{id}/providers/Microsoft.Security/locations`.
pub(super) fn list_locations(call: &Call<'_>, subscription: &str) -> ArmResponse {
    let items = vec![call.resources().render_security_location(subscription)];
    paged_list(call, &items)
}

/// `GET /subscriptions/{id}/providers/Microsoft.Security/locations/{location}`.
pub(super) fn get_location(call: &Call<'_>, subscription: &str, location: &str) -> ArmResponse {
    let resources = call.resources();
    if resources
        .security_home_region
        .eq_ignore_ascii_case(location)
    {
        ArmResponse::ok(resources.render_security_location(subscription))
    } else {
        ArmResponse::error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The location '{location}' is not the Security Center home region of \
                 subscription '{subscription}'."
            ),
        )
    }
}

/// `GET /subscriptions/{id}/providers/Microsoft.Security/pricings[?$filter=name in (…)]`:
/// every Defender plan of the subscription.
pub(super) fn list_pricings(call: &Call<'_>, subscription: &str) -> ArmResponse {
    let wanted = match call.request.query_value("$filter") {
        None => None,
        Some(filter) => match pricing_filter(filter) {
            Some(names) => Some(names),
            None => {
                return bad_request(format!(
                    "The filter '{filter}' is not supported: use \"name in (plan1,plan2)\"."
                ));
            }
        },
    };
    let resources = call.resources();
    let items: Vec<Value> = resources
        .subscription(subscription)
        .map(|found| {
            found
                .pricings
                .iter()
                .filter(|pricing| {
                    wanted.as_ref().is_none_or(|names| {
                        names
                            .iter()
                            .any(|name| name.eq_ignore_ascii_case(pricing.name))
                    })
                })
                .map(|pricing| resources.render_pricing(&found.id, pricing))
                .collect()
        })
        .unwrap_or_default();
    ArmResponse::ok(serde_json::json!({ "value": items }))
}

/// The plan names of `name in (a,b)` (names optionally quoted), the one `$filter` the
/// spec documents for `Pricings_List`.
fn pricing_filter(filter: &str) -> Option<Vec<String>> {
    let (field, list) = filter.trim().split_once(char::is_whitespace)?;
    let list = list.trim_start().strip_prefix("in")?.trim();
    if !field.eq_ignore_ascii_case("name") {
        return None;
    }
    let inner = list.strip_prefix('(')?.strip_suffix(')')?;
    let names: Vec<String> = inner
        .split(',')
        .map(|name| name.trim().trim_matches(['\'', '"']).to_owned())
        .collect();
    (!names.iter().any(String::is_empty)).then_some(names)
}

/// `GET /subscriptions/{id}/providers/Microsoft.Security/pricings/{name}`.
pub(super) fn get_pricing(call: &Call<'_>, subscription: &str, name: &str) -> ArmResponse {
    let resources = call.resources();
    let found = resources.subscription(subscription).and_then(|found| {
        found
            .pricings
            .iter()
            .find(|pricing| pricing.name.eq_ignore_ascii_case(name))
            .map(|pricing| resources.render_pricing(&found.id, pricing))
    });
    match found {
        Some(pricing) => ArmResponse::ok(pricing),
        None => ArmResponse::error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "The pricing '{name}' was not found. Known plans: {}.",
                crate::world::DEFENDER_PLANS.join(", ")
            ),
        ),
    }
}

/// The four list scopes: subscription, subscription + region, resource group, resource
/// group + region.
pub(super) fn list_policies(
    call: &Call<'_>,
    subscription: &str,
    group: Option<&str>,
    location: Option<&str>,
) -> ArmResponse {
    let resources = call.resources();
    let items: Vec<serde_json::Value> = resources
        .jit_policies
        .values()
        .filter(|policy| {
            let placement = &policy.placement;
            placement.subscription_id.eq_ignore_ascii_case(subscription)
                && group.is_none_or(|group| placement.resource_group.eq_ignore_ascii_case(group))
                && location.is_none_or(|location| placement.location.eq_ignore_ascii_case(location))
        })
        .map(|policy| resources.render_jit_policy(policy))
        .collect();
    paged_list(call, &items)
}

/// Routes under `…/locations/{location}/jitNetworkAccessPolicies/{name}`.
pub(super) fn policy(
    call: &mut Call<'_>,
    scope: &ResourceScope<'_>,
    location: &str,
    name: &str,
    action: &[&str],
) -> ArmResponse {
    let provider_type = format!("Microsoft.Security/locations/{location}/jitNetworkAccessPolicies");
    let policy_id = resource_id(scope.subscription, scope.group, &provider_type, name);
    let policy_key = key(&policy_id);
    let method = call.request.method.clone();
    match (action, method) {
        ([], Method::GET) => {
            let resources = call.resources();
            let response = match resources.jit_policies.get(&policy_key) {
                Some(policy) => ArmResponse::ok(resources.render_jit_policy(policy)),
                None => return resource_not_found(&provider_type, name, scope.group),
            };
            // Another writer lands right after this read was answered.
            call.fire_hook(HookPoint::AfterGet, &policy_key);
            response
        }
        ([], Method::PUT) => {
            if let Some(Fired {
                failure: Some(failure),
                ..
            }) = call.fire_hook(HookPoint::FailedPut, &policy_key)
            {
                return injected_failure(&failure);
            }
            call.fire_hook(HookPoint::BeforeWrite, &policy_key);
            let placement = Placement {
                id: policy_id,
                subscription_id: scope.subscription.to_owned(),
                resource_group: scope.group.to_owned(),
                name: name.to_owned(),
                location: location.to_owned(),
            };
            put(call, placement)
        }
        ([], Method::DELETE) => {
            call.fire_hook(HookPoint::BeforeWrite, &policy_key);
            if call.inner.resources.delete_policy(&policy_key) {
                tracing::info!(policy = policy_key, "JIT policy deleted");
                ArmResponse::empty(StatusCode::OK)
            } else {
                ArmResponse::empty(StatusCode::NO_CONTENT)
            }
        }
        (["initiate"], Method::POST) => {
            if !call.resources().jit_policies.contains_key(&policy_key) {
                return resource_not_found(&provider_type, name, scope.group);
            }
            initiate(call, &policy_key, &policy_id)
        }
        ([] | ["initiate"], method) => method_not_allowed(&method),
        _ => super::unknown_route(call.request),
    }
}

/// The answer of a PUT a [`HookPoint::FailedPut`] hook swallowed.
fn injected_failure(failure: &InjectedFailure) -> ArmResponse {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let response = ArmResponse::error(status, failure.error_code(), failure.error_message());
    match failure.retry_after_seconds {
        Some(seconds) => response.with_header("Retry-After", seconds.to_string()),
        None => response,
    }
}

fn bad_request(message: impl Into<String>) -> ArmResponse {
    ArmResponse::error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn internal_error() -> ArmResponse {
    ArmResponse::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "Internal server error has occurred.",
    )
}

fn not_a_subset(policy_id: &str) -> ArmResponse {
    bad_request(format!(
        "The given access request is not a subset of policy '{policy_id}'. Please make sure \
         that the access request is within the allowed policy properties."
    ))
}

fn put(call: &mut Call<'_>, placement: Placement) -> ArmResponse {
    let body = match json_body(call.request) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let (kind, virtual_machines) = match parse_policy(&body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let policy_id = placement.id.clone();
    match call
        .inner
        .resources
        .put_policy(placement, kind, virtual_machines, call.now)
    {
        Ok(policy_key) => {
            tracing::info!(policy = policy_id, "JIT policy written");
            let resources = call.resources();
            match resources.jit_policies.get(&policy_key) {
                Some(policy) => ArmResponse::ok(resources.render_jit_policy(policy)),
                None => internal_error(),
            }
        }
        Err(JitError::Invalid(message)) => bad_request(message),
        Err(JitError::NotSubset) => not_a_subset(&policy_id),
    }
}

/// Reads a `JitNetworkAccessPolicy` body: `kind` and `properties.virtualMachines`
/// (everything read-only, including `requests` and `location`, is ignored).
pub(crate) fn parse_policy(
    body: &Value,
) -> Result<(Option<String>, Vec<PolicyVirtualMachine>), ArmResponse> {
    let Some(body) = body.as_object() else {
        return Err(bad_request("The request body must be a JSON object."));
    };
    let kind = match body.get("kind") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) => Some(kind.clone()),
        Some(_) => return Err(bad_request("'kind' must be a string.")),
    };
    let Some(properties) = body.get("properties").and_then(Value::as_object) else {
        return Err(bad_request("The property 'properties' is required."));
    };
    let Some(entries) = properties.get("virtualMachines").and_then(Value::as_array) else {
        return Err(bad_request(
            "The property 'properties.virtualMachines' is required and must be an array.",
        ));
    };
    let mut virtual_machines: Vec<PolicyVirtualMachine> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("properties.virtualMachines[{index}]");
        let Some(id) = entry.get("id").and_then(Value::as_str) else {
            return Err(bad_request(format!("'{at}.id' is required.")));
        };
        let parsed = ResourceId::parse(id).filter(|parsed| {
            parsed
                .provider_type()
                .eq_ignore_ascii_case("Microsoft.Compute/virtualMachines")
        });
        if parsed.is_none() {
            return Err(bad_request(format!(
                "'{at}.id' ('{id}') is not a virtual machine resource id."
            )));
        }
        if virtual_machines
            .iter()
            .any(|known| key(&known.id) == key(id))
        {
            return Err(bad_request(format!(
                "Virtual machine '{id}' appears more than once in the policy."
            )));
        }
        let Some(ports) = entry.get("ports").and_then(Value::as_array) else {
            return Err(bad_request(format!(
                "'{at}.ports' is required and must be an array."
            )));
        };
        if ports.is_empty() {
            return Err(bad_request(format!("'{at}.ports' must not be empty.")));
        }
        let mut policy_ports: Vec<PolicyPort> = Vec::new();
        for (port_index, port) in ports.iter().enumerate() {
            let parsed = parse_policy_port(port, &format!("{at}.ports[{port_index}]"))?;
            if policy_ports
                .iter()
                .any(|known| known.number == parsed.number)
            {
                return Err(bad_request(format!(
                    "Port {} appears more than once for virtual machine '{id}'.",
                    parsed.number
                )));
            }
            policy_ports.push(parsed);
        }
        let public_ip_address = match entry.get("publicIpAddress") {
            None | Some(Value::Null) => None,
            Some(Value::String(address)) => Some(address.clone()),
            Some(_) => {
                return Err(bad_request(format!(
                    "'{at}.publicIpAddress' must be a string."
                )));
            }
        };
        virtual_machines.push(PolicyVirtualMachine {
            id: id.to_owned(),
            ports: policy_ports,
            public_ip_address,
        });
    }
    Ok((kind, virtual_machines))
}

fn port_number(value: Option<&Value>, at: &str) -> Result<u16, ArmResponse> {
    value
        .and_then(Value::as_u64)
        .and_then(|number| u16::try_from(number).ok())
        .ok_or_else(|| {
            bad_request(format!(
                "'{at}.number' is required and must be an integer between 0 and 65535."
            ))
        })
}

/// `allowedSourceAddressPrefix` xor `allowedSourceAddressPrefixes`; `Ok(None)` when
/// neither is present.
fn source_prefixes(port: &Value, at: &str) -> Result<Option<SourcePrefixes>, ArmResponse> {
    let single = port
        .get("allowedSourceAddressPrefix")
        .filter(|v| !v.is_null());
    let many = port
        .get("allowedSourceAddressPrefixes")
        .filter(|v| !v.is_null());
    let sources = match (single, many) {
        (Some(_), Some(_)) => {
            return Err(bad_request(format!(
                "'{at}': allowedSourceAddressPrefix and allowedSourceAddressPrefixes are \
                 mutually exclusive."
            )));
        }
        (None, None) => return Ok(None),
        (Some(single), None) => match single.as_str() {
            Some(prefix) => SourcePrefixes::Single(prefix.to_owned()),
            None => {
                return Err(bad_request(format!(
                    "'{at}.allowedSourceAddressPrefix' must be a string."
                )));
            }
        },
        (None, Some(many)) => {
            let prefixes: Option<Vec<String>> = many
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or(None);
            match prefixes {
                Some(prefixes) if !prefixes.is_empty() => SourcePrefixes::Many(prefixes),
                _ => {
                    return Err(bad_request(format!(
                        "'{at}.allowedSourceAddressPrefixes' must be a non-empty array of strings."
                    )));
                }
            }
        }
    };
    if let Some(bad) = sources
        .all()
        .iter()
        .find(|prefix| !is_source_prefix(prefix))
    {
        return Err(bad_request(format!(
            "'{at}': source address prefix '{bad}' is not '*', an IPv4 address or an IPv4 CIDR."
        )));
    }
    Ok(Some(sources))
}

fn parse_policy_port(port: &Value, at: &str) -> Result<PolicyPort, ArmResponse> {
    let number = port_number(port.get("number"), at)?;
    let protocol = match port.get("protocol") {
        Some(Value::String(protocol)) if protocol.is_empty() => {
            // Observed: the service answers an empty protocol with a bare 500.
            return Err(internal_error());
        }
        Some(Value::String(protocol)) => {
            match ["TCP", "UDP", "*"]
                .iter()
                .find(|known| known.eq_ignore_ascii_case(protocol))
            {
                Some(known) => (*known).to_owned(),
                None => {
                    return Err(bad_request(format!(
                        "'{at}.protocol' ('{protocol}') must be one of 'TCP', 'UDP', '*'."
                    )));
                }
            }
        }
        _ => {
            return Err(bad_request(format!(
                "'{at}.protocol' is required and must be one of 'TCP', 'UDP', '*'."
            )));
        }
    };
    let Some(allowed_sources) = source_prefixes(port, at)? else {
        return Err(bad_request(format!(
            "'{at}' needs allowedSourceAddressPrefix or allowedSourceAddressPrefixes."
        )));
    };
    let Some(text) = port.get("maxRequestAccessDuration").and_then(Value::as_str) else {
        return Err(bad_request(format!(
            "'{at}.maxRequestAccessDuration' is required (an ISO-8601 duration such as 'PT3H')."
        )));
    };
    let max_duration = match parse_iso_duration(text) {
        Some(duration) if (MIN_MAX_DURATION..=MAX_MAX_DURATION).contains(&duration) => duration,
        Some(_) => {
            return Err(bad_request(format!(
                "'{at}.maxRequestAccessDuration' ('{text}') must be between 5 minutes (PT5M) \
                 and 1 day (PT24H)."
            )));
        }
        None => {
            return Err(bad_request(format!(
                "'{at}.maxRequestAccessDuration' ('{text}') is not an ISO-8601 duration."
            )));
        }
    };
    Ok(PolicyPort {
        number,
        protocol,
        allowed_sources,
        max_request_access_duration: text.to_owned(),
        max_duration,
    })
}

fn initiate(call: &mut Call<'_>, policy_key: &str, policy_id: &str) -> ArmResponse {
    let body = match json_body(call.request) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let input = match parse_initiate(&body) {
        Ok(input) => input,
        Err(response) => return response,
    };
    let client_ip = call
        .request
        .client_ip
        .parse()
        .unwrap_or(call.inner.client_ip);
    let requestor = call.request.caller.name.clone();
    let delay = call.inner.initiating_delay;
    match call
        .inner
        .resources
        .initiate(policy_key, input, &requestor, client_ip, call.now, delay)
    {
        Ok(request) => {
            tracing::info!(policy = policy_id, requestor, "JIT access requested");
            ArmResponse::json(StatusCode::ACCEPTED, render_jit_request(&request))
        }
        Err(JitError::NotSubset) => not_a_subset(policy_id),
        Err(JitError::Invalid(message)) => bad_request(message),
    }
}

/// Reads a `JitNetworkAccessPolicyInitiateRequest`, accepting `duration` instead of
/// `endTimeUtc` and `allowedSourceAddressPrefixes`, as real clients send them.
fn parse_initiate(body: &Value) -> Result<InitiateInput, ArmResponse> {
    let Some(entries) = body.get("virtualMachines").and_then(Value::as_array) else {
        return Err(bad_request(
            "The property 'virtualMachines' is required and must be an array.",
        ));
    };
    let justification = match body.get("justification") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => return Err(bad_request("'justification' must be a string.")),
    };
    let mut virtual_machines = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("virtualMachines[{index}]");
        let Some(id) = entry.get("id").and_then(Value::as_str) else {
            return Err(bad_request(format!("'{at}.id' is required.")));
        };
        let Some(ports) = entry.get("ports").and_then(Value::as_array) else {
            return Err(bad_request(format!(
                "'{at}.ports' is required and must be an array."
            )));
        };
        let mut parsed_ports = Vec::new();
        for (port_index, port) in ports.iter().enumerate() {
            let at = format!("{at}.ports[{port_index}]");
            let number = port_number(port.get("number"), &at)?;
            let end = match (
                port.get("endTimeUtc").filter(|v| !v.is_null()),
                port.get("duration").filter(|v| !v.is_null()),
            ) {
                (Some(end), _) => match end.as_str().and_then(|text| text.parse().ok()) {
                    Some(end) => RequestedEnd::At(end),
                    None => {
                        return Err(bad_request(format!(
                            "'{at}.endTimeUtc' ('{end}') is not a date-time."
                        )));
                    }
                },
                (None, Some(duration)) => match duration.as_str().and_then(parse_iso_duration) {
                    Some(duration) => RequestedEnd::After(duration),
                    None => {
                        return Err(bad_request(format!(
                            "'{at}.duration' ('{duration}') is not an ISO-8601 duration."
                        )));
                    }
                },
                (None, None) => {
                    return Err(bad_request(format!(
                        "'{at}.endTimeUtc' is required (or 'duration')."
                    )));
                }
            };
            parsed_ports.push(InitiatePort {
                number,
                sources: source_prefixes(port, &at)?,
                end,
            });
        }
        virtual_machines.push(InitiateVirtualMachine {
            id: id.to_owned(),
            ports: parsed_ports,
        });
    }
    Ok(InitiateInput {
        virtual_machines,
        justification,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn port(edit: impl FnOnce(&mut Value)) -> Result<PolicyPort, ArmResponse> {
        let mut port = json!({
            "number": 22,
            "protocol": "*",
            "allowedSourceAddressPrefix": "*",
            "maxRequestAccessDuration": "PT3H"
        });
        edit(&mut port);
        parse_policy_port(&port, "port")
    }

    fn message(result: Result<PolicyPort, ArmResponse>) -> (u16, String) {
        match result {
            Ok(_) => (200, String::new()),
            Err(response) => (
                response.status.as_u16(),
                response
                    .body
                    .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
        }
    }

    #[test]
    fn a_valid_port_parses() {
        let parsed = port(|_| {});
        assert!(
            parsed.is_ok_and(|port| port.number == 22
                && port.max_duration == jiff::SignedDuration::from_hours(3))
        );
    }

    #[test]
    fn an_empty_protocol_is_a_bare_500_as_observed() {
        let (status, text) = message(port(|port| port["protocol"] = json!("")));
        assert_eq!(status, 500);
        assert_eq!(text, "Internal server error has occurred.");
    }

    #[test]
    fn durations_outside_five_minutes_to_a_day_are_refused() {
        for bad in ["PT4M", "PT25H", "P2D", "3 hours"] {
            let (status, text) = message(port(|port| {
                port["maxRequestAccessDuration"] = json!(bad);
            }));
            assert_eq!(status, 400, "{bad}");
            assert!(text.contains(bad), "{text}");
        }
        for good in ["PT5M", "P1D", "PT24H", "PT0.5H"] {
            assert_eq!(
                message(port(|port| port["maxRequestAccessDuration"] = json!(good))).0,
                200,
                "{good}"
            );
        }
    }

    #[test]
    fn prefix_and_prefixes_together_are_refused() {
        let (status, text) = message(port(|port| {
            port["allowedSourceAddressPrefixes"] = json!(["10.0.0.0/8"]);
        }));
        assert_eq!(status, 400);
        assert!(text.contains("mutually exclusive"), "{text}");
    }

    #[test]
    fn neither_prefix_nor_prefixes_is_refused() {
        let (status, _) = message(port(|port| {
            port.as_object_mut()
                .map(|port| port.remove("allowedSourceAddressPrefix"));
        }));
        assert_eq!(status, 400);
    }

    #[test]
    fn bad_prefixes_and_numbers_are_refused() {
        assert_eq!(
            message(port(
                |port| port["allowedSourceAddressPrefix"] = json!("not-an-ip")
            ))
            .0,
            400
        );
        assert_eq!(message(port(|port| port["number"] = json!(70000))).0, 400);
        assert_eq!(message(port(|port| port["number"] = json!("22"))).0, 400);
        assert_eq!(
            message(port(|port| port["protocol"] = json!("ICMP"))).0,
            400
        );
    }

    #[test]
    fn initiate_accepts_duration_or_end_time() {
        let body = json!({
            "virtualMachines": [{
                "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v",
                "ports": [
                    { "number": 22, "duration": "PT1H" },
                    { "number": 23, "endTimeUtc": "2030-01-01T00:00:00Z", "allowedSourceAddressPrefix": "1.2.3.4" }
                ]
            }]
        });
        let parsed = parse_initiate(&body);
        let Ok(parsed) = parsed else {
            panic!("did not parse");
        };
        let ports = &parsed.virtual_machines[0].ports;
        assert!(
            matches!(ports[0].end, RequestedEnd::After(d) if d == jiff::SignedDuration::from_hours(1))
        );
        assert!(matches!(ports[1].end, RequestedEnd::At(_)));
        assert_eq!(
            ports[1].sources,
            Some(SourcePrefixes::Single("1.2.3.4".to_owned()))
        );
        let missing_end =
            json!({ "virtualMachines": [{ "id": "x", "ports": [{ "number": 22 }] }] });
        assert!(parse_initiate(&missing_end).is_err());
    }
}
