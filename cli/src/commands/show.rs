//! `jit show VM`: one VM, its JIT policy entry, and its access requests.
//!
//! The VM is found by name like every other command (a bare name, `rg/name` or an id;
//! ambiguity is an error or, on a terminal, a choice), then read from ARM itself rather
//! than from Resource Graph, so what is shown is current: the VM with its NICs, public
//! IPs and subnets, and the subscription's JIT policies (which hold the request
//! history). The portal's verdict comes from the same rules as `jit list`
//! ([`inventory::classify`]), so the two never disagree about a VM. Classic VMs exist
//! only in Resource Graph; they are shown from there.

use anyhow::Context as _;
use jiff::Timestamp;
use jit_agent::access::details::{self, VmDetails};
use jit_agent::access::inventory::{
    self, InventoryVm, JitConfiguration, NetworkProtection, NetworkTopology,
};
use jit_agent::access::locate::{Scope, VmSummary};
use jit_agent::access::ownership::readable_justification;
use jit_agent::access::status::{self, JitState, PolicyEntry};
use jit_agent::azure::arm::ArmClient;
use jit_agent::azure::resource_id::same_resource_id;
use serde::Serialize;

use crate::args::ShowArgs;
use crate::error::ExitStatus;
use crate::printer::Printer;
use crate::printer::format::{format_time, format_time_left};
use crate::printer::inventory::{
    self as views, RequestPortView, RequestView, SubscriptionNames, VmView,
};
use crate::printer::table::Table;
use crate::session::Session;
use crate::settings::{GlobalSettings, parse_vm};

/// How many past requests `show` lists.
const RECENT_REQUESTS: usize = 10;

/// Everything `show` prints about a VM.
struct Shown {
    vm: InventoryVm,
    details: Option<VmDetails>,
    entry: Option<PolicyEntry>,
    as_of: Timestamp,
}

pub(crate) async fn run(
    arguments: ShowArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    // Reads only: a stop changes nothing in Azure.
    crate::interruption::keep_complete_journal();
    let query = parse_vm(&arguments.vm)?;
    let session = Session::open(settings, printer)?;
    let flow = session.flow();
    let summary = flow.locate(&query).await?;
    let subscriptions = flow.subscriptions().await?.to_vec();
    let connection = &session.connection;
    let progress = printer.progress(format!("Reading {}", summary.group_and_name()));
    let shown = if summary.is_classic() {
        read_classic(&connection.arm, &summary).await
    } else {
        read(&connection.arm, &summary).await
    }
    .with_context(|| format!("could not read {}", summary.group_and_name()))?;
    drop(progress);

    let names = SubscriptionNames::new(&subscriptions);
    if printer.is_json() {
        printer.json(&document(&shown, &names));
    } else {
        printer.data(render(&shown, &names));
    }
    Ok(ExitStatus::Success)
}

/// Reads a VM from ARM: the VM and its network, the policy that lists it, and the
/// virtual networks and firewalls of its subscription (to tell whether a firewall is in
/// front of it), all at once.
async fn read(arm: &ArmClient, summary: &VmSummary) -> anyhow::Result<Shown> {
    let (details, entry, topology) = futures::try_join!(
        details::read_vm(arm, &summary.id),
        status::find_entry(arm, &summary.subscription_id, &summary.id),
        NetworkTopology::load(arm, std::slice::from_ref(&summary.subscription_id)),
    )?;
    let as_of = arm.server_now();
    let network = NetworkProtection::of_details(&details, &topology);
    let jit = entry.as_ref().and_then(|entry| {
        JitConfiguration::from_policy(&entry.policy, &details.id, &network, as_of)
    });
    let (state, unsupported_reason) = inventory::classify(false, jit.is_some(), &network);
    let vm = InventoryVm {
        id: details.id.clone(),
        name: details.name.clone(),
        resource_group: details.resource_group.clone(),
        subscription_id: details.subscription_id.clone(),
        location: details.location.clone(),
        os: details.os.as_ref().map(ToString::to_string),
        power_state: details.power_state.as_ref().map(ToString::to_string),
        classic: false,
        network,
        state,
        unsupported_reason,
        jit,
    };
    Ok(Shown {
        vm,
        details: Some(details),
        entry,
        as_of,
    })
}

