//! JIT over real HTTPS: requests move Initiating → Initiated → Revoked/Expired on the
//! virtual clock, newer requests revoke older ones, PUT keeps one deny rule per VM and
//! removes the rules of VMs it drops, DELETE removes everything, and `initiate` refuses
//! what the policy does not allow. Each step is checked where a client sees it: the
//! policy's requests and the NSG's rules.

mod resources_support;

use jiff::SignedDuration;
use jit_emulator::{EmulatorOptions, World};
use resources_support::*;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;

const DELAY: SignedDuration = SignedDuration::from_secs(10);

async fn start() -> Arm {
    Arm::start_with(
        World::default_world(),
        EmulatorOptions {
            initiating_delay: DELAY,
            ..EmulatorOptions::default()
        },
    )
    .await
}

fn api_01() -> String {
    vm_id(PRODUCTION, "rg-web", "api-01")
}

fn web_policy() -> String {
    policy_id(PRODUCTION, "rg-web", "westeurope", "default")
}

fn api_nsg() -> String {
    nsg_id(PRODUCTION, "rg-web", "api-01-nsg")
}

fn rule_number(name: &str) -> &str {
    name.trim_start_matches("SecurityCenter-JITRule")
        .trim_start_matches(['_', '-'])
        .rsplit_once(['_', '-'])
        .map_or("", |(number, _)| number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_goes_initiating_initiated_then_expires_and_its_rule_comes_and_goes() {
    let arm = start().await;
    let port = arm.port_of(&api_01(), "ssh");
    let policy = arm.policy(&web_policy()).await;
    assert_eq!(
        policy["properties"]["virtualMachines"][0]["ports"][0]["number"],
        port
    );

    // The policy's deny rule is there from the start, just after the NSG's own rule.
    let (deny, allow) = jit_rules(&arm.rules(&api_nsg()).await);
    assert_eq!(deny.len(), 1, "{deny:?}");
    assert!(allow.is_empty(), "{allow:?}");
    let deny_rule = &deny[0];
    assert_eq!(deny_rule["properties"]["access"], "Deny");
    assert_eq!(deny_rule["properties"]["priority"], 301);
    assert_eq!(
        deny_rule["properties"]["destinationAddressPrefix"],
        "10.1.0.4"
    );
    assert_eq!(
        deny_rule["properties"]["destinationPortRange"],
        port.to_string()
    );
    assert_eq!(
        deny_rule["properties"]["description"],
        "ASC JIT Network Access rule for policy 'default' of VM 'api-01'."
    );

    let reply = arm
        .post(
            &format!("{}/initiate?api-version={JIT}", web_policy()),
            &initiate_body(&api_01(), port, json!({})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let request_port = &reply.body["virtualMachines"][0]["ports"][0];
    assert_eq!(request_port["status"], "Initiating");
    assert_eq!(request_port["statusReason"], "UserRequested");
    assert_eq!(request_port["allowedSourceAddressPrefix"], CLIENT_IP);
    assert_eq!(reply.body["justification"], "testing");
    // The caller is a service principal: ARM names it by its application id.
    assert_eq!(
        reply.body["requestor"],
        arm.emulator.info().service_principal.client_id
    );

    // Still Initiating: no allow rule yet.
    let statuses = request_statuses(&arm.policy(&web_policy()).await);
    assert_eq!(
        statuses,
        [(
            u64::from(port),
            "Initiating".to_owned(),
            "UserRequested".to_owned()
        )]
    );
    assert!(jit_rules(&arm.rules(&api_nsg()).await).1.is_empty());

    arm.advance_clock(DELAY).await;
    let statuses = request_statuses(&arm.policy(&web_policy()).await);
    assert_eq!(
        statuses,
        [(
            u64::from(port),
            "Initiated".to_owned(),
            "UserRequested".to_owned()
        )]
    );
    let (deny, allow) = jit_rules(&arm.rules(&api_nsg()).await);
    assert_eq!(allow.len(), 1, "{allow:?}");
    let allow_rule = &allow[0];
    assert_eq!(allow_rule["properties"]["access"], "Allow");
    assert_eq!(allow_rule["properties"]["priority"], 100);
    assert_eq!(allow_rule["properties"]["sourceAddressPrefix"], CLIENT_IP);
    assert_eq!(
        allow_rule["properties"]["destinationAddressPrefix"],
        "10.1.0.4"
    );
    assert_eq!(
        allow_rule["properties"]["destinationPortRange"],
        port.to_string()
    );
    assert_eq!(
        rule_number(allow_rule["name"].as_str().unwrap_or_default()),
        rule_number(deny[0]["name"].as_str().unwrap_or_default()),
        "the allow and deny rules of a VM share their number"
    );

    arm.advance_clock(SignedDuration::from_hours(1)).await;
    let statuses = request_statuses(&arm.policy(&web_policy()).await);
    assert_eq!(
        statuses,
        [(u64::from(port), "Revoked".to_owned(), "Expired".to_owned())]
    );
    let (deny, allow) = jit_rules(&arm.rules(&api_nsg()).await);
    assert!(allow.is_empty(), "{allow:?}");
    assert_eq!(deny.len(), 1, "the deny rule stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_request_for_the_same_port_revokes_the_older_one() {
    let arm = start().await;
    let port = arm.port_of(&api_01(), "ssh");
    let initiate = format!("{}/initiate?api-version={JIT}", web_policy());
    let first = arm
        .post(&initiate, &initiate_body(&api_01(), port, json!({})))
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    arm.advance_clock(DELAY).await;
    let second = arm
        .post(
            &initiate,
            &initiate_body(
                &api_01(),
                port,
                json!({ "allowedSourceAddressPrefix": "203.0.113.0/24", "duration": "PT2H" }),
            ),
        )
        .await;
    assert_eq!(second.status, 202, "{}", second.body);
    // Until the newer one is applied, the older one still holds.
    let statuses = request_statuses(&arm.policy(&web_policy()).await);
    assert_eq!(statuses[0].1, "Initiated");
    assert_eq!(statuses[1].1, "Initiating");

    arm.advance_clock(DELAY).await;
    let statuses = request_statuses(&arm.policy(&web_policy()).await);
    assert_eq!(
        statuses,
        [
            (
                u64::from(port),
                "Revoked".to_owned(),
                "NewerRequestInitiated".to_owned()
            ),
            (
                u64::from(port),
                "Initiated".to_owned(),
                "UserRequested".to_owned()
            ),
        ]
    );
    let (_, allow) = jit_rules(&arm.rules(&api_nsg()).await);
    assert_eq!(
        allow.len(),
        1,
        "the newer rule replaced the older: {allow:?}"
    );
    assert_eq!(
        allow[0]["properties"]["sourceAddressPrefix"],
        "203.0.113.0/24"
    );
}

fn policy_vm(id: &str, port: u16) -> Value {
    json!({
        "id": id,
        "ports": [{
            "number": port,
            "protocol": "*",
            "allowedSourceAddressPrefix": "*",
            "maxRequestAccessDuration": "PT3H"
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_without_a_vm_removes_only_that_vms_rules() {
    let arm = start().await;
    let names = ["api-01", "web-01", "cache-01"];
    let ids: Vec<String> = names
        .iter()
        .map(|name| vm_id(PRODUCTION, "rg-web", name))
        .collect();
    let ports: Vec<u16> = ids.iter().map(|id| arm.port_of(id, "ssh")).collect();
    let body = |included: &[usize]| {
        json!({
            "kind": "Basic",
            "location": "westeurope",
            "properties": {
                "virtualMachines": included
                    .iter()
                    .map(|&index| policy_vm(&ids[index], ports[index]))
                    .collect::<Vec<_>>()
            }
        })
    };
    let url = format!("{}?api-version={JIT}", web_policy());
    let reply = arm.put(&url, &body(&[0, 1, 2])).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["properties"]["virtualMachines"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    let nsg = |name: &str| nsg_id(PRODUCTION, "rg-web", &format!("{name}-nsg"));
    let mut deny_names = Vec::new();
    for name in names {
        let (deny, _) = jit_rules(&arm.rules(&nsg(name)).await);
        assert_eq!(deny.len(), 1, "{name}: {deny:?}");
        deny_names.push(deny[0]["name"].clone());
    }
    // batch-01 was in the policy before this PUT and is not any more.
    let (deny, _) = jit_rules(&arm.rules(&nsg("batch-01")).await);
    assert!(deny.is_empty(), "batch-01 keeps {deny:?}");

    let reply = arm.put(&url, &body(&[0, 2])).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (deny, _) = jit_rules(&arm.rules(&nsg("web-01")).await);
    assert!(deny.is_empty(), "web-01 keeps {deny:?}");
    for (index, name) in [(0, "api-01"), (2, "cache-01")] {
        let (deny, _) = jit_rules(&arm.rules(&nsg(name)).await);
        assert_eq!(deny.len(), 1, "{name}: {deny:?}");
        assert_eq!(
            deny[0]["name"], deny_names[index],
            "{name}'s rule was rewritten"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_removes_every_rule_of_the_policy() {
    let arm = start().await;
    let port = arm.port_of(&api_01(), "ssh");
    let reply = arm
        .post(
            &format!("{}/initiate?api-version={JIT}", web_policy()),
            &initiate_body(&api_01(), port, json!({})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    arm.advance_clock(DELAY).await;
    assert_eq!(jit_rules(&arm.rules(&api_nsg()).await).1.len(), 1);

    let url = format!("{}?api-version={JIT}", web_policy());
    assert_eq!(arm.delete(&url).await.status, 200);
    for name in ["api-01", "web-01", "batch-01"] {
        let rules = arm
            .rules(&nsg_id(PRODUCTION, "rg-web", &format!("{name}-nsg")))
            .await;
        let (deny, allow) = jit_rules(&rules);
        assert!(deny.is_empty() && allow.is_empty(), "{name}: {rules:?}");
    }
    let api_rules = arm.rules(&api_nsg()).await;
    assert_eq!(
        api_rules.len(),
        1,
        "the NSG's own rule stays: {api_rules:?}"
    );
    assert_eq!(arm.delete(&url).await.status, 204);
    assert_eq!(arm.get(&url).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initiate_refuses_what_the_policy_does_not_allow() {
    let arm = start().await;
    let port = arm.port_of(&api_01(), "ssh");
    let initiate = format!("{}/initiate?api-version={JIT}", web_policy());
    let not_a_subset = format!(
        "The given access request is not a subset of policy '{}'. Please make sure that the \
         access request is within the allowed policy properties.",
        web_policy()
    );
    let cases = [
        (
            "a port outside the policy",
            initiate_body(&api_01(), port.wrapping_add(1), json!({})),
        ),
        (
            "more than the maximum duration",
            initiate_body(&api_01(), port, json!({ "duration": "PT4H" })),
        ),
        (
            "a VM outside the policy",
            initiate_body(&vm_id(PRODUCTION, "rg-web", "cache-01"), port, json!({})),
        ),
    ];
    for (what, body) in cases {
        let reply = arm.post(&initiate, &body).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        assert_eq!(reply.error_message(), not_a_subset, "{what}");
    }
    let past = arm
        .post(
            &initiate,
            &initiate_body(
                &api_01(),
                port,
                json!({ "duration": null, "endTimeUtc": "2020-01-01T00:00:00Z" }),
            ),
        )
        .await;
    assert_eq!(past.status, 400, "{}", past.body);
    let end = arm
        .emulator
        .clock()
        .now()
        .checked_add(SignedDuration::from_hours(3))
        .expect("in range");
    let at_the_maximum = arm
        .post(
            &initiate,
            &initiate_body(
                &api_01(),
                port,
                json!({ "duration": null, "endTimeUtc": end.to_string() }),
            ),
        )
        .await;
    assert_eq!(at_the_maximum.status, 202, "{}", at_the_maximum.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_source_ranges_must_be_requested_literally() {
    let arm = start().await;
    let vm = vm_id(DEVELOPMENT, "rg-app", "web-01");
    let port = arm.port_of(&vm, "ssh");
    let initiate = format!(
        "{}/initiate?api-version={JIT}",
        policy_id(DEVELOPMENT, "rg-app", "westeurope", "default")
    );
    // The caller's own address is inside 198.51.100.0/24, but JIT compares strings.
    for prefix in [Value::Null, json!(CLIENT_IP), json!("10.0.0.0/8")] {
        let reply = arm
            .post(
                &initiate,
                &initiate_body(&vm, port, json!({ "allowedSourceAddressPrefix": prefix })),
            )
            .await;
        assert_eq!(reply.status, 400, "{prefix}: {}", reply.body);
        assert!(
            reply.error_message().contains("not a subset"),
            "{}",
            reply.body
        );
    }
    let reply = arm
        .post(
            &initiate,
            &initiate_body(
                &vm,
                port,
                json!({ "allowedSourceAddressPrefix": "198.51.100.0/24" }),
            ),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let reply = arm
        .post(
            &initiate,
            &initiate_body(
                &vm,
                port,
                json!({ "allowedSourceAddressPrefixes": ["203.0.113.0/24", "198.51.100.0/24"] }),
            ),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        reply.body["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefixes"],
        json!(["203.0.113.0/24", "198.51.100.0/24"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_behind_the_firewall_gets_a_mapped_port_and_a_dnat_rule() {
    let arm = start().await;
    let vm = vm_id(PRODUCTION, "rg-edge", "fw-01");
    let port = arm.port_of(&vm, "ssh");
    let policy_url = policy_id(PRODUCTION, "rg-edge", "eastus", "default");
    let policy = arm.policy(&policy_url).await;
    assert_eq!(
        policy["properties"]["virtualMachines"][0]["publicIpAddress"],
        "127.0.0.1"
    );
    let reply = arm
        .post(
            &format!("{policy_url}/initiate?api-version={JIT}"),
            &initiate_body(&vm, port, json!({})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        reply.body["virtualMachines"][0]["ports"][0]["mappedPort"],
        port
    );
    arm.advance_clock(DELAY).await;
    let snapshot = arm.emulator.snapshot();
    let collections = &snapshot["azure_firewalls"][0]["properties"]["natRuleCollections"];
    let rule = &collections[0]["properties"]["rules"][0];
    assert_eq!(rule["destinationPorts"], json!([port.to_string()]));
    assert_eq!(rule["translatedAddress"], "10.3.1.4");
    assert_eq!(rule["sourceAddresses"], json!([CLIENT_IP]));
    arm.advance_clock(SignedDuration::from_hours(1)).await;
    let snapshot = arm.emulator.snapshot();
    assert_eq!(
        snapshot["azure_firewalls"][0]["properties"]["natRuleCollections"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_may_look_but_not_initiate() {
    let arm = start().await;
    let world = World::default_world();
    let reader = world
        .principals
        .iter()
        .find(|principal| principal.name == "jit-reader")
        .expect("the default world has jit-reader");
    let token = arm
        .token_for(
            reader.client_id.as_deref().unwrap_or_default(),
            reader.client_secret.as_deref().unwrap_or_default(),
        )
        .await;
    let read = arm
        .send_as(
            &token,
            reqwest::Method::GET,
            &format!("{}?api-version={JIT}", web_policy()),
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    let port = arm.port_of(&api_01(), "ssh");
    let refused = arm
        .send_as(
            &token,
            reqwest::Method::POST,
            &format!("{}/initiate?api-version={JIT}", web_policy()),
            Some(&initiate_body(&api_01(), port, json!({}))),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.error_code(), "AuthorizationFailed");
    assert!(
        refused
            .error_message()
            .contains("Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"),
        "{}",
        refused.body
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_port_answers_only_while_a_request_is_open() {
    let arm = start().await;
    let port = arm.port_of(&api_01(), "ssh");
    assert_eq!(
        first_words(port, SILENCE).await,
        None,
        "silent before initiate"
    );

    let reply = arm
        .post(
            &format!("{}/initiate?api-version={JIT}", web_policy()),
            &initiate_body(&api_01(), port, json!({})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        first_words(port, SILENCE).await,
        None,
        "silent while Initiating"
    );

    arm.advance_clock(DELAY).await;
    let banner = first_words(port, PROMPTLY).await.unwrap_or_default();
    assert!(banner.starts_with("SSH-2.0-"), "banner: {banner:?}");

    arm.advance_clock(SignedDuration::from_hours(1)).await;
    assert_eq!(
        first_words(port, SILENCE).await,
        None,
        "silent after expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deallocated_vm_stays_silent_even_with_a_request_open() {
    let arm = start().await;
    let vm = vm_id(PRODUCTION, "rg-web", "batch-01");
    let port = arm.port_of(&vm, "ssh");
    let reply = arm
        .post(
            &format!("{}/initiate?api-version={JIT}", web_policy()),
            &initiate_body(&vm, port, json!({})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    arm.advance_clock(DELAY).await;
    assert_eq!(first_words(port, SILENCE).await, None, "deallocated");
    assert!(arm.emulator.set_power_state(&vm, true));
    let banner = first_words(port, PROMPTLY).await.unwrap_or_default();
    assert!(banner.starts_with("SSH-2.0-"), "banner: {banner:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_address_changed_is_not_let_in_by_the_old_rule() {
    let arm = start().await;
    let port = arm.port_of(&api_01(), "ssh");
    let reply = arm
        .post(
            &format!("{}/initiate?api-version={JIT}", web_policy()),
            &initiate_body(&api_01(), port, json!({})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    arm.advance_clock(DELAY).await;
    let banner = first_words(port, PROMPTLY).await.unwrap_or_default();
    assert!(banner.starts_with("SSH-2.0-"), "banner: {banner:?}");

    arm.emulator
        .set_client_ip("203.0.113.50".parse().expect("an address"));
    assert_eq!(
        first_words(port, SILENCE).await,
        None,
        "the rule names the old address"
    );
}
