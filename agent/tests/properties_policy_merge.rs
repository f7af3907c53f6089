//! A JIT policy covers every VM of a resource group and region, and a PUT replaces all
//! of it, so enabling, editing or disabling JIT for one VM must leave every other VM's
//! entry exactly as it was. Two pure parts of `access::enable` carry that promise, and
//! these properties check both over generated policies:
//!
//! - the write-back: a policy read from JSON and written again (with one VM's entry
//!   replaced, added or removed, as `enable`/`disable` do) carries every other VM's
//!   entry unchanged, fields `jit` does not model included;
//! - the check after the write (`check_landed`, then `unnamed_differences`, composed
//!   here as `verify` the way `enable`'s commit uses them): it accepts the policy read
//!   back when every other VM kept its ports (whatever order, id case, duration spelling
//!   or source field Azure answers with) and reports it, naming the VM, when any other VM
//!   lost or changed a port, or vanished (a change the commit then reports as another
//!   writer's, never silently).
//!
//! The emulator-backed test of concurrent writers lives with the emulator; these are the
//! pure half.

use std::collections::BTreeSet;

use jit_agent::access::enable::{VmEdit, check_landed, port_rule, unnamed_differences};
use jit_agent::azure::models::{
    IsoDuration, JitNetworkAccessPolicy, JitNetworkAccessPolicyProperties,
    JitNetworkAccessPolicyVirtualMachine, JitNetworkAccessPortRule, JitProtocol,
};
use jit_agent::azure::resource_id::same_resource_id;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

const GROUP_ID: &str = "/subscriptions/3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b34/resourceGroups/rg-web";

fn vm_id(index: usize) -> String {
    format!("{GROUP_ID}/providers/Microsoft.Compute/virtualMachines/vm-{index}")
}

/// One port rule's content, before it is written one way or another.
#[derive(Debug, Clone, PartialEq)]
struct Port {
    number: u16,
    protocol: &'static str,
    sources: Vec<&'static str>,
    /// Minutes.
    maximum: i64,
}

fn port() -> impl Strategy<Value = Port> {
    (
        prop_oneof![Just(22u16), Just(3389u16), Just(2222u16), 1u16..=65535],
        prop::sample::select(vec!["TCP", "UDP", "*"]),
        prop::sample::subsequence(
            vec!["*", "10.0.0.0/8", "198.51.100.7", "203.0.113.0/24"],
            0..=3,
        ),
        prop::sample::select(vec![5i64, 30, 60, 180, 1440]),
    )
        .prop_map(|(number, protocol, sources, maximum)| Port {
            number,
            protocol,
            sources,
            maximum,
        })
}

/// Ports of one VM: distinct numbers, as a policy lists them.
fn ports() -> impl Strategy<Value = Vec<Port>> {
    prop::collection::vec(port(), 1..4).prop_map(|mut ports| {
        let mut seen = BTreeSet::new();
        ports.retain(|port| seen.insert(port.number));
        ports
    })
}

fn protocol(text: &str) -> JitProtocol {
    JitProtocol::from(text)
}

/// The rule as `jit` writes it.
fn written(port: &Port) -> JitNetworkAccessPortRule {
    let sources: Vec<String> = port
        .sources
        .iter()
        .map(|&source| source.to_owned())
        .collect();
    port_rule(
        port.number,
        protocol(port.protocol),
        &sources,
        IsoDuration::from_duration(jiff::SignedDuration::from_mins(port.maximum)).as_str(),
    )
}

/// The same rule as Azure may answer it: the maximum spelled another way, the protocol
/// in other case, one source in the list field, sources in another order.
fn as_read_back(port: &Port, variant: u8) -> JitNetworkAccessPortRule {
    let mut rule = written(port);
    if variant & 1 != 0 {
        rule.max_request_access_duration = IsoDuration(format!("PT{}M", port.maximum));
    }
    if variant & 2 != 0 {
        rule.protocol = JitProtocol::Other(port.protocol.to_ascii_lowercase());
    }
    if variant & 4 != 0 {
        let mut sources: Vec<String> = rule
            .allowed_sources()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        sources.reverse();
        rule.allowed_source_address_prefix = None;
        rule.allowed_source_address_prefixes = Some(sources);
    }
    rule
}

fn entry(id: String, rules: Vec<JitNetworkAccessPortRule>) -> JitNetworkAccessPolicyVirtualMachine {
    JitNetworkAccessPolicyVirtualMachine {
        id,
        ports: rules,
        public_ip_address: None,
        additional_properties: serde_json::Map::new(),
    }
}

