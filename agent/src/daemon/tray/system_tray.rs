//! The tray on Windows: a notification-area icon through `tray-icon` (tauri's), whose
//! menu is `muda`'s.
//!
//! The icon, its hidden window and its menus belong to the thread that created them,
//! and that thread must pump Win32 messages for clicks to arrive. So the icon lives on a
//! thread of its own, started when the first window opens and ended (icon removed) when
//! the last one closes: at rest there is no thread. The presenter talks to it through a
//! channel and wakes it with a thread message; menu clicks come back through muda's
//! event handler, which runs on that thread while it dispatches messages.

use std::sync::mpsc as std_mpsc;

use tokio::sync::{mpsc, oneshot};
use tray_icon::menu::{Menu, MenuEvent, MenuId, MenuItem, PredefinedMenuItem, Submenu};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

use super::icon;
use super::menu::{
    COPY_SSH_LABEL, END_TRACKING_LABEL, EXTEND_LABEL, MenuChoice, QUIT_LABEL, TrayMenu,
};

/// What the presenter asks of the icon's thread.
enum UiCommand {
    Show(TrayMenu, oneshot::Sender<Result<(), String>>),
}

/// The icon's thread, while the icon is shown.
struct UiThread {
    commands: std_mpsc::Sender<UiCommand>,
    waker: message_loop::Waker,
    thread: std::thread::JoinHandle<()>,
}

/// The notification-area icon, present while shown.
pub(super) struct Backend {
    choices: mpsc::UnboundedSender<MenuChoice>,
    ui: Option<UiThread>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Backend")
            .field("shown", &self.ui.is_some())
            .finish()
    }
}

impl Backend {
    pub(super) fn new(choices: mpsc::UnboundedSender<MenuChoice>) -> Self {
        Self { choices, ui: None }
    }

    /// Shows `menu`, starting the icon's thread if needed.
    pub(super) async fn show(&mut self, menu: &TrayMenu) -> Result<(), String> {
        if self.ui.as_ref().is_some_and(|ui| ui.thread.is_finished()) {
            self.ui = None;
        }
        let ui = match self.ui.take() {
            Some(ui) => ui,
            None => start(self.choices.clone()).await?,
        };
        let (reply, answer) = oneshot::channel();
        let sent = ui
            .commands
            .send(UiCommand::Show(menu.clone(), reply))
            .is_ok()
            && ui.waker.wake();
        self.ui = Some(ui);
        if !sent {
            return Err("the tray icon's thread ended".to_owned());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("the tray icon's thread ended".to_owned()))
    }

    /// Removes the icon and ends its thread.
    pub(super) async fn hide(&mut self) {
        if let Some(ui) = self.ui.take() {
            ui.waker.quit();
            let _ = tokio::task::spawn_blocking(move || ui.thread.join()).await;
            tracing::info!("tray icon removed");
        }
    }
}

/// Starts the icon's thread and waits until the icon exists.
async fn start(choices: mpsc::UnboundedSender<MenuChoice>) -> Result<UiThread, String> {
    let (commands, received) = std_mpsc::channel();
    let (started, ready) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("jit-tray".to_owned())
        .spawn(move || run_icon(&received, started, choices))
        .map_err(|error| format!("cannot start the tray icon's thread: {error}"))?;
    match ready.await {
        Ok(Ok(waker)) => {
            tracing::info!("tray icon shown");
            Ok(UiThread {
                commands,
                waker,
                thread,
            })
        }
        Ok(Err(reason)) => {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            Err(reason)
        }
        Err(_) => Err("the tray icon's thread ended while starting".to_owned()),
    }
}

/// The icon's thread: creates the icon, then pumps messages until told to quit.
fn run_icon(
    commands: &std_mpsc::Receiver<UiCommand>,
    started: oneshot::Sender<Result<message_loop::Waker, String>>,
    choices: mpsc::UnboundedSender<MenuChoice>,
) {
    MenuEvent::set_event_handler(Some(move |event: MenuEvent| {
        if let Some(choice) = choice_of(&event.id) {
            let _ = choices.send(choice);
        }
    }));
    let created = Icon::from_rgba(icon::rgba(), icon::SIZE, icon::SIZE)
        .map_err(|error| error.to_string())
        .and_then(|image| {
            TrayIconBuilder::new()
                .with_icon(image)
                .with_tooltip("jit")
                .with_menu_on_left_click(true)
                .build()
                .map_err(|error| format!("cannot create the tray icon: {error}"))
        });
    let tray = match created {
        Ok(tray) => tray,
        Err(reason) => {
            let _ = started.send(Err(reason));
            MenuEvent::set_event_handler(None::<fn(MenuEvent)>);
            return;
        }
    };
    if started.send(Ok(message_loop::Waker::current())).is_err() {
        MenuEvent::set_event_handler(None::<fn(MenuEvent)>);
        return;
    }
    message_loop::run(|| {
        while let Ok(command) = commands.try_recv() {
            match command {
                UiCommand::Show(menu, reply) => {
                    let _ = reply.send(apply(&tray, &menu));
                }
            }
        }
    });
    MenuEvent::set_event_handler(None::<fn(MenuEvent)>);
    drop(tray);
}

