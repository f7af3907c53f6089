//! `jit demo`: the whole flow against a local emulated Azure, in one command.
//!
//! A newcomer has no JIT-protected VM to try `jit` on, so the demo brings one: it starts
//! the emulator (ARM, the token endpoint, VMs whose SSH and RDP ports really open and
//! close), writes a throw-away configuration that points `jit` at it, and then runs the
//! real `jit` binary, command by command, printing each command line as a user would
//! type it. Nothing is simulated inside `jit` itself: the same code that talks to Azure
//! talks to the emulator, through its HTTPS endpoint, its CA, its fake `az`, and OpenSSH
//! against the emulated VM (with its host key pinned in a demo `known_hosts`, never with
//! host-key checking turned off).
//!
//! The emulator is its own program, `jit-emulator`, shipped next to `jit` in the release
//! archives, so `jit` itself does not carry it. The demo looks for it next to its own
//! executable (or in `../libexec/`, where Homebrew puts it), then on `PATH`; run by
//! `cargo run` from a source checkout, it builds it with the same cargo into the same
//! target directory first. It talks to it the way
//! tests do: the one JSON line it prints when ready, and its admin API over HTTPS.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use jit_agent::azure::transport::{HttpTransport, TransportOptions};
use serde::Deserialize;
use tokio::io::AsyncBufReadExt as _;

use crate::args::DemoArgs;
use crate::env_vars;
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::settings::GlobalSettings;

/// The Linux VM the demo connects to, and the Windows one it opens RDP on.
const LINUX_VM: &str = "api-01";
const WINDOWS_VM: &str = "sql-01";

pub(crate) async fn run(
    arguments: DemoArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let workspace = tempfile::Builder::new()
        .prefix("jit-demo-")
        .tempdir()
        .context("could not create a temporary directory for the demo")?;
    let program = emulator_program(printer).await?;
    printer
        .info("Starting a local emulated Azure: ARM, Entra ID, two subscriptions and their VMs…");
    let emulator = RunningEmulator::start(&program, &workspace.path().join("emulator")).await?;
    let demo = Demo::new(&emulator, workspace.path(), settings, printer).await?;

    printer.info(format!(
        "Azure Resource Manager is at {}; `jit` signs in through the Azure CLI credential (a fake `az`).\n",
        emulator.info.arm_endpoint
    ));

    demo.say(
        "Which VMs can use just-in-time access? The portal's three tabs, for every subscription:",
    );
    demo.jit(&["list"]).await?;

    if arguments.interactive {
        demo.say(&format!(
            "Open SSH on {LINUX_VM} for your address, wait until it answers, and start a shell (type `exit` to leave):"
        ));
        demo.jit(&["connect", LINUX_VM, "--justification", "jit demo"])
            .await?;
    } else {
        demo.say(&format!(
            "Open SSH on {LINUX_VM} for your address, wait until it answers, and run `hostname` there with OpenSSH:"
        ));
        demo.jit(&[
            "connect",
            LINUX_VM,
            "--justification",
            "jit demo",
            "--",
            "hostname",
        ])
        .await?;
    }

    demo.say(&format!(
        "Request RDP on the Windows VM {WINDOWS_VM} and show how to connect (no RDP client is started):"
    ));
    demo.jit(&["connect", WINDOWS_VM, "--no-launch", "--duration", "30m"])
        .await?;

    demo.say(&format!("What Azure now records for {LINUX_VM}:"));
    demo.jit(&["show", LINUX_VM]).await?;

    demo.say("The emulated Azure's clock jumps 3 hours ahead: every window ends, as Azure would close it.");
    emulator.advance_clock("PT3H").await?;
    demo.jit(&["show", LINUX_VM]).await?;

    printer.info(format!(
        "\nThat was the whole flow. Against real Azure it is just `jit connect <vm>` after `az login`.\nSee {} for more.",
        "docs/getting-started.md"
    ));
    emulator.stop().await;
    Ok(ExitStatus::Success)
}

/// What `jit-emulator` prints when it is ready (the fields the demo uses).
#[derive(Debug, Deserialize)]
struct EmulatorInfo {
    arm_endpoint: String,
    authority_host: String,
    ca_cert: PathBuf,
    my_ip_url: String,
    az_cli: PathBuf,
    admin_endpoint: String,
    ssh_identity: PathBuf,
}

/// The emulator's file name on this OS.
fn emulator_file_name() -> String {
    format!("jit-emulator{}", std::env::consts::EXE_SUFFIX)
}

