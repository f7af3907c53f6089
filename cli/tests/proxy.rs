//! End to end: plain `ssh` with `jit proxy` as its `ProxyCommand`, and the entries `jit
//! ssh-config` writes, against the emulator's VMs (host keys checked under the entries'
//! `HostKeyAlias`).

mod support;

use std::process::Output;

use support::{TestContext, text};

/// A known_hosts file naming each VM's host key under `jit-<name>`, as the entries
/// written by `jit ssh-config` expect.
fn known_hosts_by_alias(context: &TestContext) -> std::path::PathBuf {
    let snapshot = context.emulator.snapshot();
    let lines: Vec<String> = snapshot["virtual_machines"]
        .as_array()
        .expect("vms")
        .iter()
        .filter_map(|vm| {
            Some(format!(
                "jit-{} {}",
                vm["name"].as_str()?.to_ascii_lowercase(),
                vm["host_public_key"].as_str()?
            ))
        })
        .collect();
    let path = context.home().join("known_hosts_aliases");
    std::fs::write(&path, lines.join("\n") + "\n").expect("written");
    path
}

fn initiate_count(context: &TestContext) -> usize {
    context
        .emulator
        .requests()
        .iter()
        .filter(|request| request.method == "POST" && request.path.contains("/initiate"))
        .count()
}

fn ssh(context: &TestContext, arguments: &[&str]) -> Output {
    context
        .command("ssh")
        .args(arguments)
        .output()
        .expect("ssh runs (apt-get install openssh-client)")
}

#[test]
fn plain_ssh_opens_access_through_jit_proxy_and_reuses_the_window() {
    let context = TestContext::new();
    let known_hosts = known_hosts_by_alias(&context);
    let proxy = format!("ProxyCommand={} proxy api-01", env!("CARGO_BIN_EXE_jit"));
    let identity = context.emulator.info().ssh_identity.display().to_string();
    let known_hosts_option = format!("UserKnownHostsFile={}", known_hosts.display());
    let arguments = [
        "-F",
        "/dev/null",
        "-o",
        &proxy,
        "-o",
        "HostKeyAlias=jit-api-01",
        "-o",
        &known_hosts_option,
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        &identity,
        "azureuser@api-01",
        "hostname",
    ];
    let output = ssh(&context, &arguments);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "api-01");
    assert_eq!(initiate_count(&context), 1);

    // The window is still open: the second connection asks Azure for nothing new.
    let output = ssh(&context, &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    assert_eq!(text(&output).0.trim(), "api-01");
    assert_eq!(initiate_count(&context), 1, "the open window was reused");
}

#[test]
fn the_generated_ssh_config_works_as_is() {
    let context = TestContext::new();
    let output = context.run(&["ssh-config", "api-01", "rg-app/web-01"]);
    let (config, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(config.contains("Host api-01\n"), "{config}");
    assert!(config.contains("    User azureuser\n"), "{config}");
    let config_file = context.home().join("ssh_config");
    std::fs::write(&config_file, &config).expect("written");

    let known_hosts = known_hosts_by_alias(&context);
    let identity = context.emulator.info().ssh_identity.display().to_string();
    let known_hosts_option = format!("UserKnownHostsFile={}", known_hosts.display());
    let config_path = config_file.display().to_string();
    let output = ssh(
        &context,
        &[
            "-F",
            &config_path,
            "-o",
            &known_hosts_option,
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
            &identity,
            "web-01",
            "whoami",
        ],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "azureuser");
}

#[test]
fn a_wrong_host_key_is_still_refused_through_the_proxy() {
    let context = TestContext::new();
    // Pin web-01's key under api-01's alias: ssh must refuse, jit must not interfere.
    let snapshot = context.emulator.snapshot();
    let wrong_key = snapshot["virtual_machines"]
        .as_array()
        .expect("vms")
        .iter()
        .find(|vm| vm["name"] == "cache-01")
        .and_then(|vm| vm["host_public_key"].as_str())
        .expect("a key")
        .to_owned();
    let known_hosts = context.home().join("wrong_known_hosts");
    std::fs::write(&known_hosts, format!("jit-api-01 {wrong_key}\n")).expect("written");
    let proxy = format!("ProxyCommand={} proxy api-01", env!("CARGO_BIN_EXE_jit"));
    let known_hosts_option = format!("UserKnownHostsFile={}", known_hosts.display());
    let identity = context.emulator.info().ssh_identity.display().to_string();
    let output = ssh(
        &context,
        &[
            "-F",
            "/dev/null",
            "-o",
            &proxy,
            "-o",
            "HostKeyAlias=jit-api-01",
            "-o",
            &known_hosts_option,
            "-o",
            "BatchMode=yes",
            "-i",
            &identity,
            "azureuser@api-01",
            "hostname",
        ],
    );
    assert_eq!(output.status.code(), Some(255));
    assert!(
        text(&output).1.contains("Host key verification failed"),
        "{}",
        text(&output).1
    );
}
