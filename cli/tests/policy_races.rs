//! Policy writes that keep every change they could have seen, tested by injecting
//! another writer's change at a chosen point of our read-merge-write (the emulator's
//! concurrent-writer hooks), not by timing.
//!
//! Each test starts from the default world's rg-web policy (api-01, web-01, batch-01;
//! cache-01 is in the group but not in the policy) and checks the emulator's own state:
//! what we named has our value, what the other writer changed has theirs, and nothing
//! else moved.

mod policy_support;
mod support;

use std::time::Duration;

use jit_agent::access::enable::{
    ChangeOutcome, PerPort, PortsChange, VmPlacement, WriteOptions, commit, disable_with,
    enable_with, plan_ports_change, port_rules,
};
use jit_agent::azure::models::JitProtocol;
use jit_emulator::{Emulator, FaultKind, FaultSpec, HookPoint, HookSpec, PolicyChange, World};
use policy_support::{arm, entries, entry, policy, policy_requests, vm_id, web_policy};
use serde_json::json;

fn options() -> WriteOptions {
    WriteOptions {
        creation_settle: Duration::ZERO,
        ..WriteOptions::default()
    }
}

fn placement(name: &str) -> VmPlacement {
    VmPlacement::new(&vm_id("rg-web", name), "westeurope").expect("a VM id")
}

fn upsert(vm: &str, ports: &[(u16, &str)]) -> PolicyChange {
    PolicyChange::UpsertVm {
        virtual_machine: entry(&vm_id("rg-web", vm), ports),
    }
}

/// The port the world lists for every rg-web VM's SSH (a bound loopback port).
fn ssh_port(emulator: &Emulator, vm: &str) -> u16 {
    let entries = entries(&policy(emulator, &web_policy()));
    entries
        .get(vm)
        .and_then(|ports| ports.first())
        .and_then(|port| u16::try_from(port.0).ok())
        .unwrap_or(22)
}

/// Hooks that fired, and whether their change applied.
fn fired(emulator: &Emulator) -> Vec<bool> {
    emulator
        .hooks()
        .iter()
        .map(|hook| hook.fired.as_ref().is_some_and(|firing| firing.applied))
        .collect()
}

/// After a failed write, the next write comes only after a fresh read: never two PUTs
/// (or a PUT and a DELETE) in a row.
fn assert_reread_before_every_retry(log: &[String]) {
    let writes: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, line)| line.starts_with("PUT") || line.starts_with("DELETE"))
        .map(|(index, _)| index)
        .collect();
    for pair in writes.windows(2) {
        assert!(
            log[pair[0] + 1..pair[1]]
                .iter()
                .any(|line| line.starts_with("GET 200") || line.starts_with("GET 404")),
            "a write was resent without reading the policy first: {log:?}"
        );
    }
}

#[tokio::test]
async fn enable_keeps_a_change_made_after_our_first_read_and_one_made_during_a_failed_write() {
    let emulator = Emulator::start(World::default_world()).expect("starts");
    let arm = arm(&emulator);
    let policy_id = web_policy();
    let before = entries(&policy(&emulator, &policy_id));
    // Their first change lands right after our first (planning) read…
    emulator
        .add_hook(HookSpec::new(
            &policy_id,
            HookPoint::AfterGet,
            upsert("web-01", &[(2222, "PT1H")]),
        ))
        .expect("hook");
    // …their second instead of our first PUT, which fails with a 503.
    emulator
        .add_hook(HookSpec::new(
            &policy_id,
            HookPoint::FailedPut,
            PolicyChange::RemoveVm {
                vm_id: vm_id("rg-web", "batch-01"),
            },
        ))
        .expect("hook");

    let rules = port_rules(
        &[22, 8080],
        &JitProtocol::Tcp,
        &["*".to_owned()],
        jiff::SignedDuration::from_hours(2),
    )
    .expect("rules");
    let change = enable_with(&arm, &placement("cache-01"), rules, &options())
        .await
        .expect("enabled");
    assert_eq!(change.outcome, ChangeOutcome::Added);
    assert_eq!(change.writes, 2, "one failed PUT, one that landed");
    assert_eq!(fired(&emulator), [true, true]);

    let after = entries(&policy(&emulator, &policy_id));
    assert_eq!(
        after["web-01"][0].0, 2222,
        "their change after our read survives"
    );
    assert!(
        !after.contains_key("batch-01"),
        "their removal during our failed write survives"
    );
    assert_eq!(
        after["api-01"], before["api-01"],
        "what nobody named is unchanged"
    );
    let ours: Vec<u64> = after["cache-01"].iter().map(|port| port.0).collect();
    assert_eq!(ours, [22, 8080], "ours landed");
    assert_reread_before_every_retry(&policy_requests(&emulator, &policy_id));
}

