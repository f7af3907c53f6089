//! The command line, as clap types and nothing else.
//!
//! Only this module knows clap. `settings.rs` turns these types, the environment and the
//! config file into typed settings, and commands only ever see settings, so they can be
//! driven (and tested) without a command line. Every `///` comment here is also the
//! `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Just-in-time VM access for Azure, from the terminal.
///
/// Finds the VM, opens its management port for your address through Microsoft Defender
/// for Cloud JIT, waits until the port really answers, and connects.
#[derive(Debug, Parser)]
#[command(
    name = "jit",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Configuration: `jit config show`; files, environment variables and exit codes are in the docs (docs/configuration.md, docs/exit-codes.md)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format for data on stdout.
    #[arg(long, short = 'o', global = true, value_enum)]
    pub output: Option<OutputFormat>,

    /// Configuration file to read instead of the default.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Subscription (id or name) to search; repeat for several. Default: every
    /// subscription the sign-in can see.
    #[arg(
        long = "subscription",
        short = 's',
        global = true,
        value_name = "SUBSCRIPTION"
    )]
    pub subscriptions: Vec<String>,

    /// How to sign in to Azure.
    #[arg(long, global = true, value_enum)]
    pub auth: Option<AuthMethod>,

    /// Entra ID tenant to sign in to.
    #[arg(long, global = true, value_name = "TENANT")]
    pub tenant: Option<String>,

    /// Azure cloud: AzureCloud, AzureUSGovernment or AzureChinaCloud.
    #[arg(long, global = true, value_name = "CLOUD")]
    pub cloud: Option<String>,

    /// Answer yes to every question (enable JIT, start a stopped VM).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// Neither start nor use the background agent.
    #[arg(long, global = true)]
    pub no_agent: bool,

    /// Only print errors and data.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more; twice for HTTP-level detail (tokens are never printed).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Never use colours (also: NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON document, with a stable, documented schema.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethod {
    /// Service principal or workload identity from the environment, then managed
    /// identity, then the Azure CLI.
    Auto,
    /// The Azure CLI's signed-in account (`az login`).
    Cli,
    /// A service principal with a client secret (environment or OS keychain).
    ServicePrincipal,
    /// The managed identity of the machine `jit` runs on.
    ManagedIdentity,
    /// A federated token file (Kubernetes, GitHub Actions).
    WorkloadIdentity,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List VMs as the portal does: Configured, Not configured, Unsupported.
    List(ListArgs),
    /// Show a VM, its JIT policy and its recent access requests.
    Show(ShowArgs),
    /// Open a VM's port for your address, wait until it answers, and connect.
    Connect(ConnectArgs),
    /// Request access to one or more VMs without connecting.
    Request(RequestArgs),
    /// Turn JIT on for a VM, or change its ports (merging into the policy).
    Enable(EnableArgs),
    /// Turn JIT off for a VM (removing it from its policy, other VMs untouched).
    Disable(DisableArgs),
    /// Change the ports of a VM in its JIT policy (shows the change, asks first).
    ///
    /// Adds or removes ports, or sets their maximum and allowed sources; the last port
    /// removed takes the VM out of the policy.
    Edit(EditArgs),
    /// JIT policies as a file: export them, report drift, apply a file.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check why access to a VM fails (or would), each cause with its fix.
    Doctor(DoctorArgs),
    /// Access windows that are open now, with the time left.
    Status(StatusArgs),
    /// Extend an open access window with a new request for the same ports and source.
    Extend(ExtendArgs),
    /// Open access and relay stdin/stdout to the port: for SSH `ProxyCommand`.
    Proxy(ProxyArgs),
    /// Print `~/.ssh/config` entries that reach VMs through `jit proxy`.
    SshConfig(SshConfigArgs),
    /// Manage the background agent.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Manage stored credentials.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Show where the configuration lives and what it resolves to.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the whole flow against a local emulated Azure (no account needed).
    Demo(DemoArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
    /// Print the man page.
    #[command(hide = true)]
    Man,
}

/// Which VMs to look at.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Only this resource group.
    #[arg(long, short = 'g', value_name = "RESOURCE_GROUP")]
    pub resource_group: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,

    /// Only VMs in this state.
    #[arg(long, value_enum)]
    pub state: Option<JitStateFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JitStateFilter {
    Configured,
    NotConfigured,
    Unsupported,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The VM: a name, `resource-group/name`, or a full resource id.
    pub vm: String,
}

