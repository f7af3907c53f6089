//! The tray: while any access window is open, an icon whose menu lists each window (VM,
//! ports, time left, refreshed every minute) with "Extend by the policy maximum", "Copy
//! ssh command" and "End tracking", and a "Quit agent" item.
//!
//! It is only a presentation of the agent's state. The server publishes its window list
//! on a `watch` channel whenever the list changes; the presenter here turns it into a
//! [`TrayMenu`] and hands that to the platform's backend. What the user picks comes back
//! as a [`MenuChoice`] and goes to the server as a [`DesktopRequest`], which the server
//! carries out with the same operations as its socket requests (extend: the backend's
//! `extend` by the policy maximum; end tracking: forget the window; quit: shut down).
//! Only "Copy ssh command" is handled here, as it needs nothing from the agent.
//!
//! With no window open there is no icon and no timer: the presenter then only waits on
//! the channel, so an agent at rest never wakes up for the tray. When there is nothing
//! to show an icon in (no StatusNotifierWatcher or no session bus on Linux), the agent
//! goes on without one and says so once in its log; it tries again the next time a
//! window opens after all had closed, silently.
//!
//! Backends: `status_notifier` on Linux and BSD (ksni), `system_tray` on Windows
//! (tray-icon, on a thread of its own that runs the Win32 message loop). macOS has none
//! yet: AppKit wants the status item on the main thread, which the agent's async
//! runtime occupies.

mod clipboard;
#[cfg(any(all(unix, not(target_os = "macos")), windows))]
mod icon;
pub mod menu;

#[cfg(all(unix, not(target_os = "macos")))]
mod status_notifier;
#[cfg(all(unix, not(target_os = "macos")))]
use status_notifier as platform;

#[cfg(windows)]
mod system_tray;
#[cfg(windows)]
use system_tray as platform;

#[cfg(not(any(all(unix, not(target_os = "macos")), windows)))]
mod platform {
    //! No tray here yet. On macOS a status item must be created and served on the main
    //! thread, which runs AppKit's event loop; the agent's main thread runs its async
    //! runtime instead, so the tray waits for a main-thread host (see docs/agent.md).
    use tokio::sync::mpsc;

    use super::menu::{MenuChoice, TrayMenu};

    #[derive(Debug)]
    pub(super) struct Backend;

    impl Backend {
        pub(super) fn new(_choices: mpsc::UnboundedSender<MenuChoice>) -> Self {
            Self
        }

        pub(super) async fn show(&mut self, _menu: &TrayMenu) -> Result<(), String> {
            Err(if cfg!(target_os = "macos") {
                "the agent has no menu-bar icon on macOS yet".to_owned()
            } else {
                "the agent has no tray on this system".to_owned()
            })
        }

        pub(super) async fn hide(&mut self) {}
    }
}

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use self::clipboard::Clipboard;
pub use self::menu::{MenuChoice, TrayMenu, WindowEntry};
use super::notifier::{Notification, NotificationKind};
use super::protocol::WindowList;
use super::server::DesktopRequest;

/// How often the time left is redrawn while the icon is shown.
const MENU_REFRESH: Duration = Duration::from_secs(60);

/// How long removing the icon may take when the agent stops.
const HIDE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the presenter needs from the agent: channels only.
#[derive(Debug)]
pub(crate) struct TrayLink {
    /// The windows, republished on every change.
    pub(crate) windows: watch::Receiver<WindowList>,
    /// Where the user's choices go.
    pub(crate) requests: mpsc::UnboundedSender<DesktopRequest>,
    /// The agent's notification queue (for the ssh command when there is no clipboard).
    pub(crate) notifications: mpsc::UnboundedSender<Notification>,
    /// Becomes `true` when the agent stops.
    pub(crate) stopping: watch::Receiver<bool>,
}

/// Presents the windows in the tray until the agent stops.
pub(crate) async fn run(link: TrayLink) {
    let TrayLink {
        mut windows,
        requests,
        notifications,
        mut stopping,
    } = link;
    let (choice_sender, mut choices) = mpsc::unbounded_channel();
    let mut backend = platform::Backend::new(choice_sender);
    let mut presenter = Presenter {
        clipboard: Clipboard::default(),
        requests,
        notifications,
        said_no_tray: false,
        said_no_clipboard: false,
    };
    let mut list = windows.borrow_and_update().clone();
    let mut published_at = Instant::now();
    // What the icon shows now (`None`: no icon).
    let mut shown: Option<TrayMenu> = None;
    // No tray could be had for this stretch of open windows.
    let mut unavailable = false;
    loop {
        if list.windows.is_empty() {
            if shown.take().is_some() {
                backend.hide().await;
                presenter.clipboard.release();
            }
            unavailable = false;
        } else if !unavailable {
            let menu = TrayMenu::build(&list, since(published_at));
            if shown.as_ref() != Some(&menu) {
                match backend.show(&menu).await {
                    Ok(()) => shown = Some(menu),
                    Err(reason) => {
                        shown = None;
                        unavailable = true;
                        presenter.no_tray(&reason);
                    }
                }
            }
        }
        let ticking = shown.is_some();
        tokio::select! {
            changed = windows.changed() => {
                if changed.is_err() {
                    break;
                }
                list = windows.borrow_and_update().clone();
                published_at = Instant::now();
            }
            Some(choice) = choices.recv() => {
                presenter.chosen(choice, shown.as_ref(), &list, published_at).await;
            }
            () = tokio::time::sleep(MENU_REFRESH), if ticking => {}
            () = stopped(&mut stopping) => break,
        }
    }
    if shown.is_some() {
        let _ = tokio::time::timeout(HIDE_TIMEOUT, backend.hide()).await;
    }
}

