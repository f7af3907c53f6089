//! Answers `jit --version`, `jit -V`, `jit --help` and `jit -h` before anything is built.
//!
//! Scripts and shells call `jit --version` to check it is there, and a person reads
//! `--help` often; both should cost no more than starting a process. Parsing the command
//! line with clap first means building the whole command tree (every subcommand and
//! flag) on the heap, which alone doubles the cost of starting `jit`. So these four
//! exact command lines print texts rendered at build time from the same definition
//! (`build.rs`, `args.rs`), and nothing else happens: no runtime, no logging, no config.
//!
//! The texts are what clap prints without colours at its widest wrapping (100 columns).
//! When clap would print something else, the arguments go to clap as usual: a terminal
//! on stdin, stdout or stderr (colours, and its width), `COLUMNS` narrower than 100, or
//! `CLICOLOR_FORCE`.

use std::ffi::OsStr;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

/// `jit --version`.
const VERSION: &str = include_str!(concat!(env!("OUT_DIR"), "/version.txt"));
/// `jit --help`.
const LONG_HELP: &str = include_str!(concat!(env!("OUT_DIR"), "/long_help.txt"));
/// `jit -h`.
const SHORT_HELP: &str = include_str!(concat!(env!("OUT_DIR"), "/short_help.txt"));

/// The text for a command line that is exactly one of the four, if it can be printed
/// as rendered (`plain_help`: whether help would be printed plain at 100 columns).
fn quick_text(argument: &OsStr, plain_help: impl FnOnce() -> bool) -> Option<&'static str> {
    let text = match argument.to_str()? {
        "--version" | "-V" => return Some(VERSION),
        "--help" => LONG_HELP,
        "-h" => SHORT_HELP,
        _ => return None,
    };
    plain_help().then_some(text)
}

/// Whether clap would print help without colours at 100 columns here.
fn help_is_plain() -> bool {
    let no_terminal = !std::io::stdout().is_terminal()
        && !std::io::stderr().is_terminal()
        && !std::io::stdin().is_terminal();
    let columns_allow = std::env::var("COLUMNS")
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
        .is_none_or(|columns| columns >= 100);
    let colour_forced = std::env::var_os("CLICOLOR_FORCE").is_some_and(|value| value != "0");
    no_terminal && columns_allow && !colour_forced
}

/// Prints the answer and says how to exit, when the process's arguments are exactly one
/// of `--version`, `-V`, `--help`, `-h` and the text applies; `None` otherwise.
pub fn answer_quickly() -> Option<ExitCode> {
    let mut arguments = std::env::args_os().skip(1);
    let argument = arguments.next()?;
    if arguments.next().is_some() {
        return None;
    }
    let text = quick_text(&argument, help_is_plain)?;
    // As clap does: a closed stdout is not an error worth a status.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Some(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;
    use crate::args::Cli;

    #[test]
    fn the_texts_are_what_clap_renders_now() {
        let mut command = Cli::command().term_width(100);
        assert_eq!(VERSION, command.render_version());
        assert_eq!(LONG_HELP, command.render_long_help().to_string());
        assert_eq!(SHORT_HELP, command.render_help().to_string());
    }

    #[test]
    fn only_the_four_command_lines_are_answered() {
        assert_eq!(quick_text(OsStr::new("--version"), || false), Some(VERSION));
        assert_eq!(quick_text(OsStr::new("-V"), || false), Some(VERSION));
        assert_eq!(quick_text(OsStr::new("--help"), || true), Some(LONG_HELP));
        assert_eq!(quick_text(OsStr::new("-h"), || true), Some(SHORT_HELP));
        assert_eq!(quick_text(OsStr::new("--help"), || false), None);
        assert_eq!(quick_text(OsStr::new("list"), || true), None);
        assert!(VERSION.starts_with("jit "));
    }
}
