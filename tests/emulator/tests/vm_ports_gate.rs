//! Emulated VM ports over real TCP: silent until the gate admits, answering (SSH banner,
//! X.224 confirm) while it does, silent again for new connections once it refuses, and
//! keeping established sessions alive through that, as an NSG does on Azure.

mod vm_ports_support;

use ironrdp_pdu::nego::{ConnectionConfirm, FailureCode, SecurityProtocol};
use jit_emulator::vm_ports::PortService;
use tokio::io::AsyncWriteExt as _;
use vm_ports_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_port_is_silent_until_admitted_and_again_after_admission_is_withdrawn() {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;

    let mut before = port.connect().await;
    assert_silent(&mut before, "SSH port before admission").await;

    port.admit();
    let mut admitted = port.connect().await;
    let banner = read_banner(&mut admitted).await;
    assert!(banner.starts_with("SSH-2.0-"), "banner: {banner:?}");
    assert!(banner.ends_with("\r\n"), "banner: {banner:?}");
    // The gate was asked when that first connection was accepted; admitting later does
    // not wake it up, as a dropped SYN is not replayed.
    assert_silent(
        &mut before,
        "connection refused before admission, after admission",
    )
    .await;

    port.refuse();
    let mut after = port.connect().await;
    assert_silent(&mut after, "SSH port after admission was withdrawn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_ssh_session_outlives_the_withdrawal_of_admission() {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;
    port.admit();
    let client = ssh_login(port.address(), &identity).await;
    let first = exec(&client, "hostname").await;
    assert_eq!(first.stdout, format!("{COMPUTER_NAME}\n"));
    assert_eq!(first.status, Some(0));

    port.refuse();
    let mut newcomer = port.connect().await;
    assert_silent(&mut newcomer, "new connection after withdrawal").await;

    let second = exec(&client, "whoami").await;
    assert_eq!(
        second,
        Ran {
            stdout: format!("{ADMIN_USER}\n"),
            stderr: String::new(),
            status: Some(0),
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_commands_report_output_errors_and_exit_status() {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;
    port.admit();
    let client = ssh_login(port.address(), &identity).await;

    let echoed = exec(&client, "echo 'hello   there' $USER").await;
    assert_eq!(echoed.stdout, format!("hello   there {ADMIN_USER}\n"));
    assert_eq!(echoed.status, Some(0));

    assert_eq!(exec(&client, "uname").await.stdout, "Linux\n");
    assert_eq!(exec(&client, "true").await.status, Some(0));
    assert_eq!(exec(&client, "false").await.status, Some(1));
    assert_eq!(exec(&client, "exit 3").await.status, Some(3));

    let missing = exec(&client, "systemctl restart nginx").await;
    assert_eq!(missing.stdout, "");
    assert_eq!(missing.stderr, "bash: systemctl: command not found\n");
    assert_eq!(missing.status, Some(127));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_channels_share_one_ssh_connection() {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;
    port.admit();
    let client = ssh_login(port.address(), &identity).await;

    let mut first = client.channel_open_session().await.expect("first channel");
    let mut second = client.channel_open_session().await.expect("second channel");
    second
        .exec(true, "whoami")
        .await
        .expect("exec on the second");
    first
        .exec(true, "hostname")
        .await
        .expect("exec on the first");
    let (first, second) = tokio::join!(collect(&mut first), collect(&mut second));
    assert_eq!(first.stdout, format!("{COMPUTER_NAME}\n"));
    assert_eq!(second.stdout, format!("{ADMIN_USER}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_shell_on_a_pty_prompts_echoes_and_exits_with_its_status() {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;
    port.admit();
    let client = ssh_login(port.address(), &identity).await;

    let mut channel = client.channel_open_session().await.expect("channel");
    channel
        .set_env(true, "LANG", "C.UTF-8")
        .await
        .expect("env request");
    channel
        .request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await
        .expect("pty request");
    channel.request_shell(true).await.expect("shell request");
    channel
        .window_change(100, 30, 0, 0)
        .await
        .expect("window change");
    channel
        .data_bytes(&b"hostname\rexit 5\r"[..])
        .await
        .expect("type commands");
    let ran = collect(&mut channel).await;
    let prompt = format!("{ADMIN_USER}@{COMPUTER_NAME}:~$ ");
    assert_eq!(
        ran.stdout,
        format!("{prompt}hostname\r\n{COMPUTER_NAME}\r\n{prompt}exit 5\r\nlogout\r\n")
    );
    assert_eq!(ran.status, Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_admin_user_with_an_authorised_key_gets_in() {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;
    port.admit();

    let mut client = ssh_connect(port.address(), identity.host_key()).await;
    assert!(!authenticate(&mut client, "root", &identity.client_key).await);
    let stranger = jit_emulator::vm_ports::keys::generate_ed25519();
    assert!(!authenticate(&mut client, ADMIN_USER, &stranger).await);
    let password = client
        .authenticate_password(ADMIN_USER, "P@ssw0rd!")
        .await
        .expect("password exchange");
    assert!(!password.success(), "password authentication is off");
    assert!(authenticate(&mut client, ADMIN_USER, &identity.client_key).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdp_port_confirms_the_connection_request_only_while_admitted() {
    let port = GatedPort::start(PortService::Rdp).await;
    let all = SecurityProtocol::SSL | SecurityProtocol::HYBRID | SecurityProtocol::HYBRID_EX;

    let mut before = port.connect().await;
    send_connection_request(&mut before, all).await;
    assert_silent(&mut before, "RDP port before admission").await;

    port.admit();
    let mut admitted = port.connect().await;
    send_connection_request(&mut admitted, all).await;
    let confirm = read_connection_confirm(&mut admitted).await;
    let ConnectionConfirm::Response { protocol, .. } = confirm else {
        panic!("expected a negotiation response, got {confirm:?}");
    };
    assert_eq!(protocol, SecurityProtocol::HYBRID_EX);
    // TLS and CredSSP are not emulated: the server waits, silent, but keeps the line.
    assert_silent(&mut admitted, "RDP connection after the confirm").await;

    let mut tls_only = port.connect().await;
    send_connection_request(&mut tls_only, SecurityProtocol::SSL).await;
    let confirm = read_connection_confirm(&mut tls_only).await;
    assert!(
        matches!(confirm, ConnectionConfirm::Response { protocol, .. } if protocol == SecurityProtocol::SSL),
        "{confirm:?}"
    );

    let mut standard_security = port.connect().await;
    send_connection_request(&mut standard_security, SecurityProtocol::empty()).await;
    let confirm = read_connection_confirm(&mut standard_security).await;
    assert_eq!(
        confirm,
        ConnectionConfirm::Failure {
            code: FailureCode::SSL_REQUIRED_BY_SERVER
        }
    );
    assert_closed(&mut standard_security, "RDP after a negotiation failure").await;

    port.refuse();
    let mut after = port.connect().await;
    send_connection_request(&mut after, all).await;
    assert_silent(&mut after, "RDP port after admission was withdrawn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdp_port_closes_a_connection_that_does_not_speak_rdp() {
    let port = GatedPort::start(PortService::Rdp).await;
    port.admit();
    let mut stream = port.connect().await;
    stream
        .write_all(b"SSH-2.0-OpenSSH_9.6\r\n")
        .await
        .expect("write");
    assert_closed(&mut stream, "RDP port fed an SSH banner").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_port_never_answers_even_when_admitted() {
    let port = GatedPort::start(PortService::Silent).await;
    port.admit();
    let mut stream = port.connect().await;
    stream
        .write_all(b"GET /wsman HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    assert_silent(&mut stream, "silent service").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_listener_ends_its_connections_and_stops_accepting() {
    let identity = SshIdentity::new();
    let port = GatedPort::start(PortService::Ssh(identity.service.clone())).await;
    let mut refused = port.connect().await;
    assert_silent(&mut refused, "refused connection").await;
    port.admit();
    let client = ssh_login(port.address(), &identity).await;
    let mut shell = client.channel_open_session().await.expect("channel");
    shell.request_shell(true).await.expect("shell request");
    let address = port.address();

    drop(port);

    assert_closed(
        &mut refused,
        "held connection after the listener was dropped",
    )
    .await;
    let ended = collect(&mut shell).await;
    assert_eq!(
        ended.status, None,
        "the shell was cut off by the disconnect, it did not exit"
    );
    // The listening socket closes with the accept task, which is cancelled
    // asynchronously: allow it a moment.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::net::TcpStream::connect(address).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{address} still accepts connections 5 s after its listener was dropped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
