//! A local Azure for JIT VM access.
//!
//! No machine this project is built on reaches Azure, so every feature is proven against
//! this emulator instead: Azure Resource Manager, the Entra ID token endpoint and VMs
//! whose management ports really open and close, over real HTTPS and real TCP. Like
//! Azurite for storage, it is also meant for users testing their own automation.
//!
//! [`Emulator::start`] runs one in-process, on its own background runtime (so a test that
//! blocks its thread on a child process never stalls it); the `jit-emulator` binary runs
//! one for other programs and prints the same [`EmulatorInfo`] as a JSON line. Dropping
//! the handle stops everything and removes the temporary state directory.
//!
//! Who does what: [`server`] is the HTTPS front door (routing, ARM headers, tokens, RBAC,
//! faults) over the [`front_end`] it serves from, answering with [`reply::Reply`];
//! [`identity`] the Entra side, [`admin`] the `/_emulator` control API,
//! [`az_cli`] the fake `az`, [`tls`] the CA; [`world`], [`state`] and [`providers`] hold
//! and serve the resources, [`vm_ports`] the VM listeners.

pub mod admin;
pub mod arm_http;
pub mod az_cli;
pub mod clock;
pub mod faults;
pub mod front_end;
pub mod hooks;
pub mod identity;
mod lock;
pub mod providers;
pub mod reply;
pub mod server;
pub mod state;
pub mod stats;
pub mod tls;
pub mod vm_ports;
pub mod world;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::SignedDuration;
use serde::Serialize;

pub use crate::faults::{FaultKind, FaultSpec, FaultStatus};
pub use crate::front_end::RequestRecord;
pub use crate::hooks::{
    HookError, HookFiring, HookPoint, HookSpec, HookStatus, InjectedFailure, PolicyChange,
};
pub use crate::world::World;

use crate::front_end::FrontEnd;
use crate::world::PrincipalKind;

/// Where callers and connections come from unless configured otherwise (TEST-NET-2).
pub const DEFAULT_CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
/// How long an initiated JIT request stays `Initiating` by default.
pub const DEFAULT_INITIATING_DELAY: SignedDuration = SignedDuration::from_secs(3);
/// How long an access token lives by default, as Entra's usually do.
pub const DEFAULT_TOKEN_LIFETIME: SignedDuration = SignedDuration::from_hours(1);

/// How to run an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// The loopback address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Where to keep `ca.pem`, the SSH identity and the fake `az`; `None` makes a temporary
    /// directory that is removed when the emulator stops (a given directory is kept).
    pub state_dir: Option<PathBuf>,
    /// How long an initiated JIT request stays `Initiating` (virtual clock).
    pub initiating_delay: SignedDuration,
    /// How long issued access tokens live (virtual clock).
    pub token_lifetime: SignedDuration,
    /// The public address ARM attributes to every caller and connection.
    pub client_ip: IpAddr,
    /// Faults active from the start (after those the world file declares).
    pub faults: Vec<FaultSpec>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            state_dir: None,
            initiating_delay: DEFAULT_INITIATING_DELAY,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            client_ip: DEFAULT_CLIENT_IP,
            faults: Vec::new(),
        }
    }
}

/// What a client needs to use the emulator: the binary prints exactly this as its JSON
/// line.
#[derive(Debug, Clone, Serialize)]
pub struct EmulatorInfo {
    /// ARM's base URL, `https://127.0.0.1:P`.
    pub arm_endpoint: String,
    /// The Entra authority host (same listener).
    pub authority_host: String,
    /// The CA certificate (PEM) to trust.
    pub ca_cert: PathBuf,
    /// The tenant.
    pub tenant_id: String,
    /// Every subscription of the world.
    pub subscription_ids: Vec<String>,
    /// The public address ARM attributes to callers.
    pub client_ip: String,
    /// A "what is my IP" service (`/ip`, plain text; `?format=json`).
    pub my_ip_url: String,
    /// The fake `az` script.
    pub az_cli: PathBuf,
    /// The admin API.
    pub admin_endpoint: String,
    /// An OpenSSH private key every emulated Linux VM accepts for its admin user.
    pub ssh_identity: PathBuf,
    /// A service principal the token endpoint accepts (with every permission).
    pub service_principal: ServicePrincipalCredential,
}

