//! Exit codes, and the one place errors are turned into them.
//!
//! Commands return `anyhow::Error` with context; [`classify`] walks the chain once, finds
//! the typed error that decides the outcome (an access-flow error, an ARM error, a usage
//! error) and maps it to an [`ExitStatus`] and a hint. Hints name the flags of the
//! command that failed ([`CommandKind`]): `jit proxy` takes its port as an argument, `jit
//! request` has its own `--enable`. Scripts can rely on the codes: they are documented
//! in `docs/exit-codes.md` (a test walks that table) and never reused for something else.

use std::fmt::Write as _;

use jit_agent::access::enable::ChangeError;
use jit_agent::access::extend::ExtendError;
use jit_agent::access::flow::FlowError;
use jit_agent::access::locate::{LocateError, VmSummary};
use jit_agent::access::plan::PlanError;
use jit_agent::access::request::RequestError;
use jit_agent::azure::arm::{ArmError, ArmErrorKind};
use jit_agent::azure::credential::CredentialError;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked.
    Success,
    /// Something failed that has no more specific code (including a bug).
    Failure,
    /// The command line, the config file or an input value is wrong, or a name is
    /// ambiguous.
    Usage,
    /// The VM, policy, subscription or resource group does not exist (or is not visible).
    NotFound,
    /// No credential could sign in, or Azure refused the token.
    Authentication,
    /// Signed in, but the role lacks a permission (HTTP 403).
    Denied,
    /// Azure answered with an error, or kept failing after retries.
    Azure,
    /// Waited as long as allowed (port never answered, request never applied).
    Timeout,
    /// The VM cannot be reached as asked: JIT is off, the VM is unsupported or stopped.
    Unavailable,
    /// The user pressed Ctrl-C (SIGINT) or declined a question.
    Interrupted,
    /// The process received SIGTERM.
    Terminated,
    /// `jit policy diff`: Azure differs from the file (code 1, that command's meaning).
    Drift,
    /// `jit doctor`: a check failed (code 1, that command's meaning).
    ChecksFailed,
    /// The SSH or RDP client exited with this status.
    Child(u8),
}

impl ExitStatus {
    /// Every status with a code of its own, as `docs/exit-codes.md` lists them.
    pub const DOCUMENTED: [ExitStatus; 11] = [
        Self::Success,
        Self::Failure,
        Self::Usage,
        Self::NotFound,
        Self::Authentication,
        Self::Denied,
        Self::Azure,
        Self::Timeout,
        Self::Unavailable,
        Self::Interrupted,
        Self::Terminated,
    ];

    /// The name `docs/exit-codes.md` gives the status.
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Usage => "usage",
            Self::NotFound => "not found",
            Self::Authentication => "authentication",
            Self::Denied => "denied",
            Self::Azure => "azure",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Interrupted => "interrupted",
            Self::Terminated => "terminated",
            Self::Drift => "drift",
            Self::ChecksFailed => "checks failed",
            Self::Child(_) => "the client's own",
        }
    }

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::Usage => 2,
            Self::NotFound => 3,
            Self::Authentication => 4,
            Self::Denied => 5,
            Self::Azure => 6,
            Self::Timeout => 7,
            Self::Unavailable => 8,
            Self::Interrupted => 130,
            Self::Terminated => 143,
            Self::Drift | Self::ChecksFailed => 1,
            Self::Child(code) => code,
        }
    }
}

/// Which command failed, for hints that name its own flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// `jit connect`.
    Connect,
    /// `jit request`.
    Request,
    /// `jit proxy`.
    Proxy,
    /// `jit extend`.
    Extend,
    /// Any other command.
    Other,
}

impl CommandKind {
    /// The command's name.
    fn name(self) -> &'static str {
        match self {
            Self::Connect | Self::Other => "connect",
            Self::Request => "request",
            Self::Proxy => "proxy",
            Self::Extend => "extend",
        }
    }
}

