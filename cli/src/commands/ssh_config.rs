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
    let text = render(&vms, &program.display().to_string()).map_err(|error| CliError::Usage {
        message: error.to_string(),
        hint: Some("leave that VM out by naming the others: `jit ssh-config VM…`".to_owned()),
    })?;
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

/// Renders the entries. VMs sharing a name get `name.resource-group` aliases. A name,
/// user or id that cannot be written safely is refused (see [`quote`] and
/// [`config_word`]).
pub(crate) fn render(entries: &[Entry], program: &str) -> Result<String, UnsafeConfigValue> {
    let mut text =
        String::from("# Written by `jit ssh-config`: each connection opens JIT access first.\n");
    let program = quote(program, "path of jit")?;
    for entry in entries {
        let shared = entries
            .iter()
            .filter(|other| other.name.eq_ignore_ascii_case(&entry.name))
            .count()
            > 1;
        let name = config_word(&entry.name, "VM name")?;
        let alias = if shared {
            format!(
                "{name}.{}",
                config_word(&entry.resource_group, "resource group")?
            )
        } else {
            name.to_owned()
        };
        let _ = writeln!(text, "\nHost {alias}");
        // ssh needs a HostName even though ProxyCommand makes the connection.
        let _ = writeln!(text, "    HostName {alias}");
        let _ = writeln!(text, "    HostKeyAlias jit-{}", alias.to_ascii_lowercase());
        if let Some(user) = &entry.user {
            let _ = writeln!(text, "    User {}", config_word(user, "user")?);
        }
        let _ = writeln!(
            text,
            "    ProxyCommand {program} proxy {}",
            quote(&entry.id, "resource id")?
        );
    }
    Ok(text)
}

/// A value that cannot be written into an ssh-config entry safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write the {what} {value:?} into an ssh config entry: {reason}")]
pub(crate) struct UnsafeConfigValue {
    /// Which value (`VM name`, `user`, `resource id`…).
    what: &'static str,
    /// The value, shown escaped.
    value: String,
    /// Why.
    reason: &'static str,
}

/// Quotes one word of the `ProxyCommand` line for the program that reads it: `/bin/sh`
/// on Unix (OpenSSH runs `sh -c "exec …"`), the program's own command-line parser on
/// Windows (Win32-OpenSSH starts it with `CreateProcess`, no shell).
///
/// On Unix anything beyond a plain path is wrapped in single quotes, inside which `sh`
/// expands nothing: no `$VAR`, no `$(…)`, no backticks, no globs. `%` is doubled in both
/// forms, because ssh expands `%` tokens (`%h`, `%r`, …) in `ProxyCommand` before the
/// shell sees it. A line break would end the config line and start a new directive, so
/// control characters are refused rather than escaped.
fn quote(value: &str, what: &'static str) -> Result<String, UnsafeConfigValue> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(UnsafeConfigValue {
            what,
            value: value.to_owned(),
            reason: if value.is_empty() {
                "it is empty"
            } else {
                "it contains a control character"
            },
        });
    }
    let escaped = value.replace('%', "%%");
    let plain = escaped
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || "/._-:%".contains(character));
    if plain {
        Ok(escaped)
    } else if cfg!(windows) {
        Ok(quote_for_windows(&escaped))
    } else {
        Ok(quote_for_sh(&escaped))
    }
}

