//! Resolves what a command should do from flags, the environment, the config file and
//! defaults, in that order of precedence.
//!
//! Commands never look at clap types, environment variables or the config file
//! themselves: they get typed settings from here. That keeps precedence rules in one
//! place, makes every value validated once (a bad duration in the config file is reported
//! with its source, before any Azure call), and lets tests build settings directly.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use serde::Serialize;

use jit_agent::access::enable::{PerPort, PortsChange, check_maximum, check_source};
use jit_agent::access::flow::AccessAsk;
use jit_agent::access::locate::VmQuery;
use jit_agent::access::plan::{PortPreference, SourceRequest};
use jit_agent::azure::models::JitProtocol;

use crate::args::{self, AccessArgs, EditArgs, GlobalArgs, PortArgs, ProtocolArg};
use crate::config_file::{
    AgentSection, ConfigFile, EnableSection, RdpSection, SshSection, VmSection,
};
use crate::env_vars;
use crate::error::CliError;
use crate::printer::format::format_duration;
pub use crate::printer::{OutputFormat, Verbosity};

/// The "what is my IP" services asked by default. Each answers an HTTPS GET with the
/// caller's address as plain text.
pub const DEFAULT_MY_IP_URLS: &[&str] = &[
    "https://api.ipify.org",
    "https://ipv4.icanhazip.com",
    "https://checkip.amazonaws.com",
];

/// How long `connect` waits for a port to answer unless told otherwise.
pub const DEFAULT_WAIT_TIMEOUT: SignedDuration = SignedDuration::from_secs(180);

/// How long one Azure call may spend retrying throttling and transient failures.
pub const DEFAULT_MAX_RETRY_WAIT: SignedDuration = SignedDuration::from_secs(60);

/// How long one `az account get-access-token` may run unless configured otherwise.
pub const DEFAULT_AZ_TIMEOUT: SignedDuration = SignedDuration::from_secs(30);

/// The environment, captured once so that settings are a pure function of their inputs.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    variables: HashMap<String, String>,
}

impl Environment {
    /// The process environment (only the variables `jit` reads).
    pub fn from_process() -> Self {
        let variables = env_vars::ALL
            .iter()
            .filter_map(|(name, _)| {
                std::env::var(name)
                    .ok()
                    .map(|value| ((*name).to_owned(), value))
            })
            .collect();
        Self { variables }
    }

    /// An environment made of the given pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            variables: pairs
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        }
    }

    /// A variable's value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.variables
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|value| {
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }
}

/// How to sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    Auto,
    Cli,
    ServicePrincipal,
    ManagedIdentity,
    WorkloadIdentity,
}

/// Which Azure cloud, and where its endpoints are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudSettings {
    /// A cloud Azure names: `AzureCloud`, `AzureUSGovernment`, `AzureChinaCloud`.
    Named(String),
    /// A custom cloud: the emulator, Azure Stack, a test environment.
    Custom {
        arm_endpoint: String,
        authority_host: String,
        audience: Option<String>,
    },
}

/// A secret that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for handing to the credential.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// Everything needed to reach Azure.
#[derive(Debug, Clone, Serialize)]
pub struct AzureSettings {
    pub cloud: CloudSettings,
    pub ca_files: Vec<PathBuf>,
    pub auth: AuthMethod,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub federated_token_file: Option<PathBuf>,
    pub managed_identity_endpoint: Option<String>,
    pub managed_identity_header: Option<Secret>,
    /// The Azure CLI's configuration directory (`AZURE_CONFIG_DIR`, else `~/.azure`).
    pub azure_cli_dir: Option<PathBuf>,
    /// Subscriptions searched by default; empty means every visible subscription.
    pub subscriptions: Vec<String>,
    #[serde(serialize_with = "serialize_duration")]
    pub max_retry_wait: SignedDuration,
    #[serde(serialize_with = "serialize_duration")]
    pub az_timeout: SignedDuration,
}

/// How to ask for access.
#[derive(Debug, Clone, Serialize)]
pub struct AccessSettings {
    pub my_ip_urls: Vec<String>,
    pub justification: Option<String>,
    #[serde(serialize_with = "serialize_optional_duration")]
    pub duration: Option<SignedDuration>,
    #[serde(serialize_with = "serialize_duration")]
    pub wait_timeout: SignedDuration,
    pub assume_yes: bool,
}

/// What enabling JIT writes when the command line does not say.
#[derive(Debug, Clone, Serialize)]
pub struct EnableSettings {
    /// Sources requests may open ports for.
    pub allowed_sources: Vec<String>,
    /// The longest request allowed.
    #[serde(serialize_with = "serialize_duration")]
    pub max_duration: SignedDuration,
}

