//! What a diagnosing client (`jit doctor`) reads besides VMs and policies, over real
//! HTTPS: the caller's permissions at a scope (`Microsoft.Authorization/permissions`),
//! Defender plans (`Microsoft.Security/pricings`), and a default world holding every kind
//! of VM a diagnosis must tell apart.

mod resources_support;

use jit_emulator::{EmulatorOptions, World};
use reqwest::Method;
use resources_support::*;
use serde_json::{Value, json};

const AUTHORIZATION: &str = "2022-04-01";
const READER_ID: &str = "9e1f3a5c-7b2d-4e6f-8a1c-3d5e7f9b2c40";
const READER_SECRET: &str = "jit-reader-secret-not-for-production";
const INITIATE: &str = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action";

fn permissions_url(scope: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/permissions?api-version={AUTHORIZATION}")
}

async fn permissions_as(arm: &Arm, token: &str, scope: &str) -> Vec<Value> {
    let reply = arm
        .send_as(token, Method::GET, &permissions_url(scope), None)
        .await;
    assert_eq!(reply.status, 200, "{scope}: {}", reply.body);
    reply.body["value"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_list_the_callers_actions_at_every_scope() {
    let arm = Arm::start().await;
    let group = format!("/subscriptions/{PRODUCTION}/resourceGroups/rg-web");
    let policy = policy_id(PRODUCTION, "rg-web", "westeurope", "default");
    let vm = vm_id(PRODUCTION, "rg-web", "api-01");

    let owner = arm.get_ok(&permissions_url(&group)).await;
    assert_eq!(
        owner["value"],
        json!([{ "actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": [] }])
    );

    let reader = arm.token_for(READER_ID, READER_SECRET).await;
    for scope in [
        format!("/subscriptions/{PRODUCTION}"),
        group.clone(),
        policy.clone(),
        vm.clone(),
    ] {
        let permissions = permissions_as(&arm, &reader, &scope).await;
        assert_eq!(permissions.len(), 1, "{scope}: {permissions:?}");
        assert_eq!(permissions[0]["actions"], json!(["*/read"]), "{scope}");
        assert_eq!(permissions[0]["notActions"], json!([]), "{scope}");
    }

    // Scopes are checked as ARM checks them.
    let missing_group = arm
        .get(&permissions_url(&format!(
            "/subscriptions/{PRODUCTION}/resourceGroups/rg-nowhere"
        )))
        .await;
    assert_eq!(missing_group.status, 404, "{}", missing_group.body);
    assert_eq!(missing_group.error_code(), "ResourceGroupNotFound");
    let bad_version = arm
        .get(&format!(
            "{group}/providers/Microsoft.Authorization/permissions?api-version=2024-07-01"
        ))
        .await;
    assert_eq!(bad_version.status, 400, "{}", bad_version.body);
    assert!(bad_version.error_message().contains("2022-04-01"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_actions_are_listed_and_enforced() {
    let mut world = World::default_world();
    let reader = world
        .principals
        .iter_mut()
        .find(|principal| principal.name == "jit-reader")
        .expect("the default world has jit-reader");
    reader.actions = vec!["*".to_owned()];
    reader.not_actions = vec![INITIATE.to_owned()];
    let arm = Arm::start_with(world, EmulatorOptions::default()).await;
    let token = arm.token_for(READER_ID, READER_SECRET).await;
    let policy = policy_id(PRODUCTION, "rg-web", "westeurope", "default");

    let permissions = permissions_as(&arm, &token, &policy).await;
    assert_eq!(permissions[0]["actions"], json!(["*"]));
    assert_eq!(permissions[0]["notActions"], json!([INITIATE]));

    // Writing the policy is allowed, initiating is not.
    let current = arm.policy(&policy).await;
    let body = json!({ "kind": "Basic", "properties": { "virtualMachines": current["properties"]["virtualMachines"] } });
    let written = arm
        .send_as(
            &token,
            Method::PUT,
            &format!("{policy}?api-version={JIT}"),
            Some(&body),
        )
        .await;
    assert_eq!(written.status, 200, "{}", written.body);
    let vm = vm_id(PRODUCTION, "rg-web", "api-01");
    let port = arm.port_of(&vm, "ssh");
    let initiated = arm
        .send_as(
            &token,
            Method::POST,
            &format!("{policy}/initiate?api-version={JIT}"),
            Some(&initiate_body(&vm, port, json!({}))),
        )
        .await;
    assert_eq!(initiated.status, 403, "{}", initiated.body);
    assert!(
        initiated.error_message().contains(INITIATE),
        "{}",
        initiated.body
    );
}

const PRICINGS: &str = "2024-01-01";

fn pricings_url(subscription: &str, name: Option<&str>, version: &str) -> String {
    let plan = name.map(|name| format!("/{name}")).unwrap_or_default();
    format!(
        "/subscriptions/{subscription}/providers/Microsoft.Security/pricings{plan}?api-version={version}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defender_for_servers_is_plan_2_by_default_and_other_plans_are_free() {
    let arm = Arm::start().await;
    for subscription in [PRODUCTION, DEVELOPMENT] {
        let servers = arm
            .get_ok(&pricings_url(
                subscription,
                Some("VirtualMachines"),
                PRICINGS,
            ))
            .await;
        assert_eq!(
            servers["id"],
            format!(
                "/subscriptions/{subscription}/providers/Microsoft.Security/pricings/VirtualMachines"
            )
        );
        assert_eq!(servers["type"], "Microsoft.Security/pricings");
        assert_eq!(servers["properties"]["pricingTier"], "Standard");
        assert_eq!(servers["properties"]["subPlan"], "P2");
        assert!(
            servers["properties"]["enablementTime"].is_string(),
            "{servers}"
        );
    }
    let all = arm.get_ok(&pricings_url(PRODUCTION, None, PRICINGS)).await;
    let plans = all["value"].as_array().cloned().unwrap_or_default();
    assert!(plans.len() > 5, "{all}");
    for plan in &plans {
        let expected = if plan["name"] == "VirtualMachines" {
            "Standard"
        } else {
            "Free"
        };
        assert_eq!(plan["properties"]["pricingTier"], expected, "{plan}");
    }
    // The one filter the spec documents, and the version the Azure CLI's SDK sends.
    let filtered = arm
        .get_ok(&format!(
            "{}&$filter=name in (VirtualMachines,Dns)",
            pricings_url(PRODUCTION, None, PRICINGS)
        ))
        .await;
    let names: Vec<&str> = filtered["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|plan| plan["name"].as_str())
        .collect();
    assert_eq!(names, ["VirtualMachines", "Dns"]);
    let unsupported = arm
        .get(&format!(
            "{}&$filter=pricingTier eq 'Free'",
            pricings_url(PRODUCTION, None, PRICINGS)
        ))
        .await;
    assert_eq!(unsupported.status, 400, "{}", unsupported.body);
    assert_eq!(
        arm.get(&pricings_url(
            PRODUCTION,
            Some("virtualmachines"),
            "2023-01-01"
        ))
        .await
        .status,
        200
    );
    let unknown = arm
        .get(&pricings_url(PRODUCTION, Some("Mainframes"), PRICINGS))
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let old = arm.get(&pricings_url(PRODUCTION, None, "2020-01-01")).await;
    assert_eq!(old.status, 400, "{}", old.body);

    // A reader may read plans.
    let reader = arm.token_for(READER_ID, READER_SECRET).await;
    let read = arm
        .send_as(
            &reader,
            Method::GET,
            &pricings_url(DEVELOPMENT, Some("VirtualMachines"), PRICINGS),
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_world_file_sets_each_subscriptions_plans() {
    let world = World::from_toml(
        &jit_emulator::world::DEFAULT_WORLD_TOML.replace(
            "display_name = \"Contoso Development\"",
            "display_name = \"Contoso Development\"\n\
             pricings = [{ name = \"VirtualMachines\", pricing_tier = \"Standard\", sub_plan = \"P1\" }, \
             { name = \"KeyVaults\", pricing_tier = \"Standard\" }]",
        ),
    )
    .expect("the edited world is valid");
    let arm = Arm::start_with(world, EmulatorOptions::default()).await;
    let servers = arm
        .get_ok(&pricings_url(
            DEVELOPMENT,
            Some("VirtualMachines"),
            PRICINGS,
        ))
        .await;
    assert_eq!(servers["properties"]["subPlan"], "P1");
    let vaults = arm
        .get_ok(&pricings_url(DEVELOPMENT, Some("KeyVaults"), PRICINGS))
        .await;
    assert_eq!(vaults["properties"]["pricingTier"], "Standard");
    assert!(vaults["properties"].get("subPlan").is_none(), "{vaults}");
    let production = arm
        .get_ok(&pricings_url(PRODUCTION, Some("VirtualMachines"), PRICINGS))
        .await;
    assert_eq!(production["properties"]["subPlan"], "P2");
}

/// The VM ids of every JIT policy of a subscription, lower-cased.
async fn vms_in_policies(arm: &Arm, subscription: &str) -> Vec<String> {
    arm.list_all(&format!(
        "/subscriptions/{subscription}/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version={JIT}"
    ))
    .await
    .iter()
    .flat_map(|policy| {
        policy["properties"]["virtualMachines"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    })
    .filter_map(|entry| entry["id"].as_str().map(str::to_ascii_lowercase))
    .collect()
}

/// The primary NIC of a VM and the subnet it is in.
async fn nic_and_subnet(arm: &Arm, vm: &str) -> (Value, Value) {
    let body = arm.get_ok(&format!("{vm}?api-version={COMPUTE}")).await;
    let nic_id = body["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
        .as_str()
        .expect("a NIC")
        .to_owned();
    let nic = arm.get_ok(&format!("{nic_id}?api-version={NETWORK}")).await;
    let subnet_id = nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"]
        .as_str()
        .expect("a subnet")
        .to_owned();
    let subnet = arm
        .get_ok(&format!("{subnet_id}?api-version={NETWORK}"))
        .await;
    (nic, subnet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_world_holds_every_kind_of_vm_a_diagnosis_tells_apart() {
    let arm = Arm::start().await;
    let production = vms_in_policies(&arm, PRODUCTION).await;
    let development = vms_in_policies(&arm, DEVELOPMENT).await;
    let configured = |vm: &str| production.contains(&vm.to_ascii_lowercase());

    // Configured, running, NSG on the NIC.
    let api = vm_id(PRODUCTION, "rg-web", "api-01");
    assert!(configured(&api));
    let (nic, _) = nic_and_subnet(&arm, &api).await;
    assert!(nic["properties"]["networkSecurityGroup"]["id"].is_string());

    // Not configured: an NSG but in no policy.
    for vm in [
        vm_id(PRODUCTION, "rg-web", "cache-01"),
        vm_id(PRODUCTION, "rg-dev", "dev-01"),
    ] {
        assert!(!configured(&vm), "{vm}");
        let (nic, _) = nic_and_subnet(&arm, &vm).await;
        assert!(
            nic["properties"]["networkSecurityGroup"]["id"].is_string(),
            "{vm}"
        );
    }

    // Unsupported: no NSG anywhere and no firewall; and a classic VM.
    let legacy = vm_id(PRODUCTION, "rg-legacy", "legacy-01");
    let (nic, subnet) = nic_and_subnet(&arm, &legacy).await;
    assert!(
        nic["properties"].get("networkSecurityGroup").is_none(),
        "{nic}"
    );
    assert!(
        subnet["properties"].get("networkSecurityGroup").is_none(),
        "{subnet}"
    );
    assert!(subnet["properties"].get("routeTable").is_none(), "{subnet}");
    assert!(!configured(&legacy));
    let classic = arm
        .post(
            "/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01",
            &json!({ "query": "Resources | where name == 'classic-01' | project type, resourceGroup" }),
        )
        .await;
    assert_eq!(
        classic.body["data"],
        json!([{ "type": "microsoft.classiccompute/virtualmachines", "resourceGroup": "rg-legacy" }])
    );

    // Stopped (deallocated) but configured.
    let batch = vm_id(PRODUCTION, "rg-web", "batch-01");
    assert!(configured(&batch));
    let view = arm
        .get_ok(&format!("{batch}/instanceView?api-version={COMPUTE}"))
        .await;
    assert_eq!(view["statuses"][1]["code"], "PowerState/deallocated");

    // Behind an Azure Firewall: the subnet routes through it, the policy names its address.
    let firewalled = vm_id(PRODUCTION, "rg-edge", "fw-01");
    assert!(configured(&firewalled));
    let (nic, subnet) = nic_and_subnet(&arm, &firewalled).await;
    assert!(
        subnet["properties"]["routeTable"]["id"].is_string(),
        "{subnet}"
    );
    assert!(
        nic["properties"].get("networkSecurityGroup").is_none(),
        "{nic}"
    );
    let edge = arm
        .policy(&policy_id(PRODUCTION, "rg-edge", "eastus", "default"))
        .await;
    assert_eq!(
        edge["properties"]["virtualMachines"][0]["publicIpAddress"],
        "127.0.0.1"
    );

    // A policy with explicit source ranges.
    let dev_web = vm_id(DEVELOPMENT, "rg-app", "web-01");
    assert!(development.contains(&dev_web.to_ascii_lowercase()));
    let explicit = arm
        .policy(&policy_id(DEVELOPMENT, "rg-app", "westeurope", "default"))
        .await;
    assert_eq!(
        explicit["properties"]["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefixes"],
        json!(["198.51.100.0/24", "203.0.113.0/24"])
    );
}
