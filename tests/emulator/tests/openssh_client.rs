//! The real OpenSSH client against an emulated VM's SSH port, with strict host-key
//! checking on: what `jit connect` and its users will run.

mod vm_ports_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use jit_emulator::vm_ports::{PortService, keys};
use russh::keys::PrivateKey;
use tokio::io::AsyncWriteExt as _;
use vm_ports_support::*;

/// A temp dir holding the client key and a `known_hosts` naming the VM's host key.
struct ClientFiles {
    _directory: tempfile::TempDir,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl ClientFiles {
    fn new(port: &GatedPort, client_key: &PrivateKey, host_key: &PrivateKey) -> ClientFiles {
        let directory = tempfile::tempdir().expect("temp dir");
        let key = directory.path().join("id_ed25519");
        keys::write_private_key(client_key, &key).expect("write the client key");
        let known_hosts = directory.path().join("known_hosts");
        let line = keys::known_hosts_line(port.address(), host_key.public_key())
            .expect("known_hosts line");
        std::fs::write(&known_hosts, format!("{line}\n")).expect("write known_hosts");
        ClientFiles {
            _directory: directory,
            key,
            known_hosts,
        }
    }
}

/// What an `ssh` run ended with.
#[derive(Debug)]
struct SshRun {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the system `ssh` with this test's files, no user or system configuration, and
/// strict host-key checking.
async fn run_ssh(
    files: &ClientFiles,
    port: &GatedPort,
    user: &str,
    extra_options: &[&str],
    command: Option<&str>,
    stdin: &[u8],
) -> SshRun {
    // OpenSSH keeps the first value it is given for an option, so the test's own options
    // come first.
    let mut arguments: Vec<String> = extra_options
        .iter()
        .map(|option| option.to_string())
        .collect();
    arguments.extend([
        "-F".into(),
        "none".into(),
        "-i".into(),
        path_text(&files.key),
        "-o".into(),
        format!("UserKnownHostsFile={}", path_text(&files.known_hosts)),
        "-o".into(),
        "GlobalKnownHostsFile=none".into(),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "ConnectTimeout=20".into(),
        "-p".into(),
        port.address().port().to_string(),
    ]);
    arguments.push(format!("{user}@127.0.0.1"));
    arguments.extend(command.map(str::to_owned));

    let mut child = match tokio::process::Command::new("ssh")
        .args(&arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "these tests need the OpenSSH client `ssh` on PATH: apt-get install openssh-client"
        ),
        Err(error) => panic!("cannot start ssh: {error}"),
    };
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).await.expect("write ssh's stdin");
        // Dropping `input` closes ssh's stdin, which ends a remote shell.
    }
    let output = tokio::time::timeout(PROMPTLY * 3, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("ssh {arguments:?} did not finish in time"))
        .expect("wait for ssh");
    SshRun {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// An admitted SSH port and the files a client needs for it.
async fn admitted_vm() -> (SshIdentity, GatedPort, ClientFiles) {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;
    port.admit();
    let files = ClientFiles::new(&port, &identity.client_key, &identity.service.host_key);
    (identity, port, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_runs_hostname_on_the_emulated_vm() {
    let (_identity, port, files) = admitted_vm().await;
    let run = run_ssh(&files, &port, ADMIN_USER, &[], Some("hostname"), b"").await;
    assert_eq!(run.status, Some(0), "{run:?}");
    assert_eq!(run.stdout, format!("{COMPUTER_NAME}\n"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_exits_with_the_remote_command_status() {
    let (_identity, port, files) = admitted_vm().await;
    let run = run_ssh(&files, &port, ADMIN_USER, &[], Some("exit 3"), b"").await;
    assert_eq!(run.status, Some(3), "{run:?}");

    let run = run_ssh(
        &files,
        &port,
        ADMIN_USER,
        &[],
        Some("no-such-tool --version"),
        b"",
    )
    .await;
    assert_eq!(run.status, Some(127), "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    assert!(
        run.stderr.contains("bash: no-such-tool: command not found"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_is_refused_for_another_user_or_another_key() {
    let (_identity, port, files) = admitted_vm().await;
    let run = run_ssh(&files, &port, "root", &[], Some("hostname"), b"").await;
    assert_eq!(run.status, Some(255), "{run:?}");
    assert!(
        run.stderr.contains("Permission denied (publickey)"),
        "{run:?}"
    );

    keys::write_private_key(&keys::generate_ed25519(), &files.key).expect("replace the key");
    let run = run_ssh(&files, &port, ADMIN_USER, &[], Some("hostname"), b"").await;
    assert_eq!(run.status, Some(255), "{run:?}");
    assert!(
        run.stderr.contains("Permission denied (publickey)"),
        "{run:?}"
    );
    assert_eq!(run.stdout, "", "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_refuses_a_host_key_other_than_the_known_one() {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;
    port.admit();
    let impostor_host_key = keys::generate_ed25519();
    let files = ClientFiles::new(&port, &identity.client_key, &impostor_host_key);
    let run = run_ssh(&files, &port, ADMIN_USER, &[], Some("hostname"), b"").await;
    assert_eq!(run.status, Some(255), "{run:?}");
    assert!(
        run.stderr.contains("Host key verification failed"),
        "{run:?}"
    );
    assert_eq!(run.stdout, "", "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_times_out_on_a_port_the_gate_refuses() {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;
    let files = ClientFiles::new(&port, &identity.client_key, &identity.service.host_key);
    let run = run_ssh(
        &files,
        &port,
        ADMIN_USER,
        &["-o", "ConnectTimeout=1"],
        Some("hostname"),
        b"",
    )
    .await;
    assert_eq!(run.status, Some(255), "{run:?}");
    assert!(
        run.stderr.contains("timed out during banner exchange"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_shell_without_a_terminal_runs_piped_commands() {
    let (_identity, port, files) = admitted_vm().await;
    let script = b"hostname\nwhoami\necho hello   world\nnope\nexit 4\necho never\n";
    let run = run_ssh(&files, &port, ADMIN_USER, &["-T"], None, script).await;
    assert_eq!(run.status, Some(4), "{run:?}");
    assert_eq!(
        run.stdout,
        format!("{COMPUTER_NAME}\n{ADMIN_USER}\nhello world\n"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("bash: nope: command not found"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_shell_ends_with_the_last_status_when_input_ends() {
    let (_identity, port, files) = admitted_vm().await;
    let run = run_ssh(&files, &port, ADMIN_USER, &["-T"], None, b"false\n").await;
    assert_eq!(run.status, Some(1), "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_shell_on_a_forced_terminal_shows_the_prompt() {
    let (_identity, port, files) = admitted_vm().await;
    let run = run_ssh(
        &files,
        &port,
        ADMIN_USER,
        &["-tt"],
        None,
        b"hostname\nexit 2\n",
    )
    .await;
    assert_eq!(run.status, Some(2), "{run:?}");
    let prompt = format!("{ADMIN_USER}@{COMPUTER_NAME}:~$ ");
    assert!(
        run.stdout
            .starts_with(&format!("{prompt}hostname\r\n{COMPUTER_NAME}\r\n{prompt}")),
        "{run:?}"
    );
    assert!(run.stdout.contains("logout\r\n"), "{run:?}");
}
