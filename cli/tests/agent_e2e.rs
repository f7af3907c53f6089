//! End to end: the background agent as users meet it, with the real `jit` and
//! `jit-agent` binaries against the emulator. `jit connect` starts the agent and hands it
//! the window; `jit status`, `jit extend` and `jit agent …` talk to it over its private
//! socket; a warm agent spares `az`; and under a private D-Bus session the desktop gets
//! "ends soon" and "ended" notifications when the emulator's clock is moved.
//!
//! Every test starts its own agent (in its own temp runtime dir) and stops it when it
//! ends, even on failure ([`AgentStopper`]). Agents not meant to notify get no session
//! bus, so a developer's desktop never sees test notifications.

// The notification tests run on Linux only; elsewhere their helpers are unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

mod support;

#[cfg(target_os = "linux")]
#[path = "../../agent/tests/daemon_support/bus.rs"]
mod bus;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use jiff::SignedDuration;
use jit_emulator::{EmulatorOptions, World};
use serde_json::Value;
use support::{TestContext, text};

/// The default world's JIT maximum for api-01's SSH port (`PT3H`).
const POLICY_MAXIMUM: i64 = 3 * 3600;
/// How far apart two readings of "time left" may be (the commands take a moment).
const SLACK_SECONDS: i64 = 60;
/// The caller's address as the emulator's "what is my IP" service reports it.
const CALLER_ADDRESS: &str = "198.51.100.7";
/// How long a notification may take to arrive.
#[cfg(target_os = "linux")]
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A context whose `jit` may start the agent, with a short `Initiating` phase.
fn agent_context() -> TestContext {
    TestContext::with(
        World::default_world(),
        EmulatorOptions {
            initiating_delay: SignedDuration::ZERO,
            ..EmulatorOptions::default()
        },
    )
    .with_agent()
}

/// `jit` without a session bus (so its agent notifies nobody).
fn jit(context: &TestContext, arguments: &[&str]) -> Output {
    context
        .jit()
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args(arguments)
        .output()
        .expect("jit runs")
}

/// Runs `jit` and insists on exit code 0.
fn jit_ok(context: &TestContext, arguments: &[&str]) -> (String, String) {
    let output = jit(context, arguments);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "jit {arguments:?} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}"))
}

/// Stops the test's agent when dropped, so no agent outlives its test.
struct AgentStopper<'a>(&'a TestContext);

impl Drop for AgentStopper<'_> {
    fn drop(&mut self) {
        let _ = jit(self.0, &["agent", "stop"]);
    }
}

/// Whether the agent's socket exists (Unix; on Windows the endpoint is a named pipe and
/// `jit agent status` alone tells).
fn socket_exists(context: &TestContext) -> bool {
    cfg!(unix) && context.home().join("runtime/jit/agent.sock").exists()
}

