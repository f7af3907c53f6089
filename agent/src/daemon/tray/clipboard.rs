//! "Copy ssh command": the system clipboard through `arboard` (X11 on Linux, also under
//! XWayland; the Windows clipboard). Elsewhere there is no tray to copy from.
//!
//! On X11 the copying program serves the text itself until another program takes the
//! clipboard, so the clipboard handle is kept while the tray is shown and dropped with
//! it. A session without a display (a server, the tests) has no clipboard: the caller
//! then shows the command in a notification instead.

use std::sync::{Arc, Mutex};

/// The clipboard, opened on first use.
#[derive(Default)]
pub(super) struct Clipboard {
    #[cfg(any(target_os = "linux", windows))]
    held: Arc<Mutex<Option<arboard::Clipboard>>>,
    #[cfg(not(any(target_os = "linux", windows)))]
    held: Arc<Mutex<Option<()>>>,
}

impl std::fmt::Debug for Clipboard {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Clipboard").finish_non_exhaustive()
    }
}

impl Clipboard {
    /// Puts `text` on the clipboard; `Err` says why it could not.
    pub(super) async fn copy(&self, text: String) -> Result<(), String> {
        let held = Arc::clone(&self.held);
        match tokio::task::spawn_blocking(move || copy_blocking(&held, &text)).await {
            Ok(result) => result,
            Err(error) => Err(format!("the clipboard task failed: {error}")),
        }
    }

    /// Lets go of the clipboard (the tray is gone).
    pub(super) fn release(&self) {
        if let Ok(mut held) = self.held.lock() {
            *held = None;
        }
    }
}

#[cfg(any(target_os = "linux", windows))]
fn copy_blocking(held: &Mutex<Option<arboard::Clipboard>>, text: &str) -> Result<(), String> {
    let mut held = held
        .lock()
        .map_err(|_| "the clipboard is unusable after an earlier failure".to_owned())?;
    let clipboard = match held.as_mut() {
        Some(clipboard) => clipboard,
        None => held.insert(arboard::Clipboard::new().map_err(|error| error.to_string())?),
    };
    clipboard.set_text(text).map_err(|error| error.to_string())
}

#[cfg(not(any(target_os = "linux", windows)))]
fn copy_blocking(_held: &Mutex<Option<()>>, _text: &str) -> Result<(), String> {
    Err("the agent has no clipboard support on this system".to_owned())
}
