//! The emulated resources and their state, shared by the ARM front end and the VM ports.
//!
//! [`start_world`] materialises a [`World`] (ids, GUIDs, the rules its policies imply),
//! binds a loopback listener for every VM port and hands out a [`SharedState`]. Both the
//! resource providers and the listeners' gate go through it, under one lock, so what ARM
//! shows and what a TCP connection meets are the same state at the same virtual time.
//!
//! Time-driven changes (a request turning `Initiated`, a window expiring, a VM finishing
//! its start) are applied lazily: every access first settles the state to the clock's
//! "now". A timer settles it too, so the state dump stays current when nobody asks.

pub mod gate;
pub(crate) mod graph;
pub mod ids;
pub(crate) mod jit;
pub(crate) mod materialise;
pub(crate) mod model;
pub(crate) mod render;
mod tracked;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::hooks::{HookError, HookSpec, HookStatus, PolicyChange};
use crate::vm_ports::{self, PortService, SharedGate, SshService, VmPort};
use crate::world::{PortServiceKind, PrincipalKind, PrincipalSpec, World, WorldError};
use ids::key;
use materialise::{Bindings, PUBLIC_ADDRESS};
use model::{Power, Resources, VmOperation};
use tracked::Tracked;

/// How long a VM `start` takes, on the virtual clock.
pub(crate) const VM_START_DURATION: SignedDuration = SignedDuration::from_secs(2);

/// How many finished VM operations are remembered.
const OPERATION_HISTORY: usize = 200;

/// How often the timer settles the state, in real time.
const SETTLE_INTERVAL: Duration = Duration::from_millis(250);

/// How a world runs.
#[derive(Clone, Debug)]
pub struct WorldSettings {
    /// The virtual clock.
    pub clock: crate::clock::Clock,
    /// Where every caller and connection comes from.
    pub client_ip: IpAddr,
    /// How long an initiated request stays `Initiating` (virtual time).
    pub initiating_delay: SignedDuration,
    /// Authorised for every Linux VM's admin user.
    pub ssh_client_key: russh::keys::PublicKey,
}

/// A started world. Dropping it stops the VM port listeners and the settle timer.
#[derive(Debug)]
pub struct RunningWorld {
    /// The shared state.
    pub state: SharedState,
    listeners: Vec<vm_ports::PortListener>,
    timer: tokio::task::JoinHandle<()>,
}

impl RunningWorld {
    /// The loopback addresses of the VM port listeners.
    pub fn listener_addresses(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .map(vm_ports::PortListener::local_addr)
            .collect()
    }
}

impl Drop for RunningWorld {
    fn drop(&mut self) {
        self.timer.abort();
    }
}

/// One VM port to bind at start.
struct PlannedPort {
    vm_key: String,
    vm_id: String,
    vm_name: String,
    service: PortServiceKind,
    logical: u16,
    pinned: Option<u16>,
}

