//! The list routes Microsoft's clients call (`network_interfaces.list_all()`, by resource
//! group, public IPs, NSGs, VNets with subnets, VMs per subscription, resource group and
//! location), paged with `nextLink`, and the api-versions of the newest released clients
//! next to older ones, over real HTTPS.

mod resources_support;

use std::collections::BTreeSet;

use resources_support::*;
use serde_json::Value;

/// The names of the items, sorted.
fn names(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|item| item["name"].as_str().map(str::to_owned))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_clients_api_versions_are_accepted_with_the_older_ones() {
    let arm = Arm::start().await;
    let vm = vm_id(PRODUCTION, "rg-web", "api-01");
    // azure-mgmt-compute 39 and the Azure CLI 2.91 (az vm list/show) send 2026-04-01.
    for version in [
        "2026-04-01",
        "2025-11-01",
        "2024-11-01",
        "2024-07-01",
        "2021-07-01",
    ] {
        let reply = arm.get(&format!("{vm}?api-version={version}")).await;
        assert_eq!(reply.status, 200, "Compute {version}: {}", reply.body);
    }
    // azure-mgmt-network 33 sends 2026-03-01; the Azure CLI 2022-01-01 (nsg), 2023-11-01
    // (nic), 2025-07-01 (vnet), 2025-09-01 (public-ip).
    let nic = format!(
        "/subscriptions/{PRODUCTION}/resourceGroups/rg-web/providers/Microsoft.Network/networkInterfaces/api-01-nic"
    );
    for version in [
        "2026-03-01",
        "2025-09-01",
        "2025-07-01",
        "2023-11-01",
        "2022-01-01",
        "2020-11-01",
    ] {
        let reply = arm.get(&format!("{nic}?api-version={version}")).await;
        assert_eq!(reply.status, 200, "Network {version}: {}", reply.body);
    }
    let refused = arm.get(&format!("{vm}?api-version=2099-01-01")).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.error_code(), "InvalidApiVersionParameter");
    assert!(
        refused.error_message().contains("2026-04-01"),
        "{}",
        refused.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_resources_list_per_subscription_and_group_across_pages() {
    let arm = Arm::start().await;
    arm.emulator.set_page_size(Some(2));
    let all = |resource_type: &str| {
        format!(
            "/subscriptions/{PRODUCTION}/providers/Microsoft.Network/{resource_type}?api-version=2026-03-01"
        )
    };
    let in_group = |group: &str, resource_type: &str| {
        format!(
            "/subscriptions/{PRODUCTION}/resourceGroups/{group}/providers/Microsoft.Network/{resource_type}?api-version=2026-03-01"
        )
    };

    let first_page = arm.get_ok(&all("networkInterfaces")).await;
    assert_eq!(first_page["value"].as_array().map(Vec::len), Some(2));
    assert!(first_page["nextLink"].is_string(), "{first_page}");

    let nics = arm.list_all(&all("networkInterfaces")).await;
    assert_eq!(
        names(&nics),
        set(&[
            "api-01-nic",
            "web-01-nic",
            "batch-01-nic",
            "cache-01-nic",
            "sql-01-nic",
            "fw-01-nic",
            "dev-01-nic",
            "legacy-01-nic"
        ])
    );
    assert!(nics.iter().all(|nic| {
        nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"].is_string()
    }));
    let ips = arm.list_all(&all("publicIPAddresses")).await;
    assert_eq!(
        names(&ips),
        set(&[
            "api-01-ip",
            "web-01-ip",
            "batch-01-ip",
            "cache-01-ip",
            "sql-01-ip",
            "afw-edge-ip",
            "dev-01-ip",
            "legacy-01-ip"
        ])
    );
    let nsgs = arm.list_all(&all("networkSecurityGroups")).await;
    assert_eq!(
        names(&nsgs),
        set(&[
            "api-01-nsg",
            "web-01-nsg",
            "batch-01-nsg",
            "cache-01-nsg",
            "sql-subnet-nsg",
            "dev-01-nsg"
        ])
    );
    let networks = arm.list_all(&all("virtualNetworks")).await;
    assert_eq!(
        names(&networks),
        set(&[
            "vnet-web",
            "vnet-data",
            "vnet-edge",
            "vnet-dev",
            "vnet-legacy"
        ])
    );
    let edge = networks
        .iter()
        .find(|network| network["name"] == "vnet-edge")
        .expect("vnet-edge");
    assert_eq!(
        names(
            edge["properties"]["subnets"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
        ),
        set(&["AzureFirewallSubnet", "workload"])
    );
    let firewalls = arm.list_all(&all("azureFirewalls")).await;
    assert_eq!(names(&firewalls), set(&["afw-edge"]));

    // Per resource group: only that group's.
    assert_eq!(
        names(
            &arm.list_all(&in_group("rg-data", "networkInterfaces"))
                .await
        ),
        set(&["sql-01-nic"])
    );
    assert_eq!(
        names(
            &arm.list_all(&in_group("rg-web", "networkSecurityGroups"))
                .await
        ),
        set(&["api-01-nsg", "web-01-nsg", "batch-01-nsg", "cache-01-nsg"])
    );

    // The other subscription has its own; an unknown type is ARM's 404.
    let development = arm
        .list_all(&format!(
            "/subscriptions/{DEVELOPMENT}/providers/Microsoft.Network/networkInterfaces?api-version=2026-03-01"
        ))
        .await;
    assert_eq!(names(&development), set(&["web-01-nic", "ops-01-nic"]));
    let unknown = arm.get(&all("loadBalancers")).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.error_code(), "InvalidResourceType");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_list_per_subscription_group_and_location_with_their_status() {
    let arm = Arm::start().await;
    arm.emulator.set_page_size(Some(3));
    let compute = "2026-04-01";
    let all = arm
        .list_all(&format!(
            "/subscriptions/{PRODUCTION}/providers/Microsoft.Compute/virtualMachines?api-version={compute}&statusOnly=true"
        ))
        .await;
    assert_eq!(
        names(&all),
        set(&[
            "api-01",
            "web-01",
            "batch-01",
            "cache-01",
            "sql-01",
            "fw-01",
            "dev-01",
            "legacy-01"
        ])
    );
    let batch = all
        .iter()
        .find(|vm| vm["name"] == "batch-01")
        .expect("batch-01");
    let codes: Vec<&str> = batch["properties"]["instanceView"]["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|status| status["code"].as_str())
        .collect();
    assert!(codes.contains(&"PowerState/deallocated"), "{codes:?}");

    let by_group = arm
        .list_all(&format!(
            "/subscriptions/{PRODUCTION}/resourceGroups/rg-edge/providers/Microsoft.Compute/virtualMachines?api-version={compute}"
        ))
        .await;
    assert_eq!(names(&by_group), set(&["fw-01"]));
    let by_location = arm
        .list_all(&format!(
            "/subscriptions/{PRODUCTION}/providers/Microsoft.Compute/locations/WestEurope/virtualMachines?api-version={compute}"
        ))
        .await;
    assert_eq!(
        names(&by_location),
        set(&["api-01", "web-01", "batch-01", "cache-01", "dev-01"])
    );

    // The one `$filter` the spec allows (a scale set) matches no emulated VM; any other
    // filter is refused rather than ignored.
    let in_scale_set = arm
        .get_ok(&format!(
            "/subscriptions/{PRODUCTION}/providers/Microsoft.Compute/virtualMachines?api-version={compute}&$filter='virtualMachineScaleSet/id' eq '/subscriptions/{PRODUCTION}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachineScaleSets/ss'"
        ))
        .await;
    assert_eq!(in_scale_set["value"].as_array().map(Vec::len), Some(0));
    let other_filter = arm
        .get(&format!(
            "/subscriptions/{PRODUCTION}/providers/Microsoft.Compute/virtualMachines?api-version={compute}&$filter=name eq 'api-01'"
        ))
        .await;
    assert_eq!(other_filter.status, 400, "{}", other_filter.body);
}
