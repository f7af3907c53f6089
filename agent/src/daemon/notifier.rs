//! Telling the user about windows: desktop notifications, with a log fallback.
//!
//! Every notification names the VM, its ports and what to type next (`jit extend <vm>`
//! while the window is open, `jit connect <vm>` once it closed), because a notification
//! is only useful if it can be acted on without looking anything up. Where the platform
//! has notification buttons (the freedesktop service on Linux and BSD), "ends soon" also
//! carries an "Extend" button: pressing it sends [`DesktopRequest::Extend`] back to the
//! agent, which extends exactly as `jit extend` would. Notification Center and Windows
//! toasts get the text only (notify-rust offers no buttons there).
//!
//! The [`Notifier`] trait is the seam: [`DesktopNotifier`] uses `notify-rust` (D-Bus
//! `org.freedesktop.Notifications` on Linux and BSD, Notification Center on macOS,
//! toasts on Windows); [`RecordingNotifier`] keeps them for tests; [`LogNotifier`] only
//! logs (notifications turned off). The agent always wraps its notifier in
//! [`FallbackNotifier`]: a headless session has no notification service, and that must
//! never stop the agent, so a failure is logged (a warning the first time), written to
//! stderr, and reported in the agent's status.

use std::future::Future;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc;

use super::server::DesktopRequest;

/// Why a window's access ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its end time passed.
    Expired,
    /// Azure shows it revoked or gone (policy changed, another request replaced it with
    /// one the agent does not track, the VM left the policy).
    Revoked,
}

/// What happened to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// The window was opened (registered with the agent).
    Opened,
    /// The window ends within the lead time.
    EndsSoon,
    /// The window is closed.
    Ended(EndReason),
    /// The window was extended from the desktop (the tray or a notification's button).
    Extended,
    /// Extending from the desktop failed; [`Notification::detail`] says why.
    ExtendFailed,
    /// The ssh command for the window, shown because it could not be put on the
    /// clipboard; [`Notification::detail`] holds it.
    SshCommand,
}

/// A button on a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationAction {
    /// Extend the window by the policy maximum.
    Extend,
}

impl NotificationAction {
    /// The action's key on the freedesktop notification service.
    pub fn key(self) -> &'static str {
        match self {
            NotificationAction::Extend => "extend",
        }
    }

    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            NotificationAction::Extend => "Extend",
        }
    }
}

/// One notification about one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What happened.
    pub kind: NotificationKind,
    /// The VM's resource id (what a button's request names).
    pub vm_id: String,
    /// The VM's name.
    pub vm_name: String,
    /// The VM's resource group.
    pub resource_group: String,
    /// How to name the VM on the command line (its name, or `group/name` when the name
    /// is ambiguous among the tracked windows).
    pub vm_reference: String,
    /// The ports of the window.
    pub ports: Vec<u16>,
    /// When the window ends, converted to the local clock.
    pub ends_at_local: Timestamp,
    /// Time left when the notification was made (zero once ended).
    pub time_left: SignedDuration,
    /// The buttons it offers, where the platform shows buttons.
    pub actions: Vec<NotificationAction>,
    /// Extra text: why an extension failed, the ssh command.
    pub detail: Option<String>,
}

impl Notification {
    /// The one-line headline.
    pub fn summary(&self) -> String {
        let vm = &self.vm_name;
        match self.kind {
            NotificationKind::Opened => format!("{vm}: {} open", self.ports_text()),
            NotificationKind::EndsSoon => {
                format!("{vm}: access ends in {}", human_duration(self.time_left))
            }
            NotificationKind::Ended(_) => format!("{vm}: access ended"),
            NotificationKind::Extended => format!("{vm}: access extended"),
            NotificationKind::ExtendFailed => format!("{vm}: could not extend"),
            NotificationKind::SshCommand => format!("{vm}: ssh command"),
        }
    }

