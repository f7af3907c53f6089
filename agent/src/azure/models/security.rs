//! Microsoft.Security locations (api-version 2015-06-01-preview): the Defender for Cloud
//! "home region" of a subscription; and Defender plans (`pricings`, 2024-01-01), because
//! JIT comes with Defender for Servers Plan 2.
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

/// The api-version of the pricings calls.
pub const PRICINGS_API_VERSION: &str = "2024-01-01";

/// The Defender plan JIT belongs to: Defender for Servers is the `VirtualMachines`
/// pricing.
pub const DEFENDER_FOR_SERVERS: &str = "VirtualMachines";

/// The Defender for Servers sub-plan that includes JIT VM access.
pub const JIT_SUB_PLAN: &str = "P2";

string_enum! {
    /// `pricingTier` (`modelAsString`).
    PricingTier {
        /// The plan is off.
        Free => "Free",
        /// The plan is on.
        Standard => "Standard",
    }
}

/// A Defender plan of a scope (`Pricing`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pricing {
    /// Resource id (`/subscriptions/{id}/providers/Microsoft.Security/pricings/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The plan (`VirtualMachines`, `SqlServers`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<PricingProperties>,
}

/// `PricingProperties` (the fields `jit` reads).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PricingProperties {
    /// `Free` or `Standard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_tier: Option<PricingTier>,
    /// The sub-plan of a Standard plan (`P1`, `P2` for `VirtualMachines`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_plan: Option<String>,
    /// `FullyCovered`, `PartiallyCovered` or `NotCovered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_coverage_status: Option<String>,
    /// Whether the plan is deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<bool>,
}

impl Pricing {
    /// The tier, when Azure said.
    pub fn tier(&self) -> Option<&PricingTier> {
        self.properties.as_ref()?.pricing_tier.as_ref()
    }

    /// The sub-plan, when Azure said.
    pub fn sub_plan(&self) -> Option<&str> {
        self.properties.as_ref()?.sub_plan.as_deref()
    }
}

/// A list of pricings (`PricingList`).
pub type PricingList = super::Page<Pricing>;
