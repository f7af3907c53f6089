//! What the tray shows, as plain data: built from the agent's window list and drawn by
//! whichever platform backend runs, so every platform shows the same words and the
//! wording is tested without a desktop.

use jiff::SignedDuration;

use crate::daemon::notifier::human_duration;
use crate::daemon::protocol::{AccessWindow, WindowList, WindowView};

/// The window item that asks for a new window of the policy's maximum length.
pub const EXTEND_LABEL: &str = "Extend by the policy maximum";
/// The window item that puts the window's ssh command on the clipboard.
pub const COPY_SSH_LABEL: &str = "Copy ssh command";
/// The window item that makes the agent forget the window.
pub const END_TRACKING_LABEL: &str = "End tracking";
/// The item that stops the agent.
pub const QUIT_LABEL: &str = "Quit agent";

/// The tray's content at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayMenu {
    /// A line for the icon's tooltip: how many windows, which ends first.
    pub tooltip: String,
    /// One entry per window, soonest end first.
    pub windows: Vec<WindowEntry>,
}

/// One window in the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowEntry {
    /// The VM's resource id (what a choice names).
    pub vm_id: String,
    /// `api-01 (rg-web): port 22, 2 h 55 min left`.
    pub label: String,
    /// `ssh -p 22 20.1.2.3`, when the window has an SSH port and a known address.
    pub ssh_command: Option<String>,
}

/// What the user picked in the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuChoice {
    /// [`EXTEND_LABEL`] on a window.
    Extend {
        /// The VM's resource id.
        vm_id: String,
    },
    /// [`COPY_SSH_LABEL`] on a window.
    CopySshCommand {
        /// The VM's resource id.
        vm_id: String,
    },
    /// [`END_TRACKING_LABEL`] on a window.
    EndTracking {
        /// The VM's resource id.
        vm_id: String,
    },
    /// [`QUIT_LABEL`].
    Quit,
}

impl TrayMenu {
    /// The menu for `list`, published `since_published` ago (time left shrinks by that
    /// much, so a refresh needs no new list).
    pub fn build(list: &WindowList, since_published: SignedDuration) -> Self {
        let windows: Vec<WindowEntry> = list
            .windows
            .iter()
            .map(|view| WindowEntry {
                vm_id: view.window.vm_id.clone(),
                label: window_label(view, since_published),
                ssh_command: ssh_command(&view.window),
            })
            .collect();
        let tooltip = match list.windows.as_slice() {
            [] => "jit: no access window open".to_owned(),
            [only] => format!(
                "jit: {} open, {} left",
                only.window.vm_name,
                human_duration(time_left(only, since_published))
            ),
            [first, ..] => format!(
                "jit: {} access windows open; {} ends first, in {}",
                list.windows.len(),
                first.window.vm_name,
                human_duration(time_left(first, since_published))
            ),
        };
        Self { tooltip, windows }
    }

    /// The entry for `vm_id`.
    pub fn window(&self, vm_id: &str) -> Option<&WindowEntry> {
        self.windows
            .iter()
            .find(|entry| entry.vm_id.eq_ignore_ascii_case(vm_id))
    }
}

fn time_left(view: &WindowView, since_published: SignedDuration) -> SignedDuration {
    view.time_left
        .checked_sub(since_published)
        .unwrap_or(SignedDuration::ZERO)
        .max(SignedDuration::ZERO)
}

fn window_label(view: &WindowView, since_published: SignedDuration) -> String {
    let window = &view.window;
    let numbers: Vec<String> = window
        .ports
        .iter()
        .map(|port| port.number.to_string())
        .collect();
    let ports = match numbers.as_slice() {
        [one] => format!("port {one}"),
        _ => format!("ports {}", numbers.join(", ")),
    };
    format!(
        "{} ({}): {ports}, {} left",
        window.vm_name,
        window.resource_group,
        human_duration(time_left(view, since_published))
    )
}

/// The port that carries SSH: 22 when the window has it, otherwise its only port
/// unless that is RDP's or WinRM's.
fn ssh_port(window: &AccessWindow) -> Option<u16> {
    let port = match window.ports.as_slice() {
        [only] if ![3389, 5985, 5986].contains(&only.number) => only,
        ports => ports.iter().find(|port| port.number == 22)?,
    };
    Some(port.mapped_port.unwrap_or(port.number))
}

