//! What several commands do the same way: connect to Azure, work out which
//! subscriptions to search, find one VM (asking on a terminal when a name is
//! ambiguous), and ask yes/no questions.

use anyhow::Context as _;
use jit_agent::access::locate::{self, LocateError, Scope, VmQuery, VmSummary};
use jit_agent::azure::models::Subscription;

use crate::connection::AzureConnection;
use crate::error::CliError;
use crate::printer::Printer;
use crate::settings::GlobalSettings;

/// Connects to Azure with the settings' credential, taking warm tokens from a running
/// agent when there is one ([`crate::warm_token`]).
pub(crate) async fn connect(
    settings: &GlobalSettings,
    printer: &Printer,
) -> anyhow::Result<AzureConnection> {
    crate::warm_token::connect(settings, printer)
}

/// The subscriptions to search and the scope built from them.
pub(crate) async fn scope(
    connection: &AzureConnection,
    settings: &GlobalSettings,
    resource_group: Option<&str>,
) -> anyhow::Result<(Vec<Subscription>, Scope)> {
    let subscriptions =
        locate::resolve_subscriptions(&connection.arm, &settings.azure.subscriptions)
            .await
            .map_err(locate_error)?;
    let scope = Scope {
        subscription_ids: subscriptions
            .iter()
            .filter_map(|subscription| subscription.subscription_id.clone())
            .collect(),
        resource_group: resource_group.map(str::to_owned),
    };
    Ok((subscriptions, scope))
}

/// The scope to find one VM in. A full resource id already names its subscription, so
/// the subscription list (one more ARM call, on every `jit proxy` of an ssh-config
/// entry) is only read for names.
pub(crate) async fn scope_for_vm(
    connection: &AzureConnection,
    settings: &GlobalSettings,
    vm_text: &str,
) -> anyhow::Result<Scope> {
    if let Ok(VmQuery::Id(id)) = VmQuery::parse(vm_text) {
        return Ok(Scope {
            subscription_ids: vec![id.subscription_id().to_owned()],
            resource_group: None,
        });
    }
    Ok(scope(connection, settings, None).await?.1)
}

/// Connects and finds the one VM `vm_text` names (what `enable`, `disable` and `extend`
/// start with).
pub(crate) async fn connect_to_vm(
    settings: &GlobalSettings,
    printer: &Printer,
    vm_text: &str,
) -> anyhow::Result<(AzureConnection, VmSummary)> {
    let connection = connect(settings, printer).await?;
    let scope = scope_for_vm(&connection, settings, vm_text).await?;
    let summary = locate_vm(&connection, &scope, vm_text, printer).await?;
    Ok((connection, summary))
}

/// Finds the one VM `text` names. On a terminal an ambiguous name becomes a choice;
/// otherwise it is an error listing the candidates.
pub(crate) async fn locate_vm(
    connection: &AzureConnection,
    scope: &Scope,
    text: &str,
    printer: &Printer,
) -> anyhow::Result<VmSummary> {
    let query = VmQuery::parse(text).map_err(locate_error)?;
    match locate::locate(&connection.arm, scope, &query).await {
        Ok(vm) => Ok(vm),
        Err(LocateError::Ambiguous { candidates, .. }) if printer.is_interactive() => {
            let labels: Vec<String> = candidates
                .iter()
                .map(|candidate| {
                    format!(
                        "{}  ({}, subscription {})",
                        candidate.group_and_name(),
                        candidate.location,
                        candidate.subscription_id
                    )
                })
                .collect();
            let choice = tokio::task::spawn_blocking(move || {
                dialoguer::Select::new()
                    .with_prompt(format!("Several VMs are named '{query}'; which one?"))
                    .items(&labels)
                    .default(0)
                    .interact_opt()
            })
            .await
            .context("the question could not be asked")?
            .context("the question could not be asked")?;
            match choice {
                Some(index) => Ok(candidates[index].clone()),
                None => Err(CliError::Interrupted {
                    message: "no VM chosen".to_owned(),
                }
                .into()),
            }
        }
        Err(error) => Err(locate_error(error)),
    }
}

/// Turns a [`LocateError`] into the error the user sees, with its exit code and hint.
pub(crate) fn locate_error(error: LocateError) -> anyhow::Error {
    match error {
        LocateError::Azure(error) => error.into(),
        LocateError::Ambiguous { query, candidates } => {
            let forms: Vec<String> = candidates.iter().map(VmSummary::group_and_name).collect();
            let same_groups = {
                let mut groups: Vec<String> = candidates
                    .iter()
                    .map(|candidate| candidate.group_and_name().to_ascii_lowercase())
                    .collect();
                groups.sort();
                groups.windows(2).any(|pair| pair[0] == pair[1])
            };
            let hint = if same_groups {
                "name it by resource id, or pick the subscription with --subscription".to_owned()
            } else {
                format!("name it as resource-group/name: {}", forms.join(" or "))
            };
            CliError::Usage {
                message: format!(
                    "'{query}' matches {} VMs: {}",
                    candidates.len(),
                    forms.join(", ")
                ),
                hint: Some(hint),
            }
            .into()
        }
        LocateError::NotFound { .. } => CliError::NotFound {
            message: error.to_string(),
            hint: Some(
                "check the name with `jit list`, or widen the search with --subscription"
                    .to_owned(),
            ),
        }
        .into(),
        LocateError::UnknownSubscription { .. } | LocateError::NoSubscriptions => {
            CliError::NotFound {
                message: error.to_string(),
                hint: Some(
                    "check --subscription, JIT_SUBSCRIPTIONS and the tenant you signed in to"
                        .to_owned(),
                ),
            }
            .into()
        }
        LocateError::BadName { .. } => CliError::Usage {
            message: error.to_string(),
            hint: Some("write a VM as name, resource-group/name or a full resource id".to_owned()),
        }
        .into(),
    }
}

/// Asks a yes/no question on the terminal; `assume_yes` answers yes without asking, and
/// without a terminal the answer is no.
pub(crate) async fn confirm(
    printer: &Printer,
    assume_yes: bool,
    question: String,
) -> anyhow::Result<bool> {
    if assume_yes {
        return Ok(true);
    }
    if !printer.is_interactive() {
        return Ok(false);
    }
    tokio::task::spawn_blocking(move || {
        dialoguer::Confirm::new()
            .with_prompt(question)
            .default(true)
            .interact_opt()
    })
    .await
    .context("the question could not be asked")?
    .context("the question could not be asked")
    .map(|answer| answer.unwrap_or(false))
}
