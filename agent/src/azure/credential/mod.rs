//! Signing in to Azure: which credential, built how, cached where.
//!
//! People reach Azure four ways: signed in with `az login` on a workstation, as a service
//! principal in CI, with a managed identity on an Azure VM or App Service, or with a
//! federated token in Kubernetes. [`CredentialKind`] names them; `Auto` picks the first
//! that is configured, in this order:
//!
//! 1. service principal when tenant, client id and client secret are all given;
//! 2. workload identity when a federated token file is given (with tenant and client id);
//! 3. service principal with the secret from the OS keychain, when tenant and client id
//!    are given and the keychain holds a secret for that client id;
//! 4. managed identity when an App Service style endpoint is present
//!    (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`);
//! 5. the Azure CLI; if `az` is missing or not signed in, managed identity through IMDS
//!    when 169.254.169.254 accepts a connection (an Azure VM), else the CLI's error.
//!
//! The library never reads environment variables for these choices: the caller (the
//! CLI's settings layer) passes the values in [`CredentialOptions`]. The exception is
//! inside azure_identity itself: its managed-identity credential reads `IDENTITY_ENDPOINT`
//! and `IDENTITY_HEADER` from the process environment, so
//! [`CredentialOptions::app_service_identity`] must mirror that same environment.
//!
//! Every credential gets the shared [`HttpTransport`] (so `JIT_CA_FILE` applies to token
//! requests) and the cloud's authority host, and is wrapped in a [`TokenCache`]. The
//! Azure CLI runs with a time limit ([`CredentialOptions::az_timeout`]); a hung `az` is
//! killed with everything it started.

mod az_process;
mod cache;
mod error;
mod keychain;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

pub use az_process::DEFAULT_AZ_TIMEOUT;
/// A secret string whose `Debug` prints nothing (azure_core's type, re-exported so
/// callers need no azure_core dependency for it).
pub use azure_core::credentials::Secret;
pub use cache::{CredentialFactory, ForceRefresh, REFRESH_MARGIN, TokenCache};
pub use error::{CredentialError, CredentialSource};
pub use keychain::{KEYCHAIN_SERVICE, Keychain, KeychainError, install_platform_store};

use super::cloud::AzureCloud;
use super::transport::HttpTransport;

/// How to sign in (`--auth`, `auth` in the config file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CredentialKind {
    /// Pick the first configured method (see the module documentation).
    #[default]
    Auto,
    /// `az account get-access-token`.
    AzureCli,
    /// Client id + secret (environment or OS keychain).
    ServicePrincipal,
    /// Managed identity (App Service endpoint or IMDS).
    ManagedIdentity,
    /// Federated token file (AKS workload identity).
    WorkloadIdentity,
}

impl CredentialKind {
    /// Every kind with its canonical name, for help texts and completion.
    pub const ALL: [CredentialKind; 5] = [
        CredentialKind::Auto,
        CredentialKind::AzureCli,
        CredentialKind::ServicePrincipal,
        CredentialKind::ManagedIdentity,
        CredentialKind::WorkloadIdentity,
    ];

    /// The canonical name (`auto`, `cli`, `service-principal`, `managed-identity`,
    /// `workload-identity`).
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Auto => "auto",
            CredentialKind::AzureCli => "cli",
            CredentialKind::ServicePrincipal => "service-principal",
            CredentialKind::ManagedIdentity => "managed-identity",
            CredentialKind::WorkloadIdentity => "workload-identity",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// An unknown `--auth` value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown sign-in method '{0}': use auto, cli, service-principal, managed-identity or workload-identity"
)]
pub struct UnknownCredentialKind(pub String);

impl FromStr for CredentialKind {
    type Err = UnknownCredentialKind;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "auto" | "default" => Ok(CredentialKind::Auto),
            "cli" | "az" | "azure-cli" | "azurecli" => Ok(CredentialKind::AzureCli),
            "service-principal" | "sp" | "client-secret" => Ok(CredentialKind::ServicePrincipal),
            "managed-identity" | "msi" | "mi" => Ok(CredentialKind::ManagedIdentity),
            "workload-identity" | "workload" => Ok(CredentialKind::WorkloadIdentity),
            _ => Err(UnknownCredentialKind(value.trim().to_owned())),
        }
    }
}