/// Which client programs to run.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchSettings {
    pub ssh_program: PathBuf,
    pub ssh_args: Vec<String>,
    pub rdp_program: Option<PathBuf>,
    pub rdp_args: Vec<String>,
}

/// The background agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentSettings {
    pub enabled: bool,
    pub autostart: bool,
    pub notifications: bool,
    pub tray: bool,
    #[serde(serialize_with = "serialize_duration")]
    pub notify_before: SignedDuration,
    #[serde(serialize_with = "serialize_duration")]
    pub refresh_interval: SignedDuration,
    pub state_dir: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
}

/// Settings every command shares.
#[derive(Debug, Clone, Serialize)]
pub struct GlobalSettings {
    pub config_path: Option<PathBuf>,
    pub output: OutputFormat,
    #[serde(skip)]
    pub verbosity: Verbosity,
    pub color: bool,
    pub azure: AzureSettings,
    pub access: AccessSettings,
    pub launch: LaunchSettings,
    pub enable: EnableSettings,
    pub agent: AgentSettings,
    pub vms: BTreeMap<String, VmSection>,
}

impl GlobalSettings {
    /// Resolves the global flags, environment and config file into settings.
    pub fn resolve(args: &GlobalArgs, environment: &Environment) -> Result<Self, CliError> {
        let (config_path, must_exist) = match &args.config {
            Some(path) => (Some(path.clone()), true),
            None => match environment.get(env_vars::JIT_CONFIG) {
                Some(path) => (Some(PathBuf::from(path)), true),
                None => (default_config_path(), false),
            },
        };
        let file = match &config_path {
            Some(path) => ConfigFile::load(path, must_exist).map_err(|error| CliError::Usage {
                message: error.to_string(),
                hint: Some("fix the file, or point JIT_CONFIG elsewhere".to_owned()),
            })?,
            None => ConfigFile::default(),
        };
        Self::from_parts(args, environment, file, config_path)
    }

    /// Combines already-loaded parts (tests call this directly).
    pub fn from_parts(
        args: &GlobalArgs,
        environment: &Environment,
        file: ConfigFile,
        config_path: Option<PathBuf>,
    ) -> Result<Self, CliError> {
        let output = match args.output {
            Some(args::OutputFormat::Table) => OutputFormat::Table,
            Some(args::OutputFormat::Json) => OutputFormat::Json,
            None => match environment
                .get(env_vars::JIT_OUTPUT)
                .or(file.output.as_deref())
            {
                None => OutputFormat::Table,
                Some(text) => parse_output(text)?,
            },
        };
        let verbosity = if args.quiet {
            Verbosity::Quiet
        } else if args.verbose > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        let color = !args.no_color && environment.get(env_vars::NO_COLOR).is_none();

        let azure = resolve_azure(args, environment, &file)?;
        let access = AccessSettings {
            my_ip_urls: environment
                .list(env_vars::JIT_MY_IP_URLS)
                .or_else(|| file.my_ip_urls.clone())
                .unwrap_or_else(|| {
                    DEFAULT_MY_IP_URLS
                        .iter()
                        .map(|url| (*url).to_owned())
                        .collect()
                }),
            justification: file.justification.clone(),
            duration: file
                .duration
                .as_deref()
                .map(|text| parse_duration(text, "duration in the config file"))
                .transpose()?,
            wait_timeout: file
                .wait_timeout
                .as_deref()
                .map(|text| parse_duration(text, "wait_timeout in the config file"))
                .transpose()?
                .unwrap_or(DEFAULT_WAIT_TIMEOUT),
            assume_yes: args.yes,
        };
        for url in &access.my_ip_urls {
            if !url.starts_with("https://") {
                return Err(CliError::Usage {
                    message: format!("\"what is my IP\" URL {url} does not use HTTPS"),
                    hint: Some(
                        "an address learned over plain HTTP could be forged; use https:// URLs"
                            .to_owned(),
                    ),
                });
            }
        }
        let ssh = file.ssh.clone().unwrap_or_default();
        let rdp = file.rdp.clone().unwrap_or_default();
        let launch = LaunchSettings {
            ssh_program: ssh.program.unwrap_or_else(|| PathBuf::from("ssh")),
            ssh_args: ssh.args.unwrap_or_default(),
            rdp_program: rdp.program,
            rdp_args: rdp.args.unwrap_or_default(),
        };
        let enable_section = file.enable.clone().unwrap_or_default();
        let enable = EnableSettings {
            allowed_sources: enable_section
                .allowed_sources
                .filter(|sources| !sources.is_empty())
                .unwrap_or_else(|| vec!["*".to_owned()]),
            max_duration: enable_section
                .max_duration
                .as_deref()
                .map(|text| parse_duration(text, "enable.max_duration in the config file"))
                .transpose()?
                .unwrap_or(SignedDuration::from_hours(3)),
        };
        if !(SignedDuration::from_mins(5)..=SignedDuration::from_hours(24))
            .contains(&enable.max_duration)
        {
            return Err(CliError::Usage {
                message: "enable.max_duration in the config file is outside what JIT allows"
                    .to_owned(),
                hint: Some("use between 5 minutes and 24 hours".to_owned()),
            });
        }
        let agent_section = file.agent.clone().unwrap_or_default();
        let agent_disabled = args.no_agent
            || environment
                .get(env_vars::JIT_NO_AGENT)
                .is_some_and(|value| value != "0");
        let agent = AgentSettings {
            enabled: !agent_disabled,
            autostart: agent_section.autostart.unwrap_or(true),
            notifications: agent_section.notifications.unwrap_or(true),
            tray: agent_section.tray.unwrap_or(true)
                && environment
                    .get(env_vars::JIT_NO_TRAY)
                    .is_none_or(|value| value == "0"),
            notify_before: agent_section
                .notify_before
                .as_deref()
                .map(|text| parse_duration(text, "agent.notify_before in the config file"))
                .transpose()?
                .unwrap_or(SignedDuration::from_mins(5)),
            refresh_interval: agent_section
                .refresh_interval
                .as_deref()
                .map(|text| parse_duration(text, "agent.refresh_interval in the config file"))
                .transpose()?
                .unwrap_or(SignedDuration::from_secs(60)),
            state_dir: environment.get(env_vars::JIT_STATE_DIR).map(PathBuf::from),
            runtime_dir: environment
                .get(env_vars::JIT_RUNTIME_DIR)
                .map(PathBuf::from),
        };
        Ok(Self {
            config_path,
            output,
            verbosity,
            color,
            azure,
            access,
            launch,
            enable,
            agent,
            vms: file.vms.unwrap_or_default(),
        })
    }

