//! The readiness probes against real TCP listeners on loopback: an SSH-like banner, an
//! RDP stack answering with a Connection Confirm built by ironrdp-pdu, a port that
//! accepts and stays silent (the emulator's blocked port), a service speaking something
//! else, a server that hangs up, and a closed port.

use std::net::SocketAddr;
use std::time::Duration;

use ironrdp_pdu::nego::{
    ConnectionConfirm, ConnectionRequest, FailureCode, ResponseFlags, SecurityProtocol,
};
use ironrdp_pdu::x224::X224;
use jit_agent::probe::{Identified, ProbeOutcome, identify, probe_rdp, probe_ssh, probe_tcp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Long enough for loopback to answer on a loaded machine; the ready cases never wait it out.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the silent cases wait: the probe must give up and say "silent" after it.
const SILENCE_TIMEOUT: Duration = Duration::from_millis(300);

/// What a test listener does with each accepted connection.
#[derive(Clone, Copy)]
enum Behaviour {
    SshBanner,
    SshBannerAfterPrelude,
    RdpConfirm,
    RdpNegotiationFailure,
    Silent,
    Garbage,
    HangUp,
}

/// Serves `behaviour` on a fresh loopback port until the returned sender is dropped.
async fn serve(behaviour: Behaviour) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback listener");
    let address = listener.local_addr().expect("listener address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut held = Vec::new();
        let accept_loop = async {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                if let Some(stream) = answer(behaviour, stream).await {
                    held.push(stream);
                }
            }
        };
        tokio::select! {
            () = accept_loop => {}
            _ = stopped => {}
        }
    });
    (address, stop)
}

/// Answers one connection; returns the stream when it must stay open (silently).
async fn answer(behaviour: Behaviour, mut stream: TcpStream) -> Option<TcpStream> {
    match behaviour {
        Behaviour::SshBanner => {
            let _ = stream.write_all(b"SSH-2.0-TestSSH_1.0\r\n").await;
            Some(stream)
        }
        Behaviour::SshBannerAfterPrelude => {
            let _ = stream
                .write_all(b"Authorised users only\r\nSSH-2.0-TestSSH_1.0\r\n")
                .await;
            Some(stream)
        }
        Behaviour::RdpConfirm | Behaviour::RdpNegotiationFailure => {
            let request = read_connection_request(&mut stream).await?;
            assert!(request.protocol.contains(SecurityProtocol::HYBRID));
            let confirm = if matches!(behaviour, Behaviour::RdpConfirm) {
                ConnectionConfirm::Response {
                    flags: ResponseFlags::empty(),
                    protocol: SecurityProtocol::HYBRID,
                }
            } else {
                ConnectionConfirm::Failure {
                    code: FailureCode::SSL_REQUIRED_BY_SERVER,
                }
            };
            let bytes = ironrdp_pdu::encode_vec(&X224(confirm)).expect("encode the confirm");
            let _ = stream.write_all(&bytes).await;
            Some(stream)
        }
        Behaviour::Silent => Some(stream),
        Behaviour::Garbage => {
            let _ = stream.write_all(b"220 mail.example.com ESMTP\r\n").await;
            Some(stream)
        }
        Behaviour::HangUp => None,
    }
}

/// Reads one TPKT frame and decodes it as the client's X.224 Connection Request.
async fn read_connection_request(stream: &mut TcpStream) -> Option<ConnectionRequest> {
    let mut header = [0_u8; 4];
    stream.read_exact(&mut header).await.ok()?;
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut frame = vec![0_u8; length];
    frame[..4].copy_from_slice(&header);
    stream.read_exact(&mut frame[4..]).await.ok()?;
    ironrdp_pdu::decode::<X224<ConnectionRequest>>(&frame)
        .ok()
        .map(|X224(request)| request)
}

/// A loopback port with nothing listening on it.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback listener");
    listener.local_addr().expect("listener address")
}

#[tokio::test]
async fn ssh_banner_is_ready() {
    let (address, _stop) = serve(Behaviour::SshBanner).await;
    let outcome = probe_ssh(address, ANSWER_TIMEOUT).await;
    assert_eq!(
        outcome,
        ProbeOutcome::Ready {
            detail: "SSH-2.0-TestSSH_1.0".into()
        }
    );
}

