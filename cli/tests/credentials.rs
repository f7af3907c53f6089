//! Every way `jit` signs in, through the real binary against the emulator's Entra ID:
//! the Azure CLI (the emulator's fake `az`), a service principal through the token
//! endpoint, a managed identity through `IDENTITY_ENDPOINT`; and `jit auth`, which
//! stores a client secret in the OS keychain (read from stdin only) and says which
//! sign-in would be used. Secrets must never appear in anything `jit` prints: every
//! test that hands one to `jit` checks stdout and stderr for it.

mod support;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use support::{TestContext, text, transcript};

const READER_CLIENT_ID: &str = "9e1f3a5c-7b2d-4e6f-8a1c-3d5e7f9b2c40";
const READER_SECRET: &str = "jit-reader-secret-not-for-production";

fn assert_success(output: &Output) {
    let (stdout, stderr) = text(output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "jit failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

fn assert_never_printed(output: &Output, secret: &str) {
    let (stdout, stderr) = text(output);
    assert!(
        !stdout.contains(secret),
        "the secret is on stdout:\n{stdout}"
    );
    assert!(
        !stderr.contains(secret),
        "the secret is on stderr:\n{stderr}"
    );
}

/// `jit` signing in as a service principal from the environment.
fn as_service_principal(context: &TestContext, client_id: &str, secret: &str) -> Command {
    let mut command = context.jit();
    command
        .env("JIT_AUTH", "service-principal")
        .env("AZURE_TENANT_ID", &context.emulator.info().tenant_id)
        .env("AZURE_CLIENT_ID", client_id)
        .env("AZURE_CLIENT_SECRET", secret);
    command
}

/// `jit` signing in with the emulator's managed identity.
fn as_managed_identity(context: &TestContext) -> Command {
    let identity = context.emulator.managed_identity();
    let mut command = context.jit();
    command
        .env("JIT_AUTH", "managed-identity")
        .env("IDENTITY_ENDPOINT", &identity.endpoint)
        .env("IDENTITY_HEADER", &identity.header);
    command
}

fn token_calls(context: &TestContext) -> usize {
    context
        .emulator
        .az_calls()
        .iter()
        .filter(|call| call.contains("get-access-token"))
        .count()
}

fn requests_to(context: &TestContext, path_start: &str) -> usize {
    support::count_requests_under(&context.emulator, path_start)
}

fn listed_vms(output: &Output) -> usize {
    let (stdout, _) = text(output);
    let document: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    document["vms"].as_array().map_or(0, Vec::len)
}

#[test]
fn the_azure_cli_is_asked_once_per_run() {
    let context = TestContext::new();
    let output = context.run(&["list", "-o", "json"]);
    assert_success(&output);
    assert_eq!(listed_vms(&output), 11);
    assert_eq!(
        token_calls(&context),
        1,
        "the token is cached for every ARM call of the run: {:?}",
        context.emulator.az_calls()
    );
}

#[test]
fn a_service_principal_signs_in_through_the_token_endpoint() {
    let context = TestContext::new();
    let principal = context.emulator.info().service_principal.clone();
    let output = as_service_principal(&context, &principal.client_id, &principal.client_secret)
        .args(["list", "-o", "json"])
        .output()
        .expect("jit runs");
    assert_success(&output);
    assert_eq!(listed_vms(&output), 11);
    assert_never_printed(&output, &principal.client_secret);
    let tenant = &context.emulator.info().tenant_id;
    assert_eq!(
        requests_to(&context, &format!("/{tenant}/oauth2/v2.0/token")),
        1,
        "one token for the whole run"
    );
    assert_eq!(token_calls(&context), 0, "az is not involved");

    // Chosen automatically when the three variables are set.
    let output = as_service_principal(&context, &principal.client_id, &principal.client_secret)
        .env_remove("JIT_AUTH")
        .args(["auth", "status", "-o", "json"])
        .output()
        .expect("jit runs");
    assert_success(&output);
    assert_never_printed(&output, &principal.client_secret);
    let (stdout, _) = text(&output);
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(status["method"], "auto");
    assert_eq!(status["credential"], "service_principal");
    assert_eq!(status["client_secret_source"], "environment");
    assert_eq!(status["sign_in"]["ok"], true);
    assert_eq!(status["sign_in"]["subscriptions"], 2);
}

#[test]
fn a_managed_identity_signs_in_through_identity_endpoint() {
    let context = TestContext::new();
    let output = as_managed_identity(&context)
        .args(["list", "-o", "json"])
        .output()
        .expect("jit runs");
    assert_success(&output);
    assert_eq!(listed_vms(&output), 11);
    assert_never_printed(&output, &context.emulator.managed_identity().header);
    assert!(requests_to(&context, "/msi/token") >= 1);
    assert_eq!(token_calls(&context), 0, "az is not involved");
}

#[test]
fn a_read_only_principal_can_list_and_show() {
    let context = TestContext::new();
    for arguments in [&["list"][..], &["show", "rg-web/api-01"][..]] {
        let output = as_service_principal(&context, READER_CLIENT_ID, READER_SECRET)
            .args(arguments)
            .output()
            .expect("jit runs");
        assert_success(&output);
        assert_never_printed(&output, READER_SECRET);
    }
}

#[test]
fn a_wrong_secret_is_refused_with_a_hint() {
    let context = TestContext::new();
    let wrong = "not-the-secret-0123456789";
    let output = as_service_principal(&context, READER_CLIENT_ID, wrong)
        .args(["list"])
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(4));
    assert_never_printed(&output, wrong);
    let (stdout, stderr) = text(&output);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("AADSTS7000215"),
        "Entra's code is kept: {stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
}

#[test]
fn a_service_principal_without_a_secret_points_at_the_keychain() {
    let context = TestContext::new();
    let output = context
        .jit()
        .env("JIT_AUTH", "service-principal")
        .env("AZURE_TENANT_ID", &context.emulator.info().tenant_id)
        .env("AZURE_CLIENT_ID", READER_CLIENT_ID)
        .args(["list"])
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(4));
    let (_, stderr) = text(&output);
    assert!(stderr.contains("AZURE_CLIENT_SECRET"), "{stderr}");
    insta::assert_snapshot!(
        "service_principal_without_secret",
        transcript(&output, &context)
    );
}

