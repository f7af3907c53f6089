//! Sign-in failures, phrased so a person knows what to do next.
//!
//! azure_identity reports every failure as an `azure_core::Error` whose text mixes the
//! tool's stderr, Entra ID's `AADSTS…` description and a troubleshooting link. `jit`
//! needs to branch on the cause (the CLI maps it to an exit code and a hint), so the
//! text is classified once, here, into [`CredentialError`].

use std::fmt;
use std::time::Duration;

use azure_core::error::ErrorKind;

use super::keychain::KeychainError;

/// Which sign-in method produced a token or an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `az account get-access-token`.
    AzureCli,
    /// Client id + secret against the Entra ID token endpoint.
    ServicePrincipal,
    /// App Service style (`IDENTITY_ENDPOINT`) or IMDS managed identity.
    ManagedIdentity,
    /// A federated token file exchanged for an Entra ID token.
    WorkloadIdentity,
    /// A token source supplied by the caller (for example the background agent).
    External,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            CredentialSource::AzureCli => "Azure CLI",
            CredentialSource::ServicePrincipal => "service principal",
            CredentialSource::ManagedIdentity => "managed identity",
            CredentialSource::WorkloadIdentity => "workload identity",
            CredentialSource::External => "external token source",
        })
    }
}

/// Why no token could be obtained. Every variant's message ends in an action.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// `az` is not installed or not on `PATH`.
    #[error("the Azure CLI (az) was not found on PATH")]
    AzureCliNotFound,
    /// `az` runs but nobody is signed in (or the session expired).
    #[error("the Azure CLI is not signed in: {detail}")]
    AzureCliNotSignedIn {
        /// What `az` said.
        detail: String,
    },
    /// `az` did not finish within the time limit and was stopped.
    #[error(
        "the Azure CLI (az account get-access-token) did not answer within {}; it was stopped",
        describe_limit(*limit)
    )]
    AzureCliTimedOut {
        /// The limit it exceeded.
        limit: Duration,
    },
    /// `az` failed for another reason.
    #[error("the Azure CLI could not get a token: {detail}")]
    AzureCli {
        /// What `az` said.
        detail: String,
    },
    /// A service principal was chosen but settings are missing.
    #[error("service principal sign-in needs {}", missing.join(", "))]
    MissingServicePrincipalSettings {
        /// The environment variable names (or settings) that are missing.
        missing: Vec<&'static str>,
    },
    /// The client id is known but no secret was given and the keychain holds none.
    #[error("no client secret for service principal {client_id}")]
    MissingClientSecret {
        /// The service principal's client (application) id.
        client_id: String,
    },
    /// Workload identity was chosen but settings are missing.
    #[error("workload identity sign-in needs {}", missing.join(", "))]
    MissingWorkloadIdentitySettings {
        /// The environment variable names (or settings) that are missing.
        missing: Vec<&'static str>,
    },
    /// Entra ID refused the service principal or the federated token.
    #[error("Entra ID refused the {source_kind} sign-in: {detail}")]
    Rejected {
        /// Which credential.
        source_kind: CredentialSource,
        /// Entra ID's description (`AADSTS…`).
        detail: String,
    },
    /// No managed identity endpoint answered.
    #[error("no managed identity is available: {detail}")]
    ManagedIdentityUnavailable {
        /// What azure_identity reported.
        detail: String,
    },
    /// The token endpoint could not be reached (network, proxy, TLS).
    #[error("cannot reach the {source_kind} token endpoint: {detail}")]
    Unreachable {
        /// Which credential.
        source_kind: CredentialSource,
        /// The transport error.
        detail: String,
    },
    /// A setting has a value azure_identity refuses (for example a malformed tenant id).
    #[error("invalid {setting}: {detail}")]
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// Why.
        detail: String,
    },
    /// The OS keychain failed.
    #[error(transparent)]
    Keychain(#[from] KeychainError),
    /// Automatic selection found nothing that works.
    #[error("no Azure sign-in is available ({})", attempts.join("; "))]
    NoneAvailable {
        /// What was tried and why each failed.
        attempts: Vec<String>,
    },
    /// Any other failure of a credential.
    #[error("{source_kind} sign-in failed: {detail}")]
    Other {
        /// Which credential.
        source_kind: CredentialSource,
        /// What happened.
        detail: String,
    },
}

