//! The byte level of agent IPC: private directories, the listener, connecting, and
//! JSON-lines framing.
//!
//! On Unix the endpoint is a socket in a directory only the user can enter (0700), the
//! socket itself is 0600, and the agent also checks each peer's uid (`SO_PEERCRED` /
//! `getpeereid`), so a misconfigured directory still does not let another user in.
//!
//! On Windows the endpoint is a named pipe private to the user, and both ends check who
//! is at the other one: see [`super::windows_pipe`].

use std::io;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};

use super::paths::AgentPaths;
use super::protocol::MAX_MESSAGE_BYTES;

/// A connected byte stream (Unix socket or named pipe).
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A boxed [`Stream`], so client and server code is the same on every OS.
pub(crate) type BoxedStream = Box<dyn Stream>;

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("the connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("a message longer than {MAX_MESSAGE_BYTES} bytes")]
    TooLong,
}

/// Reads one line (without its newline). `None` when the peer closed the connection
/// cleanly between messages.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_MESSAGE_BYTES).unwrap_or(u64::MAX) + 1;
    let count = (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut line)
        .await?;
    if count == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if line.len() > MAX_MESSAGE_BYTES {
            return Err(FrameError::TooLong);
        }
        return Err(FrameError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the connection in the middle of a message",
        )));
    }
    line.pop();
    Ok(Some(line))
}

/// Writes `message` as one JSON line and flushes it.
pub(crate) async fn write_message<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    bytes.push(b'\n');
    writer.write_all(&bytes).await?;
    writer.flush().await
}

/// Creates `dir` (and parents) private to the user, or checks an existing one.
///
/// An existing directory must belong to the user; if others may enter it, it is made
/// 0700, except a sticky shared directory such as `/tmp`, which is refused instead.
#[cfg(unix)]
pub(crate) fn prepare_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let metadata = std::fs::metadata(dir)?;
    let own_uid = rustix::process::geteuid().as_raw();
    if metadata.uid() != own_uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to this user (uid {own_uid})",
                dir.display(),
                metadata.uid()
            ),
        ));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        if mode & 0o1000 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a shared directory (mode {mode:o}); give the agent a directory of its own",
                    dir.display()
                ),
            ));
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates `dir` (and parents); on Windows the user profile's ACLs already make the
/// per-user directories private.
#[cfg(not(unix))]
pub(crate) fn prepare_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Who is on the other end of an accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A process of this user.
    Owner,
    /// A process of another user (Unix uid).
    #[cfg(unix)]
    Stranger { uid: u32 },
    /// A process of another user (Windows SID).
    #[cfg(windows)]
    Stranger { sid: String },
    /// The OS gave no answer; refused, since it cannot be shown to be the owner.
    Unknown,
}

/// Whether a peer with `peer_uid` may talk to an agent running as `own_uid`: only the
/// same user, root included (root can read the socket's memory anyway, but has no
/// business asking for this user's tokens).
#[cfg(unix)]
pub(crate) fn classify_peer(peer_uid: u32, own_uid: u32) -> Peer {
    if peer_uid == own_uid {
        Peer::Owner
    } else {
        Peer::Stranger { uid: peer_uid }
    }
}

/// The agent's listening endpoint.
#[derive(Debug)]
pub(crate) struct Listener {
    #[cfg(unix)]
    inner: tokio::net::UnixListener,
    #[cfg(windows)]
    inner: super::windows_pipe::PipeListener,
}

impl Listener {
    /// Binds the endpoint. On Unix the caller has checked that no agent answers on the
    /// socket path and removed a stale socket; the socket is made 0600 before the first
    /// `accept`.
    #[cfg(unix)]
    pub(crate) fn bind(paths: &AgentPaths) -> io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;