    /// The per-VM section that applies to a VM, looked up by resource id, then
    /// `resource-group/name`, then name (all case-insensitive, as Azure names are).
    pub fn vm_section(&self, id: &str, resource_group: &str, name: &str) -> Option<&VmSection> {
        let group_and_name = format!("{resource_group}/{name}");
        [id, group_and_name.as_str(), name]
            .into_iter()
            .find_map(|key| {
                self.vms
                    .iter()
                    .find(|(candidate, _)| candidate.eq_ignore_ascii_case(key))
                    .map(|(_, section)| section)
            })
    }
}

impl GlobalSettings {
    /// The resolved settings in the configuration file's own schema, so that `jit config
    /// show > file` and `jit --config file` agree. Secrets have no place in the file and
    /// are left out; so are settings with no key there (output colour, verbosity).
    pub fn to_config_file(&self) -> ConfigFile {
        let azure = &self.azure;
        let (cloud, arm_endpoint, authority_host, arm_audience) = match &azure.cloud {
            CloudSettings::Named(name) => (Some(name.clone()), None, None, None),
            CloudSettings::Custom {
                arm_endpoint,
                authority_host,
                audience,
            } => (
                None,
                Some(arm_endpoint.clone()),
                Some(authority_host.clone()),
                audience.clone(),
            ),
        };
        let some_list = |items: &[String]| (!items.is_empty()).then(|| items.to_vec());
        ConfigFile {
            cloud,
            arm_endpoint,
            authority_host,
            arm_audience,
            ca_files: (!azure.ca_files.is_empty()).then(|| azure.ca_files.clone()),
            auth: Some(
                match azure.auth {
                    AuthMethod::Auto => "auto",
                    AuthMethod::Cli => "cli",
                    AuthMethod::ServicePrincipal => "service-principal",
                    AuthMethod::ManagedIdentity => "managed-identity",
                    AuthMethod::WorkloadIdentity => "workload-identity",
                }
                .to_owned(),
            ),
            tenant: azure.tenant.clone(),
            client_id: azure.client_id.clone(),
            subscriptions: some_list(&azure.subscriptions),
            output: Some(
                match self.output {
                    OutputFormat::Table => "table",
                    OutputFormat::Json => "json",
                }
                .to_owned(),
            ),
            my_ip_urls: Some(self.access.my_ip_urls.clone()),
            justification: self.access.justification.clone(),
            duration: self.access.duration.map(format_duration),
            wait_timeout: Some(format_duration(self.access.wait_timeout)),
            max_retry_wait: Some(format_duration(azure.max_retry_wait)),
            az_timeout: Some(format_duration(azure.az_timeout)),
            ssh: Some(SshSection {
                program: Some(self.launch.ssh_program.clone()),
                args: Some(self.launch.ssh_args.clone()),
            }),
            rdp: Some(RdpSection {
                program: self.launch.rdp_program.clone(),
                args: Some(self.launch.rdp_args.clone()),
            }),
            agent: Some(AgentSection {
                autostart: Some(self.agent.autostart),
                notify_before: Some(format_duration(self.agent.notify_before)),
                refresh_interval: Some(format_duration(self.agent.refresh_interval)),
                notifications: Some(self.agent.notifications),
                tray: Some(self.agent.tray),
            }),
            enable: Some(EnableSection {
                allowed_sources: Some(self.enable.allowed_sources.clone()),
                max_duration: Some(format_duration(self.enable.max_duration)),
            }),
            vms: (!self.vms.is_empty()).then(|| self.vms.clone()),
        }
    }
}

