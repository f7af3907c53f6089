//! `Locations_List` and `Locations_Get` (Microsoft.Security, 2015-06-01-preview).

use super::{segment, subscription_path};
use crate::azure::arm::{ArmClient, ArmError};
use crate::azure::models::{AscLocation, SECURITY_LOCATIONS_API_VERSION};

/// Defender for Cloud locations (the subscription's home region).
#[derive(Clone, Debug)]
pub struct SecurityLocationsClient {
    arm: ArmClient,
}

impl SecurityLocationsClient {
    /// A client over `arm`.
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }

    /// The locations of a subscription (`Locations_List`; in practice one).
    pub async fn list(&self, subscription_id: &str) -> Result<Vec<AscLocation>, ArmError> {
        let path = format!(
            "{}/providers/Microsoft.Security/locations",
            subscription_path(subscription_id)?
        );
        self.arm
            .list_all(&path, SECURITY_LOCATIONS_API_VERSION, &[])
            .await
    }

    /// One location (`Locations_Get`).
    pub async fn get(
        &self,
        subscription_id: &str,
        asc_location: &str,
    ) -> Result<AscLocation, ArmError> {
        segment("location", asc_location)?;
        let path = format!(
            "{}/providers/Microsoft.Security/locations/{asc_location}",
            subscription_path(subscription_id)?
        );
        self.arm
            .get_json(&path, SECURITY_LOCATIONS_API_VERSION, &[])
            .await
    }
}
