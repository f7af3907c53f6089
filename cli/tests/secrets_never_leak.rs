//! Security invariant: tokens and secrets never appear in anything `jit` writes — stdout
//! and stderr at every verbosity (`-q` to `-vv`, `JIT_LOG=trace`), `-o json`, error
//! messages of failing commands, and every file under the user's home, state and
//! runtime dirs (the agent's log and state file included).
//!
//! The real `jit` binary runs against the emulator with every sign-in method (the Azure
//! CLI, a service principal's client secret, a managed identity's header, a workload
//! identity's federated token) and a wrong secret, through successful and failing
//! commands (unknown VM, 401, 403, 500 and throttling injected by the emulator), with the
//! background agent running. Then everything is scanned for each secret handed to `jit`
//! and for any access token the emulator issued: they are opaque strings with a prefix
//! of their own (`jitemu.` and 64 hex digits), so a token printed whole or in part
//! (`jitemu.` and eight or more of its digits) is found wherever it lands.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jiff::SignedDuration;
use jit_emulator::{EmulatorOptions, FaultKind, FaultSpec, World};
use support::{TestContext, text};

/// Any access token the emulator issued, whole or cut short.
const TOKEN_PATTERN: &str = r"jitemu\.[0-9a-f]{8,}";

const READER_CLIENT_ID: &str = "9e1f3a5c-7b2d-4e6f-8a1c-3d5e7f9b2c40";
const WRONG_SECRET: &str = "wrong-secret-9f8e7d6c5b4a39281706";
/// A federated token the way Kubernetes mounts one (a JWT); the signature is unique.
const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6aml0In0.c2VjcmV0LWZlZGVyYXRlZC1zaWduYXR1cmUtNzcxMw";

/// What `jit` printed for one run, and where it came from.
struct Run {
    label: String,
    output: Output,
}

/// The test: a context, the secrets it handed out, and every run's output.
struct Scan {
    context: TestContext,
    /// `(name, value)` of every secret given to `jit`.
    secrets: Vec<(&'static str, String)>,
    /// Outside the home (a secret's own file is where it is supposed to be).
    outside: tempfile::TempDir,
    runs: Vec<Run>,
}

/// How much `jit` says.
const VERBOSITIES: &[&[&str]] = &[
    &["-q"],
    &[],
    &["-v"],
    &["-vv"],
    &["-o", "json"],
    &["-vv", "-o", "json"],
];

fn fault(method: &str, path: &str, kind: FaultKind) -> FaultSpec {
    FaultSpec {
        method: Some(method.to_owned()),
        path: Some(path.to_owned()),
        path_regex: None,
        fault: kind,
        probability: None,
        times: Some(1),
    }
}

impl Scan {
    fn new() -> Self {
        let context = TestContext::with(
            World::default_world(),
            EmulatorOptions {
                initiating_delay: SignedDuration::ZERO,
                ..EmulatorOptions::default()
            },
        )
        .with_agent();
        let principal = context.emulator.info().service_principal.clone();
        let identity = context.emulator.managed_identity();
        let secrets = vec![
            (
                "the service principal's client secret",
                principal.client_secret,
            ),
            ("the managed identity header", identity.header),
            ("a wrong client secret", WRONG_SECRET.to_owned()),
            ("the federated token", FEDERATED_TOKEN.to_owned()),
        ];
        let outside = tempfile::tempdir().expect("a temp dir");
        std::fs::write(outside.path().join("federated-token"), FEDERATED_TOKEN)
            .expect("the federated token file");
        Self {
            context,
            secrets,
            outside,
            runs: Vec::new(),
        }
    }

    /// `jit` with no session bus (the agent notifies nobody) and a verbose log filter
    /// for the agent it may start.
    fn jit(&self) -> Command {
        let mut command = self.context.jit();
        command
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("JIT_NO_TRAY", "1");
        command
    }

    fn as_service_principal(&self, secret: &str) -> Command {
        let principal = &self.context.emulator.info().service_principal;
        let mut command = self.jit();
        command
            .env("JIT_AUTH", "service-principal")
            .env("AZURE_TENANT_ID", &self.context.emulator.info().tenant_id)
            .env("AZURE_CLIENT_ID", &principal.client_id)
            .env("AZURE_CLIENT_SECRET", secret);
        command
    }

