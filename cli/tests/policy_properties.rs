//! A property of every policy write, over random policies and random sequences of
//! enable, edit, disable and apply, each with another writer acting at a hook point
//! (right after our first read, or instead of our first write): **no VM or port that no
//! step named ever changes, and every concurrent change survives**.
//!
//! The oracle is a model of the policy (VM → ports): each step applies the other
//! writer's change (when its hook fired and the emulator applied it) and then ours, and
//! after every step the emulator's policy must equal the model exactly. The other writer
//! only ever touches VMs the step does not name, so both orders give the same model.
//!
//! Runs against one in-process emulator; each case starts by writing its random policy.
//! `JIT_PROPTEST_CASES` (default 24) and `JIT_PROPTEST_SEED` (a fixed default, so a
//! failure reproduces) tune it.

mod policy_support;
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jit_agent::access::enable::{
    ChangeError, PerPort, PortsChange, VmPlacement, WriteOptions, commit, disable_with,
    enable_with, plan_ports_change, port_rule,
};
use jit_agent::access::policy_file::{FilePolicy, FileVm, PolicyFile, plan_file};
use jit_agent::azure::arm::ArmClient;
use jit_agent::azure::models::{JitNetworkAccessPortRule, JitProtocol};
use jit_emulator::{Emulator, HookPoint, HookSpec, PolicyChange, World};
use policy_support::{PRODUCTION, arm, entries, policy, vm_id, web_policy};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use serde_json::json;

/// The VMs of rg-web.
const VMS: [&str; 4] = ["api-01", "web-01", "batch-01", "cache-01"];
const NUMBERS: [u16; 5] = [22, 80, 443, 8080, 9000];
const MAXIMA: [&str; 3] = ["PT1H", "PT2H", "PT3H"];
const DEFAULT_SEED: u64 = 0x6a69_745f_706f_6c79;

/// How many concurrent changes landed, over every case (the test is no test without).
static LANDED: AtomicUsize = AtomicUsize::new(0);

/// A port as generated: indexes into the tables above.
#[derive(Debug, Clone, Copy)]
struct Port {
    number: u16,
    protocol: u8,
    sources: u8,
    maximum: u8,
}

impl Port {
    fn protocol(self) -> JitProtocol {
        match self.protocol {
            0 => JitProtocol::All,
            1 => JitProtocol::Tcp,
            _ => JitProtocol::Udp,
        }
    }

    fn sources(self) -> Vec<String> {
        match self.sources {
            0 => vec!["*".to_owned()],
            1 => vec!["10.0.0.0/8".to_owned()],
            _ => vec!["10.0.0.0/8".to_owned(), "192.0.2.1".to_owned()],
        }
    }

    fn rule(self) -> JitNetworkAccessPortRule {
        port_rule(
            self.number,
            self.protocol(),
            &self.sources(),
            MAXIMA[usize::from(self.maximum)],
        )
    }
}

fn port() -> impl Strategy<Value = Port> {
    (0..NUMBERS.len(), 0u8..3, 0u8..3, 0u8..3).prop_map(|(number, protocol, sources, maximum)| {
        Port {
            number: NUMBERS[number],
            protocol,
            sources,
            maximum,
        }
    })
}

/// 1–3 ports with distinct numbers.
fn ports() -> impl Strategy<Value = Vec<Port>> {
    prop::collection::vec(port(), 1..=3).prop_map(|mut ports| {
        let mut seen = Vec::new();
        ports.retain(|port| {
            let new = !seen.contains(&port.number);
            seen.push(port.number);
            new
        });
        ports
    })
}

#[derive(Debug, Clone)]
enum Step {
    Enable {
        vm: usize,
        ports: Vec<Port>,
    },
    Edit {
        vm: usize,
        add: Option<Port>,
        remove: Option<usize>,
        maximum: Option<u8>,
    },
    Disable {
        vm: usize,
    },
    Apply {
        entries: Vec<(usize, Vec<Port>)>,
        prune: bool,
    },
}

#[derive(Debug, Clone)]
struct Writer {
    after_get: bool,
    vm: usize,
    remove: bool,
    ports: Vec<Port>,
}

