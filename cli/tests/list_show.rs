//! `jit list` and `jit show` end to end: the real `jit` binary against the emulator's
//! default world (docs/world-file.md), over HTTPS, signed in through the fake `az`.
//!
//! Snapshots record whole transcripts (exit code, stdout, stderr) after filters; each
//! test also asserts the facts that matter (which VM lands in which tab, and why)
//! directly, so a wrongly accepted snapshot cannot hide a wrong verdict.

mod support;

use std::process::Output;

use serde_json::Value;
use support::{TestContext, text, transcript};

const PRODUCTION: &str = "3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b34";
const DEVELOPMENT: &str = "b7e4d2a9-5c3f-4a18-8e6d-91f0c2b3a457";

/// Every VM of the default world: (resource group, name, state, unsupported reason).
const DEFAULT_WORLD: &[(&str, &str, &str, Option<&str>)] = &[
    ("rg-web", "api-01", "configured", None),
    ("rg-web", "web-01", "configured", None),
    ("rg-web", "batch-01", "configured", None),
    ("rg-web", "cache-01", "not_configured", None),
    ("rg-data", "sql-01", "configured", None),
    ("rg-edge", "fw-01", "configured", None),
    ("rg-dev", "dev-01", "not_configured", None),
    (
        "rg-legacy",
        "legacy-01",
        "unsupported",
        Some("no_network_security_group"),
    ),
    ("rg-legacy", "classic-01", "unsupported", Some("classic_vm")),
    ("rg-app", "web-01", "configured", None),
    ("rg-ops", "ops-01", "configured", None),
];

/// The transcript with each VM port's bound number (random per run) replaced by
/// `[logical]`, as the world file names it.
fn filtered(output: &Output, context: &TestContext) -> String {
    let mut text = transcript(output, context);
    let snapshot = context.emulator.snapshot();
    let listeners = snapshot["listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for listener in listeners {
        let (Some(port), Some(logical)) =
            (listener["port"].as_u64(), listener["logical_port"].as_u64())
        else {
            panic!("a listener without ports: {listener}");
        };
        let pattern = regex::Regex::new(&format!(r"\b{port}\b")).expect("valid pattern");
        text = pattern
            .replace_all(&text, format!("[{logical}]").as_str())
            .into_owned();
    }
    text
}

fn json_of(output: &Output) -> Value {
    let (stdout, stderr) = text(output);
    serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!("stdout is not JSON ({error}):\n{stdout}\nstderr:\n{stderr}")
    })
}

