//! The steps `connect`, `request` and `proxy` share: find the VM, make sure it runs and
//! has JIT (offering to start it or enable JIT), decide port, source and duration, ask
//! Azure, and wait until the port answers.
//!
//! Each step reports on stderr as it goes, so a person sees what is happening and, when
//! something fails, which step failed.

use std::time::Duration;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use jit_agent::access::details::{AddressKind, VmDetails, read_vm};
use jit_agent::access::enable::{ChangeOutcome, VmPlacement, default_port, enable};
use jit_agent::access::locate::Scope;
use jit_agent::access::my_ip::{PublicAddress, discover};
use jit_agent::access::plan::{
    PortPlan, PortPreference, Service, SourceDecision, SourceRequest, choose_duration,
    choose_ports, choose_source,
};
use jit_agent::access::request::{
    Initiated, OpenPort, PortRequest, PortTarget, RequestError, VmRequest, WaitFor, WaitProgress,
    initiate, wait_until_open,
};
use jit_agent::access::status::{PolicyEntry, entries_for_vm, find_entry};
use jit_agent::azure::clients::VirtualMachinesClient;
use jit_agent::azure::models::JitProtocol;
use serde::Serialize;

use super::common;
use crate::args::{AccessArgs, PortArgs};
use crate::connection::AzureConnection;
use crate::error::CliError;
use crate::printer::Printer;
use crate::settings::{GlobalSettings, format_duration, parse_duration};

/// How long "what is my IP" services get to answer.
const MY_IP_TIMEOUT: Duration = Duration::from_secs(5);

/// A VM ready to be asked for: running, with a JIT policy entry, and the decisions made.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) details: VmDetails,
    pub(crate) entry: PolicyEntry,
    pub(crate) plan: PortPlan,
    pub(crate) duration: SignedDuration,
    pub(crate) sources: Vec<(u16, SourceDecision)>,
}

impl Prepared {
    /// The ports to request, each with its source.
    pub(crate) fn port_requests(&self) -> Vec<PortRequest> {
        self.plan
            .rules()
            .iter()
            .map(|rule| PortRequest {
                number: rule.number,
                source_prefix: self
                    .sources
                    .iter()
                    .find(|(number, _)| *number == rule.number)
                    .and_then(|(_, decision)| decision.prefix.clone()),
            })
            .collect()
    }

    /// Where to connect for each planned port.
    pub(crate) fn targets(&self, printer: &Printer) -> anyhow::Result<Vec<PortTarget>> {
        let firewall = self.entry.virtual_machine.public_ip_address.clone();
        let (host, through_firewall) = match firewall {
            Some(address) => (address, true),
            None => {
                let (address, kind) =
                    self.details
                        .connect_address()
                        .ok_or_else(|| CliError::Unavailable {
                            message: format!(
                                "{} has neither a public nor a private IP address",
                                self.details.name
                            ),
                            hint: None,
                        })?;
                if kind == AddressKind::Private {
                    printer.warn(format!(
                        "{} has no public IP; connecting to its private address {address} (needs a VPN or peering)",
                        self.details.name
                    ));
                }
                (address, false)
            }
        };
        Ok(self
            .plan
            .rules()
            .iter()
            .map(|rule| PortTarget {
                vm_id: self.entry.virtual_machine.id.clone(),
                number: rule.number,
                host: host.clone(),
                through_firewall,
                service: match &self.plan {
                    PortPlan::Single { service, .. } => *service,
                    PortPlan::Probe { service, .. } => *service,
                },
            })
            .collect())
    }

    /// How to wait for the plan's ports.
    pub(crate) fn wait_for(&self) -> WaitFor {
        match &self.plan {
            PortPlan::Single { .. } => WaitFor::All,
            PortPlan::Probe { service, .. } => WaitFor::FirstAnswering(*service),
        }
    }

    /// The source the ports are opened for, in words.
    pub(crate) fn source_text(&self) -> String {
        let mut prefixes: Vec<String> = self
            .sources
            .iter()
            .map(|(_, decision)| {
                decision
                    .prefix
                    .clone()
                    .unwrap_or_else(|| "the address Azure sees".to_owned())
            })
            .collect();
        prefixes.dedup();
        prefixes.join(", ")
    }
}

/// What the user asked for one VM.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    /// The VM as typed.
    pub(crate) vm: &'a str,
    /// Duration, source, justification, enable/start, timeout.
    pub(crate) access: &'a AccessArgs,
    /// Which port.
    pub(crate) ports: &'a PortArgs,
}