/// Errors the command line itself raises.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad flag value, config value or input.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// Something named does not exist.
    #[error("{message}")]
    NotFound {
        message: String,
        hint: Option<String>,
    },
    /// The VM cannot be reached as asked.
    #[error("{message}")]
    Unavailable {
        message: String,
        hint: Option<String>,
    },
    /// Azure refused or failed a call made on our behalf (by the agent), whose typed
    /// error did not cross the agent's socket.
    #[error("{message}")]
    Azure {
        message: String,
        hint: Option<String>,
    },
    /// Waited as long as allowed.
    #[error("{message}")]
    Timeout {
        message: String,
        hint: Option<String>,
    },
    /// The user declined or interrupted.
    #[error("{message}")]
    Interrupted { message: String },
    /// A child process (ssh, the RDP client) exited with a failure status; its own
    /// output already told the user why.
    #[error("{program} exited with status {code}")]
    ChildFailed { program: String, code: u8 },
}

impl CliError {
    fn status_and_hint(&self) -> (ExitStatus, Option<&str>) {
        match self {
            Self::Usage { hint, .. } => (ExitStatus::Usage, hint.as_deref()),
            Self::NotFound { hint, .. } => (ExitStatus::NotFound, hint.as_deref()),
            Self::Unavailable { hint, .. } => (ExitStatus::Unavailable, hint.as_deref()),
            Self::Azure { hint, .. } => (ExitStatus::Azure, hint.as_deref()),
            Self::Timeout { hint, .. } => (ExitStatus::Timeout, hint.as_deref()),
            Self::Interrupted { .. } => (ExitStatus::Interrupted, None),
            Self::ChildFailed { code, .. } => (ExitStatus::Child(*code), None),
        }
    }
}

/// What to tell the user about a failed command.
#[derive(Debug)]
pub struct Report {
    /// The exit status.
    pub status: ExitStatus,
    /// One line: the chain of contexts and causes, joined with ": ".
    pub message: String,
    /// What to do about it, when something can be done.
    pub hint: Option<String>,
    /// Whether to print the message at all (a failed child already spoke for itself).
    pub silent: bool,
}

