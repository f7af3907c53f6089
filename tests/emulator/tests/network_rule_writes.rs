//! NSG security rules written as deployments write them (PUT and DELETE through
//! `Microsoft.Network`, over real HTTPS), with Network's long-running answers, and their
//! effect on real TCP connections to the VM ports: a higher-priority allow rule lets the
//! caller in, a deleted JIT deny rule stops being enforced (and JIT writes it anew on the
//! next PUT of its policy, after the rules already there).

mod resources_support;

use resources_support::*;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;

fn rule_url(nsg: &str, rule: &str) -> String {
    format!("{nsg}/securityRules/{rule}?api-version={NETWORK}")
}

fn allow_ssh(port: u16, priority: u32) -> Value {
    json!({ "properties": {
        "protocol": "Tcp",
        "access": "Allow",
        "direction": "Inbound",
        "priority": priority,
        "sourcePortRange": "*",
        "sourcePortRanges": [],
        "destinationPortRange": port.to_string(),
        "destinationPortRanges": [],
        "sourceAddressPrefix": CLIENT_IP,
        "sourceAddressPrefixes": [],
        "destinationAddressPrefix": "*",
        "destinationAddressPrefixes": [],
        "sourceApplicationSecurityGroups": [],
        "destinationApplicationSecurityGroups": [],
        "description": "Deployed by a pipeline"
    }})
}

/// Reads from a fresh connection: `Some(bytes)` if the port says something within the
/// bounded wait, `None` if it stays silent.
async fn first_words(port: u16, wait: std::time::Duration) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|error| panic!("port {port} does not accept connections: {error}"));
    let mut buffer = [0u8; 64];
    match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
        Err(_) => None,
        Ok(Ok(count)) => Some(String::from_utf8_lossy(&buffer[..count]).into_owned()),
        Ok(Err(error)) => panic!("reading port {port} failed: {error}"),
    }
}

async fn answers_ssh(port: u16) -> bool {
    first_words(port, PROMPTLY)
        .await
        .is_some_and(|words| words.starts_with("SSH-2.0-"))
}

