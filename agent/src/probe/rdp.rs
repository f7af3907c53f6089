//! The RDP probe: X.224 Connection Request, then a Connection Confirm.
//!
//! This is the first exchange of every RDP connection ([MS-RDPBCGR] 1.3.1.1): the client
//! sends a Connection Request inside a TPKT frame and the server answers with a
//! Connection Confirm carrying either the selected security protocol or a negotiation
//! failure code. Both prove an RDP stack is listening, which is all the probe needs; TLS
//! and CredSSP come afterwards and are the RDP client's business.

use std::net::SocketAddr;
use std::time::Duration;

use ironrdp_pdu::nego::{
    ConnectionConfirm, ConnectionRequest, NegoRequestData, RequestFlags, SecurityProtocol,
};
use ironrdp_pdu::x224::X224;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{ProbeOutcome, connect, excerpt};

/// TPKT version byte (RFC 1006).
const TPKT_VERSION: u8 = 3;
/// TPKT header length; the smallest frame is the header plus a 3-byte X.224 header.
const TPKT_HEADER_LEN: usize = 4;
const MIN_TPKT_LEN: usize = 7;

/// Sends an X.224 Connection Request to `address` and waits for the Connection Confirm,
/// within `timeout`.
pub async fn probe_rdp(address: SocketAddr, timeout: Duration) -> ProbeOutcome {
    let deadline = Instant::now() + timeout;
    let mut stream = match connect(address, deadline).await {
        Ok(stream) => stream,
        Err(outcome) => return outcome,
    };
    let request = match connection_request() {
        Ok(bytes) => bytes,
        Err(error) => {
            // Encoding a constant request cannot fail in practice; report it, never panic.
            return ProbeOutcome::Unreachable {
                reason: format!("could not encode the X.224 Connection Request: {error}"),
            };
        }
    };
    match tokio::time::timeout_at(deadline, stream.write_all(&request)).await {
        Err(_elapsed) => return ProbeOutcome::Silent { connected: true },
        Ok(Err(error)) => {
            tracing::debug!(%address, %error, "RDP probe write failed");
            return ProbeOutcome::Closed;
        }
        Ok(Ok(())) => {}
    }
    match tokio::time::timeout_at(deadline, read_confirm(&mut stream)).await {
        Err(_elapsed) => ProbeOutcome::Silent { connected: true },
        Ok(outcome) => outcome,
    }
}

/// The Connection Request an RDP client sends first, asking for every enhanced security
/// protocol so a modern server answers with a selection rather than a failure.
fn connection_request() -> Result<Vec<u8>, ironrdp_pdu::EncodeError> {
    let request = X224(ConnectionRequest {
        nego_data: Some(NegoRequestData::cookie("jit".to_owned())),
        flags: RequestFlags::empty(),
        protocol: SecurityProtocol::SSL | SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX,
        correlation_info: None,
    });
    ironrdp_pdu::encode_vec(&request)
}

/// Reads one TPKT frame and decodes it as a Connection Confirm.
async fn read_confirm(stream: &mut TcpStream) -> ProbeOutcome {
    let mut header = [0_u8; TPKT_HEADER_LEN];
    let mut filled = 0;
    while filled < TPKT_HEADER_LEN {
        match stream.read(&mut header[filled..]).await {
            Ok(0) | Err(_) if filled == 0 => return ProbeOutcome::Closed,
            Ok(0) | Err(_) => {
                return ProbeOutcome::WrongProtocol {
                    got: excerpt(&header[..filled]),
                };
            }
            Ok(count) => filled += count,
        }
    }
    let frame_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if header[0] != TPKT_VERSION || frame_len < MIN_TPKT_LEN {
        return ProbeOutcome::WrongProtocol {
            got: excerpt(&header),
        };
    }
    let mut frame = vec![0_u8; frame_len];
    frame[..TPKT_HEADER_LEN].copy_from_slice(&header);
    if stream
        .read_exact(&mut frame[TPKT_HEADER_LEN..])
        .await
        .is_err()
    {
        return ProbeOutcome::WrongProtocol {
            got: format!("a truncated TPKT frame of {frame_len} bytes"),
        };
    }
    judge_confirm(&frame)
}

/// Decodes a complete TPKT frame as an X.224 Connection Confirm.
fn judge_confirm(frame: &[u8]) -> ProbeOutcome {
    match ironrdp_pdu::decode::<X224<ConnectionConfirm>>(frame) {
        Ok(X224(ConnectionConfirm::Response { protocol, .. })) => ProbeOutcome::Ready {
            detail: format!("RDP, security protocol {protocol}"),
        },
        Ok(X224(ConnectionConfirm::Failure { code })) => ProbeOutcome::Ready {
            detail: format!("RDP, negotiation failure: {code}"),
        },
        Err(error) => ProbeOutcome::WrongProtocol {
            got: format!("a TPKT frame that is not an X.224 Connection Confirm ({error})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_a_tpkt_frame_that_decodes_as_a_connection_request() {
        let bytes = connection_request().unwrap_or_default();
        assert_eq!(bytes.first(), Some(&TPKT_VERSION));
        let decoded = ironrdp_pdu::decode::<X224<ConnectionRequest>>(&bytes);
        assert!(
            decoded.is_ok_and(|X224(request)| request.protocol.contains(SecurityProtocol::HYBRID))
        );
    }

    #[test]
    fn confirm_frames_are_judged() {
        let failure = X224(ConnectionConfirm::Failure {
            code: ironrdp_pdu::nego::FailureCode::HYBRID_REQUIRED_BY_SERVER,
        });
        let bytes = ironrdp_pdu::encode_vec(&failure).unwrap_or_default();
        assert!(judge_confirm(&bytes).is_ready());
        assert!(matches!(
            judge_confirm(&[3, 0, 0, 7, 2, 0xf0, 0x80]),
            ProbeOutcome::WrongProtocol { .. }
        ));
    }
}
