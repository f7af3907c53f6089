//! What a command needs to work with Azure: a signed-in connection (with warm tokens
//! from the agent when one runs), the terminal as the access flow's front end, and the
//! flow's options taken from the settings.
//!
//! Commands build one [`Session`] and ask it for an [`AccessFlow`]; they never sequence
//! the JIT workflow themselves.

use std::collections::BTreeMap;
use std::time::Duration;

use jit_agent::access::flow::{AccessFlow, EnableDefaults, FlowOptions, VmPreferences};
use jit_agent::access::ownership::ClientTag;

use crate::agent_support::agent_paths;
use crate::connection::AzureConnection;
use crate::interaction::Terminal;
use crate::printer::Printer;
use crate::settings::GlobalSettings;

/// How long "what is my IP" services get to answer.
const MY_IP_TIMEOUT: Duration = Duration::from_secs(5);

/// A command's connection to Azure and to the person at the terminal.
#[derive(Debug)]
pub struct Session {
    /// The signed-in connection.
    pub connection: AzureConnection,
    /// The front end.
    pub terminal: Terminal,
    options: FlowOptions,
}

impl Session {
    /// Signs in (lazily: no network until the first call) for a command that only reads.
    pub fn open(settings: &GlobalSettings, printer: &Printer) -> anyhow::Result<Self> {
        Self::build(settings, printer, None)
    }

    /// Signs in for a command that makes requests: they carry this user's tag (see
    /// `jit_agent::access::ownership`), created once in the state directory.
    pub fn open_for_requests(settings: &GlobalSettings, printer: &Printer) -> anyhow::Result<Self> {
        let tag = agent_paths(settings)
            .and_then(|paths| ClientTag::load_or_create(paths.state_dir()))
            .map_err(|error| {
                tracing::warn!(%error, "no client tag: requests cannot be told apart as this user's");
            })
            .ok();
        Self::build(settings, printer, tag)
    }

    fn build(
        settings: &GlobalSettings,
        printer: &Printer,
        tag: Option<ClientTag>,
    ) -> anyhow::Result<Self> {
        let connection = crate::warm_token::connect(settings, printer)?;
        Ok(Self {
            connection,
            terminal: Terminal::new(printer.clone(), settings.access.assume_yes),
            options: flow_options(settings, tag),
        })
    }

    /// The access flow over this session.
    pub fn flow(&self) -> AccessFlow<'_, Terminal> {
        AccessFlow::new(
            &self.connection.arm,
            self.connection.transport.client().clone(),
            &self.terminal,
            self.options.clone(),
        )
    }
}

/// The access flow's options from the settings.
pub fn flow_options(settings: &GlobalSettings, tag: Option<ClientTag>) -> FlowOptions {
    FlowOptions {
        subscriptions: settings.azure.subscriptions.clone(),
        my_ip_urls: settings.access.my_ip_urls.clone(),
        my_ip_timeout: MY_IP_TIMEOUT,
        enable_defaults: EnableDefaults {
            allowed_sources: settings.enable.allowed_sources.clone(),
            max_duration: settings.enable.max_duration,
        },
        tag,
        preferences: settings
            .vms
            .iter()
            .map(|(key, section)| {
                (
                    key.clone(),
                    VmPreferences {
                        port: section.port,
                        source: section.source.clone(),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
    }
}
