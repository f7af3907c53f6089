//! ARM answers as a malicious or broken service could send them, read into the models
//! `jit` uses (JIT policies and their requests, the initiate answer, VMs, NICs, public
//! IPs, NSGs, subscriptions, Defender locations, Resource Graph pages and rows), then
//! handed to the pure functions that act on them (status, active ports, the window a
//! request opened, port and duration plans, ownership markers).
//!
//! The first byte picks the model; the rest is the JSON body. Checked beyond "no panic":
//! whatever `jit` reads, it can write back and read again (a policy is read, merged and
//! PUT back whole), and the VM entries and ports survive that round trip.

#![no_main]

use jiff::{SignedDuration, Timestamp};
use jit_agent::access::locate::VmSummary;
use jit_agent::access::ownership::{RequestMarker, readable_justification};
use jit_agent::access::plan::{PortPreference, choose_duration, choose_ports};
use jit_agent::access::status::{active_ports, entries_for_vm, recent_requests};
use jit_agent::access::window::{AccessWindow, port_source};
use jit_agent::azure::models::{
    AscLocation, AsyncOperationStatus, JitNetworkAccessPolicy, JitNetworkAccessRequest,
    NetworkInterface, NetworkSecurityGroup, Page, PublicIpAddress, QueryResponse, Subscription,
    VirtualMachine,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads `body` as `T`; what was read is written and read again without error.
fn read<T: DeserializeOwned + Serialize>(body: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(body).ok()?;
    let written = serde_json::to_vec(&value).expect("a model read from JSON writes back");
    let _again: T = serde_json::from_slice(&written).expect("what jit writes, it reads");
    Some(value)
}

fn template(vm_id: &str) -> AccessWindow {
    AccessWindow {
        vm_id: vm_id.to_owned(),
        vm_name: "vm".to_owned(),
        resource_group: "rg".to_owned(),
        subscription_id: "s".to_owned(),
        policy_id: "p".to_owned(),
        ports: Vec::new(),
        source_address_prefix: "198.51.100.7".to_owned(),
        requested_at: Timestamp::UNIX_EPOCH,
        ends_at: Timestamp::UNIX_EPOCH,
        server_clock_offset_at_registration: SignedDuration::ZERO,
        justification: None,
        connect_address: None,
        requestor: None,
    }
}

fn request(request: &JitNetworkAccessRequest, vm_id: &str) {
    let _ = AccessWindow::from_request(&template(vm_id), request, SignedDuration::ZERO);
    if let Some(justification) = request.justification.as_deref() {
        let _ = RequestMarker::find(justification);
        let _ = readable_justification(justification);
    }
    for vm in &request.virtual_machines {
        for port in &vm.ports {
            let _ = port_source(port);
        }
    }
}

fn policy(policy: &JitNetworkAccessPolicy) {
    // The VM entries and ports survive the write-back that every merge does.
    let written = serde_json::to_string(policy).expect("writes");
    let again: JitNetworkAccessPolicy = serde_json::from_str(&written).expect("reads back");
    assert_eq!(
        again.properties.virtual_machines.len(),
        policy.properties.virtual_machines.len()
    );
    for (before, after) in policy
        .properties
        .virtual_machines
        .iter()
        .zip(&again.properties.virtual_machines)
    {
        assert_eq!(before.id, after.id);
        assert_eq!(before.ports.len(), after.ports.len());
        for (rule_before, rule_after) in before.ports.iter().zip(&after.ports) {
            assert_eq!(rule_before.number, rule_after.number);
            assert_eq!(rule_before.allowed_sources(), rule_after.allowed_sources());
            assert_eq!(
                rule_before.max_request_access_duration,
                rule_after.max_request_access_duration
            );
        }
    }

    let policies = std::slice::from_ref(policy);
    for entry in &policy.properties.virtual_machines {
        let _ = entries_for_vm(policies, &entry.id);
        let _ = active_ports(policy, &entry.id, Timestamp::UNIX_EPOCH);
        let _ = active_ports(policy, &entry.id, Timestamp::MAX);
        let _ = recent_requests(policy, &entry.id, 5);
        for preference in [
            PortPreference::Automatic,
            PortPreference::Ssh,
            PortPreference::Rdp,
            PortPreference::Number(22),
        ] {
            if let Ok(plan) = choose_ports(None, &entry.ports, preference) {
                let rules = plan.rules();
                let _ = choose_duration(None, &rules);
                let _ = choose_duration(Some(SignedDuration::from_hours(1)), &rules);
            }
        }
        for each in &policy.properties.requests {
            request(each, &entry.id);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 12 {
        0 => {
            if let Some(read) = read::<JitNetworkAccessPolicy>(body) {
                policy(&read);
            }
        }
        1 => {
            if let Some(page) = read::<Page<JitNetworkAccessPolicy>>(body) {
                page.value.iter().for_each(policy);
            }
        }
        2 => {
            if let Some(read) = read::<JitNetworkAccessRequest>(body) {
                for vm in &read.virtual_machines {
                    request(&read, &vm.id);
                }
            }
        }
        3 => {
            let _ = read::<VirtualMachine>(body);
        }
        4 => {
            let _ = read::<Page<VirtualMachine>>(body);
        }
        5 => {
            let _ = read::<NetworkInterface>(body);
        }
        6 => {
            let _ = read::<PublicIpAddress>(body);
        }
        7 => {
            let _ = read::<NetworkSecurityGroup>(body);
        }
        8 => {
            let _ = read::<Page<Subscription>>(body);
        }
        9 => {
            let _ = read::<Page<AscLocation>>(body);
        }
        10 => {
            // A Resource Graph page, then its rows as the VM search reads them.
            if let Some(response) = read::<QueryResponse>(body) {
                let _ = response.is_truncated();
                if let serde_json::Value::Array(rows) = response.data {
                    for row in rows {
                        let _ = serde_json::from_value::<VmSummary>(row);
                    }
                }
            }
        }
        _ => {
            let _ = read::<AsyncOperationStatus>(body);
        }
    }
});