/// Everything up to the request: locate, start, enable, decide. The public address is
/// learned once and kept in `public_address` for the next VM.
pub(crate) async fn prepare(
    connection: &AzureConnection,
    settings: &GlobalSettings,
    printer: &Printer,
    scope: &Scope,
    ask: Ask<'_>,
    public_address: &mut Option<PublicAddress>,
) -> anyhow::Result<Prepared> {
    let Ask {
        vm: vm_text,
        access,
        ports,
    } = ask;
    let summary = common::locate_vm(connection, scope, vm_text, printer).await?;
    if summary.is_classic() {
        return Err(CliError::Unavailable {
            message: format!(
                "{} is a classic VM, which JIT does not support",
                summary.name
            ),
            hint: Some("migrate it to Azure Resource Manager".to_owned()),
        }
        .into());
    }
    let mut details = read_vm(&connection.arm, &summary.id)
        .await
        .with_context(|| format!("could not read {}", summary.name))?;

    if !details.is_running() {
        let state = details
            .power_state
            .as_ref()
            .map_or_else(|| "not running".to_owned(), ToString::to_string);
        let start = access.start
            || common::confirm(
                printer,
                settings.access.assume_yes,
                format!(
                    "{} is {state}; its ports cannot open. Start it?",
                    details.name
                ),
            )
            .await?;
        if !start {
            return Err(CliError::Unavailable {
                message: format!("{} is {state}", details.name),
                hint: Some(format!("start it with `jit connect {vm_text} --start`")),
            }
            .into());
        }
        let progress = printer.progress(format!("Starting {}", details.name));
        VirtualMachinesClient::new(connection.arm.clone())
            .start(
                &details.subscription_id,
                &details.resource_group,
                &details.name,
            )
            .await
            .with_context(|| format!("could not start {}", details.name))?;
        drop(progress);
        printer.success(format!("Started {}", details.name));
        details = read_vm(&connection.arm, &summary.id).await?;
    }

    let vm_section = settings.vm_section(&details.id, &details.resource_group, &details.name);
    let entry = match find_entry(&connection.arm, &details.subscription_id, &details.id).await? {
        Some(entry) => entry,
        None => {
            enable_on_demand(
                connection, settings, printer, &details, access, ports, vm_text,
            )
            .await?
        }
    };

    let preference = match (ports.ssh, ports.rdp, ports.port) {
        (true, _, _) => PortPreference::Ssh,
        (_, true, _) => PortPreference::Rdp,
        (_, _, Some(number)) => PortPreference::Number(number),
        _ => match vm_section.and_then(|section| section.port) {
            Some(number) => PortPreference::Number(number),
            None => PortPreference::Automatic,
        },
    };
    let plan = choose_ports(
        details.os.as_ref(),
        &entry.virtual_machine.ports,
        preference,
    )?;

    let requested_duration = match access.duration.as_deref() {
        Some(text) => Some(parse_duration(text, "--duration")?),
        None => settings.access.duration,
    };
    let duration = choose_duration(requested_duration, &plan.rules())?;

    let source_text = access
        .source
        .clone()
        .or_else(|| vm_section.and_then(|section| section.source.clone()));
    let source_request = match source_text.as_deref() {
        Some(text) => SourceRequest::parse(text)?,
        None => SourceRequest::Automatic,
    };
    if source_request == SourceRequest::Automatic && public_address.is_none() {
        let discovered = discover(
            connection.transport.client(),
            &settings.access.my_ip_urls,
            MY_IP_TIMEOUT,
        )
        .await;
        *public_address = Some(discovered);
    }
    let mut sources = Vec::new();
    let mut warned: Vec<String> = Vec::new();
    for rule in plan.rules() {
        let decision = choose_source(&source_request, public_address.as_ref(), rule)?;
        for warning in &decision.warnings {
            if !warned.contains(warning) {
                printer.warn(warning);
                warned.push(warning.clone());
            }
        }
        sources.push((rule.number, decision));
    }

    Ok(Prepared {
        details,
        entry,
        plan,
        duration,
        sources,
    })
}

