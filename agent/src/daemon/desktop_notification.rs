//! The only code that talks to the desktop's notification service, through `notify-rust`:
//! D-Bus on Linux and BSD, Notification Center on macOS, toasts on Windows.
//!
//! It sits behind the `desktop-notifications` feature (on by default) because on macOS
//! `notify-rust` compiles Objective-C against Apple's SDK, which only a Mac has:
//! `packaging/check-macos` checks everything else for macOS from Linux with the feature
//! off. Without the feature every notification fails with that reason, and the agent's
//! fallback writes it to its log instead, as on a machine with no notification service.

use std::time::Duration;

/// One desktop notification.
#[cfg_attr(not(feature = "desktop-notifications"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct DesktopMessage<'a> {
    /// The application it is shown as.
    pub(crate) app_name: &'a str,
    /// The title line.
    pub(crate) summary: String,
    /// The text.
    pub(crate) body: String,
    /// How long it stays up where the service honours that.
    pub(crate) expire_after: Duration,
}

/// Shows `message`; the error is the notification service's reason.
#[cfg(feature = "desktop-notifications")]
pub(crate) async fn show(message: DesktopMessage<'_>) -> Result<(), String> {
    show_built(build(&message)).await
}

#[cfg(feature = "desktop-notifications")]
fn build(message: &DesktopMessage<'_>) -> notify_rust::Notification {
    let mut desktop = notify_rust::Notification::new();
    desktop
        .appname(message.app_name)
        .summary(&message.summary)
        .body(&message.body)
        .timeout(notify_rust::Timeout::Milliseconds(
            u32::try_from(message.expire_after.as_millis()).unwrap_or(u32::MAX),
        ));
    desktop
}

/// Shows `message` with `buttons` (key, label). The answer carries the key of the
/// button pressed within `longest_wait`; it is dropped unanswered when the notification
/// is closed or the time runs out. Only the freedesktop service has buttons here.
#[cfg(all(feature = "desktop-notifications", unix, not(target_os = "macos")))]
pub(crate) async fn show_with_buttons(
    message: DesktopMessage<'_>,
    buttons: &[(&str, &str)],
    longest_wait: Duration,
) -> Result<tokio::sync::oneshot::Receiver<String>, String> {
    let mut desktop = build(&message);
    for (key, label) in buttons {
        desktop.action(key, label);
    }
    let handle = desktop
        .show_async()
        .await
        .map_err(|error| error.to_string())?;
    let (answer, pressed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            longest_wait,
            handle.wait_for_action_async(|response| {
                if let notify_rust::NotificationResponse::Action(key) = response {
                    let _ = answer.send(key.clone());
                }
            }),
        )
        .await;
    });
    Ok(pressed)
}

/// Shows nothing: this build has no desktop notifications.
#[cfg(not(feature = "desktop-notifications"))]
pub(crate) async fn show(_message: DesktopMessage<'_>) -> Result<(), String> {
    Err(
        "this build has no desktop notifications (the desktop-notifications feature is off)"
            .to_owned(),
    )
}

#[cfg(all(feature = "desktop-notifications", unix, not(target_os = "macos")))]
async fn show_built(desktop: notify_rust::Notification) -> Result<(), String> {
    desktop
        .show_async()
        .await
        .map(|_handle| ())
        .map_err(|error| error.to_string())
}

#[cfg(all(feature = "desktop-notifications", any(target_os = "macos", windows)))]
async fn show_built(desktop: notify_rust::Notification) -> Result<(), String> {
    // Only the blocking API exists here; keep it off the async threads.
    match tokio::task::spawn_blocking(move || desktop.show().map(|_handle| ())).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    }
}
