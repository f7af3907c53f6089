//! Shared harness for the end-to-end suites: an emulated Azure per test, and the real
//! `jit` binary pointed at it the way a user would (environment variables only; no
//! test-only code path in `jit`).
//!
//! Each [`TestContext`] owns a fresh emulator and a temp dir used as `HOME` and for the
//! XDG config, state and runtime dirs, so tests run in parallel without sharing
//! anything. Commands run with `JIT_AUTH=cli` against the emulator's fake `az`, the
//! emulator's CA, its "what is my IP" service, and no agent unless a test asks for one.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use jit_emulator::{Emulator, EmulatorOptions, World};

/// An emulator plus a private home for the `jit` processes a test runs.
pub struct TestContext {
    pub emulator: Emulator,
    pub home: tempfile::TempDir,
    agent: bool,
}

impl TestContext {
    /// The default world, default options.
    pub fn new() -> Self {
        Self::with(World::default_world(), EmulatorOptions::default())
    }

    /// A given world and options.
    pub fn with(world: World, options: EmulatorOptions) -> Self {
        let emulator = Emulator::start_with(world, options).expect("the emulator starts");
        let home = tempfile::tempdir().expect("a temp home");
        for directory in ["config", "state", "runtime", "bin"] {
            std::fs::create_dir_all(home.path().join(directory)).expect("dirs");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                home.path().join("runtime"),
                std::fs::Permissions::from_mode(0o700),
            )
            .expect("private runtime dir");
        }
        Self {
            emulator,
            home,
            agent: false,
        }
    }

    /// Lets `jit` start and use the background agent (off by default).
    pub fn with_agent(mut self) -> Self {
        self.agent = true;
        self
    }

    /// The temp home directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A `jit` command with the environment pointing at the emulator.
    pub fn jit(&self) -> Command {
        self.command(env!("CARGO_BIN_EXE_jit"))
    }

    /// Any program with the environment `jit` gets (for `ssh` running `jit proxy`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let info = self.emulator.info();
        let fake_az_dir = info
            .az_cli
            .parent()
            .expect("the fake az lives in a directory")
            .to_owned();
        let path = std::env::join_paths(
            std::iter::once(fake_az_dir)
                .chain(std::iter::once(self.home().join("bin")))
                .chain(std::env::split_paths(
                    &std::env::var_os("PATH").unwrap_or_default(),
                )),
        )
        .expect("a valid PATH");
        command
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join("config"))
            .env("XDG_STATE_HOME", self.home().join("state"))
            .env("XDG_RUNTIME_DIR", self.home().join("runtime"))
            .env("JIT_STATE_DIR", self.home().join("state/jit"))
            .env("JIT_RUNTIME_DIR", self.home().join("runtime/jit"))
            .env("JIT_ARM_ENDPOINT", &info.arm_endpoint)
            .env("JIT_AUTHORITY_HOST", &info.authority_host)
            .env("JIT_CA_FILE", &info.ca_cert)
            .env("JIT_MY_IP_URLS", &info.my_ip_url)
            .env("JIT_AUTH", "cli")
            .env("NO_COLOR", "1")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        if !self.agent {
            command.env("JIT_NO_AGENT", "1");
        }
        if let Some(value) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS")
            && self.agent
        {
            command.env("DBUS_SESSION_BUS_ADDRESS", value);
        }
        command
    }

    /// Runs `jit` with arguments and returns its output.
    pub fn run(&self, arguments: &[&str]) -> Output {
        self.jit().args(arguments).output().expect("jit runs")
    }

    /// `ssh` options that make OpenSSH trust exactly the emulated VMs' host keys (from a
    /// known_hosts file written from the emulator's state) and use the emulator's key,
    /// without relaxing host-key checking.
    pub fn ssh_options(&self) -> Vec<String> {
        let known_hosts = self.home().join("known_hosts");
        let lines: Vec<String> = self
            .emulator
            .snapshot()
            .pointer("/listeners")
            .and_then(|listeners| listeners.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|listener| listener.get("known_hosts")?.as_str().map(str::to_owned))
            .collect();
        std::fs::write(&known_hosts, lines.join("\n") + "\n").expect("known_hosts written");
        vec![
            "-i".to_owned(),
            self.emulator.info().ssh_identity.display().to_string(),
            "-o".to_owned(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "-o".to_owned(),
            "BatchMode=yes".to_owned(),
        ]
    }
}

