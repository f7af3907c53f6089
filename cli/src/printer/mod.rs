//! All terminal output goes through the [`Printer`].
//!
//! stdout carries data only (a table or one JSON document), so `jit list -o json | jq`
//! always works; stderr carries everything meant for a person: progress, warnings,
//! errors and hints. Colour is used only on a terminal, never when `NO_COLOR` is set, and
//! never carries meaning on its own. A closed stdout (`jit list | head -1`) is not an
//! error: the printer stops writing and the command finishes normally.

pub mod access;
pub mod doctor;
pub mod format;
pub mod inventory;
pub mod policy;
pub mod table;
pub mod windows;

use std::fmt::Display;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use owo_colors::OwoColorize;
use serde::Serialize;

/// Output format for data on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Table,
    Json,
}

/// How much a command says on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Progress, warnings and errors.
    Normal,
    /// Also details of what is happening.
    Verbose,
}

/// The one way commands write to the terminal.
#[derive(Debug, Clone)]
pub struct Printer {
    format: OutputFormat,
    verbosity: Verbosity,
    color: bool,
    stderr_is_terminal: bool,
    stdout_closed: Arc<AtomicBool>,
}

impl Printer {
    /// A printer for the real terminal.
    pub fn new(format: OutputFormat, verbosity: Verbosity, color_allowed: bool) -> Self {
        let stderr_is_terminal = io::stderr().is_terminal();
        Self {
            format,
            verbosity,
            color: color_allowed && stderr_is_terminal,
            stderr_is_terminal,
            stdout_closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same printer, saying at most this much on stderr.
    pub fn at_most(&self, verbosity: Verbosity) -> Self {
        Self {
            verbosity: self.verbosity.min(verbosity),
            ..self.clone()
        }
    }

    /// Whether `--verbose` was given.
    pub fn is_verbose(&self) -> bool {
        self.verbosity >= Verbosity::Verbose
    }

    /// The output format for data.
    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Whether the output is JSON.
    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Whether stderr is a terminal a person is looking at.
    pub fn is_interactive(&self) -> bool {
        self.stderr_is_terminal && io::stdin().is_terminal()
    }

    /// Writes data to stdout, a line at a time.
    pub fn data(&self, text: impl Display) {
        if self.stdout_closed.load(Ordering::Relaxed) {
            return;
        }
        let mut stdout = io::stdout().lock();
        if let Err(error) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
            self.note_stdout_error(&error);
        }
    }

    /// Writes one JSON document to stdout.
    ///
    /// The document is encoded straight into a buffered stdout rather than into one
    /// string first: `jit list -o json` of thousands of VMs never holds its output twice.
    pub fn json(&self, value: &impl Serialize) {
        if self.stdout_closed.load(Ordering::Relaxed) {
            return;
        }
        let mut stdout = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
        if let Err(error) = serde_json::to_writer_pretty(&mut stdout, value) {
            if error.is_io() {
                self.note_stdout_error(&io::Error::from(error));
            } else {
                self.error(&format!("could not encode JSON output: {error}"), None);
            }
            return;
        }
        if let Err(error) = writeln!(stdout).and_then(|()| stdout.flush()) {
            self.note_stdout_error(&error);
        }
    }

    fn note_stdout_error(&self, error: &io::Error) {
        self.stdout_closed.store(true, Ordering::Relaxed);
        if error.kind() != io::ErrorKind::BrokenPipe {
            self.error(&format!("could not write to stdout: {error}"), None);
        }
    }

    fn stderr_line(&self, line: &str) {
        let mut stderr = io::stderr().lock();
        // Nothing sensible is left to do when stderr itself is gone.
        let _ = writeln!(stderr, "{line}");
    }

    /// Something a person should know, on stderr (hidden by `--quiet`).
    pub fn info(&self, message: impl Display) {
        if self.verbosity >= Verbosity::Normal {
            self.stderr_line(&message.to_string());
        }
    }

    /// A detail shown only with `--verbose`.
    pub fn detail(&self, message: impl Display) {
        if self.verbosity >= Verbosity::Verbose {
            let text = message.to_string();
            if self.color {
                self.stderr_line(&text.dimmed().to_string());
            } else {
                self.stderr_line(&text);
            }
        }
    }

    /// A step that finished well.
    pub fn success(&self, message: impl Display) {
        if self.verbosity >= Verbosity::Normal {
            let text = message.to_string();
            if self.color {
                self.stderr_line(&format!("{} {text}", "✓".green()));
            } else {
                self.stderr_line(&format!("✓ {text}"));
            }
        }
    }

    /// A warning, shown even with `--quiet`.
    pub fn warn(&self, message: impl Display) {
        let label = if self.color {
            "warning".yellow().bold().to_string()
        } else {
            "warning".to_owned()
        };
        self.stderr_line(&format!("{label}: {message}"));
    }

    /// An error with an optional hint, shown even with `--quiet`.
    pub fn error(&self, message: &str, hint: Option<&str>) {
        let label = if self.color {
            "error".red().bold().to_string()
        } else {
            "error".to_owned()
        };
        self.stderr_line(&format!("{label}: {message}"));
        if let Some(hint) = hint {
            let label = if self.color {
                "hint".cyan().bold().to_string()
            } else {
                "hint".to_owned()
            };
            self.stderr_line(&format!("  {label}: {hint}"));
        }
    }

    /// A progress line: a spinner on a terminal, a plain line otherwise, nothing with
    /// `--quiet`.
    pub fn progress(&self, message: impl Display) -> Progress {
        let message = message.to_string();
        if self.verbosity < Verbosity::Normal {
            return Progress { bar: None };
        }
        if self.stderr_is_terminal {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}") {
                bar.set_style(style);
            }
            bar.set_message(message);
            bar.enable_steady_tick(Duration::from_millis(100));
            Progress { bar: Some(bar) }
        } else {
            self.stderr_line(&format!("{message}…"));
            Progress { bar: None }
        }
    }
}

/// A running progress indicator. Dropping it clears the spinner.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Changes the message while waiting.
    pub fn set_message(&self, message: impl Display) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
