//! `jit demo`: the whole flow against a local emulated Azure, in one command.
//!
//! A newcomer has no JIT-protected VM to try `jit` on, so the demo brings one: it starts
//! the emulator in this process (ARM, the token endpoint, VMs whose SSH and RDP ports
//! really open and close), writes a throw-away configuration that points `jit` at it,
//! and then runs the real `jit` binary, command by command, printing each command line
//! as a user would type it. Nothing is simulated inside `jit` itself: the same code that
//! talks to Azure talks to the emulator, through its HTTPS endpoint, its CA, its fake
//! `az`, and OpenSSH against the emulated VM (with its host key pinned in a demo
//! `known_hosts`, never with host-key checking turned off).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use jiff::SignedDuration;
use jit_emulator::{Emulator, EmulatorOptions, World};

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
    printer
        .info("Starting a local emulated Azure: ARM, Entra ID, two subscriptions and their VMs…");
    let emulator = tokio::task::spawn_blocking(|| {
        Emulator::start_with(
            World::default_world(),
            EmulatorOptions {
                initiating_delay: SignedDuration::from_secs(1),
                ..EmulatorOptions::default()
            },
        )
    })
    .await
    .context("the emulator could not start")?
    .context("the emulator could not start")?;
    let demo = Demo::new(&emulator, workspace.path(), settings, printer)?;

    printer.info(format!(
        "Azure Resource Manager is at {}; `jit` signs in through the Azure CLI credential (a fake `az`).\n",
        emulator.info().arm_endpoint
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
    emulator.advance_clock(SignedDuration::from_hours(3));
    demo.jit(&["show", LINUX_VM]).await?;

    printer.info(format!(
        "\nThat was the whole flow. Against real Azure it is just `jit connect <vm>` after `az login`.\nSee {} for more.",
        "docs/getting-started.md"
    ));
    drop(emulator);
    Ok(ExitStatus::Success)
}

/// Runs `jit` commands against the demo's emulator.
struct Demo<'a> {
    program: PathBuf,
    environment: Vec<(&'static str, OsString)>,
    printer: &'a Printer,
    color: bool,
}

impl<'a> Demo<'a> {
    fn new(
        emulator: &Emulator,
        workspace: &Path,
        settings: &GlobalSettings,
        printer: &'a Printer,
    ) -> anyhow::Result<Self> {
        let info = emulator.info();
        let known_hosts = workspace.join("known_hosts");
        let host_keys: Vec<String> = emulator
            .snapshot()
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
