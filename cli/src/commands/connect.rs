//! `jit connect VM [-- SSH_ARGS]`: the portal's Connect page, end to end.
//!
//! Find the VM, make sure it runs and has JIT, request access for the caller's address,
//! wait until the port answers, hand the window to the agent, and start the client:
//! OpenSSH for SSH (as a child, so the session is the user's terminal and `jit` exits
//! with `ssh`'s status), the platform's RDP client for RDP (detached: it is a window).

use std::path::PathBuf;

use anyhow::Context as _;
use jit_agent::access::flow::Grant;
use jit_agent::access::plan::Service;

use crate::agent_support::{recall, register_grant, register_window};
use crate::args::ConnectArgs;
use crate::error::{CliError, ExitStatus};
use crate::interruption::{self, Entry, StopSignal, Stopped};
use crate::launch::rdp::{self, Platform, RdpLaunch, RdpTarget};
use crate::launch::ssh::{SshTarget, checked_ssh_command_line, display_command};
use crate::printer::Printer;
use crate::printer::access::AccessReport;
use crate::session::Session;
use crate::settings::{AccessCommand, GlobalSettings};

/// How long a stopped `jit connect` waits to hand an accepted request to the agent.
const AGENT_HANDOVER_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) async fn run(
    arguments: ConnectArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let access = AccessCommand::resolve(&arguments.access, &arguments.port, settings)?;
    let ask = access.ask(&arguments.vm)?;
    interruption::keep_complete_journal();
    let session = Session::open_for_requests(settings, printer)?;
    // What the agent remembers about this VM saves finding its policy again.
    let flow = session
        .flow()
        .with_remembered(recall(settings, &[arguments.vm.as_str()]).await);
    // The flow's steps one by one, so that a stop (SIGINT, SIGTERM) can say exactly
    // where it came and the agent learns of any request Azure accepted.
    let prepared = flow.prepare_with_memory(&ask).await?;
    let vm = prepared.details.name.clone();
    let (prepared, initiated) = interruption::under_way(
        Entry::new(
            format!("a request for access to {vm} was on its way to Azure, which may have accepted it"),
            format!("`jit show {vm}` shows whether Azure holds it; a request that opened stays open until its end"),
        ),
        // A remembered entry Azure refuses as out of date is looked up again once.
        flow.request_one(&ask, prepared, access.justification.as_deref()),
    )
    .await?;
    // The terminal recorded what Azure accepted (`FlowEvent::Requested`).
    let accepted = flow.window(&prepared, &initiated, &[]);
    let open = {
        // A stop while waiting must still hand the accepted request to the agent.
        let mut listener = interruption::Listener::new();
        let _taken_over = interruption::TakeOver::new();
        tokio::select! {
            open = flow.wait(&prepared, &initiated, access.timeout) => open?,
            signal = listener.recv() => {
                tokio::select! {
                    _ = tokio::time::timeout(
                        AGENT_HANDOVER_LIMIT,
                        register_window(settings, printer, &accepted),
                    ) => {}
                    // A second signal does not wait for the agent.
                    _ = listener.recv() => {}
                }
                return Err(Stopped(signal).into());
            }
        }
    };
    let window = flow.window(&prepared, &initiated, &open);
    let grant = Grant {
        prepared,
        initiated: Some(initiated),
        open,
        window,
    };
    register_grant(
        settings,
        printer,
        &grant.window,
        flow.to_remember(&ask, &grant),
    )
    .await;

    let mut report = AccessReport::new(&grant);
    let Some(port) = grant.open.first() else {
        return Err(anyhow::anyhow!("no port answered"));
    };
    let details = &grant.prepared.details;
    match grant.service() {
        Service::Ssh => {
            let user = ssh_user(&arguments, settings, &grant);
            let vm_section =
                settings.vm_section(&details.id, &details.resource_group, &details.name);
            let mut configured = settings.launch.ssh_args.clone();
            configured.extend(
                vm_section
                    .and_then(|section| section.ssh_args.clone())
                    .unwrap_or_default(),
            );
            let (program, argv) = checked_ssh_command_line(
                &settings.launch.ssh_program,
                &configured,
                &SshTarget {
                    address: port.host.clone(),
                    port: port.connect_port,
                    user,
                },
                &arguments.ssh_args,
            )
            .map_err(CliError::from)?;
            report.ssh_command = Some(
                std::iter::once(program.display().to_string())
                    .chain(argv.iter().map(|part| part.to_string_lossy().into_owned()))
                    .collect(),
            );
            if arguments.no_launch {
                report.print(printer, Some(&display_command(&program, &argv)));
                return Ok(ExitStatus::Success);
            }
            run_ssh(program, argv, printer).await
        }
        Service::Rdp => {
            let target = RdpTarget {
                address: port.host.clone(),
                port: port.connect_port,
                user: arguments
                    .user
                    .clone()
                    .or_else(|| details.admin_username.clone()),
            };
            let directory =
                rdp::rdp_directory(settings.agent.state_dir.as_deref()).map_err(CliError::from)?;
            let file = rdp::write_rdp_file(
                &directory,
                &details.name,
                &rdp::checked_rdp_file_content(&target).map_err(CliError::from)?,
            )
            .with_context(|| format!("could not write the .rdp file in {}", directory.display()))?;
            report.rdp_file = Some(file.display().to_string());
            let launch = rdp::rdp_launch(
                Platform::current(),
                &rdp::PathFinder,
                settings
                    .launch
                    .rdp_program
                    .as_deref()
                    .map(|program| (program, settings.launch.rdp_args.as_slice())),
                &target,
                &file,
            );
            if arguments.no_launch {
                report.print(printer, None);
                return Ok(ExitStatus::Success);
            }
            match launch {
                RdpLaunch::Run { program, arguments } => {
                    printer.info(format!(
                        "Starting {}",
                        display_command(&program, &arguments)
                    ));
                    std::process::Command::new(&program)
                        .args(&arguments)
                        .stdin(std::process::Stdio::null())
                        .spawn()
                        .with_context(|| format!("could not start {}", program.display()))?;
                    report.print(printer, None);
                }
                RdpLaunch::ShowFile => {
                    printer.warn(
                        "no RDP client found (xfreerdp3, xfreerdp, remmina); open the .rdp file with yours",
                    );
                    report.print(printer, None);
                }
            }
            Ok(ExitStatus::Success)
        }
        Service::Other => {
            report.print(printer, None);
            Ok(ExitStatus::Success)
        }
    }
}