#[tokio::test]
async fn a_retried_put_after_a_transient_503_reads_and_merges_again_first() {
    let emulator = Emulator::start(World::default_world()).expect("starts");
    let arm = arm(&emulator);
    let policy_id = web_policy();
    // A plain 503 (no other writer) on the first PUT, and a reset on the second.
    for kind in [
        FaultKind::ServiceUnavailable {
            retry_after_seconds: None,
        },
        FaultKind::ConnectionReset,
    ] {
        emulator
            .inject_fault(FaultSpec {
                method: Some("PUT".to_owned()),
                path: Some(format!("{policy_id}*")),
                path_regex: None,
                fault: kind,
                probability: None,
                times: Some(1),
            })
            .expect("fault");
    }
    let rules = port_rules(
        &[22],
        &JitProtocol::All,
        &[],
        jiff::SignedDuration::from_hours(3),
    )
    .expect("rules");
    let change = enable_with(&arm, &placement("cache-01"), rules, &options())
        .await
        .expect("enabled after two transient failures");
    assert_eq!(change.writes, 3);
    let log = policy_requests(&emulator, &policy_id);
    assert_eq!(
        log.iter().filter(|line| line.starts_with("PUT")).count(),
        3,
        "{log:?}"
    );
    assert_reread_before_every_retry(&log);
    assert!(entries(&policy(&emulator, &policy_id)).contains_key("cache-01"));
}

#[tokio::test]
async fn edit_changes_only_the_named_ports_and_keeps_concurrent_changes() {
    let emulator = Emulator::start(World::default_world()).expect("starts");
    let arm = arm(&emulator);
    let policy_id = web_policy();
    let port = ssh_port(&emulator, "api-01");
    // api-01 gets a second port from another admin right after our planning read; our
    // edit names only `port`, so theirs must survive even on api-01 itself.
    emulator
        .add_hook(HookSpec::new(
            &policy_id,
            HookPoint::AfterGet,
            upsert("api-01", &[(port, "PT3H"), (9000, "PT2H")]),
        ))
        .expect("hook");
    emulator
        .add_hook(HookSpec::new(
            &policy_id,
            HookPoint::FailedPut,
            upsert("cache-01", &[(22, "PT1H")]),
        ))
        .expect("hook");
    let change = PortsChange {
        add: vec![8443],
        protocol: JitProtocol::Tcp,
        remove: Vec::new(),
        max_duration: PerPort {
            every: None,
            ports: vec![(port, jiff::SignedDuration::from_mins(30))],
        },
        allowed_sources: PerPort::default(),
        default_sources: vec!["*".to_owned()],
        default_max_duration: jiff::SignedDuration::from_hours(3),
    };
    let planned = plan_ports_change(&arm, &placement("api-01"), &change)
        .await
        .expect("planned");
    let result = commit(&arm, &planned, &options()).await.expect("committed");
    assert_eq!(result.outcome, ChangeOutcome::Updated);
    assert_eq!(fired(&emulator), [true, true]);
    let after = entries(&policy(&emulator, &policy_id));
    let api: Vec<(u64, String)> = after["api-01"]
        .iter()
        .map(|port| (port.0, port.3.clone()))
        .collect();
    let mut expected = vec![
        (u64::from(port), "PT30M".to_owned()),
        (8443, "PT3H".to_owned()),
        (9000, "PT2H".to_owned()),
    ];
    expected.sort();
    assert_eq!(api, expected, "ours changed, theirs kept on the same VM");
    assert_eq!(
        after["cache-01"][0].0, 22,
        "their VM added during our failed write survives"
    );
    assert_reread_before_every_retry(&policy_requests(&emulator, &policy_id));

    // The last port removed takes the VM out of the policy.
    let remove_all = PortsChange {
        add: Vec::new(),
        remove: vec![port, 8443, 9000],
        max_duration: PerPort::default(),
        ..change
    };
    let planned = plan_ports_change(&arm, &placement("api-01"), &remove_all)
        .await
        .expect("planned");
    let result = commit(&arm, &planned, &options()).await.expect("committed");
    assert_eq!(result.outcome, ChangeOutcome::Removed);
    assert!(!entries(&policy(&emulator, &policy_id)).contains_key("api-01"));
}

