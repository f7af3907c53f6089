//! `JitNetworkAccessPolicies_*` (Microsoft.Security, 2020-01-01).
//!
//! Policies are found by listing and matching the VM id, never by assuming the name
//! `default` or the region: the `*_by_id` methods work from a policy's own `id`, which
//! already carries the right `locations/{x}` segment.
//!
//! Writes (PUT and DELETE) are never repeated by the ARM pipeline
//! ([`Idempotency::RebuiltByCaller`]): a PUT carries the whole VM list as it was read,
//! so sending it again after a wait could erase what another admin changed meanwhile.
//! `access::enable` reads the policy again and merges anew before each attempt.

use super::{id_of_type, resource_group_path, segment, subscription_path};
use crate::azure::arm::{ArmClient, ArmError, DeleteOutcome, Idempotency};
use crate::azure::models::{
    JIT_API_VERSION, JitNetworkAccessPolicy, JitNetworkAccessPolicyInitiateRequest,
    JitNetworkAccessRequest,
};

const POLICY_TYPE: &str = "Microsoft.Security/locations/jitNetworkAccessPolicies";

/// JIT network access policies.
#[derive(Clone, Debug)]
pub struct JitNetworkAccessPoliciesClient {
    arm: ArmClient,
}

impl JitNetworkAccessPoliciesClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// Every policy in a subscription (`JitNetworkAccessPolicies_List`).
    pub async fn list(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<JitNetworkAccessPolicy>, ArmError> {
        let path = format!(
            "{}/providers/Microsoft.Security/jitNetworkAccessPolicies",
            subscription_path(subscription_id)?
        );
        self.arm.list_all(&path, JIT_API_VERSION, &[]).await
    }

    /// Policies of a subscription in one location (`JitNetworkAccessPolicies_ListByRegion`).
    pub async fn list_by_region(
        &self,
        subscription_id: &str,
        asc_location: &str,
    ) -> Result<Vec<JitNetworkAccessPolicy>, ArmError> {
        segment("location", asc_location)?;
        let path = format!(
            "{}/providers/Microsoft.Security/locations/{asc_location}/jitNetworkAccessPolicies",
            subscription_path(subscription_id)?
        );
        self.arm.list_all(&path, JIT_API_VERSION, &[]).await
    }

    /// Policies of a resource group (`JitNetworkAccessPolicies_ListByResourceGroup`).
    pub async fn list_by_resource_group(
        &self,
        subscription_id: &str,
        resource_group: &str,
    ) -> Result<Vec<JitNetworkAccessPolicy>, ArmError> {
        let path = format!(
            "{}/providers/Microsoft.Security/jitNetworkAccessPolicies",
            resource_group_path(subscription_id, resource_group)?
        );
        self.arm.list_all(&path, JIT_API_VERSION, &[]).await
    }

    /// Policies of a resource group in one location
    /// (`JitNetworkAccessPolicies_ListByResourceGroupAndRegion`).
    pub async fn list_by_resource_group_and_region(
        &self,
        subscription_id: &str,
        resource_group: &str,
        asc_location: &str,
    ) -> Result<Vec<JitNetworkAccessPolicy>, ArmError> {
        segment("location", asc_location)?;
        let path = format!(
            "{}/providers/Microsoft.Security/locations/{asc_location}/jitNetworkAccessPolicies",
            resource_group_path(subscription_id, resource_group)?
        );
        self.arm.list_all(&path, JIT_API_VERSION, &[]).await
    }

    /// One policy (`JitNetworkAccessPolicies_Get`).
    pub async fn get(
        &self,
        subscription_id: &str,
        resource_group: &str,
        asc_location: &str,
        policy_name: &str,
    ) -> Result<JitNetworkAccessPolicy, ArmError> {
        let path = policy_path(subscription_id, resource_group, asc_location, policy_name)?;
        self.arm.get_json(&path, JIT_API_VERSION, &[]).await
    }

    /// One policy by its id (as listed).
    pub async fn get_by_id(&self, policy_id: &str) -> Result<JitNetworkAccessPolicy, ArmError> {
        let id = id_of_type(policy_id, POLICY_TYPE)?;
        self.arm.get_json(id.as_str(), JIT_API_VERSION, &[]).await
    }

    /// Creates or replaces a policy (`JitNetworkAccessPolicies_CreateOrUpdate`). PUT
    /// replaces the whole VM list: read, merge, then write; a failed PUT is not resent.
    pub async fn create_or_update(
        &self,
        subscription_id: &str,
        resource_group: &str,
        asc_location: &str,
        policy_name: &str,
        policy: &JitNetworkAccessPolicy,
    ) -> Result<JitNetworkAccessPolicy, ArmError> {
        let path = policy_path(subscription_id, resource_group, asc_location, policy_name)?;
        self.arm
            .put_json_with(&path, JIT_API_VERSION, policy, Idempotency::RebuiltByCaller)
            .await
    }

    /// Creates or replaces the policy with id `policy_id`.
    pub async fn create_or_update_by_id(
        &self,
        policy_id: &str,
        policy: &JitNetworkAccessPolicy,
    ) -> Result<JitNetworkAccessPolicy, ArmError> {
        let id = id_of_type(policy_id, POLICY_TYPE)?;
        self.arm
            .put_json_with(
                id.as_str(),
                JIT_API_VERSION,
                policy,
                Idempotency::RebuiltByCaller,
            )
            .await
    }

    /// Deletes a policy (`JitNetworkAccessPolicies_Delete`); a failed DELETE is not
    /// resent (a VM added meanwhile would go with it).
    pub async fn delete(
        &self,
        subscription_id: &str,
        resource_group: &str,
        asc_location: &str,
        policy_name: &str,
    ) -> Result<DeleteOutcome, ArmError> {
        let path = policy_path(subscription_id, resource_group, asc_location, policy_name)?;
        self.arm
            .delete_with(&path, JIT_API_VERSION, Idempotency::RebuiltByCaller)
            .await
    }

    /// Deletes the policy with id `policy_id`; not resent after a failure.
    pub async fn delete_by_id(&self, policy_id: &str) -> Result<DeleteOutcome, ArmError> {
        let id = id_of_type(policy_id, POLICY_TYPE)?;
        self.arm
            .delete_with(id.as_str(), JIT_API_VERSION, Idempotency::RebuiltByCaller)
            .await
    }

    /// Requests access (`JitNetworkAccessPolicies_Initiate`, 202 with the request).
    ///
    /// Not repeated after a failure that may have reached Azure: a second initiate
    /// would supersede the first, so the caller checks the policy instead.
    pub async fn initiate(
        &self,
        subscription_id: &str,
        resource_group: &str,
        asc_location: &str,
        policy_name: &str,
        request: &JitNetworkAccessPolicyInitiateRequest,
    ) -> Result<JitNetworkAccessRequest, ArmError> {
        let path = policy_path(subscription_id, resource_group, asc_location, policy_name)?;
        self.initiate_at(&path, request).await
    }

    /// Requests access at `{policy_id}/initiate`.
    pub async fn initiate_by_id(
        &self,
        policy_id: &str,
        request: &JitNetworkAccessPolicyInitiateRequest,
    ) -> Result<JitNetworkAccessRequest, ArmError> {
        let id = id_of_type(policy_id, POLICY_TYPE)?;
        self.initiate_at(id.as_str(), request).await
    }

    async fn initiate_at(
        &self,
        policy_path: &str,
        request: &JitNetworkAccessPolicyInitiateRequest,
    ) -> Result<JitNetworkAccessRequest, ArmError> {
        let path = format!("{policy_path}/initiate");
        self.arm
            .post_json(&path, JIT_API_VERSION, request, Idempotency::NonIdempotent)
            .await
    }
}

fn policy_path(
    subscription_id: &str,
    resource_group: &str,
    asc_location: &str,
    policy_name: &str,
) -> Result<String, ArmError> {
    segment("location", asc_location)?;
    segment("policy name", policy_name)?;
    Ok(format!(
        "{}/providers/Microsoft.Security/locations/{asc_location}/jitNetworkAccessPolicies/{policy_name}",
        resource_group_path(subscription_id, resource_group)?
    ))
}
