//! `jit doctor` on every kind of VM of the default world, and on the failures it exists
//! for: a deny rule a deployment deleted, a rule that outranks JIT's, a reader without
//! the initiate permission, Defender for Servers Plan 1, an IPv6-only caller.

mod policy_support;
mod support;

use jit_emulator::{EmulatorOptions, World};
use policy_support::{PRODUCTION, arm};
use serde_json::{Value, json};
use support::{TestContext, text};

const NETWORK_API_VERSION: &str = "2024-05-01";

/// `jit doctor -o json ARGS…`: the exit code and the document.
fn diagnose(context: &TestContext, arguments: &[&str]) -> (i32, Value) {
    let mut all = vec!["doctor", "-o", "json"];
    all.extend_from_slice(arguments);
    let output = context.run(&all);
    let (stdout, stderr) = text(&output);
    let document: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}\n{stderr}"));
    (output.status.code().unwrap_or(-1), document)
}

/// The checks named `check` (for the subject, when given).
fn checks<'a>(document: &'a Value, check: &str) -> Vec<&'a Value> {
    document["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|candidate| candidate["check"] == check)
        .collect()
}

fn one<'a>(document: &'a Value, check: &str) -> &'a Value {
    let found = checks(document, check);
    assert_eq!(found.len(), 1, "{check}: {document:#}");
    found[0]
}

