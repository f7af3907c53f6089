//! The emulated resources and their state. (Skeleton: filled in shortly.)

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::world::{PrincipalSpec, World, WorldError};

/// How a world runs.
#[derive(Clone, Debug)]
pub struct WorldSettings {
    /// The virtual clock.
    pub clock: crate::clock::Clock,
    /// Where every caller and connection comes from.
    pub client_ip: IpAddr,
    /// How long an initiated request stays `Initiating`.
    pub initiating_delay: jiff::SignedDuration,
    /// Authorised for every Linux VM's admin user.
    pub ssh_client_key: russh::keys::PublicKey,
}

/// A started world; dropping it stops the VM port listeners.
#[derive(Debug)]
pub struct RunningWorld {
    /// The shared state.
    pub state: SharedState,
}

/// Starts a world: materialises the resources and binds every VM port.
pub async fn start_world(
    world: World,
    settings: WorldSettings,
) -> Result<RunningWorld, WorldError> {
    Ok(RunningWorld {
        state: SharedState {
            inner: Arc::new(Mutex::new(Inner {
                world,
                client_ip: settings.client_ip,
            })),
        },
    })
}

#[derive(Debug)]
struct Inner {
    world: World,
    client_ip: IpAddr,
}

/// The emulator's state, shared between the HTTP front end and the VM port gates.
#[derive(Clone, Debug)]
pub struct SharedState {
    inner: Arc<Mutex<Inner>>,
}

impl SharedState {
    fn with<T>(&self, action: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        action(&mut guard)
    }

    /// The tenant.
    pub fn tenant_id(&self) -> String {
        self.with(|inner| inner.world.tenant_id.clone())
    }

    /// Every subscription id.
    pub fn subscription_ids(&self) -> Vec<String> {
        Vec::new()
    }

    /// The principals.
    pub fn principals(&self) -> Vec<PrincipalSpec> {
        self.with(|inner| inner.world.principals.clone())
    }

    /// Where callers and connections come from.
    pub fn client_ip(&self) -> IpAddr {
        self.with(|inner| inner.client_ip)
    }

    /// The caller moved.
    pub fn set_client_ip(&self, ip: IpAddr) {
        self.with(|inner| inner.client_ip = ip);
    }

    /// A full state dump.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Pages every list at this size.
    pub fn set_page_size(&self, size: Option<usize>) {
        let _ = size;
    }

    /// Starts or deallocates a VM; `false` when there is no such VM.
    pub fn set_power_state(&self, vm_id: &str, running: bool) -> bool {
        let _ = (vm_id, running);
        false
    }
}