async fn enable_on_demand(
    connection: &AzureConnection,
    settings: &GlobalSettings,
    printer: &Printer,
    details: &VmDetails,
    access: &AccessArgs,
    ports: &PortArgs,
    vm_text: &str,
) -> anyhow::Result<PolicyEntry> {
    if !details.has_network_security_group() {
        return Err(CliError::Unavailable {
            message: format!(
                "JIT cannot protect {}: it has no network security group on its network interface or subnet",
                details.name
            ),
            hint: Some("attach a network security group to the VM's NIC or subnet, then enable JIT".to_owned()),
        }
        .into());
    }
    let number = ports
        .port
        .unwrap_or_else(|| default_port(details.os.as_ref()));
    let defaults = &settings.enable;
    let rules = super::enable::port_rules(
        &[number],
        &JitProtocol::All,
        &defaults.allowed_sources,
        defaults.max_duration,
    )?;
    let sources = if defaults.allowed_sources.iter().any(|source| source == "*") {
        "any source".to_owned()
    } else {
        defaults.allowed_sources.join(", ")
    };
    let enable_now = access.enable
        || common::confirm(
            printer,
            settings.access.assume_yes,
            format!(
                "JIT is not enabled for {}. Enable it (port {number}, requests up to {}, {sources})?",
                details.name,
                format_duration(defaults.max_duration),
            ),
        )
        .await?;
    if !enable_now {
        return Err(CliError::Unavailable {
            message: format!("JIT is not enabled for {}", details.name),
            hint: Some(format!(
                "enable it with `jit connect {vm_text} --enable` or `jit enable {vm_text}`"
            )),
        }
        .into());
    }
    let placement = VmPlacement::new(&details.id, &details.location)?;
    let progress = printer.progress(format!("Enabling JIT for {}", details.name));
    let change = enable(&connection.arm, &placement, rules)
        .await
        .with_context(|| format!("could not enable JIT for {}", details.name))?;
    drop(progress);
    report_change(
        printer,
        &details.name,
        &change.outcome,
        &change.policy_id,
        change.other_virtual_machines,
    );
    let policy = change
        .policy
        .context("the policy was not read back after enabling")?;
    entries_for_vm(std::slice::from_ref(&policy), &details.id)
        .into_iter()
        .next()
        .context("the VM is missing from the policy just written")
}

/// Says what a policy change did.
pub(crate) fn report_change(
    printer: &Printer,
    vm_name: &str,
    outcome: &ChangeOutcome,
    policy_id: &str,
    others: usize,
) {
    let policy_name = policy_id.rsplit('/').next().unwrap_or(policy_id);
    let neighbours = match others {
        0 => String::new(),
        1 => "; the 1 other VM in it is unchanged".to_owned(),
        count => format!("; the {count} other VMs in it are unchanged"),
    };
    let text = match outcome {
        ChangeOutcome::Created => {
            format!("Enabled JIT for {vm_name} in a new policy '{policy_name}'")
        }
        ChangeOutcome::Added => {
            format!("Enabled JIT for {vm_name} in policy '{policy_name}'{neighbours}")
        }
        ChangeOutcome::Updated => {
            format!("Updated {vm_name}'s ports in policy '{policy_name}'{neighbours}")
        }
        ChangeOutcome::Removed => {
            format!("Disabled JIT for {vm_name}: removed from policy '{policy_name}'{neighbours}")
        }
        ChangeOutcome::Deleted => format!(
            "Disabled JIT for {vm_name}: policy '{policy_name}' had no other VM and was deleted"
        ),
        ChangeOutcome::Unchanged => format!(
            "{vm_name} already has these ports in policy '{policy_name}'; nothing to change"
        ),
    };
    printer.success(text);
}

/// Posts the request for one prepared VM.
pub(crate) async fn request(
    connection: &AzureConnection,
    settings: &GlobalSettings,
    printer: &Printer,
    prepared: &Prepared,
    justification: Option<&str>,
) -> anyhow::Result<Initiated> {
    let justification = justification.or(settings.access.justification.as_deref());
    let vms = [VmRequest {
        vm_id: prepared.entry.virtual_machine.id.clone(),
        ports: prepared.port_requests(),
    }];
    let initiated = initiate(
        &connection.arm,
        prepared.entry.policy_id(),
        &vms,
        prepared.duration,
        justification,
    )
    .await
    .with_context(|| {
        format!(
            "Azure refused the access request for {}",
            prepared.details.name
        )
    })?;
    let ports: Vec<String> = prepared
        .plan
        .rules()
        .iter()
        .map(|rule| rule.number.to_string())
        .collect();
    printer.info(format!(
        "Requested port {} of {} for {} until {}",
        ports.join(", "),
        prepared.details.name,
        prepared.source_text(),
        describe_end(initiated.end_time, connection.arm.server_now()),
    ));
    Ok(initiated)
}

