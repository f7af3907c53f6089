//! Launching the SSH and RDP clients of the platform: argv builders that are pure
//! functions (tested for every platform), and the code that runs them.
//!
//! Everything handed to a client (a user name from ARM's `adminUsername`, the config
//! file or `--user`; an address from ARM) ends up where the client parses options or
//! settings: `ssh`'s argv, a line of a `.rdp` file, a FreeRDP or Remmina argument. A
//! value that starts with `-`, or holds whitespace or control characters, could become an
//! option or a setting of its own there, so [`check_value`] refuses it before any argv
//! or file is built, with a [`LaunchError`] the CLI maps to a usage error.

pub mod rdp;
pub mod ssh;

use std::fmt;

use crate::error::CliError;

/// Which value handed to a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// The user to sign in as.
    User,
    /// The address to connect to.
    Address,
}

impl fmt::Display for ValueKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::User => "user name",
            Self::Address => "address",
        })
    }
}

/// Why a value cannot be handed to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsafe {
    /// It is empty.
    Empty,
    /// It starts with `-`, so a client would read it as an option.
    LeadingDash,
    /// It holds a space, tab or other whitespace.
    Whitespace,
    /// It holds a control character (CR, LF, NUL, escape…).
    Control,
    /// It holds a character that would change how the client splits `user@host`.
    Separator(char),
}

impl fmt::Display for Unsafe {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => formatter.write_str("it is empty"),
            Self::LeadingDash => {
                formatter.write_str("it starts with '-', so the client would read it as an option")
            }
            Self::Whitespace => formatter.write_str("it contains whitespace"),
            Self::Control => formatter.write_str("it contains a control character"),
            Self::Separator(character) => write!(formatter, "it contains '{character}'"),
        }
    }
}

/// Errors of building a client's command line or files.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A user name or address that a client could read as an option or setting.
    #[error("refusing the {kind} {value:?}: {reason}")]
    UnsafeValue {
        /// Which value.
        kind: ValueKind,
        /// The value, shown escaped (`{:?}`) so control characters cannot reach the
        /// terminal.
        value: String,
        /// What is wrong with it.
        reason: Unsafe,
    },
    /// No per-user directory exists for `.rdp` files.
    #[error(
        "cannot find a per-user state directory for the .rdp file (no home directory); set JIT_STATE_DIR"
    )]
    NoStateDirectory,
}

impl LaunchError {
    /// One line telling the person what to do about it.
    pub fn hint(&self) -> String {
        match self {
            Self::UnsafeValue {
                kind: ValueKind::User,
                ..
            } => "pass the VM's user name with --user, or correct `user` in the config file's [vms] section (the default is the VM's admin user)".to_owned(),
            Self::UnsafeValue {
                kind: ValueKind::Address,
                ..
            } => "the address comes from the VM's public IP or DNS name in Azure; check them with `jit show`".to_owned(),
            Self::NoStateDirectory => {
                "set JIT_STATE_DIR to a directory of your own".to_owned()
            }
        }
    }
}

impl From<LaunchError> for CliError {
    fn from(error: LaunchError) -> Self {
        let hint = Some(error.hint());
        Self::Usage {
            message: error.to_string(),
            hint,
        }
    }
}

/// Refuses a value a client could read as an option or as more than one setting: empty,
/// starting with `-`, holding whitespace or control characters, or (for an address) an
/// `@` that would move the split between user and host.
pub fn check_value(kind: ValueKind, value: &str) -> Result<(), LaunchError> {
    let refuse = |reason| LaunchError::UnsafeValue {
        kind,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(refuse(Unsafe::Empty));
    }
    if value.starts_with('-') {
        return Err(refuse(Unsafe::LeadingDash));
    }
    if value.chars().any(char::is_control) {
        return Err(refuse(Unsafe::Control));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(refuse(Unsafe::Whitespace));
    }
    if kind == ValueKind::Address
        && let Some(separator) = value.chars().find(|character| "@/".contains(*character))
    {
        return Err(refuse(Unsafe::Separator(separator)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitStatus, classify};

    #[test]
    fn ordinary_users_and_addresses_pass() {
        for user in [
            "azureuser",
            "deploy.bot",
            "CONTOSO\\admin",
            "admin@contoso.com",
        ] {
            assert!(check_value(ValueKind::User, user).is_ok(), "{user}");
        }
        for address in [
            "20.1.2.3",
            "2001:db8::5",
            "web-01.westeurope.cloudapp.azure.com",
        ] {
            assert!(
                check_value(ValueKind::Address, address).is_ok(),
                "{address}"
            );
        }
    }

    #[test]
    fn options_whitespace_and_control_characters_are_refused() {
        let cases = [
            (
                ValueKind::User,
                "-oProxyCommand=touch /tmp/x",
                Unsafe::LeadingDash,
            ),
            (ValueKind::User, "", Unsafe::Empty),
            (ValueKind::User, "root -v", Unsafe::Whitespace),
            (
                ValueKind::User,
                "admin\r\nalternate shell:s:cmd",
                Unsafe::Control,
            ),
            (ValueKind::User, "a\u{1b}[2Jb", Unsafe::Control),
            (ValueKind::User, "a\u{a0}b", Unsafe::Whitespace),
            (ValueKind::Address, "-oProxyCommand=x", Unsafe::LeadingDash),
            (ValueKind::Address, "evil@20.1.2.3", Unsafe::Separator('@')),
            (ValueKind::Address, "host\n", Unsafe::Control),
        ];
        for (kind, value, expected) in cases {
            match check_value(kind, value) {
                Err(LaunchError::UnsafeValue { reason, .. }) => {
                    assert_eq!(reason, expected, "{value:?}");
                }
                other => panic!("{value:?} was not refused: {other:?}"),
            }
        }
    }

    #[test]
    fn a_refused_value_is_a_usage_error_with_a_hint_and_an_escaped_value() {
        let error = check_value(ValueKind::User, "x\ny").expect_err("refused");
        let report = classify(
            &anyhow::Error::new(CliError::from(error)),
            crate::error::CommandKind::Connect,
        );
        assert_eq!(report.status, ExitStatus::Usage);
        assert_eq!(report.status.code(), 2);
        assert!(report.message.contains(r#""x\ny""#), "{}", report.message);
        assert!(!report.message.contains('\n'), "{}", report.message);
        assert!(
            report
                .hint
                .as_deref()
                .is_some_and(|hint| hint.contains("--user")),
            "{:?}",
            report.hint
        );
    }
}
