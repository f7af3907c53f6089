//! docs/exit-codes.md and the code agree: the table lists exactly the statuses `jit`
//! has, under the same names, and every documented code is produced, end to end against
//! the emulator, by the situation the table describes.

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Output, Stdio};

use jit::error::ExitStatus;
use jit_emulator::{FaultKind, FaultSpec};
use support::{TestContext, text};

/// The documented table: code → name.
fn documented() -> BTreeMap<u8, String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/exit-codes.md"
    ))
    .expect("docs/exit-codes.md");
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse::<u8>().ok()?;
            Some((code, cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn the_table_lists_every_status_under_its_name() {
    let from_code: BTreeMap<u8, String> = ExitStatus::DOCUMENTED
        .iter()
        .map(|status| (status.code(), status.name().to_owned()))
        .collect();
    assert_eq!(documented(), from_code);
}

fn fault(method: &str, path: &str, kind: FaultKind) -> FaultSpec {
    FaultSpec {
        method: Some(method.to_owned()),
        path: Some(path.to_owned()),
        path_regex: None,
        fault: kind,
        probability: None,
        times: None,
    }
}

/// Runs `jit` and checks the exit code and that stderr says `expected`.
fn expect(output: &Output, code: u8, expected: &str) {
    let (_, stderr) = text(output);
    assert_eq!(output.status.code(), Some(i32::from(code)), "{stderr}");
    assert!(stderr.contains(expected), "exit {code}: {stderr}");
    if code != 0 {
        assert_eq!(
            stderr
                .lines()
                .filter(|line| line.starts_with("error:"))
                .count(),
            1,
            "one error line: {stderr}"
        );
    }
}

#[test]
fn every_documented_code_is_what_its_situation_produces() {
    let context = TestContext::new();
    let documented = documented();
    let mut seen = Vec::new();
    let mut check = |code: u8, output: Output, expected: &str| {
        assert!(documented.contains_key(&code), "{code} is not documented");
        expect(&output, code, expected);
        seen.push(code);
    };

    check(0, context.run(&["list", "-s", "Contoso Production"]), "");
    // Something with no code of its own: the .rdp file cannot be written.
    check(
        1,
        context
            .jit()
            .env("JIT_STATE_DIR", "/dev/null/jit")
            .args(["connect", "sql-01", "--no-launch"])
            .output()
            .expect("jit runs"),
        ".rdp",
    );
    check(
        2,
        context.run(&["connect", "api-01", "--duration", "soon"]),
        "invalid --duration 'soon'",
    );
    check(3, context.run(&["show", "web-99"]), "no VM named 'web-99'");
    check(
        4,
        context
            .jit()
            .env("JIT_AUTH", "service-principal")
            .env_remove("AZURE_CLIENT_ID")
            .args(["list"])
            .output()
            .expect("jit runs"),
        "",
    );
    context
        .emulator
        .inject_fault(fault(
            "GET",
            "/subscriptions/*/providers/Microsoft.Security/jitNetworkAccessPolicies",
            FaultKind::Forbidden,
        ))
        .expect("a fault");
    check(
        5,
        context.run(&["show", "api-01"]),
        "jitNetworkAccessPolicies/read",
    );
    context.emulator.clear_faults();
    context
        .emulator
        .inject_fault(fault("GET", "/subscriptions", FaultKind::InternalError))
        .expect("a fault");
    let config = context.home().join("config/quick-retries.toml");
    std::fs::write(&config, "max_retry_wait = \"1s\"\n").expect("config");
    check(
        6,
        context
            .jit()
            .args(["--config"])
            .arg(&config)
            .args(["list"])
            .output()
            .expect("jit runs"),
        "HTTP 500",
    );
    context.emulator.clear_faults();
    check(
        7,
        context.run(&[
            "connect",
            "api-01",
            "--no-launch",
            "--source",
            "192.0.2.1",
            "--timeout",
            "3s",
        ]),
        "did not answer",
    );
    check(
        8,
        context.run(&["connect", "dev-01"]),
        "JIT is not enabled for dev-01",
    );
    #[cfg(unix)]
    check(
        143,
        terminated_while_listing(&context),
        "stopped by SIGTERM before anything was changed in Azure",
    );
    // On a terminal the question is asked; "no" is not a failure but a decision.
    let declined = declined_on_a_terminal(&context);
    let terminal = String::from_utf8_lossy(&declined.stdout);
    assert_eq!(declined.status.code(), Some(130), "{terminal}");
    assert!(
        terminal.contains("Enable it"),
        "the question was asked: {terminal}"
    );
    seen.push(130);

    let mut expected: Vec<u8> = documented.keys().copied().collect();
    // Windows has no SIGTERM.
    #[cfg(not(unix))]
    expected.retain(|code| *code != 143);
    expected.sort_unstable();
    seen.sort_unstable();
    assert_eq!(seen, expected, "a documented code without a situation");
}

/// `jit list` held at its first ARM call (a slow answer), then sent SIGTERM.
#[cfg(unix)]
fn terminated_while_listing(context: &TestContext) -> Output {
    let held = context
        .emulator
        .inject_fault(FaultSpec {
            times: Some(1),
            ..fault(
                "GET",
                "/subscriptions",
                FaultKind::Latency {
                    delay: "30s".to_owned(),
                },
            )
        })
        .expect("a fault");
    let child = context
        .jit()
        .arg("list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !context
        .emulator
        .faults()
        .iter()
        .any(|status| status.id == held && status.hits == 1)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "jit list never reached Azure"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("a pid")).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM sent");
    let output = child.wait_with_output().expect("jit ends");
    context.emulator.clear_faults();
    output
}

/// `jit connect dev-01` on a terminal (a pseudo-terminal from `script`), answering "n"
/// to "Enable it?".
fn declined_on_a_terminal(context: &TestContext) -> Output {
    let jit = env!("CARGO_BIN_EXE_jit");
    let mut child = context
        .command("script")
        .args(["-qec", &format!("{jit} connect dev-01"), "/dev/null"])
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    // dialoguer reads one key from the terminal; give the prompt a moment to appear.
    std::thread::sleep(std::time::Duration::from_secs(3));
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"n")
        .expect("answered");
    child.wait_with_output().expect("jit ends")
}