/// How to ask for access: shared by `connect`, `request` and `proxy`.
#[derive(Debug, Args, Clone, Default)]
pub struct AccessArgs {
    /// How long to open the port: `30m`, `2h`, `PT1H`. Default: the policy's maximum.
    #[arg(long, short = 'd', value_name = "DURATION")]
    pub duration: Option<String>,

    /// Why you need access; recorded in the request (also from config).
    #[arg(long, short = 'j', value_name = "TEXT")]
    pub justification: Option<String>,

    /// Source address to allow: an IP, a CIDR range, or `any` (only if the policy allows
    /// any source). Default: your public address.
    #[arg(long, value_name = "IP|CIDR|any")]
    pub source: Option<String>,

    /// Turn JIT on for the VM first if it is not configured (with the portal's defaults).
    #[arg(long)]
    pub enable: bool,

    /// Start the VM first if it is stopped.
    #[arg(long)]
    pub start: bool,

    /// Give up waiting for the port after this long.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

/// Which port to open.
#[derive(Debug, Args, Clone, Default)]
#[group(multiple = false)]
pub struct PortArgs {
    /// Use the VM's SSH port.
    #[arg(long)]
    pub ssh: bool,

    /// Use the VM's RDP port.
    #[arg(long)]
    pub rdp: bool,

    /// Use this port (as the JIT policy lists it).
    #[arg(long, short = 'p', value_name = "PORT")]
    pub port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The VM: a name, `resource-group/name`, or a full resource id.
    pub vm: String,

    #[command(flatten)]
    pub port: PortArgs,

    #[command(flatten)]
    pub access: AccessArgs,

    /// User to sign in as. Default: from config, else the VM's admin user.
    #[arg(long, short = 'u', value_name = "USER")]
    pub user: Option<String>,

    /// Print the connection details instead of launching a client.
    #[arg(long)]
    pub no_launch: bool,

    /// Extra arguments for `ssh` (after `--`), for example `-- -L 8080:localhost:80` or
    /// `-- uptime`.
    #[arg(last = true, value_name = "SSH_ARGS")]
    pub ssh_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The VMs: names, `resource-group/name`, or full resource ids.
    #[arg(required = true)]
    pub vms: Vec<String>,

    #[command(flatten)]
    pub port: PortArgs,

    #[command(flatten)]
    pub access: AccessArgs,

    /// Return as soon as Azure accepts the request, without waiting for the port.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct EnableArgs {
    /// The VM: a name, `resource-group/name`, or a full resource id.
    pub vm: String,

    /// Port to protect; repeat for several. Default: 22 on Linux, 3389 on Windows.
    #[arg(long = "port", short = 'p', value_name = "PORT")]
    pub ports: Vec<u16>,

    /// Longest access a request may ask for: `3h`, `PT3H` (5 minutes to 24 hours).
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,

    /// Source addresses requests may open the port for; repeat for several. Default:
    /// `*` (any source, each request still opens only the requester's address).
    #[arg(long = "allowed-source", value_name = "IP|CIDR|*")]
    pub allowed_sources: Vec<String>,

    /// Protocol to open.
    #[arg(long, value_enum, default_value = "any")]
    pub protocol: ProtocolArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    Any,
    Tcp,
    Udp,
}

#[derive(Debug, Args)]
pub struct DisableArgs {
    /// The VM: a name, `resource-group/name`, or a full resource id.
    pub vm: String,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The VM: a name, `resource-group/name`, or a full resource id.
    pub vm: String,

    /// Port to add (or to replace, if the VM has it); repeat for several.
    #[arg(long = "add-port", value_name = "PORT")]
    pub add_ports: Vec<u16>,

    /// Port to remove; repeat for several. Removing the last port takes the VM out of
    /// the policy.
    #[arg(long = "remove-port", value_name = "PORT")]
    pub remove_ports: Vec<u16>,

    /// Longest access a request may ask for (`3h`, `PT3H`; 5 minutes to 24 hours): for
    /// every port of the VM, or `PORT=DURATION` for one; repeat for several ports.
    #[arg(long = "max-duration", value_name = "[PORT=]DURATION")]
    pub max_durations: Vec<String>,

    /// Source addresses requests may open a port for: for every port of the VM, or
    /// `PORT=SOURCE` for one; repeat for several sources (they replace the port's).
    #[arg(long = "allowed-source", value_name = "[PORT=]IP|CIDR|*")]
    pub allowed_sources: Vec<String>,

