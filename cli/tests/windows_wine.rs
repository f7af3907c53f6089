//! The Windows build (`x86_64-pc-windows-gnu`) run under Wine against the emulator on
//! this Linux machine: HTTPS with the emulator's CA from `JIT_CA_FILE`, a real JIT
//! request and a real probe of the emulated port, the agent started by `jit.exe` over
//! its named pipe, the `Run` value in Wine's registry, `%APPDATA%`/`%LOCALAPPDATA%`,
//! Credential Manager, and what Wine cannot do (toasts) degrading as documented.
//!
//! Ignored by a plain `cargo test`: it needs the cross-built binaries and Wine.
//! `packaging/check-windows` builds them, prepares a Wine prefix and runs this suite with
//! `--ignored`; without its environment every test fails, naming it, rather than passing.
//!
//! Wine shares the host's network, so `jit.exe` reaches the emulator on loopback. Unix
//! paths are handed to Windows programs through Wine's `Z:` drive.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jit_emulator::{Emulator, EmulatorOptions, World};
use serde_json::Value;

/// The directory holding `jit.exe` and `jit-agent.exe`.
const BIN_DIR_VARIABLE: &str = "JIT_WINDOWS_BIN_DIR";

fn windows_bin_dir() -> PathBuf {
    let Some(dir) = std::env::var_os(BIN_DIR_VARIABLE) else {
        panic!(
            "{BIN_DIR_VARIABLE} is not set: run this suite through packaging/check-windows, which builds the Windows binaries and sets up Wine"
        );
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("jit.exe").is_file(),
        "{} has no jit.exe; run packaging/check-windows",
        dir.display()
    );
    dir
}

/// `Z:\path\to\file` for a Unix path (Wine maps `/` to drive `Z:`).
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// The Unix path of a Windows path, through `winepath`.
fn unix_path(windows: &str) -> PathBuf {
    let output = Command::new("winepath")
        .args(["-u", windows])
        .stderr(Stdio::null())
        .output()
        .expect("winepath runs");
    assert!(output.status.success(), "winepath -u {windows}");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(output: &Output) -> Value {
    let (stdout, stderr) = text(output);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}\n{stderr}"))
}

/// An emulator and a temp dir for one test, and `jit.exe` commands pointed at them.
struct WineContext {
    emulator: Emulator,
    temp: tempfile::TempDir,
    bin_dir: PathBuf,
    agent: bool,
    default_dirs: bool,
}

impl WineContext {
    fn new() -> Self {
        let bin_dir = windows_bin_dir();
        let options = EmulatorOptions {
            initiating_delay: jiff::SignedDuration::from_millis(300),
            ..EmulatorOptions::default()
        };
        let emulator =
            Emulator::start_with(World::default_world(), options).expect("the emulator starts");
        let temp = tempfile::tempdir().expect("a temp dir");
        for directory in ["state", "runtime", "config"] {
            std::fs::create_dir_all(temp.path().join(directory)).expect("dirs");
        }
        std::fs::write(temp.path().join("config/config.toml"), "").expect("an empty config");
        Self {
            emulator,
            temp,
            bin_dir,
            agent: false,
            default_dirs: false,
        }
    }

    /// Lets `jit.exe` start the agent.
    fn with_agent(mut self) -> Self {
        self.agent = true;
        self
    }

    /// Leaves the state, runtime and config locations to their Windows defaults.
    fn with_default_dirs(mut self) -> Self {
        self.default_dirs = true;
        self
    }

