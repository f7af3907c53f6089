//! Protocol-level readiness probes: is an SSH or RDP service really answering on this port?
//!
//! A JIT request is "done" when the NSG rule is in place, but the port is only *usable*
//! once the service behind it answers. A plain TCP connect cannot tell the two apart: the
//! emulator (like some middleboxes) accepts the TCP connection on a blocked port and then
//! stays silent, and a real NSG drops the SYN so the connect itself times out. So the
//! probes go one step further and wait for the first protocol message:
//!
//! - [`probe_ssh`] reads the server's identification line (`SSH-2.0-…`), which an SSH
//!   server sends first without being asked. No SSH library is involved: the banner is
//!   the proof, and a handshake would need host-key decisions that belong to `ssh`.
//! - [`probe_rdp`] sends an X.224 Connection Request and decodes the Connection Confirm
//!   (`ironrdp-pdu`). Both a negotiation response and a negotiation failure prove that an
//!   RDP stack answered; what the server then requires (TLS, CredSSP) is the client's job.
//! - [`probe_tcp`] only connects, for ports whose protocol is unknown.
//! - [`identify`] tells which of SSH or RDP answers, to pick among a policy's ports.
//!
//! Every probe is bounded by one overall timeout and reports a typed [`ProbeOutcome`]
//! rather than an error, because "not yet" is the normal answer while a window opens.

mod rdp;
mod ssh;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

pub use rdp::probe_rdp;
pub use ssh::probe_ssh;

/// What a probe saw. Only [`ProbeOutcome::Ready`] means the service can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The service answered at the protocol level.
    Ready {
        /// What answered, e.g. the SSH identification line or the RDP protocol selected.
        detail: String,
    },
    /// Nothing answered within the timeout. `connected` tells whether TCP connected (the
    /// emulator's blocked ports, or a service that hangs) or the connect itself timed out
    /// (a real NSG dropping the SYN).
    Silent {
        /// Whether the TCP connection was established before the silence.
        connected: bool,
    },
    /// The connection was actively refused (RST): nothing listens, or a firewall rejects.
    Refused,
    /// The address cannot be reached at all (no route, network down, address invalid).
    Unreachable {
        /// The operating system's description of the failure.
        reason: String,
    },
    /// Connected, then the peer closed the connection without sending anything.
    Closed,
    /// Something answered, but not the expected protocol.
    WrongProtocol {
        /// A printable excerpt of what was received (at most a line).
        got: String,
    },
}

impl ProbeOutcome {
    /// Whether the service answered.
    pub fn is_ready(&self) -> bool {
        matches!(self, ProbeOutcome::Ready { .. })
    }
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeOutcome::Ready { detail } => write!(formatter, "ready ({detail})"),
            ProbeOutcome::Silent { connected: true } => {
                formatter.write_str("connected, but nothing answered yet")
            }
            ProbeOutcome::Silent { connected: false } => {
                formatter.write_str("no answer to the TCP connection yet")
            }
            ProbeOutcome::Refused => formatter.write_str("connection refused"),
            ProbeOutcome::Unreachable { reason } => write!(formatter, "unreachable: {reason}"),
            ProbeOutcome::Closed => {
                formatter.write_str("connected, but the server closed the connection at once")
            }
            ProbeOutcome::WrongProtocol { got } => {
                write!(formatter, "an unexpected service answered: {got:?}")
            }
        }
    }
}

/// Which protocol answered on a port, as found by [`identify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identified {
    /// An SSH server sent its identification line.
    Ssh {
        /// The identification line, e.g. `SSH-2.0-OpenSSH_9.6`.
        banner: String,
    },
    /// An RDP stack answered the X.224 Connection Request.
    Rdp {
        /// What it answered (protocol selected or negotiation failure).
        detail: String,
    },
    /// Neither answered; the outcome of the last probe tried says why.
    Neither(ProbeOutcome),
}

/// Connects only. Ready as soon as TCP connects.
///
/// On the emulator, and behind some middleboxes, a blocked port still accepts the TCP
/// connection, so this says nothing about the service; prefer [`probe_ssh`] or
/// [`probe_rdp`] when the protocol is known.
pub async fn probe_tcp(address: SocketAddr, timeout: Duration) -> ProbeOutcome {
    match connect(address, Instant::now() + timeout).await {
        Ok(_) => ProbeOutcome::Ready {
            detail: format!("TCP connection to {address}"),
        },
        Err(outcome) => outcome,
    }
}

