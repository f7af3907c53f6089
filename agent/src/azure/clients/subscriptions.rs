//! `Subscriptions_List` (Microsoft.Resources, 2022-12-01).

use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::models::{SUBSCRIPTIONS_API_VERSION, Subscription};

/// Subscriptions.
#[derive(Clone, Debug)]
pub struct SubscriptionsClient {
    arm: ArmClient,
}

impl SubscriptionsClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// Every subscription the signed-in identity can see in the token's tenant
    /// (`Subscriptions_List`).
    pub async fn list(&self) -> Result<Vec<Subscription>, ArmError> {
        self.arm
            .list_all("/subscriptions", SUBSCRIPTIONS_API_VERSION, &[])
            .await
    }
}
