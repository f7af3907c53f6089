//! The first exchange of RDP, which is all a client needs to see that a Windows VM's
//! port is open.
//!
//! An RDP client starts with an X.224 Connection Request in a TPKT frame, naming the
//! security protocols it can do; the server answers with a Connection Confirm naming the
//! one it picked, or a negotiation failure. That answer proves an RDP stack is listening,
//! which is what `jit` waits for before it starts the OS client. The TLS and CredSSP that
//! follow are not emulated: after the confirm the connection stays open and silent, as a
//! server waiting for a TLS handshake it will never finish would look.
//!
//! The server here behaves like a Windows VM with Network Level Authentication on: it
//! prefers CredSSP with the early user authorisation result (`HYBRID_EX`), then CredSSP
//! (`HYBRID`), then plain TLS (`SSL`); a client offering only standard RDP security gets
//! `SSL_REQUIRED_BY_SERVER`.

use ironrdp_pdu::nego::{
    ConnectionConfirm, ConnectionRequest, FailureCode, ResponseFlags, SecurityProtocol,
};
use ironrdp_pdu::x224::X224;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Size of a TPKT header: version (3), reserved, 16-bit big-endian length of the whole
/// packet.
const TPKT_HEADER_SIZE: usize = 4;
/// TPKT version byte.
const TPKT_VERSION: u8 = 3;
/// The largest Connection Request accepted. A real one is a few dozen bytes (a routing
/// token is at most 238); anything bigger is not RDP.
const MAX_CONNECTION_REQUEST_SIZE: usize = 1024;

/// Why a connection did not carry an RDP Connection Request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RdpError {
    /// The socket failed or the client closed it before a whole request arrived.
    #[error("reading the X.224 Connection Request failed: {0}")]
    Read(#[from] std::io::Error),
    /// The bytes are not a TPKT frame this server accepts.
    #[error("not a TPKT frame: {0}")]
    Framing(String),
    /// The frame does not hold an X.224 Connection Request.
    #[error("not an X.224 Connection Request: {0}")]
    Decode(String),
    /// The confirm could not be encoded.
    #[error("cannot encode the X.224 Connection Confirm: {0}")]
    Encode(String),
}

/// Reads one TPKT frame holding the client's X.224 Connection Request.
pub(crate) async fn read_connection_request<S>(
    stream: &mut S,
) -> Result<ConnectionRequest, RdpError>
where
    S: AsyncRead + Unpin,
{
    let mut header = [0u8; TPKT_HEADER_SIZE];
    stream.read_exact(&mut header).await?;
    let [version, _reserved, length_high, length_low] = header;
    if version != TPKT_VERSION {
        return Err(RdpError::Framing(format!("version {version}, expected 3")));
    }
    let length = usize::from(u16::from_be_bytes([length_high, length_low]));
    if !(TPKT_HEADER_SIZE + 1..=MAX_CONNECTION_REQUEST_SIZE).contains(&length) {
        return Err(RdpError::Framing(format!(
            "length {length} outside {}..={MAX_CONNECTION_REQUEST_SIZE}",
            TPKT_HEADER_SIZE + 1
        )));
    }
    let mut frame = vec![0u8; length];
    frame[..TPKT_HEADER_SIZE].copy_from_slice(&header);
    stream.read_exact(&mut frame[TPKT_HEADER_SIZE..]).await?;
    let X224(request) = ironrdp_pdu::decode::<X224<ConnectionRequest>>(&frame)
        .map_err(|error| RdpError::Decode(error.to_string()))?;
    Ok(request)
}

/// The Connection Confirm a Windows VM sends for `request`.
pub(crate) fn confirm_for(request: &ConnectionRequest) -> ConnectionConfirm {
    let offered = request.protocol;
    let preference = [
        SecurityProtocol::HYBRID_EX,
        SecurityProtocol::HYBRID,
        SecurityProtocol::SSL,
    ];
    match preference
        .into_iter()
        .find(|protocol| offered.contains(*protocol))
    {
        Some(protocol) => ConnectionConfirm::Response {
            flags: ResponseFlags::EXTENDED_CLIENT_DATA_SUPPORTED
                | ResponseFlags::DYNVC_GFX_PROTOCOL_SUPPORTED,
            protocol,
        },
        None => ConnectionConfirm::Failure {
            code: FailureCode::SSL_REQUIRED_BY_SERVER,
        },
    }
}

/// The confirm as bytes on the wire (TPKT + X.224).
pub(crate) fn encode_confirm(confirm: ConnectionConfirm) -> Result<Vec<u8>, RdpError> {
    ironrdp_pdu::encode_vec(&X224(confirm)).map_err(|error| RdpError::Encode(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_pdu::nego::{NegoRequestData, RequestFlags};

    fn request(protocol: SecurityProtocol) -> ConnectionRequest {
        ConnectionRequest {
            nego_data: Some(NegoRequestData::cookie("azureuser".to_owned())),
            flags: RequestFlags::empty(),
            protocol,
            correlation_info: None,
        }
    }

    #[tokio::test]
    async fn a_request_reads_back_and_gets_the_preferred_protocol() {
        let sent = request(SecurityProtocol::SSL | SecurityProtocol::HYBRID);
        let bytes = ironrdp_pdu::encode_vec(&X224(sent.clone())).unwrap();
        let received = read_connection_request(&mut bytes.as_slice())
            .await
            .unwrap();
        assert_eq!(received, sent);
        let confirm = confirm_for(&received);
        assert!(matches!(
            confirm,
            ConnectionConfirm::Response { protocol, .. } if protocol == SecurityProtocol::HYBRID
        ));
        let encoded = encode_confirm(confirm.clone()).unwrap();
        let X224(decoded) = ironrdp_pdu::decode::<X224<ConnectionConfirm>>(&encoded).unwrap();
        assert_eq!(decoded, confirm);
    }

    #[test]
    fn protocols_are_picked_in_the_order_windows_prefers() {
        let picked = |offered| match confirm_for(&request(offered)) {
            ConnectionConfirm::Response { protocol, .. } => Ok(protocol),
            ConnectionConfirm::Failure { code } => Err(code),
        };
        let all = SecurityProtocol::SSL | SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX;
        assert_eq!(picked(all), Ok(SecurityProtocol::HYBRID_EX));
        assert_eq!(picked(SecurityProtocol::SSL), Ok(SecurityProtocol::SSL));
        assert_eq!(
            picked(SecurityProtocol::empty()),
            Err(FailureCode::SSL_REQUIRED_BY_SERVER)
        );
    }

    #[tokio::test]
    async fn malformed_frames_are_refused() {
        let mut not_tpkt: &[u8] = b"SSH-2.0-OpenSSH_9.6\r\n";
        assert!(matches!(
            read_connection_request(&mut not_tpkt).await,
            Err(RdpError::Framing(_))
        ));
        let mut too_long: &[u8] = &[3, 0, 0xff, 0xff];
        assert!(matches!(
            read_connection_request(&mut too_long).await,
            Err(RdpError::Framing(_))
        ));
        let mut truncated: &[u8] = &[3, 0, 0, 19, 14];
        assert!(matches!(
            read_connection_request(&mut truncated).await,
            Err(RdpError::Read(_))
        ));
        // A well-framed Connection Confirm is not a request.
        let confirm = encode_confirm(ConnectionConfirm::Failure {
            code: FailureCode::HYBRID_REQUIRED_BY_SERVER,
        })
        .unwrap();
        assert!(matches!(
            read_connection_request(&mut confirm.as_slice()).await,
            Err(RdpError::Decode(_))
        ));
    }
}