/// Everything a credential may need, as resolved by the caller's settings layer
/// (`--tenant`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`,
/// `AZURE_FEDERATED_TOKEN_FILE`, the config file).
#[derive(Clone)]
pub struct CredentialOptions {
    /// Which method; `Auto` chooses (see the module documentation).
    pub kind: CredentialKind,
    /// Tenant (directory) id or domain. For the Azure CLI it selects the tenant of the
    /// signed-in account (`az … --tenant`).
    pub tenant_id: Option<String>,
    /// Client (application) id of a service principal, workload identity, or a
    /// user-assigned managed identity.
    pub client_id: Option<String>,
    /// Client secret (for example from `AZURE_CLIENT_SECRET`).
    pub client_secret: Option<Secret>,
    /// Where to look for a client secret that was not given; `None` never consults a
    /// keychain.
    pub keychain: Option<Keychain>,
    /// Path of the federated token file (workload identity).
    pub federated_token_file: Option<PathBuf>,
    /// `true` when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set in this process's
    /// environment (azure_identity reads them itself; this flag only steers `Auto`).
    pub app_service_identity: bool,
    /// Whether `Auto` may fall back to IMDS after the Azure CLI failed (default `true`).
    pub probe_imds: bool,
    /// How long one `az account get-access-token` may run before it is killed (default
    /// [`DEFAULT_AZ_TIMEOUT`]).
    pub az_timeout: Duration,
}

impl Default for CredentialOptions {
    fn default() -> Self {
        Self {
            kind: CredentialKind::Auto,
            tenant_id: None,
            client_id: None,
            client_secret: None,
            keychain: None,
            federated_token_file: None,
            app_service_identity: false,
            probe_imds: true,
            az_timeout: DEFAULT_AZ_TIMEOUT,
        }
    }
}

impl fmt::Debug for CredentialOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CredentialOptions")
            .field("kind", &self.kind)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("keychain", &self.keychain)
            .field("federated_token_file", &self.federated_token_file)
            .field("app_service_identity", &self.app_service_identity)
            .field("probe_imds", &self.probe_imds)
            .field("az_timeout", &self.az_timeout)
            .finish()
    }
}

/// What `Auto` (or an explicit kind) resolved to, before anything is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialPlan {
    /// Azure CLI, optionally falling back to IMDS.
    AzureCli {
        /// Try IMDS when `az` fails.
        imds_fallback: bool,
    },
    /// Service principal with a secret from the options.
    ServicePrincipal,
    /// Service principal with the secret looked up in the keychain.
    ServicePrincipalFromKeychain,
    /// Workload identity.
    WorkloadIdentity,
    /// Managed identity (azure_identity picks App Service or IMDS).
    ManagedIdentity,
}

impl CredentialOptions {
    /// Decides which credential to build. Pure except for one keychain lookup when
    /// `Auto` has a tenant and client id but no secret and no token file.
    pub fn plan(&self) -> Result<CredentialPlan, CredentialError> {
        let has = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
        let has_secret = self
            .client_secret
            .as_ref()
            .is_some_and(|secret| !secret.secret().is_empty());
        match self.kind {
            CredentialKind::AzureCli => Ok(CredentialPlan::AzureCli {
                imds_fallback: false,
            }),
            CredentialKind::ManagedIdentity => Ok(CredentialPlan::ManagedIdentity),
            CredentialKind::WorkloadIdentity => Ok(CredentialPlan::WorkloadIdentity),
            CredentialKind::ServicePrincipal if has_secret => Ok(CredentialPlan::ServicePrincipal),
            CredentialKind::ServicePrincipal => Ok(CredentialPlan::ServicePrincipalFromKeychain),
            CredentialKind::Auto => {
                let identity_given = has(&self.tenant_id) && has(&self.client_id);
                if identity_given && has_secret {
                    return Ok(CredentialPlan::ServicePrincipal);
                }
                if identity_given && self.federated_token_file.is_some() {
                    return Ok(CredentialPlan::WorkloadIdentity);
                }
                if identity_given && self.keychain_holds_secret()? {
                    return Ok(CredentialPlan::ServicePrincipalFromKeychain);
                }
                if self.app_service_identity {
                    return Ok(CredentialPlan::ManagedIdentity);
                }
                Ok(CredentialPlan::AzureCli {
                    imds_fallback: self.probe_imds,
                })
            }
        }
    }

