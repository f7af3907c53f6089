//! Interruptions: SIGINT and SIGTERM at each step of `jit connect` and `jit enable`, and
//! `kill -9` of the agent with windows open.
//!
//! A step is hit deterministically, never by sleeping and hoping: a latency fault holds
//! the call the step makes (`times: 1`), and the signal goes out once the emulator counts
//! the fault's hit, that is while `jit` waits for that very answer. After each stop the
//! test checks what the process said (exit 130 or 143, one `error:` line naming what was
//! done or cut short), what Azure holds (the request log and the policy), and that a
//! request Azure accepted is tracked by the agent.

#![cfg(unix)]

mod support;

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use jit_emulator::{EmulatorOptions, FaultKind, FaultSpec, World};
use rustix::process::Signal;
use serde_json::Value;
use support::{TestContext, install_program, text};

const WEB_POLICY: &str = "/subscriptions/3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b34/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default";
/// How long a held call waits before the emulator answers it.
const HOLD: &str = "3s";
const HOLD_DURATION: Duration = Duration::from_secs(3);

/// Both signals, with the exit code and the name each one earns.
const SIGNALS: [(Signal, i32, &str); 2] = [
    (Signal::INT, 130, "stopped by SIGINT (Ctrl-C)"),
    (Signal::TERM, 143, "stopped by SIGTERM"),
];

fn context(initiating_delay: SignedDuration) -> TestContext {
    TestContext::with(
        World::default_world(),
        EmulatorOptions {
            initiating_delay,
            ..EmulatorOptions::default()
        },
    )
}

/// Holds the next `method` call to `path` (a glob) for [`HOLD`]; returns the fault id.
fn hold(context: &TestContext, method: &str, path: &str) -> u64 {
    hold_for(context, method, path, HOLD)
}

/// Holds the next `method` call to `path` for `delay`.
fn hold_for(context: &TestContext, method: &str, path: &str, delay: &str) -> u64 {
    context
        .emulator
        .inject_fault(FaultSpec {
            method: Some(method.to_owned()),
            path: Some(path.to_owned()),
            path_regex: None,
            fault: FaultKind::Latency {
                delay: delay.to_owned(),
            },
            probability: None,
            times: Some(1),
        })
        .expect("a fault")
}

/// Waits until `condition` holds (the emulator saw what the test waits for).
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the held call reached the emulator (so `jit` is waiting for its answer).
fn wait_for_hold(context: &TestContext, fault: u64, what: &str) {
    wait_until(what, || {
        context
            .emulator
            .faults()
            .iter()
            .any(|status| status.id == fault && status.hits == 1)
    });
}

fn spawn(context: &TestContext, arguments: &[&str]) -> Child {
    context
        .jit()
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("JIT_NO_TRAY", "1")
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit runs")
}

fn run(context: &TestContext, arguments: &[&str]) -> Output {
    spawn(context, arguments)
        .wait_with_output()
        .expect("jit ends")
}

fn send(child: &Child, signal: Signal) {
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("a pid")).expect("a pid");
    rustix::process::kill_process(pid, signal).expect("signal sent");
}