    /// The details: which VM and ports, until when, and what to type next.
    pub fn body(&self) -> String {
        let ports = self.ports_text();
        let vm = &self.vm_name;
        let group = &self.resource_group;
        let reference = &self.vm_reference;
        let until = local_clock_time(self.ends_at_local);
        match self.kind {
            NotificationKind::Opened => format!(
                "{ports} on {vm} ({group}) open until {until} ({} left). Extend: jit extend {reference}",
                human_duration(self.time_left)
            ),
            NotificationKind::EndsSoon => format!(
                "{ports} on {vm} ({group}) closes at {until}. Extend: jit extend {reference}"
            ),
            NotificationKind::Ended(reason) => {
                let why = match reason {
                    EndReason::Expired => "closed",
                    EndReason::Revoked => "closed (revoked in Azure)",
                };
                format!(
                    "{ports} on {vm} ({group}) {why}; new connections will fail. Open again: jit connect {reference}"
                )
            }
            NotificationKind::Extended => format!(
                "{ports} on {vm} ({group}) open until {until} ({} left).",
                human_duration(self.time_left)
            ),
            NotificationKind::ExtendFailed => format!(
                "{}. {ports} on {vm} ({group}) still closes at {until}. Try: jit extend {reference}",
                self.detail
                    .as_deref()
                    .unwrap_or("the agent could not extend the window")
            ),
            NotificationKind::SshCommand => format!(
                "{} (the clipboard is not available, so here it is)",
                self.detail.as_deref().unwrap_or_default()
            ),
        }
    }

    fn ports_text(&self) -> String {
        let numbers: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        match numbers.as_slice() {
            [one] => format!("port {one}"),
            _ => format!("ports {}", numbers.join(", ")),
        }
    }
}

/// `5 min`, `2 h 5 min`, `40 s`: short, for a notification.
pub fn human_duration(duration: SignedDuration) -> String {
    let seconds = duration.as_secs().max(0);
    if seconds < 60 {
        return format!("{seconds} s");
    }
    let minutes = (seconds + 30) / 60;
    match (minutes / 60, minutes % 60) {
        (0, minutes) => format!("{minutes} min"),
        (hours, 0) => format!("{hours} h"),
        (hours, minutes) => format!("{hours} h {minutes} min"),
    }
}

/// `HH:MM` in the system's time zone.
fn local_clock_time(instant: Timestamp) -> String {
    instant
        .to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%H:%M")
        .to_string()
}

/// Why a notification could not be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not show a desktop notification: {0}")]
pub struct NotifyError(pub String);

/// Where a notification's buttons send what the user picked.
pub type RequestSender = mpsc::UnboundedSender<DesktopRequest>;

/// Shows notifications somewhere the user will see them.
pub trait Notifier: Send + Sync + 'static {
    /// Shows one notification.
    fn notify(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send;

    /// Shows one notification with its buttons ([`Notification::actions`]); a pressed
    /// button is sent to `requests`. Notifiers without buttons show the text only (the
    /// default).
    fn notify_with_actions(
        &self,
        notification: &Notification,
        requests: &RequestSender,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send {
        let _ = requests;
        self.notify(notification)
    }
}

/// Desktop notifications through `notify-rust`, as the app "jit" (see
/// `desktop_notification`).
#[derive(Debug, Clone)]
pub struct DesktopNotifier {
    app_name: String,
    expire_after: Duration,
}

impl Default for DesktopNotifier {
    fn default() -> Self {
        Self {
            app_name: "jit".to_owned(),
            expire_after: Duration::from_secs(30),
        }
    }
}

impl DesktopNotifier {
    fn message<'a>(
        &'a self,
        notification: &Notification,
    ) -> super::desktop_notification::DesktopMessage<'a> {
        super::desktop_notification::DesktopMessage {
            app_name: &self.app_name,
            summary: notification.summary(),
            body: notification.body(),
            expire_after: self.expire_after,
        }
    }
}

impl Notifier for DesktopNotifier {
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError> {
        super::desktop_notification::show(self.message(notification))
            .await
            .map_err(NotifyError)
    }

    #[cfg(all(feature = "desktop-notifications", unix, not(target_os = "macos")))]
    async fn notify_with_actions(
        &self,
        notification: &Notification,
        requests: &RequestSender,
    ) -> Result<(), NotifyError> {
        if notification.actions.is_empty() {
            return self.notify(notification).await;
        }
        let buttons: Vec<(&str, &str)> = notification
            .actions
            .iter()
            .map(|action| (action.key(), action.label()))
            .collect();
        // Wait for a button at most until the window ends (after that, extending is
        // `jit connect`'s business). The wait ends early when the notification is closed.
        let longest_wait = Duration::try_from(notification.time_left).unwrap_or(Duration::ZERO);
        let pressed = super::desktop_notification::show_with_buttons(
            self.message(notification),
            &buttons,
            longest_wait,
        )
        .await
        .map_err(NotifyError)?;
        let vm_id = notification.vm_id.clone();
        let requests = requests.clone();
        tokio::spawn(async move {
            match pressed.await {
                Ok(key) if key == NotificationAction::Extend.key() => {
                    tracing::info!(vm = %vm_id, "\"Extend\" pressed on a notification");
                    let _ = requests.send(DesktopRequest::Extend { vm_id });
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::debug!(vm = %vm_id, "no notification button was pressed before the window ended");
                }
            }
        });
        Ok(())
    }
}

