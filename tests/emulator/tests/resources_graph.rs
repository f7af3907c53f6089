//! Resource Graph over real HTTPS: finding VMs by name across subscriptions, projections,
//! paging with `$top`/`$skipToken` and the admin page size, and errors for queries
//! outside the supported KQL subset.

mod resources_support;

use std::collections::BTreeSet;

use resources_support::*;
use serde_json::{Value, json};

const GRAPH: &str = "/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01";

async fn query(arm: &Arm, body: Value) -> Reply {
    arm.post(GRAPH, &body).await
}

async fn rows(arm: &Arm, text: &str) -> Vec<Value> {
    let reply = query(arm, json!({ "query": text })).await;
    assert_eq!(reply.status, 200, "{text}: {}", reply.body);
    reply.body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_name_is_found_in_every_subscription_with_the_columns_asked_for() {
    let arm = Arm::start().await;
    let found = rows(
        &arm,
        "Resources | where type =~ 'Microsoft.Compute/virtualMachines' and name =~ 'WEB-01' \
         | project id, name, resourceGroup, subscriptionId, location, properties.storageProfile.osDisk.osType",
    )
    .await;
    let mut places: Vec<(String, String)> = found
        .iter()
        .map(|row| {
            (
                row["subscriptionId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                row["resourceGroup"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    places.sort();
    let mut expected = vec![
        (PRODUCTION.to_owned(), "rg-web".to_owned()),
        (DEVELOPMENT.to_owned(), "rg-app".to_owned()),
    ];
    expected.sort();
    assert_eq!(places, expected);
    for row in &found {
        assert_eq!(
            row["properties_storageProfile_osDisk_osType"], "Linux",
            "{row}"
        );
        let keys: Vec<&String> = row
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 6, "only the projected columns: {row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriptions_of_the_request_scope_the_query() {
    let arm = Arm::start().await;
    let reply = query(
        &arm,
        json!({
            "subscriptions": [DEVELOPMENT],
            "query": "Resources | where type =~ 'microsoft.compute/virtualmachines' | project name"
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let names: BTreeSet<&str> = reply.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["web-01", "ops-01"]));
    assert_eq!(reply.body["totalRecords"], 2);
    assert_eq!(reply.body["resultTruncated"], "false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_carry_the_lower_cased_type_and_the_power_state_as_arg_adds_it() {
    let arm = Arm::start().await;
    let found = rows(
        &arm,
        "Resources | where name in~ ('batch-01', 'api-01') and type =~ 'microsoft.compute/virtualmachines' \
         | project name, type, state = tostring(properties.extended.instanceView.powerState.code) \
         | order by name asc",
    )
    .await;
    assert_eq!(
        found,
        [
            json!({ "name": "api-01", "type": "microsoft.compute/virtualmachines", "state": "PowerState/running" }),
            json!({ "name": "batch-01", "type": "microsoft.compute/virtualmachines", "state": "PowerState/deallocated" }),
        ]
    );
    let classic = rows(
        &arm,
        "Resources | where type =~ 'Microsoft.ClassicCompute/virtualMachines' | project name, resourceGroup",
    )
    .await;
    assert_eq!(
        classic,
        [json!({ "name": "classic-01", "resourceGroup": "rg-legacy" })]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_the_skip_token_to_the_same_rows_as_one_query() {
    let arm = Arm::start().await;
    let text = "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id";
    let all: BTreeSet<String> = rows(&arm, text)
        .await
        .iter()
        .filter_map(|row| row["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(all.len(), 10, "{all:?}");

    let mut paged = Vec::new();
    let mut options = json!({ "$top": 3 });
    for page in 0.. {
        assert!(page < 10, "too many pages");
        let reply = query(&arm, json!({ "query": text, "options": options })).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["totalRecords"], 10);
        let data = reply.body["data"].as_array().cloned().unwrap_or_default();
        assert!(data.len() <= 3, "page of {}", data.len());
        assert_eq!(reply.body["count"], data.len());
        paged.extend(
            data.iter()
                .filter_map(|row| row["id"].as_str().map(str::to_owned)),
        );
        match reply.body["$skipToken"].as_str() {
            // The token keeps the page size; no `$top` on the next request.
            Some(token) => options = json!({ "$skipToken": token }),
            None => break,
        }
    }
    assert_eq!(paged.len(), 10, "no row twice: {paged:?}");
    assert_eq!(paged.into_iter().collect::<BTreeSet<_>>(), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_size_pages_queries_too() {
    let arm = Arm::start().await;
    arm.emulator.set_page_size(Some(4));
    let reply = query(
        &arm,
        json!({ "query": "Resources | where type =~ 'microsoft.compute/virtualmachines'" }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["count"], 4);
    assert!(reply.body["$skipToken"].is_string(), "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_format_returns_columns_and_rows() {
    let arm = Arm::start().await;
    let reply = query(
        &arm,
        json!({
            "query": "Resources | where name == 'ops-01' | project name, location",
            "options": { "resultFormat": "table" }
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["data"],
        json!({
            "columns": [{ "name": "name", "type": "string" }, { "name": "location", "type": "string" }],
            "rows": [["ops-01", "uksouth"]]
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_outside_the_subset_are_refused_with_args_error_shape() {
    let arm = Arm::start().await;
    for (body, detail) in [
        (
            json!({ "query": "Resources | summarize count() by type" }),
            "UnsupportedQuery",
        ),
        (
            json!({ "query": "Resources | where nmae == 'api-01'" }),
            "FailedToResolveColumn",
        ),
        (
            json!({ "query": "Resources | where name == " }),
            "ParserFailure",
        ),
        (
            json!({ "query": "Resources", "options": { "$top": 0 } }),
            "InvalidTop",
        ),
        (
            json!({ "query": "Resources", "options": { "$top": 5000 } }),
            "InvalidTop",
        ),
        (
            json!({ "query": "Resources", "options": { "$skipToken": "bogus" } }),
            "InvalidSkipToken",
        ),
        (json!({ "subscriptions": [PRODUCTION] }), "MissingQuery"),
    ] {
        let reply = query(&arm, body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.error_code(), "BadRequest", "{body}");
        assert_eq!(
            reply.body["error"]["details"][0]["code"], "InvalidQuery",
            "{body}"
        );
        assert_eq!(
            reply.body["error"]["details"][1]["code"], detail,
            "{body}: {}",
            reply.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nics_nsgs_public_ips_networks_and_firewalls_are_in_the_table() {
    let arm = Arm::start().await;
    let found = rows(
        &arm,
        "Resources | where resourceGroup == 'rg-edge' | project type | order by type asc",
    )
    .await;
    let types: Vec<&str> = found
        .iter()
        .filter_map(|row| row["type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "microsoft.compute/virtualmachines",
            "microsoft.network/azurefirewalls",
            "microsoft.network/networkinterfaces",
            "microsoft.network/publicipaddresses",
            "microsoft.network/virtualnetworks",
        ]
    );
    let nsgs = rows(
        &arm,
        "Resources | where type =~ 'microsoft.network/networksecuritygroups' and name == 'sql-subnet-nsg' \
         | project subnets = properties.subnets",
    )
    .await;
    assert_eq!(
        nsgs[0]["subnets"][0]["id"],
        format!(
            "/subscriptions/{PRODUCTION}/resourceGroups/rg-data/providers/Microsoft.Network/virtualNetworks/vnet-data/subnets/sql"
        )
    );
}
