//! The tray and the notification buttons on a real D-Bus: a private session bus, a
//! stand-in `org.kde.StatusNotifierWatcher` and `org.freedesktop.Notifications` served
//! from the test, and an in-process agent with the tray on.
//!
//! The item must register only once a window is open, its menu (read as a tray host
//! reads it, `com.canonical.dbusmenu.GetLayout`) must list each window with its VM,
//! port and time left, clicking the items must extend, copy (here: show, as there is
//! no display) and forget, "Quit agent" must stop the agent, and the item must leave
//! the bus when the last window ends. Without a watcher the agent runs on and says so
//! once. The "ends soon" notification carries an "Extend" button that extends.
//!
//! The backend here records what the agent asks of Azure; the same tray against the
//! emulator, extending for real, is in `cli/tests/agent_tray.rs`.

#![cfg(target_os = "linux")]

mod daemon_support;

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use daemon_support::bus::{self, Capabilities, MenuNode};
use daemon_support::{
    BackendCall, EVENT_TIMEOUT, TestBackend, VERSION, config, dirs, start, window,
};
use jiff::SignedDuration;
use jit_agent::daemon::protocol::ExtendLength;
use jit_agent::daemon::{AgentClient, DesktopNotifier, RecordingNotifier};
use tokio::sync::mpsc;

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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next_registration(registered: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(EVENT_TIMEOUT, registered.recv())
        .await
        .expect("the item registered in time")
        .expect("the watcher is still running")
}

/// The window entries of a menu (everything but separators and "Quit agent").
fn window_entries(menu: &MenuNode) -> Vec<&MenuNode> {
    menu.children
        .iter()
        .filter(|child| !child.children.is_empty())
        .collect()
}

#[test]
fn the_tray_follows_the_windows_and_its_menu_acts_on_them() {
    let bus = bus::PrivateBus::start();
    bus::run_inner("tray_on_the_private_bus", &bus.address);
}

#[test]
fn without_a_tray_host_the_agent_runs_and_says_so_once() {
    let bus = bus::PrivateBus::start();
    bus::run_inner("no_watcher_on_the_private_bus", &bus.address);
}

#[test]
fn the_ends_soon_notification_has_an_extend_button_that_extends() {
    let bus = bus::PrivateBus::start();
    bus::run_inner("ends_soon_button_on_the_private_bus", &bus.address);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "inner half of the_tray_follows_the_windows_and_its_menu_acts_on_them"]
