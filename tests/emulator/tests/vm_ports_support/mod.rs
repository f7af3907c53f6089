//! Shared set-up for the VM port tests: a listener behind a gate the test switches by
//! hand, an SSH identity for the emulated VM, and small clients (raw TCP, russh, X.224).

#![allow(dead_code)] // each test file uses its own part of this module

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ironrdp_pdu::nego::{
    ConnectionConfirm, ConnectionRequest, NegoRequestData, RequestFlags, SecurityProtocol,
};
use ironrdp_pdu::x224::X224;
use jit_emulator::vm_ports::{self, PortListener, PortService, SshService, VmPort, keys};
use russh::ChannelMsg;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// The computer name and admin user of the emulated VM in these tests.
pub const COMPUTER_NAME: &str = "web-01";
pub const ADMIN_USER: &str = "azureuser";

/// How long a port must stay quiet to count as silent. Silence can only be observed as
/// the absence of bytes for a while; this is the one wait that has no event to await.
pub const SILENCE: Duration = Duration::from_millis(400);
/// Upper bound for anything that should happen promptly (a banner, a reply, a close).
pub const PROMPTLY: Duration = Duration::from_secs(20);

/// An emulated VM port whose gate the test opens and closes.
pub struct GatedPort {
    pub listener: PortListener,
    admitted: Arc<AtomicBool>,
}

impl GatedPort {
    /// Serves `service` on a free loopback port; new connections are refused until
    /// [`GatedPort::admit`] is called.
    pub async fn start(service: PortService) -> GatedPort {
        let admitted = Arc::new(AtomicBool::new(false));
        let gate_state = Arc::clone(&admitted);
        let gate: vm_ports::SharedGate =
            Arc::new(move |_: &VmPort| gate_state.load(Ordering::SeqCst));
        let listener = vm_ports::bind(None).await.expect("bind a loopback port");
        let port = VmPort {
            vm_id: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-01".to_owned(),
            port: listener.local_addr().expect("local address").port(),
        };
        let listener = vm_ports::serve(listener, port, service, gate).expect("serve");
        GatedPort { listener, admitted }
    }

    pub fn address(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Lets new connections through, as an allow rule would.
    pub fn admit(&self) {
        self.admitted.store(true, Ordering::SeqCst);
    }

    /// Refuses new connections again, as when the allow rule expires.
    pub fn refuse(&self) {
        self.admitted.store(false, Ordering::SeqCst);
    }

    pub async fn connect(&self) -> TcpStream {
        tokio::time::timeout(PROMPTLY, TcpStream::connect(self.address()))
            .await
            .expect("connect in time")
            .expect("connect to the loopback listener")
    }
}

/// The SSH side of an emulated VM plus the client key it accepts.
pub struct SshIdentity {
    pub service: Arc<SshService>,
    pub client_key: PrivateKey,
}

impl SshIdentity {
    pub fn new() -> SshIdentity {
        let mut client_key = keys::generate_ed25519();
        client_key.set_comment("jit-emulator client");
        let service = Arc::new(SshService {
            host_key: keys::generate_ed25519(),
            admin_user: ADMIN_USER.to_owned(),
            authorized_keys: vec![client_key.public_key().clone()],
            computer_name: COMPUTER_NAME.to_owned(),
        });
        SshIdentity {
            service,
            client_key,
        }
    }

    pub fn host_key(&self) -> &PublicKey {
        self.service.host_key.public_key()
    }
}

/// Asserts that nothing arrives on `stream` for [`SILENCE`] and that it stays open.
pub async fn assert_silent(stream: &mut TcpStream, what: &str) {
    let mut buffer = [0u8; 256];
    match tokio::time::timeout(SILENCE, stream.read(&mut buffer)).await {
        Err(_) => {}
        Ok(Ok(0)) => panic!("{what}: the connection was closed instead of staying silent"),
        Ok(Ok(count)) => panic!(
            "{what}: expected silence, received {:?}",
            String::from_utf8_lossy(&buffer[..count])
        ),
        Ok(Err(error)) => panic!("{what}: expected silence, the read failed: {error}"),
    }
}

/// Asserts that the peer closes `stream` (possibly after sending `allowed_bytes` first).
pub async fn assert_closed(stream: &mut TcpStream, what: &str) {
    let mut buffer = Vec::new();
    match tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut buffer)).await {
        Ok(Ok(_)) | Ok(Err(_)) => {}
        Err(_) => panic!("{what}: the connection stayed open"),
    }
}

