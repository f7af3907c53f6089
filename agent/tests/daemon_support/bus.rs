//! A private D-Bus session for the desktop tests: `dbus-daemon`, a stand-in
//! `org.freedesktop.Notifications` and `org.kde.StatusNotifierWatcher` served from the
//! test, and a reader for an item's `com.canonical.dbusmenu` menu.
//!
//! notify-rust and ksni find the bus through `DBUS_SESSION_BUS_ADDRESS`, and a test may
//! not change its own environment safely, so the outer test starts the bus and re-runs
//! its own binary ([`run_inner`]) with the address set; the inner (ignored) test does the
//! work.
//!
//! `cli/tests/agent_tray.rs` and `cli/tests/agent_e2e.rs` include this file too (the
//! same stand-ins, driving the real `jit-agent` against the emulator), so it depends on
//! nothing else here.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use zbus::zvariant::{OwnedValue, Value};

/// Set for the inner half of a test, which insists on it.
pub const PRIVATE_BUS_MARKER: &str = "JIT_TEST_PRIVATE_SESSION_BUS";

/// A `dbus-daemon` that is killed when dropped.
pub struct PrivateBus {
    daemon: std::process::Child,
    pub address: String,
}

impl PrivateBus {
    pub fn start() -> Self {
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

/// Runs `inner` (an ignored test of this binary) with the session bus at `address`, no
/// X or Wayland display (so there is no clipboard), and insists that it passed.
pub fn run_inner(inner: &str, address: &str) {
    let this_test_binary = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(this_test_binary)
        .args([
            "--exact",
            inner,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
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

/// Fails unless the test runs as the inner half of `outer`.
pub fn insist_on_private_bus(outer: &str) {
    assert!(
        std::env::var_os(PRIVATE_BUS_MARKER).is_some(),
        "run through {outer}, which starts a private bus"
    );
}

/// A notification the stand-in server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub id: u32,
    pub app: String,
    pub summary: String,
    pub body: String,
    /// Alternating keys and labels, as on the wire.
    pub actions: Vec<String>,
}

/// What the stand-in notification server says it can show (`GetCapabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capabilities {
    /// A summary and a body.
    Body,
    /// A body and buttons ("actions").
    BodyAndActions,
}

impl Capabilities {
    fn names(self) -> Vec<String> {
        let names: &[&str] = match self {
            Self::Body => &["body"],
            Self::BodyAndActions => &["body", "actions"],
        };
        names.iter().map(|name| (*name).to_owned()).collect()
    }
}

/// The desktop's notification service, as far as a client can tell; it numbers what
/// it shows.
pub struct FakeNotifications {
    shown: mpsc::UnboundedSender<Shown>,
    next_id: AtomicU32,
    capabilities: Capabilities,
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
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self.shown.send(Shown {
            id,
            app: app_name,
            summary,
            body,
            actions,
        });
        id
    }

    fn get_capabilities(&self) -> Vec<String> {
        self.capabilities.names()
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

/// Serves [`FakeNotifications`] with `capabilities` on the session bus; what it shows
/// arrives on the receiver.
pub async fn serve_notifications(
    capabilities: Capabilities,
) -> (zbus::Connection, mpsc::UnboundedReceiver<Shown>) {
    serve_notifications_on(
        zbus::connection::Builder::session().expect("the session bus address"),
        capabilities,
    )
    .await
}

/// [`serve_notifications`] on the bus at `address`.
pub async fn serve_notifications_at(
    address: &str,
    capabilities: Capabilities,
) -> (zbus::Connection, mpsc::UnboundedReceiver<Shown>) {
    serve_notifications_on(
        zbus::connection::Builder::address(address).expect("a bus address"),
        capabilities,
    )
    .await
}

async fn serve_notifications_on(
    builder: zbus::connection::Builder<'_>,
    capabilities: Capabilities,
) -> (zbus::Connection, mpsc::UnboundedReceiver<Shown>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let connection = builder
        .name("org.freedesktop.Notifications")
        .expect("the well-known name")
        .serve_at(
            "/org/freedesktop/Notifications",
            FakeNotifications {
                shown: sender,
                next_id: AtomicU32::new(1),
                capabilities,
            },
        )
        .expect("serve the interface")
        .build()
        .await
        .expect("connect the fake notification server");
    (connection, receiver)
}

/// The next notification whose summary satisfies `wanted`, skipping others; fails
/// unless it arrives `within`.
pub async fn next_shown(
    shown: &mut mpsc::UnboundedReceiver<Shown>,
    what: &str,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Shown {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let next = tokio::time::timeout_at(deadline, shown.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} notification within {within:?}"))
            .expect("the notification server is still running");
        if wanted(&next.summary) {
            return next;
        }
    }
}

/// What a person does on a notification: emits `ActionInvoked(id, key)` from the
/// notification server's connection.
pub async fn press_notification_button(connection: &zbus::Connection, id: u32, key: &str) {
    connection
        .emit_signal(
            None::<()>,
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications",
            "ActionInvoked",
            &(id, key),
        )
        .await
        .expect("emit ActionInvoked");
}

/// The desktop's tray host, as far as an item can tell: it accepts every
/// registration and records it.
pub struct StandInWatcher {
    registered: mpsc::UnboundedSender<String>,
    items: Arc<Mutex<Vec<String>>>,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl StandInWatcher {
    async fn register_status_notifier_item(&self, service: String) {
        if let Ok(mut items) = self.items.lock() {
            items.push(service.clone());
        }
        let _ = self.registered.send(service);
    }

    fn register_status_notifier_host(&self, _service: String) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.items
            .lock()
            .map(|items| items.clone())
            .unwrap_or_default()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

/// Serves [`StandInWatcher`]; the bus names of registered items arrive on the receiver.
pub async fn serve_watcher() -> (zbus::Connection, mpsc::UnboundedReceiver<String>) {
    serve_watcher_on(zbus::connection::Builder::session().expect("the session bus address")).await
}

/// [`serve_watcher`] on the bus at `address`.
pub async fn serve_watcher_at(
    address: &str,
) -> (zbus::Connection, mpsc::UnboundedReceiver<String>) {
    serve_watcher_on(zbus::connection::Builder::address(address).expect("a bus address")).await
}

async fn serve_watcher_on(
    builder: zbus::connection::Builder<'_>,
) -> (zbus::Connection, mpsc::UnboundedReceiver<String>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let connection = builder
        .name("org.kde.StatusNotifierWatcher")
        .expect("the well-known name")
        .serve_at(
            "/StatusNotifierWatcher",
            StandInWatcher {
                registered: sender,
                items: Arc::new(Mutex::new(Vec::new())),
            },
        )
        .expect("serve the interface")
        .build()
        .await
        .expect("connect the stand-in watcher");
    (connection, receiver)
}

/// One entry of a dbusmenu layout.
#[derive(Debug, Clone, PartialEq)]
pub struct MenuNode {
    pub id: i32,
    /// The `label` property (empty for the root and separators).
    pub label: String,
    pub enabled: bool,
    pub children: Vec<MenuNode>,
}

impl MenuNode {
    /// The labels of the children.
    pub fn labels(&self) -> Vec<&str> {
        self.children
            .iter()
            .map(|child| child.label.as_str())
            .filter(|label| !label.is_empty())
            .collect()
    }

    /// The child whose label starts with `prefix`.
    pub fn child(&self, prefix: &str) -> Option<&MenuNode> {
        self.children
            .iter()
            .find(|child| child.label.starts_with(prefix))
    }
}

type RawNode = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

fn menu_node(raw: RawNode) -> MenuNode {
    let (id, properties, children) = raw;
    let label = properties
        .get("label")
        .and_then(|value| String::try_from(value.clone()).ok())
        .unwrap_or_default();
    let enabled = properties
        .get("enabled")
        .and_then(|value| bool::try_from(value.clone()).ok())
        .unwrap_or(true);
    let children = children
        .into_iter()
        .map(|child| {
            let mut value = Value::from(child);
            while let Value::Value(inner) = value {
                value = *inner;
            }
            let raw = RawNode::try_from(value).expect("a menu entry is (ia{sv}av)");
            menu_node(raw)
        })
        .collect();
    MenuNode {
        id,
        label,
        enabled,
        children,
    }
}

/// The menu of the item at bus name `service`: its `Menu` property, then `GetLayout`
/// of the whole tree.
pub async fn read_menu(connection: &zbus::Connection, service: &str) -> MenuNode {
    let item = zbus::Proxy::new(
        connection,
        service.to_owned(),
        "/StatusNotifierItem",
        "org.kde.StatusNotifierItem",
    )
    .await
    .expect("a proxy for the item");
    let menu_path: zbus::zvariant::OwnedObjectPath =
        item.get_property("Menu").await.expect("the item's Menu");
    let reply = connection
        .call_method(
            Some(service),
            menu_path.as_str(),
            Some("com.canonical.dbusmenu"),
            "GetLayout",
            &(0_i32, -1_i32, Vec::<String>::new()),
        )
        .await
        .expect("GetLayout");
    let (_revision, root): (u32, RawNode) = reply.body().deserialize().expect("a layout");
    menu_node(root)
}

/// What a person does on a menu entry: `Event(id, "clicked", 0, 0)`.
pub async fn click(connection: &zbus::Connection, service: &str, node: &MenuNode) {
    let item = zbus::Proxy::new(
        connection,
        service.to_owned(),
        "/StatusNotifierItem",
        "org.kde.StatusNotifierItem",
    )
    .await
    .expect("a proxy for the item");
    let menu_path: zbus::zvariant::OwnedObjectPath =
        item.get_property("Menu").await.expect("the item's Menu");
    connection
        .call_method(
            Some(service),
            menu_path.as_str(),
            Some("com.canonical.dbusmenu"),
            "Event",
            &(node.id, "clicked", Value::from(0_i32), 0_u32),
        )
        .await
        .expect("Event clicked");
}

/// Whether anyone owns `name` on the bus.
pub async fn has_owner(connection: &zbus::Connection, name: &str) -> bool {
    let proxy = zbus::fdo::DBusProxy::new(connection)
        .await
        .expect("the bus's own proxy");
    let name = zbus::names::BusName::try_from(name.to_owned()).expect("a bus name");
    proxy.name_has_owner(name).await.expect("NameHasOwner")
}