    /// `wine jit.exe` (or another of the binaries) with the emulator's environment.
    fn command(&self, exe: &str) -> Command {
        let info = self.emulator.info();
        let mut command = Command::new("wine");
        command.arg(self.bin_dir.join(exe));
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("JIT_") || name.starts_with("AZURE_") || name == "NO_COLOR" {
                command.env_remove(&*name);
            }
        }
        command
            .env("JIT_ARM_ENDPOINT", &info.arm_endpoint)
            .env("JIT_AUTHORITY_HOST", &info.authority_host)
            .env("JIT_CA_FILE", windows_path(&info.ca_cert))
            .env("JIT_MY_IP_URLS", &info.my_ip_url)
            .env("JIT_AUTH", "service-principal")
            .env("AZURE_CLIENT_ID", &info.service_principal.client_id)
            .env("AZURE_CLIENT_SECRET", &info.service_principal.client_secret)
            .env("AZURE_TENANT_ID", &info.tenant_id)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        if !self.default_dirs {
            command
                .env(
                    "JIT_STATE_DIR",
                    windows_path(&self.temp.path().join("state")),
                )
                .env(
                    "JIT_RUNTIME_DIR",
                    windows_path(&self.temp.path().join("runtime")),
                )
                .env(
                    "JIT_CONFIG",
                    windows_path(&self.temp.path().join("config/config.toml")),
                );
        }
        if !self.agent {
            command.env("JIT_NO_AGENT", "1");
        }
        command
    }

    fn jit(&self, arguments: &[&str]) -> Output {
        let mut command = self.command("jit.exe");
        command.args(arguments);
        self.run(command)
    }

    /// Runs `command` with its stdout and stderr going to files rather than pipes: Wine
    /// hands a process's Unix file descriptors down to the processes it starts, so the
    /// agent a `jit.exe` starts would keep the pipes open and `output()` would wait for
    /// their end forever.
    fn run(&self, mut command: Command) -> Output {
        let (stdout_file, stdout_path) = self.output_file("stdout");
        let (stderr_file, stderr_path) = self.output_file("stderr");
        let status = command
            .stdout(stdout_file)
            .stderr(stderr_file)
            .status()
            .expect("wine runs the program");
        Output {
            status,
            stdout: std::fs::read(&stdout_path).unwrap_or_default(),
            stderr: std::fs::read(&stderr_path).unwrap_or_default(),
        }
    }

    /// A fresh file in the test's temp dir for one command's output.
    fn output_file(&self, stream: &str) -> (std::fs::File, PathBuf) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = self.temp.path().join(format!(
            "{stream}-{}.txt",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&path).expect("an output file");
        (file, path)
    }

    /// Runs `jit.exe` and requires exit code 0.
    fn jit_ok(&self, arguments: &[&str]) -> Output {
        let output = self.jit(arguments);
        let (stdout, stderr) = text(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "jit {}\n{stdout}\n{stderr}",
            arguments.join(" ")
        );
        output
    }
}

/// Stops the agent a test started, even when the test fails.
struct AgentStopper<'a>(&'a WineContext);

impl Drop for AgentStopper<'_> {
    fn drop(&mut self) {
        let _ = self.0.jit(&["agent", "stop"]);
    }
}

#[test]
#[ignore = "needs the Windows build and Wine: run packaging/check-windows"]
fn help_runs() {
    let context = WineContext::new();
    let output = context.jit_ok(&["--help"]);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("Usage: jit"), "{stdout}");
    assert!(stdout.contains("connect"), "{stdout}");
}

#[test]
#[ignore = "needs the Windows build and Wine: run packaging/check-windows"]
fn list_over_https_trusting_the_ca_file() {
    let context = WineContext::new();
    let output = context.jit_ok(&["list", "-o", "json"]);
    let document = json(&output);
    let names: Vec<&str> = document
        .as_array()
        .or_else(|| document.get("virtual_machines").and_then(Value::as_array))
        .or_else(|| document.get("vms").and_then(Value::as_array))
        .unwrap_or_else(|| panic!("a list of VMs: {document}"))
        .iter()
        .filter_map(|vm| vm.get("name").and_then(Value::as_str))
        .collect();
    assert!(names.contains(&"api-01"), "{names:?}");
    assert!(names.contains(&"sql-01"), "{names:?}");

    // Without the CA file the emulator's certificate is refused: trust is not blanket.
    let mut without_ca = context.command("jit.exe");
    without_ca
        .env_remove("JIT_CA_FILE")
        .args(["list", "-o", "json"]);
    let refused = context.run(without_ca);
    let (stdout, stderr) = text(&refused);
    assert_ne!(refused.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.to_lowercase().contains("certificate"),
        "the error names the certificate: {stderr}"
    );
}