/// The check `enable` makes on the policy read back after writing `ours` for
/// `changed_id` (`None`: removed) next to `others`: ours landed, and nothing it did not
/// name differs from what was written.
fn verify(
    after: &JitNetworkAccessPolicy,
    changed_id: &str,
    ours: Option<&[JitNetworkAccessPortRule]>,
    others: &[JitNetworkAccessPolicyVirtualMachine],
) -> Result<(), String> {
    let mut entries = others.to_vec();
    let edit = match ours {
        Some(ports) => {
            entries.push(entry(changed_id.to_owned(), ports.to_vec()));
            VmEdit::SetPorts {
                vm_id: changed_id.to_owned(),
                ports: ports.to_vec(),
                firewall_public_ip: None,
            }
        }
        None => VmEdit::Remove {
            vm_id: changed_id.to_owned(),
        },
    };
    let written = policy(entries);
    let edits = [edit];
    check_landed(&written, Some(after), &edits)?;
    match unnamed_differences(Some(&written), Some(after), &edits)
        .into_iter()
        .next()
    {
        Some(difference) => Err(difference),
        None => Ok(()),
    }
}

fn policy(entries: Vec<JitNetworkAccessPolicyVirtualMachine>) -> JitNetworkAccessPolicy {
    JitNetworkAccessPolicy {
        id: Some(format!(
            "{GROUP_ID}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
        )),
        name: Some("default".to_owned()),
        resource_type: Some("Microsoft.Security/locations/jitNetworkAccessPolicies".to_owned()),
        kind: Some("Basic".to_owned()),
        location: Some("westeurope".to_owned()),
        properties: JitNetworkAccessPolicyProperties {
            virtual_machines: entries,
            ..Default::default()
        },
        additional_properties: serde_json::Map::new(),
    }
}

/// A change to one VM's entry, as `jit enable`, `jit enable` again and `jit disable` make.
#[derive(Debug, Clone)]
enum Change {
    /// Add the VM (it is not in the policy yet) with these ports.
    Add(Vec<Port>),
    /// Replace the ports of the VM at this index.
    Edit(Index, Vec<Port>),
    /// Remove the VM at this index.
    Remove(Index),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        ports().prop_map(Change::Add),
        (any::<Index>(), ports()).prop_map(|(index, ports)| Change::Edit(index, ports)),
        any::<Index>().prop_map(Change::Remove),
    ]
}

/// Which VM the change is for, and its ports afterwards (`None`: removed).
fn target(change: &Change, vm_count: usize) -> (String, Option<Vec<Port>>) {
    match change {
        Change::Add(ports) => (vm_id(vm_count), Some(ports.clone())),
        Change::Edit(index, ports) => (vm_id(index.index(vm_count)), Some(ports.clone())),
        Change::Remove(index) => (vm_id(index.index(vm_count)), None),
    }
}

/// How another VM's entry can be damaged by a careless write.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Dropped,
    PortRenumbered,
    PortAdded,
    PortRemoved,
    SourceWidened,
    MaximumChanged,
    ProtocolChanged,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop::sample::select(vec![
        Damage::Dropped,
        Damage::PortRenumbered,
        Damage::PortAdded,
        Damage::PortRemoved,
        Damage::SourceWidened,
        Damage::MaximumChanged,
        Damage::ProtocolChanged,
    ])
}

/// What a list of ports says, whatever order and spelling: two lists with the same
/// content are the same ports to JIT (no source means `*`).
fn content(ports: &[Port]) -> Vec<(u16, &'static str, Vec<&'static str>, i64)> {
    let mut content: Vec<_> = ports
        .iter()
        .map(|port| {
            let sources = if port.sources.is_empty() {
                vec!["*"]
            } else {
                port.sources.clone()
            };
            (port.number, port.protocol, sources, port.maximum)
        })
        .collect();
    content.sort();
    content
}

/// A VM's entry in JSON as Azure sends it, with fields `jit` does not model.
fn entry_json(id: &str, ports: &[Port], extra: u32) -> Value {
    let rules: Vec<Value> = ports
        .iter()
        .map(|port| {
            let mut rule = serde_json::to_value(written(port)).expect("serialises");
            rule["futurePortSetting"] = json!({ "level": extra, "tags": ["a", "b"] });
            rule
        })
        .collect();
    json!({
        "id": id,
        "ports": rules,
        "publicIpAddress": format!("203.0.113.{}", extra % 250),
        "futureVmSetting": { "enabled": extra.is_multiple_of(2), "weight": extra },
    })
}