#[derive(Debug, Clone)]
struct Case {
    initial: Vec<Option<Vec<Port>>>,
    steps: Vec<(Step, Option<Writer>)>,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..VMS.len(), ports()).prop_map(|(vm, ports)| Step::Enable { vm, ports }),
        (
            0..VMS.len(),
            prop::option::of(port()),
            prop::option::of(0usize..3),
            prop::option::of(0u8..3)
        )
            .prop_map(|(vm, add, remove, maximum)| Step::Edit {
                vm,
                add,
                remove,
                maximum
            }),
        (0..VMS.len()).prop_map(|vm| Step::Disable { vm }),
        (
            prop::collection::vec((0..VMS.len(), ports()), 0..=3),
            any::<bool>()
        )
            .prop_map(|(entries, prune)| Step::Apply { entries, prune }),
    ]
}

fn writer() -> impl Strategy<Value = Writer> {
    (any::<bool>(), 0..VMS.len(), any::<bool>(), ports()).prop_map(
        |(after_get, vm, remove, ports)| Writer {
            after_get,
            vm,
            remove,
            ports,
        },
    )
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::option::of(ports()), VMS.len()),
        prop::collection::vec((step(), prop::option::of(writer())), 1..=4),
    )
        .prop_map(|(initial, steps)| Case { initial, steps })
}

/// A port as compared: number, protocol, sorted sources, maximum in seconds.
type Key = (u64, String, Vec<String>, i64);
type Model = BTreeMap<String, Vec<Key>>;

fn seconds(iso: &str) -> i64 {
    iso.parse::<jiff::SignedDuration>()
        .map(|duration| duration.as_secs())
        .unwrap_or(-1)
}

fn key(rule: &JitNetworkAccessPortRule) -> Key {
    let mut sources: Vec<String> = rule
        .allowed_sources()
        .iter()
        .map(|source| (*source).to_owned())
        .collect();
    sources.sort();
    (
        u64::from(rule.number),
        rule.protocol.as_str().to_ascii_uppercase(),
        sources,
        seconds(rule.max_request_access_duration.as_str()),
    )
}

fn keys(ports: &[Port]) -> Vec<Key> {
    let mut keys: Vec<Key> = ports.iter().map(|port| key(&port.rule())).collect();
    keys.sort();
    keys
}

/// The emulator's policy as a model.
fn observed(emulator: &Emulator) -> Model {
    entries(&policy(emulator, &web_policy()))
        .into_iter()
        .map(|(vm, ports)| {
            let mut ports: Vec<Key> = ports
                .into_iter()
                .map(|(number, protocol, sources, maximum)| {
                    (number, protocol, sources, seconds(&maximum))
                })
                .collect();
            ports.sort();
            (vm, ports)
        })
        .collect()
}

fn entry_json(vm: &str, ports: &[Port]) -> serde_json::Value {
    json!({
        "id": vm_id("rg-web", vm),
        "ports": ports.iter().map(|port| serde_json::to_value(port.rule()).unwrap_or_default()).collect::<Vec<_>>(),
    })
}

fn placement(vm: &str) -> VmPlacement {
    VmPlacement::new(&vm_id("rg-web", vm), "westeurope").expect("a VM id")
}

fn options() -> WriteOptions {
    WriteOptions {
        creation_settle: Duration::ZERO,
        ..WriteOptions::default()
    }
}

/// Writes the case's starting policy (or none).
fn reset(emulator: &Emulator, case: &Case) -> Model {
    emulator.clear_hooks();
    let entries: Vec<serde_json::Value> = VMS
        .iter()
        .zip(&case.initial)
        .filter_map(|(vm, ports)| ports.as_ref().map(|ports| entry_json(vm, ports)))
        .collect();
    let policy_id = web_policy();
    if entries.is_empty() {
        if !policy(emulator, &policy_id).is_null() {
            emulator
                .apply_change(&policy_id, &PolicyChange::DeletePolicy)
                .expect("deleted");
        }
    } else {
        emulator
            .apply_change(
                &policy_id,
                &PolicyChange::PutPolicy {
                    body: json!({"kind": "Basic", "properties": {"virtualMachines": entries}}),
                },
            )
            .expect("the starting policy");
    }
    observed(emulator)
}

/// The VMs a step names (given the model as the step plans against it).
fn named(step: &Step, model: &Model) -> Vec<String> {
    match step {
        Step::Enable { vm, .. } | Step::Edit { vm, .. } | Step::Disable { vm } => {
            vec![VMS[*vm].to_owned()]
        }
        Step::Apply { entries, prune } => {
            let mut named: Vec<String> =
                entries.iter().map(|(vm, _)| VMS[*vm].to_owned()).collect();
            if *prune {
                named.extend(model.keys().cloned());
            }
            named
        }
    }
}