async fn is_silent(port: u16) -> bool {
    first_words(port, SILENCE).await.is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_created_replaced_and_deleted_with_networks_long_running_answers() {
    let arm = Arm::start().await;
    let nsg = nsg_id(PRODUCTION, "rg-web", "cache-01-nsg");
    let port = arm.port_of(&vm_id(PRODUCTION, "rg-web", "cache-01"), "ssh");

    let created = arm
        .put(&rule_url(&nsg, "AllowSsh"), &allow_ssh(port, 200))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["name"], "AllowSsh");
    assert_eq!(created.body["id"], format!("{nsg}/securityRules/AllowSsh"));
    assert_eq!(created.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(created.body["properties"]["priority"], 200);
    assert_eq!(created.body["properties"]["sourceAddressPrefix"], CLIENT_IP);
    assert_eq!(
        created.body["properties"]["description"],
        "Deployed by a pipeline"
    );
    let status_url = created
        .header("azure-asyncoperation")
        .expect("an Azure-AsyncOperation header")
        .to_owned();
    assert!(
        status_url.contains("/providers/Microsoft.Network/locations/westeurope/operations/"),
        "{status_url}"
    );
    assert_eq!(
        arm.get_ok(&status_url).await,
        json!({ "status": "Succeeded" })
    );
    let fetched = arm.get_ok(&rule_url(&nsg, "allowssh")).await;
    assert_eq!(
        fetched["properties"]["destinationPortRange"],
        port.to_string()
    );

    // Replacing keeps one rule of that name; 200, not 201.
    let replaced = arm
        .put(&rule_url(&nsg, "AllowSsh"), &allow_ssh(port, 210))
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let named: Vec<Value> = arm
        .rules(&nsg)
        .await
        .into_iter()
        .filter(|rule| rule["name"] == "AllowSsh")
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0]["properties"]["priority"], 210);

    // Network refuses a second rule at the same priority and direction, and priorities
    // outside 100-4096.
    let conflict = arm
        .put(&rule_url(&nsg, "Other"), &allow_ssh(port, 210))
        .await;
    assert_eq!(conflict.status, 400, "{}", conflict.body);
    assert_eq!(conflict.error_code(), "SecurityRuleConflict");
    let out_of_range = arm
        .put(&rule_url(&nsg, "Other"), &allow_ssh(port, 5000))
        .await;
    assert_eq!(out_of_range.status, 400, "{}", out_of_range.body);
    assert_eq!(out_of_range.error_code(), "SecurityRuleInvalidPriority");

    // DELETE is accepted (202) with both status URLs; then the rule is gone.
    let deleted = arm.delete(&rule_url(&nsg, "ALLOWSSH")).await;
    assert_eq!(deleted.status, 202, "{}", deleted.body);
    let location = deleted
        .header("location")
        .expect("a Location header")
        .to_owned();
    let async_operation = deleted
        .header("azure-asyncoperation")
        .expect("an Azure-AsyncOperation header")
        .to_owned();
    assert_eq!(arm.get(&location).await.status, 204);
    assert_eq!(arm.get_ok(&async_operation).await["status"], "Succeeded");
    let gone = arm.get(&rule_url(&nsg, "AllowSsh")).await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert_eq!(arm.delete(&rule_url(&nsg, "AllowSsh")).await.status, 204);
    let unknown = arm
        .get(&format!(
            "/subscriptions/{PRODUCTION}/providers/Microsoft.Network/locations/westeurope/operations/00000000-0000-0000-0000-000000000000?api-version={NETWORK}"
        ))
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // An unknown NSG is ARM's 404; a reader may not write.
    let no_nsg = arm
        .put(
            &rule_url(&nsg_id(PRODUCTION, "rg-web", "no-such-nsg"), "AllowSsh"),
            &allow_ssh(port, 200),
        )
        .await;
    assert_eq!(no_nsg.status, 404, "{}", no_nsg.body);
    assert_eq!(no_nsg.error_code(), "ResourceNotFound");
    let reader = arm
        .token_for(
            "9e1f3a5c-7b2d-4e6f-8a1c-3d5e7f9b2c40",
            "jit-reader-secret-not-for-production",
        )
        .await;
    let refused = arm
        .send_as(
            &reader,
            reqwest::Method::PUT,
            &rule_url(&nsg, "AllowSsh"),
            Some(&allow_ssh(port, 200)),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .error_message()
            .contains("Microsoft.Network/networkSecurityGroups/securityRules/write"),
        "{}",
        refused.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_allow_rule_lets_the_caller_in_and_its_deletion_shuts_the_port() {
    let arm = Arm::start().await;
    let nsg = nsg_id(PRODUCTION, "rg-web", "web-01-nsg");
    let port = arm.port_of(&vm_id(PRODUCTION, "rg-web", "web-01"), "ssh");
    assert!(is_silent(port).await, "JIT's deny rule closes the port");

    let reply = arm
        .put(&rule_url(&nsg, "AllowSsh"), &allow_ssh(port, 200))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(
        answers_ssh(port).await,
        "the allow rule at 200 precedes the deny rule"
    );

    assert_eq!(arm.delete(&rule_url(&nsg, "AllowSsh")).await.status, 202);
    assert!(is_silent(port).await, "closed again without the allow rule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_jit_deny_rule_stops_being_enforced_until_the_policy_is_written_again() {
    let arm = Arm::start().await;
    let nsg = nsg_id(PRODUCTION, "rg-web", "api-01-nsg");
    let port = arm.port_of(&vm_id(PRODUCTION, "rg-web", "api-01"), "ssh");
    let policy = policy_id(PRODUCTION, "rg-web", "westeurope", "default");

    // An allow rule behind JIT's deny rule (301) does not open the port...
    let reply = arm
        .put(&rule_url(&nsg, "AllowSshLate"), &allow_ssh(port, 4000))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(is_silent(port).await, "the deny rule at 301 wins");

    // ...until someone deletes the deny rule through the NSG API.
    let (deny, _) = jit_rules(&arm.rules(&nsg).await);
    assert_eq!(deny.len(), 1, "{deny:?}");
    let deny_name = deny[0]["name"].as_str().expect("a name").to_owned();
    assert_eq!(arm.delete(&rule_url(&nsg, &deny_name)).await.status, 202);
    assert!(jit_rules(&arm.rules(&nsg).await).0.is_empty());
    assert!(answers_ssh(port).await, "nothing denies the port any more");

    // The next PUT of the policy writes the deny rule anew (once), just after the NSG's
    // other rules, as JIT places it: the pipeline's allow rule now keeps precedence.
    let current = arm.policy(&policy).await;
    let body = json!({ "kind": "Basic", "properties": { "virtualMachines": current["properties"]["virtualMachines"] } });
    for _ in 0..2 {
        let written = arm.put(&format!("{policy}?api-version={JIT}"), &body).await;
        assert_eq!(written.status, 200, "{}", written.body);
    }
    let (deny, _) = jit_rules(&arm.rules(&nsg).await);
    assert_eq!(deny.len(), 1, "{deny:?}");
    assert_eq!(deny[0]["properties"]["priority"], 4001, "{deny:?}");
    assert!(
        answers_ssh(port).await,
        "the allow rule at 4000 precedes it"
    );
    assert_eq!(
        arm.delete(&rule_url(&nsg, "AllowSshLate")).await.status,
        202
    );
    assert!(is_silent(port).await, "enforced again");
}
