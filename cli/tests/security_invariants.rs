//! Security invariants of the whole program, each checked with the real `jit` binary
//! against the emulator (and the real OpenSSH client where one is launched):
//!
//! - no request opens a port to every address (`*`, `0.0.0.0/0`) unless the person
//!   asked for exactly that (`--source any`, `--source 0.0.0.0/0`), whatever the policy
//!   allows and whatever the command (`connect`, `request`, `extend`);
//! - the `ssh` that `jit connect` launches still checks the VM's host key: an unknown
//!   key ends the connection, exactly as with plain `ssh`.
//!
//! The other invariants of `docs/security.md` are tested where the code lives; that page
//! lists every test.

mod support;

use std::collections::BTreeSet;

use jiff::SignedDuration;
use jit_emulator::{EmulatorOptions, World};
use serde_json::Value;
use support::{TestContext, text};

/// api-01's policy entry in the default world, and the same VM allowing every address
/// only as a range (`0.0.0.0/0`) next to one the caller is not in.
const API_01_ANY: &str = r#"virtual_machine = "api-01"
ports = [{ service = "ssh", protocol = "*", allowed_source_address_prefix = "*", max_request_access_duration = "PT3H" }]"#;
const API_01_EVERYONE_AS_A_RANGE: &str = r#"virtual_machine = "api-01"
ports = [{ service = "ssh", protocol = "*", allowed_source_address_prefixes = ["0.0.0.0/0", "10.0.0.0/8"], max_request_access_duration = "PT3H" }]"#;

/// Every source prefix in every request the emulated policies hold.
fn requested_sources(context: &TestContext) -> Vec<String> {
    let snapshot = context.emulator.snapshot();
    let mut sources = Vec::new();
    for policy in snapshot["jit_policies"].as_array().into_iter().flatten() {
        for request in policy["properties"]["requests"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for vm in request["virtualMachines"].as_array().into_iter().flatten() {
                for port in vm["ports"].as_array().into_iter().flatten() {
                    if let Some(prefix) = port["allowedSourceAddressPrefix"].as_str() {
                        sources.push(prefix.to_owned());
                    }
                    for prefix in port["allowedSourceAddressPrefixes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        sources.push(prefix.to_owned());
                    }
                }
            }
        }
    }
    sources
}

fn opens_to_everyone(prefix: &str) -> bool {
    let prefix = prefix.trim();
    prefix == "*"
        || prefix.eq_ignore_ascii_case("internet")
        || prefix
            .parse::<ipnet::IpNet>()
            .is_ok_and(|network| network.prefix_len() == 0)
}

#[test]
fn no_request_opens_a_port_to_every_address_unless_asked() {
    let world_text =
        jit_emulator::world::DEFAULT_WORLD_TOML.replacen(API_01_ANY, API_01_EVERYONE_AS_A_RANGE, 1);
    assert_ne!(
        world_text,
        jit_emulator::world::DEFAULT_WORLD_TOML,
        "the default world's api-01 entry changed; update API_01_ANY"
    );
    let world = World::from_toml(&world_text).expect("a valid world");
    let context = TestContext::with(
        world,
        EmulatorOptions {
            initiating_delay: SignedDuration::ZERO,
            ..EmulatorOptions::default()
        },
    );
    let run = |arguments: &[&str]| {
        let output = context.run(arguments);
        let (_, stderr) = text(&output);
        (output.status.code(), stderr)
    };

    // A policy allowing any source: the caller's own address is asked for.
    let (code, stderr) = run(&["connect", "rg-web/web-01", "--no-launch"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(&[
        "request",
        "rg-web/web-01",
        "--source",
        "203.0.113.5",
        "--no-wait",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(&["extend", "rg-web/web-01"]);
    assert_eq!(code, Some(0), "{stderr}");

    // A policy whose only range around the caller is `0.0.0.0/0`: refused, whether the
    // address is found automatically or given with --source.
    for arguments in [
        &["connect", "api-01", "--no-launch"][..],
        &[
            "connect",
            "api-01",
            "--no-launch",
            "--source",
            "198.51.100.7",
        ],
        &[
            "request",
            "api-01",
            "--source",
            "198.51.100.0/24",
            "--no-wait",
        ],
    ] {
        let (code, stderr) = run(arguments);
        assert_ne!(code, Some(0), "jit {arguments:?} succeeded: {stderr}");
        assert!(
            stderr.contains("every address"),
            "jit {arguments:?} must say why: {stderr}"
        );
    }

    let sources = requested_sources(&context);
    assert!(
        sources.len() >= 3,
        "the requests were recorded: {sources:?}"
    );
    let wide: Vec<&String> = sources
        .iter()
        .filter(|source| opens_to_everyone(source))
        .collect();
    assert!(
        wide.is_empty(),
        "requests opened ports to every address unasked: {wide:?} (all: {sources:?})"
    );

    // Asked for in so many words, they are sent, and the check above would see them.
    let (code, stderr) = run(&["request", "rg-web/web-01", "--source", "any", "--no-wait"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(&["request", "api-01", "--source", "0.0.0.0/0", "--no-wait"]);
    assert_eq!(code, Some(0), "{stderr}");
    let asked: BTreeSet<String> = requested_sources(&context)
        .into_iter()
        .filter(|source| opens_to_everyone(source))
        .collect();
    assert_eq!(
        asked,
        BTreeSet::from(["*".to_owned(), "0.0.0.0/0".to_owned()])
    );
}

#[test]
fn the_ssh_that_connect_launches_still_checks_host_keys() {
    let found = std::process::Command::new("ssh").arg("-V").output().is_ok();
    assert!(
        found,
        "this test needs the OpenSSH client: apt-get install openssh-client"
    );
    let context = TestContext::new();
    let identity = context.emulator.info().ssh_identity.display().to_string();
    let connect = |known_hosts: &std::path::Path| {
        let output = context
            .jit()
            .args(["connect", "api-01", "--", "-i", &identity])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "hostname",
            ])
            .output()
            .expect("jit runs");
        let (stdout, stderr) = text(&output);
        (output.status.code(), stdout, stderr)
    };

    // An unknown host key: OpenSSH refuses to go on, and nothing runs on the VM.
    let empty = context.home().join("known_hosts_empty");
    std::fs::write(&empty, "").expect("an empty known_hosts");
    let (code, stdout, stderr) = connect(&empty);
    assert_ne!(
        code,
        Some(0),
        "connected without a known host key:\n{stderr}"
    );
    assert!(stdout.trim().is_empty(), "the command ran: {stdout}");
    assert!(
        stderr.contains("Host key verification failed"),
        "OpenSSH must have checked the key:\n{stderr}"
    );

    // With the VM's key known, the same command works: the key was the only difference.
    let options = context.ssh_options();
    let known = options
        .iter()
        .find_map(|option| option.strip_prefix("UserKnownHostsFile="))
        .map(std::path::PathBuf::from)
        .expect("the harness writes a known_hosts");
    let (code, stdout, stderr) = connect(&known);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stdout.trim().is_empty(), "{stderr}");
}
