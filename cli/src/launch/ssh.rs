//! Running the system's OpenSSH client.
//!
//! `jit` does not embed an SSH client: the user's `ssh` already knows their keys, agent,
//! `~/.ssh/config`, known hosts and terminal. We only build its argv (never a shell
//! string, so nothing in a VM name or user name can be interpreted by a shell) and leave
//! host-key checking exactly as the user configured it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Address to connect to: the VM's public IP or FQDN, or the firewall's address.
    pub address: String,
    /// TCP port to connect to (the firewall's mapped port when there is one).
    pub port: u16,
    /// User to sign in as; `None` leaves it to `ssh` (its config, or the local user).
    pub user: Option<String>,
}

/// Builds the argv for `ssh`: configured arguments first, then the port and destination,
/// then whatever the user passed after `--` (options after the destination are parsed by
/// OpenSSH as options; the first non-option starts the remote command).
pub fn ssh_command_line(
    program: &Path,
    configured_args: &[String],
    target: &SshTarget,
    user_args: &[String],
) -> (PathBuf, Vec<OsString>) {
    let mut arguments: Vec<OsString> = configured_args.iter().map(OsString::from).collect();
    arguments.push("-p".into());
    arguments.push(target.port.to_string().into());
    arguments.push(destination(target).into());
    arguments.extend(user_args.iter().map(OsString::from));
    (program.to_owned(), arguments)
}

/// `user@address`, or just the address when no user is known (OpenSSH takes IPv6
/// literals without brackets when the port is given with `-p`).
fn destination(target: &SshTarget) -> String {
    match &target.user {
        Some(user) => format!("{user}@{}", target.address),
        None => target.address.clone(),
    }
}

/// A shell-quoted rendering of an argv, for showing a command to a person (`--no-launch`,
/// the demo). Never executed.
pub fn display_command(program: &Path, arguments: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(arguments.iter().map(OsString::as_os_str))
        .map(|part| quote_for_display(&part.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote_for_display(part: &str) -> String {
    let safe = !part.is_empty()
        && part.chars().all(|character| {
            character.is_ascii_alphanumeric() || "@%+=:,./-_[]".contains(character)
        });
    if safe {
        part.to_owned()
    } else {
        format!("'{}'", part.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        SshTarget {
            address: "20.1.2.3".to_owned(),
            port: 22,
            user: Some("azureuser".to_owned()),
        }
    }

    #[test]
    fn the_argv_has_configured_args_then_port_and_destination_then_user_args() {
        let (program, arguments) = ssh_command_line(
            Path::new("ssh"),
            &["-A".to_owned()],
            &target(),
            &[
                "-L".to_owned(),
                "8080:localhost:80".to_owned(),
                "uptime".to_owned(),
            ],
        );
        assert_eq!(program, PathBuf::from("ssh"));
        assert_eq!(
            arguments,
            [
                "-A",
                "-p",
                "22",
                "azureuser@20.1.2.3",
                "-L",
                "8080:localhost:80",
                "uptime"
            ]
            .map(OsString::from)
        );
    }

    #[test]
    fn host_key_checking_is_never_touched() {
        let (_, arguments) = ssh_command_line(Path::new("ssh"), &[], &target(), &[]);
        let text = display_command(Path::new("ssh"), &arguments);
        assert!(!text.contains("StrictHostKeyChecking"), "{text}");
        assert!(!text.contains("UserKnownHostsFile"), "{text}");
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let text = display_command(
            Path::new("ssh"),
            &[
                "-p".into(),
                "22".into(),
                "me@host".into(),
                "echo it's here".into(),
            ],
        );
        assert_eq!(text, r"ssh -p 22 me@host 'echo it'\''s here'");
    }
}
