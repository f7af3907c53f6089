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

use anyhow::Context as _;
use jit_agent::access::flow::Wait;
use jit_agent::access::plan::PortPreference;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::agent_support::register_window;
use crate::args::ProxyArgs;
use crate::error::{CliError, ExitStatus};
use crate::printer::{Printer, Verbosity};
use crate::session::Session;
use crate::settings::{AccessCommand, GlobalSettings};

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
    let mut access = AccessCommand::resolve(&arguments.access, &Default::default(), settings)?;
    // `ssh` passes %p, which is 22 unless configured: read 22 as "the SSH port".
    access.ports = match arguments.port {
        None | Some(22) => PortPreference::Ssh,
        Some(number) => PortPreference::Number(number),
    };
    let ask = access.ask(&arguments.vm)?;
    let session = Session::open_for_requests(settings, &printer)?;
    let flow = session.flow();
    let prepared = flow.prepare(&ask).await?;
    let grant = match flow.reusable(&prepared, REUSE_MARGIN).await {
        Some(grant) => grant,
        None => {
            let grant = flow
                .open_prepared(
                    prepared,
                    access.justification.as_deref(),
                    Wait::UntilAnswering(access.timeout),
                )
                .await?;
            register_window(settings, &printer, &grant.window).await;
            grant
        }
    };
    let port = grant.open.first().context("no port answered")?;
    relay(&port.host, port.connect_port).await?;
    Ok(ExitStatus::Success)
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
