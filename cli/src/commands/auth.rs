//! `jit auth set-secret|delete-secret|status`: the service-principal secret in the OS
//! keychain, and which sign-in `jit` would use.
//!
//! A client secret typed on the command line ends up in shell history and in every
//! process listing, so `set-secret` reads it from stdin only: a hidden prompt on a
//! terminal, or whatever is piped in (`… | jit auth set-secret`). It is stored with
//! [`Keychain`] under service `jit`, account = the client id, and used whenever that
//! service principal signs in without `AZURE_CLIENT_SECRET`. A headless Linux machine
//! usually has no Secret Service; there the error says so and points at
//! `AZURE_CLIENT_SECRET`.
//!
//! `status` says which credential the settings select, where its secret would come
//! from, and then really signs in and lists subscriptions, because "configured" and
//! "works" differ (an expired `az login`, a revoked secret). Neither the secret nor the
//! token is ever printed.

use std::io::{IsTerminal as _, Read as _};

use anyhow::Context as _;
use jiff::Timestamp;
use jit_agent::azure::clients::SubscriptionsClient;
use jit_agent::azure::credential::{
    CredentialError, CredentialPlan, KEYCHAIN_SERVICE, Keychain, install_platform_store,
};
use serde::Serialize;

use crate::args::{AuthCommand, SecretArgs};
use crate::connection::{self, AzureConnection};
use crate::error::{CliError, ExitStatus};
use crate::printer::Printer;
use crate::printer::format::format_time;
use crate::settings::{AuthMethod, CloudSettings, GlobalSettings};

/// Client secrets are short (Entra ID's are 40 characters); anything larger piped in
/// is a mistake, not a secret.
const MAX_SECRET_BYTES: u64 = 16 * 1024;

pub(crate) async fn run(
    command: AuthCommand,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    match command {
        AuthCommand::SetSecret(arguments) => set_secret(&arguments, settings, printer).await,
        AuthCommand::DeleteSecret(arguments) => delete_secret(&arguments, settings, printer).await,
        AuthCommand::Status => status(settings, printer).await,
    }
}

fn client_id(arguments: &SecretArgs, settings: &GlobalSettings) -> Result<String, CliError> {
    arguments
        .client_id
        .clone()
        .or_else(|| settings.azure.client_id.clone())
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| CliError::Usage {
            message: "which service principal? no client id was given".to_owned(),
            hint: Some(
                "pass --client-id, or set AZURE_CLIENT_ID or client_id in the config file"
                    .to_owned(),
            ),
        })
}

/// The platform keychain, installed as the default store; a missing one is a
/// credential error (exit 4) whose hint points at `AZURE_CLIENT_SECRET`.
fn platform_keychain() -> Result<Keychain, CredentialError> {
    install_platform_store()?;
    Ok(Keychain::default_store())
}

async fn set_secret(
    arguments: &SecretArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let client_id = client_id(arguments, settings)?;
    let prompt = format!("Client secret for {client_id}");
    let secret = tokio::task::spawn_blocking(move || read_secret(&prompt))
        .await
        .context("could not read the secret")??;
    let stored_for = client_id.clone();
    tokio::task::spawn_blocking(move || {
        platform_keychain()?
            .set_client_secret(&stored_for, &secret.into())
            .map_err(CredentialError::from)
    })
    .await
    .context("the keychain could not be reached")?
    .context("could not store the client secret")?;
    printer.success(format!(
        "stored the client secret of {client_id} in the OS keychain (service \"{KEYCHAIN_SERVICE}\")"
    ));
    printer.info(format!(
        "jit uses it when AZURE_CLIENT_ID is {client_id} (with AZURE_TENANT_ID) and AZURE_CLIENT_SECRET is not set"
    ));
    Ok(ExitStatus::Success)
}

