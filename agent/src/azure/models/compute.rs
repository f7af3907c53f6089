//! Microsoft.Compute virtual machines (api-version 2024-07-01), as far as `jit` reads them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::common::azure_time;

/// The api-version of every VM call.
pub const COMPUTE_API_VERSION: &str = "2024-07-01";

/// A virtual machine (`VirtualMachine`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachine {
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// VM name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type (`Microsoft.Compute/virtualMachines`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Region; may be a display name such as `West US` (see [`normalize_location`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Availability zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// The VM's properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<VirtualMachineProperties>,
}

/// Properties of a [`VirtualMachine`] (`VirtualMachineProperties`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineProperties {
    /// The VM's unique id (not the resource id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_id: Option<String>,
    /// Size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_profile: Option<HardwareProfile>,
    /// Disks and image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_profile: Option<StorageProfile>,
    /// OS settings (admin user, computer name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_profile: Option<OsProfile>,
    /// Network interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_profile: Option<NetworkProfile>,
    /// Provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// Run-time state, present with `$expand=instanceView`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_view: Option<VirtualMachineInstanceView>,
    /// When the VM was created.
    #[serde(
        default,
        with = "azure_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub time_created: Option<Timestamp>,
}

/// `HardwareProfile`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfile {
    /// The size, e.g. `Standard_DS3_v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_size: Option<String>,
}

/// `StorageProfile`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageProfile {
    /// The image the VM was created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_reference: Option<ImageReference>,
    /// The OS disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_disk: Option<OsDisk>,
}

/// `ImageReference`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReference {
    /// Publisher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// Offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<String>,
    /// SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

string_enum! {
    /// The OS family (`OperatingSystemTypes`, `modelAsString`).
    OperatingSystemTypes {
        /// Windows.
        Windows => "Windows",
        /// Linux.
        Linux => "Linux",
    }
}

/// `OSDisk`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OsDisk {
    /// The OS family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<OperatingSystemTypes>,
    /// Disk name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `OSProfile`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OsProfile {
    /// Host name inside the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_name: Option<String>,
    /// The administrator account (the default SSH user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_username: Option<String>,
    /// Linux settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_configuration: Option<LinuxConfiguration>,
}

/// `LinuxConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxConfiguration {
    /// `true` when only SSH keys are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_password_authentication: Option<bool>,
}

/// `NetworkProfile`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    /// The VM's NICs.
    #[serde(default)]
    pub network_interfaces: Vec<NetworkInterfaceReference>,
}

/// `NetworkInterfaceReference`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceReference {
    /// The NIC's resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Whether this is the primary NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<NetworkInterfaceReferenceProperties>,
}

/// `NetworkInterfaceReferenceProperties`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceReferenceProperties {
    /// Whether this is the primary NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

/// Run-time state of a VM (`VirtualMachineInstanceView`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineInstanceView {
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_name: Option<String>,
    /// OS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    /// OS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Status entries (`ProvisioningState/…`, `PowerState/…`).
    #[serde(default)]
    pub statuses: Vec<InstanceViewStatus>,
}

/// One status entry (`InstanceViewStatus`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceViewStatus {
    /// Status code, e.g. `PowerState/running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Level (`Info`, `Warning`, `Error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Short localised label, e.g. `VM running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_status: Option<String>,
    /// Detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

string_enum! {
    /// A VM's power state, from the `PowerState/…` status code (also what Resource
    /// Graph reports in `properties.extended.instanceView.powerState.code`).
    PowerState {
        /// Running.
        Running => "running",
        /// Starting.
        Starting => "starting",
        /// Stopping.
        Stopping => "stopping",
        /// Stopped but still allocated (billed).
        Stopped => "stopped",
        /// Deallocating.
        Deallocating => "deallocating",
        /// Deallocated.
        Deallocated => "deallocated",
    }
}

impl PowerState {
    /// Parses a status code such as `PowerState/running`; `None` for other codes.
    pub fn from_code(code: &str) -> Option<PowerState> {
        let (prefix, state) = code.split_once('/')?;
        prefix
            .eq_ignore_ascii_case("PowerState")
            .then(|| PowerState::from(state))
    }
}

impl VirtualMachineInstanceView {
    /// The power state among the statuses, if reported.
    pub fn power_state(&self) -> Option<PowerState> {
        self.statuses
            .iter()
            .filter_map(|status| status.code.as_deref())
            .find_map(PowerState::from_code)
    }
}

impl VirtualMachine {
    /// The OS family from the OS disk.
    pub fn os_type(&self) -> Option<&OperatingSystemTypes> {
        self.properties
            .as_ref()?
            .storage_profile
            .as_ref()?
            .os_disk
            .as_ref()?
            .os_type
            .as_ref()
    }

    /// The power state, when the VM was read with its instance view.
    pub fn power_state(&self) -> Option<PowerState> {
        self.properties
            .as_ref()?
            .instance_view
            .as_ref()?
            .power_state()
    }

    /// The administrator user name.
    pub fn admin_username(&self) -> Option<&str> {
        self.properties
            .as_ref()?
            .os_profile
            .as_ref()?
            .admin_username
            .as_deref()
    }

    /// NIC ids, the primary first.
    pub fn network_interface_ids(&self) -> Vec<&str> {
        let Some(profile) = self
            .properties
            .as_ref()
            .and_then(|properties| properties.network_profile.as_ref())
        else {
            return Vec::new();
        };
        let is_primary = |nic: &&NetworkInterfaceReference| {
            nic.properties
                .as_ref()
                .and_then(|properties| properties.primary)
                .unwrap_or(false)
        };
        let mut nics: Vec<&NetworkInterfaceReference> = profile.network_interfaces.iter().collect();
        nics.sort_by_key(|nic| !is_primary(nic));
        nics.iter().filter_map(|nic| nic.id.as_deref()).collect()
    }

    /// The region in ARM's short form (`westus`), see [`normalize_location`].
    pub fn normalized_location(&self) -> Option<String> {
        self.location.as_deref().map(normalize_location)
    }
}

/// ARM sometimes writes a region's display name (`West US`); everything that compares
/// regions needs the short name (`westus`).
pub fn normalize_location(location: &str) -> String {
    location
        .chars()
        .filter(|character| !character.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A page of VMs (`VirtualMachineListResult`).
pub type VirtualMachineListResult = super::Page<VirtualMachine>;

/// The status of a long-running operation, as polled from `Azure-AsyncOperation`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncOperationStatus {
    /// `InProgress`, `Succeeded`, `Failed` or `Canceled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OperationStatus>,
    /// The failure, when `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<super::CloudErrorBody>,
}

string_enum! {
    /// The status of a long-running ARM operation.
    OperationStatus {
        /// Still running.
        InProgress => "InProgress",
        /// Finished successfully.
        Succeeded => "Succeeded",
        /// Finished with an error.
        Failed => "Failed",
        /// Cancelled.
        Canceled => "Canceled",
    }
}

impl OperationStatus {
    /// `true` for `Succeeded`, `Failed` and `Canceled`.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            OperationStatus::Succeeded | OperationStatus::Failed | OperationStatus::Canceled
        )
    }
}
