//! Telling the user about windows: desktop notifications, with a log fallback.
//!
//! Every notification names the VM, its ports and what to type next (`jit extend <vm>`
//! while the window is open, `jit connect <vm>` once it closed), because a notification
//! is only useful if it can be acted on without looking anything up.
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
}

/// One notification about one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What happened.
    pub kind: NotificationKind,
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

/// Shows notifications somewhere the user will see them.
pub trait Notifier: Send + Sync + 'static {
    /// Shows one notification.
    fn notify(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send;
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

impl Notifier for DesktopNotifier {
    async fn notify(&self, notification: &Notification) -> Result<(), NotifyError> {
        super::desktop_notification::show(super::desktop_notification::DesktopMessage {
            app_name: &self.app_name,
            summary: notification.summary(),
            body: notification.body(),
            expire_after: self.expire_after,
        })
        .await
        .map_err(NotifyError)
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
}

/// Wraps a notifier so that a failure never propagates: it is logged (a warning the
/// first time, debug afterwards), the notification goes to stderr instead, and the
/// latest problem is kept for the agent's status.
#[derive(Debug)]
pub struct FallbackNotifier<N> {
    primary: N,
    warned: AtomicBool,
    problem: Mutex<Option<String>>,
}

impl<N: Notifier> FallbackNotifier<N> {
    /// Wraps `primary`.
    pub fn new(primary: N) -> Self {
        Self {
            primary,
            warned: AtomicBool::new(false),
            problem: Mutex::new(None),
        }
    }

    /// Why the last notification fell back, if it did.
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().ok().and_then(|problem| problem.clone())
    }

    /// Shows `notification`, falling back to the log and stderr on failure.
    pub async fn notify(&self, notification: &Notification) {
        match self.primary.notify(notification).await {
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
            vm_name: "api-01".into(),
            resource_group: "rg-web".into(),
            vm_reference: "api-01".into(),
            ports,
            ends_at_local: Timestamp::UNIX_EPOCH,
            time_left: SignedDuration::from_secs(299),
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