/// The windows `jit status -o json` lists.
fn status_windows(context: &TestContext) -> Vec<Value> {
    let (stdout, _) = jit_ok(context, &["status", "-o", "json"]);
    let document = json(&stdout);
    assert_eq!(document["agent_running"], true, "{document}");
    document["windows"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no windows array: {document}"))
}

fn seconds_left(window: &Value) -> i64 {
    window["seconds_left"]
        .as_i64()
        .unwrap_or_else(|| panic!("no seconds_left: {window}"))
}

fn assert_about(actual: i64, expected: i64, what: &str) {
    assert!(
        (expected - SLACK_SECONDS..=expected).contains(&actual),
        "{what}: {actual} s left, expected about {expected} s"
    );
}

/// api-01's SSH port: the emulator serves each VM port on a loopback port of its own,
/// and the policy lists that number.
fn api_01_port(context: &TestContext) -> u64 {
    let snapshot = context.emulator.snapshot();
    snapshot["listeners"]
        .as_array()
        .and_then(|listeners| {
            listeners.iter().find(|listener| {
                listener["service"] == "ssh"
                    && listener["vm_id"].as_str().is_some_and(|id| {
                        id.to_ascii_lowercase().ends_with(
                        "/resourcegroups/rg-web/providers/microsoft.compute/virtualmachines/api-01",
                    )
                    })
            })
        })
        .and_then(|listener| listener["port"].as_u64())
        .unwrap_or_else(|| panic!("no SSH listener for api-01 in {snapshot}"))
}

/// The requests for api-01's SSH port in the emulator's policy, oldest first, as
/// `(startTimeUtc, status, statusReason)`.
fn api_01_requests(context: &TestContext) -> Vec<(String, String, String)> {
    let port_number = api_01_port(context);
    let snapshot = context.emulator.snapshot();
    let policy = snapshot["jit_policies"]
        .as_array()
        .and_then(|policies| {
            policies.iter().find(|policy| {
                policy["id"]
                    .as_str()
                    .is_some_and(|id| id.contains("/resourceGroups/rg-web/"))
            })
        })
        .cloned()
        .unwrap_or_else(|| panic!("no rg-web policy in {snapshot}"));
    let mut requests: Vec<(String, String, String)> = policy["properties"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|request| {
            let port = request["virtualMachines"].as_array()?.iter().find(|vm| {
                vm["id"]
                    .as_str()
                    .is_some_and(|id| id.to_ascii_lowercase().ends_with("/api-01"))
            })?["ports"]
                .as_array()?
                .iter()
                .find(|port| port["number"] == port_number)?
                .clone();
            Some((
                request["startTimeUtc"].as_str()?.to_owned(),
                port["status"].as_str()?.to_owned(),
                port["statusReason"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    requests.sort();
    requests
}

#[test]
fn connect_registers_the_window_status_shows_it_extend_moves_its_end_and_stop_stops() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);

    let (_, stderr) = jit_ok(&context, &["connect", "api-01", "--no-launch"]);
    assert!(!stderr.contains("no reminders"), "{stderr}");

    let windows = status_windows(&context);
    assert_eq!(windows.len(), 1, "{windows:?}");
    let window = &windows[0];
    assert_eq!(window["vm"]["name"], "api-01");
    assert_eq!(window["vm"]["resource_group"], "rg-web");
    assert_eq!(window["ports"][0]["number"], api_01_port(&context));
    assert_eq!(window["ports"][0]["mapped_port"], Value::Null);
    assert_eq!(window["source"], CALLER_ADDRESS);
    assert_eq!(window["status"], "open");
    assert_eq!(window["ends_soon_notified"], false);
    assert_about(seconds_left(window), POLICY_MAXIMUM, "after connect");
    let first_end = window["ends_at"].clone();

    // The table says the same for people.
    let (table, _) = jit_ok(&context, &["status"]);
    assert!(table.starts_with("VM "), "{table}");
    assert!(table.contains("rg-web/api-01"), "{table}");
    assert!(table.contains(CALLER_ADDRESS), "{table}");

    let (stdout, stderr) = jit_ok(
        &context,
        &["extend", "api-01", "--duration", "1h", "-o", "json"],
    );
    assert!(stderr.contains("Extended rg-web/api-01"), "{stderr}");
    let extended = json(&stdout);
    assert_about(seconds_left(&extended), 3600, "extend's answer");

    let windows = status_windows(&context);
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert_about(seconds_left(&windows[0]), 3600, "after extend");
    assert_ne!(windows[0]["ends_at"], first_end);
    assert_eq!(windows[0]["source"], CALLER_ADDRESS);

    // Azure holds a newer request; the old one was superseded.
    let requests = api_01_requests(&context);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].1, "Revoked", "{requests:?}");
    assert_eq!(requests[0].2, "NewerRequestInitiated", "{requests:?}");
    assert_eq!(requests[1].1, "Initiated", "{requests:?}");

    let (_, stderr) = jit_ok(&context, &["agent", "stop"]);
    assert!(stderr.contains("Stopped the agent"), "{stderr}");
    assert!(!socket_exists(&context), "the socket is still there");
    let (stdout, _) = jit_ok(&context, &["agent", "status", "-o", "json"]);
    assert_eq!(json(&stdout)["running"], false, "{stdout}");
    let (stdout, stderr) = jit_ok(&context, &["status", "-o", "json"]);
    assert_eq!(json(&stdout)["agent_running"], false, "{stdout}");
    assert!(stderr.contains("not running"), "{stderr}");
    assert!(!socket_exists(&context), "status started an agent");
}

#[test]
fn windows_survive_an_agent_restart() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    jit_ok(&context, &["connect", "api-01", "--no-launch"]);
    let before = status_windows(&context);
    assert_eq!(before.len(), 1, "{before:?}");

    jit_ok(&context, &["agent", "stop"]);
    let (stdout, stderr) = jit_ok(&context, &["agent", "start", "-o", "json"]);
    assert_eq!(json(&stdout)["outcome"], "started", "{stdout}");
    assert!(stderr.contains("Started the agent"), "{stderr}");
    let (_, stderr) = jit_ok(&context, &["agent", "start"]);
    assert!(stderr.contains("already running"), "{stderr}");

    let after = status_windows(&context);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["vm"]["id"], before[0]["vm"]["id"]);
    assert_eq!(after[0]["ends_at"], before[0]["ends_at"]);

    let (stdout, _) = jit_ok(&context, &["agent", "status", "-o", "json"]);
    let status = json(&stdout);
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["open_windows"], 1, "{status}");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"), "{status}");
    assert!(
        status["backend"]
            .as_str()
            .is_some_and(|backend| backend.starts_with("azure")),
        "{status}"
    );
}

