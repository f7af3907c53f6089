//! The tray on Linux and BSD: a StatusNotifierItem with its menu served as
//! `com.canonical.dbusmenu`, through `ksni` on the session bus (zbus 5 with async-io,
//! the same zbus as the notifications and the keyring). KDE Plasma, GNOME with the
//! AppIndicator extension, Xfce, sway/waybar and most others host these items.
//!
//! `ksni` serves the item on its own connection: registering it with
//! `org.kde.StatusNotifierWatcher` makes the icon appear, closing the connection makes
//! it disappear (the watcher sees the name go). A desktop without a watcher refuses
//! the registration; the presenter then runs without a tray.

use ksni::menu::{StandardItem, SubMenu};
use ksni::{MenuItem, Tray, TrayMethods as _};
use tokio::sync::mpsc;

use super::icon;
use super::menu::{
    COPY_SSH_LABEL, END_TRACKING_LABEL, EXTEND_LABEL, MenuChoice, QUIT_LABEL, TrayMenu,
};

/// The item's state as ksni asks for it.
struct JitTray {
    menu: TrayMenu,
    choices: mpsc::UnboundedSender<MenuChoice>,
}

impl Tray for JitTray {
    // A click on the icon opens the menu: there is no window to show.
    const MENU_ON_ACTIVATE: bool = true;

    fn id(&self) -> String {
        "jit".to_owned()
    }

    fn title(&self) -> String {
        "jit".to_owned()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        let side = i32::try_from(icon::SIZE).unwrap_or(32);
        vec![ksni::Icon {
            width: side,
            height: side,
            data: icon::argb(),
        }]
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            title: "jit".to_owned(),
            description: self.menu.tooltip.clone(),
            ..ksni::ToolTip::default()
        }
    }

    fn menu(&self) -> Vec<MenuItem<Self>> {
        let mut items: Vec<MenuItem<Self>> = self
            .menu
            .windows
            .iter()
            .map(|entry| {
                let vm_id = &entry.vm_id;
                let mut copy = item(
                    COPY_SSH_LABEL,
                    MenuChoice::CopySshCommand {
                        vm_id: vm_id.clone(),
                    },
                );
                if entry.ssh_command.is_none()
                    && let MenuItem::Standard(standard) = &mut copy
                {
                    standard.enabled = false;
                }
                SubMenu {
                    label: escape(&entry.label),
                    submenu: vec![
                        item(
                            EXTEND_LABEL,
                            MenuChoice::Extend {
                                vm_id: vm_id.clone(),
                            },
                        ),
                        copy,
                        item(
                            END_TRACKING_LABEL,
                            MenuChoice::EndTracking {
                                vm_id: vm_id.clone(),
                            },
                        ),
                    ],
                    ..SubMenu::default()
                }
                .into()
            })
            .collect();
        items.push(MenuItem::Separator);
        items.push(item(QUIT_LABEL, MenuChoice::Quit));
        items
    }
}

/// A menu item that sends `choice` to the presenter when clicked.
fn item(label: &str, choice: MenuChoice) -> MenuItem<JitTray> {
    StandardItem {
        label: escape(label),
        activate: Box::new(move |tray: &mut JitTray| {
            let _ = tray.choices.send(choice.clone());
        }),
        ..StandardItem::default()
    }
    .into()
}

/// dbusmenu reads `_` as an access-key marker; VM and group names may contain it.
fn escape(label: &str) -> String {
    label.replace('_', "__")
}

/// The StatusNotifierItem, present while shown.
pub(super) struct Backend {
    choices: mpsc::UnboundedSender<MenuChoice>,
    handle: Option<ksni::Handle<JitTray>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Backend")
            .field("shown", &self.handle.is_some())
            .finish()
    }
}

impl Backend {
    pub(super) fn new(choices: mpsc::UnboundedSender<MenuChoice>) -> Self {
        Self {
            choices,
            handle: None,
        }
    }

    /// Shows `menu`: updates the item, or registers one. `Err` says why there is no tray.
    pub(super) async fn show(&mut self, menu: &TrayMenu) -> Result<(), String> {
        if let Some(handle) = &self.handle {
            let updated = handle.update(|tray| tray.menu = menu.clone()).await;
            if updated.is_some() {
                return Ok(());
            }
            // The service ended (its connection broke): register anew.
            self.handle = None;
        }
        let tray = JitTray {
            menu: menu.clone(),
            choices: self.choices.clone(),
        };
        match tray.spawn().await {
            Ok(handle) => {
                self.handle = Some(handle);
                tracing::info!("tray icon shown");
                Ok(())
            }
            Err(error) => Err(explain(&error)),
        }
    }

    /// Removes the item from the bus, and so from the tray.
    pub(super) async fn hide(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
            tracing::info!("tray icon removed");
        }
    }
}

fn explain(error: &ksni::Error) -> String {
    match error {
        ksni::Error::Watcher(zbus::fdo::Error::ServiceUnknown(_)) => {
            "no StatusNotifierWatcher on the session bus (this desktop shows no tray icons)"
                .to_owned()
        }
        ksni::Error::Dbus(error) => format!("no usable D-Bus session bus ({error})"),
        other => other.to_string(),
    }
}