    /// Protocol of the added ports.
    #[arg(long, value_enum, default_value = "any")]
    pub protocol: ProtocolArg,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the JIT policies of VMs, a resource group or every subscription searched as
    /// a policy file (TOML).
    Export(PolicyExportArgs),
    /// Report how Azure differs from a policy file; exits 1 when it does (drift).
    Diff(PolicyDiffArgs),
    /// Make Azure match a policy file: prints the change, asks, merges and verifies.
    Apply(PolicyApplyArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["vms", "resource_group", "all"])))]
pub struct PolicyExportArgs {
    /// VMs whose entries to export (only these VMs of their policies).
    pub vms: Vec<String>,

    /// Every policy of this resource group (in each subscription searched).
    #[arg(
        long,
        short = 'g',
        value_name = "RESOURCE_GROUP",
        conflicts_with = "vms"
    )]
    pub resource_group: Option<String>,

    /// Every policy of every subscription searched.
    #[arg(long, conflicts_with_all = ["vms", "resource_group"])]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct PolicyDiffArgs {
    /// The policy file (`-` for stdin).
    pub file: PathBuf,

    /// Count VMs that a listed policy holds and the file leaves out as drift too.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
pub struct PolicyApplyArgs {
    /// The policy file (`-` for stdin).
    pub file: PathBuf,

    /// Show what would change, write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Also remove the VMs that a listed policy holds and the file leaves out.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The VM to diagnose: a name, `resource-group/name`, or a full resource id.
    /// Without one: sign-in, Defender plans and permissions of each subscription.
    #[arg(conflicts_with = "all")]
    pub vm: Option<String>,

    /// Check every JIT-configured VM of the subscriptions searched (for a CI job): are
    /// JIT's NSG rules still in place, and does no other rule outrank them?
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub scope: ScopeArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Re-read the windows from Azure now.
    #[arg(long)]
    pub refresh: bool,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The VM whose window to extend.
    pub vm: String,

    /// New length from now: `30m`, `2h`, `PT1H`. Default: the policy's maximum.
    #[arg(long, short = 'd', value_name = "DURATION")]
    pub duration: Option<String>,

    /// Why; recorded in the new request.
    #[arg(long, short = 'j', value_name = "TEXT")]
    pub justification: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The VM (as `ssh` passes `%h`): a name, `resource-group/name`, or a resource id.
    pub vm: String,

    /// The port (as `ssh` passes `%p`).
    pub port: Option<u16>,

    #[command(flatten)]
    pub access: AccessArgs,
}

#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// VMs to write entries for. Default: every configured Linux VM.
    pub vms: Vec<String>,

    #[command(flatten)]
    pub scope: ScopeArgs,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Start the agent if it is not running.
    Start,
    /// Stop the agent.
    Stop,
    /// Say whether the agent runs, its version and what it tracks.
    Status,
    /// Start the agent at login (systemd user unit, LaunchAgent, Startup entry).
    Install,
    /// Remove the login entry.
    Uninstall,
    /// Run the agent in the foreground (what the login entry runs).
    Run,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Store a service principal's client secret in the OS keychain, read from stdin.
    SetSecret(SecretArgs),
    /// Remove a stored client secret.
    DeleteSecret(SecretArgs),
    /// Show which credential `jit` would use (never the secret or token).
    Status,
}

#[derive(Debug, Args)]
pub struct SecretArgs {
    /// The service principal's client (application) id. Default: from config or
    /// AZURE_CLIENT_ID.
    #[arg(long, value_name = "CLIENT_ID")]
    pub client_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration file's path.
    Path,
    /// Print the resolved configuration (secrets never shown).
    Show,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Open an interactive shell on the emulated VM instead of running one command.
    #[arg(long)]
    pub interactive: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ssh_arguments_after_double_dash_are_kept_verbatim() {
        let cli = Cli::try_parse_from([
            "jit",
            "connect",
            "web-01",
            "--",
            "-L",
            "8080:x:80",
            "uptime",
        ])
        .expect("parses");
        let Command::Connect(connect) = cli.command else {
            panic!("expected connect");
        };
        assert_eq!(connect.ssh_args, ["-L", "8080:x:80", "uptime"]);
    }

    #[test]
    fn port_choices_exclude_each_other() {
        let error = Cli::try_parse_from(["jit", "connect", "web-01", "--ssh", "--rdp"])
            .expect_err("--ssh and --rdp conflict");
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