#[test]
#[ignore = "needs the Windows build and Wine: run packaging/check-windows"]
fn connect_requests_access_and_probes_the_port() {
    let context = WineContext::new();
    let output = context.jit_ok(&["connect", "api-01", "--no-launch", "-o", "json"]);
    let report = json(&output);
    assert_eq!(report["vm"]["name"], "api-01", "{report}");
    let port = &report["ports"][0];
    assert_eq!(port["service"], "ssh", "{report}");
    assert!(
        port["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("SSH-2.0-")),
        "the probe read the emulated VM's SSH banner: {report}"
    );
    let connect_port = port["connect_port"].as_u64().expect("a port");
    // The emulator recorded the initiate request and opened its gate for this source.
    let state = context.emulator.snapshot();
    let opened = state.to_string();
    assert!(
        opened.contains("Initiated"),
        "the emulator shows the request as initiated: {state}"
    );
    assert!(connect_port > 0);
}

#[test]
#[ignore = "needs the Windows build and Wine: run packaging/check-windows"]
fn status_without_an_agent() {
    let context = WineContext::new();
    let output = context.jit_ok(&["status", "-o", "json"]);
    let document = json(&output);
    assert_eq!(document["agent_running"], false, "{document}");
}

#[test]
#[ignore = "needs the Windows build and Wine: run packaging/check-windows"]
fn the_agent_runs_over_its_named_pipe_with_its_files_under_appdata() {
    let context = WineContext::new().with_agent().with_default_dirs();
    let _stopper = AgentStopper(&context);
    // A leftover state file from an earlier run would show its windows too.
    let local_app_data = unix_path(&windows_environment("LOCALAPPDATA"));
    let _ = std::fs::remove_dir_all(local_app_data.join("jit"));

    let output = context.jit_ok(&["connect", "api-01", "--no-launch", "-o", "json"]);
    let (_, stderr) = text(&output);
    let status = json(&context.jit_ok(&["status", "-o", "json"]));
    assert_eq!(status["agent_running"], true, "{status}\n{stderr}");
    let windows = status["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 1, "{status}");
    assert_eq!(windows[0]["vm"]["name"], "api-01");
    let first_end = windows[0]["ends_at"].as_str().expect("ends_at").to_owned();

    let agent = json(&context.jit_ok(&["agent", "status", "-o", "json"]));
    assert_eq!(agent["running"], true, "{agent}");
    let endpoint = agent["endpoint"].as_str().expect("endpoint");
    assert!(
        endpoint.starts_with(r"\\.\pipe\jit-agent-S-1-5-"),
        "a per-user pipe named after the SID: {endpoint}"
    );
    // State under %LOCALAPPDATA%, written by the agent.
    let state_file = agent["state_file"].as_str().expect("state_file");
    let state_file_unix = unix_path(state_file);
    assert!(
        state_file_unix.starts_with(&local_app_data),
        "{state_file} is under %LOCALAPPDATA% ({})",
        local_app_data.display()
    );
    wait_until(Duration::from_secs(10), || state_file_unix.is_file());
    // Wine has no toast notifications: the agent says so and goes on (the log fallback).
    let problems = agent["problems"].to_string();
    assert!(
        problems.contains("notification"),
        "the agent reports that notifications fall back to its log: {agent}"
    );

    // Extending goes through the agent and moves the end.
    let extended = json(&context.jit_ok(&["extend", "api-01", "-o", "json"]));
    let new_end = extended["ends_at"].as_str().expect("ends_at");
    assert!(
        new_end >= first_end.as_str(),
        "{new_end} is not before {first_end}"
    );

    // A second agent leaves the first alone: it names the running one and exits (with
    // status 0, so a login entry racing an on-demand start is not restarted in a loop).
    // That the pipe itself refuses a second server is the unit test
    // `a_second_first_instance_is_refused`, also run under Wine.
    let mut second_agent = context.command("jit-agent.exe");
    second_agent.arg("run");
    let second = context.run(second_agent);
    let (stdout, stderr) = text(&second);
    assert!(
        stderr.contains("already running") && stderr.contains(endpoint),
        "the second agent names the running one: {stdout}\n{stderr}"
    );
    let still = json(&context.jit_ok(&["agent", "status", "-o", "json"]));
    assert_eq!(
        still["pid"], agent["pid"],
        "the first agent still serves: {still}"
    );

    let stopped = json(&context.jit_ok(&["agent", "stop", "-o", "json"]));
    assert_eq!(stopped["stopped"], true, "{stopped}");
    let after = json(&context.jit_ok(&["agent", "status", "-o", "json"]));
    assert_eq!(after["running"], false, "{after}");
}

#[test]
#[ignore = "needs the Windows build and Wine: run packaging/check-windows"]
fn the_config_file_lives_under_appdata() {
    let context = WineContext::new().with_default_dirs();
    let output = context.jit_ok(&["config", "path"]);
    let (stdout, _) = text(&output);
    let path = stdout.trim();
    let app_data = unix_path(&windows_environment("APPDATA"));
    assert!(
        unix_path(path).starts_with(&app_data),
        "{path} is under %APPDATA% ({})",
        app_data.display()
    );
    assert!(path.ends_with("config.toml"), "{path}");
}

#[test]
#[ignore = "needs the Windows build and Wine: run packaging/check-windows"]
fn autostart_writes_and_removes_the_run_value() {
    let context = WineContext::new();
    let _stopper = AgentStopper(&context);
    let installed = json(&context.jit_ok(&["agent", "install", "-o", "json"]));
    assert_eq!(
        installed["location"], r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run\jit-agent",
        "{installed}"
    );
    let value = run_value().expect("the Run value exists after install");
    assert!(
        value.contains("jit-agent.exe") && value.ends_with(" run"),
        "the Run value starts the agent: {value}"
    );

    let removed = json(&context.jit_ok(&["agent", "uninstall", "-o", "json"]));
    assert_eq!(
        removed["removed"], r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run\jit-agent",
        "{removed}"
    );
    assert_eq!(run_value(), None, "the Run value is gone after uninstall");
    let again = json(&context.jit_ok(&["agent", "uninstall", "-o", "json"]));
    assert_eq!(again["removed"], Value::Null, "{again}");
}

#[test]
#[ignore = "needs the Windows build and Wine: run packaging/check-windows"]
fn the_secret_is_kept_in_credential_manager() {
    let context = WineContext::new();
    let info = context.emulator.info();
    let client_id = info.service_principal.client_id.clone();
    let (stdout_file, stdout_path) = context.output_file("stdout");
    let (stderr_file, stderr_path) = context.output_file("stderr");
    let mut setting = context
        .command("jit.exe")
        .args(["auth", "set-secret", "--client-id", &client_id])
        .stdin(Stdio::piped())
        .stdout(stdout_file)
        .stderr(stderr_file)
        .spawn()
        .expect("wine runs jit.exe");
    {
        use std::io::Write as _;
        let mut stdin = setting.stdin.take().expect("stdin");
        stdin
            .write_all(info.service_principal.client_secret.as_bytes())
            .expect("the secret is written");
    }
    let output = Output {
        status: setting.wait().expect("set-secret ends"),
        stdout: std::fs::read(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read(&stderr_path).unwrap_or_default(),
    };
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");

    // Signing in without AZURE_CLIENT_SECRET takes the secret from Credential Manager.
    let mut from_the_keychain = context.command("jit.exe");
    from_the_keychain
        .env_remove("AZURE_CLIENT_SECRET")
        .args(["list", "-o", "json"]);
    let listed = context.run(from_the_keychain);
    let (stdout, stderr) = text(&listed);
    assert_eq!(listed.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("api-01"), "{stdout}");

    let deleted = context.jit_ok(&["auth", "delete-secret", "--client-id", &client_id]);
    let (stdout, stderr) = text(&deleted);
    assert!(
        format!("{stdout}{stderr}")
            .to_lowercase()
            .contains("deleted")
            || format!("{stdout}{stderr}")
                .to_lowercase()
                .contains("removed"),
        "{stdout}\n{stderr}"
    );
    let mut no_secret = context.command("jit.exe");
    no_secret
        .env_remove("AZURE_CLIENT_SECRET")
        .args(["list", "-o", "json"]);
    let without = context.run(no_secret);
    assert_ne!(
        without.status.code(),
        Some(0),
        "no secret anywhere after delete-secret"
    );
}

/// The value of a Windows environment variable in the Wine prefix.
fn windows_environment(name: &str) -> String {
    let output = Command::new("wine")
        .args(["cmd", "/c", "echo", &format!("%{name}%")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("wine runs cmd");
    let value = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        !value.is_empty() && !value.contains('%'),
        "%{name}% is set in the Wine prefix: {value:?}"
    );
    value
}

/// The `jit-agent` value under the user's `Run` key, read with Wine's `reg.exe`.
fn run_value() -> Option<String> {
    let output = Command::new("wine")
        .args([
            "reg",
            "query",
            r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run",
            "/v",
            "jit-agent",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("wine runs reg");
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            line.split_once("REG_SZ")
                .map(|(_, data)| data.trim().to_owned())
        })
}

fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