impl CredentialError {
    /// One line telling the person what to do about it.
    pub fn hint(&self) -> String {
        match self {
            CredentialError::AzureCliNotFound => {
                "install the Azure CLI and run `az login`, or choose another sign-in with --auth (service-principal, managed-identity, workload-identity)".to_owned()
            }
            CredentialError::AzureCliNotSignedIn { .. } => {
                "run `az login` (add `--tenant <id>` for another tenant), then try again".to_owned()
            }
            CredentialError::AzureCliTimedOut { .. } => {
                "run `az account get-access-token` in this shell to see where it hangs (often a proxy or a locked token cache); raise the limit with JIT_AZ_TIMEOUT or az_timeout in the config file".to_owned()
            }
            CredentialError::AzureCli { .. } => {
                "check `az account get-access-token` works in this shell; `az login` refreshes an expired session".to_owned()
            }
            CredentialError::MissingServicePrincipalSettings { missing } => format!(
                "set {} (environment or config), or use --auth cli",
                missing.join(" and ")
            ),
            CredentialError::MissingClientSecret { client_id } => format!(
                "set AZURE_CLIENT_SECRET, or store the secret in the OS keychain with `jit auth set-secret --client-id {client_id}`"
            ),
            CredentialError::MissingWorkloadIdentitySettings { missing } => {
                format!("set {} (they are injected by AKS workload identity)", missing.join(" and "))
            }
            CredentialError::Rejected { source_kind: CredentialSource::ServicePrincipal, .. } => {
                "check the tenant, client id and secret; an expired secret must be renewed in Entra ID (then `jit auth set-secret`)".to_owned()
            }
            CredentialError::Rejected { .. } => {
                "check the federated credential of the app registration matches this workload's service account".to_owned()
            }
            CredentialError::ManagedIdentityUnavailable { .. } => {
                "managed identity works only on Azure resources with an identity assigned; elsewhere use --auth cli or service-principal".to_owned()
            }
            CredentialError::Unreachable { .. } => {
                "check the network and proxy settings (HTTPS_PROXY), and JIT_CA_FILE if a proxy inspects TLS".to_owned()
            }
            CredentialError::InvalidSetting { setting, .. } => format!("correct the {setting}"),
            CredentialError::Keychain(error) => error.hint(),
            CredentialError::NoneAvailable { .. } => {
                "run `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal".to_owned()
            }
            CredentialError::Other { .. } => {
                "run with -v for details, or choose another sign-in with --auth".to_owned()
            }
        }
    }

    /// Classifies an azure_identity error for the credential that raised it.
    pub fn from_azure(source_kind: CredentialSource, error: &azure_core::Error) -> Self {
        if let Some(ours) = ours_within(error) {
            return ours;
        }
        let detail = describe(error);
        let lowered = detail.to_ascii_lowercase();
        match source_kind {
            CredentialSource::AzureCli => {
                if lowered.contains("not found on path") || lowered.contains("wasn't found on path")
                {
                    CredentialError::AzureCliNotFound
                } else if lowered.contains("az login")
                    || lowered.contains("interactive authentication is needed")
                {
                    CredentialError::AzureCliNotSignedIn { detail }
                } else {
                    CredentialError::AzureCli { detail }
                }
            }
            CredentialSource::ManagedIdentity if has_kind(error, is_transport) => {
                CredentialError::ManagedIdentityUnavailable { detail }
            }
            _ if has_kind(error, is_transport) => CredentialError::Unreachable {
                source_kind,
                detail,
            },
            CredentialSource::ServicePrincipal | CredentialSource::WorkloadIdentity
                if has_kind(error, |kind| matches!(kind, ErrorKind::HttpResponse { .. }))
                    || entra_description(&detail).is_some() =>
            {
                CredentialError::Rejected {
                    source_kind,
                    detail: entra_description(&detail).unwrap_or(detail),
                }
            }
            CredentialSource::ManagedIdentity => {
                CredentialError::ManagedIdentityUnavailable { detail }
            }
            _ => CredentialError::Other {
                source_kind,
                detail,
            },
        }
    }