/// Finds `jit-emulator`: next to this executable (as installed, or as found through a
/// link: winget and Homebrew put links on `PATH`), in `../libexec/` (Homebrew), on
/// `PATH`, or, under `cargo run` in a source checkout, by building it.
async fn emulator_program(printer: &Printer) -> anyhow::Result<PathBuf> {
    let file_name = emulator_file_name();
    let current = std::env::current_exe().context("cannot find the running jit")?;
    let mut candidates: Vec<PathBuf> = Vec::new();
    for executable in [Some(current.clone()), std::fs::canonicalize(&current).ok()]
        .into_iter()
        .flatten()
    {
        if let Some(dir) = executable.parent() {
            candidates.push(dir.join(&file_name));
            // Homebrew keeps helper programs in the keg's libexec/, next to bin/.
            if let Some(prefix) = dir.parent() {
                candidates.push(prefix.join("libexec").join(&file_name));
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(&file_name)));
    }
    if let Some(found) = candidates.into_iter().find(|candidate| candidate.is_file()) {
        return Ok(found);
    }
    if let Some(build) = CargoBuild::for_executable(&current) {
        printer.info("Building the emulator (jit-emulator) with cargo, once…");
        build.run().await?;
        let built = build.profile_dir.join(&file_name);
        if built.is_file() {
            return Ok(built);
        }
    }
    Err(CliError::Unavailable {
        message: format!(
            "jit demo needs the emulator, {file_name}, next to {} or on PATH",
            current.display()
        ),
        hint: Some(
            "it ships in the release archive next to jit; from a source checkout run `cargo build -p jit-emulator`"
                .to_owned(),
        ),
    }
    .into())
}

/// `cargo build -p jit-emulator` into the target directory `jit` runs from, when `jit`
/// was started by `cargo run` (cargo sets `CARGO` and `CARGO_MANIFEST_DIR`).
#[derive(Debug)]
struct CargoBuild {
    cargo: PathBuf,
    manifest: PathBuf,
    target_dir: PathBuf,
    target_triple: Option<String>,
    profile_dir: PathBuf,
}

impl CargoBuild {
    fn for_executable(executable: &Path) -> Option<Self> {
        let cargo = PathBuf::from(std::env::var_os("CARGO")?);
        let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
        if !manifest.is_file() {
            return None;
        }
        // `<target-dir>/<profile>/jit` or `<target-dir>/<triple>/<profile>/jit`; cargo
        // marks the target directory with CACHEDIR.TAG.
        let profile_dir = executable.parent()?.to_path_buf();
        let parent = profile_dir.parent()?;
        let (target_dir, target_triple) = if parent.join("CACHEDIR.TAG").is_file() {
            (parent.to_path_buf(), None)
        } else {
            let grandparent = parent.parent()?;
            if !grandparent.join("CACHEDIR.TAG").is_file() {
                return None;
            }
            let triple = parent.file_name()?.to_string_lossy().into_owned();
            (grandparent.to_path_buf(), Some(triple))
        };
        Some(Self {
            cargo,
            manifest,
            target_dir,
            target_triple,
            profile_dir,
        })
    }

    async fn run(&self) -> anyhow::Result<()> {
        let profile = match self.profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let mut command = tokio::process::Command::new(&self.cargo);
        command
            .arg("build")
            .arg("--manifest-path")
            .arg(&self.manifest)
            .args(["--package", "jit-emulator", "--bin", "jit-emulator"])
            .args(["--profile", &profile])
            .arg("--target-dir")
            .arg(&self.target_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(triple) = &self.target_triple {
            command.args(["--target", triple]);
        }
        let status = command
            .status()
            .await
            .with_context(|| format!("could not run {}", self.cargo.display()))?;
        if !status.success() {
            return Err(CliError::Unavailable {
                message: format!("building the emulator failed ({status})"),
                hint: Some("run `cargo build -p jit-emulator` to see why".to_owned()),
            }
            .into());
        }
        Ok(())
    }
}

/// A `jit-emulator` child process. It stops when its stdin closes, so it also goes away
/// when the demo is killed.
struct RunningEmulator {
    child: tokio::process::Child,
    info: EmulatorInfo,
    admin: HttpTransport,
}

impl RunningEmulator {
    async fn start(program: &Path, state_dir: &Path) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(program)
            .args(["--initiating-delay", "1s", "--state-dir"])
            .arg(state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start {}", program.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("the emulator's output is not readable")?;
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .context("could not read what the emulator printed")?;
        if line.trim().is_empty() {
            let status = child.wait().await.ok();
            anyhow::bail!(
                "the emulator stopped before it was ready ({})",
                status.map_or_else(|| "no exit status".to_owned(), |status| status.to_string())
            );
        }
        let info: EmulatorInfo = serde_json::from_str(&line)
            .with_context(|| format!("the emulator printed something unexpected: {line}"))?;
        let admin = HttpTransport::new(&TransportOptions {
            extra_ca_files: vec![info.ca_cert.clone()],
            ..TransportOptions::default()
        })
        .and_then(|transport| transport.without_proxy())
        .context("cannot set up HTTPS to the emulator")?;
        Ok(Self { child, info, admin })
    }

    /// `GET /_emulator/state`: every resource, and the VM listeners with their host keys.
    async fn snapshot(&self) -> anyhow::Result<serde_json::Value> {
        let response = self
            .admin
            .client()
            .get(format!("{}/state", self.info.admin_endpoint))
            .send()
            .await
            .and_then(|response| response.error_for_status())
            .context("the emulator's state is unavailable")?;
        response
            .json()
            .await
            .context("the emulator's state is not JSON")
    }