/// The presenter's dealings with the agent and the clipboard.
struct Presenter {
    clipboard: Clipboard,
    requests: mpsc::UnboundedSender<DesktopRequest>,
    notifications: mpsc::UnboundedSender<Notification>,
    said_no_tray: bool,
    said_no_clipboard: bool,
}

impl Presenter {
    fn no_tray(&mut self, reason: &str) {
        if self.said_no_tray {
            tracing::debug!(%reason, "still no tray");
        } else {
            self.said_no_tray = true;
            tracing::warn!(%reason, "the agent runs without a tray icon");
        }
    }

    async fn chosen(
        &mut self,
        choice: MenuChoice,
        shown: Option<&TrayMenu>,
        list: &WindowList,
        published_at: Instant,
    ) {
        tracing::debug!(?choice, "tray menu item chosen");
        let request = match choice {
            MenuChoice::Extend { vm_id } => DesktopRequest::Extend { vm_id },
            MenuChoice::EndTracking { vm_id } => DesktopRequest::EndTracking { vm_id },
            MenuChoice::Quit => DesktopRequest::Quit,
            MenuChoice::CopySshCommand { vm_id } => {
                let command = shown
                    .and_then(|menu| menu.window(&vm_id))
                    .and_then(|entry| entry.ssh_command.clone());
                if let Some(command) = command {
                    self.copy_ssh_command(&vm_id, command, list, published_at)
                        .await;
                }
                return;
            }
        };
        let _ = self.requests.send(request);
    }

    /// Copies the command, or shows it in a notification when there is no clipboard.
    async fn copy_ssh_command(
        &mut self,
        vm_id: &str,
        command: String,
        list: &WindowList,
        published_at: Instant,
    ) {
        let reason = match self.clipboard.copy(command.clone()).await {
            Ok(()) => {
                tracing::info!(vm = %vm_id, "ssh command copied to the clipboard");
                return;
            }
            Err(reason) => reason,
        };
        if self.said_no_clipboard {
            tracing::debug!(%reason, "still no clipboard");
        } else {
            self.said_no_clipboard = true;
            tracing::warn!(%reason, "no clipboard: the ssh command is shown in a notification instead");
        }
        if let Some(notification) = ssh_command_notification(list, vm_id, command, published_at) {
            let _ = self.notifications.send(notification);
        }
    }
}

/// The "here is the ssh command" notification for `vm_id`.
fn ssh_command_notification(
    list: &WindowList,
    vm_id: &str,
    command: String,
    published_at: Instant,
) -> Option<Notification> {
    let view = list
        .windows
        .iter()
        .find(|view| view.window.vm_id.eq_ignore_ascii_case(vm_id))?;
    let window = &view.window;
    let elapsed = since(published_at);
    // Azure's clock minus ours, as it was when the list was made.
    let local_then = Timestamp::now()
        .checked_sub(elapsed)
        .unwrap_or_else(|_| Timestamp::now());
    let offset = list.azure_now.duration_since(local_then);
    Some(Notification {
        kind: NotificationKind::SshCommand,
        vm_id: window.vm_id.clone(),
        vm_name: window.vm_name.clone(),
        resource_group: window.resource_group.clone(),
        vm_reference: format!("{}/{}", window.resource_group, window.vm_name),
        ports: window.port_numbers(),
        ends_at_local: window.ends_at.checked_sub(offset).unwrap_or(window.ends_at),
        time_left: view
            .time_left
            .checked_sub(elapsed)
            .unwrap_or(SignedDuration::ZERO)
            .max(SignedDuration::ZERO),
        actions: Vec::new(),
        detail: Some(command),
    })
}

fn since(instant: Instant) -> SignedDuration {
    SignedDuration::try_from(instant.elapsed()).unwrap_or(SignedDuration::MAX)
}

/// Completes once the agent is stopping (or the sender is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stopping| *stopping).await;
}
