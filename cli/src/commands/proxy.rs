//! `jit proxy VM [PORT]`: open access if needed, then relay stdin/stdout to the port.
//!
//! This is what makes plain `ssh`, `scp`, `rsync`, git and VS Code Remote-SSH work with
//! JIT: as an SSH `ProxyCommand`, `jit proxy` runs before every connection, reuses an
//! access window that is still open for this address (no new request, no wait), or asks
//! for one and waits until the port answers, and then becomes a byte pipe between
//! `ssh` and the VM. `ssh` itself does the rest, host-key checking included.
//!
//! stdout belongs to the SSH protocol, so nothing but relayed bytes may ever be written
//! there; messages go to stderr, and only warnings and errors unless `-v`.

use std::time::Duration;

use anyhow::Context as _;
use jit_agent::access::my_ip::PublicAddress;
use jit_agent::access::plan::{PortPlan, Service};
use jit_agent::access::request::OpenPort;
use jit_agent::access::status::active_ports;
use jit_agent::probe;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use super::access_flow::{self, Prepared};
use super::{agent_link, common};
use crate::args::{PortArgs, ProxyArgs};
use crate::error::{CliError, ExitStatus};
use crate::printer::{Printer, Verbosity};
use crate::settings::GlobalSettings;

/// An open window is reused only if it has at least this long left.
const REUSE_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);

pub(crate) async fn run(
    arguments: ProxyArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    // Progress lines would garble ssh's own prompts on the same terminal.
    let printer = printer.at_most(if printer.is_verbose() {
        Verbosity::Verbose
    } else {
        Verbosity::Quiet
    });
    let connection = common::connect(settings, &printer).await?;
    let scope = common::scope_for_vm(&connection, settings, &arguments.vm).await?;
    // `ssh` passes %p, which is 22 unless configured: read 22 as "the SSH port".
    let ports = match arguments.port {
        None | Some(22) => PortArgs {
            ssh: true,
            ..PortArgs::default()
        },
        Some(number) => PortArgs {
            port: Some(number),
            ..PortArgs::default()
        },
    };
    let mut public_address: Option<PublicAddress> = None;
    let prepared = access_flow::prepare(
        &connection,
        settings,
        &printer,
        &scope,
        access_flow::Ask {
            vm: &arguments.vm,
            access: &arguments.access,
            ports: &ports,
        },
        &mut public_address,
    )
    .await?;

    let port = match reusable_window(&connection.arm.server_now(), &prepared, &printer).await? {
        Some(port) => port,
        None => {
            let justification = arguments
                .access
                .justification
                .clone()
                .or_else(|| settings.access.justification.clone());
            let initiated = access_flow::request(
                &connection,
                settings,
                &printer,
                &prepared,
                justification.as_deref(),
            )
            .await?;
            let open = access_flow::wait(
                &connection,
                settings,
                &printer,
                &prepared,
                &initiated,
                arguments.access.timeout.as_deref(),
            )
            .await?;
            agent_link::register(
                settings,
                &printer,
                &connection,
                &prepared,
                &initiated,
                &open,
            )
            .await;
            open.into_iter().next().context("no port answered")?
        }
    };
    relay(&port.host, port.connect_port).await?;
    Ok(ExitStatus::Success)
}

/// A window still open for the decided source on the planned port, that answers now.
async fn reusable_window(
    now: &jiff::Timestamp,
    prepared: &Prepared,
    printer: &Printer,
) -> anyhow::Result<Option<OpenPort>> {
    let PortPlan::Single { rule, service } = &prepared.plan else {
        return Ok(None);
    };
    let wanted_source = prepared
        .sources
        .iter()
        .find(|(number, _)| *number == rule.number)
        .and_then(|(_, decision)| decision.prefix.clone());
    let Some(until) = now.checked_add(REUSE_MARGIN).ok() else {
        return Ok(None);
    };
    let open = active_ports(
        &prepared.entry.policy,
        &prepared.entry.virtual_machine.id,
        until,
    )
    .into_iter()
    .find(|port| {
        port.number == rule.number
            && port.status == "Initiated"
            && match (&wanted_source, &port.source) {
                (Some(wanted), Some(source)) => wanted == source,
                (None, _) => true,
                _ => false,
            }
    });
    let Some(open) = open else {
        return Ok(None);
    };
    let targets = prepared.targets(printer)?;
    let Some(target) = targets.first() else {
        return Ok(None);
    };
    let connect_port = if target.through_firewall {
        open.mapped_port.unwrap_or(open.number)
    } else {
        open.number
    };
    let address = tokio::net::lookup_host((target.host.as_str(), connect_port))
        .await
        .ok()
        .and_then(|mut addresses| addresses.next());
    let Some(address) = address else {
        return Ok(None);
    };
    let outcome = match service {
        Service::Ssh => probe::probe_ssh(address, Duration::from_secs(3)).await,
        Service::Rdp => probe::probe_rdp(address, Duration::from_secs(3)).await,
        Service::Other => probe::probe_tcp(address, Duration::from_secs(3)).await,
    };
    if !outcome.is_ready() {
        printer.detail(format!(
            "the open window does not answer ({outcome}); asking again"
        ));
        return Ok(None);
    }
    printer.detail(format!(
        "reusing the window open until {}",
        open.end_time_utc
    ));
    Ok(Some(OpenPort {
        number: open.number,
        host: target.host.clone(),
        connect_port,
        mapped_port: open.mapped_port,
        service: *service,
        detail: outcome.to_string(),
    }))
}

/// Pipes stdin to the port and the port to stdout until the port closes.
async fn relay(host: &str, port: u16) -> anyhow::Result<()> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|error| CliError::Unavailable {
            message: format!("could not connect to {host}:{port}: {error}"),
            hint: None,
        })?;
    stream.set_nodelay(true).ok();
    let (mut from_vm, mut to_vm) = stream.into_split();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let upstream = async {
        tokio::io::copy(&mut stdin, &mut to_vm).await?;
        // ssh closed its side: tell the VM, keep reading its answer.
        to_vm.shutdown().await
    };
    let downstream = async {
        tokio::io::copy(&mut from_vm, &mut stdout).await?;
        stdout.flush().await
    };
    tokio::pin!(upstream, downstream);
    tokio::select! {
        result = &mut downstream => result.context("the connection to the VM failed")?,
        result = &mut upstream => {
            result.context("could not forward to the VM")?;
            downstream.await.context("the connection to the VM failed")?;
        }
    }
    Ok(())
}