/// A client id and secret.
#[derive(Clone, Serialize)]
pub struct ServicePrincipalCredential {
    /// The application (client) id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for ServicePrincipalCredential {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServicePrincipalCredential")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// The App Service style managed-identity endpoint (`IDENTITY_ENDPOINT`,
/// `IDENTITY_HEADER`).
#[derive(Clone)]
pub struct ManagedIdentityEndpoint {
    /// `IDENTITY_ENDPOINT`: `https://127.0.0.1:P/msi/token`.
    pub endpoint: String,
    /// `IDENTITY_HEADER`: the secret expected in `x-identity-header`.
    pub header: String,
}

impl std::fmt::Debug for ManagedIdentityEndpoint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ManagedIdentityEndpoint")
            .field("endpoint", &self.endpoint)
            .field("header", &"<redacted>")
            .finish()
    }
}

/// Why an emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The world is invalid or its VM ports could not be bound.
    #[error(transparent)]
    World(#[from] world::WorldError),
    /// The certificates could not be made.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A fault could not be installed.
    #[error("invalid fault: {0}")]
    Fault(#[from] faults::FaultError),
    /// The world has no service principal for the contract's `service_principal`.
    #[error("the world defines no service principal")]
    NoServicePrincipal,
    /// A file or the listener could not be set up.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The SSH identity could not be written.
    #[error(transparent)]
    Key(#[from] vm_ports::keys::KeyError),
    /// The background runtime could not be started or stopped before it was ready.
    #[error("the emulator's runtime failed: {0}")]
    Runtime(String),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmulatorError {
    let what = what.into();
    move |source| EmulatorError::Io { what, source }
}

#[derive(Debug)]
enum StateDir {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl StateDir {
    fn path(&self) -> &Path {
        match self {
            StateDir::Temporary(directory) => directory.path(),
            StateDir::Kept(path) => path,
        }
    }
}

/// A running emulator. Dropping it shuts it down.
#[derive(Debug)]
pub struct Emulator {
    info: EmulatorInfo,
    front: Arc<FrontEnd>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    // Dropped last: the directory is removed after everything using it stopped.
    state_dir: StateDir,
}

impl Emulator {
    /// Starts an emulator for `world` with default options.
    pub fn start(world: World) -> Result<Emulator, EmulatorError> {
        Self::start_with(world, EmulatorOptions::default())
    }

    /// Starts an emulator for `world`. Returns once it accepts connections.
    pub fn start_with(world: World, options: EmulatorOptions) -> Result<Emulator, EmulatorError> {
        let state_dir = match &options.state_dir {
            Some(path) => {
                std::fs::create_dir_all(path)
                    .map_err(io_error(format!("create the state dir {}", path.display())))?;
                let path = std::path::absolute(path).map_err(io_error(format!(
                    "resolve the state dir {}",
                    path.display()
                )))?;
                StateDir::Kept(path)
            }
            None => StateDir::Temporary(
                tempfile::Builder::new()
                    .prefix("jit-emulator-")
                    .tempdir()
                    .map_err(io_error("create a temporary state dir"))?,
            ),
        };
        let (ready_sender, ready_receiver) = std::sync::mpsc::channel();
        let (shutdown_sender, shutdown_receiver) = tokio::sync::oneshot::channel::<()>();
        let state_path = state_dir.path().to_owned();
        let thread = std::thread::Builder::new()
            .name("jit-emulator".to_owned())
            .spawn(move || {
                run(
                    world,
                    options,
                    &state_path,
                    &ready_sender,
                    shutdown_receiver,
                )
            })
            .map_err(io_error("start the emulator thread"))?;
        match ready_receiver.recv() {
            Ok(Ok((info, front))) => Ok(Emulator {
                info,
                front,
                shutdown: Some(shutdown_sender),
                thread: Some(thread),
                state_dir,
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => {
                let _ = thread.join();
                Err(EmulatorError::Runtime(
                    "the emulator thread stopped before it was ready".to_owned(),
                ))
            }
        }
    }

    /// The endpoints and credentials (the binary's JSON line).
    pub fn info(&self) -> &EmulatorInfo {
        &self.info
    }

    /// The state directory (`ca.pem`, `bin/az`, `az-calls.log`, `ssh/`).
    pub fn state_dir(&self) -> &Path {
        self.state_dir.path()
    }

    /// The virtual clock.
    pub fn clock(&self) -> &clock::Clock {
        &self.front.clock
    }

    /// Moves the virtual clock (same as `POST {admin}/clock`).
    pub fn advance_clock(&self, by: SignedDuration) {
        self.front.advance_clock(by);
    }

    /// A dump of every resource (same as `GET {admin}/state`).
    pub fn snapshot(&self) -> serde_json::Value {
        self.front.state.snapshot()
    }

    /// What `/ip` answers; `None` goes back to the client IP.
    pub fn set_my_ip(&self, address: Option<String>) {
        *lock::lock(&self.front.my_ip_override) = address;
    }

    /// Where callers and connections come from from now on.
    pub fn set_client_ip(&self, address: IpAddr) {
        self.front.state.set_client_ip(address);
    }

    /// Pages every list at `size` items (`None`: no paging).
    pub fn set_page_size(&self, size: Option<usize>) {
        self.front.state.set_page_size(size);
    }

    /// Resource Graph leaves these resources out of its answers, as if it had not caught
    /// up with ARM yet (ARM still serves them); an empty list ends the lag.
    pub fn set_graph_unindexed(&self, resource_ids: &[String]) {
        self.front.state.set_graph_unindexed(resource_ids);
    }

    /// Starts or deallocates a VM; `false` when there is no such VM.
    pub fn set_power_state(&self, vm_id: &str, running: bool) -> bool {
        self.front.state.set_power_state(vm_id, running)
    }

    /// Adds a fault; returns its id.
    pub fn inject_fault(&self, fault: FaultSpec) -> Result<u64, faults::FaultError> {
        self.front.faults.add(fault)
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.front.faults.clear();
    }

    /// Every fault with its hit count.
    pub fn faults(&self) -> Vec<FaultStatus> {
        self.front.faults.list()
    }

    /// Registers a concurrent-writer hook (same as `POST {admin}/hooks`); returns its id.
    pub fn add_hook(&self, hook: HookSpec) -> Result<u64, HookError> {
        self.front.state.add_hook(hook)
    }

    /// Every hook, pending and fired, with when and on which request it fired.
    pub fn hooks(&self) -> Vec<HookStatus> {
        self.front.state.hooks()
    }

    /// Removes one hook; `false` when there is none with that id.
    pub fn remove_hook(&self, id: u64) -> bool {
        self.front.state.remove_hook(id)
    }

    /// Removes every hook.
    pub fn clear_hooks(&self) {
        self.front.state.clear_hooks();
    }

    /// Applies another writer's change to a JIT policy now (same as
    /// `POST {admin}/changes`); returns the policy as a GET shows it afterwards, `None`
    /// once deleted.
    pub fn apply_change(
        &self,
        policy_id: &str,
        change: &PolicyChange,
    ) -> Result<Option<serde_json::Value>, HookError> {
        self.front.state.apply_change(policy_id, change)
    }

    /// The request log (admin requests excluded), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock::lock(&self.front.requests).iter().cloned().collect()
    }

    /// How long each route took to answer (percentiles) and the process's memory (same as
    /// `GET {admin}/stats`).
    pub fn stats(&self) -> stats::Stats {
        lock::lock(&self.front.timings).report()
    }

    /// Forgets every timing (same as `DELETE {admin}/stats`).
    pub fn clear_stats(&self) {
        lock::lock(&self.front.timings).clear();
    }

    /// Logs the fake `az` in or out.
    pub fn set_az_logged_in(&self, logged_in: bool) -> std::io::Result<()> {
        self.front.az.set_logged_in(logged_in)?;
        if logged_in {
            self.front.after_clock_change();
        }
        Ok(())
    }

    /// The arguments of every fake `az` invocation so far, one string each.
    pub fn az_calls(&self) -> Vec<String> {
        self.front.az.calls()
    }

    /// The managed-identity endpoint and the header value it expects.
    pub fn managed_identity(&self) -> ManagedIdentityEndpoint {
        ManagedIdentityEndpoint {
            endpoint: format!("{}/msi/token", self.front.base_url),
            header: self.front.identity.managed_identity_header().to_owned(),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the emulator thread panicked");
        }
    }
}

type Ready = Result<(EmulatorInfo, Arc<FrontEnd>), EmulatorError>;

/// The emulator thread: starts everything on its own runtime, reports readiness, then
/// waits for the handle to be dropped.
fn run(
    world: World,
    options: EmulatorOptions,
    state_dir: &Path,
    ready: &std::sync::mpsc::Sender<Ready>,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("jit-emulator-worker")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(EmulatorError::Runtime(error.to_string())));
            return;
        }
    };
    let started = runtime.block_on(start_services(world, options, state_dir));
    match started {
        Ok(services) => {
            let reported = ready.send(Ok((services.info.clone(), services.front.clone())));
            if reported.is_ok() {
                // Either the handle says stop, or it is gone.
                let _ = runtime.block_on(shutdown);
            }
            runtime.block_on(async move {
                services.stop();
            });
        }
        Err(error) => {
            let _ = ready.send(Err(error));
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
}

/// What runs for one emulator.
struct Services {
    info: EmulatorInfo,
    front: Arc<FrontEnd>,
    server: tokio::task::JoinHandle<()>,
    az_refresher: tokio::task::JoinHandle<()>,
    world: state::RunningWorld,
}

impl Services {
    fn stop(self) {
        self.server.abort();
        self.az_refresher.abort();
        drop(self.world);
    }
}

async fn start_services(
    world: World,
    options: EmulatorOptions,
    state_dir: &Path,
) -> Result<Services, EmulatorError> {
    let tls = tls::generate()?;
    let ca_cert = state_dir.join("ca.pem");
    std::fs::write(&ca_cert, &tls.ca_pem)
        .map_err(io_error(format!("write {}", ca_cert.display())))?;

    let ssh_dir = state_dir.join("ssh");
    std::fs::create_dir_all(&ssh_dir).map_err(io_error(format!("create {}", ssh_dir.display())))?;
    let ssh_identity = ssh_dir.join("id_ed25519");
    let mut ssh_key = vm_ports::keys::generate_ed25519();
    ssh_key.set_comment("jit-emulator client key");
    vm_ports::keys::write_private_key(&ssh_key, &ssh_identity)?;

    let listener = server::bind(options.listen)
        .await
        .map_err(io_error(format!("listen on {}", options.listen)))?;
    let local_address = listener
        .local_addr()
        .map_err(io_error("read the listener's address"))?;
    let base_url = format!("https://{local_address}");

    // Faults the world file declares, then those of the options.
    let mut initial_faults = world.faults.clone();
    initial_faults.extend(options.faults);

    let clock = clock::Clock::new();
    let running_world = state::start_world(
        world,
        state::WorldSettings {
            clock: clock.clone(),
            client_ip: options.client_ip,
            initiating_delay: options.initiating_delay,
            ssh_client_key: ssh_key.public_key().clone(),
        },
    )
    .await?;
    let shared_state = running_world.state.clone();

    let identity = identity::Identity::new(
        shared_state.tenant_id(),
        shared_state.principals(),
        options.token_lifetime,
        clock.clone(),
    );
    let service_principal = identity
        .preferred_principal(PrincipalKind::ServicePrincipal)
        .and_then(|index| identity.principals().get(index))
        .and_then(|principal| {
            Some(ServicePrincipalCredential {
                client_id: principal.client_id.clone()?,
                client_secret: principal.client_secret.clone()?,
            })
        })
        .ok_or(EmulatorError::NoServicePrincipal)?;

    let faults = faults::Faults::new();
    for fault in initial_faults {
        faults.add(fault)?;
    }

    let subscription_ids = shared_state.subscription_ids();
    let user = identity.preferred_principal(PrincipalKind::User);
    let az = az_cli::AzCli::install(
        state_dir,
        &az_cli::AzAccount {
            tenant_id: identity.tenant_id().to_owned(),
            subscription_id: subscription_ids.first().cloned(),
            subscription_name: subscription_ids
                .first()
                .and_then(|id| shared_state.subscription_display_name(id)),
            user_name: user
                .and_then(|index| identity.principals().get(index))
                .map(|principal| principal.name.clone()),
            user,
        },
    )
    .map_err(io_error("install the fake az"))?;

    let front = Arc::new(FrontEnd {
        base_url: base_url.clone(),
        clock,
        state: shared_state.clone(),
        identity,
        faults,
        az,
        my_ip_override: Mutex::new(None),
        requests: Mutex::new(std::collections::VecDeque::new()),
        timings: Mutex::new(stats::Timings::default()),
    });
    front
        .az
        .refresh(&front.identity, front.clock.now())
        .map_err(io_error("write the fake az token"))?;

    let server = server::spawn(listener, tls.server_config.clone(), front.clone());
    let az_refresher = tokio::spawn(refresh_az_token(front.clone()));
    let info = EmulatorInfo {
        arm_endpoint: base_url.clone(),
        authority_host: base_url.clone(),
        ca_cert,
        tenant_id: front.identity.tenant_id().to_owned(),
        subscription_ids,
        client_ip: shared_state.client_ip().to_string(),
        my_ip_url: format!("{base_url}/ip"),
        az_cli: front.az.script_path().to_owned(),
        admin_endpoint: format!("{base_url}/_emulator"),
        ssh_identity,
        service_principal,
    };
    Ok(Services {
        info,
        front,
        server,
        az_refresher,
        world: running_world,
    })
}

/// Keeps the fake `az` token fresh while the virtual clock runs at real speed.
async fn refresh_az_token(front: Arc<FrontEnd>) {
    let quarter_life = Duration::try_from(front.identity.token_lifetime() / 4).unwrap_or_default();
    let period = quarter_life.clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        front.after_clock_change();
    }
}