/// Classifies an error into an exit status, a one-line message and a hint.
pub fn classify(error: &anyhow::Error, command: CommandKind) -> Report {
    let mut message = String::new();
    for (index, cause) in error.chain().enumerate() {
        let text = cause.to_string();
        // Contexts often repeat the cause's own words; don't say things twice.
        if index > 0 && message.contains(&text) {
            continue;
        }
        if index > 0 {
            message.push_str(": ");
        }
        let _ = write!(message, "{text}");
    }

    for cause in error.chain() {
        if let Some(flow_error) = cause.downcast_ref::<FlowError>() {
            let (status, hint) = flow_outcome(flow_error, command);
            return Report {
                status,
                message,
                hint,
                silent: false,
            };
        }
        let arm_error = cause
            .downcast_ref::<ArmError>()
            .or_else(|| match cause.downcast_ref::<ChangeError>() {
                Some(ChangeError::Azure(error)) => Some(error),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<RequestError>() {
                Some(RequestError::Azure(error)) => Some(error),
                _ => None,
            });
        if let Some(arm_error) = arm_error {
            return Report {
                status: arm_status(arm_error),
                message,
                hint: Some(arm_error.hint()),
                silent: false,
            };
        }
        if let Some(change_error) = cause.downcast_ref::<ChangeError>() {
            let (status, hint) = match change_error {
                ChangeError::NotEnabled => (
                    ExitStatus::Unavailable,
                    Some("`jit list` shows which VMs have JIT".to_owned()),
                ),
                other => change_outcome(other),
            };
            return Report {
                status,
                message,
                hint,
                silent: false,
            };
        }
        if let Some(credential_error) = cause.downcast_ref::<CredentialError>() {
            return Report {
                status: ExitStatus::Authentication,
                message,
                hint: Some(credential_error.hint()),
                silent: false,
            };
        }
        if let Some(plan_error) = cause.downcast_ref::<PlanError>() {
            return Report {
                status: ExitStatus::Usage,
                message,
                hint: plan_hint(plan_error, command),
                silent: false,
            };
        }
        if let Some(cli_error) = cause.downcast_ref::<CliError>() {
            let (status, hint) = cli_error.status_and_hint();
            return Report {
                status,
                message,
                hint: hint.map(str::to_owned),
                silent: matches!(cli_error, CliError::ChildFailed { .. }),
            };
        }
        if let Some(stopped) = cause.downcast_ref::<crate::interruption::Stopped>() {
            return Report {
                status: stopped.0.status(),
                message,
                hint: None,
                silent: false,
            };
        }
        if let Some(io_error) = cause.downcast_ref::<std::io::Error>()
            && io_error.kind() == std::io::ErrorKind::Interrupted
        {
            return Report {
                status: ExitStatus::Interrupted,
                message,
                hint: None,
                silent: false,
            };
        }
    }
    Report {
        status: ExitStatus::Failure,
        message,
        hint: None,
        silent: false,
    }
}

fn arm_status(error: &ArmError) -> ExitStatus {
    match error.kind() {
        ArmErrorKind::Unauthorized | ArmErrorKind::Credential => ExitStatus::Authentication,
        ArmErrorKind::Forbidden => ExitStatus::Denied,
        ArmErrorKind::NotFound => ExitStatus::NotFound,
        ArmErrorKind::InvalidRequest => ExitStatus::Failure,
        ArmErrorKind::BadRequest
        | ArmErrorKind::Conflict
        | ArmErrorKind::Throttled
        | ArmErrorKind::Server
        | ArmErrorKind::Transport
        | ArmErrorKind::InvalidResponse
        | ArmErrorKind::OperationFailed => ExitStatus::Azure,
    }
}

fn plan_hint(error: &PlanError, command: CommandKind) -> Option<String> {
    match error {
        PlanError::PortNotInPolicy { .. } if command == CommandKind::Proxy => Some(
            "use one of the policy's ports as the port ssh connects to (`Port` in ~/.ssh/config, or `ssh -p`), or add the port with `jit enable --port`"
                .to_owned(),
        ),
        PlanError::PortNotInPolicy { .. } => Some(
            "choose one of the policy's ports with --port, or add the port with `jit enable --port`"
                .to_owned(),
        ),
        PlanError::DurationTooLong { .. } => Some(
            "ask for less with --duration, or raise the maximum with `jit enable --max-duration`"
                .to_owned(),
        ),
        PlanError::SourceNotAllowed { .. } | PlanError::AnyNotAllowed { .. } => Some(
            "pass --source with one of the allowed sources (JIT matches them literally)".to_owned(),
        ),
        // `--source any` is only `*`; a range such as 0.0.0.0/0 must be asked for as written.
        PlanError::OnlyEveryone { range, .. } => Some(match range.parse::<ipnet::IpNet>() {
            Ok(_) => format!(
                "pass --source {range} to open the port to every address (the policy allows nothing narrower for you), or ask an admin for a narrower range"
            ),
            Err(_) => "ask an admin for a range that contains your address (the policy allows nothing narrower for you)".to_owned(),
        }),
        PlanError::AddressUnknown { .. } => Some(
            "pass --source with the allowed range you connect from, or check JIT_MY_IP_URLS"
                .to_owned(),
        ),
        PlanError::Ipv6Source(_) | PlanError::BadSource(_) => {
            Some("pass an IPv4 address or range, for example --source 203.0.113.7".to_owned())
        }
        PlanError::NoPorts | PlanError::BadMaximum { .. } => {
            Some("fix the VM's JIT policy with `jit enable`".to_owned())
        }
    }
}

/// The status and hint of an access-flow failure, for `command`.
fn flow_outcome(error: &FlowError, command: CommandKind) -> (ExitStatus, Option<String>) {
    let name = command.name();
    match error {
        FlowError::Locate(error) => locate_outcome(error),
        FlowError::NotFound {
            suggestions,
            narrowed,
            ..
        } => {
            let mut hint = match suggestions.as_slice() {
                [] => "check the name with `jit list`".to_owned(),
                [one] => format!("did you mean {one}?"),
                many => format!("did you mean one of {}?", many.join(", ")),
            };
            if *narrowed {
                hint.push_str(
                    "; the search was limited by --subscription, JIT_SUBSCRIPTIONS or a resource group",
                );
            }
            (ExitStatus::NotFound, Some(hint))
        }
        FlowError::NotChosen => (ExitStatus::Interrupted, None),
        FlowError::Classic { .. } => (
            ExitStatus::Unavailable,
            Some("migrate the VM to Azure Resource Manager to use JIT".to_owned()),
        ),
        FlowError::NotRunning { declined: true, .. }
        | FlowError::NotEnabled { declined: true, .. } => (ExitStatus::Interrupted, None),
        FlowError::NotRunning { vm, .. } => (
            ExitStatus::Unavailable,
            Some(match command {
                CommandKind::Connect | CommandKind::Request => {
                    format!("start it with `jit {name} {vm} --start`")
                }
                _ => format!("start it first: `jit connect {vm} --start --no-launch`"),
            }),
        ),
        FlowError::NotEnabled { vm, .. } => (
            ExitStatus::Unavailable,
            Some(match command {
                CommandKind::Connect | CommandKind::Request => {
                    format!("enable it with `jit {name} {vm} --enable` or `jit enable {vm}`")
                }
                _ => format!("an admin can enable it with `jit enable {vm}`"),
            }),
        ),
        FlowError::NoNetworkSecurityGroup { .. } => (
            ExitStatus::Unavailable,
            Some(
                "attach a network security group to the VM's NIC or subnet, then enable JIT"
                    .to_owned(),
            ),
        ),
        FlowError::NoAddress { .. } => (
            ExitStatus::Unavailable,
            Some(
                "give the VM a public IP, or put it behind an Azure Firewall in its JIT policy"
                    .to_owned(),
            ),
        ),
        FlowError::NamedTwice { .. } => (ExitStatus::Usage, None),
        FlowError::ReadVm { error, .. } | FlowError::StartVm { error, .. } => {
            (arm_status(error), Some(error.hint()))
        }
        FlowError::Enable { error, .. } => change_outcome(error),
        FlowError::Plan(error) => (ExitStatus::Usage, plan_hint(error, command)),
        FlowError::Rule(_) => (
            ExitStatus::Usage,
            Some("fix [enable] allowed_sources and max_duration in the config file".to_owned()),
        ),
        FlowError::Initiate { error, .. } | FlowError::Wait(error) => {
            request_outcome(error, command)
        }
        FlowError::Extend(error) => extend_outcome(error, command),
        FlowError::Azure(error) => (arm_status(error), Some(error.hint())),
    }
}

fn locate_outcome(error: &LocateError) -> (ExitStatus, Option<String>) {
    match error {
        LocateError::Azure(error) => (arm_status(error), Some(error.hint())),
        LocateError::Ambiguous { candidates, .. } => {
            let forms: Vec<String> = candidates.iter().map(VmSummary::group_and_name).collect();
            let mut groups: Vec<String> =
                forms.iter().map(|form| form.to_ascii_lowercase()).collect();
            groups.sort();
            let same_groups = groups.windows(2).any(|pair| pair[0] == pair[1]);
            let hint = if same_groups {
                "name it by resource id, or pick the subscription with --subscription".to_owned()
            } else {
                format!("name it as resource-group/name: {}", forms.join(" or "))
            };
            (ExitStatus::Usage, Some(hint))
        }
        LocateError::NotFound { .. } => (
            ExitStatus::NotFound,
            Some("check the name with `jit list`".to_owned()),
        ),
        LocateError::UnknownSubscription { .. } | LocateError::NoSubscriptions => (
            ExitStatus::NotFound,
            Some(
                "check --subscription, JIT_SUBSCRIPTIONS and the tenant you signed in to"
                    .to_owned(),
            ),
        ),
        LocateError::BadName { .. } => (
            ExitStatus::Usage,
            Some("write a VM as name, resource-group/name or a full resource id".to_owned()),
        ),
    }
}

fn change_outcome(error: &ChangeError) -> (ExitStatus, Option<String>) {
    match error {
        ChangeError::Azure(error) => (arm_status(error), Some(error.hint())),
        ChangeError::NotEnabled => (ExitStatus::Unavailable, None),
        ChangeError::BadVmId(_) => (ExitStatus::Usage, None),
        ChangeError::NotVerified { .. } => (
            ExitStatus::Azure,
            Some("someone else may be editing the policy; run the command again".to_owned()),
        ),
        ChangeError::PortNotInPolicy { vm, .. } => (
            ExitStatus::Usage,
            Some(format!(
                "`jit show {vm}` lists its ports; add one with `jit edit {vm} --add-port`"
            )),
        ),
        ChangeError::NameTooLong { .. } => (
            ExitStatus::Usage,
            Some(
                "JIT cannot hold this VM in a policy of that name; a VM name of at most 49 characters fits the portal's policy 'default'"
                    .to_owned(),
            ),
        ),
        ChangeError::Rule(_) => (
            ExitStatus::Usage,
            Some("JIT accepts IPv4 sources or *, and maximums from 5m to 24h".to_owned()),
        ),
        ChangeError::UnsafeMerge { .. } => (
            ExitStatus::Failure,
            Some(
                "nothing was written; this is a bug, please report it with the output of `jit -v`"
                    .to_owned(),
            ),
        ),
    }
}

fn request_outcome(error: &RequestError, command: CommandKind) -> (ExitStatus, Option<String>) {
    match error {
        RequestError::Azure(error) => (arm_status(error), Some(error.hint())),
        RequestError::NotRecordedAfterFailure { error } => (
            arm_status(error),
            Some("nothing was opened; ask again".to_owned()),
        ),
        RequestError::NotApplied { .. } | RequestError::NeverAnswered { .. } => (
            ExitStatus::Timeout,
            Some(
                "check that nothing else blocks the port (another NSG rule, a route, the VM's firewall, a VPN), or wait longer with --timeout"
                    .to_owned(),
            ),
        ),
        RequestError::WrongService { .. } => (
            ExitStatus::Unavailable,
            Some(match command {
                CommandKind::Proxy => "point ssh at the VM's SSH port".to_owned(),
                _ => "the port is open but speaks another protocol: choose the port with --ssh, --rdp or --port".to_owned(),
            }),
        ),
        RequestError::Revoked { .. } | RequestError::NotRecorded(_) => (
            ExitStatus::Unavailable,
            Some("request access again; `jit show` lists the VM's requests".to_owned()),
        ),
        RequestError::Resolve { .. } => (
            ExitStatus::Unavailable,
            Some("check the VM's DNS name, or your resolver".to_owned()),
        ),
    }
}

fn extend_outcome(error: &ExtendError, command: CommandKind) -> (ExitStatus, Option<String>) {
    match error {
        ExtendError::Azure(error) => (arm_status(error), Some(error.hint())),
        ExtendError::Request(error) => request_outcome(error, command),
        ExtendError::Plan(error) => (ExitStatus::Usage, plan_hint(error, command)),
        ExtendError::NoOwnWindow { reference, .. } => (
            ExitStatus::NotFound,
            Some(format!(
                "open a window of your own with `jit connect {reference}`"
            )),
        ),
        ExtendError::NotInPolicy { vm } | ExtendError::PortNotInPolicy { vm, .. } => (
            ExitStatus::Unavailable,
            Some(format!("open a new window with `jit connect {vm}`")),
        ),
        ExtendError::SeveralSources { vm, port, .. } => (
            ExitStatus::Usage,
            Some(format!(
                "request the source you need with `jit request {vm} --port {port} --source …`"
            )),
        ),
        ExtendError::EndInPast => (ExitStatus::Usage, None),
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    #[test]
    fn the_typed_error_decides_the_status_even_under_context() {
        let error = Err::<(), _>(CliError::NotFound {
            message: "no VM named 'web-09'".to_owned(),
            hint: Some("run jit list".to_owned()),
        })
        .context("could not connect")
        .expect_err("is an error");
        let report = classify(&error, CommandKind::Other);
        assert_eq!(report.status, ExitStatus::NotFound);
        assert_eq!(report.status.code(), 3);
        assert_eq!(report.message, "could not connect: no VM named 'web-09'");
        assert_eq!(report.hint.as_deref(), Some("run jit list"));
    }

    #[test]
    fn unknown_errors_are_plain_failures() {
        let report = classify(&anyhow::anyhow!("disk full"), CommandKind::Other);
        assert_eq!(report.status, ExitStatus::Failure);
        assert_eq!(report.message, "disk full");
    }

    #[test]
    fn exit_codes_are_distinct() {
        let statuses = ExitStatus::DOCUMENTED;
        let mut codes: Vec<u8> = statuses.iter().map(|status| status.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), statuses.len());
    }
}