#[test]
fn auth_status_names_the_sign_in_and_checks_it() {
    let context = TestContext::new();
    let output = context.run(&["auth", "status"]);
    assert_success(&output);
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("the Azure CLI's signed-in account (az)"),
        "{stdout}"
    );
    assert!(stdout.contains("2 subscriptions visible"), "{stdout}");
    insta::assert_snapshot!("auth_status_cli", transcript(&output, &context));

    let principal = context.emulator.info().service_principal.clone();
    let output = as_service_principal(&context, &principal.client_id, &principal.client_secret)
        .args(["auth", "status"])
        .output()
        .expect("jit runs");
    assert_success(&output);
    assert_never_printed(&output, &principal.client_secret);
    insta::assert_snapshot!(
        "auth_status_service_principal",
        transcript(&output, &context)
    );

    let output = as_managed_identity(&context)
        .args(["auth", "status"])
        .output()
        .expect("jit runs");
    assert_success(&output);
    assert_never_printed(&output, &context.emulator.managed_identity().header);
    insta::assert_snapshot!(
        "auth_status_managed_identity",
        transcript(&output, &context)
    );
}

#[test]
fn auth_status_reports_a_sign_in_that_does_not_work() {
    let context = TestContext::new();
    context
        .emulator
        .set_az_logged_in(false)
        .expect("az logged out");
    let output = context.run(&["auth", "status", "-o", "json"]);
    assert_eq!(output.status.code(), Some(4));
    let (stdout, stderr) = text(&output);
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(status["credential"], "azure_cli");
    assert_eq!(status["sign_in"]["ok"], false);
    assert!(
        status["sign_in"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("not signed in")),
        "{status}"
    );
    assert!(stderr.contains("hint: run `az login`"), "{stderr}");
}

/// `jit auth set-secret` with `input` on stdin.
fn set_secret(context: &TestContext, arguments: &[&str], input: &str) -> Output {
    let mut child = context
        .jit()
        .args(["auth", "set-secret"])
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("the secret is written");
    child.wait_with_output().expect("jit finishes")
}

