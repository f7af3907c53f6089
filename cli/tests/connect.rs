//! End to end: `jit connect`, `jit request`, `jit enable`/`disable` and `jit demo`, with
//! the real `jit` binary against the emulator over HTTPS, and real OpenSSH against the
//! emulated VMs' SSH listeners (the test's own known_hosts; host keys always checked).

mod support;

use serde_json::Value;
use support::{TestContext, text, transcript};

/// The port the emulator bound for a VM's service (`ssh`, `rdp`, `silent`).
fn listener_port(context: &TestContext, vm_name: &str, resource_group: &str, service: &str) -> u16 {
    let snapshot = context.emulator.snapshot();
    snapshot["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .find(|listener| {
            let id = listener["vm_id"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            id.ends_with(&format!("/virtualmachines/{vm_name}"))
                && id.contains(&format!("/resourcegroups/{resource_group}/"))
                && listener["service"] == service
        })
        .and_then(|listener| listener["port"].as_u64())
        .and_then(|port| u16::try_from(port).ok())
        .unwrap_or_else(|| panic!("no {service} listener for {resource_group}/{vm_name}"))
}

/// The policy (as the emulator holds it) whose id ends with `suffix`.
fn policy(context: &TestContext, suffix: &str) -> Value {
    context.emulator.snapshot()["jit_policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|policy| policy["id"].as_str().is_some_and(|id| id.ends_with(suffix)))
        .cloned()
        .unwrap_or(Value::Null)
}

/// `(vm id, ports)` of every VM in a policy, sorted.
fn policy_vms(policy: &Value) -> Vec<(String, String)> {
    let mut vms: Vec<(String, String)> = policy["properties"]["virtualMachines"]
        .as_array()
        .map(|vms| {
            vms.iter()
                .map(|vm| {
                    (
                        vm["id"].as_str().unwrap_or_default().to_ascii_lowercase(),
                        vm["ports"].to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    vms.sort();
    vms
}

fn connect_with_command(
    context: &TestContext,
    vm: &str,
    extra: &[&str],
    command: &[&str],
) -> std::process::Output {
    let ssh_options = context.ssh_options();
    let mut arguments: Vec<String> = vec!["connect".to_owned(), vm.to_owned()];
    arguments.extend(extra.iter().map(|argument| (*argument).to_owned()));
    arguments.push("--".to_owned());
    arguments.extend(ssh_options);
    arguments.extend(command.iter().map(|part| (*part).to_owned()));
    context.jit().args(&arguments).output().expect("jit runs")
}

fn require_ssh() {
    let found = std::process::Command::new("ssh").arg("-V").output().is_ok();
    assert!(
        found,
        "these tests need the OpenSSH client: apt-get install openssh-client"
    );
}

#[test]
fn connect_runs_a_command_on_a_configured_linux_vm_over_openssh() {
    require_ssh();
    let context = TestContext::new();
    let output = connect_with_command(
        &context,
        "api-01",
        &["--justification", "e2e"],
        &["hostname"],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "api-01");
    assert!(stderr.contains("Requested port"), "{stderr}");
    assert!(stderr.contains("answers at 127.0.0.1:"), "{stderr}");

    // Azure recorded the request for the caller's address with the justification.
    let recorded = policy(
        &context,
        "/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
    );
    let request = &recorded["properties"]["requests"][0];
    // The person's words, then the marker that tells this user's requests apart.
    let justification = request["justification"].as_str().unwrap_or_default();
    assert!(justification.starts_with("e2e [jit:"), "{justification}");
    assert_eq!(
        request["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"],
        "198.51.100.7"
    );
}

#[test]
fn the_exit_status_of_the_remote_command_is_jits_exit_status() {
    require_ssh();
    let context = TestContext::new();
    let output = connect_with_command(&context, "api-01", &[], &["exit", "3"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output).1);
}

#[test]
fn enabling_a_not_configured_vm_merges_it_into_the_policy_without_touching_the_others() {
    require_ssh();
    let context = TestContext::new();
    let suffix = "/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default";
    let before = policy_vms(&policy(&context, suffix));
    assert_eq!(
        before.len(),
        3,
        "the default world's rg-web policy holds three VMs"
    );

    let port = listener_port(&context, "cache-01", "rg-web", "ssh").to_string();
    let output = connect_with_command(
        &context,
        "cache-01",
        &["--enable", "--port", &port],
        &["hostname"],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "cache-01");
    assert!(
        stderr.contains("the 3 other VMs in it are unchanged"),
        "{stderr}"
    );

    let after = policy_vms(&policy(&context, suffix));
    assert_eq!(after.len(), 4);
    for vm in &before {
        assert!(after.contains(vm), "{vm:?} changed or vanished: {after:?}");
    }

    // And off again: only cache-01 leaves.
    let output = context.run(&["disable", "cache-01"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    assert_eq!(policy_vms(&policy(&context, suffix)), before);
}

#[test]
fn a_not_configured_vm_without_enable_fails_with_a_hint() {
    let context = TestContext::new();
    let output = context.run(&["connect", "dev-01"]);
    insta::assert_snapshot!(transcript(&output, &context), @r"
    exit code: 8
    ----- stdout -----
    ----- stderr -----
    error: JIT is not enabled for dev-01
      hint: enable it with `jit connect dev-01 --enable` or `jit enable dev-01`
    ");
}

#[test]
fn unsupported_vms_say_why() {
    let context = TestContext::new();
    let output = context.run(&["connect", "legacy-01", "--enable"]);
    insta::assert_snapshot!(transcript(&output, &context), @r"
    exit code: 8
    ----- stdout -----
    ----- stderr -----
    error: JIT cannot protect legacy-01: it has no network security group on its network interface or subnet
      hint: attach a network security group to the VM's NIC or subnet, then enable JIT
    ");
    let output = context.run(&["connect", "classic-01"]);
    assert_eq!(output.status.code(), Some(8));
    assert!(
        text(&output).1.contains("classic VM"),
        "{}",
        text(&output).1
    );
}

#[test]
fn a_stopped_vm_is_started_only_when_asked() {
    require_ssh();
    let context = TestContext::new();
    let output = context.run(&["connect", "batch-01"]);
    insta::assert_snapshot!(transcript(&output, &context), @r"
    exit code: 8
    ----- stdout -----
    ----- stderr -----
    error: batch-01 is deallocated
      hint: start it with `jit connect batch-01 --start`
    ");
    let output = connect_with_command(&context, "batch-01", &["--start"], &["hostname"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Started batch-01"), "{stderr}");
    assert_eq!(stdout.trim(), "batch-01");
}

#[test]
fn an_ambiguous_name_lists_the_candidates() {
    let context = TestContext::new();
    let output = context.run(&["connect", "web-01"]);
    insta::assert_snapshot!(transcript(&output, &context), @r"
    exit code: 2
    ----- stdout -----
    ----- stderr -----
    error: 'web-01' matches 2 VMs: rg-web/web-01, rg-app/web-01
      hint: name it as resource-group/name: rg-web/web-01 or rg-app/web-01
    ");
}

#[test]
fn a_duration_over_the_maximum_names_the_maximum() {
    let context = TestContext::new();
    let output = context.run(&["connect", "api-01", "--duration", "4h"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("4h is longer than the policy allows"),
        "{stderr}"
    );
    assert!(stderr.contains("(3h)"), "{stderr}");
    // Nothing was requested.
    let requests = context
        .emulator
        .requests()
        .into_iter()
        .filter(|request| request.path.contains("/initiate"))
        .count();
    assert_eq!(requests, 0);
}

#[test]
fn an_explicit_range_policy_gets_the_exact_range_string() {
    require_ssh();
    let context = TestContext::new();
    let output = connect_with_command(&context, "rg-app/web-01", &[], &["whoami"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "azureuser");
    let recorded = policy(
        &context,
        "/resourceGroups/rg-app/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
    );
    assert_eq!(
        recorded["properties"]["requests"][0]["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"],
        "198.51.100.0/24"
    );

    // A source outside the allowed ranges is refused before anything is sent.
    let output = context.run(&["connect", "rg-app/web-01", "--source", "192.0.2.10"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("198.51.100.0/24, 203.0.113.0/24"),
        "{stderr}"
    );
    // `any` is not allowed there either.
    let output = context.run(&["connect", "rg-app/web-01", "--source", "any"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_vm_behind_azure_firewall_is_reached_through_the_mapped_port() {
    require_ssh();
    let context = TestContext::new();
    let output = connect_with_command(&context, "fw-01", &[], &["hostname"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "fw-01");
    assert!(stderr.contains("(firewall port "), "{stderr}");

    let output = context.run(&["connect", "fw-01", "--no-launch", "-o", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let port = &report["ports"][0];
    assert!(port["mapped_port"].is_u64(), "{report}");
    assert_eq!(port["connect_port"], port["mapped_port"]);
}

#[test]
fn a_port_that_never_opens_times_out_with_exit_code_7() {
    let context = TestContext::new();
    // Open the port for an address that is not ours: Azure applies it, the port stays
    // shut for us.
    let output = context.run(&[
        "connect",
        "api-01",
        "--source",
        "192.0.2.1",
        "--timeout",
        "4s",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("did not answer as SSH within"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn an_ipv6_public_address_is_not_sent_and_azure_uses_the_address_it_sees() {
    require_ssh();
    let context = TestContext::new();
    context.emulator.set_my_ip(Some("2001:db8::7".to_owned()));
    let output = connect_with_command(&context, "api-01", &[], &["hostname"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "api-01");
    assert!(stderr.contains("IPv6 (2001:db8::7)"), "{stderr}");
    let recorded = policy(
        &context,
        "/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
    );
    // No prefix was sent; the emulator (as Azure) used the caller's address.
    assert_eq!(
        recorded["properties"]["requests"][0]["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"],
        "198.51.100.7"
    );
}

#[test]
fn disagreeing_public_address_services_are_reported() {
    let context = TestContext::new();
    let other = jit_emulator::Emulator::start_with(
        jit_emulator::World::default_world(),
        jit_emulator::EmulatorOptions {
            client_ip: "203.0.113.9".parse().expect("address"),
            ..jit_emulator::EmulatorOptions::default()
        },
    )
    .expect("a second emulator as another 'my IP' service");
    let both_cas = context.home().join("cas.pem");
    let pem = std::fs::read_to_string(&context.emulator.info().ca_cert).expect("ca")
        + &std::fs::read_to_string(&other.info().ca_cert).expect("ca");
    std::fs::write(&both_cas, pem).expect("written");
    let urls = format!(
        "{},{}",
        context.emulator.info().my_ip_url,
        other.info().my_ip_url
    );
    let output = context
        .jit()
        .env("JIT_MY_IP_URLS", urls)
        .env("JIT_CA_FILE", &both_cas)
        .args(["connect", "api-01", "--no-launch"])
        .output()
        .expect("jit runs");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("services disagree"), "{stderr}");
    assert!(stderr.contains("203.0.113.9"), "{stderr}");
    assert!(stderr.contains("Using 198.51.100.7"), "{stderr}");
}

#[test]
fn a_windows_vm_gets_rdp_details_and_an_rdp_file() {
    let context = TestContext::new();
    let output = context.run(&["connect", "sql-01", "--no-launch", "-o", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    let rdp_port = listener_port(&context, "sql-01", "rg-data", "rdp");
    assert_eq!(report["ports"][0]["service"], "rdp");
    assert_eq!(report["ports"][0]["connect_port"], rdp_port);
    let file = report["rdp_file"].as_str().expect("an .rdp file");
    let content = std::fs::read_to_string(file).expect("the .rdp file exists");
    assert!(
        content.starts_with(&format!("full address:s:127.0.0.1:{rdp_port}\r\n")),
        "{content}"
    );
    assert!(content.contains("username:s:azureuser\r\n"), "{content}");
    assert!(!stdout.contains("token"), "no token in JSON output");
}

#[test]
fn among_several_ports_the_one_that_speaks_ssh_is_used() {
    require_ssh();
    let context = TestContext::new();
    let output = connect_with_command(&context, "ops-01", &[], &["hostname"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "ops-01");
    let ssh_port = listener_port(&context, "ops-01", "rg-ops", "ssh");
    assert!(
        stderr.contains(&format!("answers at 127.0.0.1:{ssh_port}")),
        "{stderr}"
    );
}

#[test]
fn request_asks_once_per_policy_for_several_vms() {
    let context = TestContext::new();
    let output = context.run(&["request", "api-01", "rg-web/web-01", "-o", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let reports: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(reports.as_array().map(Vec::len), Some(2));
    let initiates = context
        .emulator
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST" && request.path.contains("/initiate"))
        .count();
    assert_eq!(
        initiates, 1,
        "both VMs share the rg-web policy: one initiate"
    );
}

#[test]
fn enable_sets_ports_and_maximum_and_refuses_bad_values() {
    let context = TestContext::new();
    let output = context.run(&[
        "enable",
        "dev-01",
        "--port",
        "22",
        "--max-duration",
        "2h",
        "--allowed-source",
        "203.0.113.0/24",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    let created = policy(
        &context,
        "/resourceGroups/rg-dev/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
    );
    let port = &created["properties"]["virtualMachines"][0]["ports"][0];
    assert_eq!(port["number"], 22);
    assert_eq!(port["allowedSourceAddressPrefix"], "203.0.113.0/24");
    assert_eq!(port["maxRequestAccessDuration"], "PT2H");

    let output = context.run(&["enable", "dev-01", "--max-duration", "2d"]);
    assert_eq!(output.status.code(), Some(2));
    let output = context.run(&["enable", "dev-01", "--allowed-source", "2001:db8::/32"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn the_demo_runs_the_whole_flow_and_exits_zero() {
    require_ssh();
    let context = TestContext::new();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_jit"))
        .arg("demo")
        .env("NO_COLOR", "1")
        .env("HOME", context.home())
        .env_remove("JIT_ARM_ENDPOINT")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("jit demo runs");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    // The SSH command really ran on the emulated VM.
    assert!(
        stdout.lines().any(|line| line.trim() == "api-01"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Revoked (Expired)"),
        "the clock jump ends the window: {stdout}"
    );
    assert!(stderr.contains("$ jit connect api-01"), "{stderr}");
    assert!(
        stderr.contains("--justification 'jit demo'"),
        "commands are shown as a shell needs them: {stderr}"
    );
}

#[test]
fn enabling_uses_the_configured_defaults_for_sources_and_maximum() {
    require_ssh();
    let context = TestContext::new();
    let config = context.home().join("jit.toml");
    std::fs::write(
        &config,
        "[enable]\nallowed_sources = [\"198.51.100.0/24\"]\nmax_duration = \"1h\"\n",
    )
    .expect("config written");
    let port = listener_port(&context, "dev-01", "rg-dev", "ssh").to_string();
    let ssh_options = context.ssh_options();
    let mut arguments = vec!["connect", "dev-01", "--enable", "--port", &port, "--"];
    arguments.extend(ssh_options.iter().map(String::as_str));
    arguments.push("hostname");
    let output = context
        .jit()
        .env("JIT_CONFIG", &config)
        .args(&arguments)
        .output()
        .expect("jit runs");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "dev-01");
    let created = policy(
        &context,
        "/resourceGroups/rg-dev/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
    );
    let rule = &created["properties"]["virtualMachines"][0]["ports"][0];
    assert_eq!(rule["allowedSourceAddressPrefix"], "198.51.100.0/24");
    assert_eq!(rule["maxRequestAccessDuration"], "PT1H");
    // The request then had to use that exact range.
    assert_eq!(
        created["properties"]["requests"][0]["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"],
        "198.51.100.0/24"
    );
}

/// What `ssh -G` (resolve the configuration, print it, connect nowhere) makes of an argv
/// built by `jit`, without reading any ssh config file.
fn resolved_by_ssh(
    target: &jit::launch::ssh::SshTarget,
    user_args: &[&str],
) -> std::process::Output {
    let user_args: Vec<String> = user_args.iter().map(|arg| (*arg).to_owned()).collect();
    let configured = ["-G", "-F", "/dev/null"].map(str::to_owned);
    let (program, arguments) = jit::launch::ssh::ssh_command_line(
        std::path::Path::new("ssh"),
        &configured,
        target,
        &user_args,
    );
    std::process::Command::new(program)
        .args(&arguments)
        .output()
        .expect("ssh runs")
}

#[test]
fn openssh_reads_the_users_options_as_options_and_the_destination_after_them() {
    require_ssh();
    let target = jit::launch::ssh::SshTarget {
        address: "127.0.0.1".to_owned(),
        port: 2222,
        user: Some("azureuser".to_owned()),
    };
    let output = resolved_by_ssh(
        &target,
        &["-L", "8080:x:80", "-o", "ServerAliveInterval=7", "uptime"],
    );
    let (resolved, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "ssh -G failed: {stderr}");
    let lines: Vec<&str> = resolved.lines().collect();
    for expected in [
        "user azureuser",
        "hostname 127.0.0.1",
        "port 2222",
        "serveraliveinterval 7",
    ] {
        assert!(lines.contains(&expected), "{expected}:\n{resolved}");
    }
    // `localforward 8080 [x]:80` (or `x:80` in older versions).
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("localforward 8080 ") && line.contains('x')),
        "{resolved}"
    );
}

#[test]
fn openssh_reads_a_hostile_user_name_as_a_user_never_as_an_option() {
    require_ssh();
    let scratch = tempfile::tempdir().expect("temp dir");
    let planted = scratch.path().join("pwned");
    let hostile = jit::launch::ssh::SshTarget {
        address: "127.0.0.1".to_owned(),
        port: 2222,
        user: Some(format!("-oProxyCommand=touch {}", planted.display())),
    };
    let output = resolved_by_ssh(&hostile, &["-L", "8080:x:80", "uptime"]);
    let (resolved, stderr) = text(&output);
    assert!(
        !resolved
            .lines()
            .any(|line| line.starts_with("proxycommand ")),
        "the user name became a ProxyCommand:\n{resolved}"
    );
    if output.status.success() {
        // An OpenSSH without user-name checks takes it as the (odd) user of 127.0.0.1.
        assert!(
            resolved.lines().any(|line| line == "hostname 127.0.0.1"),
            "{resolved}"
        );
    } else {
        // Newer OpenSSH (and Debian's backport) refuses it as a user name, which it
        // could only do after reading it as the destination's user.
        assert!(
            stderr.contains("username contains invalid characters"),
            "{stderr}"
        );
    }

    // The checked form refuses the name before any ssh runs.
    let refused =
        jit::launch::ssh::checked_ssh_command_line(std::path::Path::new("ssh"), &[], &hostile, &[])
            .expect_err("an option-like user name is refused");
    assert!(refused.to_string().contains("starts with '-'"), "{refused}");
}

#[test]
fn jit_connect_never_lets_a_user_name_run_a_proxy_command() {
    require_ssh();
    let context = TestContext::new();
    let planted = context.home().join("pwned");
    let user = format!("--user=-oProxyCommand=touch {}", planted.display());
    let output = connect_with_command(&context, "api-01", &[&user], &["hostname"]);
    let (_, stderr) = text(&output);
    let created: Vec<String> = std::fs::read_dir(context.home())
        .expect("home listable")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("pwned"))
        .collect();
    assert!(
        created.is_empty(),
        "ssh ran the user name as a ProxyCommand ({created:?}); stderr:\n{stderr}"
    );
}

#[test]
fn a_private_answer_from_a_my_ip_service_is_never_the_requests_source() {
    let context = TestContext::new();
    // A proxy or captive portal answering for the service with an internal address.
    context.emulator.set_my_ip(Some("10.20.30.40".to_owned()));
    let output = context.run(&["connect", "api-01", "--no-launch", "--timeout", "30s"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let recorded = policy(
        &context,
        "/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default",
    );
    // No prefix was sent: the emulator (as Azure) used the address it saw.
    assert_eq!(
        recorded["properties"]["requests"][0]["virtualMachines"][0]["ports"][0]["allowedSourceAddressPrefix"],
        "198.51.100.7",
        "{stderr}"
    );
}

#[tokio::test]
async fn discover_refuses_non_public_answers_over_https() {
    let emulator = jit_emulator::Emulator::start_with(
        jit_emulator::World::default_world(),
        jit_emulator::EmulatorOptions::default(),
    )
    .expect("the emulator starts");
    let transport = jit_agent::azure::transport::HttpTransport::new(
        &jit_agent::azure::transport::TransportOptions {
            extra_ca_files: vec![emulator.info().ca_cert.clone()],
            ..jit_agent::azure::transport::TransportOptions::default()
        },
    )
    .expect("HTTP client");
    let urls = [
        emulator.info().my_ip_url.clone(),
        format!("{}?format=json", emulator.info().my_ip_url),
    ];
    let timeout = std::time::Duration::from_secs(10);

    // The emulator's own answer (a documentation address) is used.
    let public = jit_agent::access::my_ip::discover(transport.client(), &urls, timeout).await;
    assert_eq!(public.ipv4(), "198.51.100.7".parse().ok(), "{public:?}");

    for (answer, kind) in [
        ("10.20.30.40", "private"),
        ("100.64.0.9", "carrier-grade NAT"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fd00::1", "unique local"),
    ] {
        emulator.set_my_ip(Some(answer.to_owned()));
        let discovered =
            jit_agent::access::my_ip::discover(transport.client(), &urls, timeout).await;
        assert_eq!(discovered.ipv4(), None, "{answer} was used: {discovered:?}");
        assert!(discovered.ipv6().is_empty(), "{discovered:?}");
        let reason = discovered.why_no_ipv4().expect("a reason");
        assert!(
            reason.contains(&format!("answered {answer}, ")) && reason.contains(kind),
            "{reason}"
        );
    }
}