fn failed(document: &Value) -> Vec<String> {
    document["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|check| check["status"] == "fail")
        .map(|check| check["check"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn nsg_path(resource_group: &str, nsg: &str) -> String {
    format!(
        "/subscriptions/{PRODUCTION}/resourceGroups/{resource_group}/providers/Microsoft.Network/networkSecurityGroups/{nsg}"
    )
}

/// The JIT deny rule JIT wrote into an NSG.
async fn jit_deny_rule(context: &TestContext, resource_group: &str, nsg: &str) -> String {
    let arm = arm(&context.emulator);
    let group: Value = arm
        .get_json(&nsg_path(resource_group, nsg), NETWORK_API_VERSION, &[])
        .await
        .expect("the NSG");
    group["properties"]["securityRules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|rule| rule["name"].as_str())
        .find(|name| name.starts_with("SecurityCenter-JITRule_"))
        .expect("JIT wrote a deny rule")
        .to_owned()
}

#[test]
fn a_configured_running_vm_passes_every_check() {
    let context = TestContext::new();
    let (code, document) = diagnose(&context, &["api-01"]);
    assert_eq!(code, 0, "{document:#}");
    assert_eq!(document["passed"], true);
    for check in [
        "sign_in",
        "defender_plan",
        "permissions",
        "vm",
        "power",
        "address",
        "network_security_group",
        "policy",
        "name_length",
        "deny_rule",
        "rule_precedence",
        "source",
    ] {
        assert_eq!(
            one(&document, check)["status"],
            "ok",
            "{check}: {document:#}"
        );
    }
    assert!(
        one(&document, "defender_plan")["finding"]
            .as_str()
            .is_some_and(|finding| finding.contains("Plan 2"))
    );

    // The table: one row per check, no fixes when all is well.
    let output = context.run(&["doctor", "api-01"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("STATUS  CHECK"), "{stdout}");
    assert!(stdout.contains("ok      deny rule"), "{stdout}");
    assert!(!stdout.contains("Fixes:"), "{stdout}");
    assert!(stderr.contains("Every check passed"), "{stderr}");
}

#[test]
fn every_kind_of_vm_in_the_default_world_names_its_cause() {
    let context = TestContext::new();
    // (VM, exit code, the failing checks, a check and what its finding or fix says)
    let cases: [(&str, i32, &[&str], &str, &str); 6] = [
        ("dev-01", 1, &["policy"], "policy", "jit enable dev-01"),
        (
            "legacy-01",
            1,
            &["network_security_group", "policy"],
            "network_security_group",
            "no NSG on its network interface or subnet",
        ),
        ("classic-01", 1, &["vm"], "vm", "classic"),
        ("batch-01", 1, &["power"], "power", "--start"),
        ("fw-01", 0, &[], "address", "Azure Firewall"),
        ("rg-app/web-01", 0, &[], "source", "as strings"),
    ];
    for (vm, code, failing, check, says) in cases {
        let (actual, document) = diagnose(&context, &[vm]);
        assert_eq!(actual, code, "{vm}: {document:#}");
        assert_eq!(document["passed"], code == 0, "{vm}");
        assert_eq!(failed(&document), failing, "{vm}: {document:#}");
        let found = one(&document, check);
        let text = format!("{} {}", found["finding"], found["fix"]);
        assert!(
            text.contains(says),
            "{vm}: {check} should say '{says}': {found:#}"
        );
    }
    let (_, explicit) = diagnose(&context, &["rg-app/web-01"]);
    assert_eq!(one(&explicit, "source")["status"], "warn");
    let (_, firewall) = diagnose(&context, &["fw-01"]);
    assert!(
        one(&firewall, "network_security_group")["finding"]
            .as_str()
            .is_some_and(|finding| finding.contains("JIT acts on the Azure Firewall"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deny_rule_deleted_through_the_nsg_api_is_a_protection_that_reverted() {
    let context = TestContext::new();
    let rule = jit_deny_rule(&context, "rg-web", "web-01-nsg").await;
    let arm = arm(&context.emulator);
    arm.delete(
        &format!("{}/securityRules/{rule}", nsg_path("rg-web", "web-01-nsg")),
        NETWORK_API_VERSION,
    )
    .await
    .expect("deleted as a deployment would");

    let (code, document) = diagnose(&context, &["rg-web/web-01"]);
    assert_eq!(code, 1, "{document:#}");
    assert_eq!(failed(&document), ["deny_rule"], "{document:#}");
    let check = one(&document, "deny_rule");
    let finding = check["finding"].as_str().unwrap_or_default();
    assert!(finding.contains("protection reverted"), "{finding}");
    assert!(finding.contains("web-01-nsg"), "{finding}");
    let fix = check["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("jit enable web-01 --port"), "{fix}");
    assert!(fix.contains("ignore_changes"), "{fix}");

    // For a CI job: --all across subscriptions finds it too.
    let (code, document) = diagnose(&context, &["--all"]);
    assert_eq!(code, 1, "{document:#}");
    let reverted: Vec<&Value> = checks(&document, "deny_rule")
        .into_iter()
        .filter(|check| check["status"] == "fail")
        .collect();
    assert_eq!(reverted.len(), 1, "{document:#}");
    assert_eq!(reverted[0]["subject"], "web-01");

    // The fix works: re-applying the policy brings the rule back.
    let port = fix
        .split("--port ")
        .nth(1)
        .and_then(|rest| rest.split(['`', ' ']).next())
        .expect("the fix names the port")
        .to_owned();
    let output = context.run(&["enable", "rg-web/web-01", "--port", &port]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("wrote the policy again"), "{stderr}");
    let (code, document) = diagnose(&context, &["rg-web/web-01"]);
    assert_eq!(code, 0, "{document:#}");
    let (code, _) = diagnose(&context, &["--all"]);
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_that_outranks_jits_deny_rule_is_named() {
    let context = TestContext::new();
    let (_, before) = diagnose(&context, &["api-01"]);
    let port = one(&before, "policy")["finding"]
        .as_str()
        .and_then(|finding| finding.split("port ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .expect("the policy's port")
        .to_owned();
    let arm = arm(&context.emulator);
    let _: Value = arm
        .put_json(
            &format!(
                "{}/securityRules/AllowSshFromAnywhere",
                nsg_path("rg-web", "api-01-nsg")
            ),
            NETWORK_API_VERSION,
            &json!({"properties": {
                "protocol": "Tcp", "access": "Allow", "direction": "Inbound", "priority": 150,
                "sourceAddressPrefix": "*", "sourcePortRange": "*",
                "destinationAddressPrefix": "*", "destinationPortRange": port,
            }}),
        )
        .await
        .expect("a deployment adds a rule");
    let (code, document) = diagnose(&context, &["api-01"]);
    assert_eq!(code, 1, "{document:#}");
    assert_eq!(failed(&document), ["rule_precedence"], "{document:#}");
    let finding = one(&document, "rule_precedence")["finding"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(finding.contains("AllowSshFromAnywhere"), "{finding}");
    assert!(finding.contains("from any source"), "{finding}");
}

#[test]
fn a_reader_without_the_initiate_permission_is_told_what_is_missing() {
    let context = TestContext::new();
    let reader = |arguments: &[&str]| {
        let output = context
            .jit()
            .env("JIT_AUTH", "service-principal")
            .env("AZURE_TENANT_ID", &context.emulator.info().tenant_id)
            .env("AZURE_CLIENT_ID", "9e1f3a5c-7b2d-4e6f-8a1c-3d5e7f9b2c40")
            .env(
                "AZURE_CLIENT_SECRET",
                "jit-reader-secret-not-for-production",
            )
            .args(arguments)
            .output()
            .expect("jit runs");
        let document: Value = serde_json::from_str(&text(&output).0).expect("JSON");
        (output.status.code(), document)
    };
    let (code, document) = reader(&["doctor", "-o", "json", "api-01"]);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&document), ["permissions"], "{document:#}");
    let check = one(&document, "permissions");
    assert!(
        check["finding"].as_str().is_some_and(|finding| finding
            .contains("may read but not request access")
            && finding.contains("jitNetworkAccessPolicies/initiate/action")),
        "{check:#}"
    );
    assert!(
        check["fix"]
            .as_str()
            .is_some_and(|fix| fix.contains("rbac.md"))
    );
    let (code, document) = reader(&["doctor", "-o", "json"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        checks(&document, "permissions").len(),
        2,
        "one per subscription"
    );
}

#[test]
fn defender_for_servers_plan_1_fails_the_plan_check() {
    let text_world = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/emulator/src/default-world.toml"
    ))
    .expect("the default world");
    let with_plan_1 = text_world.replacen(
        "display_name = \"Contoso Production\"\n",
        "display_name = \"Contoso Production\"\npricings = [{ name = \"VirtualMachines\", pricing_tier = \"Standard\", sub_plan = \"P1\" }]\n",
        1,
    );
    let world = World::from_toml(&with_plan_1).expect("a valid world");
    let context = TestContext::with(world, EmulatorOptions::default());
    let (code, document) = diagnose(&context, &["api-01"]);
    assert_eq!(code, 1);
    assert_eq!(failed(&document), ["defender_plan"], "{document:#}");
    assert!(
        one(&document, "defender_plan")["finding"]
            .as_str()
            .is_some_and(|finding| finding.contains("sub-plan P1; JIT needs Plan 2"))
    );
}

#[test]
fn an_ipv6_only_caller_is_told_jit_needs_ipv4() {
    let context = TestContext::new();
    context.emulator.set_my_ip(Some("2001:db8::7".to_owned()));
    let (code, document) = diagnose(&context, &["rg-app/web-01"]);
    assert_eq!(code, 1, "explicit IPv4 ranges and no IPv4: {document:#}");
    let source = one(&document, "source");
    assert_eq!(source["status"], "fail");
    assert!(
        source["finding"]
            .as_str()
            .is_some_and(|finding| finding.contains("only an IPv6"))
    );
    let (code, document) = diagnose(&context, &["api-01"]);
    assert_eq!(code, 0, "any source: a warning only");
    assert_eq!(one(&document, "source")["status"], "warn");
}

#[test]
fn without_a_vm_doctor_checks_sign_in_plans_and_permissions_and_all_checks_every_configured_vm() {
    let context = TestContext::new();
    let (code, document) = diagnose(&context, &[]);
    assert_eq!(code, 0, "{document:#}");
    assert_eq!(checks(&document, "defender_plan").len(), 2);
    assert_eq!(checks(&document, "permissions").len(), 2);
    let (code, document) = diagnose(&context, &["--all"]);
    assert_eq!(code, 0, "{document:#}");
    let mut subjects: Vec<&str> = checks(&document, "policy")
        .iter()
        .filter_map(|check| check["subject"].as_str())
        .collect();
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        [
            "api-01", "batch-01", "fw-01", "ops-01", "sql-01", "web-01", "web-01"
        ],
        "every configured VM"
    );
}
