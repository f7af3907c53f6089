//! Microsoft.Resources subscriptions (api-version 2022-12-01).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The api-version of the subscription list.
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";

string_enum! {
    /// `SubscriptionState`. Unknown values are kept.
    SubscriptionState {
        /// Usable.
        Enabled => "Enabled",
        /// Usable, with a warning (for example a spending limit reached soon).
        Warned => "Warned",
        /// Payment overdue; read-only.
        PastDue => "PastDue",
        /// Disabled.
        Disabled => "Disabled",
        /// Deleted.
        Deleted => "Deleted",
    }
}

impl SubscriptionState {
    /// `true` when resources in the subscription can be changed (`Enabled`, `Warned`).
    pub fn is_active(&self) -> bool {
        matches!(self, SubscriptionState::Enabled | SubscriptionState::Warned)
    }
}

/// A subscription (`Subscription`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `/subscriptions/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The subscription id (a GUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The tenant the subscription belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SubscriptionState>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A page of subscriptions (`SubscriptionListResult`).
pub type SubscriptionListResult = super::Page<Subscription>;
