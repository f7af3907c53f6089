//! ARM routes over real HTTPS: api-version checks per provider, ARM's 404s, paths in any
//! casing, VM reads and the `start` long-running operation, network reads, paging with
//! `nextLink`, and JIT policy bodies the service refuses.

mod resources_support;

use std::collections::BTreeSet;

use jiff::SignedDuration;
use resources_support::*;
use serde_json::{Value, json};

fn api_01() -> String {
    vm_id(PRODUCTION, "rg-web", "api-01")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_are_checked_per_provider_and_named_when_refused() {
    let arm = Arm::start().await;
    let policy = policy_id(PRODUCTION, "rg-web", "westeurope", "default");

    let missing = arm.get(&policy).await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert_eq!(missing.error_code(), "MissingApiVersionParameter");

    let wrong = arm.get(&format!("{policy}?api-version=2024-07-01")).await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert_eq!(wrong.error_code(), "InvalidApiVersionParameter");
    assert!(
        wrong.error_message().contains("2020-01-01"),
        "{}",
        wrong.body
    );
    assert!(
        wrong.error_message().contains("2015-06-01-preview"),
        "{}",
        wrong.body
    );

    for version in ["2020-01-01", "2015-06-01-preview"] {
        let reply = arm.get(&format!("{policy}?api-version={version}")).await;
        assert_eq!(reply.status, 200, "{version}: {}", reply.body);
    }
    let locations = format!("/subscriptions/{PRODUCTION}/providers/Microsoft.Security/locations");
    assert_eq!(
        arm.get(&format!("{locations}?api-version=2020-01-01"))
            .await
            .status,
        400
    );
    let home = arm
        .get_ok(&format!("{locations}?api-version=2015-06-01-preview"))
        .await;
    assert_eq!(home["value"][0]["name"], "centralus");
    assert_eq!(
        home["value"][0]["properties"]["homeRegionName"],
        "centralus"
    );

    let vm = arm.get(&format!("{}?api-version={JIT}", api_01())).await;
    assert_eq!(vm.status, 400, "{}", vm.body);
    assert!(vm.error_message().contains(COMPUTE), "{}", vm.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_things_get_arms_codes() {
    let arm = Arm::start().await;
    let unknown_subscription = "00000000-1111-2222-3333-444444444444";
    let cases = [
        (
            format!("/subscriptions/{unknown_subscription}?api-version=2022-12-01"),
            404,
            "SubscriptionNotFound",
        ),
        (
            format!(
                "{}?api-version={COMPUTE}",
                vm_id(unknown_subscription, "rg-web", "api-01")
            ),
            404,
            "SubscriptionNotFound",
        ),
        (
            format!(
                "{}?api-version={COMPUTE}",
                vm_id(PRODUCTION, "rg-nowhere", "api-01")
            ),
            404,
            "ResourceGroupNotFound",
        ),
        (
            format!(
                "{}?api-version={COMPUTE}",
                vm_id(PRODUCTION, "rg-web", "ghost-01")
            ),
            404,
            "ResourceNotFound",
        ),
        (
            format!(
                "{}/subnets/nowhere?api-version={NETWORK}",
                id(
                    PRODUCTION,
                    "rg-web",
                    "Microsoft.Network/virtualNetworks",
                    "vnet-web"
                )
            ),
            404,
            "NotFound",
        ),
        (
            format!(
                "{}?api-version={JIT}",
                policy_id(PRODUCTION, "rg-dev", "westeurope", "default")
            ),
            404,
            "ResourceNotFound",
        ),
        (
            format!(
                "{}?api-version={COMPUTE}",
                vm_id("not-a-guid", "rg-web", "api-01")
            ),
            400,
            "InvalidSubscriptionId",
        ),
        (
            format!(
                "/subscriptions/{PRODUCTION}/providers/Microsoft.Compute/disks?api-version={COMPUTE}"
            ),
            404,
            "InvalidResourceType",
        ),
    ];
    for (path, status, code) in cases {
        let reply = arm.get(&path).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert_eq!(reply.error_code(), code, "{path}");
    }
    let ghost = arm
        .get(&format!(
            "{}?api-version={COMPUTE}",
            vm_id(PRODUCTION, "rg-web", "ghost-01")
        ))
        .await;
    assert_eq!(
        ghost.error_message(),
        "The Resource 'Microsoft.Compute/virtualMachines/ghost-01' under resource group 'rg-web' \
         was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_match_in_any_casing_and_answers_keep_the_worlds() {
    let arm = Arm::start().await;
    let shouted = format!(
        "/SUBSCRIPTIONS/{}/RESOURCEGROUPS/RG-WEB/PROVIDERS/microsoft.compute/VIRTUALMACHINES/API-01?api-version={COMPUTE}",
        PRODUCTION.to_uppercase()
    );
    let vm = arm.get_ok(&shouted).await;
    assert_eq!(vm["id"], api_01());
    assert_eq!(vm["name"], "api-01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_shows_its_profile_and_power_state() {
    let arm = Arm::start().await;
    let vm = arm
        .get_ok(&format!(
            "{}?api-version={COMPUTE}&$expand=instanceView",
            api_01()
        ))
        .await;
    let properties = &vm["properties"];
    assert_eq!(vm["location"], "westeurope");
    assert_eq!(properties["storageProfile"]["osDisk"]["osType"], "Linux");
    assert_eq!(properties["osProfile"]["adminUsername"], "azureuser");
    assert_eq!(properties["osProfile"]["computerName"], "api-01");
    assert!(
        properties["vmId"].as_str().is_some_and(|id| id.len() == 36),
        "{vm}"
    );
    assert_eq!(
        properties["networkProfile"]["networkInterfaces"][0]["id"],
        id(
            PRODUCTION,
            "rg-web",
            "Microsoft.Network/networkInterfaces",
            "api-01-nic"
        )
    );
    let codes: Vec<&str> = properties["instanceView"]["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|status| status["code"].as_str())
        .collect();
    assert_eq!(codes, ["ProvisioningState/succeeded", "PowerState/running"]);
    let key = properties["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        key.starts_with("ssh-ed25519 "),
        "the contract's identity: {key}"
    );

    let plain = arm
        .get_ok(&format!("{}?api-version={COMPUTE}", api_01()))
        .await;
    assert!(plain["properties"].get("instanceView").is_none(), "{plain}");

    let windows = arm
        .get_ok(&format!(
            "{}?api-version={COMPUTE}",
            vm_id(PRODUCTION, "rg-data", "sql-01")
        ))
        .await;
    assert_eq!(
        windows["properties"]["storageProfile"]["osDisk"]["osType"],
        "Windows"
    );
    assert!(windows["properties"]["osProfile"]["windowsConfiguration"].is_object());
}

fn power_code(view: &Value) -> String {
    view["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|status| status["code"].as_str())
        .find(|code| code.starts_with("PowerState/"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_a_vm_is_a_long_running_operation_on_the_virtual_clock() {
    let arm = Arm::start().await;
    let batch = vm_id(PRODUCTION, "rg-web", "batch-01");
    let view_url = format!("{batch}/instanceView?api-version={COMPUTE}");
    assert_eq!(
        power_code(&arm.get_ok(&view_url).await),
        "PowerState/deallocated"
    );
    let ip_url = format!(
        "{}?api-version={NETWORK}",
        id(
            PRODUCTION,
            "rg-web",
            "Microsoft.Network/publicIPAddresses",
            "batch-01-ip"
        )
    );
    let ip = arm.get_ok(&ip_url).await;
    assert!(
        ip["properties"].get("ipAddress").is_none(),
        "dynamic, unallocated: {ip}"
    );
    assert_eq!(ip["properties"]["publicIPAllocationMethod"], "Dynamic");

    let started = arm
        .post(&format!("{batch}/start?api-version={COMPUTE}"), &json!({}))
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let operation = started
        .header("azure-asyncoperation")
        .expect("Azure-AsyncOperation")
        .to_owned();
    let location = started.header("location").expect("Location").to_owned();
    assert!(
        operation.starts_with(&arm.emulator.info().arm_endpoint),
        "{operation}"
    );

    let status = arm.get_ok(&operation).await;
    assert_eq!(status["status"], "InProgress", "{status}");
    assert_eq!(arm.get(&location).await.status, 202);
    assert_eq!(
        power_code(&arm.get_ok(&view_url).await),
        "PowerState/starting"
    );

    arm.advance_clock(SignedDuration::from_secs(5)).await;
    let status = arm.get_ok(&operation).await;
    assert_eq!(status["status"], "Succeeded", "{status}");
    assert!(status["endTime"].is_string(), "{status}");
    assert_eq!(arm.get(&location).await.status, 200);
    assert_eq!(
        power_code(&arm.get_ok(&view_url).await),
        "PowerState/running"
    );
    let ip = arm.get_ok(&ip_url).await;
    assert_eq!(ip["properties"]["ipAddress"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_reads_show_addresses_associations_and_rules() {
    let arm = Arm::start().await;
    let nic = arm
        .get_ok(&format!(
            "{}?api-version={NETWORK}",
            id(
                PRODUCTION,
                "rg-web",
                "Microsoft.Network/networkInterfaces",
                "api-01-nic"
            )
        ))
        .await;
    let configuration = &nic["properties"]["ipConfigurations"][0]["properties"];
    assert_eq!(configuration["privateIPAddress"], "10.1.0.4");
    assert_eq!(
        nic["properties"]["networkSecurityGroup"]["id"],
        nsg_id(PRODUCTION, "rg-web", "api-01-nsg")
    );
    assert_eq!(nic["properties"]["virtualMachine"]["id"], api_01());
    let public_ip = arm
        .get_ok(&format!(
            "{}?api-version={NETWORK}",
            configuration["publicIPAddress"]["id"]
                .as_str()
                .unwrap_or_default()
        ))
        .await;
    assert_eq!(public_ip["properties"]["ipAddress"], "127.0.0.1");
    assert_eq!(
        public_ip["properties"]["dnsSettings"]["fqdn"],
        "contoso-api-01.westeurope.cloudapp.azure.com"
    );

    let subnet = arm
        .get_ok(&format!(
            "{}/subnets/SQL?api-version={NETWORK}",
            id(
                PRODUCTION,
                "rg-data",
                "Microsoft.Network/virtualNetworks",
                "vnet-data"
            )
        ))
        .await;
    assert_eq!(
        subnet["properties"]["networkSecurityGroup"]["id"],
        nsg_id(PRODUCTION, "rg-data", "sql-subnet-nsg")
    );
    assert_eq!(subnet["properties"]["addressPrefix"], "10.2.1.0/24");
    let routed = arm
        .get_ok(&format!(
            "{}/subnets/workload?api-version={NETWORK}",
            id(
                PRODUCTION,
                "rg-edge",
                "Microsoft.Network/virtualNetworks",
                "vnet-edge"
            )
        ))
        .await;
    assert!(
        routed["properties"]["routeTable"]["id"].is_string(),
        "{routed}"
    );

    let nsg = nsg_id(PRODUCTION, "rg-web", "api-01-nsg");
    let rules = arm
        .list_all(&format!("{nsg}/securityRules?api-version={NETWORK}"))
        .await;
    let names: Vec<&str> = rules
        .iter()
        .filter_map(|rule| rule["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], "AllowHttpsInbound");
    assert!(names[1].starts_with("SecurityCenter-JITRule_"), "{names:?}");
    let one = arm
        .get_ok(&format!(
            "{nsg}/securityRules/allowhttpsinbound?api-version={NETWORK}"
        ))
        .await;
    assert_eq!(one["properties"]["priority"], 300);
    assert_eq!(one["properties"]["destinationPortRange"], "443");
    let defaults = arm
        .list_all(&format!("{nsg}/defaultSecurityRules?api-version={NETWORK}"))
        .await;
    assert_eq!(defaults.len(), 6);
    let missing = arm
        .get(&format!("{nsg}/securityRules/nope?api-version={NETWORK}"))
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_next_link_and_lose_nothing() {
    let arm = Arm::start().await;
    let lists = [
        "/subscriptions?api-version=2022-12-01".to_owned(),
        format!(
            "/subscriptions/{PRODUCTION}/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version={JIT}"
        ),
        format!(
            "/subscriptions/{PRODUCTION}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies?api-version={JIT}"
        ),
        format!(
            "/subscriptions/{PRODUCTION}/resourceGroups/rg-web/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version={JIT}"
        ),
        format!(
            "/subscriptions/{PRODUCTION}/providers/Microsoft.Compute/virtualMachines?api-version={COMPUTE}"
        ),
        format!(
            "/subscriptions/{PRODUCTION}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines?api-version={COMPUTE}"
        ),
    ];
    let ids = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .filter_map(|item| item["id"].as_str().map(str::to_owned))
            .collect()
    };
    for list in &lists {
        let whole = arm.get_ok(list).await;
        assert!(whole.get("nextLink").is_none(), "{list}: {whole}");
        let expected = ids(whole["value"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default());
        arm.emulator.set_page_size(Some(1));
        let first = arm.get_ok(list).await;
        assert_eq!(first["value"].as_array().map(Vec::len), Some(1), "{list}");
        if expected.len() > 1 {
            assert!(first["nextLink"].is_string(), "{list}: {first}");
        }
        let paged = ids(&arm.list_all(list).await);
        arm.emulator.set_page_size(None);
        assert_eq!(paged, expected, "{list}");
    }
    let all_policies = arm.list_all(&lists[1]).await;
    let names: BTreeSet<String> = ids(&all_policies).into_iter().collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&policy_id(PRODUCTION, "rg-data", "northeurope", "jit-data")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_put_refuses_bodies_the_service_refuses() {
    let arm = Arm::start().await;
    let dev = vm_id(PRODUCTION, "rg-dev", "dev-01");
    let url = format!(
        "{}?api-version={JIT}",
        policy_id(PRODUCTION, "rg-dev", "westeurope", "default")
    );
    let body = |port: Value| {
        json!({
            "kind": "Basic",
            "properties": { "virtualMachines": [{ "id": dev, "ports": [port] }] }
        })
    };
    let good_port = json!({
        "number": 22, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"
    });
    let with = |key: &str, value: Value| {
        let mut port = good_port.clone();
        port[key] = value;
        body(port)
    };
    let empty_protocol = arm.put(&url, &with("protocol", json!(""))).await;
    assert_eq!(empty_protocol.status, 500, "{}", empty_protocol.body);
    assert_eq!(
        empty_protocol.error_message(),
        "Internal server error has occurred."
    );
    for (what, bad) in [
        (
            "a day and more",
            with("maxRequestAccessDuration", json!("PT25H")),
        ),
        (
            "not a duration",
            with("maxRequestAccessDuration", json!("three hours")),
        ),
        (
            "both prefix forms",
            with("allowedSourceAddressPrefixes", json!(["10.0.0.0/8"])),
        ),
        ("a bad protocol", with("protocol", json!("ICMP"))),
        ("a port out of range", with("number", json!(65536))),
        (
            "no ports",
            json!({ "properties": { "virtualMachines": [{ "id": dev, "ports": [] }] } }),
        ),
        ("no properties", json!({ "kind": "Basic" })),
        (
            "an unknown VM",
            json!({ "properties": { "virtualMachines": [{ "id": vm_id(PRODUCTION, "rg-dev", "ghost"), "ports": [good_port] }] } }),
        ),
        (
            "a VM of another resource group",
            json!({ "properties": { "virtualMachines": [{ "id": api_01(), "ports": [good_port] }] } }),
        ),
    ] {
        let reply = arm.put(&url, &bad).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        assert_eq!(reply.error_code(), "BadRequest", "{what}");
    }
    let not_json = arm
        .send(reqwest::Method::PUT, &url, Some(&json!("just a string")))
        .await;
    assert_eq!(not_json.status, 400, "{}", not_json.body);

    // The VM is in westeurope: a policy in the home region is refused.
    let wrong_region = format!(
        "{}?api-version={JIT}",
        policy_id(PRODUCTION, "rg-dev", "centralus", "default")
    );
    let reply = arm.put(&wrong_region, &body(good_port.clone())).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.error_message().contains("westeurope"),
        "{}",
        reply.body
    );

    // Read-only fields in the body are ignored; the policy comes back whole.
    let mut created = body(good_port);
    created["location"] = json!("somewhere-else");
    created["properties"]["requests"] = json!([{ "virtualMachines": [], "startTimeUtc": "2018-05-17T08:06:45Z", "requestor": "x" }]);
    let reply = arm.put(&url, &created).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["location"], "westeurope");
    assert_eq!(reply.body["properties"]["requests"], json!([]));
    assert_eq!(reply.body["properties"]["provisioningState"], "Succeeded");
    let (deny, _) = jit_rules(&arm.rules(&nsg_id(PRODUCTION, "rg-dev", "dev-01-nsg")).await);
    assert_eq!(deny.len(), 1, "{deny:?}");
    assert_eq!(deny[0]["properties"]["priority"], 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_dump_lists_listeners_and_host_keys() {
    let arm = Arm::start().await;
    let snapshot = arm.emulator.snapshot();
    let listeners = snapshot["listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Nine Linux VMs with SSH (one on 2222), sql-01's RDP and WinRM, ops-01's silent port.
    assert_eq!(listeners.len(), 12, "{listeners:?}");
    let ops = vm_id(DEVELOPMENT, "rg-ops", "ops-01");
    let ops_ssh = listeners
        .iter()
        .find(|listener| listener["vm_id"] == ops.as_str() && listener["service"] == "ssh")
        .expect("ops-01 has an SSH listener");
    assert_eq!(ops_ssh["logical_port"], 2222);
    assert!(
        ops_ssh["known_hosts"]
            .as_str()
            .is_some_and(|line| line.starts_with("[127.0.0.1]:") && line.contains("ssh-ed25519")),
        "{ops_ssh}"
    );
    let policy = arm
        .policy(&policy_id(DEVELOPMENT, "rg-ops", "uksouth", "default"))
        .await;
    let numbers: Vec<u64> = policy["properties"]["virtualMachines"][0]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|port| port["number"].as_u64())
        .collect();
    assert_eq!(numbers.len(), 2);
    assert_eq!(
        numbers[1],
        ops_ssh["port"].as_u64().unwrap_or_default(),
        "SSH is listed second"
    );
    let vms = snapshot["virtual_machines"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let api = vms
        .iter()
        .find(|vm| vm["id"] == api_01().as_str())
        .expect("api-01 is in the dump");
    assert!(
        api["host_public_key"]
            .as_str()
            .is_some_and(|key| key.starts_with("ssh-ed25519 ")),
        "{api}"
    );
    assert_eq!(api["reachable_ports"], json!([]));
    let legacy = vms
        .iter()
        .find(|vm| vm["name"] == "legacy-01")
        .expect("legacy-01 is in the dump");
    assert_eq!(
        legacy["reachable_ports"].as_array().map(Vec::len),
        Some(1),
        "no NSG: open, hence Unsupported: {legacy}"
    );
}