#[test]
fn a_warm_agent_hands_its_token_to_jit_so_no_az_runs() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    jit_ok(&context, &["connect", "api-01", "--no-launch"]);
    // The agent signs in for its first re-read.
    jit_ok(&context, &["status", "--refresh"]);
    let warm = context.emulator.az_calls().len();
    assert!(warm > 0, "the fake az was never called");

    jit_ok(&context, &["show", "api-01"]);
    jit_ok(&context, &["connect", "rg-web/web-01", "--no-launch"]);
    let calls = context.emulator.az_calls();
    assert_eq!(
        calls.len(),
        warm,
        "jit ran az although the agent holds a token: {:?}",
        &calls[warm..]
    );

    jit_ok(&context, &["show", "api-01", "--no-agent"]);
    assert!(
        context.emulator.az_calls().len() > warm,
        "jit --no-agent took a token without az"
    );
}

#[test]
fn extending_a_vm_without_an_open_window_says_how_to_open_one() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    jit_ok(&context, &["connect", "api-01", "--no-launch"]);
    for extra in [&[][..], &["--no-agent"][..]] {
        let mut arguments = vec!["extend", "rg-web/web-01"];
        arguments.extend_from_slice(extra);
        let output = jit(&context, &arguments);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(3), "{arguments:?}: {stderr}");
        assert!(
            stderr.contains("web-01 has no open access window"),
            "{stderr}"
        );
        assert!(stderr.contains("jit connect rg-web/web-01"), "{stderr}");
    }
}

#[test]
fn extending_beyond_the_policy_maximum_is_refused_like_connect() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    let connect = jit(
        &context,
        &["connect", "api-01", "--no-launch", "--duration", "5h"],
    );
    let (_, connect_error) = text(&connect);
    assert_eq!(connect.status.code(), Some(2), "{connect_error}");
    assert!(
        connect_error.contains("is longer than the policy allows"),
        "{connect_error}"
    );

    jit_ok(&context, &["connect", "api-01", "--no-launch"]);
    // Through the agent, then directly.
    for extra in [&[][..], &["--no-agent"][..]] {
        let mut arguments = vec!["extend", "api-01", "--duration", "5h"];
        arguments.extend_from_slice(extra);
        let output = jit(&context, &arguments);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(
            stderr.contains("is longer than the policy allows"),
            "{stderr}"
        );
        assert!(stderr.contains("--duration"), "{stderr}");
    }
    assert_eq!(api_01_requests(&context).len(), 1, "a request was made");
}

