//! Finding a VM from what a person types: a bare name, `resource-group/name`, or a full
//! resource id, across every subscription in scope.
//!
//! Names are looked up with one Resource Graph query over all subscriptions at once
//! (listing VMs subscription by subscription costs a call per subscription and is slow
//! with many). [`find_located`] asks that query for the VM's network too (see
//! [`super::details::network_query`]), so finding a VM and learning what JIT decisions
//! need is one call. Resource Graph lags ARM by seconds to minutes: when its rows do not
//! tell everything, [`Located::details`] is `None` and the caller reads the VM from ARM.
//! A name found in several places is an error listing every candidate, so the caller
//! can ask or tell the user how to be precise; `jit` never picks one silently.

use serde::{Deserialize, Serialize};

use super::details::{GraphDetails, GraphRow, VmDetails, network_query};
use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::clients::{
    KqlColumn, KqlCondition, ResourceGraphClient, ResourcesQuery, SortOrder, SubscriptionsClient,
};
use crate::azure::models::{Subscription, normalize_location};
use crate::azure::resource_id::ResourceId;

/// Resource Graph's type for VMs.
pub const VIRTUAL_MACHINE_TYPE: &str = "microsoft.compute/virtualmachines";
/// Resource Graph's type for classic (ASM) VMs, which JIT does not support.
pub const CLASSIC_VIRTUAL_MACHINE_TYPE: &str = "microsoft.classiccompute/virtualmachines";

/// How a VM was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmQuery {
    /// A bare name: `web-01`.
    Name(String),
    /// `resource-group/name`.
    GroupAndName {
        /// The resource group.
        resource_group: String,
        /// The VM name.
        name: String,
    },
    /// A full resource id.
    Id(ResourceId),
}

impl VmQuery {
    /// Parses what a person typed.
    pub fn parse(text: &str) -> Result<Self, LocateError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(LocateError::BadName {
                text: text.to_owned(),
                reason: "it is empty",
            });
        }
        if text.starts_with('/') {
            let id = ResourceId::parse(text).map_err(|_| LocateError::BadName {
                text: text.to_owned(),
                reason: "it starts with '/' but is not a resource id",
            })?;
            if !id.is_type("Microsoft.Compute/virtualMachines") {
                return Err(LocateError::BadName {
                    text: text.to_owned(),
                    reason: "it is the id of something other than a virtual machine",
                });
            }
            return Ok(Self::Id(id));
        }
        match text.split('/').collect::<Vec<_>>().as_slice() {
            [name] => Ok(Self::Name((*name).to_owned())),
            [resource_group, name] if !resource_group.is_empty() && !name.is_empty() => {
                Ok(Self::GroupAndName {
                    resource_group: (*resource_group).to_owned(),
                    name: (*name).to_owned(),
                })
            }
            _ => Err(LocateError::BadName {
                text: text.to_owned(),
                reason: "expected a name, resource-group/name or a resource id",
            }),
        }
    }
}

impl std::fmt::Display for VmQuery {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => formatter.write_str(name),
            Self::GroupAndName {
                resource_group,
                name,
            } => write!(formatter, "{resource_group}/{name}"),
            Self::Id(id) => formatter.write_str(id.as_str()),
        }
    }
}

/// A VM as Resource Graph lists it: enough to tell candidates apart and to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmSummary {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Resource group.
    pub resource_group: String,
    /// Subscription id.
    pub subscription_id: String,
    /// Region (short form: `westeurope`).
    pub location: String,
    /// Lower-case resource type (tells classic VMs apart).
    #[serde(rename = "type")]
    pub resource_type: String,
    /// `Linux`, `Windows`, or `None` when unknown.
    #[serde(default)]
    pub os_type: Option<String>,
    /// `PowerState/running` and so on, when Resource Graph knows it.
    #[serde(default)]
    pub power_state: Option<String>,
}

impl VmSummary {
    /// Whether this is a classic (Azure Service Manager) VM.
    pub fn is_classic(&self) -> bool {
        self.resource_type
            .eq_ignore_ascii_case(CLASSIC_VIRTUAL_MACHINE_TYPE)
    }

    /// `resource-group/name`, the short unambiguous form within a subscription.
    pub fn group_and_name(&self) -> String {
        format!("{}/{}", self.resource_group, self.name)
    }
}

