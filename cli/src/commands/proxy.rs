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
//!
//! **Fan-out.** Ansible, `parallel-ssh` or an editor reconnecting start many `ssh`
//! processes to the same closed VM at once. Each `jit proxy` asks the background agent
//! to open access (`OpenWindow`), and the agent makes **one** request for all of them
//! and answers each when the port answers; a later `jit proxy` gets the window the agent
//! opened as long as its port answers. The agent never asks a question (a stopped VM or
//! one without JIT is an error unless `--start`/`--enable`/`--yes` say otherwise). When
//! no agent can run (`--no-agent`, autostart off and none running, a headless machine),
//! each `jit proxy` opens access itself: then fan-out costs one request per process.

use anyhow::Context as _;
use jit_agent::access::flow::Wait;
use jit_agent::access::plan::{PortPreference, SourceRequest};
use jit_agent::daemon::protocol::{ErrorKind, OpenAsk, OpenPreference, Opened};
use jit_agent::daemon::{ClientError, ensure_running};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::agent_support::{recall, register_grant, spawn_agent, start_options};
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
    if let Some(opened) = through_agent(&arguments, &access, settings, &printer).await? {
        let port = opened.ports.first().context("no port answered")?;
        relay(&port.host, port.connect_port).await?;
        return Ok(ExitStatus::Success);
    }
    let session = Session::open_for_requests(settings, &printer)?;
    let flow = session
        .flow()
        .with_remembered(recall(settings, &[arguments.vm.as_str()]).await);
    let grant = flow
        .open_or_reuse(
            &ask,
            REUSE_MARGIN,
            access.justification.as_deref(),
            Wait::UntilAnswering(access.timeout),
        )
        .await?;
    if grant.initiated.is_some() {
        register_grant(
            settings,
            &printer,
            &grant.window,
            flow.to_remember(&ask, &grant),
        )
        .await;
    }
    let port = grant.open.first().context("no port answered")?;
    relay(&port.host, port.connect_port).await?;
    Ok(ExitStatus::Success)
}

/// Asks the agent (started if needed and allowed) to open access, sharing one request
/// with every `jit proxy` asking for the same VM at once. `Ok(None)` when no agent can do
/// it: the caller then opens access itself.
async fn through_agent(
    arguments: &ProxyArgs,
    access: &AccessCommand,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<Option<Opened>> {
    if !settings.agent.enabled {
        return Ok(None);
    }
    let options = match start_options(settings) {
        Ok(options) => options,
        Err(error) => {
            printer.detail(format!("no agent ({error}); opening access here"));
            return Ok(None);
        }
    };
    let client = if settings.agent.autostart {
        ensure_running(&options, || spawn_agent(settings))
            .await
            .map(|(client, _)| Some(client))
            .map_err(|error| error.to_string())
    } else {
        jit_agent::daemon::client::connect_if_running(&options)
            .await
            .map(|client| {
                client.filter(|client| {
                    client.is_same_version(&options.client_version, options.profile.as_deref())
                })
            })
            .map_err(|error| error.to_string())
    };
    let mut client = match client {
        Ok(Some(client)) => client,
        Ok(None) => {
            printer.detail("no agent runs (autostart is off); opening access here");
            return Ok(None);
        }
        Err(reason) => {
            printer.detail(format!(
                "the agent is not available ({reason}); opening access here"
            ));
            return Ok(None);
        }
    };
    match client.open_window(open_ask(arguments, access, settings)).await {
        Ok(opened) => {
            printer.detail(if opened.reused {
                "the agent's open window answers"
            } else if opened.joined {
                "joined the request another connection started"
            } else {
                "the agent opened access"
            });
            Ok(Some(opened))
        }
        Err(ClientError::Agent(error))
            if matches!(error.kind, ErrorKind::Unavailable | ErrorKind::VersionMismatch) =>
        {
            printer.detail(format!("the agent cannot open access ({error}); opening access here"));
            Ok(None)
        }
        Err(ClientError::Agent(error)) => Err(CliError::Unavailable {
            message: format!("could not open access to {}: {}", arguments.vm, error.message),
            hint: Some(format!(
                "the background agent asked Azure for every connection at once; run `jit connect {} --no-launch` in a terminal to see the details",
                arguments.vm
            )),
        }
        .into()),
        Err(error) => {
            printer.detail(format!("the agent did not answer ({error}); opening access here"));
            Ok(None)
        }
    }
}

/// The agent's ask: what this `jit proxy` would have asked for itself.
fn open_ask(arguments: &ProxyArgs, access: &AccessCommand, settings: &GlobalSettings) -> OpenAsk {
    let assume_yes = settings.access.assume_yes;
    OpenAsk {
        vm: arguments.vm.clone(),
        port: match access.ports {
            PortPreference::Number(number) => Some(number),
            _ => None,
        },
        source: match &access.source {
            Some(SourceRequest::Any) => Some("any".to_owned()),
            Some(SourceRequest::Explicit(prefix)) => Some(prefix.clone()),
            Some(SourceRequest::Automatic) | None => None,
        },
        duration: access.duration,
        justification: access.justification.clone(),
        timeout: jiff::SignedDuration::try_from(access.timeout)
            .unwrap_or(jiff::SignedDuration::MAX),
        reuse_margin: REUSE_MARGIN,
        start: access.start || assume_yes,
        enable: access.enable || assume_yes,
        enable_allowed_sources: settings.enable.allowed_sources.clone(),
        enable_max_duration: Some(settings.enable.max_duration),
        subscriptions: settings.azure.subscriptions.clone(),
        my_ip_urls: settings.access.my_ip_urls.clone(),
        preferences: settings
            .vms
            .iter()
            .map(|(key, section)| {
                (
                    key.clone(),
                    OpenPreference {
                        port: section.port,
                        source: section.source.clone(),
                    },
                )
            })
            .collect(),
    }
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
