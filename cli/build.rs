//! Renders `jit --help`, `jit -h` and `jit --version` at build time, so that `jit` can
//! answer them without building its command line first (see `src/startup.rs`): the
//! texts are what clap prints for the same definition (`src/args.rs`, which knows
//! nothing but clap) without colours at clap's widest wrapping (100 columns).

// Build scripts talk to cargo on stdout.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use clap::CommandFactory as _;

#[allow(dead_code)]
#[path = "src/args.rs"]
mod args;

fn main() {
    println!("cargo::rerun-if-changed=src/args.rs");
    println!("cargo::rerun-if-changed=build.rs");
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        println!("cargo::error=OUT_DIR is not set");
        return;
    };
    let mut command = args::Cli::command().term_width(100);
    let texts = [
        ("long_help.txt", command.render_long_help().to_string()),
        ("short_help.txt", command.render_help().to_string()),
        ("version.txt", command.render_version()),
    ];
    for (name, text) in texts {
        if let Err(error) = std::fs::write(out_dir.join(name), text) {
            println!("cargo::error=cannot write {name}: {error}");
        }
    }
}