proptest! {
    // A failure prints its minimal input; a bug found this way gets a unit test of its
    // own next to the code, so no regression files are written here.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn writing_a_policy_back_keeps_every_other_vm_byte_for_byte(
        vms in prop::collection::vec((ports(), any::<u32>()), 1..6),
        change in change(),
    ) {
        let entries: Vec<Value> = vms
            .iter()
            .enumerate()
            .map(|(index, (ports, extra))| entry_json(&vm_id(index), ports, *extra))
            .collect();
        let body = json!({
            "id": format!("{GROUP_ID}/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"),
            "name": "default",
            "kind": "Basic",
            "location": "westeurope",
            "properties": {
                "virtualMachines": entries,
                "provisioningState": "Succeeded",
                "futurePolicySetting": [1, 2, 3],
            },
            "futureTopLevel": "kept",
        });
        let mut read: JitNetworkAccessPolicy =
            serde_json::from_value(body.clone()).expect("the policy parses");

        // The change, as `enable` and `disable` make it: drop the VM's entry, append
        // the new one (unless removing), clear the read-only state.
        let (changed_id, ports) = target(&change, vms.len());
        read.properties
            .virtual_machines
            .retain(|entry| !same_resource_id(&entry.id, &changed_id));
        if let Some(ports) = &ports {
            read.properties.virtual_machines.push(entry(
                changed_id.clone(),
                ports.iter().map(written).collect(),
            ));
        }
        read.properties.provisioning_state = None;

        let put = serde_json::to_value(&read).expect("the PUT body serialises");
        prop_assert_eq!(&put["futureTopLevel"], &body["futureTopLevel"]);
        prop_assert_eq!(
            &put["properties"]["futurePolicySetting"],
            &body["properties"]["futurePolicySetting"]
        );
        let sent = put["properties"]["virtualMachines"].as_array().expect("an array");
        for original in body["properties"]["virtualMachines"].as_array().expect("an array") {
            let id = original["id"].as_str().expect("an id");
            let found = sent.iter().find(|entry| entry["id"] == original["id"]);
            if id == changed_id {
                prop_assert_eq!(found.is_some(), ports.is_some());
            } else {
                prop_assert_eq!(found, Some(original), "VM {} changed in the PUT body", id);
            }
        }
    }

    #[test]
    fn verify_accepts_a_read_back_that_leaves_other_vms_alone(
        vms in prop::collection::vec(ports(), 1..6),
        change in change(),
        variants in prop::collection::vec(any::<u8>(), 32),
        rotate in any::<Index>(),
        upper_case_ids in any::<bool>(),
    ) {
        let before = policy(
            vms.iter()
                .enumerate()
                .map(|(index, ports)| entry(vm_id(index), ports.iter().map(written).collect()))
                .collect(),
        );
        let (changed_id, ports) = target(&change, vms.len());
        let others: Vec<JitNetworkAccessPolicyVirtualMachine> = before
            .properties
            .virtual_machines
            .iter()
            .filter(|entry| !same_resource_id(&entry.id, &changed_id))
            .cloned()
            .collect();
        let ours: Option<Vec<JitNetworkAccessPortRule>> =
            ports.as_ref().map(|ports| ports.iter().map(written).collect());

        // What Azure answers after the write: the same content, in its own order and
        // spelling.
        let mut read_back: Vec<JitNetworkAccessPolicyVirtualMachine> = Vec::new();
        let mut variant = variants.iter().cycle();
        let id_as_read = |id: &str| if upper_case_ids { id.to_ascii_uppercase() } else { id.to_owned() };
        for (index, ports) in vms.iter().enumerate() {
            if same_resource_id(&vm_id(index), &changed_id) {
                continue;
            }
            let mut rules: Vec<_> = ports
                .iter()
                .map(|port| as_read_back(port, *variant.next().unwrap_or(&0)))
                .collect();
            rules.reverse();
            read_back.push(entry(id_as_read(&vm_id(index)), rules));
        }
        if let Some(ports) = &ports {
            let rules = ports
                .iter()
                .map(|port| as_read_back(port, *variant.next().unwrap_or(&0)))
                .collect();
            read_back.push(entry(id_as_read(&changed_id), rules));
        }
        if !read_back.is_empty() {
            let by = rotate.index(read_back.len());
            read_back.rotate_left(by);
        }
        let after = policy(read_back);
        prop_assert_eq!(verify(&after, &changed_id, ours.as_deref(), &others), Ok(()));
    }

    #[test]
    fn verify_refuses_a_read_back_that_damaged_another_vm(
        vms in prop::collection::vec(ports(), 2..6),
        change in change(),
        victim in any::<Index>(),
        damage in damage(),
    ) {
        let before: Vec<JitNetworkAccessPolicyVirtualMachine> = vms
            .iter()
            .enumerate()
            .map(|(index, ports)| entry(vm_id(index), ports.iter().map(written).collect()))
            .collect();
        let (changed_id, ports) = target(&change, vms.len());
        let others: Vec<JitNetworkAccessPolicyVirtualMachine> = before
            .iter()
            .filter(|entry| !same_resource_id(&entry.id, &changed_id))
            .cloned()
            .collect();
        prop_assume!(!others.is_empty());
        let ours: Option<Vec<JitNetworkAccessPortRule>> =
            ports.as_ref().map(|ports| ports.iter().map(written).collect());

        let mut read_back = others.clone();
        if let Some(rules) = &ours {
            read_back.push(entry(changed_id.clone(), rules.clone()));
        }
        let victim_index = victim.index(others.len());
        let victim_id = others[victim_index].id.clone();
        let victim_entry = &mut read_back[victim_index];
        match damage {
            Damage::Dropped => {
                read_back.remove(victim_index);
            }
            Damage::PortRenumbered => {
                let used: BTreeSet<u16> = victim_entry.ports.iter().map(|rule| rule.number).collect();
                let free = (1..=u16::MAX).find(|number| !used.contains(number)).unwrap_or(1);
                victim_entry.ports[0].number = free;
            }
            Damage::PortAdded => {
                let used: BTreeSet<u16> = victim_entry.ports.iter().map(|rule| rule.number).collect();
                let free = (1..=u16::MAX).find(|number| !used.contains(number)).unwrap_or(1);
                let extra = port_rule(free, JitProtocol::Tcp, &[], "PT3H");
                victim_entry.ports.push(extra);
            }
            Damage::PortRemoved => {
                victim_entry.ports.pop();
            }
            Damage::SourceWidened => {
                let rule = &mut victim_entry.ports[0];
                let mut sources: Vec<String> =
                    rule.allowed_sources().iter().map(|source| (*source).to_owned()).collect();
                sources.push("192.0.2.0/24".to_owned());
                rule.allowed_source_address_prefix = None;
                rule.allowed_source_address_prefixes = Some(sources);
            }
            Damage::MaximumChanged => {
                let rule = &mut victim_entry.ports[0];
                let minutes = rule
                    .max_request_access_duration
                    .to_duration()
                    .map(|duration| duration.as_mins())
                    .unwrap_or(60);
                rule.max_request_access_duration = IsoDuration(format!("PT{}M", minutes + 1));
            }
            Damage::ProtocolChanged => {
                let rule = &mut victim_entry.ports[0];
                rule.protocol = match rule.protocol {
                    JitProtocol::Udp => JitProtocol::Tcp,
                    _ => JitProtocol::Udp,
                };
            }
        }
        let after = policy(read_back);
        let problem = verify(&after, &changed_id, ours.as_deref(), &others)
            .expect_err("damage to another VM is caught");
        let victim_name = victim_id.rsplit('/').next().unwrap_or(&victim_id);
        prop_assert!(problem.contains(victim_name), "{problem} does not name {victim_name}");
    }

    #[test]
    fn verify_refuses_a_read_back_where_the_changed_vm_is_wrong(
        vms in prop::collection::vec(ports(), 1..6),
        change in change(),
        wrong in ports(),
    ) {
        let before: Vec<JitNetworkAccessPolicyVirtualMachine> = vms
            .iter()
            .enumerate()
            .map(|(index, ports)| entry(vm_id(index), ports.iter().map(written).collect()))
            .collect();
        let (changed_id, ports) = target(&change, vms.len());
        let others: Vec<JitNetworkAccessPolicyVirtualMachine> = before
            .iter()
            .filter(|entry| !same_resource_id(&entry.id, &changed_id))
            .cloned()
            .collect();
        let mut read_back = others.clone();
        match &ports {
            // Enabled or edited: the VM is missing, or has other ports.
            Some(ports) => {
                let ours: Vec<JitNetworkAccessPortRule> = ports.iter().map(written).collect();
                prop_assert!(verify(&policy(read_back.clone()), &changed_id, Some(&ours), &others).is_err());
                prop_assume!(content(&wrong) != content(ports));
                read_back.push(entry(changed_id.clone(), wrong.iter().map(written).collect()));
                prop_assert!(verify(&policy(read_back), &changed_id, Some(&ours), &others).is_err());
            }
            // Removed: the VM is still there.
            None => {
                read_back.push(entry(changed_id.clone(), wrong.iter().map(written).collect()));
                prop_assert!(verify(&policy(read_back), &changed_id, None, &others).is_err());
            }
        }
    }
}
