//! JIT configuration as code: a small TOML file of policies, written by `jit policy
//! export`, compared with Azure by `jit policy diff` and made true by `jit policy apply`.
//!
//! The file says, per policy (subscription, resource group, region, name), which VMs it
//! covers and, per VM, the ports with their protocol, allowed sources and maximum
//! request length — exactly what the portal's policy blade edits, and nothing Azure
//! decides by itself (request history, provisioning state). Its format is documented in
//! `docs/policy-file.md`:
//!
//! ```toml
//! version = 1
//!
//! [[policy]]
//! subscription = "3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b34"
//! resource_group = "rg-web"
//! location = "westeurope"
//! name = "default"
//!
//! [[policy.vm]]
//! name = "api-01"
//! ports = [
//!   { number = 22, protocol = "*", allowed_sources = ["*"], max_duration = "PT3H" },
//! ]
//! ```
//!
//! Reading is strict: an unknown key, a missing one, a value JIT would refuse or a VM
//! named twice is an error naming its line, so a typo never silently does nothing.
//! Export writes what Azure holds verbatim (durations as Azure spells them, ports in
//! Azure's order), so export followed by apply changes nothing.
//!
//! Applying goes through [`crate::access::enable`]: each VM of the file is a
//! [`VmEdit::SetPorts`], merged into a fresh read of its policy, so VMs the file does not
//! list are left alone. With `prune`, the VMs of a listed policy that the file leaves
//! out are removed — those seen when planning, never one another admin adds afterwards.
//! What is given up: a policy the file does not list is never touched (an empty
//! `[[policy]]` prunes every VM of it), and moving a VM from one policy to another takes
//! two steps (remove it from the old one first).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::enable::{
    ChangeError, MAX_POLICY_AND_VM_NAME, PolicyPlan, VmEdit, check_maximum, check_source,
    policy_id_for, port_rule, read_policy,
};
use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::clients::JitNetworkAccessPoliciesClient;
use crate::azure::models::{
    JitNetworkAccessPolicy, JitNetworkAccessPortRule, JitProtocol, parse_duration,
};
use crate::azure::resource_id::{ResourceId, same_resource_id};

/// The format version this module reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// A policy file that cannot be used: what is wrong, and on which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PolicyFileError {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

/// A whole policy file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyFile {
    /// The policies, in file order.
    pub policies: Vec<FilePolicy>,
}

/// One `[[policy]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePolicy {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group.
    pub resource_group: String,
    /// Region (short form), the `locations/{x}` of the policy's id.
    pub location: String,
    /// The policy's name (`default` for the portal's).
    pub name: String,
    /// The VMs it covers.
    pub vms: Vec<FileVm>,
    /// Where it starts in the file (0 for a policy not read from a file).
    pub line: usize,
}

/// One `[[policy.vm]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileVm {
    /// The VM's name.
    pub name: String,
    /// Its resource group, when not the policy's.
    pub resource_group: Option<String>,
    /// The Azure Firewall's public address JIT opens the ports on, if any.
    pub firewall_public_ip: Option<String>,
    /// Its ports.
    pub ports: Vec<JitNetworkAccessPortRule>,
    /// Where it starts in the file (0 for a VM not read from a file).
    pub line: usize,
}

impl FilePolicy {
    /// The policy's resource id.
    pub fn policy_id(&self) -> String {
        policy_id_for(
            &self.subscription_id,
            &self.resource_group,
            &self.location,
            &self.name,
        )
    }

