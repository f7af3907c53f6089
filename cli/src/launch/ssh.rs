//! Running the system's OpenSSH client.
//!
//! `jit` does not embed an SSH client: the user's `ssh` already knows their keys, agent,
//! `~/.ssh/config`, known hosts and terminal. We only build its argv (never a shell
//! string, so nothing in a VM name or user name can be interpreted by a shell) and leave
//! host-key checking exactly as the user configured it.
//!
//! The argv is `ssh [configured options] -p PORT [the user's options] -- user@host
//! [remote command]`. The `--` ends OpenSSH's option parsing, so the destination is
//! never read as an option even if a user name from ARM, the config file or `--user`
//! begins with `-` (`-oProxyCommand=…` would otherwise run a command locally); such
//! names are refused before that anyway ([`checked_ssh_command_line`]). Because OpenSSH
//! reads nothing after the destination as an option once `--` was given, the user's
//! own arguments are split here, the way OpenSSH's getopt reads them: the leading
//! options go before `--`, and the first non-option starts the remote command.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{LaunchError, ValueKind, check_value};

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

impl SshTarget {
    /// Refuses a user name or address `ssh` could read as an option (see
    /// [`check_value`]).
    pub fn check(&self) -> Result<(), LaunchError> {
        check_value(ValueKind::Address, &self.address)?;
        if let Some(user) = &self.user {
            check_value(ValueKind::User, user)?;
        }
        Ok(())
    }
}

/// Builds the argv for `ssh` after checking the target: configured arguments first,
/// then the port, the user's options, `--`, the destination and the remote command
/// (the user's arguments from the first non-option on).
pub fn checked_ssh_command_line(
    program: &Path,
    configured_args: &[String],
    target: &SshTarget,
    user_args: &[String],
) -> Result<(PathBuf, Vec<OsString>), LaunchError> {
    target.check()?;
    Ok(ssh_command_line(
        program,
        configured_args,
        target,
        user_args,
    ))
}

/// The argv of [`checked_ssh_command_line`] without checking the target. The `--`
/// before the destination still keeps a user name from being read as an option; prefer
/// the checked form, which also refuses such names with a clear error.
pub fn ssh_command_line(
    program: &Path,
    configured_args: &[String],
    target: &SshTarget,
    user_args: &[String],
) -> (PathBuf, Vec<OsString>) {
    let (user_options, remote_command) = split_user_args(user_args);
    let mut arguments: Vec<OsString> = configured_args.iter().map(OsString::from).collect();
    arguments.push("-p".into());
    arguments.push(target.port.to_string().into());
    arguments.extend(user_options.iter().map(OsString::from));
    arguments.push("--".into());
    arguments.push(destination(target).into());
    arguments.extend(remote_command.iter().map(OsString::from));
    (program.to_owned(), arguments)
}

/// OpenSSH's option letters that take a value (from the getopt string in `ssh.c`:
/// `-b -c -e -i -l -m -o -p -B -D -E -F -I -J -L -O -P -Q -R -S -w -W`).
const OPTIONS_WITH_VALUE: &str = "bceilmopBDEFIJLOPQRSWw";

