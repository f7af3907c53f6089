//! How many ARM calls `jit` makes, counted in the emulator's request log. Every call from
//! a laptop costs 100–300 ms and counts against the subscription's throttling budget,
//! so these tests fail when a change adds one: a cold `jit connect` (three calls before
//! the `initiate`), a warm one (one), one that finds Resource Graph behind ARM (it reads
//! the VM's network from ARM), the wait (the probe drives it; the policy is read
//! once), `jit list` (calls grow with subscriptions and pages, never with VMs), and
//! twenty `jit
//! proxy` at once through the agent (one `initiate`).

mod support;

use std::io::Read as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use jit_emulator::{EmulatorOptions, World};
use serde_json::Value;
use support::{TestContext, text};

/// The ARM calls logged so far (identity and "what is my IP" routes left out), as
/// `METHOD /path` without the query, lower-cased.
fn arm_calls(context: &TestContext) -> Vec<String> {
    context
        .emulator
        .requests()
        .iter()
        .filter(|record| {
            let path = record.path.to_ascii_lowercase();
            path.starts_with("/subscriptions") || path.starts_with("/providers")
        })
        .map(|record| {
            format!(
                "{} {}",
                record.method,
                record.path_without_query().to_ascii_lowercase()
            )
        })
        .collect()
}

fn is_initiate(call: &str) -> bool {
    call.starts_with("POST ") && call.ends_with("/initiate")
}

/// The calls before the first `initiate` and those after it.
fn split_at_initiate(calls: &[String]) -> (Vec<String>, Vec<String>) {
    let position = calls
        .iter()
        .position(|call| is_initiate(call))
        .unwrap_or_else(|| panic!("no initiate among {calls:#?}"));
    (calls[..position].to_vec(), calls[position + 1..].to_vec())
}

/// A call's kind, for readable assertions.
fn kind(call: &str) -> &'static str {
    if call == "GET /subscriptions" {
        "subscriptions"
    } else if call.ends_with("/microsoft.resourcegraph/resources") {
        "resource graph"
    } else if call.starts_with("GET ") && call.ends_with("/jitnetworkaccesspolicies") {
        "policy list"
    } else if call.starts_with("GET ") && call.contains("/jitnetworkaccesspolicies/") {
        "policy read"
    } else if is_initiate(call) {
        "initiate"
    } else {
        "other"
    }
}

fn kinds(calls: &[String]) -> Vec<&'static str> {
    calls.iter().map(|call| kind(call)).collect()
}

/// Stops the test's agent when dropped, so no agent outlives its test (a failing
/// assertion included).
struct AgentStopper<'a>(&'a TestContext);

impl Drop for AgentStopper<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["agent", "stop"]);
    }
}

fn emulator_with_delay(delay: SignedDuration) -> TestContext {
    TestContext::with(
        World::default_world(),
        EmulatorOptions {
            initiating_delay: delay,
            ..EmulatorOptions::default()
        },
    )
}

