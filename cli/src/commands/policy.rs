//! `jit policy export|diff|apply`: JIT configuration kept in a file, with drift checks.
//!
//! The file format and its reading live in `jit_agent::access::policy_file`; writing goes
//! through `access::enable::commit`, so applying a file merges into a fresh read of each
//! policy and keeps whatever the file does not name. This module only chooses the scope,
//! reads the file, prints the diff, asks, and turns drift into exit code 1.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;
use jit_agent::access::enable::{PolicyPlan, WriteOptions, commit};
use jit_agent::access::flow::{Answer, FlowError};
use jit_agent::access::policy_file::{PolicyFile, plan_file, policies_in_scope};
use jit_agent::azure::resource_id::same_resource_id;

use crate::args::{PolicyApplyArgs, PolicyCommand, PolicyDiffArgs, PolicyExportArgs};
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::printer::policy::{PolicyChangeView, PolicyFileView, render_diff, summarise};
use crate::session::Session;
use crate::settings::{GlobalSettings, parse_vm};

pub(crate) async fn run(
    command: PolicyCommand,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    match command {
        PolicyCommand::Export(arguments) => export(arguments, settings, printer).await,
        PolicyCommand::Diff(arguments) => diff(arguments, settings, printer).await,
        PolicyCommand::Apply(arguments) => apply(arguments, settings, printer).await,
    }
}

async fn export(
    arguments: PolicyExportArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let queries = arguments
        .vms
        .iter()
        .map(|vm| parse_vm(vm))
        .collect::<Result<Vec<_>, _>>()?;
    let session = Session::open(settings, printer)?;
    let flow = session.flow();
    let arm = &session.connection.arm;
    let file = if queries.is_empty() {
        let scope = flow
            .search_scope(arguments.resource_group.as_deref())
            .await?;
        let progress = printer.progress("Reading JIT policies");
        let policies = policies_in_scope(
            arm,
            &scope.subscription_ids,
            arguments.resource_group.as_deref(),
        )
        .await
        .context("could not list the JIT policies")?;
        drop(progress);
        PolicyFile::from_policies(&policies, |_| true)
    } else {
        let mut vms = Vec::new();
        for query in &queries {
            vms.push(flow.locate_supported(query).await?);
        }
        let subscriptions: Vec<String> = vms
            .iter()
            .map(|vm| vm.subscription_id.to_ascii_lowercase())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let progress = printer.progress("Reading JIT policies");
        let policies = policies_in_scope(arm, &subscriptions, None)
            .await
            .context("could not list the JIT policies")?;
        drop(progress);
        let file = PolicyFile::from_policies(&policies, |id| {
            vms.iter().any(|vm| same_resource_id(&vm.id, id))
        });
        for vm in &vms {
            let listed = file.policies.iter().any(|policy| {
                policy
                    .vms
                    .iter()
                    .any(|entry| same_resource_id(&policy.vm_id(entry), &vm.id))
            });
            if !listed {
                return Err(FlowError::NotEnabled {
                    vm: vm.name.clone(),
                    declined: false,
                }
                .into());
            }
        }
        file
    };
    if file.policies.is_empty() {
        printer.warn("no JIT policy in scope; the file lists none");
    }
    if printer.is_json() {
        printer.json(&PolicyFileView::of(&file));
    } else {
        printer.data(file.render().trim_end());
    }
    Ok(ExitStatus::Success)
}

/// Reads and checks a policy file (`-`: stdin).
fn load(path: &Path) -> anyhow::Result<PolicyFile> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("could not read the policy file from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|error| CliError::Usage {
            message: format!("cannot read {}: {error}", path.display()),
            hint: Some("`jit policy export … > FILE` writes one".to_owned()),
        })?
    };
    PolicyFile::parse(&text).map_err(|error| {
        CliError::Usage {
            message: format!("{}: {error}", path.display()),
            hint: Some("the format is in docs/policy-file.md".to_owned()),
        }
        .into()
    })
}

