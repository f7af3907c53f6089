//! `jit connect VM [-- SSH_ARGS]`: the portal's Connect page, end to end.
//!
//! Find the VM, make sure it runs and has JIT, request access for the caller's address,
//! wait until the port answers, hand the window to the agent, and start the client:
//! OpenSSH for SSH (as a child, so the session is the user's terminal and `jit` exits
//! with `ssh`'s status), the platform's RDP client for RDP (detached: it is a window).

use std::path::PathBuf;

use anyhow::Context as _;
use jit_agent::access::my_ip::PublicAddress;
use jit_agent::access::plan::Service;
use jit_agent::access::request::OpenPort;

use super::access_flow::{self, AccessReport, Prepared};
use super::{agent_link, common};
use crate::args::ConnectArgs;
use crate::error::{CliError, ExitStatus};
use crate::launch::rdp::{self, Platform, RdpLaunch, RdpTarget};
use crate::launch::ssh::{SshTarget, display_command, ssh_command_line};
use crate::printer::Printer;
use crate::settings::GlobalSettings;

pub(crate) async fn run(
    arguments: ConnectArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let connection = common::connect(settings, printer).await?;
    let scope = common::scope_for_vm(&connection, settings, &arguments.vm).await?;
    let mut public_address: Option<PublicAddress> = None;
    let prepared = access_flow::prepare(
        &connection,
        settings,
        printer,
        &scope,
        access_flow::Ask {
            vm: &arguments.vm,
            access: &arguments.access,
            ports: &arguments.port,
        },
        &mut public_address,
    )
    .await?;
    let justification = arguments
        .access
        .justification
        .clone()
        .or_else(|| settings.access.justification.clone());
    let initiated = access_flow::request(
        &connection,
        settings,
        printer,
        &prepared,
        justification.as_deref(),
    )
    .await?;
    let open = access_flow::wait(
        &connection,
        settings,
        printer,
        &prepared,
        &initiated,
        arguments.access.timeout.as_deref(),
    )
    .await?;
    agent_link::register(settings, printer, &connection, &prepared, &initiated, &open).await;

    let mut report = AccessReport::new(&prepared, &initiated, open.clone(), justification);
    let service = access_flow::service_of(&open, &prepared.plan);
    let Some(port) = open.first() else {
        return Err(anyhow::anyhow!("no port answered"));
    };
    match service {
        Service::Ssh => {
            let user = ssh_user(&arguments, settings, &prepared);
            let vm_section = settings.vm_section(
                &prepared.details.id,
                &prepared.details.resource_group,
                &prepared.details.name,
            );
            let mut configured = settings.launch.ssh_args.clone();
            configured.extend(
                vm_section
                    .and_then(|section| section.ssh_args.clone())
                    .unwrap_or_default(),
            );
            let (program, argv) = ssh_command_line(
                &settings.launch.ssh_program,
                &configured,
                &SshTarget {
                    address: port.host.clone(),
                    port: port.connect_port,
                    user,
                },
                &arguments.ssh_args,
            );
            report.ssh_command = Some(
                std::iter::once(program.display().to_string())
                    .chain(argv.iter().map(|part| part.to_string_lossy().into_owned()))
                    .collect(),
            );
            if arguments.no_launch {
                print_report(printer, &report, Some(display_command(&program, &argv)));
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
                    .or_else(|| prepared.details.admin_username.clone()),
            };
            let directory = rdp_directory(settings);
            let file = rdp::write_rdp_file(
                &directory,
                &prepared.details.name,
                &rdp::rdp_file_content(&target),
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
                print_report(printer, &report, None);
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
                    print_report(printer, &report, None);
                }
                RdpLaunch::ShowFile => {
                    printer.warn(
                        "no RDP client found (xfreerdp3, xfreerdp, remmina); open the .rdp file with yours",
                    );
                    print_report(printer, &report, None);
                }
            }
            Ok(ExitStatus::Success)
        }
        Service::Other => {
            print_report(printer, &report, None);
            Ok(ExitStatus::Success)
        }
    }
}

fn ssh_user(
    arguments: &ConnectArgs,
    settings: &GlobalSettings,
    prepared: &Prepared,
) -> Option<String> {
    arguments
        .user
        .clone()
        .or_else(|| {
            settings
                .vm_section(
                    &prepared.details.id,
                    &prepared.details.resource_group,
                    &prepared.details.name,
                )
                .and_then(|section| section.user.clone())
        })
        .or_else(|| prepared.details.admin_username.clone())
}

/// Where `.rdp` files are written: next to the agent's state, else the cache dir.
fn rdp_directory(settings: &GlobalSettings) -> PathBuf {
    settings
        .agent
        .state_dir
        .clone()
        .or_else(|| {
            directories::ProjectDirs::from("", "", "jit").map(|dirs| dirs.cache_dir().to_owned())
        })
        .unwrap_or_else(std::env::temp_dir)
        .join("rdp")
}

/// Prints the window: a table of lines for people, or the JSON report.
pub(crate) fn print_report(printer: &Printer, report: &AccessReport, command: Option<String>) {
    if printer.is_json() {
        printer.json(report);
        return;
    }
    printer.data(format!(
        "vm:       {}/{}",
        report.vm.resource_group, report.vm.name
    ));
    for OpenPort {
        number,
        host,
        connect_port,
        mapped_port,
        service,
        ..
    } in &report.ports
    {
        let via = mapped_port
            .map(|mapped| format!(" (firewall port {mapped} for VM port {number})"))
            .unwrap_or_default();
        let service = match service {
            Service::Ssh => "ssh",
            Service::Rdp => "rdp",
            Service::Other => "tcp",
        };
        printer.data(format!("{service}:      {host}:{connect_port}{via}"));
    }
    printer.data(format!("source:   {}", report.source));
    printer.data(format!(
        "until:    {}",
        report.ends_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    ));
    if let Some(command) = command {
        printer.data(format!("command:  {command}"));
    }
    if let Some(file) = &report.rdp_file {
        printer.data(format!("rdp file: {file}"));
    }
}

/// Runs `ssh` in the foreground. Ctrl-C belongs to the session, so `jit` ignores it while
/// `ssh` runs, and exits with `ssh`'s status.
async fn run_ssh(
    program: PathBuf,
    argv: Vec<std::ffi::OsString>,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    printer.detail(format!("running {}", display_command(&program, &argv)));
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
            // The terminal sends Ctrl-C to ssh too; ssh decides what it means.
            _ = tokio::signal::ctrl_c() => {}
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
