//! `jit-emulator`: runs the emulator for other programs.
//!
//! The contract other tools rely on: it prints exactly one JSON line on stdout once it
//! accepts connections (see [`jit_emulator::EmulatorInfo`]), then serves until SIGTERM,
//! Ctrl-C, or until its stdin closes, so a parent that dies takes the emulator with it.
//! A world file it cannot load is a one-line error on stderr and exit code 2.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use jit_emulator::{Emulator, EmulatorError, EmulatorOptions, FaultSpec, World};

/// A local Azure (ARM, Entra ID token endpoint, JIT-gated VM ports) for testing JIT VM
/// access tools.
#[derive(Debug, Parser)]
#[command(name = "jit-emulator", version, about)]
struct Args {
    /// Loopback address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// World file (.toml or .json); the built-in default world when absent.
    #[arg(long, value_name = "FILE")]
    world: Option<PathBuf>,
    /// Directory for ca.pem, the SSH identity and the fake az (kept on exit); a temporary
    /// directory, removed on exit, when absent.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// How long an initiated JIT request stays Initiating (PT3S, 500ms, 2s…).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    initiating_delay: Option<jiff::SignedDuration>,
    /// How long issued access tokens live (PT1H, 10m…).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    token_lifetime: Option<jiff::SignedDuration>,
    /// The public address ARM attributes to callers and connections.
    #[arg(long, value_name = "ADDRESS")]
    client_ip: Option<IpAddr>,
    /// JSON file with a list of faults active from the start (see docs/emulator.md).
    #[arg(long, value_name = "FILE")]
    faults: Option<PathBuf>,
    /// Keep serving when stdin closes (stop with SIGTERM only).
    #[arg(long)]
    ignore_stdin: bool,
}

fn parse_duration(text: &str) -> Result<jiff::SignedDuration, String> {
    jit_emulator::admin::parse_duration(text)
        .filter(|duration| !duration.is_negative())
        .ok_or_else(|| format!("{text:?} is not a duration (use PT3S, 500ms, 2m…)"))
}

/// Exit code for a world (or faults) file that cannot be used.
const EXIT_BAD_WORLD: u8 = 2;

#[path = "bin_memory.rs"]
mod memory;

fn main() -> ExitCode {
    memory::use_one_arena();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JIT_EMULATOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let world = match &args.world {
        Some(path) => match World::load(path) {
            Ok(world) => world,
            Err(error) => return fail(EXIT_BAD_WORLD, &error.to_string()),
        },
        None => World::default_world(),
    };
    let faults = match &args.faults {
        Some(path) => match load_faults(path) {
            Ok(faults) => faults,
            Err(message) => return fail(EXIT_BAD_WORLD, &message),
        },
        None => Vec::new(),
    };
    let defaults = EmulatorOptions::default();
    let options = EmulatorOptions {
        listen: args.listen,
        state_dir: args.state_dir.clone(),
        initiating_delay: args.initiating_delay.unwrap_or(defaults.initiating_delay),
        token_lifetime: args.token_lifetime.unwrap_or(defaults.token_lifetime),
        client_ip: args.client_ip.unwrap_or(defaults.client_ip),
        faults,
    };
    let emulator = match Emulator::start_with(world, options) {
        Ok(emulator) => emulator,
        Err(
            error @ (EmulatorError::World(_)
            | EmulatorError::NoServicePrincipal
            | EmulatorError::Fault(_)),
        ) => {
            return fail(EXIT_BAD_WORLD, &error.to_string());
        }
        Err(error) => return fail(1, &error.to_string()),
    };
    memory::release_free_memory();
    let line = match serde_json::to_string(emulator.info()) {
        Ok(line) => line,
        Err(error) => return fail(1, &format!("cannot encode the emulator info: {error}")),
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return fail(1, "cannot write the emulator info to stdout");
    }
    drop(stdout);

    match wait_for_stop(args.ignore_stdin) {
        Ok(reason) => {
            tracing::info!(reason, "stopping");
            drop(emulator);
            ExitCode::SUCCESS
        }
        Err(error) => fail(1, &format!("cannot wait for a stop signal: {error}")),
    }
}

fn load_faults(path: &std::path::Path) -> Result<Vec<FaultSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read faults file {}: {error}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|error| format!("cannot parse faults file {}: {error}", path.display()))
}

/// Reports `message` as one line on stderr (parsers' multi-line messages are joined) and
/// returns `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    let one_line = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let _ = writeln!(std::io::stderr(), "jit-emulator: {one_line}");
    ExitCode::from(code)
}

/// Blocks until SIGTERM, SIGINT or the end of stdin; says which.
fn wait_for_stop(ignore_stdin: bool) -> std::io::Result<&'static str> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reason = runtime.block_on(async move {
        let stdin_closed = async {
            if ignore_stdin {
                std::future::pending::<()>().await;
            }
            let mut stdin = tokio::io::stdin();
            let mut buffer = [0u8; 1024];
            loop {
                match tokio::io::AsyncReadExt::read(&mut stdin, &mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        #[cfg(unix)]
        {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = terminate.recv() => Ok::<_, std::io::Error>("SIGTERM"),
                _ = tokio::signal::ctrl_c() => Ok("SIGINT"),
                () = stdin_closed => Ok("stdin closed"),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Ok::<_, std::io::Error>("Ctrl-C"),
                () = stdin_closed => Ok("stdin closed"),
            }
        }
    })?;
    // The stdin reader may still sit in a blocking read; do not wait for it.
    runtime.shutdown_background();
    Ok(reason)
}