#[tokio::test]
async fn ssh_banner_after_other_lines_is_ready() {
    let (address, _stop) = serve(Behaviour::SshBannerAfterPrelude).await;
    assert!(probe_ssh(address, ANSWER_TIMEOUT).await.is_ready());
}

#[tokio::test]
async fn rdp_confirm_is_ready() {
    let (address, _stop) = serve(Behaviour::RdpConfirm).await;
    let outcome = probe_rdp(address, ANSWER_TIMEOUT).await;
    let ProbeOutcome::Ready { detail } = outcome else {
        panic!("expected ready, got {outcome:?}");
    };
    assert!(
        detail.contains("HYBRID"),
        "detail names the protocol: {detail}"
    );
}

#[tokio::test]
async fn rdp_negotiation_failure_still_proves_an_rdp_stack() {
    let (address, _stop) = serve(Behaviour::RdpNegotiationFailure).await;
    let outcome = probe_rdp(address, ANSWER_TIMEOUT).await;
    let ProbeOutcome::Ready { detail } = outcome else {
        panic!("expected ready, got {outcome:?}");
    };
    assert!(detail.contains("failure"), "{detail}");
}

#[tokio::test]
async fn a_silent_port_is_silent_for_both_protocols() {
    let (address, _stop) = serve(Behaviour::Silent).await;
    assert_eq!(
        probe_ssh(address, SILENCE_TIMEOUT).await,
        ProbeOutcome::Silent { connected: true }
    );
    assert_eq!(
        probe_rdp(address, SILENCE_TIMEOUT).await,
        ProbeOutcome::Silent { connected: true }
    );
    // TCP alone cannot tell: the silent port accepts connections.
    assert!(probe_tcp(address, ANSWER_TIMEOUT).await.is_ready());
}

#[tokio::test]
async fn another_service_is_the_wrong_protocol() {
    let (address, _stop) = serve(Behaviour::Garbage).await;
    assert_eq!(
        probe_ssh(address, SILENCE_TIMEOUT).await,
        ProbeOutcome::WrongProtocol {
            got: "220 mail.example.com ESMTP".into()
        }
    );
    assert!(matches!(
        probe_rdp(address, ANSWER_TIMEOUT).await,
        ProbeOutcome::WrongProtocol { .. }
    ));
}

#[tokio::test]
async fn rdp_probe_on_an_ssh_port_is_the_wrong_protocol() {
    let (address, _stop) = serve(Behaviour::SshBanner).await;
    let outcome = probe_rdp(address, ANSWER_TIMEOUT).await;
    assert!(
        matches!(outcome, ProbeOutcome::WrongProtocol { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_server_that_hangs_up_is_closed() {
    let (address, _stop) = serve(Behaviour::HangUp).await;
    assert_eq!(
        probe_ssh(address, ANSWER_TIMEOUT).await,
        ProbeOutcome::Closed
    );
    assert_eq!(
        probe_rdp(address, ANSWER_TIMEOUT).await,
        ProbeOutcome::Closed
    );
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let address = closed_port().await;
    assert_eq!(
        probe_ssh(address, ANSWER_TIMEOUT).await,
        ProbeOutcome::Refused
    );
    assert_eq!(
        probe_rdp(address, ANSWER_TIMEOUT).await,
        ProbeOutcome::Refused
    );
    assert_eq!(
        probe_tcp(address, ANSWER_TIMEOUT).await,
        ProbeOutcome::Refused
    );
}

#[tokio::test]
async fn identify_tells_ssh_from_rdp() {
    let (ssh, _stop_ssh) = serve(Behaviour::SshBanner).await;
    let (rdp, _stop_rdp) = serve(Behaviour::RdpConfirm).await;
    let (silent, _stop_silent) = serve(Behaviour::Silent).await;
    assert_eq!(
        identify(ssh, ANSWER_TIMEOUT).await,
        Identified::Ssh {
            banner: "SSH-2.0-TestSSH_1.0".into()
        }
    );
    // RDP waits for the client, so the SSH half must time out first: give it a short budget.
    assert!(matches!(
        identify(rdp, Duration::from_secs(2)).await,
        Identified::Rdp { .. }
    ));
    assert_eq!(
        identify(silent, SILENCE_TIMEOUT).await,
        Identified::Neither(ProbeOutcome::Silent { connected: true })
    );
    assert_eq!(
        identify(closed_port().await, ANSWER_TIMEOUT).await,
        Identified::Neither(ProbeOutcome::Refused)
    );
}