/// Starts a world: validates it, binds every VM port (a free loopback port, or the
/// pinned one), materialises the resources with those numbers, and serves each port
/// behind the NSG/firewall gate. Must run inside a tokio runtime.
pub async fn start_world(
    mut world: World,
    settings: WorldSettings,
) -> Result<RunningWorld, WorldError> {
    world.validate()?;
    for principal in &mut world.principals {
        if principal.kind == PrincipalKind::ServicePrincipal && principal.client_secret.is_none() {
            principal.client_secret = Some(generated_secret());
        }
    }
    let mut planned = Vec::new();
    let mut host_keys = BTreeMap::new();
    for subscription in &world.subscriptions {
        for group in &subscription.resource_groups {
            for vm in &group.virtual_machines {
                let vm_id = ids::resource_id(
                    &subscription.id,
                    &group.name,
                    "Microsoft.Compute/virtualMachines",
                    &vm.name,
                );
                let vm_key = key(&vm_id);
                if vm
                    .ports
                    .iter()
                    .any(|port| port.service == PortServiceKind::Ssh)
                {
                    host_keys.insert(vm_key.clone(), vm_ports::keys::generate_ed25519());
                }
                for port in &vm.ports {
                    planned.push(PlannedPort {
                        vm_key: vm_key.clone(),
                        vm_id: vm_id.clone(),
                        vm_name: vm.name.clone(),
                        service: port.service,
                        logical: port.number,
                        pinned: port.pinned,
                    });
                }
            }
        }
    }
    let mut bindings = Bindings::default();
    let mut bound_listeners = Vec::new();
    for port in planned {
        let describe = || {
            format!(
                "{} port {} of VM {}",
                port.service.as_str(),
                port.logical,
                port.vm_id
            )
        };
        let listener = vm_ports::bind(port.pinned)
            .await
            .map_err(|source| WorldError::Listen {
                what: describe(),
                source,
            })?;
        let bound = listener
            .local_addr()
            .map_err(|source| WorldError::Listen {
                what: describe(),
                source,
            })?
            .port();
        bindings
            .ports
            .insert((port.vm_key.clone(), port.logical), bound);
        bound_listeners.push((port, bound, listener));
    }
    for (vm_key, host_key) in &host_keys {
        let line = vm_ports::keys::public_key_line(host_key.public_key())
            .map_err(|error| WorldError::Invalid(format!("cannot encode a host key: {error}")))?;
        bindings.host_keys.insert(vm_key.clone(), line);
    }
    let now = settings.clock.now();
    let resources = materialise::materialise(&world, &bindings, now)?;
    let client_public_key = vm_ports::keys::public_key_line(&settings.ssh_client_key).ok();
    let state = SharedState {
        inner: Arc::new(Mutex::new(Inner {
            resources: Tracked::new(resources),
            graph: None,
            graph_unindexed: std::collections::HashSet::new(),
            clock: settings.clock.clone(),
            client_ip: settings.client_ip,
            initiating_delay: settings.initiating_delay,
            page_size: world.page_size,
            principals: world.principals.clone(),
            client_public_key,
            listeners: Vec::new(),
            hooks: crate::hooks::Hooks::default(),
        })),
    };
    let gate: SharedGate = Arc::new(StateGate {
        state: state.clone(),
    });
    let mut listeners = Vec::new();
    let mut records = Vec::new();
    for (port, bound, listener) in bound_listeners {
        let (admin_user, computer_name) = state
            .lock()
            .resources
            .virtual_machines
            .get(&port.vm_key)
            .map(|vm| (vm.admin_username.clone(), vm.computer_name.clone()))
            .unwrap_or_else(|| ("azureuser".to_owned(), port.vm_name.clone()));
        let host_key = host_keys.get(&port.vm_key);
        let service = match (port.service, host_key) {
            (PortServiceKind::Ssh, Some(host_key)) => PortService::Ssh(Arc::new(SshService {
                host_key: host_key.clone(),
                admin_user,
                authorized_keys: vec![settings.ssh_client_key.clone()],
                computer_name,
            })),
            (PortServiceKind::Rdp, _) => PortService::Rdp,
            _ => PortService::Silent,
        };
        let vm_port = VmPort {
            vm_id: port.vm_id.clone(),
            port: bound,
        };
        let served =
            vm_ports::serve(listener, vm_port, service, gate.clone()).map_err(|source| {
                WorldError::Listen {
                    what: format!(
                        "{} port {} of VM {}",
                        port.service.as_str(),
                        port.logical,
                        port.vm_id
                    ),
                    source,
                }
            })?;
        let known_hosts = host_key.and_then(|host_key| {
            vm_ports::keys::known_hosts_line(served.local_addr(), host_key.public_key()).ok()
        });
        records.push(ListenerRecord {
            vm_id: port.vm_id,
            service: port.service,
            logical: port.logical,
            address: served.local_addr(),
            known_hosts,
        });
        listeners.push(served);
    }
    state.lock().listeners = records;
    let timer_state = state.clone();
    let timer = tokio::spawn(async move {
        let mut interval = tokio::time::interval(SETTLE_INTERVAL);
        loop {
            interval.tick().await;
            timer_state.settle();
        }
    });
    tracing::info!(
        subscriptions = world.subscriptions.len(),
        listeners = listeners.len(),
        "emulated world started"
    );
    Ok(RunningWorld {
        state,
        listeners,
        timer,
    })
}