async fn tray_on_the_private_bus() {
    bus::insist_on_private_bus("the_tray_follows_the_windows_and_its_menu_acts_on_them");
    let (_notifications, mut shown) = bus::serve_notifications(Capabilities::BodyAndActions).await;
    let (watcher, mut registered) = bus::serve_watcher().await;

    let dirs = dirs();
    let backend = Arc::new(TestBackend::default());
    let mut config = config(&dirs.paths);
    config.tray = true;
    let agent = start(config, Arc::clone(&backend), DesktopNotifier::default()).await;
    let mut client = AgentClient::connect(&dirs.paths, VERSION, Duration::from_secs(5))
        .await
        .expect("connect");

    // No window, no icon.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), registered.recv())
            .await
            .is_err(),
        "an item registered while no window was open"
    );

    let api = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    client.register_window(&api).await.expect("register");
    let service = next_registration(&mut registered).await;
    assert!(bus::has_owner(&watcher, &service).await);

    let menu = bus::read_menu(&watcher, &service).await;
    let entries = window_entries(&menu);
    assert_eq!(entries.len(), 1, "{menu:#?}");
    let label = &entries[0].label;
    assert!(
        label == "api-01 (rg-web): port 22, 1 h left"
            || label == "api-01 (rg-web): port 22, 59 min left",
        "{label}"
    );
    assert_eq!(
        entries[0].labels(),
        [
            "Extend by the policy maximum",
            "Copy ssh command",
            "End tracking"
        ]
    );
    assert_eq!(menu.labels().last(), Some(&"Quit agent"), "{menu:#?}");

    // Extend: the backend is asked for the policy maximum, the menu shows the new end
    // and a notification says so.
    let extend = entries[0]
        .child("Extend by the policy maximum")
        .expect("an extend item")
        .clone();
    bus::click(&watcher, &service, &extend).await;
    let call = eventually("the extension", || {
        let calls = backend.calls();
        async move {
            calls
                .into_iter()
                .find(|call| matches!(call, BackendCall::Extend { .. }))
        }
    })
    .await;
    assert_eq!(
        call,
        BackendCall::Extend {
            vm_id: api.vm_id.clone(),
            length: ExtendLength::PolicyMaximum,
        }
    );
    // The notification follows the new window's tracking.
    let extended = bus::next_shown(&mut shown, "extended", EVENT_TIMEOUT, |summary| {
        summary == "api-01: access extended"
    })
    .await;
    assert!(
        extended
            .body
            .contains("port 22 on api-01 (rg-web) open until"),
        "{}",
        extended.body
    );
    let list = client.list_windows().await.expect("list");
    assert!(
        list.windows[0].time_left > SignedDuration::from_mins(170),
        "{list:?}"
    );
    eventually("the menu to show the extended window", || {
        let watcher = watcher.clone();
        let service = service.clone();
        async move {
            let menu = bus::read_menu(&watcher, &service).await;
            let label = window_entries(&menu).first()?.label.clone();
            (label.ends_with(", 3 h left") || label.ends_with(", 2 h 59 min left")).then_some(())
        }
    })
    .await;

    // Copy ssh command: no display, so no clipboard; the command comes as a notification.
    let menu = bus::read_menu(&watcher, &service).await;
    let copy = window_entries(&menu)[0]
        .child("Copy ssh command")
        .expect("a copy item")
        .clone();
    assert!(copy.enabled);
    bus::click(&watcher, &service, &copy).await;
    let command = bus::next_shown(&mut shown, "ssh command", EVENT_TIMEOUT, |summary| {
        summary == "api-01: ssh command"
    })
    .await;
    assert!(
        command.body.starts_with("ssh -p 22 127.0.0.1 "),
        "{}",
        command.body
    );

    // A second window joins the menu; "End tracking" forgets it (and only it).
    let web = window(
        "web-01",
        SignedDuration::from_hours(2),
        SignedDuration::ZERO,
    );
    client.register_window(&web).await.expect("register");
    let menu = eventually("both windows in the menu", || {
        let watcher = watcher.clone();
        let service = service.clone();
        async move {
            let menu = bus::read_menu(&watcher, &service).await;
            (window_entries(&menu).len() == 2).then_some(menu)
        }
    })
    .await;
    let end_web = menu
        .child("web-01 (rg-web): port 22, ")
        .and_then(|entry| entry.child("End tracking"))
        .expect("web-01's end tracking item")
        .clone();
    bus::click(&watcher, &service, &end_web).await;
    let remaining = eventually("web-01 to be forgotten", || {
        let paths = dirs.paths.clone();
        async move {
            let mut client = AgentClient::connect(&paths, VERSION, Duration::from_secs(5))
                .await
                .ok()?;
            let list = client.list_windows().await.ok()?;
            (list.windows.len() == 1).then_some(list)
        }
    })
    .await;
    assert_eq!(remaining.windows[0].window.vm_name, "api-01");
    let menu = eventually("web-01 to leave the menu", || {
        let watcher = watcher.clone();
        let service = service.clone();
        async move {
            let menu = bus::read_menu(&watcher, &service).await;
            (window_entries(&menu).len() == 1).then_some(menu)
        }
    })
    .await;
    let entries = window_entries(&menu);
    assert!(entries[0].label.starts_with("api-01 "), "{menu:#?}");
    assert!(
        !backend.calls().iter().any(|call| matches!(
            call,
            BackendCall::Extend { vm_id, .. } if vm_id == &web.vm_id
        )),
        "ending tracking asked Azure for something"
    );

    // Forgetting the last window removes the item from the bus.
    let end_api = entries[0]
        .child("End tracking")
        .expect("end tracking")
        .clone();
    bus::click(&watcher, &service, &end_api).await;
    eventually("the item to leave the bus", || {
        let watcher = watcher.clone();
        let service = service.clone();
        async move { (!bus::has_owner(&watcher, &service).await).then_some(()) }
    })
    .await;
    assert!(
        client
            .list_windows()
            .await
            .expect("list")
            .windows
            .is_empty()
    );

    // A window that runs out: the item comes back for it and goes when it ends.
    let short = window("db-01", SignedDuration::from_secs(3), SignedDuration::ZERO);
    client.register_window(&short).await.expect("register");
    let second = next_registration(&mut registered).await;
    assert_ne!(second, service, "a new item for a new stretch of windows");
    eventually("the item to leave when the window ends", || {
        let watcher = watcher.clone();
        let second = second.clone();
        async move { (!bus::has_owner(&watcher, &second).await).then_some(()) }
    })
    .await;
    assert!(
        client
            .list_windows()
            .await
            .expect("list")
            .windows
            .is_empty()
    );

    // "Quit agent" stops the agent, which takes its item with it.
    client.register_window(&api).await.expect("register");
    let third = next_registration(&mut registered).await;
    let menu = bus::read_menu(&watcher, &third).await;
    let quit = menu.child("Quit agent").expect("a quit item").clone();
    bus::click(&watcher, &third, &quit).await;
    agent.stopped().await.expect("the agent stopped cleanly");
    assert!(
        !bus::has_owner(&watcher, &third).await,
        "the item outlived the agent"
    );
}

