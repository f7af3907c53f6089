//! Microsoft.Security `jitNetworkAccessPolicies` (api-version 2020-01-01).
//!
//! A policy is read, changed and written back whole (PUT replaces the document), so these
//! types keep every field they do not model in `additional_properties`: a newer Azure
//! field survives a read-modify-write.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{IsoDuration, azure_time};

/// The api-version of every JIT policy call.
pub const JIT_API_VERSION: &str = "2020-01-01";

/// A JIT network access policy (`JitNetworkAccessPolicy`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessPolicy {
    /// Resource id (`…/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Policy name (the portal uses `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type (`Microsoft.Security/locations/jitNetworkAccessPolicies`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Kind (`Basic` in every known example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The policy's location (the `{ascLocation}` in its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The policy itself.
    pub properties: JitNetworkAccessPolicyProperties,
    /// Fields this version of `jit` does not model, kept for write-back.
    #[serde(flatten)]
    pub additional_properties: Map<String, Value>,
}

/// The properties of a [`JitNetworkAccessPolicy`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessPolicyProperties {
    /// The VMs the policy covers, with their ports.
    #[serde(default)]
    pub virtual_machines: Vec<JitNetworkAccessPolicyVirtualMachine>,
    /// Access requests made against this policy (history included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<JitNetworkAccessRequest>,
    /// Provisioning state (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// Fields this version of `jit` does not model, kept for write-back.
    #[serde(flatten)]
    pub additional_properties: Map<String, Value>,
}

/// One VM in a policy (`JitNetworkAccessPolicyVirtualMachine`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessPolicyVirtualMachine {
    /// The VM's resource id.
    pub id: String,
    /// The ports JIT manages for this VM.
    #[serde(default)]
    pub ports: Vec<JitNetworkAccessPortRule>,
    /// Public IP of the Azure Firewall in front of the VM, if one is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<String>,
    /// Fields this version of `jit` does not model, kept for write-back.
    #[serde(flatten)]
    pub additional_properties: Map<String, Value>,
}

string_enum! {
    /// Protocol of a JIT port rule (`modelAsString`).
    JitProtocol {
        /// TCP.
        Tcp => "TCP",
        /// UDP.
        Udp => "UDP",
        /// Any protocol.
        All => "*",
    }
}

/// A port in a policy (`JitNetworkAccessPortRule`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessPortRule {
    /// Port number.
    pub number: u16,
    /// Protocol.
    pub protocol: JitProtocol,
    /// One allowed source (IP, CIDR or `*`); exclusive with the list below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefix: Option<String>,
    /// Several allowed sources; exclusive with the field above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefixes: Option<Vec<String>>,
    /// Longest access a request may ask for (ISO-8601, 5 minutes to 1 day).
    pub max_request_access_duration: IsoDuration,
    /// Fields this version of `jit` does not model, kept for write-back.
    #[serde(flatten)]
    pub additional_properties: Map<String, Value>,
}

impl JitNetworkAccessPortRule {
    /// Every allowed source prefix, whichever of the two fields holds them.
    pub fn allowed_sources(&self) -> Vec<&str> {
        let mut sources: Vec<&str> = self
            .allowed_source_address_prefix
            .iter()
            .map(String::as_str)
            .collect();
        if let Some(prefixes) = &self.allowed_source_address_prefixes {
            sources.extend(prefixes.iter().map(String::as_str));
        }
        sources
    }
}

/// An access request recorded in a policy, also the body of the initiate response
/// (`JitNetworkAccessRequest`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessRequest {
    /// The VMs and ports of the request.
    #[serde(default)]
    pub virtual_machines: Vec<JitNetworkAccessRequestVirtualMachine>,
    /// When the request was made.
    #[serde(with = "azure_time")]
    pub start_time_utc: Timestamp,
    /// Who asked (a UPN; often missing or empty for service principals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requestor: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Fields this version of `jit` does not model, kept for write-back.
    #[serde(flatten)]
    pub additional_properties: Map<String, Value>,
}

/// One VM of a request (`JitNetworkAccessRequestVirtualMachine`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessRequestVirtualMachine {
    /// The VM's resource id.
    pub id: String,
    /// The ports opened.
    #[serde(default)]
    pub ports: Vec<JitNetworkAccessRequestPort>,
    /// Fields this version of `jit` does not model, kept for write-back.
    #[serde(flatten)]
    pub additional_properties: Map<String, Value>,
}

string_enum! {
    /// State of a requested port (`modelAsString`). The spec lists `Revoked` and
    /// `Initiated`; Azure also reports `Initiating` while it applies the rules.
    JitPortStatus {
        /// Azure is still applying the NSG/firewall rules.
        Initiating => "Initiating",
        /// The rules are in place.
        Initiated => "Initiated",
        /// The access ended.
        Revoked => "Revoked",
    }
}

string_enum! {
    /// Why a requested port has its status (`modelAsString`).
    JitStatusReason {
        /// The end time passed.
        Expired => "Expired",
        /// Someone asked for it (or revoked it).
        UserRequested => "UserRequested",
        /// A newer request for the same port replaced this one.
        NewerRequestInitiated => "NewerRequestInitiated",
    }
}

/// One port of a request (`JitNetworkAccessRequestPort`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessRequestPort {
    /// Port number.
    pub number: u16,
    /// The source the port was opened for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefix: Option<String>,
    /// Several sources the port was opened for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefixes: Option<Vec<String>>,
    /// When the access ends.
    #[serde(with = "azure_time")]
    pub end_time_utc: Timestamp,
    /// Current state.
    pub status: JitPortStatus,
    /// Why it has that state.
    pub status_reason: JitStatusReason,
    /// The Azure Firewall port mapped to this one, if a firewall is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_port: Option<u16>,
    /// Fields this version of `jit` does not model, kept for write-back.
    #[serde(flatten)]
    pub additional_properties: Map<String, Value>,
}

/// The body of `POST {policy}/initiate` (`JitNetworkAccessPolicyInitiateRequest`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessPolicyInitiateRequest {
    /// The VMs and ports to open.
    pub virtual_machines: Vec<JitNetworkAccessPolicyInitiateVirtualMachine>,
    /// Why (shown in the portal and in the policy's request history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

/// One VM of an initiate request (`JitNetworkAccessPolicyInitiateVirtualMachine`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessPolicyInitiateVirtualMachine {
    /// The VM's resource id.
    pub id: String,
    /// The ports to open.
    pub ports: Vec<JitNetworkAccessPolicyInitiatePort>,
}

/// One port of an initiate request (`JitNetworkAccessPolicyInitiatePort`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JitNetworkAccessPolicyInitiatePort {
    /// Port number.
    pub number: u16,
    /// The source to allow; when omitted Azure uses the caller's address as ARM sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_source_address_prefix: Option<String>,
    /// When to close the port (required by the spec; compute it against Azure's clock).
    #[serde(with = "azure_time")]
    pub end_time_utc: Timestamp,
    /// The alternative many real clients send instead of an end time (`PT3H`); not in the
    /// 2020-01-01 schema, so `jit` leaves it out unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<IsoDuration>,
}
