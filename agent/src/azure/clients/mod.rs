//! One client per Azure resource, in the style of the Azure SDKs.
//!
//! Each client wraps an [`ArmClient`](crate::azure::arm::ArmClient) (cheap to clone) and knows its URL templates and
//! api-version; method names follow the REST operation ids (`JitNetworkAccessPolicies_ListByRegion`
//! is [`JitNetworkAccessPoliciesClient::list_by_region`]). Where an operation has optional
//! parameters, the method takes an `Option<…Options>`. Lists return every page.
//!
//! Resources found through references (a VM's NIC, a NIC's public IP) are fetched by id
//! with the `get_by_id` methods, which check the id's type first so a wrong id fails
//! with a clear message instead of an odd 404.

mod authorization;
mod jit_policies;
mod kql;
mod network;
mod resource_graph;
mod security_locations;
mod security_pricings;
mod subscriptions;
mod virtual_machines;

pub use authorization::PermissionsClient;
pub use jit_policies::JitNetworkAccessPoliciesClient;
pub use kql::{KqlColumn, KqlComparison, KqlCondition, KqlError, ResourcesQuery, SortOrder};
pub use network::{
    NetworkInterfacesClient, NetworkInterfacesGetOptions, NetworkSecurityGroupsClient,
    NetworkSecurityGroupsGetOptions, PublicIpAddressesClient, PublicIpAddressesGetOptions,
    SubnetsClient, SubnetsGetOptions,
};
pub use resource_graph::{ResourceGraphClient, ResourcesOptions};
pub use security_locations::SecurityLocationsClient;
pub use security_pricings::PricingsClient;
pub use subscriptions::SubscriptionsClient;
pub use virtual_machines::{
    InstanceViewTypes, VirtualMachinesClient, VirtualMachinesGetOptions,
    VirtualMachinesListAllOptions, VirtualMachinesListOptions,
};

use crate::azure::arm::ArmError;
use crate::azure::resource_id::ResourceId;

/// Parses `id` and checks it names a resource of `expected_type`
/// (`Microsoft.Network/networkInterfaces`).
fn id_of_type(id: &str, expected_type: &str) -> Result<ResourceId, ArmError> {
    let parsed = ResourceId::parse(id).map_err(|error| ArmError::InvalidRequest {
        detail: error.to_string(),
    })?;
    if !parsed.is_type(expected_type) {
        return Err(ArmError::InvalidRequest {
            detail: format!(
                "'{id}' is a {} id, not a {expected_type} id",
                parsed
                    .resource_type()
                    .unwrap_or_else(|| "subscription or resource group".to_owned())
            ),
        });
    }
    Ok(parsed)
}

/// Checks a caller-supplied name can be one path segment.
fn segment(what: &str, value: &str) -> Result<(), ArmError> {
    if value.is_empty() || value.contains('/') {
        return Err(ArmError::InvalidRequest {
            detail: format!("invalid {what} '{value}'"),
        });
    }
    Ok(())
}

/// `/subscriptions/{s}/resourceGroups/{g}`, with both names checked.
fn resource_group_path(subscription_id: &str, resource_group: &str) -> Result<String, ArmError> {
    segment("subscription id", subscription_id)?;
    segment("resource group", resource_group)?;
    Ok(format!(
        "/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    ))
}

/// `/subscriptions/{s}`, checked.
fn subscription_path(subscription_id: &str) -> Result<String, ArmError> {
    segment("subscription id", subscription_id)?;
    Ok(format!("/subscriptions/{subscription_id}"))
}