#[tokio::test]
async fn disable_keeps_concurrent_changes_and_never_deletes_a_vm_added_meanwhile() {
    let emulator = Emulator::start(World::default_world()).expect("starts");
    let arm = arm(&emulator);
    let policy_id = web_policy();
    emulator
        .add_hook(HookSpec::new(
            &policy_id,
            HookPoint::AfterGet,
            upsert("web-01", &[(2222, "PT1H")]),
        ))
        .expect("hook");
    emulator
        .add_hook(HookSpec::new(
            &policy_id,
            HookPoint::FailedPut,
            upsert("cache-01", &[(22, "PT1H")]),
        ))
        .expect("hook");
    let change = disable_with(&arm, &placement("batch-01"), &options())
        .await
        .expect("disabled");
    assert_eq!(change.outcome, ChangeOutcome::Removed);
    let after = entries(&policy(&emulator, &policy_id));
    assert!(!after.contains_key("batch-01"));
    assert_eq!(after["web-01"][0].0, 2222);
    assert!(after.contains_key("cache-01"));
    assert!(after.contains_key("api-01"));

    // Now api-01 alone: disabling it would delete the policy, but another writer adds a
    // VM right after our first read, so the policy must stay with their VM in it.
    emulator
        .apply_change(
            &policy_id,
            &PolicyChange::PutPolicy {
                body: json!({"kind": "Basic", "properties": {"virtualMachines": [
                    entry(&vm_id("rg-web", "api-01"), &[(22, "PT3H")])
                ]}}),
            },
        )
        .expect("reset to one VM");
    emulator.clear_hooks();
    emulator
        .add_hook(HookSpec::new(
            &policy_id,
            HookPoint::AfterGet,
            upsert("cache-01", &[(22, "PT1H")]),
        ))
        .expect("hook");
    let change = disable_with(&arm, &placement("api-01"), &options())
        .await
        .expect("disabled");
    assert_eq!(
        change.outcome,
        ChangeOutcome::Removed,
        "not deleted: their VM is in it"
    );
    let after = entries(&policy(&emulator, &policy_id));
    assert_eq!(after.keys().collect::<Vec<_>>(), ["cache-01"]);
    assert!(
        !policy_requests(&emulator, &policy_id)
            .iter()
            .any(|line| line.starts_with("DELETE")),
        "the policy was never deleted"
    );

    // With nobody else writing, the last VM's removal deletes the policy.
    let change = disable_with(&arm, &placement("cache-01"), &options())
        .await
        .expect("disabled");
    assert_eq!(change.outcome, ChangeOutcome::Deleted);
    assert!(policy(&emulator, &policy_id).is_null());
}

#[tokio::test]
async fn creating_a_policy_merges_into_one_created_by_someone_else_meanwhile() {
    let emulator = Emulator::start(World::default_world()).expect("starts");
    let arm = arm(&emulator);
    let policy_id = web_policy();
    emulator
        .apply_change(&policy_id, &PolicyChange::DeletePolicy)
        .expect("no policy in rg-web");
    // Our planning read finds nothing; another client creates the policy before our
    // write, within our read-before-write: our fresh read sees it and merges.
    let rules = port_rules(
        &[22],
        &JitProtocol::All,
        &[],
        jiff::SignedDuration::from_hours(3),
    )
    .expect("rules");
    let planned = jit_agent::access::enable::plan_enable(&arm, &placement("cache-01"), rules)
        .await
        .expect("planned");
    assert!(planned.current.is_none(), "no policy while planning");
    emulator
        .apply_change(
            &policy_id,
            &PolicyChange::PutPolicy {
                body: json!({"kind": "Basic", "properties": {"virtualMachines": [
                    entry(&vm_id("rg-web", "api-01"), &[(22, "PT3H")])
                ]}}),
            },
        )
        .expect("someone else creates it");
    let change = commit(&arm, &planned, &options()).await.expect("committed");
    assert_eq!(
        change.outcome,
        ChangeOutcome::Added,
        "merged, not created over theirs"
    );
    let after = entries(&policy(&emulator, &policy_id));
    assert_eq!(after.keys().collect::<Vec<_>>(), ["api-01", "cache-01"]);

    // And a creation that another creation erases after our write is merged again,
    // found by the read after the settle time.
    emulator
        .apply_change(&policy_id, &PolicyChange::DeletePolicy)
        .expect("deleted");
    let rules = port_rules(
        &[22],
        &JitProtocol::All,
        &[],
        jiff::SignedDuration::from_hours(3),
    )
    .expect("rules");
    let planned = jit_agent::access::enable::plan_enable(&arm, &placement("cache-01"), rules)
        .await
        .expect("planned");
    let other_creator = {
        let policy_id = policy_id.clone();
        let emulator = &emulator;
        async move {
            // Wait for our PUT to land, then overwrite it as a second creator would.
            loop {
                if !policy(emulator, &policy_id).is_null() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            emulator
                .apply_change(
                    &policy_id,
                    &PolicyChange::PutPolicy {
                        body: json!({"kind": "Basic", "properties": {"virtualMachines": [
                            entry(&vm_id("rg-web", "web-01"), &[(22, "PT3H")])
                        ]}}),
                    },
                )
                .expect("overwritten");
        }
    };
    let settle = WriteOptions {
        creation_settle: Duration::from_millis(500),
        ..WriteOptions::default()
    };
    let (change, ()) = tokio::join!(commit(&arm, &planned, &settle), other_creator);
    let change = change.expect("committed");
    assert_eq!(change.outcome, ChangeOutcome::Created);
    assert!(change.writes >= 2, "our erased creation was merged again");
    let after = entries(&policy(&emulator, &policy_id));
    assert_eq!(after.keys().collect::<Vec<_>>(), ["cache-01", "web-01"]);
}