    /// The resource id of one of its VMs.
    pub fn vm_id(&self, vm: &FileVm) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            self.subscription_id,
            vm.resource_group.as_deref().unwrap_or(&self.resource_group),
            vm.name
        )
    }

    /// The edits that make Azure hold the file's VMs as written.
    pub fn edits(&self) -> Vec<VmEdit> {
        self.vms
            .iter()
            .map(|vm| VmEdit::SetPorts {
                vm_id: self.vm_id(vm),
                ports: vm.ports.clone(),
                firewall_public_ip: vm.firewall_public_ip.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Option<Spanned<u32>>,
    #[serde(default)]
    policy: Vec<Spanned<RawPolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    subscription: Spanned<String>,
    resource_group: Spanned<String>,
    location: Spanned<String>,
    name: Spanned<String>,
    #[serde(default)]
    vm: Vec<Spanned<RawVm>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: Spanned<String>,
    resource_group: Option<Spanned<String>>,
    firewall_ip: Option<Spanned<String>>,
    ports: Spanned<Vec<Spanned<RawPort>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    number: Spanned<u16>,
    protocol: Option<Spanned<String>>,
    allowed_sources: Spanned<Vec<String>>,
    max_duration: Spanned<String>,
}

/// Turns byte offsets into line numbers.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn of(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.0.len());
        self.0.as_bytes()[..end]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
            + 1
    }

    fn error<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> PolicyFileError {
        PolicyFileError {
            line: self.of(spanned.span()),
            message: message.into(),
        }
    }
}

/// A name that can be one segment of a resource id.
fn segment(
    lines: &Lines<'_>,
    value: &Spanned<String>,
    what: &str,
) -> Result<String, PolicyFileError> {
    let text = value.get_ref().trim();
    if text.is_empty() || text.contains('/') {
        return Err(lines.error(
            value,
            format!("{what} '{}' is empty or contains '/'", value.get_ref()),
        ));
    }
    Ok(text.to_owned())
}

impl PolicyFile {
    /// Reads a policy file, refusing anything it does not know.
    pub fn parse(text: &str) -> Result<Self, PolicyFileError> {
        let lines = Lines(text);
        let raw: RawFile = toml::from_str(text).map_err(|error| PolicyFileError {
            line: error.span().map_or(1, |span| lines.of(span)),
            message: error.message().trim().to_owned(),
        })?;
        if let Some(version) = &raw.version
            && *version.get_ref() != FORMAT_VERSION
        {
            return Err(lines.error(
                version,
                format!(
                    "version {} is not one this jit reads (it reads version {FORMAT_VERSION})",
                    version.get_ref()
                ),
            ));
        }
        let mut policies: Vec<FilePolicy> = Vec::new();
        let mut seen_vms: HashSet<String> = HashSet::new();
        for raw_policy in &raw.policy {
            let policy = parse_policy(&lines, raw_policy)?;
            if let Some(earlier) = policies
                .iter()
                .find(|earlier| same_resource_id(&earlier.policy_id(), &policy.policy_id()))
            {
                return Err(PolicyFileError {
                    line: policy.line,
                    message: format!(
                        "policy '{}' of {} in {} is listed twice (first on line {})",
                        policy.name, policy.resource_group, policy.location, earlier.line
                    ),
                });
            }
            for vm in &policy.vms {
                if !seen_vms.insert(policy.vm_id(vm).to_ascii_lowercase()) {
                    return Err(PolicyFileError {
                        line: vm.line,
                        message: format!("VM '{}' is listed twice", vm.name),
                    });
                }
            }
            policies.push(policy);
        }
        Ok(Self { policies })
    }

    /// The file's text: what [`PolicyFile::parse`] reads back as this file.
    pub fn render(&self) -> String {
        let mut text = String::from(
            "# JIT VM access policies (format: docs/policy-file.md).\n\
             # `jit policy diff FILE` reports drift; `jit policy apply FILE` makes Azure match.\n",
        );
        let _ = writeln!(text, "version = {FORMAT_VERSION}");
        for policy in &self.policies {
            text.push_str("\n[[policy]]\n");
            let _ = writeln!(text, "subscription = {}", quoted(&policy.subscription_id));
            let _ = writeln!(text, "resource_group = {}", quoted(&policy.resource_group));
            let _ = writeln!(text, "location = {}", quoted(&policy.location));
            let _ = writeln!(text, "name = {}", quoted(&policy.name));
            for vm in &policy.vms {
                text.push_str("\n[[policy.vm]]\n");
                let _ = writeln!(text, "name = {}", quoted(&vm.name));
                if let Some(group) = &vm.resource_group {
                    let _ = writeln!(text, "resource_group = {}", quoted(group));
                }
                if let Some(address) = &vm.firewall_public_ip {
                    let _ = writeln!(text, "firewall_ip = {}", quoted(address));
                }
                text.push_str("ports = [\n");
                for port in &vm.ports {
                    let sources: Vec<String> = port
                        .allowed_sources()
                        .iter()
                        .map(|source| quoted(source))
                        .collect();
                    let _ = writeln!(
                        text,
                        "  {{ number = {}, protocol = {}, allowed_sources = [{}], max_duration = {} }},",
                        port.number,
                        quoted(port.protocol.as_str()),
                        sources.join(", "),
                        quoted(port.max_request_access_duration.as_str())
                    );
                }
                text.push_str("]\n");
            }
        }
        text
    }

