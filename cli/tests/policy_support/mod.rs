//! What the policy-administration suites share (each also includes `support`): an
//! in-process ARM client of an emulator, the default world's ids, and reading policies
//! back from the emulator's state (never through `jit` itself, so a test cannot agree
//! with the code it tests by construction).

#![allow(dead_code)]

use std::time::Duration;

use jit_agent::azure::arm::{ArmClient, ArmClientOptions, RetryOptions};
use jit_agent::azure::cloud::AzureCloud;
use jit_agent::azure::credential::{CredentialKind, CredentialOptions, Secret, build_credential};
use jit_agent::azure::transport::{HttpTransport, TransportOptions};
use jit_emulator::Emulator;
use serde_json::{Value, json};

/// The default world's production subscription.
pub const PRODUCTION: &str = "3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b34";

/// The id of a VM of the production subscription.
pub fn vm_id(resource_group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{PRODUCTION}/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/{name}"
    )
}

/// The id of a policy of the production subscription.
pub fn policy_id(resource_group: &str, location: &str, name: &str) -> String {
    format!(
        "/subscriptions/{PRODUCTION}/resourceGroups/{resource_group}/providers/Microsoft.Security/locations/{location}/jitNetworkAccessPolicies/{name}"
    )
}

/// rg-web's policy `default`: api-01, web-01 and batch-01.
pub fn web_policy() -> String {
    policy_id("rg-web", "westeurope", "default")
}

/// A client of the emulator signed in as its service principal, with short retry waits
/// (the rules are the real ones; only the first backoff is 20 ms instead of 500).
pub fn arm(emulator: &Emulator) -> ArmClient {
    let info = emulator.info();
    let cloud = AzureCloud::custom(
        &info.arm_endpoint,
        &info.authority_host,
        Some("https://management.azure.com/".to_owned()),
    )
    .expect("a custom cloud");
    let transport = HttpTransport::new(&TransportOptions {
        extra_ca_files: vec![info.ca_cert.clone()],
        ..TransportOptions::default()
    })
    .expect("HTTPS trusting the emulator");
    let credential = build_credential(
        &cloud,
        &transport,
        &CredentialOptions {
            kind: CredentialKind::ServicePrincipal,
            tenant_id: Some(info.tenant_id.clone()),
            client_id: Some(info.service_principal.client_id.clone()),
            client_secret: Some(Secret::new(info.service_principal.client_secret.clone())),
            ..CredentialOptions::default()
        },
    )
    .expect("a credential");
    ArmClient::new(
        &cloud.endpoints(),
        &transport,
        credential,
        ArmClientOptions {
            retry: RetryOptions {
                initial_delay: Duration::from_millis(20),
                ..RetryOptions::default()
            },
            ..ArmClientOptions::default()
        },
    )
}

/// A policy as the emulator holds it now (`Value::Null` when there is none).
pub fn policy(emulator: &Emulator, id: &str) -> Value {
    crate::support::policy_in_state(emulator, id)
}

/// A port as the tests compare it: number, protocol (upper case), sorted sources,
/// maximum as written.
pub type PortKey = (u64, String, Vec<String>, String);

/// `(lower-case vm name → ports)` of a policy, ports as [`PortKey`] sorted, so two reads
/// compare whatever the order.
pub fn entries(policy: &Value) -> std::collections::BTreeMap<String, Vec<PortKey>> {
    policy["properties"]["virtualMachines"]
        .as_array()
        .map(|vms| {
            vms.iter()
                .map(|vm| {
                    let name = vm["id"]
                        .as_str()
                        .unwrap_or_default()
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    let mut ports: Vec<PortKey> = vm["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|port| {
                            (
                                port["number"].as_u64().unwrap_or_default(),
                                port["protocol"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_ascii_uppercase(),
                                crate::support::rule_sources(port),
                                port["maxRequestAccessDuration"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_owned(),
                            )
                        })
                        .collect();
                    ports.sort();
                    (name, ports)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A policy entry for another writer's change.
pub fn entry(vm_id: &str, ports: &[(u16, &str)]) -> Value {
    json!({
        "id": vm_id,
        "ports": ports
            .iter()
            .map(|(number, maximum)| json!({
                "number": number,
                "protocol": "*",
                "allowedSourceAddressPrefix": "*",
                "maxRequestAccessDuration": maximum,
            }))
            .collect::<Vec<_>>(),
    })
}

/// `METHOD status` of every logged ARM request to the policy itself (query dropped), in
/// order.
pub fn policy_requests(emulator: &Emulator, policy_id: &str) -> Vec<String> {
    crate::support::requests_to(emulator, policy_id)
}