/// Sends `signal`, waits for the exit, and checks the code and the one error line.
fn stop(child: Child, signal: (Signal, i32, &str)) -> String {
    let (signal, code, name) = signal;
    send(&child, signal);
    let output = child.wait_with_output().expect("jit ends");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(errors[0].contains(name), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// `METHOD status` of every logged call to `path` (exact, query dropped).
fn calls(context: &TestContext, path: &str) -> Vec<String> {
    support::requests_to(&context.emulator, path)
}

fn web_policy(context: &TestContext) -> Value {
    let policy = support::policy_in_state(&context.emulator, WEB_POLICY);
    assert!(!policy.is_null(), "the rg-web policy");
    policy
}

/// The VM names in the rg-web policy, each with its ports (as the policy lists them).
fn web_policy_vms(context: &TestContext) -> Vec<(String, Value)> {
    let mut vms: Vec<(String, Value)> = web_policy(context)["properties"]["virtualMachines"]
        .as_array()
        .expect("virtual machines")
        .iter()
        .map(|entry| {
            (
                entry["id"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                entry["ports"].clone(),
            )
        })
        .collect();
    vms.sort_by(|left, right| left.0.cmp(&right.0));
    vms
}

/// Requests in the rg-web policy's history.
fn web_requests(context: &TestContext) -> usize {
    web_policy(context)["properties"]["requests"]
        .as_array()
        .map_or(0, Vec::len)
}

fn status_windows(context: &TestContext) -> Vec<Value> {
    let output = run(context, &["status", "-o", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let document: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(document["agent_running"], true, "{document}");
    document["windows"].as_array().cloned().unwrap_or_default()
}

/// Stops the test's agent when dropped.
struct AgentStopper<'a>(&'a TestContext);

impl Drop for AgentStopper<'_> {
    fn drop(&mut self) {
        let _ = run(self.0, &["agent", "stop"]);
    }
}

#[test]
fn connect_stopped_before_the_request_changes_nothing() {
    for signal in SIGNALS {
        let context = context(SignedDuration::ZERO);
        // The Resource Graph query that finds the VM (and its network) comes first.
        let held = hold(
            &context,
            "POST",
            "/providers/Microsoft.ResourceGraph/resources",
        );
        let child = spawn(&context, &["connect", "api-01", "--no-launch"]);
        wait_for_hold(&context, held, "jit connect looks api-01 up");
        let stderr = stop(child, signal);
        assert!(
            stderr.contains("before anything was changed in Azure"),
            "{stderr}"
        );
        // Even once the held call is answered, no request reaches Azure.
        std::thread::sleep(HOLD_DURATION);
        assert_eq!(
            calls(&context, &format!("{WEB_POLICY}/initiate")),
            Vec::<String>::new()
        );
        assert_eq!(web_requests(&context), 0);
    }
}

#[test]
fn connect_stopped_while_its_request_is_on_the_way_says_azure_may_have_it() {
    for signal in SIGNALS {
        let context = context(SignedDuration::ZERO);
        let held = hold(&context, "POST", "/subscriptions/*/initiate");
        let child = spawn(&context, &["connect", "api-01", "--no-launch"]);
        wait_for_hold(&context, held, "jit connect sends the request");
        let stderr = stop(child, signal);
        assert!(
            stderr.contains("cut short: a request for access to api-01 was on its way to Azure"),
            "{stderr}"
        );
        assert!(stderr.contains("hint: `jit show api-01`"), "{stderr}");
        // Whatever became of the request in flight, no second one was sent.
        std::thread::sleep(HOLD_DURATION + Duration::from_millis(500));
        let initiates = calls(&context, &format!("{WEB_POLICY}/initiate"));
        assert!(initiates.len() <= 1, "{initiates:?}");
        assert!(web_requests(&context) <= 1);
    }
}

#[test]
fn connect_stopped_while_waiting_hands_the_accepted_request_to_the_agent() {
    for signal in SIGNALS {
        // The request stays Initiating (virtual clock), so `jit` waits.
        let context = context(SignedDuration::from_hours(1)).with_agent();
        let _stopper = AgentStopper(&context);
        let child = spawn(&context, &["connect", "api-01", "--no-launch"]);
        wait_until("Azure accepted the request", || {
            calls(&context, &format!("{WEB_POLICY}/initiate"))
                .iter()
                .any(|call| call.starts_with("POST 2"))
        });
        // Held at its next poll of the policy: certainly waiting now.
        let held = hold(&context, "GET", WEB_POLICY);
        wait_for_hold(&context, held, "jit connect polls the policy");
        let stderr = stop(child, signal);
        assert!(
            stderr.contains("done: Azure accepted a request for port")
                && stderr.contains("of api-01 until"),
            "{stderr}"
        );
        assert!(stderr.contains("`jit extend api-01` renews it"), "{stderr}");
        assert_eq!(
            calls(&context, &format!("{WEB_POLICY}/initiate")).len(),
            1,
            "one request"
        );
        let windows = status_windows(&context);
        assert_eq!(windows.len(), 1, "{windows:?}");
        assert!(
            windows[0]["vm"]["id"]
                .as_str()
                .is_some_and(|id| id.ends_with("/api-01")),
            "{windows:?}"
        );
    }
}

#[test]
fn enable_stopped_before_the_write_changes_nothing() {
    for signal in SIGNALS {
        let context = context(SignedDuration::ZERO);
        let before = web_policy_vms(&context);
        let held = hold(&context, "GET", WEB_POLICY);
        let child = spawn(&context, &["enable", "cache-01"]);
        wait_for_hold(&context, held, "jit enable reads the policy");
        let stderr = stop(child, signal);
        assert!(
            stderr.contains("before anything was changed in Azure"),
            "{stderr}"
        );
        std::thread::sleep(HOLD_DURATION);
        assert!(
            !calls(&context, WEB_POLICY)
                .iter()
                .any(|call| call.starts_with("PUT") || call.starts_with("DELETE")),
            "no write"
        );
        assert_eq!(web_policy_vms(&context), before);
    }
}

/// After a stop during or after the write: the other VMs are untouched, and running the
/// command again enables cache-01 with at most one more write.
fn enable_again_completes(context: &TestContext, before: &[(String, Value)]) {
    let others = |vms: &[(String, Value)]| -> Vec<(String, Value)> {
        vms.iter()
            .filter(|(name, _)| name != "cache-01")
            .cloned()
            .collect()
    };
    assert_eq!(others(&web_policy_vms(context)), others(before));
    let output = run(context, &["enable", "cache-01"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let after = web_policy_vms(context);
    assert_eq!(others(&after), others(before));
    assert!(
        after.iter().any(|(name, _)| name == "cache-01"),
        "{after:?}"
    );
}

#[test]
fn enable_stopped_during_the_write_says_azure_may_have_applied_it() {
    for signal in SIGNALS {
        let context = context(SignedDuration::ZERO);
        let before = web_policy_vms(&context);
        let held = hold(&context, "PUT", WEB_POLICY);
        let child = spawn(&context, &["enable", "cache-01"]);
        wait_for_hold(&context, held, "jit enable writes the policy");
        let stderr = stop(child, signal);
        assert!(
            stderr.contains(
                "cut short: the JIT policy of cache-01 was being written, and Azure may have applied it"
            ),
            "{stderr}"
        );
        assert!(
            stderr.contains("`jit enable cache-01` again changes only what is missing"),
            "{stderr}"
        );
        // Let the held write finish (or not) before reading Azure.
        std::thread::sleep(HOLD_DURATION + Duration::from_millis(500));
        enable_again_completes(&context, &before);
    }
}

#[test]
fn enable_stopped_after_the_write_leaves_it_applied() {
    for signal in SIGNALS {
        let context = context(SignedDuration::ZERO);
        let before = web_policy_vms(&context);
        // Held long enough for the test to add the next hold before it is answered.
        let write = hold_for(&context, "PUT", WEB_POLICY, "6s");
        let child = spawn(&context, &["enable", "cache-01"]);
        wait_for_hold(&context, write, "jit enable writes the policy");
        // While the write is held, hold the next read of the policy: the read-back.
        let read_back = hold(&context, "GET", WEB_POLICY);
        wait_for_hold(&context, read_back, "jit enable reads the policy back");
        assert_eq!(
            calls(&context, WEB_POLICY)
                .iter()
                .filter(|call| call.starts_with("PUT 2"))
                .count(),
            1,
            "the write landed"
        );
        let stderr = stop(child, signal);
        assert!(
            stderr.contains("cut short: the JIT policy of cache-01 was being written"),
            "{stderr}"
        );
        assert!(
            web_policy_vms(&context)
                .iter()
                .any(|(name, _)| name == "cache-01"),
            "the write is in Azure"
        );
        std::thread::sleep(HOLD_DURATION);
        enable_again_completes(&context, &before);
    }
}

#[test]
fn the_agent_killed_with_windows_open_restarts_with_every_window() {
    let context = context(SignedDuration::ZERO).with_agent();
    let _stopper = AgentStopper(&context);
    for vm in ["api-01", "rg-web/web-01"] {
        let output = run(&context, &["connect", vm, "--no-launch"]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
    }
    let before = status_windows(&context);
    assert_eq!(before.len(), 2, "{before:?}");

    let output = run(&context, &["agent", "status", "-o", "json"]);
    let status: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let pid = status["pid"].as_i64().expect("the agent's pid");
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).expect("a pid")).expect("a pid");
    rustix::process::kill_process(pid, Signal::KILL).expect("SIGKILL sent");
    wait_until("the agent is gone", || {
        rustix::process::test_kill_process(pid).is_err()
    });

    let output = run(&context, &["agent", "start"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let after = status_windows(&context);
    let key = |windows: &[Value]| -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = windows
            .iter()
            .map(|window| {
                (
                    window["vm"]["id"].as_str().unwrap_or_default().to_owned(),
                    window["ends_at"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(key(&after), key(&before));
}

#[test]
fn connect_enable_stopped_at_the_request_says_jit_was_enabled() {
    for signal in SIGNALS {
        let context = context(SignedDuration::ZERO);
        let held = hold(&context, "POST", "/subscriptions/*/initiate");
        let child = spawn(
            &context,
            &["connect", "cache-01", "--enable", "--no-launch"],
        );
        wait_for_hold(&context, held, "jit connect --enable sends the request");
        let stderr = stop(child, signal);
        assert!(stderr.contains("done: "), "{stderr}");
        assert!(stderr.contains("cache-01"), "{stderr}");
        assert!(
            stderr.contains("cut short: a request for access to cache-01 was on its way to Azure"),
            "{stderr}"
        );
        assert!(
            web_policy_vms(&context)
                .iter()
                .any(|(name, _)| name == "cache-01"),
            "the policy write before the request is in Azure"
        );
        std::thread::sleep(HOLD_DURATION);
    }
}

#[test]
fn while_ssh_runs_ctrl_c_is_its_own_and_sigterm_is_passed_on() {
    let context = context(SignedDuration::ZERO);
    let started = context.home().join("ssh-started");
    // A stand-in for ssh: says it runs, then waits; SIGTERM ends it with status 42.
    install_program(
        &context,
        "ssh",
        &format!(
            "#!/bin/sh\ntrap 'exit 42' TERM\ntouch '{}'\nwhile :; do sleep 0.1; done\n",
            started.display()
        ),
    );
    let child = spawn(&context, &["connect", "api-01"]);
    wait_until("ssh runs", || started.exists());
    // SIGINT to jit alone: ssh's business, so jit keeps waiting for ssh ...
    send(&child, Signal::INT);
    // ... and SIGTERM reaches ssh, whose status jit exits with (130 would mean SIGINT
    // had stopped jit).
    send(&child, Signal::TERM);
    let output = child.wait_with_output().expect("jit ends");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(42), "{stderr}");
}

#[test]
fn jit_agent_run_stops_cleanly_on_sigterm_and_keeps_its_windows() {
    let context = context(SignedDuration::ZERO).with_agent();
    let _stopper = AgentStopper(&context);
    let foreground = spawn(&context, &["agent", "run"]);
    let pid = i64::from(foreground.id());
    wait_until("the foreground agent answers", || {
        let output = run(&context, &["agent", "status", "-o", "json"]);
        serde_json::from_slice::<Value>(&output.stdout)
            .is_ok_and(|status| status["pid"].as_i64() == Some(pid))
    });
    let output = run(&context, &["connect", "api-01", "--no-launch"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let before = status_windows(&context);
    assert_eq!(before.len(), 1, "{before:?}");

    // The agent's own shutdown, not the command-wide stop: exit 0, windows saved.
    send(&foreground, Signal::TERM);
    let output = foreground.wait_with_output().expect("jit agent run ends");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("The agent stopped"), "{stderr}");

    let output = run(&context, &["agent", "start"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let after = status_windows(&context);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["ends_at"], before[0]["ends_at"]);
}