fn generated_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A VM port listener, for the state dump.
#[derive(Debug, Clone)]
pub(crate) struct ListenerRecord {
    pub vm_id: String,
    pub service: PortServiceKind,
    pub logical: u16,
    pub address: std::net::SocketAddr,
    pub known_hosts: Option<String>,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub resources: Tracked,
    /// Resource Graph's table, as of some generation of `resources`.
    pub graph: Option<graph::GraphTable>,
    /// Lower-cased ids of resources Resource Graph leaves out, as if it had not indexed
    /// them yet (it lags ARM by seconds to minutes); set by the admin API.
    pub graph_unindexed: std::collections::HashSet<String>,
    pub clock: crate::clock::Clock,
    pub client_ip: IpAddr,
    pub initiating_delay: SignedDuration,
    pub page_size: Option<usize>,
    pub principals: Vec<PrincipalSpec>,
    /// The contract's `ssh_identity`, public half, as `osProfile` lists it.
    pub client_public_key: Option<String>,
    pub listeners: Vec<ListenerRecord>,
    /// Concurrent-writer hooks, pending and fired.
    pub hooks: crate::hooks::Hooks,
}

/// The gate the VM port listeners ask.
struct StateGate {
    state: SharedState,
}

impl vm_ports::PortGate for StateGate {
    fn admits(&self, port: &VmPort) -> bool {
        let inner = self.state.settled();
        let admitted = inner
            .resources
            .admits(&port.vm_id, port.port, inner.client_ip);
        tracing::debug!(vm = %port.vm_id, port = port.port, admitted, "gate decision");
        admitted
    }
}

/// The emulator's state, shared between the HTTP front end and the VM port gates.
/// Cheap to clone.
#[derive(Clone)]
pub struct SharedState {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SharedState")
            .finish_non_exhaustive()
    }
}

impl SharedState {
    /// The lock, without settling (a poisoned lock is still usable: every change keeps
    /// the state consistent before it can panic).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The lock, after applying every transition due up to the clock's now.
    pub(crate) fn settled(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.lock();
        let now = inner.clock.now();
        // Looking first keeps the generation (and what is derived from it) when nothing
        // is due, which is nearly always.
        if inner.resources.has_due(now) {
            inner.resources.settle(now);
        }
        inner
    }

    /// Applies every transition due up to now (requests opening and expiring, VMs
    /// finishing their start).
    pub fn settle(&self) {
        drop(self.settled());
    }

    /// The tenant.
    pub fn tenant_id(&self) -> String {
        self.lock().resources.tenant_id.clone()
    }

    /// Every subscription id, in world order.
    pub fn subscription_ids(&self) -> Vec<String> {
        self.lock()
            .resources
            .subscriptions
            .iter()
            .map(|subscription| subscription.id.clone())
            .collect()
    }

    /// The display name of a subscription.
    pub fn subscription_display_name(&self, subscription_id: &str) -> Option<String> {
        self.lock()
            .resources
            .subscription(subscription_id)
            .map(|subscription| subscription.display_name.clone())
    }

    /// The principals; service principals without a secret in the world have one
    /// generated at start.
    pub fn principals(&self) -> Vec<PrincipalSpec> {
        self.lock().principals.clone()
    }

    /// Where callers and connections come from.
    pub fn client_ip(&self) -> IpAddr {
        self.lock().client_ip
    }

    /// The caller moved (IP drift).
    pub fn set_client_ip(&self, ip: IpAddr) {
        self.lock().client_ip = ip;
    }