/// Waits for the prepared ports, with progress on stderr.
pub(crate) async fn wait(
    connection: &AzureConnection,
    settings: &GlobalSettings,
    printer: &Printer,
    prepared: &Prepared,
    initiated: &Initiated,
    timeout: Option<&str>,
) -> anyhow::Result<Vec<OpenPort>> {
    let timeout = match timeout {
        Some(text) => parse_duration(text, "--timeout")?,
        None => settings.access.wait_timeout,
    };
    let timeout = Duration::try_from(timeout).unwrap_or(Duration::from_secs(180));
    let targets = prepared.targets(printer)?;
    let progress = printer.progress("Waiting for Azure to apply the request");
    let name = prepared.details.name.clone();
    let result = wait_until_open(
        &connection.arm,
        initiated,
        &targets,
        prepared.wait_for(),
        timeout,
        |event| match event {
            WaitProgress::Applying => {
                progress.set_message("Waiting for Azure to apply the request (Initiating)")
            }
            WaitProgress::Probing { what } => {
                progress.set_message(format!("Waiting for {what} to answer"));
            }
        },
    )
    .await;
    drop(progress);
    match result {
        Ok(open) => {
            for port in &open {
                let via = port
                    .mapped_port
                    .map(|mapped| format!(" (firewall port {mapped})"))
                    .unwrap_or_default();
                printer.success(format!(
                    "{name} port {} answers at {}:{}{via}",
                    port.number, port.host, port.connect_port
                ));
            }
            Ok(open)
        }
        Err(error) => Err(wait_error(error)),
    }
}

/// The exit code a failed wait earns: a timeout only when time ran out.
fn wait_error(error: RequestError) -> anyhow::Error {
    let message = error.to_string();
    match error {
        RequestError::Azure(_) => error.into(),
        RequestError::NotApplied { .. } | RequestError::NeverAnswered { .. } => CliError::Timeout {
            message,
            hint: Some(
                "check that nothing else blocks the port (another NSG rule, a route, the VM's firewall, a VPN), or wait longer with --timeout"
                    .to_owned(),
            ),
        }
        .into(),
        RequestError::Revoked { .. } | RequestError::NotRecorded(_) => CliError::Unavailable {
            message,
            hint: Some("request access again; `jit show` lists the VM's requests".to_owned()),
        }
        .into(),
        RequestError::Resolve { .. } => CliError::Unavailable {
            message,
            hint: Some("check the VM's DNS name, or your resolver".to_owned()),
        }
        .into(),
    }
}

/// `14:32 CET (in 2h59m)`.
pub(crate) fn describe_end(end: Timestamp, now: Timestamp) -> String {
    let local = end.to_zoned_datetime(TimeZone::system());
    let left = end.duration_since(now);
    format!(
        "{} (in {})",
        local.strftime("%H:%M %Z"),
        format_duration(if left.is_negative() {
            SignedDuration::ZERO
        } else {
            left
        })
    )
}

/// The connection details shown by `--no-launch` and in JSON output.
#[derive(Debug, Serialize)]
pub(crate) struct AccessReport {
    pub(crate) vm: VmReport,
    pub(crate) policy_id: String,
    pub(crate) source: String,
    pub(crate) requested_at: Timestamp,
    pub(crate) ends_at: Timestamp,
    pub(crate) duration: String,
    pub(crate) justification: Option<String>,
    pub(crate) ports: Vec<OpenPort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ssh_command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rdp_file: Option<String>,
}

/// The VM part of an [`AccessReport`].
#[derive(Debug, Serialize)]
pub(crate) struct VmReport {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) resource_group: String,
    pub(crate) subscription_id: String,
    pub(crate) os: Option<String>,
    pub(crate) admin_username: Option<String>,
}

impl AccessReport {
    pub(crate) fn new(
        prepared: &Prepared,
        initiated: &Initiated,
        open: Vec<OpenPort>,
        justification: Option<String>,
    ) -> Self {
        Self {
            vm: VmReport {
                id: prepared.details.id.clone(),
                name: prepared.details.name.clone(),
                resource_group: prepared.details.resource_group.clone(),
                subscription_id: prepared.details.subscription_id.clone(),
                os: prepared.details.os.as_ref().map(ToString::to_string),
                admin_username: prepared.details.admin_username.clone(),
            },
            policy_id: initiated.policy_id.clone(),
            source: prepared.source_text(),
            requested_at: initiated.request.start_time_utc,
            ends_at: initiated.end_time,
            duration: format_duration(prepared.duration),
            justification,
            ports: open,
            ssh_command: None,
            rdp_file: None,
        }
    }
}

/// The protocol of an opened port, for choosing a client.
pub(crate) fn service_of(open: &[OpenPort], plan: &PortPlan) -> Service {
    open.first()
        .map_or_else(|| plan.service(), |port| port.service)
}