/// A classic VM is known to Resource Graph only: take it from the inventory of its
/// resource group.
async fn read_classic(arm: &ArmClient, summary: &VmSummary) -> anyhow::Result<Shown> {
    let scope = Scope {
        subscription_ids: vec![summary.subscription_id.clone()],
        resource_group: Some(summary.resource_group.clone()),
    };
    let listing = inventory::inventory(arm, &scope).await?;
    let vm = listing
        .vms
        .into_iter()
        .find(|vm| vm.id.eq_ignore_ascii_case(&summary.id))
        .with_context(|| format!("{} vanished from Resource Graph", summary.id))?;
    Ok(Shown {
        vm,
        details: None,
        entry: None,
        as_of: listing.as_of,
    })
}

fn or_dash(text: Option<&str>) -> String {
    text.filter(|text| !text.is_empty())
        .unwrap_or("-")
        .to_owned()
}

/// `name  value` lines with the names aligned, indented by two spaces.
fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(key, _)| key.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(key, value)| format!("  {key:<width$}  {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render(shown: &Shown, names: &SubscriptionNames) -> String {
    let vm = &shown.vm;
    let mut sections = Vec::new();

    let mut facts: Vec<(&str, String)> = vec![
        ("id", vm.id.clone()),
        (
            "subscription",
            match names.get(&vm.subscription_id) {
                Some(name) => format!("{name} ({})", vm.subscription_id),
                None => vm.subscription_id.clone(),
            },
        ),
        ("resource group", vm.resource_group.clone()),
        ("region", vm.location.clone()),
        (
            "os",
            if vm.classic {
                format!("{} (classic VM)", or_dash(vm.os.as_deref()))
            } else {
                or_dash(vm.os.as_deref())
            },
        ),
        ("power", or_dash(vm.power_state.as_deref())),
    ];
    if let Some(details) = &shown.details {
        facts.push(("admin user", or_dash(details.admin_username.as_deref())));
        let primary = details.interfaces.first();
        let public = primary.and_then(|interface| interface.public_ip.as_ref());
        facts.push((
            "public IP",
            or_dash(public.and_then(|public| public.address.as_deref())),
        ));
        facts.push((
            "FQDN",
            or_dash(public.and_then(|public| public.fqdn.as_deref())),
        ));
        facts.push((
            "private IP",
            or_dash(primary.and_then(|interface| interface.private_ip.as_deref())),
        ));
        facts.push((
            "NSG on NIC",
            or_dash(Some(&views::names_of(
                &vm.network.interface_security_groups,
            ))),
        ));
        facts.push((
            "NSG on subnet",
            or_dash(Some(&views::names_of(&vm.network.subnet_security_groups))),
        ));
        facts.push(("firewall", firewall_text(vm)));
    }
    sections.push(format!(
        "VM {}/{}\n{}",
        vm.resource_group,
        vm.name,
        key_values(&facts)
    ));

    sections.push(jit_section(vm));
    if let Some(jit) = &vm.jit {
        sections.push(active_section(jit, shown.as_of));
    }
    if let Some(entry) = &shown.entry {
        sections.push(recent_section(entry, &vm.id));
    }
    sections.join("\n\n")
}

fn firewall_text(vm: &InventoryVm) -> String {
    let firewall = vm.network.firewall.as_deref().map(inventory::name_of_id);
    let address = vm
        .jit
        .as_ref()
        .and_then(|jit| jit.firewall_public_ip.as_deref());
    match (firewall, address) {
        (Some(name), Some(address)) => format!("{name}, public IP {address} (from the JIT policy)"),
        (Some(name), None) => format!("{name} (routed through it)"),
        (None, Some(address)) => format!("public IP {address} (from the JIT policy)"),
        (None, None) => "-".to_owned(),
    }
}

