//! Microsoft.Security locations (api-version 2015-06-01-preview): the Defender for Cloud
//! "home region" of a subscription.
//!
//! The spec calls JIT's `{ascLocation}` this region, yet live JIT policies sit under the
//! VM's own region; `jit` therefore finds policies by listing, and uses locations only
//! for display and diagnostics.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The api-version of the locations calls.
pub const SECURITY_LOCATIONS_API_VERSION: &str = "2015-06-01-preview";

/// A Defender for Cloud location (`AscLocation`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AscLocation {
    /// Resource id (`/subscriptions/{id}/providers/Microsoft.Security/locations/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The location name (the region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Properties (the spec declares an empty object; Azure sends `homeRegionName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<AscLocationProperties>,
}

/// `AscLocationProperties`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AscLocationProperties {
    /// The home region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_region_name: Option<String>,
    /// Anything else Azure sends.
    #[serde(flatten)]
    pub additional_properties: Map<String, Value>,
}

/// A page of locations (`AscLocationList`).
pub type AscLocationList = super::Page<AscLocation>;