    /// Wraps this error in an `azure_core::Error` (kind `Credential`), for the
    /// `TokenCredential` trait; [`CredentialError::from_azure`] recovers it.
    pub fn into_azure(self) -> azure_core::Error {
        let message = self.to_string();
        azure_core::Error::with_error(ErrorKind::Credential, self, message)
    }
}

/// A [`CredentialError`] of ours anywhere in the chain: wrapped by [`into_azure`]
/// directly, or inside the `io::Error` our `az` executor returned, which azure_identity
/// wraps twice.
///
/// [`into_azure`]: CredentialError::into_azure
fn ours_within(error: &azure_core::Error) -> Option<CredentialError> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(candidate) = current {
        let inner = if let Some(azure) = candidate.downcast_ref::<azure_core::Error>() {
            azure.get_ref()
        } else if let Some(io) = candidate.downcast_ref::<std::io::Error>() {
            io.get_ref()
        } else {
            None
        };
        if let Some(ours) = inner.and_then(|inner| inner.downcast_ref::<CredentialError>()) {
            return Some(ours.clone());
        }
        current = candidate.source();
    }
    None
}

/// `30 s`, or `500 ms` below a second.
fn describe_limit(limit: Duration) -> String {
    if limit.subsec_millis() == 0 && limit.as_secs() > 0 {
        format!("{} s", limit.as_secs())
    } else {
        format!("{} ms", limit.as_millis())
    }
}

fn is_transport(kind: &ErrorKind) -> bool {
    matches!(kind, ErrorKind::Io | ErrorKind::Connection)
}

/// `true` when `error` or any azure_core error it wraps (azure_identity wraps the HTTP
/// error in a `Credential` one) has a kind matching `test`.
fn has_kind(error: &azure_core::Error, test: impl Fn(&ErrorKind) -> bool) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(candidate) = current {
        if let Some(azure) = candidate.downcast_ref::<azure_core::Error>()
            && test(azure.kind())
        {
            return true;
        }
        current = candidate.source();
    }
    false
}