/// Finds out whether SSH or RDP answers on `address`, within `timeout` overall.
///
/// SSH servers speak first and RDP servers wait for the client, so SSH is tried first
/// (with half the time); only when that connection stays silent is RDP tried on a new
/// connection with the rest. A refused or unreachable port ends the search at once. When
/// the port starts answering between the two connections (a JIT rule written just
/// then), the second one meets an SSH server's identification line: that is reported as
/// silence, not as another protocol, so that a caller waiting for the port probes again.
pub async fn identify(address: SocketAddr, timeout: Duration) -> Identified {
    let deadline = Instant::now() + timeout;
    match probe_ssh(address, timeout / 2).await {
        ProbeOutcome::Ready { detail } => return Identified::Ssh { banner: detail },
        ProbeOutcome::Silent { connected: true } => {}
        other => return Identified::Neither(other),
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    match probe_rdp(address, remaining).await {
        ProbeOutcome::Ready { detail } => Identified::Rdp { detail },
        // The port started answering between the two connections, and as SSH (its
        // identification line where RDP's header was expected): not decided yet; the
        // next probe reads the whole line on the first connection.
        ProbeOutcome::WrongProtocol { got } if got.starts_with("SSH-") => {
            Identified::Neither(ProbeOutcome::Silent { connected: true })
        }
        other => Identified::Neither(other),
    }
}

/// Connects with TCP_NODELAY before `deadline`, mapping failures to probe outcomes.
async fn connect(address: SocketAddr, deadline: Instant) -> Result<TcpStream, ProbeOutcome> {
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
        Err(_elapsed) => return Err(ProbeOutcome::Silent { connected: false }),
        Ok(Err(error)) => return Err(connect_error(&error)),
        Ok(Ok(stream)) => stream,
    };
    if let Err(error) = stream.set_nodelay(true) {
        // Only latency suffers; the probe still works.
        tracing::debug!(%address, %error, "could not set TCP_NODELAY on the probe connection");
    }
    Ok(stream)
}

fn connect_error(error: &io::Error) -> ProbeOutcome {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ProbeOutcome::Refused,
        io::ErrorKind::TimedOut => ProbeOutcome::Silent { connected: false },
        _ => ProbeOutcome::Unreachable {
            reason: error.to_string(),
        },
    }
}

/// A printable excerpt of bytes received from a peer: lossy UTF-8, control characters
/// escaped, at most `MAX_EXCERPT` characters.
fn excerpt(bytes: &[u8]) -> String {
    const MAX_EXCERPT: usize = 120;
    let text = String::from_utf8_lossy(bytes);
    let mut printable: String = text
        .trim_end_matches(['\r', '\n'])
        .chars()
        .flat_map(char::escape_default)
        .take(MAX_EXCERPT)
        .collect();
    if printable.is_empty() && !bytes.is_empty() {
        printable = format!("{} byte(s)", bytes.len());
    }
    printable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_escapes_control_characters_and_caps_length() {
        assert_eq!(excerpt(b"220 smtp ready\r\n"), "220 smtp ready");
        assert_eq!(excerpt(b"\x00\x01"), "\\u{0}\\u{1}");
        assert_eq!(excerpt(&[b'a'; 500]).len(), 120);
        assert_eq!(excerpt(b"\r\n"), "2 byte(s)");
    }

    #[test]
    fn connect_errors_map_to_outcomes() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(connect_error(&refused), ProbeOutcome::Refused);
        let timed_out = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(
            connect_error(&timed_out),
            ProbeOutcome::Silent { connected: false }
        );
        let unreachable = io::Error::from(io::ErrorKind::NetworkUnreachable);
        assert!(matches!(
            connect_error(&unreachable),
            ProbeOutcome::Unreachable { .. }
        ));
    }

    /// A port that starts answering as SSH between `identify`'s two connections (the
    /// first held silent, as a blocked port on the emulator is): not another protocol.
    #[tokio::test]
    async fn ssh_answering_between_the_two_connections_is_not_another_protocol() {
        use tokio::io::AsyncWriteExt as _;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let (silent, _) = listener.accept().await.expect("the SSH probe");
            let (mut answering, _) = listener.accept().await.expect("the RDP probe");
            answering
                .write_all(b"SSH-2.0-OpenSSH_9.6\r\n")
                .await
                .expect("the identification line");
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop(silent);
        });
        let identified = identify(address, Duration::from_millis(600)).await;
        assert_eq!(
            identified,
            Identified::Neither(ProbeOutcome::Silent { connected: true })
        );
        server.abort();
    }
}
