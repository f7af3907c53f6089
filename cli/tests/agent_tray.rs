//! The tray end to end: `jit connect` against the emulator starts the real `jit-agent`
//! on a private D-Bus session where the test serves a stand-in
//! `org.kde.StatusNotifierWatcher`. The agent's item must register, its menu (read over
//! `com.canonical.dbusmenu`) must list the window, clicking "Extend by the policy
//! maximum" must make a new JIT request in the emulator that moves the window's end, and
//! the item must leave the bus once the window ended on Azure's (the emulator's) clock.

#![cfg(target_os = "linux")]

mod support;

#[path = "../../agent/tests/daemon_support/bus.rs"]
mod bus;

use std::future::Future;
use std::time::Duration;

use jiff::SignedDuration;
use jit_emulator::{EmulatorOptions, World};
use serde_json::Value;
use support::{TestContext, text};

/// The default world's JIT maximum for api-01's SSH port (`PT3H`).
const POLICY_MAXIMUM: i64 = 3 * 3600;
/// How long any awaited event may take.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Stops the test's agent when dropped, so no agent outlives its test.
struct AgentStopper<'a>(&'a TestContext);

impl Drop for AgentStopper<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .jit()
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .args(["agent", "stop"])
            .output();
    }
}

/// Waits (bounded) until `check` gives `Some`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The SSH requests for api-01 in the emulator's policy, oldest first, as
/// `(startTimeUtc, endTimeUtc, status, statusReason)`.
fn api_01_requests(context: &TestContext) -> Vec<(String, String, String, String)> {
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
    let mut requests: Vec<(String, String, String, String)> = policy["properties"]["requests"]
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
                .first()?
                .clone();
            Some((
                request["startTimeUtc"].as_str()?.to_owned(),
                port["endTimeUtc"].as_str()?.to_owned(),
                port["status"].as_str()?.to_owned(),
                port["statusReason"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    requests.sort();
    requests
}

/// The window entries of a menu (everything with a submenu).
fn window_entries(menu: &bus::MenuNode) -> Vec<&bus::MenuNode> {
    menu.children
        .iter()
        .filter(|child| !child.children.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tray_lists_the_window_and_extends_it_on_the_emulator() {
    let bus = bus::PrivateBus::start();
    let (watcher, mut registered) = bus::serve_watcher_at(&bus.address).await;
    let (_notifications, mut shown) =
        bus::serve_notifications_at(&bus.address, bus::Capabilities::BodyAndActions).await;

    let context = agent_context();
    let config = context.home().join("config.toml");
    std::fs::write(&config, "[agent]\nrefresh_interval = \"1s\"\n").expect("config written");
    let jit = |arguments: &[&str]| {
        let output = context
            .jit()
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("JIT_CONFIG", &config)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
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

    jit(&["connect", "api-01", "--no-launch"]);
    let service = tokio::time::timeout(EVENT_TIMEOUT, registered.recv())
        .await
        .expect("the agent's item registered in time")
        .expect("the watcher is still running");

    let port = context.emulator.snapshot()["listeners"]
        .as_array()
        .and_then(|listeners| {
            listeners.iter().find(|listener| {
                listener["service"] == "ssh"
                    && listener["vm_id"]
                        .as_str()
                        .is_some_and(|id| id.to_ascii_lowercase().ends_with("/api-01"))
            })
        })
        .and_then(|listener| listener["port"].as_u64())
        .expect("api-01's SSH listener");
    let menu = bus::read_menu(&watcher, &service).await;
    let entries = window_entries(&menu);
    assert_eq!(entries.len(), 1, "{menu:#?}");
    let label = &entries[0].label;
    assert!(
        *label == format!("api-01 (rg-web): port {port}, 3 h left")
            || *label == format!("api-01 (rg-web): port {port}, 2 h 59 min left"),
        "{label}"
    );
    assert_eq!(menu.labels().last(), Some(&"Quit agent"), "{menu:#?}");
    let before = api_01_requests(&context);
    assert_eq!(before.len(), 1, "{before:?}");

    // Half an hour later on Azure's clock, the person extends from the tray.
    context
        .emulator
        .advance_clock(SignedDuration::from_mins(30));
    let extend = entries[0]
        .child("Extend by the policy maximum")
        .expect("an extend item")
        .clone();
    bus::click(&watcher, &service, &extend).await;

    // Azure (the emulator) holds a new request for the policy maximum from now on, and
    // the old one was superseded.
    let after = eventually("a new request in the emulator", || {
        let requests = api_01_requests(&context);
        async move { (requests.len() == 2).then_some(requests) }
    })
    .await;
    assert_eq!(after[0].2, "Revoked", "{after:?}");
    assert_eq!(after[0].3, "NewerRequestInitiated", "{after:?}");
    assert_eq!(after[1].2, "Initiated", "{after:?}");
    let old_end: jiff::Timestamp = before[0].1.parse().expect("an end time");
    let new_end: jiff::Timestamp = after[1].1.parse().expect("an end time");
    let moved = new_end.duration_since(old_end);
    assert!(
        (SignedDuration::from_mins(29)..=SignedDuration::from_mins(31)).contains(&moved),
        "the end moved by {moved}"
    );

    // The desktop hears of it once the agent tracks the new window.
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let next = tokio::time::timeout_at(deadline, shown.recv())
            .await
            .expect("an \"extended\" notification in time")
            .expect("the notification server is still running");
        if next.summary == "api-01: access extended" {
            break;
        }
    }
    let status: Value = serde_json::from_str(&jit(&["status", "-o", "json"])).expect("JSON");
    let window = &status["windows"][0];
    assert_eq!(window["vm"]["name"], "api-01", "{status}");
    let tracked_end: jiff::Timestamp = window["ends_at"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("no ends_at: {status}"));
    // `jit status` shows whole seconds.
    assert!(
        tracked_end.duration_since(new_end).abs() < SignedDuration::from_secs(1),
        "tracked {tracked_end}, requested {new_end}"
    );
    let seconds_left = window["seconds_left"].as_i64().expect("seconds_left");
    assert!(
        (POLICY_MAXIMUM - 60..=POLICY_MAXIMUM).contains(&seconds_left),
        "{seconds_left} s left"
    );
    eventually("the menu to show the new time left", || {
        let watcher = watcher.clone();
        let service = service.clone();
        async move {
            let menu = bus::read_menu(&watcher, &service).await;
            let label = window_entries(&menu).first()?.label.clone();
            (label.ends_with(", 3 h left") || label.ends_with(", 2 h 59 min left")).then_some(())
        }
    })
    .await;

    // Past the end on Azure's clock, the window ends and the item leaves the bus.
    context
        .emulator
        .advance_clock(SignedDuration::from_secs(POLICY_MAXIMUM + 60));
    eventually("the item to leave the bus", || {
        let watcher = watcher.clone();
        let service = service.clone();
        async move { (!bus::has_owner(&watcher, &service).await).then_some(()) }
    })
    .await;
    let status: Value = serde_json::from_str(&jit(&["status", "-o", "json"])).expect("JSON");
    assert_eq!(status["windows"], Value::Array(Vec::new()), "{status}");
}