/// Where to look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Subscription ids; empty means every subscription the identity can see.
    pub subscription_ids: Vec<String>,
    /// Only this resource group.
    pub resource_group: Option<String>,
}

/// Why a VM could not be located.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// The text is not a usable VM reference.
    #[error("'{text}' is not a VM name: {reason}")]
    BadName {
        /// What was typed.
        text: String,
        /// Why it is not usable.
        reason: &'static str,
    },
    /// No VM matches.
    #[error("no VM named '{query}' in {searched}")]
    NotFound {
        /// What was asked for.
        query: String,
        /// Where it was looked for, in words.
        searched: String,
    },
    /// Several VMs match.
    #[error("'{query}' matches {} VMs: {}", candidates.len(), candidate_list(candidates))]
    Ambiguous {
        /// What was asked for.
        query: String,
        /// Every match.
        candidates: Vec<VmSummary>,
    },
    /// A subscription named by the user is not visible.
    #[error("no subscription '{requested}' is visible to this sign-in (visible: {})", visible.join(", "))]
    UnknownSubscription {
        /// What was asked for.
        requested: String,
        /// What is visible, as `name (id)`.
        visible: Vec<String>,
    },
    /// The sign-in sees no subscription at all.
    #[error("this sign-in sees no subscription")]
    NoSubscriptions,
    /// Azure failed.
    #[error(transparent)]
    Azure(#[from] ArmError),
}

