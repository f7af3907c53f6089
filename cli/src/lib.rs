//! `jit`: just-in-time VM access for Azure, from the terminal.
//!
//! This crate is the command line: it parses arguments ([`args`]), resolves them with the
//! environment and config file into typed settings ([`settings`]), runs one command
//! ([`commands`]) and prints through one [`printer::Printer`]. What a command does lives
//! in the `jit_agent` library; this crate decides how to present it and which exit code
//! it earns ([`error`]). Both binaries, `jit` and the windowless `jit-agent`, are thin
//! shims over [`main`] and the agent's runner.

pub mod agent_runner;
pub mod agent_support;
pub mod args;
pub mod commands;
pub mod config_file;
pub mod connection;
pub mod env_vars;
pub mod error;
pub mod interaction;
pub mod interruption;
pub mod launch;
pub mod logging;
pub mod printer;
pub mod session;
pub mod settings;
pub mod startup;
pub mod warm_token;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::Cli;
use crate::error::{CommandKind, ExitStatus, classify};
use crate::printer::{Printer, Verbosity};
use crate::settings::{Environment, GlobalSettings, OutputFormat};

/// Runs `jit` with the process's arguments and environment.
pub fn main() -> ExitCode {
    // `--version` and `--help` before anything is built (see `startup`).
    if let Some(code) = startup::answer_quickly() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and version on stdout and errors on stderr by itself.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                ExitStatus::Usage.code()
            } else {
                ExitStatus::Success.code()
            });
        }
    };
    let environment = Environment::from_process();
    let settings = match GlobalSettings::resolve(&cli.global, &environment) {
        Ok(settings) => settings,
        Err(error) => {
            let printer = Printer::new(
                OutputFormat::Table,
                Verbosity::Normal,
                environment.get(env_vars::NO_COLOR).is_none(),
            );
            let report = classify(&anyhow::Error::new(error), CommandKind::Other);
            printer.error(&report.message, report.hint.as_deref());
            return ExitCode::from(report.status.code());
        }
    };
    let printer = Printer::new(settings.output, settings.verbosity, settings.color);
    logging::init(
        settings.verbosity,
        cli.global.verbose,
        environment.get(env_vars::JIT_LOG),
        settings.color,
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            printer.error(&format!("could not start the async runtime: {error}"), None);
            return ExitCode::from(ExitStatus::Failure.code());
        }
    };
    let kind = commands::kind(&cli.command);
    let result = runtime.block_on(async {
        // SIGINT and SIGTERM drop the command at its next await point; what it had done
        // is reported below (see `interruption`).
        let mut listener = interruption::Listener::new();
        tokio::select! {
            result = commands::run(cli.command, settings, printer.clone()) => result,
            signal = listener.stop() => Err(anyhow::Error::new(interruption::Stopped(signal))),
        }
    });
    // Don't wait for stray blocking tasks (a hung `az`) once the command is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(error) => {
            if let Some(&interruption::Stopped(signal)) = error
                .chain()
                .find_map(|cause| cause.downcast_ref::<interruption::Stopped>())
            {
                let (message, hint) = interruption::report(signal);
                printer.error(&message, hint.as_deref());
                return ExitCode::from(signal.status().code());
            }
            let report = classify(&error, kind);
            if !report.silent {
                printer.error(&report.message, report.hint.as_deref());
            }
            ExitCode::from(report.status.code())
        }
    }
}