/// The secret from a hidden prompt on a terminal, else from piped stdin (one line; the
/// line break is not part of it).
fn read_secret(prompt: &str) -> anyhow::Result<String> {
    let empty = || CliError::Usage {
        message: "no secret was given on stdin".to_owned(),
        hint: Some("pipe it in: `jit auth set-secret --client-id ID < secret-file`".to_owned()),
    };
    if std::io::stdin().is_terminal() {
        let secret = dialoguer::Password::new()
            .with_prompt(prompt)
            .interact()
            .context("could not read the secret from the terminal")?;
        return if secret.is_empty() {
            Err(empty().into())
        } else {
            Ok(secret)
        };
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .context("could not read the secret from stdin")?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(CliError::Usage {
            message: format!(
                "stdin holds more than {MAX_SECRET_BYTES} bytes; that is not a client secret"
            ),
            hint: Some("pipe in only the secret".to_owned()),
        }
        .into());
    }
    let text = String::from_utf8(bytes).map_err(|_| CliError::Usage {
        message: "the secret on stdin is not UTF-8 text".to_owned(),
        hint: None,
    })?;
    let secret = text
        .strip_suffix('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .unwrap_or(&text);
    if secret.contains(['\n', '\r']) {
        return Err(CliError::Usage {
            message: "stdin holds several lines; a client secret is one".to_owned(),
            hint: Some("pipe in only the secret".to_owned()),
        }
        .into());
    }
    if secret.is_empty() {
        return Err(empty().into());
    }
    Ok(secret.to_owned())
}

async fn delete_secret(
    arguments: &SecretArgs,
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<ExitStatus> {
    let client_id = client_id(arguments, settings)?;
    let deleted_for = client_id.clone();
    let existed = tokio::task::spawn_blocking(move || {
        platform_keychain()?
            .delete_client_secret(&deleted_for)
            .map_err(CredentialError::from)
    })
    .await
    .context("the keychain could not be reached")?
    .context("could not remove the client secret")?;
    if existed {
        printer.success(format!(
            "removed the client secret of {client_id} from the OS keychain"
        ));
    } else {
        printer.info(format!(
            "the OS keychain holds no client secret for {client_id}; nothing to remove"
        ));
    }
    Ok(ExitStatus::Success)
}

/// What `jit auth status` reports (also its JSON document).
#[derive(Debug, Serialize)]
struct AuthStatus {
    /// `auto`, `cli`, `service-principal`, …: what the settings ask for.
    method: AuthMethod,
    /// What that resolves to: `azure_cli`, `service_principal`, `managed_identity`,
    /// `workload_identity`.
    credential: &'static str,
    /// In words.
    description: String,
    tenant_id: Option<String>,
    client_id: Option<String>,
    /// Where the client secret comes from: `environment`, `keychain`, or `missing`
    /// (`null` when the credential needs none).
    client_secret_source: Option<&'static str>,
    cloud: String,
    arm_endpoint: String,
    sign_in: SignInCheck,
}

#[derive(Debug, Serialize)]
struct SignInCheck {
    ok: bool,
    token_expires_on: Option<String>,
    subscriptions: Option<usize>,
    error: Option<String>,
}

async fn status(settings: &GlobalSettings, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let azure = &settings.azure;
    let options = connection::credential_options(azure);
    let (plan, secret_in_keychain) = tokio::task::spawn_blocking(move || {
        let plan = options.plan()?;
        let in_keychain = match (&options.keychain, &options.client_id) {
            (Some(keychain), Some(client_id))
                if matches!(plan, CredentialPlan::ServicePrincipalFromKeychain) =>
            {
                keychain
                    .client_secret(client_id)
                    .map(|secret| secret.is_some())
            }
            _ => Ok(false),
        };
        Ok::<_, CredentialError>((plan, in_keychain))
    })
    .await
    .context("the credential settings could not be read")??;
    let (credential, description, client_secret_source) = match &plan {
        CredentialPlan::AzureCli { imds_fallback } => (
            "azure_cli",
            if *imds_fallback {
                "the Azure CLI's signed-in account (az), then this machine's managed identity if az cannot sign in".to_owned()
            } else {
                "the Azure CLI's signed-in account (az)".to_owned()
            },
            None,
        ),
        CredentialPlan::ServicePrincipal => (
            "service_principal",
            "a service principal with a client secret".to_owned(),
            Some("environment"),
        ),
        CredentialPlan::ServicePrincipalFromKeychain => (
            "service_principal",
            "a service principal with a client secret".to_owned(),
            Some(match &secret_in_keychain {
                Ok(true) => "keychain",
                Ok(false) | Err(_) => "missing",
            }),
        ),
        CredentialPlan::WorkloadIdentity => (
            "workload_identity",
            format!(
                "workload identity (federated token file {})",
                azure
                    .federated_token_file
                    .as_ref()
                    .map_or_else(|| "not set".to_owned(), |path| path.display().to_string())
            ),
            None,
        ),
        CredentialPlan::ManagedIdentity => (
            "managed_identity",
            if azure.managed_identity_endpoint.is_some() {
                "this machine's managed identity (IDENTITY_ENDPOINT)".to_owned()
            } else {
                "this machine's managed identity (instance metadata service)".to_owned()
            },
            None,
        ),
    };
    let (cloud, arm_endpoint) = match &azure.cloud {
        CloudSettings::Named(name) => (
            name.clone(),
            connection::cloud(azure)?
                .endpoints()
                .resource_manager
                .to_string(),
        ),
        CloudSettings::Custom { arm_endpoint, .. } => ("custom".to_owned(), arm_endpoint.clone()),
    };

    let progress = printer.progress("Signing in");
    let check = sign_in(settings, printer).await;
    drop(progress);
    let report = AuthStatus {
        method: azure.auth,
        credential,
        description,
        tenant_id: azure.tenant.clone(),
        client_id: azure.client_id.clone(),
        client_secret_source,
        cloud,
        arm_endpoint,
        sign_in: match &check {
            Ok((expires_on, subscriptions)) => SignInCheck {
                ok: true,
                token_expires_on: Some(format_time(*expires_on)),
                subscriptions: Some(*subscriptions),
                error: None,
            },
            Err(error) => SignInCheck {
                ok: false,
                token_expires_on: None,
                subscriptions: None,
                error: Some(
                    crate::error::classify(error, crate::error::CommandKind::Other).message,
                ),
            },
        },
    };
    if printer.is_json() {
        printer.json(&report);
    } else {
        printer.data(render(&report, &plan));
    }
    match check {
        Ok(_) => Ok(ExitStatus::Success),
        Err(error) => Err(error),
    }
}

/// Signs in for real: a token, then the subscription list (ARM accepting the token).
async fn sign_in(
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<(Timestamp, usize)> {
    let connection = AzureConnection::new(&settings.azure, printer)?;
    let scope = connection.cloud.endpoints().token_scope;
    let token = connection.arm.credential().token(&[scope.as_str()]).await?;
    let expires_on = Timestamp::from_second(token.expires_on.unix_timestamp())
        .context("the token's expiry is out of range")?;
    let subscriptions = SubscriptionsClient::new(connection.arm.clone())
        .list()
        .await
        .context("signed in, but Azure Resource Manager refused the token")?;
    Ok((expires_on, subscriptions.len()))
}

fn render(report: &AuthStatus, plan: &CredentialPlan) -> String {
    let dash = || "-".to_owned();
    let tenant = match (&report.tenant_id, plan) {
        (Some(tenant), _) => tenant.clone(),
        (None, CredentialPlan::AzureCli { .. }) => "the Azure CLI's default".to_owned(),
        (None, _) => dash(),
    };
    let secret = match report.client_secret_source {
        None => "not needed".to_owned(),
        Some("environment") => "from AZURE_CLIENT_SECRET".to_owned(),
        Some("keychain") => format!(
            "from the OS keychain (service \"{KEYCHAIN_SERVICE}\", account {})",
            report.client_id.as_deref().unwrap_or("?")
        ),
        Some(_) => "missing: set AZURE_CLIENT_SECRET or run `jit auth set-secret`".to_owned(),
    };
    let sign_in = match (&report.sign_in.token_expires_on, &report.sign_in.error) {
        (Some(expires_on), _) => format!(
            "ok: token valid until {expires_on}, {} subscription{} visible",
            report.sign_in.subscriptions.unwrap_or(0),
            if report.sign_in.subscriptions == Some(1) {
                ""
            } else {
                "s"
            }
        ),
        (None, Some(_)) => "failed (see below)".to_owned(),
        (None, None) => dash(),
    };
    let method = match report.method {
        AuthMethod::Auto => "auto (the first sign-in that is set up)",
        AuthMethod::Cli => "cli (as configured)",
        AuthMethod::ServicePrincipal => "service-principal (as configured)",
        AuthMethod::ManagedIdentity => "managed-identity (as configured)",
        AuthMethod::WorkloadIdentity => "workload-identity (as configured)",
    };
    let pairs = [
        ("method", method.to_owned()),
        ("sign-in", report.description.clone()),
        ("tenant", tenant),
        ("client id", report.client_id.clone().unwrap_or_else(dash)),
        ("client secret", secret),
        (
            "cloud",
            format!("{} ({})", report.cloud, report.arm_endpoint),
        ),
        ("check", sign_in),
    ];
    let width = pairs.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}