/// Runs one step with its concurrent writer, and checks the emulator against the model.
async fn run_step(
    emulator: &Emulator,
    arm: &ArmClient,
    model: &mut Model,
    step: &Step,
    writer: Option<&Writer>,
) -> Result<(), TestCaseError> {
    let policy_id = web_policy();
    emulator.clear_hooks();
    let mut before = model.clone();
    // The other writer's change, on a VM the step does not name.
    let names = named(step, model);
    let theirs = writer.and_then(|writer| {
        let vm = (0..VMS.len())
            .map(|offset| VMS[(writer.vm + offset) % VMS.len()])
            .find(|vm| !names.iter().any(|name| name == vm))?;
        let change = if writer.remove && model.contains_key(vm) {
            PolicyChange::RemoveVm {
                vm_id: vm_id("rg-web", vm),
            }
        } else {
            PolicyChange::UpsertVm {
                virtual_machine: entry_json(vm, &writer.ports),
            }
        };
        let point = if writer.after_get {
            HookPoint::AfterGet
        } else {
            HookPoint::FailedPut
        };
        emulator
            .add_hook(HookSpec::new(&policy_id, point, change.clone()))
            .ok()?;
        Some((vm, change))
    });

    // The port an edit removes, picked from the VM's ports as planned.
    let edit_remove: Vec<u16> = match step {
        Step::Edit {
            vm, add, remove, ..
        } => {
            let current: Vec<u16> = model
                .get(VMS[*vm])
                .map(|ports| {
                    ports
                        .iter()
                        .map(|port| u16::try_from(port.0).unwrap_or(0))
                        .collect()
                })
                .unwrap_or_default();
            remove
                .and_then(|index| current.get(index % current.len().max(1)).copied())
                .filter(|number| add.is_none_or(|add| add.number != *number))
                .into_iter()
                .collect()
        }
        _ => Vec::new(),
    };

    let result: Result<(), ChangeError> = match step {
        Step::Enable { vm, ports } => {
            let rules = ports.iter().map(|port| port.rule()).collect();
            enable_with(arm, &placement(VMS[*vm]), rules, &options())
                .await
                .map(|_| ())
        }
        Step::Disable { vm } => disable_with(arm, &placement(VMS[*vm]), &options())
            .await
            .map(|_| ()),
        Step::Edit {
            vm, add, maximum, ..
        } => {
            let change = PortsChange {
                add: add.iter().map(|port| port.number).collect(),
                protocol: add.map_or(JitProtocol::All, Port::protocol),
                remove: edit_remove.clone(),
                max_duration: PerPort {
                    every: maximum.map(|index| {
                        MAXIMA[usize::from(index)]
                            .parse::<jiff::SignedDuration>()
                            .unwrap_or_default()
                    }),
                    ports: Vec::new(),
                },
                allowed_sources: PerPort::default(),
                default_sources: vec!["*".to_owned()],
                default_max_duration: jiff::SignedDuration::from_hours(3),
            };
            if change.is_empty() {
                Ok(())
            } else {
                match plan_ports_change(arm, &placement(VMS[*vm]), &change).await {
                    Ok(planned) => commit(arm, &planned, &options()).await.map(|_| ()),
                    Err(error) => Err(error),
                }
            }
        }
        Step::Apply { entries, prune } => {
            let mut vms: Vec<FileVm> = Vec::new();
            for (vm, ports) in entries {
                if !vms.iter().any(|known| known.name == VMS[*vm]) {
                    vms.push(FileVm {
                        name: VMS[*vm].to_owned(),
                        resource_group: None,
                        firewall_public_ip: None,
                        ports: ports.iter().map(|port| port.rule()).collect(),
                        line: 0,
                    });
                }
            }
            let file = PolicyFile {
                policies: vec![FilePolicy {
                    subscription_id: PRODUCTION.to_owned(),
                    resource_group: "rg-web".to_owned(),
                    location: "westeurope".to_owned(),
                    name: "default".to_owned(),
                    vms,
                    line: 0,
                }],
            };
            match plan_file(arm, &file, *prune).await {
                Ok(plans) => {
                    let mut outcome = Ok(());
                    for planned in plans.iter().filter(|plan| plan.changes_anything()) {
                        if let Err(error) = commit(arm, planned, &options()).await {
                            outcome = Err(error);
                            break;
                        }
                    }
                    outcome
                }
                Err(error) => Err(error),
            }
        }
    };

    // Their change, if it landed, comes first in the model.
    let landed = emulator
        .hooks()
        .iter()
        .any(|hook| hook.fired.as_ref().is_some_and(|firing| firing.applied));
    if landed {
        LANDED.fetch_add(1, Ordering::Relaxed);
    }
    if let (Some((vm, change)), true) = (&theirs, landed) {
        match change {
            PolicyChange::RemoveVm { .. } => {
                before.remove(*vm);
            }
            PolicyChange::UpsertVm { .. } => {
                let ports = writer.map(|writer| keys(&writer.ports)).unwrap_or_default();
                before.insert((*vm).to_owned(), ports);
            }
            _ => {}
        }
    }
    let mut expected = before.clone();
    match (step, &result) {
        (_, Err(ChangeError::NotEnabled | ChangeError::PortNotInPolicy { .. })) => {}
        (_, Err(error)) => return Err(TestCaseError::fail(format!("{step:?} failed: {error}"))),
        (Step::Enable { vm, ports }, Ok(())) => {
            expected.insert(VMS[*vm].to_owned(), keys(ports));
        }
        (Step::Disable { vm }, Ok(())) => {
            expected.remove(VMS[*vm]);
        }
        (
            Step::Edit {
                vm, add, maximum, ..
            },
            Ok(()),
        ) => {
            if let Some(ports) = expected.get(VMS[*vm]).cloned() {
                // Ours, from the request: the added port (replacing one of that number,
                // with the default sources), the maximum on every other port, the
                // removed port gone.
                let mut new: Vec<Key> = Vec::new();
                let maximum = maximum.map(|index| seconds(MAXIMA[usize::from(index)]));
                for mut port in ports {
                    let number = u16::try_from(port.0).unwrap_or(0);
                    if add.is_some_and(|add| add.number == number) || edit_remove.contains(&number)
                    {
                        continue;
                    }
                    if let Some(maximum) = maximum {
                        port.3 = maximum;
                    }
                    new.push(port);
                }
                if let Some(add) = add {
                    let mut added = key(&add.rule());
                    added.2 = vec!["*".to_owned()];
                    added.3 = maximum.unwrap_or(3 * 3600);
                    new.push(added);
                }
                new.sort();
                if new.is_empty() {
                    expected.remove(VMS[*vm]);
                } else {
                    expected.insert(VMS[*vm].to_owned(), new);
                }
            }
        }
        (Step::Apply { entries, prune }, Ok(())) => {
            if *prune {
                // Only what planning saw is pruned: the model before their change.
                for vm in model.keys() {
                    if !entries.iter().any(|(index, _)| VMS[*index] == vm) {
                        expected.remove(vm);
                    }
                }
            }
            let mut written: Vec<&str> = Vec::new();
            for (vm, ports) in entries {
                if !written.contains(&VMS[*vm]) {
                    written.push(VMS[*vm]);
                    expected.insert(VMS[*vm].to_owned(), keys(ports));
                }
            }
        }
    }
    let actual = observed(emulator);
    prop_assert_eq!(
        &actual,
        &expected,
        "after {:?} with {:?} (hook landed: {})",
        step,
        theirs.as_ref().map(|(vm, change)| (vm, change)),
        landed
    );
    *model = actual;
    Ok(())
}

#[test]
fn no_unnamed_vm_or_port_changes_and_every_concurrent_change_survives() {
    let cases = std::env::var("JIT_PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(24);
    let seed = std::env::var("JIT_PROPTEST_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let emulator = Emulator::start(World::default_world()).expect("starts");
    let arm = arm(&emulator);
    let mut runner = TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let outcome = runner.run(&case(), |case| {
        runtime.block_on(async {
            let mut model = reset(&emulator, &case);
            for (step, writer) in &case.steps {
                run_step(&emulator, &arm, &mut model, step, writer.as_ref()).await?;
            }
            Ok(())
        })
    });
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => {
            panic!("JIT_PROPTEST_SEED={seed}: {reason}\nminimal case: {case:#?}")
        }
        Err(TestError::Abort(reason)) => panic!("JIT_PROPTEST_SEED={seed}: aborted: {reason}"),
    }
    assert!(
        LANDED.load(Ordering::Relaxed) >= cases as usize / 4,
        "too few concurrent changes landed ({}) for {cases} cases",
        LANDED.load(Ordering::Relaxed)
    );
}