/// Puts `menu` on the icon.
fn apply(tray: &TrayIcon, menu: &TrayMenu) -> Result<(), String> {
    let failed = |error: tray_icon::menu::Error| format!("cannot build the tray menu: {error}");
    let root = Menu::new();
    for entry in &menu.windows {
        let submenu = Submenu::new(escape(&entry.label), true);
        let extend = MenuItem::with_id(
            id_of(&MenuChoice::Extend {
                vm_id: entry.vm_id.clone(),
            }),
            EXTEND_LABEL,
            true,
            None,
        );
        let copy = MenuItem::with_id(
            id_of(&MenuChoice::CopySshCommand {
                vm_id: entry.vm_id.clone(),
            }),
            COPY_SSH_LABEL,
            entry.ssh_command.is_some(),
            None,
        );
        let end = MenuItem::with_id(
            id_of(&MenuChoice::EndTracking {
                vm_id: entry.vm_id.clone(),
            }),
            END_TRACKING_LABEL,
            true,
            None,
        );
        submenu.append(&extend).map_err(failed)?;
        submenu.append(&copy).map_err(failed)?;
        submenu.append(&end).map_err(failed)?;
        root.append(&submenu).map_err(failed)?;
    }
    root.append(&PredefinedMenuItem::separator())
        .map_err(failed)?;
    root.append(&MenuItem::with_id(
        id_of(&MenuChoice::Quit),
        QUIT_LABEL,
        true,
        None,
    ))
    .map_err(failed)?;
    tray.set_menu(Some(Box::new(root)));
    tray.set_tooltip(Some(&menu.tooltip))
        .map_err(|error| format!("cannot set the tray tooltip: {error}"))
}

/// Menu item ids carry the choice: `extend|<vm id>`, `quit`.
fn id_of(choice: &MenuChoice) -> MenuId {
    MenuId::new(match choice {
        MenuChoice::Extend { vm_id } => format!("extend|{vm_id}"),
        MenuChoice::CopySshCommand { vm_id } => format!("copy|{vm_id}"),
        MenuChoice::EndTracking { vm_id } => format!("end|{vm_id}"),
        MenuChoice::Quit => "quit".to_owned(),
    })
}

fn choice_of(id: &MenuId) -> Option<MenuChoice> {
    let text = id.as_ref();
    if text == "quit" {
        return Some(MenuChoice::Quit);
    }
    let (kind, vm_id) = text.split_once('|')?;
    let vm_id = vm_id.to_owned();
    match kind {
        "extend" => Some(MenuChoice::Extend { vm_id }),
        "copy" => Some(MenuChoice::CopySshCommand { vm_id }),
        "end" => Some(MenuChoice::EndTracking { vm_id }),
        _ => None,
    }
}

/// Windows menus read `&` as a mnemonic marker.
fn escape(label: &str) -> String {
    label.replace('&', "&&")
}

/// The Win32 message loop of the icon's thread.
///
/// Pumping messages and posting to a thread are plain Win32 calls with no safe wrapper
/// in the crates already in the tree (tray-icon leaves the loop to the application,
/// and an event-loop crate such as winit or tao would add far more than these lines),
/// so this module allows `unsafe` for exactly these calls.
#[allow(unsafe_code)]
mod message_loop {
    use windows_sys::Win32::System::Threading::GetCurrentThreadId;
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        DispatchMessageW, GetMessageW, MSG, PostThreadMessageW, TranslateMessage, WM_APP, WM_QUIT,
    };

    /// Wakes or stops the loop of one thread.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Waker(u32);

    impl Waker {
        /// The calling thread's (which must already have a message queue: creating the
        /// tray icon's window gives it one).
        pub(super) fn current() -> Self {
            // SAFETY: no arguments, no preconditions.
            Self(unsafe { GetCurrentThreadId() })
        }

        /// Makes the loop call its `on_wake`; `false` when the thread is gone.
        pub(super) fn wake(self) -> bool {
            // SAFETY: posts a message without pointers to a thread id; fails cleanly
            // (returns 0) when the thread no longer exists.
            unsafe { PostThreadMessageW(self.0, WM_APP, 0, 0) != 0 }
        }

        /// Ends the loop.
        pub(super) fn quit(self) -> bool {
            // SAFETY: as in `wake`.
            unsafe { PostThreadMessageW(self.0, WM_QUIT, 0, 0) != 0 }
        }
    }

    /// Dispatches the thread's messages until `WM_QUIT`; calls `on_wake` for each
    /// [`Waker::wake`].
    pub(super) fn run(mut on_wake: impl FnMut()) {
        // SAFETY: MSG is plain data; all zeroes is a valid value.
        let mut message: MSG = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: `message` is a valid, writable MSG; a null window means "any
            // message of this thread".
            let result = unsafe { GetMessageW(&mut message, std::ptr::null_mut(), 0, 0) };
            // 0: WM_QUIT; -1: an error (there is nothing to retry).
            if result <= 0 {
                return;
            }
            if message.hwnd.is_null() && message.message == WM_APP {
                on_wake();
                continue;
            }
            // SAFETY: `message` was just filled in by GetMessageW.
            unsafe {
                TranslateMessage(&message);
                DispatchMessageW(&message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_ids_carry_the_choice() {
        let vm_id = "/subscriptions/s/resourceGroups/rg|x/providers/Microsoft.Compute/virtualMachines/api-01";
        for choice in [
            MenuChoice::Extend {
                vm_id: vm_id.to_owned(),
            },
            MenuChoice::CopySshCommand {
                vm_id: vm_id.to_owned(),
            },
            MenuChoice::EndTracking {
                vm_id: vm_id.to_owned(),
            },
            MenuChoice::Quit,
        ] {
            assert_eq!(choice_of(&id_of(&choice)), Some(choice));
        }
        assert_eq!(choice_of(&MenuId::new("other")), None);
    }
}