/// `ssh -p PORT ADDRESS`; the user is left to the ssh config, which the agent does not
/// read. Only addresses made of host-name and IP characters are used, so the command
/// can be pasted into any shell as it is.
fn ssh_command(window: &AccessWindow) -> Option<String> {
    let address = window.connect_address.as_deref()?;
    let plain = !address.is_empty()
        && !address.starts_with('-')
        && address
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || ".:-".contains(character));
    if !plain {
        return None;
    }
    Some(format!("ssh -p {} {address}", ssh_port(window)?))
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::daemon::protocol::{PortStatus, WindowPort};

    fn view(vm_name: &str, ports: &[(u16, Option<u16>)], minutes_left: i64) -> WindowView {
        WindowView {
            window: AccessWindow {
                vm_id: format!(
                    "/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/{vm_name}"
                ),
                vm_name: vm_name.into(),
                resource_group: "rg-web".into(),
                subscription_id: "s".into(),
                policy_id: "p".into(),
                ports: ports
                    .iter()
                    .map(|&(number, mapped_port)| WindowPort {
                        number,
                        mapped_port,
                        status: PortStatus::Initiated,
                    })
                    .collect(),
                source_address_prefix: "198.51.100.7".into(),
                requested_at: Timestamp::UNIX_EPOCH,
                ends_at: Timestamp::UNIX_EPOCH,
                server_clock_offset_at_registration: SignedDuration::ZERO,
                justification: None,
                connect_address: Some("20.1.2.3".into()),
                requestor: None,
            },
            time_left: SignedDuration::from_mins(minutes_left),
            ends_soon_notified: false,
        }
    }

    fn list(windows: Vec<WindowView>) -> WindowList {
        WindowList {
            azure_now: Timestamp::UNIX_EPOCH,
            windows,
        }
    }

    #[test]
    fn each_window_shows_vm_ports_and_time_left_which_shrinks_between_lists() {
        let menu = TrayMenu::build(
            &list(vec![view("api-01", &[(22, None)], 175)]),
            SignedDuration::from_mins(2),
        );
        assert_eq!(menu.windows.len(), 1);
        assert_eq!(
            menu.windows[0].label,
            "api-01 (rg-web): port 22, 2 h 53 min left"
        );
        assert_eq!(menu.tooltip, "jit: api-01 open, 2 h 53 min left");
        let later = TrayMenu::build(
            &list(vec![view("api-01", &[(22, None)], 1)]),
            SignedDuration::from_mins(5),
        );
        assert_eq!(later.windows[0].label, "api-01 (rg-web): port 22, 0 s left");
    }

    #[test]
    fn several_windows_are_counted_in_the_tooltip() {
        let menu = TrayMenu::build(
            &list(vec![
                view("api-01", &[(22, None)], 10),
                view("web-01", &[(3389, None), (22, None)], 60),
            ]),
            SignedDuration::ZERO,
        );
        assert_eq!(
            menu.tooltip,
            "jit: 2 access windows open; api-01 ends first, in 10 min"
        );
        assert_eq!(
            menu.windows[1].label,
            "web-01 (rg-web): ports 3389, 22, 1 h left"
        );
    }

    #[test]
    fn the_ssh_command_uses_the_ssh_port_and_the_firewall_mapping() {
        let command = |ports: &[(u16, Option<u16>)]| ssh_command(&view("api-01", ports, 10).window);
        assert_eq!(
            command(&[(22, None)]).as_deref(),
            Some("ssh -p 22 20.1.2.3")
        );
        assert_eq!(
            command(&[(22, Some(50022))]).as_deref(),
            Some("ssh -p 50022 20.1.2.3")
        );
        assert_eq!(
            command(&[(3389, None), (22, None)]).as_deref(),
            Some("ssh -p 22 20.1.2.3")
        );
        // The emulator serves SSH on a port of its own: a single port is taken as SSH.
        assert_eq!(
            command(&[(40022, None)]).as_deref(),
            Some("ssh -p 40022 20.1.2.3")
        );
        assert_eq!(command(&[(3389, None)]), None);
        assert_eq!(command(&[(3389, None), (5986, None)]), None);

        let mut odd = view("api-01", &[(22, None)], 10).window;
        odd.connect_address = Some("$(reboot)".into());
        assert_eq!(ssh_command(&odd), None);
        odd.connect_address = None;
        assert_eq!(ssh_command(&odd), None);
    }
}
