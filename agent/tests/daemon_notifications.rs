//! Desktop notifications on a real D-Bus: a private session bus (`dbus-daemon`), an
//! in-process `org.freedesktop.Notifications` server (zbus, the major notify-rust uses),
//! and the agent with its `DesktopNotifier`. The "opened", "ends soon" and "ended"
//! notifications must arrive carrying the VM, its ports and the next command.
//!
//! notify-rust finds the bus through `DBUS_SESSION_BUS_ADDRESS`, and a test may not
//! change its own environment safely, so the outer test starts the bus and re-runs this
//! test binary with the address set; the inner test does the work.

mod daemon_support;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use daemon_support::{EVENT_TIMEOUT, TestBackend, VERSION, config, dirs, start, window};
use jiff::SignedDuration;
use jit_agent::daemon::{AgentClient, DesktopNotifier};
use tokio::sync::mpsc;

const PRIVATE_BUS_MARKER: &str = "JIT_TEST_PRIVATE_SESSION_BUS";

/// A `dbus-daemon` that is killed when dropped.
struct PrivateBus {
    daemon: std::process::Child,
    address: String,
}

impl PrivateBus {
    fn start() -> Self {
        let mut daemon = match Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(daemon) => daemon,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                panic!("dbus-daemon is missing: apt-get install dbus");
            }
            Err(error) => panic!("could not start dbus-daemon: {error}"),
        };
        let mut address = String::new();
        if let Some(stdout) = daemon.stdout.take() {
            // dbus-daemon prints its address once it listens, or exits (EOF) on failure.
            let _ = BufReader::new(stdout).read_line(&mut address);
        }
        let address = address.trim().to_owned();
        assert!(
            !address.is_empty(),
            "dbus-daemon printed no address (did it fail to start?)"
        );
        Self { daemon, address }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Runs `inner` (an ignored test of this binary) with the session bus at `address`.
fn run_inner(inner: &str, address: &str) {
    let output = Command::new(daemon_support::this_test_binary())
        .args([
            "--exact",
            inner,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .env(PRIVATE_BUS_MARKER, "1")
        .output()
        .expect("run the inner test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the inner test {inner} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
fn desktop_notifications_reach_the_session_bus() {
    let bus = PrivateBus::start();
    run_inner("notifications_on_the_private_bus", &bus.address);
}

#[test]
fn without_a_notification_service_the_agent_falls_back_and_goes_on() {
    let temp = tempfile::tempdir().expect("temp dir");
    let nowhere = format!("unix:path={}", temp.path().join("no-bus").display());
    run_inner("notifications_without_a_bus", &nowhere);
}

/// What the fake notification server received: (app name, summary, body).
type Received = (String, String, String);

/// The desktop's notification service, as far as a client can tell.
struct FakeNotifications {
    received: mpsc::UnboundedSender<Received>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl FakeNotifications {
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let _ = self.received.send((app_name, summary, body));
        1
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".to_owned()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "fake".to_owned(),
            "jit tests".to_owned(),
            "1.0".to_owned(),
            "1.2".to_owned(),
        )
    }

    fn close_notification(&self, _id: u32) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "inner half of desktop_notifications_reach_the_session_bus (needs its private bus)"]
async fn notifications_on_the_private_bus() {
    assert!(
        std::env::var_os(PRIVATE_BUS_MARKER).is_some(),
        "run through desktop_notifications_reach_the_session_bus, which starts a private bus"
    );
    let (sender, mut received) = mpsc::unbounded_channel();
    let _server = zbus::connection::Builder::session()
        .expect("the session bus address")
        .name("org.freedesktop.Notifications")
        .expect("the well-known name")
        .serve_at(
            "/org/freedesktop/Notifications",
            FakeNotifications { received: sender },
        )
        .expect("serve the interface")
        .build()
        .await
        .expect("connect the fake notification server");

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
    let (app, summary, body) = next().await;
    assert_eq!(app, "jit");
    assert_eq!(summary, "api-01: port 22 open");
    assert!(body.contains("jit extend rg-web/api-01"), "{body}");

    let (app, summary, body) = next().await;
    assert_eq!(app, "jit");
    assert!(summary.starts_with("api-01: access ends in "), "{summary}");
    assert!(
        body.starts_with("port 22 on api-01 (rg-web) closes at "),
        "{body}"
    );
    assert!(body.ends_with("Extend: jit extend rg-web/api-01"), "{body}");

    let (app, summary, body) = next().await;
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
        std::env::var_os(PRIVATE_BUS_MARKER).is_some(),
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