/// What `connect`, `request` and `proxy` were asked, with every fallback (flag, config
/// file, default) resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCommand {
    /// Which port.
    pub ports: PortPreference,
    /// Which source (`None`: the VM's section, else the caller's address).
    pub source: Option<SourceRequest>,
    /// How long (`None`: the policy's maximum).
    pub duration: Option<SignedDuration>,
    /// Why, recorded in the request.
    pub justification: Option<String>,
    /// How long to wait for the port.
    pub timeout: std::time::Duration,
    /// Start a stopped VM without asking.
    pub start: bool,
    /// Enable JIT without asking.
    pub enable: bool,
}

impl AccessCommand {
    /// Resolves the access flags of a command against the settings.
    pub fn resolve(
        access: &AccessArgs,
        ports: &PortArgs,
        settings: &GlobalSettings,
    ) -> Result<Self, CliError> {
        let duration = match access.duration.as_deref() {
            Some(text) => Some(parse_duration(text, "--duration")?),
            None => settings.access.duration,
        };
        let timeout = match access.timeout.as_deref() {
            Some(text) => parse_duration(text, "--timeout")?,
            None => settings.access.wait_timeout,
        };
        let source = access
            .source
            .as_deref()
            .map(SourceRequest::parse)
            .transpose()
            .map_err(|error| CliError::Usage {
                message: format!("--source: {error}"),
                hint: Some("pass an IPv4 address, an IPv4 range or `any`".to_owned()),
            })?;
        Ok(Self {
            ports: port_preference(ports),
            source,
            duration,
            justification: access
                .justification
                .clone()
                .or_else(|| settings.access.justification.clone())
                .filter(|text| !text.trim().is_empty()),
            // Saturates: a timeout of a thousand years is "as long as JIT allows".
            timeout: std::time::Duration::try_from(timeout).unwrap_or(std::time::Duration::MAX),
            start: access.start,
            enable: access.enable,
        })
    }

    /// The flow's ask for one VM named as typed.
    pub fn ask(&self, vm: &str) -> Result<AccessAsk, CliError> {
        Ok(AccessAsk {
            vm: parse_vm(vm)?,
            ports: self.ports,
            source: self.source.clone(),
            duration: self.duration,
            start: self.start,
            enable: self.enable,
        })
    }
}

/// The JIT protocol a `--protocol` flag names.
pub fn jit_protocol(protocol: ProtocolArg) -> JitProtocol {
    match protocol {
        ProtocolArg::Any => JitProtocol::All,
        ProtocolArg::Tcp => JitProtocol::Tcp,
        ProtocolArg::Udp => JitProtocol::Udp,
    }
}

/// What `jit edit` was asked, checked before any Azure call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditCommand {
    /// The VM.
    pub vm: VmQuery,
    /// The change to its ports.
    pub change: PortsChange,
}

