//! The socket is not usable by another user: the private directory stops them at
//! `connect`, and if the directory and socket were opened up anyway, the agent's peer
//! uid check refuses them. The other user is `nobody` (65534), which needs root to
//! become; without root only the owner's side is checked here (the uid comparison
//! itself is unit-tested in the library).

mod daemon_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use daemon_support::{TestBackend, VERSION, config, dirs, start, this_test_binary};
use jit_agent::daemon::{AgentClient, RecordingNotifier};

const NOBODY: u32 = 65534;
const HELPER_SOCKET: &str = "JIT_TEST_PEER_SOCKET";

/// Not a test: runs as another user, tries the socket and prints what happened.
#[test]
#[ignore = "helper process, started by another_user_cannot_use_the_socket"]
#[allow(
    clippy::print_stdout,
    reason = "stdout is how the helper reports to the test"
)]
fn connect_as_another_user() {
    let Some(socket) = std::env::var_os(HELPER_SOCKET) else {
        panic!("this helper runs only as the other user of another_user_cannot_use_the_socket");
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(stream) => stream,
        Err(error) => {
            println!("OUTCOME connect failed: {:?}", error.kind());
            return;
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let hello =
        format!("{{\"type\":\"hello\",\"protocol_version\":1,\"client_version\":\"{VERSION}\"}}\n");
    let _ = stream.write_all(hello.as_bytes());
    let mut answer = String::new();
    let _ = BufReader::new(&stream).read_line(&mut answer);
    println!("OUTCOME answer: {}", answer.trim_end());
}

/// Runs the helper as `nobody` and returns its outcome line.
fn try_as_nobody(socket: &Path) -> String {
    let output = Command::new(this_test_binary())
        .args([
            "--exact",
            "connect_as_another_user",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_SOCKET, socket)
        .current_dir("/")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run the helper as nobody");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the helper failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.split_once("OUTCOME ").map(|(_, outcome)| outcome))
        .unwrap_or_else(|| panic!("no outcome from the helper: {stdout}"))
        .to_owned()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|error| panic!("chmod {}: {error}", path.display()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_use_the_socket() {
    let dirs = dirs();
    let agent = start(
        config(&dirs.paths),
        Arc::new(TestBackend::default()),
        RecordingNotifier::default(),
    )
    .await;
    let socket = dirs.paths.socket();

    if rustix::process::geteuid().is_root() {
        // As things are: the directory does not let the other user reach the socket.
        chmod(dirs.temp.path(), 0o755);
        let outcome = try_as_nobody(&socket);
        assert_eq!(outcome, "connect failed: PermissionDenied");

        // Opened up by mistake: the agent itself refuses the other uid.
        chmod(dirs.paths.runtime_dir(), 0o755);
        chmod(&socket, 0o666);
        let outcome = try_as_nobody(&socket);
        assert!(
            outcome.starts_with("answer: ") && outcome.contains(r#""kind":"permission_denied""#),
            "{outcome}"
        );
        assert!(!outcome.contains("welcome"), "{outcome}");
    } else {
        let note = "not root: cannot become another user here; only the owner's side is checked";
        let _ = writeln!(std::io::stderr(), "{note}");
    }

    // The owner is still served.
    let mut client = AgentClient::connect(&dirs.paths, VERSION, Duration::from_secs(5))
        .await
        .expect("the owner connects");
    assert!(client.list_windows().await.is_ok());
    agent.stop().await.expect("stop");
}

const HELPER_LISTEN: &str = "JIT_TEST_PEER_LISTEN";

/// Not a test: as another user, listens where the agent's socket would be, accepts one
/// connection and prints how many bytes the client sent before giving up.
#[test]
#[ignore = "helper process, started by an_agent_of_another_user_is_refused_before_anything_is_sent"]
#[allow(
    clippy::print_stdout,
    reason = "stdout is how the helper reports to the test"
)]
fn listen_as_another_user() {
    use std::io::Read as _;

    let Some(socket) = std::env::var_os(HELPER_LISTEN) else {
        panic!(
            "this helper runs only as the other user of an_agent_of_another_user_is_refused_before_anything_is_sent"
        );
    };
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    println!("READY");
    let (mut stream, _) = listener.accept().expect("accept");
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    println!("OUTCOME received {} bytes", received.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_of_another_user_is_refused_before_anything_is_sent() {
    if !rustix::process::geteuid().is_root() {
        let note = "not root: cannot become another user here; the uid comparison is unit-tested";
        let _ = writeln!(std::io::stderr(), "{note}");
        return;
    }
    let dirs = dirs();
    // A runtime dir someone else could write to (a shared or misconfigured
    // JIT_RUNTIME_DIR), where another user's process listens first.
    chmod(dirs.temp.path(), 0o755);
    std::fs::create_dir_all(dirs.paths.runtime_dir()).expect("runtime dir");
    chmod(dirs.paths.runtime_dir(), 0o777);
    let socket = dirs.paths.socket();
    let mut helper = Command::new(this_test_binary())
        .args([
            "--exact",
            "listen_as_another_user",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_LISTEN, &socket)
        .current_dir("/")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the helper as nobody");
    let stdout = helper.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("READY"));
    assert!(ready, "the helper did not start");

    let error = AgentClient::connect(&dirs.paths, VERSION, Duration::from_secs(5))
        .await
        .expect_err("a stranger's agent is refused");
    assert!(
        matches!(error, jit_agent::daemon::ClientError::Stranger { ref reason, .. } if reason.contains("uid 65534")),
        "{error:?}"
    );
    let outcome = lines
        .find_map(|line| {
            line.ok()?
                .split_once("OUTCOME ")
                .map(|(_, outcome)| outcome.to_owned())
        })
        .unwrap_or_default();
    let _ = helper.wait();
    assert_eq!(
        outcome, "received 0 bytes",
        "not even the handshake was sent"
    );
}
