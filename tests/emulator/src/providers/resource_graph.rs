//! Azure Resource Graph: `POST /providers/Microsoft.ResourceGraph/resources`.
//!
//! The `Resources` table holds the emulated VMs (with `properties` as Compute returns
//! them plus `properties.extended.instanceView.powerState`, as ARG adds), classic VMs,
//! NICs, virtual networks, NSGs, public IPs and Azure Firewalls, with `type` lower-cased
//! as ARG returns it. Queries run through the KQL subset of [`super::kql`]; results page
//! with `$top`/`$skip`/`$skipToken` and the emulator's page size.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::kql::{self, QueryError};
use super::{Call, SkipToken, json_body};
use crate::arm_http::{ArmResponse, CloudError, CloudErrorBody};
use crate::state::model::Resources;

/// The columns of the `Resources` table.
const COLUMNS: &[&str] = &[
    "id",
    "name",
    "type",
    "tenantId",
    "kind",
    "location",
    "resourceGroup",
    "subscriptionId",
    "managedBy",
    "sku",
    "plan",
    "properties",
    "tags",
    "identity",
    "zones",
    "extendedLocation",
];

/// ARG's largest page.
const MAX_TOP: u64 = 1000;

fn error_body(
    status: StatusCode,
    detail: &CloudErrorBody,
    correlation: &str,
    now: &str,
) -> ArmResponse {
    let error = CloudError {
        error: CloudErrorBody {
            code: "BadRequest".to_owned(),
            message: format!(
                "Please provide below info when asking for support: timestamp = {now}, \
                 correlationId = {correlation}."
            ),
            target: None,
            details: vec![
                CloudErrorBody {
                    code: "InvalidQuery".to_owned(),
                    message: "Query is invalid. Please refer to the documentation for the Azure \
                              Resource Graph service and fix the error before retrying."
                        .to_owned(),
                    target: None,
                    details: Vec::new(),
                },
                detail.clone(),
            ],
        },
    };
    ArmResponse::json(status, error)
}

fn query_error(call: &Call<'_>, error: &QueryError) -> ArmResponse {
    let detail = CloudErrorBody {
        code: error.code.to_owned(),
        message: error.message.clone(),
        target: None,
        details: Vec::new(),
    };
    error_body(
        StatusCode::BAD_REQUEST,
        &detail,
        &uuid::Uuid::new_v4().to_string(),
        &crate::state::render::timestamp(call.now),
    )
}

fn invalid(call: &Call<'_>, code: &'static str, message: impl Into<String>) -> ArmResponse {
    query_error(
        call,
        &QueryError {
            code,
            message: message.into(),
        },
    )
}