fn connect_json(context: &TestContext, vm: &str) -> Value {
    let output = context.run(&["connect", vm, "--no-launch", "-o", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

#[test]
fn a_cold_connect_makes_three_calls_before_the_initiate() {
    let context = emulator_with_delay(SignedDuration::ZERO);
    connect_json(&context, "api-01");
    let calls = arm_calls(&context);
    let (before, after) = split_at_initiate(&calls);
    assert_eq!(
        kinds(&before),
        ["subscriptions", "resource graph", "policy list"],
        "{before:#?}"
    );
    assert!(
        kinds(&after).iter().all(|kind| *kind == "policy read") && after.len() <= 1,
        "at most one policy read after the initiate: {after:#?}"
    );
}

#[test]
fn a_warm_connect_makes_one_call_before_the_initiate() {
    let context = emulator_with_delay(SignedDuration::ZERO).with_agent();
    let _stopper = AgentStopper(&context);
    connect_json(&context, "rg-web/api-01");
    let first = arm_calls(&context).len();

    let report = connect_json(&context, "rg-web/api-01");
    let calls = arm_calls(&context)[first..].to_vec();
    let (before, after) = split_at_initiate(&calls);
    assert_eq!(
        kinds(&before),
        ["resource graph"],
        "the agent remembered the VM and its policy: {before:#?}"
    );
    assert_eq!(
        kinds(&after),
        ["policy read"],
        "the policy is read once, when the port answers: {after:#?}"
    );
    assert_eq!(report["vm"]["name"], "api-01");
    assert!(
        report["ports"][0]["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("SSH-2.0-")),
        "{report}"
    );
}

#[test]
fn what_the_agent_remembers_is_checked_by_the_request_and_replaced_when_out_of_date() {
    let context = emulator_with_delay(SignedDuration::ZERO).with_agent();
    let _stopper = AgentStopper(&context);
    let first_report = connect_json(&context, "api-01");
    // An admin shortens api-01's longest request: the remembered rule (three hours) is
    // out of date, and Azure refuses a request built from it.
    let vm_id = first_report["vm"]["id"].as_str().expect("vm id").to_owned();
    let policy_id = first_report["policy_id"]
        .as_str()
        .expect("policy id")
        .to_owned();
    let port = first_report["ports"][0]["number"].as_u64().expect("port");
    let change: jit_emulator::PolicyChange = serde_json::from_value(serde_json::json!({
        "kind": "upsert_vm",
        "virtual_machine": {"id": vm_id, "ports": [{"number": port, "protocol": "*",
            "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT1H"}]}
    }))
    .expect("a change");
    context
        .emulator
        .apply_change(&policy_id, &change)
        .expect("applied");
    let first = arm_calls(&context).len();

    let report = connect_json(&context, "api-01");
    let calls = arm_calls(&context)[first..].to_vec();
    assert_eq!(
        kinds(&calls)[..6],
        [
            "resource graph",
            "initiate",
            "subscriptions",
            "resource graph",
            "policy list",
            "initiate"
        ],
        "the remembered rule is tried, refused, then the VM is looked up again: {calls:#?}"
    );
    let ends_at: Timestamp = report["ends_at"]
        .as_str()
        .expect("ends_at")
        .parse()
        .expect("time");
    let requested_at: Timestamp = report["requested_at"]
        .as_str()
        .expect("requested_at")
        .parse()
        .expect("time");
    assert!(
        ends_at.duration_since(requested_at) <= SignedDuration::from_mins(61),
        "the new maximum is used: {report}"
    );
}

/// Resource Graph lags ARM: a NIC or public IP it has not indexed yet leaves holes in
/// the located query's rows. `jit` then reads the VM's network from ARM (the VM, its NIC,
/// and what the NIC points at) and connects to the same address as without the lag.
#[test]
fn a_connect_reads_the_network_from_arm_when_resource_graph_lags() {
    let reference = emulator_with_delay(SignedDuration::ZERO);
    let expected = connect_json(&reference, "api-01");
    let vm = reference.emulator.snapshot()["virtual_machines"]
        .as_array()
        .and_then(|vms| vms.iter().find(|vm| vm["name"] == "api-01"))
        .cloned()
        .expect("api-01 in the default world");
    let vm_id = vm["id"].as_str().expect("id").to_owned();
    let group = vm_id
        .rsplit_once("/providers/")
        .map(|(group, _)| group.to_owned())
        .expect("a resource group id");
    let nic_id = format!("{group}/providers/Microsoft.Network/networkInterfaces/api-01-nic");
    let public_ip_id = format!("{group}/providers/Microsoft.Network/publicIPAddresses/api-01-ip");

    for (unindexed, read_from_arm) in [
        (&nic_id, "/microsoft.network/networkinterfaces/api-01-nic"),
        (
            &public_ip_id,
            "/microsoft.network/publicipaddresses/api-01-ip",
        ),
    ] {
        let context = emulator_with_delay(SignedDuration::ZERO);
        context
            .emulator
            .set_graph_unindexed(std::slice::from_ref(unindexed));
        let report = connect_json(&context, "api-01");
        let calls = arm_calls(&context);
        let (before, _) = split_at_initiate(&calls);
        assert_eq!(
            kinds(&before[..2]),
            ["subscriptions", "resource graph"],
            "{before:#?}"
        );
        assert_eq!(kinds(&before).last(), Some(&"policy list"), "{before:#?}");
        let arm_reads: Vec<&String> = before[2..before.len() - 1].iter().collect();
        assert!(
            arm_reads
                .iter()
                .any(|call| call.starts_with("GET ") && call.ends_with("/virtualmachines/api-01")),
            "the VM is read from ARM when Resource Graph does not know {unindexed}: {before:#?}"
        );
        assert!(
            arm_reads
                .iter()
                .any(|call| call.starts_with("GET ") && call.ends_with(read_from_arm)),
            "{read_from_arm} is read from ARM: {before:#?}"
        );
        assert_eq!(report["vm"], expected["vm"], "the same VM");
        assert_eq!(
            report["ports"][0]["host"], expected["ports"][0]["host"],
            "the same address"
        );
        assert_eq!(report["source"], expected["source"]);
        assert!(
            report["ports"][0]["detail"]
                .as_str()
                .is_some_and(|detail| detail.starts_with("SSH-2.0-")),
            "the port answered: {report:#}"
        );
    }

    // Once Resource Graph has caught up, the located query is enough again.
    let context = emulator_with_delay(SignedDuration::ZERO);
    context.emulator.set_graph_unindexed(&[nic_id]);
    context.emulator.set_graph_unindexed(&[]);
    connect_json(&context, "api-01");
    let calls = arm_calls(&context);
    let (before, _) = split_at_initiate(&calls);
    assert_eq!(
        kinds(&before),
        ["subscriptions", "resource graph", "policy list"],
        "{before:#?}"
    );
}

#[test]
fn waiting_reads_the_policy_once_when_the_port_answers() {
    let context = emulator_with_delay(SignedDuration::from_secs(2));
    let report = connect_json(&context, "api-01");
    let calls = arm_calls(&context);
    let (_, after) = split_at_initiate(&calls);
    assert_eq!(
        kinds(&after),
        ["policy read"],
        "the probe drives the wait; the policy is read when the port answers: {after:#?}"
    );
    // The port was noticed after it opened, never before.
    let noticed: Timestamp = report["ports"][0]["answered_at"]
        .as_str()
        .expect("answered_at")
        .parse()
        .expect("a time");
    let opened: Timestamp = context.emulator.snapshot()["port_openings"][0]["real_time"]
        .as_str()
        .expect("the emulator recorded the opening")
        .parse()
        .expect("a time");
    assert!(
        noticed >= opened,
        "noticed {noticed} before it opened at {opened}"
    );
}

/// A generated world of `subscriptions` × `groups` × `vms` VMs, half of them covered by
/// JIT (the shape of `bench/generate-world.py`).
fn generated_world(subscriptions: usize, groups: usize, vms: usize) -> World {
    let mut out = String::from(
        "tenant_id = \"11111111-2222-4333-8444-555555555555\"\n\
         security_home_region = \"centralus\"\n\
         [[principals]]\nkind = \"user\"\nname = \"bench@contoso.com\"\n\
         object_id = \"66666666-7777-4888-9999-000000000000\"\nactions = [\"*\"]\n\
         [[principals]]\nkind = \"service_principal\"\nname = \"bench-sp\"\n\
         client_id = \"0b5e1c7a-2d4f-4f83-9a6e-5c1d7e2f8a90\"\n\
         object_id = \"4c8e2a1f-6b3d-4a5e-8f7c-1d9e0a2b3c4d\"\nactions = [\"*\"]\n",
    );
    for subscription in 0..subscriptions {
        out.push_str(&format!(
            "[[subscriptions]]\nid = \"00000000-0000-4000-8000-{:012}\"\ndisplay_name = \"Bench {subscription}\"\n",
            subscription + 1
        ));
        for group in 0..groups {
            out.push_str(&format!(
                "[[subscriptions.resource_groups]]\nname = \"rg-{group:03}\"\nlocation = \"westeurope\"\n\
                 [[subscriptions.resource_groups.virtual_networks]]\nname = \"vnet\"\n\
                 address_space = [\"10.0.0.0/16\"]\n\
                 subnets = [{{ name = \"default\", address_prefix = \"10.0.0.0/24\" }}]\n"
            ));
            for vm in 0..vms {
                let name = format!("vm-{subscription}-{group:03}-{vm:03}");
                out.push_str(&format!(
                    "[[subscriptions.resource_groups.network_security_groups]]\nname = \"{name}-nsg\"\n\
                     [[subscriptions.resource_groups.public_ip_addresses]]\nname = \"{name}-ip\"\n\
                     [[subscriptions.resource_groups.network_interfaces]]\nname = \"{name}-nic\"\n\
                     private_ip_address = \"10.0.0.{}\"\nsubnet = \"vnet/default\"\n\
                     public_ip_address = \"{name}-ip\"\nnetwork_security_group = \"{name}-nsg\"\n\
                     [[subscriptions.resource_groups.virtual_machines]]\nname = \"{name}\"\nos = \"Linux\"\n\
                     network_interfaces = [\"{name}-nic\"]\nports = [{{ service = \"ssh\", number = 22 }}]\n",
                    vm + 4
                ));
            }
            out.push_str(
                "[[subscriptions.resource_groups.jit_policies]]\nname = \"default\"\nlocation = \"westeurope\"\n",
            );
            for vm in (0..vms).step_by(2) {
                out.push_str(&format!(
                    "[[subscriptions.resource_groups.jit_policies.virtual_machines]]\n\
                     virtual_machine = \"vm-{subscription}-{group:03}-{vm:03}\"\n\
                     ports = [{{ service = \"ssh\", protocol = \"*\", allowed_source_address_prefix = \"*\", \
                     max_request_access_duration = \"PT3H\" }}]\n"
                ));
            }
        }
    }
    World::from_toml(&out).expect("a valid generated world")
}

/// The ARM calls `jit list -o json` makes on a generated world, every list paged at
/// `page_size` items (`None`: unpaged).
fn list_calls(subscriptions: usize, vms: usize, page_size: Option<usize>) -> Vec<String> {
    let context = TestContext::with(
        generated_world(subscriptions, 2, vms),
        EmulatorOptions::default(),
    );
    context.emulator.set_page_size(page_size);
    let output = context.run(&["list", "-o", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).expect("json");
    let rows = listed
        .as_array()
        .map_or_else(|| listed["vms"].as_array().map_or(0, Vec::len), Vec::len);
    assert_eq!(rows, subscriptions * 2 * vms, "every VM listed: {stdout}");
    arm_calls(&context)
}

/// The kinds of `calls`, sorted (`jit list` makes its calls concurrently).
fn sorted_kinds(calls: &[String]) -> Vec<&'static str> {
    let mut kinds = kinds(calls);
    kinds.sort_unstable();
    kinds
}

fn count(calls: &[String], wanted: &str) -> usize {
    calls.iter().filter(|call| kind(call) == wanted).count()
}

#[test]
fn list_calls_grow_with_subscriptions_and_pages_never_with_vms() {
    let few = list_calls(2, 2, None);
    let many = list_calls(2, 8, None);
    assert_eq!(
        sorted_kinds(&few),
        sorted_kinds(&many),
        "four times the VMs, the same calls: {few:#?} {many:#?}"
    );
    assert_eq!(count(&few, "subscriptions"), 1, "{few:#?}");
    assert_eq!(
        count(&few, "policy list"),
        2,
        "one per subscription: {few:#?}"
    );
    assert!(count(&few, "resource graph") <= 4, "{few:#?}");

    let more_subscriptions = list_calls(4, 2, None);
    assert_eq!(
        count(&more_subscriptions, "policy list"),
        4,
        "{more_subscriptions:#?}"
    );
    assert_eq!(
        more_subscriptions.len(),
        few.len() + 2,
        "two more subscriptions, two more policy lists and nothing else: {more_subscriptions:#?}"
    );

    // 32 VMs with every list in pages of 8: the Resource Graph queries take more pages,
    // nothing else changes.
    let paged = list_calls(2, 8, Some(8));
    assert!(
        count(&paged, "resource graph") > count(&many, "resource graph"),
        "{paged:#?}"
    );
    let others = |calls: &[String]| {
        let mut others: Vec<String> = calls
            .iter()
            .filter(|call| kind(call) != "resource graph")
            .cloned()
            .collect();
        others.sort();
        others
    };
    assert_eq!(others(&paged), others(&many), "{paged:#?}");
}

/// Starts `jit proxy VM` with its stdin and stdout piped, as `ssh` would.
fn spawn_proxy(context: &TestContext, vm: &str) -> Child {
    spawn_proxy_with(context, &["proxy", vm])
}

fn spawn_proxy_with(context: &TestContext, arguments: &[&str]) -> Child {
    context
        .jit()
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit proxy starts")
}

/// Reads until the SSH identification line (or EOF), within `limit`.
fn read_banner(child: &mut Child, limit: Duration) -> String {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0_u8; 256];
    while started.elapsed() < limit && !received.contains(&b'\n') {
        match stdout.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(count) => received.extend_from_slice(&buffer[..count]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[test]
fn twenty_proxies_at_once_share_one_request_through_the_agent() {
    let context = emulator_with_delay(SignedDuration::from_secs(2)).with_agent();
    let _stopper = AgentStopper(&context);
    let mut proxies: Vec<Child> = (0..20).map(|_| spawn_proxy(&context, "api-01")).collect();
    let banners: Vec<String> = proxies
        .iter_mut()
        .map(|proxy| read_banner(proxy, Duration::from_secs(90)))
        .collect();
    let mut errors = Vec::new();
    for mut proxy in proxies {
        drop(proxy.stdin.take());
        let _ = proxy.kill();
        let output = proxy.wait_with_output().expect("jit proxy ends");
        errors.push(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    for (index, banner) in banners.iter().enumerate() {
        assert!(
            banner.starts_with("SSH-2.0-"),
            "proxy {index} relayed the VM's SSH server: {banner:?}; its stderr: {}",
            errors[index]
        );
    }
    let calls = arm_calls(&context);
    assert_eq!(
        calls.iter().filter(|call| is_initiate(call)).count(),
        1,
        "one request for twenty connections: {calls:#?}"
    );
    assert_eq!(
        kinds(&calls),
        [
            "subscriptions",
            "resource graph",
            "policy list",
            "initiate",
            "policy read"
        ],
        "and no other call either: {calls:#?}"
    );
}

/// One `jit proxy` through the agent to `vm`, in verbose mode: the SSH banner it relayed
/// and its stderr.
fn proxy_once(context: &TestContext, vm: &str) -> (String, String) {
    let mut proxy = spawn_proxy_with(context, &["--verbose", "proxy", vm]);
    let banner = read_banner(&mut proxy, Duration::from_secs(60));
    drop(proxy.stdin.take());
    let _ = proxy.kill();
    let output = proxy.wait_with_output().expect("jit proxy ends");
    (banner, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A second connection while the agent's window is open makes no request and no ARM
/// call at all: the agent checks the port answers and hands out the same window. Once
/// the window has ended (the port no longer answers), the next one asks Azure again.
#[test]
fn a_proxy_reuses_the_window_the_agent_opened_while_it_answers() {
    let context = emulator_with_delay(SignedDuration::ZERO).with_agent();
    let _stopper = AgentStopper(&context);
    let initiates = |calls: &[String]| calls.iter().filter(|call| is_initiate(call)).count();

    let (banner, stderr) = proxy_once(&context, "api-01");
    assert!(banner.starts_with("SSH-2.0-"), "{banner:?}; {stderr}");
    assert!(stderr.contains("the agent opened access"), "{stderr}");
    let after_first = arm_calls(&context);
    assert_eq!(initiates(&after_first), 1, "{after_first:#?}");

    let (banner, stderr) = proxy_once(&context, "api-01");
    assert!(banner.starts_with("SSH-2.0-"), "{banner:?}; {stderr}");
    assert!(
        stderr.contains("the agent's open window answers"),
        "the second connection reused the window: {stderr}"
    );
    assert_eq!(
        arm_calls(&context),
        after_first,
        "reusing the window calls nothing in Azure"
    );

    // The window ends (the emulator's clock moves past it and closes the port).
    context
        .emulator
        .advance_clock(SignedDuration::from_hours(4));
    let (banner, stderr) = proxy_once(&context, "api-01");
    assert!(banner.starts_with("SSH-2.0-"), "{banner:?}; {stderr}");
    assert!(
        !stderr.contains("the agent's open window answers"),
        "an ended window is not reused: {stderr}"
    );
    let calls = arm_calls(&context);
    assert_eq!(initiates(&calls), 2, "a new request: {calls:#?}");
}
