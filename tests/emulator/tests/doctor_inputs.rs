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