impl EditCommand {
    /// Resolves `jit edit`'s flags; added ports without their own values get the
    /// `[enable]` defaults.
    pub fn resolve(arguments: &EditArgs, settings: &GlobalSettings) -> Result<Self, CliError> {
        let usage = |message: String, hint: &str| CliError::Usage {
            message,
            hint: Some(hint.to_owned()),
        };
        let mut max_duration: PerPort<SignedDuration> = PerPort::default();
        for text in &arguments.max_durations {
            let (port, value) = per_port(text, "--max-duration")?;
            let duration = parse_duration(value, "--max-duration")?;
            check_maximum(duration)
                .map_err(|error| usage(error.to_string(), "JIT accepts maximums from 5m to 24h"))?;
            match port {
                Some(port) => {
                    max_duration.ports.retain(|(number, _)| *number != port);
                    max_duration.ports.push((port, duration));
                }
                None => max_duration.every = Some(duration),
            }
        }
        let mut allowed_sources: PerPort<Vec<String>> = PerPort::default();
        for text in &arguments.allowed_sources {
            let (port, value) = per_port(text, "--allowed-source")?;
            let source = match value.trim() {
                "*" | "any" | "Any" | "ANY" => "*".to_owned(),
                other => other.to_owned(),
            };
            check_source(&source).map_err(|error| {
                usage(
                    format!("--allowed-source: {error}"),
                    "JIT accepts IPv4 addresses, IPv4 ranges or *",
                )
            })?;
            match port {
                Some(port) => match allowed_sources
                    .ports
                    .iter_mut()
                    .find(|(number, _)| *number == port)
                {
                    Some((_, sources)) => sources.push(source),
                    None => allowed_sources.ports.push((port, vec![source])),
                },
                None => allowed_sources
                    .every
                    .get_or_insert_with(Vec::new)
                    .push(source),
            }
        }
        for port in &arguments.add_ports {
            if arguments.remove_ports.contains(port) {
                return Err(usage(
                    format!("port {port} is both added and removed"),
                    "name each port in one of --add-port and --remove-port",
                ));
            }
        }
        for port in max_duration
            .ports
            .iter()
            .map(|(port, _)| *port)
            .chain(allowed_sources.ports.iter().map(|(port, _)| *port))
        {
            if arguments.remove_ports.contains(&port) {
                return Err(usage(
                    format!("port {port} is removed and changed at once"),
                    "drop the --max-duration or --allowed-source for a removed port",
                ));
            }
        }
        if arguments.add_ports.contains(&0) {
            return Err(usage(
                "port 0 cannot be protected".to_owned(),
                "name ports from 1 to 65535",
            ));
        }
        let change = PortsChange {
            add: dedup(&arguments.add_ports),
            protocol: jit_protocol(arguments.protocol),
            remove: dedup(&arguments.remove_ports),
            max_duration,
            allowed_sources,
            default_sources: settings.enable.allowed_sources.clone(),
            default_max_duration: settings.enable.max_duration,
        };
        if change.is_empty() {
            return Err(usage(
                "nothing to change".to_owned(),
                "pass --add-port, --remove-port, --max-duration or --allowed-source",
            ));
        }
        Ok(Self {
            vm: parse_vm(&arguments.vm)?,
            change,
        })
    }
}

/// `PORT=VALUE` or `VALUE`.
fn per_port<'a>(text: &'a str, flag: &str) -> Result<(Option<u16>, &'a str), CliError> {
    match text.split_once('=') {
        Some((port, value)) => {
            let port = port
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| CliError::Usage {
                    message: format!("{flag} '{text}': '{port}' is not a port number"),
                    hint: Some(format!(
                        "write {flag} VALUE for every port, or {flag} PORT=VALUE"
                    )),
                })?;
            Ok((Some(port), value))
        }
        None => Ok((None, text)),
    }
}

fn dedup(ports: &[u16]) -> Vec<u16> {
    let mut unique: Vec<u16> = Vec::new();
    for port in ports {
        if !unique.contains(port) {
            unique.push(*port);
        }
    }
    unique
}

/// Which port the flags ask for.
pub fn port_preference(ports: &PortArgs) -> PortPreference {
    match (ports.ssh, ports.rdp, ports.port) {
        (true, _, _) => PortPreference::Ssh,
        (_, true, _) => PortPreference::Rdp,
        (_, _, Some(number)) => PortPreference::Number(number),
        _ => PortPreference::Automatic,
    }
}

/// A VM as typed: a name, `resource-group/name`, or a resource id.
pub fn parse_vm(text: &str) -> Result<VmQuery, CliError> {
    VmQuery::parse(text).map_err(|error| CliError::Usage {
        message: error.to_string(),
        hint: Some("write a VM as name, resource-group/name or a full resource id".to_owned()),
    })
}

/// Where the config file lives when nothing says otherwise.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "jit").map(|dirs| dirs.config_dir().join("config.toml"))
}

fn parse_output(text: &str) -> Result<OutputFormat, CliError> {
    match text.to_ascii_lowercase().as_str() {
        "table" => Ok(OutputFormat::Table),
        "json" => Ok(OutputFormat::Json),
        _ => Err(CliError::Usage {
            message: format!("unknown output format '{text}'"),
            hint: Some("use table or json".to_owned()),
        }),
    }
}

fn parse_auth(text: &str) -> Result<AuthMethod, CliError> {
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(AuthMethod::Auto),
        "cli" | "azure-cli" | "az" => Ok(AuthMethod::Cli),
        "service-principal" | "sp" => Ok(AuthMethod::ServicePrincipal),
        "managed-identity" | "msi" => Ok(AuthMethod::ManagedIdentity),
        "workload-identity" => Ok(AuthMethod::WorkloadIdentity),
        _ => Err(CliError::Usage {
            message: format!("unknown sign-in method '{text}'"),
            hint: Some(
                "use auto, cli, service-principal, managed-identity or workload-identity"
                    .to_owned(),
            ),
        }),
    }
}

