//! Turning [`AzureSettings`] into a signed-in ARM client.
//!
//! Every command that reaches Azure, and the agent, builds its client here, so the cloud,
//! the extra CA certificates, the sign-in method and the retry behaviour are the same
//! everywhere. Building is cheap and does no network I/O: the first token is fetched by
//! the first ARM call.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jit_agent::azure::arm::{ArmClient, ArmClientOptions, RetryEvent, RetryOptions};
use jit_agent::azure::cloud::AzureCloud;
use jit_agent::azure::credential::{
    CredentialKind, CredentialOptions, Keychain, TokenCache, build_credential,
    install_platform_store,
};
use jit_agent::azure::transport::{HttpTransport, TransportOptions};

use crate::error::CliError;
use crate::printer::Printer;
use crate::settings::{AuthMethod, AzureSettings, CloudSettings};

/// The token audience of the public cloud's ARM.
const PUBLIC_ARM_AUDIENCE: &str = "https://management.azure.com";

/// A signed-in connection to one Azure cloud.
#[derive(Debug, Clone)]
pub struct AzureConnection {
    /// The ARM client (shares the transport and token cache).
    pub arm: ArmClient,
    /// The HTTP client, also used for "what is my IP" lookups.
    pub transport: HttpTransport,
    /// The cloud.
    pub cloud: AzureCloud,
}

/// The cloud the settings name.
pub fn cloud(settings: &AzureSettings) -> Result<AzureCloud, CliError> {
    match &settings.cloud {
        CloudSettings::Named(name) => match name.as_str() {
            "AzureUSGovernment" => Ok(AzureCloud::UsGovernment),
            "AzureChinaCloud" => Ok(AzureCloud::China),
            _ => Ok(AzureCloud::Public),
        },
        CloudSettings::Custom {
            arm_endpoint,
            authority_host,
            audience,
        } => AzureCloud::custom(
            arm_endpoint,
            authority_host,
            // A custom endpoint is most often a way to the public cloud (a proxy, private
            // link, the emulator), whose tokens have the public ARM audience. Azure Stack
            // Hub has its own: set `arm_audience` from `{arm}/metadata/endpoints`.
            Some(
                audience
                    .clone()
                    .unwrap_or_else(|| PUBLIC_ARM_AUDIENCE.to_owned()),
            ),
        )
        .map_err(|error| CliError::Usage {
            message: error.to_string(),
            hint: None,
        }),
    }
}

/// The credential options the settings describe.
pub fn credential_options(settings: &AzureSettings) -> CredentialOptions {
    CredentialOptions {
        kind: match settings.auth {
            AuthMethod::Auto => CredentialKind::Auto,
            AuthMethod::Cli => CredentialKind::AzureCli,
            AuthMethod::ServicePrincipal => CredentialKind::ServicePrincipal,
            AuthMethod::ManagedIdentity => CredentialKind::ManagedIdentity,
            AuthMethod::WorkloadIdentity => CredentialKind::WorkloadIdentity,
        },
        tenant_id: settings.tenant.clone(),
        client_id: settings.client_id.clone(),
        client_secret: settings
            .client_secret
            .as_ref()
            .map(|secret| secret.expose().to_owned().into()),
        keychain: keychain_for(settings),
        federated_token_file: settings.federated_token_file.clone(),
        app_service_identity: settings.managed_identity_endpoint.is_some()
            && settings.managed_identity_header.is_some(),
        probe_imds: matches!(settings.auth, AuthMethod::Auto),
        az_timeout: Duration::try_from(settings.az_timeout)
            .unwrap_or(jit_agent::azure::credential::DEFAULT_AZ_TIMEOUT),
    }
}

/// The OS keychain, when this sign-in may read a stored client secret: a service
/// principal named by client id whose secret is not in the environment. The platform
/// store is installed as keyring's default the first time (later calls reuse the first
/// outcome); other sign-ins never touch it, since on Linux that costs a D-Bus
/// round trip. Without a usable keychain (a headless machine) nothing can have been
/// stored, so there is none: a service principal then reports its missing secret, with
/// the hint to set `AZURE_CLIENT_SECRET`.
fn keychain_for(settings: &AzureSettings) -> Option<Keychain> {
    let may_need_stored_secret = settings.client_id.is_some()
        && settings.client_secret.is_none()
        && matches!(
            settings.auth,
            AuthMethod::Auto | AuthMethod::ServicePrincipal
        );
    if !may_need_stored_secret {
        return None;
    }
    match install_platform_store() {
        Ok(()) => Some(Keychain::default_store()),
        Err(error) => {
            tracing::debug!(%error, "the OS keychain is not available");
            None
        }
    }
}

/// The shared HTTP client.
pub fn transport(settings: &AzureSettings) -> anyhow::Result<HttpTransport> {
    HttpTransport::new(&TransportOptions {
        extra_ca_files: settings.ca_files.clone(),
        ..TransportOptions::default()
    })
    .context("could not set up HTTPS")
}

impl AzureConnection {
    /// Connects with the credential the settings describe. Retry waits are announced on
    /// stderr through `printer`.
    pub fn new(settings: &AzureSettings, printer: &Printer) -> anyhow::Result<Self> {
        let cloud = cloud(settings)?;
        let transport = transport(settings)?;
        let credential = build_credential(&cloud, &transport, &credential_options(settings))?;
        Ok(Self::with_credential(
            settings, printer, cloud, transport, credential,
        ))
    }

    /// Connects with a given token source (for example warm tokens from the agent).
    pub fn with_credential(
        settings: &AzureSettings,
        printer: &Printer,
        cloud: AzureCloud,
        transport: HttpTransport,
        credential: Arc<TokenCache>,
    ) -> Self {
        let observer_printer = printer.clone();
        let options = ArmClientOptions {
            retry: RetryOptions {
                max_total_wait: Duration::try_from(settings.max_retry_wait)
                    .unwrap_or(Duration::from_secs(60)),
                ..RetryOptions::default()
            },
            retry_observer: Some(Arc::new(move |event: &RetryEvent| {
                observer_printer.info(format!(
                    "{}; retrying in {} (attempt {})",
                    event.reason,
                    human_seconds(event.delay),
                    event.retry + 1
                ));
            })),
            ..ArmClientOptions::default()
        };
        let arm = ArmClient::new(&cloud.endpoints(), &transport, credential, options);
        Self {
            arm,
            transport,
            cloud,
        }
    }
}

fn human_seconds(delay: Duration) -> String {
    let seconds = delay.as_secs_f64();
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else {
        format!("{} s", delay.as_secs())
    }
}
