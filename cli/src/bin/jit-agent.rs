//! `jit-agent`: the background agent, as its own small, windowless program.
//!
//! `jit` starts it on demand (detached, in its own process group) and login entries run
//! it as `jit-agent run`. It is a separate binary rather than `jit agent run` alone so
//! that on Windows it can be built for the GUI subsystem (no console window pops up at
//! login or when `jit` starts it) while `jit` stays a console program.
//!
//! Everything it does lives in `jit_agent::daemon` and `jit::agent_runner` (shared with
//! `jit agent run`); this file only resolves settings (the same flags, environment
//! variables and config file as `jit`), opens the log file in the state dir, and runs the
//! agent until it is told to stop (a client's `Shutdown`, SIGTERM/SIGINT, Ctrl-C on
//! Windows).

#![cfg_attr(windows, windows_subsystem = "windows")]

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use jit::agent_runner::{RunOutcome, init_file_logging, run_agent};
use jit::agent_support::agent_paths;
use jit::args::Cli;
use jit::settings::{Environment, GlobalSettings};

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = arguments.iter().map(String::as_str).collect();
    if matches!(words.as_slice(), ["--version" | "-V"]) {
        let _ = writeln!(std::io::stdout(), "jit-agent {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if matches!(words.as_slice(), ["--help" | "-h" | "help"]) {
        let _ = writeln!(
            std::io::stdout(),
            "jit-agent {}: the background agent of `jit`.\n\n\
             It remembers open just-in-time access windows, notifies before and when each\n\
             ends, extends them on request and keeps Azure tokens warm. `jit` starts it on\n\
             demand; `jit agent install` starts it at login.\n\n\
             Usage: jit-agent [run] [jit's global options, e.g. --config FILE]\n\n\
             Manage it with `jit agent start|stop|status|install|uninstall`.",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let cli = match parse_arguments(&words) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(2);
        }
    };
    let settings = match GlobalSettings::resolve(&cli.global, &Environment::from_process()) {
        Ok(settings) => settings,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "jit-agent: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            let _ = writeln!(std::io::stderr(), "jit-agent: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `jit-agent [run] [global flags]`, read as `jit agent run [global flags]`: the agent
/// takes the same global flags as `jit` (`--config`, `--cloud`, …).
fn parse_arguments(words: &[&str]) -> Result<Cli, clap::Error> {
    let rest = match words {
        ["run", rest @ ..] => rest,
        rest => rest,
    };
    Cli::try_parse_from(["jit", "agent", "run"].iter().chain(rest))
}

fn run(settings: &GlobalSettings) -> anyhow::Result<()> {
    let paths = agent_paths(settings)?;
    std::fs::create_dir_all(paths.state_dir())
        .with_context(|| format!("cannot create {}", paths.state_dir().display()))?;
    let filter = std::env::var(jit::env_vars::JIT_LOG).ok();
    init_file_logging(&paths.log_file(), filter.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tell = |message: &str| {
        let _ = writeln!(std::io::stderr(), "jit-agent: {message}");
    };
    let result = runtime.block_on(run_agent(settings, paths, tell));
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let RunOutcome::AlreadyRunning(message) = result? {
        // Not a failure: exiting 0 also keeps systemd and launchd from restarting this
        // copy in a loop.
        tell(&format!("{message}; this copy exits"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn run_is_optional_and_global_flags_are_accepted() {
        assert!(parse_arguments(&[]).is_ok());
        assert!(parse_arguments(&["run"]).is_ok());
        let with_config = parse_arguments(&["run", "--config", "/tmp/jit.toml"]);
        assert_eq!(
            with_config.ok().and_then(|cli| cli.global.config),
            Some(PathBuf::from("/tmp/jit.toml"))
        );
        assert!(parse_arguments(&["stop"]).is_err());
    }
}