#[test]
fn set_secret_without_a_secret_service_says_to_use_the_environment() {
    // The test environment has no D-Bus session, as a headless server has none.
    let context = TestContext::new();
    let secret = "piped-secret-0123456789";
    let output = set_secret(
        &context,
        &["--client-id", READER_CLIENT_ID],
        &format!("{secret}\n"),
    );
    assert_eq!(output.status.code(), Some(4));
    assert_never_printed(&output, secret);
    let (stdout, stderr) = text(&output);
    assert!(stdout.is_empty());
    assert!(stderr.contains("keychain is not available"), "{stderr}");
    assert!(stderr.contains("AZURE_CLIENT_SECRET"), "{stderr}");

    let output = context
        .jit()
        .args(["auth", "delete-secret", "--client-id", READER_CLIENT_ID])
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(4));
}

#[test]
fn set_secret_refuses_unusable_input_before_touching_the_keychain() {
    let context = TestContext::new();
    let cases: [(&[&str], &str, &str); 3] = [
        (&[], "secret\n", "no client id"),
        (
            &["--client-id", READER_CLIENT_ID],
            "",
            "no secret was given on stdin",
        ),
        (
            &["--client-id", READER_CLIENT_ID],
            "line-one\nline-two\n",
            "several lines",
        ),
    ];
    for (arguments, input, expected) in cases {
        let output = set_secret(&context, arguments, input);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{expected}: {stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!stderr.contains("line-one"), "{stderr}");
    }
    // The secret cannot be given as an argument at all.
    let output = context
        .jit()
        .args(["auth", "set-secret", "--client-secret", "x"])
        .output()
        .expect("jit runs");
    assert_eq!(output.status.code(), Some(2));
}

/// Puts an `az` first on `PATH` that hangs (recording its pid in `pids`) and never
/// answers, ahead of the emulator's fake one.
#[cfg(target_os = "linux")]
fn with_hanging_az(context: &TestContext, command: &mut Command) -> std::path::PathBuf {
    let directory = context.home().join("hanging-az");
    std::fs::create_dir_all(&directory).expect("directory");
    let pids = context.home().join("az-pids");
    let script = directory.join("az");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho $$ >> '{}'\nexec sleep 600\n",
            pids.display()
        ),
    )
    .expect("script written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("executable");
    }
    let path = command
        .get_envs()
        .find(|(name, _)| *name == "PATH")
        .and_then(|(_, value)| value.map(std::ffi::OsStr::to_owned))
        .unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(directory).chain(std::env::split_paths(&path)))
        .expect("a valid PATH");
    command.env("PATH", path);
    pids
}

/// Waits for `child` at most `limit`; kills it and fails when it is still running.
#[cfg(target_os = "linux")]
fn wait_at_most(mut child: std::process::Child, limit: std::time::Duration) -> Output {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().expect("jit can be waited for").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    panic!(
        "jit still ran after {limit:?}: a hung az stalls it\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether `pid` still runs (a zombie nobody reaped yet runs nothing).
#[cfg(target_os = "linux")]
fn is_running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[cfg(target_os = "linux")]
#[test]
fn a_hung_az_is_stopped_at_the_time_limit_and_leaves_nothing_running() {
    let context = TestContext::new();
    let mut command = context.jit();
    let pids = with_hanging_az(&context, &mut command);
    let child = command
        .env("JIT_AZ_TIMEOUT", "2s")
        .args(["list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jit starts");
    let output = wait_at_most(child, std::time::Duration::from_secs(90));
    let recorded = std::fs::read_to_string(&pids).unwrap_or_default();
    let started: Vec<&str> = recorded.lines().collect();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("did not answer within 2 s"), "{stderr}");
    assert!(stderr.contains("JIT_AZ_TIMEOUT"), "{stderr}");
    assert_eq!(started.len(), 1, "one az for every caller: {started:?}");
    // The hung az was killed, not left behind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while started.iter().any(|pid| is_running(pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let survivors: Vec<&&str> = started.iter().filter(|pid| is_running(pid)).collect();
    for pid in &survivors {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    assert!(survivors.is_empty(), "az left running: {survivors:?}");
}

#[test]
fn az_timeout_must_be_a_duration() {
    let context = TestContext::new();
    let output = context
        .jit()
        .env("JIT_AZ_TIMEOUT", "soon")
        .args(["list"])
        .output()
        .expect("jit runs");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("JIT_AZ_TIMEOUT"), "{stderr}");

    let config = context.home().join("jit.toml");
    std::fs::write(&config, "az_timeout = \"0s\"\n").expect("config written");
    let output = context
        .jit()
        .env("JIT_CONFIG", &config)
        .args(["list"])
        .output()
        .expect("jit runs");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("az_timeout in the config file must be longer than zero"),
        "{stderr}"
    );
}