/// Splits the user's arguments as OpenSSH's getopt reads them (no reordering): leading
/// options with their values, then the remote command from the first non-option. A
/// `--` of the user's own ends the options and is dropped (ours takes its place).
fn split_user_args(user_args: &[String]) -> (&[String], &[String]) {
    let mut index = 0;
    while let Some(argument) = user_args.get(index) {
        if argument == "--" {
            return (&user_args[..index], &user_args[index + 1..]);
        }
        let Some(letters) = argument
            .strip_prefix('-')
            .filter(|letters| !letters.is_empty())
        else {
            break;
        };
        index += 1;
        // In a cluster (`-vL8080:x:80`), the first letter that takes a value takes the
        // rest of the cluster, or the next argument when the cluster ends there.
        if let Some((position, letter)) = letters
            .char_indices()
            .find(|(_, letter)| OPTIONS_WITH_VALUE.contains(*letter))
            && position + letter.len_utf8() == letters.len()
        {
            index += 1;
        }
    }
    let index = index.min(user_args.len());
    (&user_args[..index], &user_args[index..])
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

    fn strings(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| (*part).to_owned()).collect()
    }

    fn argv_of(user_args: &[&str]) -> Vec<OsString> {
        ssh_command_line(Path::new("ssh"), &[], &target(), &strings(user_args)).1
    }

    #[test]
    fn the_argv_has_configured_args_port_user_options_then_the_destination_and_command() {
        let (program, arguments) = checked_ssh_command_line(
            Path::new("ssh"),
            &strings(&["-A"]),
            &target(),
            &strings(&["-L", "8080:localhost:80", "uptime"]),
        )
        .expect("a plain target");
        assert_eq!(program, PathBuf::from("ssh"));
        assert_eq!(
            arguments,
            [
                "-A",
                "-p",
                "22",
                "-L",
                "8080:localhost:80",
                "--",
                "azureuser@20.1.2.3",
                "uptime"
            ]
            .map(OsString::from)
        );
    }

    #[test]
    fn user_arguments_split_where_openssh_stops_reading_options() {
        // Clusters: a value-taking letter takes the rest of the cluster...
        assert_eq!(
            argv_of(&["-vL8080:x:80", "ls", "-la"]),
            [
                "-p",
                "22",
                "-vL8080:x:80",
                "--",
                "azureuser@20.1.2.3",
                "ls",
                "-la"
            ]
            .map(OsString::from)
        );
        // ...or the next argument when it ends the cluster.
        assert_eq!(
            argv_of(&["-tt", "-o", "ServerAliveInterval=5", "-i", "key", "top"]),
            [
                "-p",
                "22",
                "-tt",
                "-o",
                "ServerAliveInterval=5",
                "-i",
                "key",
                "--",
                "azureuser@20.1.2.3",
                "top"
            ]
            .map(OsString::from)
        );
        // The user's own `--` ends the options; what follows is the command even when it
        // looks like an option.
        assert_eq!(
            argv_of(&["-A", "--", "-weird-command"]),
            [
                "-p",
                "22",
                "-A",
                "--",
                "azureuser@20.1.2.3",
                "-weird-command"
            ]
            .map(OsString::from)
        );
        // Only options, only a command, nothing.
        assert_eq!(
            argv_of(&["-N", "-D", "1080"]),
            ["-p", "22", "-N", "-D", "1080", "--", "azureuser@20.1.2.3"].map(OsString::from)
        );
        assert_eq!(
            argv_of(&["uptime", "-p"]),
            ["-p", "22", "--", "azureuser@20.1.2.3", "uptime", "-p"].map(OsString::from)
        );
        assert_eq!(
            argv_of(&[]),
            ["-p", "22", "--", "azureuser@20.1.2.3"].map(OsString::from)
        );
        // A value-taking option missing its value stays an option (ssh reports it).
        assert_eq!(
            argv_of(&["-L"]),
            ["-p", "22", "-L", "--", "azureuser@20.1.2.3"].map(OsString::from)
        );
    }

    #[test]
    fn a_user_name_that_looks_like_an_option_is_refused_and_never_an_option() {
        let hostile = SshTarget {
            user: Some("-oProxyCommand=touch /tmp/pwned".to_owned()),
            ..target()
        };
        let error =
            checked_ssh_command_line(Path::new("ssh"), &[], &hostile, &[]).expect_err("refused");
        assert!(
            matches!(
                error,
                LaunchError::UnsafeValue {
                    kind: ValueKind::User,
                    ..
                }
            ),
            "{error:?}"
        );
        // Even unchecked, the destination comes after `--`.
        let (_, arguments) = ssh_command_line(Path::new("ssh"), &[], &hostile, &[]);
        let position = |text: &str| arguments.iter().position(|argument| argument == text);
        assert!(position("--") < position("-oProxyCommand=touch /tmp/pwned@20.1.2.3"));

        let hostile_address = SshTarget {
            address: "-oProxyCommand=x".to_owned(),
            user: None,
            ..target()
        };
        assert!(checked_ssh_command_line(Path::new("ssh"), &[], &hostile_address, &[]).is_err());
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
