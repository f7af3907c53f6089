//! The configuration file, exactly as written on disk.
//!
//! The file is TOML, found at `JIT_CONFIG`, `--config`, or `jit/config.toml` in the
//! user's config directory. Unknown keys are errors rather than silently ignored, so a
//! typo (`clod = ...`) is caught at once instead of quietly doing the wrong thing. Values
//! stay as written here; `settings.rs` validates and combines them with flags and the
//! environment. Secrets never live in this file: a service principal's secret goes to the
//! OS keychain (`jit auth set-secret`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration file. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ConfigFile {
    /// `AzureCloud`, `AzureUSGovernment`, `AzureChinaCloud`.
    pub cloud: Option<String>,
    /// ARM endpoint of a custom cloud.
    pub arm_endpoint: Option<String>,
    /// Entra ID authority host of a custom cloud.
    pub authority_host: Option<String>,
    /// Token audience of a custom cloud (default: the ARM endpoint).
    pub arm_audience: Option<String>,
    /// PEM files of extra trusted CA certificates.
    pub ca_files: Option<Vec<PathBuf>>,
    /// `auto`, `cli`, `service-principal`, `managed-identity`, `workload-identity`.
    pub auth: Option<String>,
    /// Tenant to sign in to.
    pub tenant: Option<String>,
    /// Client id of a service principal or user-assigned managed identity.
    pub client_id: Option<String>,
    /// How long one `az account get-access-token` may run (default `30s`).
    pub az_timeout: Option<String>,
    /// Subscriptions (ids or names) searched by default.
    pub subscriptions: Option<Vec<String>>,
    /// `table` or `json`.
    pub output: Option<String>,
    /// "What is my IP" services (HTTPS URLs answering with the address as text or JSON).
    pub my_ip_urls: Option<Vec<String>>,
    /// Justification sent with every request unless `--justification` is given.
    pub justification: Option<String>,
    /// Default request duration (default: the policy's maximum).
    pub duration: Option<String>,
    /// How long to wait for a port to answer.
    pub wait_timeout: Option<String>,
    /// Longest total time spent retrying one throttled or failing Azure call.
    pub max_retry_wait: Option<String>,
    /// SSH client.
    pub ssh: Option<SshSection>,
    /// RDP client.
    pub rdp: Option<RdpSection>,
    /// Background agent.
    pub agent: Option<AgentSection>,
    /// What `jit enable` and `jit connect --enable` write when not told otherwise.
    pub enable: Option<EnableSection>,
    /// Per-VM settings, keyed by VM name, `resource-group/name` or resource id.
    pub vms: Option<BTreeMap<String, VmSection>>,
}

/// `[ssh]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct SshSection {
    /// The OpenSSH client to run (default: `ssh` from `PATH`).
    pub program: Option<PathBuf>,
    /// Arguments added before the user's own.
    pub args: Option<Vec<String>>,
}

/// `[rdp]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RdpSection {
    /// The RDP client to run instead of the platform's default.
    pub program: Option<PathBuf>,
    /// Arguments added to the client's own.
    pub args: Option<Vec<String>>,
}

/// `[agent]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct AgentSection {
    /// Start the agent on demand (default true).
    pub autostart: Option<bool>,
    /// How long before the end of a window to warn (default `5m`).
    pub notify_before: Option<String>,
    /// How often the agent re-reads open windows from Azure (default `60s`).
    pub refresh_interval: Option<String>,
    /// Desktop notifications (default true).
    pub notifications: Option<bool>,
    /// The agent's tray icon while windows are open (default true).
    pub tray: Option<bool>,
}

/// `[enable]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct EnableSection {
    /// Sources requests may open ports for (default `["*"]`).
    pub allowed_sources: Option<Vec<String>>,
    /// The longest request allowed (default `3h`).
    pub max_duration: Option<String>,
}

/// `[vms."<name>"]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct VmSection {
    /// User to sign in as.
    pub user: Option<String>,
    /// Port to use (as the JIT policy lists it).
    pub port: Option<u16>,
    /// Extra `ssh` arguments for this VM.
    pub ssh_args: Option<Vec<String>>,
    /// Source address to request for this VM.
    pub source: Option<String>,
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file exists but could not be read.
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration in {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl ConfigFile {
    /// Reads the file at `path`. A missing file is an empty configuration when
    /// `must_exist` is false (the default location), an error otherwise (a path the user
    /// named).
    pub fn load(path: &Path, must_exist: bool) -> Result<Self, ConfigFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(ConfigFileError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|message| ConfigFileError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses the TOML text; the error is one line a person can act on.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|error| {
            let message = error.message().trim().to_owned();
            match error.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {message}")
                }
                None => message,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let config = ConfigFile::parse(
            r#"
            cloud = "AzureUSGovernment"
            ca_files = ["/etc/ssl/corp.pem"]
            subscriptions = ["Production"]
            justification = "on call"
            [ssh]
            args = ["-A"]
            [agent]
            notify_before = "10m"
            [vms."rg-web/web-01"]
            user = "admin"
            port = 2222
            "#,
        )
        .expect("valid");
        assert_eq!(config.cloud.as_deref(), Some("AzureUSGovernment"));
        let vms = config.vms.expect("vms");
        assert_eq!(vms["rg-web/web-01"].port, Some(2222));
        assert_eq!(
            config
                .agent
                .and_then(|agent| agent.notify_before)
                .as_deref(),
            Some("10m")
        );
    }

    #[test]
    fn an_unknown_key_names_the_key_and_line() {
        let error = ConfigFile::parse("cloud = \"AzureCloud\"\nclod = \"x\"\n").expect_err("typo");
        assert!(error.starts_with("line 2:"), "{error}");
        assert!(error.contains("clod"), "{error}");
    }

    #[test]
    fn a_missing_default_file_is_empty_but_a_named_one_is_an_error() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("config.toml");
        assert_eq!(
            ConfigFile::load(&path, false).expect("empty"),
            ConfigFile::default()
        );
        assert!(matches!(
            ConfigFile::load(&path, true),
            Err(ConfigFileError::Read { .. })
        ));
    }
}