/// Logs notifications and shows nothing (notifications turned off).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError> {
        tracing::info!(summary = %notification.summary(), body = %notification.body(), "notification");
        Ok(())
    }
}

/// Keeps every notification, for tests; [`RecordingNotifier::wait_for`] awaits one.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    sent: Mutex<Vec<Notification>>,
    arrived: tokio::sync::Notify,
}

impl RecordingNotifier {
    /// Every notification so far, oldest first.
    pub fn recorded(&self) -> Vec<Notification> {
        self.sent
            .lock()
            .map(|sent| sent.clone())
            .unwrap_or_default()
    }

    /// Waits up to `timeout` for a notification matching `wanted` (also one that was
    /// recorded before the call).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        wanted: impl Fn(&Notification) -> bool,
    ) -> Option<Notification> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(found) = self.recorded().into_iter().find(|n| wanted(n)) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

impl Notifier for RecordingNotifier {
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(notification.clone());
        }
        self.arrived.notify_waiters();
        Ok(())
    }
}

impl<N: Notifier> Notifier for std::sync::Arc<N> {
    fn notify(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send {
        N::notify(self, notification)
    }

    fn notify_with_actions(
        &self,
        notification: &Notification,
        requests: &RequestSender,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send {
        N::notify_with_actions(self, notification, requests)
    }
}

/// Wraps a notifier so that a failure never propagates: it is logged (a warning the
/// first time, debug afterwards), the notification goes to stderr instead, and the
/// latest problem is kept for the agent's status.
#[derive(Debug)]
pub struct FallbackNotifier<N> {
    primary: N,
    requests: Option<RequestSender>,
    warned: AtomicBool,
    problem: Mutex<Option<String>>,
}

impl<N: Notifier> FallbackNotifier<N> {
    /// Wraps `primary`; its notifications show no buttons.
    pub fn new(primary: N) -> Self {
        Self {
            primary,
            requests: None,
            warned: AtomicBool::new(false),
            problem: Mutex::new(None),
        }
    }

    /// Wraps `primary`, whose notification buttons send what was pressed to `requests`.
    pub fn with_requests(primary: N, requests: RequestSender) -> Self {
        Self {
            requests: Some(requests),
            ..Self::new(primary)
        }
    }

    /// Why the last notification fell back, if it did.
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().ok().and_then(|problem| problem.clone())
    }

    /// Shows `notification`, falling back to the log and stderr on failure.
    pub async fn notify(&self, notification: &Notification) {
        let shown = match &self.requests {
            Some(requests) if !notification.actions.is_empty() => {
                self.primary
                    .notify_with_actions(notification, requests)
                    .await
            }
            _ => self.primary.notify(notification).await,
        };
        match shown {
            Ok(()) => {
                if let Ok(mut problem) = self.problem.lock() {
                    *problem = None;
                }
            }
            Err(error) => {
                if self.warned.swap(true, Ordering::Relaxed) {
                    tracing::debug!(%error, "desktop notification failed again");
                } else {
                    tracing::warn!(
                        %error,
                        "desktop notifications are not available; notifications go to the log and stderr"
                    );
                }
                tracing::info!(summary = %notification.summary(), body = %notification.body(), "notification");
                // Stderr is the terminal or journal when the agent runs in the foreground,
                // and /dev/null when it was started in the background: ignore failures.
                let _ = writeln!(
                    std::io::stderr(),
                    "jit: {}: {}",
                    notification.summary(),
                    notification.body()
                );
                if let Ok(mut problem) = self.problem.lock() {
                    *problem = Some(error.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(kind: NotificationKind, ports: Vec<u16>) -> Notification {
        Notification {
            kind,
            vm_id: "/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/api-01".into(),
            vm_name: "api-01".into(),
            resource_group: "rg-web".into(),
            vm_reference: "api-01".into(),
            ports,
            ends_at_local: Timestamp::UNIX_EPOCH,
            time_left: SignedDuration::from_secs(299),
            actions: Vec::new(),
            detail: None,
        }
    }

    #[test]
    fn texts_name_the_vm_ports_and_next_command() {
        let soon = notification(NotificationKind::EndsSoon, vec![22]);
        assert_eq!(soon.summary(), "api-01: access ends in 5 min");
        assert!(
            soon.body()
                .starts_with("port 22 on api-01 (rg-web) closes at ")
        );
        assert!(soon.body().ends_with("Extend: jit extend api-01"));

        let ended = notification(
            NotificationKind::Ended(EndReason::Expired),
            vec![3389, 5985],
        );
        assert_eq!(ended.summary(), "api-01: access ended");
        assert!(ended.body().contains("ports 3389, 5985 on api-01"));
        assert!(ended.body().ends_with("jit connect api-01"));

        let opened = notification(NotificationKind::Opened, vec![22]);
        assert_eq!(opened.summary(), "api-01: port 22 open");
        assert!(opened.body().contains("(5 min left)"), "{}", opened.body());
    }

    #[test]
    fn desktop_outcomes_say_what_happened() {
        let extended = notification(NotificationKind::Extended, vec![22]);
        assert_eq!(extended.summary(), "api-01: access extended");
        assert!(
            extended
                .body()
                .starts_with("port 22 on api-01 (rg-web) open until "),
            "{}",
            extended.body()
        );
        assert!(
            extended.body().ends_with("(5 min left)."),
            "{}",
            extended.body()
        );

        let mut failed = notification(NotificationKind::ExtendFailed, vec![22]);
        failed.detail = Some("the policy no longer covers port 22".into());
        assert_eq!(failed.summary(), "api-01: could not extend");
        assert!(
            failed.body().starts_with(
                "the policy no longer covers port 22. port 22 on api-01 (rg-web) still closes at "
            ),
            "{}",
            failed.body()
        );
        assert!(failed.body().ends_with("Try: jit extend api-01"));

        let mut command = notification(NotificationKind::SshCommand, vec![22]);
        command.detail = Some("ssh -p 22 20.1.2.3".into());
        assert_eq!(command.summary(), "api-01: ssh command");
        assert_eq!(
            command.body(),
            "ssh -p 22 20.1.2.3 (the clipboard is not available, so here it is)"
        );
        assert_eq!(NotificationAction::Extend.key(), "extend");
        assert_eq!(NotificationAction::Extend.label(), "Extend");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(human_duration(SignedDuration::from_secs(40)), "40 s");
        assert_eq!(human_duration(SignedDuration::from_secs(-5)), "0 s");
        assert_eq!(human_duration(SignedDuration::from_mins(180)), "3 h");
        assert_eq!(human_duration(SignedDuration::from_mins(125)), "2 h 5 min");
    }

    struct Failing;
    impl Notifier for Failing {
        async fn notify(&self, _: &Notification) -> Result<(), NotifyError> {
            Err(NotifyError("no session bus".into()))
        }
    }

    #[tokio::test]
    async fn a_failing_notifier_falls_back_and_reports() {
        let fallback = FallbackNotifier::new(Failing);
        fallback
            .notify(&notification(NotificationKind::Opened, vec![22]))
            .await;
        assert_eq!(
            fallback.problem().as_deref(),
            Some("could not show a desktop notification: no session bus")
        );
    }

    #[tokio::test]
    async fn recorded_notifications_can_be_awaited() {
        let recorder = std::sync::Arc::new(RecordingNotifier::default());
        let sender = std::sync::Arc::clone(&recorder);
        tokio::spawn(async move {
            let _ = sender
                .notify(&notification(NotificationKind::EndsSoon, vec![22]))
                .await;
        });
        let found = recorder
            .wait_for(Duration::from_secs(10), |n| {
                n.kind == NotificationKind::EndsSoon
            })
            .await;
        assert!(found.is_some());
        let missing = recorder
            .wait_for(Duration::from_millis(50), |n| {
                n.kind == NotificationKind::Opened
            })
            .await;
        assert!(missing.is_none());
    }
}
