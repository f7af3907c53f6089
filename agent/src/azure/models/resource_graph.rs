//! Azure Resource Graph queries (api-version 2024-04-01).
//!
//! Resource Graph answers "which VMs exist across all my subscriptions" in one call,
//! where ARM would need a list per subscription. The response rows are whatever the
//! query projects, so they stay JSON values here; the client deserialises them into the
//! caller's type.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The api-version of Resource Graph queries.
pub const RESOURCE_GRAPH_API_VERSION: &str = "2024-04-01";

/// The body of `POST /providers/Microsoft.ResourceGraph/resources` (`QueryRequest`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    /// Subscriptions to query; empty means every subscription the caller can see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<String>,
    /// Management groups to query.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub management_groups: Vec<String>,
    /// The KQL query.
    pub query: String,
    /// Paging and format options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<QueryRequestOptions>,
}

string_enum! {
    /// `ResultFormat`.
    ResultFormat {
        /// Columns and rows.
        Table => "table",
        /// One JSON object per row (the default).
        ObjectArray => "objectArray",
    }
}

/// `QueryRequestOptions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryRequestOptions {
    /// Continuation token from the previous page.
    #[serde(
        rename = "$skipToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub skip_token: Option<String>,
    /// Page size (1–1000).
    #[serde(rename = "$top", default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
    /// Rows to skip.
    #[serde(rename = "$skip", default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<u32>,
    /// Result format.
    #[serde(
        rename = "resultFormat",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub result_format: Option<ResultFormat>,
    /// For tenant-wide queries over more subscriptions than allowed: return partial results.
    #[serde(
        rename = "allowPartialScopes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_partial_scopes: Option<bool>,
}

/// The query result (`QueryResponse`).
///
/// `Data` is what `data` is read as: any JSON by default; a client that knows its rows
/// reads them straight into its own type (`Option<Vec<Row>>` for `objectArray`), so a
/// page never exists twice in memory, once as JSON values and once as rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse<Data = Value> {
    /// Rows matching the query in total.
    #[serde(default)]
    pub total_records: i64,
    /// Rows in this page.
    #[serde(default)]
    pub count: i64,
    /// `"true"` when the result was cut short without a continuation token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_truncated: Option<String>,
    /// Continuation token for the next page.
    #[serde(
        rename = "$skipToken",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub skip_token: Option<String>,
    /// The rows (an array of objects with `objectArray`).
    #[serde(default)]
    pub data: Data,
    /// Facets (unused by `jit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facets: Vec<Value>,
}

impl<Data> QueryResponse<Data> {
    /// `true` when Resource Graph truncated the result.
    pub fn is_truncated(&self) -> bool {
        self.result_truncated
            .as_deref()
            .is_some_and(|value| value.eq_ignore_ascii_case("true"))
    }
}
