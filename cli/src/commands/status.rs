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
//! The window document and table (`crate::printer::windows`) are also what `jit
//! extend` prints.

use jiff::Timestamp;
use jit_agent::daemon::protocol::WindowList;
use serde::Serialize;

use crate::agent_support::{connect_if_running, foreign_agent, welcome_text};
use crate::args::StatusArgs;
use crate::error::ExitStatus;
use crate::printer::Printer;
use crate::printer::format::format_time;
use crate::printer::windows::{WindowDocument, table};
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
struct StatusDocument {
    /// Whether an agent answered.
    agent_running: bool,
    /// Azure's time when the list was made (`None` without an agent).
    azure_now: Option<String>,
    /// The windows, soonest end first.
    windows: Vec<WindowDocument>,
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

fn print_windows(printer: &Printer, document: &StatusDocument) {
    if printer.is_json() {
        printer.json(document);
    } else if !document.windows.is_empty() {
        printer.data(table(&document.windows));
    }
}
