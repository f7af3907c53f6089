//! `jit ssh-config [VM…]`: `~/.ssh/config` entries that reach VMs through `jit proxy`.
//!
//! With these entries, `ssh api-01`, `scp file api-01:`, `git` over SSH and VS Code
//! Remote-SSH open JIT access on their own. Each entry names the VM by its resource id in
//! the `ProxyCommand` (so it stays unambiguous however many VMs share a name) and sets
//! `HostKeyAlias` to the entry's name, so the VM's host key is remembered under a stable
//! name even when its address or the firewall port changes. Host-key checking itself is
//! left as the user has it.

use std::fmt::Write as _;

use anyhow::Context as _;
use jit_agent::access::inventory::{InventoryVm, inventory};
use jit_agent::access::status::JitState;
use jit_agent::azure::clients::VirtualMachinesClient;

use serde::Serialize;

use crate::args::SshConfigArgs;
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::session::Session;
use crate::settings::{GlobalSettings, parse_vm};

pub(crate) async fn run(
    arguments: SshConfigArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let queries = arguments
        .vms
        .iter()
        .map(|vm| parse_vm(vm))
        .collect::<Result<Vec<_>, _>>()?;
    let session = Session::open(settings, printer)?;
    let flow = session.flow();
    let connection = &session.connection;
    let vms: Vec<Entry> = if queries.is_empty() {
        let scope = flow
            .search_scope(arguments.scope.resource_group.as_deref())
            .await?;
        let progress = printer.progress("Finding JIT-enabled Linux VMs");
        let listed = inventory(&connection.arm, &scope).await?;
        drop(progress);
        listed
            .vms
            .iter()
            .filter(|vm| vm.state == JitState::Configured && is_linux(vm))
            .map(Entry::from_inventory)
            .collect()
    } else {
        let mut found = Vec::new();
        for query in &queries {
            let summary = flow.locate(query).await?;
            found.push(Entry {
                name: summary.name.clone(),
                resource_group: summary.resource_group.clone(),
                id: summary.id.clone(),
                user: None,
            });
        }
        found
    };
    // The admin user, so `ssh api-01` needs no `user@`.
    let client = VirtualMachinesClient::new(connection.arm.clone());
    let users =
        futures::future::join_all(vms.iter().map(|entry| client.get_by_id(&entry.id, None))).await;
    let vms: Vec<Entry> = vms
        .into_iter()
        .zip(users)
        .map(|(entry, vm)| Entry {
            user: vm
                .ok()
                .and_then(|vm| vm.admin_username().map(str::to_owned)),
            ..entry
        })
        .collect();
    if vms.is_empty() {
        return Err(CliError::NotFound {
            message: "no JIT-enabled Linux VM in scope".to_owned(),
            hint: Some("name VMs explicitly, or enable JIT with `jit enable`".to_owned()),
        }
        .into());
    }
    let program = std::env::current_exe().context("cannot find the running jit")?;
    let text = render(&vms, &program.display().to_string());
    if printer.is_json() {
        printer.json(&SshConfigDocument {
            entries: &vms,
            config: text,
        });
    } else {
        printer.data(text);
        printer.info("Add these lines to ~/.ssh/config (or Include a file holding them).");
    }
    Ok(ExitStatus::Success)
}

fn is_linux(vm: &InventoryVm) -> bool {
    vm.os
        .as_deref()
        .is_none_or(|os| os.eq_ignore_ascii_case("linux"))
}

/// `jit ssh-config -o json`: the entries, and the text to add to `~/.ssh/config`.
#[derive(Debug, Serialize)]
struct SshConfigDocument<'a> {
    entries: &'a [Entry],
    config: String,
}

/// One `Host` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) resource_group: String,
    pub(crate) id: String,
    pub(crate) user: Option<String>,
}

impl Entry {
    fn from_inventory(vm: &InventoryVm) -> Self {
        Self {
            name: vm.name.clone(),
            resource_group: vm.resource_group.clone(),
            id: vm.id.clone(),
            user: None,
        }
    }
}

/// Renders the entries. VMs sharing a name get `name.resource-group` aliases.
pub(crate) fn render(entries: &[Entry], program: &str) -> String {
    let mut text =
        String::from("# Written by `jit ssh-config`: each connection opens JIT access first.\n");
    for entry in entries {
        let shared = entries
            .iter()
            .filter(|other| other.name.eq_ignore_ascii_case(&entry.name))
            .count()
            > 1;
        let alias = if shared {
            format!("{}.{}", entry.name, entry.resource_group)
        } else {
            entry.name.clone()
        };
        let _ = writeln!(text, "\nHost {alias}");
        // ssh needs a HostName even though ProxyCommand makes the connection.
        let _ = writeln!(text, "    HostName {alias}");
        let _ = writeln!(text, "    HostKeyAlias jit-{}", alias.to_ascii_lowercase());
        if let Some(user) = &entry.user {
            let _ = writeln!(text, "    User {user}");
        }
        let _ = writeln!(
            text,
            "    ProxyCommand {} proxy {}",
            quote(program),
            quote(&entry.id)
        );
    }
    text
}

/// Quotes for the shell ssh runs `ProxyCommand` with, only when needed; `%` is doubled
/// because ssh expands `%` tokens in `ProxyCommand`.
fn quote(value: &str) -> String {
    let escaped = value.replace('%', "%%");
    let plain = escaped
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || "/._-:%".contains(character));
    if plain {
        escaped
    } else {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, resource_group: &str) -> Entry {
        Entry {
            name: name.to_owned(),
            resource_group: resource_group.to_owned(),
            id: format!(
                "/subscriptions/s/resourceGroups/{resource_group}/providers/Microsoft.Compute/virtualMachines/{name}"
            ),
            user: None,
        }
    }

    #[test]
    fn entries_proxy_through_jit_by_resource_id() {
        let text = render(&[entry("api-01", "rg-web")], "/usr/local/bin/jit");
        assert!(text.contains("\nHost api-01\n"), "{text}");
        assert!(text.contains("    HostKeyAlias jit-api-01\n"), "{text}");
        assert!(
            text.contains("    ProxyCommand /usr/local/bin/jit proxy /subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/api-01\n"),
            "{text}"
        );
        assert!(!text.contains("StrictHostKeyChecking"));
    }

    #[test]
    fn shared_names_get_distinct_aliases_and_odd_paths_are_quoted() {
        let text = render(
            &[entry("web-01", "rg-web"), entry("web-01", "rg-app")],
            "C:\\Program Files\\jit\\jit.exe",
        );
        assert!(text.contains("Host web-01.rg-web\n"), "{text}");
        assert!(text.contains("Host web-01.rg-app\n"), "{text}");
        assert!(
            text.contains("ProxyCommand \"C:\\\\Program Files\\\\jit\\\\jit.exe\" proxy"),
            "{text}"
        );
    }
}