    fn as_managed_identity(&self) -> Command {
        let identity = self.context.emulator.managed_identity();
        let mut command = self.jit();
        command
            .env("JIT_AUTH", "managed-identity")
            .env("IDENTITY_ENDPOINT", &identity.endpoint)
            .env("IDENTITY_HEADER", &identity.header);
        command
    }

    fn as_workload_identity(&self) -> Command {
        let principal = &self.context.emulator.info().service_principal;
        let mut command = self.jit();
        command
            .env("JIT_AUTH", "workload-identity")
            .env("AZURE_TENANT_ID", &self.context.emulator.info().tenant_id)
            .env("AZURE_CLIENT_ID", &principal.client_id)
            .env(
                "AZURE_FEDERATED_TOKEN_FILE",
                self.outside.path().join("federated-token"),
            );
        command
    }

    /// Runs `command` with `arguments` and keeps what it printed.
    fn run(&mut self, label: &str, mut command: Command, arguments: &[&str]) -> &Output {
        let output = command.args(arguments).output().expect("jit runs");
        self.runs.push(Run {
            label: format!("{label}: jit {}", arguments.join(" ")),
            output,
        });
        &self.runs.last().expect("just pushed").output
    }

    /// Runs `arguments` at every verbosity.
    fn run_at_every_verbosity(
        &mut self,
        label: &str,
        make: impl Fn(&Self) -> Command,
        arguments: &[&str],
    ) {
        for verbosity in VERBOSITIES {
            let mut all: Vec<&str> = verbosity.to_vec();
            all.extend_from_slice(arguments);
            let command = make(self);
            self.run(label, command, &all);
        }
        let mut traced = make(self);
        traced.env("JIT_LOG", "trace");
        self.run(&format!("{label} (JIT_LOG=trace)"), traced, arguments);
    }