fn ssh_user(arguments: &ConnectArgs, settings: &GlobalSettings, grant: &Grant) -> Option<String> {
    let details = &grant.prepared.details;
    arguments
        .user
        .clone()
        .or_else(|| {
            settings
                .vm_section(&details.id, &details.resource_group, &details.name)
                .and_then(|section| section.user.clone())
        })
        .or_else(|| details.admin_username.clone())
}

/// Sends SIGTERM to a child (on Windows, ends it).
fn terminate(child: &tokio::process::Child) {
    #[cfg(unix)]
    {
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid
            && let Err(error) = rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        {
            tracing::warn!(%error, "could not pass SIGTERM on to ssh");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = child;
    }
}

/// Runs `ssh` in the foreground. Ctrl-C belongs to the session, so `jit` ignores it while
/// `ssh` runs, passes SIGTERM on to it, and exits with `ssh`'s status.
async fn run_ssh(
    program: PathBuf,
    argv: Vec<std::ffi::OsString>,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    printer.detail(format!("running {}", display_command(&program, &argv)));
    // Before the spawn: from its first instant, ssh owns Ctrl-C.
    let mut listener = interruption::Listener::new();
    let _taken_over = interruption::TakeOver::new();
    let mut child = tokio::process::Command::new(&program)
        .args(&argv)
        .spawn()
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                anyhow::Error::new(CliError::Unavailable {
                    message: format!("the SSH client '{}' was not found", program.display()),
                    hint: Some(
                        "install OpenSSH (apt install openssh-client; on Windows: Settings > Optional features > OpenSSH Client), or set [ssh] program in the config file"
                            .to_owned(),
                    ),
                })
            } else {
                anyhow::Error::new(error).context(format!("could not start {}", program.display()))
            }
        })?;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("could not wait for ssh")?,
            signal = listener.recv() => {
                // The terminal sends Ctrl-C to ssh too; ssh decides what it means.
                // SIGTERM is meant for us: ssh gets it, and we exit with its status.
                if signal == StopSignal::Terminate {
                    terminate(&child);
                }
            }
        }
    };
    match status.code() {
        Some(0) => Ok(ExitStatus::Success),
        Some(code) => Err(CliError::ChildFailed {
            program: "ssh".to_owned(),
            code: u8::try_from(code).unwrap_or(1),
        }
        .into()),
        None => Err(CliError::ChildFailed {
            program: "ssh".to_owned(),
            code: 1,
        }
        .into()),
    }
}