/// stdout and stderr as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Exit code, stdout and stderr as one document for snapshots, with what changes from
/// run to run (ports, temp paths, GUIDs, times) replaced by stable placeholders.
pub fn transcript(output: &Output, context: &TestContext) -> String {
    let (stdout, stderr) = text(output);
    let code = output
        .status
        .code()
        .map_or_else(|| "signal".to_owned(), |code| code.to_string());
    let raw =
        format!("exit code: {code}\n----- stdout -----\n{stdout}----- stderr -----\n{stderr}");
    normalise(&raw, context)
}

fn normalise(text: &str, context: &TestContext) -> String {
    let mut text = text.replace(&context.home().display().to_string(), "[HOME]");
    text = text.replace(
        &context.emulator.state_dir().display().to_string(),
        "[EMULATOR]",
    );
    for (pattern, replacement) in FILTERS {
        let regex = regex::Regex::new(pattern).expect("valid filter");
        text = regex.replace_all(&text, *replacement).into_owned();
    }
    text
}

/// Filters for [`transcript`], in order.
const FILTERS: &[(&str, &str)] = &[
    (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
    (r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]"),
    (r"\b\d{2}:\d{2}(:\d{2})?( UTC)?\b", "[CLOCK]"),
    (r"\b\d+h\d+m\b|\b\d+m\d+s\b|\b\d+m\b", "[DURATION]"),
];

/// Makes a program available to `jit` under `name` in the test's private `bin` dir,
/// ahead of the system's.
pub fn install_program(context: &TestContext, name: &str, script: &str) -> PathBuf {
    let path = context.home().join("bin").join(name);
    std::fs::write(&path, script).expect("script written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("executable");
    }
    path
}

/// The argument list as OS strings (for building `Command`s).
pub fn os_args(arguments: &[&str]) -> Vec<OsString> {
    arguments.iter().map(OsString::from).collect()
}

/// `METHOD status` of every logged request to `path` (the query ignored, any case), in
/// order; `reset` for a connection the emulator dropped instead of answering.
pub fn requests_to(emulator: &Emulator, path: &str) -> Vec<String> {
    emulator
        .requests()
        .iter()
        .filter(|record| record.is_to(path))
        .map(|record| {
            format!(
                "{} {}",
                record.method,
                record
                    .status
                    .map_or_else(|| "reset".to_owned(), |status| status.to_string())
            )
        })
        .collect()
}

/// How many logged requests went to a path starting with `prefix` (any case).
pub fn count_requests_under(emulator: &Emulator, prefix: &str) -> usize {
    let prefix = prefix.to_ascii_lowercase();
    emulator
        .requests()
        .iter()
        .filter(|record| record.path.to_ascii_lowercase().starts_with(&prefix))
        .count()
}

/// The JIT policy `policy_id` (any case) as the emulator holds it; `Value::Null` when
/// there is none.
pub fn policy_in_state(emulator: &Emulator, policy_id: &str) -> serde_json::Value {
    emulator.snapshot()["jit_policies"]
        .as_array()
        .expect("the state lists policies")
        .iter()
        .find(|policy| {
            policy["id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(policy_id))
        })
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// The sources a policy's port rule allows (`allowedSourceAddressPrefix` and
/// `allowedSourceAddressPrefixes` together), sorted.
pub fn rule_sources(port: &serde_json::Value) -> Vec<String> {
    let mut sources: Vec<String> = port["allowedSourceAddressPrefix"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .chain(
            port["allowedSourceAddressPrefixes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|source| source.as_str().map(str::to_owned)),
        )
        .collect();
    sources.sort();
    sources
}
