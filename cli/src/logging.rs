//! Diagnostic logging with `tracing`, on stderr.
//!
//! Off unless asked for: `-v` shows `jit`'s own debug events, `-vv` adds the HTTP layer
//! (azure_core, azure_identity) and `jit`'s trace events, `JIT_LOG` takes any env-filter
//! expression (`JIT_LOG=jit_agent=trace,azure_core=debug`). Logs are for
//! troubleshooting, never for data; nothing logged may contain a token or a secret.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::printer::Verbosity;

/// Installs the global subscriber. Safe to call once per process. Colours only when
/// `color` allows them (`--no-color`, `NO_COLOR`) and stderr is a terminal.
pub fn init(verbosity: Verbosity, verbose_count: u8, filter: Option<&str>, color: bool) {
    let default = match (verbosity, verbose_count) {
        (Verbosity::Verbose, 0 | 1) => "jit=debug,jit_agent=debug",
        (Verbosity::Verbose, _) => {
            "jit=trace,jit_agent=trace,azure_core=debug,azure_identity=debug,typespec_client_core=debug"
        }
        (Verbosity::Normal | Verbosity::Quiet, _) => "off",
    };
    let filter = filter
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .with_ansi(color && std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}