    fn keychain_holds_secret(&self) -> Result<bool, CredentialError> {
        let (Some(keychain), Some(client_id)) = (&self.keychain, &self.client_id) else {
            return Ok(false);
        };
        match keychain.client_secret(client_id) {
            Ok(secret) => Ok(secret.is_some()),
            // An unusable keychain means "nothing stored" for automatic selection.
            Err(KeychainError::Unavailable { detail }) => {
                tracing::debug!(%detail, "keychain unavailable while choosing a credential");
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Builds the credential the options describe, for `cloud`, using `transport` for every
/// token request, wrapped in a [`TokenCache`].
///
/// May block briefly on the OS keychain (run it from `spawn_blocking`, or accept the
/// short block at start-up).
pub fn build_credential(
    cloud: &AzureCloud,
    transport: &HttpTransport,
    options: &CredentialOptions,
) -> Result<Arc<TokenCache>, CredentialError> {
    let plan = options.plan()?;
    tracing::debug!(?plan, "building the Azure credential");
    let builder = CredentialBuilder {
        cloud: cloud.clone(),
        transport: transport.clone(),
        options: options.clone(),
    };
    let cache = match plan {
        CredentialPlan::AzureCli { imds_fallback } => {
            let cli = builder.azure_cli()?;
            let source: Arc<dyn TokenCredential> = if imds_fallback {
                Arc::new(CliThenImds {
                    cli,
                    imds: tokio::sync::OnceCell::new(),
                    builder: builder.clone(),
                })
            } else {
                cli
            };
            TokenCache::with_kind(CredentialSource::AzureCli, source, None)
        }
        CredentialPlan::ServicePrincipal | CredentialPlan::ServicePrincipalFromKeychain => {
            let secret = builder.client_secret()?;
            let factory = builder.factory(move |builder| builder.service_principal(&secret));
            TokenCache::with_kind(
                CredentialSource::ServicePrincipal,
                factory()?,
                Some(factory),
            )
        }
        CredentialPlan::WorkloadIdentity => {
            let factory = builder.factory(|builder| builder.workload_identity());
            TokenCache::with_kind(
                CredentialSource::WorkloadIdentity,
                factory()?,
                Some(factory),
            )
        }
        CredentialPlan::ManagedIdentity => {
            let direct = !options.app_service_identity;
            let factory = builder.factory(move |builder| builder.managed_identity(direct));
            TokenCache::with_kind(CredentialSource::ManagedIdentity, factory()?, Some(factory))
        }
    };
    Ok(Arc::new(cache))
}

/// Holds what every credential constructor needs, so a forced refresh can rebuild one.
#[derive(Clone, Debug)]
struct CredentialBuilder {
    cloud: AzureCloud,
    transport: HttpTransport,
    options: CredentialOptions,
}

impl CredentialBuilder {
    fn factory<F>(&self, build: F) -> CredentialFactory
    where
        F: Fn(&CredentialBuilder) -> Result<Arc<dyn TokenCredential>, CredentialError>
            + Send
            + Sync
            + 'static,
    {
        let builder = self.clone();
        Arc::new(move || build(&builder))
    }

    /// Options for azure_identity credentials: our transport, our cloud, and a retry
    /// budget that suits an interactive tool.
    fn client_options(&self, transport: &HttpTransport) -> ClientOptions {
        ClientOptions {
            transport: Some(transport.azure_transport()),
            cloud: Some(self.cloud.to_cloud_configuration()),
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                max_retries: 3,
                max_total_elapsed: azure_core::time::Duration::seconds(20),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn azure_cli(&self) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        let options = AzureCliCredentialOptions {
            tenant_id: non_empty(&self.options.tenant_id),
            executor: Some(Arc::new(az_process::TimedExecutor::new(
                self.options.az_timeout,
            ))),
            ..Default::default()
        };
        AzureCliCredential::new(Some(options))
            .map(|credential| credential as Arc<dyn TokenCredential>)
            .map_err(|error| invalid_setting("tenant id", &error))
    }

    fn client_secret(&self) -> Result<Secret, CredentialError> {
        let mut missing = Vec::new();
        if non_empty(&self.options.tenant_id).is_none() {
            missing.push("AZURE_TENANT_ID");
        }
        let Some(client_id) = non_empty(&self.options.client_id) else {
            missing.push("AZURE_CLIENT_ID");
            return Err(CredentialError::MissingServicePrincipalSettings { missing });
        };
        if !missing.is_empty() {
            return Err(CredentialError::MissingServicePrincipalSettings { missing });
        }
        if let Some(secret) = self
            .options
            .client_secret
            .as_ref()
            .filter(|secret| !secret.secret().is_empty())
        {
            return Ok(secret.clone());
        }
        let stored = match &self.options.keychain {
            Some(keychain) => keychain.client_secret(&client_id)?,
            None => None,
        };
        stored.ok_or(CredentialError::MissingClientSecret { client_id })
    }

    fn service_principal(
        &self,
        secret: &Secret,
    ) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        let tenant_id = non_empty(&self.options.tenant_id).unwrap_or_default();
        let client_id = non_empty(&self.options.client_id).unwrap_or_default();
        let options = ClientSecretCredentialOptions {
            client_options: self.client_options(&self.transport),
        };
        ClientSecretCredential::new(&tenant_id, client_id, secret.clone(), Some(options))
            .map(|credential| credential as Arc<dyn TokenCredential>)
            .map_err(|error| invalid_setting("service principal settings", &error))
    }

    fn workload_identity(&self) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        let mut missing = Vec::new();
        let tenant_id = non_empty(&self.options.tenant_id);
        let client_id = non_empty(&self.options.client_id);
        if tenant_id.is_none() {
            missing.push("AZURE_TENANT_ID");
        }
        if client_id.is_none() {
            missing.push("AZURE_CLIENT_ID");
        }
        if self.options.federated_token_file.is_none() {
            missing.push("AZURE_FEDERATED_TOKEN_FILE");
        }
        if !missing.is_empty() {
            return Err(CredentialError::MissingWorkloadIdentitySettings { missing });
        }
        let options = WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: self.client_options(&self.transport),
            },
            client_id,
            tenant_id,
            token_file_path: self.options.federated_token_file.clone(),
        };
        WorkloadIdentityCredential::new(Some(options))
            .map(|credential| credential as Arc<dyn TokenCredential>)
            .map_err(|error| {
                CredentialError::from_azure(CredentialSource::WorkloadIdentity, &error)
            })
    }

    /// `direct`: IMDS is link-local plain HTTP and must never go through a proxy.
    fn managed_identity(&self, direct: bool) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        let transport = if direct {
            self.transport.without_proxy().map_err(|error| {
                CredentialError::ManagedIdentityUnavailable {
                    detail: error.to_string(),
                }
            })?
        } else {
            self.transport.clone()
        };
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: non_empty(&self.options.client_id).map(UserAssignedId::ClientId),
            client_options: self.client_options(&transport),
        };
        ManagedIdentityCredential::new(Some(options))
            .map(|credential| credential as Arc<dyn TokenCredential>)
            .map_err(|error| CredentialError::from_azure(CredentialSource::ManagedIdentity, &error))
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}

