//! Loopback listeners that stand in for the management ports of emulated VMs.
//!
//! Every emulated VM port is a real TCP listener on `127.0.0.1`. Whether a new
//! connection gets an answer is decided by a [`PortGate`] (implemented by the emulator's
//! state, from the emulated NSG and firewall rules), exactly when the connection is
//! accepted: a refused connection is accepted and left silent, which is what a client
//! sees when an NSG drops its SYN; an admitted one is served. Established connections
//! are never cut when the rule later goes away, as on Azure.
//!
//! What an admitted connection meets depends on the port's [`PortService`]: an SSH server
//! (see `ssh`), the first RDP exchange (see `rdp`), or nothing at all. A refused
//! connection is held open without a byte written until the client goes away or stays
//! idle for [`HOLD_IDLE_LIMIT`]: a client that completed a loopback handshake then sees
//! exactly what it sees when a SYN is dropped on Azure, a connection that never answers.
//!
//! Dropping a [`PortListener`] stops accepting at once and ends the connections it
//! served (an SSH session gets a disconnect message), so an emulator that shuts down
//! leaves nothing behind even inside a longer-lived runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::Instrument as _;

pub mod keys;
mod rdp;
mod shell;
mod ssh;

/// How long a connection that gets no answer (refused by the gate, a silent service, or
/// RDP after the confirm) is held while the client sends nothing. Generous: clients give
/// up on a silent port long before this.
pub const HOLD_IDLE_LIMIT: Duration = Duration::from_secs(10 * 60);
/// How long an SSH client may take to send its version line, as sshd's login grace.
const SSH_LOGIN_GRACE: Duration = Duration::from_secs(120);
/// The most connections one listener holds at once; more are closed at once, so a
/// runaway client cannot exhaust the emulator's file descriptors.
const MAX_CONNECTIONS_PER_LISTENER: usize = 512;
/// How long the accept loop waits after the system refuses to accept (for example when
/// out of file descriptors) before it tries again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

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
/// connections and ends the ones it served.
#[derive(Debug)]
pub struct PortListener {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Never sent on: when it is dropped with the listener, every connection task sees
    /// the channel close and ends.
    _shutdown: watch::Sender<()>,
}

impl PortListener {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
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
/// The gate is asked once per connection, when it is accepted; an admitted connection
/// keeps working whatever the gate says later. Must be called within a tokio runtime
/// (an error otherwise); the listener runs on that runtime until the returned
/// [`PortListener`] is dropped.
pub fn serve(
    listener: tokio::net::TcpListener,
    port: VmPort,
    service: PortService,
    gate: SharedGate,
) -> std::io::Result<PortListener> {
    let local_addr = listener.local_addr()?;
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|error| std::io::Error::other(format!("no tokio runtime to serve on: {error}")))?;
    let answer = match service {
        PortService::Ssh(ssh) => Answer::Ssh {
            config: ssh::server_config(&ssh),
            service: ssh,
        },
        PortService::Rdp => Answer::Rdp,
        PortService::Silent => Answer::Silence,
    };
    let (shutdown_sender, shutdown) = watch::channel(());
    let acceptor = Acceptor {
        port,
        answer,
        gate,
        shutdown,
        capacity: Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_LISTENER)),
    };
    tracing::debug!(
        vm = %acceptor.port.vm_id,
        port = acceptor.port.port,
        %local_addr,
        "VM port listening"
    );
    let task = runtime.spawn(acceptor.run(listener));
    Ok(PortListener {
        local_addr,
        task,
        _shutdown: shutdown_sender,
    })
}

/// What a connection gets: the port's service when admitted, silence otherwise.
#[derive(Clone)]
enum Answer {
    Silence,
    Rdp,
    Ssh {
        service: Arc<SshService>,
        /// Built once per listener: it holds the host key.
        config: Arc<russh::server::Config>,
    },
}

/// The accept loop of one listener and what it hands to each connection.
struct Acceptor {
    port: VmPort,
    answer: Answer,
    gate: SharedGate,
    shutdown: watch::Receiver<()>,
    capacity: Arc<Semaphore>,
}

