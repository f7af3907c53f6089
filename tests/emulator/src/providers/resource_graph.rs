//! Azure Resource Graph: `POST /providers/Microsoft.ResourceGraph/resources`.
//!
//! The `Resources` table holds the emulated VMs (with `properties` as Compute returns
//! them plus `properties.extended.instanceView.powerState`, as ARG adds), classic VMs,
//! NICs, virtual networks, NSGs, public IPs and Azure Firewalls, with `type` lower-cased
//! as ARG returns it ([`crate::state::graph`] builds it once per change of the state and
//! indexes it). Queries run through the KQL subset of [`super::kql`] over the rows of the
//! caller's subscriptions; results page with `$top`/`$skip`/`$skipToken` and the
//! emulator's page size.

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::kql::{self, ColumnDef, ColumnType, Needed, QueryError, Row, Schema, Source};
use super::{Call, SkipToken, json_body};
use crate::arm_http::{ArmResponse, CloudError, CloudErrorBody};
use crate::state::graph::{COLUMNS, GraphTable};
use crate::state::materialise::{Bindings, materialise};
use crate::state::model::Resources;
use crate::world::World;

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

/// The `Resources` table as one query sees it: the cached table, restricted to the
/// subscriptions in scope, its rows made (and their `properties` rendered) as the query
/// takes them.
struct Scoped<'a> {
    table: &'a GraphTable,
    resources: &'a Resources,
    schema: &'a Schema,
    /// Per row, whether it is in scope; `None`: every row is.
    visible: Option<Vec<bool>>,
}

impl Scoped<'_> {
    fn is_visible(&self, index: usize) -> bool {
        self.visible
            .as_ref()
            .is_none_or(|visible| visible.get(index).copied().unwrap_or(false))
    }

    /// Positions of the rows in scope whose `column` is one of `values`, in order.
    fn positions(&self, column: &str, values: &[String]) -> Option<Vec<usize>> {
        let index = self.table.indexes.get(column)?;
        let mut positions: Vec<usize> = values
            .iter()
            .filter_map(|value| index.get(&value.to_lowercase()))
            .flatten()
            .copied()
            .filter(|position| self.is_visible(*position))
            .collect();
        positions.sort_unstable();
        positions.dedup();
        Some(positions)
    }
}

impl Source for Scoped<'_> {
    fn schema(&self) -> &Schema {
        self.schema
    }

    fn rows(&self, needed: &Needed) -> Vec<Row> {
        let properties = wants_properties(needed);
        (0..self.table.len())
            .filter(|index| self.is_visible(*index))
            .filter_map(|index| self.table.row(index, self.resources, properties))
            .collect()
    }

    fn candidates(&self, column: &str, values: &[String], needed: &Needed) -> Option<Vec<Row>> {
        let properties = wants_properties(needed);
        Some(
            self.positions(column, values)?
                .into_iter()
                .filter_map(|position| self.table.row(position, self.resources, properties))
                .collect(),
        )
    }

    fn count_candidates(&self, column: &str, values: &[String]) -> Option<usize> {
        self.positions(column, values)
            .map(|positions| positions.len())
    }
}

/// Whether a pipeline reads `properties` (the one column rendered on demand).
fn wants_properties(needed: &Needed) -> bool {
    needed
        .as_ref()
        .is_none_or(|columns| columns.contains("properties"))
}

/// The schema of the `Resources` table.
fn schema() -> Schema {
    COLUMNS
        .iter()
        .map(|(name, text)| ColumnDef {
            name: (*name).to_owned(),
            kind: if *text {
                ColumnType::String
            } else {
                ColumnType::Dynamic
            },
        })
        .collect()
}

/// `POST /providers/Microsoft.ResourceGraph/resources`.
pub(super) fn query(call: &mut Call<'_>) -> ArmResponse {
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
    let generation = call.inner.resources.generation();
    if call
        .inner
        .graph
        .as_ref()
        .is_none_or(|table| table.generation != generation)
    {
        let table = GraphTable::build(
            &call.inner.resources,
            call.inner.client_public_key.as_deref(),
            &call.inner.graph_unindexed,
            generation,
        );
        call.inner.graph = Some(table);
    }
    let Some(table) = call.inner.graph.as_ref() else {
        return ArmResponse::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "The Resource Graph table could not be built.",
        );
    };
    let wanted: std::collections::HashSet<String> = subscriptions
        .iter()
        .map(|subscription| subscription.to_ascii_lowercase())
        .collect();
    let every = table
        .subscriptions
        .iter()
        .all(|subscription| wanted.contains(subscription));
    let schema = schema();
    let source = Scoped {
        table,
        resources: &call.inner.resources,
        schema: &schema,
        visible: (!every).then(|| {
            table
                .subscriptions
                .iter()
                .map(|subscription| wanted.contains(subscription))
                .collect()
        }),
    };
    let result = match parsed.run(&source) {
        Ok(result) => result,
        Err(error) => return query_error(call, &error),
    };
    let columns = result.column_names();
    let rows = &result.rows;
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
    let page: Vec<Map<String, Value>> = rows
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(|row| result.row_object(row))
        .collect();
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

/// Runs `query` on `world` as `POST /providers/Microsoft.ResourceGraph/resources` would
/// for a caller who sees every subscription, without a server: for a client's unit test
/// of the exact KQL it sends. The rows as the `objectArray` format has them, or
/// `"code: message"` as the route would refuse the query.
pub fn query_world(world: &World, query: &str) -> Result<Vec<Map<String, Value>>, String> {
    let refused = |error: QueryError| format!("{}: {}", error.code, error.message);
    let resources = materialise(world, &Bindings::default(), jiff::Timestamp::now())
        .map_err(|error| format!("the world does not materialise: {error}"))?;
    let table = GraphTable::build(&resources, None, &std::collections::HashSet::new(), 1);
    let schema = schema();
    let source = Scoped {
        table: &table,
        resources: &resources,
        schema: &schema,
        visible: None,
    };
    let result = kql::parse(query)
        .and_then(|parsed| parsed.run(&source))
        .map_err(refused)?;
    Ok(result
        .rows
        .iter()
        .map(|row| result.row_object(row))
        .collect())
}
