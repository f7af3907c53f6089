//! How `jit` fails, end to end: throttling and server errors from ARM (injected by the
//! emulator the way Azure fails), a token that expires mid-run, a role without a
//! permission, a signed-out Azure CLI, bad flags and a broken config file. Each failure
//! must be one `error:` line with a `hint:` and the documented exit code
//! (docs/exit-codes.md); each recoverable one must recover, and say so on stderr.
//!
//! Retries are asserted through the emulator's fault counters and request log (what
//! really reached "Azure"), never through how long the test took.

mod support;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use jit_emulator::{EmulatorOptions, FaultKind, FaultSpec, World};
use support::{TestContext, text, transcript};

const POLICY_LIST: &str = "/subscriptions/*/providers/Microsoft.Security/jitNetworkAccessPolicies";
const RESOURCE_GRAPH: &str = "/providers/Microsoft.ResourceGraph/resources";

fn fault(method: &str, path: &str, kind: FaultKind, times: Option<u32>) -> FaultSpec {
    FaultSpec {
        method: Some(method.to_owned()),
        path: Some(path.to_owned()),
        path_regex: None,
        fault: kind,
        probability: None,
        times,
    }
}

fn hits(context: &TestContext, id: u64) -> u64 {
    context
        .emulator
        .faults()
        .iter()
        .find(|status| status.id == id)
        .map_or(0, |status| status.hits)
}

/// The transcript with the randomised back-off waits (`retrying in 0.6 s`) made stable.
fn stable(output: &Output, context: &TestContext) -> String {
    let text = transcript(output, context);
    regex::Regex::new(r"retrying in \d+(\.\d+)? s")
        .expect("valid pattern")
        .replace_all(&text, "retrying in [WAIT]")
        .into_owned()
}

fn write_config(context: &TestContext, contents: &str) -> std::path::PathBuf {
    let path = context.home().join("config/jit-test.toml");
    std::fs::write(&path, contents).expect("config written");
    path
}