    /// Every place a secret could have landed, as `(where, text)`.
    fn places(&self) -> Vec<(String, String)> {
        let mut places = Vec::new();
        for run in &self.runs {
            let (stdout, stderr) = text(&run.output);
            places.push((format!("stdout of {}", run.label), stdout));
            places.push((format!("stderr of {}", run.label), stderr));
        }
        for file in files_under(self.context.home()) {
            if let Ok(bytes) = std::fs::read(&file) {
                places.push((
                    format!("file {}", file.display()),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
        places
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        let _ = self.jit().args(["agent", "stop"]).output();
    }
}

/// Every regular file below `root` (sockets and the like are skipped).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files
}

/// The access token the emulator's `az` hands out now (from its private state dir).
fn current_az_token(context: &TestContext) -> String {
    let path = context.emulator.state_dir().join("az/token.env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    text.lines()
        .find_map(|line| line.strip_prefix("access_token='")?.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no access_token in {}", path.display()))
        .to_owned()
}

#[test]
fn tokens_and_secrets_never_reach_output_logs_or_files() {
    let mut scan = Scan::new();
    let token_pattern = regex::Regex::new(TOKEN_PATTERN).expect("a valid pattern");

    // The Azure CLI, with the agent: open a window (which starts the agent and hands it
    // the window), then everything that reads or extends it, at every verbosity.
    let output = scan.run(
        "az, agent",
        {
            let mut command = scan.jit();
            command.env("JIT_LOG", "trace");
            command
        },
        &["connect", "api-01", "--no-launch"],
    );
    let (_, stderr) = text(output);
    assert_eq!(output.status.code(), Some(0), "connect failed: {stderr}");
    for arguments in [
        &["list"][..],
        &["show", "rg-web/api-01"],
        &["status"],
        &["status", "--refresh"],
        &["agent", "status"],
        &["auth", "status"],
        &["config", "show"],
        &["ssh-config"],
    ] {
        scan.run_at_every_verbosity("az, agent", Scan::jit, arguments);
    }
    for verbosity in ["-vv", "-q"] {
        let command = scan.jit();
        scan.run("az, agent", command, &[verbosity, "extend", "api-01"]);
    }
    for verbosity in ["-vv", "-q"] {
        let command = scan.jit();
        scan.run(
            "az, agent",
            command,
            &[verbosity, "request", "rg-web/web-01", "--duration", "30m"],
        );
    }

    // Failing commands: their error messages and hints.
    for arguments in [
        &["show", "no-such-vm"][..],
        &[
            "show",
            "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/z",
        ],
        &["list", "-s", "no-such-subscription"],
        &[
            "connect",
            "api-01",
            "--no-launch",
            "--source",
            "10.0.0.0/33",
        ],
    ] {
        scan.run_at_every_verbosity("az, failing", Scan::jit, arguments);
    }
    let policies = "/subscriptions/*/providers/Microsoft.Security/jitNetworkAccessPolicies";
    for (kind, name) in [
        (FaultKind::ExpiredToken, "expired token"),
        (FaultKind::Forbidden, "forbidden"),
        (FaultKind::InternalError, "server error"),
        (
            FaultKind::Throttle {
                retry_after_seconds: 600,
            },
            "throttled",
        ),
    ] {
        for verbosity in [&["-vv"][..], &["-o", "json"]] {
            scan.context
                .emulator
                .inject_fault(fault("GET", policies, kind.clone()))
                .expect("a valid fault");
            let mut arguments = verbosity.to_vec();
            arguments.push("list");
            let command = scan.jit();
            scan.run(&format!("az, {name}"), command, &arguments);
        }
    }
    scan.context.emulator.clear_faults();

    // The other sign-in methods, each with its own secret.
    let secret = scan.secrets[0].1.clone();
    for arguments in [
        &["list"][..],
        &["show", "api-01"],
        &["auth", "status"],
        &["show", "no-such-vm"],
    ] {
        scan.run_at_every_verbosity(
            "service principal",
            |scan| {
                let mut command = scan.as_service_principal(&secret);
                command.env("JIT_NO_AGENT", "1");
                command
            },
            arguments,
        );
        scan.run_at_every_verbosity(
            "managed identity",
            |scan| {
                let mut command = scan.as_managed_identity();
                command.env("JIT_NO_AGENT", "1");
                command
            },
            arguments,
        );
        scan.run_at_every_verbosity(
            "workload identity",
            |scan| {
                let mut command = scan.as_workload_identity();
                command.env("JIT_NO_AGENT", "1");
                command
            },
            arguments,
        );
    }
    for arguments in [&["list"][..], &["auth", "status"]] {
        scan.run_at_every_verbosity(
            "wrong secret",
            |scan| {
                let mut command = scan.as_service_principal(WRONG_SECRET);
                command.env("JIT_NO_AGENT", "1");
                command
            },
            arguments,
        );
    }
    // A reader's token is refused for writes: the 403 path with a service principal.
    {
        let mut command = scan.as_service_principal("jit-reader-secret-not-for-production");
        command
            .env("AZURE_CLIENT_ID", READER_CLIENT_ID)
            .env("JIT_NO_AGENT", "1");
        scan.run(
            "reader",
            command,
            &["-vv", "connect", "api-01", "--no-launch"],
        );
    }
    scan.secrets.push((
        "the reader's client secret",
        "jit-reader-secret-not-for-production".to_owned(),
    ));

    // The scan can see what it looks for: tokens were issued and used, the pattern
    // matches them, and the verbose runs did log HTTP traffic.
    let az_token = current_az_token(&scan.context);
    assert!(
        token_pattern.is_match(&az_token),
        "the pattern must match {az_token:.12}…"
    );
    assert!(
        scan.context.emulator.requests().len() > 100,
        "the runs reached the emulated ARM"
    );
    let logged_http = scan.runs.iter().any(|run| {
        run.label.contains("-vv")
            && text(&run.output)
                .1
                .to_ascii_lowercase()
                .contains("authorization")
    });
    assert!(logged_http, "-vv logs the requests, with their headers");
    let agent_log = scan.context.home().join("state/jit/agent.log");
    assert!(
        std::fs::metadata(&agent_log).is_ok_and(|metadata| metadata.len() > 0),
        "the agent wrote its log at {}",
        agent_log.display()
    );

    // Nothing anywhere holds a token or a secret.
    let mut findings = Vec::new();
    for (place, content) in scan.places() {
        if let Some(found) = token_pattern.find(&content) {
            findings.push(format!(
                "an access token ({:.14}…) in {place}",
                found.as_str()
            ));
        }
        for (name, secret) in &scan.secrets {
            if content.contains(secret.as_str()) {
                findings.push(format!("{name} in {place}"));
            }
        }
    }
    assert!(
        findings.is_empty(),
        "{} leak(s) in {} runs:\n{}",
        findings.len(),
        scan.runs.len(),
        findings.join("\n")
    );
}