/// Reads the SSH version line the server sends first.
pub async fn read_banner(stream: &mut TcpStream) -> String {
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    tokio::time::timeout(PROMPTLY, reader.read_line(&mut line))
        .await
        .expect("the SSH banner arrives in time")
        .expect("read the SSH banner");
    line
}

/// Sends an X.224 Connection Request offering `protocol`.
pub async fn send_connection_request(stream: &mut TcpStream, protocol: SecurityProtocol) {
    let request = X224(ConnectionRequest {
        nego_data: Some(NegoRequestData::cookie(ADMIN_USER.to_owned())),
        flags: RequestFlags::empty(),
        protocol,
        correlation_info: None,
    });
    let bytes = ironrdp_pdu::encode_vec(&request).expect("encode the connection request");
    stream
        .write_all(&bytes)
        .await
        .expect("send the connection request");
}

/// Reads one TPKT frame and decodes it as an X.224 Connection Confirm.
pub async fn read_connection_confirm(stream: &mut TcpStream) -> ConnectionConfirm {
    let mut header = [0u8; 4];
    tokio::time::timeout(PROMPTLY, stream.read_exact(&mut header))
        .await
        .expect("the connection confirm arrives in time")
        .expect("read the TPKT header");
    assert_eq!(header[0], 3, "TPKT version");
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut frame = vec![0u8; length];
    frame[..4].copy_from_slice(&header);
    stream
        .read_exact(&mut frame[4..])
        .await
        .expect("read the rest of the TPKT frame");
    let X224(confirm) = ironrdp_pdu::decode::<X224<ConnectionConfirm>>(&frame)
        .expect("decode an X.224 Connection Confirm");
    confirm
}

/// A russh client that trusts exactly one host key, as a client with a `known_hosts`
/// entry does.
pub struct TrustOneHostKey(pub PublicKey);

impl russh::client::Handler for TrustOneHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(match server_public_key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.key_data() == self.0.key_data()
            }
            russh::keys::PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

pub type SshClient = russh::client::Handle<TrustOneHostKey>;

/// Connects to `address` with russh, checking the host key, without authenticating.
pub async fn ssh_connect(address: SocketAddr, host_key: &PublicKey) -> SshClient {
    let config = Arc::new(russh::client::Config::default());
    tokio::time::timeout(
        PROMPTLY,
        russh::client::connect(config, address, TrustOneHostKey(host_key.clone())),
    )
    .await
    .expect("the SSH handshake finishes in time")
    .expect("SSH handshake")
}

/// Whether `user` gets in with `key`.
pub async fn authenticate(client: &mut SshClient, user: &str, key: &PrivateKey) -> bool {
    client
        .authenticate_publickey(
            user,
            PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None),
        )
        .await
        .expect("public key authentication exchange")
        .success()
}

/// Connects and logs in as the admin user with the client key.
pub async fn ssh_login(address: SocketAddr, identity: &SshIdentity) -> SshClient {
    let mut client = ssh_connect(address, identity.host_key()).await;
    assert!(
        authenticate(&mut client, ADMIN_USER, &identity.client_key).await,
        "the admin user logs in with the authorised key"
    );
    client
}

/// What a remote command produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub status: Option<u32>,
}

/// Collects a channel's output until the server closes it.
pub async fn collect(channel: &mut russh::Channel<russh::client::Msg>) -> Ran {
    let mut ran = Ran::default();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    loop {
        let message = tokio::time::timeout(PROMPTLY, channel.wait())
            .await
            .expect("the channel makes progress in time");
        match message {
            Some(ChannelMsg::Data { data }) => stdout.extend_from_slice(&data),
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => stderr.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => ran.status = Some(exit_status),
            Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
    ran.stdout = String::from_utf8_lossy(&stdout).into_owned();
    ran.stderr = String::from_utf8_lossy(&stderr).into_owned();
    ran
}

/// Runs `command` on a new channel of `client`.
pub async fn exec(client: &SshClient, command: &str) -> Ran {
    let mut channel = client
        .channel_open_session()
        .await
        .expect("open a session channel");
    channel.exec(true, command).await.expect("send exec");
    collect(&mut channel).await
}
