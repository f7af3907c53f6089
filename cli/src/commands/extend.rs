//! `jit extend VM [--duration D] [--justification T]`: a new request for the same ports
//! and source as the VM's open window, so the old one is superseded and the end moves.
//!
//! JIT has no "extend": Azure marks the older request `NewerRequestInitiated` when a
//! newer one covers its ports. There are two ways to make that request:
//!
//! - **through the agent** when one runs for this Azure: it knows the window (ports,
//!   source, justification), asks Azure with its own warm sign-in, and starts tracking
//!   the new window at once;
//! - **directly** otherwise (`jit_agent::access::flow::AccessFlow::extend`): the VM's
//!   policy is read, the newest open request that is *this user's* (made by `jit` here,
//!   see `jit_agent::access::ownership`, so a window opened with `--no-agent` is
//!   extended too) is asked for again with its own ports and source, the duration
//!   checked against the policy exactly as `jit connect` checks it, and the new window
//!   is handed to the agent. Windows other people opened are listed, never renewed:
//!   a new request would replace their access.
//!
//! `--justification` always goes the direct way (the agent's extension keeps the
//! window's justification), and so does a window the agent does not track or an agent
//! that cannot reach Azure. A failure anywhere else is reported, never retried: the
//! request may have reached Azure.

use jiff::SignedDuration;
use jit_agent::access::window::ExtendLength;
use jit_agent::daemon::protocol::{ErrorKind, PROTOCOL_VERSION, WindowView};
use jit_agent::daemon::{AccessWindow, ClientError};

use crate::agent_support::{agent_profile, connect_if_running, register_window, welcome_text};
use crate::args::ExtendArgs;
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::printer::format::{describe_end, ports_phrase};
use crate::printer::windows::{WindowDocument, table};
use crate::session::Session;
use crate::settings::{GlobalSettings, parse_duration, parse_vm};

pub(crate) async fn run(
    arguments: ExtendArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let query = parse_vm(&arguments.vm)?;
    let requested = arguments
        .duration
        .as_deref()
        .map(|text| parse_duration(text, "--duration"))
        .transpose()?;
    let length = match requested {
        Some(duration) => ExtendLength::Duration { duration },
        None => ExtendLength::PolicyMaximum,
    };
    if settings.agent.enabled && arguments.justification.is_none() {
        match through_agent(&arguments.vm, &length, settings, printer).await? {
            ThroughAgent::Extended(view) => {
                let offset = view.window.server_clock_offset_at_registration;
                let document = WindowDocument::new(
                    &view.window,
                    view.time_left,
                    view.ends_soon_notified,
                    offset,
                );
                report(printer, &document, &view.window, view.time_left);
                return Ok(ExitStatus::Success);
            }
            ThroughAgent::GoDirect => {}
        }
    }
    let session = Session::open_for_requests(settings, printer)?;
    let flow = session.flow();
    let window = flow
        .extend(&query, &length, arguments.justification.as_deref())
        .await?;
    session.terminal.end_progress();
    register_window(settings, printer, &window).await;
    let offset = window.server_clock_offset_at_registration;
    let time_left = window
        .ends_at
        .duration_since(session.connection.arm.server_now());
    let document = WindowDocument::new(&window, time_left, false, offset);
    report(printer, &document, &window, time_left);
    Ok(ExitStatus::Success)
}

/// What asking the agent came to.
enum ThroughAgent {
    Extended(Box<WindowView>),
    /// No agent for this Azure, or one that does not track the window or cannot reach
    /// Azure: make the request here.
    GoDirect,
}

async fn through_agent(
    vm: &str,
    length: &ExtendLength,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ThroughAgent> {
    let Some(mut client) = connect_if_running(settings).await? else {
        return Ok(ThroughAgent::GoDirect);
    };
    let welcome = client.welcome();
    if welcome.protocol_version != PROTOCOL_VERSION
        || welcome.profile.as_deref() != Some(agent_profile(settings).as_str())
    {
        printer.detail(format!(
            "the running agent ({}) is not set up for this Azure; extending directly",
            welcome_text(welcome)
        ));
        return Ok(ThroughAgent::GoDirect);
    }
    let progress = printer.progress(format!("Asking the agent to extend the window on {vm}"));
    let answer = client.extend_window(vm, length.clone()).await;
    drop(progress);
    let error = match answer {
        Ok(view) => return Ok(ThroughAgent::Extended(Box::new(view))),
        Err(ClientError::Agent(error)) => error,
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!(
                "the agent did not answer the request to extend the window on {vm} (check `jit status` before trying again)"
            )));
        }
    };
    match error.kind {
        ErrorKind::NotFound => {
            printer.detail(format!(
                "the agent tracks no window for {vm}; looking in Azure"
            ));
            Ok(ThroughAgent::GoDirect)
        }
        ErrorKind::Unavailable => {
            printer.detail(format!(
                "the agent cannot reach Azure ({}); extending directly",
                error.message
            ));
            Ok(ThroughAgent::GoDirect)
        }
        ErrorKind::Ambiguous => Err(CliError::Usage {
            message: error.message,
            hint: Some("name the VM as resource-group/name or by its resource id".to_owned()),
        }
        .into()),
        ErrorKind::InvalidRequest => Err(CliError::Usage {
            message: error.message,
            hint: Some(if matches!(length, ExtendLength::Duration { .. }) {
                "ask for less with --duration, or raise the maximum with `jit enable --max-duration`"
                    .to_owned()
            } else {
                format!("open a new window with `jit connect {vm}`")
            }),
        }
        .into()),
        // Azure refused or failed the agent's request: exit 6 like the direct way, not 1.
        ErrorKind::Backend => Err(anyhow::Error::new(CliError::Azure {
            message: error.message,
            hint: Some(format!(
                "`jit status` shows the window on {vm} as the agent tracks it; if its end did not move, try again"
            )),
        })
        .context(format!("the agent could not extend the window on {vm}"))),
        _ => Err(anyhow::Error::new(error)
            .context(format!("the agent could not extend the window on {vm}"))),
    }
}

/// Says what the new window is: one line on stderr, the window on stdout.
fn report(
    printer: &Printer,
    document: &WindowDocument,
    window: &AccessWindow,
    time_left: SignedDuration,
) {
    let azure_now = window
        .ends_at
        .checked_sub(time_left)
        .unwrap_or(window.ends_at);
    printer.success(format!(
        "Extended {}: {} for {} until {}",
        document.vm_reference(),
        ports_phrase(&window.port_numbers()),
        window.source_address_prefix,
        describe_end(window.ends_at, azure_now)
    ));
    if printer.is_json() {
        printer.json(document);
    } else {
        printer.data(table(std::slice::from_ref(document)));
    }
}