    /// The file describing `policies`, keeping only the VMs `keep` accepts (a policy
    /// left without VMs is left out). Policies are sorted by subscription, resource
    /// group, region and name; VMs by name; ports stay in Azure's order.
    pub fn from_policies(policies: &[JitNetworkAccessPolicy], keep: impl Fn(&str) -> bool) -> Self {
        let mut file = Self::default();
        for policy in policies {
            let Some(id) = policy
                .id
                .as_deref()
                .and_then(|id| ResourceId::parse(id).ok())
            else {
                continue;
            };
            let (Some(resource_group), Some(location), Some(name)) =
                (id.resource_group(), id.name_of("locations"), id.name())
            else {
                continue;
            };
            let mut vms: Vec<FileVm> = policy
                .properties
                .virtual_machines
                .iter()
                .filter(|entry| keep(&entry.id))
                .filter_map(|entry| {
                    let vm_id = ResourceId::parse(&entry.id).ok()?;
                    let vm_group = vm_id.resource_group()?;
                    Some(FileVm {
                        name: vm_id.name()?.to_owned(),
                        resource_group: (!vm_group.eq_ignore_ascii_case(resource_group))
                            .then(|| vm_group.to_owned()),
                        firewall_public_ip: entry.public_ip_address.clone(),
                        ports: entry.ports.clone(),
                        line: 0,
                    })
                })
                .collect();
            if vms.is_empty() {
                continue;
            }
            vms.sort_by_key(|vm| vm.name.to_ascii_lowercase());
            file.policies.push(FilePolicy {
                subscription_id: id.subscription_id().to_owned(),
                resource_group: resource_group.to_owned(),
                location: location.to_owned(),
                name: name.to_owned(),
                vms,
                line: 0,
            });
        }
        file.policies.sort_by_key(|policy| {
            (
                policy.subscription_id.to_ascii_lowercase(),
                policy.resource_group.to_ascii_lowercase(),
                policy.location.to_ascii_lowercase(),
                policy.name.to_ascii_lowercase(),
            )
        });
        file
    }
}

fn parse_policy(
    lines: &Lines<'_>,
    raw: &Spanned<RawPolicy>,
) -> Result<FilePolicy, PolicyFileError> {
    let policy = raw.get_ref();
    let mut parsed = FilePolicy {
        subscription_id: segment(lines, &policy.subscription, "subscription")?,
        resource_group: segment(lines, &policy.resource_group, "resource group")?,
        location: segment(lines, &policy.location, "location")?,
        name: segment(lines, &policy.name, "policy name")?,
        vms: Vec::new(),
        line: lines.of(raw.span()),
    };
    for raw_vm in &policy.vm {
        let vm = raw_vm.get_ref();
        let name = segment(lines, &vm.name, "VM name")?;
        let length = parsed.name.chars().count() + name.chars().count();
        if length > MAX_POLICY_AND_VM_NAME {
            return Err(lines.error(
                &vm.name,
                format!(
                    "policy '{}' and VM '{name}' are {length} characters together; JIT allows at most {MAX_POLICY_AND_VM_NAME}",
                    parsed.name
                ),
            ));
        }
        if vm.ports.get_ref().is_empty() {
            return Err(lines.error(
                &vm.ports,
                format!("VM '{name}' has no ports (leave the VM out of the file instead)"),
            ));
        }
        let mut ports: Vec<JitNetworkAccessPortRule> = Vec::new();
        for raw_port in vm.ports.get_ref() {
            let port = parse_port(lines, raw_port)?;
            if ports.iter().any(|earlier| earlier.number == port.number) {
                return Err(lines.error(
                    raw_port,
                    format!("port {} of VM '{name}' is listed twice", port.number),
                ));
            }
            ports.push(port);
        }
        let firewall_public_ip = vm
            .firewall_ip
            .as_ref()
            .map(|address| {
                address
                    .get_ref()
                    .trim()
                    .parse::<std::net::IpAddr>()
                    .map(|parsed| parsed.to_string())
                    .map_err(|_| {
                        lines.error(
                            address,
                            format!("firewall_ip '{}' is not an IP address", address.get_ref()),
                        )
                    })
            })
            .transpose()?;
        parsed.vms.push(FileVm {
            name,
            resource_group: vm
                .resource_group
                .as_ref()
                .map(|group| segment(lines, group, "resource group"))
                .transpose()?,
            firewall_public_ip,
            ports,
            line: lines.of(raw_vm.span()),
        });
    }
    Ok(parsed)
}

