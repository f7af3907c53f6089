//! End to end: `jit edit`, `jit policy export|diff|apply`, and `jit enable`/`disable`
//! racing other writers, with the real binary against the emulator.

mod policy_support;
mod support;

use std::io::Write as _;
use std::process::Stdio;

use jit_emulator::{FaultKind, FaultSpec, HookPoint, HookSpec, PolicyChange};
use policy_support::{entries, entry, policy, policy_id, policy_requests, vm_id, web_policy};
use serde_json::{Value, json};
use support::{TestContext, text};

fn writes(context: &TestContext) -> Vec<String> {
    context
        .emulator
        .requests()
        .into_iter()
        .filter(|record| {
            (record.method == "PUT" || record.method == "DELETE")
                && record
                    .path
                    .to_ascii_lowercase()
                    .contains("/jitnetworkaccesspolicies/")
        })
        .map(|record| format!("{} {}", record.method, record.path))
        .collect()
}

fn all_policies(context: &TestContext) -> Value {
    context.emulator.snapshot()["jit_policies"].clone()
}

#[test]
fn edit_shows_the_change_applies_it_with_yes_and_refuses_without_a_terminal() {
    let context = TestContext::new();
    let policy_id = web_policy();
    let before = entries(&policy(&context.emulator, &policy_id));
    let port = before["api-01"][0].0.to_string();

    // Without a terminal and without --yes, nothing is written.
    let output = context.run(&["edit", "api-01", "--add-port", "8443"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stdout.contains("+ port 8443"),
        "the diff is shown first: {stdout}"
    );
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(writes(&context).is_empty());

    let max = format!("{port}=1h");
    let output = context.run(&[
        "edit",
        "api-01",
        "--add-port",
        "8443",
        "--protocol",
        "tcp",
        "--allowed-source",
        "8443=203.0.113.0/24",
        "--max-duration",
        &max,
        "--yes",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("policy default (rg-web, westeurope)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("~ port {port}: maximum PT3H → PT1H")),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ port 8443 (TCP) from 203.0.113.0/24, up to PT3H"),
        "{stdout}"
    );
    assert!(
        stderr.contains("the 2 other VMs in it are unchanged"),
        "{stderr}"
    );
    let after = entries(&policy(&context.emulator, &policy_id));
    assert_eq!(after["web-01"], before["web-01"]);
    assert_eq!(after["batch-01"], before["batch-01"]);
    assert_eq!(after["api-01"].len(), 2);

    // Asking again for what is already there writes nothing.
    let count = writes(&context).len();
    let output = context.run(&["edit", "api-01", "--max-duration", &max, "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    assert!(text(&output).1.contains("nothing to change"));
    assert_eq!(writes(&context).len(), count);

    // A port the VM does not have, and a port both added and removed, are usage errors.
    let output = context.run(&["edit", "api-01", "--remove-port", "9999", "--yes"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output).1);
    assert!(
        text(&output)
            .1
            .contains("port 9999 is not in the JIT policy of api-01")
    );
    let output = context.run(&["edit", "api-01", "--add-port", "1", "--remove-port", "1"]);
    assert_eq!(output.status.code(), Some(2));

    // Removing the last ports takes the VM out of the policy.
    let output = context.run(&[
        "edit",
        "api-01",
        "--remove-port",
        &port,
        "--remove-port",
        "8443",
        "--yes",
        "-o",
        "json",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let document: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(document["outcome"], "removed");
    assert_eq!(document["policy"]["vms"][0]["change"], "remove");
    assert!(!entries(&policy(&context.emulator, &policy_id)).contains_key("api-01"));
}

#[test]
fn edit_through_the_cli_keeps_another_writers_change_made_while_it_was_planning() {
    let context = TestContext::new();
    let policy_id = web_policy();
    context
        .emulator
        .add_hook(HookSpec::new(
            &policy_id,
            HookPoint::AfterGet,
            PolicyChange::UpsertVm {
                virtual_machine: entry(&vm_id("rg-web", "cache-01"), &[(22, "PT1H")]),
            },
        ))
        .expect("hook");
    let output = context.run(&["edit", "rg-web/web-01", "--add-port", "8080", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    let after = entries(&policy(&context.emulator, &policy_id));
    assert!(after.contains_key("cache-01"), "{after:?}");
    assert_eq!(after["web-01"].len(), 2);
}

#[test]
fn export_then_apply_is_no_change_and_a_dry_run_writes_nothing() {
    let context = TestContext::new();
    let file = context.home().join("jit.toml");
    let output = context.run(&["policy", "export", "--all"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("# JIT VM access policies"), "{stdout}");
    assert_eq!(stdout.matches("[[policy]]").count(), 5, "{stdout}");
    std::fs::write(&file, &stdout).expect("written");
    let path = file.to_str().expect("UTF-8 path");

    let state = all_policies(&context);
    let output = context.run(&["policy", "apply", path]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("No changes"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let output = context.run(&["policy", "diff", path, "--prune"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    assert!(text(&output).1.contains("No drift"));
    assert!(writes(&context).is_empty(), "{:?}", writes(&context));
    assert_eq!(all_policies(&context), state);

    // Exporting again gives the same file.
    let again = context.run(&["policy", "export", "--all"]);
    assert_eq!(
        text(&again).0,
        std::fs::read_to_string(&file).expect("read")
    );

    // A changed file: a dry run shows the change and writes nothing.
    let edited = std::fs::read_to_string(&file).expect("read").replacen(
        "max_duration = \"PT3H\"",
        "max_duration = \"PT1H\"",
        1,
    );
    std::fs::write(&file, &edited).expect("written");
    let output = context.run(&["policy", "apply", path, "--dry-run"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("maximum PT3H → PT1H"), "{stdout}");
    assert!(stderr.contains("Dry run"), "{stderr}");
    assert!(writes(&context).is_empty());
    assert_eq!(all_policies(&context), state, "a dry run changes nothing");
}

#[test]
fn diff_exits_one_on_drift_and_apply_makes_azure_match() {
    let context = TestContext::new();
    let file = context.home().join("web.toml");
    let output = context.run(&["policy", "export", "-g", "rg-web"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    let exported = text(&output).0;
    assert_eq!(exported.matches("[[policy.vm]]").count(), 3, "{exported}");
    // The file adds cache-01 and leaves batch-01 out.
    let with_cache = exported.replace("name = \"batch-01\"", "name = \"cache-01\"");
    std::fs::write(&file, &with_cache).expect("written");
    let path = file.to_str().expect("UTF-8 path");

    let output = context.run(&["policy", "diff", path]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "drift: {stderr}");
    assert!(stdout.contains("  + cache-01"), "{stdout}");
    assert!(
        !stdout.contains("batch-01"),
        "without --prune, batch-01 is left alone: {stdout}"
    );
    assert!(stderr.contains("Drift: 1 VM in 1 policy"), "{stderr}");

    let output = context.run(&["policy", "diff", path, "--prune", "-o", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let document: Value = serde_json::from_str(&text(&output).0).expect("JSON");
    assert_eq!(document["drift"], true);
    let changes: Vec<(String, String)> = document["policies"][0]["vms"]
        .as_array()
        .expect("vms")
        .iter()
        .map(|vm| {
            (
                vm["vm"].as_str().unwrap_or_default().to_owned(),
                vm["change"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("batch-01".to_owned(), "remove".to_owned()),
            ("cache-01".to_owned(), "add".to_owned())
        ]
    );

    let output = context.run(&["policy", "apply", path, "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    let after = entries(&policy(&context.emulator, &web_policy()));
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["api-01", "batch-01", "cache-01", "web-01"]
    );
    let output = context.run(&["policy", "diff", path]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);

    let output = context.run(&["policy", "apply", path, "--prune", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    let after = entries(&policy(&context.emulator, &web_policy()));
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["api-01", "cache-01", "web-01"]
    );
    let output = context.run(&["policy", "diff", path, "--prune"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
}

#[test]
fn a_bad_policy_file_names_the_line() {
    let context = TestContext::new();
    let file = context.home().join("bad.toml");
    std::fs::write(
        &file,
        "version = 1\n\n[[policy]]\nsubscription = \"s\"\nresource_group = \"g\"\nlocation = \"l\"\nname = \"default\"\nowner = \"me\"\n",
    )
    .expect("written");
    let output = context.run(&["policy", "diff", file.to_str().expect("UTF-8")]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml: line 8: unknown field `owner`"),
        "{stderr}"
    );
    assert!(stderr.contains("docs/policy-file.md"), "{stderr}");
}

#[test]
fn apply_reads_a_file_from_stdin() {
    let context = TestContext::new();
    let exported = text(&context.run(&["policy", "export", "rg-web/api-01", "sql-01"])).0;
    assert_eq!(exported.matches("[[policy]]").count(), 2, "{exported}");
    assert_eq!(exported.matches("[[policy.vm]]").count(), 2, "{exported}");
    let mut child = context
        .jit()
        .args(["policy", "apply", "-", "--prune", "--dry-run"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exported.as_bytes())
        .expect("written");
    let output = child.wait_with_output().expect("finished");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // The file lists only api-01 of rg-web's policy: --prune would remove the others.
    assert!(
        stdout.contains("  - web-01") && stdout.contains("  - batch-01"),
        "{stdout}"
    );
    assert!(writes(&context).is_empty());
}

#[test]
fn two_enable_processes_creating_the_same_policy_both_land() {
    let context = TestContext::new();
    let policy_id = web_policy();
    context
        .emulator
        .apply_change(&policy_id, &PolicyChange::DeletePolicy)
        .expect("no policy in rg-web");
    // Slow PUTs, so that both processes read "no policy" before either write lands.
    context
        .emulator
        .inject_fault(FaultSpec {
            method: Some("PUT".to_owned()),
            path: Some(format!("{policy_id}*")),
            path_regex: None,
            fault: FaultKind::Latency {
                delay: "400ms".to_owned(),
            },
            probability: None,
            times: None,
        })
        .expect("fault");
    let spawn = |vm: &str| {
        context
            .jit()
            .args(["enable", vm, "--port", "22"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jit runs")
    };
    let first = spawn("rg-web/web-01");
    let second = spawn("api-01");
    for child in [first, second] {
        let output = child.wait_with_output().expect("finished");
        assert_eq!(output.status.code(), Some(0), "{}", text(&output).1);
    }
    let after = entries(&policy(&context.emulator, &policy_id));
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["api-01", "web-01"],
        "{after:?}"
    );
}

#[test]
fn disabling_the_last_vm_while_another_writer_adds_one_keeps_theirs() {
    let context = TestContext::new();
    let policy_id = policy_id("rg-web", "westeurope", "default");
    context
        .emulator
        .apply_change(
            &policy_id,
            &PolicyChange::PutPolicy {
                body: json!({"kind": "Basic", "properties": {"virtualMachines": [
                    entry(&vm_id("rg-web", "api-01"), &[(22, "PT3H")])
                ]}}),
            },
        )
        .expect("one VM left");
    context
        .emulator
        .add_hook(HookSpec::new(
            &policy_id,
            HookPoint::AfterGet,
            PolicyChange::UpsertVm {
                virtual_machine: entry(&vm_id("rg-web", "cache-01"), &[(22, "PT1H")]),
            },
        ))
        .expect("hook");
    let output = context.run(&["disable", "api-01"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("removed from policy 'default'"), "{stderr}");
    let after = entries(&policy(&context.emulator, &policy_id));
    assert_eq!(after.keys().collect::<Vec<_>>(), ["cache-01"]);
    assert!(
        !policy_requests(&context.emulator, &policy_id)
            .iter()
            .any(|line| line.starts_with("DELETE")),
        "no DELETE: another VM appeared"
    );
}