    /// Resource Graph leaves these resources out of every query (ids, any case), as if
    /// it lagged behind ARM, until another list replaces this one; ARM still serves
    /// them. Empty: Resource Graph knows everything again.
    pub fn set_graph_unindexed(&self, resource_ids: &[String]) {
        let mut inner = self.lock();
        inner.graph_unindexed = resource_ids
            .iter()
            .map(|id| id.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        inner.graph = None;
    }

    /// Pages every list (`nextLink`, `$skipToken`) at this size; `None` for one page.
    pub fn set_page_size(&self, size: Option<usize>) {
        self.lock().page_size = size.filter(|size| *size > 0);
    }

    /// Starts or deallocates a VM at once; `false` when there is no such VM.
    pub fn set_power_state(&self, vm_id: &str, running: bool) -> bool {
        let mut inner = self.settled();
        let vm_key = key(vm_id);
        if !inner.resources.virtual_machines.contains_key(&vm_key) {
            return false;
        }
        inner.resources.set_power(
            &vm_key,
            if running {
                Power::Running
            } else {
                Power::Deallocated
            },
        );
        true
    }

    /// Registers a concurrent-writer hook; returns its id.
    pub fn add_hook(&self, hook: HookSpec) -> Result<u64, HookError> {
        self.lock().hooks.add(hook)
    }

    /// Every hook, pending and fired, oldest first.
    pub fn hooks(&self) -> Vec<HookStatus> {
        self.lock().hooks.list()
    }

    /// Removes one hook; `false` when there is none with that id.
    pub fn remove_hook(&self, id: u64) -> bool {
        self.lock().hooks.remove(id)
    }

    /// Removes every hook.
    pub fn clear_hooks(&self) {
        self.lock().hooks.clear();
    }

    /// Applies another writer's change to a policy now, as its PUT or DELETE would;
    /// returns the policy as a GET would show it afterwards (`None` once deleted).
    pub fn apply_change(
        &self,
        policy_id: &str,
        change: &PolicyChange,
    ) -> Result<Option<Value>, HookError> {
        let mut inner = self.settled();
        let now = inner.clock.now();
        crate::hooks::apply_now(&mut inner.resources, policy_id, change, now)?;
        let resources = &inner.resources;
        Ok(resources
            .jit_policies
            .get(&key(policy_id))
            .map(|policy| resources.render_jit_policy(policy)))
    }

    /// A full state dump: VMs (power, addresses, listeners with host keys), NSGs with
    /// their rules, firewalls, JIT policies with their requests, as of now.
    pub fn snapshot(&self) -> Value {
        let inner = self.settled();
        let resources = &inner.resources;
        let associations = resources.associations();
        let now = inner.clock.now();
        let virtual_machines: Vec<Value> = resources
            .virtual_machines
            .iter()
            .map(|(vm_key, vm)| {
                let attachment = resources.attachment(vm_key);
                let nic = vm
                    .network_interfaces
                    .first()
                    .and_then(|nic| resources.network_interfaces.get(nic));
                let public_ip = nic
                    .and_then(|nic| nic.public_ip.as_ref())
                    .and_then(|ip| resources.public_ip_addresses.get(ip));
                let ports: Vec<Value> = vm
                    .ports
                    .iter()
                    .map(|port| {
                        json!({
                            "service": port.service.as_str(),
                            "logical_port": port.logical,
                            "port": port.bound,
                        })
                    })
                    .collect();
                json!({
                    "id": vm.placement.id,
                    "name": vm.placement.name,
                    "resource_group": vm.placement.resource_group,
                    "subscription_id": vm.placement.subscription_id,
                    "location": vm.placement.location,
                    "os": vm.os.as_str(),
                    "power_state": vm.power.code(),
                    "admin_username": vm.admin_username,
                    "computer_name": vm.computer_name,
                    "private_ip": nic.map(|nic| nic.private_ip.to_string()),
                    "public_ip": public_ip.and_then(|ip| ip.address).map(|ip| ip.to_string()),
                    "fqdn": public_ip.and_then(|ip| ip.fqdn()),
                    "network_security_groups": attachment
                        .as_ref()
                        .map(|a| a.network_security_groups.clone())
                        .unwrap_or_default(),
                    "firewall": attachment.and_then(|a| a.firewall),
                    "host_public_key": vm.host_public_key,
                    "ports": ports,
                    "reachable_ports": vm
                        .ports
                        .iter()
                        .filter(|port| resources.admits(&vm.placement.id, port.bound, inner.client_ip))
                        .map(|port| port.bound)
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let listeners: Vec<Value> = inner
            .listeners
            .iter()
            .map(|listener| {
                json!({
                    "vm_id": listener.vm_id,
                    "service": listener.service.as_str(),
                    "logical_port": listener.logical,
                    "port": listener.address.port(),
                    "address": listener.address.to_string(),
                    "known_hosts": listener.known_hosts,
                })
            })
            .collect();
        json!({
            "now": render::timestamp(now),
            "tenant_id": resources.tenant_id,
            "client_ip": inner.client_ip.to_string(),
            "page_size": inner.page_size,
            "initiating_delay": inner.initiating_delay.to_string(),
            "subscriptions": resources
                .subscriptions
                .iter()
                .map(|subscription| resources.render_subscription(subscription))
                .collect::<Vec<_>>(),
            "virtual_machines": virtual_machines,
            "listeners": listeners,
            "port_openings": resources
                .port_openings
                .iter()
                .map(|opening| json!({
                    "vm_id": opening.vm_id,
                    "port": opening.port,
                    "at": render::timestamp(opening.at),
                    // The same instant on the machine's clock, to compare with a client's.
                    "real_time": render::timestamp(
                        opening.at.checked_sub(inner.clock.offset()).unwrap_or(opening.at)
                    ),
                }))
                .collect::<Vec<_>>(),
            "network_security_groups": resources
                .network_security_groups
                .values()
                .map(|nsg| resources.render_network_security_group_with(nsg, &associations))
                .collect::<Vec<_>>(),
            "azure_firewalls": resources
                .azure_firewalls
                .values()
                .map(|firewall| resources.render_azure_firewall(firewall))
                .collect::<Vec<_>>(),
            "jit_policies": resources
                .jit_policies
                .values()
                .map(|policy| resources.render_jit_policy(policy))
                .collect::<Vec<_>>(),
            "operations": resources
                .operations
                .values()
                .map(|operation| json!({
                    "name": operation.name,
                    "virtual_machine": operation.virtual_machine,
                    "start_time": render::timestamp(operation.start_time),
                    "completes_at": render::timestamp(operation.completes_at),
                }))
                .collect::<Vec<_>>(),
        })
    }
}

impl Resources {
    /// Sets a VM's power state; a running VM gets addresses on its dynamic public IPs,
    /// a deallocated one gives them back.
    pub(crate) fn set_power(&mut self, vm_key: &str, power: Power) {
        let Some(vm) = self.virtual_machines.get_mut(vm_key) else {
            return;
        };
        vm.power = power;
        let nics = vm.network_interfaces.clone();
        for nic in nics {
            let Some(ip_key) = self
                .network_interfaces
                .get(&nic)
                .and_then(|nic| nic.public_ip.clone())
            else {
                continue;
            };
            if let Some(ip) = self.public_ip_addresses.get_mut(&ip_key)
                && ip.dynamic
            {
                ip.address = (power == Power::Running).then_some(PUBLIC_ADDRESS);
            }
        }
    }

    /// Starts a VM (`POST …/start`): it is `starting` until the operation completes.
    /// Returns the operation's name.
    pub(crate) fn start_virtual_machine(&mut self, vm_key: &str, now: Timestamp) -> String {
        if let Some(vm) = self.virtual_machines.get(vm_key)
            && vm.power == Power::Deallocated
        {
            self.set_power(vm_key, Power::Starting);
        }
        let name = uuid::Uuid::new_v4().to_string();
        self.operations.insert(
            name.clone(),
            VmOperation {
                name: name.clone(),
                virtual_machine: vm_key.to_owned(),
                start_time: now,
                completes_at: now.saturating_add(VM_START_DURATION).unwrap_or(now),
                applied: false,
            },
        );
        while self.operations.len() > OPERATION_HISTORY {
            let oldest = self
                .operations
                .values()
                .min_by_key(|operation| operation.start_time)
                .map(|operation| operation.name.clone());
            match oldest {
                Some(oldest) => self.operations.remove(&oldest),
                None => break,
            };
        }
        name
    }

    /// Completes VM operations that are due.
    pub(crate) fn complete_operations(&mut self, now: Timestamp) {
        let mut due = Vec::new();
        for operation in self.operations.values_mut() {
            if !operation.applied && operation.completes_at <= now {
                operation.applied = true;
                due.push(operation.virtual_machine.clone());
            }
        }
        for vm_key in due {
            if self
                .virtual_machines
                .get(&vm_key)
                .is_some_and(|vm| vm.power == Power::Starting)
            {
                self.set_power(&vm_key, Power::Running);
            }
        }
    }
}
