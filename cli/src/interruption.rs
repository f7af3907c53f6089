//! Stopping a command on SIGINT (Ctrl-C) or SIGTERM, and saying what it had done.
//!
//! A command ended by a signal's default action leaves its user guessing: did the policy
//! write reach Azure? Is a port open now, and does the agent know? So `jit` listens for
//! both signals itself. The running command is dropped at its next await point (a call
//! in flight is abandoned; Azure may or may not have acted on it), and `jit` prints what
//! the command had done and what was under way, then exits with 130 (SIGINT) or 143
//! (SIGTERM), as `docs/exit-codes.md` says.
//!
//! Commands keep a small journal for that report: [`done`] records a fact ("Azure
//! accepted a request …") and [`under_way`] wraps a call whose effect is uncertain when
//! it is cut short (the entry stays in the journal only if the call never finished). A
//! step that must end its own way when stopped (`jit connect` hands the window of an
//! accepted request to the agent; `ssh` in the foreground owns Ctrl-C) holds a
//! [`TakeOver`] and listens with its own [`Listener`]; meanwhile the command-wide
//! listener lets the signals pass.
//!
//! What it gives up: the journal is process-wide (one command runs per process), and a
//! second signal while a taken-over step finishes is that step's business.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::ExitStatus;

/// The signals that stop a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT: Ctrl-C in the terminal (on Windows, Ctrl-C).
    Interrupt,
    /// SIGTERM: `kill`, a service manager, a CI job's timeout.
    Terminate,
}

impl StopSignal {
    /// `SIGINT (Ctrl-C)` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT (Ctrl-C)",
            Self::Terminate => "SIGTERM",
        }
    }

    /// The exit status it earns: 130 or 143.
    pub fn status(self) -> ExitStatus {
        match self {
            Self::Interrupt => ExitStatus::Interrupted,
            Self::Terminate => ExitStatus::Terminated,
        }
    }
}

/// The error a command returns when it stopped on a signal by itself (after finishing
/// a taken-over step); `main` reports it like a signal caught outside any step.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("stopped by {}", .0.name())]
pub struct Stopped(pub StopSignal);

/// One line of the journal: what happened, and what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What was done, or what was under way (a clause, no final period).
    pub what: String,
    /// What to do or check now, if anything.
    pub hint: Option<String>,
}

impl Entry {
    /// An entry with a hint.
    pub fn new(what: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            hint: Some(hint.into()),
        }
    }

    /// An entry that needs no hint.
    pub fn fact(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            hint: None,
        }
    }
}

#[derive(Debug)]
struct Journal {
    /// Whether the command records every change it makes to Azure, so that an empty
    /// journal means nothing was changed.
    complete: bool,
    done: Vec<Entry>,
    under_way: Vec<(Step, Entry)>,
    next_id: u64,
}

/// What an under-way entry belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Call(u64),
    Named(&'static str),
}

static JOURNAL: Mutex<Journal> = Mutex::new(Journal {
    complete: false,
    done: Vec::new(),
    under_way: Vec::new(),
    next_id: 0,
});

/// How many steps have taken the signals over.
static TAKEN_OVER: AtomicU32 = AtomicU32::new(0);

fn with_journal<T>(action: impl FnOnce(&mut Journal) -> T) -> T {
    let mut journal = match JOURNAL.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    action(&mut journal)
}

/// Declares that this command records every change it makes to Azure (with [`done`],
/// [`under_way`] and the steps the access flow announces), so that a stop with an
/// empty journal can say nothing was changed. Other commands say only that they
/// stopped.
pub fn keep_complete_journal() {
    with_journal(|journal| journal.complete = true);
}

/// Records something the command has done (reported if it is stopped later).
pub fn done(entry: Entry) {
    with_journal(|journal| journal.done.push(entry));
}

/// Marks a step whose effect is unknown until [`end_step`] with the same name (for
/// steps announced by events rather than wrapped as one call).
pub fn begin_step(name: &'static str, entry: Entry) {
    with_journal(|journal| journal.under_way.push((Step::Named(name), entry)));
}

/// Ends the step [`begin_step`] began.
pub fn end_step(name: &'static str) {
    with_journal(|journal| {
        journal
            .under_way
            .retain(|(step, _)| *step != Step::Named(name));
    });
}

/// Runs `call`, reporting `entry` as under way if the command is stopped before `call`
/// finishes (so its effect is unknown). Once `call` finishes, the entry is forgotten:
/// the command records what came of it with [`done`] if that matters.
pub async fn under_way<T>(entry: Entry, call: impl Future<Output = T>) -> T {
    let id = with_journal(|journal| {
        let id = journal.next_id;
        journal.next_id += 1;
        journal.under_way.push((Step::Call(id), entry));
        id
    });
    let result = call.await;
    with_journal(|journal| {
        journal
            .under_way
            .retain(|(step, _)| *step != Step::Call(id));
    });
    result
}

