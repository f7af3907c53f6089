//! Loopback listeners that stand in for the management ports of emulated VMs.
//!
//! Every emulated VM port is a real TCP listener on `127.0.0.1`. Whether a new
//! connection gets an answer is decided by a [`PortGate`] (implemented by the emulator's
//! state, from the emulated NSG and firewall rules), exactly when the connection is
//! accepted: a refused connection is accepted and left silent, which is what a client
//! sees when an NSG drops its SYN; an admitted one is served. Established connections
//! are never cut when the rule later goes away, as on Azure.

use std::sync::Arc;

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