/// A single-quoted `sh` word: `'` itself is closed, escaped and reopened (`'\''`).
fn quote_for_sh(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// A double-quoted word for the Windows command-line parser (no shell expands `$` or
/// backticks there).
fn quote_for_windows(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Checks a value written as a bare word after `Host`, `HostName`, `HostKeyAlias` or
/// `User`. ssh splits those lines at whitespace, honours quotes and `#` comments, treats
/// `*`, `?`, `!` and `,` as pattern syntax and expands `%` and `${…}` in some of them; so
/// only letters, digits and `-._()` are written (what Azure allows in VM, resource
/// group and Linux user names), and anything else is refused.
fn config_word<'a>(value: &'a str, what: &'static str) -> Result<&'a str, UnsafeConfigValue> {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|character| character.is_alphanumeric() || "-._()".contains(character));
    if plain {
        Ok(value)
    } else {
        Err(UnsafeConfigValue {
            what,
            value: value.to_owned(),
            reason: "only letters, digits and - . _ ( ) can be written there",
        })
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
        let text = render(&[entry("api-01", "rg-web")], "/usr/local/bin/jit").expect("renders");
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
            "/opt/my tools/jit",
        )
        .expect("renders");
        assert!(text.contains("Host web-01.rg-web\n"), "{text}");
        assert!(text.contains("Host web-01.rg-app\n"), "{text}");
        let expected = if cfg!(windows) {
            "ProxyCommand \"/opt/my tools/jit\" proxy"
        } else {
            "ProxyCommand '/opt/my tools/jit' proxy"
        };
        assert!(text.contains(expected), "{text}");
    }

    #[test]
    fn nothing_in_a_quoted_word_stays_alive_for_the_shell_or_ssh() {
        assert_eq!(
            quote_for_sh("a$(touch x)`id`$HOME'b"),
            r"'a$(touch x)`id`$HOME'\''b'"
        );
        // ssh expands % tokens before the shell runs: they are doubled in both forms.
        assert_eq!(
            quote("/vm/%h %r", "resource id").as_deref(),
            Ok(if cfg!(windows) {
                "\"/vm/%%h %%r\""
            } else {
                "'/vm/%%h %%r'"
            })
        );
        assert_eq!(quote("/vm/50%", "resource id").as_deref(), Ok("/vm/50%%"));
        assert_eq!(
            quote_for_windows(r#"C:\Program Files\jit "x"\jit.exe"#),
            r#""C:\\Program Files\\jit \"x\"\\jit.exe""#
        );
        for hostile in [
            "/vm/a\n    ProxyCommand touch /tmp/x",
            "/vm/a\rb",
            "",
            "a\0b",
        ] {
            assert!(quote(hostile, "resource id").is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn names_and_users_that_ssh_would_split_or_expand_are_refused() {
        let hostile_names = [
            "web 01",
            "web-01\n    ProxyCommand touch /tmp/x",
            "web#01",
            "web*",
            "web,db",
            "!web",
            "\"web\"",
            "%h",
            "${HOME}",
            "",
        ];
        for name in hostile_names {
            let error = render(&[entry(name, "rg-web")], "/usr/bin/jit").expect_err(name);
            assert_eq!(error.what, "VM name", "{name:?}");
        }
        for user in [
            "root ProxyCommand=x",
            "root\n    ProxyCommand x",
            "%r",
            "a'b",
            "a\\b",
        ] {
            let with_user = Entry {
                user: Some(user.to_owned()),
                ..entry("web-01", "rg-web")
            };
            let error = render(&[with_user], "/usr/bin/jit").expect_err(user);
            assert_eq!(error.what, "user", "{user:?}");
        }
        // Resource group names may hold parentheses and non-ASCII letters.
        let text = render(
            &[entry("web-01", "rg(prod)"), entry("web-01", "rg-müller")],
            "/usr/bin/jit",
        )
        .expect("plain Azure names render");
        assert!(text.contains("Host web-01.rg(prod)\n"), "{text}");
        assert!(text.contains("Host web-01.rg-müller\n"), "{text}");
    }

    /// Runs the real OpenSSH client on a generated file: `ssh -G` must see exactly the
    /// settings we wrote, and the `ProxyCommand` it runs must receive the resource id
    /// verbatim, with nothing in it executed by the shell.
    #[cfg(unix)]
    #[test]
    fn openssh_runs_exactly_the_proxy_command_written_whatever_the_id_holds() {
        use std::os::unix::fs::PermissionsExt as _;

        let found = std::process::Command::new("ssh").arg("-V").output().is_ok();
        assert!(
            found,
            "this test needs the OpenSSH client: apt-get install openssh-client"
        );
        let scratch = tempfile::tempdir().expect("temp dir");
        let root = scratch.path();
        let planted = |name: &str| root.join(name).display().to_string();
        // A jit installed in an odd directory, and a VM id full of shell syntax.
        let odd_directory = root.join(format!(
            "bin $(touch {}) `touch {}`",
            planted("pwned-1"),
            planted("pwned-2")
        ));
        std::fs::create_dir_all(&odd_directory).expect("odd directory");
        let recorder = odd_directory.join("jit");
        let recorded = root.join("argv");
        std::fs::write(
            &recorder,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
                recorded.display()
            ),
        )
        .expect("recorder written");
        std::fs::set_permissions(&recorder, std::fs::Permissions::from_mode(0o755))
            .expect("executable");
        let id = format!(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a$(touch {})`touch {}`$HOME'%h%%",
            planted("pwned-3"),
            planted("pwned-4")
        );
        let entries = [Entry {
            user: Some("azureuser".to_owned()),
            id: id.clone(),
            ..entry("web-01", "rg-web")
        }];
        let config = root.join("ssh_config");
        std::fs::write(
            &config,
            render(&entries, &recorder.display().to_string()).expect("renders"),
        )
        .expect("config written");

        let resolved = std::process::Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(&config)
            .arg("web-01")
            .output()
            .expect("ssh -G runs");
        let settings = String::from_utf8_lossy(&resolved.stdout);
        assert!(
            resolved.status.success(),
            "{}",
            String::from_utf8_lossy(&resolved.stderr)
        );
        let lines: Vec<&str> = settings.lines().collect();
        assert!(lines.contains(&"user azureuser"), "{settings}");
        assert!(lines.contains(&"hostname web-01"), "{settings}");
        assert!(lines.contains(&"hostkeyalias jit-web-01"), "{settings}");
        assert_eq!(
            lines
                .iter()
                .filter(|line| line.starts_with("proxycommand "))
                .count(),
            1,
            "{settings}"
        );

        let _ = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&config)
            .args(["-o", "BatchMode=yes", "web-01", "true"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("ssh runs");
        for name in ["pwned-1", "pwned-2", "pwned-3", "pwned-4"] {
            assert!(
                !root.join(name).exists(),
                "the shell ran a command from {name}"
            );
        }
        let argv = std::fs::read_to_string(&recorded).expect("the ProxyCommand ran");
        assert_eq!(argv, format!("proxy\n{id}\n"));
    }
}