/// While held, signals go to the step holding it instead of stopping the command.
#[derive(Debug)]
pub struct TakeOver(());

impl TakeOver {
    /// Takes the signals over until dropped.
    pub fn new() -> Self {
        TAKEN_OVER.fetch_add(1, Ordering::SeqCst);
        Self(())
    }
}

impl Default for TakeOver {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TakeOver {
    fn drop(&mut self) {
        TAKEN_OVER.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Receives SIGINT and SIGTERM (Ctrl-C on Windows). Creating one replaces the signals'
/// default action for the rest of the process.
#[derive(Debug)]
pub struct Listener {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Listener {
    /// Starts listening (inside the runtime). If the signals cannot be caught, the
    /// listener never fires and the default action stays.
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::interrupt())
                .and_then(|interrupt| Ok((interrupt, signal(SignalKind::terminate())?)));
            match signals {
                Ok(signals) => Self {
                    signals: Some(signals),
                },
                Err(error) => {
                    tracing::warn!(%error, "cannot catch SIGINT and SIGTERM");
                    Self { signals: None }
                }
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// The next signal.
    pub async fn recv(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            match &mut self.signals {
                Some((interrupt, terminate)) => tokio::select! {
                    _ = interrupt.recv() => StopSignal::Interrupt,
                    _ = terminate.recv() => StopSignal::Terminate,
                },
                None => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => StopSignal::Interrupt,
                Err(error) => {
                    tracing::warn!(%error, "cannot catch Ctrl-C");
                    std::future::pending().await
                }
            }
        }
    }

    /// The next signal that arrives while no step has taken the signals over.
    pub async fn stop(&mut self) -> StopSignal {
        loop {
            let signal = self.recv().await;
            if TAKEN_OVER.load(Ordering::SeqCst) == 0 {
                return signal;
            }
            tracing::debug!(signal = signal.name(), "a step handles the signal itself");
        }
    }
}

impl Default for Listener {
    fn default() -> Self {
        Self::new()
    }
}

/// The report of a stopped command: one error line and a hint.
pub fn report(signal: StopSignal) -> (String, Option<String>) {
    let (complete, done, under_way) = with_journal(|journal| {
        (
            journal.complete,
            journal.done.clone(),
            journal
                .under_way
                .iter()
                .map(|(_, entry)| entry.clone())
                .collect::<Vec<_>>(),
        )
    });
    let mut message = format!("stopped by {}", signal.name());
    if complete && done.is_empty() && under_way.is_empty() {
        message.push_str(" before anything was changed in Azure");
    }
    if !done.is_empty() {
        let what: Vec<&str> = done.iter().map(|entry| entry.what.as_str()).collect();
        message.push_str(&format!("; done: {}", what.join("; ")));
    }
    if !under_way.is_empty() {
        let what: Vec<&str> = under_way.iter().map(|entry| entry.what.as_str()).collect();
        message.push_str(&format!("; cut short: {}", what.join("; ")));
    }
    let mut hints: Vec<String> = Vec::new();
    for hint in done
        .iter()
        .chain(&under_way)
        .filter_map(|entry| entry.hint.clone())
    {
        if !hints.contains(&hint) {
            hints.push(hint);
        }
    }
    let hint = (!hints.is_empty()).then(|| hints.join("; "));
    (message, hint)
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;

    // One test: the journal is process-wide.
    #[test]
    fn the_report_says_what_was_done_and_what_was_cut_short() {
        let (message, hint) = report(StopSignal::Terminate);
        assert_eq!(message, "stopped by SIGTERM");
        assert_eq!(hint, None);

        keep_complete_journal();
        let (message, _) = report(StopSignal::Interrupt);
        assert_eq!(
            message,
            "stopped by SIGINT (Ctrl-C) before anything was changed in Azure"
        );

        // A call that finished leaves nothing; one dropped half-way stays cut short.
        assert!(
            under_way(Entry::new("finished", "not shown"), async {})
                .now_or_never()
                .is_some()
        );
        done(Entry::new(
            "JIT enabled for web-01",
            "see `jit show web-01`",
        ));
        begin_step("starting", Entry::fact("web-01 was being started"));
        begin_step("ended", Entry::new("ended", "not shown either"));
        end_step("ended");
        let pending = under_way(
            Entry::new("a request was on its way", "see `jit show web-01`"),
            std::future::pending::<()>(),
        );
        assert!(pending.now_or_never().is_none());
        let (message, hint) = report(StopSignal::Terminate);
        assert_eq!(
            message,
            "stopped by SIGTERM; done: JIT enabled for web-01; cut short: web-01 was being started; a request was on its way"
        );
        assert_eq!(hint.as_deref(), Some("see `jit show web-01`"));
        assert_eq!(StopSignal::Interrupt.status().code(), 130);
        assert_eq!(StopSignal::Terminate.status().code(), 143);
    }
}