#[test]
fn extend_without_an_agent_reads_the_window_from_azure_and_hands_it_over() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    jit_ok(
        &context,
        &["connect", "api-01", "--no-launch", "--no-agent"],
    );
    assert!(!socket_exists(&context), "--no-agent started the agent");

    let (stdout, stderr) = jit_ok(
        &context,
        &[
            "extend",
            "api-01",
            "--duration",
            "2h",
            "--justification",
            "longer fix",
            "-o",
            "json",
        ],
    );
    assert!(stderr.contains("Extended rg-web/api-01"), "{stderr}");
    let extended = json(&stdout);
    assert_about(seconds_left(&extended), 2 * 3600, "extend's answer");
    assert_eq!(extended["source"], CALLER_ADDRESS);
    assert_eq!(extended["justification"], "longer fix");

    // The new window went to the agent (started for it).
    let windows = status_windows(&context);
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert_about(seconds_left(&windows[0]), 2 * 3600, "status after extend");
    let requests = api_01_requests(&context);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].2, "NewerRequestInitiated", "{requests:?}");
}

#[test]
fn a_corrupt_state_file_is_set_aside_and_reported() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    let state_dir = context.home().join("state/jit");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    std::fs::write(state_dir.join("windows.json"), "{ not json").expect("garbage written");

    let (_, stderr) = jit_ok(&context, &["agent", "start"]);
    assert!(
        stderr.contains("warning: the state file was unreadable"),
        "{stderr}"
    );
    let output = jit(&context, &["agent", "status", "-o", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let status = json(&stdout);
    let problems = status["problems"].as_array().cloned().unwrap_or_default();
    assert_eq!(problems.len(), 1, "{status}");
    let problem = problems[0].as_str().unwrap_or_default();
    assert!(problem.contains("windows.json.corrupt-"), "{problem}");
    assert!(
        stderr.contains("warning: the state file was unreadable"),
        "{stderr}"
    );

    // The garbage is kept next to the new state, not lost.
    let kept: Vec<String> = std::fs::read_dir(&state_dir)
        .expect("state dir")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("windows.json.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let content = std::fs::read_to_string(state_dir.join(&kept[0])).expect("set aside");
    assert_eq!(content, "{ not json");
}

#[test]
fn agent_run_serves_in_the_foreground_until_stopped() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    let mut foreground = context
        .jit()
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .args(["agent", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit agent run starts");
    let pid = u64::from(foreground.id());

    // Bounded wait until the foreground agent answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (stdout, _) = jit_ok(&context, &["agent", "status", "-o", "json"]);
        if json(&stdout)["pid"].as_u64() == Some(pid) {
            break;
        }
        if let Ok(Some(status)) = foreground.try_wait() {
            panic!("jit agent run exited early with {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the foreground agent never answered: {stdout}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // `connect` uses it rather than starting another.
    jit_ok(&context, &["connect", "api-01", "--no-launch"]);
    let (stdout, _) = jit_ok(&context, &["agent", "status", "-o", "json"]);
    assert_eq!(json(&stdout)["open_windows"], 1, "{stdout}");

    jit_ok(&context, &["agent", "stop"]);
    let output = foreground.wait_with_output().expect("jit agent run ends");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Running the agent at"), "{stderr}");
    assert!(stderr.contains("The agent stopped"), "{stderr}");
}

#[cfg(target_os = "linux")]
#[test]
fn install_writes_a_login_entry_for_the_agent_next_to_jit() {
    let context = agent_context();
    // A stand-in for systemctl that records its arguments.
    let calls = context.home().join("systemctl.calls");
    support::install_program(
        &context,
        "systemctl",
        &format!("#!/bin/sh\necho \"$*\" >> '{}'\n", calls.display()),
    );
    let unit = context.home().join("config/systemd/user/jit-agent.service");
    std::fs::create_dir_all(unit.parent().expect("a parent")).expect("unit dir");
    std::fs::write(
        &unit,
        "[Service]\nExecStart=\"/opt/old/jit-agent\" \"run\"\n",
    )
    .expect("an old unit");

    let (stdout, stderr) = jit_ok(&context, &["agent", "install", "-o", "json"]);
    let agent = Path::new(env!("CARGO_BIN_EXE_jit")).with_file_name("jit-agent");
    assert!(
        stderr.contains("the login entry ran /opt/old/jit-agent"),
        "{stderr}"
    );
    let document = json(&stdout);
    assert_eq!(document["activation"], "done", "{document}");
    let content = std::fs::read_to_string(&unit).expect("the unit");
    assert!(
        content.contains(&format!("ExecStart=\"{}\" \"run\"", agent.display())),
        "{content}"
    );
    let recorded = std::fs::read_to_string(&calls).expect("systemctl was called");
    assert!(
        recorded.contains("--user enable --now jit-agent.service"),
        "{recorded}"
    );

    let (_, stderr) = jit_ok(&context, &["agent", "uninstall"]);
    assert!(stderr.contains("Removed"), "{stderr}");
    assert!(!unit.exists(), "the unit is still there");
    let (_, stderr) = jit_ok(&context, &["agent", "uninstall"]);
    assert!(stderr.contains("no login entry"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// Notifications on a private session bus.

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_hears_when_a_window_ends_soon_and_when_it_ended() {
    let bus = bus::PrivateBus::start();
    let (_server, mut received) =
        bus::serve_notifications_at(&bus.address, bus::Capabilities::Body).await;

    let context = agent_context();
    let config = context.home().join("config.toml");
    std::fs::write(
        &config,
        "[agent]\nrefresh_interval = \"1s\"\nnotify_before = \"5m\"\n",
    )
    .expect("config written");
    let on_the_bus = |arguments: &[&str]| {
        let output = context
            .jit()
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("JIT_CONFIG", &config)
            .args(arguments)
            .output()
            .expect("jit runs");
        let (stdout, stderr) = text(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "jit {arguments:?} failed\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    };
    let _stopper = AgentStopper(&context);

    let port = api_01_port(&context);
    on_the_bus(&["connect", "api-01", "--no-launch"]);
    let bus::Shown {
        app, summary, body, ..
    } = bus::next_shown(&mut received, "opened", NOTIFICATION_TIMEOUT, |summary| {
        summary.ends_with("open")
    })
    .await;
    assert_eq!(app, "jit");
    assert_eq!(summary, format!("api-01: port {port} open"));
    assert!(body.contains("jit extend rg-web/api-01"), "{body}");

    // Four minutes before the end on Azure's clock: inside the five-minute warning.
    context
        .emulator
        .advance_clock(SignedDuration::from_secs(POLICY_MAXIMUM - 4 * 60));
    let bus::Shown { summary, body, .. } = bus::next_shown(
        &mut received,
        "ends soon",
        NOTIFICATION_TIMEOUT,
        |summary| summary.contains("access ends in"),
    )
    .await;
    assert!(summary.starts_with("api-01: access ends in "), "{summary}");
    assert!(
        body.starts_with(&format!("port {port} on api-01 (rg-web) closes at ")),
        "{body}"
    );
    assert!(body.ends_with("Extend: jit extend rg-web/api-01"), "{body}");
    let stdout = on_the_bus(&["status", "-o", "json"]);
    assert_eq!(
        json(&stdout)["windows"][0]["ends_soon_notified"],
        true,
        "{stdout}"
    );

    // Past the end.
    context
        .emulator
        .advance_clock(SignedDuration::from_secs(5 * 60));
    let bus::Shown { summary, body, .. } =
        bus::next_shown(&mut received, "ended", NOTIFICATION_TIMEOUT, |summary| {
            summary.ends_with("access ended")
        })
        .await;
    assert_eq!(summary, "api-01: access ended");
    assert!(
        body.starts_with(&format!("port {port} on api-01 (rg-web) closed")),
        "{body}"
    );
    assert!(body.ends_with("jit connect rg-web/api-01"), "{body}");

    let stdout = on_the_bus(&["status", "-o", "json"]);
    assert_eq!(
        json(&stdout)["windows"],
        Value::Array(Vec::new()),
        "{stdout}"
    );
    let stdout = on_the_bus(&["agent", "status", "-o", "json"]);
    assert_eq!(
        json(&stdout)["problems"],
        Value::Array(Vec::new()),
        "{stdout}"
    );
}

/// The pid of the running agent, from `jit agent status -o json`.
fn agent_pid(context: &TestContext, flags: &[&str]) -> Option<i64> {
    let mut arguments = vec!["agent", "status", "-o", "json"];
    arguments.extend_from_slice(flags);
    let (stdout, _) = jit_ok(context, &arguments);
    json(&stdout)["pid"].as_i64()
}

#[test]
fn an_agent_started_with_sign_in_flags_keeps_serving_commands_with_them() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    let output = jit(&context, &["agent", "start", "--auth", "cli"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let started = agent_pid(&context, &["--auth", "cli"]).expect("running");

    // The same flags find the same agent: no replacement, no warning.
    let (_, stderr) = jit_ok(
        &context,
        &["--auth", "cli", "connect", "api-01", "--no-launch"],
    );
    assert!(!stderr.contains("no reminders"), "{stderr}");
    assert!(!stderr.contains("Replaced"), "{stderr}");
    assert_eq!(agent_pid(&context, &["--auth", "cli"]), Some(started));
    let (stdout, stderr) = jit_ok(&context, &["--auth", "cli", "status", "-o", "json"]);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_eq!(json(&stdout)["windows"].as_array().map(Vec::len), Some(1));
}

#[test]
fn signing_in_to_az_as_someone_else_stops_warm_tokens_from_the_old_agent() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    let azure = context.home().join(".azure");
    std::fs::create_dir_all(&azure).expect("az dir");
    let profile = |user: &str| {
        format!(
            "\u{feff}{{\"subscriptions\":[{{\"id\":\"s\",\"isDefault\":true,\"user\":{{\"name\":\"{user}\",\"type\":\"user\"}},\"tenantId\":\"t\"}}]}}"
        )
    };
    std::fs::write(
        azure.join("azureProfile.json"),
        profile("alice@contoso.com"),
    )
    .expect("write");
    jit_ok(&context, &["connect", "api-01", "--no-launch"]);
    jit_ok(&context, &["status", "--refresh"]);
    let warm = context.emulator.az_calls().len();
    jit_ok(&context, &["show", "api-01"]);
    assert_eq!(context.emulator.az_calls().len(), warm, "warm for alice");

    std::fs::write(
        azure.join("azureProfile.json"),
        profile("mallory@contoso.com"),
    )
    .expect("write");
    let (_, stderr) = jit_ok(&context, &["show", "api-01"]);
    assert!(
        context.emulator.az_calls().len() > warm,
        "a token for another az account must not come from alice's agent: {stderr}"
    );
    let (stdout, _) = jit_ok(&context, &["agent", "status", "-o", "json"]);
    let problems = json(&stdout)["problems"].to_string();
    assert!(
        problems.contains("az:alice@contoso.com") && problems.contains("az:mallory@contoso.com"),
        "the status says whose agent it is: {problems}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_hands_out_arm_tokens_only() {
    let context = agent_context();
    let _stopper = AgentStopper(&context);
    jit_ok(&context, &["agent", "start"]);
    let paths = jit_agent::daemon::AgentPaths::new(
        context.home().join("runtime/jit"),
        context.home().join("state/jit"),
    );
    let mut client = jit_agent::daemon::AgentClient::connect(
        &paths,
        env!("CARGO_PKG_VERSION"),
        Duration::from_secs(5),
    )
    .await
    .expect("the agent answers");
    for scope in [
        "https://graph.microsoft.com/.default",
        "https://vault.azure.net/.default",
    ] {
        let error = client.token(scope).await.expect_err("not an ARM scope");
        assert!(error.to_string().contains("tokens for"), "{scope}: {error}");
    }
    let token = client
        .token("https://management.azure.com/.default")
        .await
        .expect("the ARM scope is served");
    assert!(!token.secret.is_empty());
}