/// The error's message followed by its root cause ("retry policy expired …: invalid peer
/// certificate: UnknownIssuer"); azure_core's context messages hide the cause otherwise.
fn describe(error: &azure_core::Error) -> String {
    let outer = clean_detail(&error.to_string());
    let mut root: Option<&(dyn std::error::Error + 'static)> = None;
    let mut current = std::error::Error::source(error);
    while let Some(cause) = current {
        root = Some(cause);
        current = cause.source();
    }
    match root.map(|cause| clean_detail(&cause.to_string())) {
        Some(cause) if !cause.trim().is_empty() && !outer.contains(cause.trim()) => {
            format!("{outer}: {cause}")
        }
        _ => outer,
    }
}

/// Entra ID's own description (`AADSTS7000215: Invalid client secret provided…`) inside
/// an error text, up to its first line break. azure_identity 1.0 fails to parse Entra's
/// error body when the description holds escapes (it always ends in `\r\nTrace ID: …`)
/// and reports a JSON error quoting the body instead; the description is still in there.
fn entra_description(text: &str) -> Option<String> {
    let start = text.find("AADSTS")?;
    let rest = &text[start..];
    let end = ["\\r\\n", "\\n", "\r", "\n", "\""]
        .iter()
        .filter_map(|stop| rest.find(stop))
        .min()
        .unwrap_or(rest.len());
    Some(rest[..end].trim().to_owned())
}

/// Drops azure_identity's boilerplate (credential name prefix, troubleshooting link) and
/// folds the text to one line.
fn clean_detail(text: &str) -> String {
    let without_link = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("To troubleshoot, visit"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut detail = without_link.as_str();
    for prefix in [
        "AzureCliCredential authentication failed.",
        "ClientSecretCredential authentication failed.",
        "ManagedIdentityCredential authentication failed.",
        "WorkloadIdentityCredential authentication failed.",
        "ClientAssertionCredential authentication failed.",
    ] {
        if let Some(rest) = detail.strip_prefix(prefix) {
            detail = rest.trim_start();
        }
    }
    detail.strip_prefix("ERROR: ").unwrap_or(detail).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn az_not_signed_in_is_recognised() {
        let error = azure_core::Error::with_message(
            ErrorKind::Credential,
            "AzureCliCredential authentication failed. ERROR: Please run 'az login' to setup account.\nTo troubleshoot, visit https://aka.ms/azsdk/rust/identity/troubleshoot#azure-cli",
        );
        let classified = CredentialError::from_azure(CredentialSource::AzureCli, &error);
        assert!(
            matches!(&classified, CredentialError::AzureCliNotSignedIn { detail } if detail == "Please run 'az login' to setup account."),
            "{classified:?}"
        );
        assert!(classified.hint().contains("az login"));
    }

    #[test]
    fn az_missing_is_recognised() {
        let error = azure_core::Error::with_message(
            ErrorKind::Credential,
            "AzureCliCredential authentication failed. az not found on PATH",
        );
        assert!(matches!(
            CredentialError::from_azure(CredentialSource::AzureCli, &error),
            CredentialError::AzureCliNotFound
        ));
    }

    #[test]
    fn entra_refusals_are_found_even_when_azure_identity_cannot_parse_them() {
        let error = azure_core::Error::with_message(
            ErrorKind::DataConversion,
            r#"invalid type: string "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nTimestamp: 2026-11-28 16:22:10Z", expected a borrowed string at line 1 column 479"#,
        );
        let classified = CredentialError::from_azure(CredentialSource::ServicePrincipal, &error);
        assert_eq!(
            classified,
            CredentialError::Rejected {
                source_kind: CredentialSource::ServicePrincipal,
                detail: "AADSTS7000215: Invalid client secret provided.".to_owned(),
            }
        );
    }

    #[test]
    fn wrapped_errors_come_back_typed() {
        let wrapped = CredentialError::MissingClientSecret {
            client_id: "app".to_owned(),
        }
        .into_azure();
        assert!(matches!(
            CredentialError::from_azure(CredentialSource::External, &wrapped),
            CredentialError::MissingClientSecret { client_id } if client_id == "app"
        ));
    }

    #[test]
    fn an_az_timeout_comes_back_typed_through_azure_identity_wrapping() {
        // What azure_identity builds from our executor's error: shell_exec wraps the
        // io::Error, authentication_error wraps that again.
        let io_error = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            CredentialError::AzureCliTimedOut {
                limit: Duration::from_secs(30),
            },
        );
        let inner = azure_core::Error::with_error(
            ErrorKind::Credential,
            io_error,
            "timed out error: the Azure CLI did not answer",
        );
        let outer = azure_core::Error::with_error(
            ErrorKind::Credential,
            inner,
            "AzureCliCredential authentication failed. timed out error",
        );
        let classified = CredentialError::from_azure(CredentialSource::AzureCli, &outer);
        assert_eq!(
            classified,
            CredentialError::AzureCliTimedOut {
                limit: Duration::from_secs(30)
            }
        );
        assert!(
            classified.to_string().contains("within 30 s"),
            "{classified}"
        );
        assert!(classified.hint().contains("JIT_AZ_TIMEOUT"));
        assert_eq!(
            CredentialError::AzureCliTimedOut {
                limit: Duration::from_millis(1500)
            }
            .to_string(),
            "the Azure CLI (az account get-access-token) did not answer within 1500 ms; it was stopped"
        );
    }
}
