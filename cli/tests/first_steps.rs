//! What a new user met following docs/ against the emulator, each as it must be now:
//! the agent keeps the sign-in flags it was started with, `config show` can be read back,
//! `--cloud` wins over the environment, `--no-color` reaches the logs, `-o json` is
//! honoured or refused, the wrong protocol fails fast, and hints name what works.

mod support;

use support::{TestContext, text};

#[test]
fn config_show_prints_the_file_schema_and_reads_back_with_config() {
    let context = TestContext::new();
    let original = context.home().join("config/original.toml");
    std::fs::write(
        &original,
        "justification = \"ops\"\nduration = \"1h\"\n[enable]\nallowed_sources = [\"198.51.100.0/24\"]\n[vms.api-01]\nuser = \"ops\"\n",
    )
    .expect("config");
    let first = context
        .jit()
        .arg("--config")
        .arg(&original)
        .args(["config", "show"])
        .output()
        .expect("jit runs");
    let (shown, stderr) = text(&first);
    assert_eq!(first.status.code(), Some(0), "{stderr}");
    for section in ["[azure]", "[access]", "[launch]"] {
        assert!(!shown.contains(section), "not the file's schema: {shown}");
    }
    assert!(shown.contains("justification = \"ops\""), "{shown}");

    let saved = context.home().join("config/saved.toml");
    std::fs::write(&saved, &shown).expect("saved");
    let second = context
        .jit()
        .arg("--config")
        .arg(&saved)
        .args(["config", "show"])
        .output()
        .expect("jit runs");
    let (shown_again, stderr) = text(&second);
    assert_eq!(
        second.status.code(),
        Some(0),
        "the output reads back: {stderr}"
    );
    let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&shown_again), body(&shown), "the same settings");
}

#[test]
fn the_cloud_flag_wins_over_an_endpoint_in_the_environment() {
    let context = TestContext::new();
    let output = context
        .jit()
        .args([
            "--cloud",
            "AzureUSGovernment",
            "config",
            "show",
            "-o",
            "json",
        ])
        .output()
        .expect("jit runs");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let document: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(document["cloud"], "AzureUSGovernment", "{stdout}");
    assert!(document["arm_endpoint"].is_null(), "{stdout}");
}

#[test]
fn no_color_reaches_the_logs_too() {
    let context = TestContext::new();
    let output = context
        .jit()
        .env_remove("NO_COLOR")
        .args(["--no-color", "-v", "list", "-s", "Contoso Production"])
        .output()
        .expect("jit runs");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("DEBUG"), "-v logs: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no escape sequences: {stderr:?}"
    );
}

#[test]
fn json_output_is_honoured_by_ssh_config_and_config_path() {
    let context = TestContext::new();
    let output = context.run(&["ssh-config", "api-01", "-o", "json"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let document: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(document["entries"][0]["name"], "api-01");
    assert!(
        document["config"]
            .as_str()
            .is_some_and(|text| text.contains("ProxyCommand")),
        "{stdout}"
    );

    let output = context.run(&["config", "path", "-o", "json"]);
    let (stdout, _) = text(&output);
    let document: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert!(document["path"].as_str().is_some(), "{stdout}");
    assert_eq!(document["exists"], false);
}

#[test]
fn the_wrong_protocol_fails_at_once_and_says_which_one_answered() {
    let context = TestContext::new();
    let output = context.run(&[
        "connect",
        "api-01",
        "--rdp",
        "--no-launch",
        "--timeout",
        "10m",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("SSH answered"), "{stderr}");
    assert!(
        stderr.contains("--ssh"),
        "the hint says what to do: {stderr}"
    );
    assert!(
        !stderr.contains("NSG"),
        "not blamed on the network: {stderr}"
    );
}

#[test]
fn hints_name_the_failing_commands_own_flags() {
    let context = TestContext::new();
    let output = context.run(&["request", "dev-01"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("jit request dev-01 --enable"), "{stderr}");
    assert!(!stderr.contains("jit connect"), "{stderr}");

    let output = context.run(&["proxy", "api-01", "2222"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("with --port"),
        "proxy takes the port as an argument: {stderr}"
    );

    let output = context.run(&["extend", "classic-01"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("classic"), "{stderr}");
    assert!(
        !stderr.contains("jit connect"),
        "connect can never work: {stderr}"
    );

    let output = context.run(&["enable", "classic-01"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(8), "{stderr}");
    assert!(
        stderr.contains("JIT does not support classic VMs"),
        "{stderr}"
    );
}

#[test]
fn several_ports_are_called_ports() {
    let context = TestContext::new();
    let output = context.run(&[
        "connect",
        "ops-01",
        "--no-launch",
        "--justification",
        "two ports",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Requested ports "), "{stderr}");
    assert!(!stderr.contains("Requested port "), "{stderr}");
}

#[test]
fn a_huge_timeout_saturates_instead_of_panicking() {
    let context = TestContext::new();
    let output = context.run(&[
        "connect",
        "api-01",
        "--no-launch",
        "--timeout",
        "9000000000000000000s",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
