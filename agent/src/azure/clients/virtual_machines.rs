//! `VirtualMachines_*` (Microsoft.Compute, 2024-07-01).

use super::{id_of_type, resource_group_path, segment, subscription_path};
use crate::azure::arm::{ArmClient, ArmError, Idempotency};
use crate::azure::models::{COMPUTE_API_VERSION, VirtualMachine, VirtualMachineInstanceView};

const VM_TYPE: &str = "Microsoft.Compute/virtualMachines";

/// What `$expand` adds to a VM GET (`InstanceViewTypes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceViewTypes {
    /// The run-time state (power state, statuses).
    InstanceView,
    /// The user data.
    UserData,
    /// The resiliency policy.
    ResiliencyPolicy,
}

impl InstanceViewTypes {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceViewTypes::InstanceView => "instanceView",
            InstanceViewTypes::UserData => "userData",
            InstanceViewTypes::ResiliencyPolicy => "resiliencyPolicy",
        }
    }
}

/// Options of [`VirtualMachinesClient::get`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtualMachinesGetOptions {
    /// `$expand`.
    pub expand: Option<InstanceViewTypes>,
}

/// Options of [`VirtualMachinesClient::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtualMachinesListOptions {
    /// `$filter` (only `virtualMachineScaleSet/id eq '…'` is supported by Azure).
    pub filter: Option<String>,
    /// `$expand=instanceView` (Azure accepts it only with a filter).
    pub expand_instance_view: bool,
}

/// Options of [`VirtualMachinesClient::list_all`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtualMachinesListAllOptions {
    /// `statusOnly=true`: add the run state of each VM.
    pub status_only: bool,
    /// `$filter` (only `virtualMachineScaleSet/id eq '…'`).
    pub filter: Option<String>,
    /// `$expand=instanceView` (only with a filter).
    pub expand_instance_view: bool,
}

/// Virtual machines.
#[derive(Clone, Debug)]
pub struct VirtualMachinesClient {
    arm: ArmClient,
}

impl VirtualMachinesClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// One VM (`VirtualMachines_Get`).
    pub async fn get(
        &self,
        subscription_id: &str,
        resource_group: &str,
        vm_name: &str,
        options: Option<VirtualMachinesGetOptions>,
    ) -> Result<VirtualMachine, ArmError> {
        let path = vm_path(subscription_id, resource_group, vm_name)?;
        self.get_at(&path, options).await
    }

    /// One VM by id.
    pub async fn get_by_id(
        &self,
        vm_id: &str,
        options: Option<VirtualMachinesGetOptions>,
    ) -> Result<VirtualMachine, ArmError> {
        let id = id_of_type(vm_id, VM_TYPE)?;
        self.get_at(id.as_str(), options).await
    }

    async fn get_at(
        &self,
        path: &str,
        options: Option<VirtualMachinesGetOptions>,
    ) -> Result<VirtualMachine, ArmError> {
        let expand = options.and_then(|options| options.expand);
        let query: Vec<(&str, &str)> = expand
            .map(|expand| ("$expand", expand.as_str()))
            .into_iter()
            .collect();
        self.arm.get_json(path, COMPUTE_API_VERSION, &query).await
    }

    /// VMs of a resource group (`VirtualMachines_List`).
    pub async fn list(
        &self,
        subscription_id: &str,
        resource_group: &str,
        options: Option<VirtualMachinesListOptions>,
    ) -> Result<Vec<VirtualMachine>, ArmError> {
        let options = options.unwrap_or_default();
        let path = format!(
            "{}/providers/Microsoft.Compute/virtualMachines",
            resource_group_path(subscription_id, resource_group)?
        );
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(filter) = options.filter.as_deref() {
            query.push(("$filter", filter));
        }
        if options.expand_instance_view {
            query.push(("$expand", "instanceView"));
        }
        self.arm.list_all(&path, COMPUTE_API_VERSION, &query).await
    }

    /// Every VM of a subscription (`VirtualMachines_ListAll`).
    pub async fn list_all(
        &self,
        subscription_id: &str,
        options: Option<VirtualMachinesListAllOptions>,
    ) -> Result<Vec<VirtualMachine>, ArmError> {
        let options = options.unwrap_or_default();
        let path = format!(
            "{}/providers/Microsoft.Compute/virtualMachines",
            subscription_path(subscription_id)?
        );
        let mut query: Vec<(&str, &str)> = Vec::new();
        if options.status_only {
            query.push(("statusOnly", "true"));
        }
        if let Some(filter) = options.filter.as_deref() {
            query.push(("$filter", filter));
        }
        if options.expand_instance_view {
            query.push(("$expand", "instanceView"));
        }
        self.arm.list_all(&path, COMPUTE_API_VERSION, &query).await
    }

    /// The run-time state of a VM (`VirtualMachines_InstanceView`).
    pub async fn instance_view(
        &self,
        subscription_id: &str,
        resource_group: &str,
        vm_name: &str,
    ) -> Result<VirtualMachineInstanceView, ArmError> {
        let path = format!(
            "{}/instanceView",
            vm_path(subscription_id, resource_group, vm_name)?
        );
        self.arm.get_json(&path, COMPUTE_API_VERSION, &[]).await
    }

    /// Starts a VM and waits until Azure reports the operation finished
    /// (`VirtualMachines_Start`, long-running). Starting a running VM is harmless, so the
    /// call may be repeated after a failure.
    pub async fn start(
        &self,
        subscription_id: &str,
        resource_group: &str,
        vm_name: &str,
    ) -> Result<(), ArmError> {
        let path = format!(
            "{}/start",
            vm_path(subscription_id, resource_group, vm_name)?
        );
        self.arm
            .post_long_running::<()>(&path, COMPUTE_API_VERSION, None, Idempotency::Idempotent)
            .await
    }
}

fn vm_path(subscription_id: &str, resource_group: &str, vm_name: &str) -> Result<String, ArmError> {
    segment("VM name", vm_name)?;
    Ok(format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{vm_name}",
        resource_group_path(subscription_id, resource_group)?
    ))
}