impl Acceptor {
    async fn run(self, listener: TcpListener) {
        let listener_span =
            tracing::debug_span!("vm_port", vm = %self.port.vm_id, port = self.port.port);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(parent: &listener_span, %error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            };
            let span = tracing::debug_span!(parent: &listener_span, "connection", %peer);
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(parent: &span, %error, "cannot set TCP_NODELAY");
            }
            let Ok(permit) = Arc::clone(&self.capacity).try_acquire_owned() else {
                tracing::warn!(parent: &span, "too many connections; closing this one");
                continue;
            };
            let admitted = self.gate.admits(&self.port);
            tracing::debug!(parent: &span, admitted, "connection accepted");
            let answer = if admitted {
                self.answer.clone()
            } else {
                Answer::Silence
            };
            let connection = Connection {
                stream,
                shutdown: self.shutdown.clone(),
                span: span.clone(),
            };
            tokio::spawn(
                async move {
                    connection.run(answer).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
}

/// One accepted connection.
struct Connection {
    stream: TcpStream,
    shutdown: watch::Receiver<()>,
    /// Names the VM port and the peer in every log line about this connection.
    span: tracing::Span,
}

impl Connection {
    async fn run(self, answer: Answer) {
        match answer {
            Answer::Silence => self.hold().await,
            Answer::Rdp => self.serve_rdp().await,
            Answer::Ssh { service, config } => self.serve_ssh(service, config).await,
        }
    }

    /// Keeps the connection open without writing a byte, discarding whatever the client
    /// sends, until the client closes it, stays idle for [`HOLD_IDLE_LIMIT`], or the
    /// listener is dropped.
    async fn hold(mut self) {
        let mut discarded = [0u8; 4096];
        let outcome = loop {
            let read = tokio::time::timeout(HOLD_IDLE_LIMIT, self.stream.read(&mut discarded));
            tokio::select! {
                read = read => match read {
                    Ok(Ok(0)) => break "closed by the client",
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => break "failed",
                    Err(_) => break "idle for too long",
                },
                _ = self.shutdown.changed() => break "listener stopped",
            }
        };
        tracing::debug!(outcome, "silent connection ended");
    }

    /// Answers the client's X.224 Connection Request, then holds the connection (after a
    /// negotiation failure it closes, as Windows does). Anything that is not a Connection
    /// Request closes the connection.
    async fn serve_rdp(mut self) {
        let read = tokio::time::timeout(
            HOLD_IDLE_LIMIT,
            rdp::read_connection_request(&mut self.stream),
        );
        let request = tokio::select! {
            read = read => read,
            _ = self.shutdown.changed() => return,
        };
        let request = match request {
            Ok(Ok(request)) => request,
            Ok(Err(error)) => {
                tracing::debug!(%error, "closing a connection that does not speak RDP");
                return;
            }
            Err(_) => return,
        };
        let confirm = rdp::confirm_for(&request);
        let refused = matches!(
            confirm,
            ironrdp_pdu::nego::ConnectionConfirm::Failure { .. }
        );
        tracing::debug!(offered = %request.protocol, ?confirm, "RDP connection request answered");
        let written = match rdp::encode_confirm(confirm) {
            Ok(bytes) => self
                .stream
                .write_all(&bytes)
                .await
                .map_err(rdp::RdpError::from),
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            tracing::debug!(%error, "cannot answer the RDP connection request");
            return;
        }
        if !refused {
            self.hold().await;
        }
    }

    /// Runs an SSH session until the client leaves or the listener is dropped.
    async fn serve_ssh(mut self, ssh: Arc<SshService>, config: Arc<russh::server::Config>) {
        let handler = ssh::SshConnection::new(ssh, self.span.clone());
        let start = tokio::time::timeout(
            SSH_LOGIN_GRACE,
            russh::server::run_stream(config, self.stream, handler),
        );
        let started = tokio::select! {
            started = start => started,
            _ = self.shutdown.changed() => return,
        };
        let session = match started {
            Ok(Ok(session)) => session,
            Ok(Err(error)) => {
                tracing::debug!(%error, "SSH session did not start");
                return;
            }
            Err(_) => {
                tracing::debug!("SSH client sent no version line in time");
                return;
            }
        };
        let handle = session.handle();
        tokio::select! {
            ended = session => match ended {
                Ok(()) => tracing::debug!("SSH session ended"),
                Err(error) => tracing::debug!(%error, "SSH session ended with an error"),
            },
            _ = self.shutdown.changed() => {
                // russh runs the session on its own task, so it has to be told to end.
                let reason = "the emulated VM port was closed".to_owned();
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, reason, "en".to_owned())
                    .await;
            }
        }
    }
}