#[test]
fn a_throttling_storm_is_waited_out_as_azure_asks() {
    let context = TestContext::new();
    let id = context
        .emulator
        .inject_fault(fault(
            "POST",
            RESOURCE_GRAPH,
            FaultKind::Throttle {
                retry_after_seconds: 1,
            },
            Some(5),
        ))
        .expect("a valid fault");
    let output = context.run(&["list", "-o", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let document: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(document["vms"].as_array().map(Vec::len), Some(11));
    assert_eq!(hits(&context, id), 5, "every throttled call was repeated");
    assert_eq!(
        stderr
            .matches("Azure is throttling requests; retrying in 1.0 s")
            .count(),
        5,
        "each wait is announced with the server's Retry-After:\n{stderr}"
    );
    // Each throttled call was sent again no sooner than Azure asked (the emulator's
    // request log carries its own clock).
    let requests = context.emulator.requests();
    let graph: Vec<_> = requests
        .iter()
        .filter(|record| {
            record
                .path
                .to_ascii_lowercase()
                .starts_with(&RESOURCE_GRAPH.to_ascii_lowercase())
        })
        .collect();
    for throttled in graph.iter().filter(|record| record.status == Some(429)) {
        let earliest_retry = throttled.time + jiff::SignedDuration::from_secs(1);
        assert!(
            graph.iter().any(|record| record.time >= earliest_retry),
            "nothing was sent a second after the 429 at {}",
            throttled.time
        );
    }
}

#[test]
fn throttling_longer_than_the_budget_fails_at_once_with_the_wait() {
    let context = TestContext::new();
    context
        .emulator
        .inject_fault(fault(
            "GET",
            POLICY_LIST,
            FaultKind::Throttle {
                retry_after_seconds: 600,
            },
            None,
        ))
        .expect("a valid fault");
    let output = context.run(&["list", "-s", "Contoso Production"]);
    assert_eq!(output.status.code(), Some(6));
    let (stdout, stderr) = text(&output);
    assert!(stdout.is_empty());
    assert!(stderr.contains("throttling"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    insta::assert_snapshot!("throttled_beyond_budget", stable(&output, &context));
}

#[test]
fn server_errors_are_retried_then_reported_with_exit_6() {
    let context = TestContext::new();
    let config = write_config(&context, "max_retry_wait = \"2s\"\n");
    let id = context
        .emulator
        .inject_fault(fault("GET", POLICY_LIST, FaultKind::InternalError, None))
        .expect("a valid fault");
    let output = context
        .jit()
        .env("JIT_CONFIG", &config)
        .args(["list", "-s", "Contoso Production"])
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(6));
    let (stdout, stderr) = text(&output);
    assert!(stdout.is_empty());
    let attempts = hits(&context, id);
    assert!(
        (2..=7).contains(&attempts),
        "retried, within the policy's bounds: {attempts} attempts"
    );
    assert_eq!(
        stderr.matches("Azure answered HTTP 500; retrying").count() as u64,
        attempts - 1,
        "every retry is announced:\n{stderr}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|line| line.starts_with("error:"))
            .count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    insta::assert_snapshot!("server_errors", stable(&output, &context));
}

#[test]
fn a_token_that_expires_mid_run_is_refreshed_once() {
    let context = TestContext::new();
    // Hold the first ARM call long enough for the clock to jump past the token's
    // lifetime while it is in flight; the emulator checks the token after the delay.
    context
        .emulator
        .inject_fault(fault(
            "GET",
            "/subscriptions",
            FaultKind::Latency {
                delay: "2s".to_owned(),
            },
            Some(1),
        ))
        .expect("a valid fault");
    let child = context
        .jit()
        .args(["list", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while token_calls(&context) == 0 {
        assert!(
            Instant::now() < deadline,
            "jit never asked az for a token within 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    context
        .emulator
        .advance_clock(jiff::SignedDuration::from_hours(2));
    let output = child.wait_with_output().expect("jit finishes");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("\"vms\""), "{stdout}");
    assert_eq!(
        token_calls(&context),
        2,
        "one token at the start, exactly one refresh after the 401: {:?}",
        context.emulator.az_calls()
    );
    let rejected = context
        .emulator
        .requests()
        .iter()
        .filter(|record| record.status == Some(401))
        .count();
    assert_eq!(rejected, 1, "only the call in flight saw the expired token");
}

fn token_calls(context: &TestContext) -> usize {
    context
        .emulator
        .az_calls()
        .iter()
        .filter(|call| call.contains("get-access-token"))
        .count()
}

#[test]
fn a_role_without_a_permission_is_exit_5_naming_the_action() {
    // `jit-reader`, here without Security Reader: it sees VMs but not JIT policies.
    let mut world = World::default_world();
    let reader = world
        .principals
        .iter_mut()
        .find(|principal| principal.name == "jit-reader")
        .expect("the default world has jit-reader");
    reader.actions = vec![
        "Microsoft.Resources/*/read".to_owned(),
        "Microsoft.ResourceGraph/*".to_owned(),
        "Microsoft.Compute/*/read".to_owned(),
        "Microsoft.Network/*/read".to_owned(),
    ];
    let client_id = reader.client_id.clone().expect("a client id");
    let secret = reader.client_secret.clone().expect("a secret");
    let context = TestContext::with(world, EmulatorOptions::default());
    let output = context
        .jit()
        .env("JIT_AUTH", "service-principal")
        .env("AZURE_TENANT_ID", &context.emulator.info().tenant_id)
        .env("AZURE_CLIENT_ID", &client_id)
        .env("AZURE_CLIENT_SECRET", &secret)
        .args(["list", "-s", "Contoso Production"])
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(5));
    let (stdout, stderr) = text(&output);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("Microsoft.Security/locations/jitNetworkAccessPolicies/read"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret));
    insta::assert_snapshot!("forbidden", stable(&output, &context));
}

#[test]
fn a_signed_out_azure_cli_says_to_run_az_login() {
    let context = TestContext::new();
    context
        .emulator
        .set_az_logged_in(false)
        .expect("az logged out");
    let output = context.run(&["list"]);
    assert_eq!(output.status.code(), Some(4));
    let (stdout, stderr) = text(&output);
    assert!(stdout.is_empty());
    assert!(
        stderr.starts_with("error: the Azure CLI is not signed in"),
        "{stderr}"
    );
    assert!(
        stderr.contains("  hint: run `az login`"),
        "the hint says what to do: {stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        2,
        "one error line and a hint: {stderr}"
    );
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let context = TestContext::new();
    for arguments in [
        &["list", "--state", "sometimes"][..],
        &["list", "--output", "yaml"][..],
        &["--auth", "password", "list"][..],
        &["show"][..],
    ] {
        let output = context.run(arguments);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(stdout.is_empty(), "{arguments:?}");
        assert!(stderr.starts_with("error:"), "{arguments:?}: {stderr}");
    }
    insta::assert_snapshot!(
        "bad_state",
        stable(&context.run(&["list", "--state", "sometimes"]), &context)
    );
    // Values from the environment are checked as strictly as flags.
    let output = context
        .jit()
        .env("JIT_OUTPUT", "yaml")
        .args(["list"])
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(2));
    insta::assert_snapshot!("bad_output_from_environment", stable(&output, &context));
    let output = context
        .jit()
        .env("JIT_AUTH", "password")
        .args(["list"])
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output)
            .1
            .contains("unknown sign-in method 'password'")
    );
    // No Azure call was made for any of them.
    assert!(context.emulator.requests().is_empty());
}

#[test]
fn a_broken_config_file_is_a_usage_error_naming_the_line() {
    let context = TestContext::new();
    for (contents, line) in [
        ("cloud = \"AzureCloud\"\nclod = \"AzureCloud\"\n", "line 2"),
        ("subscriptions = [\"a\"]\n\noutput = json\n", "line 3"),
    ] {
        let config = write_config(&context, contents);
        let output = context
            .jit()
            .env("JIT_CONFIG", &config)
            .args(["list"])
            .output()
            .expect("jit runs");
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(line), "{line}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            2,
            "one error line and a hint: {stderr}"
        );
    }
    insta::assert_snapshot!("broken_config", {
        let config = write_config(&context, "cloud = \"AzureCloud\"\nclod = \"AzureCloud\"\n");
        let output = context
            .jit()
            .env("JIT_CONFIG", &config)
            .args(["list"])
            .output()
            .expect("jit runs");
        stable(&output, &context)
    });
    let output = context
        .jit()
        .env("JIT_CONFIG", context.home().join("config/missing.toml"))
        .args(["list"])
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(2), "a named file must exist");
}
