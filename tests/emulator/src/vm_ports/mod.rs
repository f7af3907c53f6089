//! Loopback listeners that stand in for the management ports of emulated VMs.
//!
//! Every emulated VM port is a real TCP listener on `127.0.0.1`. Whether a new
//! connection gets an answer is decided by a [`PortGate`] (implemented by the emulator's
//! state, from the emulated NSG and firewall rules), exactly when the connection is
//! accepted: a refused connection is accepted and left silent, which is what a client
//! sees when an NSG drops its SYN; an admitted one is served. Established connections
//! are never cut when the rule later goes away, as on Azure.

use std::sync::Arc;

pub mod keys;

/// Identifies one emulated VM port: the VM's ARM id and the port number as the JIT
/// policy, NSG rules (and, behind a firewall, `mappedPort`) carry it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VmPort {
    /// ARM id of the virtual machine, as the world defines it.
    pub vm_id: String,
    /// The port number the listener is bound to.
    pub port: u16,
}

/// Decides, as the emulated NSG or Azure Firewall would, whether a new connection
/// to an emulated VM port gets through now. Connections count as coming from the
/// emulator's configured client address.
pub trait PortGate: Send + Sync + 'static {
    /// Whether a connection accepted now on `port` is let through.
    fn admits(&self, port: &VmPort) -> bool;
}

impl<F> PortGate for F
where
    F: Fn(&VmPort) -> bool + Send + Sync + 'static,
{
    fn admits(&self, port: &VmPort) -> bool {
        self(port)
    }
}

/// A shared gate.
pub type SharedGate = Arc<dyn PortGate>;

/// What an emulated VM port runs.
#[derive(Clone, Debug)]
pub enum PortService {
    /// An SSH server (russh): public-key authentication for the VM's admin user,
    /// `exec` of a few commands and a minimal shell.
    Ssh(Arc<SshService>),
    /// An RDP endpoint that answers an X.224 Connection Request with a Connection Confirm.
    Rdp,
    /// A port with nothing behind it that speaks: it accepts and stays silent even when
    /// admitted (for WinRM or any port the emulator does not model).
    Silent,
}

/// The SSH identity of an emulated Linux VM.
#[derive(Clone, Debug)]
pub struct SshService {
    /// The VM's host key.
    pub host_key: russh::keys::PrivateKey,
    /// `osProfile.adminUsername`: the only user that may log in.
    pub admin_user: String,
    /// Public keys accepted for the admin user.
    pub authorized_keys: Vec<russh::keys::PublicKey>,
    /// `osProfile.computerName`: what `hostname` prints.
    pub computer_name: String,
}

/// A running listener for one emulated VM port. Dropping it stops accepting new
/// connections.
#[derive(Debug)]
pub struct PortListener {
    local_addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl PortListener {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }
}

impl Drop for PortListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds a loopback listener: on `pinned` when the world pins a port number, else on a
/// free port chosen by the system.
pub async fn bind(pinned: Option<u16>) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, pinned.unwrap_or(0))).await
}

/// Serves `service` on `listener`, admitting each new connection only if `gate` says so.
///
/// Placeholder until the listeners land: accepts and stays silent.
pub fn serve(
    listener: tokio::net::TcpListener,
    port: VmPort,
    service: PortService,
    gate: SharedGate,
) -> std::io::Result<PortListener> {
    let local_addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = (&port, &service, &gate);
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    Ok(PortListener { local_addr, task })
}