/// Log lines, kept for the test to read.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Write for CapturedLog {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buffer);
        }
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "inner half of without_a_tray_host_the_agent_runs_and_says_so_once"]
async fn no_watcher_on_the_private_bus() {
    bus::insist_on_private_bus("without_a_tray_host_the_agent_runs_and_says_so_once");
    let log = CapturedLog::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter("jit_agent=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let dirs = dirs();
    let mut config = config(&dirs.paths);
    config.tray = true;
    let agent = start(
        config,
        Arc::new(TestBackend::default()),
        Arc::new(RecordingNotifier::default()),
    )
    .await;
    let mut client = AgentClient::connect(&dirs.paths, VERSION, Duration::from_secs(5))
        .await
        .expect("connect");

    // A first stretch of windows: the tray is tried and found missing.
    let short = window("db-01", SignedDuration::from_secs(2), SignedDuration::ZERO);
    client.register_window(&short).await.expect("register");
    eventually("the no-tray warning", || {
        let text = log.text();
        async move {
            text.contains("the agent runs without a tray icon")
                .then_some(())
        }
    })
    .await;
    eventually("the short window to end", || {
        let paths = dirs.paths.clone();
        async move {
            let mut client = AgentClient::connect(&paths, VERSION, Duration::from_secs(5))
                .await
                .ok()?;
            client
                .list_windows()
                .await
                .ok()?
                .windows
                .is_empty()
                .then_some(())
        }
    })
    .await;

    // A second stretch: tried again, quietly.
    let api = window(
        "api-01",
        SignedDuration::from_hours(1),
        SignedDuration::ZERO,
    );
    client.register_window(&api).await.expect("register");
    eventually("the second attempt", || {
        let text = log.text();
        async move { text.contains("still no tray").then_some(()) }
    })
    .await;
    assert_eq!(client.list_windows().await.expect("list").windows.len(), 1);
    agent.stop().await.expect("stop");

    let text = log.text();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("the agent runs without a tray icon"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("WARN"), "{text}");
    assert!(
        warnings[0].contains("no StatusNotifierWatcher on the session bus"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "inner half of the_ends_soon_notification_has_an_extend_button_that_extends"]
async fn ends_soon_button_on_the_private_bus() {
    bus::insist_on_private_bus("the_ends_soon_notification_has_an_extend_button_that_extends");
    let (notifications, mut shown) = bus::serve_notifications(Capabilities::BodyAndActions).await;

    let dirs = dirs();
    let backend = Arc::new(TestBackend::default());
    // Warns 3 s before the end; the window ends in 6 s.
    let agent = start(
        config(&dirs.paths),
        Arc::clone(&backend),
        DesktopNotifier::default(),
    )
    .await;
    let mut client = AgentClient::connect(&dirs.paths, VERSION, Duration::from_secs(5))
        .await
        .expect("connect");
    let api = window("api-01", SignedDuration::from_secs(6), SignedDuration::ZERO);
    client.register_window(&api).await.expect("register");

    let opened = bus::next_shown(&mut shown, "opened", EVENT_TIMEOUT, |summary| {
        summary.ends_with("open")
    })
    .await;
    assert!(opened.actions.is_empty(), "{opened:?}");
    let soon = bus::next_shown(&mut shown, "ends soon", EVENT_TIMEOUT, |summary| {
        summary.starts_with("api-01: access ends in ")
    })
    .await;
    assert_eq!(soon.actions, ["extend", "Extend"], "{soon:?}");

    // The person presses "Extend" (again until the agent has listened: it starts
    // listening just after the notification is shown).
    let extensions = || {
        backend
            .calls()
            .into_iter()
            .filter(|call| matches!(call, BackendCall::Extend { .. }))
            .collect::<Vec<_>>()
    };
    let soon_id = soon.id;
    eventually("the extension", || {
        let notifications = notifications.clone();
        let done = !extensions().is_empty();
        async move {
            if done {
                return Some(());
            }
            bus::press_notification_button(&notifications, soon_id, "extend").await;
            None
        }
    })
    .await;
    let extended = bus::next_shown(&mut shown, "extended", EVENT_TIMEOUT, |summary| {
        summary == "api-01: access extended"
    })
    .await;
    assert!(extended.body.contains("(3 h left)"), "{}", extended.body);
    // The button acted once, however often it was pressed.
    assert_eq!(
        extensions(),
        [BackendCall::Extend {
            vm_id: api.vm_id.clone(),
            length: ExtendLength::PolicyMaximum,
        }]
    );
    let list = client.list_windows().await.expect("list");
    assert!(
        list.windows[0].time_left > SignedDuration::from_mins(170),
        "{list:?}"
    );
    // The window did not end: no "ended" notification.
    assert!(
        tokio::time::timeout(Duration::from_secs(4), async {
            bus::next_shown(&mut shown, "ended", EVENT_TIMEOUT, |summary| {
                summary.ends_with("access ended")
            })
            .await
        })
        .await
        .is_err(),
        "the extended window was reported as ended"
    );
    agent.stop().await.expect("stop");
}
