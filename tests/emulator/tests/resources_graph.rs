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

/// The one query a client makes to find a VM with what it is attached to, as the portal
/// does (the shape `bench/emulator.py` measures too).
fn portal_query(name: &str) -> String {
    format!(
        "resources
         | where type =~ 'microsoft.compute/virtualmachines' and name =~ '{name}'
         | extend powerState = tostring(properties.extended.instanceView.powerState.code)
         | mv-expand nic = properties.networkProfile.networkInterfaces
         | extend nicId = tolower(tostring(nic.id))
         | join kind=leftouter (
             resources
             | where type =~ 'microsoft.network/networkinterfaces'
             | mv-expand ipConfiguration = properties.ipConfigurations
             | project nicId = tolower(id), privateIp = tostring(ipConfiguration.properties.privateIPAddress),
                       publicIpId = tolower(tostring(ipConfiguration.properties.publicIPAddress.id)),
                       subnetId = tolower(tostring(ipConfiguration.properties.subnet.id)),
                       nicNsgId = tolower(tostring(properties.networkSecurityGroup.id))
           ) on nicId
         | join kind=leftouter (resources | where type =~ 'microsoft.network/publicipaddresses'
             | project publicIpId = tolower(id), publicIp = tostring(properties.ipAddress)) on publicIpId
         | project id, name, resourceGroup, subscriptionId, location, powerState, nicId, privateIp, publicIp, subnetId, nicNsgId
         | order by subscriptionId asc"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_portal_style_query_finds_a_vm_with_power_state_nics_addresses_subnet_and_nsg() {
    let arm = Arm::start().await;
    let found = rows(&arm, &portal_query("WEB-01")).await;
    let nic = |subscription: &str, group: &str, name: &str| {
        format!(
            "/subscriptions/{subscription}/resourcegroups/{group}/providers/microsoft.network/networkinterfaces/{name}"
        )
    };
    let subnet = |subscription: &str, group: &str, network: &str| {
        format!(
            "/subscriptions/{subscription}/resourcegroups/{group}/providers/microsoft.network/virtualnetworks/{network}/subnets/default"
        )
    };
    let nsg = |subscription: &str, group: &str, name: &str| {
        format!(
            "/subscriptions/{subscription}/resourcegroups/{group}/providers/microsoft.network/networksecuritygroups/{name}"
        )
    };
    assert_eq!(
        found,
        [
            json!({
                "id": vm_id(PRODUCTION, "rg-web", "web-01"), "name": "web-01", "resourceGroup": "rg-web",
                "subscriptionId": PRODUCTION, "location": "westeurope", "powerState": "PowerState/running",
                "nicId": nic(PRODUCTION, "rg-web", "web-01-nic"), "privateIp": "10.1.0.5", "publicIp": "127.0.0.1",
                "subnetId": subnet(PRODUCTION, "rg-web", "vnet-web"), "nicNsgId": nsg(PRODUCTION, "rg-web", "web-01-nsg")
            }),
            json!({
                "id": vm_id(DEVELOPMENT, "rg-app", "web-01"), "name": "web-01", "resourceGroup": "rg-app",
                "subscriptionId": DEVELOPMENT, "location": "westeurope", "powerState": "PowerState/running",
                "nicId": nic(DEVELOPMENT, "rg-app", "web-01-nic"), "privateIp": "10.10.0.4", "publicIp": "127.0.0.1",
                "subnetId": subnet(DEVELOPMENT, "rg-app", "vnet-app"), "nicNsgId": nsg(DEVELOPMENT, "rg-app", "web-01-nsg")
            }),
        ]
    );
    // Behind a firewall: no public IP and no NSG on the NIC, so those columns are empty.
    let firewalled = rows(&arm, &portal_query("fw-01")).await;
    assert_eq!(firewalled.len(), 1, "{firewalled:?}");
    assert_eq!(firewalled[0]["privateIp"], "10.3.1.4");
    assert_eq!(firewalled[0]["publicIp"], "");
    assert_eq!(firewalled[0]["nicNsgId"], "");
    // Deallocated, with a Dynamic public IP that has no address while stopped.
    let stopped = rows(&arm, &portal_query("batch-01")).await;
    assert_eq!(stopped[0]["powerState"], "PowerState/deallocated");
    assert_eq!(stopped[0]["publicIp"], "");
    assert!(
        stopped[0]["publicIpId"].is_null(),
        "only the projected columns: {}",
        stopped[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_graph_sees_every_change_of_the_state() {
    let arm = Arm::start().await;
    let batch = vm_id(PRODUCTION, "rg-web", "batch-01");
    assert_eq!(
        rows(&arm, &portal_query("batch-01")).await[0]["powerState"],
        "PowerState/deallocated"
    );
    assert!(arm.emulator.set_power_state(&batch, true));
    let started = rows(&arm, &portal_query("batch-01")).await;
    assert_eq!(started[0]["powerState"], "PowerState/running");
    assert_eq!(
        started[0]["publicIp"], "127.0.0.1",
        "the Dynamic IP got its address"
    );

    // A rule a deployment adds shows in the NSG's row at once.
    let nsg = nsg_id(PRODUCTION, "rg-web", "cache-01-nsg");
    let rule = json!({ "properties": {
        "protocol": "Tcp", "access": "Allow", "direction": "Inbound", "priority": 200,
        "sourcePortRange": "*", "destinationPortRange": "443",
        "sourceAddressPrefix": "*", "destinationAddressPrefix": "*"
    }});
    let written = arm
        .put(
            &format!("{nsg}/securityRules/AllowHttps?api-version={NETWORK}"),
            &rule,
        )
        .await;
    assert_eq!(written.status, 201, "{}", written.body);
    let rules = rows(
        &arm,
        "Resources | where type =~ 'microsoft.network/networksecuritygroups' and name == 'cache-01-nsg' \
         | mv-expand rule = properties.securityRules | project rule = tostring(rule.name)",
    )
    .await;
    assert_eq!(rules, [json!({ "rule": "AllowHttps" })]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_and_expansions_outside_the_subset_are_refused_not_approximated() {
    let arm = Arm::start().await;
    for (text, detail) in [
        (
            "Resources | join kind=leftanti (Resources) on id",
            "UnsupportedQuery",
        ),
        (
            "Resources | mv-expand x = properties.ipConfigurations to typeof(string)",
            "UnsupportedQuery",
        ),
        (
            "Resources | join kind=leftouter (Resources | project nicId = tolower(id)) on nothing",
            "FailedToResolveColumn",
        ),
        ("Resources | extend x = strlen(name)", "UnsupportedQuery"),
    ] {
        let reply = query(&arm, json!({ "query": text })).await;
        assert_eq!(reply.status, 400, "{text}: {}", reply.body);
        assert_eq!(
            reply.body["error"]["details"][1]["code"], detail,
            "{text}: {}",
            reply.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_stats_report_route_timings_and_memory() {
    let arm = Arm::start().await;
    for _ in 0..3 {
        rows(&arm, &portal_query("api-01")).await;
    }
    arm.get_ok(&format!(
        "{}?api-version={COMPUTE}",
        vm_id(PRODUCTION, "rg-web", "api-01")
    ))
    .await;
    let stats = arm.admin(reqwest::Method::GET, "stats", None).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let routes = stats.body["routes"].as_array().cloned().unwrap_or_default();
    let route = |template: &str| {
        routes
            .iter()
            .find(|route| route["route"] == template)
            .cloned()
            .unwrap_or_else(|| panic!("no {template} in {routes:?}"))
    };
    let graph = route("POST /providers/Microsoft.ResourceGraph/resources");
    assert_eq!(graph["count"], 3);
    assert!(
        graph["p50_ms"].as_f64().is_some_and(|p50| p50 > 0.0),
        "{graph}"
    );
    assert!(
        graph["max_ms"].as_f64() >= graph["p50_ms"].as_f64(),
        "{graph}"
    );
    let vm = route(
        "GET /subscriptions/{subscription}/resourceGroups/{resourceGroup}/providers/Microsoft.Compute/virtualMachines/{name}",
    );
    assert_eq!(vm["count"], 1);
    assert!(
        stats.body["memory"]["resident_kib"]
            .as_u64()
            .is_some_and(|kib| kib > 1024),
        "{}",
        stats.body
    );
    assert_eq!(
        arm.admin(reqwest::Method::DELETE, "stats", None)
            .await
            .status,
        204
    );
    assert!(arm.emulator.stats().routes.is_empty());
}