fn resolve_azure(
    args: &GlobalArgs,
    environment: &Environment,
    file: &ConfigFile,
) -> Result<AzureSettings, CliError> {
    let cloud = resolve_cloud(args, environment, file)?;

    let mut ca_files: Vec<PathBuf> = file.ca_files.clone().unwrap_or_default();
    if let Some(path) = environment.get(env_vars::JIT_CA_FILE)
        && !ca_files.iter().any(|known| known == Path::new(path))
    {
        ca_files.push(PathBuf::from(path));
    }
    for path in &ca_files {
        if !path.is_file() {
            return Err(CliError::Usage {
                message: format!("CA certificate file {} does not exist", path.display()),
                hint: Some(format!(
                    "check {} and ca_files in the config file",
                    env_vars::JIT_CA_FILE
                )),
            });
        }
    }

    let auth = match args.auth {
        Some(method) => match method {
            args::AuthMethod::Auto => AuthMethod::Auto,
            args::AuthMethod::Cli => AuthMethod::Cli,
            args::AuthMethod::ServicePrincipal => AuthMethod::ServicePrincipal,
            args::AuthMethod::ManagedIdentity => AuthMethod::ManagedIdentity,
            args::AuthMethod::WorkloadIdentity => AuthMethod::WorkloadIdentity,
        },
        None => match environment.get(env_vars::JIT_AUTH).or(file.auth.as_deref()) {
            Some(text) => parse_auth(text)?,
            None => AuthMethod::Auto,
        },
    };

    let subscriptions = if args.subscriptions.is_empty() {
        environment
            .list(env_vars::JIT_SUBSCRIPTIONS)
            .or_else(|| file.subscriptions.clone())
            .unwrap_or_default()
    } else {
        args.subscriptions.clone()
    };

    Ok(AzureSettings {
        cloud,
        ca_files,
        auth,
        tenant: args
            .tenant
            .clone()
            .or_else(|| environment.get(env_vars::JIT_TENANT).map(str::to_owned))
            .or_else(|| file.tenant.clone())
            .or_else(|| {
                environment
                    .get(env_vars::AZURE_TENANT_ID)
                    .map(str::to_owned)
            }),
        client_id: environment
            .get(env_vars::AZURE_CLIENT_ID)
            .map(str::to_owned)
            .or_else(|| file.client_id.clone()),
        client_secret: environment
            .get(env_vars::AZURE_CLIENT_SECRET)
            .map(|secret| Secret(secret.to_owned())),
        federated_token_file: environment
            .get(env_vars::AZURE_FEDERATED_TOKEN_FILE)
            .map(PathBuf::from),
        managed_identity_endpoint: environment
            .get(env_vars::IDENTITY_ENDPOINT)
            .map(str::to_owned),
        managed_identity_header: environment
            .get(env_vars::IDENTITY_HEADER)
            .map(|header| Secret(header.to_owned())),
        azure_cli_dir: environment
            .get(env_vars::AZURE_CONFIG_DIR)
            .map(PathBuf::from)
            .or_else(|| directories::BaseDirs::new().map(|dirs| dirs.home_dir().join(".azure"))),
        subscriptions,
        max_retry_wait: file
            .max_retry_wait
            .as_deref()
            .map(|text| parse_duration(text, "max_retry_wait in the config file"))
            .transpose()?
            .unwrap_or(DEFAULT_MAX_RETRY_WAIT),
        az_timeout: match environment.get(env_vars::JIT_AZ_TIMEOUT) {
            Some(text) => parse_duration(text, env_vars::JIT_AZ_TIMEOUT)?,
            None => file
                .az_timeout
                .as_deref()
                .map(|text| parse_duration(text, "az_timeout in the config file"))
                .transpose()?
                .unwrap_or(DEFAULT_AZ_TIMEOUT),
        },
    })
}