fn candidate_list(candidates: &[VmSummary]) -> String {
    candidates
        .iter()
        .map(VmSummary::group_and_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The subscriptions to search: those named (by id or display name, case-insensitive),
/// or every enabled one the identity can see.
pub async fn resolve_subscriptions(
    arm: &ArmClient,
    requested: &[String],
) -> Result<Vec<Subscription>, LocateError> {
    let visible = SubscriptionsClient::new(arm.clone()).list().await?;
    if requested.is_empty() {
        let usable: Vec<Subscription> = visible
            .into_iter()
            .filter(|subscription| {
                subscription
                    .state
                    .as_ref()
                    .is_none_or(|state| state.is_active())
            })
            .collect();
        if usable.is_empty() {
            return Err(LocateError::NoSubscriptions);
        }
        return Ok(usable);
    }
    let mut chosen = Vec::new();
    for wanted in requested {
        let found = visible.iter().find(|subscription| {
            let id_matches = subscription
                .subscription_id
                .as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(wanted));
            let name_matches = subscription
                .display_name
                .as_deref()
                .is_some_and(|name| name.eq_ignore_ascii_case(wanted));
            id_matches || name_matches
        });
        match found {
            Some(subscription) => {
                if !chosen.contains(subscription) {
                    chosen.push(subscription.clone());
                }
            }
            None => {
                return Err(LocateError::UnknownSubscription {
                    requested: wanted.clone(),
                    visible: visible
                        .iter()
                        .map(|subscription| {
                            format!(
                                "{} ({})",
                                subscription.display_name.as_deref().unwrap_or("unnamed"),
                                subscription.subscription_id.as_deref().unwrap_or("?")
                            )
                        })
                        .collect(),
                });
            }
        }
    }
    Ok(chosen)
}

/// `ResourceGroups_Get`'s api-version (Microsoft.Resources).
const RESOURCE_GROUPS_API_VERSION: &str = "2021-04-01";

/// Whether a resource group of this name exists in any of the subscriptions (one GET
/// per subscription; only asked when a listing by resource group came back empty).
pub async fn resource_group_exists(
    arm: &ArmClient,
    subscription_ids: &[String],
    name: &str,
) -> Result<bool, ArmError> {
    for subscription_id in subscription_ids {
        let path = format!("/subscriptions/{subscription_id}/resourcegroups/{name}");
        let found: Option<serde_json::Value> = arm
            .get_json_optional(&path, RESOURCE_GROUPS_API_VERSION, &[])
            .await?;
        if found.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The Resource Graph query for VMs (classic ones included) in `scope` with an optional
/// name filter.
pub fn vm_query(scope: &Scope, name: Option<&str>) -> ResourcesQuery {
    let mut conditions = vec![KqlCondition::in_ignore_case(
        KqlColumn::Type,
        [VIRTUAL_MACHINE_TYPE, CLASSIC_VIRTUAL_MACHINE_TYPE],
    )];
    if let Some(name) = name {
        conditions.push(KqlCondition::equals_ignore_case(KqlColumn::Name, name));
    }
    if let Some(resource_group) = &scope.resource_group {
        conditions.push(KqlCondition::equals_ignore_case(
            KqlColumn::ResourceGroup,
            resource_group.clone(),
        ));
    }
    ResourcesQuery::new()
        .filter(conditions)
        .project("id")
        .project("name")
        .project("type")
        .project("resourceGroup")
        .project("subscriptionId")
        .project("location")
        .project_as("osType", "properties.storageProfile.osDisk.osType")
        .project_as(
            "powerState",
            "properties.extended.instanceView.powerState.code",
        )
        .order_by("id", SortOrder::Ascending)
}

/// Every VM in scope (classic ones included), optionally only those named `name`.
pub async fn find_vms(
    arm: &ArmClient,
    scope: &Scope,
    name: Option<&str>,
) -> Result<Vec<VmSummary>, ArmError> {
    let rows: Vec<VmSummary> = ResourceGraphClient::new(arm.clone())
        .resources_as(&vm_query(scope, name), &scope.subscription_ids, None)
        .await?;
    Ok(rows
        .into_iter()
        .map(|mut row| {
            row.location = normalize_location(&row.location);
            row
        })
        .collect())
}

/// A VM found by [`find_located`], with its details when Resource Graph knew them all.
#[derive(Debug, Clone)]
pub struct Located {
    /// The VM as a candidate.
    pub summary: VmSummary,
    /// Its details, or why Resource Graph's rows were not enough (then read it from ARM).
    pub details: Result<Box<VmDetails>, String>,
}

/// The Resource Graph query [`find_located`] sends for `query` in `scope`: the VM rows
/// (by type, and by name or id, and by group when one is known) joined to their network
/// (see [`network_query`]).
pub fn located_query(scope: &Scope, query: &VmQuery) -> ResourcesQuery {
    let narrowed = narrowed_scope(scope, query);
    let mut conditions = vec![KqlCondition::in_ignore_case(
        KqlColumn::Type,
        [VIRTUAL_MACHINE_TYPE, CLASSIC_VIRTUAL_MACHINE_TYPE],
    )];
    match query {
        VmQuery::Id(id) => {
            conditions.push(KqlCondition::equals_ignore_case(KqlColumn::Id, id.as_str()))
        }
        VmQuery::Name(name) | VmQuery::GroupAndName { name, .. } => conditions.push(
            KqlCondition::equals_ignore_case(KqlColumn::Name, name.clone()),
        ),
    }
    if let Some(resource_group) = &narrowed.resource_group {
        conditions.push(KqlCondition::equals_ignore_case(
            KqlColumn::ResourceGroup,
            resource_group.clone(),
        ));
    }
    network_query(conditions)
}

/// Every VM in scope that `query` names, each with its network, in one Resource Graph
/// query ([`located_query`]).
pub async fn find_located(
    arm: &ArmClient,
    scope: &Scope,
    query: &VmQuery,
) -> Result<Vec<Located>, ArmError> {
    let narrowed = narrowed_scope(scope, query);
    let rows: Vec<GraphRow> = ResourceGraphClient::new(arm.clone())
        .resources_as(
            &located_query(scope, query),
            &narrowed.subscription_ids,
            None,
        )
        .await?;
    let mut located: Vec<Located> = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let end = rows[start..]
            .iter()
            .position(|row| !row.is_vm(&rows[start].id))
            .map_or(rows.len(), |offset| start + offset);
        let group = &rows[start..end];
        start = end;
        let first = &group[0];
        if let VmQuery::Id(id) = query
            && ResourceId::parse(&first.id).map_or(true, |candidate| &candidate != id)
        {
            continue;
        }
        let summary = VmSummary {
            id: first.id.clone(),
            name: first.name.clone(),
            resource_group: first.resource_group.clone(),
            subscription_id: first.subscription_id.clone(),
            location: normalize_location(&first.location),
            resource_type: first.resource_type.clone(),
            os_type: first.os_type.clone(),
            power_state: first.power_state.clone(),
        };
        let details = if summary.is_classic() {
            Err("a classic VM".to_owned())
        } else {
            match VmDetails::from_graph(group) {
                GraphDetails::Complete(details) => Ok(details),
                GraphDetails::Incomplete(reason) => Err(reason),
            }
        };
        located.push(Located { summary, details });
    }
    Ok(located)
}

/// The one VM among `candidates`: none is [`LocateError::NotFound`], several
/// [`LocateError::Ambiguous`].
pub fn single<T>(
    scope: &Scope,
    query: &VmQuery,
    mut candidates: Vec<T>,
    summary: impl Fn(&T) -> &VmSummary,
) -> Result<T, LocateError> {
    match candidates.len() {
        0 => Err(LocateError::NotFound {
            query: query.to_string(),
            searched: describe_scope(scope),
        }),
        1 => Ok(candidates.remove(0)),
        _ => Err(LocateError::Ambiguous {
            query: query.to_string(),
            candidates: candidates
                .iter()
                .map(|candidate| summary(candidate).clone())
                .collect(),
        }),
    }
}

/// The scope a query narrows: a resource id names its subscription and group,
/// `group/name` its group.
fn narrowed_scope(scope: &Scope, query: &VmQuery) -> Scope {
    let resource_group = match query {
        VmQuery::Id(id) => id.resource_group().map(str::to_owned),
        VmQuery::Name(_) => None,
        VmQuery::GroupAndName { resource_group, .. } => Some(resource_group.clone()),
    };
    Scope {
        subscription_ids: match query {
            VmQuery::Id(id) => vec![id.subscription_id().to_owned()],
            _ => scope.subscription_ids.clone(),
        },
        resource_group: resource_group.or_else(|| scope.resource_group.clone()),
    }
}

/// Finds exactly one VM.
pub async fn locate(
    arm: &ArmClient,
    scope: &Scope,
    query: &VmQuery,
) -> Result<VmSummary, LocateError> {
    let searched = describe_scope(scope);
    let (name, resource_group) = match query {
        VmQuery::Id(id) => (
            id.name().unwrap_or_default().to_owned(),
            id.resource_group().map(str::to_owned),
        ),
        VmQuery::Name(name) => (name.clone(), None),
        VmQuery::GroupAndName {
            resource_group,
            name,
        } => (name.clone(), Some(resource_group.clone())),
    };
    let narrowed = Scope {
        subscription_ids: match query {
            VmQuery::Id(id) => vec![id.subscription_id().to_owned()],
            _ => scope.subscription_ids.clone(),
        },
        resource_group: resource_group.or_else(|| scope.resource_group.clone()),
    };
    let mut candidates = find_vms(arm, &narrowed, Some(&name)).await?;
    if let VmQuery::Id(id) = query {
        candidates.retain(|candidate| {
            ResourceId::parse(&candidate.id).is_ok_and(|candidate_id| &candidate_id == id)
        });
    }
    match candidates.len() {
        0 => Err(LocateError::NotFound {
            query: query.to_string(),
            searched,
        }),
        1 => Ok(candidates.remove(0)),
        _ => Err(LocateError::Ambiguous {
            query: query.to_string(),
            candidates,
        }),
    }
}

fn describe_scope(scope: &Scope) -> String {
    let subscriptions = match scope.subscription_ids.len() {
        0 => "any visible subscription".to_owned(),
        1 => "1 subscription".to_owned(),
        count => format!("{count} subscriptions"),
    };
    match &scope.resource_group {
        Some(resource_group) => format!("resource group '{resource_group}' of {subscriptions}"),
        None => subscriptions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_into_the_three_forms() {
        assert_eq!(
            VmQuery::parse("web-01").expect("name"),
            VmQuery::Name("web-01".to_owned())
        );
        assert_eq!(
            VmQuery::parse("rg-web/web-01").expect("group and name"),
            VmQuery::GroupAndName {
                resource_group: "rg-web".to_owned(),
                name: "web-01".to_owned()
            }
        );
        let id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-01";
        assert!(matches!(VmQuery::parse(id).expect("id"), VmQuery::Id(_)));
    }

    #[test]
    fn malformed_names_are_refused_with_a_reason() {
        for text in [
            "",
            "a/b/c",
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic",
            "/not-an-id",
        ] {
            let error = VmQuery::parse(text).expect_err(text);
            assert!(
                matches!(error, LocateError::BadName { .. }),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn the_query_never_interpolates_the_name() {
        let query = vm_query(&Scope::default(), Some("x' or name != '"));
        let kql = query.to_kql().expect("valid");
        assert!(kql.contains(r"name =~ 'x\' or name != \''"), "{kql}");
    }
}