async fn plans_of(
    file: &PolicyFile,
    prune: bool,
    session: &Session,
    printer: &Printer,
    path: &Path,
) -> anyhow::Result<Vec<PolicyPlan>> {
    let progress = printer.progress(format!(
        "Reading {} JIT polic{}",
        file.policies.len(),
        if file.policies.len() == 1 { "y" } else { "ies" }
    ));
    let plans = plan_file(&session.connection.arm, file, prune)
        .await
        .with_context(|| format!("could not compare {} with Azure", path.display()))?;
    drop(progress);
    Ok(plans)
}

async fn diff(
    arguments: PolicyDiffArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let file = load(&arguments.file)?;
    let session = Session::open(settings, printer)?;
    let plans = plans_of(&file, arguments.prune, &session, printer, &arguments.file).await?;
    let drift = plans.iter().any(PolicyPlan::changes_anything);
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "drift": drift,
            "policies": plans.iter().map(PolicyChangeView::of).collect::<Vec<_>>(),
        }));
    } else if drift {
        printer.data(render_diff(&plans));
    }
    if drift {
        printer.info(format!(
            "Drift: {} differ from {} (`jit policy apply {}` makes Azure match)",
            summarise(&plans),
            arguments.file.display(),
            arguments.file.display()
        ));
        Ok(ExitStatus::Drift)
    } else {
        printer.success(format!(
            "No drift: Azure matches {}",
            arguments.file.display()
        ));
        Ok(ExitStatus::Success)
    }
}

async fn apply(
    arguments: PolicyApplyArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let file = load(&arguments.file)?;
    let session = Session::open(settings, printer)?;
    let plans = plans_of(&file, arguments.prune, &session, printer, &arguments.file).await?;
    let changing: Vec<&PolicyPlan> = plans
        .iter()
        .filter(|plan| plan.changes_anything())
        .collect();
    let document = |applied: bool, results: Vec<serde_json::Value>| {
        serde_json::json!({
            "dry_run": arguments.dry_run,
            "changed": !changing.is_empty(),
            "applied": applied,
            "policies": plans.iter().map(PolicyChangeView::of).collect::<Vec<_>>(),
            "results": results,
        })
    };
    if changing.is_empty() {
        printer.success(format!(
            "No changes: Azure already matches {}",
            arguments.file.display()
        ));
        if printer.is_json() {
            printer.json(&document(false, Vec::new()));
        }
        return Ok(ExitStatus::Success);
    }
    if !printer.is_json() {
        printer.data(render_diff(&plans));
    }
    if arguments.dry_run {
        printer.info(format!(
            "Dry run: would change {}; nothing was written",
            summarise(&plans)
        ));
        if printer.is_json() {
            printer.json(&document(false, Vec::new()));
        }
        return Ok(ExitStatus::Success);
    }
    let question = format!("Apply these changes to {}?", summarise(&plans));
    match session.terminal.confirm(question).await {
        Answer::Yes => {}
        Answer::CannotAsk => {
            return Err(CliError::Usage {
                message: format!(
                    "not applying {} without a confirmation",
                    arguments.file.display()
                ),
                hint: Some(
                    "run it on a terminal, pass --yes, or look first with --dry-run".to_owned(),
                ),
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
    let mut results = Vec::new();
    for (done, plan) in changing.iter().enumerate() {
        let progress = printer.progress(format!("Updating policy '{}'", plan.policy_name));
        let change = commit(&session.connection.arm, plan, &WriteOptions::default())
            .await
            .with_context(|| {
                format!(
                    "could not apply {} to policy {} ({done} of {} policies applied before it)",
                    arguments.file.display(),
                    plan.policy_id,
                    changing.len()
                )
            })?;
        drop(progress);
        printer.success(format!(
            "Policy '{}' ({}): {}",
            plan.policy_name,
            plan.location,
            serde_json::to_value(change.outcome)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default()
                .replace('_', " ")
        ));
        for concurrent in &change.concurrent_changes {
            printer.info(format!(
                "note: another writer changed policy '{}' meanwhile ({concurrent}); kept",
                plan.policy_name
            ));
        }
        results.push(serde_json::json!({
            "policy_id": change.policy_id,
            "outcome": change.outcome,
            "writes": change.writes,
            "concurrent_changes": change.concurrent_changes,
        }));
    }
    if printer.is_json() {
        printer.json(&document(true, results));
    }
    Ok(ExitStatus::Success)
}