    /// Moves the emulated Azure's clock (an ISO-8601 duration).
    async fn advance_clock(&self, by: &str) -> anyhow::Result<()> {
        self.admin
            .client()
            .post(format!("{}/clock", self.info.admin_endpoint))
            .json(&serde_json::json!({ "advance": by }))
            .send()
            .await
            .and_then(|response| response.error_for_status())
            .context("the emulator's clock could not be moved")?;
        Ok(())
    }

    /// Closes its stdin (its signal to stop) and waits for it.
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(std::time::Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Runs `jit` commands against the demo's emulator.
struct Demo<'a> {
    program: PathBuf,
    environment: Vec<(&'static str, OsString)>,
    printer: &'a Printer,
    color: bool,
}

impl<'a> Demo<'a> {
    async fn new(
        emulator: &RunningEmulator,
        workspace: &Path,
        settings: &GlobalSettings,
        printer: &'a Printer,
    ) -> anyhow::Result<Self> {
        let info = &emulator.info;
        let known_hosts = workspace.join("known_hosts");
        let host_keys: Vec<String> = emulator
            .snapshot()
            .await?
            .get("listeners")
            .and_then(|listeners| listeners.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|listener| listener.get("known_hosts")?.as_str().map(str::to_owned))
            .collect();
        std::fs::write(&known_hosts, host_keys.join("\n") + "\n")
            .context("could not write the demo's known_hosts")?;
        let ssh_config = workspace.join("ssh_config");
        std::fs::write(&ssh_config, "# empty: the demo ignores ~/.ssh/config\n")
            .context("could not write the demo's ssh config")?;
        let config = workspace.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "# Written by `jit demo`: use the emulator's SSH key and pin its VMs' host keys.\n\
                 [ssh]\nargs = [\"-F\", {ssh_config:?}, \"-i\", {identity:?}, \"-o\", \"IdentitiesOnly=yes\", \"-o\", \"UserKnownHostsFile={known_hosts}\"]\n\
                 [agent]\nnotify_before = \"5m\"\n",
                ssh_config = ssh_config.display().to_string(),
                identity = info.ssh_identity.display().to_string(),
                known_hosts = known_hosts.display(),
            ),
        )
        .context("could not write the demo's configuration")?;

        let fake_az = info
            .az_cli
            .parent()
            .context("the emulator's fake az has no directory")?;
        let path = std::env::join_paths(std::iter::once(fake_az.to_owned()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .context("PATH cannot hold the emulator's directory")?;
        let program = std::env::current_exe().context("cannot find the running jit")?;
        let environment: Vec<(&'static str, OsString)> = vec![
            ("PATH", path),
            (env_vars::JIT_CONFIG, config.into()),
            (env_vars::JIT_ARM_ENDPOINT, info.arm_endpoint.clone().into()),
            (
                env_vars::JIT_AUTHORITY_HOST,
                info.authority_host.clone().into(),
            ),
            (env_vars::JIT_CA_FILE, info.ca_cert.clone().into()),
            (env_vars::JIT_MY_IP_URLS, info.my_ip_url.clone().into()),
            (env_vars::JIT_AUTH, "cli".into()),
            (env_vars::JIT_STATE_DIR, workspace.join("state").into()),
            (env_vars::JIT_RUNTIME_DIR, workspace.join("runtime").into()),
            // The demo must not leave an agent behind or touch the user's.
            (env_vars::JIT_NO_AGENT, "1".into()),
        ];
        Ok(Self {
            program,
            environment,
            printer,
            color: settings.color,
        })
    }

    fn say(&self, text: &str) {
        self.printer.info(format!("\n# {text}"));
    }

    /// Runs `jit ARGS` with the demo's environment, output going straight to the
    /// terminal, and fails the demo if it fails.
    async fn jit(&self, arguments: &[&str]) -> anyhow::Result<()> {
        self.printer.info(format!(
            "$ jit {}",
            crate::printer::format::shell_words(arguments.iter().copied())
        ));
        let mut command = tokio::process::Command::new(&self.program);
        command.args(arguments).stdin(Stdio::inherit());
        for name in [
            env_vars::JIT_CLOUD,
            env_vars::JIT_SUBSCRIPTIONS,
            env_vars::JIT_TENANT,
            env_vars::JIT_OUTPUT,
            env_vars::AZURE_CLIENT_ID,
            env_vars::AZURE_CLIENT_SECRET,
            env_vars::AZURE_TENANT_ID,
            env_vars::AZURE_FEDERATED_TOKEN_FILE,
            env_vars::IDENTITY_ENDPOINT,
            env_vars::IDENTITY_HEADER,
        ] {
            command.env_remove(name);
        }
        for (name, value) in &self.environment {
            command.env(name, value);
        }
        if !self.color {
            command.env(env_vars::NO_COLOR, "1");
        }
        let status = command
            .status()
            .await
            .with_context(|| format!("could not run {}", self.program.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(CliError::Unavailable {
                message: format!(
                    "the demo step `jit {}` failed ({status})",
                    arguments.join(" ")
                ),
                hint: Some("run it with -v for details; please report it".to_owned()),
            }
            .into())
        }
    }
}
