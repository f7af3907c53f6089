//! How an access window is shown: the document `jit status -o json` and `jit extend -o
//! json` print (schema in `docs/output-json.md`), and the table both print for people.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use jit_agent::access::ownership::readable_justification;
use jit_agent::daemon::{AccessWindow, PortStatus, WindowPort};
use serde::Serialize;

use super::format::{format_time, format_time_left};
use super::table::Table;

/// One window, as `status` and `extend` print it.
#[derive(Debug, Serialize)]
pub struct WindowDocument {
    pub vm: WindowVm,
    pub policy_id: String,
    pub ports: Vec<WindowPortDocument>,
    pub source: String,
    pub connect_address: Option<String>,
    /// When the request was made, Azure's clock.
    pub requested_at: String,
    /// When the window closes, Azure's clock.
    pub ends_at: String,
    /// Seconds left on Azure's clock (0 once ended).
    pub seconds_left: i64,
    /// `open`, `opening` or `ended`.
    pub status: &'static str,
    /// Whether the "ends soon" notification was sent.
    pub ends_soon_notified: bool,
    pub justification: Option<String>,
    /// `ends_at` on this machine's clock, for display only.
    #[serde(skip)]
    ends_at_local: Timestamp,
}

/// The VM a window belongs to.
#[derive(Debug, Serialize)]
pub struct WindowVm {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub subscription_id: String,
}

/// One port of a window.
#[derive(Debug, Serialize)]
pub struct WindowPortDocument {
    pub number: u16,
    /// The Azure Firewall port that reaches it, if the VM is behind one.
    pub mapped_port: Option<u16>,
    /// Azure's status for the port (`Initiating`, `Initiated`, `Revoked`, …).
    pub status: String,
}

impl WindowDocument {
    /// The document for `window` with `time_left` on Azure's clock; `clock_offset` is
    /// Azure's clock minus this machine's.
    pub fn new(
        window: &AccessWindow,
        time_left: SignedDuration,
        ends_soon_notified: bool,
        clock_offset: SignedDuration,
    ) -> Self {
        let time_left = time_left.max(SignedDuration::ZERO);
        Self {
            vm: WindowVm {
                id: window.vm_id.clone(),
                name: window.vm_name.clone(),
                resource_group: window.resource_group.clone(),
                subscription_id: window.subscription_id.clone(),
            },
            policy_id: window.policy_id.clone(),
            ports: window
                .ports
                .iter()
                .map(|port| WindowPortDocument {
                    number: port.number,
                    mapped_port: port.mapped_port,
                    status: port.status.to_string(),
                })
                .collect(),
            source: window.source_address_prefix.clone(),
            connect_address: window.connect_address.clone(),
            requested_at: format_time(window.requested_at),
            ends_at: format_time(window.ends_at),
            seconds_left: time_left.as_secs(),
            status: window_status(&window.ports, time_left),
            ends_soon_notified,
            justification: window
                .justification
                .as_deref()
                .map(|text| readable_justification(text).to_owned())
                .filter(|text| !text.is_empty()),
            ends_at_local: window
                .ends_at
                .checked_sub(clock_offset)
                .unwrap_or(window.ends_at),
        }
    }

    /// `rg-web/api-01`: how to name the VM to `jit extend`, unambiguously.
    pub fn vm_reference(&self) -> String {
        format!("{}/{}", self.vm.resource_group, self.vm.name)
    }

    /// The end on this machine's clock, in its time zone: `17:00 CET`, or with the date
    /// when that is not today.
    pub fn local_end(&self) -> String {
        let zone = TimeZone::system();
        let end = self.ends_at_local.to_zoned_datetime(zone.clone());
        let today = Timestamp::now().to_zoned_datetime(zone).date();
        if end.date() == today {
            end.strftime("%H:%M %Z").to_string()
        } else {
            end.strftime("%Y-%m-%d %H:%M %Z").to_string()
        }
    }
}

/// A window's state in one word.
fn window_status(ports: &[WindowPort], time_left: SignedDuration) -> &'static str {
    let ended = time_left <= SignedDuration::ZERO
        || ports.iter().all(|port| port.status == PortStatus::Revoked);
    if ended {
        "ended"
    } else if ports
        .iter()
        .any(|port| port.status == PortStatus::Initiating)
    {
        "opening"
    } else {
        "open"
    }
}

/// `22`, or `22 (firewall 50022)` behind an Azure Firewall.
fn ports_text(ports: &[WindowPortDocument]) -> String {
    ports
        .iter()
        .map(|port| match port.mapped_port {
            Some(mapped) => format!("{} (firewall {mapped})", port.number),
            None => port.number.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The windows as aligned columns.
pub fn table(windows: &[WindowDocument]) -> String {
    let mut table = Table::new(vec![
        "VM", "PORTS", "SOURCE", "ENDS", "LEFT", "STATUS", "WARNED",
    ]);
    for window in windows {
        table.push(vec![
            window.vm_reference(),
            ports_text(&window.ports),
            window.source.clone(),
            window.local_end(),
            format_time_left(SignedDuration::from_secs(window.seconds_left)),
            window.status.to_owned(),
            if window.ends_soon_notified {
                "yes".to_owned()
            } else {
                "no".to_owned()
            },
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(number: u16, status: PortStatus) -> WindowPort {
        WindowPort {
            number,
            mapped_port: None,
            status,
        }
    }

    #[test]
    fn a_window_is_open_opening_or_ended() {
        let hour = SignedDuration::from_hours(1);
        assert_eq!(
            window_status(&[port(22, PortStatus::Initiated)], hour),
            "open"
        );
        assert_eq!(
            window_status(
                &[
                    port(22, PortStatus::Initiated),
                    port(3389, PortStatus::Initiating)
                ],
                hour
            ),
            "opening"
        );
        assert_eq!(
            window_status(&[port(22, PortStatus::Revoked)], hour),
            "ended"
        );
        assert_eq!(
            window_status(&[port(22, PortStatus::Initiated)], SignedDuration::ZERO),
            "ended"
        );
    }

    #[test]
    fn mapped_ports_are_named() {
        let ports = [
            WindowPortDocument {
                number: 22,
                mapped_port: Some(50022),
                status: "Initiated".to_owned(),
            },
            WindowPortDocument {
                number: 3389,
                mapped_port: None,
                status: "Initiated".to_owned(),
            },
        ];
        assert_eq!(ports_text(&ports), "22 (firewall 50022), 3389");
    }
}
