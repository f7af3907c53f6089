//! Desktop notifications on a real D-Bus: a private session bus (`dbus-daemon`), an
//! in-process `org.freedesktop.Notifications` server (zbus, the major notify-rust uses),
//! and the agent with its `DesktopNotifier`. The "opened", "ends soon" and "ended"
//! notifications must arrive carrying the VM, its ports and the next command.
//!
//! notify-rust finds the bus through `DBUS_SESSION_BUS_ADDRESS`, and a test may not
//! change its own environment safely, so the outer test starts the bus and re-runs this
//! test binary with the address set; the inner test does the work
//! (`daemon_support/bus.rs`).

#![cfg(target_os = "linux")]

mod daemon_support;

use std::sync::Arc;
use std::time::Duration;

use daemon_support::bus::{self, Capabilities, PrivateBus, Shown};
use daemon_support::{EVENT_TIMEOUT, TestBackend, VERSION, config, dirs, start, window};
use jiff::SignedDuration;
use jit_agent::daemon::{AgentClient, DesktopNotifier};

#[test]
fn desktop_notifications_reach_the_session_bus() {
    let bus = PrivateBus::start();
    bus::run_inner("notifications_on_the_private_bus", &bus.address);
}

#[test]
fn without_a_notification_service_the_agent_falls_back_and_goes_on() {
    let temp = tempfile::tempdir().expect("temp dir");
    let nowhere = format!("unix:path={}", temp.path().join("no-bus").display());
    bus::run_inner("notifications_without_a_bus", &nowhere);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "inner half of desktop_notifications_reach_the_session_bus (needs its private bus)"]
async fn notifications_on_the_private_bus() {
    bus::insist_on_private_bus("desktop_notifications_reach_the_session_bus");
    let (_server, mut received) = bus::serve_notifications(Capabilities::Body).await;

    let dirs = dirs();
    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        DesktopNotifier::default(),
    )
    .await;
    let mut client = AgentClient::connect(&dirs.paths, VERSION, Duration::from_secs(5))
        .await
        .expect("connect");
    // Ends 6 s from now; the test config warns 3 s before the end.
    let opened = window("api-01", SignedDuration::from_secs(6), SignedDuration::ZERO);
    client.register_window(&opened).await.expect("register");

    let mut next = async || {
        tokio::time::timeout(EVENT_TIMEOUT, received.recv())
            .await
            .expect("a notification in time")
            .expect("the server is still running")
    };
    let Shown {
        app, summary, body, ..
    } = next().await;
    assert_eq!(app, "jit");
    assert_eq!(summary, "api-01: port 22 open");
    assert!(body.contains("jit extend rg-web/api-01"), "{body}");

    let Shown {
        app, summary, body, ..
    } = next().await;
    assert_eq!(app, "jit");
    assert!(summary.starts_with("api-01: access ends in "), "{summary}");
    assert!(
        body.starts_with("port 22 on api-01 (rg-web) closes at "),
        "{body}"
    );
    assert!(body.ends_with("Extend: jit extend rg-web/api-01"), "{body}");

    let Shown {
        app, summary, body, ..
    } = next().await;
    assert_eq!(app, "jit");
    assert_eq!(summary, "api-01: access ended");
    assert!(
        body.starts_with("port 22 on api-01 (rg-web) closed"),
        "{body}"
    );
    assert!(body.ends_with("jit connect rg-web/api-01"), "{body}");

    let status = client.status().await.expect("status");
    assert_eq!(
        status.notifier_problem, None,
        "notifications did not fall back"
    );
    agent.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "inner half of without_a_notification_service_the_agent_falls_back_and_goes_on"]
async fn notifications_without_a_bus() {
    assert!(
        std::env::var_os(bus::PRIVATE_BUS_MARKER).is_some(),
        "run through without_a_notification_service_the_agent_falls_back_and_goes_on"
    );
    let dirs = dirs();
    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        DesktopNotifier::default(),
    )
    .await;
    let mut client = AgentClient::connect(&dirs.paths, VERSION, Duration::from_secs(5))
        .await
        .expect("connect");
    let opened = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    client.register_window(&opened).await.expect("register");

    // The "opened" notification fails in the background; the status shows why.
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    let problem = loop {
        let status = client.status().await.expect("the agent still answers");
        if let Some(problem) = status.notifier_problem {
            break problem;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notifier problem reported"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    };
    assert!(problem.contains("desktop notification"), "{problem}");
    assert_eq!(client.list_windows().await.expect("list").windows.len(), 1);
    agent.stop().await.expect("stop");
}
