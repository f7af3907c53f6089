//! `Pricings_List` / `Pricings_Get` (Microsoft.Security, 2024-01-01): the Defender plans
//! of a subscription, read to tell whether Defender for Servers Plan 2 (which JIT comes
//! with) is on.

use super::{segment, subscription_path};
use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::models::{PRICINGS_API_VERSION, Pricing};

/// Defender plans.
#[derive(Clone, Debug)]
pub struct PricingsClient {
    arm: ArmClient,
}

impl PricingsClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// Every plan of a subscription (`Pricings_List`).
    pub async fn list(&self, subscription_id: &str) -> Result<Vec<Pricing>, ArmError> {
        let path = format!(
            "{}/providers/Microsoft.Security/pricings",
            subscription_path(subscription_id)?
        );
        self.arm.list_all(&path, PRICINGS_API_VERSION, &[]).await
    }

    /// One plan of a subscription (`Pricings_Get`), e.g. `VirtualMachines`.
    pub async fn get(&self, subscription_id: &str, name: &str) -> Result<Pricing, ArmError> {
        segment("pricing name", name)?;
        let path = format!(
            "{}/providers/Microsoft.Security/pricings/{name}",
            subscription_path(subscription_id)?
        );
        self.arm.get_json(&path, PRICINGS_API_VERSION, &[]).await
    }
}
