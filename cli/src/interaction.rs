//! The terminal as a front end of the access flow: progress as spinners and lines on
//! stderr, questions as prompts.
//!
//! [`jit_agent::access::flow`] decides and acts; this module only presents. Questions
//! are asked only when a person can answer (stdin and stderr are terminals); `--yes`
//! answers yes to confirmations; otherwise the flow hears "cannot ask" and fails with an
//! error that says which flag to pass. Declining is not the same as not being asked: it
//! ends the command with exit code 130 ([`crate::error`]).

use std::sync::Mutex;

use anyhow::Context as _;
use jit_agent::access::enable::{ChangeOutcome, PolicyChange};
use jit_agent::access::flow::{Activity, Answer, FlowEvent, Interaction, Question};

use crate::interruption::{self, Entry};
use crate::printer::format::{describe_end, format_duration, ports_phrase};
use crate::printer::{Printer, Progress};

/// The terminal, with the command's printer.
#[derive(Debug)]
pub struct Terminal {
    printer: Printer,
    assume_yes: bool,
    spinner: Mutex<Option<Progress>>,
}

impl Terminal {
    /// A front end printing through `printer`; `assume_yes` answers every confirmation.
    pub fn new(printer: Printer, assume_yes: bool) -> Self {
        Self {
            printer,
            assume_yes,
            spinner: Mutex::new(None),
        }
    }

    /// The printer.
    pub fn printer(&self) -> &Printer {
        &self.printer
    }

    /// Ends the running spinner, if any.
    pub fn end_progress(&self) {
        if let Ok(mut spinner) = self.spinner.lock() {
            spinner.take();
        }
    }

    /// Asks `prompt` on the terminal (Enter answers `default`); a prompt that cannot be
    /// shown is [`Answer::CannotAsk`], with the reason as a warning.
    async fn yes_or_no(&self, prompt: String, default: bool) -> Answer {
        let answer = tokio::task::spawn_blocking(move || {
            dialoguer::Confirm::new()
                .with_prompt(prompt)
                .default(default)
                .interact_opt()
        })
        .await
        .context("the question could not be asked")
        .and_then(|answer| answer.context("the question could not be asked"));
        match answer {
            Ok(Some(true)) => Answer::Yes,
            Ok(_) => Answer::No,
            Err(error) => {
                self.printer.warn(format!("{error:#}"));
                Answer::CannotAsk
            }
        }
    }

    /// Asks a yes/no question outside the access flow (`jit edit`, `jit policy apply`):
    /// `--yes` answers yes; without a person to ask, [`Answer::CannotAsk`].
    pub async fn confirm(&self, prompt: String) -> Answer {
        if self.assume_yes {
            return Answer::Yes;
        }
        if !self.printer.is_interactive() {
            return Answer::CannotAsk;
        }
        self.end_progress();
        self.yes_or_no(prompt, false).await
    }

    fn begin(&self, text: String) {
        if let Ok(mut spinner) = self.spinner.lock() {
            match spinner.as_ref() {
                Some(running) => running.set_message(text),
                None => *spinner = Some(self.printer.progress(text)),
            }
        }
    }
}