        let socket = paths.socket();
        let inner = tokio::net::UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self { inner })
    }

    /// Creates the first instance of the agent's pipe, private to this user; fails if
    /// another process has it.
    #[cfg(windows)]
    pub(crate) fn bind(paths: &AgentPaths) -> io::Result<Self> {
        Ok(Self {
            inner: super::windows_pipe::PipeListener::bind(paths.pipe_name()?)?,
        })
    }

    /// Waits for the next connection and says who made it.
    #[cfg(unix)]
    pub(crate) async fn accept(&mut self) -> io::Result<(BoxedStream, Peer)> {
        let (stream, _) = self.inner.accept().await?;
        let own_uid = rustix::process::geteuid().as_raw();
        let peer = match stream.peer_cred() {
            Ok(credentials) => classify_peer(credentials.uid(), own_uid),
            Err(error) => {
                tracing::warn!(%error, "could not read the peer's credentials");
                Peer::Unknown
            }
        };
        Ok((Box::new(stream), peer))
    }

    /// Waits for the next connection and says who made it (the client process's user).
    #[cfg(windows)]
    pub(crate) async fn accept(&mut self) -> io::Result<(BoxedStream, Peer)> {
        let (stream, client_user) = self.inner.accept().await?;
        let peer = match (client_user, super::windows_pipe::current_user()) {
            (Ok(client), Ok(own)) if client == own => Peer::Owner,
            (Ok(client), Ok(_)) => Peer::Stranger {
                sid: client.text().to_owned(),
            },
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "could not tell which user the client runs as");
                Peer::Unknown
            }
        };
        Ok((Box::new(stream), peer))
    }
}

/// Connects to the agent's endpoint within `timeout`.
pub(crate) async fn connect(paths: &AgentPaths, timeout: Duration) -> io::Result<BoxedStream> {
    match tokio::time::timeout(timeout, connect_now(paths)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the agent did not accept the connection in time",
        )),
    }
}

/// Connects, and refuses an agent that runs as another user before a byte is sent: a
/// token or a window must never go to someone else's process listening on a shared or
/// misconfigured runtime directory (`JIT_RUNTIME_DIR`, the macOS temp fallback).
#[cfg(unix)]
async fn connect_now(paths: &AgentPaths) -> io::Result<BoxedStream> {
    let stream = tokio::net::UnixStream::connect(paths.socket()).await?;
    let own_uid = rustix::process::geteuid().as_raw();
    let credentials = stream.peer_cred()?;
    if let Peer::Stranger { uid } = classify_peer(credentials.uid(), own_uid) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the agent at {} runs as uid {uid}, not as this user (uid {own_uid})",
                paths.socket().display()
            ),
        ));
    }
    Ok(Box::new(stream))
}

#[cfg(windows)]
async fn connect_now(paths: &AgentPaths) -> io::Result<BoxedStream> {
    Ok(Box::new(
        super::windows_pipe::connect(&paths.pipe_name()?).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn only_the_same_uid_is_the_owner() {
        assert_eq!(classify_peer(1000, 1000), Peer::Owner);
        assert_eq!(classify_peer(1001, 1000), Peer::Stranger { uid: 1001 });
        assert_eq!(classify_peer(0, 1000), Peer::Stranger { uid: 0 });
    }

    #[tokio::test]
    async fn lines_are_read_whole_and_bounded() {
        let mut input: &[u8] = b"{\"a\":1}\n{\"b\":2}\n";
        let first = read_line(&mut input).await;
        assert_eq!(first.ok().flatten(), Some(b"{\"a\":1}".to_vec()));
        let second = read_line(&mut input).await;
        assert_eq!(second.ok().flatten(), Some(b"{\"b\":2}".to_vec()));
        assert!(matches!(read_line(&mut input).await, Ok(None)));

        let mut truncated: &[u8] = b"{\"a\":";
        assert!(matches!(
            read_line(&mut truncated).await,
            Err(FrameError::Io(_))
        ));

        let long = vec![b'x'; MAX_MESSAGE_BYTES + 10];
        let mut long_input: &[u8] = &long;
        assert!(matches!(
            read_line(&mut long_input).await,
            Err(FrameError::TooLong)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_are_made_0700_and_shared_ones_refused() {
        use std::os::unix::fs::PermissionsExt;

        let Ok(temp) = tempfile::tempdir() else {
            panic!("no temp dir");
        };
        let fresh = temp.path().join("a/b");
        assert!(prepare_private_dir(&fresh).is_ok());
        let mode = std::fs::metadata(&fresh).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o700));

        let loose = temp.path().join("loose");
        assert!(std::fs::create_dir(&loose).is_ok());
        assert!(std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).is_ok());
        assert!(prepare_private_dir(&loose).is_ok());
        let mode = std::fs::metadata(&loose).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o700));

        let shared = temp.path().join("shared");
        assert!(std::fs::create_dir(&shared).is_ok());
        assert!(std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).is_ok());
        let refused = prepare_private_dir(&shared);
        assert!(
            refused
                .as_ref()
                .is_err_and(|error| error.kind() == io::ErrorKind::PermissionDenied),
            "{refused:?}"
        );
    }
}