fn invalid_setting(setting: &'static str, error: &azure_core::Error) -> CredentialError {
    CredentialError::InvalidSetting {
        setting,
        detail: error.to_string(),
    }
}

/// Where IMDS listens on every Azure VM.
const IMDS_ADDRESS: ([u8; 4], u16) = ([169, 254, 169, 254], 80);
/// How long a connection attempt to IMDS may take before we conclude this is no Azure VM.
const IMDS_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The Azure CLI, and IMDS when the CLI fails on a machine where IMDS answers.
struct CliThenImds {
    cli: Arc<dyn TokenCredential>,
    imds: tokio::sync::OnceCell<Option<Arc<dyn TokenCredential>>>,
    builder: CredentialBuilder,
}

impl fmt::Debug for CliThenImds {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CliThenImds")
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for CliThenImds {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some(Some(imds)) = self.imds.get() {
            return imds.get_token(scopes, options).await.map_err(|error| {
                CredentialError::from_azure(CredentialSource::ManagedIdentity, &error).into_azure()
            });
        }
        let cli_error = match self.cli.get_token(scopes, options.clone()).await {
            Ok(token) => return Ok(token),
            Err(error) => CredentialError::from_azure(CredentialSource::AzureCli, &error),
        };
        // A hung `az` (timed out) is a broken CLI, not a missing one: no fallback.
        if !matches!(
            cli_error,
            CredentialError::AzureCliNotFound | CredentialError::AzureCliNotSignedIn { .. }
        ) {
            return Err(cli_error.into_azure());
        }
        let imds = self
            .imds
            .get_or_init(|| async {
                if !imds_reachable().await {
                    return None;
                }
                tracing::debug!(
                    "the Azure CLI is unavailable and IMDS answers: trying the managed identity"
                );
                self.builder.managed_identity(true).ok()
            })
            .await;
        let Some(imds) = imds else {
            return Err(cli_error.into_azure());
        };
        imds.get_token(scopes, options).await.map_err(|error| {
            let imds_error = CredentialError::from_azure(CredentialSource::ManagedIdentity, &error);
            CredentialError::NoneAvailable {
                attempts: vec![
                    format!("Azure CLI: {cli_error}"),
                    format!("managed identity (IMDS): {imds_error}"),
                ],
            }
            .into_azure()
        })
    }
}

async fn imds_reachable() -> bool {
    let address = std::net::SocketAddr::from(IMDS_ADDRESS);
    matches!(
        tokio::time::timeout(IMDS_PROBE_TIMEOUT, tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}