/// The cloud, by precedence level: `--cloud` wins over the environment, which wins over
/// the config file. Within one level a cloud name and a custom endpoint contradict each
/// other, and that is an error rather than a silent choice.
fn resolve_cloud(
    args: &GlobalArgs,
    environment: &Environment,
    file: &ConfigFile,
) -> Result<CloudSettings, CliError> {
    let custom = |arm_endpoint: &str, authority_host: Option<&str>| {
        let arm_endpoint = validate_endpoint(arm_endpoint, "ARM endpoint")?;
        let authority_host = match authority_host {
            Some(host) => validate_endpoint(host, "authority host")?,
            None => {
                return Err(CliError::Usage {
                    message: "a custom ARM endpoint needs an authority host too".to_owned(),
                    hint: Some(format!(
                        "set {} or authority_host in the config file",
                        env_vars::JIT_AUTHORITY_HOST
                    )),
                });
            }
        };
        Ok(CloudSettings::Custom {
            arm_endpoint,
            authority_host,
            audience: file.arm_audience.clone(),
        })
    };
    let authority_host = environment
        .get(env_vars::JIT_AUTHORITY_HOST)
        .or(file.authority_host.as_deref());
    if let Some(name) = &args.cloud {
        return named_cloud(name);
    }
    match (
        environment.get(env_vars::JIT_CLOUD),
        environment.get(env_vars::JIT_ARM_ENDPOINT),
    ) {
        (Some(_), Some(_)) => {
            return Err(CliError::Usage {
                message: format!(
                    "{} and {} are both set and name different clouds",
                    env_vars::JIT_CLOUD,
                    env_vars::JIT_ARM_ENDPOINT
                ),
                hint: Some("unset one of them".to_owned()),
            });
        }
        (Some(name), None) => return named_cloud(name),
        (None, Some(endpoint)) => return custom(endpoint, authority_host),
        (None, None) => {}
    }
    match (&file.cloud, &file.arm_endpoint) {
        (Some(_), Some(_)) => Err(CliError::Usage {
            message: "the config file sets both cloud and arm_endpoint".to_owned(),
            hint: Some("keep one of them".to_owned()),
        }),
        (Some(name), None) => named_cloud(name),
        (None, Some(endpoint)) => custom(endpoint, authority_host),
        (None, None) => named_cloud("AzureCloud"),
    }
}

fn named_cloud(name: &str) -> Result<CloudSettings, CliError> {
    let known = ["AzureCloud", "AzureUSGovernment", "AzureChinaCloud"];
    match known.iter().find(|known| known.eq_ignore_ascii_case(name)) {
        Some(known) => Ok(CloudSettings::Named((*known).to_owned())),
        None => Err(CliError::Usage {
            message: format!("unknown cloud '{name}'"),
            hint: Some(
                "use AzureCloud, AzureUSGovernment or AzureChinaCloud, or set a custom ARM endpoint"
                    .to_owned(),
            ),
        }),
    }
}

fn validate_endpoint(text: &str, what: &str) -> Result<String, CliError> {
    let trimmed = text.trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() => Ok(trimmed.to_owned()),
        Ok(_) => Err(CliError::Usage {
            message: format!("{what} '{text}' must be an https:// URL"),
            hint: Some("Azure only accepts tokens over TLS".to_owned()),
        }),
        Err(error) => Err(CliError::Usage {
            message: format!("{what} '{text}' is not a URL: {error}"),
            hint: None,
        }),
    }
}

/// Parses a duration a person typed (`30m`, `2h`, `1h30m`, `90 minutes`) or Azure wrote
/// (`PT3H`, `PT0.5H`). `what` names the value in the error.
pub fn parse_duration(text: &str, what: &str) -> Result<SignedDuration, CliError> {
    let parsed: Result<SignedDuration, _> = text.trim().parse();
    match parsed {
        Ok(duration) if duration.is_positive() => Ok(duration),
        Ok(_) => Err(CliError::Usage {
            message: format!("{what} must be longer than zero, not '{text}'"),
            hint: None,
        }),
        Err(_) => Err(CliError::Usage {
            message: format!("invalid {what} '{text}'"),
            hint: Some("write it like 30m, 2h, 1h30m or PT1H".to_owned()),
        }),
    }
}

fn serialize_duration<S: serde::Serializer>(
    duration: &SignedDuration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*duration))
}

