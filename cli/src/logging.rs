//! Diagnostic logging with `tracing`, on stderr.
//!
//! Off unless asked for: `-v` shows `jit`'s own debug events, `JIT_LOG` takes any
//! env-filter expression (`JIT_LOG=jit_agent=trace,azure_core=debug`). Logs are for
//! troubleshooting, never for data; nothing logged may contain a token or a secret.

use tracing_subscriber::EnvFilter;

use crate::printer::Verbosity;

/// Installs the global subscriber. Safe to call once per process.
pub fn init(verbosity: Verbosity, filter: Option<&str>) {
    let default = match verbosity {
        Verbosity::Verbose => "jit=debug,jit_agent=debug",
        Verbosity::Normal | Verbosity::Quiet => "off",
    };
    let filter = filter
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .without_time()
        .try_init();
}
