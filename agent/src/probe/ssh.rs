//! The SSH banner probe: read the server's identification line.
//!
//! RFC 4253 §4.2: the server sends `SSH-protoversion-softwareversion` first, and "MAY
//! send other lines of data before sending the version string". Protocol 2.0 servers
//! send `SSH-2.0-`; servers that also speak 1.x send `SSH-1.99-`. A pure 1.x server
//! (`SSH-1.5-`) cannot be used by OpenSSH today, so it counts as the wrong protocol.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::{ProbeOutcome, connect, excerpt};

/// RFC 4253 limits the identification line to 255 characters including CR LF; the
/// lines allowed before it are bounded here so a chatty peer cannot make us buffer much.
const MAX_PRELUDE: usize = 8 * 1024;

/// Connects to `address` and waits for an SSH identification line, within `timeout`.
pub async fn probe_ssh(address: SocketAddr, timeout: Duration) -> ProbeOutcome {
    let deadline = Instant::now() + timeout;
    let mut stream = match connect(address, deadline).await {
        Ok(stream) => stream,
        Err(outcome) => return outcome,
    };
    let mut received: Vec<u8> = Vec::new();
    let mut chunk = [0_u8; 512];
    loop {
        if let Some(outcome) = judge_lines(&received) {
            return outcome;
        }
        if received.len() > MAX_PRELUDE {
            return wrong_protocol(&received);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_elapsed) if received.is_empty() => {
                return ProbeOutcome::Silent { connected: true };
            }
            // Something that is not SSH talked and then waited (an SMTP or FTP greeting).
            Err(_elapsed) => return wrong_protocol(&received),
            Ok(Ok(0)) if received.is_empty() => return ProbeOutcome::Closed,
            Ok(Ok(0)) => return wrong_protocol(&received),
            Ok(Ok(count)) => received.extend_from_slice(&chunk[..count]),
            Ok(Err(error)) if received.is_empty() => {
                tracing::debug!(%address, %error, "SSH probe read failed");
                return ProbeOutcome::Closed;
            }
            Ok(Err(_)) => return wrong_protocol(&received),
        }
    }
}

/// Looks at the complete lines received so far: `Some` once a line decides the outcome.
fn judge_lines(received: &[u8]) -> Option<ProbeOutcome> {
    let mut rest = received;
    while let Some(end) = rest.iter().position(|&byte| byte == b'\n') {
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-") {
            return Some(ProbeOutcome::Ready {
                detail: excerpt(line),
            });
        }
        if line.starts_with(b"SSH-") {
            return Some(ProbeOutcome::WrongProtocol { got: excerpt(line) });
        }
        rest = &rest[end + 1..];
    }
    None
}

/// The first line received, as the evidence of what answered instead of SSH.
fn wrong_protocol(received: &[u8]) -> ProbeOutcome {
    let first_line = received
        .split(|&byte| byte == b'\n')
        .next()
        .unwrap_or(received);
    ProbeOutcome::WrongProtocol {
        got: excerpt(first_line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identification_lines_decide() {
        assert_eq!(
            judge_lines(b"SSH-2.0-OpenSSH_9.6\r\n"),
            Some(ProbeOutcome::Ready {
                detail: "SSH-2.0-OpenSSH_9.6".into()
            })
        );
        assert!(judge_lines(b"SSH-1.99-legacy\n").is_some_and(|o| o.is_ready()));
        assert_eq!(
            judge_lines(b"SSH-1.5-old\r\n"),
            Some(ProbeOutcome::WrongProtocol {
                got: "SSH-1.5-old".into()
            })
        );
    }

    #[test]
    fn lines_before_the_identification_are_allowed() {
        assert!(judge_lines(b"welcome\r\nSSH-2.0-x\r\n").is_some_and(|o| o.is_ready()));
        assert_eq!(judge_lines(b"welcome\r\n"), None);
        assert_eq!(judge_lines(b"SSH-2.0-no-newline-yet"), None);
    }
}
