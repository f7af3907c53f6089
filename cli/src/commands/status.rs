//! `jit status [--refresh]`: the access windows the background agent tracks, with the
//! time left.
//!
//! The agent is the only place that knows which windows this user opened (and keeps
//! them across restarts), so `status` asks it, and never starts one just to hear that
//! nothing is open: with no agent running the answer is an empty list and exit 0. Time
//! left is measured on Azure's clock (the agent learns it from ARM's `Date` header), so
//! it is right even when this machine's clock is off; end times are shown in local time.
//! `--refresh` makes the agent re-read every window from Azure before answering.
//!
//! The window document and table here are also what `jit extend` prints.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use jit_agent::daemon::protocol::WindowList;
use jit_agent::daemon::{AccessWindow, PortStatus, WindowPort};
use serde::Serialize;

use super::agent::{connect_if_running, foreign_agent, welcome_text};
use super::list::{Table, format_time, format_time_left};
use crate::args::StatusArgs;
use crate::error::ExitStatus;
use crate::printer::Printer;
use crate::settings::GlobalSettings;

pub(crate) async fn run(
    arguments: StatusArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    if !settings.agent.enabled {
        printer.info(
            "The background agent is turned off (--no-agent or JIT_NO_AGENT), so no windows are tracked",
        );
        print_windows(printer, &StatusDocument::not_running());
        return Ok(ExitStatus::Success);
    }
    let Some(mut client) = connect_if_running(settings).await? else {
        printer.info("The background agent is not running, so no windows are tracked (`jit connect` starts it)");
        print_windows(printer, &StatusDocument::not_running());
        return Ok(ExitStatus::Success);
    };
    if let Some(problem) = foreign_agent(client.welcome(), settings) {
        printer.warn(problem);
    }
    let described = welcome_text(client.welcome());
    let list = if arguments.refresh {
        let progress = printer.progress("Re-reading the windows from Azure");
        let refreshed = client.refresh_now().await;
        drop(progress);
        refreshed.map_err(|error| {
            anyhow::Error::new(error).context(format!(
                "the agent ({described}) could not re-read the windows from Azure"
            ))
        })?
    } else {
        client.list_windows().await.map_err(|error| {
            anyhow::Error::new(error)
                .context(format!("the agent ({described}) did not list its windows"))
        })?
    };
    let document = StatusDocument::from_list(&list, Timestamp::now());
    if document.windows.is_empty() {
        printer.info("No access windows are open");
    }
    print_windows(printer, &document);
    Ok(ExitStatus::Success)
}

/// `jit status -o json`.
#[derive(Debug, Serialize)]
pub(crate) struct StatusDocument {
    /// Whether an agent answered.
    pub(crate) agent_running: bool,
    /// Azure's time when the list was made (`None` without an agent).
    pub(crate) azure_now: Option<String>,
    /// The windows, soonest end first.
    pub(crate) windows: Vec<WindowDocument>,
}

impl StatusDocument {
    fn not_running() -> Self {
        Self {
            agent_running: false,
            azure_now: None,
            windows: Vec::new(),
        }
    }

    fn from_list(list: &WindowList, local_now: Timestamp) -> Self {
        let clock_offset = list.azure_now.duration_since(local_now);
        Self {
            agent_running: true,
            azure_now: Some(format_time(list.azure_now)),
            windows: list
                .windows
                .iter()
                .map(|view| {
                    WindowDocument::new(
                        &view.window,
                        view.time_left,
                        view.ends_soon_notified,
                        clock_offset,
                    )
                })
                .collect(),
        }
    }
}

/// One window, as `status` and `extend` print it.
#[derive(Debug, Serialize)]
pub(crate) struct WindowDocument {
    pub(crate) vm: WindowVm,
    pub(crate) policy_id: String,
    pub(crate) ports: Vec<WindowPortDocument>,
    pub(crate) source: String,
    pub(crate) connect_address: Option<String>,
    /// When the request was made, Azure's clock.
    pub(crate) requested_at: String,
    /// When the window closes, Azure's clock.
    pub(crate) ends_at: String,
    /// Seconds left on Azure's clock (0 once ended).
    pub(crate) seconds_left: i64,
    /// `open`, `opening` or `ended`.
    pub(crate) status: &'static str,
    /// Whether the "ends soon" notification was sent.
    pub(crate) ends_soon_notified: bool,
    pub(crate) justification: Option<String>,
    /// `ends_at` on this machine's clock, for display only.
    #[serde(skip)]
    ends_at_local: Timestamp,
}

/// The VM a window belongs to.
#[derive(Debug, Serialize)]
pub(crate) struct WindowVm {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) resource_group: String,
    pub(crate) subscription_id: String,
}

/// One port of a window.
#[derive(Debug, Serialize)]
pub(crate) struct WindowPortDocument {
    pub(crate) number: u16,
    /// The Azure Firewall port that reaches it, if the VM is behind one.
    pub(crate) mapped_port: Option<u16>,
    /// Azure's status for the port (`Initiating`, `Initiated`, `Revoked`, …).
    pub(crate) status: String,
}

impl WindowDocument {
    /// The document for `window` with `time_left` on Azure's clock; `clock_offset` is
    /// Azure's clock minus this machine's.
    pub(crate) fn new(
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
            justification: window.justification.clone(),
            ends_at_local: window
                .ends_at
                .checked_sub(clock_offset)
                .unwrap_or(window.ends_at),
        }
    }

    /// `rg-web/api-01`: how to name the VM to `jit extend`, unambiguously.
    pub(crate) fn vm_reference(&self) -> String {
        format!("{}/{}", self.vm.resource_group, self.vm.name)
    }

    /// The end on this machine's clock, in its time zone: `17:00 CET`, or with the date
    /// when that is not today.
    pub(crate) fn local_end(&self) -> String {
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
pub(crate) fn table(windows: &[WindowDocument]) -> String {
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

fn print_windows(printer: &Printer, document: &StatusDocument) {
    if printer.is_json() {
        printer.json(document);
    } else if !document.windows.is_empty() {
        printer.data(table(&document.windows));
    }
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
