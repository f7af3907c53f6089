//! Resource Graph `Resources` queries, all pages collected.
//!
//! Resource Graph pages with `$skipToken`: the same query and scopes are sent again with
//! the token until no token comes back. The query POST reads only, so it is retried like
//! a GET.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::kql::ResourcesQuery;
use crate::azure::arm::{ArmClient, ArmError, Idempotency};
use crate::azure::models::{
    QueryRequest, QueryRequestOptions, QueryResponse, RESOURCE_GRAPH_API_VERSION, ResultFormat,
};

/// Options of [`ResourceGraphClient::resources`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcesOptions {
    /// Rows per page (`$top`, 1–1000); Resource Graph's default when `None`.
    pub page_size: Option<u32>,
}

/// Azure Resource Graph.
#[derive(Clone, Debug)]
pub struct ResourceGraphClient {
    arm: ArmClient,
}

impl ResourceGraphClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// Runs `query` over `subscriptions` (empty: every subscription the caller can see)
    /// and returns every row of every page.
    pub async fn resources(
        &self,
        query: &ResourcesQuery,
        subscriptions: &[String],
        options: Option<ResourcesOptions>,
    ) -> Result<Vec<Value>, ArmError> {
        self.resources_as(query, subscriptions, options).await
    }

    /// Like [`ResourceGraphClient::resources`], each row deserialised into `T`.
    ///
    /// Each page is read straight into rows of `T`: what `T` does not name is skipped
    /// while reading, never held. A listing of thousands of VMs with their NICs keeps
    /// only the few fields it uses.
    pub async fn resources_as<T: DeserializeOwned>(
        &self,
        query: &ResourcesQuery,
        subscriptions: &[String],
        options: Option<ResourcesOptions>,
    ) -> Result<Vec<T>, ArmError> {
        let kql = query.to_kql().map_err(|error| ArmError::InvalidRequest {
            detail: error.to_string(),
        })?;
        let page_size = options
            .and_then(|options| options.page_size)
            .map(|size| size.clamp(1, 1000));
        let mut request = QueryRequest {
            subscriptions: subscriptions.to_vec(),
            management_groups: Vec::new(),
            query: kql,
            options: Some(QueryRequestOptions {
                top: page_size,
                result_format: Some(ResultFormat::ObjectArray),
                ..Default::default()
            }),
        };
        let mut rows = Vec::new();
        let mut seen_tokens = HashSet::new();
        loop {
            // `data` is `null` on an empty result; anything but an array of rows fails
            // to decode.
            let response: QueryResponse<Option<Vec<T>>> = self
                .arm
                .post_json(
                    "/providers/Microsoft.ResourceGraph/resources",
                    RESOURCE_GRAPH_API_VERSION,
                    &request,
                    Idempotency::Idempotent,
                )
                .await?;
            if response.is_truncated() {
                tracing::warn!(
                    total = response.total_records,
                    "Resource Graph truncated the result"
                );
            }
            rows.extend(response.data.into_iter().flatten());
            let Some(token) = response.skip_token.filter(|token| !token.is_empty()) else {
                return Ok(rows);
            };
            if !seen_tokens.insert(token.clone()) {
                return Err(ArmError::InvalidResponse {
                    detail: "Resource Graph repeated a $skipToken".to_owned(),
                });
            }
            if let Some(options) = request.options.as_mut() {
                options.skip_token = Some(token);
            }
        }
    }
}