fn jit_section(vm: &InventoryVm) -> String {
    match (vm.state, &vm.jit) {
        (JitState::Configured, Some(jit)) => {
            let place = match (
                jit.enforcement.network_security_group,
                jit.enforcement.firewall,
            ) {
                (true, false) => "on the NSG",
                (false, true) => "on the Azure Firewall",
                (true, true) => "on the NSG and the Azure Firewall",
                (false, false) => "with no NSG or firewall to work on",
            };
            let mut table = Table::new(vec!["PORT", "MAX", "ALLOWED SOURCES"]);
            for port in &jit.ports {
                table.push(vec![
                    views::port_with_protocol(port),
                    views::max_duration(port),
                    views::sources(port),
                ]);
            }
            format!(
                "JIT: configured ({place})\n{}\n\n{}",
                key_values(&[
                    (
                        "policy",
                        format!(
                            "{} ({})",
                            jit.policy_name,
                            jit.policy_location.as_deref().unwrap_or("-")
                        )
                    ),
                    ("policy id", jit.policy_id.clone()),
                ]),
                indent(&table.render())
            )
        }
        (JitState::NotConfigured, _) => {
            let mut places = Vec::new();
            if !vm.network.interface_security_groups.is_empty() {
                places.push("the NSG on its NIC");
            }
            if !vm.network.subnet_security_groups.is_empty() {
                places.push("the NSG on its subnet");
            }
            if vm.network.firewall.is_some() {
                places.push("the Azure Firewall");
            }
            format!(
                "JIT: not configured (it could work on {})\n  turn it on with `jit enable {}/{}`",
                places.join(" and "),
                vm.resource_group,
                vm.name
            )
        }
        (JitState::Unsupported, _) => format!(
            "JIT: unsupported ({})",
            vm.unsupported_reason
                .map_or("no reason given", |reason| reason.describe())
        ),
        (JitState::Configured, None) => "JIT: configured".to_owned(),
    }
}

fn active_section(jit: &JitConfiguration, now: Timestamp) -> String {
    if jit.active.is_empty() {
        return "Active requests: none".to_owned();
    }
    let mut table = Table::new(vec![
        "PORT",
        "STATUS",
        "SOURCE",
        "MAPPED PORT",
        "ENDS",
        "LEFT",
        "REQUESTOR",
        "JUSTIFICATION",
    ]);
    for port in &jit.active {
        table.push(vec![
            port.number.to_string(),
            port.status.clone(),
            or_dash(port.source.as_deref()),
            port.mapped_port
                .map_or_else(|| "-".to_owned(), |mapped| mapped.to_string()),
            format_time(port.end_time_utc),
            format_time_left(port.end_time_utc.duration_since(now)),
            or_dash(port.requestor.as_deref()),
            or_dash(
                port.justification
                    .as_deref()
                    .map(readable_justification)
                    .filter(|text| !text.is_empty()),
            ),
        ]);
    }
    format!(
        "Active requests ({})\n{}",
        jit.active.len(),
        indent(&table.render())
    )
}

fn recent_section(entry: &PolicyEntry, vm_id: &str) -> String {
    let requests = recent_requests(entry, vm_id);
    if requests.is_empty() {
        return "Recent requests: none".to_owned();
    }
    let mut table = Table::new(vec![
        "START",
        "PORT",
        "STATUS",
        "ENDS",
        "SOURCE",
        "REQUESTOR",
        "JUSTIFICATION",
    ]);
    for request in &requests {
        for port in &request.ports {
            table.push(vec![
                request.start_time.clone(),
                port.number.to_string(),
                format!("{} ({})", port.status, port.status_reason),
                port.end_time.clone(),
                or_dash(port.source.as_deref()),
                or_dash(request.requestor.as_deref()),
                or_dash(
                    request
                        .justification
                        .as_deref()
                        .map(readable_justification)
                        .filter(|text| !text.is_empty()),
                ),
            ]);
        }
    }
    format!(
        "Recent requests (newest first)\n{}",
        indent(&table.render())
    )
}

