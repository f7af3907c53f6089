//! `jit edit VM`: add, remove or change ports of a VM its JIT policy already lists, as
//! the portal's policy blade does, showing the change and asking first.
//!
//! The change is planned against the policy as read now and shown as a diff; after the
//! answer, `access::enable::commit` reads the policy again and merges only the ports
//! named here into that fresh copy, so what another admin changed while the question was
//! open is kept.

use anyhow::Context as _;
use jit_agent::access::enable::{
    ChangeOutcome, VmPlacement, WriteOptions, commit, plan_ports_change,
};
use jit_agent::access::flow::Answer;

use crate::args::EditArgs;
use crate::error::{CliError, ExitStatus};
use crate::interaction::describe_change;
use crate::printer::Printer;
use crate::printer::policy::{PolicyChangeView, render_diff};
use crate::session::Session;
use crate::settings::{EditCommand, GlobalSettings};

pub(crate) async fn run(
    arguments: EditArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let command = EditCommand::resolve(&arguments, settings)?;
    let session = Session::open(settings, printer)?;
    let summary = session.flow().locate_supported(&command.vm).await?;
    let placement = VmPlacement::new(&summary.id, &summary.location)?;
    let arm = &session.connection.arm;
    let progress = printer.progress(format!("Reading the JIT policy of {}", summary.name));
    let planned = plan_ports_change(arm, &placement, &command.change)
        .await
        .with_context(|| format!("could not edit the JIT policy of {}", summary.name))?;
    drop(progress);

    if !planned.changes_anything() {
        printer.success(format!(
            "{}'s ports already are as asked; nothing to change",
            summary.name
        ));
        if printer.is_json() {
            printer.json(&serde_json::json!({
                "vm": summary.name,
                "outcome": ChangeOutcome::Unchanged,
                "policy": PolicyChangeView::of(&planned),
            }));
        }
        return Ok(ExitStatus::Success);
    }
    if !printer.is_json() {
        printer.data(render_diff(std::slice::from_ref(&planned)));
    }
    let question = format!(
        "Change {}'s ports in policy '{}' as shown?",
        summary.name, planned.policy_name
    );
    match session.terminal.confirm(question).await {
        Answer::Yes => {}
        Answer::CannotAsk => {
            return Err(CliError::Usage {
                message: format!(
                    "not changing the JIT policy of {} without a confirmation",
                    summary.name
                ),
                hint: Some("run it on a terminal, or pass --yes".to_owned()),
            }
            .into());
        }
        _ => {
            return Err(CliError::Interrupted {
                message: "nothing was changed".to_owned(),
            }
            .into());
        }
    }
    let progress = printer.progress(format!("Updating the JIT policy of {}", summary.name));
    let change = commit(arm, &planned, &WriteOptions::default())
        .await
        .with_context(|| format!("could not edit the JIT policy of {}", summary.name))?;
    drop(progress);
    printer.success(describe_change(&summary.name, &change));
    for concurrent in &change.concurrent_changes {
        printer.info(format!(
            "note: another writer changed the policy meanwhile ({concurrent}); kept"
        ));
    }
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "vm": summary.name,
            "outcome": change.outcome,
            "policy": PolicyChangeView::of(&planned),
            "writes": change.writes,
            "concurrent_changes": change.concurrent_changes,
        }));
    }
    Ok(ExitStatus::Success)
}
