//! The command line as users see it: `--help` of the main commands, and `--version`.
//! These snapshots are the reference for docs/commands.md; a change to a flag shows up
//! here for review.

use std::process::Command;

fn help(arguments: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_jit"))
        .args(arguments)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(0), "{arguments:?}");
    assert!(output.stderr.is_empty(), "help goes to stdout");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn connect_help() {
    insta::assert_snapshot!(help(&["connect", "--help"]));
}

#[test]
fn version_is_the_package_version() {
    assert_eq!(
        help(&["--version"]).trim(),
        format!("jit {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_subcommand_has_help() {
    for command in [
        "list",
        "show",
        "connect",
        "request",
        "enable",
        "disable",
        "edit",
        "policy",
        "doctor",
        "status",
        "extend",
        "proxy",
        "ssh-config",
        "agent",
        "auth",
        "config",
        "demo",
        "completions",
    ] {
        let text = help(&[command, "--help"]);
        assert!(text.contains("Usage: jit"), "{command}: {text}");
    }
}
