//! `Permissions_ListForResource` / `_ListForResourceGroup` (Microsoft.Authorization,
//! 2022-04-01): the caller's own permissions at a scope. The call needs no permission
//! of its own, which is what makes it useful to explain a missing one.

use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::models::{AUTHORIZATION_API_VERSION, Permission};
use crate::azure::resource_id::ResourceId;

/// The caller's permissions.
#[derive(Clone, Debug)]
pub struct PermissionsClient {
    arm: ArmClient,
}

impl PermissionsClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// Every role's actions the caller holds at `scope` (a subscription, resource group
    /// or resource id), inherited ones included.
    pub async fn list_for_scope(&self, scope: &str) -> Result<Vec<Permission>, ArmError> {
        let id = ResourceId::parse(scope).map_err(|error| ArmError::InvalidRequest {
            detail: error.to_string(),
        })?;
        let path = format!(
            "{}/providers/Microsoft.Authorization/permissions",
            id.as_str()
        );
        self.arm
            .list_all(&path, AUTHORIZATION_API_VERSION, &[])
            .await
    }
}