fn assert_success(output: &Output) {
    let (stdout, stderr) = text(output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "jit failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

/// `(resource group, name) → state` of every VM in a `jit list -o json` document.
fn states(document: &Value) -> Vec<(String, String, String)> {
    let mut states: Vec<(String, String, String)> = document["vms"]
        .as_array()
        .expect("vms is a list")
        .iter()
        .map(|vm| {
            (
                vm["resource_group"]
                    .as_str()
                    .expect("resource_group")
                    .to_owned(),
                vm["name"].as_str().expect("name").to_owned(),
                vm["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect();
    states.sort();
    states
}

fn expected_states(filter: impl Fn(&str) -> bool) -> Vec<(String, String, String)> {
    let mut expected: Vec<(String, String, String)> = DEFAULT_WORLD
        .iter()
        .filter(|(_, _, state, _)| filter(state))
        .map(|(group, name, state, _)| {
            ((*group).to_owned(), (*name).to_owned(), (*state).to_owned())
        })
        .collect();
    expected.sort();
    expected
}

/// The table block under a tab heading (`Configured (7)`), one line per VM.
fn tab_rows<'a>(stdout: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = stdout.lines();
    let heading = format!("{title} (");
    for line in lines.by_ref() {
        if line.starts_with(&heading) {
            break;
        }
    }
    lines
        .skip(1) // the column headers
        .take_while(|line| !line.is_empty())
        .collect()
}

#[test]
fn list_groups_the_default_world_as_the_portal_does() {
    let context = TestContext::new();
    let output = context.run(&["list"]);
    assert_success(&output);
    let (stdout, stderr) = text(&output);
    assert!(
        stderr.contains("Listing VMs in 2 subscriptions"),
        "{stderr}"
    );

    for (title, state) in [
        ("Configured", "configured"),
        ("Not configured", "not_configured"),
        ("Unsupported", "unsupported"),
    ] {
        let rows = tab_rows(&stdout, title);
        let expected: Vec<_> = DEFAULT_WORLD
            .iter()
            .filter(|(_, _, candidate, _)| *candidate == state)
            .collect();
        assert!(
            stdout.contains(&format!("{title} ({})", expected.len())),
            "{title}:\n{stdout}"
        );
        assert_eq!(rows.len(), expected.len(), "{title}:\n{stdout}");
        for (group, name, _, _) in expected {
            assert!(
                rows.iter().any(|row| {
                    let cells: Vec<&str> = row.split_whitespace().collect();
                    cells.first() == Some(name) && cells.get(1) == Some(group)
                }),
                "{group}/{name} is not under {title}:\n{stdout}"
            );
        }
    }
    let unsupported = tab_rows(&stdout, "Unsupported").join("\n");
    assert!(unsupported.contains("classic VMs are not supported by JIT"));
    assert!(unsupported.contains("no network security group on its network interface or subnet"));
    let not_configured = tab_rows(&stdout, "Not configured").join("\n");
    assert!(
        not_configured.contains("NSG on NIC (dev-01-nsg)"),
        "{not_configured}"
    );
    let configured = tab_rows(&stdout, "Configured");
    let firewall_row = configured
        .iter()
        .find(|row| row.starts_with("fw-01 "))
        .expect("fw-01 is configured");
    assert!(firewall_row.contains("firewall"), "{firewall_row}");
    assert!(
        configured
            .iter()
            .any(|row| row.contains("198.51.100.0/24, 203.0.113.0/24") && row.contains("1h")),
        "the explicit sources of rg-app/web-01 are shown:\n{stdout}"
    );

    insta::assert_snapshot!("list_default_world", filtered(&output, &context));
}

#[test]
fn list_as_json_carries_every_verdict_and_reason() {
    let context = TestContext::new();
    let output = context.run(&["list", "--output", "json"]);
    assert_success(&output);
    let document = json_of(&output);
    assert_eq!(states(&document), expected_states(|_| true));
    assert_eq!(document["counts"]["configured"], 7);
    assert_eq!(document["counts"]["not_configured"], 2);
    assert_eq!(document["counts"]["unsupported"], 2);
    assert_eq!(document["subscriptions"].as_array().map(Vec::len), Some(2));

    let vms = document["vms"].as_array().expect("vms");
    for (group, name, _, reason) in DEFAULT_WORLD {
        let vm = vms
            .iter()
            .find(|vm| vm["resource_group"] == *group && vm["name"] == *name)
            .unwrap_or_else(|| panic!("{group}/{name} is listed"));
        assert_eq!(
            vm["unsupported_reason"]["code"].as_str(),
            *reason,
            "{group}/{name}"
        );
        assert_eq!(
            vm["jit"].is_object(),
            vm["state"] == "configured",
            "{group}/{name}"
        );
    }
    let by_name = |group: &str, name: &str| -> &Value {
        vms.iter()
            .find(|vm| vm["resource_group"] == group && vm["name"] == name)
            .expect("listed")
    };
    let firewall = by_name("rg-edge", "fw-01");
    assert_eq!(
        firewall["jit"]["enforced_by"],
        serde_json::json!(["firewall"])
    );
    assert_eq!(firewall["jit"]["firewall_public_ip"], "127.0.0.1");
    assert!(
        firewall["network"]["firewall"]
            .as_str()
            .is_some_and(|id| id.ends_with("/azureFirewalls/afw-edge")),
        "{firewall}"
    );
    let sql = by_name("rg-data", "sql-01");
    assert_eq!(sql["jit"]["policy_name"], "jit-data");
    assert_eq!(sql["os"], "Windows");
    assert!(
        sql["network"]["subnet_network_security_groups"][0]
            .as_str()
            .is_some_and(|id| id.ends_with("/sql-subnet-nsg"))
    );
    assert_eq!(by_name("rg-web", "batch-01")["power_state"], "deallocated");
    assert_eq!(by_name("rg-legacy", "classic-01")["classic"], true);
    assert_eq!(
        by_name("rg-app", "web-01")["jit"]["ports"][0]["allowed_source_address_prefixes"],
        serde_json::json!(["198.51.100.0/24", "203.0.113.0/24"])
    );
    assert_eq!(
        by_name("rg-app", "web-01")["jit"]["ports"][0]["max_request_access_duration"],
        "PT1H"
    );

    insta::assert_snapshot!("list_default_world_json", filtered(&output, &context));
}

#[test]
fn the_state_filter_keeps_one_tab() {
    let context = TestContext::new();
    for (flag, state) in [
        ("configured", "configured"),
        ("not-configured", "not_configured"),
        ("unsupported", "unsupported"),
    ] {
        let output = context.run(&["list", "--state", flag, "-o", "json"]);
        assert_success(&output);
        let document = json_of(&output);
        assert_eq!(document["state"], state);
        assert_eq!(
            states(&document),
            expected_states(|candidate| candidate == state)
        );
    }
    let output = context.run(&["list", "--state", "unsupported"]);
    assert_success(&output);
    let (stdout, _) = text(&output);
    assert!(!stdout.contains("Configured ("), "{stdout}");
    insta::assert_snapshot!("list_state_unsupported", filtered(&output, &context));
}

#[test]
fn subscriptions_are_chosen_by_name_or_id_and_resource_groups_narrow() {
    let context = TestContext::new();
    let development = expected_states(|_| true)
        .into_iter()
        .filter(|(group, _, _)| group == "rg-app" || group == "rg-ops")
        .collect::<Vec<_>>();
    for subscription in ["Contoso Development", "contoso development", DEVELOPMENT] {
        let output = context.run(&["list", "--subscription", subscription, "-o", "json"]);
        assert_success(&output);
        let document = json_of(&output);
        assert_eq!(
            states(&document),
            development,
            "--subscription {subscription}"
        );
        assert_eq!(document["subscriptions"][0]["id"], DEVELOPMENT);
    }
    let both = context.run(&[
        "list",
        "-s",
        PRODUCTION,
        "-s",
        "Contoso Development",
        "-o",
        "json",
    ]);
    assert_success(&both);
    assert_eq!(states(&json_of(&both)), expected_states(|_| true));

    let output = context.run(&["list", "-g", "rg-legacy", "-o", "json"]);
    assert_success(&output);
    let names: Vec<String> = states(&json_of(&output))
        .into_iter()
        .map(|(_, name, _)| name)
        .collect();
    assert_eq!(names, ["classic-01", "legacy-01"]);

    // A resource group that does not exist is "not found" (exit 3), as documented.
    let output = context.run(&["list", "-g", "rg-nothing-here"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("no resource group 'rg-nothing-here' in 2 subscriptions"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_subscription_is_not_found() {
    let context = TestContext::new();
    let output = context.run(&["list", "--subscription", "Contoso Staging"]);
    assert_eq!(output.status.code(), Some(3));
    let (stdout, stderr) = text(&output);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("Contoso Production"),
        "lists what is visible: {stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    insta::assert_snapshot!("list_unknown_subscription", filtered(&output, &context));
}

#[test]
fn paging_one_row_at_a_time_gives_the_same_listing() {
    let context = TestContext::new();
    let whole = json_of(&context.run(&["list", "-o", "json"]));
    context.emulator.set_page_size(Some(1));
    let before = graph_queries(&context);
    let paged_output = context.run(&["list", "-o", "json"]);
    assert_success(&paged_output);
    let paged = json_of(&paged_output);
    let without_time = |document: &Value| {
        let mut document = document.clone();
        document["as_of"] = Value::Null;
        document
    };
    assert_eq!(without_time(&paged), without_time(&whole));
    // Eleven VMs, one per page, took at least eleven Resource Graph calls for the VMs
    // alone: the pages were followed, not cut short.
    assert!(
        graph_queries(&context) - before > 11,
        "Resource Graph was asked {} times",
        graph_queries(&context) - before
    );
}

fn graph_queries(context: &TestContext) -> usize {
    support::count_requests_under(
        &context.emulator,
        "/providers/microsoft.resourcegraph/resources",
    )
}

/// Opens `port` (the policy's first for the VM) for `198.51.100.7` for 90 minutes with
/// a justification, straight through the REST API as the emulator's service principal.
fn initiate(context: &TestContext, subscription: &str, resource_group: &str, vm: &str) {
    let info = context.emulator.info().clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        // reqwest carries no crypto provider of its own (see the root Cargo.toml).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&info.ca_cert).expect("the CA"))
            .expect("a PEM CA");
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .expect("an HTTPS client");
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &info.service_principal.client_id)
            .append_pair("client_secret", &info.service_principal.client_secret)
            .append_pair("scope", "https://management.azure.com/.default")
            .finish();
        let token: Value = client
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                info.authority_host, info.tenant_id
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("the token endpoint answers")
            .error_for_status()
            .expect("a token")
            .json()
            .await
            .expect("JSON");
        let bearer = format!("Bearer {}", token["access_token"].as_str().expect("access_token"));
        let policies: Value = client
            .get(format!(
                "{}/subscriptions/{subscription}/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version=2020-01-01",
                info.arm_endpoint
            ))
            .header("authorization", &bearer)
            .send()
            .await
            .expect("ARM answers")
            .error_for_status()
            .expect("policies")
            .json()
            .await
            .expect("JSON");
        let suffix = format!("/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/{vm}").to_ascii_lowercase();
        let (policy_id, vm_id, port) = policies["value"]
            .as_array()
            .expect("a list")
            .iter()
            .find_map(|policy| {
                let entry = policy["properties"]["virtualMachines"]
                    .as_array()?
                    .iter()
                    .find(|entry| entry["id"].as_str().is_some_and(|id| id.to_ascii_lowercase().ends_with(&suffix)))?;
                Some((
                    policy["id"].as_str()?.to_owned(),
                    entry["id"].as_str()?.to_owned(),
                    entry["ports"][0]["number"].as_u64()?,
                ))
            })
            .expect("a policy lists the VM");
        let now: jiff::Timestamp = context_now(&client, &info.admin_endpoint).await;
        let end = now + jiff::SignedDuration::from_mins(90);
        let body = serde_json::json!({
            "virtualMachines": [{"id": vm_id, "ports": [{
                "number": port,
                "allowedSourceAddressPrefix": "198.51.100.7",
                "endTimeUtc": end.to_string(),
            }]}],
            "justification": "INC-4711 disk full",
        });
        client
            .post(format!("{}{policy_id}/initiate?api-version=2020-01-01", info.arm_endpoint))
            .header("authorization", &bearer)
            .json(&body)
            .send()
            .await
            .expect("ARM answers")
            .error_for_status()
            .expect("the request is accepted");
    });
    // Past the initiating delay, so the port reads `Initiated`.
    context
        .emulator
        .advance_clock(jiff::SignedDuration::from_secs(5));
}

async fn context_now(client: &reqwest::Client, admin_endpoint: &str) -> jiff::Timestamp {
    let clock: Value = client
        .get(format!("{admin_endpoint}/clock"))
        .send()
        .await
        .expect("the admin API answers")
        .json()
        .await
        .expect("JSON");
    clock["now"]
        .as_str()
        .and_then(|now| now.parse().ok())
        .expect("a timestamp")
}

#[test]
fn open_requests_show_with_their_time_left() {
    let context = TestContext::new();
    initiate(&context, PRODUCTION, "rg-web", "api-01");

    let output = context.run(&["list", "--state", "configured"]);
    assert_success(&output);
    let (stdout, _) = text(&output);
    let row = tab_rows(&stdout, "Configured")
        .into_iter()
        .find(|row| row.starts_with("api-01 "))
        .expect("api-01 is listed");
    assert!(
        row.contains("for 198.51.100.7 (1h29m left)")
            || row.contains("for 198.51.100.7 (1h28m left)"),
        "{row}"
    );

    let document = json_of(&context.run(&["list", "-o", "json", "-g", "rg-web"]));
    let api = document["vms"]
        .as_array()
        .expect("vms")
        .iter()
        .find(|vm| vm["name"] == "api-01")
        .expect("api-01");
    let active = &api["jit"]["active_requests"][0];
    assert_eq!(active["status"], "Initiated");
    assert_eq!(active["source"], "198.51.100.7");
    assert_eq!(active["justification"], "INC-4711 disk full");
    let left = active["seconds_left"].as_i64().expect("seconds_left");
    assert!((5000..=5400).contains(&left), "{left} s left");

    let output = context.run(&["show", "rg-web/api-01"]);
    assert_success(&output);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("Active requests (1)"), "{stdout}");
    assert!(stdout.contains("INC-4711 disk full"), "{stdout}");
    assert!(stdout.contains("Initiated (UserRequested)"), "{stdout}");
    insta::assert_snapshot!("show_with_open_request", filtered(&output, &context));
}

#[test]
fn show_a_configured_vm() {
    let context = TestContext::new();
    let output = context.run(&["show", "api-01"]);
    assert_success(&output);
    let (stdout, stderr) = text(&output);
    assert!(stderr.contains("Reading rg-web/api-01"), "{stderr}");
    for expected in [
        "JIT: configured (on the NSG)",
        "contoso-api-01.westeurope.cloudapp.azure.com",
        "10.1.0.4",
        "api-01-nsg",
        "azureuser",
        "Active requests: none",
        "Recent requests: none",
    ] {
        assert!(stdout.contains(expected), "{expected}:\n{stdout}");
    }
    insta::assert_snapshot!("show_configured", filtered(&output, &context));
}

#[test]
fn show_as_json_matches_the_listing() {
    let context = TestContext::new();
    let listed = json_of(&context.run(&["list", "-o", "json"]));
    for (group, name, _, _) in DEFAULT_WORLD {
        let output = context.run(&["show", &format!("{group}/{name}"), "-o", "json"]);
        assert_success(&output);
        let shown = json_of(&output);
        let listed_vm = listed["vms"]
            .as_array()
            .expect("vms")
            .iter()
            .find(|vm| vm["resource_group"] == *group && vm["name"] == *name)
            .expect("listed");
        for field in [
            "id",
            "state",
            "unsupported_reason",
            "network",
            "os",
            "power_state",
            "classic",
        ] {
            assert_eq!(shown[field], listed_vm[field], "{group}/{name}: {field}");
        }
    }
    let output = context.run(&["show", "sql-01", "-o", "json"]);
    let shown = json_of(&output);
    assert_eq!(
        shown["addresses"]["fqdn"],
        "contoso-sql-01.northeurope.cloudapp.azure.com"
    );
    assert_eq!(shown["addresses"]["private_ip"], "10.2.1.4");
    assert_eq!(shown["jit"]["recent_requests"], serde_json::json!([]));
    assert_eq!(shown["jit"]["ports"].as_array().map(Vec::len), Some(2));
    insta::assert_snapshot!("show_json", filtered(&output, &context));
}

#[test]
fn show_a_vm_behind_the_firewall_with_its_mapped_port() {
    let context = TestContext::new();
    initiate(&context, PRODUCTION, "rg-edge", "fw-01");
    let output = context.run(&["show", "fw-01"]);
    assert_success(&output);
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("JIT: configured (on the Azure Firewall)"),
        "{stdout}"
    );
    assert!(stdout.contains("afw-edge, public IP 127.0.0.1"), "{stdout}");
    let shown = json_of(&context.run(&["show", "fw-01", "-o", "json"]));
    let active = &shown["jit"]["active_requests"][0];
    assert!(active["mapped_port"].as_u64().is_some(), "{shown}");
    assert_eq!(
        shown["jit"]["recent_requests"][0]["ports"][0]["mapped_port"],
        active["mapped_port"]
    );
    insta::assert_snapshot!("show_firewall", filtered(&output, &context));
}

#[test]
fn show_unsupported_and_not_configured_vms() {
    let context = TestContext::new();
    for (vm, expected) in [
        (
            "legacy-01",
            "JIT: unsupported (no network security group on its network interface or subnet)",
        ),
        (
            "classic-01",
            "JIT: unsupported (classic VMs are not supported by JIT)",
        ),
        (
            "dev-01",
            "JIT: not configured (it could work on the NSG on its NIC)",
        ),
    ] {
        let output = context.run(&["show", vm]);
        assert_success(&output);
        let (stdout, _) = text(&output);
        assert!(stdout.contains(expected), "{vm}:\n{stdout}");
        insta::assert_snapshot!(format!("show_{vm}"), filtered(&output, &context));
    }
}

#[test]
fn show_finds_a_vm_by_full_id() {
    let context = TestContext::new();
    let id = format!(
        "/subscriptions/{DEVELOPMENT}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/web-01"
    );
    let output = context.run(&["show", &id, "-o", "json"]);
    assert_success(&output);
    let shown = json_of(&output);
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["subscription_name"], "Contoso Development");
}

#[test]
fn an_ambiguous_name_lists_both_candidates() {
    let context = TestContext::new();
    let output = context.run(&["show", "web-01"]);
    assert_eq!(output.status.code(), Some(2));
    let (stdout, stderr) = text(&output);
    assert!(stdout.is_empty());
    assert!(stderr.contains("rg-web/web-01"), "{stderr}");
    assert!(stderr.contains("rg-app/web-01"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    insta::assert_snapshot!("show_ambiguous", filtered(&output, &context));
}

#[test]
fn an_unknown_vm_is_not_found() {
    let context = TestContext::new();
    let output = context.run(&["show", "web-99"]);
    assert_eq!(output.status.code(), Some(3));
    let (stdout, stderr) = text(&output);
    assert!(stdout.is_empty());
    assert!(stderr.contains("no VM named 'web-99'"), "{stderr}");
    insta::assert_snapshot!("show_unknown", filtered(&output, &context));
}