fn serialize_optional_duration<S: serde::Serializer>(
    duration: &Option<SignedDuration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_str(&format_duration(*duration)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::Cli;

    fn global(arguments: &[&str]) -> GlobalArgs {
        let mut argv = vec!["jit"];
        argv.extend_from_slice(arguments);
        argv.push("status");
        Cli::try_parse_from(argv).expect("parses").global
    }

    fn resolve(arguments: &[&str], environment: &[(&str, &str)], file: &str) -> GlobalSettings {
        GlobalSettings::from_parts(
            &global(arguments),
            &Environment::from_pairs(environment.iter().copied()),
            ConfigFile::parse(file).expect("valid config"),
            None,
        )
        .expect("resolves")
    }

    #[test]
    fn flags_beat_environment_beats_file_beats_defaults() {
        assert_eq!(resolve(&[], &[], "").output, OutputFormat::Table);
        assert_eq!(
            resolve(&[], &[], "output = \"json\"").output,
            OutputFormat::Json
        );
        assert_eq!(
            resolve(&[], &[("JIT_OUTPUT", "table")], "output = \"json\"").output,
            OutputFormat::Table
        );
        assert_eq!(
            resolve(
                &["-o", "json"],
                &[("JIT_OUTPUT", "table")],
                "output = \"table\""
            )
            .output,
            OutputFormat::Json
        );
    }

    #[test]
    fn a_custom_arm_endpoint_makes_a_custom_cloud() {
        let settings = resolve(
            &[],
            &[
                ("JIT_ARM_ENDPOINT", "https://127.0.0.1:4443/"),
                ("JIT_AUTHORITY_HOST", "https://127.0.0.1:4443"),
            ],
            "cloud = \"AzureCloud\"",
        );
        assert_eq!(
            settings.azure.cloud,
            CloudSettings::Custom {
                arm_endpoint: "https://127.0.0.1:4443".to_owned(),
                authority_host: "https://127.0.0.1:4443".to_owned(),
                audience: None,
            }
        );
    }

    #[test]
    fn cloud_names_are_case_insensitive_and_unknown_ones_rejected() {
        let settings = resolve(&["--cloud", "azureusgovernment"], &[], "");
        assert_eq!(
            settings.azure.cloud,
            CloudSettings::Named("AzureUSGovernment".to_owned())
        );
        let error = GlobalSettings::from_parts(
            &global(&["--cloud", "Mars"]),
            &Environment::default(),
            ConfigFile::default(),
            None,
        )
        .expect_err("unknown cloud");
        assert!(error.to_string().contains("Mars"));
    }

    #[test]
    fn plain_http_endpoints_are_refused() {
        let error = GlobalSettings::from_parts(
            &global(&[]),
            &Environment::from_pairs([
                ("JIT_ARM_ENDPOINT", "http://127.0.0.1:80"),
                ("JIT_AUTHORITY_HOST", "https://127.0.0.1"),
            ]),
            ConfigFile::default(),
            None,
        )
        .expect_err("http refused");
        assert!(error.to_string().contains("https://"), "{error}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_json() {
        let settings = resolve(&[], &[("AZURE_CLIENT_SECRET", "hunter2-secret")], "");
        assert!(!format!("{settings:?}").contains("hunter2"));
        let json = serde_json::to_string(&settings).expect("serializes");
        assert!(!json.contains("hunter2"), "{json}");
    }

    #[test]
    fn durations_accept_friendly_and_iso_forms() {
        assert_eq!(
            parse_duration("30m", "x").expect("ok"),
            SignedDuration::from_mins(30)
        );
        assert_eq!(
            parse_duration("PT0.5H", "x").expect("ok"),
            SignedDuration::from_mins(30)
        );
        assert_eq!(
            parse_duration("1h30m", "x").expect("ok"),
            SignedDuration::from_mins(90)
        );
        assert!(parse_duration("soon", "x").is_err());
        assert!(parse_duration("0m", "x").is_err());
        assert_eq!(format_duration(SignedDuration::from_mins(90)), "1h30m");
        assert_eq!(format_duration(SignedDuration::from_secs(0)), "0s");
    }

    #[test]
    fn my_ip_urls_come_from_the_environment_as_a_list_and_must_be_https() {
        let settings = resolve(
            &[],
            &[(
                "JIT_MY_IP_URLS",
                "https://a.example/ip, https://b.example/ip",
            )],
            "",
        );
        assert_eq!(
            settings.access.my_ip_urls,
            ["https://a.example/ip", "https://b.example/ip"]
        );
        assert!(
            GlobalSettings::from_parts(
                &global(&[]),
                &Environment::from_pairs([("JIT_MY_IP_URLS", "http://insecure.example")]),
                ConfigFile::default(),
                None,
            )
            .is_err()
        );
    }

    #[test]
    fn enable_defaults_are_the_portals_unless_configured_and_must_be_in_range() {
        let defaults = resolve(&[], &[], "");
        assert_eq!(defaults.enable.allowed_sources, ["*"]);
        assert_eq!(defaults.enable.max_duration, SignedDuration::from_hours(3));
        let configured = resolve(
            &[],
            &[],
            "[enable]\nallowed_sources = [\"10.0.0.0/8\"]\nmax_duration = \"PT1H\"\n",
        );
        assert_eq!(configured.enable.allowed_sources, ["10.0.0.0/8"]);
        assert_eq!(
            configured.enable.max_duration,
            SignedDuration::from_hours(1)
        );
        let too_long = GlobalSettings::from_parts(
            &global(&[]),
            &Environment::default(),
            ConfigFile::parse("[enable]\nmax_duration = \"2d\"\n").expect("valid TOML"),
            None,
        );
        assert!(too_long.is_err());
    }

    #[test]
    fn vm_sections_match_by_id_group_and_name_ignoring_case() {
        let settings = resolve(&[], &[], "[vms.WEB-01]\nuser = \"ops\"\n");
        let section = settings
            .vm_section("/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-01", "rg", "web-01")
            .expect("found");
        assert_eq!(section.user.as_deref(), Some("ops"));
    }
}
