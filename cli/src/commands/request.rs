//! `jit request VM…`: open access without connecting, for one or several VMs.
//!
//! VMs that share a JIT policy are asked for in one initiate call (that is what the API
//! is shaped for, and it keeps one request record per policy); each VM's ports are then
//! waited for unless `--no-wait`. The sequence is the library's
//! ([`jit_agent::access::flow::AccessFlow::open_many`]); this command presents it.

use jit_agent::access::flow::Wait;

use crate::agent_support::register_window;
use crate::args::RequestArgs;
use crate::error::ExitStatus;
use crate::printer::Printer;
use crate::printer::access::AccessReport;
use crate::session::Session;
use crate::settings::{AccessCommand, GlobalSettings};

pub(crate) async fn run(
    arguments: RequestArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let access = AccessCommand::resolve(&arguments.access, &arguments.port, settings)?;
    let asks = arguments
        .vms
        .iter()
        .map(|vm| access.ask(vm))
        .collect::<Result<Vec<_>, _>>()?;
    let session = Session::open_for_requests(settings, printer)?;
    let wait = if arguments.no_wait {
        Wait::NotAtAll
    } else {
        Wait::UntilAnswering(access.timeout)
    };
    let grants = session
        .flow()
        .open_many(&asks, access.justification.as_deref(), wait)
        .await?;
    let mut reports = Vec::new();
    for grant in &grants {
        register_window(settings, printer, &grant.window).await;
        reports.push(AccessReport::new(grant));
    }
    if printer.is_json() {
        printer.json(&reports);
    } else {
        let blocks: Vec<String> = reports.iter().map(|report| report.lines(None)).collect();
        printer.data(blocks.join("\n\n"));
    }
    Ok(ExitStatus::Success)
}