impl Interaction for Terminal {
    fn event(&self, event: FlowEvent<'_>) {
        if let FlowEvent::Begin(activity) = &event {
            journal_begin(activity);
            self.begin(activity_text(activity));
            return;
        }
        if let FlowEvent::Detail(text) = &event {
            self.printer.detail(text);
            return;
        }
        self.end_progress();
        match event {
            FlowEvent::VmStarted { vm } => {
                interruption::end_step(STARTING);
                interruption::done(Entry::fact(format!("started {vm}")));
                self.printer.success(format!("Started {vm}"));
            }
            FlowEvent::PolicyChanged { vm, change } => {
                let described = describe_change(vm, change);
                interruption::end_step(ENABLING);
                interruption::done(Entry::fact(described.clone()));
                self.printer.success(described);
            }
            FlowEvent::Requested {
                vms,
                source,
                ends_at,
                azure_now,
            } => {
                let what = match vms.as_slice() {
                    [(vm, ports)] => format!("{} of {vm}", ports_phrase(ports)),
                    many => many
                        .iter()
                        .map(|(vm, ports)| format!("{vm} ({})", ports_phrase(ports)))
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let end = describe_end(ends_at, azure_now);
                let hint = match vms.as_slice() {
                    [(vm, _)] => format!(
                        "it stays open until then: `jit show {vm}` shows it, `jit extend {vm}` renews it"
                    ),
                    _ => "they stay open until then: `jit show VM` shows each, `jit extend VM` renews it".to_owned(),
                };
                interruption::done(Entry::new(
                    format!("Azure accepted a request for {what} until {end}"),
                    hint,
                ));
                self.printer
                    .info(format!("Requested {what} for {source} until {end}"));
            }
            FlowEvent::PortAnswered { vm, port } => {
                let via = port
                    .mapped_port
                    .map(|mapped| format!(" (firewall port {mapped})"))
                    .unwrap_or_default();
                self.printer.success(format!(
                    "{vm} port {} answers at {}:{}{via}",
                    port.number, port.host, port.connect_port
                ));
            }
            FlowEvent::Reusing { vm, until } => self
                .printer
                .detail(format!("reusing the window on {vm} open until {until:.0}")),
            FlowEvent::Warning(text) => self.printer.warn(text),
            _ => {}
        }
    }

    async fn ask(&self, question: Question<'_>) -> Answer {
        let confirmation = !matches!(question, Question::ChooseVm { .. });
        if confirmation && self.assume_yes {
            return Answer::Yes;
        }
        if !self.printer.is_interactive() {
            return Answer::CannotAsk;
        }
        self.end_progress();
        match question {
            Question::ChooseVm { query, candidates } => {
                let labels: Vec<String> = candidates
                    .iter()
                    .map(|candidate| {
                        format!(
                            "{}  ({}, subscription {})",
                            candidate.group_and_name(),
                            candidate.location,
                            candidate.subscription_id
                        )
                    })
                    .collect();
                let prompt = format!("Several VMs are named '{query}'; which one?");
                let chosen = tokio::task::spawn_blocking(move || {
                    dialoguer::Select::new()
                        .with_prompt(prompt)
                        .items(&labels)
                        .default(0)
                        .interact_opt()
                })
                .await
                .context("the question could not be asked")
                .and_then(|answer| answer.context("the question could not be asked"));
                match chosen {
                    Ok(Some(index)) => Answer::Chosen(index),
                    Ok(None) => Answer::No,
                    Err(error) => {
                        self.printer.warn(format!("{error:#}"));
                        Answer::CannotAsk
                    }
                }
            }
            other => self.yes_or_no(question_text(&other), true).await,
        }
    }
}

/// Journal step names of the flow's steps that change Azure.
const STARTING: &str = "starting the VM";
const ENABLING: &str = "enabling JIT";
const EXTENDING: &str = "extending";

/// Records a step that changes Azure as under way, for the report of a stop
/// ([`crate::interruption`]); the event that ends it (or the end of the command) ends it.
fn journal_begin(activity: &Activity<'_>) {
    match activity {
        Activity::StartingVm { vm } => interruption::begin_step(
            STARTING,
            Entry::new(
                format!("{vm} was being started, and Azure may have begun"),
                format!("`jit show {vm}` shows its power state"),
            ),
        ),
        Activity::EnablingJit { vm } => interruption::begin_step(
            ENABLING,
            Entry::new(
                format!("the JIT policy of {vm} was being written, and Azure may have applied it"),
                format!("`jit show {vm}` shows the policy as it is"),
            ),
        ),
        Activity::Extending { vm } => interruption::begin_step(
            EXTENDING,
            Entry::new(
                format!(
                    "a request to extend the window on {vm} was on its way to Azure, which may have accepted it"
                ),
                format!("`jit show {vm}` shows the active requests"),
            ),
        ),
        _ => {}
    }
}

/// A slow step, as its spinner says it.
fn activity_text(activity: &Activity<'_>) -> String {
    match activity {
        Activity::StartingVm { vm } => format!("Starting {vm}"),
        Activity::EnablingJit { vm } => format!("Enabling JIT for {vm}"),
        Activity::Applying { .. } => {
            "Waiting for Azure to apply the request (Initiating)".to_owned()
        }
        Activity::Probing { what } => format!("Waiting for {what} to answer"),
        Activity::Extending { vm } => format!("Extending the window on {vm}"),
        _ => "Working".to_owned(),
    }
}

/// A confirmation, as the prompt asks it.
fn question_text(question: &Question<'_>) -> String {
    match question {
        Question::StartVm { vm, state } => {
            format!("{vm} is {state}; its ports cannot open. Start it?")
        }
        Question::EnableJit {
            vm,
            port,
            max_duration,
            allowed_sources,
        } => {
            let sources = if allowed_sources.iter().any(|source| source == "*") {
                "any source".to_owned()
            } else {
                allowed_sources.join(", ")
            };
            format!(
                "JIT is not enabled for {vm}. Enable it (port {port}, requests up to {}, {sources})?",
                format_duration(*max_duration)
            )
        }
        Question::ChooseVm { query, .. } => format!("Several VMs are named '{query}'; which one?"),
        _ => "Continue?".to_owned(),
    }
}

/// What a policy change did, in one line.
pub fn describe_change(vm_name: &str, change: &PolicyChange) -> String {
    let policy_id = change.policy_id.as_str();
    let policy_name = policy_id.rsplit('/').next().unwrap_or(policy_id);
    let neighbours = match change.other_virtual_machines {
        0 => String::new(),
        1 => "; the 1 other VM in it is unchanged".to_owned(),
        count => format!("; the {count} other VMs in it are unchanged"),
    };
    match change.outcome {
        ChangeOutcome::Created => {
            format!("Enabled JIT for {vm_name} in a new policy '{policy_name}'")
        }
        ChangeOutcome::Added => {
            format!("Enabled JIT for {vm_name} in policy '{policy_name}'{neighbours}")
        }
        ChangeOutcome::Updated => {
            format!("Updated {vm_name}'s ports in policy '{policy_name}'{neighbours}")
        }
        ChangeOutcome::Removed => {
            format!("Disabled JIT for {vm_name}: removed from policy '{policy_name}'{neighbours}")
        }
        ChangeOutcome::Deleted => format!(
            "Disabled JIT for {vm_name}: policy '{policy_name}' had no other VM and was deleted"
        ),
        ChangeOutcome::Reapplied => format!(
            "{vm_name} already has these ports in policy '{policy_name}'; wrote the policy again, so JIT restores its NSG rules{neighbours}"
        ),
        ChangeOutcome::Unchanged => format!(
            "{vm_name} already has these ports in policy '{policy_name}'; nothing to change"
        ),
    }
}
