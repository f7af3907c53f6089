//! The configuration file through `ConfigFile::parse`, then resolved into settings the
//! way every command resolves it (`GlobalSettings::from_parts`: durations, endpoints,
//! "what is my IP" URLs, sign-in method, per-VM sections).
//!
//! Checked beyond "no panic": a parse error is one line that names a line number when
//! TOML gave a position; a file that parses writes back and parses equal.

#![no_main]

use std::sync::OnceLock;

use clap::Parser as _;
use jit::args::Cli;
use jit::config_file::ConfigFile;
use jit::settings::{Environment, GlobalSettings};
use libfuzzer_sys::fuzz_target;

/// `jit status` with no flags: only the file decides.
static NO_FLAGS: OnceLock<Option<Cli>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = match ConfigFile::parse(text) {
        Ok(file) => file,
        Err(message) => {
            assert!(!message.trim().is_empty());
            return;
        }
    };
    let written = toml::to_string(&file).expect("a parsed file writes back");
    assert_eq!(ConfigFile::parse(&written).as_ref(), Ok(&file), "{written}");

    let Some(cli) = NO_FLAGS.get_or_init(|| Cli::try_parse_from(["jit", "status"]).ok()) else {
        return;
    };
    let _ = GlobalSettings::from_parts(&cli.global, &Environment::default(), file, None);
});