/// The VM's part of its policy's newest requests.
fn recent_requests(entry: &PolicyEntry, vm_id: &str) -> Vec<RequestView> {
    status::recent_requests(&entry.policy, vm_id, RECENT_REQUESTS)
        .into_iter()
        .map(|request| RequestView {
            requestor: request.requestor.clone(),
            justification: request.justification.clone(),
            start_time: format_time(request.start_time_utc),
            ports: request
                .virtual_machines
                .iter()
                .filter(|virtual_machine| same_resource_id(&virtual_machine.id, vm_id))
                .flat_map(|virtual_machine| &virtual_machine.ports)
                .map(|port| RequestPortView {
                    number: port.number,
                    status: port.status.to_string(),
                    status_reason: port.status_reason.to_string(),
                    source: port.allowed_source_address_prefix.clone().or_else(|| {
                        port.allowed_source_address_prefixes
                            .as_ref()
                            .map(|prefixes| prefixes.join(","))
                    }),
                    end_time: format_time(port.end_time_utc),
                    mapped_port: port.mapped_port,
                })
                .collect(),
        })
        .collect()
}

// ---- JSON (docs/output-json.md) ----------------------------------------------------

#[derive(Debug, Serialize)]
struct ShowDocument {
    as_of: String,
    #[serde(flatten)]
    vm: VmView,
    admin_username: Option<String>,
    computer_name: Option<String>,
    addresses: AddressesView,
    interfaces: Vec<InterfaceView>,
}

#[derive(Debug, Serialize)]
struct AddressesView {
    public_ip: Option<String>,
    fqdn: Option<String>,
    private_ip: Option<String>,
}

#[derive(Debug, Serialize)]
struct InterfaceView {
    id: String,
    private_ip: Option<String>,
    public_ip_id: Option<String>,
    public_ip: Option<String>,
    fqdn: Option<String>,
    network_security_group: Option<String>,
    subnet: Option<String>,
    subnet_network_security_group: Option<String>,
}

fn document(shown: &Shown, names: &SubscriptionNames) -> ShowDocument {
    let mut vm = VmView::new(&shown.vm, names, shown.as_of);
    if let (Some(jit), Some(entry)) = (vm.jit.as_mut(), &shown.entry) {
        jit.recent_requests = Some(recent_requests(entry, &shown.vm.id));
    }
    let interfaces = shown
        .details
        .as_ref()
        .map(|details| details.interfaces.as_slice())
        .unwrap_or_default();
    let primary = interfaces.first();
    let public = primary.and_then(|interface| interface.public_ip.as_ref());
    ShowDocument {
        as_of: format_time(shown.as_of),
        vm,
        admin_username: shown
            .details
            .as_ref()
            .and_then(|details| details.admin_username.clone()),
        computer_name: shown
            .details
            .as_ref()
            .and_then(|details| details.computer_name.clone()),
        addresses: AddressesView {
            public_ip: public.and_then(|public| public.address.clone()),
            fqdn: public.and_then(|public| public.fqdn.clone()),
            private_ip: primary.and_then(|interface| interface.private_ip.clone()),
        },
        interfaces: interfaces
            .iter()
            .map(|interface| InterfaceView {
                id: interface.id.clone(),
                private_ip: interface.private_ip.clone(),
                public_ip_id: interface.public_ip.as_ref().map(|public| public.id.clone()),
                public_ip: interface
                    .public_ip
                    .as_ref()
                    .and_then(|public| public.address.clone()),
                fqdn: interface
                    .public_ip
                    .as_ref()
                    .and_then(|public| public.fqdn.clone()),
                network_security_group: interface.network_security_group_id.clone(),
                subnet: interface.subnet_id.clone(),
                subnet_network_security_group: interface.subnet_network_security_group_id.clone(),
            })
            .collect(),
    }
}