fn parse_port(
    lines: &Lines<'_>,
    raw: &Spanned<RawPort>,
) -> Result<JitNetworkAccessPortRule, PolicyFileError> {
    let port = raw.get_ref();
    let number = *port.number.get_ref();
    if number == 0 {
        return Err(lines.error(&port.number, "port 0 cannot be protected"));
    }
    let protocol = match &port.protocol {
        None => JitProtocol::All,
        Some(text) => match JitProtocol::from(text.get_ref().trim()) {
            JitProtocol::Other(other) => {
                return Err(lines.error(text, format!("protocol '{other}' is not TCP, UDP or *")));
            }
            known => known,
        },
    };
    let sources: Vec<String> = port
        .allowed_sources
        .get_ref()
        .iter()
        .map(|source| source.trim().to_owned())
        .collect();
    if sources.is_empty() {
        return Err(lines.error(
            &port.allowed_sources,
            "allowed_sources is empty (write [\"*\"] for any source)",
        ));
    }
    for source in &sources {
        check_source(source)
            .map_err(|error| lines.error(&port.allowed_sources, error.to_string()))?;
    }
    let maximum = parse_duration(port.max_duration.get_ref())
        .map_err(|error| lines.error(&port.max_duration, error.to_string()))?;
    check_maximum(maximum).map_err(|error| lines.error(&port.max_duration, error.to_string()))?;
    Ok(port_rule(
        number,
        protocol,
        &sources,
        port.max_duration.get_ref().trim(),
    ))
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Every JIT policy of the subscriptions (of one resource group of each, when given; a
/// subscription without that resource group has none).
pub async fn policies_in_scope(
    arm: &ArmClient,
    subscription_ids: &[String],
    resource_group: Option<&str>,
) -> Result<Vec<JitNetworkAccessPolicy>, ArmError> {
    let client = JitNetworkAccessPoliciesClient::new(arm.clone());
    let lists = subscription_ids.iter().map(|subscription_id| {
        let client = client.clone();
        async move {
            let listed = match resource_group {
                Some(group) => client.list_by_resource_group(subscription_id, group).await,
                None => client.list(subscription_id).await,
            };
            match listed {
                Err(error) if error.is_not_found() => Ok(Vec::new()),
                other => other,
            }
        }
    });
    Ok(futures::future::try_join_all(lists)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// Reads every policy the file lists and works out, per policy, what applying the file
/// would change. With `prune`, the VMs a listed policy holds and the file leaves out are
/// removed.
pub async fn plan_file(
    arm: &ArmClient,
    file: &PolicyFile,
    prune: bool,
) -> Result<Vec<PolicyPlan>, ChangeError> {
    let reads = file.policies.iter().map(|policy| async move {
        let policy_id = policy.policy_id();
        let current = read_policy(arm, &policy_id).await?;
        let mut edits = policy.edits();
        if prune && let Some(current) = &current {
            for entry in &current.properties.virtual_machines {
                if !edits
                    .iter()
                    .any(|edit| same_resource_id(edit.vm_id(), &entry.id))
                {
                    edits.push(VmEdit::Remove {
                        vm_id: entry.id.clone(),
                    });
                }
            }
        }
        PolicyPlan::new(&policy_id, &policy.location, current, edits)
    });
    futures::future::try_join_all(reads).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"version = 1

[[policy]]
subscription = "3f2a6c1e-8b4d-4e7a-9c15-0d2e7f9a1b34"
resource_group = "rg-web"
location = "westeurope"
name = "default"

[[policy.vm]]
name = "api-01"
ports = [
  { number = 22, protocol = "*", allowed_sources = ["*"], max_duration = "PT3H" },
  { number = 8443, protocol = "tcp", allowed_sources = ["10.0.0.0/8", "203.0.113.7"], max_duration = "90m" },
]

[[policy.vm]]
name = "fw-01"
resource_group = "rg-edge"
firewall_ip = "20.1.2.3"
ports = [{ number = 22, allowed_sources = ["*"], max_duration = "PT1H" }]
"#;

    #[test]
    fn a_file_reads_and_renders_back_to_the_same_file() {
        let file = PolicyFile::parse(SAMPLE).expect("valid");
        let policy = &file.policies[0];
        assert_eq!(policy.line, 3);
        assert_eq!(policy.vms.len(), 2);
        assert_eq!(policy.vms[0].line, 9);
        let ports = &policy.vms[0].ports;
        assert_eq!(ports[1].protocol, JitProtocol::Tcp);
        assert_eq!(ports[1].allowed_sources(), ["10.0.0.0/8", "203.0.113.7"]);
        assert_eq!(ports[0].allowed_source_address_prefix.as_deref(), Some("*"));
        assert_eq!(policy.vms[1].ports[0].protocol, JitProtocol::All);
        assert!(
            policy
                .vm_id(&policy.vms[1])
                .contains("/resourceGroups/rg-edge/")
        );
        assert!(policy.policy_id().ends_with(
            "/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
        ));
        let rendered = file.render();
        let again = PolicyFile::parse(&rendered).expect("the rendering reads back");
        let without_lines = |file: &PolicyFile| {
            let mut file = file.clone();
            for policy in &mut file.policies {
                policy.line = 0;
                for vm in &mut policy.vms {
                    vm.line = 0;
                }
            }
            file
        };
        assert_eq!(without_lines(&again), without_lines(&file));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_their_line() {
        let typo = SAMPLE.replace("max_duration = \"90m\"", "max_duraton = \"90m\"");
        let error = PolicyFile::parse(&typo).expect_err("unknown key");
        assert_eq!(error.line, 13, "{error}");
        assert!(error.message.contains("max_duraton"), "{error}");

        let top = format!("colour = \"blue\"\n{SAMPLE}");
        let error = PolicyFile::parse(&top).expect_err("unknown key");
        assert_eq!(error.line, 1, "{error}");

        let ipv6 = SAMPLE.replace("203.0.113.7", "2001:db8::7");
        let error = PolicyFile::parse(&ipv6).expect_err("IPv6 source");
        assert_eq!(error.line, 13, "{error}");
        assert!(
            error
                .to_string()
                .starts_with("line 13: allowed source '2001:db8::7'"),
            "{error}"
        );

        let too_long = SAMPLE.replace("PT3H", "P2D");
        assert_eq!(PolicyFile::parse(&too_long).expect_err("2 days").line, 12);

        let protocol = SAMPLE.replace("\"tcp\"", "\"icmp\"");
        assert_eq!(PolicyFile::parse(&protocol).expect_err("icmp").line, 13);

        let twice = SAMPLE.replace(
            "name = \"fw-01\"\nresource_group = \"rg-edge\"",
            "name = \"API-01\"",
        );
        let error = PolicyFile::parse(&twice).expect_err("twice");
        assert_eq!(error.line, 16, "{error}");

        let long_name = SAMPLE.replace("api-01", &"a".repeat(50));
        let error = PolicyFile::parse(&long_name).expect_err("57 characters");
        assert_eq!(error.line, 10, "{error}");

        let version = SAMPLE.replace("version = 1", "version = 2");
        assert_eq!(PolicyFile::parse(&version).expect_err("version").line, 1);
    }
}