/// A row of the `Resources` table.
fn row(
    resources: &Resources,
    rendered: &Value,
    subscription_id: &str,
    resource_group: &str,
) -> Map<String, Value> {
    let kind = rendered["type"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    json!({
        "id": rendered["id"],
        "name": rendered["name"],
        "type": kind,
        "tenantId": resources.tenant_id,
        "kind": "",
        "location": rendered["location"],
        "resourceGroup": resource_group.to_ascii_lowercase(),
        "subscriptionId": subscription_id,
        "managedBy": "",
        "sku": null,
        "plan": null,
        "properties": rendered["properties"],
        "tags": {},
        "identity": null,
        "zones": null,
        "extendedLocation": null
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

/// Every resource ARG knows, in id order, for the given subscriptions.
fn table(call: &Call<'_>, subscriptions: &[String]) -> Vec<Map<String, Value>> {
    let resources = call.resources();
    let visible = |subscription: &str| {
        subscriptions
            .iter()
            .any(|wanted| wanted.eq_ignore_ascii_case(subscription))
    };
    let mut rows: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut add = |placement: &crate::state::model::Placement, rendered: Value| {
        if visible(&placement.subscription_id) {
            rows.push((
                placement.id.to_ascii_lowercase(),
                row(
                    resources,
                    &rendered,
                    &placement.subscription_id,
                    &placement.resource_group,
                ),
            ));
        }
    };
    for vm in resources.virtual_machines.values() {
        let mut rendered = resources.render_virtual_machine(
            vm,
            call.inner.client_public_key.as_deref(),
            false,
            call.now,
        );
        let view = resources.render_instance_view(vm, call.now);
        rendered["properties"]["extended"] = json!({
            "instanceView": {
                "computerName": view["computerName"],
                "osName": view["osName"],
                "osVersion": view["osVersion"],
                "hyperVGeneration": view["hyperVGeneration"],
                "powerState": {
                    "code": vm.power.code(),
                    "level": "Info",
                    "displayStatus": vm.power.display()
                }
            }
        });
        add(&vm.placement, rendered);
    }
    for vm in resources.classic_virtual_machines.values() {
        add(&vm.placement, resources.render_classic_virtual_machine(vm));
    }
    for nic in resources.network_interfaces.values() {
        add(&nic.placement, resources.render_network_interface(nic));
    }
    for network in resources.virtual_networks.values() {
        add(
            &network.placement,
            resources.render_virtual_network(network),
        );
    }
    for nsg in resources.network_security_groups.values() {
        add(&nsg.placement, resources.render_network_security_group(nsg));
    }
    for ip in resources.public_ip_addresses.values() {
        add(&ip.placement, resources.render_public_ip_address(ip));
    }
    for firewall in resources.azure_firewalls.values() {
        add(
            &firewall.placement,
            resources.render_azure_firewall(firewall),
        );
    }
    rows.sort_by(|left, right| left.0.cmp(&right.0));
    rows.into_iter().map(|(_, row)| row).collect()
}

/// `POST /providers/Microsoft.ResourceGraph/resources`.
pub(super) fn query(call: &Call<'_>) -> ArmResponse {
    let body = match json_body(call.request) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(text) = body.get("query").and_then(Value::as_str) else {
        return invalid(
            call,
            "MissingQuery",
            "The request must have a 'query' string.",
        );
    };
    let resources = call.resources();
    let tenant_subscriptions: Vec<String> = if call
        .request
        .caller
        .tenant_id
        .eq_ignore_ascii_case(&resources.tenant_id)
    {
        resources
            .subscriptions
            .iter()
            .map(|subscription| subscription.id.clone())
            .collect()
    } else {
        Vec::new()
    };
    let subscriptions: Vec<String> = match body.get("subscriptions") {
        None | Some(Value::Null) => tenant_subscriptions,
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|wanted| {
                tenant_subscriptions
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(wanted))
            })
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            return invalid(
                call,
                "InvalidSubscriptions",
                "'subscriptions' must be an array of ids.",
            );
        }
    };
    let options = body.get("options").cloned().unwrap_or(Value::Null);
    let top = match options.get("$top") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(top) if (1..=MAX_TOP).contains(&top) => usize::try_from(top).ok(),
            _ => {
                return invalid(
                    call,
                    "InvalidTop",
                    format!("'$top' must be an integer between 1 and {MAX_TOP}."),
                );
            }
        },
    };
    let token = match options.get("$skipToken").and_then(Value::as_str) {
        None => None,
        Some(token) => match SkipToken::decode(token) {
            Some(token) => Some(token),
            None => return invalid(call, "InvalidSkipToken", "The '$skipToken' is invalid."),
        },
    };
    let skip = match options.get("$skip") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64().and_then(|skip| usize::try_from(skip).ok()) {
            Some(skip) => Some(skip),
            None => {
                return invalid(
                    call,
                    "InvalidSkip",
                    "'$skip' must be a non-negative integer.",
                );
            }
        },
    };
    let table_format = match options.get("resultFormat").and_then(Value::as_str) {
        None | Some("objectArray") => false,
        Some("table") => true,
        Some(other) => {
            return invalid(
                call,
                "InvalidResultFormat",
                format!("'resultFormat' '{other}' is not 'table' or 'objectArray'."),
            );
        }
    };
    let parsed = match kql::parse(text) {
        Ok(parsed) => parsed,
        Err(error) => return query_error(call, &error),
    };
    let (columns, rows) = match parsed.run(COLUMNS, table(call, &subscriptions)) {
        Ok(result) => result,
        Err(error) => return query_error(call, &error),
    };
    let total = rows.len();
    // `$skip` and `$top` override what the token says, as the spec describes.
    let offset = skip
        .or(token.map(|token| token.offset))
        .unwrap_or(0)
        .min(total);
    let page_size = top
        .or(token.map(|token| token.page_size))
        .unwrap_or(MAX_TOP as usize)
        .min(call.inner.page_size.unwrap_or(usize::MAX));
    let end = offset.saturating_add(page_size).min(total);
    let page: Vec<Map<String, Value>> =
        rows.get(offset..end).map(<[_]>::to_vec).unwrap_or_default();
    let data = if table_format {
        as_table(&columns, &page)
    } else {
        Value::Array(page.iter().cloned().map(Value::Object).collect())
    };
    let mut response = json!({
        "totalRecords": total,
        "count": page.len(),
        "resultTruncated": "false",
        "facets": [],
        "data": data
    });
    if end < total {
        let next = SkipToken {
            offset: end,
            page_size,
        };
        response["$skipToken"] = json!(next.encode());
    }
    ArmResponse::ok(response)
}

/// The `table` result format: `{"columns":[{"name","type"}],"rows":[[…]]}`.
fn as_table(names: &[String], rows: &[Map<String, Value>]) -> Value {
    let columns: Vec<Value> = names
        .iter()
        .map(|name| {
            let kind = rows
                .iter()
                .filter_map(|row| row.get(name))
                .find(|value| !value.is_null())
                .map_or("string", |value| match value {
                    Value::Bool(_) => "boolean",
                    Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
                    Value::Number(_) => "real",
                    Value::String(_) => "string",
                    _ => "object",
                });
            json!({ "name": name, "type": kind })
        })
        .collect();
    let values: Vec<Value> = rows
        .iter()
        .map(|row| {
            Value::Array(
                names
                    .iter()
                    .map(|name| row.get(name).cloned().unwrap_or(Value::Null))
                    .collect(),
            )
        })
        .collect();
    json!({ "columns": columns, "rows": values })
}
